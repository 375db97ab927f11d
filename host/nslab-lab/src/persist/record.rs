//! The runner's own record of a run, so that `runner ls` can show runs in progress and kept
//! labs, and `runner cleanup` can remove exactly what a run pinned, found by this record and
//! never by a name pattern. One JSON file per run in the directory the run was given (a tmpfs,
//! gone at reboot like the namespaces themselves; records.rs says where, and finds them all).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::process::process_start;

/// A record holds a few namespaces' names and inodes: anything larger is not one of ours.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NsRecord {
    /// The scenario's own name for it.
    pub name: String,
    /// Its identity, as `lsns` shows it; a pin is removed only if it still names this inode.
    pub inode: u64,
    /// The name under /run/netns, once pinned by `--keep`.
    pub pinned: Option<String>,
    /// The name under /run/nslab/boxes of its programs' files, once pinned by `--keep`, and
    /// that box's inode.
    #[serde(default)]
    pub files: Option<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub scenario: String,
    pub pid: u32,
    /// The runner's start time in clock ticks since boot (/proc/PID/stat field 22), so a reused
    /// pid is not taken for the runner.
    pub pid_start: u64,
    pub started_unix: u64,
    pub kept: bool,
    /// Written whole when the lab is kept; while the run goes, its namespaces are in the
    /// record's log instead (see [`RunRecord::log_namespace`]), and `load` reads them from there.
    pub namespaces: Vec<NsRecord>,
    /// An ordinary user's kept lab is held by a keeper process (lab/persist/keeper.rs): its pid and
    /// start time; the namespaces' `pinned` are then /proc/PID/fd/N.
    #[serde(default)]
    pub keeper: Option<(u32, u64)>,
    /// The host ids the run's programs run as, as (first, count) blocks: only processes of
    /// these are the run's to end (`runner cleanup`).
    #[serde(default)]
    pub host_ids: Vec<(u32, u32)>,
    /// The run's user namespace (its inode): every process of the run is in it.
    #[serde(default)]
    pub userns: Option<u64>,
    /// The scenario has ended and the run holds its lab for the operator (`runner run
    /// --hold`): `runner ls` shows it held.
    #[serde(default)]
    pub held: bool,
    /// Who owns the record's file: whose run it is (set when it is loaded).
    #[serde(skip)]
    pub owner: u32,
    /// The directory it is written in.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// A line of a record's log: a namespace made or deleted while the run goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NsChange {
    Made {
        name: String,
        inode: u64,
    },
    Deleted {
        name: String,
    },
    /// Root's `--keep` pinned it as /run/netns/`pinned`, and its box as `files` (name, inode):
    /// logged as each pin is made, so that `cleanup` finds every pin whatever happens next.
    Pinned {
        name: String,
        pinned: String,
        files: Option<(String, u64)>,
    },
}

/// What became of a recorded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Kept,
    /// The runner died without tearing down (SIGKILL): the kernel freed its lab, only the
    /// record is left (and any pin made while it was keeping the lab).
    Dead,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Kept => "kept",
            RunStatus::Dead => "dead",
        }
    }
}

/// A fresh run id: 8 hex digits from the kernel's random source.
pub fn new_run_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 4];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `id` is a run id as [`new_run_id`] makes them: 8 lowercase hex digits, and so a
/// plain file name.
pub fn is_run_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RunRecord {
    /// The record of this process's run `id`, to be written in `dir`.
    pub fn new(id: String, scenario: String, dir: PathBuf) -> RunRecord {
        let pid = std::process::id();
        RunRecord {
            id,
            scenario,
            pid,
            pid_start: process_start(pid).unwrap_or(0),
            started_unix: now_unix(),
            kept: false,
            namespaces: Vec::new(),
            keeper: None,
            host_ids: Vec::new(),
            userns: None,
            held: false,
            owner: nix::unistd::geteuid().as_raw(),
            dir,
        }
    }

    /// The log of this run, beside its record; only its runner writes it.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.id))
    }

    /// Note a namespace made or deleted: one line appended to the record's log, so a change
    /// costs the same however large the lab is (rewriting the record each time cost a chain of
    /// 1000 namespaces half a million namespace entries written). The record itself must have
    /// been saved first: the log lives in the directory `save` checked.
    pub fn log_namespace(&self, change: &NsChange) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut line = serde_json::to_vec(change).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write of a short line to a file opened O_APPEND: lines never interleave, and a
        // line cut by a crash is passed over by the reader.
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.log_path())?
            .write_all(&line)
    }

    /// The namespaces the log at `path` says the run has now.
    pub fn replay_log(path: &Path) -> Vec<NsRecord> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        let mut live: Vec<NsRecord> = Vec::new();
        for change in text.lines().filter_map(|l| serde_json::from_str(l).ok()) {
            match change {
                NsChange::Made { name, inode } => live.push(NsRecord {
                    name,
                    inode,
                    pinned: None,
                    files: None,
                }),
                NsChange::Deleted { name } => live.retain(|n| n.name != name),
                NsChange::Pinned {
                    name,
                    pinned,
                    files,
                } => {
                    if let Some(n) = live.iter_mut().find(|n| n.name == name) {
                        n.pinned = Some(pinned);
                        n.files = files;
                    }
                }
            }
        }
        live
    }

    /// Write the record whole (write then rename), so a reader never sees half of it. The
    /// directory and file are made with exact modes (whatever the umask), never through a
    /// symlink someone planted, and only in a directory this user owns.
    pub fn save(&self) -> std::io::Result<()> {
        let dir = &self.dir;
        own_dir(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_whole(
            &dir.join(format!("{}.json", self.id)),
            &temp_path(dir, &self.id, std::process::id()),
            0o644,
            &[&json],
        )
    }

    /// Remove the record, and any half-written copy a killed runner left of it.
    pub fn remove(&self) -> std::io::Result<()> {
        for (id, _, path) in temp_files(&self.dir) {
            if id == self.id {
                let _ = std::fs::remove_file(path);
            }
        }
        let path = self.dir.join(format!("{}.json", self.id));
        let _ = std::fs::remove_file(self.log_path());
        // The control socket of a runner that was killed (host/src/enter/server.rs).
        let _ = std::fs::remove_file(self.dir.join(format!("{}.sock", self.id)));
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Read the record at `path` (a `.json` file of a run directory), as a stranger's: a file
    /// that is not a record, or is too large to be one, is refused. Its namespaces come from
    /// its log while the run goes.
    pub fn load_from(path: &Path) -> std::io::Result<RunRecord> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        if !meta.is_file() || meta.len() > MAX_RECORD_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not a run record: {} ({} bytes; a record is a file of at most {MAX_RECORD_BYTES})",
                    if meta.is_file() { "too large" } else { "not a regular file" },
                    meta.len()
                ),
            ));
        }
        let owner = meta.uid();
        let bytes = std::fs::read(path)?;
        let mut record: RunRecord = serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        record.owner = owner;
        record.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !record.kept && record.namespaces.is_empty() {
            record.namespaces = Self::replay_log(&path.with_extension("log"));
        }
        Ok(record)
    }

    pub fn status(&self) -> RunStatus {
        if process_start(self.pid) == Some(self.pid_start) {
            RunStatus::Running
        } else if self.kept {
            RunStatus::Kept
        } else {
            RunStatus::Dead
        }
    }
}

/// Make the run directory `dir` if it is not there, and check that it is this user's own
/// directory (not a symlink, not made by someone else): records and control sockets go there.
pub fn own_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of this user's (a symlink, or made by someone else): remove it",
            dir.display()
        )));
    }
    Ok(())
}

/// Write `parts` to `path` whole: into `tmp` (made anew, never through a symlink, with exactly
/// `mode` whatever the umask), synced, then renamed into place, so a reader never sees half of
/// it. Shared by the run records and the compile cache.
pub fn write_whole(path: &Path, tmp: &Path, mode: u32, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _ = std::fs::remove_file(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        for part in parts {
            f.write_all(part)?;
        }
        f.sync_all()?;
        std::fs::rename(tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })
}

/// Where a record is written before it is renamed into place. The writer's pid is in the name so
/// that a copy left by a runner killed mid-write can be told from one being written now.
fn temp_path(dir: &Path, id: &str, pid: u32) -> PathBuf {
    dir.join(format!(".{id}.{pid}.tmp"))
}

/// Every half-written record in `dir`: (run id, writer pid, path).
pub fn temp_files(dir: &Path) -> Vec<(String, u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mut parts = name.strip_prefix('.')?.strip_suffix(".tmp")?.split('.');
            let (id, pid) = (parts.next()?.to_string(), parts.next()?.parse().ok()?);
            Some((id, pid, e.path()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nslab-record-test-{}", new_run_id().unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn this_process_is_running_and_a_made_up_one_is_not() {
        let mut r = RunRecord::new("0000test".into(), "x.wasm".into(), scratch());
        assert_eq!(r.status(), RunStatus::Running);
        r.pid_start += 1;
        assert_eq!(r.status(), RunStatus::Dead);
        r.kept = true;
        assert_eq!(r.status(), RunStatus::Kept);
        let _ = std::fs::remove_dir(&r.dir);
    }

    #[test]
    fn the_log_replays_to_the_namespaces_there_are_now() {
        let r = RunRecord::new(new_run_id().unwrap(), "x.wasm".into(), scratch());
        for change in [
            NsChange::Made {
                name: "a".into(),
                inode: 1,
            },
            NsChange::Made {
                name: "b".into(),
                inode: 2,
            },
            NsChange::Deleted { name: "a".into() },
            NsChange::Pinned {
                name: "b".into(),
                pinned: "nslab-x-b".into(),
                files: Some(("nslab-x-b".into(), 9)),
            },
        ] {
            r.log_namespace(&change).unwrap();
        }
        // A line cut short by a crash is passed over.
        std::fs::OpenOptions::new()
            .append(true)
            .open(r.log_path())
            .unwrap()
            .write_all(b"{\"made\":{\"name\":\"c\",\"ino")
            .unwrap();
        let live = RunRecord::replay_log(&r.log_path());
        r.remove().unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!((live[0].name.as_str(), live[0].inode), ("b", 2));
        assert_eq!(live[0].pinned.as_deref(), Some("nslab-x-b"));
        assert_eq!(live[0].files, Some(("nslab-x-b".into(), 9)));
        assert!(!r.log_path().exists());
        std::fs::remove_dir(&r.dir).unwrap();
    }

    #[test]
    fn a_saved_record_loads_back_as_it_was() {
        let mut r = RunRecord::new(new_run_id().unwrap(), "x.wasm".into(), scratch());
        r.host_ids = vec![(5, 10)];
        r.save().unwrap();
        let back = RunRecord::load_from(&r.dir.join(format!("{}.json", r.id))).unwrap();
        r.remove().unwrap();
        assert_eq!(back, r);
        std::fs::remove_dir(&r.dir).unwrap();
    }
}
