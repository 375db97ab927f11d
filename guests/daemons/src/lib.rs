//! A daemon that sheds what ties it to the run, then a bad end: the run must still end in time
//! and leave no process behind. `daemons KIND END`:
//!
//! - KIND `zebra`: FRR's zebra, as the `frr` scenario starts it (it switches to the `frr` user);
//!   `tcpdump`: `tcpdump -i lo -w FILE` (it switches to `tcpdump`); `detach`: a program that
//!   switches to uid 65534 itself, then starts a child in a session and process group of its
//!   own that double-forks.
//! - END `err` (the scenario returns an error), `panic`, `wait` (it waits for the deadline, or
//!   to be killed), `ok`.
//!
//! Run it with `--allow-exec /usr/lib/frr/zebra,install,tcpdump,setpriv,sh,setsid,sleep`.

use std::time::Duration;

use nslab_sdk::prelude::*;

struct Daemons;

/// A file the daemon made once it had switched user: not owned by the run's root (sh's own
/// `test -O`, so no other program is needed).
fn made_after_switching(kind: &str) -> &'static str {
    match kind {
        "zebra" => "/run/frr/zebra.pid",
        "tcpdump" => "/tmp/x.pcap",
        _ => "/tmp/detached",
    }
}

fn start(kind: &str, ns: &Netns) -> Result<Process, Error> {
    match kind {
        "zebra" => {
            ns.write_file("/etc/frr/zebra.conf", b"hostname r1\n", 0o644)?;
            let made = ns.exec("install", ["-d", "-o", "frr", "-g", "frr", "/run/frr"])?;
            if !made.success() {
                return Err(Error::Os(made.stderr_text()));
            }
            let zebra = ns.spawn(
                "zebra",
                [
                    "-f",
                    "/etc/frr/zebra.conf",
                    "-i",
                    "/run/frr/zebra.pid",
                    "-z",
                    "/run/frr/zserv.api",
                    "--vty_socket",
                    "/run/frr",
                ],
            )?;
            // The pid file is written once zebra has switched to the frr user.
            wait_until("zebra's pid file", Duration::from_secs(10), || {
                Ok(ns.read_file("/run/frr/zebra.pid").is_ok())
            })?;
            Ok(zebra)
        }
        "tcpdump" => {
            let tcpdump = ns.spawn("tcpdump", ["-i", "lo", "-n", "-w", "/tmp/x.pcap"])?;
            tcpdump.wait_for_line("listening on", 10_000)?;
            Ok(tcpdump)
        }
        "detach" => {
            let detached = ns.spawn(
                "setpriv",
                [
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "sh",
                    "-c",
                    ": > /tmp/detached; setsid -f sh -c 'sleep 300 & sleep 300'; echo detached; exec sleep 300",
                ],
            )?;
            detached.wait_for_line("detached", 10_000)?;
            Ok(detached)
        }
        other => Err(Error::Invalid(format!("unknown daemon {other:?}"))),
    }
}

impl Guest for Daemons {
    fn describe() -> Info {
        info(
            "daemons",
            "starts a daemon that switches user or session, then ends as its arguments say",
            &[
                "zebra", "install", "tcpdump", "setpriv", "sh", "setsid", "sleep",
            ],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let kind = args.first().map(String::as_str).unwrap_or("detach");
        let end = args.get(1).map(String::as_str).unwrap_or("ok");
        step(&format!("Start {kind}, then end: {end}"));
        let ns = Netns::create("ns01")?;
        Link::loopback(&ns)?.set_up()?;
        let daemon = start(kind, &ns)?;
        let file = made_after_switching(kind);
        wait_until("the daemon's file", Duration::from_secs(10), || {
            Ok(ns.read_file(file).is_ok())
        })?;
        let owner = ns.exec("sh", ["-c", &format!("test ! -O {file}")])?;
        check(
            &format!("{kind} runs as another user than the run's root"),
            owner.success(),
            &format!("{file} is owned by another user"),
        );
        step(&format!("{kind} is running as pid {}", daemon.id()));
        match end {
            "ok" => Ok(()),
            "err" => Err(format!("{kind} started; failing on purpose")),
            "panic" => panic!("{kind} started; panicking on purpose"),
            "wait" => loop {
                std::thread::sleep(Duration::from_secs(60));
            },
            other => Err(format!("unknown end {other:?}")),
        }
    }
}

export!(Daemons);
