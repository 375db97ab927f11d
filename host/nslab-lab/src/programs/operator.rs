//! The operator's programs (`runner exec`, `runner shell`): started through a door of the lab
//! (lab/doors.rs) in the namespace's box, as the run's programs are (the run's ids, cgroups and
//! limits, an init of the runner's), but with the operator's own stdin, stdout and stderr,
//! and not bound by the scenario's allowlist. Waited for by whoever serves the operator (a
//! thread of its own, host/src/enter/), never by the lab, so that nothing the operator runs
//! holds the scenario up.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;

use super::starts;
use crate::doors::Entry;
use crate::error::LabError;
use crate::helper::channel::Init;
use crate::helper::protocol::StartFds;
use crate::helper::protocol::{Command, StartedBy};
use crate::process::SYSTEM_PATH;

/// Why an operator's program did not start, with the status a shell gives for it.
#[derive(Debug)]
pub struct NotStarted {
    /// 127: not found; 126: found but not executable; 125: the lab could not start it.
    pub status: i32,
    pub why: String,
}

/// An operator's program, started.
pub struct OperatorProgram {
    init: Init,
    /// Where its init writes its status (4 bytes) as it ends: the pipe's end is the init's.
    pub exit_status: OwnedFd,
}

/// Where the operator's `program` is: a path as given, or a bare name on the system PATH
/// (the box shows the host's system directories, so the host's lookup is the box's).
pub fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    super::find::in_system_path(program)
}

/// Start `argv` in the door's namespace (the door is let go of once it has started) with
/// `stdio` as its stdin, stdout and stderr, and `env` (PATH is the system's unless given).
/// With `terminal`, stdin is a terminal the program takes as its controlling one.
pub fn start(
    entry: Entry,
    argv: &[String],
    env: &[(String, String)],
    stdio: [OwnedFd; 3],
    terminal: bool,
) -> Result<OperatorProgram, NotStarted> {
    let lab_failed = |e: LabError| NotStarted {
        status: 125,
        why: e.to_string(),
    };
    let Some(name) = argv.first() else {
        return Err(NotStarted {
            status: 125,
            why: "no command was given".into(),
        });
    };
    let Some(program) = find(name) else {
        return Err(NotStarted {
            status: 127,
            why: format!("{name}: command not found (looked in {SYSTEM_PATH})"),
        });
    };
    let what = format!("run {name}");
    let command = Command {
        program,
        args: argv[1..].iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: super::launch::environment(env),
        by: StartedBy::Operator { terminal },
    };
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| lab_failed(LabError::from_errno(e, &what)))
    };
    let (exit_status, exit_write) = pipe()?;
    let (errors, errors_write) = pipe()?;
    let (forked, forked_write) = pipe()?;
    let boxing = entry.room.boxing();
    let init = entry
        .starter
        .start_program(
            &command,
            StartFds {
                netns: boxing.netns,
                mntns: boxing.mntns,
                utsns: boxing.utsns,
                stdin: stdio[0].as_raw_fd(),
                stdout: stdio[1].as_raw_fd(),
                stderr: stdio[2].as_raw_fd(),
                exit_status: exit_write.as_raw_fd(),
                errors: errors_write.as_raw_fd(),
                forked: forked_write.as_raw_fd(),
            },
        )
        .map_err(lab_failed)?;
    // Only the init holds them now; and nothing of the lab's is held while the program runs.
    drop((stdio, exit_write, errors_write, forked_write, entry));
    starts::outcome_blocking(&forked, &errors, &init, &what).map_err(lab_failed)?;
    if let Some(errno) = starts::exec_errno(&errors) {
        return Err(NotStarted {
            status: if errno == Errno::ENOENT { 127 } else { 126 },
            why: format!("{name}: {}", errno.desc()),
        });
    }
    Ok(OperatorProgram { init, exit_status })
}

impl OperatorProgram {
    /// Send `sig` to its init, which passes SIGTERM, SIGINT and SIGHUP on to the program;
    /// SIGKILL ends its whole PID namespace.
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pidfd) = self.init.pidfd() {
            let _ = crate::process::pidfd_signal(pidfd, sig);
        }
    }

    /// Its status once the status pipe is readable: what the init wrote, or 128 + SIGKILL
    /// when it wrote nothing (it was killed, with the run or by the operator).
    pub fn status(&self) -> i32 {
        let mut code = [0u8; 4];
        loop {
            match nix::unistd::read(&self.exit_status, &mut code) {
                Ok(4) => return i32::from_ne_bytes(code),
                Err(Errno::EINTR) => continue,
                _ => return 128 + libc::SIGKILL,
            }
        }
    }
}
