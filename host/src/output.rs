//! One safe way to write where the operator points the runner (`--report`, `--junit`,
//! `--graph`, the scenario's attachments, `runner test`'s index): the runner often runs as root
//! on machines other users share, so a path must not let them redirect what it writes.
//!
//! - **The path is checked before the run** ([`check`]), by the rule `sshd` applies to
//!   `~/.ssh` and `sudo` to its includes: no existing ancestor may be writable by a user other
//!   than the runner's (and root): not theirs, not group- or world-writable; a sticky directory
//!   (`/tmp`) is allowed when the next component is the runner's user's own. A symlink on the
//!   way is followed only if it lies in such a directory itself, and its target is checked the
//!   same way. Another user can then neither swap a directory of the path nor plant a link in
//!   it.
//! - **The directory is resolved once** ([`OutputDir::create`]) and everything below it is made
//!   relative to its descriptor: `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, new
//!   files with `O_EXCL | O_NOFOLLOW | O_NONBLOCK` under a temporary name and then renamed into
//!   place: an existing entry (a symlink, a FIFO, a device) is replaced, never opened, so the
//!   runner never writes through a link and never blocks on a FIFO.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory the runner writes into, held by its descriptor.
pub struct OutputDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Who may write a directory besides the runner's user and root, if anyone: the reason, in words.
fn others_may_write(meta: &std::fs::Metadata, uid: u32) -> Option<String> {
    if meta.uid() != uid && meta.uid() != 0 {
        return Some(format!("it belongs to {}", user_name(meta.uid())));
    }
    if meta.mode() & 0o002 != 0 {
        return Some("anyone may write it".into());
    }
    if meta.mode() & 0o020 != 0 {
        return Some(format!("its group (gid {}) may write it", meta.gid()));
    }
    None
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("user {} (uid {uid})", crate::text::printable(&u.name)),
        _ => format!("uid {uid}"),
    }
}

/// Check `path` (which need not exist yet) by the rule above: Ok, or the sentence that says
/// which ancestor is unsafe and why.
pub fn check(path: &Path) -> Result<(), String> {
    let uid = nix::unistd::geteuid().as_raw();
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot find the current directory: {e}"))?
            .join(path)
    };
    let mut todo: Vec<OsString> = components(&absolute);
    todo.reverse();
    let mut dir = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            dir.pop();
            continue;
        }
        let next = dir.join(&name);
        let dir_meta = std::fs::metadata(&dir)
            .map_err(|e| format!("cannot look at {}: {e}", dir.display()))?;
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot look at {}: {e}", next.display())),
        };
        if let Some(why) = others_may_write(&dir_meta, uid) {
            let sticky = dir_meta.mode() & 0o1000 != 0;
            let ours = meta.as_ref().is_none_or(|m| m.uid() == uid);
            if !(sticky && ours) {
                let what = match &meta {
                    Some(m) => format!("{} belongs to {}", next.display(), user_name(m.uid())),
                    None => format!("{} may be made there by them first", next.display()),
                };
                return Err(format!(
                    "{} is not safe to write under: {} is writable by another user ({why}), and \
                     {what}, who could swap it for a link elsewhere; name a directory that only \
                     you (and root) can write",
                    path.display(),
                    dir.display()
                ));
            }
        }
        let Some(meta) = meta else {
            // The rest does not exist yet: the runner makes it, as its own.
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(format!("{}: too many symbolic links", path.display()));
            }
            let target = std::fs::read_link(&next)
                .map_err(|e| format!("cannot read the link {}: {e}", next.display()))?;
            if target.is_absolute() {
                dir = PathBuf::from("/");
            }
            let mut rest = components(&target);
            rest.reverse();
            todo.extend(rest);
            continue;
        }
        dir = next;
    }
    Ok(())
}

/// A path's named components, `.` dropped and `..` kept (resolved against real directories as
/// the check walks them).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

/// `openat2` with the resolution that keeps a name where it is: beneath `dir`, through no link.
fn open_beneath(dir: &OwnedFd, name: &OsStr, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    let c = CString::new(name.as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: open_how is plain data; all-zero is its "nothing asked" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 with a valid dirfd, a NUL-terminated name and a struct of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether `name` is one plain entry of a directory.
fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// A directory fd must be a directory of the runner's user.
fn own_directory(fd: &OwnedFd, shown: &Path) -> std::io::Result<()> {
    let st = nix::sys::stat::fstat(fd)?;
    let uid = nix::unistd::geteuid().as_raw();
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            shown.display()
        )));
    }
    if st.st_uid != uid {
        return Err(std::io::Error::other(format!(
            "{} belongs to {}, who could plant files in it; name a directory of your own",
            shown.display(),
            user_name(st.st_uid)
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} may be written by other users (mode {:o}), who could plant files in it; name a \
             directory only you can write",
            shown.display(),
            st.st_mode & 0o7777
        )));
    }
    Ok(())
}

static TEMPORARY: AtomicU64 = AtomicU64::new(0);

impl OutputDir {
    /// Check `path` ([`check`]), make what of it is missing, and hold the directory by fd.
    pub fn create(path: &Path) -> Result<OutputDir, String> {
        check(path)?;
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        // Safe ancestors cannot change under us: resolving the existing part once is enough.
        let mut existing = path.to_path_buf();
        let mut missing: Vec<OsString> = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    missing.push(name.to_os_string());
                    existing = if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_path_buf()
                    };
                }
                _ => break,
            }
        }
        let mut fd: OwnedFd = std::fs::File::open(&existing).map_err(fail)?.into();
        for name in missing.into_iter().rev() {
            fd = Self::make_below(&fd, &name).map_err(fail)?;
        }
        own_directory(&fd, path).map_err(|e| e.to_string())?;
        Ok(OutputDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Make directory `name` below `dir` (or take the one there) and open it, through no link.
    fn make_below(dir: &OwnedFd, name: &OsStr) -> std::io::Result<OwnedFd> {
        match nix::sys::stat::mkdirat(dir, name, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        open_beneath(dir, name, libc::O_DIRECTORY | libc::O_RDONLY, 0).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV) => {
                    std::io::Error::other(format!(
                        "{} is a symbolic link or not a directory; the runner does not write \
                         through one",
                        Path::new(name).display()
                    ))
                }
                _ => e,
            }
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory `name` below this one, made if missing, held by fd; it must be the runner's
    /// user's own and no link.
    pub fn subdir(&self, name: &str) -> std::io::Result<OutputDir> {
        if !plain(name) {
            return Err(std::io::Error::other(format!(
                "{name:?} is not a plain name"
            )));
        }
        let path = self.path.join(name);
        let fd = Self::make_below(&self.fd, OsStr::new(name))
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        own_directory(&fd, &path)?;
        Ok(OutputDir { fd, path })
    }

    /// Write `bytes` as the regular file `name` here, whole: a new file under a temporary name,
    /// renamed over whatever `name` was (a file, a link, a FIFO), which is never opened.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        if !plain(name) {
            return Err(std::io::Error::other(format!(
                "{name:?} is not a plain name"
            )));
        }
        let temporary = format!(
            ".{name}.nslab-{}-{}",
            std::process::id(),
            TEMPORARY.fetch_add(1, Ordering::Relaxed)
        );
        let fd = open_beneath(
            &self.fd,
            OsStr::new(&temporary),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NONBLOCK,
            0o644,
        )
        .map_err(|e| std::io::Error::other(format!("{}: {e}", self.path.join(name).display())))?;
        let mut file = std::fs::File::from(fd);
        let written = file
            .write_all(bytes)
            .and_then(|()| {
                nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(0o644))
                    .map_err(std::io::Error::from)
            })
            .and_then(|()| {
                nix::fcntl::renameat(&self.fd, temporary.as_str(), &self.fd, name).map_err(|e| {
                    match e {
                        nix::errno::Errno::EISDIR | nix::errno::Errno::ENOTEMPTY => {
                            std::io::Error::other(format!(
                                "{} is a directory",
                                self.path.join(name).display()
                            ))
                        }
                        e => e.into(),
                    }
                })
            });
        if written.is_err() {
            let _ = nix::unistd::unlinkat(
                &self.fd,
                temporary.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        written
    }
}

/// Write the single file `path` (`--junit`, `--graph`) the safe way: its directory checked and
/// held, the file made new and renamed into place.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(|| format!("{}: name a file", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    OutputDir::create(dir)?
        .write(name, bytes)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_written() {
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert!(!plain(bad), "{bad:?}");
        }
        assert!(plain("index.html") && plain(".hidden") && plain("x..y"));
    }

    #[test]
    fn a_directory_of_ones_own_under_a_safe_path_is_fine_and_a_link_in_it_is_replaced() {
        let base = std::env::temp_dir().join(format!("nslab-unit-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = OutputDir::create(&base.join("a/b")).unwrap();
        // A link and a FIFO where files go: replaced, their targets untouched, no blocking.
        let target = base.join("target");
        std::fs::write(&target, b"before").unwrap();
        std::os::unix::fs::symlink(&target, base.join("a/b/index.html")).unwrap();
        nix::unistd::mkfifo(
            &base.join("a/b/junit.xml"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        dir.write("index.html", b"page").unwrap();
        dir.write("junit.xml", b"xml").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"before");
        assert_eq!(std::fs::read(base.join("a/b/index.html")).unwrap(), b"page");
        assert_eq!(std::fs::read(base.join("a/b/junit.xml")).unwrap(), b"xml");
        // A link where a subdirectory goes is refused.
        std::os::unix::fs::symlink(&base, base.join("a/b/files")).unwrap();
        assert!(dir.subdir("files").is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
