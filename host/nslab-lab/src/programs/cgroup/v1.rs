//! A run's cgroups on cgroup v1: one directory in each hierarchy this machine mounts (memory,
//! and pids and cpu where they are), below the runner's own, so that any limit the runner is
//! under still holds.

use std::path::Path;

use super::{limit, procs, Builder, Built};
use crate::error::LabResult;

/// Make them: the memory cgroup holds the helper (the programs are its children, and join it
/// with it), the pids and cpu ones are joined by each program.
pub(super) fn build(
    b: &mut Builder,
    parent: &Path,
    pids: Option<&Path>,
    cpu: Option<&Path>,
    bytes: u64,
    processes: usize,
) -> LabResult<Built> {
    let memory = b.run_dir(parent)?;
    limit(memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
    // With swap accounting, swap must not be a way around the limit.
    let memsw = memory.join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        limit(memsw, &bytes.to_string())?;
    }
    // v1 charges socket buffers only once this limit is set (issue 19).
    let tcp = memory.join("memory.kmem.tcp.limit_in_bytes");
    if tcp.exists() {
        limit(tcp, &bytes.to_string())?;
    }
    let helper_procs = procs(&memory)?;
    let mut program_procs = Vec::new();
    let mut programs_dir = memory;
    if let Some(pids) = pids {
        let pids = b.run_dir(pids)?;
        limit(pids.join("pids.max"), &processes.to_string())?;
        program_procs.push(procs(&pids)?);
        programs_dir = pids;
    }
    if let Some(cpu) = cpu {
        // Its default weight: the programs together weigh what one process does beside it.
        let cpu = b.run_dir(cpu)?;
        program_procs.push(procs(&cpu)?);
    }
    Ok(Built {
        programs_dir,
        program_procs,
        helper_procs,
    })
}
