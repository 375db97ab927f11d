//! Runs of an ordinary user (no sudo, no setuid runner, no capabilities): the gallery, the box,
//! `--keep` held by a keeper process, `ls` and `cleanup` of the user's own runs, and the one
//! sentence of a machine that forbids unprivileged user namespaces. scripts/test.sh makes the
//! two users: nslab-test, with subordinate ids, and nslab-alone, a system user without.

use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;

const USER: &str = "nslab-test";
const ALONE: &str = "nslab-alone";

/// The runner and the scenarios, copied where any user may read them (the clone may be in a
/// directory only root can enter), once per test process.
fn shared() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // One fixed place, made anew by each test process (a harness has no hook to remove it
        // at its end, so a per-process name would pile up in /tmp).
        let dir = std::env::temp_dir().join("nslab-test-rootless-shared");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(RUNNER, dir.join("runner")).unwrap();
        for g in [
            "seed", "router", "lan", "ipv6", "shaped", "capture", "attacks", "daemons", "loader",
        ] {
            std::fs::copy(guest(g), dir.join(format!("{g}.wasm"))).unwrap();
        }
        dir
    })
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("user {user} does not exist: scripts/test.sh creates it"))
}

/// The cgroup v2 subtree delegated to the test user, where the kernel leg has made one
/// (scripts/vm-inside.sh): each of their runs then gets a cgroup of its own below it, as a
/// systemd scope with `Delegate=yes` would be.
fn delegated_cgroup() -> Option<PathBuf> {
    std::env::var_os("NSLAB_TEST_DELEGATED_CGROUP").map(PathBuf::from)
}

/// An ordinary user's home and runtime directory for one test, removed afterwards.
struct AsUser {
    user: &'static str,
    dir: PathBuf,
    /// Its XDG_RUNTIME_DIR: under `dir`, or /run/user/UID as a login session has it.
    runtime: PathBuf,
}

impl AsUser {
    fn new(user: &'static str, tag: &str) -> AsUser {
        // First, so that a missing user fails the test before anything is made.
        let uid = uid_of(user);
        let dir = std::env::temp_dir().join(format!("nslab-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["home", "runtime"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for sub in ["", "home", "runtime"] {
            std::os::unix::fs::chown(dir.join(sub), Some(uid), None).unwrap();
            std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(0o700))
                .unwrap();
        }
        let runtime = dir.join("runtime");
        AsUser { user, dir, runtime }
    }

    /// The user with /run/user/UID as its runtime directory, as a login session has it (made
    /// here, and removed afterwards).
    fn in_session(user: &'static str, tag: &str) -> AsUser {
        let mut me = AsUser::new(user, tag);
        let uid = uid_of(user);
        me.runtime = PathBuf::from(format!("/run/user/{uid}"));
        assert!(
            !me.runtime.exists(),
            "{} exists: a session of {user} is open",
            me.runtime.display()
        );
        std::fs::create_dir_all(&me.runtime).unwrap();
        std::os::unix::fs::chown(&me.runtime, Some(uid), None).unwrap();
        std::fs::set_permissions(&me.runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        me
    }

    /// Run the shared runner as the user, with nothing of root's environment.
    fn runner(&self, args: &[&str]) -> Run {
        let runner = shared().join("runner");
        self.command(runner.to_str().unwrap(), args)
    }

    /// The runner as this user, in the background.
    fn background(&self, args: &[&str]) -> Background {
        let runner = shared().join("runner");
        let mut cmd = self.command_line(runner.to_str().unwrap(), args);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Background::of(cmd.spawn().unwrap())
    }

    fn command(&self, program: &str, args: &[&str]) -> Run {
        Run::from_output(self.command_line(program, args).output().unwrap())
    }

    fn command_line(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", self.user, "--"]);
        let theirs = |d: &PathBuf| {
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(d).unwrap()) == uid_of(self.user)
        };
        if let Some(delegated) = delegated_cgroup().filter(theirs) {
            // As systemd-run --user --scope -p Delegate=yes would: a cgroup of the user's own,
            // made by the user below the one delegated to them, with the runner alone in it.
            let init = delegated.join("init");
            let procs =
                std::ffi::CString::new(init.join("cgroup.procs").into_os_string().into_vec())
                    .unwrap();
            // SAFETY: open, write and close of a cgroup file between fork and exec: no
            // allocation, no lock.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                    Ok(())
                });
            }
            cmd.args([
                "sh",
                "-c",
                r#"mkdir "$0/scope-$$" && echo $$ >"$0/scope-$$/cgroup.procs" && exec "$@""#,
            ])
            .arg(&delegated);
        }
        cmd.args(["env", "-i"])
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("HOME={}", self.dir.join("home").display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime.display()))
            .arg(program)
            .args(args);
        cmd
    }

    /// Run as the user and check that nothing is left: no process of the user, no record, no
    /// namespace the run made still held, the host's namespaces and links as before.
    fn run_clean(&self, args: &[&str]) -> Run {
        let _labs = lab_lock();
        self.run_checked(args)
    }

    fn run_checked(&self, args: &[&str]) -> Run {
        let before = host_state();
        let run = self.runner(args);
        assert_eq!(host_state(), before, "the host changed\n{}", run.all());
        self.assert_nothing_left(&run);
        run
    }

    fn assert_nothing_left(&self, run: &Run) {
        let holders = namespace_holders(&run.namespace_inodes());
        assert!(holders.is_empty(), "still held: {holders:?}\n{}", run.all());
        // Reparented to init when the runner ends, they may take a moment to be reaped.
        let alive = || {
            let out = Command::new("pgrep")
                .args(["-u", self.user])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let gone = within(std::time::Duration::from_secs(3), || alive().is_empty());
        assert!(gone, "processes of {} are left: {}", self.user, alive());
        let runs = self.runtime.join("nslab/runs");
        let left: Vec<_> = std::fs::read_dir(&runs)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "records left in {}: {left:?}",
            runs.display()
        );
    }

    fn scenario(name: &str) -> String {
        shared().join(format!("{name}.wasm")).display().to_string()
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.runtime.starts_with("/run/user") {
            let _ = std::fs::remove_dir_all(&self.runtime);
        }
    }
}

#[test]
fn the_gallery_runs_as_an_ordinary_user() {
    let me = AsUser::new(USER, "rootless-gallery");
    for g in ["seed", "router", "lan", "ipv6", "shaped"] {
        let run = me.run_clean(&["run", &AsUser::scenario(g)]);
        run.assert_code(0).assert_stdout(&format!("PASS {g} ("));
        // The same narration as root's: the runner made each change.
        assert!(run.stdout.contains("   + netns add "), "{}", run.stdout);
        // With subordinate ids nothing is missing but the memory cgroup, which needs root or
        // a delegated cgroup; the header says so.
        assert!(
            !run.stderr.contains("rootless is enforced"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_daemon_that_changes_user_runs_with_subordinate_ids_and_without_them_is_named() {
    let with = AsUser::new(USER, "rootless-capture");
    with.run_clean(&[
        "run",
        "-q",
        "--allow-exec",
        "tcpdump",
        &AsUser::scenario("capture"),
    ])
    .assert_code(0)
    .assert_stdout("ok   the capture holds 3 echo requests and 3 replies");

    let alone = AsUser::new(ALONE, "rootless-alone");
    let policy = alone.runner(&["policy"]);
    policy
        .assert_code(0)
        .assert_stdout("rootless             NOT FULLY: as user");
    assert!(policy
        .stdout
        .contains("programs that switch to a service user (tcpdump, FRR's daemons) cannot run"));
    // The seed needs no other user: it runs.
    alone
        .run_clean(&["run", "-q", &AsUser::scenario("seed")])
        .assert_code(0)
        .assert_stderr("has no subordinate ids in /etc/subuid and /etc/subgid");
    // tcpdump switches to its own user: the header said it could not, and it does not.
    let run = alone.run_clean(&[
        "run",
        "-q",
        "--allow-exec",
        "tcpdump",
        &AsUser::scenario("capture"),
    ]);
    run.assert_code(1).assert_stderr(
        "programs that switch to a service user (tcpdump, FRR's daemons) cannot run",
    );
}

#[test]
fn the_box_holds_for_an_ordinary_user() {
    let me = AsUser::new(USER, "rootless-box");
    // The user's own secret, in the user's home: the programs run as the user, so only the
    // box keeps it from them.
    let secret = me.dir.join("home/secret");
    std::fs::write(&secret, "the user's secret\n").unwrap();
    std::os::unix::fs::chown(&secret, Some(uid_of(USER)), None).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let host_netns = format!("nslab-host-{}-rl", std::process::id());
    let _labs = lab_lock();
    assert!(Command::new("ip")
        .args(["netns", "add", &host_netns])
        .status()
        .unwrap()
        .success());
    let pid = std::process::id().to_string();
    let run = me.runner(&[
        "run",
        "--allow-exec",
        ATTACKS_ALLOW,
        &AsUser::scenario("attacks"),
        "--",
        "programs",
        &pid,
        &host_netns,
        secret.to_str().unwrap(),
    ]);
    let _ = Command::new("ip")
        .args(["netns", "delete", &host_netns])
        .status();
    for line in [
        "ok   `ip link set v0 netns 1` leaves v0 in the lab",
        "ok   `ip link set v0 netns HOST-PID` is refused",
        "ok   `ip netns exec HOST-NETNS` is refused",
        "ok   `nsenter --net=/run/netns/HOST-NETNS` is refused",
        "ok   `nsenter -t HOST-PID -n` is refused",
        "ok   reading /etc/shadow is refused",
        "ok   reading the host's secret is refused",
        "ok   writing the host's secret is refused",
        "ok   /proc shows only the program's own processes",
        "ok   `kill -0 HOST-PID` is refused",
        "ok   ping across the lab",
    ] {
        run.assert_stdout(line);
    }
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "the user's secret\n"
    );
    me.assert_nothing_left(&run);
}

#[test]
fn keep_as_an_ordinary_user_is_held_by_a_keeper_until_cleanup() {
    let me = AsUser::new(USER, "rootless-keep");
    let _labs = lab_lock();
    let before = host_state();
    let run = me.runner(&["run", "-q", "--keep", &AsUser::scenario("seed")]);
    run.assert_code(0)
        .assert_stdout("process ")
        .assert_stdout("holds its namespaces (rootless: nothing under /run/netns)");
    // Nothing under /run/netns: the host is as it was.
    assert_eq!(host_state(), before);
    let enter = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("enter one:  "))
        .expect("the command that enters the lab")
        .to_string();
    let words: Vec<&str> = enter.split_whitespace().collect();
    assert_eq!(&words[..2], ["nsenter", "--preserve-credentials"]);
    let inside = me.command("/usr/bin/nsenter", &words[1..]);
    inside.assert_code(0).assert_stdout("192.168.0.1/24");
    let id = run_id(&run.stdout);
    me.runner(&["ls"])
        .assert_code(0)
        .assert_stdout(&format!("{id}  kept"));
    let cleaned = me.runner(&["cleanup", &id]);
    cleaned.assert_code(0).assert_stdout(", which held them");
    me.assert_nothing_left(&run);
    me.runner(&["ls"])
        .assert_stdout("no runs in progress and no kept labs");
}

#[test]
fn an_ordinary_user_sees_and_cleans_only_their_own_runs() {
    let me = AsUser::new(USER, "rootless-ls");
    let _labs = lab_lock();
    // Root keeps a lab; the user neither sees it nor may remove it.
    let kept = runner(["run", "-q", "--keep", guest("seed").to_str().unwrap()]);
    kept.assert_code(0);
    let id = run_id(&kept.stdout);
    let _cleanup = KeptRun(id.clone());
    me.runner(&["ls"])
        .assert_stdout("no runs in progress and no kept labs");
    me.runner(&["cleanup", &id]).assert_code(2);
    runner(["ls"]).assert_stdout(&format!("{id}  kept"));
}

#[test]
fn root_sees_and_cleans_a_users_kept_lab_but_not_through_an_edited_record() {
    let me = AsUser::in_session(USER, "rootless-root-sees");
    let _labs = lab_lock();
    let run = me.runner(&["run", "-q", "--keep", &AsUser::scenario("seed")]);
    run.assert_code(0);
    let id = run_id(&run.stdout);
    // Root sees every user's runs.
    runner(["ls"]).assert_stdout(&format!("{id}  kept"));

    // The user edits the record to name a process of root's as the keeper: root's cleanup
    // must not signal it.
    let victim = Command::new("sleep").arg("300").spawn().unwrap();
    let record = me.runtime.join(format!("nslab/runs/{id}.json"));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let keeper = json["keeper"].clone();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", victim.id())).unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    json["keeper"] = serde_json::json!([victim.id(), start]);
    std::fs::write(&record, json.to_string()).unwrap();
    let forged = runner(["cleanup", &id]);
    let mut victim = victim;
    let alive = victim.try_wait().unwrap().is_none();
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(
        alive,
        "root's cleanup killed a process the record named:\n{}",
        forged.all()
    );
    forged.assert_stdout("is gone (or is not the runner's keeper): nothing to stop");

    // With the real keeper back in the record, root removes the user's lab.
    let _ = std::fs::create_dir_all(record.parent().unwrap());
    json["keeper"] = keeper;
    std::fs::write(&record, json.to_string()).unwrap();
    std::os::unix::fs::chown(&record, Some(uid_of(USER)), None).unwrap();
    runner(["cleanup", &id])
        .assert_code(0)
        .assert_stdout(", which held them");
    me.assert_nothing_left(&run);
}

#[test]
fn a_kernel_that_refuses_the_user_namespace_gets_one_sentence_before_anything_runs() {
    // This machine's /proc/sys is read-only, so user.max_user_namespaces cannot be set to 0
    // here; the kernel refuses the same way 33 user namespaces deep (its nesting limit), which
    // an ordinary user can reach alone. (privilege.rs reads the three settings first; a unit
    // test covers the sentence for each.)
    let me = AsUser::new(ALONE, "rootless-refused");
    let seed = AsUser::scenario("seed");
    let runner = shared().join("runner").display().to_string();
    let mut nested: Vec<String> = vec![runner, "run".into(), seed];
    for _ in 0..33 {
        nested.splice(
            0..0,
            ["/usr/bin/unshare", "--user", "--map-current-user", "--"].map(String::from),
        );
    }
    let args: Vec<&str> = nested[1..].iter().map(String::as_str).collect();
    let _labs = lab_lock();
    let run = me.command(&nested[0], &args);
    run.assert_code(2).assert_stderr(
        "runner: error: the kernel refused an ordinary user the user namespace a rootless run needs",
    );
    assert!(
        run.stderr.contains("run the runner as root"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("netns add"), "it ran:\n{}", run.stdout);
    me.assert_nothing_left(&run);
}

/// A program's init shares the lab helper's memory (lab/helper/spawn.rs), and an ordinary
/// user's programs run as the user, the helper's own uid: only the init being not dumpable
/// keeps a program from reading (or, through /proc/1/mem, writing) the helper's memory, its
/// environment and its fds. Each attempt must be refused, and the helper's map never shown.
#[test]
fn a_program_cannot_reach_its_inits_memory_which_is_the_helpers() {
    let me = AsUser::new(USER, "rootless-init");
    let run = attacks_shell(
        &me,
        &[
            "cat /proc/1/maps; echo \"maps: exit $?\"",
            "head -c 64 /proc/1/environ; echo \"environ: exit $?\"",
            "ls /proc/1/fd; echo \"fd: exit $?\"",
            "perl -e 'open(my $f, \"+<\", \"/proc/1/mem\") or die \"mem: refused: $!\\n\"; print \"mem: opened\\n\"'",
        ],
    );
    run.assert_code(0)
        .assert_stdout("| maps: exit 1")
        .assert_stdout("| environ: exit 1")
        .assert_stdout("| fd: exit 2")
        .assert_stdout("! mem: refused: Permission denied");
    // No line of the helper's memory map reached the program.
    assert!(
        !run.stdout.contains("r-xp") && !run.stdout.contains("[heap]"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("| mem: opened"), "{}", run.stdout);
    me.assert_nothing_left(&run);
}

/// The user's run of the attacks scenario's `shell` mode with `commands`, clean of leftovers.
fn attacks_shell(me: &AsUser, commands: &[&str]) -> Run {
    let scenario = AsUser::scenario("attacks");
    let mut args = vec![
        "run",
        "--allow-exec",
        ATTACKS_ALLOW,
        &scenario,
        "--",
        "shell",
    ];
    args.extend_from_slice(commands);
    me.run_clean(&args)
}

/// The Groups line of /proc/self/status of a program the user's run starts.
fn program_groups(me: &AsUser) -> String {
    let run = attacks_shell(me, &["cat /proc/self/status"]);
    run.assert_code(0);
    run.stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("| Groups:"))
        .unwrap_or_else(|| panic!("no Groups line:\n{}", run.stdout))
        .trim()
        .to_string()
}

#[test]
fn programs_drop_the_users_groups_where_the_kernel_lets_the_run() {
    // Both users belong to nslab-extra (scripts/test.sh): a group that could open files a
    // program has no business with.
    for user in [USER, ALONE] {
        let groups = Command::new("id").args(["-nG", user]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&groups.stdout).contains("nslab-extra"),
            "{user}"
        );
    }
    // With subordinate ids, setgroups is the run's to allow: programs start with no groups.
    let with = AsUser::new(USER, "rootless-groups");
    assert_eq!(program_groups(&with), "");
    // Without them the kernel denies setgroups: the groups stay, as the header says.
    let alone = AsUser::new(ALONE, "rootless-groups-alone");
    assert_ne!(program_groups(&alone), "");
}

/// Issue 18, rootless: tcpdump drops to its own user (one of the user's subordinate ids, which
/// the user cannot even signal from outside), and the run ends badly. Nothing of the run's ids
/// is left within 2 s, however it ended.
#[test]
fn a_daemon_that_changes_user_never_outlives_an_ordinary_users_run() {
    let me = AsUser::new(USER, "rootless-daemons");
    let _labs = lab_lock();
    for end in ["err", "sigkill"] {
        let before = host_state();
        let scenario = AsUser::scenario("daemons");
        let mut bg = me.background(&[
            "run",
            "-v",
            "--allow-exec",
            "/usr/lib/frr/zebra,install,tcpdump,setpriv,sh,setsid,sleep",
            &scenario,
            "--",
            "tcpdump",
            if end == "err" { "err" } else { "wait" },
        ]);
        bg.wait_for("is running as pid");
        let seen = bg.seen.join("\n");
        let ids = host_ids(&seen);
        assert_eq!(ids[0].0, uid_of(USER), "{seen}");
        assert!(
            seen.contains("ok   tcpdump runs as another user than the run's root"),
            "{seen}"
        );
        if end == "sigkill" {
            // runuser's child is the runner (env execs it).
            let pid = bg.child.id();
            let runner: i32 = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            // SAFETY: plain syscall on the runner the test started.
            assert_eq!(unsafe { libc::kill(runner, libc::SIGKILL) }, 0);
        }
        let run = bg.finish_within(std::time::Duration::from_secs(8));
        let left = || processes_of(&ids);
        let gone = within(std::time::Duration::from_secs(2), || left().is_empty());
        if !gone {
            for (pid, _, _) in left() {
                // SAFETY: plain syscall; cleaning up after a failed check.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        assert!(gone, "{end}: {:?} left\n{}", left(), run.all());
        assert_eq!(host_state(), before, "{end}");
        if end == "sigkill" {
            let id = run_id(&seen);
            let ls = me.runner(&["ls"]);
            ls.assert_stdout(&format!("{id}  dead"));
            assert!(!ls.stdout.contains("held by"), "{}", ls.all());
            me.runner(&["cleanup", &id]).assert_code(0);
        } else {
            run.assert_code(1);
        }
        me.assert_nothing_left(&run);
    }
}

/// The ELF loader runs no undeclared program in an ordinary user's run either (issue 32).
#[test]
fn the_elf_loader_runs_no_undeclared_program_for_an_ordinary_user() {
    let Some(loader) = crate::confinement::loader() else {
        skipped("the rootless loader test: no /lib64/ld-linux-x86-64.so.2 here");
        return;
    };
    let me = AsUser::new(USER, "rootless-loader");
    let run = me.run_clean(&[
        "run",
        "--allow-exec",
        "env,timeout,python3,cat",
        &AsUser::scenario("loader"),
        "--",
        &loader,
    ]);
    run.assert_code(0);
    for route in ["env", "timeout", "python3", "write-file"] {
        run.assert_stdout(&format!("ok   {route}: id never ran"));
    }
    let printed = run
        .stdout
        .lines()
        .any(|l| l.trim_start().starts_with("| uid="));
    assert!(!printed, "{}", run.all());
}

/// An ordinary user's programs are held to `program-memory` together: by the memory cgroup
/// where the system delegates one to the user (cgroup v2, the kernel leg), the program then
/// OOM-killed; by `RLIMIT_AS` per program where none is (this machine), the allocation then
/// refused. Either way the 200 MiB are never had.
#[test]
fn an_ordinary_users_programs_are_held_to_program_memory() {
    let me = AsUser::new(USER, "rootless-memory");
    let policy = me.runner(&["policy"]);
    let scenario = AsUser::scenario("attacks");
    let run = me.run_clean(&[
        "run",
        "--program-memory",
        "64MiB",
        "--allow-exec",
        ATTACKS_ALLOW,
        &scenario,
        "--",
        "shell",
        r#"perl -e '$x = "x" x (200 * 1024 * 1024); print length($x), "\n"'; echo "status $?""#,
    ]);
    assert!(!run.stdout.contains("209715200"), "{}", run.all());
    if delegated_cgroup().is_some() {
        policy.assert_stdout("(the cgroup delegated to you)");
        run.assert_stdout("   | status 137");
        assert!(
            !run.stderr.contains("program-memory is enforced"),
            "{}",
            run.all()
        );
    } else {
        run.assert_stdout("   | status ");
    }
}

/// Releases a held run of the user's when dropped (`runner release`, as the user), so that a
/// failing test leaves nothing; a run already ended refuses, which is fine.
struct Releasing<'a>(&'a AsUser, String);

impl Drop for Releasing<'_> {
    fn drop(&mut self) {
        let _ = self.0.runner(&["release", &self.1]);
    }
}

/// The inode of the pipe `readlink /proc/self/fd/0` names ("pipe:[N]").
fn pipe_inode(text: &str) -> Option<u64> {
    text.split("pipe:[").nth(1)?.split(']').next()?.parse().ok()
}

/// `runner exec ... -- readlink /proc/self/fd/0` with a pipe of the test's as stdin: the
/// inode of the pipe the command got, and of the test's.
fn stdin_seen(mut cmd: Command) -> (Option<u64>, u64) {
    use std::os::unix::fs::MetadataExt;
    let (read, write) = nix::unistd::pipe().unwrap();
    let ours = std::fs::File::from(read.try_clone().unwrap())
        .metadata()
        .unwrap()
        .ino();
    let out = cmd.stdin(std::fs::File::from(read)).output().unwrap();
    drop(write);
    (pipe_inode(&String::from_utf8_lossy(&out.stdout)), ours)
}

#[test]
fn an_ordinary_users_held_run_is_entered_by_them_and_root_but_not_by_another_user() {
    let me = AsUser::in_session(USER, "rootless-hold");
    let other = AsUser::new(ALONE, "rootless-hold-other");
    let _labs = lab_lock();
    let before = host_state();
    let mut bg = me.background(&["run", "--hold", &AsUser::scenario("seed")]);
    bg.wait_for("held: run ");
    let id = run_id(bg.seen.iter().find(|l| l.contains("held: run ")).unwrap());
    // Should the test fail while the run holds, the run is released all the same.
    let _release = Releasing(&me, id.clone());
    me.runner(&["exec", &id, "ns01", "--", "ip", "-br", "address"])
        .assert_code(0)
        .assert_stdout("192.168.0.1/24");
    me.runner(&["exec", "last", "ns02", "--", "hostname"])
        .assert_code(0)
        .assert_stdout("ns02");
    // A capture needs no tcpdump, and no privilege the user lacks.
    let pcap = me.dir.join("home/c.pcap");
    let mut capture = me
        .command_line(
            shared().join("runner").to_str().unwrap(),
            &[
                "capture",
                &id,
                "ns01",
                "ns01-veth0",
                "-c",
                "4",
                "-w",
                pcap.to_str().unwrap(),
            ],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(within(std::time::Duration::from_secs(10), || {
        std::fs::metadata(&pcap).is_ok_and(|m| m.len() >= 24)
    }));
    me.runner(&[
        "exec",
        &id,
        "ns01",
        "--",
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "192.168.0.2",
    ])
    .assert_code(0);
    let done = within(std::time::Duration::from_secs(10), || {
        capture.try_wait().unwrap().is_some()
    });
    if !done {
        let _ = capture.kill();
    }
    assert!(
        done && capture.wait().unwrap().success(),
        "the capture did not end"
    );
    let bytes = std::fs::read(&pcap).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
    let mut frames = 0;
    while let Some(p) = reader.next_packet() {
        p.unwrap();
        frames += 1;
    }
    assert_eq!(frames, 4);
    // A shell on a terminal, as the user.
    let mut shell = expectrl::Session::spawn(me.command_line(
        shared().join("runner").to_str().unwrap(),
        &["shell", &id, "ns01"],
    ))
    .unwrap();
    shell.set_expect_timeout(Some(std::time::Duration::from_secs(15)));
    shell.expect(format!("[{id} ns01]")).unwrap();
    shell.send_line("hostname; id -u").unwrap();
    shell.expect("ns01").unwrap();
    shell.send_line("exit").unwrap();
    assert!(matches!(
        shell.get_process().wait().unwrap(),
        expectrl::WaitStatus::Exited(_, 0)
    ));
    // Another user is refused by name, before anything is opened.
    other
        .runner(&["exec", &id, "ns01", "--", "true"])
        .assert_code(2)
        .assert_stderr("only a run's own user and root may step into it");
    // Root may step in, and hands the user's run nothing of its own: the command gets a
    // pipe of the runner's, not root's stdin (the user's own exec gets the user's).
    runner(["exec", &id, "ns01", "--", "hostname"])
        .assert_code(0)
        .assert_stdout("ns01");
    let mut as_root = Command::new(RUNNER);
    as_root.args(["exec", &id, "ns01", "--", "readlink", "/proc/self/fd/0"]);
    let (seen, ours) = stdin_seen(as_root);
    assert!(
        seen.is_some() && seen != Some(ours),
        "root's own stdin was handed over: {seen:?}"
    );
    let as_user = me.command_line(
        shared().join("runner").to_str().unwrap(),
        &["exec", &id, "ns01", "--", "readlink", "/proc/self/fd/0"],
    );
    let (seen, ours) = stdin_seen(as_user);
    assert_eq!(
        seen,
        Some(ours),
        "the run's own user gets their stdin as it is"
    );
    me.runner(&["release", &id]).assert_code(0);
    let run = bg.finish();
    run.assert_code(0).assert_stdout("(release)");
    assert_eq!(host_state(), before);
    me.assert_nothing_left(&run);
}
