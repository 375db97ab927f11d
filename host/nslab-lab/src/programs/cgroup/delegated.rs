//! An ordinary user's runs under cgroup v2: in the cgroup the system delegated to the user
//! (systemd's `Delegate=yes`: a user@ service, or `systemd-run --user --scope -p Delegate=yes
//! runner ...`), which the runner is in. v2 lets a cgroup hand controllers to its children only
//! while it holds no process itself, so the runner first moves its own processes (itself and its
//! helper) into a leaf of their own, `runner-PID`; the runs' cgroups are then made beside it, as
//! root's are below `/sys/fs/cgroup/nslab`.
//!
//! A leaf outlives its runner (nothing can remove the cgroup it is in): the next run there
//! removes the empty ones, as it removes dead runs' cgroups.

use std::path::{Path, PathBuf};

use super::Hierarchy;

/// How a runner's own leaf is named, with its pid.
pub const LEAF: &str = "runner-";

/// Where a v2 run's cgroups go: `ROOT/nslab` where the runner may make it (root); else the
/// cgroup the runner is in, when it is delegated to the runner's user (systemd's
/// `Delegate=yes`: `systemd-run --user --scope -p Delegate=yes runner ...`, or a user@ service).
pub fn v2_parent(root: PathBuf, own: &str) -> Hierarchy {
    let shared = root.join("nslab");
    let may_make = shared
        .ancestors()
        .find(|p| p.exists())
        .is_some_and(|p| nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok());
    let mine = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| root.join(p.trim().trim_start_matches('/')))
        // A runner that made its run's cgroups already is in its own leaf of the top.
        .map(|p| match p.file_name().and_then(|n| n.to_str()) {
            Some(n) if n.starts_with(LEAF) => p.parent().map_or(p.clone(), Path::to_path_buf),
            _ => p,
        });
    let delegated = |dir: &Path| {
        ["", "cgroup.procs", "cgroup.subtree_control"]
            .iter()
            .all(|f| nix::unistd::access(&dir.join(f), nix::unistd::AccessFlags::W_OK).is_ok())
    };
    match mine {
        Some(dir) if !may_make && dir != root && delegated(&dir) && only_ours(&dir) => {
            Hierarchy::V2 {
                root,
                parent: dir,
                delegated: true,
            }
        }
        _ => Hierarchy::V2 {
            root,
            parent: shared,
            delegated: false,
        },
    }
}

/// Whether every process in `dir` is this process or one it started: the cgroup can then be
/// emptied into a leaf without moving anyone else's processes.
pub fn only_ours(dir: &Path) -> bool {
    let me = std::process::id();
    let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return false;
    };
    text.lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .all(|pid| descends_from(pid, me))
}

/// Whether `pid` is `ancestor` or below it.
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The parent's pid is the second field after the command's closing parenthesis.
        let Some(parent) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            return false;
        };
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

/// Move this process's processes out of `top` into a leaf of their own, and remove the empty
/// leaves earlier runners left. Nothing to do when they are in a leaf already.
pub fn leave(top: &Path) -> std::io::Result<()> {
    sweep_leaves(top);
    let pids = std::fs::read_to_string(top.join("cgroup.procs"))?;
    let pids: Vec<&str> = pids.lines().filter(|l| !l.trim().is_empty()).collect();
    if pids.is_empty() {
        return Ok(());
    }
    let leaf = top.join(format!("{LEAF}{}", std::process::id()));
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for pid in pids {
        // A process that ended meanwhile is no longer there to move.
        match super::write(&leaf.join("cgroup.procs"), pid) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Remove the empty leaves of runners that ended (the kernel refuses a busy one).
pub fn sweep_leaves(top: &Path) {
    let Ok(entries) = std::fs::read_dir(top) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(LEAF) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}
