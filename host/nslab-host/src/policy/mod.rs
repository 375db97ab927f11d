//! The run's capability policy: one [`Policy`], asked first by every host function through
//! [`Policy::check`]. Deny by default: a program runs only if it is allowed, not denied, and
//! declared by the scenario; every count, size and time has a limit; an address must fall in an
//! allowed range. What the values are and where they came from is config.rs; every key is
//! documented in docs/policy.md.

mod config;
mod error;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

pub use config::{parse_size, ByteSize, Policy, PolicyFile, PolicyFlags, KEYS};
pub use error::PolicyError;
use nslab_lab::error::{LabError, LabResult};
use nslab_lab::input::Cidr;

/// The programs a scenario declared in `describe()`: the run holds them, and they bound what it
/// may run. None while `describe` itself runs, when no host call is allowed at all.
pub type Declared = Option<BTreeSet<String>>;

/// Programs a scenario may run when nothing else is said.
pub const DEFAULT_EXEC_ALLOW: &[&str] = &["ping", "ip", "ss", "iperf3"];

/// Address ranges a scenario may assign by default: private, shared, benchmarking and
/// documentation space, never an address that routes on the Internet.
pub const DEFAULT_ADDRESS_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "2001:db8::/32",
    "::1/128",
];

/// Environment variables a scenario may set for a program when nothing else is said: the ones
/// that only change how a program formats what it prints. Anything else must be allowed by name
/// (`exec-env-allow`), for a variable like LOCPATH, GLIBC_TUNABLES or RES_OPTIONS changes which
/// files or code a program loads.
pub const DEFAULT_ENV_ALLOW: &[&str] = &[
    "TERM",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "TZ",
    "HOME",
    "USER",
    "LOGNAME",
    "COLUMNS",
    "LINES",
    "NO_COLOR",
];

/// Variables no policy may allow: they change which code a program loads or which program a
/// name resolves to, whatever the operator meant.
fn env_key_never(key: &str) -> bool {
    key.starts_with("LD_")
        || key.starts_with("GCONV_")
        || key.starts_with("GLIBC_")
        || matches!(
            key,
            "PATH"
                | "HOSTALIASES"
                | "LOCPATH"
                | "NLSPATH"
                | "RES_OPTIONS"
                | "LOCALDOMAIN"
                | "TZDIR"
                | "MALLOC_TRACE"
                | "TMPDIR"
                | "BASH_ENV"
                | "ENV"
                | "IFS"
                | "PERL5LIB"
                | "PERL5OPT"
                | "PYTHONPATH"
                | "PYTHONSTARTUP"
                | "PYTHONHOME"
                | "RUBYLIB"
                | "RUBYOPT"
                | "NODE_OPTIONS"
        )
}

/// Everything a guest can ask of the host, as the policy sees it.
#[derive(Debug)]
pub enum Op<'a> {
    /// Create a namespace while the run holds `held`.
    CreateNamespace { held: usize },
    /// Create `count` links while the run holds `held`.
    CreateLinks { held: usize, count: usize },
    /// Assign an address.
    Address { cidr: &'a Cidr },
    /// Add or remove a route via `gateway`, if it has one.
    Route { gateway: Option<IpAddr> },
    /// Read or change something the run already owns: ownership is the resource handle itself.
    Owned,
    /// Run a program while `live` of the run's programs are running; `bytes` of arguments,
    /// environment and input.
    Exec {
        program: &'a str,
        env: &'a [(String, String)],
        timeout_ms: Option<u32>,
        live: usize,
        bytes: usize,
    },
    /// Add to the run's report: `bytes` of text.
    Report { bytes: usize },
    /// Give a namespace a file of `bytes`, when the run has given `written` already.
    WriteFile { bytes: usize, written: usize },
    /// Read a file of a namespace back (its size is held to file-bytes as it is read).
    ReadFile,
    /// Save a file of `bytes` into the report, when the run has saved `attached` bytes already.
    Attach { bytes: usize, attached: usize },
}

impl Policy {
    /// Allow more programs (as `--allow-exec` does).
    pub fn allow_exec<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, programs: I) {
        self.exec_allow.extend(programs.into_iter().map(Into::into));
    }

    /// Whether the policy lets a program run at all (allowed and not denied).
    pub fn permits_program(&self, program: &str) -> bool {
        self.exec_allow.contains(program) && !self.exec_deny.contains(program)
    }

    /// The programs of `declared` this policy does not let run, with the flag that would.
    pub fn undeclarable(&self, declared: &[String]) -> Option<String> {
        let denied: Vec<&str> = declared
            .iter()
            .filter(|p| self.exec_deny.contains(*p))
            .map(String::as_str)
            .collect();
        let missing: Vec<&str> = declared
            .iter()
            .filter(|p| !self.exec_allow.contains(*p) && !self.exec_deny.contains(*p))
            .map(String::as_str)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            // A program outside the system PATH is allowed by its path, which the hint names.
            let flag: Vec<String> = missing
                .iter()
                .map(|p| match nslab_lab::host::in_system_path(p) {
                    None => nslab_lab::host::elsewhere(p)
                        .map_or(p.to_string(), |path| path.display().to_string()),
                    Some(_) => p.to_string(),
                })
                .collect();
            parts.push(format!(
                "{} {} not on the exec allowlist (allow with --allow-exec {})",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" },
                flag.join(",")
            ));
        }
        if !denied.is_empty() {
            parts.push(format!(
                "{} denied by exec-deny ({})",
                denied.join(", "),
                self.sources["exec-deny"]
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The declared programs this policy allows that the run could not start: not installed,
    /// or allowed by name but living outside the system PATH (the sentence names the path to
    /// allow instead). Said before the run, by `inspect` and `run`, rather than halfway.
    pub fn unrunnable(&self, declared: &[String]) -> Option<String> {
        let problems: Vec<String> = declared
            .iter()
            .filter(|p| self.permits_program(p) && !self.exec_paths.contains_key(*p))
            .filter_map(|p| nslab_lab::host::resolve(p).err().map(|e| e.to_string()))
            .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// The one choke point: every host function asks here before it touches anything.
    pub fn check(&self, op: &Op<'_>, declared: &Declared) -> LabResult<()> {
        let Some(declared) = declared else {
            return Err(LabError::denied(
                "host calls are not allowed during describe(): it only says what the scenario is and needs",
            ));
        };
        // Every operation is named: a new one cannot be allowed by default.
        match *op {
            Op::CreateNamespace { held } if held >= self.max_namespaces => Err(LabError::limit(format!(
                "namespace limit reached: this run already holds {held} (policy limit max-namespaces = {}; raise it with --max-namespaces)",
                self.max_namespaces
            ))),
            Op::CreateNamespace { .. } => Ok(()),
            Op::CreateLinks { held, count } if held + count > self.max_links => Err(LabError::limit(format!(
                "link limit reached: this run holds {held} links and asked for {count} more (policy limit max-links = {}: links held at once; raise it with --max-links, or delete links the scenario no longer needs)",
                self.max_links
            ))),
            Op::CreateLinks { .. } => Ok(()),
            Op::Address { cidr } if !self.address_ranges.iter().any(|r| r.contains(&cidr.addr)) => {
                Err(LabError::denied(format!(
                    "address {cidr} refused: it is outside the ranges a scenario may assign (policy key address-ranges); \
                     allow it with --allow-addresses {}",
                    IpNet::new(cidr.addr, cidr.prefix).map(|n| n.trunc().to_string()).unwrap_or_else(|_| cidr.to_string())
                )))
            }
            Op::Address { .. } => Ok(()),
            Op::Route { gateway: Some(g) } if !self.address_ranges.iter().any(|r| r.contains(&g)) => {
                Err(LabError::denied(format!(
                    "route via {g} refused: the gateway is outside the ranges a scenario may assign (policy key address-ranges); \
                     allow it with --allow-addresses {}",
                    IpNet::from(g)
                )))
            }
            Op::Route { .. } => Ok(()),
            Op::Owned => Ok(()),
            Op::Exec { program, env, timeout_ms, live, bytes } => {
                self.check_exec(program, env, timeout_ms, live, bytes, declared)
            }
            Op::Report { bytes } => self.check_bytes("report text", bytes),
            Op::WriteFile { bytes, .. } if bytes > self.file_bytes => Err(LabError::limit(format!(
                "a file of {bytes} bytes refused: the most is {} (policy limit file-bytes; raise it with --file-bytes)",
                self.file_bytes
            ))),
            Op::WriteFile { written, .. } if written >= self.max_files => Err(LabError::limit(format!(
                "file refused: this run has given its namespaces {written} files (policy limit max-files = {}; raise it with --max-files)",
                self.max_files
            ))),
            Op::WriteFile { .. } | Op::ReadFile => Ok(()),
            Op::Attach { bytes, attached } if bytes.saturating_add(attached) > self.attach_bytes => {
                Err(LabError::limit(format!(
                    "a report file of {bytes} bytes refused: the run's report files may hold {} bytes in all and \
                     {attached} are used (policy limit attach-bytes; raise it with --attach-bytes)",
                    self.attach_bytes
                )))
            }
            Op::Attach { .. } => Ok(()),
        }
    }

    fn check_bytes(&self, what: &str, bytes: usize) -> LabResult<()> {
        if bytes > self.call_bytes {
            return Err(LabError::limit(format!(
                "{what} of {bytes} bytes refused: one call may pass at most {} (policy limit call-bytes; raise it with --max-call-data)",
                self.call_bytes
            )));
        }
        Ok(())
    }

    fn check_exec(
        &self,
        program: &str,
        env: &[(String, String)],
        timeout_ms: Option<u32>,
        live: usize,
        bytes: usize,
        declared: &BTreeSet<String>,
    ) -> LabResult<()> {
        if program.is_empty()
            || program.contains('/')
            || program == "."
            || program == ".."
            || program.contains('\0')
        {
            return Err(LabError::denied(format!(
                "exec of {program:?} refused: a program is named by its bare name (like \"ping\"); \
                 the runner resolves it in its own fixed PATH, never from a path the scenario gives"
            )));
        }
        if self.exec_deny.contains(program) {
            return Err(LabError::denied(format!(
                "exec of {program:?} refused: it is denied by the policy (exec-deny, from {})",
                self.sources["exec-deny"]
            )));
        }
        if !self.exec_allow.contains(program) {
            return Err(LabError::denied(format!(
                "exec of {program:?} refused: it is not on the exec allowlist ({}); allow it with --allow-exec {program}",
                self.exec_allow.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if !declared.contains(program) {
            return Err(LabError::denied(format!(
                "exec of {program:?} refused: the scenario did not declare it in describe().programs ({}); \
                 a scenario runs only the programs it declares",
                declared.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some((key, _)) = env.iter().find(|(k, _)| env_key_never(k)) {
            return Err(LabError::denied(format!(
                "exec of {program:?} refused: the scenario may not set {key} (it changes which code or program runs)"
            )));
        }
        if let Some((key, _)) = env
            .iter()
            .find(|(k, _)| !self.exec_env_allow.contains(k.as_str()))
        {
            return Err(LabError::denied(format!(
                "exec of {program:?} refused: the scenario may not set {key}: it is not on the environment allowlist \
                 (policy key exec-env-allow); allow it with --allow-env {key}"
            )));
        }
        if let Some(ms) = timeout_ms {
            if Duration::from_millis(ms.into()) > self.exec_timeout_max {
                return Err(LabError::limit(format!(
                    "exec of {program:?} asked for a {ms} ms time limit: the most a scenario may ask is {} ms (policy limit exec-timeout-max)",
                    self.exec_timeout_max.as_millis()
                )));
            }
        }
        if live >= self.max_processes {
            return Err(LabError::limit(format!(
                "exec of {program:?} refused: {live} of the run's programs are running (policy limit max-processes = {}; raise it with --max-processes)",
                self.max_processes
            )));
        }
        self.check_bytes(
            &format!("exec of {program:?} with arguments, environment and input"),
            bytes,
        )
    }

    /// The time limit one exec gets.
    pub fn exec_timeout(&self, timeout_ms: Option<u32>) -> Duration {
        timeout_ms.map_or(self.exec_timeout, |ms| Duration::from_millis(ms.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nslab_lab::error::ErrorKind;

    fn running() -> Policy {
        Policy::default()
    }

    /// What the test scenario declared.
    fn declared() -> Declared {
        Some(
            ["ping", "ip", "nc", "cat", "iperf3"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }

    fn check(p: &Policy, op: &Op<'_>) -> LabResult<()> {
        p.check(op, &declared())
    }

    fn exec<'a>(program: &'a str, env: &'a [(String, String)]) -> Op<'a> {
        Op::Exec {
            program,
            env,
            timeout_ms: None,
            live: 0,
            bytes: 0,
        }
    }

    #[test]
    fn denies_by_default_and_names_the_flag() {
        let p = running();
        check(&p, &exec("ping", &[])).unwrap();
        check(&p, &exec("ip", &[])).unwrap();
        let err = check(&p, &exec("nc", &[])).unwrap_err();
        assert!(err.kind() == ErrorKind::Denied);
        assert_eq!(
            err.to_string(),
            "exec of \"nc\" refused: it is not on the exec allowlist (ip, iperf3, ping, ss); allow it with --allow-exec nc"
        );
    }

    #[test]
    fn deny_wins_over_allow_and_undeclared_programs_are_refused() {
        let flags = PolicyFlags {
            allow_exec: vec!["cat".into()],
            deny_exec: vec!["iperf3".into(), "cat".into()],
            ..Default::default()
        };
        let mut p = Policy::build(&flags).unwrap();
        let err = check(&p, &exec("cat", &[])).unwrap_err().to_string();
        assert!(
            err.contains("denied by the policy (exec-deny, from default + flag --deny-exec)"),
            "{err}"
        );
        p.exec_deny.clear();
        p.allow_exec(["ss"]);
        let err = check(&p, &exec("ss", &[])).unwrap_err().to_string();
        assert!(
            err.contains("did not declare it in describe().programs"),
            "{err}"
        );
    }

    #[test]
    fn describe_may_not_call_the_host() {
        let p = Policy::default();
        let err = p.check(&Op::Owned, &None).unwrap_err();
        assert!(err.to_string().contains("not allowed during describe()"));
    }

    #[test]
    fn paths_are_never_programs() {
        let mut p = running();
        p.allow_exec(["/bin/sh", "../ping", "."]);
        for prog in ["/bin/sh", "../ping", "/usr/bin/ping", ".", ""] {
            let err = check(&p, &exec(prog, &[])).unwrap_err();
            assert!(err.to_string().contains("bare name"), "{prog}: {err}");
        }
    }

    #[test]
    fn loader_and_path_variables_are_refused() {
        let p = running();
        for key in ["LD_PRELOAD", "LD_LIBRARY_PATH", "PATH"] {
            let env = [(key.to_string(), "/tmp/x".to_string())];
            let err = check(&p, &exec("ping", &env)).unwrap_err();
            assert!(err.kind() == ErrorKind::Denied, "{key}");
            assert!(err.to_string().contains(key));
        }
        check(&p, &exec("ping", &[("LANG".into(), "C".into())])).unwrap();
    }

    #[test]
    fn only_allowed_environment_variables_may_be_set() {
        let mut p = running();
        for key in [
            "LOCPATH",
            "NLSPATH",
            "GLIBC_TUNABLES",
            "RES_OPTIONS",
            "TZDIR",
            "FOO",
        ] {
            let env = [(key.to_string(), "/tmp/x".to_string())];
            let err = check(&p, &exec("ping", &env)).unwrap_err();
            assert!(err.kind() == ErrorKind::Denied, "{key}");
        }
        let err = check(&p, &exec("ping", &[("FOO".into(), "1".into())])).unwrap_err();
        assert!(
            err.to_string().contains("allow it with --allow-env FOO"),
            "{err}"
        );
        p.exec_env_allow.insert("FOO".into());
        check(&p, &exec("ping", &[("FOO".into(), "1".into())])).unwrap();
        // What changes the code a program loads can never be allowed, by file or flag.
        let flags = PolicyFlags {
            allow_env: vec!["GLIBC_TUNABLES".into()],
            ..Default::default()
        };
        let err = Policy::build(&flags).unwrap_err().to_string();
        assert!(err.contains("no policy may allow GLIBC_TUNABLES"), "{err}");
        p.exec_env_allow.insert("LOCPATH".into());
        let env = [("LOCPATH".to_string(), "/tmp".to_string())];
        assert!(check(&p, &exec("ping", &env)).is_err());
    }

    #[test]
    fn counts_sizes_and_timeouts_are_limited() {
        let p = running();
        check(&p, &Op::CreateNamespace { held: 63 }).unwrap();
        assert!(
            check(&p, &Op::CreateNamespace { held: 64 })
                .as_ref()
                .err()
                .map(LabError::kind)
                == Some(ErrorKind::Limit)
        );
        check(
            &p,
            &Op::CreateLinks {
                held: 254,
                count: 2,
            },
        )
        .unwrap();
        assert!(
            check(
                &p,
                &Op::CreateLinks {
                    held: 255,
                    count: 2
                }
            )
            .as_ref()
            .err()
            .map(LabError::kind)
                == Some(ErrorKind::Limit)
        );
        let op = Op::Exec {
            program: "ping",
            env: &[],
            timeout_ms: Some(600_001),
            live: 0,
            bytes: 0,
        };
        assert!(check(&p, &op)
            .unwrap_err()
            .to_string()
            .contains("exec-timeout-max"));
        let op = Op::Exec {
            program: "ping",
            env: &[],
            timeout_ms: None,
            live: 64,
            bytes: 0,
        };
        assert!(check(&p, &op)
            .unwrap_err()
            .to_string()
            .contains("max-processes = 64"));
        let op = Op::Exec {
            program: "ping",
            env: &[],
            timeout_ms: None,
            live: 0,
            bytes: 2 << 20,
        };
        assert!(check(&p, &op)
            .unwrap_err()
            .to_string()
            .contains("call-bytes"));
        assert!(check(&p, &Op::Report { bytes: 2 << 20 })
            .unwrap_err()
            .to_string()
            .contains("--max-call-data"));
        assert_eq!(p.exec_timeout(None), Duration::from_secs(60));
        assert_eq!(p.exec_timeout(Some(1500)), Duration::from_millis(1500));
    }

    #[test]
    fn addresses_must_fall_in_an_allowed_range() {
        let p = running();
        for ok in ["192.168.0.1/24", "10.1.2.3/8", "fd00::1/64", "fe80::1/64"] {
            check(
                &p,
                &Op::Address {
                    cidr: &ok.parse().unwrap(),
                },
            )
            .unwrap();
        }
        let err = check(
            &p,
            &Op::Address {
                cidr: &"8.8.8.8/24".parse().unwrap(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("outside the ranges a scenario may assign"),
            "{err}"
        );
        assert!(
            err.ends_with("allow it with --allow-addresses 8.8.8.0/24"),
            "{err}"
        );
        let flags = PolicyFlags {
            allow_addresses: vec!["8.8.8.0/24".parse().unwrap()],
            ..Default::default()
        };
        let p = Policy::build(&flags).unwrap();
        check(
            &p,
            &Op::Address {
                cidr: &"8.8.8.8/24".parse().unwrap(),
            },
        )
        .unwrap();
    }

    #[test]
    fn a_file_then_flags_and_each_value_says_where_it_came_from() {
        let path = std::env::temp_dir().join(format!("nslab-policy-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "exec-allow = [\"ping\", \"tcpdump\"]\nmax-namespaces = 8\nrun-timeout = \"90s\"\nguest-memory = \"64MiB\"\ncall-bytes = 4096\n",
        )
        .unwrap();
        let flags = PolicyFlags {
            policy: Some(path.clone()),
            max_namespaces: Some(4),
            allow_exec: vec!["ss".into()],
            ..Default::default()
        };
        let p = Policy::build(&flags).unwrap();
        let file = format!("file {}", path.display());
        assert_eq!(
            p.exec_allow.iter().cloned().collect::<Vec<_>>(),
            ["ping", "ss", "tcpdump"]
        );
        assert_eq!(
            p.sources["exec-allow"],
            format!("{file} + flag --allow-exec")
        );
        assert_eq!(
            (p.max_namespaces, p.sources["max-namespaces"].as_str()),
            (4, "flag --max-namespaces")
        );
        assert_eq!(
            (p.run_timeout, p.sources["run-timeout"].clone()),
            (Duration::from_secs(90), file.clone())
        );
        assert_eq!(p.guest_memory, 64 << 20);
        assert_eq!(p.call_bytes, 4096);
        assert_eq!(p.sources["max-links"], "default");
        std::fs::write(&path, "max-namespaecs = 3\n").unwrap();
        let err = Policy::build(&PolicyFlags {
            policy: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, PolicyError::Parse { .. }), "{err:?}");
        assert!(
            err.to_string().contains("unknown field `max-namespaecs`"),
            "{err}"
        );
        std::fs::write(&path, "exec-timeout = \"20m\"\n").unwrap();
        let err = Policy::build(&PolicyFlags {
            policy: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("exec-timeout (20m) is longer than exec-timeout-max (10m)"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(Policy::build(&PolicyFlags {
            policy: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
        .starts_with("cannot read the policy file"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
