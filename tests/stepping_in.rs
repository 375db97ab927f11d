//! Stepping into a run (`runner run --hold`, `--hold-on-fail`, `runner exec`, `shell`,
//! `capture`, `release`): what the operator starts runs where the namespace's programs run,
//! ends with the run, and nothing is left. Ordinary users' runs are in rootless.rs.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A held run of `args`, its id, and what the host was before it.
struct Held {
    bg: Option<Background>,
    id: String,
    before: HostState,
}

impl Held {
    fn start(args: &[&str]) -> Held {
        Held::start_until(args, "held: run ")
    }

    /// Started, once `needle` is printed on stdout (the line that has the run id).
    fn start_until(args: &[&str], needle: &str) -> Held {
        let before = host_state();
        let mut bg = Background::start(args);
        bg.wait_for(needle);
        let line = bg.seen.iter().find(|l| l.contains(needle)).unwrap();
        let id = match line.starts_with('{') {
            true => serde_json::from_str::<serde_json::Value>(line).unwrap()["run"]
                .as_str()
                .unwrap()
                .to_string(),
            false => run_id(line),
        };
        Held {
            bg: Some(bg),
            id,
            before,
        }
    }

    fn seed() -> Held {
        Held::start(&["run", "--hold", guest("seed").to_str().unwrap()])
    }

    /// End the hold with SIGINT (or let it end) and check nothing is left.
    fn end(mut self, sig: Option<i32>) -> Run {
        let bg = self.bg.take().unwrap();
        if let Some(sig) = sig {
            bg.signal(sig);
        }
        let run = bg.finish();
        assert_eq!(host_state(), self.before, "the host changed\n{}", run.all());
        let holders = namespace_holders(&run.namespace_inodes());
        assert!(holders.is_empty(), "still held: {holders:?}\n{}", run.all());
        assert!(
            !std::path::Path::new(&format!("/run/nslab/runs/{}.sock", self.id)).exists(),
            "the control socket is left"
        );
        run
    }
}

impl Drop for Held {
    /// A test that failed while its run held: the run is ended as Ctrl-C would, so that it
    /// tears down its lab and leaves nothing, and killed only if it does not end.
    fn drop(&mut self) {
        if let Some(bg) = &mut self.bg {
            bg.signal(libc::SIGTERM);
            let ended = within(Duration::from_secs(20), || {
                bg.child.try_wait().ok().flatten().is_some()
            });
            if !ended {
                let _ = bg.child.kill();
            }
            let _ = bg.child.wait();
        }
    }
}

fn exec(id: &str, ns: &str, cmd: &[&str]) -> Run {
    let mut args = vec!["exec", id, ns, "--"];
    args.extend_from_slice(cmd);
    runner(args)
}

#[test]
fn exec_runs_where_the_namespaces_programs_run_with_its_statuses_and_pipes() {
    let _labs = lab_lock();
    let held = Held::seed();
    let id = held.id.clone();
    exec(&id, "ns01", &["true"]).assert_code(0);
    exec(&id, "ns01", &["sh", "-c", "exit 3"]).assert_code(3);
    exec(&id, "ns01", &["no-such-program"])
        .assert_code(127)
        .assert_stderr("no-such-program: command not found");
    // Found, but not a program: 126, as a shell says.
    exec(&id, "ns01", &["/etc/hostname"]).assert_code(126);
    exec(&id, "ns01", &["ip", "-br", "address"])
        .assert_code(0)
        .assert_stdout("192.168.0.1/24");
    exec(&id, "ns02", &["hostname"])
        .assert_code(0)
        .assert_stdout("ns02");
    // As root of the run's user namespace: the run's ids, not the host's root.
    exec(&id, "ns01", &["id", "-u"])
        .assert_code(0)
        .assert_stdout("0");
    // stdin, piped through both ways; a prefix of the id and `last` name the run.
    let mut child = Command::new(RUNNER)
        .args(["exec", &id[..4], "ns01", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"x-through").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"x-through");
    assert!(out.status.success());
    exec(
        "last",
        "ns02",
        &["ping", "-c", "1", "-W", "2", "192.168.0.1"],
    )
    .assert_code(0);
    // What it may not name is said, before anything runs.
    exec(&id, "nope", &["true"])
        .assert_code(2)
        .assert_stderr("has no namespace \"nope\"; it has: ns01, ns02");
    runner(["exec", "zz", "ns01", "--", "true"])
        .assert_code(2)
        .assert_stderr("names no run");
    // `ls` shows the run held, with how to step in.
    runner(["ls"])
        .assert_stdout(&format!("{id}  held"))
        .assert_stdout(&format!("runner release {id} ends it"));
    // The operator's programs are not the scenario's: the allowlist (ping) does not bind them.
    let run = held.end(Some(libc::SIGINT));
    // The scenario's verdict and status, not the signal's.
    run.assert_code(0)
        .assert_stdout("PASS seed")
        .assert_stdout("released run ");
}

#[test]
fn capture_writes_the_frames_of_an_interface_as_pcap_while_exec_pings() {
    let _labs = lab_lock();
    let held = Held::seed();
    let id = held.id.clone();
    let pcap = Scratch::new("capture.pcap", b"");
    let mut capture = Command::new(RUNNER)
        .args(["capture", &id, "ns01", "ns01-veth0", "-c", "6", "-w"])
        .arg(&pcap.0)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The capture's socket is open once its header is written.
    assert!(within(Duration::from_secs(10), || std::fs::metadata(
        &pcap.0
    )
    .is_ok_and(|m| m.len() >= 24)));
    exec(
        &id,
        "ns01",
        &["ping", "-c", "4", "-i", "0.2", "192.168.0.2"],
    )
    .assert_code(0);
    let ended = within(Duration::from_secs(10), || {
        capture.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = capture.kill();
    }
    let out = capture.wait_with_output().unwrap();
    assert!(ended && out.status.success(), "{out:?}");
    let bytes = std::fs::read(&pcap.0).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("a pcap stream");
    assert_eq!(
        reader.header().datalink,
        pcap_file::DataLink::ETHERNET,
        "Ethernet link type"
    );
    let (mut requests, mut replies, mut frames) = (0, 0, 0);
    while let Some(packet) = reader.next_packet() {
        let data = packet.expect("whole records").data;
        frames += 1;
        // Ethernet, IPv4, ICMP: type 8 a request, 0 a reply.
        if data.len() > 34 && data[12..14] == [0x08, 0x00] && data[23] == 1 {
            match data[34] {
                8 => requests += 1,
                0 => replies += 1,
                _ => {}
            }
        }
    }
    assert_eq!(frames, 6, "-c 6");
    assert!(
        requests >= 2 && replies >= 2,
        "{requests} requests, {replies} replies"
    );
    held.end(Some(libc::SIGTERM)).assert_code(0);
}

#[test]
fn a_capture_to_stdout_is_read_by_tcpdump_and_ends_whole_with_the_run() {
    if !std::path::Path::new("/usr/bin/tcpdump").exists() {
        return skipped("tcpdump is not installed");
    }
    let _labs = lab_lock();
    let held = Held::seed();
    let id = held.id.clone();
    let mut capture = Command::new(RUNNER)
        .args(["capture", &id, "ns02", "ns02-veth0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = Command::new("tcpdump")
        .args(["-n", "-r", "-"])
        .stdin(capture.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    exec(
        &id,
        "ns01",
        &["ping", "-c", "2", "-i", "0.2", "192.168.0.2"],
    )
    .assert_code(0);
    std::thread::sleep(Duration::from_millis(300));
    // The run ends with the capture open: the stream ends too, between two records.
    held.end(Some(libc::SIGINT)).assert_code(0);
    assert!(within(Duration::from_secs(10), || capture
        .try_wait()
        .unwrap()
        .is_some()));
    let out = reader.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut said = String::new();
    let _ = std::io::Read::read_to_string(&mut capture.stderr.take().unwrap(), &mut said);
    assert!(
        out.status.success(),
        "tcpdump: {out:?}; the capture said: {said}"
    );
    assert!(
        text.contains("ICMP echo request") && text.contains("ICMP echo reply"),
        "{text}"
    );
}

#[test]
fn a_shell_on_a_terminal_has_the_prompt_the_host_name_and_ctrl_c() {
    let _labs = lab_lock();
    let held = Held::seed();
    let mut cmd = Command::new(RUNNER);
    cmd.args(["shell", &held.id, "ns02"]);
    let mut shell = expectrl::Session::spawn(cmd).expect("a pseudo-terminal");
    shell.set_expect_timeout(Some(Duration::from_secs(15)));
    shell
        .expect(format!("[{} ns02]", held.id))
        .expect("the prompt names the run and the namespace");
    shell.send_line("hostname; echo done-$((6*7))").unwrap();
    shell.expect("ns02").unwrap();
    shell.expect("done-42").unwrap();
    // Ctrl-C reaches the program in the foreground, not the shell.
    shell.send_line("sleep 60").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    shell.send(expectrl::ControlCode::EndOfText).unwrap();
    shell.send_line("echo after-$((1+1))").unwrap();
    shell.expect("after-2").unwrap();
    shell.send_line("exit 5").unwrap();
    let status = shell.get_process().wait().unwrap();
    assert_eq!(
        status,
        expectrl::WaitStatus::Exited(shell.get_process().pid(), 5),
        "`exit 5` returns, with its status"
    );
    held.end(Some(libc::SIGINT)).assert_code(0);
}

#[test]
fn what_the_operator_started_ends_with_the_run_and_release_ends_a_hold() {
    let _labs = lab_lock();
    let held = Held::seed();
    let id = held.id.clone();
    // A command still running, and a shell still open, when the run ends.
    let mut long = Command::new(RUNNER)
        .args(["exec", &id, "ns01", "--", "sleep", "600"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cmd = Command::new(RUNNER);
    cmd.args(["shell", &id, "ns02"]);
    let mut shell = expectrl::Session::spawn(cmd).unwrap();
    shell.set_expect_timeout(Some(Duration::from_secs(15)));
    shell.expect(format!("[{id} ns02]")).unwrap();
    shell.send_line("sleep 601 & sleep 602").unwrap();
    assert!(within(Duration::from_secs(10), || lab_processes("sleep")
        .len()
        >= 3));
    runner(["release", &id])
        .assert_code(0)
        .assert_stderr(&format!("released run {id}"));
    let run = held.end(None);
    run.assert_code(0).assert_stdout("(release)");
    assert!(
        within(Duration::from_secs(10), || long
            .try_wait()
            .unwrap()
            .is_some()),
        "runner exec outlived the run"
    );
    assert_eq!(long.wait().unwrap().code(), Some(137));
    let status = shell.get_process().wait().unwrap();
    assert!(
        !matches!(status, expectrl::WaitStatus::StillAlive),
        "{status:?}"
    );
    assert!(
        within(Duration::from_secs(5), || lab_processes("sleep").is_empty()),
        "sleeps left: {:?}",
        lab_processes("sleep")
    );
    // A run that no longer holds refuses release.
    runner(["release", &id]).assert_code(2);
}

#[test]
fn hold_on_fail_holds_a_failing_run_and_not_a_passing_one_and_hold_timeout_ends_it() {
    let _labs = lab_lock();
    // Passing: no hold, the run ends as ever.
    let before = host_state();
    let pass = runner_within(
        &["run", "--hold-on-fail", guest("seed").to_str().unwrap()],
        Duration::from_secs(60),
    );
    pass.assert_code(0);
    assert!(!pass.stdout.contains("held: run"), "{}", pass.all());
    assert_eq!(host_state(), before);
    // A failing check holds, until --hold-timeout; the status is the scenario's (1).
    let started = std::time::Instant::now();
    let held = Held::start(&[
        "run",
        "--hold-on-fail",
        "--hold-timeout",
        "2s",
        guest("faults").to_str().unwrap(),
        "--",
        "check",
    ]);
    let run = held.end(None);
    run.assert_code(1).assert_stdout("(timeout)");
    assert!(started.elapsed() >= Duration::from_secs(2));
    // A scenario that returns an error holds too.
    let held = Held::start(&[
        "run",
        "--hold-on-fail",
        guest("faults").to_str().unwrap(),
        "--",
        "err",
    ]);
    held.end(Some(libc::SIGINT))
        .assert_code(1)
        .assert_stdout("the scenario returned an error");
}

/// Run the runner to its end, killing it after `limit`.
fn runner_within(args: &[&str], limit: Duration) -> Run {
    Background::start(args).finish_within(limit)
}

#[test]
fn json_says_held_and_released_and_the_verdict_stays_last() {
    let _labs = lab_lock();
    let dir = std::env::temp_dir().join(format!("nslab-test-{}-held-json", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let junit = dir.join("junit.xml");
    let held = Held::start_until(
        &[
            "run",
            "--json",
            "--hold",
            "--junit",
            junit.to_str().unwrap(),
            guest("seed").to_str().unwrap(),
        ],
        "\"event\":\"held\"",
    );
    // Written before the hold: the outputs are whole while the lab stays.
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        xml.contains("<testsuite") && xml.contains("ping lost nothing"),
        "{xml}"
    );
    let run = held.end(Some(libc::SIGTERM));
    run.assert_code(0);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap_or(usize::MAX);
    assert!(
        at("held") < at("released") && at("released") < at("teardown"),
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"verdict"), "{names:?}");
    let held_event = &events[at("held")];
    assert_eq!(
        held_event["namespaces"],
        serde_json::json!(["ns01", "ns02"])
    );
    assert_eq!(events[at("released")]["by"], "SIGTERM");
}

#[test]
fn exec_into_a_kept_run_then_cleanup_leaves_nothing() {
    let _labs = lab_lock();
    let before = host_state();
    let run = runner(["run", "-q", "--keep", guest("seed").to_str().unwrap()]);
    run.assert_code(0);
    let id = run_id(&run.stdout);
    let _cleanup = KeptRun(id.clone());
    exec(&id, "ns01", &["ip", "-br", "address"])
        .assert_code(0)
        .assert_stdout("192.168.0.1/24");
    exec(&id, "ns02", &["hostname"]).assert_stdout("ns02");
    exec(&id, "ns01", &["sh", "-c", "exit 4"]).assert_code(4);
    exec(&id, "ns01", &["sh", "-c", "sleep 603 >/dev/null 2>&1 &"]).assert_code(0);
    assert!(within(Duration::from_secs(5), || lab_processes("sleep")
        .len()
        == 1));
    runner(["release", &id])
        .assert_code(1)
        .assert_stderr("is kept, not held");
    runner(["cleanup", &id])
        .assert_code(0)
        .assert_stdout("(sleep, uid ")
        .assert_stdout("started in the kept lab");
    assert!(
        within(Duration::from_secs(5), || lab_processes("sleep").is_empty()),
        "cleanup left what exec started"
    );
    assert_eq!(host_state(), before);
    let holders = namespace_holders(&run.namespace_inodes());
    assert!(holders.is_empty(), "still held: {holders:?}");
}

#[test]
fn a_shell_in_a_held_frr_lab_reaches_vtysh_and_the_files_the_scenario_gave() {
    if !std::path::Path::new("/usr/lib/frr/zebra").exists() {
        return skipped("FRR is not installed (Debian package frr)");
    }
    let _labs = lab_lock();
    // The gallery's FRR lab with router3's hello interval broken: a check fails, and the run
    // holds, daemons running.
    let held = Held::start(&[
        "run",
        "-q",
        "--hold-on-fail",
        "--allow-exec",
        "/usr/lib/frr/zebra,/usr/lib/frr/ospfd,vtysh,install,ping",
        guest("frr_integrated").to_str().unwrap(),
        "--",
        "broken",
    ]);
    let mut cmd = Command::new(RUNNER);
    cmd.args(["shell", &held.id, "router1"]);
    let mut shell = expectrl::Session::spawn(cmd).unwrap();
    shell.set_expect_timeout(Some(Duration::from_secs(20)));
    shell.expect(format!("[{} router1]", held.id)).unwrap();
    shell.send_line("vtysh -c 'show ip ospf neighbor'").unwrap();
    // router2 is a neighbour; router3, whose hello interval differs, never becomes one.
    shell.expect("10.255.0.2").unwrap();
    shell.expect("Full").unwrap();
    shell
        .send_line("grep -c hostname /etc/frr/frr.conf; echo files-$((2+3))")
        .unwrap();
    shell.expect("files-5").unwrap();
    shell.send_line("exit").unwrap();
    let status = shell.get_process().wait().unwrap();
    assert!(
        matches!(status, expectrl::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );
    let neighbours = exec(
        &held.id,
        "router1",
        &["vtysh", "-c", "show ip ospf neighbor"],
    );
    neighbours.assert_code(0).assert_stdout("10.255.0.2");
    assert!(
        !neighbours.stdout.contains("10.255.0.3"),
        "{}",
        neighbours.all()
    );
    exec(&held.id, "router3", &["cat", "/etc/frr/frr.conf"])
        .assert_code(0)
        .assert_stdout("ip ospf hello-interval 5");
    held.end(Some(libc::SIGINT))
        .assert_code(1)
        .assert_stdout("FAIL frr-integrated: a check failed");
}

/// Whether `/usr/bin/true` executes in the mount namespace at `mntns`, entered by nsenter (the
/// host's root, so only the box's mount flags can refuse it).
fn executes_in(mntns: &str) -> bool {
    Command::new("nsenter")
        .arg(format!("--mount={mntns}"))
        .arg("/usr/bin/true")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_operators_executable_system_dirs_stay_in_its_own_copy_of_the_box() {
    let _labs = lab_lock();
    // A held run: the boxes the runner holds, which its scenario's programs join.
    let held = Held::seed();
    exec(&held.id, "ns01", &["true"]).assert_code(0);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", held.bg.as_ref().unwrap().child.id()))
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("mnt:["))
        })
        .map(|fd| fd.path().display().to_string())
        .collect::<Vec<_>>();
    assert!(!fds.is_empty(), "the runner holds no box");
    // The check itself can see an executable /usr: the host's own.
    assert!(executes_in("/proc/self/ns/mnt"));
    for box_fd in &fds {
        assert!(
            !executes_in(box_fd),
            "{box_fd}: /usr is executable in the box itself"
        );
    }
    // The operator's helper: in the run's cgroups, and holding nothing of the helper's.
    let helpers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                });
            let parent =
                ppid.map(|p| std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default());
            let is_helper =
                |c: &[u8]| c.split(|&b| b == 0).nth(1) == Some(b"__lab-helper".as_slice());
            is_helper(&cmdline) && parent.is_some_and(|p| is_helper(&p))
        })
        .collect();
    assert_eq!(helpers.len(), 1, "one operator's helper: {helpers:?}");
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", helpers[0]))
        .unwrap()
        .flatten()
        .filter_map(|fd| {
            Some(
                std::fs::read_link(fd.path())
                    .ok()?
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .collect();
    assert!(
        !links
            .iter()
            .any(|l| l.starts_with("net:[") || l.starts_with("mnt:[")),
        "the operator's helper holds the lab's namespaces: {links:?}"
    );
    assert_eq!(
        links.iter().filter(|l| l.starts_with("socket:[")).count(),
        1,
        "its own socket only: {links:?}"
    );
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", helpers[0])).unwrap();
    assert!(cgroups.contains(&format!("nslab-{}", held.id)), "{cgroups}");
    held.end(Some(libc::SIGINT)).assert_code(0);
    // A kept run, entered directly: its pinned box stays as it was.
    let run = runner(["run", "-q", "--keep", guest("seed").to_str().unwrap()]);
    run.assert_code(0);
    let id = run_id(&run.stdout);
    let _cleanup = KeptRun(id.clone());
    exec(&id, "ns01", &["true"]).assert_code(0);
    let pin = format!("/run/nslab/boxes/nslab-{id}-ns01");
    assert!(
        !executes_in(&pin),
        "{pin}: /usr is executable in the kept box itself"
    );
}
