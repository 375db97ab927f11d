//! `--keep`, `runner ls` and `runner cleanup`: a kept lab is pinned where `ip netns` sees it,
//! and cleanup removes exactly what the run pinned, found by its record, never by name pattern.

use std::process::Command;

use crate::common::*;

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn pinned_names() -> Vec<String> {
    String::from_utf8_lossy(&ip(&["netns", "list"]).stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Removes a pin the test made itself, even if the test fails.
struct TestPin(String);

impl Drop for TestPin {
    fn drop(&mut self) {
        ip(&["netns", "delete", &self.0]);
    }
}

#[test]
fn keep_pins_the_lab_and_cleanup_removes_exactly_it() {
    let _labs = lab_lock();
    let before = pinned_names();
    let run = runner([
        std::path::Path::new("run"),
        std::path::Path::new("--keep"),
        &guest("seed"),
    ]);
    run.assert_code(0)
        .assert_stdout("PASS seed")
        .assert_stdout("kept: run ");
    let id = run_id(&run.stdout[run.stdout.find("kept: run").unwrap()..]);
    let _guard = KeptRun(id.clone());
    let (p1, p2) = (format!("nslab-{id}-ns01"), format!("nslab-{id}-ns02"));
    run.assert_stdout(&format!("ip netns exec {p1} ip address"))
        .assert_stdout(&format!("remove it:  runner cleanup {id}"));

    // ip netns sees the kept lab, and it still works: ping across the kept veth pair.
    let pinned = pinned_names();
    assert!(pinned.contains(&p1) && pinned.contains(&p2), "{pinned:?}");
    let addr = ip(&["-n", &p1, "-br", "address", "show", "ns01-veth0"]);
    assert!(String::from_utf8_lossy(&addr.stdout).contains("192.168.0.1/24"));
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &p1,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "192.168.0.2",
        ])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // ls lists it with its pins and the inodes the run printed.
    let ls = runner(["ls"]);
    ls.assert_code(0)
        .assert_stdout(&format!("{id}  kept"))
        .assert_stdout(&format!("/run/netns/{p1}"));
    for inode in run.namespace_inodes() {
        ls.assert_stdout(&format!("net:[{inode}]"));
    }

    // A namespace pinned by someone else, with a name just like the run's, is never touched.
    let decoy = format!("nslab-{id}-ns03");
    assert!(ip(&["netns", "add", &decoy]).status.success());
    let _decoy = TestPin(decoy.clone());

    let clean = runner(["cleanup", &id]);
    clean
        .assert_code(0)
        .assert_stdout(&format!("removed /run/netns/{p1} (ns01, net:["))
        .assert_stdout(&format!("removed /run/netns/{p2} (ns02, net:["))
        .assert_stdout(&format!("run {id} cleaned up"));
    let after = pinned_names();
    assert!(after.contains(&decoy), "the decoy was touched: {after:?}");
    let mut expected = before.clone();
    expected.insert(0, decoy);
    let mut after_sorted = after.clone();
    after_sorted.sort();
    expected.sort();
    assert_eq!(after_sorted, expected);
    assert!(!runner(["ls"]).stdout.contains(&id));
}

#[test]
fn cleanup_leaves_a_pin_that_now_holds_another_namespace() {
    let _labs = lab_lock();
    let run = runner([
        std::path::Path::new("run"),
        std::path::Path::new("-q"),
        std::path::Path::new("--keep"),
        &guest("seed"),
    ]);
    run.assert_code(0);
    let id = run_id(&run.stdout[run.stdout.find("kept: run").unwrap()..]);
    let _guard = KeptRun(id.clone());
    let p1 = format!("nslab-{id}-ns01");
    // Someone removes the run's pin and pins a different namespace under the same name.
    assert!(ip(&["netns", "delete", &p1]).status.success());
    assert!(ip(&["netns", "add", &p1]).status.success());
    let _theirs = TestPin(p1.clone());

    let clean = runner(["cleanup", &id]);
    clean
        .assert_code(0)
        .assert_stdout(&format!(
            "note: left /run/netns/{p1} alone: it now holds net:["
        ))
        .assert_stdout(&format!("removed /run/netns/nslab-{id}-ns02"));
    assert!(pinned_names().contains(&p1), "their namespace must stay");
}

#[test]
fn cleanup_of_an_unknown_run_says_how_to_find_runs() {
    runner(["cleanup", "00000000"])
        .assert_code(2)
        .assert_stderr("there is no run \"00000000\": `runner ls` lists the runs");
    runner(["cleanup", "../../etc"])
        .assert_code(2)
        .assert_stderr("there is no run");
    runner(["cleanup"]).assert_code(2).assert_stderr("required");
}

#[test]
fn keep_keeps_what_programs_wrote_until_cleanup() {
    let _labs = lab_lock();
    let run = runner(attacks_args(
        &["--keep"],
        "shell",
        &["echo kept-file > /tmp/note"],
    ));
    run.assert_code(0);
    let id = run_id(&run.stdout[run.stdout.find("kept: run").unwrap()..]);
    let _guard = KeptRun(id.clone());
    let files = format!("/run/nslab/boxes/nslab-{id}-a");
    run.assert_stdout(&format!("its files:  nsenter --mount={files} ls /tmp /run"));
    let read = Command::new("nsenter")
        .args([&format!("--mount={files}"), "cat", "/tmp/note"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&read.stdout), "kept-file\n");
    let clean = runner(["cleanup", &id]);
    clean
        .assert_code(0)
        .assert_stdout(&format!("{files} (the files of a)"));
    assert!(!std::path::Path::new(&files).exists());
}
