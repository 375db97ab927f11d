//! The memory of a run's programs, bounded by the kernel: one memory cgroup per run, which every
//! program of the run joins before it becomes the lab's (so the tmpfs pages of its box count too).
//!
//! cgroup v1 (a `memory` hierarchy, as on this project's CI machine): the run's cgroup is made
//! below the runner's own, so any limit the runner itself is under still holds. cgroup v2 (most
//! current distributions): below `/sys/fs/cgroup/nslab`, with the memory controller enabled on
//! the way down; v2 forbids processes in a cgroup that hands controllers to its children, and
//! the runner's own cgroup has processes.
//!
//! Cgroups are directories that outlive their processes: the run removes its own at the end. So
//! that a runner killed outright (SIGKILL) leaves none either, each run's cgroup has a janitor:
//! the runner re-executed as `runner __cgroup-janitor DIR`, in a session of its own, which waits
//! for the runner to close (or lose, by dying) the one pipe it holds, and then removes the
//! cgroup once the run's programs, which die with the runner, have left it. As a last resort the
//! next run, and `runner cleanup`, sweep the cgroups of runs whose record says they are gone.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The hidden subcommand that runs [`janitor`].
pub const JANITOR_ARG: &str = "__cgroup-janitor";

/// Which cgroup hierarchy limits memory here, and where a run's cgroups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    V1 { parent: PathBuf },
    V2 { root: PathBuf },
}

impl Hierarchy {
    fn parent(&self) -> PathBuf {
        match self {
            Hierarchy::V1 { parent } => parent.clone(),
            Hierarchy::V2 { root } => root.join("nslab"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Hierarchy::V1 { parent } => {
                format!("cgroup v1 memory controller, under {}", parent.display())
            }
            Hierarchy::V2 { root } => format!(
                "cgroup v2 memory controller, under {}/nslab",
                root.display()
            ),
        }
    }
}

/// Find the memory controller from mountinfo and /proc/self/cgroup, or say why there is none.
pub fn detect() -> Result<Hierarchy, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let found = parse(&mountinfo, &own).ok_or_else(|| {
        "this machine has no memory cgroup controller mounted (neither cgroup v1 `memory` nor \
         cgroup v2 with `memory` in cgroup.controllers)"
            .to_string()
    })?;
    if let Hierarchy::V2 { root } = &found {
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(format!(
                "the cgroup v2 hierarchy at {} has no memory controller (it is bound to another hierarchy or disabled)",
                root.display()
            ));
        }
    }
    let parent = found.parent();
    let existing = parent
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(format!(
            "the runner may not create cgroups at {} (it needs root, or a delegated cgroup)",
            parent.display()
        ));
    }
    Ok(found)
}

/// The hierarchy to use, from mountinfo text and /proc/self/cgroup text. v1's memory hierarchy
/// wins when both exist (a hybrid system binds the controller to v1).
fn parse(mountinfo: &str, own: &str) -> Option<Hierarchy> {
    let mut v2 = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(fstype), Some(opts)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
        else {
            continue;
        };
        match *fstype {
            "cgroup" if opts.split(',').any(|o| o == "memory") => {
                let path = own
                    .lines()
                    .find_map(|l| {
                        let mut parts = l.splitn(3, ':');
                        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
                        ctrl.split(',')
                            .any(|c| c == "memory")
                            .then(|| path.to_string())
                    })
                    .unwrap_or_else(|| "/".to_string());
                let parent = Path::new(point).join(path.trim_start_matches('/'));
                return Some(Hierarchy::V1 { parent });
            }
            "cgroup2" if v2.is_none() => {
                v2 = Some(Hierarchy::V2 {
                    root: PathBuf::from(point),
                })
            }
            _ => {}
        }
    }
    v2
}

/// One run's cgroup: programs join it by writing "0" to `procs` (themselves), before they
/// give up the host's root.
pub struct RunCgroup {
    dir: PathBuf,
    procs: OwnedFd,
    /// The janitor, and the pipe whose closing sets it to work.
    janitor: Option<(Child, OwnedFd)>,
}

const PREFIX: &str = "nslab-";

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
}

impl RunCgroup {
    /// Make the run's cgroup with its memory limit, and start its janitor (`exe` is the runner).
    pub fn create(
        h: &Hierarchy,
        run_id: &str,
        bytes: u64,
        exe: &Path,
    ) -> Result<RunCgroup, String> {
        let parent = h.parent();
        sweep(&parent);
        let fail = |what: &str, e: std::io::Error| {
            format!("cannot set up the run's memory cgroup ({what}): {e}")
        };
        if let Hierarchy::V2 { root } = h {
            std::fs::create_dir_all(&parent).map_err(|e| fail("create", e))?;
            for dir in [root.as_path(), parent.as_path()] {
                write(&dir.join("cgroup.subtree_control"), "+memory")
                    .map_err(|e| fail("enable the memory controller", e))?;
            }
        }
        let dir = parent.join(format!("{PREFIX}{run_id}"));
        std::fs::create_dir(&dir).map_err(|e| fail(&dir.display().to_string(), e))?;
        let set = || -> std::io::Result<()> {
            match h {
                Hierarchy::V1 { .. } => {
                    write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    // With swap accounting, swap must not be a way around the limit.
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &bytes.to_string())?;
                    }
                }
                Hierarchy::V2 { .. } => {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                }
            }
            Ok(())
        };
        let procs = set().and_then(|()| {
            Ok(OwnedFd::from(
                OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))?,
            ))
        });
        let procs = match procs {
            Ok(procs) => procs,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(fail("set its limit", e));
            }
        };
        match start_janitor(exe, &dir) {
            Ok(janitor) => Ok(RunCgroup {
                dir,
                procs,
                janitor: Some(janitor),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(fail("start its janitor", e))
            }
        }
    }

    /// The fd a program's first process writes "0" to, to join.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }
}

/// Remove an empty cgroup, waiting up to `tries` × 5 ms for its last processes to leave.
fn remove_when_empty(dir: &Path, tries: u32) {
    for _ in 0..tries {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            _ => return,
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // The programs were killed just before; the kernel may take a moment to let them go.
        remove_when_empty(&self.dir, 100);
        if let Some((mut child, pipe)) = self.janitor.take() {
            drop(pipe);
            let _ = child.wait();
        }
    }
}

/// Start `exe __cgroup-janitor DIR` with the read end of a pipe as its stdin; the write end,
/// close-on-exec, stays with the runner alone (its programs' processes close every inherited fd).
fn start_janitor(exe: &Path, dir: &Path) -> std::io::Result<(Child, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut cmd = Command::new(exe);
    cmd.arg(JANITOR_ARG)
        .arg(dir)
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe. Its own session: Ctrl-C at the terminal is the
    // runner's to handle, and the janitor must outlive a killed runner.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok((cmd.spawn()?, write))
}

/// The janitor's main: wait for the runner's end of the pipe on stdin to close, then remove the
/// run's cgroup once it is empty (within 10 s; a cgroup still busy then is left for the sweep).
pub fn janitor(dir: &Path) -> std::process::ExitCode {
    let ours = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX));
    if !ours {
        return std::process::ExitCode::FAILURE;
    }
    let mut byte = [0u8; 1];
    // SAFETY: fd 0 is the pipe the runner set up.
    let pipe = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    while let Err(nix::errno::Errno::EINTR) | Ok(1..) = nix::unistd::read(pipe, &mut byte) {}
    remove_when_empty(dir, 2000);
    std::process::ExitCode::SUCCESS
}

/// Remove the cgroups of runs that are no longer alive (a runner killed by SIGKILL cannot
/// remove its own). Only empty ones go: rmdir refuses a cgroup with processes.
pub fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let alive = crate::records::RunRecord::load(id)
            .map(|r| r.status() == crate::records::RunStatus::Running)
            .unwrap_or(false);
        if !alive {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Sweep wherever this machine puts run cgroups (for `runner cleanup`).
pub fn sweep_all() {
    if let Ok(h) = detect() {
        sweep(&h.parent());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_memory_below_the_runners_own_cgroup() {
        let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let own = "4:memory:/process_api/abc\n0::/\n";
        assert_eq!(
            parse(mi, own),
            Some(Hierarchy::V1 {
                parent: "/sys/fs/cgroup/memory/process_api/abc".into()
            })
        );
    }

    #[test]
    fn finds_v2_when_it_is_the_only_hierarchy() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            parse(mi, "0::/user.slice\n"),
            Some(Hierarchy::V2 {
                root: "/sys/fs/cgroup".into()
            })
        );
        assert_eq!(parse("", ""), None);
    }
}
