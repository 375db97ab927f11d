//! A lab rebuilt over and over, as test suites that rebuild a topology per case and failover
//! tests that flap a link do: `--rounds N` times (default 100), make a namespace, a veth pair
//! from it to a namespace kept throughout, give the new end an address, and delete the
//! namespace (its veth pair goes with it). The runner's limits count what the run holds, not
//! what it has made (issue 32), and bench/churn.sh times a round against the same loop by hand.

use nslab_sdk::prelude::*;
use nslab_sdk::{delete, names};

struct Churn;

impl Guest for Churn {
    fn describe() -> Info {
        info(
            "churn",
            "makes and deletes a namespace with a veth pair N times (--rounds N), for limits and benchmarks",
            &[],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let rounds: usize = Args::new(args).get_or("--rounds", 100)?;
        ensure!(
            (1..=100_000).contains(&rounds),
            "--rounds must be 1 to 100000, not {rounds}"
        );
        step(&format!("{rounds} rounds of a namespace made and deleted"));
        let keep = Netns::create("keep")?;
        for _ in 0..rounds {
            let c = Netns::create("c")?;
            let (v, _w) = Link::veth("v", &c, "w", &keep)?;
            v.add_address("10.1.0.1/24")?;
            delete(c)?;
        }
        check(
            &format!("{rounds} rounds ran"),
            names() == ["keep"],
            &format!("the lab holds {:?}", names()),
        );
        Ok(())
    }
}

export!(Churn);
