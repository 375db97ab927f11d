//! How this machine enforces the limits on a run's programs, said before a run (`runner policy`,
//! `runner inspect`, the run's header) rather than found out after: where the kernel cannot
//! enforce a limit here, the runner says so and how it is bounded instead.

use nslab_lab::error::LabResult;
use nslab_lab::host::cgroup;

/// One limit, and how it holds on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    pub key: &'static str,
    pub how: String,
    /// False where it holds only in part here: the user must hear about it.
    pub complete: bool,
}

/// The kernel's release as (major, minor), from uname.
fn kernel_version() -> Option<(u32, u32)> {
    let release = nix::sys::utsname::uname()
        .ok()?
        .release()
        .to_string_lossy()
        .into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

pub fn on_this_machine() -> Vec<Enforcement> {
    let mut list = Vec::new();
    let cgroups = cgroup::detect();
    let as_user = crate::privilege::mode() != nslab_lab::Mode::Root;
    list.push(processes(&cgroups, as_user));
    list.push(match &cgroups {
        Ok(h) => memory(h),
        Err(why) => Enforcement {
            key: "program-memory",
            how: format!(
                "per program only (RLIMIT_AS), not for the run's programs together, and not the \
                 files given to the lab: {why}"
            ),
            complete: false,
        },
    });
    list.push(Enforcement {
        key: "max-namespaces",
        how: "by the runner for the scenario's namespaces; programs may make none (the syscall \
              filter refuses new network and user namespaces), so none escape the count"
            .into(),
        complete: true,
    });
    if let nslab_lab::Mode::Rootless { uid, .. } = crate::privilege::mode() {
        list.extend(rootless(uid));
    }
    list.push(Enforcement {
        key: "max-links",
        how: "by the runner, counting the links the run holds now (deleted ones no longer count): \
              the scenario's, and those in the namespaces where programs run, which it watches \
              (netlink) and stops the run past the limit"
            .into(),
        complete: true,
    });
    list.push(Enforcement {
        key: "scratch-bytes",
        how: "by the kernel: the size of each lab namespace's tmpfs".into(),
        complete: true,
    });
    list.extend(layers());
    list
}

/// How the run's processes are bounded here: the run's pids cgroup (exact), and the kernel's
/// per-user count of the user that owns the run's user namespace (the run's own host id for
/// root; the user for an ordinary user). Linux counts RLIMIT_NPROC per user namespace since
/// 5.14 ("ucounts").
fn processes(cgroups: &LabResult<cgroup::Hierarchy>, rootless: bool) -> Enforcement {
    let per_user = match kernel_version() {
        Some(v) if v < (5, 14) => {
            return Enforcement {
                key: "max-processes",
                how: "by the kernel, but in part: this kernel (older than 5.14) counts \
                      RLIMIT_NPROC per host user, so the limit covers the programs of every run \
                      at once, not each run"
                    .into(),
                complete: false,
            }
        }
        _ if rootless => "RLIMIT_NPROC per id inside the run; the run's user namespace is yours, \
                          so your own process limit and per-user kernel quotas bound the run as a \
                          whole"
            .to_string(),
        _ => "the run's user namespace belongs to a host id of the run's own, which the kernel \
              charges every process of every id inside (RLIMIT_NPROC: at most 2 x max-processes \
              + 4, the programs' inits included) and every per-user quota it keeps"
            .to_string(),
    };
    match cgroups {
        Ok(h) if h.has_pids() && !rootless => Enforcement {
            key: "max-processes",
            how: format!(
                "by the kernel: a pids cgroup per run (the programs' processes and threads \
                 together, whatever ids they switch to); and {per_user}"
            ),
            complete: true,
        },
        _ if rootless => Enforcement {
            key: "max-processes",
            how: format!("by the kernel: {per_user}"),
            complete: true,
        },
        _ => Enforcement {
            key: "max-processes",
            how: format!("by the kernel, without a pids cgroup here (so not exactly): {per_user}"),
            complete: false,
        },
    }
}

/// What of the memory a run causes its memory cgroup is charged with here.
fn memory(h: &cgroup::Hierarchy) -> Enforcement {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let off = |what: &str| {
        cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("cgroup.memory="))
            .any(|v| v.split(',').any(|o| o == what))
    };
    let mut missing = Vec::new();
    if off("nokmem") {
        missing.push("kernel memory (cgroup.memory=nokmem)");
    }
    if off("nosocket") {
        missing.push("socket buffers (cgroup.memory=nosocket)");
    }
    let charged = "programs' pages, the files the scenario gives and the programs write (tmpfs), \
                   and the kernel memory they cause (socket buffers included)";
    match missing.is_empty() {
        true => Enforcement {
            key: "program-memory",
            how: format!("by the kernel: {}: {charged}", h.describe()),
            complete: true,
        },
        false => Enforcement {
            key: "program-memory",
            how: format!(
                "by the kernel, in part: {}; this kernel does not charge {}",
                h.describe(),
                missing.join(" or ")
            ),
            complete: false,
        },
    }
}

/// What programs can reach beyond their lab's own, layer by layer (issue 20).
fn layers() -> Vec<Enforcement> {
    use nslab_lab::host as confine;
    vec![
        match confine::landlock_abi() {
            Some(abi) => Enforcement {
                key: "exec-allowlist",
                how: format!(
                    "by the kernel: Landlock (ABI {abi}) lets programs, and all they start, execute only the programs the scenario declared and the policy allows, and the ELF loaders those need; and the box is noexec but for those programs, their loaders and the shared objects and module directories they need, so the loader cannot be handed another program"
                ),
                complete: true,
            },
            None => Enforcement {
                key: "exec-allowlist",
                how: "in part: this kernel has no Landlock, so a program the run allows (ip netns exec, a shell) can start any other allowed program by path; the box is noexec but for the allowed programs and the code they need, so nothing else runs"
                    .into(),
                complete: false,
            },
        },
        if confine::seccomp_available() {
            Enforcement {
                key: "syscall-filter",
                how: format!(
                    "by the kernel: seccomp denies {} calls no lab needs (keyring, modules, kexec, bpf, io_uring, ...) and making network, user, cgroup or time namespaces",
                    confine::DENIED.len()
                ),
                complete: true,
            }
        } else {
            Enforcement {
                key: "syscall-filter",
                how: "not at all: this kernel has no seccomp filter mode".into(),
                complete: false,
            }
        },
        Enforcement {
            key: "keyring",
            how: "each program starts in a new, empty session keyring of its own; the operator's are out of reach"
                .into(),
            complete: true,
        },
        Enforcement {
            key: "sysfs",
            how: "each lab namespace's programs see its own sysfs (its links), never the host's devices or cgroup tree"
                .into(),
            complete: true,
        },
    ]
}

/// The allowlist as `runner inspect` states it: a guarantee where the kernel enforces it.
pub fn allowlist_statement() -> &'static str {
    if nslab_lab::host::landlock_abi().is_some() {
        "its programs can execute nothing else: the kernel enforces it (Landlock), and nor can \
         they map another program as code (the box is noexec but for their own code)"
    } else {
        "its programs are started only by name, but this kernel has no Landlock: a program it \
         runs could start another program it declared by path; nothing else is executable in \
         the box"
    }
}

/// Programs that interpret code they are given and can make memory executable themselves
/// (`ctypes`, `syscall`, an FFI): with one, a scenario can compute anything the box permits,
/// a copy of a host program's code included. Names as the policy and `describe()` give them.
const INTERPRETERS: &[&str] = &["python", "perl", "ruby", "node", "php", "luajit", "gdb"];

/// The routes past the allowlist no kernel rule closes, one sentence each, for the allowed or
/// declared `programs` that open them.
pub fn open_routes<'a>(programs: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    programs
        .into_iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            INTERPRETERS.iter().any(|i| name.starts_with(i))
        })
        .map(|p| {
            format!(
                "{p} interprets code it is given and can make memory executable itself: with it \
                 a scenario can compute anything the box permits, a host program's code copied \
                 into memory included; the allowlist bounds which files the kernel runs or maps \
                 as code, not what an allowed interpreter does (deny it with --deny-exec {p})"
            )
        })
        .collect()
}

/// What a run of an ordinary user can and cannot do here: its user namespace maps the user
/// (and subordinate ids, where configured); without them, programs keep the user's groups and
/// cannot switch to a service user.
fn rootless(uid: u32) -> Vec<Enforcement> {
    match nslab_lab::host::subordinate_ids(uid) {
        Ok(((first, count), _)) => vec![Enforcement {
            key: "rootless",
            how: format!(
                "as user {uid}: the run's user namespace maps you as its root and your subordinate \
                 ids {first}-{} as its ids 1-{count}; programs drop your groups",
                first + count - 1
            ),
            complete: true,
        }],
        Err(why) => vec![Enforcement {
            key: "rootless",
            how: format!(
                "as user {uid}, in part: the run's user namespace maps only you ({why}); programs \
                 keep your supplementary groups, and programs that switch to a service user \
                 (tcpdump, FRR's daemons) cannot run"
            ),
            complete: false,
        }],
    }
}

/// The limits that hold only in part here, as warnings to print.
pub fn gaps() -> Vec<String> {
    on_this_machine()
        .into_iter()
        .filter(|e| !e.complete)
        .map(|e| format!("{} is enforced {}", e.key, e.how))
        .collect()
}
