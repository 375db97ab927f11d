//! Where the runs' records are (lab/keep/record.rs holds one record): /run/nslab/runs for root,
//! the user's runtime directory otherwise; and finding them all, for `runner ls` and
//! `runner cleanup`. Root's commands also see every user's runs.

use std::path::PathBuf;

use nslab_lab::host::process_start;
use nslab_lab::records::{is_run_id, temp_files, RunRecord, RunStatus};

/// Where this user's runs are recorded.
pub fn run_dir() -> PathBuf {
    crate::privilege::runtime_dir().join("runs")
}

/// Where `ls` and `cleanup` look: a user's own runs; for root, root's and every user's.
fn run_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![run_dir()];
    if crate::privilege::mode() == nslab_lab::Mode::Root {
        if let Ok(users) = std::fs::read_dir("/run/user") {
            let mut found: Vec<PathBuf> = users
                .flatten()
                .map(|u| u.path().join("nslab/runs"))
                .filter(|d| d.is_dir())
                .collect();
            found.sort();
            dirs.extend(found);
        }
    }
    dirs
}

/// Where the record of `id` is: in this user's directory, or (for root) wherever a user's run
/// left it.
fn path(id: &str) -> PathBuf {
    let file = format!("{id}.json");
    run_dirs()
        .into_iter()
        .map(|d| d.join(&file))
        .find(|p| p.exists())
        .unwrap_or_else(|| run_dir().join(file))
}

/// The record of run `id`, wherever it is.
pub fn load(id: &str) -> std::io::Result<RunRecord> {
    if !is_run_id(id) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{id:?} is not a run id (8 hex digits, as `runner ls` shows)"),
        ));
    }
    RunRecord::load_from(&path(id))
}

/// Every record, oldest first. Files that are not records are passed over.
pub fn load_all() -> std::io::Result<Vec<RunRecord>> {
    load_all_reporting().map(|(runs, _)| runs)
}

/// Every record, oldest first, and one line for each file that looked like a record and is not
/// one (it does not parse, or is unreasonably large): never trusted, never shown raw.
pub fn load_all_reporting() -> std::io::Result<(Vec<RunRecord>, Vec<String>)> {
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for dir in run_dirs() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name
                .strip_suffix(".json")
                .filter(|id| is_run_id(id))
                .is_none()
            {
                continue;
            }
            match RunRecord::load_from(&e.path()) {
                Ok(r) => runs.push(r),
                Err(why) => skipped.push(format!(
                    "skipped {}: {}",
                    nslab_lab::text::printable(&e.path().display().to_string()),
                    nslab_lab::text::printable(&why.to_string())
                )),
            }
        }
    }
    runs.sort_by_key(|r| (r.started_unix, r.id.clone()));
    Ok((runs, skipped))
}

/// Whether run `id` is going on now.
pub fn is_running(id: &str) -> bool {
    load(id).is_ok_and(|r| r.status() == RunStatus::Running)
}

/// Remove half-written records whose writer is gone (it was killed mid-write).
pub fn sweep_temp_files() {
    for (_, pid, path) in temp_files(&run_dir()) {
        if process_start(pid).is_none() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nslab_lab::records::new_run_id;

    #[test]
    fn run_ids_are_eight_hex_digits() {
        let id = new_run_id().unwrap();
        assert!(is_run_id(&id), "{id}");
        for bad in ["../../etc/passwd", "0000000", "0000000g", "ABCDEF01", ""] {
            assert!(!is_run_id(bad), "{bad}");
            assert!(load(bad).is_err());
        }
        assert_ne!(id, new_run_id().unwrap());
    }
}
