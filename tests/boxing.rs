//! The box around a run, complete: a shared scenario cannot reach the operator's terminal, the
//! runner's descriptors, the host's files or IPC, another process by a recycled pid, or grow the
//! runner or its programs past the policy's limits. Each test is an attack, with a policy a user
//! sharing labs might allow (`sh`, `perl`, `cat`), and asserts what the host shows.

use std::ffi::OsString;
use std::process::Command;

use crate::common::*;

fn shell(flags: &[&str], commands: &[&str]) -> Run {
    run_clean(attacks_args(flags, "shell", commands))
}

/// A shell command line that runs the runner with these arguments.
fn command_line(args: &[OsString]) -> String {
    std::iter::once(RUNNER.to_string())
        .chain(
            args.iter()
                .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''"))),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_program_cannot_reach_the_operators_terminal() {
    // The runner started from a shell on a real terminal (a pty made by `script`); the program
    // opens /dev/tty and pushes a command into the terminal's input with TIOCSTI. If it got
    // there, the shell reads that line after the runner exits.
    let _labs = lab_lock();
    let push = r#"perl -e 'open(my $t, "+<", "/dev/tty") or die "no terminal: $!\n"; ioctl($t, 0x5412, $_) or die "TIOCSTI: $!\n" for split //, "echo nslab-injected\n"; print "pushed\n"'"#;
    let runner = command_line(&attacks_args(&[], "shell", &[push]));
    let mut script = Command::new("script")
        .args([
            "-qec",
            &format!("{runner}; read -t 2 line; echo \"GOT:[$line]\""),
            "/dev/null",
        ])
        // The operator's shell: bash, whose `read -t` waits 2 s for a line on the terminal.
        .env("SHELL", "/bin/bash")
        // A keyboard nobody types on: open, silent (at EOF, script would type ^D).
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let _keyboard = script.stdin.take();
    let out = script.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GOT:[]"), "the shell read something:\n{text}");
    assert!(!text.contains("GOT:[echo nslab-injected"), "{text}");
    assert!(!text.contains("| pushed"), "{text}");
    assert!(
        text.contains("no terminal: No such file or directory"),
        "{text}"
    );
}

#[test]
fn a_program_gets_only_stdin_stdout_and_stderr() {
    let _labs = lab_lock();
    let secret = Scratch::new("fd-secret", b"the operator's secret\n");
    let runner = command_line(&attacks_args(
        &[],
        "shell",
        &["cat <&7; ls /proc/self/fd; readlink /proc/self/fd/0"],
    ));
    // The runner inherits fd 7, open on the secret, as `runner run ... 7<file` would.
    let out = Command::new("sh")
        .args(["-c", &format!("exec {runner} 7<'{}'", secret.0.display())])
        .output()
        .unwrap();
    let run = Run::from_output(out);
    run.assert_code(0);
    assert!(!run.stdout.contains("secret"), "{}", run.all());
    let fds: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("   | "))
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    // 3 is the directory ls itself opened to list them.
    assert_eq!(fds, ["0", "1", "2", "3"], "{}", run.all());
    run.assert_stdout("   | /dev/null");
}

/// A scenario (world nslab:lab/scenario, written by hand) with 16 extra core instances, each
/// with a memory of 62.5 MiB: each alone is under 64 MiB, all of them 1 GiB.
fn many_memories() -> Vec<u8> {
    let extra = "(core instance (instantiate $big))\n".repeat(16);
    let text = format!(
        r#"(component
  (core module $big (memory 1000))
  {extra}
  (core module $main
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    (data (i32.const 16) "memories")
    (func (export "describe") (result i32)
      (i32.store (i32.const 64) (i32.const 16)) (i32.store (i32.const 68) (i32.const 8))
      (i32.store (i32.const 72) (i32.const 16)) (i32.store (i32.const 76) (i32.const 8))
      (i32.store (i32.const 80) (i32.const 0)) (i32.store (i32.const 84) (i32.const 0))
      (i32.const 64))
    (func (export "run") (param i32 i32) (result i32)
      (i32.store8 (i32.const 96) (i32.const 0))
      (i32.const 96)))
  (core instance $m (instantiate $main))
  (type $info (record (field "name" string) (field "description" string) (field "programs" (list string))))
  (export $info-out "info" (type $info))
  (func $describe (result $info-out)
    (canon lift (core func $m "describe") (memory (core memory $m "memory")) (realloc (core func $m "cabi_realloc"))))
  (func $run (param "args" (list string)) (result (result (error string)))
    (canon lift (core func $m "run") (memory (core memory $m "memory")) (realloc (core func $m "cabi_realloc"))))
  (export "describe" (func $describe))
  (export "run" (func $run)))"#
    );
    wat::parse_str(text).expect("valid component text")
}

#[test]
fn guest_memory_is_the_total_of_every_memory_of_the_scenario() {
    let file = Scratch::new("memories.wasm", &many_memories());
    // The same component within a generous limit is a valid scenario: the refusal below is the
    // limit's, not a broken file's.
    let ok = runner([
        "inspect".as_ref(),
        "--guest-memory".as_ref(),
        "2GiB".as_ref(),
        file.0.as_os_str(),
    ]);
    ok.assert_code(0).assert_stdout("scenario     memories");
    for command in ["inspect", "run"] {
        let (run, peak_kib) = runner_with_peak([
            command.as_ref(),
            "--guest-memory".as_ref(),
            "64MiB".as_ref(),
            file.0.as_os_str(),
        ]);
        assert_ne!(run.code, 0, "{}", run.all());
        assert!(
            run.stderr
                .contains("more than the policy allows (67108864 bytes, policy limit guest-memory")
                || run.stdout.contains(
                    "more than the policy allows (67108864 bytes, policy limit guest-memory"
                ),
            "{command}: {}",
            run.all()
        );
        assert!(
            peak_kib < 200 * 1024,
            "{command}: the runner grew to {peak_kib} KiB"
        );
    }
}

#[test]
fn report_text_counts_against_the_guests_output_budget() {
    let _labs = lab_lock();
    let (run, peak_kib) = runner_with_peak(attacks_args(&[], "reports", &["1500", "1048576"]));
    run.assert_code(1).assert_stdout(
        "it wrote more than 1048576 bytes to its stdout, stderr and report (policy limit guest-output-bytes",
    );
    assert!(
        run.stdout.len() < 3 << 20,
        "{} bytes printed",
        run.stdout.len()
    );
    assert!(peak_kib < 150 * 1024, "the runner grew to {peak_kib} KiB");
}

/// Make the next process the kernel creates get `pid`, and start `sleep 30` as it.
fn process_with_pid(pid: i32) -> Option<std::process::Child> {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let mut decoy = Command::new("sleep").arg("30").spawn().ok()?;
        if decoy.id() as i32 == pid {
            return Some(decoy);
        }
        let _ = decoy.kill();
        let _ = decoy.wait();
    }
    None
}

/// When process `pid` started (/proc/PID/stat field 22), if it exists.
fn started(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

#[test]
fn kill_never_reaches_a_process_that_reused_the_programs_pid() {
    let _labs = lab_lock();
    // Other tests start processes meanwhile: when one of them takes the freed pid before the
    // decoy can, the attack is tried again.
    for _attempt in 0..5 {
        let mut bg = Background::start(attacks_args(&[], "pid-reuse", &[]));
        bg.wait_for("PROGRAM-PID");
        let pid: i32 = bg
            .seen
            .iter()
            .find_map(|l| l.split("PROGRAM-PID ").nth(1)?.trim().parse().ok())
            .expect("the pid");
        let program = started(pid);
        // The program has ended (and its parent reaped it): its pid is free for anyone.
        let freed = within(std::time::Duration::from_secs(2), || {
            started(pid).is_none_or(|s| Some(s) != program)
        });
        let decoy = if freed && started(pid).is_none() {
            process_with_pid(pid)
        } else {
            None
        };
        let Some(mut decoy) = decoy else {
            bg.finish();
            continue;
        };
        let run = bg.finish();
        let alive = decoy.try_wait().unwrap().is_none();
        let _ = decoy.kill();
        let _ = decoy.wait();
        run.assert_code(0)
            .assert_stdout("ok   kill() after the program ended");
        assert!(
            alive,
            "kill() signalled the unrelated process that reused pid {pid}\n{}",
            run.all()
        );
        return;
    }
    panic!("five times another process took the freed pid before the decoy could");
}

#[test]
fn programs_the_scenario_let_go_of_are_released() {
    let _labs = lab_lock();
    let (run, peak_kib) = runner_with_peak(attacks_args(&["-q"], "spawn-drop", &["400"]));
    run.assert_code(0)
        .assert_stdout("ok   started, waited for and dropped 400 programs");
    assert!(peak_kib < 150 * 1024, "the runner grew to {peak_kib} KiB");
}

#[test]
fn what_programs_print_reaches_the_terminal_within_a_cap() {
    let run = shell(&[], &["yes | head -c 20000000; echo done >&2"]);
    run.assert_code(0).assert_stdout(
        "[nslab: program output is no longer shown: the run's programs printed more than 1048576 bytes \
         (policy limit echo-bytes; raise it with --echo-output); the scenario still gets it]",
    );
    assert!(
        run.stdout.len() < (1 << 20) + (64 << 10),
        "{} bytes printed",
        run.stdout.len()
    );
}

#[test]
fn the_kernel_holds_the_runs_programs_to_the_process_limit() {
    let _labs = lab_lock();
    let fork = r#"perl -e 'my $n = 0; for (1..200) { my $p = fork; next unless defined $p; if ($p == 0) { sleep 2; exit 0 } $n++ } print "started $n\n"; 1 while wait() != -1'"#;
    let mut bg = Background::start(attacks_args(&["--max-processes", "16"], "shell", &[fork]));
    let mut peak = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while bg.child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        peak = peak.max(lab_processes("perl").len());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = bg.finish();
    run.assert_code(0);
    assert!(
        (2..=16).contains(&peak),
        "{peak} processes at once\n{}",
        run.all()
    );
    let started: usize = run
        .stdout
        .split("| started ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{}", run.all()));
    assert!(started < 16, "{started} children started");
}

#[test]
fn the_kernel_holds_the_runs_programs_to_the_memory_limit() {
    let run = shell(
        &["--program-memory", "64MiB"],
        &[r#"perl -e '$x = "x" x (200 * 1024 * 1024); print length($x), "\n"'; echo "status $?""#],
    );
    run.assert_code(0).assert_stdout("   | status 137");
    assert!(!run.stdout.contains("209715200"), "{}", run.all());
}

#[test]
fn links_programs_make_count_against_the_link_limit() {
    let batch = r#"i=0; while [ $i -lt 4000 ]; do echo "link add b$i type bridge"; i=$((i+1)); done | ip -batch -; echo made all"#;
    let run = shell(&["--max-links", "64", "--allow-exec", "ip"], &[batch]);
    run.assert_code(1).assert_stdout("FAIL attacks: the scenario was stopped: link limit reached: the namespaces where its programs run hold ");
    run.assert_stdout("(policy limit max-links = 64; raise it with --max-links)");
    assert!(!run.stdout.contains("| made all"), "{}", run.all());
    let held: usize = run
        .stdout
        .split("run hold ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(held < 200, "it got to {held} links");
}

/// A root-owned unix socket a host service would listen on, and a SysV shared memory segment.
struct HostIpc {
    socket: std::path::PathBuf,
    listener: std::os::unix::net::UnixListener,
    key: i32,
    shm: i32,
}

impl HostIpc {
    fn new() -> HostIpc {
        let socket =
            std::path::PathBuf::from(format!("/run/nslab-test-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        // Open to everyone, so that only the box can keep a program out.
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let key = 0x6e73_0000 | (std::process::id() as i32 & 0xffff);
        // SAFETY: plain SysV call; removed in Drop.
        let shm = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o666) };
        assert!(shm >= 0);
        HostIpc {
            socket,
            listener,
            key,
            shm,
        }
    }
}

impl Drop for HostIpc {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        // SAFETY: removes the segment made in new().
        unsafe { libc::shmctl(self.shm, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

#[test]
fn nothing_a_program_writes_outlives_the_run_and_host_ipc_is_out_of_reach() {
    let _labs = lab_lock();
    let ipc = HostIpc::new();
    let tag = format!("nslab-box-{}", std::process::id());
    let places = ["/tmp", "/dev/shm", "/var/tmp", "/run"];
    let write = places
        .iter()
        .map(|p| format!("echo x > {p}/{tag}"))
        .collect::<Vec<_>>()
        .join("; ");
    let connect = format!(
        r#"perl -MIO::Socket::UNIX -e 'print IO::Socket::UNIX->new(Peer => "{}") ? "connected\n" : "no socket: $!\n"'"#,
        ipc.socket.display()
    );
    let shm = format!(
        r#"perl -e 'my $id = shmget({}, 0, 0); print defined $id ? "host segment found\n" : "no host segment: $!\n"'"#,
        ipc.key
    );
    let run = run_checked(attacks_args(
        &[],
        "shell",
        &[
            &format!("{write}; iperf3 --logfile /tmp/{tag}.log -c 127.0.0.1 -t 1; cat /tmp/{tag} /run/{tag}"),
            &format!("ls /tmp/{tag}.log /dev/shm/{tag}"),
            &format!("b:ls /tmp/{tag} 2>&1"),
            &connect,
            &shm,
            "ls /root /home /var/lib 2>&1",
        ],
    ));
    run.assert_code(0)
        // A namespace's programs share its places...
        .assert_stdout(&format!("   | /tmp/{tag}.log"))
        .assert_stdout(&format!("   | /dev/shm/{tag}"))
        // ...which are not another namespace's...
        .assert_stdout(&format!(
            "cannot access '/tmp/{tag}': No such file or directory"
        ))
        // ...nor the host's.
        .assert_stdout("   | no socket: No such file or directory")
        .assert_stdout("   | no host segment: No such file or directory")
        .assert_stdout("ls: cannot access '/root': No such file or directory")
        .assert_stdout("ls: cannot access '/home': No such file or directory")
        .assert_stdout("ls: cannot access '/var/lib': No such file or directory");
    for p in places {
        let path = std::path::Path::new(p).join(&tag);
        assert!(!path.exists(), "{} outlived the run", path.display());
    }
    assert!(!std::path::Path::new(&format!("/tmp/{tag}.log")).exists());
    assert!(
        ipc.listener.accept().is_err(),
        "a program connected to the host's socket"
    );
}

#[test]
fn describe_that_never_returns_is_stopped_at_its_deadline() {
    for command in ["inspect", "run"] {
        let started = std::time::Instant::now();
        let (run, _) = runner_with_peak([
            command.as_ref(),
            "--describe-timeout".as_ref(),
            "1s".as_ref(),
            guest("hangs").as_os_str(),
        ]);
        run.assert_code(2).assert_stderr(
            "describe() did not return within 1s (policy limit describe-timeout; raise it with --describe-timeout)",
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{command} took {:?}",
            started.elapsed()
        );
    }
}

/// Every line the runner printed that is not the guest's (labeled) or a program's (`|`, `!`).
fn runner_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| !l.starts_with("   [") && !l.starts_with("   | ") && !l.starts_with("   ! "))
        .collect()
}

#[test]
fn guest_text_cannot_pass_for_the_runners_own_lines() {
    let run = run_clean(attacks_args(&[], "forge", &[]));
    run.assert_code(0);
    for forged in [&run.stdout, &run.stderr] {
        assert!(
            !forged.contains('\x1b') && !forged.contains('\r') && !forged.contains('\u{202e}'),
            "{}",
            run.all()
        );
    }
    let lines = runner_lines(&run.stdout);
    assert!(
        !lines.iter().any(|l| l.starts_with("   + netns delete")),
        "{}",
        run.all()
    );
    let verdicts: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
        .collect();
    assert_eq!(verdicts.len(), 1, "{}", run.all());
    assert!(
        verdicts[0].starts_with("PASS attacks (1 step"),
        "{}",
        run.all()
    );
    run.assert_stdout(r"== honest step\n   + netns delete a\nPASS attacks (forged)")
        .assert_stdout(r"\u{202e}desrever\x08\x08");

    // The scenario's own name and description, in `run` and `inspect`.
    for command in ["run", "inspect"] {
        let run = runner([command.as_ref(), guest("liar").as_os_str()]);
        run.assert_code(0);
        assert!(!run.stdout.contains('\x1b'), "{}", run.all());
        assert!(
            !run.stdout
                .lines()
                .any(|l| l.starts_with("   + netns delete")
                    || l.starts_with("PASS liar\n")
                    || l == "PASS liar"),
            "{}",
            run.all()
        );
        run.assert_stdout(r"liar\n   + netns delete ns01\nPASS liar");
    }
}
