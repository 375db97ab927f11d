//! Parsing of the addresses a scenario passes as strings: CIDR prefixes and MAC addresses.

use std::net::IpAddr;

use crate::error::{LabError, LabResult};

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
            return Err(LabError::Invalid(format!(
                "{what} {s:?} has no prefix length: write it as ADDRESS/PREFIX, e.g. {example}"
            )));
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            LabError::Invalid(format!(
                "{what} {s:?}: {addr:?} is not an IPv4 or IPv6 address"
            ))
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match prefix.parse() {
            Ok(p) if p <= max && !prefix.starts_with('+') => Ok(Cidr { addr, prefix: p }),
            _ => Err(LabError::Invalid(format!(
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
            return Err(LabError::Invalid(format!(
                "address {s:?}: {} cannot be assigned to an interface (unspecified or multicast)",
                cidr.addr
            )));
        }
        Ok(cidr)
    }
}

/// Parse a MAC address "02:00:00:00:00:01": six hex octets, unicast, not all zero (the kernel
/// refuses the others with a bare EADDRNOTAVAIL; this says why).
pub fn parse_mac(s: &str) -> LabResult<[u8; 6]> {
    let invalid = |why: &str| LabError::Invalid(format!("MAC address {s:?} {why}"));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!("x/1".parse::<Cidr>(), Err(LabError::Invalid(_))));
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
}
