//! The fake kernel's port to a helper (helper/port.rs): boxes and files kept in memory, and
//! programs started as plain processes of the test's own, unboxed: no namespace, no box, no
//! user change. It does what the real helper and a program's init say on the start's pipes
//! (the pid once forked, an exec's errno, the exit status), so that the lab's bookkeeping of
//! programs (starts told in order, output, waiting, killing, counting, releasing) runs
//! without root.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;

use super::state::{lock, State};
use crate::error::ErrorKind;
use crate::error::{LabError, LabResult};
use crate::helper::channel::Init;
use crate::helper::ids::GroupDrop;
use crate::helper::port::{NewBox, Port};
use crate::helper::protocol::{Command, Confinement, StartError, StartFds};
use crate::helper::starter::Starter;
use crate::helper::FileFailure;

/// The fake's port. Clones share the fake's state.
#[derive(Clone)]
pub struct FakePort {
    pub(super) state: Arc<Mutex<State>>,
}

/// A descriptor that stands for something of the fake's (a namespace, a box): a memfd, whose
/// inode names it.
pub(super) fn token(state: &mut State, kind: &str, name: &str) -> LabResult<OwnedFd> {
    let fd = nix::sys::memfd::memfd_create(c"nslab-fake", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| LabError::from_errno(e, "make a fake descriptor"))?;
    let inode = nix::sys::stat::fstat(&fd).map(|s| s.st_ino).unwrap_or(0);
    state.tokens.insert(inode, format!("{kind} {name}"));
    Ok(fd)
}

/// What a descriptor made by [`token`] stands for ("box a").
fn named(state: &State, fd: BorrowedFd<'_>) -> String {
    let inode = nix::sys::stat::fstat(fd).map(|s| s.st_ino).unwrap_or(0);
    state
        .tokens
        .get(&inode)
        .cloned()
        .unwrap_or_else(|| "?".into())
}

/// The raw fd, lent for this call, as a descriptor of our own.
fn own(fd: RawFd) -> LabResult<OwnedFd> {
    // SAFETY: the lab keeps every fd of a start open until the port's start_program returns.
    unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .map_err(|e| LabError::from_io(&e, "copy a start's descriptor"))
}

impl Port for FakePort {
    async fn new_box(
        &self,
        name: &str,
        _netns: BorrowedFd<'_>,
        _scratch_bytes: u64,
        _by_path: &[(String, PathBuf)],
        _code: &[PathBuf],
    ) -> LabResult<NewBox> {
        let mut s = lock(&self.state);
        s.request(format!("box {name}"), &format!("build the box of {name}"))?;
        if let Some(n) = s.namespaces.values_mut().find(|n| n.name == name) {
            n.boxed = true;
        }
        Ok(NewBox {
            boxfs: token(&mut s, "box", name)?,
            uts: token(&mut s, "uts", name)?,
            link_events: token(&mut s, "events", name)?,
        })
    }

    async fn set_hostname(&self, uts: BorrowedFd<'_>, hostname: &str) -> LabResult<()> {
        let mut s = lock(&self.state);
        let of = named(&s, uts);
        s.request(format!("hostname {hostname} ({of})"), "set the host name")
    }

    async fn write_file(
        &self,
        boxfs: BorrowedFd<'_>,
        path: &str,
        contents: &[u8],
        _mode: u32,
    ) -> Result<(), FileFailure> {
        let mut s = lock(&self.state);
        let of = named(&s, boxfs);
        s.request(format!("write {path} ({of})"), &format!("write {path}"))?;
        s.files.insert((of, path.to_string()), contents.to_vec());
        Ok(())
    }

    async fn open_file(&self, boxfs: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, FileFailure> {
        let mut s = lock(&self.state);
        let of = named(&s, boxfs);
        s.request(format!("read {path} ({of})"), &format!("read {path}"))?;
        let Some(contents) = s.files.get(&(of, path.to_string())).cloned() else {
            return Err(FileFailure::InBox {
                errno: Errno::ENOENT,
                what: format!("read {path}"),
            });
        };
        let what = format!("read {path}");
        let fd =
            nix::sys::memfd::memfd_create(c"nslab-fake", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .map_err(|e| LabError::from_errno(e, &what))?;
        let mut file = std::fs::File::from(fd);
        use std::io::{Seek, Write};
        file.write_all(&contents)
            .and_then(|()| file.rewind())
            .map_err(|e| LabError::from_io(&e, &what))?;
        Ok(file.into())
    }

    async fn confine(&self, _c: Confinement, _fds: &[RawFd]) -> LabResult<()> {
        lock(&self.state).request("confine".into(), "confine the run's programs")
    }

    async fn start_program(&self, command: &Command, fds: StartFds<RawFd>) -> LabResult<Init> {
        let program = command.program.display().to_string();
        {
            let mut s = lock(&self.state);
            let line = std::iter::once(program.clone())
                .chain(
                    command
                        .args
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned()),
                )
                .collect::<Vec<_>>()
                .join(" ");
            s.request(format!("start {line}"), &format!("start {program}"))
                .inspect_err(|e| {
                    // As the helper does when it cannot clone an init: said on the pipe too.
                    if matches!(e.kind(), ErrorKind::Limit | ErrorKind::Os) {
                        let code = StartError::Clone(Errno::EAGAIN).encode().to_ne_bytes();
                        let _ = nix::unistd::write(
                            // SAFETY: lent for this call (see `own`).
                            unsafe { BorrowedFd::borrow_raw(fds.errors) },
                            &code,
                        );
                    }
                })?;
        }
        let [stdin, stdout, stderr, exit_status, errors, forked] = [
            fds.stdin,
            fds.stdout,
            fds.stderr,
            fds.exit_status,
            fds.errors,
            fds.forked,
        ]
        .map(own);
        let (exit_status, errors, forked) = (exit_status?, errors?, forked?);
        let mut cmd = std::process::Command::new(&command.program);
        cmd.args(command.args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
            .env_clear()
            .envs(command.env.iter().filter_map(|kv| {
                let at = kv.iter().position(|&b| b == b'=')?;
                Some((
                    std::ffi::OsStr::from_bytes(&kv[..at]),
                    std::ffi::OsStr::from_bytes(&kv[at + 1..]),
                ))
            }))
            .stdin(stdin?)
            .stdout(stdout?)
            .stderr(stderr?);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                // As a program whose exec failed: forked (pid unknown here), the exec's errno,
                // and status 127.
                let errno = e.raw_os_error().unwrap_or(libc::ENOEXEC);
                let _ = nix::unistd::write(&forked, &1u32.to_ne_bytes());
                let code = StartError::Exec(Errno::from_raw(errno)).encode();
                let _ = nix::unistd::write(&errors, &code.to_ne_bytes());
                let _ = nix::unistd::write(&exit_status, &127i32.to_ne_bytes());
                return Ok(Init::known(None));
            }
        };
        let pid = child.id();
        let _ = nix::unistd::write(&forked, &pid.to_ne_bytes());
        drop((forked, errors));
        // Our own child, not yet reaped (the thread below reaps it).
        let pidfd = crate::process::pidfd_open(pid).ok();
        // The program's init, as far as the lab can tell: it writes the status as it ends.
        std::thread::spawn(move || {
            use std::os::unix::process::ExitStatusExt;
            if let Ok(status) = child.wait() {
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(libc::SIGKILL));
                let _ = nix::unistd::write(&exit_status, &code.to_ne_bytes());
            }
        });
        Ok(Init::known(pidfd))
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn groups(&self) -> GroupDrop {
        GroupDrop::Cannot
    }

    fn starter(&self) -> Option<Starter> {
        None
    }
}
