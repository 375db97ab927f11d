//! Real labs: routing daemons with their own config files (BIRD 2, FRR), a capture read back
//! and parsed, the program under test allowed by path; files for a namespace's programs;
//! readiness without sleeps; daemons that switch to their service user inside a host id range
//! of the run's own. Where a package cannot be had, the test says SKIPPED visibly.

use std::ffi::OsString;
use std::time::Duration;

use crate::common::*;

/// Whether `program` is installed; if not, the test is skipped, visibly.
fn installed(program: &str, package: &str, test: &str) -> bool {
    let here = std::path::Path::new(program).exists();
    if !here {
        skipped(&format!(
            "{test}: {program} is not installed (Debian package {package})"
        ));
    }
    here
}

fn run_lab(allow: &str, scenario: &str) -> Run {
    run_clean([
        OsString::from("run"),
        "--allow-exec".into(),
        allow.into(),
        guest(scenario).into(),
    ])
}

/// The ring's checks, as both routing suites must pass them.
fn assert_ring(run: &Run, name: &str) {
    run.assert_code(0)
        .assert_stdout("ok   OSPF converged: in ")
        .assert_stdout("ok   host 1 pings host 3 through router 1 and router 3: ttl=62")
        .assert_stdout("ok   router 1 reaches host 3 through router 2: rerouted in ")
        .assert_stdout("ok   host 1 still pings host 3, one router further: ttl=61")
        .assert_stdout("ok   router 1 reaches host 3 directly again: in ")
        .assert_stdout(&format!("PASS {name} (5 steps, 5 checks passed, 0 failed"));
}

#[test]
fn ospf_with_bird_converges_fails_over_and_comes_back() {
    if !installed("/usr/sbin/bird", "bird2", "ospf") {
        return;
    }
    let before = std::fs::read("/etc/bird/bird.conf").ok();
    let run = run_lab("bird", "ospf");
    assert_ring(&run, "ospf");
    // The daemons went with the run; the host's bird.conf is as it was.
    assert!(lab_processes("bird").is_empty());
    assert_eq!(
        std::fs::read("/etc/bird/bird.conf").ok(),
        before,
        "the host's bird.conf changed"
    );
}

#[test]
fn ospf_with_frr_converges_fails_over_and_comes_back() {
    if !installed("/usr/lib/frr/zebra", "frr", "frr") {
        return;
    }
    let before = std::fs::read("/etc/frr/frr.conf").ok();
    let run = run_lab("/usr/lib/frr/zebra,/usr/lib/frr/ospfd,install", "frr");
    assert_ring(&run, "frr");
    run.assert_stdout("program zebra -> /usr/lib/frr/zebra (sha256 ");
    assert!(lab_processes("zebra").is_empty() && lab_processes("ospfd").is_empty());
    assert_eq!(
        std::fs::read("/etc/frr/frr.conf").ok(),
        before,
        "the host's frr.conf changed"
    );
}

/// FRR as containerlab runs it: an integrated frr.conf loaded with `vtysh -b` into daemons
/// started without one, readiness from their vty sockets, the new route fields in the checks;
/// and the report's picture as the kernel had the lab at the end: the addresses zebra set, the
/// cut link drawn down, the routes ospfd made.
#[test]
fn frr_the_containerlab_way_and_the_picture_of_what_the_daemons_made() {
    if !installed("/usr/lib/frr/zebra", "frr", "frr-integrated") {
        return;
    }
    let before = std::fs::read("/etc/frr/frr.conf").ok();
    let report = std::env::temp_dir().join(format!("nslab-test-{}-frr-report", std::process::id()));
    let _ = std::fs::remove_dir_all(&report);
    let run = run_clean([
        OsString::from("run"),
        "--allow-exec".into(),
        "/usr/lib/frr/zebra,/usr/lib/frr/ospfd,vtysh,install,ping".into(),
        "--report".into(),
        report.clone().into(),
        guest("frr_integrated").into(),
    ]);
    let svg = std::fs::read_to_string(report.join("topology.svg")).unwrap_or_default();
    let index = std::fs::read_to_string(report.join("index.html")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&report);
    run.assert_code(0)
        .assert_stdout("ok   zebra gave router1's eth1 its address from frr.conf: 10.0.12.1/24")
        .assert_stdout("ok   OSPF converged: in ")
        .assert_stdout(
            "ok   router1 reaches the router2-router3 link over two equal-cost paths, learned by OSPF: via 10.0.12.2 dev eth1, via 10.0.13.3 dev eth2",
        )
        .assert_stdout("ok   pc1 pings pc3 through router1 and router3: ttl=62")
        .assert_stdout("ok   router1 reaches pc3 through router2: rerouted in ")
        .assert_stdout("ok   pc1 still pings pc3, one router further: ttl=61")
        .assert_stdout("PASS frr-integrated (5 steps, 6 checks passed, 0 failed");
    // vtysh found its vtysh.conf, and the daemons were ready for `vtysh -b`.
    assert!(
        !run.all().contains("failed to connect to any daemons"),
        "{}",
        run.all()
    );
    assert!(
        !run.all().contains("Can't open configuration file"),
        "{}",
        run.all()
    );
    // The addresses zebra set, on the routers' boxes; the cut link drawn down at both ends.
    assert!(svg.contains("eth1 10.0.12.1/24</text>"), "{svg}");
    assert!(svg.contains("eth2 10.0.13.1/24 (down)</text>"), "{svg}");
    assert!(svg.contains("eth1 10.0.13.3/24 (down)</text>"), "{svg}");
    assert_eq!(svg.matches("class=\"down\"").count(), 1, "{svg}");
    // The routes ospfd made, as the kernel had them when the scenario ended.
    assert!(
        index.contains("192.168.3.0/24 via 10.0.12.2 dev eth1 proto ospf metric 20"),
        "{index}"
    );
    assert!(lab_processes("zebra").is_empty() && lab_processes("ospfd").is_empty());
    assert_eq!(
        std::fs::read("/etc/frr/frr.conf").ok(),
        before,
        "the host's frr.conf changed"
    );
}

#[test]
fn a_capture_is_read_back_and_tcpdump_runs_as_its_own_user() {
    if !installed("/usr/bin/tcpdump", "tcpdump", "capture") {
        return;
    }
    let _labs = lab_lock();
    let mut bg = Background::start([
        OsString::from("run"),
        "--allow-exec".into(),
        "tcpdump".into(),
        guest("capture").into(),
    ]);
    bg.wait_for("tcpdump is listening");
    let uids = lab_processes("tcpdump");
    let run = bg.finish();
    run.assert_code(0)
        .assert_stdout("ok   the capture holds 3 echo requests and 3 replies: 708 bytes")
        .assert_stdout("PASS capture (4 steps, 4 checks passed, 0 failed");
    // tcpdump switched to the tcpdump user, which the run's range maps to a host id of its own.
    let inside: u32 = String::from_utf8_lossy(
        &std::process::Command::new("id")
            .args(["-u", "tcpdump"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(uids.len(), 1, "{uids:?}");
    assert_eq!(
        uids[0] % 65536,
        inside,
        "tcpdump runs as host id {}",
        uids[0]
    );
}

#[test]
fn the_program_under_test_runs_by_the_name_of_the_file_the_operator_named() {
    let dir = std::env::temp_dir().join(format!("nslab-sut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("udp-echo");
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/udp-echo.c");
    let built = std::process::Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .status()
        .expect("cc (gcc)");
    assert!(built.success());
    let run = run_lab(program.to_str().unwrap(), "sut");
    let _ = std::fs::remove_dir_all(&dir);
    run.assert_code(0)
        .assert_stdout(&format!(
            "program udp-echo -> {} (sha256 ",
            program.display()
        ))
        .assert_stdout("ok   the server is ready: ready on port 7777")
        .assert_stdout("ok   the echo comes back: exit 0: hello lab")
        .assert_stdout("ok   the server saw the client: 9 bytes from 10.5.0.2")
        .assert_stdout("PASS sut (3 steps, 3 checks passed, 0 failed");
}

/// A background program starts as `PROGRAM &` does: the spawn returns once it is forked, and an
/// exec the kernel refuses after that (here a file that is no program at all) is said at once,
/// ends the program with status 127, and says why in its output.
#[test]
fn a_background_program_that_cannot_be_executed_says_why_and_leaves_nothing() {
    let dir = std::env::temp_dir().join(format!("nslab-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("udp-echo");
    // Executable, but neither ELF nor a script: the kernel refuses it with ENOEXEC.
    std::fs::write(&program, b"\x7fNOT-AN-ELF-FILE\n").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let run = run_lab(program.to_str().unwrap(), "sut");
    let _ = std::fs::remove_dir_all(&dir);
    run.assert_code(1)
        .assert_stderr("warning: run udp-echo in server: it could not be executed: Exec format error (ENOEXEC); it ended with status 127")
        .assert_stdout("ended without printing a line containing \"ready\"");
}

#[test]
fn programs_by_path_must_be_real_and_name_one_file_each() {
    let fail = |allow: &str, text: &str| {
        runner(["policy", "--allow-exec", allow])
            .assert_code(2)
            .assert_stderr(text);
    };
    fail(
        "/nonexistent/sut",
        "--allow-exec /nonexistent/sut: cannot find that file",
    );
    fail("/etc/passwd", "is not an executable file");
    fail("/usr/bin/ping", "a program named ping is already allowed");
    let run = runner(["policy", "--allow-exec", "/usr/bin/ss,/usr/sbin/tcpdump"]);
    run.assert_code(2)
        .assert_stderr("a program named ss is already allowed");
}

#[test]
fn files_given_to_a_namespace_are_its_programs_alone_and_the_hosts_never_change() {
    let _labs = lab_lock();
    let hosts = std::fs::read("/etc/hosts").unwrap();
    let etc: Vec<_> = std::fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let run = run_checked(attacks_args(&[], "files", &[]));
    run.assert_code(0)
        .assert_stdout("ok   a sees its files, with their modes")
        .assert_stdout("ok   b does not")
        .assert_stdout("ok   a file a program wrote reads back")
        .assert_stdout("ok   writing /usr/bin/ping is refused: invalid: file path \"/usr/bin/ping\" is under /usr, where the programs are")
        .assert_stdout("ok   writing /etc/nslab-new/x.conf is refused: invalid: /etc/nslab-new/x.conf cannot be given to a")
        .assert_stdout("ok   reading through a link to /etc/shadow is refused")
        .assert_stdout("ok   writing through a link to /root is refused")
        .assert_stdout("ok   reading a pipe is refused at once: invalid: /tmp/to-pipe in a is not a regular file")
        .assert_stdout("ok   writing a pipe is refused at once: invalid: /tmp/to-pipe in a is not a regular file")
        .assert_stdout("PASS attacks (4 steps, 15 checks passed, 0 failed");
    assert_eq!(
        std::fs::read("/etc/hosts").unwrap(),
        hosts,
        "the host's /etc/hosts changed"
    );
    let after: Vec<_> = std::fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(after, etc, "/etc gained or lost an entry");
    assert!(!std::path::Path::new("/etc/bird/lab.conf").exists());
    assert!(!std::path::Path::new("/var/lib/lab").exists());
    assert!(!std::path::Path::new("/root/nslab-planted").exists());
    // Nothing of the run's is left, such as a helper's child stuck opening the pipe.
    assert!(
        lab_processes("runner").is_empty(),
        "{:?}",
        lab_processes("runner")
    );
}

#[test]
fn waiting_for_a_line_times_out_or_finds_it_never_came() {
    run_clean(attacks_args(&[], "ready", &[]))
        .assert_code(0)
        .assert_stdout("ok   one that does not come while it runs is error.timeout")
        .assert_stdout("ok   one it ended without is error.not-found")
        .assert_stdout("PASS attacks (1 step, 4 checks passed, 0 failed");
}

#[test]
fn no_two_runs_share_a_host_id() {
    let _labs = lab_lock();
    let runs: Vec<Background> = (0..2)
        .map(|_| Background::start(attacks_args(&[], "shell", &["sleep 3"])))
        .collect();
    let mut uids = Vec::new();
    let found = within(Duration::from_secs(10), || {
        uids = lab_processes("sleep");
        uids.len() == 2
    });
    for bg in runs {
        bg.finish().assert_code(0);
    }
    assert!(found, "{uids:?}");
    assert_ne!(uids[0], uids[1], "two runs' programs have the same host id");
    assert!(
        uids.iter().all(|u| u % 65536 == 0),
        "each is the root of its run's range: {uids:?}"
    );
}
