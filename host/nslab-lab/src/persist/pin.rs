//! Pinning a namespace under /run/netns, as `ip netns add` does, so that `ip netns list` and
//! `ip netns exec` see a kept lab; and removing exactly such a pin again.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

pub const NETNS_DIR: &str = "/run/netns";
/// Where `--keep` pins the filesystem boxes of a kept lab (lab/helper/sandbox.rs), beside its namespaces.
pub const BOX_DIR: &str = "/run/nslab/boxes";

/// Make `dir` a mount point of its own with the given propagation (binding it onto itself when
/// it is not one yet).
fn own_mount_point(dir: &str, propagation: MsFlags) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let set = || mount(None::<&str>, dir, None::<&str>, propagation, None::<&str>);
    match set() {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some(dir), dir, None::<&str>, bind, None::<&str>)?;
            Ok(set()?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Make /run/netns a shared mount point, as iproute2 does, so pins made here are seen by
/// `ip netns` in every mount namespace that shares it.
fn prepare_dir() -> std::io::Result<()> {
    own_mount_point(NETNS_DIR, MsFlags::MS_SHARED | MsFlags::MS_REC)
}

/// Make BOX_DIR a private mount point: a mount namespace can be pinned only where the pin
/// cannot propagate into other namespaces (the kernel refuses loops).
fn prepare_box_dir() -> std::io::Result<()> {
    own_mount_point(BOX_DIR, MsFlags::MS_PRIVATE)
}

/// Pin the namespace held by `fd` as /run/netns/NAME. Fails if NAME is taken.
pub fn pin(fd: BorrowedFd<'_>, name: &str) -> std::io::Result<PathBuf> {
    prepare_dir()?;
    pin_at(fd, &Path::new(NETNS_DIR).join(name))
}

/// Pin the filesystem box held by `fd` (a mount namespace) as BOX_DIR/NAME.
pub fn pin_box(fd: BorrowedFd<'_>, name: &str) -> std::io::Result<PathBuf> {
    prepare_box_dir()?;
    pin_at(fd, &Path::new(BOX_DIR).join(name))
}

fn pin_at(fd: BorrowedFd<'_>, path: &Path) -> std::io::Result<PathBuf> {
    let path = path.to_path_buf();
    // Created new, never through a symlink, and mounted onto by the open file itself: what is
    // mounted onto is the file made here, whatever the path names by then.
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let target = format!("/proc/self/fd/{}", made.as_raw_fd());
    if let Err(e) = mount(
        Some(source.as_str()),
        target.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    Ok(path)
}

/// What became of a pin on removal.
#[derive(Debug, PartialEq, Eq)]
pub enum Unpinned {
    Removed,
    AlreadyGone,
    /// Something else now has that name: left alone.
    NotOurs {
        found: u64,
    },
}

/// Remove /run/netns/NAME if, and only if, it still pins the namespace with `inode`.
pub fn unpin(name: &str, inode: u64) -> std::io::Result<Unpinned> {
    unpin_at(&Path::new(NETNS_DIR).join(name), inode)
}

/// Remove BOX_DIR/NAME if, and only if, it still pins the box with `inode`.
pub fn unpin_box(name: &str, inode: u64) -> std::io::Result<Unpinned> {
    unpin_at(&Path::new(BOX_DIR).join(name), inode)
}

fn unpin_at(path: &Path, inode: u64) -> std::io::Result<Unpinned> {
    let path = path.to_path_buf();
    let found = match std::fs::metadata(&path) {
        Ok(m) => m.ino(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Unpinned::AlreadyGone),
        Err(e) => return Err(e),
    };
    if found != inode {
        return Ok(Unpinned::NotOurs { found });
    }
    umount2(&path, MntFlags::MNT_DETACH)?;
    std::fs::remove_file(&path)?;
    Ok(Unpinned::Removed)
}
