//! The seed scenario, end to end: the tutorial's steps as they happen, the real ping output,
//! the verdict, exit 0, and nothing left behind.

use crate::common::*;

#[test]
fn seed_runs_the_tutorial_and_leaves_nothing() {
    let run = run_clean([std::path::Path::new("run"), &guest("seed")]);
    run.assert_code(0)
        .assert_stdout("nslab: seed: the ip-netns tutorial")
        .assert_stdout("   + netns add ns01")
        .assert_stdout("   + netns add ns02")
        .assert_stdout("   + link add ns01-veth0 (ns01) type veth peer ns02-veth0 (ns02)")
        .assert_stdout("   + address add 192.168.0.1/24 dev ns01-veth0 (ns01)")
        .assert_stdout("   + address add 192.168.0.2/24 dev ns02-veth0 (ns02)")
        .assert_stdout("   + link set ns01-veth0 up (ns01)")
        .assert_stdout("   + link set ns02-veth0 up (ns02)")
        .assert_stdout("   $ ns01: ping -c 3 192.168.0.2")
        .assert_stdout("   | 64 bytes from 192.168.0.2: icmp_seq=3")
        .assert_stdout("3 packets transmitted, 3 received, 0% packet loss")
        .assert_stdout("   ok   ping lost nothing")
        .assert_stdout("PASS seed (5 steps, 2 checks passed, 0 failed");
    // The namespace identity is printed as lsns shows it: two distinct inodes.
    let inodes = run.namespace_inodes();
    assert_eq!(inodes.len(), 2, "{}", run.all());
    assert_ne!(inodes[0], inodes[1]);
    // The verdict is the last line.
    assert!(run
        .stdout
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("PASS seed"));
}

#[test]
fn verbose_says_what_teardown_removed() {
    let run = run_clean([
        std::path::Path::new("run"),
        std::path::Path::new("-v"),
        &guest("seed"),
    ]);
    run.assert_code(0)
        .assert_stdout("teardown: removed netns ns02 (net:[")
        .assert_stdout(") with links: lo, ns02-veth0")
        .assert_stdout("teardown: removed netns ns01 (net:[");
}

#[test]
fn quiet_prints_steps_checks_and_verdict_only() {
    let run = run_clean([
        std::path::Path::new("run"),
        std::path::Path::new("-q"),
        &guest("seed"),
    ]);
    run.assert_code(0)
        .assert_stdout("== Create two namespaces")
        .assert_stdout("PASS seed");
    assert!(!run.stdout.contains("   + netns add"), "{}", run.all());
    assert!(!run.stdout.contains("   | 64 bytes"), "{}", run.all());
}

/// The seed's names are the run's own: they work while the host has a pinned namespace called
/// ns01 and a link called ns01-veth0, and the run touches neither.
#[test]
fn seed_names_are_private_to_the_run() {
    let _labs = lab_lock();
    let pinned = HostObject::netns("ns01");
    let link = HostObject::host_link("ns01-veth0");
    let before = host_state();
    let run = runner([std::path::Path::new("run"), &guest("seed")]);
    run.assert_code(0).assert_stdout("PASS seed");
    assert_eq!(host_state(), before, "{}", run.all());
    drop((pinned, link));
}

/// A host object the test makes only if the host does not already have it, and removes after,
/// even when the test fails.
struct HostObject {
    undo: Option<[&'static str; 3]>,
}

fn ip(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip")
}

impl HostObject {
    fn netns(name: &'static str) -> HostObject {
        let list = String::from_utf8_lossy(&ip(&["netns", "list"]).stdout).into_owned();
        if list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name))
        {
            return HostObject { undo: None };
        }
        assert!(
            ip(&["netns", "add", name]).status.success(),
            "ip netns add {name}"
        );
        HostObject {
            undo: Some(["netns", "delete", name]),
        }
    }

    fn host_link(name: &'static str) -> HostObject {
        if ip(&["link", "show", "dev", name]).status.success() {
            return HostObject { undo: None };
        }
        // A bridge: every kernel has it (this machine kind has no dummy driver).
        let made = ip(&["link", "add", name, "type", "bridge"]);
        assert!(made.status.success(), "ip link add {name} type bridge");
        HostObject {
            undo: Some(["link", "delete", name]),
        }
    }
}

impl Drop for HostObject {
    fn drop(&mut self) {
        if let Some(undo) = self.undo {
            ip(&undo);
        }
    }
}
