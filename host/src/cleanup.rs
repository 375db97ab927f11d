//! Removing kept labs: exactly the pins a run recorded, each only if it still names the
//! namespace the run pinned. Never by a name pattern, so a namespace pinned by anything else,
//! however similar its name, is never touched.

use crate::lab::pin::{self, Unpinned};
use crate::records::{RunRecord, RunStatus};

/// What cleaning up one run did.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub removed: Vec<String>,
    /// Pins left alone because something else holds that name now, or already gone.
    pub notes: Vec<String>,
    /// What failed (an unmount refused): the record stays so the user can try again.
    pub problems: Vec<String>,
}

/// Remove what run `rec` pinned, then its record. A run still in progress is refused: it
/// removes its own lab when it ends.
pub fn cleanup(rec: &RunRecord) -> Result<Cleaned, String> {
    if rec.status() == RunStatus::Running {
        return Err(format!(
            "run {} is still running (pid {}): stop it with Ctrl-C or `kill {}`; it removes its lab itself",
            rec.id, rec.pid, rec.pid
        ));
    }
    let mut done = Cleaned::default();
    for ns in &rec.namespaces {
        let Some(pinned) = &ns.pinned else { continue };
        match pin::unpin(pinned, ns.inode) {
            Ok(Unpinned::Removed) => done.removed.push(format!(
                "/run/netns/{pinned} ({}, net:[{}])",
                ns.name, ns.inode
            )),
            Ok(Unpinned::AlreadyGone) => done.notes.push(format!("/run/netns/{pinned} was already gone")),
            Ok(Unpinned::NotOurs { found }) => done.notes.push(format!(
                "left /run/netns/{pinned} alone: it now holds net:[{found}], not the namespace run {} pinned (net:[{}])",
                rec.id, ns.inode
            )),
            Err(e) => done.problems.push(format!("cannot remove /run/netns/{pinned}: {e}")),
        }
    }
    if done.problems.is_empty() {
        rec.remove()
            .map_err(|e| format!("cannot remove the record of run {}: {e}", rec.id))?;
    }
    Ok(done)
}
