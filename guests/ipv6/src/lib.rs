//! The seed over IPv6: two namespaces, a veth pair, fd00::1/64 and fd00::2/64, ping across.
//! Addresses are usable as soon as they are added (no duplicate address detection to wait for).

use nslab_sdk::prelude::*;

struct Ipv6;

impl Guest for Ipv6 {
    fn describe() -> Info {
        info("ipv6", "the seed tutorial over fd00::/64", &["ping"])
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Two namespaces and a veth pair");
        let ns01 = Netns::create("ns01")?;
        let ns02 = Netns::create("ns02")?;
        let (a, b) = Link::veth("ns01-veth0", &ns01, "ns02-veth0", &ns02)?;

        step("Address each end in fd00::/64 and bring them up");
        a.add_address("fd00::1/64")?;
        b.add_address("fd00::2/64")?;
        a.set_up()?;
        b.set_up()?;
        let listed = a.info()?.addresses;
        check(
            "ns01-veth0 has fd00::1/64",
            listed.iter().any(|x| x == "fd00::1/64"),
            &listed.join(" "),
        );
        let routes = ns01.routes()?;
        let onlink = routes.iter().find(|r| r.destination == "fd00::/64");
        check(
            "fd00::/64 is on-link via ns01-veth0",
            onlink.is_some_and(|r| r.device.as_deref() == Some("ns01-veth0")),
            &format!("{onlink:?}"),
        );

        step("Ping ns02 over IPv6, at once");
        let out = ns01.exec("ping", ["-6", "-c", "3", "-W", "2", "fd00::2"])?;
        let summary = out
            .line_with("packets transmitted")
            .unwrap_or_else(|| out.stderr_text());
        check(
            "ping -6 lost nothing",
            out.success() && summary.contains(" 0% packet loss"),
            &summary,
        );
        Ok(())
    }
}

export!(Ipv6);
