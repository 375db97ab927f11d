//! FRR the containerlab way: three routers in a ring with a PC on each, interfaces named
//! `eth1`-`eth3` as containerlab names them, one integrated `frr.conf` a router (in
//! `configs/`, given unchanged with `write-file`), daemons started without a configuration of
//! their own and configured with `vtysh -b`; readiness from each daemon's vty socket. zebra sets
//! the routers' addresses from `frr.conf`, not the scenario: the checks read the kernel.
//!
//! ```text
//!   pc1 -- router1 ---eth1--- router2 -- pc2     router1-router2 10.0.12.0/24
//!            eth2 \           / eth2             router1-router3 10.0.13.0/24
//!                  \         /                   router2-router3 10.0.23.0/24
//!              eth1 router3 -- pc3               pcN 192.168.N.0/24 (routerN .1 on eth3)
//! ```
//!
//! `runner run --allow-exec /usr/lib/frr/zebra,/usr/lib/frr/ospfd,vtysh,install,ping frr_integrated.wasm`
//!
//! `-- broken` gives router3 a hello interval on eth1 that router1 does not share, as a typo
//! in a configuration would: router1 and router3 never become neighbours, and the checks of
//! the ring fail (docs/debugging.md steps into that lab to find out why).

use std::time::Duration;

use nslab_sdk::prelude::*;
use nslab_sdk::RouteDetail;

const CONFIGS: [&str; 3] = [
    include_str!("../configs/router1.conf"),
    include_str!("../configs/router2.conf"),
    include_str!("../configs/router3.conf"),
];

/// vtysh warns on every call without one; `service integrated-vtysh-config` is what
/// containerlab's FRR image has.
const VTYSH_CONF: &str = "service integrated-vtysh-config\n";

/// The router links, containerlab style: (a, its interface, b, its interface).
const RING: [(usize, &str, usize, &str); 3] = [
    (1, "eth1", 2, "eth1"),
    (1, "eth2", 3, "eth1"),
    (2, "eth2", 3, "eth2"),
];

struct FrrIntegrated;

/// Connect `a`'s `a_if` to `b`'s `b_if` with a veth pair, both ends up.
fn wire(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<(), Error> {
    let (x, y) = Link::veth(a_if, a, b_if, b)?;
    x.set_up()?;
    y.set_up()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Start zebra and ospfd without a configuration of their own, each once the one before it
/// answers on its vty socket, then load the integrated configuration into both.
fn start_frr(router: &Netns) -> Result<Vec<Process>, Error> {
    let made = router.exec("install", ["-d", "-o", "frr", "-g", "frr", "/run/frr"])?;
    ensure_ok(&made, "install -d /run/frr")?;
    let common = ["-z", "/run/frr/zserv.api", "--vty_socket", "/run/frr"];
    let mut daemons = Vec::new();
    for daemon in ["zebra", "ospfd"] {
        let pid = format!("/run/frr/{daemon}.pid");
        daemons.push(router.spawn(daemon, ["-i", pid.as_str()].into_iter().chain(common))?);
        // Ready when vtysh can talk to it: a pid file comes earlier, and `vtysh -b` then
        // fails with "failed to connect to any daemons".
        router.wait_until_ok(
            Cmd::new("vtysh", ["-d", daemon, "-c", "show version"]),
            secs(10),
        )?;
    }
    let booted = router.exec("vtysh", ["-b"])?;
    ensure_ok(&booted, "vtysh -b")?;
    Ok(daemons)
}

fn ensure_ok(out: &Output, what: &str) -> Result<(), Error> {
    match out.success() {
        true => Ok(()),
        false => Err(Error::Os(format!(
            "{what}: {}{}",
            out.stdout_text().trim(),
            out.stderr_text().trim()
        ))),
    }
}

/// Router `r`'s route to `destination` learned by OSPF, if it has one.
fn ospf_route(r: &Netns, destination: &str) -> Result<Option<RouteDetail>, Error> {
    Ok(r.route_details()?
        .into_iter()
        .find(|d| d.destination == destination && d.protocol == "ospf"))
}

fn ping(from: &Netns, to: &str) -> Result<(bool, String), Error> {
    let out = from.exec("ping", ["-c", "2", "-i", "0.2", "-W", "2", to])?;
    let ttl = out
        .stdout_text()
        .split_whitespace()
        .find(|w| w.starts_with("ttl="))
        .unwrap_or("ttl=?")
        .to_string();
    Ok((out.success(), ttl))
}

impl Guest for FrrIntegrated {
    fn describe() -> Info {
        info(
            "frr-integrated",
            "FRR as containerlab runs it: one frr.conf a router, vtysh -b, readiness from the vty sockets; ECMP, failover",
            &["zebra", "ospfd", "vtysh", "install", "ping"],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let broken = args.iter().any(|a| a == "broken");
        step("Three routers in a ring and a PC on each, wired as containerlab names them");
        let routers: Vec<Netns> = (1..=3)
            .map(|n| Netns::create(&format!("router{n}")))
            .collect::<Result<_, _>>()?;
        let pcs: Vec<Netns> = (1..=3)
            .map(|n| Netns::create(&format!("pc{n}")))
            .collect::<Result<_, _>>()?;
        for (a, a_if, b, b_if) in RING {
            wire(&routers[a - 1], a_if, &routers[b - 1], b_if)?;
        }
        for (n, (r, pc)) in routers.iter().zip(&pcs).enumerate() {
            wire(r, "eth3", pc, "eth1")?;
            Link::loopback(r)?.set_up()?;
            r.set_forwarding(true)?;
            // The PC side as containerlab's `exec:` lines set it; the router side is zebra's.
            pc.link("eth1")?
                .add_address(&format!("192.168.{}.2/24", n + 1))?;
            pc.add_route("default", Some(&format!("192.168.{}.1", n + 1)), None)?;
        }

        step("Give each router its frr.conf and start FRR on it");
        let mut running = Vec::new();
        for (n, (r, config)) in routers.iter().zip(CONFIGS).enumerate() {
            let config = match (broken, n) {
                // router3's eth1, the first interface of its file, faces router1.
                (true, 2) => config.replacen(
                    " ip ospf hello-interval 1\n ip ospf dead-interval 3",
                    " ip ospf hello-interval 5\n ip ospf dead-interval 20",
                    1,
                ),
                _ => config.to_string(),
            };
            r.write_file("/etc/frr/frr.conf", config.as_bytes(), 0o640)?;
            r.write_file("/etc/frr/vtysh.conf", VTYSH_CONF.as_bytes(), 0o640)?;
            running.extend(start_frr(r)?);
        }
        let eth1 = routers[0].link("eth1")?.info()?;
        check(
            "zebra gave router1's eth1 its address from frr.conf",
            eth1.addresses.iter().any(|a| a == "10.0.12.1/24"),
            &eth1.addresses.join(" "),
        );

        step("Wait for OSPF: every router learns every PC's subnet");
        let converged = wait_until("OSPF convergence", secs(60), || {
            for (n, r) in routers.iter().enumerate() {
                for pc in (1..=3).filter(|&pc| pc != n + 1) {
                    if ospf_route(r, &format!("192.168.{pc}.0/24"))?.is_none() {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })?;
        check(
            "OSPF converged",
            true,
            &format!("in {} ms", converged.as_millis()),
        );
        let far = ospf_route(&routers[0], "10.0.23.0/24")?;
        // In a steady order: the kernel lists a multipath route's hops as it likes.
        let mut hops: Vec<String> = far
            .iter()
            .flat_map(|r| &r.next_hops)
            .map(|h| {
                format!(
                    "via {} dev {}",
                    h.gateway.as_deref().unwrap_or("?"),
                    h.device.as_deref().unwrap_or("?")
                )
            })
            .collect();
        hops.sort();
        check(
            "router1 reaches the router2-router3 link over two equal-cost paths, learned by OSPF",
            hops.len() == 2,
            &hops.join(", "),
        );
        let (answered, ttl) = ping(&pcs[0], "192.168.3.2")?;
        check(
            "pc1 pings pc3 through router1 and router3",
            answered && ttl == "ttl=62",
            &ttl,
        );

        if broken {
            // The ring is not whole: cutting a link of it would show nothing more. The lab
            // stays as it is, daemons running, for a look inside (`--hold-on-fail`).
            return Ok(());
        }
        step("Cut the router1-router3 link (set-down on both ends, found by name)");
        routers[0].link("eth2")?.set_down()?;
        routers[2].link("eth1")?.set_down()?;
        // Both ways: router1 to pc3 through its eth1, router3 back to pc1 through its eth2.
        let through = |r: &Netns, to: &str, dev: &str| -> Result<bool, Error> {
            Ok(ospf_route(r, to)?.is_some_and(|r| {
                r.next_hops.len() == 1 && r.next_hops[0].device.as_deref() == Some(dev)
            }))
        };
        let failed_over = wait_until("failover through router2", secs(60), || {
            Ok(through(&routers[0], "192.168.3.0/24", "eth1")?
                && through(&routers[2], "192.168.1.0/24", "eth2")?)
        })?;
        check(
            "router1 reaches pc3 through router2",
            true,
            &format!("rerouted in {} ms", failed_over.as_millis()),
        );
        let (answered, ttl) = ping(&pcs[0], "192.168.3.2")?;
        check(
            "pc1 still pings pc3, one router further",
            answered && ttl == "ttl=61",
            &ttl,
        );

        step("What router1's FRR says, into the report");
        for (name, command) in [
            ("router1-ospf-neighbors.txt", "show ip ospf neighbor"),
            ("router1-routes.txt", "show ip route"),
        ] {
            let out = routers[0].run(Cmd::new("vtysh", ["-c", command]).quiet())?;
            attach(name, out.stdout_text().as_bytes())?;
        }
        // The cut link stays cut and the daemons keep running until the run ends, so the
        // report's picture shows the link down and the routes they made.
        drop(running);
        Ok(())
    }
}

export!(FrrIntegrated);
