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
        // Its namespaces and its cgroup (made once a program started) go too.
        killed_run_left_nothing(&run, &id, &before, &format!("killed at {moment:?}"));
        // Its record says it died; cleanup forgets it.
        let ls = runner(["ls"]);
        assert!(ls.stdout.contains(&format!("{id}  dead")), "{}", ls.all());
        runner(["cleanup", &id])
            .assert_code(0)
            .assert_stdout(&format!("run {id} cleaned up"));
    }
}

#[test]
fn a_program_is_pid_2_of_its_own_namespace_and_its_children_die_with_it() {
    let run = run_clean(lifecycle_args("orphan", &[]));
    run.assert_code(0)
        .assert_stdout("ok   the program is PID 2 of its own namespace, under the run's init: 2");
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

// ---- daemons that shed what ties them to the run (issue 18) ----

/// What the daemon scenario is allowed: FRR's zebra by path, and what the others need.
const DAEMONS_ALLOW: &str = "/usr/lib/frr/zebra,install,tcpdump,setpriv,sh,setsid,sleep";

/// `runner run -v --allow-exec DAEMONS_ALLOW [extra] daemons.wasm -- KIND END`
fn daemons_args(kind: &str, end: &str, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![
        "run".into(),
        "-v".into(),
        "--allow-exec".into(),
        DAEMONS_ALLOW.into(),
    ];
    v.extend(extra.iter().map(Into::into));
    v.push(guest("daemons").into());
    v.extend(["--".into(), kind.into(), end.into()]);
    v
}

/// Kills every process of a run's host ids, and forgets the run, when dropped: a test that
/// fails (a runner that hangs, a daemon that outlives it) leaves nothing behind.
struct Reaper {
    ids: Vec<(u32, u32)>,
    run: String,
}

impl Reaper {
    /// Wait for `line`, then learn the run's id and host ids from what it printed so far.
    fn once_printed(bg: &mut Background, line: &str) -> (Reaper, String) {
        bg.wait_for(line);
        let seen = bg.seen.join("\n");
        let reaper = Reaper {
            ids: host_ids(&seen),
            run: run_id(&seen),
        };
        (reaper, seen)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for (pid, _, _) in processes_of(&self.ids) {
            // SAFETY: plain syscall; the pid was just seen running as one of the run's ids.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        runner(["cleanup", &self.run]);
    }
}

/// A random number of milliseconds below `max`, from the kernel's random source.
fn random_ms(max: u64) -> u64 {
    let mut b = [0u8; 8];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut b).unwrap();
    u64::from_ne_bytes(b) % max
}

/// One daemon, one way of ending: the runner ends within `limit` of `end` happening, and
/// within 2 s after it no process of the run's host ids is left, nothing holds its
/// namespaces, and `runner ls` shows nothing held.
fn daemon_outlives_nothing(kind: &str, end: &str) {
    let _labs = lab_lock();
    let before = host_state();
    let (scenario_end, extra, limit): (&str, &[&str], u64) = match end {
        "deadline" => ("wait", &["--timeout", "4s"], 4 + 6),
        "sigkill" => ("wait", &[], 3),
        other => (other, &[], 6),
    };
    let mut bg = Background::start(daemons_args(kind, scenario_end, extra));
    let (reaper, seen) = Reaper::once_printed(&mut bg, "is running as pid");
    let (id, ids) = (reaper.run.clone(), reaper.ids.clone());
    // The scenario checked that the daemon switched user (a file it made is not the run's
    // root's); where the run goes on, the host shows it too.
    assert!(
        seen.contains(&format!(
            "ok   {kind} runs as another user than the run's root"
        )),
        "{seen}"
    );
    let switched = scenario_end != "wait"
        || processes_of(&ids)
            .into_iter()
            .any(|(_, _, uid)| uid != ids[0].0);
    assert!(
        switched,
        "{kind}: no process of the run switched user: {:?}\n{seen}",
        processes_of(&ids)
    );
    let started = std::time::Instant::now();
    if end == "sigkill" {
        bg.signal(libc::SIGKILL);
    }
    let run = bg.finish_within(Duration::from_secs(limit));
    let took = started.elapsed();
    let left = || processes_of(&ids);
    let gone = within(Duration::from_secs(2), || left().is_empty());
    assert!(
        gone,
        "{kind}/{end}: processes of the run's ids left 2 s after it ended: {:?}\n{}",
        left(),
        run.all()
    );
    assert!(
        took < Duration::from_secs(limit),
        "{kind}/{end}: the runner took {took:?}\n{}",
        run.all()
    );
    let holders = namespace_holders(&run.namespace_inodes());
    assert!(
        holders.is_empty(),
        "{kind}/{end}: still held: {holders:?}\n{}",
        run.all()
    );
    assert_eq!(host_state(), before, "{kind}/{end}\n{}", run.all());
    let ls = runner(["ls"]);
    assert!(!ls.stdout.contains("held by"), "{kind}/{end}: {}", ls.all());
    match end {
        "sigkill" => {
            assert_eq!(run.code, 128 + libc::SIGKILL, "{}", run.all());
            assert!(ls.stdout.contains(&format!("{id}  dead")), "{}", ls.all());
            runner(["cleanup", &id]).assert_code(0);
        }
        _ => {
            run.assert_code(1);
            assert!(!ls.stdout.contains(&id), "{}", ls.all());
        }
    }
    drop(reaper);
}

#[test]
fn zebra_as_frr_never_outlives_a_run_however_it_ends() {
    for end in ["err", "panic", "deadline", "sigkill"] {
        daemon_outlives_nothing("zebra", end);
    }
}

#[test]
fn tcpdump_as_tcpdump_never_outlives_a_run_however_it_ends() {
    for end in ["err", "panic", "deadline", "sigkill"] {
        daemon_outlives_nothing("tcpdump", end);
    }
}

#[test]
fn a_program_in_a_new_session_that_double_forks_never_outlives_a_run() {
    for end in ["err", "panic", "deadline", "sigkill"] {
        daemon_outlives_nothing("detach", end);
    }
}

/// The SIGKILL sweep on real daemon labs: BIRD and FRR's ring, the runner killed at a random
/// moment from its first namespace on (while daemons start, converge, fail over).
#[test]
fn daemon_labs_killed_at_random_moments_leave_nothing_within_two_seconds() {
    let labs: [(&str, &str); 2] = [
        ("ospf", "bird"),
        ("frr", "/usr/lib/frr/zebra,/usr/lib/frr/ospfd,install"),
    ];
    for (scenario, allow) in labs {
        for _ in 0..2 {
            let _labs = lab_lock();
            let before = host_state();
            let args = [
                "run".into(),
                "-v".into(),
                "--allow-exec".into(),
                allow.into(),
                guest(scenario).into_os_string(),
            ];
            let mut bg = Background::start(args);
            let (reaper, _) = Reaper::once_printed(&mut bg, "host ids");
            let (id, ids) = (reaper.run.clone(), reaper.ids.clone());
            let delay = random_ms(4000);
            std::thread::sleep(Duration::from_millis(delay));
            bg.signal(libc::SIGKILL);
            let run = bg.finish_within(Duration::from_secs(3));
            let moment = format!("{scenario} killed {delay} ms after its first namespace");
            let left = || processes_of(&ids);
            let gone = within(Duration::from_secs(2), || left().is_empty());
            assert!(gone, "{moment}: {:?} left\n{}", left(), run.all());
            killed_run_left_nothing(&run, &id, &before, &moment);
            let ls = runner(["ls"]);
            assert!(
                ls.stdout.contains(&format!("{id}  dead")),
                "{moment}: {}",
                ls.all()
            );
            assert!(!ls.stdout.contains("held by"), "{moment}: {}", ls.all());
            runner(["cleanup", &id]).assert_code(0);
        }
    }
}

/// Nothing of the run's outlives it, but `ls` and `cleanup` must not take that on trust: a
/// process the test itself puts into the run's user and network namespace, outside the box,
/// plays one that did (stuck in the kernel, say). `ls` names it; `cleanup` ends it, and only
/// it: a process that merely entered the lab's namespace from outside is named and left.
#[test]
fn ls_names_what_still_holds_a_dead_runs_lab_and_cleanup_ends_only_the_runs_own() {
    let _labs = lab_lock();
    let mut bg = Background::start(lifecycle_args("hang", &["-v"]));
    let (reaper, _) = Reaper::once_printed(&mut bg, "$ ns01: sleep 30");
    let (id, ids) = (reaper.run.clone(), reaper.ids.clone());
    // The line is printed as the program starts: give it a moment to be there.
    let sleep = || {
        processes_of(&ids)
            .into_iter()
            .find(|(_, name, _)| name == "sleep")
    };
    assert!(
        within(Duration::from_secs(5), || sleep().is_some()),
        "no sleep of the run"
    );
    let program = sleep().expect("the run's sleep").0.to_string();
    let nsenter = |extra: &[&str]| {
        std::process::Command::new("nsenter")
            .args(["-t", &program])
            .args(extra)
            .args(["sleep", "60"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("nsenter (util-linux)")
    };
    // One of the run's: its user namespace, as its id 4242 (host id first + 4242).
    let mut inside = nsenter(&["--user", "--net", "-S", "4242", "-G", "4242"]);
    // And one from outside: the host's root, in the lab's network namespace only.
    let mut outside = nsenter(&["--net"]);
    // And the host's root in the run's user namespace too, keeping its credentials: nothing
    // of a run runs as the host's root (its helper and inits run as its own ids), so this
    // one entered from outside as well, and is not the run's to end.
    let mut intruder = nsenter(&["--user", "--preserve-credentials", "--net"]);
    let insider_uid = ids[0].0 + 4242;
    let entered = within(Duration::from_secs(5), || {
        processes_of(&ids).iter().any(|p| p.2 == insider_uid)
    });
    assert!(entered, "nsenter did not start: {:?}", processes_of(&ids));
    // The outsider and the intruder too: in the lab's namespace, and `sleep` by now (on a
    // busy machine nsenter may not have got that far yet).
    let settled_in = |pid: u32, kind: &str| {
        let lab = std::fs::read_link(format!("/proc/{program}/ns/{kind}")).unwrap();
        within(Duration::from_secs(5), || {
            std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok() == Some(lab.clone())
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
        })
    };
    assert!(
        settled_in(outside.id(), "net"),
        "nsenter --net did not enter the lab"
    );
    let intruder_pid = intruder.id();
    assert!(
        settled_in(intruder_pid, "user"),
        "nsenter --user did not enter the run's user namespace"
    );
    bg.signal(libc::SIGKILL);
    bg.finish_within(Duration::from_secs(3));
    let ls = runner(["ls"]);
    ls.assert_code(0)
        .assert_stdout(&format!("{id}  dead"))
        .assert_stdout(&format!(
            "held by process {} (sleep, uid {insider_uid}): the run's",
            inside.id()
        ))
        .assert_stdout(&format!(
            "held by process {} (sleep, uid 0): not the run's: entered from outside",
            outside.id()
        ))
        .assert_stdout(&format!(
            "held by process {intruder_pid} (sleep, uid 0): not the run's: entered from outside"
        ))
        .assert_stdout(&format!("`runner cleanup {id}` ends the run's"));
    let cleanup = runner(["cleanup", &id]);
    cleanup
        .assert_code(0)
        .assert_stdout(&format!(
            "removed process {} (sleep, uid {insider_uid}), which the killed runner left holding its lab",
            inside.id()
        ))
        .assert_stdout(&format!("note: left process {} (sleep, uid 0) alone", outside.id()))
        .assert_stdout(&format!("note: left process {intruder_pid} (sleep, uid 0) alone"));
    // The run's own is gone (the test reaps its child); the outsider still runs.
    let status = inside.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(
        outside.try_wait().unwrap().is_none(),
        "the outsider was ended"
    );
    assert!(
        intruder.try_wait().unwrap().is_none(),
        "the host's root in the run's user namespace was ended as if it were the run's"
    );
    for mut other in [outside, intruder] {
        let _ = other.kill();
        let _ = other.wait();
    }
    assert!(!runner(["ls"]).stdout.contains(&id));
    drop(reaper);
}
