//! Calls every function of the nslab:lab contract and checks what comes back against what the
//! kernel should have done. Run with `--allow-exec cat,env,sleep,sh` (it runs them to test
//! stdin, the environment, time limits and background programs).

use nslab_sdk::prelude::*;

struct Conformance;

fn has(info: &LinkInfo, cidr: &str) -> bool {
    info.addresses.iter().any(|a| a == cidr)
}

impl Guest for Conformance {
    fn describe() -> Info {
        info(
            "conformance",
            "every function of nslab:lab, checked against the kernel",
            &["ping", "cat", "env", "sleep", "sh", "ip"],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("netns: create, name, inode, names, delete");
        let a = Netns::create("a")?;
        let b = Netns::create("b")?;
        let c = Netns::create("c")?;
        check("name() is the name given", a.name() == "a", &a.name());
        check(
            "each namespace has its own inode",
            a.inode() != b.inode() && a.inode() > 0,
            &format!("{} {}", a.inode(), b.inode()),
        );
        check(
            "names() lists all three",
            names() == ["a", "b", "c"],
            &names().join(","),
        );
        let dup = Netns::create("a").err().map(|e| e.kind()).unwrap_or("none");
        check(
            "a second namespace named a is refused as exists",
            dup == "exists",
            dup,
        );
        delete(c)?;
        check(
            "delete removes it from names()",
            names() == ["a", "b"],
            &names().join(","),
        );

        step("link: veth, loopback, info, links");
        let (va, vb) = Link::veth("va", &a, "vb", &b)?;
        check(
            "veth ends keep their names",
            va.name() == "va" && vb.name() == "vb",
            "",
        );
        let ia = va.info()?;
        check(
            "a new veth end is a veth, down",
            ia.kind == "veth" && !ia.up,
            &format!("{ia:?}"),
        );
        let names_in_a: Vec<String> = links(&a)?.into_iter().map(|l| l.name).collect();
        check(
            "links(a) shows lo and va only",
            names_in_a == ["lo", "va"],
            &names_in_a.join(","),
        );
        let lo = Link::loopback(&a)?;
        check(
            "loopback is lo, kind loopback",
            lo.name() == "lo" && lo.info()?.kind == "loopback",
            "",
        );
        let dup = Link::veth("va", &a, "vz", &b).err();
        check(
            "a second link named va in a is refused as exists",
            dup.as_ref().map(|e| e.kind()) == Some("exists"),
            &dup.map(|e| e.describe()).unwrap_or_default(),
        );
        // The peer's name is taken in b: the sentence names that end and its namespace.
        let dup = Link::veth("vy", &a, "vb", &b).err();
        check(
            "a peer named like a link of b is refused as exists",
            dup.as_ref().map(|e| e.kind()) == Some("exists"),
            &dup.map(|e| e.describe()).unwrap_or_default(),
        );

        step("link: set-up, set-down, set-mtu, set-mac");
        va.set_up()?;
        check("set-up brings it up", va.info()?.up, "");
        va.set_down()?;
        check("set-down takes it down", !va.info()?.up, "");
        va.set_mtu(1400)?;
        check(
            "set-mtu 1400",
            va.info()?.mtu == 1400,
            &va.info()?.mtu.to_string(),
        );
        let too_big = va.set_mtu(70000).err().map(|e| e.kind()).unwrap_or("none");
        check(
            "mtu 70000 is refused as invalid",
            too_big == "invalid",
            too_big,
        );
        va.set_mac("02:00:00:00:00:0a")?;
        check(
            "set-mac",
            va.info()?.mac == "02:00:00:00:00:0a",
            &va.info()?.mac,
        );
        let bad = va
            .set_mac("01:00:5e:00:00:01")
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check(
            "a multicast MAC is refused as invalid",
            bad == "invalid",
            bad,
        );

        step("link: add-address, remove-address (IPv4 and IPv6)");
        va.add_address("10.9.0.1/24")?;
        va.add_address("fd00:9::1/64")?;
        let ia = va.info()?;
        check(
            "both addresses are listed",
            has(&ia, "10.9.0.1/24") && has(&ia, "fd00:9::1/64"),
            &ia.addresses.join(" "),
        );
        let again = va
            .add_address("10.9.0.1/24")
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check(
            "adding it twice is refused as exists",
            again == "exists",
            again,
        );
        va.remove_address("10.9.0.1/24")?;
        check(
            "remove-address removes it",
            !has(&va.info()?, "10.9.0.1/24"),
            &va.info()?.addresses.join(" "),
        );
        let gone = va
            .remove_address("10.9.0.1/24")
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check("removing it again is not-found", gone == "not-found", gone);

        step("link: move-to another namespace of the run");
        let (m1, _m2) = Link::veth("m1", &a, "m2", &b)?;
        let taken = Netns::create("mc")?;
        let (_clash, _) = Link::veth("m3", &a, "m1", &taken)?;
        let clash = m1
            .move_to(&taken)
            .err()
            .map(|e| e.describe())
            .unwrap_or_default();
        check(
            "moving it where its name is taken is refused as exists",
            clash.starts_with("exists: ") && clash.contains("cannot move m1 into mc"),
            &clash,
        );
        m1.move_to(&b)?;
        let in_b: Vec<String> = links(&b)?.into_iter().map(|l| l.name).collect();
        check(
            "m1 is now in b",
            in_b.contains(&"m1".to_string()) && m1.info()?.name == "m1",
            &in_b.join(","),
        );
        let in_a: Vec<String> = links(&a)?.into_iter().map(|l| l.name).collect();
        check(
            "and no longer in a",
            !in_a.contains(&"m1".to_string()),
            &in_a.join(","),
        );
        m1.add_address("10.8.0.1/24")?;
        check(
            "a moved link is still usable",
            has(&m1.info()?, "10.8.0.1/24"),
            "",
        );

        step("exec: run with args, env, stdin and a time limit");
        let (x, y) = Link::veth("x0", &a, "y0", &b)?;
        x.add_address("10.7.0.1/24")?;
        y.add_address("10.7.0.2/24")?;
        x.set_up()?;
        y.set_up()?;
        let out = a.exec("ping", ["-c", "1", "-W", "2", "10.7.0.2"])?;
        check(
            "ping across the pair",
            out.success(),
            &out.line_with("packets transmitted").unwrap_or_default(),
        );
        let out = a.run(Cmd::new("cat", [] as [&str; 0]).stdin("fed through stdin\n"))?;
        check(
            "stdin reaches the program",
            out.stdout_text() == "fed through stdin\n",
            &out.stdout_text(),
        );
        let out = a.run(Cmd::new("env", [] as [&str; 0]).env("LAB_ROLE", "client"))?;
        let mut vars: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
        vars.sort();
        check(
            "the environment holds only PATH and what the scenario set",
            vars.len() == 2
                && vars[0] == "LAB_ROLE=client"
                && vars[1].starts_with("PATH=/usr/local/sbin:"),
            &vars.join(" "),
        );
        let out = a.run(Cmd::new("sleep", ["10"]).timeout_ms(300))?;
        check(
            "a program past its time limit is killed and marked",
            out.timed_out && out.status == 128 + 9 && out.duration_us < 5_000_000,
            &format!(
                "timed_out={} status={} {}us",
                out.timed_out, out.status, out.duration_us
            ),
        );
        let out = a.exec("cat", ["/nonexistent-file"])?;
        check(
            "a failing program's status and stderr come back",
            out.status == 1 && out.stderr_text().contains("No such file"),
            &out.stderr_text(),
        );

        step("bridge, set-master, routes, shaping, forwarding");
        let br = Link::bridge("br0", &a)?;
        check(
            "a bridge is a bridge",
            br.info()?.kind == "bridge",
            &br.info()?.kind,
        );
        let not_bridge = x.set_master(&va).err().map(|e| e.kind()).unwrap_or("none");
        check(
            "set-master to a veth is invalid",
            not_bridge == "invalid",
            not_bridge,
        );
        let elsewhere = y.set_master(&br).err().map(|e| e.kind()).unwrap_or("none");
        check(
            "set-master across namespaces is invalid",
            elsewhere == "invalid",
            elsewhere,
        );
        // Refused in words, not as the kernel's ELOOP ("Too many symbolic links").
        let br_in_br = br
            .set_master(&br)
            .err()
            .map(|e| Error::describe(&e))
            .unwrap_or_default();
        check(
            "a bridge as a port of a bridge is invalid",
            br_in_br.starts_with("invalid: br0 is itself a bridge"),
            &br_in_br,
        );
        let dup = Link::bridge("br0", &a)
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check("a second br0 is exists", dup == "exists", dup);
        a.add_route("10.66.0.0/16", Some("10.7.0.2"), None)?;
        a.add_route("fd66::/64", None, Some("x0"))?;
        let routes = a.routes()?;
        let has = |d: &str| routes.iter().any(|r| r.destination == d);
        check(
            "routes() lists both",
            has("10.66.0.0/16") && has("fd66::/64"),
            &format!("{routes:?}"),
        );
        // A multipath route with a protocol and a metric, as a routing daemon would make it,
        // read back in full and held against what `ip route` says of it.
        a.exec(
            "ip",
            [
                "route",
                "add",
                "10.68.0.0/16",
                "proto",
                "static",
                "metric",
                "7",
                "nexthop",
                "via",
                "10.7.0.2",
                "weight",
                "2",
                "nexthop",
                "via",
                "10.7.0.3",
            ],
        )?;
        let details = a.route_details()?;
        let mp = details.iter().find(|r| r.destination == "10.68.0.0/16");
        let shown = a
            .exec("ip", ["route", "show", "10.68.0.0/16"])?
            .stdout_text();
        let hops: Vec<(String, String, u16)> = mp
            .map(|r| {
                r.next_hops
                    .iter()
                    .map(|h| {
                        (
                            h.gateway.clone().unwrap_or_default(),
                            h.device.clone().unwrap_or_default(),
                            h.weight,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let agrees = mp.is_some_and(|r| {
            r.protocol == "static"
                && r.metric == Some(7)
                && r.table == 254
                && shown.contains("proto static metric 7")
                && hops.iter().all(|(gw, dev, w)| {
                    shown.contains(&format!("nexthop via {gw} dev {dev} weight {w}"))
                })
        });
        check(
            "route-details: protocol, metric, table and two next hops, as ip route says",
            agrees && hops.len() == 2 && hops[0].2 == 2,
            &format!("{hops:?}"),
        );
        check(
            "a connected route is the kernel's",
            details
                .iter()
                .any(|r| r.protocol == "kernel" && r.next_hops.len() == 1),
            "",
        );
        a.remove_route("10.66.0.0/16", Some("10.7.0.2"), None)?;
        check(
            "remove takes it away",
            !a.routes()?.iter().any(|r| r.destination == "10.66.0.0/16"),
            "",
        );
        let gone = a
            .remove_route("10.66.0.0/16", Some("10.7.0.2"), None)
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check("removing it again is not-found", gone == "not-found", gone);
        let bad = a
            .add_route("10.66.0.1/16", None, Some("x0"))
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check(
            "a destination with host bits is invalid",
            bad == "invalid",
            bad,
        );
        let nodev = a
            .add_route("10.67.0.0/16", None, Some("nope"))
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check(
            "a route via a device the namespace lacks is not-found",
            nodev == "not-found",
            nodev,
        );
        x.clear_shaping()?;
        check("clear-shaping without shaping is fine", true, "");
        x.set_shaping(Shaping {
            delay_us: 0,
            jitter_us: 0,
            loss_ppm: 0,
            rate_bps: 50_000_000,
        })?;
        x.clear_shaping()?;
        check("a rate can be set and cleared", true, "");
        let none = x
            .set_shaping(Shaping {
                delay_us: 0,
                jitter_us: 0,
                loss_ppm: 0,
                rate_bps: 0,
            })
            .err()
            .map(|e| e.kind())
            .unwrap_or("none");
        check(
            "shaping with nothing in it is invalid",
            none == "invalid",
            none,
        );
        let wild = x
            .set_shaping(Shaping {
                delay_us: 0,
                jitter_us: 0,
                loss_ppm: 0,
                rate_bps: 2_900_000_000_000_000_000,
            })
            .err()
            .map(|e| Error::describe(&e))
            .unwrap_or_default();
        check(
            "a rate past any link is invalid, before the kernel",
            wild.starts_with("invalid: a rate of 2900000000000000000 bit/s"),
            &wild,
        );
        a.set_forwarding(true)?;
        a.set_forwarding(false)?;
        check("forwarding can be turned on and off", true, "");

        step("exec: background programs");
        let p = a.spawn("sleep", ["30"])?;
        check(
            "a background program has a pid",
            p.id() > 1,
            &p.id().to_string(),
        );
        let early = p.wait(Some(100)).err().map(|e| e.kind()).unwrap_or("none");
        check(
            "waiting less than it runs is timeout, and it keeps running",
            early == "timeout",
            early,
        );
        p.kill()?;
        let out = p.wait(Some(2000))?;
        check(
            "kill stops it with SIGTERM (the program is not its PID namespace's init, which would ignore it)",
            out.status == 128 + 15,
            &out.status.to_string(),
        );
        let quick = a.run(Cmd::new("sh", ["-c", "echo from the background"]))?;
        check("sh runs", quick.success(), "");
        // A link found again by its name, as a helper function that made it would.
        let found = a.link("va")?;
        check(
            "a link is found by its namespace and name",
            found.name() == "va" && found.info()?.up == va.info()?.up,
            &found.name(),
        );
        let missing = a
            .link("nonesuch")
            .err()
            .map(|e| e.kind())
            .unwrap_or("found");
        check(
            "a link the run did not make is not-found",
            missing == "not-found",
            missing,
        );
        // Each namespace's programs see its own host name: its name, until the scenario sets one.
        let hostname = |ns: &Netns| -> Result<String, Error> {
            Ok(ns
                .exec("cat", ["/proc/sys/kernel/hostname"])?
                .stdout_text()
                .trim()
                .to_string())
        };
        let first = hostname(&a)?;
        check(
            "a namespace's programs see its name as host name",
            first == "a",
            &first,
        );
        a.set_hostname("router-1")?;
        let set = hostname(&a)?;
        check("set-hostname changes it", set == "router-1", &set);
        let bad = a
            .set_hostname("-x")
            .err()
            .map(|e| e.kind())
            .unwrap_or("accepted");
        check(
            "a host name that is no host name is invalid",
            bad == "invalid",
            bad,
        );
        let polled = a.run(Cmd::new("sh", ["-c", "echo polled-quietly-4242"]).quiet())?;
        check(
            "a quiet exec returns what it printed",
            polled.stdout_text().contains("polled-quietly-4242"),
            "its output, not echoed",
        );
        let q = a.spawn("sh", ["-c", "echo hello; exit 3"])?;
        let out = q.wait(Some(5000))?;
        check(
            "wait returns its status and output",
            out.status == 3 && out.stdout_text() == "hello\n",
            &format!("{} {:?}", out.status, out.stdout_text()),
        );
        let again = q.wait(None)?;
        check("waiting again returns the same", again.status == 3, "");

        step("deleting a namespace takes its links with it");
        delete(b)?;
        let gone = vb.info().err().map(|e| e.kind()).unwrap_or("none");
        check(
            "a link of a deleted namespace is not-found",
            gone == "not-found",
            gone,
        );
        let peer = va.info().err().map(|e| e.kind()).unwrap_or("none");
        check(
            "and its veth peer in a is gone too",
            peer == "not-found",
            peer,
        );
        Ok(())
    }
}

export!(Conformance);
