//! What the runner and its helper say to each other over their socketpair (SOCK_SEQPACKET, one
//! message per request or reply), typed, with one codec and one way to pass descriptors
//! (SCM_RIGHTS) for both sides.
//!
//! A request is a tag byte and its fields; the descriptors it passes travel with it, and
//! [`Request::fds`] says how many each one takes, so a request with the wrong number is
//! refused as malformed. A reply is a tag byte and an errno (0 unless it failed).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::errno::Errno;

pub use super::command::{Command, StartedBy};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The largest request: a box request names the programs allowed by path.
pub const MAX_MESSAGE: usize = 64 << 10;

/// A request to the helper. The descriptors each passes are named in its doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The runner has written the user namespace's maps: say when ready (handshake).
    Mapped,
    /// A new network namespace; the reply passes it and a netlink socket inside it.
    NewNetns,
    /// Build a namespace's filesystem box (fd: the network namespace); the reply passes the
    /// box's mount namespace, its UTS namespace, whose host name is `hostname`, and a netlink
    /// socket inside the namespace subscribed to its link events (programs/watch.rs).
    NewBox {
        scratch_bytes: u64,
        hostname: String,
        /// The programs the operator allowed by path: (name, file).
        programs: Vec<(String, PathBuf)>,
        /// What the box mounts executable, all else being `noexec` (programs/code.rs).
        code: Vec<PathBuf>,
        /// A file to write in the box once it is built, as [`Request::WriteFile`] does (a
        /// second fd: a memfd with the contents): a namespace's first file costs one round
        /// trip and one process of the helper's, not two.
        file: Option<(u32, String)>,
    },
    /// Set the host name of a UTS namespace (fd: it).
    SetHostname { hostname: String },
    /// Write a file in a box (fds: the box, a memfd with the contents).
    WriteFile { mode: u32, path: String },
    /// Open a file of a box for reading (fd: the box); the reply passes it.
    OpenFile { path: String },
    /// Forwarding on or off in a network namespace (fd: it).
    SetForwarding { on: bool },
    /// A packet socket on interface `ifname` of a network namespace (fd: it), for
    /// `runner capture`; the reply passes it.
    PacketSocket { ifname: String },
    /// A helper for the operator's programs (server.rs, `start_operators`): a fork of this one
    /// that starts only those, from inside the programs' cgroups; the reply passes the
    /// runner's end of its socket and a pidfd of it.
    Operators,
    /// What every program of the run is confined by, kept by the helper for its [`Request::Spawn`]s
    /// (fds: the Landlock ruleset if `landlock`, then the `cgroups` `cgroup.procs` programs
    /// join).
    Confine(Confinement),
    /// Start a program (helper/spawn.rs); fds: a memfd holding its [`Command`], the network
    /// namespace, the box's mount namespace, its UTS namespace, the program's stdin, stdout and
    /// stderr, and the write ends of three pipes: the one its init writes its exit status to,
    /// the one that gets why it could not start (a [`StartError`]), and the one its init writes
    /// the program's pid to once it is forked. The reply is [`Reply::Spawned`] as soon as the
    /// init is cloned, with a pidfd of the init. The runner need not read it before it asks
    /// for the next program (helper/channel.rs): everything about the start itself comes on
    /// the pipes.
    Spawn,
}

pub use super::start::{StartError, StartFds, SPAWN_FDS};

/// What every program of a run is confined by (sent once, before the first program).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// RLIMIT_NPROC of each program.
    pub max_processes: u64,
    /// RLIMIT_AS of each program, where no memory cgroup bounds them together.
    pub address_space: Option<u64>,
    /// Whether a program drops its supplementary groups itself (an ordinary user's, inside the
    /// user namespace); root's helper dropped them before it made the namespace.
    pub drop_groups: bool,
    /// Whether a Landlock ruleset travels with it.
    pub landlock: bool,
    /// How many `cgroup.procs` travel with it (at most [`MAX_CGROUPS`]).
    pub cgroups: u8,
    /// The seccomp filters, installed in order: each a list of 8-byte BPF instructions.
    pub filters: Vec<Vec<u8>>,
}

/// The most cgroups a program joins: the run's pids and cpu ones (v1), or its `programs`
/// leaf (v2).
pub const MAX_CGROUPS: u8 = 2;

/// The helper's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The user namespace exists: the runner may write its maps (handshake).
    Unshared,
    /// Ready for requests (handshake).
    Ready,
    /// Done; any descriptors it made travel with it.
    Done,
    /// It failed with this errno.
    Failed(Errno),
    /// A program's init was cloned (its pidfd travels with it).
    Spawned,
}

impl Request {
    /// How many descriptors the request passes.
    pub fn fds(&self) -> usize {
        match self {
            Request::Mapped | Request::NewNetns | Request::Operators => 0,
            Request::WriteFile { .. } => 2,
            Request::NewBox { file: Some(_), .. } => 2,
            Request::Confine(c) => usize::from(c.landlock) + usize::from(c.cgroups),
            Request::Spawn => SPAWN_FDS,
            Request::NewBox { .. }
            | Request::SetHostname { .. }
            | Request::OpenFile { .. }
            | Request::SetForwarding { .. }
            | Request::PacketSocket { .. } => 1,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Mapped => out.push(b'M'),
            Request::NewNetns => out.push(b'N'),
            Request::NewBox {
                scratch_bytes,
                hostname,
                programs,
                code,
                file,
            } => {
                // 'G': with a file, whose mode and path come first.
                match file {
                    None => out.push(b'F'),
                    Some((mode, path)) => {
                        out.push(b'G');
                        out.extend_from_slice(&mode.to_ne_bytes());
                        out.extend_from_slice(path.as_bytes());
                        out.push(0);
                    }
                }
                out.extend_from_slice(&scratch_bytes.to_ne_bytes());
                out.extend_from_slice(&(programs.len() as u32).to_ne_bytes());
                out.extend_from_slice(hostname.as_bytes());
                out.push(0);
                for (program, path) in programs {
                    out.extend_from_slice(program.as_bytes());
                    out.push(0);
                    out.extend_from_slice(path.as_os_str().as_bytes());
                    out.push(0);
                }
                for path in code {
                    out.extend_from_slice(path.as_os_str().as_bytes());
                    out.push(0);
                }
            }
            Request::SetHostname { hostname } => {
                out.push(b'H');
                out.extend_from_slice(hostname.as_bytes());
            }
            Request::WriteFile { mode, path } => {
                out.push(b'W');
                out.extend_from_slice(&mode.to_ne_bytes());
                out.extend_from_slice(path.as_bytes());
            }
            Request::OpenFile { path } => {
                out.push(b'O');
                out.extend_from_slice(path.as_bytes());
            }
            Request::SetForwarding { on } => out.extend_from_slice(&[b'S', u8::from(*on)]),
            Request::PacketSocket { ifname } => {
                out.push(b'P');
                out.extend_from_slice(ifname.as_bytes());
            }
            Request::Confine(c) => {
                out.push(b'C');
                out.extend_from_slice(&c.max_processes.to_ne_bytes());
                out.extend_from_slice(&c.address_space.unwrap_or(0).to_ne_bytes());
                out.extend_from_slice(&[u8::from(c.drop_groups), u8::from(c.landlock), c.cgroups]);
                for filter in &c.filters {
                    out.extend_from_slice(&(filter.len() as u32).to_ne_bytes());
                    out.extend_from_slice(filter);
                }
            }
            Request::Spawn => out.push(b'X'),
            Request::Operators => out.push(b'Z'),
        }
        out
    }

    /// The request these bytes encode, or None if they encode none.
    pub fn decode(bytes: &[u8]) -> Option<Request> {
        let (&tag, rest) = bytes.split_first()?;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        Some(match tag {
            b'M' if rest.is_empty() => Request::Mapped,
            b'N' if rest.is_empty() => Request::NewNetns,
            b'F' | b'G' => {
                let (file, rest) = match tag {
                    b'G' => {
                        let mode = u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?);
                        let end = rest[4..].iter().position(|&b| b == 0)? + 4;
                        (Some((mode, text(&rest[4..end])?)), &rest[end + 1..])
                    }
                    _ => (None, rest),
                };
                let scratch_bytes = u64::from_ne_bytes(rest.get(..8)?.try_into().ok()?);
                let pairs = u32::from_ne_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
                let mut fields = rest[12..].split(|&b| b == 0);
                let hostname = text(fields.next()?)?;
                let fields: Vec<&[u8]> = fields.collect();
                // "name\0path\0" pairs, then "path\0" of the code, then the empty field after
                // the last NUL.
                let fields = fields.strip_suffix(&[&[][..]]).unwrap_or(&fields);
                let (pairs, code) = fields.split_at_checked(pairs.checked_mul(2)?)?;
                let programs = pairs
                    .chunks(2)
                    .map(|p| {
                        let name = text(p[0]).filter(|n| !n.is_empty())?;
                        Some((name, PathBuf::from(std::ffi::OsStr::from_bytes(p[1]))))
                    })
                    .collect::<Option<Vec<_>>>()?;
                let code = code
                    .iter()
                    .map(|p| (!p.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(p))))
                    .collect::<Option<Vec<_>>>()?;
                Request::NewBox {
                    scratch_bytes,
                    hostname,
                    programs,
                    code,
                    file,
                }
            }
            b'H' => Request::SetHostname {
                hostname: text(rest)?,
            },
            b'W' => Request::WriteFile {
                mode: u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?),
                path: text(&rest[4..])?,
            },
            b'O' => Request::OpenFile { path: text(rest)? },
            b'S' if rest.len() == 1 && rest[0] <= 1 => Request::SetForwarding { on: rest[0] == 1 },
            b'X' if rest.is_empty() => Request::Spawn,
            b'Z' if rest.is_empty() => Request::Operators,
            b'P' => Request::PacketSocket {
                ifname: text(rest).filter(|n| !n.is_empty() && n.len() < libc::IFNAMSIZ)?,
            },
            b'C' => {
                let u64_at = |at: usize| -> Option<u64> {
                    Some(u64::from_ne_bytes(rest.get(at..at + 8)?.try_into().ok()?))
                };
                let flag = |at: usize| match rest.get(at)? {
                    0 => Some(false),
                    1 => Some(true),
                    _ => None,
                };
                let (max_processes, address_space) = (u64_at(0)?, u64_at(8)?);
                let (drop_groups, landlock) = (flag(16)?, flag(17)?);
                let cgroups = *rest.get(18).filter(|&&n| n <= MAX_CGROUPS)?;
                let mut filters = Vec::new();
                let mut at = 19;
                while at < rest.len() {
                    let len = u32::from_ne_bytes(rest.get(at..at + 4)?.try_into().ok()?) as usize;
                    // Whole BPF instructions only.
                    if len % 8 != 0 {
                        return None;
                    }
                    filters.push(rest.get(at + 4..at + 4 + len)?.to_vec());
                    at += 4 + len;
                }
                Request::Confine(Confinement {
                    max_processes,
                    address_space: (address_space != 0).then_some(address_space),
                    drop_groups,
                    landlock,
                    cgroups,
                    filters,
                })
            }
            _ => return None,
        })
    }
}

impl Reply {
    pub fn encode(&self) -> [u8; 5] {
        let (tag, errno) = match self {
            Reply::Unshared => (b'U', 0),
            Reply::Ready => (b'R', 0),
            Reply::Done => (b'K', 0),
            Reply::Failed(e) => (b'E', *e as i32),
            Reply::Spawned => (b'P', 0),
        };
        let mut out = [0u8; 5];
        out[0] = tag;
        out[1..].copy_from_slice(&errno.to_ne_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Reply> {
        let errno = i32::from_ne_bytes(bytes.get(1..5)?.try_into().ok()?);
        Some(match bytes[0] {
            b'U' => Reply::Unshared,
            b'R' => Reply::Ready,
            b'K' => Reply::Done,
            b'E' => Reply::Failed(Errno::from_raw(errno)),
            b'P' => Reply::Spawned,
            _ => return None,
        })
    }
}

/// Send one message: its bytes, and the descriptors it passes.
/// A signal the runner handles (SIGINT, say) interrupts neither.
pub fn send(socket: RawFd, bytes: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(
            socket,
            &[IoSlice::new(bytes)],
            cmsgs,
            MsgFlags::empty(),
            None,
        ) {
            Err(Errno::EINTR) => continue,
            sent => return sent.map(|_| ()),
        }
    }
}

/// Receive one message into `buf`: its length (0 at the end of the stream) and the descriptors
/// that came with it, owned from here on and closed on exec.
pub fn receive(socket: RawFd, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    // The most any message passes: a spawn request's.
    let mut space = nix::cmsg_space!([RawFd; SPAWN_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            socket,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            got => break got?,
        }
    };
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(got) = cmsg {
            // SAFETY: the kernel just installed these fds in our table; we own them now.
            fds.extend(got.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_keep_who_failed() {
        for e in [
            StartError::Exec(Errno::ENOEXEC),
            StartError::Init(Errno::EPERM),
            StartError::Clone(Errno::EAGAIN),
        ] {
            assert_eq!(StartError::decode(e.encode()), e);
        }
        // The init writes its errno negated, as a raw system call returns it.
        assert_eq!(
            StartError::decode(-libc::ENOENT),
            StartError::Init(Errno::ENOENT)
        );
    }
    use proptest::prelude::*;

    fn request() -> impl Strategy<Value = Request> {
        let text = "[a-z0-9/._ -]{0,20}";
        prop_oneof![
            Just(Request::Mapped),
            Just(Request::NewNetns),
            (
                any::<u64>(),
                text,
                proptest::collection::vec(("[a-z0-9]{1,8}", "/[a-z/]{0,12}"), 0..4),
                proptest::collection::vec("/[a-z/]{0,12}", 0..4),
                proptest::option::of((any::<u32>(), "/[a-z/.]{1,12}"))
            )
                .prop_map(|(scratch_bytes, hostname, programs, code, file)| {
                    Request::NewBox {
                        file,
                        scratch_bytes,
                        hostname,
                        programs: programs
                            .into_iter()
                            .map(|(n, p)| (n, PathBuf::from(p)))
                            .collect(),
                        code: code.into_iter().map(PathBuf::from).collect(),
                    }
                }),
            text.prop_map(|hostname| Request::SetHostname { hostname }),
            (any::<u32>(), text).prop_map(|(mode, path)| Request::WriteFile { mode, path }),
            text.prop_map(|path| Request::OpenFile { path }),
            any::<bool>().prop_map(|on| Request::SetForwarding { on }),
            "[a-z0-9.~-]{1,15}".prop_map(|ifname| Request::PacketSocket { ifname }),
            Just(Request::Spawn),
            Just(Request::Operators),
            (
                any::<u64>(),
                proptest::option::of(1..u64::MAX),
                (any::<(bool, bool)>(), 0..=MAX_CGROUPS),
                proptest::collection::vec(proptest::collection::vec(any::<u64>(), 0..6), 0..3)
            )
                .prop_map(
                    |(
                        max_processes,
                        address_space,
                        ((drop_groups, landlock), cgroups),
                        filters,
                    )| {
                        Request::Confine(Confinement {
                            max_processes,
                            address_space,
                            drop_groups,
                            landlock,
                            cgroups,
                            filters: filters
                                .into_iter()
                                .map(|f| f.iter().flat_map(|i| i.to_ne_bytes()).collect())
                                .collect(),
                        })
                    }
                ),
        ]
    }

    fn command() -> impl Strategy<Value = Command> {
        let field = proptest::collection::vec(1..=255u8, 0..12);
        (
            "/[a-z/]{1,12}",
            proptest::collection::vec(field.clone(), 0..4),
            proptest::collection::vec(field, 0..4),
            0..3u8,
        )
            .prop_map(|(program, args, env, by)| Command {
                program: PathBuf::from(program),
                args,
                env,
                by: StartedBy::decode(by).expect("0..3 are all encodings"),
            })
    }

    proptest! {
        #[test]
        fn every_request_decodes_to_itself(r in request()) {
            prop_assert_eq!(Request::decode(&r.encode()), Some(r));
        }

        #[test]
        fn every_command_decodes_to_itself(c in command()) {
            prop_assert_eq!(Command::decode(&c.encode()), Some(c));
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Request::decode(&bytes);
            let _ = Reply::decode(&bytes);
            let _ = Command::decode(&bytes);
        }
    }

    #[test]
    fn replies_decode_to_themselves() {
        for r in [
            Reply::Unshared,
            Reply::Ready,
            Reply::Done,
            Reply::Failed(Errno::EROFS),
            Reply::Spawned,
        ] {
            assert_eq!(Reply::decode(&r.encode()), Some(r));
        }
        assert_eq!(Reply::decode(b"Z0000"), None);
        assert_eq!(Reply::decode(b"K"), None);
    }

    #[test]
    fn read_and_ready_are_no_longer_one_letter() {
        // `R` once meant both "read a file" and "ready": a file request is `O` now.
        let open = Request::OpenFile { path: "/x".into() }.encode();
        assert_eq!(Reply::decode(&[open[0], 0, 0, 0, 0]), None);
        assert_eq!(Request::decode(&Reply::Ready.encode()), None);
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(Request::decode(b""), None);
        assert_eq!(Request::decode(b"S\x02"), None);
        assert_eq!(Request::decode(b"F123"), None);
        assert_eq!(Request::decode(b"W\x01"), None);
        assert_eq!(Request::decode(b"Nextra"), None);
        assert_eq!(Request::decode(b"Xextra"), None);
        // A confinement whose flags are not 0 or 1, or whose filter is not whole instructions.
        let mut confine = b"C".to_vec();
        confine.extend_from_slice(&[0; 16]);
        assert_eq!(Request::decode(&[&confine[..], &[2, 0, 0]].concat()), None);
        let torn = [&confine[..], &[0, 0, 0], &5u32.to_ne_bytes(), &[0; 5]].concat();
        assert_eq!(Request::decode(&torn), None);
        // A command with more arguments than fields, or no program.
        assert_eq!(
            Command::decode(&[&3u32.to_ne_bytes()[..], b"/bin/true\0a\0"].concat()),
            None
        );
        assert_eq!(
            Command::decode(&[&0u32.to_ne_bytes()[..], b"\0"].concat()),
            None
        );
        // A box request whose programs are not pairs.
        let mut odd = b"F".to_vec();
        odd.extend_from_slice(&0u64.to_ne_bytes());
        odd.extend_from_slice(b"host\0name\0");
        assert_eq!(Request::decode(&odd), None);
    }

    #[test]
    fn a_message_and_its_descriptors_cross_the_socketpair() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        use std::os::fd::AsRawFd;
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let passed = std::fs::File::open("/dev/null").unwrap();
        let req = Request::OpenFile {
            path: "/etc/hosts".into(),
        };
        send(a.as_raw_fd(), &req.encode(), &[passed.as_raw_fd()]).unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, fds) = receive(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(Request::decode(&buf[..n]), Some(req.clone()));
        assert_eq!(fds.len(), req.fds());
    }
}
