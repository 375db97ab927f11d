//! A program as the lab helper starts it (protocol.rs passes it in a memfd with
//! `Request::Spawn`), and whose program it is.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A program as the helper executes it: its file and its arguments and environment, each a
/// string without NUL (input.rs refuses those), environment entries as `KEY=VALUE`. It travels
/// in a memfd, so that it may be as large as the kernel lets an exec be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    /// Whose program it is: the scenario's, or the operator's (`runner exec`, `runner shell`).
    pub by: StartedBy,
}

/// Who asked for a program, which decides what confines it beyond the run's ids, cgroups and
/// limits, which every program has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    /// The scenario: only its declared programs may execute (Landlock, and a box whose other
    /// mounts are `noexec`).
    Scenario,
    /// The operator, stepping into the run (`runner exec`): the allowlist binds the scenario,
    /// not the person who runs it, so any program of the host's system directories may run.
    /// With `terminal`, its stdin is a terminal it takes as its controlling one.
    Operator { terminal: bool },
}

impl StartedBy {
    fn encode(self) -> u8 {
        match self {
            StartedBy::Scenario => 0,
            StartedBy::Operator { terminal: false } => 1,
            StartedBy::Operator { terminal: true } => 2,
        }
    }

    pub(super) fn decode(b: u8) -> Option<StartedBy> {
        Some(match b {
            0 => StartedBy::Scenario,
            1 => StartedBy::Operator { terminal: false },
            2 => StartedBy::Operator { terminal: true },
            _ => return None,
        })
    }
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.by.encode()];
        out.extend_from_slice(&(self.args.len() as u32).to_ne_bytes());
        out.extend_from_slice(self.program.as_os_str().as_bytes());
        out.push(0);
        for field in self.args.iter().chain(&self.env) {
            out.extend_from_slice(field);
            out.push(0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Command> {
        let (&by, bytes) = bytes.split_first()?;
        let by = StartedBy::decode(by)?;
        let argc = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let body = bytes[4..].strip_suffix(&[0])?;
        let mut fields = body.split(|&b| b == 0);
        let program = PathBuf::from(std::ffi::OsStr::from_bytes(fields.next()?));
        let rest: Vec<Vec<u8>> = fields.map(<[u8]>::to_vec).collect();
        if rest.len() < argc || program.as_os_str().is_empty() {
            return None;
        }
        let (args, env) = rest.split_at(argc);
        Some(Command {
            program,
            args: args.to_vec(),
            env: env.to_vec(),
            by,
        })
    }
}
