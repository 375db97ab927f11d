//! Scenarios that fail on purpose: each gets exit status 1, a verdict that says why, and the lab
//! it built is torn down all the same.

use crate::common::*;

fn faults(mode: &str) -> Run {
    let guest = guest("faults");
    let run = run_clean([
        std::ffi::OsStr::new("run"),
        guest.as_os_str(),
        std::ffi::OsStr::new("--"),
        std::ffi::OsStr::new(mode),
    ]);
    // Every mode first builds two namespaces and a veth pair, so teardown had work to do.
    run.assert_stdout("   + link add ns01-veth0 (ns01) type veth peer ns02-veth0 (ns02)");
    assert_eq!(run.namespace_inodes().len(), 2, "{}", run.all());
    run
}

#[test]
fn the_faults_scenario_passes_when_asked_to() {
    faults("ok").assert_code(0).assert_stdout("PASS faults");
}

#[test]
fn returned_error_is_exit_1_with_its_message() {
    faults("err").assert_code(1).assert_stdout(
        "FAIL faults: the scenario returned an error: deliberate failure from the scenario",
    );
}

#[test]
fn panic_is_exit_1_and_the_lab_is_torn_down() {
    faults("panic")
        .assert_code(1)
        .assert_stderr("deliberate panic in the scenario")
        .assert_stdout("FAIL faults: the scenario crashed: it panicked");
}

#[test]
fn failing_check_is_exit_1() {
    faults("check")
        .assert_code(1)
        .assert_stdout("   FAIL one plus one is three: it is 2")
        .assert_stdout("   ok   this one passes")
        .assert_stdout("FAIL faults: a check failed (1 step, 1 check passed, 1 failed");
}

#[test]
fn sixteen_character_name_is_invalid_naming_the_limit() {
    faults("bad-name").assert_code(1).assert_stdout(
        "the scenario returned an error: invalid: namespace name \"sixteen-chars-xx\" is 16 characters long: \
         the limit is 15 (the kernel's IFNAMSIZ)",
    );
}

#[test]
fn bad_address_is_invalid() {
    faults("bad-address").assert_code(1).assert_stdout(
        "the scenario returned an error: invalid: address \"192.168.0.300/24\": \"192.168.0.300\" is not an IPv4 or IPv6 address",
    );
}

#[test]
fn program_not_allowed_is_denied_naming_the_flag() {
    faults("denied").assert_code(1).assert_stdout(
        "the scenario returned an error: denied: exec of \"nc\" refused: it is not on the exec allowlist (ip, iperf3, ping, ss); \
         allow it with --allow-exec nc",
    );
}

#[test]
fn duplicate_namespace_name_is_exists() {
    faults("dup-name").assert_code(1).assert_stdout(
        "the scenario returned an error: exists: namespace ns01 already exists in this run",
    );
}
