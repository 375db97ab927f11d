//! Pinning a namespace under /run/netns, as `ip netns add` does, so that `ip netns list` and
//! `ip netns exec` see a kept lab; and removing exactly such a pin again.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

pub const NETNS_DIR: &str = "/run/netns";

/// Make /run/netns a shared mount point, as iproute2 does, so pins made here are seen by
/// `ip netns` in every mount namespace that shares it.
fn prepare_dir() -> std::io::Result<()> {
    std::fs::create_dir_all(NETNS_DIR)?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then share it.
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            Ok(mount(
                None::<&str>,
                NETNS_DIR,
                None::<&str>,
                shared,
                None::<&str>,
            )?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Pin the namespace held by `fd` as /run/netns/NAME. Fails if NAME is taken.
pub fn pin(fd: BorrowedFd<'_>, name: &str) -> std::io::Result<PathBuf> {
    prepare_dir()?;
    let path = Path::new(NETNS_DIR).join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    if let Err(e) = mount(
        Some(source.as_str()),
        &path,
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
    let path = Path::new(NETNS_DIR).join(name);
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
