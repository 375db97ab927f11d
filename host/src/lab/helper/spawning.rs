//! The runner's side of starting programs through the helper (spawn.rs is the helper's).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::protocol::{self, Reply, Request};
use super::{send, Helper};
use crate::error::{LabError, LabResult};

impl Helper {
    /// Say what every program of the run is confined by (helper/spawn.rs), with the fds that go
    /// with it: the Landlock ruleset, then the `cgroup.procs` programs join, as `c` says.
    pub fn confine(&self, c: protocol::Confinement, fds: &[RawFd]) -> LabResult<()> {
        send(&self.socket, &Request::Confine(c), fds)?;
        self.reply_fds("confine the run's programs", 0).map(|_| ())
    }

    /// Start `command` (helper/spawn.rs) with `fds`: the network namespace, the box's mount
    /// namespace, its UTS namespace, stdin, stdout, stderr, and the write ends of the exit
    /// status, start error and forked pipes. As soon as its init is cloned: a pidfd of the init
    /// and its pid; or the errno the init could not be cloned with.
    pub fn spawn(
        &self,
        command: &protocol::Command,
        fds: [RawFd; protocol::SPAWN_FDS - 1],
    ) -> LabResult<Result<(OwnedFd, u32), Errno>> {
        let what = "hand a program to the lab helper";
        let memfd =
            nix::sys::memfd::memfd_create(c"nslab-exec", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .map_err(|e| LabError::from_errno(e, what))?;
        let bytes = command.encode();
        let mut written = 0;
        while written < bytes.len() {
            written += nix::unistd::write(&memfd, &bytes[written..])
                .map_err(|e| LabError::from_errno(e, what))?;
        }
        let mut all = vec![memfd.as_raw_fd()];
        all.extend_from_slice(&fds);
        send(&self.socket, &Request::Spawn, &all)?;
        match self.receive()? {
            (Reply::Spawned(pid), fds) if fds.len() == 1 => {
                let pidfd = fds.into_iter().next().expect("one descriptor");
                Ok(Ok((pidfd, pid)))
            }
            (Reply::Failed(errno), _) => Ok(Err(errno)),
            (other, fds) => Err(LabError::Os(format!(
                "start a program: the lab helper said {other:?} with {} descriptors",
                fds.len()
            ))),
        }
    }
}
