//! Removing kept labs: exactly the pins a run recorded, each only if it still names the
//! namespace the run pinned. Never by a name pattern, so a namespace pinned by anything else,
//! however similar its name, is never touched.

use nslab_lab::records::pin::{self, Unpinned};
use nslab_lab::records::{RunRecord, RunStatus};

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
    // A dead run's leftovers, or what the operator started in a kept lab (`runner exec`).
    end_leftovers(rec, &mut done);
    if let Some((pid, start)) = rec.keeper {
        stop_keeper(rec, pid, start, &mut done);
    }
    // Pins under /run/netns are root's to make: a record in a user's directory that names one
    // is not followed (a user could copy root's pin names and inodes into it).
    let pins = if rec.owner == 0 {
        &rec.namespaces[..]
    } else {
        &[]
    };
    for ns in pins {
        let Some(pinned) = &ns.pinned else { continue };
        if !is_our_pin(&rec.id, pinned) {
            done.notes.push(format!(
                "left {pinned:?} alone: the record names a pin this runner never makes (nslab-{}-NAME)",
                rec.id
            ));
            continue;
        }
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
        let Some((files, inode)) = &ns.files else {
            continue;
        };
        let at = format!("{}/{files}", pin::BOX_DIR);
        if !is_our_pin(&rec.id, files) {
            done.notes.push(format!(
                "left {files:?} alone: not a name this runner makes"
            ));
            continue;
        }
        match pin::unpin_box(files, *inode) {
            Ok(Unpinned::Removed) => done
                .removed
                .push(format!("{at} (the files of {})", ns.name)),
            Ok(Unpinned::AlreadyGone) => done.notes.push(format!("{at} was already gone")),
            Ok(Unpinned::NotOurs { found }) => done.notes.push(format!(
                "left {at} alone: it now holds mnt:[{found}], not the box run {} pinned",
                rec.id
            )),
            Err(e) => done.problems.push(format!("cannot remove {at}: {e}")),
        }
    }
    nslab_lab::host::cgroup::sweep_all(&crate::records::is_running);
    if done.problems.is_empty() {
        rec.remove()
            .map_err(|e| format!("cannot remove the record of run {}: {e}", rec.id))?;
    }
    Ok(done)
}

/// End what a dead run left running (leftovers.rs): only processes of the run's own user
/// namespace and host ids; anything else that holds its namespaces is named and left alone.
fn end_leftovers(rec: &RunRecord, done: &mut Cleaned) {
    let all = crate::records::load_all().unwrap_or_default();
    for other in crate::leftovers::of(rec, &all)
        .into_iter()
        .filter(|l| !l.ours)
    {
        done.notes.push(format!(
            "left {other} alone: it holds a namespace of run {}, but it is not one of the run's \
             processes (it entered from outside); end it yourself if it should go",
            rec.id
        ));
    }
    let (ended, problems) = crate::leftovers::end(rec, &all);
    let why = match rec.status() {
        RunStatus::Kept => "started in the kept lab",
        _ => "which the killed runner left holding its lab",
    };
    for left in ended {
        done.removed.push(format!("{left}, {why}"));
    }
    done.problems.extend(problems);
}

/// Stop the keeper of an ordinary user's kept lab (lab/keep/keeper.rs), if the pid still is that
/// keeper: a process of the record's owner running `runner __keeper`, started when recorded.
fn stop_keeper(rec: &RunRecord, pid: u32, start: u64, done: &mut Cleaned) {
    if !nslab_lab::records::is_keeper(pid, start, rec.owner) {
        done.notes.push(format!(
            "process {pid}, which held the lab, is gone (or is not the runner's keeper): nothing to stop"
        ));
        return;
    }
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    ) {
        Ok(()) => {
            // Gone when cleanup returns, as an unmounted pin is.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while nslab_lab::records::is_keeper(pid, start, rec.owner)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            for ns in &rec.namespaces {
                done.removed
                    .push(format!("netns {} (net:[{}])", ns.name, ns.inode));
            }
            done.removed.push(format!("process {pid}, which held them"));
        }
        Err(e) => done.problems.push(format!(
            "cannot stop process {pid}, which holds the lab: {e}"
        )),
    }
}

/// Whether a recorded pin is one `--keep` makes for run `id`: `nslab-ID-NAME`, a plain file
/// name (a record could have been edited to point `cleanup` elsewhere under /run/netns, or out
/// of it).
fn is_our_pin(id: &str, pinned: &str) -> bool {
    pinned
        .strip_prefix(&format!("nslab-{id}-"))
        .is_some_and(|name| nslab_lab::input::Name::parse("namespace", name).is_ok())
        && !pinned.contains('/')
}

#[cfg(test)]
mod tests {
    use super::is_our_pin;

    #[test]
    fn only_pins_of_the_run_itself_are_touched() {
        assert!(is_our_pin("1a2b3c4d", "nslab-1a2b3c4d-ns01"));
        for bad in [
            "../../etc/passwd",
            "nslab-1a2b3c4d-../x",
            "nslab-1a2b3c4d-",
            "nslab-99999999-ns01",
            "other",
            "nslab-1a2b3c4d-a/b",
        ] {
            assert!(!is_our_pin("1a2b3c4d", bad), "{bad}");
        }
    }
}
