//! The run's user namespace, and the helper process that makes network namespaces inside it.
//!
//! Every network namespace of a run is owned by one user namespace made for the run, which maps
//! its ids 0-65535 to 65,536 host ids no other run and no host user has (an [`IdRange`]).
//! Programs the scenario runs join that user namespace as its root: they hold CAP_NET_ADMIN over
//! the lab's namespaces, and over nothing else, so the kernel itself refuses
//! `ip link set X netns 1` or entering another namespace; to the host's files they are strangers.
//! A daemon that switches to its service user (FRR's `frr`, `tcpdump`) stays inside the range.
//!
//! A namespace is owned by the user namespace of the process that creates it, and a thread of
//! a multi-threaded program cannot join a user namespace. So the runner starts a helper: itself,
//! re-executed single-threaded (`runner __lab-helper`). The helper unshares a user namespace, the
//! runner writes its uid and gid maps, and from then on the helper answers each request with a
//! new network namespace: its fd, and a netlink socket created inside it (a socket stays bound
//! to the namespace it was born in), passed back over a socketpair (SCM_RIGHTS). The helper
//! exits when the runner closes its end, or dies.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::error::{LabError, LabResult};

/// The hidden subcommand that runs [`serve`].
pub const HELPER_ARG: &str = "__lab-helper";
/// How long the runner waits for the helper's answer to one request.
const HELPER_ANSWER_SECS: i64 = 10;
/// The fd on which the helper finds its end of the socketpair.
const HELPER_FD: RawFd = 3;
/// Where runs' id ranges begin: a block of host ids no distribution or systemd hands out
/// (systemd leaves 0x70000000-0x7FFEFFFF unused, and it stays below 2^31, clear of tools that
/// read ids as signed), in slots of [`IDS_PER_RUN`].
const ID_BASE: u32 = 0x7000_0000;
const IDS_PER_RUN: u32 = 65536;
const ID_SLOTS: u32 = 2048;
/// Where runs hold their slots: one byte each of this file, under an open-file-description
/// lock that the kernel releases when the runner dies, so nothing accumulates.
const ID_LOCKS: &str = "/run/nslab/ids.lock";

/// The host ids of one run: `first` is its root, `first + n` its id n.
pub struct IdRange {
    pub first: u32,
    /// The lock file, whose byte for this slot is locked while the run lives.
    _lock: std::fs::File,
}

impl IdRange {
    /// Take a free slot, starting from a random one.
    fn take() -> LabResult<IdRange> {
        use std::os::unix::fs::OpenOptionsExt;
        let what = "reserve the run's host ids";
        if let Some(dir) = std::path::Path::new(ID_LOCKS).parent() {
            std::fs::create_dir_all(dir).map_err(|e| LabError::from_io(&e, what))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(ID_LOCKS)
            .map_err(|e| LabError::from_io(&e, what))?;
        let mut seed = [0u8; 4];
        let _ = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed));
        let start = u32::from_ne_bytes(seed) % ID_SLOTS;
        for i in 0..ID_SLOTS {
            let slot = (start + i) % ID_SLOTS;
            // SAFETY: a zeroed flock is valid; the fields are set below.
            let mut range: libc::flock = unsafe { std::mem::zeroed() };
            range.l_type = libc::F_WRLCK as libc::c_short;
            range.l_whence = libc::SEEK_SET as libc::c_short;
            range.l_start = slot as libc::off_t;
            range.l_len = 1;
            // SAFETY: fcntl on a file we own, with a flock we own.
            if unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_OFD_SETLK, &range) } == 0 {
                return Ok(IdRange {
                    first: ID_BASE + slot * IDS_PER_RUN,
                    _lock: lock,
                });
            }
        }
        Err(LabError::Limit(format!(
            "{what}: all {ID_SLOTS} id ranges are in use by runs in progress"
        )))
    }
}

/// Why a file request failed: the errno the box answered with, or anything else.
pub enum FileFailure {
    InBox {
        errno: nix::errno::Errno,
        what: String,
    },
    Other(LabError),
}

impl From<LabError> for FileFailure {
    fn from(e: LabError) -> Self {
        FileFailure::Other(e)
    }
}

/// How the run's user namespace maps ids (root inside is always id 0).
pub enum IdMap {
    /// The host's root: a block of host ids of the run's own, held by their lock.
    Range(IdRange),
    /// An ordinary user with subordinate ids (/etc/subuid, /etc/subgid) and newuidmap: the user
    /// is root inside, and ids 1.. are the user's subordinate ids, for daemons that switch to a
    /// service user.
    Subordinate {
        uid: u32,
        gid: u32,
        uids: (u32, u32),
        gids: (u32, u32),
    },
    /// An ordinary user alone: root inside is the user outside, the only id there is; the
    /// kernel then denies setgroups.
    Own { uid: u32, gid: u32 },
}

/// How a program loses the groups of the user who started the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDrop {
    /// Before it joins the run's user namespace (root may).
    Outside,
    /// Once inside it (setgroups is allowed there).
    Inside,
    /// Not at all: an ordinary user without subordinate ids cannot drop them.
    Cannot,
}

impl IdMap {
    /// The map for this process: a range for root, else the user (and subordinate ids where
    /// they are configured).
    fn for_this_process() -> LabResult<IdMap> {
        match crate::privilege::mode() {
            crate::privilege::Mode::Root => Ok(IdMap::Range(IdRange::take()?)),
            crate::privilege::Mode::Rootless { uid, gid } => Ok(match subordinate_ids(uid) {
                Ok((uids, gids)) => IdMap::Subordinate {
                    uid,
                    gid,
                    uids,
                    gids,
                },
                Err(_) => IdMap::Own { uid, gid },
            }),
        }
    }

    /// The host ids the run's user namespace maps, as (first, count) blocks: what the run's
    /// programs run as on the host.
    pub fn host_blocks(&self) -> Vec<IdBlock> {
        match self {
            IdMap::Range(r) => vec![(r.first, IDS_PER_RUN)],
            IdMap::Subordinate { uid, uids, .. } => vec![(*uid, 1), *uids],
            IdMap::Own { uid, .. } => vec![(*uid, 1)],
        }
    }

    pub fn groups(&self) -> GroupDrop {
        match self {
            IdMap::Range(_) => GroupDrop::Outside,
            IdMap::Subordinate { .. } => GroupDrop::Inside,
            IdMap::Own { .. } => GroupDrop::Cannot,
        }
    }

    /// Write the helper's maps.
    fn apply(&self, pid: u32) -> LabResult<()> {
        let write = |file: &str, text: String| {
            std::fs::write(format!("/proc/{pid}/{file}"), text)
                .map_err(|e| LabError::from_io(&e, format!("write the lab's {file}")))
        };
        match self {
            // setgroups stays allowed, for daemons that set their service user's groups:
            // every group they can name is the run's own, and programs start with none of
            // the host's (child.rs drops them).
            IdMap::Range(r) => {
                write("uid_map", format!("0 {} {IDS_PER_RUN}\n", r.first))?;
                write("gid_map", format!("0 {} {IDS_PER_RUN}\n", r.first))
            }
            IdMap::Own { uid, gid } => {
                write("setgroups", "deny".into())?;
                write("uid_map", format!("0 {uid} 1\n"))?;
                write("gid_map", format!("0 {gid} 1\n"))
            }
            IdMap::Subordinate {
                uid,
                gid,
                uids,
                gids,
            } => {
                let run = |tool: &str, own: u32, (start, count): (u32, u32)| {
                    let args = [pid, 0, own, 1, 1, start, count].map(|n| n.to_string());
                    let out = Command::new(tool)
                        .args(&args)
                        .stdin(Stdio::null())
                        .output()
                        .map_err(|e| LabError::from_io(&e, format!("run {tool}")))?;
                    if !out.status.success() {
                        return Err(LabError::Os(format!(
                            "{tool} {}: {}",
                            args.join(" "),
                            String::from_utf8_lossy(&out.stderr).trim()
                        )));
                    }
                    Ok(())
                };
                run("newuidmap", *uid, *uids)?;
                run("newgidmap", *gid, *gids)
            }
        }
    }
}

/// The subordinate ids /etc/subuid (or subgid) gives user `uid`, by name or number: (first,
/// count), at most 65535 of them.
fn subordinate(file: &str, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (
            f.next()?,
            f.next()?.parse().ok()?,
            f.next()?.parse::<u32>().ok()?,
        );
        let ours = who == uid.to_string() || Some(who) == name.as_deref();
        (ours && count > 0).then_some((start, count.min(IDS_PER_RUN - 1)))
    })
}

/// A block of subordinate ids: (first, count).
pub type IdBlock = (u32, u32);

/// The subordinate uids and gids of user `uid`, or why a rootless run has none.
pub fn subordinate_ids(uid: u32) -> Result<(IdBlock, IdBlock), String> {
    let (Some(uids), Some(gids)) = (
        subordinate("/etc/subuid", uid),
        subordinate("/etc/subgid", uid),
    ) else {
        return Err(format!(
            "user {uid} has no subordinate ids in /etc/subuid and /etc/subgid (an administrator adds them: usermod --add-subuids, --add-subgids)"
        ));
    };
    if !has_newidmap() {
        return Err("newuidmap and newgidmap are not installed (apt-get install uidmap)".into());
    }
    Ok((uids, gids))
}

fn has_newidmap() -> bool {
    ["newuidmap", "newgidmap"].iter().all(|tool| {
        super::exec::SYSTEM_PATH
            .split(':')
            .any(|dir| std::path::Path::new(dir).join(tool).is_file())
    })
}

/// The runner's side: the helper process, its socket, and the user namespace it made.
pub struct Helper {
    child: Child,
    socket: OwnedFd,
    userns: OwnedFd,
    /// How its ids are mapped (for root, the run's host ids, held by their lock for as long as
    /// the helper lives).
    ids: IdMap,
}

impl Helper {
    /// Start the helper (`exe __lab-helper`) and map its user namespace. `processes` bounds
    /// the processes and threads of everything in that user namespace together, where the
    /// run has host ids of its own (see [`serve`]).
    pub fn start(exe: &std::path::Path, processes: u64) -> LabResult<Helper> {
        let ids = IdMap::for_this_process()?;
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| LabError::from_errno(e, "start the lab helper: socketpair"))?;
        let their_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg(HELPER_ARG);
        if let IdMap::Range(r) = &ids {
            cmd.arg(r.first.to_string()).arg(processes.to_string());
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        // SAFETY: dup2, prctl and keyctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(their_fd, HELPER_FD) < 0 || !super::child::set_pdeathsig() {
                    return Err(std::io::Error::last_os_error());
                }
                // A new, empty session keyring: the children that build boxes and write the
                // scenario's files must not carry the operator's (a kernel without keyrings
                // has none to carry).
                if libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) < 0
                    && *libc::__errno_location() != libc::ENOSYS
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| LabError::from_io(&e, "start the lab helper"))?;
        drop(theirs);
        // Every request is answered at once or fails: none may hold the runner, whatever a
        // program did to the box meanwhile.
        let _ = nix::sys::socket::setsockopt(
            &ours,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(HELPER_ANSWER_SECS, 0),
        );
        let pid = child.id();
        let handshake = || -> LabResult<OwnedFd> {
            expect(&ours, b'U')?;
            ids.apply(pid)?;
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
                ids,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The helper's pid on the host.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn userns_fd(&self) -> RawFd {
        self.userns.as_raw_fd()
    }

    /// How the run's programs lose the groups of the user who started the runner.
    pub fn groups(&self) -> GroupDrop {
        self.ids.groups()
    }

    /// The host ids the run's programs run as: (first, count) blocks.
    pub fn host_blocks(&self) -> Vec<IdBlock> {
        self.ids.host_blocks()
    }

    /// The identity of the run's user namespace (its inode, as `lsns` shows `user:[N]`).
    pub fn userns_inode(&self) -> u64 {
        nix::sys::stat::fstat(&self.userns).map_or(0, |s| s.st_ino)
    }

    /// The filesystem box for one lab namespace's programs (sandbox.rs): a mount namespace
    /// owned by the run's user namespace, with at most `scratch_bytes` writable.
    /// `programs` are the files the operator allowed by path, as (name, path): the box shows
    /// each, read-only, at /nslab/bin/NAME.
    /// Also the box's UTS namespace, whose host name is `name`: (mount, uts).
    pub fn new_box(
        &self,
        name: &str,
        netns: BorrowedFd<'_>,
        scratch_bytes: u64,
        programs: &[(String, std::path::PathBuf)],
    ) -> LabResult<(OwnedFd, OwnedFd)> {
        let mut msg = vec![b'F'];
        msg.extend_from_slice(&scratch_bytes.to_ne_bytes());
        msg.extend_from_slice(name.as_bytes());
        msg.push(0);
        for (program, path) in programs {
            msg.extend_from_slice(program.as_bytes());
            msg.push(0);
            msg.extend_from_slice(path.as_os_str().as_encoded_bytes());
            msg.push(0);
        }
        send_with(&self.socket, &msg, &[netns.as_raw_fd()])?;
        let what = format!("build the filesystem box of namespace {name}");
        let mut fds = self.reply_fds(&what, 2)?;
        let uts = fds.remove(1);
        Ok((fds.remove(0), uts))
    }

    /// Set the host name the programs of a lab namespace see (its UTS namespace `uts`).
    pub fn set_hostname(&self, uts: BorrowedFd<'_>, hostname: &str) -> LabResult<()> {
        let mut msg = vec![b'H'];
        msg.extend_from_slice(hostname.as_bytes());
        send_with(&self.socket, &msg, &[uts.as_raw_fd()])?;
        self.answer(&format!("set the host name {hostname}"))
            .map(|_| ())
            .map_err(|f| match f {
                FileFailure::Other(e) => e,
                FileFailure::InBox { errno, what } => LabError::from_errno(errno, &what),
            })
    }

    /// Write `contents` to `path` as the programs of the box `boxfs` see it, with `mode`. The
    /// write happens inside the box, by a process that is root of the run's user namespace
    /// only: whatever a program made of that path (a symlink, say), it cannot reach the host.
    pub fn write_file(
        &self,
        boxfs: BorrowedFd<'_>,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), FileFailure> {
        let what = format!("write {path}");
        let memfd =
            nix::sys::memfd::memfd_create(c"nslab-file", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .map_err(|e| LabError::from_errno(e, &what))?;
        nix::unistd::write(&memfd, contents).map_err(|e| LabError::from_errno(e, &what))?;
        let mut msg = vec![b'W'];
        msg.extend_from_slice(&mode.to_ne_bytes());
        msg.extend_from_slice(path.as_bytes());
        send_with(&self.socket, &msg, &[boxfs.as_raw_fd(), memfd.as_raw_fd()])?;
        self.answer(&what).map(|_| ())
    }

    /// Open `path` for reading as the programs of the box `boxfs` see it (inside the box, as
    /// [`Helper::write_file`] writes).
    pub fn open_file(&self, boxfs: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, FileFailure> {
        let what = format!("read {path}");
        let mut msg = vec![b'R'];
        msg.extend_from_slice(path.as_bytes());
        send_with(&self.socket, &msg, &[boxfs.as_raw_fd()])?;
        let file = self.answer(&what)?.into_iter().next();
        Ok(file.ok_or_else(|| LabError::Os(format!("{what}: the lab helper sent no file")))?)
    }

    /// The helper's next message. If it does not come within HELPER_ANSWER_SECS, the helper is
    /// stopped (and, by their parent-death signal, its children): a late answer must never be
    /// taken for the next request's, and the run then ends as any failed run does.
    fn receive(&self) -> LabResult<(u8, i32, Vec<OwnedFd>)> {
        recv(&self.socket).map_err(|e| {
            if let LabError::Timeout(_) = e {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return LabError::Os(format!(
                    "the lab helper did not answer within {HELPER_ANSWER_SECS} s (a program may have put something that blocks where a file was asked for); it was stopped, and the run cannot go on"
                ));
            }
            e
        })
    }

    /// The helper's answer to a request that makes something: exactly `count` fds, or the
    /// errno it failed with, as an error about `what`.
    fn reply_fds(&self, what: &str, count: usize) -> LabResult<Vec<OwnedFd>> {
        match self.receive()? {
            (b'K', _, fds) if fds.len() == count => Ok(fds),
            (b'E', errno, _) => Err(LabError::from_errno(
                nix::errno::Errno::from_raw(errno),
                what,
            )),
            (other, _, _) => Err(LabError::Os(format!(
                "{what}: the lab helper said {other:?}"
            ))),
        }
    }

    /// The helper's answer to a file request: the fds it passed, or the errno the box
    /// answered with (kept as it is, for the caller to say what it means there).
    fn answer(&self, what: &str) -> Result<Vec<OwnedFd>, FileFailure> {
        match self.receive()? {
            (b'K', _, fds) => Ok(fds),
            (b'E', errno, _) => Err(FileFailure::InBox {
                errno: nix::errno::Errno::from_raw(errno),
                what: what.to_string(),
            }),
            (other, _, _) => {
                Err(LabError::Os(format!("{what}: the lab helper said {other:?}")).into())
            }
        }
    }

    /// Turn forwarding on or off in the namespace `netns`: the helper enters it and writes its
    /// /proc/sys/net (sysctl.rs).
    pub fn set_forwarding(&self, netns: BorrowedFd<'_>, on: bool, what: &str) -> LabResult<()> {
        send_with(&self.socket, &[b'S', u8::from(on)], &[netns.as_raw_fd()])?;
        self.reply_fds(what, 0).map(|_| ())
    }

    /// A netlink socket inside `netns`, subscribed to its link events (watch.rs).
    pub fn link_watch_socket(&self, netns: BorrowedFd<'_>, name: &str) -> LabResult<OwnedFd> {
        let what = format!("watch the links of namespace {name}");
        send_with(&self.socket, b"L", &[netns.as_raw_fd()])?;
        Ok(self.reply_fds(&what, 1)?.remove(0))
    }

    /// A new network namespace inside the run's user namespace: (namespace fd, netlink socket).
    pub fn new_netns(&self, name: &str) -> LabResult<(OwnedFd, OwnedFd)> {
        send(&self.socket, b'N')?;
        let mut fds = self
            .reply_fds(&format!("create namespace {name}"), 2)?
            .into_iter();
        Ok((fds.next().expect("two fds"), fds.next().expect("two fds")))
    }
}

fn send(socket: &OwnedFd, byte: u8) -> LabResult<()> {
    send_with(socket, &[byte], &[])
}

/// Send one request: its bytes, and any fds it passes.
fn send_with(socket: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> LabResult<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(bytes)],
        cmsgs,
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
    .map_err(|e| match e {
        // The socket's receive timeout (Helper::start).
        nix::errno::Errno::EAGAIN => LabError::Timeout(format!(
            "the lab helper did not answer within {HELPER_ANSWER_SECS} s"
        )),
        e => LabError::from_errno(e, "hear from the lab helper"),
    })?;
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
        (b'E', errno, _) => {
            let errno = nix::errno::Errno::from_raw(errno);
            // The kernel refused the user namespace itself: say which settings decide that.
            if crate::privilege::mode() != crate::privilege::Mode::Root
                && matches!(
                    errno,
                    nix::errno::Errno::EPERM
                        | nix::errno::Errno::ENOSPC
                        | nix::errno::Errno::EUSERS
                )
            {
                return Err(LabError::Denied(format!(
                    "the kernel refused an ordinary user the user namespace a rootless run needs ({}): \
                     user.max_user_namespaces, kernel.unprivileged_userns_clone or \
                     kernel.apparmor_restrict_unprivileged_userns forbids it (or the runner already \
                     runs 32 user namespaces deep); run the runner as root \
                     (sudo runner run ...), or have an administrator change that setting",
                    errno.desc()
                )));
            }
            Err(LabError::from_errno(
                errno,
                "set up the lab's user namespace",
            ))
        }
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
        // It answers each request within HELPER_ANSWER_SECS, and then sees the end of its
        // socket; past a second more it is killed: teardown never waits without a bound.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while matches!(self.child.try_wait(), Ok(None)) {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
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
    if !super::child::set_pdeathsig() {
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
            if !super::child::set_pdeathsig() || nix::unistd::getppid() != helper {
                // SAFETY: leave the forked copy at once.
                unsafe { libc::_exit(libc::ESRCH) }
            }
            let code = match work() {
                Ok(fds) => {
                    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                    match reply(fd, b'K', 0, &raw) {
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

/// In a child: become root of the run's user namespace (a mapped id: files it makes have an
/// owner there) and enter the box `boxfs`, whose root becomes this process's root.
fn enter_box(boxfs: &OwnedFd) -> nix::Result<()> {
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))?;
    nix::sched::setns(boxfs, nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::unistd::chdir("/")
}

/// Where a box keeps the files and directories a scenario gave it in place of the host's
/// read-only ones: on the box's own scratch tmpfs (counted in scratch-bytes).
const GIVEN: &str = "/run/.nslab";

fn io_errno(e: std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Whether the box may create and remove entries in `dir` as it is.
fn writable(dir: &std::path::Path) -> bool {
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok()
}

/// A new entry under GIVEN for `path` (its slashes made '%'), made with `make`.
fn given_entry(
    path: &std::path::Path,
    kind: &str,
    make: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> nix::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::path::Path::new(GIVEN).join(kind);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(io_errno)?;
    let entry = dir.join(path.to_string_lossy().replace('/', "%"));
    if !entry.exists() {
        make(&entry).map_err(io_errno)?;
    }
    Ok(entry)
}

fn bind_over(source: &std::path::Path, target: &std::path::Path) -> nix::Result<()> {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
}

/// Make `dir` a directory the box can write in: as it is when it can; made when missing; and a
/// host directory it may not write (`/etc/bird`) replaced, in this box only, by a fresh one of
/// its own. A top-level system directory (`/etc`, `/usr`) is never replaced: EROFS.
fn box_dir(dir: &std::path::Path) -> nix::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            if writable(dir) {
                return Ok(());
            }
            if dir.components().count() <= 2 {
                return Err(nix::errno::Errno::EROFS);
            }
            let own = given_entry(dir, "dirs", |e| {
                std::fs::DirBuilder::new().mode(0o755).create(e)
            })?;
            bind_over(&own, dir)
        }
        Ok(_) => Err(nix::errno::Errno::ENOTDIR),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            box_dir(dir.parent().ok_or(nix::errno::Errno::EROFS)?)?;
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(dir)
                .map_err(io_errno)
        }
        Err(e) => Err(io_errno(e)),
    }
}

/// Write a file in a box from a memfd, mode exact. A host file the box may not write
/// (`/etc/hosts`) is replaced, in this box only, by one of its own.
fn write_in_box(path: &str, mode: u32, data: &OwnedFd) -> nix::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = std::path::Path::new(path);
    let existing = std::fs::metadata(path).ok();
    let target = match existing {
        Some(m)
            if m.is_file()
                && nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_err() =>
        {
            let own = given_entry(path, "files", |e| std::fs::File::create(e).map(drop))?;
            bind_over(&own, path)?;
            own
        }
        Some(m) if m.is_dir() => return Err(nix::errno::Errno::EISDIR),
        Some(m) if !m.is_file() => return Err(nix::errno::Errno::EINVAL),
        _ => {
            box_dir(path.parent().ok_or(nix::errno::Errno::EINVAL)?)?;
            path.to_path_buf()
        }
    };
    // Non-blocking, so that a pipe a program swapped in fails (ENXIO) instead of holding this.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NONBLOCK)
        .open(&target)
        .map_err(io_errno)?;
    if !file.metadata().map_err(io_errno)?.is_file() {
        return Err(nix::errno::Errno::EINVAL);
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_errno)?;
    nix::unistd::lseek(data, 0, nix::unistd::Whence::SeekSet)?;
    let mut source = std::fs::File::from(data.try_clone().map_err(io_errno)?);
    std::io::copy(&mut source, &mut file).map_err(io_errno)?;
    Ok(())
}

/// Open a regular file in a box for reading.
fn open_in_box(path: &str) -> nix::Result<OwnedFd> {
    let io = |e: std::io::Error| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a pipe for reading would wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(nix::errno::Errno::EISDIR);
    }
    if !meta.is_file() {
        return Err(nix::errno::Errno::EINVAL);
    }
    Ok(file.into())
}

/// The programs of a box request: "name\0path\0" pairs.
fn parse_programs(bytes: &[u8]) -> Vec<(String, std::path::PathBuf)> {
    let fields: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    fields
        .chunks(2)
        .filter(|pair| pair.len() == 2 && !pair[0].is_empty())
        .map(|pair| {
            (
                String::from_utf8_lossy(pair[0]).into_owned(),
                std::path::PathBuf::from(std::ffi::OsStr::from_bytes(pair[1])),
            )
        })
        .collect()
}

/// One request: its bytes and the fds it passed.
fn receive(fd: RawFd, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(got) = cmsg {
            // SAFETY: the kernel just installed these fds in our table; we own them now.
            fds.extend(got.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    Ok((msg.bytes, fds))
}

/// The helper's main loop: `runner __lab-helper`, started by [`Helper::start`].
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
            Ok(()) => reply(fd, b'U', 0, &[])?,
            Err(e) => return fail(fd, e),
        }
        // One request per message: a byte, its arguments, and the fds it passes.
        let mut buf = vec![0u8; 64 << 10];
        // A namespace made ahead of the next request for one.
        let mut spare: Option<(OwnedFd, OwnedFd)> = None;
        loop {
            let (n, fds) = receive(fd, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let msg = &buf[..n];
            let path = |from: usize| String::from_utf8_lossy(&msg[from..]).into_owned();
            match (msg[0], fds.as_slice()) {
                (b'M', _) => reply(fd, b'R', 0, &[])?,
                (b'F', [netns]) if n >= 9 => {
                    let size = u64::from_ne_bytes(msg[1..9].try_into().expect("8 bytes"));
                    let rest = &msg[9..];
                    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                    let hostname = String::from_utf8_lossy(&rest[..end]).into_owned();
                    let programs = parse_programs(rest.get(end + 1..).unwrap_or_default());
                    in_child(fd, || {
                        let (mnt, uts) = super::sandbox::build(size, &programs, netns, &hostname)?;
                        Ok(vec![mnt, uts])
                    })?
                }
                (b'H', [uts]) => {
                    let hostname = path(1);
                    in_child(fd, || {
                        nix::sched::setns(uts, nix::sched::CloneFlags::CLONE_NEWUTS)?;
                        nix::unistd::sethostname(&hostname)?;
                        Ok(Vec::new())
                    })?
                }
                (b'W', [boxfs, data]) if n >= 5 => {
                    let mode = u32::from_ne_bytes(msg[1..5].try_into().expect("4 bytes"));
                    let path = path(5);
                    in_child(fd, || {
                        enter_box(boxfs)?;
                        write_in_box(&path, mode, data).map(|()| Vec::new())
                    })?
                }
                (b'R', [boxfs]) => {
                    let path = path(1);
                    in_child(fd, || {
                        enter_box(boxfs)?;
                        open_in_box(&path).map(|f| vec![f])
                    })?
                }
                (b'S', [netns]) if n >= 2 => {
                    match enter_netns(netns).and_then(|()| write_forwarding(msg[1] == 1)) {
                        Ok(()) => reply(fd, b'K', 0, &[])?,
                        Err(e) => fail(fd, e)?,
                    }
                }
                (b'L', [netns]) => match enter_netns(netns).and_then(|()| link_events_socket()) {
                    Ok(socket) => reply(fd, b'K', 0, &[socket.as_raw_fd()])?,
                    Err(e) => fail(fd, e)?,
                },
                (b'N', _) => match spare.take().map_or_else(make_netns, Ok) {
                    Ok((ns, nl)) => {
                        reply(fd, b'K', 0, &[ns.as_raw_fd(), nl.as_raw_fd()])?;
                        // The next one is made now, while the runner goes on with this one
                        // (the helper is a process of its own, on another CPU where there is
                        // one): a scenario that makes namespaces one after another finds each
                        // ready. One made and never asked for goes with the helper.
                        spare = make_netns().ok();
                    }
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
