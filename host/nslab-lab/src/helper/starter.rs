//! The runner's side of starting programs through the helper (spawn.rs is the helper's), and
//! the [`Starter`] that does it for the operator from outside the lab (lab/doors.rs).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use super::channel::{Channel, Init};
use super::protocol::{self, Reply, Request, StartFds, StartedBy};
use super::Helper;
use crate::error::{LabError, LabResult};

/// The helper's socket, shared: what starts the operator's programs and opens packet sockets
/// while the lab itself is busy with the scenario. Requests take the socket's lock one at a
/// time, as the lab's own do. Dropped before the lab's teardown, so that the helper still
/// ends when the lab closes its end.
#[derive(Clone)]
pub struct Starter {
    channel: Arc<Channel>,
    operators: Operators,
}

/// The socket of the operator's helper (server.rs, `start_operators`), made at the first
/// operator's program: None until then, or if it could not be made (the helper itself then
/// starts the operator's programs, each joining the cgroups on its own).
#[derive(Clone, Default)]
pub struct Operators(Arc<Mutex<Option<Option<Arc<Channel>>>>>);

impl Starter {
    /// Where a program of `by` is started: the operator's helper for the operator's.
    fn channel_for(&self, by: StartedBy) -> Arc<Channel> {
        if by == StartedBy::Scenario {
            return self.channel.clone();
        }
        let mut made = self.operators.0.lock().unwrap_or_else(|e| e.into_inner());
        let channel = made.get_or_insert_with(|| self.make_operators().ok());
        channel.clone().unwrap_or_else(|| self.channel.clone())
    }

    fn make_operators(&self) -> LabResult<Arc<Channel>> {
        let what = "start the helper of the operator's programs";
        let (socket, pidfd) = match self.channel.request(&Request::Operators, &[])? {
            (Reply::Failed(errno), _) => return Err(LabError::from_errno(errno, what)),
            (reply, fds) => match <[OwnedFd; 2]>::try_from(fds) {
                Ok([socket, pidfd]) if reply == Reply::Done => (socket, pidfd),
                Ok(_) | Err(_) => {
                    return Err(LabError::os(format!(
                        "{what}: the lab helper said {reply:?}, not its socket and pidfd"
                    )))
                }
            },
        };
        let pid = crate::process::pidfd_pid(pidfd.as_raw_fd())
            .ok_or_else(|| LabError::os(format!("{what}: it is gone")))?;
        // As the helper's own socket: every answer comes at once or the run fails (mod.rs).
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(super::HELPER_ANSWER_SECS, 0),
        );
        Ok(Channel::new(socket, pid))
    }
}

impl Starter {
    /// Hand `command` to the helper to start (helper/spawn.rs) with `fds`. It does not wait for the
    /// helper's answer (channel.rs): the start's outcome comes on those pipes, and the init's
    /// pidfd when it is first needed.
    pub fn start_program(
        &self,
        command: &protocol::Command,
        fds: StartFds<RawFd>,
    ) -> LabResult<Init> {
        let what = "hand a program to the lab helper";
        let memfd =
            nix::sys::memfd::memfd_create(c"nslab-exec", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .map_err(|e| LabError::from_errno(e, what))?;
        let mut file = std::fs::File::from(memfd);
        std::io::Write::write_all(&mut file, &command.encode())
            .map_err(|e| LabError::from_io(&e, what))?;
        let mut all = vec![file.as_raw_fd()];
        all.extend(fds.into_array());
        self.channel_for(command.by).request_start(&all)
    }

    /// A packet socket bound to interface `ifname` of the network namespace `netns`
    /// (`runner capture`).
    pub fn packet_socket(&self, netns: RawFd, ifname: &str) -> LabResult<OwnedFd> {
        let what = format!("open a packet socket on {ifname}");
        let request = Request::PacketSocket {
            ifname: ifname.to_string(),
        };
        match self.channel.request(&request, &[netns])? {
            (Reply::Done, mut fds) if fds.len() == 1 => Ok(fds.remove(0)),
            (Reply::Failed(nix::errno::Errno::ENODEV), _) => Err(LabError::not_found(format!(
                "{what}: there is no interface {ifname} in that namespace"
            ))),
            (Reply::Failed(errno), _) => Err(LabError::from_errno(errno, &what)),
            (other, fds) => Err(LabError::os(format!(
                "{what}: the lab helper said {other:?} with {} descriptors",
                fds.len()
            ))),
        }
    }
}

impl Helper {
    /// Say what every program of the run is confined by (helper/spawn.rs), with the fds that go
    /// with it: the Landlock ruleset, then the `cgroup.procs` programs join, as `c` says.
    pub async fn confine(&self, c: protocol::Confinement, fds: &[RawFd]) -> LabResult<()> {
        self.reply_fds(Request::Confine(c), fds, "confine the run's programs", 0)
            .await
            .map(|_| ())
    }

    /// The helper's socket, to start programs from outside the lab ([`Starter`]).
    pub fn starter(&self) -> Starter {
        Starter {
            channel: self.channel.clone(),
            operators: self.operators.clone(),
        }
    }

    /// [`Starter::start_program`], for the lab's own programs.
    pub fn start_program(
        &self,
        command: &protocol::Command,
        fds: StartFds<RawFd>,
    ) -> LabResult<Init> {
        self.starter().start_program(command, fds)
    }
}
