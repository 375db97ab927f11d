//! Where a policy's values come from: the defaults, then an optional TOML file (`--policy FILE`),
//! then flags, each value remembering its source (`runner policy` prints them).
//!
//! Every key is declared once, in [`keys!`] below: its field, type, default, kind, file key, and
//! flag with its help. From that one list come the [`Policy`] fields, the file's schema (unknown
//! keys are errors that name them), the flags (`PolicyFlags`, which the CLI flattens into each
//! command), provenance, and `describe`. A new key is one entry there plus its line in
//! docs/policy.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::PolicyError;

use super::{env_key_never, DEFAULT_ADDRESS_RANGES, DEFAULT_ENV_ALLOW, DEFAULT_EXEC_ALLOW};

/// How each kind of value is read from a file, changed by a flag, and shown.
pub(super) mod kinds {
    /// A number of things (namespaces, links, processes).
    pub mod count {
        pub type File = usize;
        pub type Flag = Option<usize>;
        pub fn from_file(_key: &str, v: File) -> Result<usize, String> {
            Ok(v)
        }
        pub fn apply(value: &mut usize, flag: &Flag) -> bool {
            flag.map(|v| *value = v).is_some()
        }
        pub fn show(v: &usize) -> String {
            v.to_string()
        }
    }

    /// A size in bytes: a number, or a string with a unit in a file ("64MiB").
    pub mod bytes {
        pub type File = super::super::ByteSize;
        pub type Flag = Option<usize>;
        pub fn from_file(_key: &str, v: File) -> Result<usize, String> {
            Ok(v.0)
        }
        pub fn apply(value: &mut usize, flag: &Flag) -> bool {
            flag.map(|v| *value = v).is_some()
        }
        pub fn show(&b: &usize) -> String {
            match b {
                b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
                b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
                b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
                b => format!("{b} B"),
            }
        }
    }

    /// A duration, written like "30s" or "5m".
    pub mod time {
        use std::time::Duration;
        pub type File = String;
        pub type Flag = Option<Duration>;
        pub fn from_file(key: &str, v: File) -> Result<Duration, String> {
            humantime::parse_duration(&v)
                .map_err(|e| format!("{key} = {v:?}: {e} (write it like 30s, 5m or 1h)"))
        }
        pub fn apply(value: &mut Duration, flag: &Flag) -> bool {
            flag.map(|v| *value = v).is_some()
        }
        pub fn show(d: &Duration) -> String {
            humantime::format_duration(*d).to_string()
        }
    }

    /// A set of names: a file's list replaces the default, a flag's adds to it.
    pub mod names {
        use std::collections::BTreeSet;
        pub type File = Vec<String>;
        pub type Flag = Vec<String>;
        pub fn from_file(_key: &str, v: File) -> Result<BTreeSet<String>, String> {
            Ok(v.into_iter().collect())
        }
        pub fn apply(value: &mut BTreeSet<String>, flag: &Flag) -> bool {
            value.extend(flag.iter().cloned());
            !flag.is_empty()
        }
        pub fn show(s: &BTreeSet<String>) -> String {
            if s.is_empty() {
                "(none)".to_string()
            } else {
                s.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        }
    }

    /// A list of address ranges: a file's list replaces the default, a flag's adds to it.
    pub mod nets {
        use ipnet::IpNet;
        pub type File = Vec<IpNet>;
        pub type Flag = Vec<IpNet>;
        pub fn from_file(_key: &str, v: File) -> Result<Vec<IpNet>, String> {
            Ok(v)
        }
        pub fn apply(value: &mut Vec<IpNet>, flag: &Flag) -> bool {
            value.extend(flag.iter().cloned());
            !flag.is_empty()
        }
        pub fn show(v: &[IpNet]) -> String {
            v.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Declares every key once; see the module doc. Each entry is one line of help (`///`), then
/// `field: Type = default, kind, "file-key", flag FLAG_FIELD: FlagType [clap attributes];`
/// (a key without a flag is set in a file only).
macro_rules! keys {
    ($(
        #[doc = $doc:literal]
        $field:ident : $ty:ty = $default:expr, $kind:ident, $key:literal
            $(, flag $flag:ident : $fwrap:ident < $finner:ty > [$($arg:tt)*])? ;
    )*) => {
        /// The run's capability policy: every value, and where each came from.
        #[derive(Debug, Clone)]
        pub struct Policy {
            $( #[doc = $doc] pub $field: $ty, )*
            /// Where each key's value came from: "default", "file PATH", "flag --x".
            pub sources: BTreeMap<&'static str, String>,
            /// Programs allowed by path (an exec-allow entry with a `/`): name -> the file,
            /// resolved to its canonical path when the policy was built.
            pub exec_paths: BTreeMap<String, std::path::PathBuf>,
        }

        impl Default for Policy {
            fn default() -> Self {
                Policy {
                    $( $field: $default, )*
                    sources: KEYS.iter().map(|k| (*k, "default".to_string())).collect(),
                    exec_paths: BTreeMap::new(),
                }
            }
        }

        /// Every key, in the order `runner policy` prints them.
        pub const KEYS: &[&str] = &[$($key),*];

        /// A policy file: every key optional; unknown keys are an error that names them.
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        pub struct PolicyFile {
            $( pub $field: Option<kinds::$kind::File>, )*
        }

        /// The policy flags of every command that loads a scenario (see docs/policy.md).
        #[derive(Debug, Default, Clone)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[cfg_attr(feature = "cli", command(next_help_heading = "Policy (defaults, then --policy FILE, then these flags; see `runner policy`)"))]
        pub struct PolicyFlags {
            /// A policy file (TOML) with any of the keys in docs/policy.md.
            #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
            pub policy: Option<std::path::PathBuf>,
            $($(
                #[doc = $doc]
                #[cfg_attr(feature = "cli", arg($($arg)*))]
                pub $flag: $fwrap<$finner>,
            )?)*
        }

        impl Policy {
            fn apply_file(&mut self, f: PolicyFile, src: &str) -> Result<(), PolicyError> {
                $(
                    if let Some(v) = f.$field {
                        self.$field = kinds::$kind::from_file($key, v).map_err(PolicyError::Value)?;
                        self.sources.insert($key, src.to_string());
                    }
                )*
                Ok(())
            }

            fn apply_flags(&mut self, f: &PolicyFlags) {
                $($(
                    if kinds::$kind::apply(&mut self.$field, &f.$flag) {
                        let flag = format!("flag --{}", stringify!($flag).replace('_', "-"));
                        // A flag that adds to a list keeps what the list came from.
                        let entry = self.sources.entry($key).or_default();
                        *entry = match stringify!($kind) {
                            "names" | "nets" => format!("{entry} + {flag}"),
                            _ => flag,
                        };
                    }
                )?)*
            }

            /// Each key, its value as text, and where it came from; for `runner policy`.
            pub fn describe(&self) -> Vec<(&'static str, String, String)> {
                vec![$(
                    ($key, kinds::$kind::show(&self.$field), self.sources[$key].clone()),
                )*]
            }
        }
    };
}

keys! {
    /// Also allow these programs: bare names, found in the system PATH, or files by path.
    exec_allow: BTreeSet<String> = strings(DEFAULT_EXEC_ALLOW), names, "exec-allow",
        flag allow_exec: Vec<String> [long, value_name = "PROG[,PROG...]", value_delimiter = ','];
    /// Never allow these programs, even if allowed elsewhere (deny wins).
    exec_deny: BTreeSet<String> = BTreeSet::new(), names, "exec-deny",
        flag deny_exec: Vec<String> [long, value_name = "PROG[,PROG...]", value_delimiter = ','];
    /// Time limit of one program when the scenario gives none (e.g. 30s).
    exec_timeout: Duration = Duration::from_secs(60), time, "exec-timeout",
        flag exec_timeout: Option<Duration> [long, value_name = "DURATION", value_parser = humantime::parse_duration];
    /// The longest time limit a scenario may ask for one program.
    exec_timeout_max: Duration = Duration::from_secs(600), time, "exec-timeout-max";
    /// Bytes kept of each of a program's stdout and stderr (e.g. 64KiB).
    exec_output_bytes: usize = 1 << 20, bytes, "exec-output-bytes",
        flag exec_output: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// How many namespaces a run may hold at once.
    max_namespaces: usize = 64, count, "max-namespaces",
        flag max_namespaces: Option<usize> [long, value_name = "N"];
    /// How many links a run may hold at once, whoever made them (deleted ones no longer count).
    max_links: usize = 256, count, "max-links",
        flag max_links: Option<usize> [long, value_name = "N"];
    /// How many processes and threads a run's programs may have at once, all together.
    max_processes: usize = 64, count, "max-processes",
        flag max_processes: Option<usize> [long, value_name = "N"];
    /// Also let the scenario assign addresses in these ranges.
    address_ranges: Vec<IpNet> = DEFAULT_ADDRESS_RANGES
            .iter()
            .map(|r| r.parse().expect("valid default range"))
            .collect(), nets, "address-ranges",
        flag allow_addresses: Vec<IpNet> [long, value_name = "CIDR[,CIDR...]", value_delimiter = ','];
    /// Stop the scenario and remove its lab if the whole run takes longer (e.g. 30s, 5m).
    run_timeout: Duration = Duration::from_secs(600), time, "run-timeout",
        flag timeout: Option<Duration> [long, value_name = "DURATION", value_parser = humantime::parse_duration];
    /// The most memory the scenario itself may use (e.g. 64MiB).
    guest_memory: usize = 256 << 20, bytes, "guest-memory",
        flag guest_memory: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// The most the scenario may write to its stdout, stderr and report together (e.g. 1MiB).
    guest_output_bytes: usize = 1 << 20, bytes, "guest-output-bytes",
        flag guest_output: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// The most data one host call may carry (arguments, input, report text).
    call_bytes: usize = 1 << 20, bytes, "call-bytes",
        flag max_call_data: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// Also let the scenario set these environment variables for its programs.
    exec_env_allow: BTreeSet<String> = strings(DEFAULT_ENV_ALLOW), names, "exec-env-allow",
        flag allow_env: Vec<String> [long, value_name = "VAR[,VAR...]", value_delimiter = ','];
    /// The most memory the run's programs may use together (e.g. 512MiB).
    program_memory: usize = 1 << 30, bytes, "program-memory",
        flag program_memory: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// The most the programs of one lab namespace may write to /tmp, /run, /var/tmp, /dev/shm.
    scratch_bytes: usize = 64 << 20, bytes, "scratch-bytes",
        flag scratch: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// The most program output the run echoes to the terminal (e.g. 4MiB).
    echo_bytes: usize = 1 << 20, bytes, "echo-bytes",
        flag echo_output: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// The largest file a scenario may give a namespace or read back from it (e.g. 64MiB).
    file_bytes: usize = 16 << 20, bytes, "file-bytes",
        flag file_bytes: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// How many files a run's scenario may give its namespaces.
    max_files: usize = 256, count, "max-files",
        flag max_files: Option<usize> [long, value_name = "N"];
    /// What a scenario may save into its report, all files together (report.attach; e.g. 64MiB).
    attach_bytes: usize = 16 << 20, bytes, "attach-bytes",
        flag attach_bytes: Option<usize> [long, value_name = "SIZE", value_parser = parse_size];
    /// Time limit of the scenario's describe(), in `run` and `inspect` (e.g. 5s).
    describe_timeout: Duration = Duration::from_secs(5), time, "describe-timeout",
        flag describe_timeout: Option<Duration> [long, value_name = "DURATION", value_parser = humantime::parse_duration];
}

fn strings(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
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

impl PolicyFlags {
    /// The flags with surrounding spaces and empty items of lists dropped (`--allow-exec a,,b`).
    fn trimmed(&self) -> PolicyFlags {
        let trim = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        };
        PolicyFlags {
            allow_exec: trim(&self.allow_exec),
            deny_exec: trim(&self.deny_exec),
            allow_env: trim(&self.allow_env),
            ..self.clone()
        }
    }
}

impl Policy {
    /// The effective policy: defaults, then the file (`flags.policy`), then the flags.
    pub fn build(flags: &PolicyFlags) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        if let Some(path) = &flags.policy {
            p.apply_file(read_file(path)?, &format!("file {}", path.display()))?;
        }
        p.apply_flags(&flags.trimmed());
        p.resolve_exec_paths()?;
        if let Some(key) = p.exec_env_allow.iter().find(|k| env_key_never(k)) {
            return Err(PolicyError::Conflict(format!(
                "exec-env-allow ({}) lists {key}: no policy may allow {key}, for it changes which code or program runs",
                p.sources["exec-env-allow"]
            )));
        }
        if p.exec_timeout > p.exec_timeout_max {
            return Err(PolicyError::Conflict(format!(
                "exec-timeout ({}) is longer than exec-timeout-max ({}): raise exec-timeout-max in the policy file",
                humantime::format_duration(p.exec_timeout),
                humantime::format_duration(p.exec_timeout_max)
            )));
        }
        Ok(p)
    }
}

impl Policy {
    /// Turn each exec-allow entry that is a path into its name, remembering the file: the
    /// program under test, named by the operator (`--allow-exec ./target/release/sut`). The file
    /// is found now, so a later change of the working directory or a symlink changes nothing.
    fn resolve_exec_paths(&mut self) -> Result<(), PolicyError> {
        use std::os::unix::fs::PermissionsExt;
        let paths: Vec<String> = self
            .exec_allow
            .iter()
            .filter(|p| p.contains('/'))
            .cloned()
            .collect();
        for given in paths {
            self.exec_allow.remove(&given);
            let program = |why: String, source: Option<std::io::Error>| PolicyError::Program {
                given: given.clone(),
                why,
                source,
            };
            let file = std::fs::canonicalize(&given)
                .map_err(|e| program(format!("cannot find that file: {e}"), Some(e)))?;
            let meta = std::fs::metadata(&file).map_err(|e| program(e.to_string(), Some(e)))?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(program(
                    format!("{} is not an executable file", file.display()),
                    None,
                ));
            }
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if nslab_lab::input::Name::parse("program", &name).is_err() {
                return Err(program(
                    format!("its file name {name:?} cannot be a program name (1-15 of [A-Za-z0-9_.-]): rename or link it"),
                    None,
                ));
            }
            if self.exec_allow.contains(&name) || self.exec_paths.contains_key(&name) {
                return Err(program(
                    format!("a program named {name} is already allowed; a scenario runs programs by name, so each name may mean one file"),
                    None,
                ));
            }
            self.exec_allow.insert(name.clone());
            self.exec_paths.insert(name, file);
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<PolicyFile, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| PolicyError::Parse {
        path: path.to_path_buf(),
        source,
    })
}
