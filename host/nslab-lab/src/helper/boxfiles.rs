//! File work inside a namespace's box, done by a child of the helper that has entered it as
//! root of the run's user namespace: whatever a program made of a path (a symlink, a FIFO, a
//! directory in the way), the work cannot reach a host file or hang the helper.

use std::os::fd::OwnedFd;

/// In a child: become root of the run's user namespace (a mapped id: files it makes have an
/// owner there) and enter the box `boxfs`, whose root becomes this process's root.
pub fn enter_box(boxfs: &OwnedFd) -> nix::Result<()> {
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))?;
    nix::sched::setns(boxfs, nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::unistd::chdir("/")
}

/// Where a box keeps the files and directories a scenario gave it in place of the host's
/// read-only ones: on the box's own scratch tmpfs (counted in scratch-bytes).
const GIVEN: &str = "/run/.nslab";

pub fn io_errno(e: std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Whether the box may create and remove entries in `dir` as it is.
fn writable(dir: &std::path::Path) -> bool {
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok()
}

/// A new entry under GIVEN for `path` (its slashes made '%'), made with `make`.
fn given_entry(
    path: &std::path::Path,
    kind: &str,
    make: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> nix::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::path::Path::new(GIVEN).join(kind);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(io_errno)?;
    let entry = dir.join(path.to_string_lossy().replace('/', "%"));
    if !entry.exists() {
        make(&entry).map_err(io_errno)?;
    }
    Ok(entry)
}

fn bind_over(source: &std::path::Path, target: &std::path::Path) -> nix::Result<()> {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
}

/// Make `dir` a directory the box can write in: as it is when it can; made when missing; and a
/// host directory it may not write (`/etc/bird`) replaced, in this box only, by a fresh one of
/// its own. A top-level system directory (`/etc`, `/usr`) is never replaced: EROFS.
fn box_dir(dir: &std::path::Path) -> nix::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            if writable(dir) {
                return Ok(());
            }
            if dir.components().count() <= 2 {
                return Err(nix::errno::Errno::EROFS);
            }
            let own = given_entry(dir, "dirs", |e| {
                std::fs::DirBuilder::new().mode(0o755).create(e)
            })?;
            bind_over(&own, dir)
        }
        Ok(_) => Err(nix::errno::Errno::ENOTDIR),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            box_dir(dir.parent().ok_or(nix::errno::Errno::EROFS)?)?;
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(dir)
                .map_err(io_errno)
        }
        Err(e) => Err(io_errno(e)),
    }
}

/// Write a file in a box from a memfd, mode exact. A host file the box may not write
/// (`/etc/hosts`) is replaced, in this box only, by one of its own.
pub fn write_in_box(path: &str, mode: u32, data: &OwnedFd) -> nix::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = std::path::Path::new(path);
    let existing = std::fs::metadata(path).ok();
    let target = match existing {
        Some(m)
            if m.is_file()
                && nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_err() =>
        {
            let own = given_entry(path, "files", |e| std::fs::File::create(e).map(drop))?;
            bind_over(&own, path)?;
            own
        }
        Some(m) if m.is_dir() => return Err(nix::errno::Errno::EISDIR),
        Some(m) if !m.is_file() => return Err(nix::errno::Errno::EINVAL),
        _ => {
            box_dir(path.parent().ok_or(nix::errno::Errno::EINVAL)?)?;
            path.to_path_buf()
        }
    };
    // Non-blocking, so that a pipe a program swapped in fails (ENXIO) instead of holding this.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NONBLOCK)
        .open(&target)
        .map_err(io_errno)?;
    if !file.metadata().map_err(io_errno)?.is_file() {
        return Err(nix::errno::Errno::EINVAL);
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_errno)?;
    nix::unistd::lseek(data, 0, nix::unistd::Whence::SeekSet)?;
    let mut source = std::fs::File::from(data.try_clone().map_err(io_errno)?);
    std::io::copy(&mut source, &mut file).map_err(io_errno)?;
    Ok(())
}

/// Open a regular file in a box for reading.
pub fn open_in_box(path: &str) -> nix::Result<OwnedFd> {
    let io = |e: std::io::Error| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a pipe for reading would wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(nix::errno::Errno::EISDIR);
    }
    if !meta.is_file() {
        return Err(nix::errno::Errno::EINVAL);
    }
    Ok(file.into())
}
