//! How this process may build labs. As root (CAP_SYS_ADMIN and CAP_NET_ADMIN), the run's user
//! namespace maps a block of host ids of the run's own (lab/helper/ids.rs). As an ordinary user,
//! the same user namespace is made by the user, root inside being the user outside: nothing is
//! asked of the host but that the kernel allows unprivileged user namespaces. Decided before
//! anything is created, so that a machine that forbids it gets one clear sentence.

use std::path::PathBuf;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

use nslab_lab::Mode;

/// The effective capability set, from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

fn read_number(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The mode of this process, found once: its capabilities do not change, and records,
/// the helper and the header all ask.
pub fn mode() -> Mode {
    static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    MODE.get_or_init(find_mode).clone()
}

fn find_mode() -> Mode {
    let caps = effective_caps().unwrap_or(0);
    let has = |bit: u32| caps & (1 << bit) != 0;
    if has(CAP_SYS_ADMIN) && has(CAP_NET_ADMIN) {
        Mode::Root
    } else {
        Mode::Rootless {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }
}

/// None when this process can build labs, else the sentence to show: which kernel setting
/// forbids an ordinary user's user namespaces, and the alternative.
pub fn missing() -> Option<String> {
    if mode() == Mode::Root {
        return None;
    }
    forbidden(
        read_number("/proc/sys/user/max_user_namespaces"),
        read_number("/proc/sys/kernel/unprivileged_userns_clone"),
        read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
    )
}

/// Which setting, if any, forbids unprivileged user namespaces.
fn forbidden(max: Option<i64>, clone: Option<i64>, apparmor: Option<i64>) -> Option<String> {
    let why = if max == Some(0) {
        "user.max_user_namespaces is 0"
    } else if clone == Some(0) {
        "kernel.unprivileged_userns_clone is 0"
    } else if apparmor == Some(1) {
        "kernel.apparmor_restrict_unprivileged_userns is 1 (AppArmor)"
    } else {
        return None;
    };
    Some(format!(
        "this machine forbids ordinary users the user namespace a rootless run needs ({why}): \
         run the runner as root (sudo runner run ...), or have an administrator change that setting"
    ))
}

/// Where the runner keeps what lives as long as the machine is up (run records, pins): /run
/// for root; the user's runtime directory ($XDG_RUNTIME_DIR, else /run/user/UID) otherwise.
pub fn runtime_dir() -> PathBuf {
    match mode() {
        Mode::Root => PathBuf::from("/run/nslab"),
        Mode::Rootless { uid, .. } => std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{uid}")))
            .join("nslab"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_that_forbids_user_namespaces_is_named() {
        assert_eq!(forbidden(Some(96365), None, None), None);
        assert_eq!(forbidden(Some(96365), Some(1), Some(0)), None);
        for (args, setting) in [
            ((Some(0), None, None), "user.max_user_namespaces is 0"),
            (
                (Some(10), Some(0), None),
                "kernel.unprivileged_userns_clone is 0",
            ),
            (
                (Some(10), Some(1), Some(1)),
                "kernel.apparmor_restrict_unprivileged_userns is 1",
            ),
        ] {
            let why = forbidden(args.0, args.1, args.2).unwrap();
            assert!(
                why.contains(setting) && why.contains("run the runner as root"),
                "{why}"
            );
        }
    }
}
