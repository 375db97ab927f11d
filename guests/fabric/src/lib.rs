//! A routing fabric at scale: an S x S grid of BIRD 2 routers running OSPF (`-- --side S`,
//! default 3), the lab of `../shared/bench/birdgrid/byhand.sh` built through the runner. Each
//! router is a namespace with a loopback /32 and a veth /30 to its right and lower neighbours,
//! a `bird.conf` given with `write-file`, and `bird -f` started in the background. Each phase is
//! timed (build, files, start, convergence read from the kernel's routing tables), printed as
//! one `SCALE-RUNNER` line that bench/birdgrid.sh reads, and attached to the report. Teardown is
//! the runner's, timed by the bench from the outside.
//!
//! OSPF rather than BGP: a grid is one area with no configuration per neighbour, the same file
//! shape for every router, and it is what the by-hand baseline runs. Run it with
//! `--allow-exec bird,sleep --max-namespaces N --max-links 4N --max-processes 2N --max-files N`
//! (and, past a few hundred routers, `--program-memory` of about 4 MiB a router: the daemons
//! and their boxes are the run's memory). `--hold-s S` keeps a `--daemon sleep` lab S seconds
//! for bench/program-memory.sh to measure.

use std::time::{Duration, Instant};

use nslab_sdk::prelude::*;

struct Fabric;

/// The /30 of the k-th link, as byhand.sh numbers them: 10.A.B.(C*4 + end).
fn link_address(k: usize, end: usize) -> String {
    format!(
        "10.{}.{}.{}",
        (k >> 6) >> 8,
        (k >> 6) & 255,
        ((k & 63) << 2) + end
    )
}

fn loopback(i: usize) -> String {
    format!("10.200.{}.{}", i >> 8, i & 255)
}

fn config(i: usize) -> String {
    format!(
        "router id {};
protocol device {{ scan time 10; }}
protocol direct {{ ipv4; interface \"lo\"; }}
protocol kernel {{ ipv4 {{ export where source = RTS_OSPF; }}; scan time 10; }}
protocol ospf v2 {{
    ipv4 {{ import all; export none; }};
    area 0 {{
        interface \"lo\" {{ stub yes; }};
        interface \"g*\" {{ type ptp; hello 1; dead count 3; }};
    }};
}}
",
        loopback(i)
    )
}

/// Loopbacks of other routers a router has a route to.
fn learned(ns: &Netns) -> Result<usize, Error> {
    Ok(ns
        .routes()?
        .iter()
        .filter(|r| r.destination.starts_with("10.200.") && r.destination.ends_with("/32"))
        .count())
}

impl Guest for Fabric {
    fn describe() -> Info {
        info(
            "fabric",
            "an S x S grid of BIRD OSPF routers (--side S), every phase timed",
            &["bird", "sleep"],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let args = Args::new(args);
        let side: usize = args.get_or("--side", 3)?;
        let wait: u64 = args.get_or("--converge-s", 120)?;
        // `sleep`: the same lab with an idle program per router, to measure what starting a
        // program costs the runner apart from what running daemons cost the machine.
        let daemon: String = args.get_or("--daemon", "bird".to_string())?;
        ensure!(
            daemon == "bird" || daemon == "sleep",
            "--daemon must be bird or sleep, not {daemon}"
        );
        ensure!(
            (1..=40).contains(&side),
            "--side must be 1 to 40, not {side}"
        );
        // With `--daemon sleep`: that many idle programs per router (the teardown test).
        let copies: usize = args.get_or("--copies", 1)?;
        ensure!(
            (1..=500).contains(&copies),
            "--copies must be 1 to 500, not {copies}"
        );
        let n = side * side;

        step(&format!("Build a {side} x {side} grid: {n} routers"));
        let t0 = Instant::now();
        let routers = (0..n)
            .map(|i| Netns::create(&format!("bg{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut k = 0;
        for i in 0..n {
            let (x, y) = (i % side, i / side);
            let right = (x + 1 < side).then_some(i + 1);
            let down = (y + 1 < side).then_some(i + side);
            for j in right.into_iter().chain(down) {
                let (a, b) = Link::veth(
                    &format!("g{i}-{j}"),
                    &routers[i],
                    &format!("g{j}-{i}"),
                    &routers[j],
                )?;
                a.add_address(&format!("{}/30", link_address(k, 1)))?;
                b.add_address(&format!("{}/30", link_address(k, 2)))?;
                a.set_up()?;
                b.set_up()?;
                k += 1;
            }
            let lo = Link::loopback(&routers[i])?;
            lo.set_up()?;
            lo.add_address(&format!("{}/32", loopback(i)))?;
        }
        let built = t0.elapsed();

        step("Give each router its bird.conf");
        let t1 = Instant::now();
        for (i, r) in routers.iter().enumerate() {
            r.write_file("/etc/bird/bird.conf", config(i).as_bytes(), 0o644)?;
        }
        let files = t1.elapsed();

        step(&format!("Start {n} BIRD daemons"));
        let t2 = Instant::now();
        let daemons = routers
            .iter()
            .flat_map(|r| {
                let which = daemon.as_str();
                let copies = if which == "bird" { 1 } else { copies };
                (0..copies).map(move |_| match which {
                    "bird" => r.spawn(
                        "bird",
                        ["-f", "-c", "/etc/bird/bird.conf", "-s", "/run/bird.ctl"],
                    ),
                    _ => r.spawn("sleep", ["3600"]),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A spawn returns once the program is handed over, as `bird &` in a shell does; asking
        // for the last one's pid waits until every daemon has been forked, and timed with it.
        let _ = daemons.last().map(|d| d.id());
        let started = t2.elapsed();
        if daemon == "sleep" {
            let summary = format!(
                "SCALE-RUNNER n={n} build={:.2}s files={:.2}s start={:.2}s (sleep)",
                built.as_secs_f64(),
                files.as_secs_f64(),
                started.as_secs_f64()
            );
            println!("{summary}");
            // Held a while (`--hold-s S`), for a bench to look at the running lab from outside.
            let hold: u64 = args.get_or("--hold-s", 0)?;
            std::thread::sleep(Duration::from_secs(hold));
            check(
                &format!("all {} programs are running", n * copies),
                daemons.len() == n * copies,
                &summary,
            );
            return Ok(());
        }

        step("Wait until the corners know every other router (the kernel's routing tables)");
        let corners = [&routers[0], &routers[n - 1]];
        let converged = wait_until("OSPF convergence", Duration::from_secs(wait), || {
            for c in corners {
                if learned(c)? < n - 1 {
                    return Ok(false);
                }
            }
            Ok(true)
        });
        let summary = format!(
            "SCALE-RUNNER n={n} build={:.2}s files={:.2}s start={:.2}s converge={}{:.2}s",
            built.as_secs_f64(),
            files.as_secs_f64(),
            started.as_secs_f64(),
            if converged.is_ok() { "" } else { ">" },
            converged
                .as_ref()
                .map_or(Duration::from_secs(wait), |d| *d)
                .as_secs_f64()
        );
        println!("{summary}");
        attach("fabric.txt", format!("{summary}\n").as_bytes())?;
        check(
            &format!("all {n} daemons are running"),
            daemons.len() == n,
            &format!("{} started", daemons.len()),
        );
        let detail = match &converged {
            Ok(d) => format!("in {} ms", d.as_millis()),
            Err(e) => e.describe(),
        };
        check(
            "OSPF converged: the corners know every router",
            converged.is_ok(),
            &detail,
        );
        Ok(())
    }
}

export!(Fabric);
