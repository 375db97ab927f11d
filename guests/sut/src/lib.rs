//! The program under test in a lab: a program the operator built and named by path
//! (`runner run --allow-exec ./udp-echo sut.wasm`), run by its name. Here it is a UDP echo
//! server in one namespace, and its own client in the other; the scenario waits for the
//! server to say it is ready instead of sleeping.
//!
//! The program (tests/fixtures/udp-echo.c) takes `serve PORT` or `send ADDR PORT TEXT`.

use nslab_sdk::prelude::*;

struct Sut;

const PROGRAM: &str = "udp-echo";

impl Guest for Sut {
    fn describe() -> Info {
        info(
            "sut",
            "a program under test (udp-echo, allowed by path) as server and client across a veth pair",
            &[PROGRAM],
        )
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        step("Two namespaces joined by a veth pair");
        let server = Netns::create("server")?;
        let client = Netns::create("client")?;
        let (s, c) = Link::veth("srv0", &server, "cli0", &client)?;
        s.add_address("10.5.0.1/24")?;
        c.add_address("10.5.0.2/24")?;
        s.set_up()?;
        c.set_up()?;

        step("Start the server and wait until it says it is ready");
        let serving = server.spawn(PROGRAM, ["serve", "7777"])?;
        let ready = serving.wait_for_line("ready", 5_000)?;
        check("the server is ready", true, &ready);

        step("Send from the client and read the echo");
        let out = client.exec(PROGRAM, ["send", "10.5.0.1", "7777", "hello lab"])?;
        check(
            "the echo comes back",
            out.success() && out.stdout_text().trim() == "hello lab",
            &format!("exit {}: {}", out.status, out.stdout_text().trim()),
        );
        serving.kill()?;
        let (printed, _) = serving.output_so_far();
        let printed = String::from_utf8_lossy(&printed).into_owned();
        check(
            "the server saw the client",
            printed.contains("from 10.5.0.2"),
            printed.lines().last().unwrap_or_default(),
        );
        Ok(())
    }
}

export!(Sut);
