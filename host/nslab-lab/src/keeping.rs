//! Keeping the lab: the runner's record of the run (persist/record.rs), kept in step with the lab
//! so that `runner ls` and `runner cleanup` can find whatever the user has seen; and `--keep`,
//! which hands the lab and its programs' files over (pins for root, a keeper process for an
//! ordinary user) instead of removing them, or undoes every step of that and says why.

use crate::error::{LabError, LabResult};
use crate::kernel::Kernel;
use crate::persist::record::{NsChange, NsRecord};
use crate::{Lab, LabEvent, Mode};

/// How a kept lab is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Pinned under /run/netns (root).
    Pins,
    /// Held by a keeper process: its pid (an ordinary user).
    Keeper(u32),
}

/// A lab kept after its run, whichever way it is held: what `run` prints (one function,
/// `run::print_kept`) and what the record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub run_id: String,
    pub holder: Holder,
    pub namespaces: Vec<NsRecord>,
}

impl<K: Kernel> Lab<K> {
    fn warn(&self, text: &str) {
        self.sink.event(LabEvent::Warning(text));
    }

    /// The record is what `runner ls` and `runner cleanup` go by; failing to write it does not
    /// stop the lab, but the user should know those commands will not see this run.
    fn save_record(&self) -> bool {
        let since = std::time::Instant::now();
        let saved = self.record.save();
        self.spent.add(crate::spent::Work::Records, since);
        if let Err(e) = saved {
            self.warn(&format!(
                "cannot write the run record under {}: {e}; `runner ls` will not show run {}",
                self.record.dir.display(),
                self.record.id
            ));
            return false;
        }
        true
    }

    /// Say on the record whether the run holds its lab for the operator (`runner ls`).
    pub fn record_held(&mut self, held: bool) {
        self.record.held = held;
        if self.record_saved == Some(true) {
            let _ = self.save_record();
        }
    }

    fn sync_record(&mut self) {
        self.record.namespaces = self
            .namespaces
            .values()
            .map(|n| NsRecord {
                name: n.name.clone(),
                inode: n.inode,
                pinned: None,
                files: None,
            })
            .collect();
        let _ = self.save_record();
    }

    /// A namespace was made or deleted: the record's log says so (persist/record.rs). The record
    /// is saved whole once, at the first namespace; a run that makes none leaves no record.
    pub(super) fn log_namespace(&mut self, change: NsChange) {
        if self.record_saved.is_none() {
            self.record_saved = Some(self.save_record());
        }
        if self.record_saved != Some(true) {
            return;
        }
        let since = std::time::Instant::now();
        let logged = self.record.log_namespace(&change);
        self.spent.add(crate::spent::Work::Records, since);
        if let Err(e) = logged {
            self.warn(&format!(
                "cannot write the run record under {}: {e}; `runner ls` will not show all of run {}",
                self.record.dir.display(),
                self.record.id
            ));
        }
    }

    /// Keep the lab after the run: root pins every namespace as /run/netns/nslab-RUNID-NAME
    /// (and its programs' files beside it), an ordinary user hands them to a keeper process;
    /// the record says where, and the lab lets go of them. If any step fails, every step before
    /// it is undone and the record is as before; the caller then tears the lab down as usual.
    pub fn keep(&mut self) -> LabResult<Kept> {
        // Nothing of the run's may step in now but through what keeps it.
        self.doors.close();
        let (holder, namespaces) = match self.mode {
            Mode::Root => (Holder::Pins, self.keep_by_pins()?),
            Mode::Rootless { .. } => self.keep_by_keeper()?,
        };
        self.let_go();
        Ok(Kept {
            run_id: self.record.id.clone(),
            holder,
            namespaces,
        })
    }

    fn keep_by_pins(&mut self) -> LabResult<Vec<NsRecord>> {
        let mut kept: Vec<NsRecord> = Vec::new();
        let mut failed = None;
        let ids: Vec<_> = self.namespaces.keys().copied().collect();
        for id in ids {
            let Some(ns) = self.namespaces.get(&id) else {
                continue;
            };
            let pinned = format!("nslab-{}-{}", self.record.id, ns.name);
            if let Err(e) = self.kernel.pin(&ns.held, &pinned) {
                failed = Some(e);
                break;
            }
            let mut record = NsRecord {
                name: ns.name.clone(),
                inode: ns.inode,
                pinned: Some(pinned.clone()),
                files: None,
            };
            // What its programs wrote stays too, until `runner cleanup`.
            match self.kernel.pin_files(&ns.held, &pinned) {
                Ok(files) => record.files = files.map(|inode| (pinned.clone(), inode)),
                Err(e) => failed = Some(e),
            }
            // Logged as each pin is made (one short line, not the record rewritten), so that
            // `cleanup` finds them whatever happens next.
            self.log_namespace(NsChange::Pinned {
                name: record.name.clone(),
                pinned: pinned.clone(),
                files: record.files.clone(),
            });
            kept.push(record);
            if failed.is_some() {
                break;
            }
        }
        if let Some(e) = failed {
            for k in &kept {
                let pinned = k.pinned.as_deref().unwrap_or_default();
                self.kernel
                    .unpin(pinned, k.inode, k.files.as_ref().map(|(_, inode)| *inode));
            }
            self.sync_record();
            return Err(e);
        }
        let _ = self.record_kept(&kept);
        Ok(kept)
    }

    /// Record the lab as kept elsewhere (pins, or a keeper): whether the record was written.
    fn record_kept(&mut self, kept: &[NsRecord]) -> bool {
        self.record.namespaces = kept.to_vec();
        self.record.kept = true;
        self.save_record()
    }

    /// The lab is kept elsewhere: let go of it here.
    fn let_go(&mut self) {
        self.programs.release_all();
        self.links.clear();
        self.namespaces.clear();
    }

    /// Keep the lab of an ordinary user: a keeper process holds the user namespace, every
    /// namespace and every box (persist/keeper.rs), and the record says where: /proc/PID/fd/N.
    fn keep_by_keeper(&mut self) -> LabResult<(Holder, Vec<NsRecord>)> {
        let held: Vec<&K::Ns> = self.namespaces.values().map(|n| &n.held).collect();
        let hold = self.kernel.start_keeper(&held)?;
        let kept: Vec<NsRecord> = self
            .namespaces
            .values()
            .zip(hold.namespaces)
            .map(|(ns, (net, files))| NsRecord {
                name: ns.name.clone(),
                inode: ns.inode,
                pinned: Some(net),
                files,
            })
            .collect();
        self.record.keeper = Some((hold.pid, hold.start));
        // Only the record leads `cleanup` to the keeper: without one, nothing would ever stop it.
        if !self.record_kept(&kept) {
            self.kernel.stop_keeper(hold.pid);
            self.record.keeper = None;
            self.record.kept = false;
            return Err(LabError::os(format!(
                "the run record could not be written under {}, and only it would lead `runner cleanup` to the kept lab",
                self.record.dir.display()
            )));
        }
        Ok((Holder::Keeper(hold.pid), kept))
    }
}
