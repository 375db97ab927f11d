//! Every function of the nslab:lab contract, called from a real scenario and checked against the
//! kernel (guests/conformance).

mod common;
use common::*;

#[test]
fn every_function_of_the_contract_works() {
    let run = run_clean([
        std::ffi::OsStr::new("run"),
        std::ffi::OsStr::new("--allow-exec"),
        std::ffi::OsStr::new("cat,env,sleep"),
        guest("conformance").as_os_str(),
    ]);
    run.assert_code(0)
        .assert_stdout("PASS conformance (7 steps, 30 checks passed, 0 failed");
    assert!(!run.stdout.contains("   FAIL"), "{}", run.all());
}

#[test]
fn allow_exec_is_needed_for_programs_beyond_ping() {
    let run = run_clean([std::path::Path::new("run"), &guest("conformance")]);
    run.assert_code(1).assert_stdout(
        "the scenario returned an error: denied: exec of \"cat\" refused: it is not on the exec allowlist (ping); allow it with --allow-exec cat",
    );
}
