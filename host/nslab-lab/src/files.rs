//! Files for a namespace's programs: a scenario writes a config file into a namespace's box, or
//! reads back what a program wrote (a log, a capture). The box is made on first use, by files
//! or programs alike. The reading and writing happen inside the box (lab/helper/), so no path a
//! program could have planted there reaches a host file.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use super::helper::port::{GivenFile, NewBox, Port};
use super::helper::FileFailure;
use super::kernel::Kernel;
use super::{Lab, NsId};
use crate::error::{LabError, LabResult};
use crate::input::FilePath;
use crate::spent::Work;

/// A file request's failure as a sentence: what the box's answer means for `path` in `ns`.
fn explain(failure: FileFailure, path: &FilePath, ns: &str) -> LabError {
    use nix::errno::Errno;
    match failure {
        FileFailure::InBox {
            errno: Errno::EINVAL,
            ..
        } => LabError::invalid(format!(
            "{path} in {ns} is not a regular file (a pipe, a socket or a device): a scenario gives and reads files only"
        )),
        FileFailure::InBox {
            errno: Errno::EROFS,
            ..
        } => LabError::invalid(format!(
            "{path} cannot be given to {ns}: the box shows the host's system directories \
             read-only, and a file can go there only in place of one that exists (/etc/hosts) \
             or in a directory below them (/etc/bird/, which the box then makes its own); \
             or use /run, /var or /tmp"
        )),
        FileFailure::InBox { errno, what } => {
            LabError::from_errno(errno, what).context(&format!("in namespace {ns}"))
        }
        FileFailure::Other(e) => e.context(&format!("in namespace {ns}")),
    }
}

impl<K: Kernel> Lab<K> {
    /// The filesystem box of a namespace (helper/sandbox.rs), made on first use.
    pub(super) async fn boxfs(&mut self, ns_id: NsId) -> LabResult<BorrowedFd<'_>> {
        if !self.has_box(ns_id)? {
            self.make_box(ns_id, None).await?;
        }
        Ok(K::ns_box(&self.ns(ns_id)?.held)
            .boxfs
            .as_ref()
            .ok_or_else(|| LabError::not_found("that namespace was deleted".to_string()))?
            .as_fd())
    }

    fn has_box(&self, ns_id: NsId) -> LabResult<bool> {
        Ok(K::ns_box(&self.ns(ns_id)?.held).boxfs.is_some())
    }

    /// Make the box of a namespace that has none, with `file` in it if one is given (the
    /// helper writes it as it builds the box: one round trip, not two).
    async fn make_box(&mut self, ns_id: NsId, file: Option<&GivenFile<'_>>) -> LabResult<()> {
        // Made with the run's cgroups, so what the box's builder does is the run's too.
        self.run_cgroup()?;
        self.programs.work_out_code();
        let limits = self.programs.limits();
        let code = self.programs.mounted();
        let ns = self.ns(ns_id)?;
        let since = std::time::Instant::now();
        let port = self.kernel.port()?;
        let (name, netns) = (&ns.name, K::ns_fd(&ns.held));
        let (scratch, by_path) = (limits.scratch_bytes, &limits.by_path);
        let NewBox {
            boxfs,
            uts,
            link_events,
        } = match file {
            None => port.new_box(name, netns, scratch, by_path, code).await?,
            Some(f) => {
                port.new_box_with_file(name, netns, scratch, by_path, code, f)
                    .await?
            }
        };
        self.spent.add(Work::Boxes, since);
        if let Some(ns) = self.namespaces.get_mut(&ns_id) {
            let made = K::ns_box_mut(&mut ns.held);
            made.boxfs = Some(boxfs);
            made.uts = Some(uts);
            made.link_events = Some(link_events);
        }
        Ok(())
    }

    /// Set the host name the namespace's programs see (its box's UTS namespace, made now if
    /// it is not yet).
    pub async fn set_hostname(&mut self, ns_id: NsId, hostname: &str) -> LabResult<()> {
        self.boxfs(ns_id).await?;
        let ns = self.ns(ns_id)?;
        let uts = K::ns_box(&ns.held)
            .uts
            .as_ref()
            .ok_or_else(|| LabError::not_found("that namespace was deleted".to_string()))?;
        let since = std::time::Instant::now();
        self.kernel
            .port()?
            .set_hostname(uts.as_fd(), hostname)
            .await?;
        self.spent.add(Work::Settings, since);
        self.did(&format!("hostname {hostname} ({})", ns.name));
        Ok(())
    }

    pub fn files_written(&self) -> usize {
        self.files_written
    }

    /// Give the namespace's programs a file at `path`.
    pub async fn write_file(
        &mut self,
        ns_id: NsId,
        path: &FilePath,
        contents: &[u8],
        mode: u32,
    ) -> LabResult<()> {
        let name = self.ns(ns_id)?.name.clone();
        // A namespace's first file comes with its box. Should that fail, the box is made and
        // the file written each alone, so that the error says which failed, and why.
        if !self.has_box(ns_id)? {
            let file = GivenFile {
                path: path.as_str(),
                contents,
                mode,
            };
            if self.make_box(ns_id, Some(&file)).await.is_ok() {
                // Its time is the box's (spent.rs).
                self.spent.add_time(Work::Files, std::time::Duration::ZERO);
                self.given(path, contents.len(), mode, &name);
                return Ok(());
            }
        }
        let boxfs = self
            .boxfs(ns_id)
            .await?
            .try_clone_to_owned()
            .map_err(|e| LabError::from_io(&e, format!("write {path} in {name}")))?;
        let since = std::time::Instant::now();
        self.kernel
            .port()?
            .write_file(boxfs.as_fd(), path.as_str(), contents, mode)
            .await
            .map_err(|e| explain(e, path, &name))?;
        self.spent.add(Work::Files, since);
        self.given(path, contents.len(), mode, &name);
        Ok(())
    }

    /// A file was given: counted, and said.
    fn given(&mut self, path: &FilePath, bytes: usize, mode: u32, name: &str) {
        self.files_written += 1;
        self.did(&format!(
            "file {path} ({bytes} bytes, mode {mode:o}) in {name}"
        ));
    }

    /// Read a file as the namespace's programs see it, at most `max` bytes.
    pub async fn read_file(
        &mut self,
        ns_id: NsId,
        path: &FilePath,
        max: usize,
    ) -> LabResult<Vec<u8>> {
        let name = self.ns(ns_id)?.name.clone();
        let what = format!("read {path} in {name}");
        let boxfs = self
            .boxfs(ns_id)
            .await?
            .try_clone_to_owned()
            .map_err(|e| LabError::from_io(&e, &what))?;
        let file = self
            .kernel
            .port()?
            .open_file(boxfs.as_fd(), path.as_str())
            .await
            .map_err(|e| explain(e, path, &name))?;
        let mut bytes = Vec::new();
        std::fs::File::from(file)
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| LabError::from_io(&e, &what))?;
        if bytes.len() > max {
            return Err(LabError::limit(format!(
                "{what}: it is larger than {max} bytes (policy limit file-bytes; raise it with --file-bytes)"
            )));
        }
        Ok(bytes)
    }
}
