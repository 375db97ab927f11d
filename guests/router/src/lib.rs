//! Two subnets joined by a router: h1 (10.0.1.2/24) -- r -- h2 (10.0.2.2/24), forwarding on in
//! r, each host's default route via r. The hosts ping each other, and the TTL shows one hop.

use nslab_sdk::prelude::*;

struct Router;

impl Guest for Router {
    fn describe() -> Info {
        info(
            "router",
            "two subnets joined by a router namespace; hosts ping across it",
            &["ping"],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Three namespaces: h1, the router r, h2");
        let h1 = Netns::create("h1")?;
        let r = Netns::create("r")?;
        let h2 = Netns::create("h2")?;

        step("Wire h1 and h2 to r, one subnet each");
        let (h1_eth, r_eth1) = Link::veth("eth0", &h1, "eth1", &r)?;
        let (h2_eth, r_eth2) = Link::veth("eth0", &h2, "eth2", &r)?;
        h1_eth.add_address("10.0.1.2/24")?;
        r_eth1.add_address("10.0.1.1/24")?;
        h2_eth.add_address("10.0.2.2/24")?;
        r_eth2.add_address("10.0.2.1/24")?;
        for l in [&h1_eth, &r_eth1, &h2_eth, &r_eth2] {
            l.set_up()?;
        }

        step("Make r a router and route each host through it");
        r.set_forwarding(true)?;
        h1.add_route("default", Some("10.0.1.1"), None)?;
        h2.add_route("default", Some("10.0.2.1"), None)?;
        let routes = h1.routes()?;
        let default = routes.iter().find(|rt| rt.destination == "default");
        check(
            "h1's default route goes via 10.0.1.1 on eth0",
            default.is_some_and(|d| {
                d.gateway.as_deref() == Some("10.0.1.1") && d.device.as_deref() == Some("eth0")
            }),
            &format!("{default:?}"),
        );

        step("Ping across the router");
        let out = h1.exec("ping", ["-c", "3", "-W", "2", "10.0.2.2"])?;
        let summary = out
            .line_with("packets transmitted")
            .unwrap_or_else(|| out.stderr_text());
        check(
            "h1 reaches h2 with no loss",
            out.success() && summary.contains(" 0% packet loss"),
            &summary,
        );
        let ttl = out.line_with("ttl=").unwrap_or_default();
        check(
            "the path crosses one router (TTL 64 - 1 = 63)",
            ttl.contains("ttl=63"),
            &ttl,
        );
        let back = h2.exec("ping", ["-c", "1", "-W", "2", "10.0.1.2"])?;
        check(
            "h2 reaches h1",
            back.success(),
            &back.line_with("packets transmitted").unwrap_or_default(),
        );

        step("Without forwarding the router drops it");
        r.set_forwarding(false)?;
        let out = h1.exec("ping", ["-c", "1", "-W", "1", "10.0.2.2"])?;
        check(
            "no forwarding, no reply",
            !out.success(),
            &out.line_with("packets transmitted").unwrap_or_default(),
        );
        Ok(())
    }
}

export!(Router);
