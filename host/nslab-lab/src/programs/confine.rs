//! The last two layers a program is put under before it execs, both built once per run in the
//! runner and applied in the program's own process (lab/helper/program.rs), where only a syscall is left to
//! make:
//!
//! - **Landlock's execute right** makes the policy's allowlist a kernel rule: the program and
//!   everything it starts may execute only the run's allowed programs (the ones it declared and
//!   the policy allows, resolved to their files) and the ELF interpreters those need. `ip netns
//!   exec NS sh`, with `sh` not allowed, is refused by the kernel (EACCES), and so is a script
//!   whose interpreter is not itself allowed. Only execution is handled: reading and writing are
//!   the box's business (lab/helper/sandbox.rs). Works rootless: Landlock needs no privilege.
//! - **A seccomp filter** (seccompiler, rust-vmm's BPF compiler: no hand-assembled BPF) in the
//!   spirit of the default profiles of Docker and Podman: calls no lab program needs and that
//!   only widen the kernel's surface fail with EPERM: the keyring, kernel modules and kexec,
//!   reboot, swap, clocks, BPF and perf, userfaultfd, io_uring, file handles, the new mount API,
//!   and making new network, user, cgroup or time namespaces (a program's namespaces would escape
//!   the run's limits; `ip netns exec` needs only a mount namespace and `setns`, which stay).
//!   `clone3` fails with ENOSYS, as in those profiles, because its flags cannot be inspected:
//!   glibc then falls back to `clone`, whose flags can.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, LabError, LabResult};
use landlock::{path_beneath_rules, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// What a run's programs are confined by; kept by the lab for the run's lifetime.
pub struct Confinement {
    /// The Landlock ruleset (execute rights only), or None where the kernel has no Landlock.
    ruleset: Option<OwnedFd>,
    /// The files programs may execute, for the narration and the tests.
    pub executables: Vec<PathBuf>,
    /// The seccomp filters: the deny list (EPERM) and clone3 (ENOSYS).
    filters: Vec<BpfProgram>,
}

impl Confinement {
    /// Confine programs to executing `executables`: the run's programs and the ELF loaders
    /// they name, as [`executables`] resolves them.
    pub fn new(executables: Vec<PathBuf>) -> LabResult<Confinement> {
        Ok(Confinement {
            ruleset: execute_ruleset(&executables)?,
            executables,
            filters: filters()?,
        })
    }

    /// The ruleset's fd, for `landlock_restrict_self` in each program.
    pub fn ruleset_fd(&self) -> Option<RawFd> {
        self.ruleset.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The filters as the helper hands them to each program's kernel, in order: 8 bytes per
    /// BPF instruction, as `struct sock_filter` is laid out.
    pub fn filter_bytes(&self) -> Vec<Vec<u8>> {
        self.filters
            .iter()
            .map(|f| {
                f.iter()
                    .flat_map(|i| {
                        let mut bytes = [0u8; 8];
                        bytes[..2].copy_from_slice(&i.code.to_ne_bytes());
                        bytes[2] = i.jt;
                        bytes[3] = i.jf;
                        bytes[4..].copy_from_slice(&i.k.to_ne_bytes());
                        bytes
                    })
                    .collect()
            })
            .collect()
    }
}

/// The files to allow: each program, and for an ELF program its interpreter (the dynamic
/// loader the kernel opens for it). A script's interpreter is not added: it runs only if it is
/// itself one of the programs.
pub fn executables(programs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for program in programs {
        let Ok(real) = std::fs::canonicalize(program) else {
            continue;
        };
        if let Some(interp) = elf_interpreter(&real).and_then(|i| std::fs::canonicalize(i).ok()) {
            files.push(interp);
        }
        files.push(real);
    }
    files.sort();
    files.dedup();
    files
}

/// The ELF interpreter (PT_INTERP) a program names, if it is an ELF file that has one.
pub fn elf_interpreter(file: &Path) -> Option<PathBuf> {
    let data = std::fs::read(file).ok()?;
    let bytes = match object::FileKind::parse(&*data).ok()? {
        object::FileKind::Elf64 => {
            interpreter::<object::elf::FileHeader64<object::Endianness>>(&data)
        }
        object::FileKind::Elf32 => {
            interpreter::<object::elf::FileHeader32<object::Endianness>>(&data)
        }
        _ => None,
    }?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..end])))
}

/// The PT_INTERP bytes of an ELF file of either class.
fn interpreter<H: object::read::elf::FileHeader<Endian = object::Endianness>>(
    data: &[u8],
) -> Option<&[u8]> {
    use object::read::elf::ProgramHeader;
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    header
        .program_headers(endian, data)
        .ok()?
        .iter()
        .find_map(|ph| ph.interpreter(endian, data).ok().flatten())
}

/// A Landlock ruleset that handles execution only and allows it for `files`; None where this
/// kernel has no Landlock (`runner policy` and the run's header then say so).
fn execute_ruleset(files: &[PathBuf]) -> Result<Option<OwnedFd>, ConfineError> {
    if landlock_abi().is_none() {
        return Ok(None);
    }
    let created = Ruleset::default()
        .handle_access(AccessFs::Execute)?
        .create()?
        .add_rules(path_beneath_rules(files, AccessFs::Execute))?;
    Ok(created.into())
}

/// Why what confines the run's programs could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("cannot make the programs' Landlock ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("no syscall filter for this architecture: {0}")]
    Architecture(#[source] seccompiler::BackendError),
    #[error("cannot build the syscall filter: {0}")]
    Filter(#[from] seccompiler::BackendError),
}

impl From<ConfineError> for LabError {
    fn from(e: ConfineError) -> LabError {
        LabError::caused(ErrorKind::Os, e.to_string(), e)
    }
}

/// The Landlock ABI this kernel has, if any (execute rights exist since ABI 1).
pub fn landlock_abi() -> Option<i32> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only reads.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    (abi >= 1).then_some(abi as i32)
}

/// What the filter denies outright, with EPERM: (name, number). docs/SECURITY.md says why.
pub const DENIED: &[(&str, i64)] = &[
    ("add_key", libc::SYS_add_key),
    ("keyctl", libc::SYS_keyctl),
    ("request_key", libc::SYS_request_key),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("kcmp", libc::SYS_kcmp),
];

/// Namespaces a program may not make: they would be outside the run's accounting (its
/// namespaces, links and quotas) and widen the kernel's surface.
const NEW_NAMESPACES: &[u64] = &[
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x0000_0080, // CLONE_NEWTIME
];

/// The two filters: the deny list (EPERM), and clone3 (ENOSYS).
fn filters() -> Result<Vec<BpfProgram>, ConfineError> {
    let arch = seccompiler::TargetArch::try_from(std::env::consts::ARCH)
        .map_err(ConfineError::Architecture)?;
    let fail = ConfineError::Filter;
    let mut denied: std::collections::BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&(_, nr)| (nr, Vec::new())).collect();
    let flag_rules = |arg: u8| -> Result<Vec<SeccompRule>, ConfineError> {
        NEW_NAMESPACES
            .iter()
            .map(|&flag| {
                SeccompRule::new(vec![SeccompCondition::new(
                    arg,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )
                .map_err(fail)?])
                .map_err(fail)
            })
            .collect()
    };
    denied.insert(libc::SYS_unshare, flag_rules(0)?);
    denied.insert(libc::SYS_clone, flag_rules(0)?);
    let deny = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(fail)?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(fail)?;
    let compile = |f: SeccompFilter| BpfProgram::try_from(f).map_err(ConfineError::Filter);
    Ok(vec![compile(deny)?, compile(clone3)?])
}

/// Whether this kernel filters syscalls (seccomp filter mode).
pub fn seccomp_available() -> bool {
    // SAFETY: PR_GET_SECCOMP only reads this thread's state.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    mode >= 0 && Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elf_program_brings_its_interpreter_and_a_script_does_not() {
        let sh = PathBuf::from("/bin/sh");
        let files = executables(std::slice::from_ref(&sh));
        let real_sh = std::fs::canonicalize(&sh).unwrap();
        assert!(files.contains(&real_sh), "{files:?}");
        // A dynamically linked shell names its loader (ld-linux-*.so.*), which comes along.
        let interp = elf_interpreter(&real_sh).expect("sh is dynamically linked");
        assert!(interp.to_string_lossy().contains("ld-"), "{interp:?}");
        assert!(files.contains(&std::fs::canonicalize(&interp).unwrap()));
        // A script is not ELF: nothing else comes with it.
        let script = std::env::temp_dir().join(format!("nslab-unit-{}.sh", std::process::id()));
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(elf_interpreter(&script), None);
        let files = executables(std::slice::from_ref(&script));
        std::fs::remove_file(&script).unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
    }

    #[test]
    fn missing_programs_are_left_out() {
        assert!(executables(&[PathBuf::from("/nonexistent/nslab-none")]).is_empty());
    }

    #[test]
    fn the_filters_compile_for_this_machine() {
        let f = filters().unwrap();
        assert_eq!(f.len(), 2);
        assert!(f
            .iter()
            .all(|p| !p.is_empty() && p.len() < usize::from(u16::MAX)));
    }
}
