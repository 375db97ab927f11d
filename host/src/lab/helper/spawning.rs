//! The runner's side of starting programs through the helper (spawn.rs is the helper's).

use std::os::fd::{AsRawFd, RawFd};

use super::channel::Init;
use super::protocol::{self, Request};
use super::Helper;
use crate::error::{LabError, LabResult};

impl Helper {
    /// Say what every program of the run is confined by (helper/spawn.rs), with the fds that go
    /// with it: the Landlock ruleset, then the `cgroup.procs` programs join, as `c` says.
    pub fn confine(&self, c: protocol::Confinement, fds: &[RawFd]) -> LabResult<()> {
        self.reply_fds(&Request::Confine(c), fds, "confine the run's programs", 0)
            .map(|_| ())
    }

    /// Hand `command` to the helper to start (helper/spawn.rs) with `fds`: the network
    /// namespace, the box's mount namespace, its UTS namespace, stdin, stdout, stderr, and the
    /// write ends of the exit status, start error and forked pipes. It does not wait for the
    /// helper's answer (channel.rs): the start's outcome comes on those pipes, and the init's
    /// pidfd when it is first needed.
    pub fn start_program(
        &self,
        command: &protocol::Command,
        fds: [RawFd; protocol::SPAWN_FDS - 1],
    ) -> LabResult<Init> {
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
        self.channel.request_start(&all)
    }
}
