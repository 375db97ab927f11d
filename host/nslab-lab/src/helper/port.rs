//! What the lab asks of its helper, the process that does the run's work inside its user
//! namespace (mod.rs): a box for a namespace's programs and files in it, what confines the
//! programs, and their starts. The lab's programs and files reach the helper only through
//! this port ([`crate::Kernel::port`]). The real port is the run's [`Helper`]; the fake
//! kernel's starts plain processes of the test's own, unboxed (kernel/fake/port.rs), so that
//! the programs' bookkeeping is tested without root.

use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use super::channel::Init;
use super::ids::GroupDrop;
use super::protocol::{Command, Confinement, StartFds};
use super::starter::Starter;
use super::{FileFailure, Helper};
use crate::error::LabResult;

/// A namespace's box as the port makes it: its mount namespace (the files its programs see),
/// its UTS namespace (their host name), and a netlink socket inside the namespace subscribed
/// to its link events (programs/watch.rs).
pub struct NewBox {
    pub boxfs: OwnedFd,
    pub uts: OwnedFd,
    pub link_events: OwnedFd,
}

/// A file to give a box (its path inside the box, as the scenario gave it).
pub struct GivenFile<'a> {
    pub path: &'a str,
    pub contents: &'a [u8],
    pub mode: u32,
}

/// The lab's port to its helper.
///
/// Its round trips are awaited: the real helper's run on tokio's blocking pool, so that a
/// helper slow to answer (up to its 10 s) holds no worker of the runtime.
pub trait Port: Send + Sync {
    /// The box of namespace `name` (held by `netns`): at most `scratch_bytes` writable, the
    /// programs allowed `by_path` at /nslab/bin/NAME, `code` mounted executable.
    fn new_box(
        &self,
        name: &str,
        netns: BorrowedFd<'_>,
        scratch_bytes: u64,
        by_path: &[(String, PathBuf)],
        code: &[PathBuf],
    ) -> impl Future<Output = LabResult<NewBox>> + Send;
    /// A new box as [`Port::new_box`] makes it, with `file` written in it as
    /// [`Port::write_file`] writes: a namespace's first file, in one step where the port can.
    /// If it fails, nothing is made; the lab then asks for each step alone, which says which
    /// failed and why.
    fn new_box_with_file(
        &self,
        name: &str,
        netns: BorrowedFd<'_>,
        scratch_bytes: u64,
        by_path: &[(String, PathBuf)],
        code: &[PathBuf],
        file: &GivenFile<'_>,
    ) -> impl Future<Output = LabResult<NewBox>> + Send {
        async move {
            let made = self
                .new_box(name, netns, scratch_bytes, by_path, code)
                .await?;
            self.write_file(made.boxfs.as_fd(), file.path, file.contents, file.mode)
                .await
                .map_err(crate::error::LabError::from)?;
            Ok(made)
        }
    }
    /// Set the host name a box's programs see (its UTS namespace `uts`).
    fn set_hostname(
        &self,
        uts: BorrowedFd<'_>,
        hostname: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    /// Write `contents` to `path` as the programs of the box `boxfs` see it.
    fn write_file(
        &self,
        boxfs: BorrowedFd<'_>,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> impl Future<Output = Result<(), FileFailure>> + Send;
    /// Open `path` for reading as the programs of the box `boxfs` see it.
    fn open_file(
        &self,
        boxfs: BorrowedFd<'_>,
        path: &str,
    ) -> impl Future<Output = Result<OwnedFd, FileFailure>> + Send;
    /// Say what confines every program of the run, with its fds (protocol.rs).
    fn confine(&self, c: Confinement, fds: &[RawFd]) -> impl Future<Output = LabResult<()>> + Send;
    /// Start `command` with `fds`, without waiting: the start's outcome comes on its pipes
    /// (programs/starts.rs), the init's pidfd when first needed.
    fn start_program(
        &self,
        command: &Command,
        fds: StartFds<RawFd>,
    ) -> impl Future<Output = LabResult<Init>> + Send;
    /// The process to move into the run's cgroups with the programs (None: there is none).
    fn pid(&self) -> Option<u32>;
    /// Whether and where the programs' supplementary groups are dropped.
    fn groups(&self) -> GroupDrop;
    /// What starts the operator's programs from outside the lab (doors.rs): None where the
    /// port has no such thing.
    fn starter(&self) -> Option<Starter>;
}

impl Port for Helper {
    async fn new_box(
        &self,
        name: &str,
        netns: BorrowedFd<'_>,
        scratch_bytes: u64,
        by_path: &[(String, PathBuf)],
        code: &[PathBuf],
    ) -> LabResult<NewBox> {
        Helper::new_box(self, name, netns, scratch_bytes, by_path, code, None).await
    }

    /// One request: the helper's process that builds the box writes the file before it ends.
    async fn new_box_with_file(
        &self,
        name: &str,
        netns: BorrowedFd<'_>,
        scratch_bytes: u64,
        by_path: &[(String, PathBuf)],
        code: &[PathBuf],
        file: &GivenFile<'_>,
    ) -> LabResult<NewBox> {
        Helper::new_box(self, name, netns, scratch_bytes, by_path, code, Some(file)).await
    }

    async fn set_hostname(&self, uts: BorrowedFd<'_>, hostname: &str) -> LabResult<()> {
        Helper::set_hostname(self, uts, hostname).await
    }

    async fn write_file(
        &self,
        boxfs: BorrowedFd<'_>,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), FileFailure> {
        Helper::write_file(self, boxfs, path, contents, mode).await
    }

    async fn open_file(&self, boxfs: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, FileFailure> {
        Helper::open_file(self, boxfs, path).await
    }

    async fn confine(&self, c: Confinement, fds: &[RawFd]) -> LabResult<()> {
        Helper::confine(self, c, fds).await
    }

    async fn start_program(&self, command: &Command, fds: StartFds<RawFd>) -> LabResult<Init> {
        self.channel.make_room().await;
        Helper::start_program(self, command, fds)
    }

    fn pid(&self) -> Option<u32> {
        Some(Helper::pid(self))
    }

    fn groups(&self) -> GroupDrop {
        Helper::groups(self)
    }

    fn starter(&self) -> Option<Starter> {
        Some(Helper::starter(self))
    }
}
