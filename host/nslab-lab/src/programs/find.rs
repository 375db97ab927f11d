//! Where a program the scenario runs is found: a bare name in the fixed system PATH, never
//! anywhere else; and, only to name the path in a hint, the places packages put programs that
//! are not on it (FRR's daemons in /usr/lib/frr).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::error::{LabError, LabResult};
use crate::process::SYSTEM_PATH;

fn executable(p: &std::path::Path) -> bool {
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Where packages put programs that are not on the system PATH (FRR's daemons, strongSwan's,
/// helper binaries): searched only to name the path in a hint, never to run a program.
const USUAL_PLACES: &[&str] = &[
    "/usr/lib/frr",
    "/usr/libexec",
    "/usr/lib",
    "/usr/local/libexec",
];

/// A program not on the system PATH, found in one of the usual places (or one folder below).
pub fn elsewhere(program: &str) -> Option<PathBuf> {
    for place in USUAL_PLACES {
        let direct = PathBuf::from(place).join(program);
        if executable(&direct) {
            return Some(direct);
        }
        let mut below: Vec<PathBuf> = std::fs::read_dir(place)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(program))
            .filter(|p| executable(p))
            .collect();
        below.sort();
        if let Some(found) = below.into_iter().next() {
            return Some(found);
        }
    }
    None
}

/// A bare program name's file in [`SYSTEM_PATH`], if it is there.
pub fn in_system_path(program: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| executable(p))
}

/// Find a bare program name in [`SYSTEM_PATH`]. The policy has already checked the name is bare
/// and allowed.
pub fn resolve(program: &str) -> LabResult<PathBuf> {
    in_system_path(program).ok_or_else(|| match elsewhere(program) {
        Some(path) => LabError::not_found(format!(
            "program {program:?} is allowed by name, but it is not on the system PATH \
                 ({SYSTEM_PATH}): it is at {}; allow it by path instead: --allow-exec {}",
            path.display(),
            path.display()
        )),
        None => LabError::not_found(format!(
            "program {program:?} is allowed but not installed: it is in none of {SYSTEM_PATH}; \
                 install it on this machine (for example with apt-get)"
        )),
    })
}
