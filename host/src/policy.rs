//! The run's capability policy: one [`Policy`], asked first by every host function through
//! [`Policy::check`]. Deny by default: a program runs only if it is on the exec allowlist, and
//! every count has a limit.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::{LabError, LabResult};

/// Programs a scenario may run when nothing else is said.
pub const DEFAULT_EXEC_ALLOW: &[&str] = &["ping"];

/// Environment variables a scenario may not set for a program it runs: they would change which
/// code the program loads or which program a name resolves to.
fn env_key_refused(key: &str) -> bool {
    key.starts_with("LD_") || key == "PATH" || key.starts_with("GCONV_") || key == "HOSTALIASES"
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// Bare program names the scenario may run (`exec-allow`).
    pub exec_allow: BTreeSet<String>,
    /// Namespaces a run may hold at once (`max-namespaces`).
    pub max_namespaces: usize,
    /// Links a run may create, veth ends counted one each (`max-links`).
    pub max_links: usize,
    /// Per-exec time limit when the scenario gives none (`exec-timeout`).
    pub exec_timeout: Duration,
    /// The longest time limit a scenario may ask for one exec (`exec-timeout-max`).
    pub exec_timeout_max: Duration,
    /// Bytes kept of each of a program's stdout and stderr; the rest is cut and marked
    /// (`exec-output-bytes`).
    pub exec_output_bytes: usize,
    /// The whole run's deadline: past it the scenario is stopped and its lab removed
    /// (`run-timeout`).
    pub run_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            exec_allow: DEFAULT_EXEC_ALLOW.iter().map(|s| s.to_string()).collect(),
            max_namespaces: 64,
            max_links: 256,
            exec_timeout: Duration::from_secs(60),
            exec_timeout_max: Duration::from_secs(600),
            exec_output_bytes: 1 << 20,
            run_timeout: Duration::from_secs(600),
        }
    }
}

/// Everything a guest can ask of the host, as the policy sees it.
#[derive(Debug)]
pub enum Op<'a> {
    /// Create a namespace while the run holds `held`.
    CreateNamespace { held: usize },
    /// Create `count` links while the run has created `created`.
    CreateLinks { created: usize, count: usize },
    /// Read or change something the run already owns: ownership is the resource handle itself.
    Owned,
    /// Run a program.
    Exec {
        program: &'a str,
        env: &'a [(String, String)],
        timeout_ms: Option<u32>,
    },
    /// Add to the run's report.
    Report,
}

impl Policy {
    /// Allow more programs (`--allow-exec`).
    pub fn allow_exec<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, programs: I) {
        self.exec_allow.extend(programs.into_iter().map(Into::into));
    }

    /// The one choke point: every host function asks here before it touches anything.
    pub fn check(&self, op: &Op<'_>) -> LabResult<()> {
        match *op {
            Op::CreateNamespace { held } if held >= self.max_namespaces => Err(LabError::Limit(format!(
                "namespace limit reached: this run already holds {held} (policy limit max-namespaces = {})",
                self.max_namespaces
            ))),
            Op::CreateLinks { created, count } if created + count > self.max_links => Err(LabError::Limit(format!(
                "link limit reached: this run has created {created} links and asked for {count} more (policy limit max-links = {})",
                self.max_links
            ))),
            Op::Exec { program, env, timeout_ms } => self.check_exec(program, env, timeout_ms),
            _ => Ok(()),
        }
    }

    fn check_exec(
        &self,
        program: &str,
        env: &[(String, String)],
        timeout_ms: Option<u32>,
    ) -> LabResult<()> {
        if program.is_empty()
            || program.contains('/')
            || program == "."
            || program == ".."
            || program.contains('\0')
        {
            return Err(LabError::Denied(format!(
                "exec of {program:?} refused: a program is named by its bare name (like \"ping\"); \
                 the runner resolves it in its own fixed PATH, never from a path the scenario gives"
            )));
        }
        if !self.exec_allow.contains(program) {
            return Err(LabError::Denied(format!(
                "exec of {program:?} refused: it is not on the exec allowlist ({}); \
                 allow it with --allow-exec {program}",
                self.exec_allow
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some((key, _)) = env.iter().find(|(k, _)| env_key_refused(k)) {
            return Err(LabError::Denied(format!(
                "exec of {program:?} refused: the scenario may not set {key} (it changes which code or program runs)"
            )));
        }
        if let Some((key, _)) = env
            .iter()
            .find(|(k, _)| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(LabError::Invalid(format!(
                "environment variable name {key:?} is not valid: it must be non-empty, without '=' or NUL"
            )));
        }
        if let Some(ms) = timeout_ms {
            if Duration::from_millis(ms.into()) > self.exec_timeout_max {
                return Err(LabError::Limit(format!(
                    "exec of {program:?} asked for a {ms} ms time limit: the most a scenario may ask is {} ms (policy limit exec-timeout-max)",
                    self.exec_timeout_max.as_millis()
                )));
            }
        }
        Ok(())
    }

    /// The time limit one exec gets.
    pub fn exec_timeout(&self, timeout_ms: Option<u32>) -> Duration {
        timeout_ms.map_or(self.exec_timeout, |ms| Duration::from_millis(ms.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec<'a>(program: &'a str, env: &'a [(String, String)]) -> Op<'a> {
        Op::Exec {
            program,
            env,
            timeout_ms: None,
        }
    }

    #[test]
    fn denies_by_default_and_names_the_flag() {
        let p = Policy::default();
        p.check(&exec("ping", &[])).unwrap();
        let err = p.check(&exec("nc", &[])).unwrap_err();
        assert!(matches!(err, LabError::Denied(_)));
        assert_eq!(
            err.to_string(),
            "exec of \"nc\" refused: it is not on the exec allowlist (ping); allow it with --allow-exec nc"
        );
    }

    #[test]
    fn allow_exec_adds_programs() {
        let mut p = Policy::default();
        p.allow_exec(["iperf3", "ip"]);
        p.check(&exec("iperf3", &[])).unwrap();
        p.check(&exec("ip", &[])).unwrap();
    }

    #[test]
    fn paths_are_never_programs() {
        let mut p = Policy::default();
        p.allow_exec(["/bin/sh", "../ping", "."]);
        for prog in ["/bin/sh", "../ping", "/usr/bin/ping", ".", ""] {
            let err = p.check(&exec(prog, &[])).unwrap_err();
            assert!(err.to_string().contains("bare name"), "{prog}: {err}");
        }
    }

    #[test]
    fn loader_and_path_variables_are_refused() {
        let p = Policy::default();
        for key in ["LD_PRELOAD", "LD_LIBRARY_PATH", "PATH"] {
            let env = [(key.to_string(), "/tmp/x".to_string())];
            let err = p.check(&exec("ping", &env)).unwrap_err();
            assert!(matches!(err, LabError::Denied(_)), "{key}");
            assert!(err.to_string().contains(key));
        }
        p.check(&exec("ping", &[("LANG".into(), "C".into())]))
            .unwrap();
        let bad = [("A=B".to_string(), String::new())];
        assert!(matches!(
            p.check(&exec("ping", &bad)),
            Err(LabError::Invalid(_))
        ));
    }

    #[test]
    fn counts_and_timeouts_are_limited() {
        let p = Policy::default();
        p.check(&Op::CreateNamespace { held: 63 }).unwrap();
        assert!(matches!(
            p.check(&Op::CreateNamespace { held: 64 }),
            Err(LabError::Limit(_))
        ));
        p.check(&Op::CreateLinks {
            created: 254,
            count: 2,
        })
        .unwrap();
        assert!(matches!(
            p.check(&Op::CreateLinks {
                created: 255,
                count: 2
            }),
            Err(LabError::Limit(_))
        ));
        let op = Op::Exec {
            program: "ping",
            env: &[],
            timeout_ms: Some(600_001),
        };
        assert!(p
            .check(&op)
            .unwrap_err()
            .to_string()
            .contains("exec-timeout-max"));
        assert_eq!(p.exec_timeout(None), Duration::from_secs(60));
        assert_eq!(p.exec_timeout(Some(1500)), Duration::from_millis(1500));
    }
}
