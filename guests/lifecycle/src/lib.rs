//! A scenario that builds a small lab and then waits to be stopped, in the way its first
//! argument names: `slow` (pauses between steps), `hang` (runs `sleep 30`), `spin` (loops without
//! calling the host), `orphan` (leaves a background `sleep` behind and checks it runs as PID 2,
//! under the runner's init of its PID namespace),
//! `orphan-hang` (the same, then waits in `sleep 30`), `ok`. Run it with `--allow-exec sleep,sh`.

use std::time::Duration;

use nslab_sdk::prelude::*;

struct Lifecycle;

impl Guest for Lifecycle {
    fn describe() -> Info {
        info(
            "lifecycle",
            "builds a lab, then waits to be stopped as its first argument says",
            &["sleep", "sh"],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let mode = args.first().map(String::as_str).unwrap_or("ok");
        let pause = || {
            if mode == "slow" {
                std::thread::sleep(Duration::from_millis(400));
            }
        };
        step(&format!("Build a lab, then: {mode}"));
        let a = Netns::create("ns01")?;
        pause();
        let b = Netns::create("ns02")?;
        pause();
        let (va, vb) = Link::veth("ns01-veth0", &a, "ns02-veth0", &b)?;
        pause();
        va.set_up()?;
        vb.set_up()?;
        match mode {
            "ok" | "slow" => Ok(()),
            "hang" => {
                a.exec("sleep", ["30"])?;
                Ok(())
            }
            "spin" => {
                step("spinning without calling the host");
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "orphan-hang" => {
                a.exec("sh", ["-c", "sleep 300 & sleep 30"])?;
                Ok(())
            }
            "orphan" => {
                let out = a.exec("sh", ["-c", "sleep 300 & echo $$"])?;
                let pid = out.stdout_text().trim().to_string();
                check(
                    "the program is PID 2 of its own namespace, under the run's init",
                    pid == "2",
                    &pid,
                );
                Ok(())
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

export!(Lifecycle);
