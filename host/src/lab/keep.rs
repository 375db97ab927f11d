//! The runner's record of the run (records.rs), kept in step with the lab so that `runner ls`
//! and `runner cleanup` can find whatever the user has seen; and `--keep`, which pins the lab
//! and its programs' files instead of removing them.

use super::{pin, Lab};
use crate::error::{LabError, LabResult};
use crate::records::NsRecord;

impl Lab {
    /// The record is what `runner ls` and `runner cleanup` go by; failing to write it does not
    /// stop the lab, but the user should know those commands will not see this run.
    pub(super) fn save_record(&self) -> bool {
        if let Err(e) = self.record.save() {
            self.console.warn(&format!(
                "cannot write the run record under {}: {e}; `runner ls` will not show run {}",
                crate::records::run_dir().display(),
                self.record.id
            ));
            return false;
        }
        true
    }

    pub(super) fn sync_record(&mut self) {
        self.record.namespaces = self
            .namespaces
            .values()
            .map(|n| NsRecord {
                name: n.name.clone(),
                inode: n.inode,
                pinned: None,
                files: None,
            })
            .collect();
        let _ = self.save_record();
    }

    /// A namespace was made or deleted: the record's log says so (records.rs). The record is
    /// saved whole once, at the first namespace; a run that makes none leaves no record.
    pub(super) fn log_namespace(&mut self, change: crate::records::NsChange) {
        if self.record_saved.is_none() {
            self.record_saved = Some(self.save_record());
        }
        if self.record_saved != Some(true) {
            return;
        }
        if let Err(e) = self.record.log_namespace(&change) {
            self.console.warn(&format!(
                "cannot write the run record under {}: {e}; `runner ls` will not show all of run {}",
                crate::records::run_dir().display(),
                self.record.id
            ));
        }
    }

    /// Keep the lab after the run: pin every namespace as /run/netns/nslab-RUNID-NAME, record
    /// the pins, and let go of the fds. If any pin fails, undo the others and report; the caller
    /// then tears the lab down as usual.
    pub fn keep(&mut self) -> LabResult<Vec<NsRecord>> {
        if crate::privilege::mode() != crate::privilege::Mode::Root {
            return self.keep_by_keeper();
        }
        let mut kept: Vec<NsRecord> = Vec::new();
        let mut failed = None;
        for ns in self.namespaces.values() {
            let pinned = format!("nslab-{}-{}", self.record.id, ns.name);
            if let Err(e) = pin::pin(ns.fd(), &pinned) {
                failed = Some(LabError::from_io(
                    &e,
                    format!("pin {} as /run/netns/{pinned}", ns.name),
                ));
                break;
            }
            let mut record = NsRecord {
                name: ns.name.clone(),
                inode: ns.inode,
                pinned: Some(pinned.clone()),
                files: None,
            };
            // What its programs wrote stays too, until `runner cleanup`.
            if let Some(boxfs) = &ns.boxfs {
                let inode = nix::sys::stat::fstat(boxfs).map(|s| s.st_ino).unwrap_or(0);
                match pin::pin_box(std::os::fd::AsFd::as_fd(boxfs), &pinned) {
                    Ok(_) => record.files = Some((pinned.clone(), inode)),
                    Err(e) => {
                        failed = Some(LabError::from_io(
                            &e,
                            format!("pin the files of {} as {}/{pinned}", ns.name, pin::BOX_DIR),
                        ))
                    }
                }
            }
            kept.push(record);
            // Recorded as each pin is made, so `cleanup` finds them whatever happens next.
            self.record.namespaces = kept.clone();
            let _ = self.save_record();
            if failed.is_some() {
                break;
            }
        }
        if let Some(e) = failed {
            for k in &kept {
                let _ = pin::unpin(k.pinned.as_deref().unwrap_or_default(), k.inode);
                if let Some((name, inode)) = &k.files {
                    let _ = pin::unpin_box(name, *inode);
                }
            }
            self.sync_record();
            return Err(e);
        }
        let _ = self.record_kept(&kept);
        self.let_go();
        Ok(kept)
    }

    /// Record the lab as kept elsewhere (pins, or a keeper): whether the record was written.
    fn record_kept(&mut self, kept: &[NsRecord]) -> bool {
        self.record.namespaces = kept.to_vec();
        self.record.kept = true;
        self.save_record()
    }

    /// The lab is kept elsewhere: let go of it here.
    fn let_go(&mut self) {
        self.programs.release_all();
        self.links.clear();
        self.namespaces.clear();
    }

    /// The keeper process that holds the kept lab of an ordinary user, once kept.
    pub fn kept_by(&self) -> Option<u32> {
        self.record.keeper.map(|(pid, _)| pid)
    }

    /// Keep the lab of an ordinary user: a keeper process holds the user namespace, every
    /// namespace and every box (keeper.rs), and the record says where: /proc/PID/fd/N.
    fn keep_by_keeper(&mut self) -> LabResult<Vec<NsRecord>> {
        use std::os::fd::AsRawFd;
        let userns = self.factory.helper()?.userns_fd();
        let mut fds = vec![userns];
        let mut kept = Vec::new();
        // Where each namespace's and box's fd will be in the keeper, known before it starts.
        let at = |n: usize| super::keeper::FIRST_FD + n as i32;
        for ns in self.namespaces.values() {
            fds.push(ns.raw_fd());
            let net = at(fds.len() - 1);
            let files = match &ns.boxfs {
                Some(boxfs) => {
                    fds.push(boxfs.as_raw_fd());
                    let inode = nix::sys::stat::fstat(boxfs).map(|s| s.st_ino).unwrap_or(0);
                    Some((at(fds.len() - 1), inode))
                }
                None => None,
            };
            kept.push((ns.name.clone(), ns.inode, net, files));
        }
        let pid = super::keeper::start(self.factory.exe(), &fds)?;
        let start = crate::records::process_start(pid).unwrap_or(0);
        let kept: Vec<NsRecord> = kept
            .into_iter()
            .map(|(name, inode, net, files)| NsRecord {
                name,
                inode,
                pinned: Some(format!("/proc/{pid}/fd/{net}")),
                files: files.map(|(fd, inode)| (format!("/proc/{pid}/fd/{fd}"), inode)),
            })
            .collect();
        self.record.keeper = Some((pid, start));
        // Only the record leads `cleanup` to the keeper: without one, nothing would ever stop it.
        if !self.record_kept(&kept) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.record.keeper = None;
            self.record.kept = false;
            return Err(LabError::Os(format!(
                "the run record could not be written under {}, and only it would lead `runner cleanup` to the kept lab",
                crate::records::run_dir().display()
            )));
        }
        self.let_go();
        Ok(kept)
    }
}
