//! The program, between its fork by the init and its exec (spawn.rs): a fork, so its memory,
//! libc and errno are its own copy. A copy of memory the helper shares with the init, taken
//! while the helper goes on with its next request (it does not wait for programs): it may catch
//! the helper anywhere, in the middle of an allocation, say, holding a lock of libc's. So P
//! reads nothing of the helper's but its own [`Exec`] and [`Rules`], which stay put until its
//! init has been reaped, and between the fork and the exec it makes only calls that neither
//! allocate nor take a lock.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use super::protocol::{Command, Confinement, StartedBy};

/// What every program of the run is confined by, as the helper keeps it.
pub struct Rules {
    pub max_processes: u64,
    pub address_space: Option<u64>,
    pub drop_groups: bool,
    pub landlock: Option<OwnedFd>,
    /// The `cgroup.procs` a program joins (the run's pids and cpu cgroups on v1, its `programs`
    /// leaf on v2): its init stays in the helper's, so that `pids.max` counts the programs
    /// alone, and the programs together weigh as one against the helper and the inits.
    pub cgroups: Vec<OwnedFd>,
    pub filters: Vec<Vec<libc::sock_filter>>,
    /// The operator's helper's rules (server.rs): it starts only the operator's programs.
    pub operators_only: bool,
}

impl Rules {
    /// The rules a [`Confinement`] request states, with the fds that came with it.
    pub fn from_request(c: Confinement, fds: Vec<OwnedFd>) -> Rules {
        let mut fds = fds.into_iter();
        let landlock = if c.landlock { fds.next() } else { None };
        let cgroups = fds.by_ref().take(usize::from(c.cgroups)).collect();
        let filters = c
            .filters
            .iter()
            .map(|f| {
                f.chunks_exact(8)
                    .map(|i| libc::sock_filter {
                        code: u16::from_ne_bytes([i[0], i[1]]),
                        jt: i[2],
                        jf: i[3],
                        k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
                    })
                    .collect()
            })
            .collect();
        Rules {
            max_processes: c.max_processes,
            address_space: c.address_space,
            drop_groups: c.drop_groups,
            landlock,
            cgroups,
            filters,
            operators_only: false,
        }
    }

    /// The rules of the operator's helper, already in the programs' cgroups: no cgroup to join,
    /// no Landlock ruleset (the allowlist binds the scenario's programs, which it never starts).
    pub fn for_operators(&self) -> Rules {
        Rules {
            max_processes: self.max_processes,
            address_space: self.address_space,
            drop_groups: self.drop_groups,
            landlock: None,
            cgroups: Vec::new(),
            filters: self.filters.clone(),
            operators_only: true,
        }
    }
}

/// The fds of a spawn request, in order (protocol.rs, `Request::Spawn`).
pub(super) struct SpawnFds {
    pub netns: RawFd,
    pub mntns: RawFd,
    pub utsns: RawFd,
    pub stdio: [RawFd; 3],
    pub exit_status: RawFd,
}

/// Everything P needs, made before the clone: nothing is allocated after it.
pub(super) struct Exec {
    /// The scenario's program, or the operator's (protocol.rs).
    pub by: StartedBy,
    pub program: CString,
    pub argv: Vec<*const libc::c_char>,
    pub envp: Vec<*const libc::c_char>,
    /// Owns the strings `argv` and `envp` point into.
    _strings: Vec<CString>,
}

impl Exec {
    pub(super) fn new(command: &Command) -> Result<Exec, Errno> {
        let c = |b: &[u8]| CString::new(b).map_err(|_| Errno::EINVAL);
        let program = c(command.program.as_os_str().as_bytes())?;
        let args: Vec<CString> = std::iter::once(Ok(program.clone()))
            .chain(command.args.iter().map(|a| c(a)))
            .collect::<Result<_, _>>()?;
        let env: Vec<CString> = command.env.iter().map(|e| c(e)).collect::<Result<_, _>>()?;
        let argv = args
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp = env
            .iter()
            .map(|e| e.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Ok(Exec {
            by: command.by,
            program,
            argv,
            envp,
            _strings: args.into_iter().chain(env).collect(),
        })
    }
}

/// In the program: tell the runner why it could not start (errno), and leave.
///
/// # Safety
/// In the program only.
unsafe fn give_up(errors: RawFd) -> ! {
    let errno = *libc::__errno_location();
    libc::write(errors, errno.to_ne_bytes().as_ptr().cast(), 4);
    libc::_exit(127)
}

/// P: the cgroup, the limits, the session, its stdin, stdout and stderr
/// and nothing else, what it may execute and call (Landlock, seccomp); then the program.
///
/// # Safety
/// In the program only, forked by the init.
pub(super) unsafe fn become_program(
    rules: &Rules,
    exec: &Exec,
    fds: &SpawnFds,
    errors: RawFd,
) -> ! {
    // A fork of the init: its memory is its own copy, so libc and errno are its own too.
    // The run's pids and cpu cgroups, the program alone (not its init): the helper's answer,
    // which the runner opened, and the kernel checks the opener's rights.
    for procs in &rules.cgroups {
        if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
            give_up(errors)
        }
    }
    // The OOM killer's usual score, not the helper's exemption (helper/mod.rs). This process
    // is not dumpable yet (the init's memory, whose copy it has, must not be read), and the
    // kernels of most distributions (Debian 12's 6.1, found by scripts/test-vm.sh) give the
    // /proc files of a process that is not dumpable, whose memory was made outside the run's
    // user namespace, to the host's root: the open failed with EACCES, every program kept
    // -1000, and a program past `program-memory` could not be OOM-killed (the run hung to its
    // time limit). Dumpable for the three calls it takes, then not again until its exec.
    libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
    let adj = libc::open(
        c"/proc/self/oom_score_adj".as_ptr(),
        libc::O_WRONLY | libc::O_CLOEXEC,
    );
    if adj >= 0 {
        libc::write(adj, b"0".as_ptr().cast(), 1);
        libc::close(adj);
    }
    libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    // The runner ignores SIGPIPE (as every Rust program does), and an exec keeps what is
    // ignored: a program gets the default, as a shell would give it.
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    let nproc = libc::rlimit {
        rlim_cur: rules.max_processes,
        rlim_max: rules.max_processes,
    };
    if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0
        || libc::setrlimit(libc::RLIMIT_NPROC, &nproc) != 0
    {
        give_up(errors)
    }
    if let Some(bytes) = rules.address_space {
        let r = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        if libc::setrlimit(libc::RLIMIT_AS, &r) != 0 {
            give_up(errors)
        }
    }
    // An ordinary user's groups, where the run's user namespace lets them go.
    if rules.drop_groups && libc::setgroups(0, std::ptr::null()) != 0 {
        give_up(errors)
    }
    // Not what ends it (I's death does), but it ends sooner with I than by the kernel's sweep.
    // No controlling terminal: nothing it does can reach the operator's terminal.
    if !crate::process::set_pdeathsig() || libc::setsid() < 0 || libc::chdir(c"/".as_ptr()) != 0 {
        give_up(errors)
    }
    // Its stdin, stdout and stderr, and no other fd of the helper's survives the exec.
    for (target, fd) in fds.stdio.iter().enumerate() {
        if libc::dup2(*fd, target as RawFd) < 0 {
            give_up(errors)
        }
    }
    // The operator's shell (`runner shell`): a terminal of its own, made by `runner shell`
    // for this program alone (never the operator's own), which it takes as its controlling
    // one, so that Ctrl-C and the window size reach it.
    if exec.by == (StartedBy::Operator { terminal: true })
        && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0
    {
        give_up(errors)
    }
    if libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    ) != 0
    {
        give_up(errors)
    }
    // Its session keyring is the helper's: an empty one the helper joined before it ran
    // anything (helper/mod.rs), never the operator's. Not one per program: the kernel charges
    // a keyring joined over another to the run's key quota (kernel.keys.maxkeys, 200 by
    // default), which would cap a run at 200 programs; and the syscall filter keeps programs
    // from the keyring calls anyway.
    // The allowlist as a kernel rule (Landlock), then the syscall filters, last of all so
    // that nothing before needs what they deny.
    // The operator's programs are not the scenario's: its allowlist does not bind them.
    let ruleset = match exec.by {
        StartedBy::Scenario => rules.landlock.as_ref(),
        StartedBy::Operator { .. } => None,
    };
    if let Some(ruleset) = ruleset {
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
            give_up(errors)
        }
    }
    for filter in &rules.filters {
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &program as *const libc::sock_fprog as libc::c_ulong,
            0,
            0,
        ) != 0
        {
            give_up(errors)
        }
    }
    libc::execve(
        exec.program.as_ptr(),
        exec.argv.as_ptr(),
        exec.envp.as_ptr(),
    );
    give_up(errors)
}
