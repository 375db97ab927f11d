use super::CallError;
use crate::bindings::report::Host;
use crate::policy::Op;

use super::LabView;

impl Host for LabView<'_> {
    async fn step(&mut self, name: String) -> wasmtime::Result<()> {
        self.ask(Op::Report { bytes: name.len() }).await?;
        self.output
            .charge(name.len())
            .map_err(wasmtime::Error::new)?;
        self.report.step(&self.console, name);
        Ok(())
    }

    async fn check(&mut self, name: String, passed: bool, detail: String) -> wasmtime::Result<()> {
        self.ask(Op::Report {
            bytes: name.len() + detail.len(),
        })
        .await?;
        self.output
            .charge(name.len() + detail.len())
            .map_err(wasmtime::Error::new)?;
        self.report.check(&self.console, name, passed, detail);
        Ok(())
    }

    async fn attach(&mut self, name: String, data: Vec<u8>) -> Result<(), CallError> {
        self.ask(Op::Attach {
            bytes: data.len(),
            attached: self.report.attached_bytes(),
        })
        .await?;
        Ok(self.report.attach(&self.console, name, data)?)
    }
}
