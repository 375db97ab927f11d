use crate::bindings::report::Host;
use crate::policy::Op;

use super::LabView;

impl Host for LabView<'_> {
    async fn step(&mut self, name: String) -> wasmtime::Result<()> {
        self.ask(Op::Report { bytes: name.len() })?;
        self.report.step(&self.console, name);
        Ok(())
    }

    async fn check(&mut self, name: String, passed: bool, detail: String) -> wasmtime::Result<()> {
        self.ask(Op::Report {
            bytes: name.len() + detail.len(),
        })?;
        self.report.check(&self.console, name, passed, detail);
        Ok(())
    }
}
