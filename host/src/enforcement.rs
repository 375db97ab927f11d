//! How this machine enforces the limits on a run's programs, said before a run (`runner policy`,
//! `runner inspect`, the run's header) rather than found out after: where the kernel cannot
//! enforce a limit here, the runner says so and how it is bounded instead.

use crate::lab::cgroup;

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
    // RLIMIT_NPROC is counted per user namespace since Linux 5.14 ("ucounts").
    list.push(match kernel_version() {
        Some(v) if v >= (5, 14) => Enforcement {
            key: "max-processes",
            how: "by the kernel: RLIMIT_NPROC, counted in the run's own user namespace".into(),
            complete: true,
        },
        _ => Enforcement {
            key: "max-processes",
            how:
                "by the kernel, but in part: this kernel (older than 5.14) counts RLIMIT_NPROC per \
                  host user, so the limit covers the programs of every run at once, not each run"
                    .into(),
            complete: false,
        },
    });
    list.push(match cgroup::detect() {
        Ok(h) => Enforcement {
            key: "program-memory",
            how: format!("by the kernel: {}", h.describe()),
            complete: true,
        },
        Err(why) => Enforcement {
            key: "program-memory",
            how: format!(
                "per program only (RLIMIT_AS), not for the run's programs together: {why}"
            ),
            complete: false,
        },
    });
    if let crate::privilege::Mode::Rootless { uid, .. } = crate::privilege::mode() {
        list.extend(rootless(uid));
    }
    list.push(Enforcement {
        key: "max-links",
        how: "by the runner: it watches the namespaces where programs run (netlink) and stops the \
              run past the limit"
            .into(),
        complete: true,
    });
    list.push(Enforcement {
        key: "scratch-bytes",
        how: "by the kernel: the size of each lab namespace's tmpfs".into(),
        complete: true,
    });
    list
}

/// What a run of an ordinary user can and cannot do here: its user namespace maps the user
/// (and subordinate ids, where configured); without them, programs keep the user's groups and
/// cannot switch to a service user.
fn rootless(uid: u32) -> Vec<Enforcement> {
    match crate::lab::helper::subordinate_ids(uid) {
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
