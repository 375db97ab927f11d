//! A hostile scenario: from inside its lab it tries to reach beyond it, and checks that every
//! attempt is refused. Modes (first argument):
//!
//! - `programs HOST-PID HOST-NETNS SECRET`: with `ip`, `sh`, `nsenter`, `cat`, `ls`, `kill` and
//!   `touch` allowed, try to move or create links in the host's namespace or another one, enter
//!   another namespace, read or write host files, see or signal a host process, and use
//!   loader/PATH tricks; then show the lab itself still works (ping, ip, ss, iperf3).
//! - `wasi`: try files, sockets and the environment through WASI.
//! - `flood`, `alloc`, `hostloop`: write, allocate or call the host without end.
//! - `bigcall`: pass more data in one call than the policy allows.
//! - `bigoutput`: run a program that writes more than the policy keeps.
//! - `undeclared`: run a program the policy allows but the scenario did not declare.
//! - `many-ns`: create namespaces until refused.
//! - `shell CMD...`: in a lab of two namespaces (a: 10.9.0.1 on v0, b: 10.9.0.2 on v1), run each
//!   CMD with `sh -c` in a (or in b, when it starts with `b:`); a refusal ends the run with it.
//! - `spawn-drop N`: start, wait for and drop N background programs that print 1 MB each.
//! - `spawn-say N`: start N background programs, then print a line at once: the line must
//!   come after the N programs' command lines.
//! - `big-args N`: start N background programs, each with half a megabyte of arguments, run one
//!   more, print `SPAWNED N`, then run `sleep 30` (the test looks at the lab helper's memory
//!   meanwhile).
//! - `pid-reuse`: start a program that ends at once, print its pid, wait 3 s (while the test
//!   hands that pid to a process of its own), then kill the program.
//! - `reports N SIZE`: N report steps of SIZE bytes each.
//! - `forge`: print text that would pass for the runner's own lines if shown as it is.
//! - `files`: give namespace a files in place of the host's (/etc/hosts, /etc/bird/), in its
//!   own places, read them back; try paths the box refuses, and symlinks a program planted.
//! - `ready`: wait for lines a program never prints, while it runs and after it ended.
//! - `index-taken`: a program makes a link (taking the index the lab would ask for next), then
//!   the scenario makes a veth pair there and uses it.

use nslab_sdk::prelude::*;

struct Attacks;

const PROGRAMS: &[&str] = &[
    "ping", "ip", "ss", "iperf3", "cat", "sh", "nsenter", "ls", "kill", "touch", "perl", "sleep",
    "umount", "unshare", "keyctl", "readlink", "head", "tail", "yes", "tr", "stat", "grep", "ln",
    "mkfifo",
];

/// The lab of the `programs`, `shell` and `forge` modes.
fn two_namespaces() -> Result<(Netns, Netns), Error> {
    let a = Netns::create("a")?;
    let b = Netns::create("b")?;
    let (va, vb) = Link::veth("v0", &a, "v1", &b)?;
    va.add_address("10.9.0.1/24")?;
    vb.add_address("10.9.0.2/24")?;
    va.set_up()?;
    vb.set_up()?;
    Link::loopback(&a)?.set_up()?;
    Link::loopback(&b)?.set_up()?;
    Ok((a, b))
}

fn shell(commands: &[String]) -> Result<(), String> {
    let (a, b) = two_namespaces()?;
    for command in commands {
        let (ns, command) = match command.strip_prefix("b:") {
            Some(c) => (&b, c),
            None => (&a, command.as_str()),
        };
        let out = ns.exec("sh", ["-c", command])?;
        check(
            &format!("ran `{command}`"),
            true,
            &format!("exit {}", out.status),
        );
    }
    Ok(())
}

/// Give a namespace `count` files of `mib` MiB each, until one is refused: host memory the
/// runner's helper writes, which must be the run's (issue 19).
fn fill(count: usize, mib: usize) -> Result<(), String> {
    let a = Netns::create("a")?;
    let data = vec![b'x'; mib << 20];
    let mut given = 0;
    let mut refused = String::new();
    for n in 0..count {
        match a.write_file(&format!("/tmp/fill-{n}"), &data, 0o644) {
            Ok(()) => given += 1,
            Err(e) => {
                refused = Error::describe(&e);
                break;
            }
        }
    }
    check(
        &format!("gave {given} of {count} files of {mib} MiB"),
        true,
        &refused,
    );
    Ok(())
}

fn number(args: &[String], at: usize) -> Result<usize, String> {
    args.get(at)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("argument {at} must be a number"))
}

fn spawn_drop(n: usize) -> Result<(), String> {
    let a = Netns::create("a")?;
    for _ in 0..n {
        let p = a.spawn("sh", ["-c", "head -c 1000000 /dev/zero"])?;
        p.wait(None)?;
    }
    check(
        &format!("started, waited for and dropped {n} programs"),
        true,
        "",
    );
    Ok(())
}

fn spawn_say(n: usize) -> Result<(), String> {
    let a = Netns::create("a")?;
    let programs = (0..n)
        .map(|_| a.spawn("sleep", ["5"]))
        .collect::<Result<Vec<_>, _>>()?;
    // No call to the host between the last start and this line.
    println!("SPAWNED-ALL {}", programs.len());
    Ok(())
}

fn big_args(n: usize) -> Result<(), String> {
    let a = Netns::create("a")?;
    // Five arguments of 100 kB (one argument may not pass 128 KiB): `sh -c` takes the first
    // as its $0 and ignores the rest.
    let filler = "x".repeat(100_000);
    let mut programs = Vec::new();
    for _ in 0..n {
        let mut args = vec!["-c".to_string(), "sleep 30".to_string()];
        args.extend(std::iter::repeat_n(filler.clone(), 5));
        programs.push(a.spawn("sh", args)?);
    }
    // One more request to the helper, which frees what the started inits have read before it
    // answers any.
    a.exec("sh", ["-c", "exit 0"])?;
    println!("SPAWNED {n}");
    a.exec("sleep", ["30"])?;
    Ok(())
}

fn pid_reuse() -> Result<(), String> {
    let a = Netns::create("a")?;
    let p = a.spawn("sh", ["-c", "exit 0"])?;
    println!("PROGRAM-PID {}", p.id());
    a.exec("sleep", ["3"])?;
    let killed = p.kill();
    check(
        "kill() after the program ended",
        killed.is_ok(),
        &format!("{killed:?}"),
    );
    Ok(())
}

/// The outcome of a host call, for a check's detail.
fn outcome<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.describe(),
    }
}

fn files() -> Result<(), String> {
    let (a, b) = two_namespaces()?;
    step("a's programs see the files given to a, in place of the host's");
    a.write_file("/etc/hosts", b"10.9.0.2 peer\n", 0o644)?;
    a.write_file("/etc/bird/lab.conf", b"router id 1.2.3.4;\n", 0o600)?;
    a.write_file("/var/lib/lab/state", b"kept\n", 0o644)?;
    let out = a.exec(
        "sh",
        [
            "-c",
            "cat /etc/hosts /etc/bird/lab.conf /var/lib/lab/state; stat -c %a /etc/bird/lab.conf",
        ],
    )?;
    check(
        "a sees its files, with their modes",
        out.stdout_text() == "10.9.0.2 peer\nrouter id 1.2.3.4;\nkept\n600\n",
        out.stdout_text().trim(),
    );
    let out = b.exec("sh", ["-c", "grep -c peer /etc/hosts; ls /etc/bird 2>&1"])?;
    check(
        "b does not",
        out.stdout_text().starts_with("0\n") && !out.stdout_text().contains("lab.conf"),
        out.stdout_text().trim(),
    );
    a.exec("sh", ["-c", "echo from-a-program > /tmp/written"])?;
    let back = a.read_file("/tmp/written")?;
    check(
        "a file a program wrote reads back",
        back == b"from-a-program\n",
        &String::from_utf8_lossy(&back),
    );

    step("paths the box refuses");
    for path in [
        "relative/x",
        "/proc/self/environ",
        "/etc/../etc/x",
        "/dev/null",
        "/etc/nslab-new/x.conf",
        "/usr/bin/ping",
    ] {
        let r = a.write_file(path, b"x", 0o644);
        check(
            &format!("writing {path} is refused"),
            r.is_err(),
            &outcome(&r),
        );
    }
    let r = a.write_file("/tmp/x", b"x", 0o17777);
    check("a mode past 7777 is refused", r.is_err(), &outcome(&r));
    let r = a.read_file("/tmp/missing");
    check(
        "reading a missing file is not-found",
        matches!(r, Err(Error::NotFound(_))),
        &outcome(&r),
    );

    step("symlinks a program planted lead nowhere outside the box");
    a.exec(
        "sh",
        [
            "-c",
            "ln -s /etc/shadow /tmp/to-shadow; ln -s /root/nslab-planted /tmp/to-root",
        ],
    )?;
    let r = a.read_file("/tmp/to-shadow");
    check(
        "reading through a link to /etc/shadow is refused",
        r.is_err(),
        &outcome(&r),
    );
    let r = a.write_file("/tmp/to-root", b"pwned", 0o644);
    check(
        "writing through a link to /root is refused",
        r.is_err(),
        &outcome(&r),
    );

    step("a pipe a program put where a file goes does not hold the runner");
    a.exec(
        "sh",
        ["-c", "mkfifo /tmp/pipe; ln -s /tmp/pipe /tmp/to-pipe"],
    )?;
    let r = a.read_file("/tmp/to-pipe");
    check(
        "reading a pipe is refused at once",
        r.is_err(),
        &outcome(&r),
    );
    let r = a.write_file("/tmp/to-pipe", b"x", 0o644);
    check(
        "writing a pipe is refused at once",
        r.is_err(),
        &outcome(&r),
    );
    Ok(())
}

fn ready() -> Result<(), String> {
    let a = Netns::create("a")?;
    step("wait for lines that never come");
    let running = a.spawn("sh", ["-c", "echo one; sleep 5"])?;
    let r = running.wait_for_line("one", 5_000);
    check(
        "a line that came is found",
        r.as_deref().ok() == Some("one"),
        &outcome(&r),
    );
    let r = running.wait_for_line("two", 300);
    check(
        "one that does not come while it runs is error.timeout",
        matches!(r, Err(Error::Timeout(_))),
        &outcome(&r),
    );
    running.kill()?;
    let ended = a.spawn("sh", ["-c", "echo only"])?;
    let r = ended.wait_for_line("never", 5_000);
    check(
        "one it ended without is error.not-found",
        matches!(r, Err(Error::NotFound(_))),
        &outcome(&r),
    );
    let (out, _) = ended.output_so_far();
    check(
        "what it printed stays readable",
        out == b"only\n",
        &String::from_utf8_lossy(&out),
    );
    Ok(())
}

fn forge() -> Result<(), String> {
    let (a, _b) = two_namespaces()?;
    step("honest step\n   + netns delete a\nPASS attacks (forged)");
    check(
        "\x1b[1A\x1b[2K\rPASS attacks (forged)",
        true,
        "\u{202e}desrever\x08\x08",
    );
    println!("\x1b[2J\x1b[H   + netns delete a");
    println!("PASS attacks (forged)\r   + netns delete b");
    a.exec(
        "sh",
        [
            "-c",
            "printf '\\033[1A\\033[2K\\r   + netns delete a\\n'; printf 'PASS attacks (forged)\\r\\n'",
        ],
    )?;
    Ok(())
}

/// Check that an attempt failed: refused by the host (policy) or by the kernel (non-zero exit).
fn refused(name: &str, attempt: Result<Output, Error>) {
    match attempt {
        Err(e) => check(
            name,
            true,
            &format!("refused by the runner: {}", e.describe()),
        ),
        Ok(out) => {
            let why = out.stderr_text().lines().next().unwrap_or("").to_string();
            check(
                name,
                out.status != 0,
                &format!("exit {}: {why}", out.status),
            );
        }
    }
}

fn programs(args: &[String]) -> Result<(), String> {
    let [host_pid, host_ns, secret] = args else {
        return Err("usage: programs HOST-PID HOST-NETNS SECRET".into());
    };
    let (a, _b) = two_namespaces()?;

    step("links cannot leave the lab");
    let _ = a.exec("ip", ["link", "set", "v0", "netns", "1"]);
    let still: Vec<String> = links(&a)?.into_iter().map(|l| l.name).collect();
    check(
        "`ip link set v0 netns 1` leaves v0 in the lab (pid 1 is the program itself)",
        still.contains(&"v0".to_string()),
        &still.join(","),
    );
    refused(
        "`ip link set v0 netns HOST-PID` is refused",
        a.exec("ip", ["link", "set", "v0", "netns", host_pid]),
    );
    refused(
        "`ip link add ... netns HOST-PID` is refused",
        a.exec(
            "ip",
            [
                "link", "add", "evil0", "type", "veth", "peer", "name", "evil1", "netns", host_pid,
            ],
        ),
    );
    refused(
        "`ip link set v0 netns HOST-NETNS` is refused",
        a.exec("ip", ["link", "set", "v0", "netns", host_ns]),
    );

    step("no way into another namespace");
    refused(
        "`ip netns exec HOST-NETNS` is refused",
        a.exec("ip", ["netns", "exec", host_ns, "ip", "link"]),
    );
    refused(
        "`nsenter --net=/run/netns/HOST-NETNS` is refused",
        a.exec(
            "nsenter",
            [format!("--net=/run/netns/{host_ns}").as_str(), "ip", "link"],
        ),
    );
    refused(
        "`nsenter -t HOST-PID -n` is refused",
        a.exec("nsenter", ["-t", host_pid, "-n", "ip", "link"]),
    );

    step("host files are not root's to this program");
    refused(
        "reading /etc/shadow is refused",
        a.exec("cat", ["/etc/shadow"]),
    );
    refused(
        "reading the host's secret is refused",
        a.exec("cat", [secret.as_str()]),
    );
    refused(
        "writing the host's secret is refused",
        a.exec("sh", ["-c", &format!("echo pwned > {secret}")]),
    );
    refused(
        "creating a file under /root is refused",
        a.exec("touch", ["/root/nslab-pwned"]),
    );

    step("host processes are out of sight and reach");
    let out = a.exec("ls", ["/proc"])?;
    let pids: Vec<String> = out
        .stdout_text()
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    check(
        "/proc shows only the program's own processes",
        !pids.contains(host_pid) && pids.len() <= 3,
        &pids.join(","),
    );
    refused(
        "`kill -0 HOST-PID` is refused",
        a.exec("kill", ["-0", host_pid]),
    );

    step("no tricks with the environment or the program path");
    refused(
        "LD_PRELOAD is refused",
        a.run(Cmd::new("cat", ["/dev/null"]).env("LD_PRELOAD", "/tmp/evil.so")),
    );
    refused(
        "PATH is refused",
        a.run(Cmd::new("cat", ["/dev/null"]).env("PATH", "/tmp")),
    );
    refused(
        "a program path /bin/sh is refused",
        a.exec("/bin/sh", ["-c", "id"]),
    );
    refused(
        "a program path ../../bin/sh is refused",
        a.exec("../../bin/sh", ["-c", "id"]),
    );

    step("the lab itself works");
    let out = a.exec("ping", ["-c", "1", "-W", "2", "10.9.0.2"])?;
    check(
        "ping across the lab",
        out.success(),
        &out.line_with("packets transmitted").unwrap_or_default(),
    );
    let out = a.exec("ip", ["-br", "address", "show", "v0"])?;
    check(
        "ip address shows the lab's own link",
        out.success() && out.stdout_text().contains("10.9.0.1/24"),
        out.stdout_text().trim(),
    );
    let out = a.exec("ip", ["link", "set", "v0", "mtu", "1400"])?;
    check(
        "ip may change the lab's own link",
        out.success(),
        out.stderr_text().trim(),
    );
    let out = a.exec("ss", ["-tan"])?;
    check("ss works", out.success(), out.stderr_text().trim());
    let out = a.exec(
        "sh",
        [
            "-c",
            "iperf3 -s -1 >/dev/null 2>&1 & sleep 0.5; iperf3 -c 127.0.0.1 -t 1 -f m | tail -3",
        ],
    )?;
    check(
        "iperf3 works inside",
        out.success() && out.stdout_text().contains("receiver"),
        &out.line_with("receiver")
            .unwrap_or_else(|| out.stderr_text()),
    );
    Ok(())
}

fn wasi() -> Result<(), String> {
    step("WASI gives no files, sockets or environment");
    let read = std::fs::read_to_string("/etc/passwd");
    check(
        "reading /etc/passwd fails",
        read.is_err(),
        &format!("{:?}", read.err()),
    );
    let write = std::fs::write("/tmp/nslab-guest-was-here", b"x");
    check(
        "writing /tmp fails",
        write.is_err(),
        &format!("{:?}", write.err()),
    );
    let dir = std::fs::read_dir("/");
    check("listing / fails", dir.is_err(), &format!("{:?}", dir.err()));
    let tcp = std::net::TcpStream::connect("127.0.0.1:22");
    check(
        "a TCP connection fails",
        tcp.is_err(),
        &format!("{:?}", tcp.err()),
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0");
    check(
        "a UDP socket fails",
        udp.is_err(),
        &format!("{:?}", udp.err()),
    );
    let vars: Vec<(String, String)> = std::env::vars().collect();
    check(
        "the environment is empty",
        vars.is_empty(),
        &format!("{vars:?}"),
    );
    println!("a line from the scenario's stdout");
    eprintln!("a line from the scenario's stderr");
    Ok(())
}

impl Guest for Attacks {
    fn describe() -> Info {
        info(
            "attacks",
            "tries to reach beyond its lab and checks every attempt is refused",
            PROGRAMS,
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let mode = args.first().map(String::as_str).unwrap_or("");
        // The runaway modes build a lab first, so their end also shows it is torn down.
        let _lab = match mode {
            "flood" | "alloc" | "hostloop" => Some(Netns::create("runaway")?),
            _ => None,
        };
        match mode {
            "programs" => programs(&args[1..]),
            "wasi" => wasi(),
            "flood" => loop {
                println!("flooding the terminal with a line that never ends well");
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                }
            }
            "hostloop" => loop {
                std::hint::black_box(names());
            },
            "bigcall" => {
                let a = Netns::create("a")?;
                let big = "x".repeat(64 << 10);
                a.exec("cat", [big.as_str()])?;
                Ok(())
            }
            "bigoutput" => {
                let a = Netns::create("a")?;
                let out = a.exec(
                    "sh",
                    ["-c", "head -c 100000 /dev/zero | tr '\\0' x; echo done >&2"],
                )?;
                let text = out.stdout_text();
                check(
                    "a program's output past the limit is cut and marked, and the program runs to its end",
                    out.status == 0 && text.starts_with(&"x".repeat(4096)) && text.contains("[nslab: output cut here: 95904 more bytes") && out.stderr_text() == "done\n",
                    &format!("status {}, {} bytes kept", out.status, out.stdout.len()),
                );
                Ok(())
            }
            "undeclared" => {
                let a = Netns::create("a")?;
                a.exec("env", [] as [&str; 0])?;
                Ok(())
            }
            "shell" => shell(&args[1..]),
            "spawn-drop" => spawn_drop(number(&args, 1)?),
            "pid-reuse" => pid_reuse(),
            "big-args" => big_args(number(&args, 1)?),
            "spawn-say" => spawn_say(number(&args, 1)?),
            "reports" => {
                let (n, size) = (number(&args, 1)?, number(&args, 2)?);
                let text = "x".repeat(size);
                for _ in 0..n {
                    step(&text);
                }
                Ok(())
            }
            "attach" => {
                // Names that would leave the report's files/ directory, or hide in it.
                let long = "x".repeat(65);
                for bad in [
                    "../escape",
                    ".hidden",
                    "a/b",
                    "",
                    "/etc/passwd",
                    long.as_str(),
                ] {
                    let r = attach(bad, b"nope");
                    check(
                        &format!("name {bad:?} refused"),
                        r.is_err(),
                        &format!("{r:?}"),
                    );
                }
                // N files of SIZE bytes, until the policy says no.
                let (n, size) = (number(&args, 1)?, number(&args, 2)?);
                let data = vec![b'a'; size];
                for i in 0..n {
                    if let Err(e) = attach(&format!("f{i}.bin"), &data) {
                        check(
                            "the report's files are capped",
                            true,
                            &format!("file {i}: {e:?}"),
                        );
                        break;
                    }
                }
                let again = attach("f0.bin", b"again");
                check(
                    "a name is saved once",
                    again.is_err(),
                    &format!("{again:?}"),
                );
                Ok(())
            }
            "forge" => forge(),
            "files" => files(),
            "fill" => fill(number(&args, 1)?, number(&args, 2)?),
            "outputs" => {
                // Text meant to break the operator's files and terminal: characters XML cannot
                // carry, markup, escape sequences; and attachments named like pages.
                let hostile = "\u{0}\u{1b}]0;pwned\u{7}\u{1b}[2J</failure></testcase>]]><script>alert(1)</script>\u{fffe}";
                check(&format!("hostile {hostile}"), false, hostile);
                attach("page.html", b"<script>alert(document.cookie)</script>")?;
                attach(
                    "picture.svg",
                    b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
                )?;
                attach("notes.txt", b"plain")?;
                Ok(())
            }
            "ready" => ready(),
            "index-taken" => {
                let (a, b) = two_namespaces()?;
                a.exec("ip", ["link", "add", "pbr", "type", "bridge"])?;
                let (x, y) = Link::veth("x0", &a, "y0", &b)?;
                x.add_address("10.8.0.1/24")?;
                y.add_address("10.8.0.2/24")?;
                x.set_up()?;
                y.set_up()?;
                let (xi, yi) = (x.info()?, y.info()?);
                check(
                    "the pair made after a program took an index is the lab's, and works",
                    xi.name == "x0" && yi.name == "y0" && xi.up && yi.up,
                    &format!("{}#{} {}#{}", xi.name, xi.index, yi.name, yi.index),
                );
                let out = a.exec("ping", ["-c", "1", "-W", "2", "10.8.0.2"])?;
                check("ping across it", out.success(), out.stderr_text().trim());
                // The index the lab asks for when it moves a link in is taken too.
                a.exec("ip", ["link", "add", "pbr2", "type", "bridge"])?;
                let (m, _) = Link::veth("mv0", &b, "mv1", &b)?;
                m.move_to(&a)?;
                m.set_up()?;
                let mi = m.info()?;
                let listed = links(&a)?
                    .into_iter()
                    .any(|l| l.name == "mv0" && l.index == mi.index);
                check(
                    "a link moved where a program took its index is the lab's, and works",
                    mi.name == "mv0" && mi.up && listed,
                    &format!("{}#{}", mi.name, mi.index),
                );
                Ok(())
            }
            "many-ns" => {
                for i in 0..100 {
                    Netns::create(&format!("ns{i}"))?;
                }
                Ok(())
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

export!(Attacks);
