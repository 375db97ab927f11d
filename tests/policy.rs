//! `runner policy` and `runner inspect`: knowing what a scenario may do, before running it.

use std::ffi::OsString;

use crate::common::*;

#[test]
fn policy_prints_every_key_with_its_source() {
    let run = runner(["policy"]);
    run.assert_code(0)
        .assert_stdout("exec-allow           ip, iperf3, ping, ss")
        .assert_stdout("max-namespaces       64")
        .assert_stdout("run-timeout          10m")
        .assert_stdout("guest-memory         256 MiB");
    for key in nslab_host::policy::KEYS {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(key) && l.ends_with("default")),
            "{key}\n{}",
            run.all()
        );
    }
}

#[test]
fn a_file_and_flags_combine_and_say_where_each_value_came_from() {
    let file = Scratch::new(
        "policy.toml",
        b"exec-allow = [\"ping\", \"tcpdump\"]\nmax-namespaces = 8\nrun-timeout = \"90s\"\n",
    );
    let shown = file.0.display().to_string();
    let run = runner([
        OsString::from("policy"),
        "--policy".into(),
        file.0.clone().into(),
        "--max-namespaces".into(),
        "4".into(),
        "--deny-exec".into(),
        "tcpdump".into(),
    ]);
    run.assert_code(0)
        .assert_stdout("exec-allow           ping, tcpdump")
        .assert_stdout(&format!("file {shown}"))
        .assert_stdout("max-namespaces       4")
        .assert_stdout("flag --max-namespaces")
        .assert_stdout("run-timeout          1m 30s")
        .assert_stdout("exec-deny            tcpdump");
}

#[test]
fn a_bad_policy_file_is_refused_naming_the_problem() {
    let file = Scratch::new("bad.toml", b"max-namespaecs = 3\n");
    let run = runner([
        OsString::from("policy"),
        "--policy".into(),
        file.0.clone().into(),
    ]);
    run.assert_code(2)
        .assert_stderr("is not valid: unknown field `max-namespaecs`");
    let run = runner([
        OsString::from("run"),
        "--policy".into(),
        file.0.clone().into(),
        guest("seed").into(),
    ]);
    run.assert_code(2)
        .assert_stderr("unknown field `max-namespaecs`");
    runner(["policy", "--guest-memory", "lots"])
        .assert_code(2)
        .assert_stderr("not a size");
}

#[test]
fn inspect_shows_the_scenario_without_touching_the_kernel() {
    let _labs = lab_lock();
    let before = host_state();
    let seed = guest("seed");
    let run = runner([OsString::from("inspect"), seed.clone().into()]);
    run.assert_code(0)
        .assert_stdout("scenario     seed")
        .assert_stdout("description  the ip-netns tutorial")
        .assert_stdout("programs     ping")
        .assert_stdout("nslab:lab/netns@0.1.0")
        .assert_stdout("nslab:lab/exec@0.1.0")
        .assert_stdout("policy       allows everything it declares");
    let sum = std::process::Command::new("sha256sum")
        .arg(&seed)
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    run.assert_stdout(&format!("sha256       {sum}"));
    assert_eq!(host_state(), before);
    // It needs no privilege at all.
    runner_as_nobody("inspect", &seed)
        .assert_code(0)
        .assert_stdout("scenario     seed");
}

#[test]
fn inspect_says_when_the_policy_would_refuse() {
    let run = runner([OsString::from("inspect"), guest("conformance").into()]);
    run.assert_code(1).assert_stdout(
        "policy       would refuse it: cat, env, sleep, sh are not on the exec allowlist (allow with --allow-exec cat,env,sleep,sh)",
    );
    let run = runner([
        OsString::from("inspect"),
        "--allow-exec".into(),
        "cat,env,sleep,sh".into(),
        guest("conformance").into(),
    ]);
    run.assert_code(0);
    runner(["inspect", "/nonexistent.wasm"])
        .assert_code(2)
        .assert_stderr("cannot read /nonexistent.wasm");
}

/// A program declared by name that lives outside the system PATH (FRR's daemons in
/// /usr/lib/frr): the hint names its path, and with it allowed by name, inspect's verdict and
/// the run both say so before anything runs, instead of failing halfway.
#[test]
fn a_program_outside_the_path_is_named_by_its_path_before_the_run() {
    let frr = guest("frr");
    let frr = frr.to_str().unwrap();
    runner(["inspect", frr])
        .assert_code(1)
        .assert_stdout("allow with --allow-exec /usr/lib/frr/zebra,/usr/lib/frr/ospfd,install");
    let by_name = ["--allow-exec", "zebra,ospfd,install"];
    let inspect = runner(["inspect", by_name[0], by_name[1], frr]);
    inspect
        .assert_code(1)
        .assert_stdout("program \"zebra\" is allowed by name, but it is not on the system PATH")
        .assert_stdout("it is at /usr/lib/frr/zebra; allow it by path instead: --allow-exec /usr/lib/frr/zebra");
    assert!(
        !inspect.stdout.contains("allows everything"),
        "{}",
        inspect.all()
    );
    let run = run_clean(["run", by_name[0], by_name[1], frr]);
    run.assert_code(2)
        .assert_stderr("scenario frr declares programs this machine cannot start")
        .assert_stderr("--allow-exec /usr/lib/frr/ospfd");
    assert!(!run.stdout.contains("netns add"), "{}", run.all());
}

/// `max-links` bounds what a run holds, not how long it runs (issue 32): 3,000 rounds of a
/// namespace made with a veth pair to a kept one, given an address and deleted, pass under the
/// default limits (256 links, 64 namespaces). The previous runner stopped at the 128th round,
/// "this run has created 256 links".
#[test]
fn a_lab_rebuilt_3000_times_stays_within_the_default_limits() {
    let run = run_clean([
        "run",
        "-q",
        guest("churn").to_str().unwrap(),
        "--",
        "--rounds",
        "3000",
    ]);
    run.assert_code(0)
        .assert_stdout("ok   3000 rounds ran: the lab holds [\"keep\"]");
    assert!(!run.all().contains("limit reached"), "{}", run.all());
}

/// What the kernel cannot close is named (issue 32): an allowed interpreter computes anything
/// it is given. `runner policy` lists the allowed ones, `runner inspect` the declared ones.
#[test]
fn policy_and_inspect_name_the_interpreters_that_open_a_route_past_the_allowlist() {
    let plain = runner(["policy"]);
    plain.assert_code(0);
    assert!(
        !plain.stdout.contains("Routes past the allowlist"),
        "{}",
        plain.stdout
    );
    runner(["policy", "--allow-exec", "python3,env"])
        .assert_code(0)
        .assert_stdout("Routes past the allowlist that no kernel rule closes")
        .assert_stdout("python3 interprets code it is given and can make memory executable itself")
        .assert_stdout("(deny it with --deny-exec python3)");
    let inspected = runner([
        "inspect",
        "--allow-exec",
        "env,timeout,python3,cat",
        guest("loader").to_str().unwrap(),
    ]);
    inspected
        .assert_code(0)
        .assert_stdout("nor can they map another program as code")
        .assert_stdout("note         python3 interprets code it is given");
    assert!(
        !inspected.stdout.contains("note         env "),
        "{}",
        inspected.stdout
    );
}
