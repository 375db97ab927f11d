//! A scenario written by a stranger cannot reach beyond its lab. The `attacks` scenario tries,
//! from inside, with `ip`, `sh`, `nsenter` and friends allowed; every attempt must be refused,
//! and the host is checked from outside too: its links, its pinned namespaces, its files.

use std::ffi::OsString;
use std::process::Command;

use crate::common::*;

fn attacks(mode: &str, extra: &[&str], args: &[&str]) -> Run {
    run_clean(attacks_args(extra, mode, args))
}

/// A namespace pinned by "the host", and a secret file only root may read; both removed after.
struct HostTargets {
    netns: String,
    secret: std::path::PathBuf,
}

impl HostTargets {
    fn new() -> HostTargets {
        let netns = format!("nslab-host-{}", std::process::id());
        assert!(Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap()
            .success());
        let secret = std::path::PathBuf::from(format!("/root/nslab-secret-{}", std::process::id()));
        std::fs::write(&secret, "the host's secret\n").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        HostTargets { netns, secret }
    }
}

impl Drop for HostTargets {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .status();
        let _ = std::fs::remove_file(&self.secret);
        let _ = std::fs::remove_file("/root/nslab-pwned");
    }
}

#[test]
fn programs_cannot_reach_beyond_the_lab() {
    // The targets change the host: no other lab test may compare host state meanwhile.
    let _labs = lab_lock();
    let targets = HostTargets::new();
    let pid = std::process::id().to_string();
    let host_links_before = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap()
        .stdout;
    let run = run_checked(attacks_args(
        &[],
        "programs",
        &[&pid, &targets.netns, targets.secret.to_str().unwrap()],
    ));
    for line in [
        "ok   `ip link set v0 netns 1` leaves v0 in the lab",
        "ok   `ip link set v0 netns HOST-PID` is refused: exit 2: RTNETLINK answers: No such process",
        "ok   `ip link add ... netns HOST-PID` is refused",
        "ok   `ip netns exec HOST-NETNS` is refused",
        "ok   `nsenter --net=/run/netns/HOST-NETNS` is refused",
        "ok   `nsenter -t HOST-PID -n` is refused",
        "ok   reading /etc/shadow is refused: exit 1: /usr/bin/cat: /etc/shadow: Permission denied",
        "ok   reading the host's secret is refused",
        "ok   writing the host's secret is refused",
        "ok   creating a file under /root is refused",
        "ok   /proc shows only the program's own processes",
        "ok   `kill -0 HOST-PID` is refused",
        "ok   LD_PRELOAD is refused: refused by the runner: denied: exec of \"cat\" refused: the scenario may not set LD_PRELOAD",
        "ok   PATH is refused: refused by the runner: denied",
        "ok   a program path /bin/sh is refused: refused by the runner: denied",
        "ok   a program path ../../bin/sh is refused: refused by the runner: denied",
        "ok   ping across the lab",
        "ok   ip address shows the lab's own link",
        "ok   ip may change the lab's own link",
        "ok   ss works",
        "ok   iperf3 works inside",
        "refused by the policy (4):",
        "PASS attacks (6 steps, 22 checks passed, 0 failed",
    ] {
        run.assert_stdout(line);
    }
    // The box hides /run/netns: `ip` cannot even name the host's namespace (the run's user
    // namespace is the layer behind, should it ever see it).
    run.assert_stdout(&format!(
        "ok   `ip link set v0 netns HOST-NETNS` is refused: exit 255: Error: argument \"{}\" is wrong: Invalid \"netns\" value",
        targets.netns
    ));
    run.assert_code(0);
    // And from the outside: nothing of the host changed.
    assert_eq!(
        std::fs::read_to_string(&targets.secret).unwrap(),
        "the host's secret\n"
    );
    assert!(!std::path::Path::new("/root/nslab-pwned").exists());
    let host_links_after = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        String::from_utf8_lossy(&host_links_after),
        String::from_utf8_lossy(&host_links_before)
    );
    let in_target = Command::new("ip")
        .args(["-n", &targets.netns, "-o", "link"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&in_target.stdout).lines().count(),
        1,
        "only lo in the host's pinned namespace"
    );
}

#[test]
fn the_guest_has_no_files_sockets_or_environment_and_its_output_is_labeled() {
    let run = attacks("wasi", &[], &[]);
    run.assert_code(0)
        .assert_stdout("ok   reading /etc/passwd fails")
        .assert_stdout("ok   writing /tmp fails")
        .assert_stdout("ok   listing / fails")
        .assert_stdout("ok   a TCP connection fails")
        .assert_stdout("ok   a UDP socket fails")
        .assert_stdout("ok   the environment is empty: []")
        .assert_stdout("   [attacks] a line from the scenario's stdout")
        .assert_stderr("   [attacks] a line from the scenario's stderr");
    assert!(!std::path::Path::new("/tmp/nslab-guest-was-here").exists());
}

#[test]
fn a_guest_that_floods_output_is_stopped_by_its_limit() {
    // run_clean checks its lab ("runaway") was torn down too.
    attacks("flood", &["--guest-output", "64KiB"], &[]).assert_code(1).assert_stdout(
        "FAIL attacks: the scenario was stopped: it wrote more than 65536 bytes to its stdout, stderr and report \
         (policy limit guest-output-bytes; raise it with --guest-output)",
    );
}

#[test]
fn a_guest_that_allocates_without_bound_is_stopped_by_its_limit() {
    attacks("alloc", &["--guest-memory", "32MiB"], &[]).assert_code(1).assert_stdout(
        "more than the policy allows (33554432 bytes, policy limit guest-memory; raise it with --guest-memory)",
    );
}

#[test]
fn a_guest_that_calls_the_host_in_a_tight_loop_is_stopped_at_the_deadline() {
    attacks("hostloop", &["--timeout", "1s"], &[])
        .assert_code(1)
        .assert_stdout("FAIL attacks: the run passed its deadline of 1s and was stopped");
}

#[test]
fn one_call_may_not_carry_more_than_the_policy_allows() {
    attacks("bigcall", &["--max-call-data", "1KiB"], &[]).assert_code(1).assert_stdout(
        "limit: exec of \"cat\" with arguments, environment and input of 65536 bytes refused: one call may pass at most 1024 \
         (policy limit call-bytes; raise it with --max-call-data)",
    );
}

#[test]
fn a_program_the_scenario_did_not_declare_is_denied_even_if_allowed() {
    attacks("undeclared", &["--allow-exec", "env"], &[])
        .assert_code(1)
        .assert_stdout("denied: exec of \"env\" refused: the scenario did not declare it in describe().programs")
        .assert_stdout("refused by the policy (1):");
}

#[test]
fn namespace_count_is_limited() {
    attacks("many-ns", &["--max-namespaces", "3"], &[]).assert_code(1).assert_stdout(
        "limit: namespace limit reached: this run already holds 3 (policy limit max-namespaces = 3; raise it with --max-namespaces)",
    );
}

#[test]
fn addresses_outside_the_allowed_ranges_are_denied() {
    // The seed assigns 192.168.0.0/24; a policy without that range refuses it.
    let file = Scratch::new("ranges.toml", b"address-ranges = [\"10.0.0.0/8\"]\n");
    let run = run_clean([
        OsString::from("run"),
        "--policy".into(),
        file.0.clone().into(),
        guest("seed").into(),
    ]);
    run.assert_code(1).assert_stdout(
        "denied: address 192.168.0.1/24 refused: it is outside the ranges a scenario may assign (policy key address-ranges); \
         allow it with --allow-addresses 192.168.0.0/24",
    );
}

#[test]
fn program_output_past_its_limit_is_cut_and_marked_not_killed() {
    attacks("bigoutput", &["--exec-output", "4KiB"], &[]).assert_code(0).assert_stdout(
        "ok   a program's output past the limit is cut and marked, and the program runs to its end: status 0",
    );
}

#[test]
fn a_guest_spinning_without_host_calls_is_stopped_at_the_deadline() {
    let run = run_clean(
        ["run", "--timeout", "1s", "--allow-exec", "sleep,sh"]
            .iter()
            .map(OsString::from)
            .chain([guest("lifecycle").into(), "--".into(), "spin".into()]),
    );
    run.assert_code(1)
        .assert_stdout("== spinning without calling the host")
        .assert_stdout("FAIL lifecycle: the run passed its deadline of 1s and was stopped; its lab was removed");
}

/// Another run's lab is as far out of reach as the host: its namespaces belong to that run's
/// user namespace, over which this run's programs have no capability.
#[test]
fn programs_cannot_reach_another_runs_lab() {
    let _labs = lab_lock();
    let kept = runner(
        ["run", "-q", "--keep"]
            .iter()
            .map(OsString::from)
            .chain([guest("seed").into()]),
    );
    kept.assert_code(0);
    let id = run_id(&kept.stdout[kept.stdout.find("kept: run").unwrap()..]);
    let _cleanup = KeptRun(id.clone());
    let theirs = format!("nslab-{id}-ns01");
    let their_links = || {
        Command::new("ip")
            .args(["-n", &theirs, "-o", "link"])
            .output()
            .unwrap()
            .stdout
    };
    let before = their_links();
    let pid = std::process::id().to_string();
    let run = runner(attacks_args(
        &[],
        "programs",
        &[&pid, &theirs, "/etc/shadow"],
    ));
    run.assert_code(0)
        .assert_stdout(&format!("ok   `ip link set v0 netns HOST-NETNS` is refused: exit 255: Error: argument \"{theirs}\" is wrong: Invalid \"netns\" value"))
        .assert_stdout("ok   `ip netns exec HOST-NETNS` is refused")
        .assert_stdout("ok   `nsenter --net=/run/netns/HOST-NETNS` is refused")
        .assert_stdout("PASS attacks (6 steps, 22 checks passed, 0 failed");
    assert_eq!(
        String::from_utf8_lossy(&their_links()),
        String::from_utf8_lossy(&before),
        "the other run's lab changed"
    );
}
