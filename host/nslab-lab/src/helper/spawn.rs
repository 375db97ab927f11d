//! Starting a program, in the helper: boxed by the kernel, as `ip netns exec NS PROGRAM` would
//! run it, with an init of its own between it and everything else.
//!
//! The helper forks the programs, not the runner: it is a small single-threaded process already
//! in the run's user namespace (and, where there is one, in the run's memory cgroup), so a fork
//! costs a fraction of one of the runner (whose threads and wasm memory a fork must copy and
//! then break sharing with), and what it forks is the run's in every count the kernel keeps:
//! its processes count toward the run's RLIMIT_NPROC, its memory toward the run's cgroup.
//!
//! Two processes, each with one job:
//! - I, the init: cloned by the helper straight into a new PID (and IPC) namespace, whose PID 1
//!   it is, sharing the helper's memory (CLONE_VM, on a small stack of its own): an init costs
//!   the machine its kernel stack and a page or two of stack, not a copy of the helper's page
//!   tables (which is what would make it cost more than a tenth of a routing daemon). So it
//!   makes only raw system calls (`sys`), which touch neither errno nor anything else the
//!   helper uses. It enters the lab namespace, its filesystem box and host name, mounts the PID
//!   namespace's own /proc, forks the program, passes SIGTERM, SIGINT and SIGHUP on to it,
//!   reaps every orphan, and when the program ends writes its status to a pipe the runner reads
//!   and exits. It never runs foreign code and never changes credentials, so its parent-death
//!   signal holds: it dies with the helper, which dies with the runner.
//! - P, the program (PID 2 there), which takes its cgroup, limits, session, Landlock ruleset
//!   and seccomp filters, and executes.
//!
//! When I dies, for whatever reason, the kernel kills everything left in its PID namespace,
//! whatever user, session or process group those processes have switched to; a program cannot
//! leave a PID namespace. This is what a daemon cannot shed: a parent-death signal on the
//! program itself would not do, since the kernel clears it at every credential change, which is
//! what a daemon dropping to its service user makes (issue 18). I is not dumpable, so a
//! program, which can name it as PID 1, cannot ptrace it or read its /proc files.
//!
//! The helper answers as soon as I is cloned, and never waits for a program: it is free for the
//! next request while I enters the lab and forks P. What I needs lives in a block of the
//! helper's memory that stays until I says (a flag in the block) that it is done with it, once
//! P is forked: so nothing I reads goes away under it, and the helper frees it before its next
//! request, not at the program's end (a command may carry a call's worth of arguments). The
//! runner learns the rest from pipes of its own: P's pid once P is forked (I reads it from its
//! own children in the runner's /proc, opened before it entered the box, and before it can
//! have reaped P), why it could not start (a `StartError`: P's exec's errno, I's own when it
//! could not enter the lab, or the helper's when it could not clone I), and the status P ended
//! with. Starting hundreds of daemons so costs the helper a clone each, not a wait on every
//! one; and the runner need not even read the helper's answer before the next start
//! (channel.rs).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::errno::Errno;

use super::init::InitArgs;
pub use super::program::Rules;
use super::program::{Exec, SpawnFds};
use super::protocol::Command;
use super::protocol::{StartFds, SPAWN_FDS};

/// A stack for an init: mapped per program, unmapped once the init has been reaped.
const INIT_STACK: usize = 64 << 10;

/// What the helper keeps of the inits it started, by pid, until they are reaped.
#[derive(Default)]
pub struct Inits {
    started: std::collections::HashMap<libc::pid_t, Started>,
    /// The helper's own pidfd, opened at its first program: each init looks at it (spawn).
    helper: Option<OwnedFd>,
}

/// An init's stack (unmapped once it has been reaped), and what it reads as it starts (freed
/// once it says it has read it: the helper does not wait for that).
struct Started {
    stack: usize,
    args: Option<Box<InitArgs>>,
}

impl Inits {
    /// The helper's own pidfd, opened once.
    fn helper_pidfd(&mut self) -> Result<RawFd, Errno> {
        if let Some(fd) = &self.helper {
            return Ok(fd.as_raw_fd());
        }
        let fd = crate::process::pidfd_open(std::process::id())
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let raw = fd.as_raw_fd();
        self.helper = Some(fd);
        Ok(raw)
    }

    /// Reap the inits that have ended and unmap their stacks (the runner learns of their end
    /// from their status pipes and pidfds), and free what the others have read. Called before
    /// each request.
    pub fn reap_ended(&mut self) {
        self.reap();
        for init in self.started.values_mut() {
            if init
                .args
                .as_ref()
                .is_some_and(|a| a.read.load(std::sync::atomic::Ordering::Acquire))
            {
                init.args = None;
            }
        }
    }

    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: plain waitpid with WNOHANG. The helper waits for its other children by
            // pid, within the request that made them, so none of those is taken here.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if let Some(started) = self.started.remove(&pid) {
                // SAFETY: the stack this init ran on; it has ended and been reaped.
                unsafe { libc::munmap(started.stack as *mut libc::c_void, INIT_STACK) };
            }
        }
    }
}

impl Drop for Inits {
    /// The helper is ending (the runner closed its socket): stop every init still there and
    /// reap them all, so that none is left even as a zombie for the host's init to collect.
    /// The runner stops the helper if this takes more than a second (helper/mod.rs).
    fn drop(&mut self) {
        for pid in self.started.keys() {
            // SAFETY: a child of ours, not yet reaped: its pid is still its own.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let mut status = 0;
        // SAFETY: plain waitpid, until there is no child left.
        while unsafe { libc::waitpid(-1, &mut status, 0) } > 0 {}
    }
}

/// A spawn request's descriptors (`fds`, as many as protocol.rs says): the command's memfd,
/// and the start's.
pub fn start_fds(fds: Vec<OwnedFd>) -> Option<(OwnedFd, StartFds<OwnedFd>)> {
    let [command, start @ ..] = <[OwnedFd; SPAWN_FDS]>::try_from(fds).ok()?;
    Some((command, StartFds::from_array(start)))
}

/// Start the program of a spawn request: clone its init, and return a pidfd of it at once; or
/// why it could not be cloned, which is also written to the start's error pipe (the runner
/// may not read the helper's answer for a while, helper/channel.rs).
pub fn spawn(
    rules: &Arc<Rules>,
    command: &OwnedFd,
    fds: &StartFds<OwnedFd>,
    inits: &mut Inits,
) -> Result<OwnedFd, Errno> {
    let cloned = clone_init(rules, command, fds, inits);
    if let Err(e) = cloned {
        let code = super::protocol::StartError::Clone(e).encode().to_ne_bytes();
        let _ = nix::unistd::write(&fds.errors, &code);
    }
    cloned
}

fn clone_init(
    rules: &Arc<Rules>,
    command: &OwnedFd,
    fds: &StartFds<OwnedFd>,
    inits: &mut Inits,
) -> Result<OwnedFd, Errno> {
    let exec = Exec::new(&read_command(command)?)?;
    // The operator's helper has no Landlock ruleset to give: it refuses the scenario's programs.
    if rules.operators_only && exec.by == super::protocol::StartedBy::Scenario {
        return Err(Errno::EPERM);
    }
    // The init cannot ask for its parent (getppid() says 0 across a PID namespace): it looks
    // at the helper's pidfd instead.
    let helper = inits.helper_pidfd()?;
    // The init reads these after the helper has gone on: they stay until it is reaped. Its
    // descriptors are its own copies, made by the clone (no CLONE_FILES): the helper closes
    // its own once it has answered.
    let args = Box::new(InitArgs {
        read: std::sync::atomic::AtomicBool::new(false),
        rules: rules.clone(),
        exec,
        fds: SpawnFds {
            netns: fds.netns.as_raw_fd(),
            mntns: fds.mntns.as_raw_fd(),
            utsns: fds.utsns.as_raw_fd(),
            stdio: [&fds.stdin, &fds.stdout, &fds.stderr].map(AsRawFd::as_raw_fd),
            exit_status: fds.exit_status.as_raw_fd(),
        },
        errors: fds.errors.as_raw_fd(),
        forked: fds.forked.as_raw_fd(),
        helper,
    });
    // SAFETY: a private anonymous mapping, owned by `inits` once the clone succeeds.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            INIT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    let mut pidfd: libc::c_int = -1;
    let flags = libc::CLONE_VM
        | libc::CLONE_PIDFD
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::SIGCHLD;
    // SAFETY: the init runs `init_main` on its own stack, in the helper's memory, making only
    // raw system calls; `args` is kept with the stack until the init has been reaped.
    let child = unsafe {
        libc::clone(
            super::init::init_main,
            stack.cast::<u8>().add(INIT_STACK).cast(),
            flags,
            (&*args as *const InitArgs).cast_mut().cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    if child < 0 {
        let e = Errno::last();
        // SAFETY: nobody runs on it.
        unsafe { libc::munmap(stack, INIT_STACK) };
        return Err(e);
    }
    inits.started.insert(
        child,
        Started {
            stack: stack as usize,
            args: Some(args),
        },
    );
    // SAFETY: the kernel just gave us this pidfd.
    Ok(unsafe { OwnedFd::from_raw_fd(pidfd) })
}

/// The command from its memfd.
fn read_command(memfd: &OwnedFd) -> Result<Command, Errno> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::from(memfd.try_clone().map_err(|_| Errno::EBADF)?);
    let mut bytes = Vec::new();
    file.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Command::decode(&bytes).ok_or(Errno::EINVAL)
}
