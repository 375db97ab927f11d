//! A single file the operator names (`--junit`, `--graph`, `runner report merge -o`), opened
//! before the run the way it will be written:
//!
//! - **nothing there, or a regular file**: made new in its directory and renamed into place
//!   ([`OutputDir`]), so a reader never sees half a file;
//! - **anything else** (`/dev/stdout`, `/dev/null`, `/dev/fd/63` from `>(...)`, a terminal, a
//!   FIFO with a reader, a link to one of these): written through, as a shell's `>` writes,
//!   opened now as the shell opens it before the command runs; never renamed over or removed.
//!   A FIFO without a reader is refused at once (`O_NONBLOCK` makes the open say `ENXIO`, never
//!   wait); so is a block device (a disk is no place for a report). The runner's own stdout or
//!   stderr, reached by any path, is written through the runner's own stream, after everything
//!   it printed there.
//! - a link to a regular file: the link stays, its target is written as a regular file.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{check, io, OutputDir, OutputError};

/// One of the runner's own standard streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "standard output",
            Stream::Stderr => "standard error",
        }
    }
}

/// A single-file output, opened: written with [`FileOutput::write`] when the run ends.
pub struct FileOutput {
    path: PathBuf,
    how: How,
}

enum How {
    /// Made new as `name` in `dir` and renamed into place.
    Replace { dir: OutputDir, name: String },
    /// The runner's own stream.
    Stream(Stream),
    /// Something that is not a regular file, open for writing.
    Through(File),
}

impl std::fmt::Debug for FileOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.how {
            How::Replace { .. } => "replace".to_string(),
            How::Stream(s) => s.name().to_string(),
            How::Through(_) => "through".to_string(),
        };
        write!(f, "FileOutput({}, {how})", self.path.display())
    }
}

impl FileOutput {
    /// Check `path` by the ancestor rule ([`check`]) and open it as it will be written.
    pub fn open(path: &Path) -> Result<FileOutput, OutputError> {
        check(path)?;
        let how = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => replace(path)?,
            Err(e) => return Err(io(format!("cannot look at {}", path.display()))(e)),
            Ok(m) if m.is_file() => replace(path)?,
            Ok(m) if m.is_dir() => {
                return Err(OutputError::Refused(format!(
                    "{} is a directory; name a file",
                    path.display()
                )))
            }
            Ok(_) => through(path)?,
        };
        Ok(FileOutput {
            path: path.to_path_buf(),
            how,
        })
    }

    /// The runner's own stream this output goes to, if it is one.
    pub fn stream(&self) -> Option<Stream> {
        match self.how {
            How::Stream(s) => Some(s),
            _ => None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `bytes` whole.
    pub fn write(&self, bytes: &[u8]) -> Result<(), OutputError> {
        let fail = io(self.path.display());
        match &self.how {
            How::Replace { dir, name } => Ok(dir.write(name, bytes)?),
            How::Stream(Stream::Stdout) => {
                let mut out = std::io::stdout().lock();
                out.flush()
                    .and_then(|()| out.write_all(bytes))
                    .and_then(|()| out.flush())
                    .map_err(fail)
            }
            How::Stream(Stream::Stderr) => {
                let _ = std::io::stdout().flush();
                std::io::stderr().lock().write_all(bytes).map_err(fail)
            }
            How::Through(file) => {
                let mut file: &File = file;
                file.write_all(bytes).map_err(fail)
            }
        }
    }
}

/// Write the single file `path` the safe way ([`FileOutput`]), opened now.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    FileOutput::open(path)?.write(bytes)
}

/// The regular file at `path` (or none yet): made new beside it and renamed into place.
fn replace(path: &Path) -> Result<How, OutputError> {
    let name = path
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(|| OutputError::Refused(format!("{}: name a file", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok(How::Replace {
        dir: OutputDir::create(dir)?,
        name: name.to_string(),
    })
}

/// What is at `path` is not a regular file: open it for writing as a shell's `>` would,
/// without waiting and without taking it as a controlling terminal.
fn through(path: &Path) -> Result<How, OutputError> {
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) => return Err(cannot_open(path, e)),
    };
    let st = nix::sys::stat::fstat(&file).map_err(|e| io(path.display())(e.into()))?;
    if let Some(stream) = own_stream(&st) {
        return Ok(How::Stream(stream));
    }
    match st.st_mode & libc::S_IFMT {
        // A link to a regular file: the link stays, its target is written as any file is.
        libc::S_IFREG => {
            drop(file);
            let target = std::fs::canonicalize(path)
                .map_err(io(format!("cannot follow {}", path.display())))?;
            check(&target)?;
            replace(&target)
        }
        libc::S_IFBLK => Err(OutputError::Refused(format!(
            "{} is a block device (a disk): the runner writes no report onto one; name a file",
            path.display()
        ))),
        libc::S_IFDIR => Err(OutputError::Refused(format!(
            "{} leads to a directory; name a file",
            path.display()
        ))),
        _ => {
            // Opened without waiting; written as the shell writes, waiting for the reader.
            let flags = nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
                .map_err(|e| io(path.display())(e.into()))?;
            let flags =
                nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
                .map_err(|e| io(path.display())(e.into()))?;
            Ok(How::Through(file))
        }
    }
}

/// Why `path` could not be opened, in words a person can act on.
fn cannot_open(path: &Path, e: std::io::Error) -> OutputError {
    let kind = std::fs::metadata(path).ok().map(|m| m.file_type());
    let refused = OutputError::Refused;
    match e.raw_os_error() {
        Some(libc::ENXIO) if kind.is_some_and(|k| k.is_fifo()) => refused(format!(
            "{} is a FIFO with no reader: the runner would wait for one; start the reader \
             first (for instance `cat {} &`), or name a file",
            path.display(),
            path.display()
        )),
        Some(libc::ENXIO) if kind.is_some_and(|k| k.is_socket()) => {
            refused(format!("{} is a socket; name a file", path.display()))
        }
        Some(libc::ENOENT) => {
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "nothing".into());
            refused(format!(
                "{} is a symbolic link to {target}, which does not exist: the runner writes \
                 through a link but does not make what it points to; name {target} itself",
                path.display()
            ))
        }
        _ => io(format!("cannot open {} to write it", path.display()))(e),
    }
}

/// Which of the runner's standard streams `st` is, if any. `/dev/null` never counts: writing
/// there is writing nowhere, whatever else goes there too.
fn own_stream(st: &libc::stat) -> Option<Stream> {
    if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3) {
        return None;
    }
    let same = |fd: std::os::fd::BorrowedFd<'_>| {
        nix::sys::stat::fstat(fd).is_ok_and(|o| o.st_dev == st.st_dev && o.st_ino == st.st_ino)
    };
    if same(std::io::stdout().as_fd()) {
        Some(Stream::Stdout)
    } else if same(std::io::stderr().as_fd()) {
        Some(Stream::Stderr)
    } else {
        None
    }
}
