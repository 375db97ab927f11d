//! The lab of the `ospf` and `frr` scenarios: three routers in a ring, each with a host on a
//! stub subnet; a routing daemon (given by the scenario) brings the routes; the checks measure
//! convergence, then cut the link between router 1 and router 3 and measure the failover
//! through router 2, then restore it.
//!
//! ```text
//!   h1 -- r1 ------ r2 -- h2       r1-r2 10.0.12.0/30, r2-r3 10.0.23.0/30, r1-r3 10.0.13.0/30
//!          \       /               hN-rN 10.1.N.0/24 (rN is .1, hN is .2)
//!           \     /
//!             r3 -- h3
//! ```

use std::time::Duration;

use nslab_sdk::prelude::*;

/// What differs between routing daemons: their files, and how to start one on a router.
pub trait Daemon {
    /// The files router `n` (1-3) needs, as (path, contents).
    fn files(&self, n: usize) -> Vec<(String, String)>;
    /// Start the daemon(s) on router `n`; what it returns keeps them running.
    fn start(&self, n: usize, router: &Netns) -> Result<Vec<Process>, Error>;
}

/// The routers' links to each other: (a, b, subnet third octet).
const LINKS: [(usize, usize, u8); 3] = [(1, 2, 12), (2, 3, 23), (1, 3, 13)];

pub struct Ring {
    routers: Vec<Netns>,
    hosts: Vec<Netns>,
    /// The two ends of the r1-r3 link, to cut it.
    r1_r3: (Link, Link),
}

impl Ring {
    pub fn build() -> Result<Ring, Error> {
        let routers: Vec<Netns> = (1..=3)
            .map(|n| Netns::create(&format!("r{n}")))
            .collect::<Result<_, _>>()?;
        let hosts: Vec<Netns> = (1..=3)
            .map(|n| Netns::create(&format!("h{n}")))
            .collect::<Result<_, _>>()?;
        let mut cut = None;
        for (a, b, net) in LINKS {
            let (ea, eb) = Link::veth(
                &format!("r{a}-r{b}"),
                &routers[a - 1],
                &format!("r{b}-r{a}"),
                &routers[b - 1],
            )?;
            ea.add_address(&format!("10.0.{net}.1/30"))?;
            eb.add_address(&format!("10.0.{net}.2/30"))?;
            ea.set_up()?;
            eb.set_up()?;
            if (a, b) == (1, 3) {
                cut = Some((ea, eb));
            }
        }
        for n in 1..=3 {
            let (r, h) = (&routers[n - 1], &hosts[n - 1]);
            let (er, eh) = Link::veth(&format!("r{n}-h{n}"), r, &format!("h{n}-r{n}"), h)?;
            er.add_address(&format!("10.1.{n}.1/24"))?;
            eh.add_address(&format!("10.1.{n}.2/24"))?;
            er.set_up()?;
            eh.set_up()?;
            Link::loopback(r)?.set_up()?;
            Link::loopback(h)?.set_up()?;
            h.add_route("default", Some(&format!("10.1.{n}.1")), None)?;
            r.set_forwarding(true)?;
        }
        Ok(Ring {
            routers,
            hosts,
            r1_r3: cut.expect("the ring has an r1-r3 link"),
        })
    }

    /// The route of router `n` to host `to`'s subnet, as `ip route` shows it ("" if none).
    fn route(&self, n: usize, to: usize) -> Result<String, Error> {
        let out = self.routers[n - 1].exec("ip", ["route", "show", &format!("10.1.{to}.0/24")])?;
        Ok(out.stdout_text().trim().to_string())
    }

    /// Ping host `to` from host `from`: (it answered, the TTL it answered with).
    fn ping(&self, from: usize, to: usize) -> Result<(bool, String), Error> {
        let out = self.hosts[from - 1].exec(
            "ping",
            ["-c", "2", "-i", "0.2", "-W", "2", &format!("10.1.{to}.2")],
        )?;
        let ttl = out
            .stdout_text()
            .split_whitespace()
            .find(|w| w.starts_with("ttl="))
            .unwrap_or("ttl=?")
            .to_string();
        Ok((out.success(), ttl))
    }

    /// Run the whole test with `daemon`.
    pub fn test(&self, daemon: &dyn Daemon, name: &str) -> Result<(), String> {
        step(&format!(
            "Give each router its {name} configuration and start it"
        ));
        let mut running = Vec::new();
        for n in 1..=3 {
            for (path, contents) in daemon.files(n) {
                self.routers[n - 1].write_file(&path, contents.as_bytes(), 0o644)?;
            }
            running.extend(daemon.start(n, &self.routers[n - 1])?);
        }

        step("Wait for OSPF to converge: every router has a route to every host");
        let converged = wait_until("OSPF convergence", Duration::from_secs(60), || {
            for n in 1..=3 {
                for to in (1..=3).filter(|&to| to != n) {
                    if self.route(n, to)?.is_empty() {
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
        let (answered, ttl) = self.ping(1, 3)?;
        check(
            "host 1 pings host 3 through router 1 and router 3",
            answered && ttl == "ttl=62",
            &ttl,
        );

        step("Cut the link between router 1 and router 3 (set-down on both ends)");
        self.r1_r3.0.set_down()?;
        self.r1_r3.1.set_down()?;
        // Both ways: router 1 to host 3, and router 3 back to host 1.
        let failed_over = wait_until("failover through router 2", Duration::from_secs(60), || {
            Ok(self.route(1, 3)?.contains("via 10.0.12.2")
                && self.route(3, 1)?.contains("via 10.0.23.1"))
        })?;
        check(
            "router 1 reaches host 3 through router 2",
            true,
            &format!(
                "rerouted in {} ms: {}",
                failed_over.as_millis(),
                self.route(1, 3)?
            ),
        );
        let (answered, ttl) = self.ping(1, 3)?;
        check(
            "host 1 still pings host 3, one router further",
            answered && ttl == "ttl=61",
            &ttl,
        );

        step("Restore the link");
        self.r1_r3.0.set_up()?;
        self.r1_r3.1.set_up()?;
        let restored = wait_until("the direct route again", Duration::from_secs(60), || {
            Ok(self.route(1, 3)?.contains("via 10.0.13.2")
                && self.route(3, 1)?.contains("via 10.0.13.1"))
        })?;
        check(
            "router 1 reaches host 3 directly again",
            true,
            &format!("in {} ms", restored.as_millis()),
        );
        for p in running {
            p.kill()?;
        }
        Ok(())
    }
}
