//! The seed tutorial as a scenario: two namespaces joined by a veth pair, 192.168.0.1/24 and
//! 192.168.0.2/24, and a ping across. Each step is the tutorial's shell command, shown beside it.

use nslab_sdk::prelude::*;

struct Seed;

impl Guest for Seed {
    fn describe() -> Info {
        info(
            "seed",
            "the ip-netns tutorial: two namespaces joined by a veth pair, ping across",
            &["ping"],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Create two namespaces (ip netns add ns01; ip netns add ns02)");
        let ns01 = Netns::create("ns01")?;
        let ns02 = Netns::create("ns02")?;

        // The tutorial's first look inside: only lo, down, no addresses.
        let inside = links(&ns01)?;
        let lo_only = inside.len() == 1
            && inside[0].name == "lo"
            && !inside[0].up
            && inside[0].addresses.is_empty();
        check(
            "a new namespace holds only lo, down, without addresses",
            lo_only,
            &describe_links(&inside),
        );

        step(
            "Connect them with a veth pair (ip link add ns01-veth0 type veth peer name ns02-veth0)",
        );
        let (veth1, veth2) = Link::veth("ns01-veth0", &ns01, "ns02-veth0", &ns02)?;

        step("Address each end (ip address add 192.168.0.1/24 / 192.168.0.2/24)");
        veth1.add_address("192.168.0.1/24")?;
        veth2.add_address("192.168.0.2/24")?;

        step("Bring the links up (ip link set ... up)");
        veth1.set_up()?;
        veth2.set_up()?;

        step("Ping ns02 from ns01 (ip netns exec ns01 ping -c 3 192.168.0.2)");
        let out = ns01.exec("ping", ["-c", "3", "192.168.0.2"])?;
        let summary = out
            .line_with("packets transmitted")
            .unwrap_or_else(|| out.stderr_text());
        check(
            "ping lost nothing",
            out.success() && summary.contains(" 0% packet loss"),
            &summary,
        );
        Ok(())
    }
}

fn describe_links(links: &[LinkInfo]) -> String {
    links
        .iter()
        .map(|l| {
            format!(
                "{} ({}, {})",
                l.name,
                l.kind,
                if l.up { "UP" } else { "DOWN" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

export!(Seed);
