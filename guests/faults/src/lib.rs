//! A scenario that fails on purpose, in the way its first argument names, after building a
//! small lab (so each failure also shows the lab is torn down):
//! `err`, `panic`, `check`, `bad-name`, `bad-address`, `denied`, `dup-name`, `ok`;
//! and for the lifecycle tests: `slow` (pauses between steps), `hang` (runs `sleep 30`, needs
//! `--allow-exec sleep`), `spin` (loops without calling the host), `orphan` (leaves a
//! background `sleep` behind, needs `--allow-exec sh,sleep`), `orphan-hang` (the same, then
//! waits in `sleep 30`).

use std::time::Duration;

use nslab_sdk::prelude::*;

struct Faults;

impl Guest for Faults {
    fn describe() -> Info {
        info(
            "faults",
            "fails on purpose, as its first argument says",
            &["ping"],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let mode = args.first().map(String::as_str).unwrap_or("ok");
        let pause = || {
            if mode == "slow" {
                std::thread::sleep(Duration::from_millis(400));
            }
        };
        step(&format!("Build a lab, then fail: {mode}"));
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
                    "the program is PID 1 of its own namespace",
                    pid == "1",
                    &pid,
                );
                Ok(())
            }
            "err" => Err("deliberate failure from the scenario".to_string()),
            "panic" => panic!("deliberate panic in the scenario"),
            "check" => {
                check("one plus one is three", 1 + 1 == 3, "it is 2");
                check("this one passes", true, "");
                Ok(())
            }
            "bad-name" => {
                Netns::create("sixteen-chars-xx")?;
                Ok(())
            }
            "bad-address" => {
                va.add_address("192.168.0.300/24")?;
                Ok(())
            }
            "denied" => {
                a.exec("nc", ["-l", "4242"])?;
                Ok(())
            }
            "dup-name" => {
                Netns::create("ns01")?;
                Ok(())
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

export!(Faults);
