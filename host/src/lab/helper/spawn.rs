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
//! The helper answers as soon as P is forked, so that starting hundreds of daemons goes as fast
//! as typing `ip netns exec NS DAEMON &`: with the pidfd of I, it passes the read end of a
//! close-on-exec pipe into which P writes the errno if it cannot execute (exec.rs reads it: a
//! program run to completion fails with it, a background one ends with status 127 and says
//! why).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::init::InitArgs;
pub use super::program::Rules;
use super::program::{Exec, SpawnFds};
use super::protocol::Command;

/// A stack for an init: mapped per program, unmapped once the init has been reaped.
const INIT_STACK: usize = 64 << 10;

/// What the helper keeps of the inits it started: their stacks, by pid.
#[derive(Default)]
pub struct Inits {
    stacks: std::collections::HashMap<libc::pid_t, usize>,
    /// The helper's own pidfd, opened at its first program: each init looks at it (spawn).
    helper: Option<OwnedFd>,
}

impl Inits {
    /// The helper's own pidfd, opened once.
    fn helper_pidfd(&mut self) -> Result<RawFd, Errno> {
        if let Some(fd) = &self.helper {
            return Ok(fd.as_raw_fd());
        }
        let fd = crate::lab::process::pidfd_open(std::process::id())
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let raw = fd.as_raw_fd();
        self.helper = Some(fd);
        Ok(raw)
    }

    /// Reap the inits that have ended and unmap their stacks (the runner learns of their end
    /// from their status pipes and pidfds). Called before each request.
    pub fn reap_ended(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: plain waitpid with WNOHANG. The helper waits for its other children by
            // pid, within the request that made them, so none of those is taken here.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if let Some(stack) = self.stacks.remove(&pid) {
                // SAFETY: the stack this init ran on; it has ended and been reaped.
                unsafe { libc::munmap(stack as *mut libc::c_void, INIT_STACK) };
            }
        }
    }
}

impl Drop for Inits {
    /// The helper is ending (the runner closed its socket): stop every init still there and
    /// reap them all, so that none is left even as a zombie for the host's init to collect.
    /// The runner stops the helper if this takes more than a second (helper/mod.rs).
    fn drop(&mut self) {
        for pid in self.stacks.keys() {
            // SAFETY: a child of ours, not yet reaped: its pid is still its own.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let mut status = 0;
        // SAFETY: plain waitpid, until there is no child left.
        while unsafe { libc::waitpid(-1, &mut status, 0) } > 0 {}
    }
}

/// Start the program of a spawn request (`fds` as protocol.rs lists them), once it is forked:
/// a pidfd of its init, the init's pid, and the read end of the pipe that gets the program's
/// exec errno; or why it could not be started.
pub fn spawn(
    rules: &Rules,
    fds: &[OwnedFd],
    inits: &mut Inits,
) -> Result<(OwnedFd, u32, OwnedFd), Errno> {
    let [command, netns, mntns, utsns, stdin, stdout, stderr, exit_status] = fds else {
        return Err(Errno::EINVAL);
    };
    let command = read_command(command)?;
    let exec = Exec::new(&command)?;
    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let (errors_in, errors_out) = nix::unistd::pipe2(cloexec)?;
    let (forked_in, forked_out) = nix::unistd::pipe2(cloexec)?;
    // The init cannot ask for its parent (getppid() says 0 across a PID namespace): it looks
    // at the helper's pidfd instead.
    let helper = inits.helper_pidfd()?;
    let args = InitArgs {
        rules,
        exec: &exec,
        fds: SpawnFds {
            netns: netns.as_raw_fd(),
            mntns: mntns.as_raw_fd(),
            utsns: utsns.as_raw_fd(),
            stdio: [stdin, stdout, stderr].map(AsRawFd::as_raw_fd),
            exit_status: exit_status.as_raw_fd(),
        },
        errors: errors_out.as_raw_fd(),
        forked: forked_out.as_raw_fd(),
        helper,
    };
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
    // raw system calls; `args` outlives its reads (the helper waits for the fork below).
    let child = unsafe {
        libc::clone(
            super::init::init_main,
            stack.cast::<u8>().add(INIT_STACK).cast(),
            flags,
            (&args as *const InitArgs).cast_mut().cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    if child < 0 {
        let e = Errno::last();
        // SAFETY: nobody runs on it.
        unsafe { libc::munmap(stack, INIT_STACK) };
        return Err(e);
    }
    inits.stacks.insert(child, stack as usize);
    // SAFETY: the kernel just gave us this pidfd.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop((errors_out, forked_out));
    let mut byte = [0u8; 1];
    match nix::unistd::read(&forked_in, &mut byte) {
        Ok(1) => Ok((pidfd, child as u32, errors_in)),
        // The init failed before it forked: it said why.
        _ => {
            let mut errno = [0u8; 4];
            match nix::unistd::read(&errors_in, &mut errno) {
                Ok(4) => Err(Errno::from_raw(i32::from_ne_bytes(errno))),
                _ => Err(Errno::EIO),
            }
        }
    }
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
