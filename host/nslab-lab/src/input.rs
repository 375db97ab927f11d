//! Everything a scenario passes in, parsed once, here, into typed values: names, interface
//! addresses, MAC addresses, routes, program arguments and environment. The WIT layer (iface/)
//! parses; the policy and the lab see only these types, so no layer parses a string again.
//! A value that does not parse is `error.invalid` with a sentence that shows the right form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{LabError, LabResult};

/// Longest name the kernel accepts for an interface (IFNAMSIZ - 1).
pub const MAX_NAME_LEN: usize = 15;

/// Check a namespace or link name: 1-15 characters of `[A-Za-z0-9_.-]`, not `.` or `..`.
/// `what` is "namespace" or "link", for the message.
fn validate(what: &str, name: &str) -> LabResult<()> {
    if name.is_empty() {
        return Err(LabError::invalid(format!(
            "{what} name is empty: use 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_.-]"
        )));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(LabError::invalid(format!(
            "{what} name {name:?} is {} characters long: the limit is {MAX_NAME_LEN} (the kernel's IFNAMSIZ)",
            name.chars().count()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(LabError::invalid(format!(
            "{what} name {name:?} contains {bad:?}: only [A-Za-z0-9_.-] are allowed"
        )));
    }
    if name == "." || name == ".." {
        return Err(LabError::invalid(format!(
            "{what} name {name:?} is reserved: pick a name that is not \".\" or \"..\""
        )));
    }
    Ok(())
}

/// A namespace or link name that passed [`validate`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// `what` is "namespace" or "link", for the message.
    pub fn parse(what: &str, name: &str) -> LabResult<Name> {
        validate(what, name)?;
        Ok(Name(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An interface address with its prefix length, as `ip address add` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Parse "ADDRESS/PREFIX" with the prefix in range for the address family; `what` names the
    /// value in messages ("address", "route destination"). Interface addresses and route
    /// destinations add their own rules on top.
    pub fn parse_prefixed(s: &str, what: &str, example: &str) -> LabResult<Cidr> {
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(LabError::invalid(format!(
                "{what} {s:?} has no prefix length: write it as ADDRESS/PREFIX, e.g. {example}"
            )));
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            LabError::invalid(format!(
                "{what} {s:?}: {addr:?} is not an IPv4 or IPv6 address"
            ))
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match prefix.parse() {
            Ok(p) if p <= max && !prefix.starts_with('+') => Ok(Cidr { addr, prefix: p }),
            _ => Err(LabError::invalid(format!(
                "{what} {s:?}: prefix length {prefix:?} must be a number from 0 to {max}"
            ))),
        }
    }
}

/// An interface address, as `ip address add` takes it.
impl std::str::FromStr for Cidr {
    type Err = LabError;

    fn from_str(s: &str) -> LabResult<Cidr> {
        let cidr = Cidr::parse_prefixed(s, "address", "192.168.0.1/24 or fd00::1/64")?;
        if cidr.addr.is_unspecified() || cidr.addr.is_multicast() {
            return Err(LabError::invalid(format!(
                "address {s:?}: {} cannot be assigned to an interface (unspecified or multicast)",
                cidr.addr
            )));
        }
        Ok(cidr)
    }
}

/// Parse a MAC address "02:00:00:00:00:01": six hex octets, unicast, not all zero (the kernel
/// refuses the others with a bare EADDRNOTAVAIL; this says why).
fn parse_mac(s: &str) -> LabResult<[u8; 6]> {
    let invalid = |why: &str| LabError::invalid(format!("MAC address {s:?} {why}"));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(invalid(
            "must be six hex octets separated by ':', e.g. 02:00:00:00:00:01",
        ));
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(invalid(
                "must be six hex octets separated by ':', e.g. 02:00:00:00:00:01",
            ));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| {
            invalid("must be six hex octets separated by ':', e.g. 02:00:00:00:00:01")
        })?;
    }
    if mac[0] & 1 == 1 {
        return Err(invalid("is a multicast address (lowest bit of the first octet set): an interface needs a unicast one"));
    }
    if mac == [0; 6] {
        return Err(invalid("is all zeros: an interface needs a real address"));
    }
    Ok(mac)
}

/// Format a hardware address the way `ip link` prints it.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A unicast MAC address for an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl std::str::FromStr for Mac {
    type Err = LabError;

    fn from_str(s: &str) -> LabResult<Mac> {
        parse_mac(s).map(Mac)
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_mac(&self.0))
    }
}

/// A route as a scenario writes it, parsed; the lab resolves the device in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The destination network (0.0.0.0/0 or ::/0 for a default route).
    pub destination: Cidr,
    pub gateway: Option<IpAddr>,
    pub device: Option<Name>,
}

impl RouteSpec {
    pub fn parse(
        destination: &str,
        gateway: Option<&str>,
        device: Option<&str>,
    ) -> LabResult<RouteSpec> {
        let gateway = gateway
            .map(|g| {
                g.parse().map_err(|_| {
                    LabError::invalid(format!("route gateway {g:?} is not an IP address"))
                })
            })
            .transpose()?;
        Ok(RouteSpec {
            destination: parse_destination(destination, gateway)?,
            gateway,
            device: device.map(|d| Name::parse("link", d)).transpose()?,
        })
    }
}

/// A route's destination as the runner writes it, in narration and in `routes()` alike: the
/// IPv4 default is "default", the IPv6 one "::/0" (which `route.remove` takes back without a
/// gateway, where "default" would mean IPv4).
pub fn destination_text(c: &Cidr) -> String {
    if c.prefix == 0 && c.addr.is_ipv4() {
        "default".to_string()
    } else {
        c.to_string()
    }
}

/// Parse a destination as the WIT contract writes it: "10.0.2.0/24", "default", "::/0".
/// "default" is IPv4 unless the gateway is IPv6. Host bits must be zero, as `ip route` requires.
fn parse_destination(dest: &str, gateway: Option<IpAddr>) -> LabResult<Cidr> {
    if dest == "default" {
        let v6 = matches!(gateway, Some(IpAddr::V6(_)));
        let addr = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        return Ok(Cidr { addr, prefix: 0 });
    }
    if !dest.contains('/') {
        return Err(LabError::invalid(format!(
            "route destination {dest:?} needs a prefix length (10.0.2.0/24) or is \"default\""
        )));
    }
    let Cidr { addr, prefix } = Cidr::parse_prefixed(dest, "route destination", "10.0.2.0/24")?;
    let net = ipnet::IpNet::new(addr, prefix)
        .map_err(|e| LabError::invalid(format!("route destination {dest:?}: {e}")))?;
    if net.trunc().addr() != addr {
        return Err(LabError::invalid(format!(
            "route destination {dest:?} has host bits set: did you mean {}?",
            net.trunc()
        )));
    }
    Ok(Cidr { addr, prefix })
}

/// A path in a namespace's box, as a scenario names a file: absolute, no `.` or `..` parts, not
/// under /proc, /sys or /dev (the kernel's views, not files), at most 4096 bytes; kept with its
/// slashes tidied ("/etc//bird/" is "/etc/bird").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePath(String);

impl FilePath {
    pub fn parse(path: &str) -> LabResult<FilePath> {
        let invalid = |why: &str| Err(LabError::invalid(format!("file path {path:?} {why}")));
        if !path.starts_with('/') {
            return invalid("is not absolute: write it from the root, like /etc/bird/bird.conf");
        }
        if path.len() > 4096 || path.contains('\0') {
            return invalid("is longer than 4096 bytes or contains a NUL byte");
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return invalid("has a . or .. part: name the file itself");
        }
        match parts.first() {
            None => invalid("names no file"),
            Some(&top @ ("proc" | "sys" | "dev")) => invalid(&format!(
                "is under /{top}, which shows the kernel, not files a scenario may give"
            )),
            // A file there would replace a program the policy allows by name with the
            // scenario's own bytes.
            Some(&top @ ("usr" | "bin" | "sbin" | "lib" | "lib32" | "lib64" | "libx32" | "nslab")) => {
                invalid(&format!(
                    "is under /{top}, where the programs are: a scenario runs the programs the operator allowed, never files of its own"
                ))
            }
            Some(_) => Ok(FilePath(format!("/{}", parts.join("/")))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FilePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A program's arguments: any text but NUL, which no C program could receive.
pub fn arguments(program: &str, args: Vec<String>) -> LabResult<Vec<String>> {
    if let Some(arg) = args.iter().find(|a| a.contains('\0')) {
        return Err(LabError::invalid(format!(
            "run {program}: argument {arg:?} contains a NUL byte"
        )));
    }
    Ok(args)
}

/// A program's environment: names non-empty, without '=' or NUL; values without NUL. Which
/// names may be set at all is the policy's to say.
pub fn environment(env: Vec<(String, String)>) -> LabResult<Vec<(String, String)>> {
    if let Some((key, _)) = env
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(LabError::invalid(format!(
            "environment variable name {key:?} is not valid: it must be non-empty, without '=' or NUL"
        )));
    }
    if let Some((key, _)) = env.iter().find(|(_, v)| v.contains('\0')) {
        return Err(LabError::invalid(format!(
            "environment variable {key}: its value contains a NUL byte"
        )));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn accepts_the_seed_names() {
        for n in [
            "ns01",
            "ns02",
            "ns01-veth0",
            "a",
            "A_b.c-9",
            "fifteen-chars-x",
        ] {
            validate("link", n).unwrap();
        }
    }

    #[test]
    fn rejects_sixteen_characters_naming_the_limit() {
        let err = validate("link", "sixteen-chars-xx").unwrap_err();
        assert_eq!(
            err.to_string(),
            "link name \"sixteen-chars-xx\" is 16 characters long: the limit is 15 (the kernel's IFNAMSIZ)"
        );
    }

    #[test]
    fn rejects_bad_characters_and_reserved_names() {
        for n in ["a b", "a/b", "ns:1", "é", "a\0b", "x\n"] {
            let err = validate("namespace", n).unwrap_err();
            assert!(err.kind() == ErrorKind::Invalid, "{n:?}");
            assert!(
                err.to_string().contains("only [A-Za-z0-9_.-] are allowed"),
                "{err}"
            );
        }
        assert!(validate("namespace", "")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(validate("namespace", "..")
            .unwrap_err()
            .to_string()
            .contains("reserved"));
    }

    #[test]
    fn parses_v4_and_v6() {
        let c: Cidr = "192.168.0.1/24".parse().unwrap();
        assert_eq!(c.to_string(), "192.168.0.1/24");
        let c: Cidr = "fd00::1/64".parse().unwrap();
        assert_eq!((c.addr.is_ipv6(), c.prefix), (true, 64));
        assert_eq!("10.0.0.1/32".parse::<Cidr>().unwrap().prefix, 32);
    }

    #[test]
    fn rejects_bad_addresses_with_a_reason() {
        let msg = |s: &str| s.parse::<Cidr>().unwrap_err().to_string();
        assert!(msg("192.168.0.1").contains("has no prefix length"));
        assert!(msg("192.168.0.256/24").contains("is not an IPv4 or IPv6 address"));
        assert!(msg("192.168.0.1/33").contains("must be a number from 0 to 32"));
        assert!(msg("fd00::1/129").contains("from 0 to 128"));
        assert!(msg("10.0.0.1/+8").contains("must be a number"));
        assert!(msg("10.0.0.1/").contains("must be a number"));
        assert!(msg("0.0.0.0/0").contains("cannot be assigned"));
        assert!(msg("224.0.0.1/4").contains("cannot be assigned"));
        assert!(
            "x/1".parse::<Cidr>().as_ref().err().map(LabError::kind) == Some(ErrorKind::Invalid)
        );
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert_eq!(format_mac(&[2, 0, 0, 0, 0, 10]), "02:00:00:00:00:0a");
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .to_string()
            .contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00")
            .unwrap_err()
            .to_string()
            .contains("all zeros"));
        for bad in [
            "02:00:00:00:00",
            "02-00-00-00-00-01",
            "2:0:0:0:0:1",
            "zz:00:00:00:00:01",
            "",
        ] {
            assert!(
                parse_mac(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("six hex octets"),
                "{bad}"
            );
        }
    }

    #[test]
    fn routes_parse_once_into_typed_values() {
        let r = RouteSpec::parse("default", Some("fd00::1"), Some("eth0")).unwrap();
        assert_eq!(destination_text(&r.destination), "::/0");
        assert_eq!(r.device.as_ref().map(Name::as_str), Some("eth0"));
        let r = RouteSpec::parse("default", None, None).unwrap();
        assert_eq!(destination_text(&r.destination), "default");
        let msg = |d: &str, g: Option<&str>, dev: Option<&str>| {
            RouteSpec::parse(d, g, dev).unwrap_err().to_string()
        };
        assert!(msg("10.0.2.1/24", None, None).contains("did you mean 10.0.2.0/24?"));
        assert!(msg("10.0.2.0", None, None).contains("needs a prefix length"));
        assert!(msg("default", Some("gw"), None).contains("is not an IP address"));
        assert!(msg("default", None, Some("sixteen-chars-xx")).contains("the limit is 15"));
    }

    #[test]
    fn file_paths_are_absolute_plain_and_out_of_the_kernels_views() {
        assert_eq!(
            FilePath::parse("/etc//bird/bird.conf").unwrap().as_str(),
            "/etc/bird/bird.conf"
        );
        for (bad, why) in [
            ("etc/hosts", "is not absolute"),
            ("/etc/../root/x", "has a . or .. part"),
            ("/proc/self/mem", "is under /proc"),
            ("/sys/kernel/x", "is under /sys"),
            ("//dev/null", "is under /dev"),
            ("/usr/bin/ping", "where the programs are"),
            ("/lib/x86_64-linux-gnu/libc.so.6", "where the programs are"),
            ("/nslab/bin/sut", "where the programs are"),
            ("/", "names no file"),
            ("/tmp/a\0b", "NUL"),
        ] {
            let err = FilePath::parse(bad).unwrap_err();
            assert!(err.kind() == ErrorKind::Invalid, "{bad}");
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn arguments_and_environment_are_checked_for_what_no_program_can_take() {
        assert!(arguments("ping", vec!["a\0b".into()]).is_err());
        assert!(environment(vec![("A=B".into(), String::new())]).is_err());
        assert!(environment(vec![("A".into(), "x\0".into())]).is_err());
        assert!(environment(vec![("LANG".into(), "C".into())]).is_ok());
    }

    #[test]
    fn destinations() {
        assert_eq!(
            parse_destination("default", None).unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            parse_destination("default", Some("fd00::1".parse().unwrap()))
                .unwrap()
                .to_string(),
            "::/0"
        );
        assert_eq!(parse_destination("10.0.2.0/24", None).unwrap().prefix, 24);
        assert_eq!(parse_destination("::/0", None).unwrap().to_string(), "::/0");
        let err = parse_destination("10.0.2.1/24", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host bits set: did you mean 10.0.2.0/24?"),
            "{err}"
        );
        assert!(parse_destination("10.0.2.0", None)
            .unwrap_err()
            .to_string()
            .contains("needs a prefix length"));
        assert!(parse_destination("10.0.2.0/33", None).is_err());
        assert!(parse_destination("nowhere/8", None).is_err());
    }
}
