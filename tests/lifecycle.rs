//! The ends of a run: Ctrl-C, SIGTERM, a second Ctrl-C, and SIGKILL at several moments; runs
//! side by side; many runs in one process. Whatever happens, the lab is gone afterwards.

use std::ffi::OsStr;
use std::time::Duration;

use crate::common::*;

/// `runner run [extra] --allow-exec sleep,sh lifecycle.wasm -- MODE`
fn lifecycle_args(mode: &str, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> =
        vec!["run".into(), "--allow-exec".into(), "sleep,sh".into()];
    v.extend(extra.iter().map(Into::into));
    v.push(guest("lifecycle").into());
    v.push("--".into());
    v.push(mode.into());
    v
}

/// Nothing refers to the run's namespaces and the host is as before.
fn assert_gone(run: &Run, before: &HostState) {
    let inodes = run.namespace_inodes();
    assert!(
        !inodes.is_empty(),
        "the run created nothing?\n{}",
        run.all()
    );
    let holders = namespace_holders(&inodes);
    assert!(holders.is_empty(), "still held: {holders:?}\n{}", run.all());
    assert_eq!(&host_state(), before, "{}", run.all());
}

#[test]
fn sigint_during_a_program_stops_it_and_removes_the_lab() {
    let _labs = lab_lock();
    let before = host_state();
    let mut bg = Background::start(lifecycle_args("hang", &["-v"]));
    bg.wait_for("$ ns01: sleep 30");
    bg.signal(libc::SIGINT);
    let run = bg.finish();
    run.assert_code(130)
        .assert_stderr("runner: warning: SIGINT: stopping the scenario and removing its lab")
        .assert_stdout("teardown: removed netns ns02")
        .assert_stdout("teardown: removed netns ns01")
        .assert_stdout("STOPPED lifecycle: interrupted by SIGINT; its lab was removed");
    assert_gone(&run, &before);
}

#[test]
fn sigterm_stops_a_guest_that_never_calls_the_host() {
    let _labs = lab_lock();
    let before = host_state();
    let mut bg = Background::start(lifecycle_args("spin", &["-v"]));
    bg.wait_for("== spinning without calling the host");
    bg.signal(libc::SIGTERM);
    let run = bg.finish();
    run.assert_code(143)
        .assert_stdout("teardown: removed netns ns01")
        .assert_stdout("STOPPED lifecycle: interrupted by SIGTERM");
    assert_gone(&run, &before);
}

#[test]
fn sigint_during_setup_removes_what_was_made() {
    let _labs = lab_lock();
    let before = host_state();
    let mut bg = Background::start(lifecycle_args("slow", &["-v"]));
    bg.wait_for("+ netns add ns01");
    bg.signal(libc::SIGINT);
    let run = bg.finish();
    run.assert_code(130)
        .assert_stdout("teardown: removed netns ns01");
    assert_gone(&run, &before);
}

#[test]
fn a_second_sigint_does_not_abandon_the_teardown() {
    let _labs = lab_lock();
    let before = host_state();
    let mut bg = Background::start(lifecycle_args("hang", &["-v"]));
    bg.wait_for("$ ns01: sleep 30");
    bg.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(5));
    bg.signal(libc::SIGINT);
    let run = bg.finish();
    // Both namespaces were torn down and reported, whenever the second signal landed.
    run.assert_code(130)
        .assert_stdout("teardown: removed netns ns02")
        .assert_stdout("teardown: removed netns ns01")
        .assert_stdout("STOPPED lifecycle");
    assert_gone(&run, &before);
}

/// SIGKILL cannot be caught: the kernel must free the lab by itself, because namespaces are
/// held only by the runner's fds and its programs die with it.
#[test]
fn sigkill_at_any_moment_leaves_nothing_within_two_seconds() {
    let _labs = lab_lock();
    let before = host_state();
    let moments: [(&str, &[&str], &str); 4] = [
        ("slow", &[], "+ netns add ns01"),
        ("slow", &[], "+ link add ns01-veth0"),
        ("hang", &[], "$ ns01: sleep 30"),
        ("orphan-hang", &[], "$ ns01: sh -c"),
    ];
    for (mode, extra, moment) in moments {
        let mut bg = Background::start(lifecycle_args(mode, extra));
        bg.wait_for(moment);
        let id = run_id(&bg.seen.join("\n"));
        let alive = Run {
            code: 0,
            stdout: bg.seen.join("\n"),
            stderr: String::new(),
        };
        // The check below can fail: right now the runner itself holds these namespaces.
        assert!(
            !namespace_holders(&alive.namespace_inodes()).is_empty(),
            "killed at {moment:?}"
        );
        bg.signal(libc::SIGKILL);
        let run = bg.finish();
        assert_eq!(run.code, 128 + libc::SIGKILL, "{}", run.all());
        let inodes = run.namespace_inodes();
        let freed = within(Duration::from_secs(2), || {
            namespace_holders(&inodes).is_empty()
        });
        assert!(
            freed,
            "killed at {moment:?}: still held after 2 s: {:?}",
            namespace_holders(&inodes)
        );
        assert_eq!(host_state(), before, "killed at {moment:?}");
        // Its cgroup (made once a program started) goes too: its janitor removes it.
        let cgroup_gone = within(Duration::from_secs(2), || run_cgroups(&id).is_empty());
        assert!(
            cgroup_gone,
            "killed at {moment:?}: {:?} left",
            run_cgroups(&id)
        );
        // Its record says it died; cleanup forgets it.
        let ls = runner(["ls"]);
        assert!(ls.stdout.contains(&format!("{id}  dead")), "{}", ls.all());
        runner(["cleanup", &id])
            .assert_code(0)
            .assert_stdout(&format!("run {id} cleaned up"));
    }
}

#[test]
fn a_program_is_pid_1_of_its_own_namespace_and_its_children_die_with_it() {
    let run = run_clean(lifecycle_args("orphan", &[]));
    run.assert_code(0)
        .assert_stdout("ok   the program is PID 1 of its own namespace: 1");
    // run_clean found nothing in the run's namespaces: the background `sleep 300` died with it.
}

#[test]
fn ls_shows_a_run_in_progress_and_cleanup_refuses_it() {
    let _labs = lab_lock();
    let mut bg = Background::start(lifecycle_args("hang", &[]));
    bg.wait_for("$ ns01: sleep 30");
    let id = run_id(&bg.seen.join("\n"));
    let ls = runner(["ls"]);
    ls.assert_code(0).assert_stdout(&format!("{id}  running"));
    let inodes = {
        let seen = Run {
            code: 0,
            stdout: bg.seen.join("\n"),
            stderr: String::new(),
        };
        seen.namespace_inodes()
    };
    for inode in &inodes {
        ls.assert_stdout(&format!("net:[{inode}]"));
    }
    runner(["cleanup", &id])
        .assert_code(1)
        .assert_stderr(&format!("run {id} is still running"));
    bg.signal(libc::SIGTERM);
    bg.finish().assert_code(143);
    assert!(!runner(["ls"]).stdout.contains(&id));
}

#[test]
fn eight_seed_runs_side_by_side_all_pass_and_leave_nothing() {
    let _labs = lab_lock();
    let before = host_state();
    let seed = guest("seed");
    let runs: Vec<Background> = (0..8)
        .map(|_| Background::start([OsStr::new("run"), seed.as_os_str()]))
        .collect();
    let runs: Vec<Run> = runs.into_iter().map(Background::finish).collect();
    let mut inodes = Vec::new();
    for run in &runs {
        run.assert_code(0).assert_stdout("PASS seed");
        inodes.extend(run.namespace_inodes());
    }
    inodes.sort();
    inodes.dedup();
    assert_eq!(
        inodes.len(),
        16,
        "eight runs, two namespaces each, all distinct"
    );
    assert!(namespace_holders(&inodes).is_empty());
    assert_eq!(host_state(), before);
}

#[test]
fn the_run_deadline_stops_the_scenario_and_removes_the_lab() {
    let run = run_clean(lifecycle_args("hang", &["-v", "--timeout", "1s"]));
    run.assert_code(1)
        .assert_stdout("teardown: removed netns ns02")
        .assert_stdout("teardown: removed netns ns01")
        .assert_stdout(
            "FAIL lifecycle: the run passed its deadline of 1s and was stopped; its lab was removed \
             (policy limit run-timeout; give more with --timeout)",
        );
    // Teardown goes newest first.
    let (ns02, ns01) = (
        run.stdout.find("removed netns ns02").unwrap(),
        run.stdout.find("removed netns ns01").unwrap(),
    );
    assert!(ns02 < ns01, "{}", run.all());
}
