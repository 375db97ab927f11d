//! The run's user namespace, and the helper process that makes network namespaces inside it.
//!
//! Every network namespace of a run is owned by one user namespace made for the run, which maps
//! its ids 0-65535 to 65,536 host ids no other run and no host user has (an [`ids::IdRange`]).
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
//!
//! Its rooms: `ids.rs` (the maps), `protocol.rs` (the typed requests and replies, one codec),
//! `command.rs` (a program to start, and whether it is the scenario's or the operator's),
//! `channel.rs` (the runner's socket, and the answers to starts it has not read yet),
//! `server.rs` (the helper process, and the operator's helper forked from it),
//! `boxfiles.rs` (file work inside a box), `sandbox.rs` (building a box), `spawn.rs`
//! (starting a program under its init; `starter.rs` is the runner's side of it, and the
//! `Starter` the operator's programs are started by), `init.rs` (that init), `program.rs` (the
//! program until its exec), `rawsys.rs` (system calls that leave errno alone); this file is
//! the runner's side.

mod boxfiles;
pub mod channel;
mod command;
pub mod ids;
mod init;
pub mod port;
mod program;
pub mod protocol;
mod rawsys;
pub mod sandbox;
mod server;
mod spawn;
mod start;
pub mod starter;

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::error::{LabError, LabResult};
use channel::{recv, send, Channel};
use ids::{GroupDrop, IdBlock, IdMap, Mode};
use protocol::{Reply, Request};
pub use server::{packet_socket, serve};

/// The hidden subcommand that runs [`serve`].
pub const HELPER_ARG: &str = "__lab-helper";
/// How long the runner waits for the helper's answer to one request.
pub(crate) const HELPER_ANSWER_SECS: i64 = 10;
/// The fd on which the helper finds its end of the socketpair.
const HELPER_FD: RawFd = 3;

/// Why a file request failed: the errno the box answered with, or anything else.
pub enum FileFailure {
    InBox { errno: Errno, what: String },
    Other(LabError),
}

impl From<LabError> for FileFailure {
    fn from(e: LabError) -> Self {
        FileFailure::Other(e)
    }
}

/// A file request's failure where no path needs explaining (files.rs says more of a path).
impl From<FileFailure> for LabError {
    fn from(f: FileFailure) -> Self {
        match f {
            FileFailure::Other(e) => e,
            FileFailure::InBox { errno, what } => LabError::from_errno(errno, &what),
        }
    }
}

/// The runner's side: the helper process, its socket, and the user namespace it made.
pub struct Helper {
    child: Child,
    channel: Arc<Channel>,
    /// The operator's helper's socket, once made (starter.rs).
    operators: starter::Operators,
    userns: OwnedFd,
    /// How its ids are mapped (for root, the run's host ids, held by their lock for as long as
    /// the helper lives).
    ids: IdMap,
}

impl Helper {
    /// Start the helper (`exe __lab-helper`) and map its user namespace. `processes` bounds
    /// the processes and threads of everything in that user namespace together, where the
    /// run has host ids of its own (see [`serve`]).
    pub fn start(exe: &std::path::Path, processes: u64, mode: &Mode) -> LabResult<Helper> {
        let ids = IdMap::for_mode(mode)?;
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
                if libc::dup2(their_fd, HELPER_FD) < 0 || !crate::process::set_pdeathsig() {
                    return Err(std::io::Error::last_os_error());
                }
                // A new, empty session keyring: the children that build boxes, write the
                // scenario's files and run its programs must not carry the operator's (a kernel without keyrings
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
        // Never the OOM killer's choice when the run's memory cgroup is full: the helper's
        // memory is its programs' inits' too (helper/spawn.rs), and the kernel kills every
        // process of a memory it picks; the programs, which take their score back, are the
        // ones to go. Only root may lower a score: a rootless run leaves it as it is.
        if *mode == Mode::Root {
            let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), "-1000");
        }
        let handshake = || -> LabResult<OwnedFd> {
            expect(&ours, Reply::Unshared, mode)?;
            ids.apply(pid)?;
            send(&ours, &Request::Mapped, &[])?;
            expect(&ours, Reply::Ready, mode)?;
            let path = format!("/proc/{pid}/ns/user");
            Ok(std::fs::File::open(&path)
                .map_err(|e| {
                    LabError::from_io(&e, format!("open the run's user namespace ({path})"))
                })?
                .into())
        };
        match handshake() {
            Ok(userns) => Ok(Helper {
                channel: Channel::new(ours, pid),
                operators: Default::default(),
                child,
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

    /// The filesystem box for one lab namespace's programs (helper/sandbox.rs): a mount namespace
    /// owned by the run's user namespace, with at most `scratch_bytes` writable.
    /// `programs` are the files the operator allowed by path, as (name, path): the box shows
    /// each, read-only, at /nslab/bin/NAME.
    /// Also the box's UTS namespace, whose host name is `name`, and a socket subscribed to the
    /// namespace's link events (watch.rs): (mount, uts, events).
    pub async fn new_box(
        &self,
        name: &str,
        netns: BorrowedFd<'_>,
        scratch_bytes: u64,
        programs: &[(String, std::path::PathBuf)],
        code: &[std::path::PathBuf],
        file: Option<&port::GivenFile<'_>>,
    ) -> LabResult<port::NewBox> {
        let what = format!("build the filesystem box of namespace {name}");
        let contents = file
            .map(|f| contents_fd(f.contents, &format!("{what} with {}", f.path)))
            .transpose()?;
        let request = Request::NewBox {
            scratch_bytes,
            hostname: name.to_string(),
            programs: programs.to_vec(),
            code: code.to_vec(),
            file: file.map(|f| (f.mode, f.path.to_string())),
        };
        let fds: Vec<RawFd> = std::iter::once(netns.as_raw_fd())
            .chain(contents.as_ref().map(AsRawFd::as_raw_fd))
            .collect();
        let mut fds = self.reply_fds(request, &fds, &what, 3).await?.into_iter();
        match (fds.next(), fds.next(), fds.next()) {
            (Some(boxfs), Some(uts), Some(link_events)) => Ok(port::NewBox {
                boxfs,
                uts,
                link_events,
            }),
            _ => Err(LabError::bug("the lab helper's reply lost a descriptor")),
        }
    }

    /// Set the host name the programs of a lab namespace see (its UTS namespace `uts`).
    pub async fn set_hostname(&self, uts: BorrowedFd<'_>, hostname: &str) -> LabResult<()> {
        let request = Request::SetHostname {
            hostname: hostname.to_string(),
        };
        self.answer(
            request,
            &[uts.as_raw_fd()],
            &format!("set the host name {hostname}"),
        )
        .await
        .map(|_| ())
        .map_err(LabError::from)
    }

    /// Write `contents` to `path` as the programs of the box `boxfs` see it, with `mode`. The
    /// write happens inside the box, by a process that is root of the run's user namespace
    /// only: whatever a program made of that path (a symlink, say), it cannot reach the host.
    pub async fn write_file(
        &self,
        boxfs: BorrowedFd<'_>,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), FileFailure> {
        let what = format!("write {path}");
        let memfd = contents_fd(contents, &what)?;
        let request = Request::WriteFile {
            mode,
            path: path.to_string(),
        };
        self.answer(request, &[boxfs.as_raw_fd(), memfd.as_raw_fd()], &what)
            .await
            .map(|_| ())
    }

    /// Open `path` for reading as the programs of the box `boxfs` see it (inside the box, as
    /// [`Helper::write_file`] writes).
    pub async fn open_file(
        &self,
        boxfs: BorrowedFd<'_>,
        path: &str,
    ) -> Result<OwnedFd, FileFailure> {
        let what = format!("read {path}");
        let request = Request::OpenFile {
            path: path.to_string(),
        };
        let file = self
            .answer(request, &[boxfs.as_raw_fd()], &what)
            .await?
            .into_iter()
            .next();
        Ok(file.ok_or_else(|| LabError::os(format!("{what}: the lab helper sent no file")))?)
    }

    /// A round trip to the helper that does not hold a tokio worker ([`Channel::request_async`]);
    /// outside a runtime, on this thread.
    async fn round_trip(
        &self,
        request: Request,
        fds: &[RawFd],
    ) -> LabResult<(Reply, Vec<OwnedFd>)> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.channel.request(&request, fds);
        }
        self.channel.request_async(&request, fds).await
    }

    /// The helper's answer to a request that makes something: exactly `count` fds, or the
    /// errno it failed with, as an error about `what`.
    async fn reply_fds(
        &self,
        request: Request,
        fds: &[RawFd],
        what: &str,
        count: usize,
    ) -> LabResult<Vec<OwnedFd>> {
        match self.round_trip(request, fds).await? {
            (Reply::Done, fds) if fds.len() == count => Ok(fds),
            (Reply::Failed(errno), _) => Err(LabError::from_errno(errno, what)),
            (other, fds) => Err(LabError::os(format!(
                "{what}: the lab helper said {other:?} with {} descriptors",
                fds.len()
            ))),
        }
    }

    /// The helper's answer to a file request: the fds it passed, or the errno the box
    /// answered with (kept as it is, for the caller to say what it means there).
    async fn answer(
        &self,
        request: Request,
        fds: &[RawFd],
        what: &str,
    ) -> Result<Vec<OwnedFd>, FileFailure> {
        match self.round_trip(request, fds).await? {
            (Reply::Done, fds) => Ok(fds),
            (Reply::Failed(errno), _) => Err(FileFailure::InBox {
                errno,
                what: what.to_string(),
            }),
            (other, _) => {
                Err(LabError::os(format!("{what}: the lab helper said {other:?}")).into())
            }
        }
    }

    /// Turn forwarding on or off in the namespace `netns`: the helper enters it and writes its
    /// /proc/sys/net (the helper enters it).
    pub async fn set_forwarding(
        &self,
        netns: BorrowedFd<'_>,
        on: bool,
        what: &str,
    ) -> LabResult<()> {
        self.reply_fds(Request::SetForwarding { on }, &[netns.as_raw_fd()], what, 0)
            .await
            .map(|_| ())
    }

    /// A new network namespace inside the run's user namespace: (namespace fd, netlink socket).
    pub async fn new_netns(&self, name: &str) -> LabResult<(OwnedFd, OwnedFd)> {
        let mut fds = self
            .reply_fds(
                Request::NewNetns,
                &[],
                &format!("create namespace {name}"),
                2,
            )
            .await?
            .into_iter();
        match (fds.next(), fds.next()) {
            (Some(ns), Some(netlink)) => Ok((ns, netlink)),
            _ => Err(LabError::bug("the lab helper's reply lost a descriptor")),
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing our end makes the helper exit; reap it so it does not linger as a zombie.
        let _ = nix::sys::socket::shutdown(
            self.channel.socket().as_raw_fd(),
            nix::sys::socket::Shutdown::Both,
        );
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

/// The handshake's next step: `wanted`, or the kernel's refusal of the user namespace, said
/// so that the user knows which setting decides it.
fn expect(socket: &OwnedFd, wanted: Reply, mode: &Mode) -> LabResult<()> {
    match recv(socket)? {
        (got, _) if got == wanted => Ok(()),
        (Reply::Failed(errno), _) => {
            if *mode != Mode::Root && matches!(errno, Errno::EPERM | Errno::ENOSPC | Errno::EUSERS)
            {
                return Err(LabError::denied(format!(
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
        (other, _) => Err(LabError::os(format!(
            "the lab helper said {other:?}, expected {wanted:?}"
        ))),
    }
}

/// A memfd holding `contents`, to pass a file's contents to the helper.
fn contents_fd(contents: &[u8], what: &str) -> LabResult<OwnedFd> {
    let memfd =
        nix::sys::memfd::memfd_create(c"nslab-file", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| LabError::from_errno(e, what))?;
    // Whole, however the kernel splits it (a memfd takes a large write in parts).
    let mut file = std::fs::File::from(memfd);
    std::io::Write::write_all(&mut file, contents).map_err(|e| LabError::from_io(&e, what))?;
    Ok(OwnedFd::from(file))
}
