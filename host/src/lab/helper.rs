//! The run's user namespace, and the helper process that makes network namespaces inside it.
//!
//! Every network namespace of a run is owned by one user namespace made for the run, whose root
//! is the host's unprivileged `nobody`. Programs the scenario runs join that user namespace as
//! its root: they hold CAP_NET_ADMIN over the lab's namespaces, and over nothing else, so the
//! kernel itself refuses `ip link set X netns 1` or entering another namespace.
//!
//! A namespace is owned by the user namespace of the process that creates it, and a thread of
//! a multi-threaded program cannot join a user namespace. So the runner starts a helper: itself,
//! re-executed single-threaded (`runner __lab-helper`). The helper unshares a user namespace, the
//! runner writes its uid and gid maps, and from then on the helper answers each request with a
//! new network namespace: its fd, and a netlink socket created inside it (a socket stays bound
//! to the namespace it was born in), passed back over a socketpair (SCM_RIGHTS). The helper
//! exits when the runner closes its end, or dies.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::error::{LabError, LabResult};

/// The hidden subcommand that runs [`serve`].
pub const HELPER_ARG: &str = "__lab-helper";
/// The fd on which the helper finds its end of the socketpair.
const HELPER_FD: RawFd = 3;
/// The host user and group the run's user namespace maps its root to.
pub const LAB_UID: u32 = 65534;
pub const LAB_GID: u32 = 65534;

/// The runner's side: the helper process, its socket, and the user namespace it made.
pub struct Helper {
    child: Child,
    socket: OwnedFd,
    userns: OwnedFd,
}

impl Helper {
    /// Start the helper (`exe __lab-helper`) and map its user namespace.
    pub fn start(exe: &std::path::Path) -> LabResult<Helper> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| LabError::from_errno(e, "start the lab helper: socketpair"))?;
        let their_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg(HELPER_ARG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        // SAFETY: dup2 and prctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(their_fd, HELPER_FD) < 0 || !super::child::set_pdeathsig() {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| LabError::from_io(&e, "start the lab helper"))?;
        drop(theirs);
        let pid = child.id();
        let handshake = || -> LabResult<OwnedFd> {
            expect(&ours, b'U')?;
            map_ids(pid)?;
            send(&ours, b'M')?;
            expect(&ours, b'R')?;
            let path = format!("/proc/{pid}/ns/user");
            Ok(std::fs::File::open(&path)
                .map_err(|e| {
                    LabError::from_io(&e, format!("open the run's user namespace ({path})"))
                })?
                .into())
        };
        match handshake() {
            Ok(userns) => Ok(Helper {
                child,
                socket: ours,
                userns,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    pub fn userns_fd(&self) -> RawFd {
        self.userns.as_raw_fd()
    }

    /// The filesystem box for one lab namespace's programs (sandbox.rs): a mount namespace
    /// owned by the run's user namespace, with at most `scratch_bytes` writable.
    pub fn new_box(&self, name: &str, scratch_bytes: u64) -> LabResult<OwnedFd> {
        let mut msg = [0u8; 9];
        msg[0] = b'F';
        msg[1..].copy_from_slice(&scratch_bytes.to_ne_bytes());
        send_bytes(&self.socket, &msg)?;
        match recv(&self.socket)? {
            (b'K', _, fds) if fds.len() == 1 => Ok(fds.into_iter().next().expect("one fd")),
            (b'E', errno, _) => Err(LabError::from_errno(
                nix::errno::Errno::from_raw(errno),
                format!("build the filesystem box of namespace {name}"),
            )),
            (other, _, _) => Err(LabError::Os(format!(
                "build the filesystem box of namespace {name}: the lab helper said {other:?}"
            ))),
        }
    }

    /// A new network namespace inside the run's user namespace: (namespace fd, netlink socket).
    pub fn new_netns(&self, name: &str) -> LabResult<(OwnedFd, OwnedFd)> {
        send(&self.socket, b'N')?;
        match recv(&self.socket)? {
            (b'K', _, fds) if fds.len() == 2 => {
                let mut fds = fds.into_iter();
                Ok((fds.next().unwrap(), fds.next().unwrap()))
            }
            (b'E', errno, _) => Err(LabError::from_errno(
                nix::errno::Errno::from_raw(errno),
                format!("create namespace {name}"),
            )),
            (other, _, _) => Err(LabError::Os(format!(
                "create namespace {name}: the lab helper said {other:?}"
            ))),
        }
    }
}

/// Map root of the helper's new user namespace to the unprivileged host user, and forbid
/// setgroups in it (so no process inside can drop into a group it was not given).
fn map_ids(pid: u32) -> LabResult<()> {
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|e| LabError::from_io(&e, format!("write the lab's {file}")))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {LAB_UID} 1\n"))?;
    write("gid_map", format!("0 {LAB_GID} 1\n"))
}

fn send(socket: &OwnedFd, byte: u8) -> LabResult<()> {
    send_bytes(socket, &[byte])
}

fn send_bytes(socket: &OwnedFd, bytes: &[u8]) -> LabResult<()> {
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
    .map_err(|e| LabError::from_errno(e, "talk to the lab helper"))
}

/// Receive one message: a status byte, an errno when it is b'E', and any fds passed.
fn recv(socket: &OwnedFd) -> LabResult<(u8, i32, Vec<OwnedFd>)> {
    let mut buf = [0u8; 5];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| LabError::from_errno(e, "hear from the lab helper"))?;
    let mut fds = Vec::new();
    for cmsg in msg
        .cmsgs()
        .map_err(|e| LabError::from_errno(e, "hear from the lab helper"))?
    {
        if let ControlMessageOwned::ScmRights(got) = cmsg {
            // SAFETY: the kernel just installed these fds in our table; we own them now.
            fds.extend(
                got.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.bytes == 0 {
        return Err(LabError::Os("the lab helper exited unexpectedly".into()));
    }
    Ok((
        buf[0],
        i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]),
        fds,
    ))
}

fn expect(socket: &OwnedFd, byte: u8) -> LabResult<()> {
    match recv(socket)? {
        (b, _, _) if b == byte => Ok(()),
        (b'E', errno, _) => Err(LabError::from_errno(
            nix::errno::Errno::from_raw(errno),
            "set up the lab's user namespace",
        )),
        (other, _, _) => Err(LabError::Os(format!(
            "the lab helper said {other:?}, expected {byte:?}"
        ))),
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing our end makes the helper exit; reap it so it does not linger as a zombie.
        let _ =
            nix::sys::socket::shutdown(self.socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = self.child.wait();
    }
}

// ---- the helper process ----

fn reply(fd: RawFd, byte: u8, errno: i32, fds: &[RawFd]) -> nix::Result<()> {
    let mut msg = [0u8; 5];
    msg[0] = byte;
    msg[1..].copy_from_slice(&errno.to_ne_bytes());
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(fd, &[IoSlice::new(&msg)], cmsgs, MsgFlags::empty(), None).map(|_| ())
}

fn fail(fd: RawFd, e: nix::errno::Errno) -> nix::Result<()> {
    reply(fd, b'E', e as i32, &[])
}

/// Make one network namespace here, and a netlink socket inside it.
fn make_netns() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    let ns: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?
        .into();
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: socket(2) just returned this fd; nothing else owns it.
    Ok((ns, unsafe { OwnedFd::from_raw_fd(raw) }))
}

/// Build a box in a child of the helper, which must keep its own mount namespace: the child
/// sends the box's fd itself and exits 0, or exits with the errno.
fn make_box(fd: RawFd, scratch_bytes: u64) -> nix::Result<()> {
    // SAFETY: the helper is single-threaded.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            let code = match super::sandbox::build(scratch_bytes) {
                Ok(ns) => match reply(fd, b'K', 0, &[ns.as_raw_fd()]) {
                    Ok(()) => 0,
                    Err(e) => e as i32,
                },
                Err(e) => e as i32,
            };
            // SAFETY: leave the forked copy without running the helper's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None)? {
            nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
            nix::sys::wait::WaitStatus::Exited(_, code) => {
                fail(fd, nix::errno::Errno::from_raw(code))
            }
            _ => fail(fd, nix::errno::Errno::ECHILD),
        },
    }
}

/// The helper's main loop: `runner __lab-helper`, started by [`Helper::start`].
pub fn serve() -> std::process::ExitCode {
    let fd = HELPER_FD;
    let step = || -> nix::Result<()> {
        match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
            Ok(()) => reply(fd, b'U', 0, &[])?,
            Err(e) => return fail(fd, e),
        }
        // One request per message: a byte, and for b'F' the box's size (u64).
        let mut msg = [0u8; 16];
        loop {
            // SAFETY: HELPER_FD was put in place by the runner for this process.
            let n =
                nix::unistd::read(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, &mut msg)?;
            if n == 0 {
                return Ok(());
            }
            match msg[0] {
                b'M' => reply(fd, b'R', 0, &[])?,
                b'F' if n == 9 => {
                    let size = u64::from_ne_bytes(msg[1..9].try_into().expect("8 bytes"));
                    make_box(fd, size)?
                }
                b'N' => match make_netns() {
                    Ok((ns, nl)) => reply(fd, b'K', 0, &[ns.as_raw_fd(), nl.as_raw_fd()])?,
                    Err(e) => fail(fd, e)?,
                },
                _ => fail(fd, nix::errno::Errno::EINVAL)?,
            }
        }
    };
    match step() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
