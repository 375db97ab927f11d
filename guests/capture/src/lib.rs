//! A capture to look at afterwards: `tcpdump -w` in one namespace while the other pings it,
//! then the scenario reads the capture file back from the namespace and counts the ICMP echo
//! requests and replies in it by parsing the pcap itself. tcpdump drops to its own `tcpdump`
//! user once it has opened the interface, as it does on any host.

use std::time::Duration;

use nslab_sdk::prelude::*;

struct Capture;

const PINGS: usize = 3;

/// ICMP echo (type 8) requests and (type 0) replies in a classic pcap of Ethernet frames.
fn count_icmp_echoes(pcap: &[u8]) -> Result<(usize, usize), String> {
    let magic = pcap
        .get(..4)
        .ok_or("the capture is shorter than a pcap header")?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        _ => return Err(format!("not a pcap file: magic {magic:02x?}")),
    };
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = pcap.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize)
    };
    let (mut requests, mut replies) = (0, 0);
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32_at(at + 8).ok_or("a record header is cut")?;
        let frame = pcap.get(at + 16..at + 16 + len).ok_or("a record is cut")?;
        // Ethernet, IPv4 (ethertype 0x0800), protocol 1 (ICMP), then the ICMP type.
        if frame.len() > 34 && frame[12..14] == [0x08, 0x00] && frame[23] == 1 {
            let header = usize::from(frame[14] & 0x0f) * 4;
            match frame.get(14 + header) {
                Some(8) => requests += 1,
                Some(0) => replies += 1,
                _ => {}
            }
        }
        at += 16 + len;
    }
    Ok((requests, replies))
}

impl Guest for Capture {
    fn describe() -> Info {
        info(
            "capture",
            "tcpdump -w in one namespace while the other pings; the capture is read back and parsed",
            &["tcpdump", "ping"],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Two namespaces joined by a veth pair");
        let a = Netns::create("a")?;
        let b = Netns::create("b")?;
        let (va, vb) = Link::veth("a-eth0", &a, "b-eth0", &b)?;
        va.add_address("10.0.0.1/24")?;
        vb.add_address("10.0.0.2/24")?;
        va.set_up()?;
        vb.set_up()?;

        step("Capture ICMP on a's link (tcpdump -U -w /tmp/icmp.pcap)");
        let tcpdump = a.spawn(
            "tcpdump",
            [
                "-i",
                "a-eth0",
                "-n",
                "--immediate-mode",
                "-U",
                "-w",
                "/tmp/icmp.pcap",
                "icmp",
            ],
        )?;
        let ready = tcpdump.wait_for_line("listening on", 10_000)?;
        check("tcpdump is listening", true, &ready);

        step(&format!("Ping a from b {PINGS} times"));
        let n = PINGS.to_string();
        let out = b.exec(
            "ping",
            ["-c", n.as_str(), "-i", "0.2", "-W", "2", "10.0.0.1"],
        )?;
        check(
            "ping lost nothing",
            out.success(),
            &out.line_with("packets transmitted").unwrap_or_default(),
        );
        // Written packet by packet (-U): wait until all of them are in the file, not a fixed time.
        let mut pcap = Vec::new();
        let took = wait_until("the capture of every echo", Duration::from_secs(10), || {
            pcap = a.read_file("/tmp/icmp.pcap")?;
            Ok(count_icmp_echoes(&pcap).is_ok_and(|(q, r)| q + r >= 2 * PINGS))
        });
        tcpdump.kill()?;

        step("Read the capture back and count the echoes in it");
        check(
            "the capture was written as the packets came",
            took.is_ok(),
            &format!("{took:?}"),
        );
        let (requests, replies) = count_icmp_echoes(&pcap)?;
        check(
            &format!("the capture holds {PINGS} echo requests and {PINGS} replies"),
            requests == PINGS && replies == PINGS,
            &format!(
                "{} bytes: {requests} requests, {replies} replies",
                pcap.len()
            ),
        );
        // The capture itself goes into the run's report, to open in Wireshark later.
        attach("icmp.pcap", &pcap)?;
        Ok(())
    }
}

export!(Capture);
