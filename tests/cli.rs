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

#[test]
fn completions_and_the_man_page_come_from_the_command_line_itself() {
    let bash = runner(["completions", "bash"]);
    bash.assert_code(0).assert_stdout("_runner()");
    for sub in [
        "run",
        "inspect",
        "new",
        "cleanup",
        "--allow-exec",
        "--no-cache",
    ] {
        bash.assert_stdout(sub);
    }
    // The script is valid bash.
    let mut check = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), bash.stdout.as_bytes()).unwrap();
    assert!(
        check.wait().unwrap().success(),
        "bash -n refused the script"
    );
    for shell in ["zsh", "fish"] {
        runner(["completions", shell])
            .assert_code(0)
            .assert_stdout("runner");
    }
    runner(["completions", "tcsh"])
        .assert_code(2)
        .assert_stderr("invalid value 'tcsh'");
    runner(["man"])
        .assert_code(0)
        .assert_stdout(".TH runner 1")
        .assert_stdout("Run network labs written as WebAssembly components");
    // Piped into a reader that stops early, it ends quietly.
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("{RUNNER} man | head -c 10 >/dev/null")])
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
