//! The run's capability policy: one [`Policy`], asked first by every host function through
//! [`Policy::check`]. Deny by default: a program runs only if it is allowed, not denied, and
//! declared by the scenario; every count, size and time has a limit; an address must fall in an
//! allowed range. Built from the defaults here, an optional TOML file (`--policy FILE`) and
//! flags, in that order; [`Policy::sources`] says where each value came from.
//! Every key is documented in docs/policy.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::addr::Cidr;
use crate::error::{LabError, LabResult};

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

#[derive(Debug, Clone)]
pub struct Policy {
    pub exec_allow: BTreeSet<String>,
    pub exec_deny: BTreeSet<String>,
    pub max_namespaces: usize,
    pub max_links: usize,
    pub max_processes: usize,
    pub address_ranges: Vec<IpNet>,
    pub exec_timeout: Duration,
    pub exec_timeout_max: Duration,
    pub exec_output_bytes: usize,
    pub run_timeout: Duration,
    pub guest_memory: usize,
    pub guest_output_bytes: usize,
    pub call_bytes: usize,
    pub exec_env_allow: BTreeSet<String>,
    pub program_memory: usize,
    pub scratch_bytes: usize,
    pub echo_bytes: usize,
    pub describe_timeout: Duration,
    /// The programs the scenario declared in `describe()`; None while `describe` itself runs,
    /// when no host call is allowed at all.
    pub declared: Option<BTreeSet<String>>,
    /// Where each key's value came from: "default", "file PATH", "flag --x".
    pub sources: BTreeMap<&'static str, String>,
}

/// Every key, in the order `runner policy` prints them.
pub const KEYS: &[&str] = &[
    "exec-allow",
    "exec-deny",
    "exec-timeout",
    "exec-timeout-max",
    "exec-output-bytes",
    "max-namespaces",
    "max-links",
    "max-processes",
    "address-ranges",
    "run-timeout",
    "guest-memory",
    "guest-output-bytes",
    "call-bytes",
    "exec-env-allow",
    "program-memory",
    "scratch-bytes",
    "echo-bytes",
    "describe-timeout",
];

impl Default for Policy {
    fn default() -> Self {
        Policy {
            exec_allow: DEFAULT_EXEC_ALLOW.iter().map(|s| s.to_string()).collect(),
            exec_deny: BTreeSet::new(),
            max_namespaces: 64,
            max_links: 256,
            max_processes: 64,
            address_ranges: DEFAULT_ADDRESS_RANGES
                .iter()
                .map(|r| r.parse().expect("valid default range"))
                .collect(),
            exec_timeout: Duration::from_secs(60),
            exec_timeout_max: Duration::from_secs(600),
            exec_output_bytes: 1 << 20,
            run_timeout: Duration::from_secs(600),
            guest_memory: 256 << 20,
            guest_output_bytes: 1 << 20,
            call_bytes: 1 << 20,
            exec_env_allow: DEFAULT_ENV_ALLOW.iter().map(|s| s.to_string()).collect(),
            program_memory: 1 << 30,
            scratch_bytes: 64 << 20,
            echo_bytes: 1 << 20,
            describe_timeout: Duration::from_secs(5),
            declared: None,
            sources: KEYS.iter().map(|k| (*k, "default".to_string())).collect(),
        }
    }
}

/// A policy file: every key optional; unknown keys are an error that names them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicyFile {
    pub exec_allow: Option<Vec<String>>,
    pub exec_deny: Option<Vec<String>>,
    pub exec_timeout: Option<String>,
    pub exec_timeout_max: Option<String>,
    pub exec_output_bytes: Option<ByteSize>,
    pub max_namespaces: Option<usize>,
    pub max_links: Option<usize>,
    pub max_processes: Option<usize>,
    pub address_ranges: Option<Vec<IpNet>>,
    pub run_timeout: Option<String>,
    pub guest_memory: Option<ByteSize>,
    pub guest_output_bytes: Option<ByteSize>,
    pub call_bytes: Option<ByteSize>,
    pub exec_env_allow: Option<Vec<String>>,
    pub program_memory: Option<ByteSize>,
    pub scratch_bytes: Option<ByteSize>,
    pub echo_bytes: Option<ByteSize>,
    pub describe_timeout: Option<String>,
}

/// A size: a whole number of bytes, or a string with a unit ("64KiB", "256MiB", "1GiB").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct ByteSize(pub usize);

impl TryFrom<toml::Value> for ByteSize {
    type Error = String;
    fn try_from(v: toml::Value) -> Result<Self, String> {
        match v {
            toml::Value::Integer(n) if n >= 0 => Ok(ByteSize(n as usize)),
            toml::Value::String(s) => parse_size(&s).map(ByteSize),
            other => Err(format!(
                "expected a size like 1048576 or \"1MiB\", found {other}"
            )),
        }
    }
}

/// Parse "1048576", "64KiB", "256MiB", "1GiB" (also "KB"/"MB"/"GB" as powers of 1000).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write it like 1048576, 64KiB or 256MiB"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "{s:?}: unknown size unit {other:?}: use B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn parse_duration(key: &str, s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{key} = {s:?}: {e} (write it like 30s, 5m or 1h)"))
}

/// The policy flags of `runner run` and `runner policy`, as given.
#[derive(Debug, Default, Clone)]
pub struct PolicyFlags {
    pub allow_exec: Vec<String>,
    pub deny_exec: Vec<String>,
    pub max_namespaces: Option<usize>,
    pub max_links: Option<usize>,
    pub max_processes: Option<usize>,
    pub allow_addresses: Vec<IpNet>,
    pub exec_timeout: Option<Duration>,
    pub exec_output_bytes: Option<usize>,
    pub timeout: Option<Duration>,
    pub guest_memory: Option<usize>,
    pub guest_output_bytes: Option<usize>,
    pub call_bytes: Option<usize>,
    pub allow_env: Vec<String>,
    pub program_memory: Option<usize>,
    pub scratch_bytes: Option<usize>,
    pub echo_bytes: Option<usize>,
    pub describe_timeout: Option<Duration>,
}

/// Everything a guest can ask of the host, as the policy sees it.
#[derive(Debug)]
pub enum Op<'a> {
    /// Create a namespace while the run holds `held`.
    CreateNamespace { held: usize },
    /// Create `count` links while the run has created `created`.
    CreateLinks { created: usize, count: usize },
    /// Assign an address.
    Address { cidr: &'a Cidr },
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
}

impl Policy {
    /// The effective policy: defaults, then the file, then the flags.
    pub fn build(file: Option<&Path>, flags: &PolicyFlags) -> Result<Policy, String> {
        let mut p = Policy::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the policy file {}: {e}", path.display()))?;
            let parsed: PolicyFile = toml::from_str(&text).map_err(|e| {
                format!(
                    "the policy file {} is not valid: {}",
                    path.display(),
                    e.message()
                )
            })?;
            p.apply_file(parsed, &format!("file {}", path.display()))?;
        }
        p.apply_flags(flags);
        if let Some(key) = p.exec_env_allow.iter().find(|k| env_key_never(k)) {
            return Err(format!(
                "--allow-env {key} refused: no policy may allow {key}, for it changes which code or program runs"
            ));
        }
        if p.exec_timeout > p.exec_timeout_max {
            return Err(format!(
                "exec-timeout ({}) is longer than exec-timeout-max ({}): raise exec-timeout-max in the policy file",
                humantime::format_duration(p.exec_timeout),
                humantime::format_duration(p.exec_timeout_max)
            ));
        }
        Ok(p)
    }

    fn set_source(&mut self, key: &'static str, source: &str) {
        self.sources.insert(key, source.to_string());
    }

    fn add_source(&mut self, key: &'static str, source: &str) {
        let entry = self.sources.entry(key).or_default();
        *entry = format!("{entry} + {source}");
    }

    fn apply_file(&mut self, f: PolicyFile, src: &str) -> Result<(), String> {
        macro_rules! take {
            ($field:ident, $key:literal, $conv:expr) => {
                if let Some(v) = f.$field {
                    self.$field = $conv(v)?;
                    self.set_source($key, src);
                }
            };
        }
        fn ok<T>(v: T) -> Result<T, String> {
            Ok(v)
        }
        take!(exec_allow, "exec-allow", |v: Vec<String>| ok(v
            .into_iter()
            .collect()));
        take!(exec_deny, "exec-deny", |v: Vec<String>| ok(v
            .into_iter()
            .collect()));
        take!(exec_timeout, "exec-timeout", |v: String| parse_duration(
            "exec-timeout",
            &v
        ));
        take!(exec_timeout_max, "exec-timeout-max", |v: String| {
            parse_duration("exec-timeout-max", &v)
        });
        take!(
            exec_output_bytes,
            "exec-output-bytes",
            |v: ByteSize| ok(v.0)
        );
        take!(max_namespaces, "max-namespaces", ok);
        take!(max_links, "max-links", ok);
        take!(max_processes, "max-processes", ok);
        take!(address_ranges, "address-ranges", ok);
        take!(run_timeout, "run-timeout", |v: String| parse_duration(
            "run-timeout",
            &v
        ));
        take!(guest_memory, "guest-memory", |v: ByteSize| ok(v.0));
        take!(guest_output_bytes, "guest-output-bytes", |v: ByteSize| ok(
            v.0
        ));
        take!(call_bytes, "call-bytes", |v: ByteSize| ok(v.0));
        take!(exec_env_allow, "exec-env-allow", |v: Vec<String>| ok(v
            .into_iter()
            .collect()));
        take!(program_memory, "program-memory", |v: ByteSize| ok(v.0));
        take!(scratch_bytes, "scratch-bytes", |v: ByteSize| ok(v.0));
        take!(echo_bytes, "echo-bytes", |v: ByteSize| ok(v.0));
        take!(describe_timeout, "describe-timeout", |v: String| {
            parse_duration("describe-timeout", &v)
        });
        if let Some(key) = self.exec_env_allow.iter().find(|k| env_key_never(k)) {
            return Err(format!(
                "exec-env-allow in {src} lists {key}, which no policy may allow: it changes which code or program runs"
            ));
        }
        Ok(())
    }

    fn apply_flags(&mut self, f: &PolicyFlags) {
        if !f.allow_exec.is_empty() {
            self.exec_allow.extend(f.allow_exec.iter().cloned());
            self.add_source("exec-allow", "flag --allow-exec");
        }
        if !f.deny_exec.is_empty() {
            self.exec_deny.extend(f.deny_exec.iter().cloned());
            self.add_source("exec-deny", "flag --deny-exec");
        }
        if !f.allow_addresses.is_empty() {
            self.address_ranges
                .extend(f.allow_addresses.iter().cloned());
            self.add_source("address-ranges", "flag --allow-addresses");
        }
        macro_rules! flag {
            ($field:ident, $flag:ident, $key:literal, $name:literal) => {
                if let Some(v) = f.$flag {
                    self.$field = v;
                    self.set_source($key, concat!("flag ", $name));
                }
            };
        }
        flag!(
            max_namespaces,
            max_namespaces,
            "max-namespaces",
            "--max-namespaces"
        );
        flag!(max_links, max_links, "max-links", "--max-links");
        flag!(
            max_processes,
            max_processes,
            "max-processes",
            "--max-processes"
        );
        flag!(exec_timeout, exec_timeout, "exec-timeout", "--exec-timeout");
        flag!(
            exec_output_bytes,
            exec_output_bytes,
            "exec-output-bytes",
            "--exec-output"
        );
        flag!(run_timeout, timeout, "run-timeout", "--timeout");
        flag!(guest_memory, guest_memory, "guest-memory", "--guest-memory");
        flag!(
            guest_output_bytes,
            guest_output_bytes,
            "guest-output-bytes",
            "--guest-output"
        );
        flag!(call_bytes, call_bytes, "call-bytes", "--max-call-data");
        flag!(
            program_memory,
            program_memory,
            "program-memory",
            "--program-memory"
        );
        flag!(scratch_bytes, scratch_bytes, "scratch-bytes", "--scratch");
        flag!(echo_bytes, echo_bytes, "echo-bytes", "--echo-output");
        flag!(
            describe_timeout,
            describe_timeout,
            "describe-timeout",
            "--describe-timeout"
        );
        if !f.allow_env.is_empty() {
            self.exec_env_allow.extend(f.allow_env.iter().cloned());
            self.add_source("exec-env-allow", "flag --allow-env");
        }
    }

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
            parts.push(format!(
                "{} {} not on the exec allowlist (allow with --allow-exec {})",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" },
                missing.join(",")
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

    /// The one choke point: every host function asks here before it touches anything.
    pub fn check(&self, op: &Op<'_>) -> LabResult<()> {
        if self.declared.is_none() {
            return Err(LabError::Denied(
                "host calls are not allowed during describe(): it only says what the scenario is and needs".into(),
            ));
        }
        // Every operation is named: a new one cannot be allowed by default.
        match *op {
            Op::CreateNamespace { held } if held >= self.max_namespaces => Err(LabError::Limit(format!(
                "namespace limit reached: this run already holds {held} (policy limit max-namespaces = {}; raise it with --max-namespaces)",
                self.max_namespaces
            ))),
            Op::CreateNamespace { .. } => Ok(()),
            Op::CreateLinks { created, count } if created + count > self.max_links => Err(LabError::Limit(format!(
                "link limit reached: this run has created {created} links and asked for {count} more (policy limit max-links = {}; raise it with --max-links)",
                self.max_links
            ))),
            Op::CreateLinks { .. } => Ok(()),
            Op::Address { cidr } if !self.address_ranges.iter().any(|r| r.contains(&cidr.addr)) => {
                Err(LabError::Denied(format!(
                    "address {cidr} refused: it is outside the ranges a scenario may assign (policy key address-ranges); \
                     allow it with --allow-addresses {}",
                    IpNet::new(cidr.addr, cidr.prefix).map(|n| n.trunc().to_string()).unwrap_or_else(|_| cidr.to_string())
                )))
            }
            Op::Address { .. } => Ok(()),
            Op::Owned => Ok(()),
            Op::Exec { program, env, timeout_ms, live, bytes } => self.check_exec(program, env, timeout_ms, live, bytes),
            Op::Report { bytes } => self.check_bytes("report text", bytes),
        }
    }

    fn check_bytes(&self, what: &str, bytes: usize) -> LabResult<()> {
        if bytes > self.call_bytes {
            return Err(LabError::Limit(format!(
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
        if self.exec_deny.contains(program) {
            return Err(LabError::Denied(format!(
                "exec of {program:?} refused: it is denied by the policy (exec-deny, from {})",
                self.sources["exec-deny"]
            )));
        }
        if !self.exec_allow.contains(program) {
            return Err(LabError::Denied(format!(
                "exec of {program:?} refused: it is not on the exec allowlist ({}); allow it with --allow-exec {program}",
                self.exec_allow.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(declared) = &self.declared {
            if !declared.contains(program) {
                return Err(LabError::Denied(format!(
                    "exec of {program:?} refused: the scenario did not declare it in describe().programs ({}); \
                     a scenario runs only the programs it declares",
                    declared.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if let Some((key, _)) = env.iter().find(|(k, _)| env_key_never(k)) {
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
        if let Some((key, _)) = env
            .iter()
            .find(|(k, _)| !self.exec_env_allow.contains(k.as_str()))
        {
            return Err(LabError::Denied(format!(
                "exec of {program:?} refused: the scenario may not set {key}: it is not on the environment allowlist \
                 (policy key exec-env-allow); allow it with --allow-env {key}"
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
        if live >= self.max_processes {
            return Err(LabError::Limit(format!(
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

    /// Each key, its value as text, and where it came from; for `runner policy`.
    pub fn describe(&self) -> Vec<(&'static str, String, String)> {
        let list = |s: &BTreeSet<String>| {
            if s.is_empty() {
                "(none)".to_string()
            } else {
                s.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        let dur = |d: Duration| humantime::format_duration(d).to_string();
        let size = |b: usize| match b {
            b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
            b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
            b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
            b => format!("{b} B"),
        };
        KEYS.iter()
            .map(|&k| {
                let v = match k {
                    "exec-allow" => list(&self.exec_allow),
                    "exec-deny" => list(&self.exec_deny),
                    "exec-timeout" => dur(self.exec_timeout),
                    "exec-timeout-max" => dur(self.exec_timeout_max),
                    "exec-output-bytes" => size(self.exec_output_bytes),
                    "max-namespaces" => self.max_namespaces.to_string(),
                    "max-links" => self.max_links.to_string(),
                    "max-processes" => self.max_processes.to_string(),
                    "address-ranges" => self
                        .address_ranges
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    "run-timeout" => dur(self.run_timeout),
                    "guest-memory" => size(self.guest_memory),
                    "guest-output-bytes" => size(self.guest_output_bytes),
                    "call-bytes" => size(self.call_bytes),
                    "exec-env-allow" => list(&self.exec_env_allow),
                    "program-memory" => size(self.program_memory),
                    "scratch-bytes" => size(self.scratch_bytes),
                    "echo-bytes" => size(self.echo_bytes),
                    "describe-timeout" => dur(self.describe_timeout),
                    _ => unreachable!("every key is listed"),
                };
                (k, v, self.sources[k].clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Policy {
        Policy {
            declared: Some(
                ["ping", "ip", "nc", "cat", "iperf3"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            ..Policy::default()
        }
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
        p.check(&exec("ping", &[])).unwrap();
        p.check(&exec("ip", &[])).unwrap();
        let err = p.check(&exec("nc", &[])).unwrap_err();
        assert!(matches!(err, LabError::Denied(_)));
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
        let mut p = Policy::build(None, &flags).unwrap();
        p.declared = running().declared;
        let err = p.check(&exec("cat", &[])).unwrap_err().to_string();
        assert!(
            err.contains("denied by the policy (exec-deny, from default + flag --deny-exec)"),
            "{err}"
        );
        p.exec_deny.clear();
        p.allow_exec(["ss"]);
        let err = p.check(&exec("ss", &[])).unwrap_err().to_string();
        assert!(
            err.contains("did not declare it in describe().programs"),
            "{err}"
        );
    }

    #[test]
    fn describe_may_not_call_the_host() {
        let p = Policy::default();
        let err = p.check(&Op::Owned).unwrap_err();
        assert!(err.to_string().contains("not allowed during describe()"));
    }

    #[test]
    fn paths_are_never_programs() {
        let mut p = running();
        p.allow_exec(["/bin/sh", "../ping", "."]);
        for prog in ["/bin/sh", "../ping", "/usr/bin/ping", ".", ""] {
            let err = p.check(&exec(prog, &[])).unwrap_err();
            assert!(err.to_string().contains("bare name"), "{prog}: {err}");
        }
    }

    #[test]
    fn loader_and_path_variables_are_refused() {
        let p = running();
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
            let err = p.check(&exec("ping", &env)).unwrap_err();
            assert!(matches!(err, LabError::Denied(_)), "{key}");
        }
        let err = p
            .check(&exec("ping", &[("FOO".into(), "1".into())]))
            .unwrap_err();
        assert!(
            err.to_string().contains("allow it with --allow-env FOO"),
            "{err}"
        );
        p.exec_env_allow.insert("FOO".into());
        p.check(&exec("ping", &[("FOO".into(), "1".into())]))
            .unwrap();
        // What changes the code a program loads can never be allowed, by file or flag.
        let flags = PolicyFlags {
            allow_env: vec!["GLIBC_TUNABLES".into()],
            ..Default::default()
        };
        let err = Policy::build(None, &flags).unwrap_err();
        assert!(err.contains("no policy may allow GLIBC_TUNABLES"), "{err}");
        p.exec_env_allow.insert("LOCPATH".into());
        let env = [("LOCPATH".to_string(), "/tmp".to_string())];
        assert!(p.check(&exec("ping", &env)).is_err());
    }

    #[test]
    fn counts_sizes_and_timeouts_are_limited() {
        let p = running();
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
            live: 0,
            bytes: 0,
        };
        assert!(p
            .check(&op)
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
        assert!(p
            .check(&op)
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
        assert!(p.check(&op).unwrap_err().to_string().contains("call-bytes"));
        assert!(p
            .check(&Op::Report { bytes: 2 << 20 })
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
            p.check(&Op::Address {
                cidr: &ok.parse().unwrap(),
            })
            .unwrap();
        }
        let err = p
            .check(&Op::Address {
                cidr: &"8.8.8.8/24".parse().unwrap(),
            })
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
        let mut p = Policy::build(None, &flags).unwrap();
        p.declared = Some(BTreeSet::new());
        p.check(&Op::Address {
            cidr: &"8.8.8.8/24".parse().unwrap(),
        })
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
            max_namespaces: Some(4),
            allow_exec: vec!["ss".into()],
            ..Default::default()
        };
        let p = Policy::build(Some(&path), &flags).unwrap();
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
        let err = Policy::build(Some(&path), &PolicyFlags::default()).unwrap_err();
        assert!(err.contains("unknown field `max-namespaecs`"), "{err}");
        std::fs::write(&path, "exec-timeout = \"20m\"\n").unwrap();
        let err = Policy::build(Some(&path), &PolicyFlags::default()).unwrap_err();
        assert!(
            err.contains("exec-timeout (20m) is longer than exec-timeout-max (10m)"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(Policy::build(Some(&path), &PolicyFlags::default())
            .unwrap_err()
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
