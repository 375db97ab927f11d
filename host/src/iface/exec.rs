use wasmtime::component::Resource;

use crate::bindings::exec::{Command, Host, Output};
use crate::error::LabError;
use crate::lab::{ExecRequest, NsId};
use crate::policy::Op;

use super::LabView;

impl Host for LabView<'_> {
    async fn run(&mut self, ns: Resource<NsId>, cmd: Command) -> Result<Output, LabError> {
        let bytes = cmd.args.iter().map(String::len).sum::<usize>()
            + cmd
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + cmd.stdin.as_ref().map_or(0, Vec::len);
        self.ask(Op::Exec {
            program: &cmd.program,
            env: &cmd.env,
            timeout_ms: cmd.timeout_ms,
            live: self.lab.live_processes(),
            bytes,
        })?;
        let ns = *self.table.get(&ns)?;
        let req = ExecRequest {
            timeout: self.policy.exec_timeout(cmd.timeout_ms),
            output_limit: self.policy.exec_output_bytes,
            program: cmd.program,
            args: cmd.args,
            env: cmd.env,
            stdin: cmd.stdin,
        };
        let out = self.lab.exec(ns, req).await?;
        Ok(Output {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
            timed_out: out.timed_out,
            duration_us: out.duration.as_micros().try_into().unwrap_or(u64::MAX),
        })
    }
}
