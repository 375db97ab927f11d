//! The command line itself: help, version, and refusing bad usage with status 2.

use crate::common::*;

#[test]
fn help_and_version() {
    let run = runner(["--help"]);
    run.assert_code(0)
        .assert_stdout("Run network labs written as WebAssembly components");
    let run = runner(["run", "--help"]);
    run.assert_code(0)
        .assert_stdout("--allow-exec <PROG[,PROG...]>");
    let run = runner(["--version"]);
    run.assert_code(0)
        .assert_stdout(concat!("runner ", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_usage_is_status_2() {
    runner(["run"])
        .assert_code(2)
        .assert_stderr("required arguments were not provided");
    runner(["frobnicate"])
        .assert_code(2)
        .assert_stderr("unrecognized subcommand");
    runner(["run", "-q", "-v", "x.wasm"])
        .assert_code(2)
        .assert_stderr("cannot be used with");
}
