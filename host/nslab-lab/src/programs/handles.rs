//! The scenario's handles to its background programs: waiting, reading, killing one with a
//! grace period; and stopping them all at once when a namespace or the run ends.

use std::sync::atomic::Ordering;

use super::{exec, ProcEntry};
use crate::error::{LabError, LabResult};
use crate::kernel::Kernel;
use crate::ExecOutput;
use crate::{Lab, LabEvent, NsId, ProcId};

impl<K: Kernel> Lab<K> {
    /// The log the starts of background programs are told from: whatever else prints for the
    /// run (the scenario's own output) flushes it first.
    pub fn start_log(&self) -> std::sync::Arc<super::starts::StartLog> {
        self.programs.starts.clone()
    }

    /// Tell the starts of background programs not told yet.
    pub async fn tell_starts(&self) {
        self.programs.tell_starts().await;
    }

    pub fn live_processes(&self) -> usize {
        self.programs.live.load(Ordering::SeqCst)
    }

    /// The scenario dropped its handle to a program. One that has ended is released now, with
    /// its output; one still running keeps running (the run's end stops it) but its output is
    /// no longer kept, and it is released once it has ended.
    pub fn process_release(&mut self, id: ProcId) {
        let Some(entry) = self.programs.processes.get_mut(&id) else {
            return;
        };
        if entry.running.exited() {
            self.programs.processes.remove(&id);
        } else {
            entry.orphan = true;
            entry.running.discard_output();
        }
    }

    /// A program the scenario holds, once every start before it has been told (its pid with it).
    async fn process(&mut self, id: ProcId) -> LabResult<&mut ProcEntry> {
        self.programs.tell_starts().await;
        self.programs
            .processes
            .get_mut(&id)
            .ok_or_else(|| LabError::not_found("that program is gone: its namespace was deleted"))
    }

    pub async fn process_id(&mut self, id: ProcId) -> LabResult<u32> {
        Ok(self.process(id).await?.running.id())
    }

    /// Wait up to `limit` for a background program; error.timeout if it is still running.
    pub async fn process_wait(
        &mut self,
        id: ProcId,
        limit: std::time::Duration,
    ) -> LabResult<ExecOutput> {
        let sink = self.sink.clone();
        let entry = self.process(id).await?;
        let ended_before = entry.running.has_ended();
        match entry.running.wait(limit).await? {
            Some(out) => {
                let out = out.clone();
                entry.live = None;
                if !ended_before {
                    sink.event(LabEvent::Did(&format!(
                        "{} (pid {}) ended with status {}",
                        entry.program,
                        entry.running.id(),
                        out.status
                    )));
                }
                Ok(out)
            }
            None => Err(LabError::timeout(format!(
                "{} (pid {}) is still running after {} ms: wait again, or kill it",
                entry.program,
                entry.running.id(),
                limit.as_millis()
            ))),
        }
    }

    /// What a background program has printed so far.
    pub async fn process_output_so_far(&mut self, id: ProcId) -> LabResult<(Vec<u8>, Vec<u8>)> {
        Ok(self.process(id).await?.running.output_so_far())
    }

    /// Wait up to `limit` for a line of a background program's output containing `text`.
    pub async fn process_wait_for_line(
        &mut self,
        id: ProcId,
        text: &str,
        limit: std::time::Duration,
    ) -> LabResult<String> {
        let entry = self.process(id).await?;
        let shown = format!("{} (pid {})", entry.program, entry.running.id());
        entry
            .running
            .wait_for_line(text, limit)
            .await?
            .ok_or_else(|| {
                LabError::not_found(format!(
                    "{shown} ended without printing a line containing {text:?}"
                ))
            })
    }

    /// Stop a background program: SIGTERM, then SIGKILL after a second.
    pub async fn process_kill(&mut self, id: ProcId) -> LabResult<()> {
        let sink = self.sink.clone();
        let entry = self.process(id).await?;
        if entry.running.has_ended() {
            return Ok(());
        }
        let out = entry
            .running
            .terminate(std::time::Duration::from_secs(1))
            .await?;
        let status = out.status;
        entry.live = None;
        sink.event(LabEvent::Did(&format!(
            "kill {} (pid {}): ended with status {status}",
            entry.program,
            entry.running.id()
        )));
        Ok(())
    }

    /// Kill the background programs still running (in one namespace, or all), for teardown:
    /// SIGKILL to every one first, then one wait for all of them together, bounded by
    /// [`exec::STOP_LIMIT`], so a program stuck in the kernel holds back neither the others
    /// nor the runner. What was stopped, and what was still there at the deadline.
    pub(crate) async fn kill_processes(&mut self, only: Option<NsId>) -> Stopped {
        self.programs.tell_starts().await;
        let ids: Vec<ProcId> = self
            .programs
            .processes
            .iter()
            .filter(|(_, p)| only.is_none_or(|n| p.ns == n))
            .map(|(id, _)| *id)
            .collect();
        let mut running: Vec<ProcEntry> = ids
            .into_iter()
            .rev()
            .filter_map(|id| self.programs.processes.remove(&id))
            .filter(|p| !p.running.has_ended())
            .collect();
        for p in &running {
            p.running.signal_async(libc::SIGKILL).await;
        }
        let deadline = tokio::time::Instant::now() + exec::STOP_LIMIT;
        let ends = futures::future::join_all(running.iter_mut().map(|p| async move {
            let shown = format!("program {} (pid {})", p.program, p.running.id());
            (shown, p.running.reap(deadline, false).await.err())
        }))
        .await;
        let mut stopped = Stopped::default();
        for (shown, problem) in ends {
            match problem {
                None => stopped.killed.push(shown),
                Some(e) => stopped.left.push(crate::TeardownProblem::ProgramLeft(e)),
            }
        }
        stopped
    }
}

/// What stopping the run's programs did.
#[derive(Debug, Default)]
pub(crate) struct Stopped {
    pub killed: Vec<String>,
    /// Programs still there at the deadline.
    pub left: Vec<crate::TeardownProblem>,
}
