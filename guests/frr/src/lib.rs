//! OSPF with FRR (`zebra` and `ospfd`) on the ring of the `ospf` scenario (ring.rs): the same
//! lab and checks, another routing suite. The daemons are not in the system PATH
//! (/usr/lib/frr), so the operator allows them by path:
//! `runner run --allow-exec /usr/lib/frr/zebra,/usr/lib/frr/ospfd,install frr.wasm`.
//! They drop privileges to FRR's own `frr` user, as they do on any host.

#[path = "../../ospf/src/ring.rs"]
mod ring;

use std::time::Duration;

use nslab_sdk::prelude::*;

struct Frr;

struct Daemons;

impl ring::Daemon for Daemons {
    fn files(&self, n: usize) -> Vec<(String, String)> {
        let zebra = format!("hostname r{n}\n");
        let ospfd = format!(
            "hostname r{n}
router ospf
 ospf router-id 10.255.0.{n}
 timers throttle spf 10 100 1000
 network 10.0.0.0/16 area 0
 network 10.1.{n}.0/24 area 0
 !
interface r{n}-h{n}
 ip ospf passive
!
interface r{n}-r1
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 3
!
interface r{n}-r2
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 3
!
interface r{n}-r3
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 3
!
"
        );
        vec![
            ("/etc/frr/zebra.conf".into(), zebra),
            ("/etc/frr/ospfd.conf".into(), ospfd),
        ]
    }

    fn start(&self, _n: usize, router: &Netns) -> Result<Vec<Process>, Error> {
        // The daemons' run directory, theirs to write, as the frr package's init does.
        let made = router.exec("install", ["-d", "-o", "frr", "-g", "frr", "/run/frr"])?;
        if !made.success() {
            return Err(Error::Os(format!(
                "install -d /run/frr: {}",
                made.stderr_text().trim()
            )));
        }
        let common = ["-z", "/run/frr/zserv.api", "--vty_socket", "/run/frr"];
        let zebra = router.spawn(
            "zebra",
            ["-f", "/etc/frr/zebra.conf", "-i", "/run/frr/zebra.pid"]
                .into_iter()
                .chain(common),
        )?;
        // ospfd connects to zebra's socket: start it once zebra has written its pid file.
        wait_until("zebra", Duration::from_secs(10), || {
            Ok(router.read_file("/run/frr/zebra.pid").is_ok())
        })?;
        let ospfd = router.spawn(
            "ospfd",
            ["-f", "/etc/frr/ospfd.conf", "-i", "/run/frr/ospfd.pid"]
                .into_iter()
                .chain(common),
        )?;
        Ok(vec![ospfd, zebra])
    }
}

impl Guest for Frr {
    fn describe() -> Info {
        info(
            "frr",
            "FRR's zebra and ospfd on three routers in a ring: convergence, failover and restore, measured",
            &["zebra", "ospfd", "install", "ip", "ping"],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Three routers in a ring, each with a host on a stub subnet");
        let ring = ring::Ring::build()?;
        ring.test(&Daemons, "zebra.conf and ospfd.conf")
    }
}

export!(Frr);
