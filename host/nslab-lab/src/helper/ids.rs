//! The ids of the run's user namespace: who builds the lab ([`Mode`]), the host ids a run of
//! root's gets to itself (an [`IdRange`], held by a lock for as long as the run lives), an
//! ordinary user's own and subordinate ids, and how the maps are written.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use crate::error::{LabError, LabResult};

/// Who builds the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The host's root: runs get host ids of their own, pins under /run/netns.
    Root,
    /// An ordinary user: the run's user namespace maps the user (and, where /etc/subuid gives
    /// the user subordinate ids and newuidmap exists, those too).
    Rootless { uid: u32, gid: u32 },
}

/// Where runs' id ranges begin: a block of host ids no distribution or systemd hands out
/// (systemd leaves 0x70000000-0x7FFEFFFF unused, and it stays below 2^31, clear of tools that
/// read ids as signed), in slots of [`IDS_PER_RUN`].
pub const ID_BASE: u32 = 0x7000_0000;
pub const IDS_PER_RUN: u32 = 65536;
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
    pub fn take() -> LabResult<IdRange> {
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
        Err(LabError::limit(format!(
            "{what}: all {ID_SLOTS} id ranges are in use by runs in progress"
        )))
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
    /// The map for a run of `mode`: a range for root, else the user (and subordinate ids where
    /// they are configured).
    pub fn for_mode(mode: &Mode) -> LabResult<IdMap> {
        match *mode {
            Mode::Root => Ok(IdMap::Range(IdRange::take()?)),
            Mode::Rootless { uid, gid } => Ok(match subordinate_ids(uid) {
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
    pub fn apply(&self, pid: u32) -> LabResult<()> {
        let write = |file: &str, text: String| {
            std::fs::write(format!("/proc/{pid}/{file}"), text)
                .map_err(|e| LabError::from_io(&e, format!("write the lab's {file}")))
        };
        match self {
            // setgroups stays allowed, for daemons that set their service user's groups:
            // every group they can name is the run's own, and programs start with none of
            // the host's (program.rs drops them).
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
                        return Err(LabError::os(format!(
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
        crate::process::SYSTEM_PATH
            .split(':')
            .any(|dir| std::path::Path::new(dir).join(tool).is_file())
    })
}
