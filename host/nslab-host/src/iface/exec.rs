use wasmtime::component::Resource;

use super::CallError;
use crate::bindings::exec::{Command, Host, HostProcess, Output};
use crate::policy::Op;
use nslab_lab::input;
use nslab_lab::{ExecOutput, ExecRequest, NsId, ProcId};

use super::LabView;

impl LabView<'_> {
    /// Ask the policy about a command and turn it into a request (for a background one,
    /// without telling the starts before it: lab/programs/starts.rs).
    async fn exec_request(
        &mut self,
        cmd: Command,
        quiet: bool,
        background: bool,
    ) -> Result<ExecRequest, CallError> {
        let args = input::arguments(&cmd.program, cmd.args)?;
        let env = input::environment(cmd.env)?;
        let bytes = args.iter().map(String::len).sum::<usize>()
            + env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + cmd.stdin.as_ref().map_or(0, Vec::len);
        let op = Op::Exec {
            program: &cmd.program,
            env: &env,
            timeout_ms: cmd.timeout_ms,
            live: self.lab.as_ref().map_or(0, |l| l.live_processes()),
            bytes,
        };
        match background {
            true => self.check(op).await?,
            false => self.ask(op).await?,
        }
        Ok(ExecRequest {
            by_path: self.policy.exec_paths.contains_key(&cmd.program),
            timeout: self.policy.exec_timeout(cmd.timeout_ms),
            output_limit: self.policy.exec_output_bytes,
            program: cmd.program,
            args,
            env,
            stdin: cmd.stdin,
            quiet,
        })
    }
}

fn to_wit(out: ExecOutput) -> Output {
    Output {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
        timed_out: out.timed_out,
        duration_us: out.duration.as_micros().try_into().unwrap_or(u64::MAX),
    }
}

impl Host for LabView<'_> {
    async fn run(&mut self, ns: Resource<NsId>, cmd: Command) -> Result<Output, CallError> {
        let req = self.exec_request(cmd, false, false).await?;
        let ns = *self.table.get(&ns)?;
        Ok(to_wit(self.lab().await?.exec(ns, req).await?))
    }

    async fn run_quiet(&mut self, ns: Resource<NsId>, cmd: Command) -> Result<Output, CallError> {
        let req = self.exec_request(cmd, true, false).await?;
        let ns = *self.table.get(&ns)?;
        Ok(to_wit(self.lab().await?.exec(ns, req).await?))
    }

    async fn spawn(
        &mut self,
        ns: Resource<NsId>,
        cmd: Command,
    ) -> Result<Resource<ProcId>, CallError> {
        let req = self.exec_request(cmd, false, true).await?;
        let ns = *self.table.get(&ns)?;
        let id = self.lab_as_is()?.spawn(ns, req).await?;
        Ok(self.table.push(id)?)
    }
}

impl HostProcess for LabView<'_> {
    async fn id(&mut self, p: Resource<ProcId>) -> wasmtime::Result<u32> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&p)?;
        Ok(self.lab().await?.process_id(id).await.unwrap_or(0))
    }

    async fn wait(
        &mut self,
        p: Resource<ProcId>,
        timeout_ms: Option<u32>,
    ) -> Result<Output, CallError> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&p)?;
        let limit = self
            .policy
            .exec_timeout(timeout_ms)
            .min(self.policy.exec_timeout_max);
        Ok(to_wit(self.lab().await?.process_wait(id, limit).await?))
    }

    async fn kill(&mut self, p: Resource<ProcId>) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&p)?;
        Ok(self.lab().await?.process_kill(id).await?)
    }

    async fn output_so_far(&mut self, p: Resource<ProcId>) -> wasmtime::Result<(Vec<u8>, Vec<u8>)> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&p)?;
        Ok(self
            .lab()
            .await?
            .process_output_so_far(id)
            .await
            .unwrap_or_default())
    }

    async fn wait_for_line(
        &mut self,
        p: Resource<ProcId>,
        text: String,
        timeout_ms: u32,
    ) -> Result<String, CallError> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&p)?;
        let limit =
            std::time::Duration::from_millis(timeout_ms.into()).min(self.policy.exec_timeout_max);
        Ok(self
            .lab()
            .await?
            .process_wait_for_line(id, &text, limit)
            .await?)
    }

    /// Dropping the handle does not stop the program: the end of the run does. What the lab
    /// kept of it is released (lab::Lab::process_release).
    async fn drop(&mut self, p: Resource<ProcId>) -> wasmtime::Result<()> {
        let id = self.table.delete(p)?;
        // Not a reason to wait for the starts before it: dropping a handle says nothing.
        self.lab_as_is()?.process_release(id);
        Ok(())
    }
}
