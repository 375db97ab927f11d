//! Which run RUN names: a run id, a prefix of one that only one run has, or `last` (the
//! caller's newest live, held or kept run). Only runs the caller may step into are candidates
//! (their own; root's, every user's), and a run another user owns is refused by name, before
//! anything of it is opened.

use std::os::unix::fs::MetadataExt;

use crate::records;
use nslab_lab::records::{is_run_id, RunRecord, RunStatus};

/// A run found, with its state as it was read (live or held, or kept): read once.
pub struct Found {
    pub record: RunRecord,
    pub status: RunStatus,
}

/// The run RUN names, or a sentence saying why there is none.
pub fn run(arg: &str) -> Result<Found, String> {
    let me = nix::unistd::geteuid().as_raw();
    // One the caller may step into: going on, held or kept, and theirs (or root's to enter).
    let enterable = |record: RunRecord| {
        let status = record.status();
        (status != RunStatus::Dead && (me == 0 || record.owner == me))
            .then_some(Found { record, status })
    };
    // A whole id: its record alone (the others are neither read nor checked).
    if is_run_id(arg) {
        if let Some(found) = records::load(arg).ok().and_then(enterable) {
            return Ok(found);
        }
    }
    let runs = records::load_all().map_err(|e| {
        format!(
            "cannot read the run records in {}: {e}",
            records::run_dir().display()
        )
    })?;
    let enterable: Vec<Found> = runs.into_iter().filter_map(enterable).collect();
    if arg == "last" {
        return enterable
            .into_iter()
            .filter(|f| f.record.owner == me)
            .max_by_key(|f| (f.record.started_unix, f.record.pid_start))
            .ok_or_else(|| {
                "you have no live, held or kept run (runner ls lists runs; a run is entered \
                 while it goes, while it holds with --hold or --hold-on-fail, or once kept \
                 with --keep)"
                    .to_string()
            });
    }
    if arg.is_empty() || arg.len() > 8 || !arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{arg:?} names no run: give a run id as `runner ls` shows it (8 hex digits, or \
             the first few of them), or `last`"
        ));
    }
    let arg = arg.to_ascii_lowercase();
    let mut matching: Vec<Found> = enterable
        .into_iter()
        .filter(|f| f.record.id.starts_with(&arg))
        .collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(match someone_elses(&arg) {
            Some(uid) => format!(
                "run {arg} is not yours (it is uid {uid}'s): only a run's own user and root may \
                 step into it"
            ),
            None => format!(
                "no live, held or kept run of yours is {arg} (runner ls lists them; only a \
                 run's own user and root may step into it)"
            ),
        }),
        _ => Err(format!(
            "{arg} is the beginning of {} runs ({}): give more of its id",
            matching.len(),
            matching
                .iter()
                .map(|f| f.record.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whose a run is that the caller cannot see among their own: root's, or another user's whose
/// runtime directory the caller may look into. Only its file's owner is read.
fn someone_elses(prefix: &str) -> Option<u32> {
    let me = nix::unistd::geteuid().as_raw();
    let mut dirs = vec![std::path::PathBuf::from("/run/nslab/runs")];
    if let Ok(users) = std::fs::read_dir("/run/user") {
        dirs.extend(users.flatten().map(|u| u.path().join("nslab/runs")));
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if is_run_id(id) && id.starts_with(prefix) {
                if let Ok(m) = e.metadata() {
                    if m.uid() != me {
                        return Some(m.uid());
                    }
                }
            }
        }
    }
    None
}
