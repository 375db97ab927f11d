//! A shaped link: 10 Mbit/s on the client's egress, measured by iperf3 (a server spawned in the
//! other namespace, stopped cleanly afterwards). Where the kernel has netem, also 50 ms of delay
//! each way (about 100 ms round trip) and 10% loss over 200 pings; where it has not, those parts
//! are reported skipped.

use nslab_sdk::prelude::*;

struct Shaped;

const RATE_BPS: u64 = 10_000_000;

/// The receiver's rate in Mbit/s from iperf3's text summary.
fn receiver_mbits(out: &Output) -> Option<f64> {
    let line = out.line_with("receiver")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| w.ends_with("bits/sec"))?;
    let value: f64 = words.get(at.checked_sub(1)?)?.parse().ok()?;
    Some(match words[at] {
        "Gbits/sec" => value * 1000.0,
        "Mbits/sec" => value,
        "Kbits/sec" => value / 1000.0,
        _ => value / 1_000_000.0,
    })
}

fn average_rtt_ms(out: &Output) -> Option<f64> {
    // rtt min/avg/max/mdev = 100.1/100.4/101.0/0.2 ms
    let line = out.line_with("rtt min/avg/max")?;
    line.split('=')
        .nth(1)?
        .trim()
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

fn loss_percent(out: &Output) -> Option<f64> {
    let line = out.line_with("packet loss")?;
    let word = line.split(", ").find(|p| p.ends_with("packet loss"))?;
    word.split('%').next()?.trim().parse().ok()
}

impl Guest for Shaped {
    fn describe() -> Info {
        info(
            "shaped",
            "a 10 Mbit/s link measured with iperf3; netem delay and loss where the kernel has it",
            &["iperf3", "ping", "ss"],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Two namespaces joined by a veth pair");
        let client = Netns::create("client")?;
        let server = Netns::create("server")?;
        let (c, s) = Link::veth("eth0", &client, "eth0", &server)?;
        c.add_address("10.0.0.1/24")?;
        s.add_address("10.0.0.2/24")?;
        c.set_up()?;
        s.set_up()?;

        step("Limit the client's egress to 10 Mbit/s");
        c.set_shaping(Shaping {
            delay_us: 0,
            jitter_us: 0,
            loss_ppm: 0,
            rate_bps: RATE_BPS,
        })?;

        step("Measure it with iperf3");
        let srv = server.spawn("iperf3", ["-s", "-B", "10.0.0.2"])?;
        // Wait until the server listens before the client connects.
        let mut listening = false;
        for _ in 0..50 {
            let ss = server.exec("ss", ["-Htln", "sport = :5201"])?;
            if !ss.stdout_text().trim().is_empty() {
                listening = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ensure!(listening, "the iperf3 server never listened on port 5201");
        let out = client.exec("iperf3", ["-c", "10.0.0.2", "-t", "4", "-f", "m"])?;
        let measured = receiver_mbits(&out);
        let limit = RATE_BPS as f64 / 1e6;
        check(
            "iperf3 measures the 10 Mbit/s limit within 15%",
            measured.is_some_and(|m| (m - limit).abs() <= limit * 0.15),
            &format!(
                "{} Mbit/s",
                measured.map_or("no".to_string(), |m| format!("{m:.2}"))
            ),
        );
        srv.kill()?;
        let stopped = srv.wait(Some(5000))?;
        check(
            "the iperf3 server stops cleanly when asked",
            !stopped.timed_out && stopped.status != 128 + 9,
            &format!("status {}", stopped.status),
        );
        c.clear_shaping()?;

        step("netem: 50 ms delay each way, then 10% loss");
        let delay = Shaping {
            delay_us: 50_000,
            jitter_us: 0,
            loss_ppm: 0,
            rate_bps: 0,
        };
        match c.set_shaping(delay) {
            Err(Error::Os(why)) if why.contains("has no netem") => {
                check("netem: SKIPPED (this kernel has no netem)", true, &why);
                return Ok(());
            }
            other => other?,
        }
        s.set_shaping(delay)?;
        let out = client.exec("ping", ["-c", "5", "10.0.0.2"])?;
        let rtt = average_rtt_ms(&out);
        check(
            "50 ms each way makes a round trip of about 100 ms",
            rtt.is_some_and(|r| (95.0..130.0).contains(&r)),
            &format!("{rtt:?} ms"),
        );
        s.clear_shaping()?;
        c.set_shaping(Shaping {
            delay_us: 0,
            jitter_us: 0,
            loss_ppm: 100_000,
            rate_bps: 0,
        })?;
        let out = client.exec("ping", ["-c", "200", "-i", "0.01", "-W", "1", "10.0.0.2"])?;
        let loss = loss_percent(&out);
        check(
            "10% loss over 200 pings (5 to 17%)",
            loss.is_some_and(|l| (5.0..=17.0).contains(&l)),
            &format!("{loss:?}%"),
        );
        Ok(())
    }
}

export!(Shaped);
