//! A run's cgroups on cgroup v2: `PARENT/nslab-RUN` with the memory (and pids, and cpu where
//! it can be had) controllers, and two leaves in it, `helper` and `programs`: v2 keeps
//! processes in leaves only.

use std::path::Path;

use super::{delegated, failed, limit, procs, write, Builder, Built};
use crate::error::LabResult;

/// Make them. The way down: from the root for root's runs; an ordinary user may enable
/// controllers only in the cgroup delegated to them, which must first hold no process: the
/// runner moves into a leaf of its own there (delegated.rs).
pub(super) fn build(
    b: &mut Builder,
    root: &Path,
    parent: &Path,
    delegated: bool,
    has_pids: bool,
    bytes: u64,
    processes: usize,
) -> LabResult<Built> {
    let way: Vec<&Path> = if delegated {
        delegated::leave(parent).map_err(|e| failed("leave the delegated cgroup's top", e))?;
        vec![parent]
    } else {
        std::fs::create_dir_all(parent).map_err(|e| failed("create", e))?;
        vec![root, parent]
    };
    let mut wanted = vec!["+memory"];
    if has_pids {
        wanted.push("+pids");
    }
    for dir in &way {
        write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))
            .map_err(|e| failed("enable the memory and pids controllers", e))?;
    }
    // The cpu controller where it can be had: the kernel refuses it while a realtime process
    // runs outside the root cgroup, and the programs then share the machine as they would
    // without a run.
    let cpu = way
        .iter()
        .all(|dir| write(&dir.join("cgroup.subtree_control"), "+cpu").is_ok());
    let top = b.run_dir(parent)?;
    limit(top.join("memory.max"), &bytes.to_string())?;
    let swap = top.join("memory.swap.max");
    if swap.exists() {
        limit(swap, "0")?;
    }
    if has_pids {
        limit(top.join("cgroup.subtree_control"), "+pids")?;
    }
    if cpu {
        let _ = write(&top.join("cgroup.subtree_control"), "+cpu");
    }
    let helper = b.mkdir(top.join("helper"))?;
    let programs = b.mkdir(top.join("programs"))?;
    if has_pids {
        limit(programs.join("pids.max"), &processes.to_string())?;
    }
    Ok(Built {
        program_procs: vec![procs(&programs)?],
        helper_procs: procs(&helper)?,
        programs_dir: programs,
    })
}
