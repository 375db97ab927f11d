//! Whether this process may build labs: creating a network namespace needs CAP_SYS_ADMIN and
//! configuring it CAP_NET_ADMIN. Checked before anything is created, so that a user without them
//! gets one clear sentence instead of a failure halfway through a lab.

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// The effective capability set, from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// None when the process has what it needs, else the sentence to show.
pub fn missing() -> Option<String> {
    let caps = effective_caps().unwrap_or(0);
    let lacking: Vec<&str> = [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| caps & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    (!lacking.is_empty()).then(|| {
        format!(
            "the runner lacks {} needed to create network namespaces: run it as root (sudo runner run ...)",
            lacking.join(" and ")
        )
    })
}
