//! The run is a host principal of its own (issue 19): every process, quota and byte its
//! programs cause counts against it, never against the host's root or nobody. Each test is the
//! attack, bounded by itself, and asserts what the host shows while it runs.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// Samples a host figure every 10 ms on a thread until stopped: the largest value seen.
struct Peak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peak {
    fn of(sample: impl Fn() -> i64 + Send + 'static) -> Peak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicI64::new(sample()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(sample(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Peak {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::SeqCst)
    }
}

/// A `Field:   N kB` line of a /proc file (meminfo, a process's status), in KiB: None if the
/// file or the field is not there.
fn kib_field(path: &str, field: &str) -> Option<i64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A field of /proc/meminfo, in KiB.
fn meminfo(field: &str) -> i64 {
    kib_field("/proc/meminfo", field).unwrap_or(0)
}

/// The number that follows `prefix` in what a run printed.
fn number_after(run: &Run, prefix: &str) -> i64 {
    run.stdout
        .split(prefix)
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?}\n{}", run.all()))
}

/// Processes on the host whose uid is one the runs use (0x70000000 and up).
fn run_processes() -> i64 {
    processes_of(&[(0x7000_0000, u32::MAX)]).len() as i64
}

/// A program forks under one id after another of the run's 65,536 (RLIMIT_NPROC counts per
/// id, so each id had a fresh budget): 3,000 at most, where it stops itself.
#[test]
fn a_program_switching_ids_cannot_pass_max_processes_for_the_whole_run() {
    let _labs = lab_lock();
    let before = run_processes();
    let peak = Peak::of(run_processes);
    let fork = r#"perl -e 'my $n = 0; for my $id (1 .. 3000) { my $pid = fork(); if (!defined $pid) { print "refused after $n: $!\n"; last } if ($pid == 0) { $( = $id; $) = "$id $id"; $< = $> = $id; sleep 20; exit 0 } $n++ } print "forked $n\n"; sleep 1'"#;
    let run = run_checked(attacks_args(&["--max-processes", "64"], "shell", &[fork]));
    let peak = peak.finish() - before;
    run.assert_code(0).assert_stdout("| refused after ");
    let forked = number_after(&run, "| forked ");
    assert!(forked < 64, "it forked {forked}\n{}", run.all());
    // The host saw at most the policy's 64 programs' processes, the lab helper and the one
    // program's init (both run as the run's first id: they are the run's, and counted so).
    assert!(
        peak <= 64 + 2,
        "{peak} processes of the runs' ids at once\n{}",
        run.all()
    );
}

/// Per-user kernel quotas (here inotify instances, 128 per user) are charged to the user that
/// owns the run's user namespace: once that was the host's root, whose own next call then
/// failed with "Too many open files" while the run held them.
#[test]
fn the_runs_kernel_quotas_are_its_own_and_never_the_hosts_root() {
    if std::env::consts::ARCH != "x86_64" {
        skipped("the inotify quota test: it names x86_64's syscall numbers");
        return;
    }
    let _labs = lab_lock();
    // inotify_init1 (294) until the kernel says no, at most 1000; then hold them.
    let hold = r#"perl -e 'my $n = 0; while ($n < 1000) { my $fd = syscall(294, 0); last if $fd < 0; $n++ } print "holding $n: $!\n"; sleep 4'"#;
    let mut bg = Background::start(attacks_args(&["-q"], "shell", &[hold]));
    bg.wait_for("holding ");
    // SAFETY: plain syscalls; the fd is closed at once.
    let fd = unsafe { libc::inotify_init1(0) };
    let errno = std::io::Error::last_os_error();
    if fd >= 0 {
        // SAFETY: closing the fd just made.
        unsafe { libc::close(fd) };
    }
    let run = bg.finish();
    run.assert_code(0);
    assert!(
        fd >= 0,
        "the host's root could not make an inotify instance while the run held its own: {errno}\n{}",
        run.all()
    );
}

/// Files given with write-file are written by the runner's helper: they are the run's memory,
/// limited by `program-memory` like the programs' own, however large the scratch space.
#[test]
fn files_the_scenario_gives_count_against_program_memory() {
    let _labs = lab_lock();
    let base = meminfo("Shmem");
    let peak = Peak::of(|| meminfo("Shmem"));
    // 48 files of 16 MiB (768 MiB) into a 2 GiB scratch space, with 64 MiB for the run.
    let run = run_checked(attacks_args(
        &[
            "-q",
            "--program-memory",
            "64MiB",
            "--scratch",
            "2GiB",
            "--max-call-data",
            "17MiB",
        ],
        "fill",
        &["48", "16"],
    ));
    let grew_mib = (peak.finish() - base) / 1024;
    let given = number_after(&run, "gave ");
    assert!(given < 8, "{given} files of 16 MiB given\n{}", run.all());
    // Host evidence: tmpfs memory on the host never grew much past the run's limit.
    assert!(
        grew_mib < 200,
        "the host's Shmem grew by {grew_mib} MiB\n{}",
        run.all()
    );
}

/// Namespaces a program makes would be outside the run's count and limits: it may make none,
/// and the host's namespaces stay what they were, while the lab's own count as before.
#[test]
fn programs_cannot_make_namespaces_of_their_own() {
    let _labs = lab_lock();
    let host_namespaces = || {
        let mut seen = std::collections::BTreeSet::new();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                if let Ok(t) = std::fs::read_link(p.path().join("ns/net")) {
                    seen.insert(t);
                }
            }
        }
        seen.len() as i64
    };
    let before = host_namespaces();
    let peak = Peak::of(host_namespaces);
    let make = r#"i=0; while [ $i -lt 40 ]; do unshare --net sleep 5 2>/dev/null & i=$((i+1)); done; ip netns add mine; echo "netns add: exit $?"; sleep 1; echo made"#;
    let run = run_checked(attacks_args(&[], "shell", &[make]));
    let grew = peak.finish() - before;
    run.assert_code(0).assert_stdout("| netns add: exit 1");
    // The lab's own two namespaces (each held by the runner, and by its programs).
    assert!(
        grew <= 2,
        "{grew} more network namespaces on the host\n{}",
        run.all()
    );
}

/// Kernel memory a program causes beyond its own pages: socket buffers, here 120 loopback TCP
/// connections whose reader never reads (cgroup v1 charges them only once the run's cgroup
/// sets a TCP limit; v2 always does). Before, 447 MiB were buffered with 64 MiB for the run;
/// the memory the host has left (MemAvailable) is what must hold, on either.
#[test]
fn socket_buffers_a_program_fills_count_against_program_memory() {
    let _labs = lab_lock();
    let fill = r#"perl -e 'use IO::Socket::INET; my $l = IO::Socket::INET->new(Listen => 512, LocalAddr => "127.0.0.1", LocalPort => 5555, ReuseAddr => 1) or die "listen: $!"; my @keep; my $total = 0; my $buf = "x" x 65536; for my $i (1 .. 120) { my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => 5555) or last; my $s = $l->accept or last; $c->blocking(0); while (1) { my $w = syswrite($c, $buf); last unless defined $w && $w > 0; $total += $w } push @keep, $c, $s } print "buffered ", int($total / 1048576), " MiB\n"; sleep 1'"#;
    let base = meminfo("MemAvailable");
    let lowest = Peak::of(|| -meminfo("MemAvailable"));
    let run = run_checked(attacks_args(
        &["--program-memory", "64MiB"],
        "shell",
        &[fill],
    ));
    let fell_mib = (base + lowest.finish()) / 1024;
    run.assert_code(0);
    // Held either way: v1 refuses the writes past the TCP limit (the program says how much it
    // buffered); v2 charges the buffers to memory.max, whose OOM killer ends the program
    // (found by the kernel leg, scripts/test-vm.sh, once programs could be OOM-killed there).
    if run.stdout.contains(": exit 137") {
        assert!(!run.stdout.contains("| buffered "), "{}", run.all());
    } else {
        let buffered = number_after(&run, "| buffered ");
        assert!(buffered < 100, "{buffered} MiB buffered\n{}", run.all());
    }
    assert!(
        fell_mib < 250,
        "MemAvailable fell by {fell_mib} MiB\n{}",
        run.all()
    );
}

/// The lab helper's anonymous memory (`RssAnon`, KiB), found as the runner's child that runs
/// `__lab-helper`. Its inits share it.
fn helper_anon_kib(runner: u32) -> Option<i64> {
    let children =
        std::fs::read_to_string(format!("/proc/{runner}/task/{runner}/children")).ok()?;
    let helper = children.split_whitespace().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"__lab-helper"))
    })?;
    kib_field(&format!("/proc/{helper}/status"), "RssAnon")
}

/// What an init reads as it starts (its command's arguments and environment) lives in the lab
/// helper's memory, and the helper does not wait for the init; it must not keep it for the
/// program's whole life, or a run of many programs with large arguments holds the sum of them
/// in the helper (where, rootless without a cgroup, nothing bounds it). 40 programs with half a
/// megabyte of arguments each would hold 20 MB.
#[test]
fn the_helper_does_not_keep_the_arguments_of_the_programs_it_started() {
    let _labs = lab_lock();
    let mut bg = Background::start(attacks_args(
        &["-q", "--max-processes", "64"],
        "big-args",
        &["40"],
    ));
    bg.wait_for("SPAWNED 40");
    let anon = helper_anon_kib(bg.child.id());
    bg.signal(libc::SIGINT);
    let run = bg.finish_within(Duration::from_secs(10));
    let anon = anon.unwrap_or_else(|| panic!("no lab helper found\n{}", run.all()));
    assert!(
        anon < 10 * 1024,
        "the lab helper holds {anon} KiB of anonymous memory after starting 40 programs with \
         500 kB of arguments each\n{}",
        run.all()
    );
}

/// A busy loop in a session of its own, as a daemon makes: the kernel's autogroups then weigh
/// each as one process, wherever its parent was.
const LOOP: &str = "perl -MPOSIX -e 'setsid(); 1 while 1'";

/// CPU time (user + system, in clock ticks) of the processes whose command line holds
/// `marker`.
fn cpu_ticks_of(marker: &str) -> (usize, u64) {
    let mut found = (0, 0);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // The fields after the command name, which may hold spaces: utime and stime are the
        // 12th and 13th of them.
        let after = stat.rsplit_once(") ").map_or("", |(_, a)| a);
        let f: Vec<u64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() > 12 {
            found.0 += 1;
            found.1 += f[11] + f[12];
        }
    }
    found
}

/// The run's programs weigh together as one process against the host's (a cpu cgroup of
/// their own, issue 23): four busy loops per CPU in the lab, each in a session of its own as
/// a daemon's, must not take the CPUs from the host's own busy loops. Without it each lab loop
/// weighs as much as each host loop, and the host's got a fourth of what the lab's did.
#[test]
fn the_runs_programs_together_weigh_as_one_process_on_the_cpus() {
    if !std::path::Path::new("/sys/fs/cgroup/cpu").exists()
        && !std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"))
    {
        skipped("the CPU share test: this machine has no cpu cgroup controller");
        return;
    }
    let _labs = lab_lock();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let lab_marker = format!("nslab-busy-lab-{unique}");
    let host_marker = format!("nslab-busy-host-{unique}");
    // Bounded: the shell ends after 8 s, and its PID namespace with it.
    // The loops' marker is put together by the shell, so that neither the runner's command
    // line nor the shell's holds it.
    let busy = format!(
        "m=nslab-busy-lab; i=0; while [ $i -lt {} ]; do {LOOP} $m-{unique} & i=$((i+1)); done; echo $((6*7)) loops; sleep 8",
        4 * cpus
    );
    let mut bg = Background::start(attacks_args(&[], "shell", &[&busy]));
    // What the shell prints, not its command line, which the run shows first.
    bg.wait_for("42 loops");
    let host_loops = cpus.max(2);
    let mut host: Vec<std::process::Child> = (0..host_loops)
        .map(|_| {
            std::process::Command::new("perl")
                .args(["-MPOSIX", "-e", "setsid(); 1 while 1", &host_marker])
                .spawn()
                .expect("start a busy loop on the host")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (lab0, host0) = (cpu_ticks_of(&lab_marker), cpu_ticks_of(&host_marker));
    std::thread::sleep(Duration::from_secs(3));
    let (lab1, host1) = (cpu_ticks_of(&lab_marker), cpu_ticks_of(&host_marker));
    for child in &mut host {
        let _ = child.kill();
        let _ = child.wait();
    }
    let run = bg.finish_within(Duration::from_secs(20));
    run.assert_code(0);
    let (lab, host) = (
        lab1.1.saturating_sub(lab0.1),
        host1.1.saturating_sub(host0.1),
    );
    assert_eq!(lab1.0, 4 * cpus, "not every lab loop ran\n{}", run.all());
    let ratio = host as f64 / lab.max(1) as f64;
    eprintln!("host loops {host} ticks, lab loops {lab} ticks: ratio {ratio:.2}");
    assert!(
        ratio > 0.75,
        "{host_loops} busy loops on the host got {host} ticks of CPU while {} in the lab got \
         {lab} (ratio {ratio:.2}): the lab's programs weigh as many processes\n{}",
        4 * cpus,
        run.all()
    );
}
