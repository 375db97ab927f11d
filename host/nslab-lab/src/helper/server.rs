//! The helper process (`runner __lab-helper`): single-threaded, in the run's user namespace,
//! it answers the runner's requests (protocol.rs) one at a time. Anything that must change its
//! namespaces or credentials for good (a box, a file in a box, a host name) is done in a child
//! of its own, so the helper itself stays as it was made.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::boxfiles::{enter_box, io_errno, open_in_box, write_in_box};
use super::protocol::{self, Reply, Request};
use super::HELPER_FD;

fn reply(fd: RawFd, reply: Reply, fds: &[RawFd]) -> nix::Result<()> {
    protocol::send(fd, &reply.encode(), fds)
}

fn fail(fd: RawFd, e: nix::errno::Errno) -> nix::Result<()> {
    reply(fd, Reply::Failed(e), &[])
}

/// Before making the run's user namespace, as the host's root: become the run's first host id,
/// so that the namespace is that id's (issue 19). The kernel charges every per-user quota it
/// keeps (its "ucounts": processes, user namespaces, inotify instances and watches, message
/// queues, ...) of everything inside a user namespace to the namespace's owner as well: the run
/// then pays for what its programs cause, never the host's root or another run. And the
/// RLIMIT_NPROC this process has when it makes the namespace becomes the namespace's own
/// bound: processes and threads of all its ids together, whatever ids its programs switch to.
fn become_the_runs_own_user(uid: u32, processes: u64) -> nix::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let limit = libc::rlimit {
        rlim_cur: processes,
        rlim_max: processes,
    };
    // SAFETY: plain setrlimit on this process with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &limit) } != 0 {
        return Err(nix::errno::Errno::last());
    }
    setgroups(&[])?;
    setresgid(Gid::from_raw(uid), Gid::from_raw(uid), Gid::from_raw(uid))?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))?;
    // The credential change cleared it.
    if !crate::process::set_pdeathsig() {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
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

/// Enter the lab namespace `netns` (the helper's own network namespace does not matter: each
/// request that needs one enters it first).
fn enter_netns(netns: &OwnedFd) -> nix::Result<()> {
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
}

/// A packet socket bound to interface `ifname` of the namespace the helper is in: every frame
/// it sends and receives, with its Ethernet header (`runner capture`). The helper holds
/// CAP_NET_RAW over the lab's namespaces, which the runner of a rootless run does not.
pub fn packet_socket(ifname: &str) -> nix::Result<OwnedFd> {
    let name = std::ffi::CString::new(ifname).map_err(|_| nix::errno::Errno::EINVAL)?;
    // SAFETY: if_nametoindex reads a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(nix::errno::Errno::ENODEV);
    }
    let all = (libc::ETH_P_ALL as u16).to_be();
    // Protocol 0 until it is bound: it receives nothing, so no frame of another interface
    // gets in before the bind.
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: socket(2) just returned this fd; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = index as i32;
    // SAFETY: bind(2) with a sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r != 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(socket)
}

/// Forwarding on or off in the namespace the helper is in.
fn write_forwarding(on: bool) -> nix::Result<()> {
    let value = if on { "1" } else { "0" };
    for file in [
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/ipv6/conf/all/forwarding",
    ] {
        std::fs::write(file, value).map_err(io_errno)?;
    }
    Ok(())
}

/// A netlink socket in the namespace the helper is in, subscribed to link events, with a
/// receive buffer large enough for a burst (root of the namespace's owner: SO_RCVBUFFORCE).
fn link_events_socket() -> nix::Result<OwnedFd> {
    const RTMGRP_LINK: u32 = 1;
    // SAFETY: plain syscalls on a socket owned from its creation.
    unsafe {
        let raw = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
        );
        if raw < 0 {
            return Err(nix::errno::Errno::last());
        }
        let socket = OwnedFd::from_raw_fd(raw);
        let size: libc::c_int = 8 << 20;
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        if libc::bind(
            raw,
            (&addr as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        ) != 0
        {
            return Err(nix::errno::Errno::last());
        }
        Ok(socket)
    }
}

/// Do `work` in a child of the helper (which must keep its own mount namespace): the child
/// sends the answer itself and exits 0, or exits with the errno, which the helper then sends.
fn in_child(fd: RawFd, work: impl FnOnce() -> nix::Result<Vec<OwnedFd>>) -> nix::Result<()> {
    let helper = nix::unistd::getpid();
    // SAFETY: the helper is single-threaded.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // Dies with the helper, which dies with the runner: a child stuck in a call (a
            // pipe a program planted, say) never outlives the run.
            if !crate::process::set_pdeathsig() || nix::unistd::getppid() != helper {
                // SAFETY: leave the forked copy at once.
                unsafe { libc::_exit(libc::ESRCH) }
            }
            let code = match work() {
                Ok(fds) => {
                    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                    match reply(fd, Reply::Done, &raw) {
                        Ok(()) => 0,
                        Err(e) => e as i32,
                    }
                }
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

/// The operator's helper (`runner exec`, `runner shell`: host/src/enter/): a fork of this
/// helper that joins the programs' cgroups once, so that an operator's program is in them from
/// its fork on, without a migration of its own. On cgroup v1 each migration waits for an RCU
/// grace period (the kernel's threadgroup lock), about a millisecond: more than all the rest
/// of starting `true` in the lab. It answers spawn requests of the operator's programs only,
/// on a socket of its own, and dies with this helper.
fn start_operators(fd: RawFd, rules: &std::sync::Arc<super::spawn::Rules>) -> nix::Result<()> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = match socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    ) {
        Ok(pair) => pair,
        Err(e) => return fail(fd, e),
    };
    let helper = nix::unistd::getpid();
    // SAFETY: the helper is single-threaded.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(fd, e),
        Ok(nix::unistd::ForkResult::Child) => {
            // SAFETY: in the fork: nothing of the helper's is dropped (its inits are not this
            // process's children), and it leaves by _exit.
            unsafe {
                if !crate::process::set_pdeathsig() || nix::unistd::getppid() != helper {
                    libc::_exit(libc::ESRCH)
                }
                for procs in &rules.cgroups {
                    if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                        libc::_exit(libc::EIO)
                    }
                }
                let own = super::spawn::Rules::for_operators(rules);
                // Its own socket as fd 3, and none of the helper's: not the runner's socket,
                // not the namespaces it holds.
                if libc::dup2(theirs.as_raw_fd(), HELPER_FD) < 0 {
                    libc::_exit(libc::EBADF)
                }
                libc::syscall(libc::SYS_close_range, HELPER_FD + 1, u32::MAX, 0);
                let code = match serve_operators(std::sync::Arc::new(own)) {
                    Ok(()) => 0,
                    Err(e) => e as i32,
                };
                libc::_exit(code)
            }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(theirs);
            match crate::process::pidfd_open(child.as_raw() as u32) {
                Ok(pidfd) => reply(fd, Reply::Done, &[ours.as_raw_fd(), pidfd.as_raw_fd()]),
                Err(e) => fail(
                    fd,
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                ),
            }
        }
    }
}

/// The operator's helper's loop: spawn requests, until the runner closes its end.
fn serve_operators(rules: std::sync::Arc<super::spawn::Rules>) -> nix::Result<()> {
    let fd = HELPER_FD;
    let mut buf = vec![0u8; protocol::MAX_MESSAGE];
    let mut inits = super::spawn::Inits::default();
    loop {
        let (n, fds) = protocol::receive(fd, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        inits.reap_ended();
        match Request::decode(&buf[..n]) {
            Some(Request::Spawn) => match super::spawn::start_fds(fds) {
                Some((command, start)) => {
                    match super::spawn::spawn(&rules, &command, &start, &mut inits) {
                        Ok(pidfd) => reply(fd, Reply::Spawned, &[pidfd.as_raw_fd()])?,
                        Err(e) => fail(fd, e)?,
                    }
                }
                None => fail(fd, nix::errno::Errno::EINVAL)?,
            },
            _ => fail(fd, nix::errno::Errno::EINVAL)?,
        }
    }
}

/// The helper's main loop, started by `Helper::start`.
pub fn serve() -> std::process::ExitCode {
    let fd = HELPER_FD;
    let mut args = std::env::args().skip(2).map(|a| a.parse::<u64>().ok());
    let owner = match (args.next().flatten(), args.next().flatten()) {
        (Some(uid), Some(processes)) => u32::try_from(uid).ok().map(|uid| (uid, processes)),
        _ => None,
    };
    let step = || -> nix::Result<()> {
        if let Some((uid, processes)) = owner {
            if let Err(e) = become_the_runs_own_user(uid, processes) {
                return fail(fd, e);
            }
        }
        match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
            Ok(()) => reply(fd, Reply::Unshared, &[])?,
            Err(e) => return fail(fd, e),
        }
        let mut buf = vec![0u8; protocol::MAX_MESSAGE];
        let mut state = State::default();
        loop {
            let (n, fds) = protocol::receive(fd, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            state.inits.reap_ended();
            match Request::decode(&buf[..n]) {
                Some(request) if request.fds() == fds.len() => {
                    answer(fd, request, fds, &mut state)?
                }
                _ => fail(fd, nix::errno::Errno::EINVAL)?,
            }
        }
    };
    match step() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

/// What the helper keeps between requests.
#[derive(Default)]
struct State {
    /// A namespace made ahead of the next request for one.
    spare: Option<(OwnedFd, OwnedFd)>,
    /// What the run's programs are confined by, once the runner has said it (shared with the
    /// inits that have not yet forked their program).
    rules: Option<std::sync::Arc<super::spawn::Rules>>,
    /// The programs' inits it started.
    inits: super::spawn::Inits,
}

/// Answer one request, whose descriptors (`fds`) are as many as it takes.
fn answer(fd: RawFd, request: Request, fds: Vec<OwnedFd>, state: &mut State) -> nix::Result<()> {
    let spare = &mut state.spare;
    match request {
        Request::Confine(c) => {
            state.rules = Some(std::sync::Arc::new(super::spawn::Rules::from_request(
                c, fds,
            )));
            reply(fd, Reply::Done, &[])
        }
        Request::Spawn => {
            let Some(rules) = &state.rules else {
                return fail(fd, nix::errno::Errno::EINVAL);
            };
            let Some((command, start)) = super::spawn::start_fds(fds) else {
                return fail(fd, nix::errno::Errno::EINVAL);
            };
            match super::spawn::spawn(rules, &command, &start, &mut state.inits) {
                Ok(pidfd) => reply(fd, Reply::Spawned, &[pidfd.as_raw_fd()]),
                Err(e) => fail(fd, e),
            }
        }
        Request::Operators => match &state.rules {
            Some(rules) => start_operators(fd, rules),
            None => fail(fd, nix::errno::Errno::EINVAL),
        },
        Request::Mapped => reply(fd, Reply::Ready, &[]),
        Request::NewBox {
            scratch_bytes,
            hostname,
            programs,
            code,
            file,
        } => in_child(fd, || {
            let (mnt, uts) =
                super::sandbox::build(scratch_bytes, &programs, &code, &fds[0], &hostname)?;
            // The namespace's first file, written as a WriteFile request writes it (entering
            // the box just built), by this process instead of another.
            if let Some((mode, path)) = file {
                let contents = fds.get(1).ok_or(nix::errno::Errno::EINVAL)?;
                enter_box(&mnt)?;
                write_in_box(&path, mode, contents)?;
            }
            // Its link events' socket too, ready for the namespace's first program: one
            // request fewer as that program starts.
            enter_netns(&fds[0])?;
            Ok(vec![mnt, uts, link_events_socket()?])
        }),
        Request::SetHostname { hostname } => in_child(fd, || {
            nix::sched::setns(&fds[0], nix::sched::CloneFlags::CLONE_NEWUTS)?;
            nix::unistd::sethostname(&hostname)?;
            Ok(Vec::new())
        }),
        Request::WriteFile { mode, path } => in_child(fd, || {
            enter_box(&fds[0])?;
            write_in_box(&path, mode, &fds[1]).map(|()| Vec::new())
        }),
        Request::OpenFile { path } => in_child(fd, || {
            enter_box(&fds[0])?;
            open_in_box(&path).map(|f| vec![f])
        }),
        Request::SetForwarding { on } => {
            match enter_netns(&fds[0]).and_then(|()| write_forwarding(on)) {
                Ok(()) => reply(fd, Reply::Done, &[]),
                Err(e) => fail(fd, e),
            }
        }
        Request::PacketSocket { ifname } => {
            match enter_netns(&fds[0]).and_then(|()| packet_socket(&ifname)) {
                Ok(socket) => reply(fd, Reply::Done, &[socket.as_raw_fd()]),
                Err(e) => fail(fd, e),
            }
        }
        Request::NewNetns => match spare.take().map_or_else(make_netns, Ok) {
            Ok((ns, nl)) => {
                reply(fd, Reply::Done, &[ns.as_raw_fd(), nl.as_raw_fd()])?;
                // The next one is made now, while the runner goes on with this one (the helper
                // is a process of its own, on another CPU where there is one): a scenario that
                // makes namespaces one after another finds each ready. One made and never
                // asked for goes with the helper.
                *spare = make_netns().ok();
                Ok(())
            }
            Err(e) => fail(fd, e),
        },
    }
}
