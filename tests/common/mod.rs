//! Shared helpers for the integration tests: run the real `runner` binary on real scenarios, as
//! root, and check that the kernel is left exactly as it was found.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

pub const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// Every test that runs labs holds this while it does, so no other lab comes or goes meanwhile:
/// the leftover checks compare host-wide state, and the kernel reuses a freed namespace's inode
/// number for the next namespace, which another test's run could otherwise be holding.
static LABS: Mutex<()> = Mutex::new(());

pub fn lab_lock() -> MutexGuard<'static, ()> {
    LABS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scenario built by scripts/build-guests.sh (Rust).
pub fn guest(name: &str) -> PathBuf {
    built("wasm32-wasip2/release", name)
}

/// A Python scenario built by scripts/build-guests.sh (scripts/build-python.sh).
pub fn python_guest(name: &str) -> PathBuf {
    built("python", name)
}

/// A JavaScript or TypeScript scenario built by scripts/build-guests.sh (scripts/build-js.sh).
pub fn js_guest(name: &str) -> PathBuf {
    built("js", name)
}

fn built(dir: &str, name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/target")
        .join(dir)
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the scenarios first with scripts/build-guests.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The outcome of one runner invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Everything it printed, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "--- exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit status\n{}", self.all());
        self
    }

    pub fn assert_stdout(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.all()
        );
        self
    }

    pub fn assert_stderr(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.all()
        );
        self
    }

    /// The inodes of the namespaces this run created, as it narrated them ("net:[N]").
    pub fn namespace_inodes(&self) -> Vec<u64> {
        self.stdout
            .split("net:[")
            .skip(1)
            .filter_map(|rest| rest.split(']').next()?.parse().ok())
            .collect()
    }
}

/// Run the runner with these arguments and wait for it.
pub fn runner<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(RUNNER)
        .args(args)
        .output()
        .expect("start the runner");
    Run::from_output(out)
}

/// Run the runner as `nobody` with no capabilities at all, on a world-readable copy of `file`.
pub fn runner_as_nobody(command: &str, file: &Path) -> Run {
    let copy = Scratch::new(
        &format!("nobody-{command}.wasm"),
        &std::fs::read(file).expect("read the scenario"),
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            RUNNER,
            command,
        ])
        .arg(&copy.0)
        .output()
        .expect("setpriv (util-linux)");
    Run::from_output(out)
}

/// What of the host a run must leave unchanged.
#[derive(Debug, PartialEq, Eq)]
pub struct HostState {
    pinned: String,
    links: BTreeSet<String>,
}

pub fn host_state() -> HostState {
    let pinned = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link show");
    HostState {
        pinned: String::from_utf8_lossy(&pinned.stdout).into_owned(),
        links: String::from_utf8_lossy(&links.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect(),
    }
}

/// Every process, or open file of a process, that refers to one of `inodes` as its network
/// namespace. After a run, none may.
pub fn namespace_holders(inodes: &[u64]) -> Vec<String> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("net:[{i}]")).collect();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let mut refs = vec![p.path().join("ns/net")];
        if let Ok(fds) = std::fs::read_dir(p.path().join("fd")) {
            refs.extend(fds.flatten().map(|f| f.path()));
        }
        for r in refs {
            if let Ok(target) = std::fs::read_link(&r) {
                let t = target.to_string_lossy();
                if wanted.iter().any(|w| *w == t) {
                    found.push(format!("{} -> {t}", r.display()));
                }
            }
        }
    }
    found
}

/// Run the runner and check it left nothing: the host's pinned namespaces and links are as
/// before, and nothing refers to a namespace the run created.
pub fn run_clean<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let _labs = lab_lock();
    run_checked(args)
}

/// [`run_clean`] for a caller that already holds [`lab_lock`].
pub fn run_checked<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let before = host_state();
    let run = runner(args);
    assert_eq!(host_state(), before, "the host changed\n{}", run.all());
    let holders = namespace_holders(&run.namespace_inodes());
    assert!(
        holders.is_empty(),
        "the run's namespaces are still held: {holders:?}\n{}",
        run.all()
    );
    run
}

/// A path for a scratch file unique to this test process and `tag`; removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str, contents: &[u8]) -> Scratch {
        let path = std::env::temp_dir().join(format!("nslab-test-{}-{tag}", std::process::id()));
        std::fs::write(&path, contents).expect("write scratch file");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Start the runner with its stdout and stderr piped to the test.
pub fn spawn_runner<I, S>(args: I) -> std::process::Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(RUNNER)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the runner")
}

/// A runner started in the background, whose output lines the test can wait for.
pub struct Background {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Background {
    pub fn start<I, S>(args: I) -> Background
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Background::of(spawn_runner(args))
    }

    /// A child started by the test with its stdout and stderr piped (the runner, or a command
    /// that runs it, such as `runuser`).
    pub fn of(mut child: std::process::Child) -> Background {
        use std::io::{BufRead, Read};
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Background {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Wait until a line containing `needle` is printed (a generous 30 s at most, so a broken
    /// runner fails the test instead of hanging it).
    pub fn wait_for(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "the runner never printed {needle:?}; it printed:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Wait for the runner to exit (30 s at most) and collect everything it printed.
    pub fn finish(self) -> Run {
        self.finish_within(std::time::Duration::from_secs(30))
    }

    /// Wait up to `limit` for the runner to exit, and collect everything it printed. A runner
    /// still running then is killed and the test fails.
    pub fn finish_within(mut self, limit: std::time::Duration) -> Run {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                while let Ok(line) = self
                    .lines
                    .recv_timeout(std::time::Duration::from_millis(200))
                {
                    self.seen.push(line);
                }
                panic!(
                    "the runner did not exit within {limit:?}; it printed:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(5)) {
            self.seen.push(line);
        }
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: self.seen.iter().map(|l| format!("{l}\n")).collect(),
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}

/// The run id a runner printed ("run 1a2b3c4d;" or "kept: run 1a2b3c4d;").
pub fn run_id(stdout: &str) -> String {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    words
        .windows(2)
        .find_map(|w| {
            let id = w[1].trim_end_matches(';');
            (w[0] == "run" && id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| id.to_string())
        })
        .unwrap_or_else(|| panic!("no run id in:\n{stdout}"))
}

/// Poll `cond` for up to `limit`; true as soon as it holds.
pub fn within(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Removes a kept run (`runner cleanup ID`) when dropped, so a failing test leaves no pins.
pub struct KeptRun(pub String);

impl Drop for KeptRun {
    fn drop(&mut self) {
        runner(["cleanup", &self.0]);
    }
}

/// Run the runner and also measure its peak memory (max RSS in KiB, from wait4), for the tests
/// that show a guest cannot make the runner itself grow without bound.
// The child is reaped by wait4 (which also gives its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
pub fn runner_with_peak<I, S>(args: I) -> (Run, u64)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::Read;
    let mut child = spawn_runner(args);
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut status = 0;
    // SAFETY: plain wait4 on our own child, with a zeroed rusage for the kernel to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain wait4 on our own child.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let run = Run {
        code,
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    };
    (run, usage.ru_maxrss as u64)
}

/// The cgroups of run `id` (`nslab-ID`) anywhere under /sys/fs/cgroup.
pub fn run_cgroups(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy() == name {
                found.push(path);
            } else if depth < 4 {
                walk(&path, name, found, depth + 1);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        Path::new("/sys/fs/cgroup"),
        &format!("nslab-{id}"),
        &mut found,
        0,
    );
    found
}

/// What the tests of the `attacks` scenario allow, as a user sharing labs might: a shell, an
/// interpreter and a few tools besides the default allowlist.
pub const ATTACKS_ALLOW: &str =
    "cat,sh,nsenter,ls,kill,touch,perl,sleep,umount,unshare,keyctl,readlink,head,tail,yes,tr,stat,grep,ln,mkfifo";

/// `runner run --allow-exec ATTACKS_ALLOW [flags] attacks.wasm -- MODE ARGS...`
pub fn attacks_args(flags: &[&str], mode: &str, args: &[&str]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> =
        vec!["run".into(), "--allow-exec".into(), ATTACKS_ALLOW.into()];
    v.extend(flags.iter().map(Into::into));
    v.push(guest("attacks").into());
    v.push("--".into());
    v.push(mode.into());
    v.extend(args.iter().map(Into::into));
    v
}

/// Note a skipped part where scripts/test.sh will print it, and on this test's stderr.
pub fn skipped(what: &str) {
    eprintln!("SKIPPED: {what}");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("skip list");
    std::io::Write::write_all(&mut f, format!("{what}\n").as_bytes()).expect("skip list");
}

/// Processes named `name` that run with one of the runs' host ids (lab/helper/ids.rs: from
/// 0x70000000 up), with the uid of each.
pub fn lab_processes(name: &str) -> Vec<u32> {
    processes_of(&[(0x7000_0000, u32::MAX)])
        .into_iter()
        .filter(|(_, n, _)| n == name)
        .map(|(_, _, uid)| uid)
        .collect()
}

/// The run's host ids as its `-v` narration gives them ("host ids 1879048192-1879113727, ..."):
/// each range as (first, last).
pub fn host_ids(stdout: &str) -> Vec<(u32, u32)> {
    let at = stdout
        .find("host ids ")
        .unwrap_or_else(|| panic!("no \"host ids\" line in:\n{stdout}"));
    let rest = &stdout[at + "host ids ".len()..];
    let list = rest
        .split([' ', '\n'])
        .take_while(|w| !w.starts_with('('))
        .collect::<String>();
    list.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect()
}

/// Every process whose real uid is in one of `ranges` (first, last): (pid, name, uid).
pub fn processes_of(ranges: &[(u32, u32)]) -> Vec<(u32, String, u32)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(p.path().join("status")).ok()?;
            let name = status.lines().next()?.strip_prefix("Name:\t")?.to_string();
            let uid: u32 = status
                .lines()
                .find(|l| l.starts_with("Uid:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            // A zombie is gone but for its parent's wait.
            let zombie = status.lines().any(|l| l.starts_with("State:\tZ"));
            (!zombie && ranges.iter().any(|&(a, b)| (a..=b).contains(&uid)))
                .then_some((pid, name, uid))
        })
        .collect()
}

/// After a runner was killed: within 2 s nothing holds the namespaces it narrated, the host's
/// namespaces and links are `before`, and run `id`'s cgroups are gone (their janitor).
pub fn killed_run_left_nothing(run: &Run, id: &str, before: &HostState, moment: &str) {
    let inodes = run.namespace_inodes();
    let wait = std::time::Duration::from_secs(2);
    let freed = within(wait, || namespace_holders(&inodes).is_empty());
    assert!(
        freed,
        "{moment}: still held after 2 s: {:?}",
        namespace_holders(&inodes)
    );
    assert_eq!(&host_state(), before, "{moment}");
    let cgroup_gone = within(wait, || run_cgroups(id).is_empty());
    assert!(cgroup_gone, "{moment}: {:?} left", run_cgroups(id));
}
