//! The run's programs on the fake kernel, whose port starts them as plain processes of the
//! test's own (kernel/fake/port.rs): what the lab keeps of them (starts told in order, output
//! and its limit, time limits, handles, the live count, releasing, stopping them with their
//! namespace or the run), and the boxes and files of namespaces. Every program a test starts
//! ends with the test: its lab's teardown kills what is left.

use std::time::{Duration, Instant};

use super::*;
use crate::error::ErrorKind;
use crate::input::FilePath;
use crate::process::SYSTEM_PATH;

fn req(program: &str, args: &[&str]) -> ExecRequest {
    ExecRequest {
        program: program.into(),
        by_path: false,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        stdin: None,
        timeout: Duration::from_secs(10),
        output_limit: 1 << 16,
        quiet: false,
    }
}

fn sh(script: &str) -> ExecRequest {
    req("sh", &["-c", script])
}

/// Whether process `pid` is gone (or only a zombie nobody has reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Wait up to 5 s for `pid` to be gone.
async fn ends(pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_program_runs_to_its_end_with_its_output_and_status() {
    let mut t = lab();
    let a = t.ns("a");
    let out = t
        .lab
        .exec(a, sh("echo out; echo err >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!out.timed_out);
    assert!(t.said("ProgramStart"), "{:#?}", t.sink.lines());
    t.lab.teardown().await;
}

#[tokio::test]
async fn the_first_program_of_a_namespace_makes_its_box_and_the_run_is_confined_once() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    for ns in [a, a, b] {
        t.lab.exec(ns, req("true", &[])).await.unwrap();
    }
    assert_eq!(t.fake.logged("box "), ["box a", "box b"]);
    assert_eq!(t.fake.logged("confine").len(), 1);
    assert_eq!(t.fake.logged("start ").len(), 3);
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_program_not_on_the_system_path_is_refused_before_anything_starts() {
    let mut t = lab();
    let a = t.ns("a");
    is(
        t.lab.exec(a, req("no-such-program-nslab", &[])).await,
        |e| e.kind() == ErrorKind::NotFound,
        "no-such-program-nslab",
    );
    assert!(t.fake.logged("start ").is_empty());
    assert_eq!(t.lab.live_processes(), 0);
    t.lab.teardown().await;
}

#[tokio::test]
async fn output_beyond_the_limit_is_cut_and_the_cut_is_marked() {
    let mut t = lab();
    let a = t.ns("a");
    let mut r = sh("head -c 1000 /dev/zero | tr '\\0' x");
    r.output_limit = 100;
    let out = t.lab.exec(a, r).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&"x".repeat(100)), "{text}");
    assert!(
        text.contains("output cut here: 900 more bytes") && text.contains("exec-output-bytes"),
        "{text}"
    );
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_program_past_its_time_limit_is_killed_and_marked() {
    let mut t = lab();
    let a = t.ns("a");
    let mut r = req("sleep", &["30"]);
    r.timeout = Duration::from_millis(200);
    let started = Instant::now();
    let out = t.lab.exec(a, r).await.unwrap();
    assert!(out.timed_out);
    assert_eq!(out.status, 128 + libc::SIGKILL);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(t.said("killed after its time limit"));
    t.lab.teardown().await;
}

#[tokio::test]
async fn stdin_is_given_to_the_program_and_the_environment_is_path_and_what_was_passed() {
    let mut t = lab();
    let a = t.ns("a");
    let mut r = req("cat", &[]);
    r.stdin = Some(b"given".to_vec());
    assert_eq!(t.lab.exec(a, r).await.unwrap().stdout, b"given");
    let mut r = sh("echo \"$PATH|$X|$HOME\"");
    r.env = vec![("X".into(), "1".into())];
    let out = t.lab.exec(a, r).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!("{}|1|", SYSTEM_PATH)
    );
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_background_program_counts_as_live_until_it_ends() {
    let mut t = lab();
    let a = t.ns("a");
    let p = t.lab.spawn(a, req("sleep", &["0.3"])).await.unwrap();
    assert_eq!(t.lab.live_processes(), 1);
    let out = t.lab.process_wait(p, Duration::from_secs(5)).await.unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(t.lab.live_processes(), 0);
    t.lab.teardown().await;
}

#[tokio::test]
async fn background_starts_are_told_in_order_with_their_pids() {
    let mut t = lab();
    let a = t.ns("a");
    let first = t.lab.spawn(a, req("sleep", &["5"])).await.unwrap();
    let second = t.lab.spawn(a, req("sleep", &["6"])).await.unwrap();
    let (p1, p2) = (
        t.lab.process_id(first).await.unwrap(),
        t.lab.process_id(second).await.unwrap(),
    );
    assert!(p1 > 0 && p2 > 0 && p1 != p2);
    let lines = t.sink.lines();
    let told = |pid: u32| {
        lines
            .iter()
            .position(|l| l.starts_with("Command") && l.contains(&format!("Some({pid})")))
    };
    assert!(told(p1).is_some() && told(p1) < told(p2), "{lines:#?}");
    t.lab.teardown().await;
    assert!(ends(p1).await && ends(p2).await);
}

#[tokio::test]
async fn a_short_wait_is_a_timeout_and_the_program_goes_on_until_killed() {
    let mut t = lab();
    let a = t.ns("a");
    let p = t
        .lab
        .spawn(a, sh("trap 'exit 7' TERM; sleep 30 & wait"))
        .await
        .unwrap();
    is(
        t.lab.process_wait(p, Duration::from_millis(100)).await,
        |e| e.kind() == ErrorKind::Timeout,
        "",
    );
    assert_eq!(t.lab.live_processes(), 1);
    let pid = t.lab.process_id(p).await.unwrap();
    t.lab.process_kill(p).await.unwrap();
    assert_eq!(t.lab.live_processes(), 0);
    assert!(
        t.said(&format!("(pid {pid}): ended with status 7")),
        "SIGTERM first, which it handled: {:#?}",
        t.sink.lines()
    );
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_line_is_waited_for_as_it_comes_and_the_output_so_far_has_it() {
    let mut t = lab();
    let a = t.ns("a");
    let p = t
        .lab
        .spawn(a, sh("echo one; sleep 0.1; echo ready now; sleep 30"))
        .await
        .unwrap();
    let line = t
        .lab
        .process_wait_for_line(p, "ready", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(line, "ready now");
    let (out, err) = t.lab.process_output_so_far(p).await.unwrap();
    assert_eq!(out, b"one\nready now\n");
    assert!(err.is_empty());
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_program_that_ends_without_the_line_says_so() {
    let mut t = lab();
    let a = t.ns("a");
    let p = t.lab.spawn(a, sh("echo nothing here")).await.unwrap();
    is(
        t.lab
            .process_wait_for_line(p, "ready", Duration::from_secs(5))
            .await,
        |e| e.kind() == ErrorKind::NotFound,
        "ended without printing a line containing \"ready\"",
    );
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_released_program_that_has_ended_is_forgotten() {
    let mut t = lab();
    let a = t.ns("a");
    let p = t.lab.spawn(a, req("true", &[])).await.unwrap();
    t.lab.process_wait(p, Duration::from_secs(5)).await.unwrap();
    t.lab.process_release(p);
    is(
        t.lab.process_id(p).await,
        |e| e.kind() == ErrorKind::NotFound,
        "that program is gone",
    );
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_released_program_still_running_runs_on_until_the_run_ends() {
    let mut t = lab();
    let a = t.ns("a");
    let p = t.lab.spawn(a, req("sleep", &["30"])).await.unwrap();
    let pid = t.lab.process_id(p).await.unwrap();
    t.lab.process_release(p);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!gone(pid), "released, not stopped");
    assert_eq!(t.lab.live_processes(), 1, "it still counts");
    t.lab.teardown().await;
    assert!(ends(pid).await, "the run's end stops it");
}

#[tokio::test]
async fn deleting_a_namespace_stops_its_programs_and_only_its() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let in_a = t.lab.spawn(a, req("sleep", &["30"])).await.unwrap();
    let in_b = t.lab.spawn(b, req("sleep", &["30"])).await.unwrap();
    let pid_a = t.lab.process_id(in_a).await.unwrap();
    let pid_b = t.lab.process_id(in_b).await.unwrap();
    t.lab.delete_namespace(a).await.unwrap();
    assert!(ends(pid_a).await);
    assert!(!gone(pid_b));
    assert_eq!(t.lab.live_processes(), 1);
    is(
        t.lab.process_id(in_a).await,
        |e| e.kind() == ErrorKind::NotFound,
        "its namespace was deleted",
    );
    t.lab.teardown().await;
    assert!(ends(pid_b).await);
}

#[tokio::test]
async fn teardown_stops_every_program_of_the_run() {
    let mut t = lab();
    let a = t.ns("a");
    let mut pids = Vec::new();
    for _ in 0..3 {
        let p = t.lab.spawn(a, req("sleep", &["30"])).await.unwrap();
        pids.push(t.lab.process_id(p).await.unwrap());
    }
    let report = t.lab.teardown().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    for pid in pids {
        assert!(ends(pid).await, "{pid} outlived the run");
    }
    assert_eq!(t.lab.live_processes(), 0);
}

#[tokio::test]
async fn a_start_the_helper_refuses_leaves_the_count_as_it_was() {
    let mut t = lab();
    let a = t.ns("a");
    t.fake.fail_next("start ", nix::errno::Errno::EMFILE);
    is(
        t.lab.exec(a, req("true", &[])).await,
        |e| e.kind() == ErrorKind::Limit,
        "start",
    );
    assert_eq!(t.lab.live_processes(), 0);
    // The next one starts.
    assert_eq!(t.lab.exec(a, req("true", &[])).await.unwrap().status, 0);
    t.lab.teardown().await;
}

#[tokio::test]
async fn files_go_to_the_namespaces_box_and_are_read_back_within_the_limit() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let path = FilePath::parse("/etc/bird/bird.conf").unwrap();
    t.lab
        .write_file(a, &path, b"router id 1.1.1.1;", 0o644)
        .await
        .unwrap();
    assert_eq!(t.lab.files_written(), 1);
    assert_eq!(
        t.fake.logged("box "),
        ["box a"],
        "the box is made at the first file"
    );
    assert_eq!(
        t.lab.read_file(a, &path, 1 << 10).await.unwrap(),
        b"router id 1.1.1.1;"
    );
    is(
        t.lab.read_file(a, &path, 4).await,
        |e| e.kind() == ErrorKind::Limit,
        "--file-bytes",
    );
    is(
        t.lab.read_file(b, &path, 1 << 10).await,
        |e| e.kind() == ErrorKind::NotFound,
        "in namespace b",
    );
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_host_name_is_set_in_the_namespaces_own_uts_namespace() {
    let mut t = lab();
    let a = t.ns("a");
    t.lab.set_hostname(a, "router1").await.unwrap();
    assert_eq!(t.fake.logged("hostname"), ["hostname router1 (uts a)"]);
    assert!(t.said("hostname router1 (a)"));
    t.lab.teardown().await;
}

#[tokio::test]
async fn the_lab_counts_where_its_time_went_kind_by_kind() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let path = FilePath::parse("/etc/bird/bird.conf").unwrap();
    t.lab.write_file(a, &path, b"x", 0o644).await.unwrap();
    t.lab.set_hostname(a, "r1").await.unwrap();
    let p = t.lab.spawn(a, req("sleep", &["30"])).await.unwrap();
    t.lab.spawn(b, req("sleep", &["30"])).await.unwrap();
    let pid = t.lab.process_id(p).await.unwrap();
    t.lab.delete_namespace(b).await.unwrap();
    t.lab.teardown().await;
    assert!(ends(pid).await);
    let calls = |work: &str| {
        t.lab
            .spent()
            .iter()
            .find(|s| s.work == work)
            .map(|s| s.calls)
    };
    assert_eq!(calls("namespaces"), Some(2));
    // A box each (a's at its file), the confinement once, a start each, one file, one host
    // name, one deletion, one teardown.
    assert_eq!(calls("boxes"), Some(2));
    assert_eq!(calls("confinement"), Some(1));
    assert_eq!(calls("starts"), Some(2));
    assert_eq!(calls("files"), Some(1));
    assert_eq!(calls("settings"), Some(1));
    assert_eq!(calls("deleting"), Some(1));
    assert_eq!(calls("teardown"), Some(1));
    // Netlink's count is the kernel's own.
    assert_eq!(calls("netlink"), Some(t.lab.kernel_requests()));
}

#[tokio::test]
async fn a_first_file_that_fails_with_its_box_is_tried_again_step_by_step() {
    let mut t = lab();
    let a = t.ns("a");
    let path = FilePath::parse("/etc/bird/bird.conf").unwrap();
    // The one-step box-and-file fails at the file: nothing is kept of it, and the box and the
    // file are then made each alone (where a failure would say which step failed, and why).
    t.fake.fail_next("write", nix::errno::Errno::EIO);
    t.lab.write_file(a, &path, b"x", 0o644).await.unwrap();
    assert_eq!(t.fake.logged("box "), ["box a", "box a"]);
    assert_eq!(t.lab.files_written(), 1);
    assert_eq!(t.lab.read_file(a, &path, 16).await.unwrap(), b"x");
    // A second file goes to the box there is.
    let second = FilePath::parse("/etc/bird/other.conf").unwrap();
    t.lab.write_file(a, &second, b"y", 0o644).await.unwrap();
    assert_eq!(t.fake.logged("box ").len(), 2);
    t.lab.teardown().await;
}
