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
//! - **A directory is resolved once** ([`OutputDir`], dir.rs) and everything below it is made
//!   relative to its descriptor, new files renamed into place over regular files only.
//! - **A single file the operator names** ([`FileOutput`], file.rs) that exists and is not a
//!   regular file (`/dev/stdout`, `/dev/null`, `>(...)`, a FIFO with a reader) is written
//!   through, as a shell's `>` writes, opened before the run; nothing that is not a regular file
//!   is ever renamed over or removed.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

mod dir;
mod file;

pub use dir::OutputDir;
pub use file::{write_file, FileOutput, Stream};

/// Why an output could not be written where the operator pointed the runner.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path is not one the runner writes to (unsafe to write under, a directory, a device,
    /// a FIFO without a reader): the sentence says why and what to name instead.
    #[error("{0}")]
    Refused(String),
    /// The file system failed what was being done (`what`).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing into the held directory failed; the error names the file.
    #[error(transparent)]
    Write(#[from] std::io::Error),
}

/// The error of doing `what` on the file system.
fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> OutputError {
    move |source| OutputError::Io {
        what: what.to_string(),
        source,
    }
}

/// Where an output's error is said as a sentence among others (the commands' own errors).
impl From<OutputError> for String {
    fn from(e: OutputError) -> String {
        e.to_string()
    }
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

pub(crate) fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("user {} (uid {uid})", nslab_lab::text::printable(&u.name)),
        _ => format!("uid {uid}"),
    }
}

/// Check `path` (which need not exist yet) by the rule above: Ok, or the sentence that says
/// which ancestor is unsafe and why.
pub fn check(path: &Path) -> Result<(), OutputError> {
    let uid = nix::unistd::geteuid().as_raw();
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io("cannot find the current directory"))?
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
        let dir_meta =
            std::fs::metadata(&dir).map_err(io(format!("cannot look at {}", dir.display())))?;
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(format!("cannot look at {}", next.display()))(e)),
        };
        if let Some(why) = others_may_write(&dir_meta, uid) {
            let sticky = dir_meta.mode() & 0o1000 != 0;
            let ours = meta.as_ref().is_none_or(|m| m.uid() == uid);
            if !(sticky && ours) {
                let what = match &meta {
                    Some(m) => format!("{} belongs to {}", next.display(), user_name(m.uid())),
                    None => format!("{} may be made there by them first", next.display()),
                };
                return Err(OutputError::Refused(format!(
                    "{} is not safe to write under: {} is writable by another user ({why}), and \
                     {what}, who could swap it for a link elsewhere; name a directory that only \
                     you (and root) can write",
                    path.display(),
                    dir.display()
                )));
            }
        }
        let Some(meta) = meta else {
            // The rest does not exist yet: the runner makes it, as its own.
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(OutputError::Refused(format!(
                    "{}: too many symbolic links",
                    path.display()
                )));
            }
            let target = std::fs::read_link(&next)
                .map_err(io(format!("cannot read the link {}", next.display())))?;
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
