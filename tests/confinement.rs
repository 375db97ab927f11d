//! Programs see only their lab (issue 20): the allowlist is a kernel rule (Landlock), the
//! operator's keyring is out of reach, /sys is the lab's own, and a syscall filter denies what
//! no lab needs. Each test is the attack, asserting what the host shows.

use std::os::unix::process::CommandExt;

use crate::common::*;

/// `ip -batch` with `netns exec` was a way to run anything the box holds with only `ip`
/// declared: `sh` is started neither through a namespace `ip` makes nor through its own.
#[test]
fn a_program_the_policy_does_not_allow_never_runs_even_through_ip_netns_exec() {
    let run = run_clean(["run", "-v", guest("allowlist").to_str().unwrap()]);
    run.assert_code(0).assert_stdout("ok   sh never ran");
    // What stopped it, as `ip` says: making or naming a namespace, and executing sh.
    assert!(
        run.stdout.contains("Operation not permitted"),
        "{}",
        run.all()
    );
}

/// A program the scenario did not declare, started by one it did (a shell), is refused by the
/// kernel: the shell says so and the program prints nothing.
#[test]
fn a_declared_shell_cannot_execute_an_undeclared_program() {
    let run = run_clean(attacks_args(
        &[],
        "shell",
        &[
            "id; echo \"id: exit $?\"",
            "/usr/bin/env true; echo \"env: exit $?\"",
        ],
    ));
    run.assert_code(0)
        .assert_stdout("| id: exit 126")
        .assert_stdout("| env: exit 126")
        .assert_stdout("Permission denied");
    let printed = run
        .stdout
        .lines()
        .any(|l| l.trim_start().starts_with("| uid="));
    assert!(!printed, "{}", run.all());
}

/// The test's own session keyring, with a secret in it, is what the runner inherits: as an
/// operator's login session would have.
fn runner_with_a_secret_in_its_session_keyring(
    args: Vec<std::ffi::OsString>,
    secret: &'static std::ffi::CStr,
) -> Run {
    let mut cmd = std::process::Command::new(RUNNER);
    cmd.args(args);
    // SAFETY: raw keyctl and add_key calls with static strings: async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // A session keyring of this runner's own, so the test process's stays untouched.
            if libc::syscall(libc::SYS_keyctl, 1, c"nslab-test-session".as_ptr()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let key = libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"nslab-secret".as_ptr(),
                secret.as_ptr(),
                secret.to_bytes().len(),
                -3i32, // KEY_SPEC_SESSION_KEYRING
            );
            if key < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Run::from_output(cmd.output().expect("start the runner"))
}

#[test]
fn the_operators_keyring_is_out_of_reach() {
    let _labs = lab_lock();
    let secret = c"nslab-secret-7f3a9c";
    let run = runner_with_a_secret_in_its_session_keyring(
        attacks_args(
            &[],
            "shell",
            &[
                "keyctl print %user:nslab-secret; echo \"print: exit $?\"",
                "keyctl show @s; echo \"show: exit $?\"",
                "keyctl add user planted x @s; echo \"add: exit $?\"",
                "keyctl show @u; echo \"user: exit $?\"",
            ],
        ),
        secret,
    );
    run.assert_code(0)
        .assert_stdout("| print: exit 1")
        .assert_stdout("| add: exit 1")
        .assert_stdout("Operation not permitted");
    let text = run.all();
    // The secret itself: never printed, saved or echoed.
    assert!(!text.contains("7f3a9c"), "{text}");
}

/// A network device of the host: its name and MAC, if the host has one other than loopback.
fn a_host_device() -> Option<(String, String)> {
    std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .find_map(|d| {
            let name = d.file_name().to_string_lossy().into_owned();
            let mac = std::fs::read_to_string(d.path().join("address")).ok()?;
            let mac = mac.trim().to_string();
            (name != "lo" && mac != "00:00:00:00:00:00" && !mac.is_empty()).then_some((name, mac))
        })
}

#[test]
fn programs_see_the_labs_sys_only_even_after_unmounting_it() {
    let Some((device, mac)) = a_host_device() else {
        skipped("the /sys test: the host has no network device with a MAC but loopback");
        return;
    };
    let run = run_clean(attacks_args(
        &[],
        "shell",
        &[
            "ls /sys/class/net; cat /sys/class/net/*/address; ls /sys/fs/cgroup",
            "cat /proc/self/mountinfo",
            "umount /sys; echo \"umount: exit $?\"; umount -l /sys; ls /sys/class/net; cat /sys/class/net/*/address; ls -R /sys/fs/cgroup",
        ],
    ));
    run.assert_code(0);
    let text = run.all();
    assert!(
        !text.contains(&mac),
        "the host's {device} MAC {mac} leaked:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.ends_with(&format!("| {device}"))),
        "the host's {device} is listed:\n{text}"
    );
    // No cgroup tree at all: not the host's controllers, not other runs' cgroups.
    for controller in ["memory", "pids", "cpu", "nslab-"] {
        assert!(
            !text.lines().any(|l| l.contains(&format!("| {controller}"))),
            "{controller}:\n{text}"
        );
    }
    // The lab's own links are there (a's veth end), from its own sysfs: one mount at /sys.
    run.assert_stdout("| v0");
    let sys_mounts = text
        .lines()
        .filter(|l| l.contains("| ") && l.split_whitespace().nth(5) == Some("/sys"))
        .count();
    assert_eq!(sys_mounts, 1, "{text}");
}

#[test]
fn denied_syscalls_fail_with_the_filters_errno() {
    let run = run_clean(attacks_args(
        &[],
        "shell",
        &[
            "unshare --net true; echo \"unshare net: exit $?\"",
            "unshare --user true; echo \"unshare user: exit $?\"",
            "perl -e '$r = syscall(312, $$, $$, 0, 0, 0); print \"kcmp: $r $!\\n\"'",
        ],
    ));
    run.assert_code(0)
        .assert_stdout("unshare failed: Operation not permitted")
        .assert_stdout("| unshare net: exit 1")
        .assert_stdout("| unshare user: exit 1");
    // x86_64's kcmp (312), comparing a process with itself: the kernel answers 0 (equal); the
    // filter answers first, with EPERM.
    if std::env::consts::ARCH == "x86_64" {
        run.assert_stdout("| kcmp: -1 Operation not permitted");
    }
}

#[test]
fn runner_policy_lists_each_layer_and_inspect_states_the_allowlist() {
    let landlock = nslab_lab::host::landlock_abi().is_some();
    let policy = runner(["policy"]);
    policy.assert_code(0);
    for key in ["exec-allowlist", "syscall-filter", "keyring", "sysfs"] {
        assert!(
            policy.stdout.lines().any(|l| l.starts_with(key)),
            "{key}:\n{}",
            policy.stdout
        );
    }
    let inspect = runner(["inspect", guest("seed").to_str().unwrap()]);
    if landlock {
        policy.assert_stdout("exec-allowlist       by the kernel: Landlock (ABI");
        inspect.assert_stdout(
            "its programs can execute nothing else: the kernel enforces it (Landlock)",
        );
    } else {
        policy.assert_stdout("exec-allowlist       NOT FULLY: by the runner only");
        inspect.assert_stdout("this kernel has no Landlock");
    }
}

/// The ELF loader is no way past the allowlist (issue 32): with `env`, `timeout`, `python3`
/// and `cat` allowed, `env LOADER /usr/bin/id`, `timeout 5 LOADER /bin/sh -c ...`, python3's
/// `os.execv` on the loader, and a copy of `id` given with `write-file` and run through the
/// loader each fail to map the program (the box is `noexec` but for the run's code). All four
/// printed `uid=0(root)` on the previous runner.
#[test]
fn the_elf_loader_runs_no_undeclared_program_by_any_route() {
    let Some(loader) = loader() else {
        skipped("the loader test: no /lib64/ld-linux-x86-64.so.2 here");
        return;
    };
    let run = run_clean([
        "run",
        "--allow-exec",
        "env,timeout,python3,cat",
        guest("loader").to_str().unwrap(),
        "--",
        &loader,
    ]);
    run.assert_code(0);
    for route in ["env", "timeout", "python3", "write-file"] {
        run.assert_stdout(&format!("ok   {route}: id never ran"));
    }
    run.assert_stdout("failed to map segment from shared object")
        .assert_stdout("ok   python3 runs, with its modules");
    // Nothing a program printed says `uid=` (the command lines shown do).
    let printed = run
        .stdout
        .lines()
        .any(|l| l.trim_start().starts_with("| uid="));
    assert!(!printed, "{}", run.all());
}

/// The dynamic loader of this machine's programs.
pub fn loader() -> Option<String> {
    let path = "/lib64/ld-linux-x86-64.so.2";
    std::path::Path::new(path)
        .exists()
        .then(|| path.to_string())
}
