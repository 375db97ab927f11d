//! OSPF with BIRD 2 on three routers in a ring (ring.rs): each router gets its bird.conf from
//! the scenario, and `bird` runs in the foreground in its namespace. Checks: convergence
//! (measured), host 1 to host 3, failover through router 2 when the r1-r3 link is cut
//! (measured), and the direct route back once it is restored.

mod ring;

use nslab_sdk::prelude::*;

struct Ospf;

struct Bird;

impl ring::Daemon for Bird {
    fn files(&self, n: usize) -> Vec<(String, String)> {
        let conf = format!(
            r#"router id 10.255.0.{n};
protocol device {{ scan time 1; }}
protocol kernel {{
    ipv4 {{ export where source = RTS_OSPF; }};
    scan time 1;
}}
protocol ospf v2 {{
    ipv4 {{ import all; export none; }};
    area 0 {{
        interface "r{n}-h{n}" {{ stub yes; }};
        interface "r{n}-r*" {{ type ptp; hello 1; dead count 3; }};
    }};
}}
"#
        );
        vec![("/etc/bird/bird.conf".into(), conf)]
    }

    fn start(&self, _n: usize, router: &Netns) -> Result<Vec<Process>, Error> {
        let bird = router.spawn(
            "bird",
            ["-f", "-c", "/etc/bird/bird.conf", "-s", "/run/bird.ctl"],
        )?;
        Ok(vec![bird])
    }
}

impl Guest for Ospf {
    fn describe() -> Info {
        info(
            "ospf",
            "BIRD 2 on three routers in a ring: OSPF convergence, failover and restore, measured",
            &["bird", "ip", "ping"],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Three routers in a ring, each with a host on a stub subnet");
        let ring = ring::Ring::build()?;
        ring.test(&Bird, "bird.conf")
    }
}

export!(Ospf);
