//! A directory the runner writes into, held by its descriptor: everything below it is made
//! relative to that descriptor, with `openat2` and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`; files
//! are made new under a temporary name (`O_EXCL | O_NOFOLLOW | O_NONBLOCK`) and renamed into
//! place. Only a regular file is ever renamed over: a link, FIFO or device node found where a
//! file goes is refused by name, never opened, followed or replaced.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{check, io, user_name, OutputError};

/// A directory the runner writes into, held by its descriptor.
pub struct OutputDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What a file type other than a regular file is, in words (`a symbolic link`); None for a
/// regular file.
pub(super) fn kind_of(mode: libc::mode_t) -> Option<&'static str> {
    match mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFLNK => Some("a symbolic link"),
        libc::S_IFIFO => Some("a FIFO"),
        libc::S_IFCHR => Some("a character device"),
        libc::S_IFBLK => Some("a block device"),
        libc::S_IFSOCK => Some("a socket"),
        libc::S_IFDIR => Some("a directory"),
        _ => Some("not a regular file"),
    }
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
    pub fn create(path: &Path) -> Result<OutputDir, OutputError> {
        check(path)?;
        let fail = |e: std::io::Error| io(path.display())(e);
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
        own_directory(&fd, path)?;
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

    /// Err, in words, when `name` exists here and is not a regular file.
    fn refuse_other_than_file(&self, name: &str) -> std::io::Result<()> {
        let st =
            match nix::sys::stat::fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            {
                Ok(st) => st,
                Err(nix::errno::Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
        match kind_of(st.st_mode) {
            None => Ok(()),
            Some(_) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Err(std::io::Error::other(
                format!("{} is a directory", self.path.join(name).display()),
            )),
            Some(kind) => Err(std::io::Error::other(format!(
                "{} is {kind} that the runner did not make; it writes only regular files there \
                 and never replaces anything else: remove it, or name another directory",
                self.path.join(name).display()
            ))),
        }
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
    /// renamed over the regular file `name` was, if any. Anything else at `name` (a link, a
    /// FIFO, a device node, a socket) is something the runner did not make: it is refused by
    /// name, never opened, never renamed over.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        if !plain(name) {
            return Err(std::io::Error::other(format!(
                "{name:?} is not a plain name"
            )));
        }
        self.refuse_other_than_file(name)?;
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
    fn a_regular_file_is_replaced_and_anything_else_is_refused_untouched() {
        let base = std::env::temp_dir().join(format!("nslab-unit-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = OutputDir::create(&base.join("a/b")).unwrap();
        std::fs::write(base.join("a/b/old.html"), b"old").unwrap();
        dir.write("old.html", b"new").unwrap();
        assert_eq!(std::fs::read(base.join("a/b/old.html")).unwrap(), b"new");
        // A link and a FIFO where files go: refused by name, left as they were, the link's
        // target untouched, the FIFO never opened (so never waited on).
        let target = base.join("target");
        std::fs::write(&target, b"before").unwrap();
        std::os::unix::fs::symlink(&target, base.join("a/b/index.html")).unwrap();
        let fifo = base.join("a/b/junit.xml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = dir.write("index.html", b"page").unwrap_err().to_string();
        assert!(
            e.contains("index.html is a symbolic link that the runner did not make"),
            "{e}"
        );
        let e = dir.write("junit.xml", b"xml").unwrap_err().to_string();
        assert!(e.contains("junit.xml is a FIFO"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"before");
        let link = std::fs::symlink_metadata(base.join("a/b/index.html")).unwrap();
        assert!(link.file_type().is_symlink());
        let meta = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
        // No temporary file was left behind either.
        let names: Vec<_> = std::fs::read_dir(base.join("a/b"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        // A link where a subdirectory goes is refused.
        std::os::unix::fs::symlink(&base, base.join("a/b/files")).unwrap();
        assert!(dir.subdir("files").is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
