//! Every function of the nslab:lab contract, called from a real scenario and checked against the
//! kernel (guests/conformance).

use crate::common::*;

/// `runner run FLAGS --allow-exec cat,env,sleep,sh --allow-env LAB_ROLE conformance.wasm`: the
/// scenario sets one variable of its own for a program (exec-env-allow).
fn conformance(flags: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
    args.extend(flags.iter().map(Into::into));
    args.extend(
        [
            "--allow-exec",
            "cat,env,sleep,sh",
            "--allow-env",
            "LAB_ROLE",
        ]
        .map(Into::into),
    );
    args.push(guest("conformance").into());
    args
}

#[test]
fn every_function_of_the_contract_works() {
    let run = run_clean(conformance(&[]));
    run.assert_code(0)
        .assert_stdout("ok   a second link named va in a is refused as exists: exists: link va already exists in namespace a: pick another name or remove it first")
        .assert_stdout("ok   a peer named like a link of b is refused as exists: exists: link vb already exists in namespace b")
        .assert_stdout("PASS conformance (9 steps, 61 checks passed, 0 failed");
    // Bad input is refused in words before the kernel (issue 32's fuzz: the rate reached the
    // kernel, and a bridge as a port came back as ELOOP).
    run.assert_stdout("ok   a bridge as a port of a bridge is invalid: invalid: br0 is itself a bridge")
        .assert_stdout("ok   a rate past any link is invalid, before the kernel: invalid: a rate of 2900000000000000000 bit/s is more than any link carries");
    assert!(!run.stdout.contains("   FAIL"), "{}", run.all());
    // A quiet exec: on the terminal neither its output nor (without -v) its command line.
    run.assert_stdout("ok   a quiet exec returns what it printed")
        .assert_stdout("ok   a link is found by its namespace and name: va")
        .assert_stdout("ok   a link the run did not make is not-found")
        .assert_stdout("ok   a namespace's programs see its name as host name: a")
        .assert_stdout("ok   set-hostname changes it: router-1")
        .assert_stdout(
            "ok   route-details: protocol, metric, table and two next hops, as ip route says",
        );
    assert!(!run.stdout.contains("polled-quietly-4242"), "{}", run.all());
}

/// What a quiet exec printed is in the --json events all the same.
#[test]
fn a_quiet_exec_is_in_the_json_events_and_not_on_the_terminal() {
    let run = run_clean(conformance(&["--json"]));
    run.assert_code(0);
    let recorded = run.stdout.lines().any(|l| {
        let e: serde_json::Value = serde_json::from_str(l).unwrap();
        e["event"] == "output" && e["line"] == "polled-quietly-4242"
    });
    assert!(recorded, "{}", run.stdout);
    assert!(
        !run.stderr.contains("polled-quietly-4242"),
        "{}",
        run.stderr
    );
}

#[test]
fn programs_it_declares_must_be_allowed_before_anything_is_made() {
    let run = run_clean([std::path::Path::new("run"), &guest("conformance")]);
    run.assert_code(2).assert_stderr(
        "runner: error: scenario conformance declares programs the policy does not allow: \
         cat, env, sleep, sh are not on the exec allowlist (allow with --allow-exec cat,env,sleep,sh)",
    );
    assert!(!run.stdout.contains("netns add"), "{}", run.all());
    let run = run_clean(
        [
            "run",
            "--allow-exec",
            "cat,env,sleep,sh",
            "--deny-exec",
            "env",
        ]
        .iter()
        .map(std::ffi::OsString::from)
        .chain([guest("conformance").into()]),
    );
    run.assert_code(2)
        .assert_stderr("env denied by exec-deny (default + flag --deny-exec)");
}

#[test]
fn a_link_a_program_made_does_not_confuse_the_labs_own() {
    // The lab asks the kernel for the indexes of new links; when a program took one first,
    // the kernel says EBUSY and the lab lets it choose (link.rs): the pair is still the one the
    // scenario holds.
    run_clean(attacks_args(&[], "index-taken", &[]))
        .assert_code(0)
        .assert_stdout(
            "ok   the pair made after a program took an index is the lab's, and works: x0#4 y0#3",
        )
        .assert_stdout("ok   ping across it")
        .assert_stdout(
            "ok   a link moved where a program took its index is the lab's, and works: mv0#",
        );
}
