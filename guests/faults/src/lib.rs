//! A scenario that fails on purpose, in the way its first argument names, after building a
//! small lab (so each failure also shows the lab is torn down):
//! `err`, `panic`, `check`, `bad-name`, `bad-address`, `denied`, `dup-name`, `ok`.

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
        step(&format!("Build a lab, then fail: {mode}"));
        let a = Netns::create("ns01")?;
        let b = Netns::create("ns02")?;
        let (va, vb) = Link::veth("ns01-veth0", &a, "ns02-veth0", &b)?;
        va.set_up()?;
        vb.set_up()?;
        match mode {
            "ok" => Ok(()),
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
