//! The memory of a run's programs, bounded by the kernel: one memory cgroup per run, which every
//! program of the run joins before it becomes the lab's (so the tmpfs pages of its box count too).
//!
//! cgroup v1 (a `memory` hierarchy, as on this project's CI machine): the run's cgroup is made
//! below the runner's own, so any limit the runner itself is under still holds. cgroup v2 (most
//! current distributions): below `/sys/fs/cgroup/nslab`, with the memory controller enabled on
//! the way down; v2 forbids processes in a cgroup that hands controllers to its children, and
//! the runner's own cgroup has processes.
//!
//! The cgroup is also the second thing a program cannot shed (the first is its PID namespace's
//! init, lab/helper/spawn.rs): at the end of the run every process still in it is killed ([`kill_all`]).
//!
//! Cgroups are directories that outlive their processes: the run removes its own at the end. So
//! that a runner killed outright (SIGKILL) leaves none either, each run's cgroup has a janitor:
//! the runner re-executed as `runner __cgroup-janitor DIR`, in a session of its own, which waits
//! for the runner to close (or lose, by dying) the one pipe it holds, then kills whatever is
//! still in the cgroup and removes it. As a last resort the
//! next run, and `runner cleanup`, sweep the cgroups of runs whose record says they are gone.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::error::{LabError, LabResult};

/// The hidden subcommand that runs [`janitor`].
mod delegated;
mod ending;
mod v1;
mod v2;

pub use ending::{janitor, kill_all, sweep, sweep_all};
use ending::{remove_when_empty, start_janitor};

pub const JANITOR_ARG: &str = "__cgroup-janitor";

/// Which cgroup hierarchy limits memory here, and where a run's cgroups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// `parent`: where the memory hierarchy puts a run's cgroup; `pids` and `cpu`: the same
    /// for the pids and cpu hierarchies, where this machine mounts them.
    V1 {
        parent: PathBuf,
        pids: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
    /// `parent`: where a run's cgroup goes: `ROOT/nslab` for root; for an ordinary user, the
    /// cgroup the system delegated to them, which the runner is in (`delegated`).
    V2 {
        root: PathBuf,
        parent: PathBuf,
        delegated: bool,
    },
}

impl Hierarchy {
    fn parent(&self) -> PathBuf {
        match self {
            Hierarchy::V1 { parent, .. } => parent.clone(),
            Hierarchy::V2 { parent, .. } => parent.clone(),
        }
    }

    /// Every directory where runs' cgroups are made.
    pub(super) fn parents(&self) -> Vec<PathBuf> {
        match self {
            Hierarchy::V1 { parent, pids, cpu } => std::iter::once(parent.clone())
                .chain(pids.clone())
                .chain(cpu.clone())
                .collect(),
            Hierarchy::V2 { .. } => vec![self.parent()],
        }
    }

    /// Whether the run's processes are bounded by a pids cgroup here.
    pub fn has_pids(&self) -> bool {
        match self {
            Hierarchy::V1 { pids, .. } => pids.is_some(),
            Hierarchy::V2 { parent, .. } => {
                let at = parent.ancestors().find(|p| p.exists()).unwrap_or(parent);
                std::fs::read_to_string(at.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Hierarchy::V1 { parent, .. } => {
                format!("cgroup v1 memory controller, under {}", parent.display())
            }
            Hierarchy::V2 {
                parent, delegated, ..
            } => format!(
                "cgroup v2 memory controller, under {}{}",
                parent.display(),
                if *delegated {
                    " (the cgroup delegated to you)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Find the memory controller from mountinfo and /proc/self/cgroup, or say why there is none.
pub fn detect() -> LabResult<Hierarchy> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| LabError::from_io(&e, "read /proc/self/mountinfo"))?;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let found = parse(&mountinfo, &own).ok_or_else(|| {
        LabError::not_found(
            "this machine has no memory cgroup controller mounted (neither cgroup v1 `memory` \
             nor cgroup v2 with `memory` in cgroup.controllers)",
        )
    })?;
    let found = match found {
        Hierarchy::V2 { root, .. } => delegated::v2_parent(root, &own),
        v1 => v1,
    };
    if let Hierarchy::V2 { root, .. } = &found {
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(LabError::not_found(format!(
                "the cgroup v2 hierarchy at {} has no memory controller (it is bound to another hierarchy or disabled)",
                root.display()
            )));
        }
    }
    let parent = found.parent();
    let existing = parent
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(LabError::denied(format!(
            "the runner may not create cgroups at {} (it needs root, or a delegated cgroup)",
            parent.display()
        )));
    }
    Ok(found)
}

/// The hierarchy to use, from mountinfo text and /proc/self/cgroup text. v1's memory hierarchy
/// wins when both exist (a hybrid system binds the controller to v1).
fn parse(mountinfo: &str, own: &str) -> Option<Hierarchy> {
    let mut v2 = None;
    let mut memory = None;
    let mut pids = None;
    let mut cpu = None;
    // Where this process is in the v1 hierarchy of `controller`.
    let own_path = |controller: &str| {
        own.lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctrl.split(',')
                    .any(|c| c == controller)
                    .then(|| path.to_string())
            })
            .unwrap_or_else(|| "/".to_string())
    };
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
            "cgroup" if opts.split(',').any(|o| o == "memory") && memory.is_none() => {
                let path = own_path("memory");
                memory = Some(Path::new(point).join(path.trim_start_matches('/')));
            }
            "cgroup" if opts.split(',').any(|o| o == "pids") && pids.is_none() => {
                let path = own_path("pids");
                pids = Some(Path::new(point).join(path.trim_start_matches('/')));
            }
            "cgroup" if opts.split(',').any(|o| o == "cpu") && cpu.is_none() => {
                let path = own_path("cpu");
                cpu = Some(Path::new(point).join(path.trim_start_matches('/')));
            }
            "cgroup2" if v2.is_none() => {
                v2 = Some(Hierarchy::V2 {
                    root: PathBuf::from(point),
                    parent: Path::new(point).join("nslab"),
                    delegated: false,
                })
            }
            _ => {}
        }
    }
    match memory {
        Some(parent) => Some(Hierarchy::V1 { parent, pids, cpu }),
        None => v2,
    }
}

/// One run's cgroups. The lab helper is moved into the memory one, so the files it writes for
/// the scenario, the boxes it builds and the programs it starts (with their inits) are the
/// run's memory too; each program then joins the programs' own cgroup by writing "0"
/// (itself) to `program_procs`.
///
/// - v1: `PARENT/nslab-ID` in the memory hierarchy (the helper and the programs: the memory
///   limit, swap included, and the TCP buffers' limit, which v1 accounts only once it is set),
///   `nslab-ID` in the pids hierarchy (the programs alone: `pids.max` is `max-processes`), and
///   `nslab-ID` in the cpu hierarchy (the programs alone, at the default weight).
/// - v2: `nslab/nslab-ID` with the memory limit (swap 0), and below it `helper` and `programs`
///   (v2 lets processes live in leaves only), `pids.max` on `programs`, the cpu controller
///   where the kernel gives it. v2 accounts kernel and socket memory by itself.
///
/// The cpu cgroup makes the programs of a run weigh together as one process (v1) or one
/// cgroup (v2) does against everything else on the machine, as a container's do: a lab of a
/// thousand busy daemons, or of a thousand busy loops, cannot take the CPUs from the host's
/// other users, nor from the runner and the helper, which start its programs (issue 23: with
/// each daemon weighing as much as the runner, starting the thousandth took ten times what
/// starting the first did).
pub struct RunCgroup {
    /// Every directory made, outermost first.
    dirs: Vec<PathBuf>,
    /// Where the programs are, to kill what is left of them at the end.
    programs_dir: PathBuf,
    program_procs: Vec<OwnedFd>,
    helper_procs: OwnedFd,
    /// The janitor, and the pipe whose closing sets it to work.
    janitor: Option<(Child, OwnedFd)>,
}

pub(super) const PREFIX: &str = "nslab-";

pub(super) fn write(path: &Path, text: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
}

fn procs_of(dir: &Path) -> std::io::Result<OwnedFd> {
    Ok(OwnedFd::from(
        OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))?,
    ))
}

fn failed(what: &str, e: std::io::Error) -> LabError {
    LabError::from_io(&e, format!("cannot set up the run's cgroups ({what})"))
}

/// A run's cgroups while they are made (v1.rs, v2.rs): their name, and every directory made so
/// far, outermost first, to undo if a later step fails.
struct Builder {
    name: String,
    made: Vec<PathBuf>,
}

impl Builder {
    /// Make the directory `dir`.
    fn mkdir(&mut self, dir: PathBuf) -> LabResult<PathBuf> {
        std::fs::create_dir(&dir).map_err(|e| failed(&dir.display().to_string(), e))?;
        self.made.push(dir.clone());
        Ok(dir)
    }

    /// Make the run's cgroup below `parent`.
    fn run_dir(&mut self, parent: &Path) -> LabResult<PathBuf> {
        let dir = parent.join(&self.name);
        self.mkdir(dir)
    }
}

/// Set a cgroup file (a limit, a controller).
fn limit(file: PathBuf, value: &str) -> LabResult<()> {
    write(&file, value).map_err(|e| failed(&file.display().to_string(), e))
}

/// A cgroup's `cgroup.procs`, open for joining it.
fn procs(dir: &Path) -> LabResult<OwnedFd> {
    procs_of(dir).map_err(|e| failed("cgroup.procs", e))
}

/// A run's cgroups once made: where its programs are, the `cgroup.procs` each program joins,
/// and the one the helper is moved into.
struct Built {
    programs_dir: PathBuf,
    program_procs: Vec<OwnedFd>,
    helper_procs: OwnedFd,
}

impl RunCgroup {
    /// Make the run's cgroups with its memory limit (`bytes`) and process limit (`processes`),
    /// and start their janitor (`exe` is the runner). Dead runs' cgroups are swept first
    /// (`alive` says whether a run goes on).
    pub fn create(
        h: &Hierarchy,
        run_id: &str,
        bytes: u64,
        processes: usize,
        exe: &Path,
        alive: &dyn Fn(&str) -> bool,
    ) -> LabResult<RunCgroup> {
        for parent in h.parents() {
            sweep(&parent, alive);
        }
        let mut builder = Builder {
            name: format!("{PREFIX}{run_id}"),
            made: Vec::new(),
        };
        let built = match h {
            Hierarchy::V1 { parent, pids, cpu } => v1::build(
                &mut builder,
                parent,
                pids.as_deref(),
                cpu.as_deref(),
                bytes,
                processes,
            ),
            Hierarchy::V2 {
                root,
                parent,
                delegated,
            } => v2::build(
                &mut builder,
                root,
                parent,
                *delegated,
                h.has_pids(),
                bytes,
                processes,
            ),
        };
        let made = builder.made;
        let undo = |made: &[PathBuf]| {
            for dir in made.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        };
        let Built {
            programs_dir,
            program_procs,
            helper_procs,
        } = match built {
            Ok(b) => b,
            Err(e) => {
                undo(&made);
                return Err(e);
            }
        };
        match start_janitor(exe, &made) {
            Ok(janitor) => Ok(RunCgroup {
                dirs: made,
                programs_dir,
                program_procs,
                helper_procs,
                janitor: Some(janitor),
            }),
            Err(e) => {
                undo(&made);
                Err(failed("start its janitor", e))
            }
        }
    }

    /// The `cgroup.procs` a program writes "0" to, to join the programs' own cgroups: the
    /// pids and cpu ones on v1 (the helper, whose child it is, already has it in the memory
    /// one), the `programs` leaf on v2. None where the helper's cgroups are all a program
    /// needs.
    pub fn program_procs(&self) -> Vec<RawFd> {
        self.program_procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Move process `pid` (the lab helper) into the run's memory cgroup.
    pub fn adopt(&self, pid: u32) -> std::io::Result<()> {
        nix::unistd::write(&self.helper_procs, pid.to_string().as_bytes())
            .map(|_| ())
            .map_err(std::io::Error::from)
    }

    /// Kill whatever of the programs is left (within a second): their processes end with their
    /// PID namespaces' inits, and this is the hold they cannot shed either.
    pub fn kill_programs(&self) -> bool {
        kill_all(
            &self.programs_dir,
            std::time::Instant::now() + std::time::Duration::from_secs(1),
        )
    }
}

impl Drop for RunCgroup {
    /// Dropped after the lab helper has gone (the Lab holds it after its namespace factory):
    /// whatever is still in the cgroups is killed, within a bound, and they are removed; what a
    /// process stuck in the kernel holds is left to the janitor.
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        for dir in self.dirs.iter().rev() {
            if kill_all(dir, deadline) {
                remove_when_empty(dir, 100);
            }
        }
        if let Some((mut child, pipe)) = self.janitor.take() {
            drop(pipe);
            // Reaped where it cannot hold the run: it may have a cgroup to empty yet.
            std::thread::spawn(move || child.wait());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn finds_v1_memory_below_the_runners_own_cgroup() {
        let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let own = "8:pids:/\n4:memory:/process_api/abc\n0::/\n";
        assert_eq!(
            parse(mi, own),
            Some(Hierarchy::V1 {
                parent: "/sys/fs/cgroup/memory/process_api/abc".into(),
                pids: Some("/sys/fs/cgroup/pids".into()),
                cpu: None,
            })
        );
        // The cpu hierarchy, alone or with cpuacct, never taken for cpuset's.
        let mi = "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n\
                  35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  37 31 0:34 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n";
        let own = "9:cpu,cpuacct:/lab\n4:memory:/process_api/abc\n0::/\n";
        assert_eq!(
            parse(mi, own),
            Some(Hierarchy::V1 {
                parent: "/sys/fs/cgroup/memory/process_api/abc".into(),
                pids: None,
                cpu: Some("/sys/fs/cgroup/cpu,cpuacct/lab".into()),
            })
        );
        // Without a pids hierarchy, memory alone.
        let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
        assert_eq!(
            parse(mi, own),
            Some(Hierarchy::V1 {
                parent: "/sys/fs/cgroup/memory/process_api/abc".into(),
                pids: None,
                cpu: None,
            })
        );
    }

    /// The cgroup layer alone, on this machine's hierarchy (as root): processes in the cgroup
    /// that made new sessions and forked twice are all killed, and nothing outside it is.
    #[test]
    fn kill_all_ends_every_process_in_the_cgroup_whatever_session_it_made() {
        use std::os::unix::process::CommandExt;
        let Ok(h) = detect() else {
            eprintln!("SKIPPED: no memory cgroup the test may use here");
            return;
        };
        let dir = h
            .parent()
            .join(format!("{PREFIX}unit{}", std::process::id()));
        if let Hierarchy::V2 { .. } = h {
            std::fs::create_dir_all(h.parent()).unwrap();
        }
        std::fs::create_dir(&dir).unwrap();
        let procs = OwnedFd::from(
            OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .unwrap(),
        );
        let fd = procs.as_raw_fd();
        let mut inside = Command::new("sh");
        inside.args([
            "-c",
            "setsid sh -c 'sleep 300 & sleep 300' & (sleep 300 &) ; exec sleep 300",
        ]);
        // SAFETY: write is async-signal-safe; the fd stays open until after the spawn.
        unsafe {
            inside.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut inside = inside.spawn().unwrap();
        let mut outside = Command::new("sleep").arg("300").spawn().unwrap();
        let members = || {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .count()
        };
        // Transient shells come and go meanwhile: the most seen at once is what joined.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut started = 0;
        while started < 5 && std::time::Instant::now() < deadline {
            started = started.max(members());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let emptied = kill_all(
            &dir,
            std::time::Instant::now() + std::time::Duration::from_secs(5),
        );
        let _ = inside.wait();
        let outside_alive = outside.try_wait().unwrap().is_none();
        let _ = outside.kill();
        let _ = outside.wait();
        remove_when_empty(&dir, 200);
        assert!(started >= 4, "only {started} processes joined");
        assert!(emptied, "processes are left in {}", dir.display());
        assert!(outside_alive, "a process outside the cgroup was killed");
        assert!(!dir.exists());
    }

    #[test]
    fn finds_v2_when_it_is_the_only_hierarchy() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            parse(mi, "0::/user.slice\n"),
            Some(Hierarchy::V2 {
                root: "/sys/fs/cgroup".into(),
                parent: "/sys/fs/cgroup/nslab".into(),
                delegated: false,
            })
        );
        assert_eq!(parse("", ""), None);
    }

    #[test]
    fn an_ordinary_user_in_a_delegated_cgroup_of_their_own_makes_runs_there() {
        // A directory this test may write stands for the delegated cgroup, the test's own
        // process its only one; a root that may not be written, for /sys/fs/cgroup.
        if nix::unistd::geteuid().is_root() {
            // Root may make ROOT/nslab anywhere: the shared place wins, as it should.
            let h = delegated::v2_parent("/nonexistent-nslab-cgroup".into(), "0::/x\n");
            assert!(
                matches!(
                    h,
                    Hierarchy::V2 {
                        delegated: false,
                        ..
                    }
                ),
                "{h:?}"
            );
            return;
        }
        let top = std::env::temp_dir().join(format!("nslab-unit-cg-{}", std::process::id()));
        std::fs::create_dir_all(&top).unwrap();
        for f in ["cgroup.procs", "cgroup.subtree_control"] {
            std::fs::write(top.join(f), "").unwrap();
        }
        std::fs::write(
            top.join("cgroup.procs"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        let own = format!("0::/{}\n", top.file_name().unwrap().to_string_lossy());
        let h = delegated::v2_parent(top.parent().unwrap().to_path_buf(), &own);
        std::fs::remove_dir_all(&top).unwrap();
        assert!(
            matches!(
                h,
                Hierarchy::V2 {
                    delegated: true,
                    ..
                }
            ),
            "{h:?}"
        );
    }
}
