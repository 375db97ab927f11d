//! One module per WIT interface. Each implements its generated `Host` traits on [`LabView`], the
//! part of the store a host function may use: the lab, the resource table, the policy and the
//! report. The first thing every function does is ask the policy.

mod exec;
mod link;
mod netns;
mod report;
mod route;
mod types;

use wasmtime::component::{HasData, ResourceTable};

use crate::console::Console;
use crate::error::{LabError, LabResult};
use crate::lab::Lab;
use crate::policy::{Op, Policy};
use crate::report::Report;

pub struct LabView<'a> {
    pub lab: &'a mut Lab,
    pub table: &'a mut ResourceTable,
    pub policy: &'a Policy,
    pub report: &'a mut Report,
    pub console: Console,
    /// The guest's output budget, which its report text counts against.
    pub output: &'a crate::guest_limits::GuestOutput,
}

impl LabView<'_> {
    /// Ask the policy; a refusal is also kept for the run's summary.
    pub fn ask(&mut self, op: Op<'_>) -> LabResult<()> {
        let answer = self.policy.check(&op);
        if let Err(LabError::Denied(why) | LabError::Limit(why)) = &answer {
            self.report.refusals.push(why.clone());
        }
        answer
    }
}

/// Names the [`LabView`] projection for the generated `add_to_linker`.
pub struct LabCtx;

impl HasData for LabCtx {
    type Data<'a> = LabView<'a>;
}
