//! One module per WIT interface. Each implements its generated `Host` traits on [`LabView`], the
//! part of the store a host function may use: the lab, the resource table, the policy and the
//! report. Every function parses what the guest passed (input.rs) and asks the policy first,
//! then hands typed values to the lab.

mod exec;
mod link;
mod netns;
mod report;
mod route;
mod types;

use wasmtime::component::{HasData, ResourceTable};

pub use crate::error::CallError;
use crate::policy::{Declared, Op, Policy};
use crate::scenario_report::Report;
use nslab_lab::error::ErrorKind;
use nslab_lab::error::{LabError, LabResult};
use nslab_lab::Lab;
use nslab_report::console::Console;

pub struct LabView<'a> {
    /// None in `inspect`, where the policy refuses every call (see [`LabView::lab`]).
    pub lab: Option<&'a mut Lab>,
    /// What the scenario declared (policy::Declared).
    pub declared: &'a Declared,
    pub table: &'a mut ResourceTable,
    pub policy: &'a Policy,
    pub report: &'a mut Report,
    pub console: Console,
    /// The guest's output budget, which its report text counts against.
    pub output: &'a crate::guest_limits::GuestOutput,
}

impl LabView<'_> {
    /// Ask the policy; a refusal is also kept for the run's summary. Whatever the call then
    /// does or says comes after the starts of the background programs started before it
    /// (lab/programs/starts.rs).
    pub async fn ask(&mut self, op: Op<'_>) -> LabResult<()> {
        if let Some(lab) = &self.lab {
            lab.tell_starts().await;
        }
        self.check(op).await
    }

    /// Ask the policy, leaving the starts of background programs untold: for a start of one
    /// more, which goes on without waiting for them.
    pub async fn check(&mut self, op: Op<'_>) -> LabResult<()> {
        let answer = self.policy.check(&op, self.declared);
        if let Err(e) = &answer {
            if !matches!(e.kind(), ErrorKind::Denied | ErrorKind::Limit) {
                return answer;
            }
            let why = e.message();
            if let Some(lab) = &self.lab {
                lab.tell_starts().await;
            }
            self.report.refused(&self.console, why);
        }
        answer
    }
}

impl LabView<'_> {
    /// The lab. The policy refuses every call while there is none (during `describe()`, and so
    /// in `inspect`), and every host function asks it first: this fails only if one did not.
    /// What the lab then does comes after the starts of the background programs started
    /// before (lab/programs/starts.rs).
    pub async fn lab(&mut self) -> LabResult<&mut Lab> {
        let lab = self.lab_as_is()?;
        lab.tell_starts().await;
        Ok(lab)
    }

    /// The lab, leaving the starts of background programs untold: for one more start.
    pub fn lab_as_is(&mut self) -> LabResult<&mut Lab> {
        self.lab.as_deref_mut().ok_or_else(|| {
            LabError::bug("a host function reached the lab before asking the policy")
        })
    }
}

/// Names the [`LabView`] projection for the generated `add_to_linker`.
pub struct LabCtx;

impl HasData for LabCtx {
    type Data<'a> = LabView<'a>;
}
