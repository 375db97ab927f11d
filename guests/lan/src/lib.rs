//! A LAN: a switch namespace with a bridge, and N hosts (default 4, `-- --hosts N`), each joined
//! to the switch by a veth pair, addressed 10.0.0.1..N/24. Every host pings every other, as
//! Mininet's `pingall` does, each pair a check.

use nslab_sdk::prelude::*;

struct Lan;

impl Guest for Lan {
    fn describe() -> Info {
        info(
            "lan",
            "a bridge and N hosts (--hosts N, default 4); every pair pings",
            &["ping"],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let n: usize = Args::new(args).get_or("--hosts", 4)?;
        ensure!((2..=200).contains(&n), "--hosts must be 2 to 200, not {n}");

        step(&format!(
            "A switch: namespace sw with bridge br0, and {n} hosts"
        ));
        let sw = Netns::create("sw")?;
        let br = Link::bridge("br0", &sw)?;
        br.set_up()?;
        let mut hosts = Vec::new();
        for i in 1..=n {
            let h = Netns::create(&format!("h{i}"))?;
            let (eth, port) = Link::veth("eth0", &h, &format!("sw-h{i}"), &sw)?;
            port.set_master(&br)?;
            port.set_up()?;
            eth.add_address(&format!("10.0.0.{i}/24"))?;
            eth.set_up()?;
            hosts.push(h);
        }
        let ports = links(&sw)?
            .into_iter()
            .filter(|l| l.name.starts_with("sw-h"))
            .count();
        check(
            "every host has a port on the switch",
            ports == n,
            &format!("{ports} ports"),
        );

        step("pingall");
        let mut lost = 0;
        for (i, from) in hosts.iter().enumerate() {
            for j in (1..=n).filter(|j| *j != i + 1) {
                let out = from.exec("ping", ["-c", "1", "-W", "2", &format!("10.0.0.{j}")])?;
                let summary = out
                    .line_with("packets transmitted")
                    .unwrap_or_else(|| out.stderr_text());
                let ok = out.success() && summary.contains(" 0% packet loss");
                lost += usize::from(!ok);
                check(&format!("h{} -> h{j}", i + 1), ok, &summary);
            }
        }
        check(
            "pingall: 0% dropped",
            lost == 0,
            &format!("{lost} of {} pairs lost packets", n * (n - 1)),
        );
        Ok(())
    }
}

export!(Lan);
