//! Stepping into a kept run (`--keep`), which has no runner to ask: entered directly, as
//! `nsenter` would, through what keeps it (root's pins under /run/netns and /run/nslab/boxes,
//! or an ordinary user's keeper, /proc/PID/fd/N), each checked against the record's inode.
//! What starts there joins the run's user namespace as its root (one of the run's host ids), so
//! `runner cleanup` ends it with the lab; it gets the namespace's name as its host name, and
//! the box's system directories executable (the allowlist binds the scenario, not the operator).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use super::{failed, relay, status, terminal, Outcome};
use nslab_lab::records::RunRecord;

/// Where a kept namespace is entered: the run's user namespace, the network namespace, and
/// the box of its programs' files, if it had one.
pub struct Door {
    pub userns: OwnedFd,
    pub netns: OwnedFd,
    pub mntns: Option<OwnedFd>,
    pub hostname: String,
}

fn open(path: &str) -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open(path)?.into())
}

/// NS_GET_USERNS: the user namespace that owns a namespace.
const NS_GET_USERNS: libc::c_ulong = 0xb701;

/// The door of namespace `ns` of the kept run `rec`.
pub fn door(rec: &RunRecord, ns: &str) -> Result<Door, String> {
    let Some(kept) = rec.namespaces.iter().find(|n| n.name == ns) else {
        let names: Vec<&str> = rec.namespaces.iter().map(|n| n.name.as_str()).collect();
        return Err(format!(
            "run {} has no namespace {ns:?}; it has: {}",
            rec.id,
            names.join(", ")
        ));
    };
    let at = |pinned: &str, dir: &str| match pinned.starts_with('/') {
        true => pinned.to_string(),
        false => format!("{dir}/{pinned}"),
    };
    if let Some((pid, start)) = rec.keeper {
        if !nslab_lab::records::is_keeper(pid, start, rec.owner) {
            return Err(format!(
                "the process that kept run {} is gone: its lab went with it (runner cleanup {} \
                 forgets it)",
                rec.id, rec.id
            ));
        }
    }
    let pinned = kept
        .pinned
        .as_deref()
        .ok_or_else(|| format!("namespace {ns} of run {} was not kept", rec.id))?;
    let netns = open(&at(pinned, "/run/netns"))
        .map_err(|e| format!("cannot open namespace {ns} of run {}: {e}", rec.id))?;
    let same =
        |fd: &OwnedFd, inode: u64| nix::sys::stat::fstat(fd).is_ok_and(|m| m.st_ino == inode);
    if !same(&netns, kept.inode) {
        return Err(format!(
            "namespace {ns} of run {} is no longer the one it kept (its pin names another): \
             runner cleanup {} forgets it",
            rec.id, rec.id
        ));
    }
    let userns = match rec.keeper {
        Some((pid, _)) => open(&format!("/proc/{pid}/fd/{}", nslab_lab::records::FIRST_FD)),
        None => {
            // SAFETY: NS_GET_USERNS on a namespace fd returns a new fd or -1.
            let fd = unsafe { libc::ioctl(netns.as_raw_fd(), NS_GET_USERNS) };
            if fd < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                // SAFETY: the ioctl just returned this fd; nothing else owns it.
                Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
            }
        }
    }
    .map_err(|e| format!("cannot find the user namespace of run {}: {e}", rec.id))?;
    let mntns = match &kept.files {
        Some((files, inode)) => {
            let fd = open(&at(files, nslab_lab::records::pin::BOX_DIR))
                .map_err(|e| format!("cannot open the box of namespace {ns}: {e}"))?;
            same(&fd, *inode).then_some(fd)
        }
        None => None,
    };
    Ok(Door {
        userns,
        netns,
        mntns,
        hostname: ns.to_string(),
    })
}

/// In the child, before its exec: into the run's user namespace as its root, the network
/// namespace, a copy of the box with its system directories executable, a host name of its
/// own. Only system calls (async-signal-safe).
///
/// # Safety
/// Between fork and exec only.
unsafe fn enter(door: &(RawFd, RawFd, Option<RawFd>), hostname: &[u8]) -> std::io::Result<()> {
    let last = std::io::Error::last_os_error;
    let (userns, netns, mntns) = *door;
    if libc::setns(userns, libc::CLONE_NEWUSER) != 0 || libc::setns(netns, libc::CLONE_NEWNET) != 0
    {
        return Err(last());
    }
    // An ordinary user's run denies setgroups; root's run allows it and starts with none.
    libc::setgroups(0, std::ptr::null());
    if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
        return Err(last());
    }
    if let Some(mntns) = mntns {
        if libc::setns(mntns, libc::CLONE_NEWNS) != 0 || libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(last());
        }
        nslab_lab::operator::executable_system_dirs();
    }
    if libc::unshare(libc::CLONE_NEWUTS) != 0
        || libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0
        || libc::chdir(c"/".as_ptr()) != 0
    {
        return Err(last());
    }
    Ok(())
}

/// A command ready to run behind `door`, with `terminal` as its controlling terminal if given.
pub fn command(
    door: &Door,
    program: PathBuf,
    args: &[String],
    env: &[(String, String)],
    terminal: Option<&OwnedFd>,
) -> std::io::Result<std::process::Command> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", nslab_lab::host::SYSTEM_PATH);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let fds = (
        door.userns.as_raw_fd(),
        door.netns.as_raw_fd(),
        door.mntns.as_ref().map(AsRawFd::as_raw_fd),
    );
    let hostname = door.hostname.clone().into_bytes();
    let tty = terminal.map(AsRawFd::as_raw_fd);
    if let Some(tty) = terminal {
        cmd.stdin(tty.try_clone()?)
            .stdout(tty.try_clone()?)
            .stderr(tty.try_clone()?);
    }
    // SAFETY: only system calls between fork and exec (enter's).
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            enter(&fds, &hostname)?;
            if tty.is_some() && (libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0) {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// A packet socket on `iface` behind `door`, opened by a child that enters the namespace (a
/// process that may have threads cannot join a user namespace) and passes it back.
pub fn packet_socket(door: &Door, iface: &str) -> Result<OwnedFd, String> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    let (userns, netns) = (door.userns.as_raw_fd(), door.netns.as_raw_fd());
    let iface = iface.to_string();
    // SAFETY: the child makes system calls and one small allocation (the interface's C name,
    // made by the helper's code) before it exits; the runner has no other thread here.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: in the child: plain system calls, then _exit.
            unsafe {
                let entered = (libc::setns(userns, libc::CLONE_NEWUSER) == 0
                    || libc::geteuid() == 0)
                    && libc::setns(netns, libc::CLONE_NEWNET) == 0;
                let answer = match entered {
                    true => nslab_lab::operator::packet_socket(&iface),
                    false => Err(nix::errno::Errno::last()),
                };
                let _ = match answer {
                    Ok(fd) => {
                        nslab_lab::operator::send(theirs.as_raw_fd(), b"ok", &[fd.as_raw_fd()])
                    }
                    Err(e) => nslab_lab::operator::send(
                        theirs.as_raw_fd(),
                        &(e as i32).to_ne_bytes(),
                        &[],
                    ),
                };
                libc::_exit(0)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            let mut buf = [0u8; 8];
            let got = nslab_lab::operator::receive(ours.as_raw_fd(), &mut buf);
            let _ = nix::sys::wait::waitpid(child, None);
            match got {
                Ok((_, mut fds)) if fds.len() == 1 => Ok(fds.remove(0)),
                Ok((4, _)) => {
                    let errno = nix::errno::Errno::from_raw(i32::from_ne_bytes(
                        buf[..4].try_into().unwrap_or_default(),
                    ));
                    Err(match errno {
                        nix::errno::Errno::ENODEV => {
                            format!("there is no interface {iface} in that namespace")
                        }
                        e => format!("cannot open a packet socket on {iface}: {}", e.desc()),
                    })
                }
                _ => Err(format!("cannot open a packet socket on {iface}")),
            }
        }
    }
}

/// A command in a kept run, waited for here.
pub fn run(
    rec: &RunRecord,
    ns: &str,
    argv: &[String],
    env: &[(String, String)],
    tty: Option<(&OwnedFd, &OwnedFd)>,
) -> Outcome {
    let door = match door(rec, ns) {
        Ok(d) => d,
        Err(why) => return failed(2, why),
    };
    let Some(program) = argv.first().and_then(|p| nslab_lab::operator::find(p)) else {
        return failed(
            127,
            format!("{}: command not found", argv.first().map_or("", |s| s)),
        );
    };
    let mut cmd = match command(&door, program, &argv[1..], env, tty.map(|(_, slave)| slave)) {
        Ok(c) => c,
        Err(e) => return failed(2, format!("cannot start it: {e}")),
    };
    let piped = match (tty, super::foreign(rec)) {
        (None, true) => match relay::pipes() {
            Ok((piped, [stdin, stdout, stderr])) => {
                cmd.stdin(stdin).stdout(stdout).stderr(stderr);
                Some(piped)
            }
            Err(e) => return failed(2, format!("cannot make pipes: {e}")),
        },
        _ => None,
    };
    // Ctrl-C reaches the program from the terminal; the runner waits it out, as a shell does
    // (the child takes the default back before its exec: kept.rs).
    // SAFETY: SIG_IGN for SIGINT in this process.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                std::io::ErrorKind::PermissionDenied => 126,
                _ => 2,
            };
            return failed(code, format!("{}: {e}", argv[0]));
        }
    };
    drop(cmd);
    if let Some(piped) = piped {
        if let Ok(pidfd) = nslab_lab::host::pidfd_open(child.id()) {
            relay::relay(piped, pidfd.as_raw_fd(), -1, &mut |_| {});
        }
    }
    if let Some((master, _)) = tty {
        let pidfd = nslab_lab::host::pidfd_open(child.id()).ok();
        let _raw = terminal::Raw::new();
        if let Some(pidfd) = &pidfd {
            terminal::relay(master, pidfd.as_raw_fd());
        }
    }
    match child.wait() {
        Ok(s) => Outcome {
            status: status(s.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(9)
            })),
            said: None,
        },
        Err(e) => failed(2, format!("waiting for {}: {e}", argv[0])),
    }
}
