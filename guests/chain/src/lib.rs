//! A chain of N namespaces (`-- --n N`, default 10), each joined to the next by a veth pair with
//! addresses on both ends: the lab bench/run.sh times against its lower bound and `ip`.

use nslab_sdk::prelude::*;

struct Chain;

impl Guest for Chain {
    fn describe() -> Info {
        info(
            "chain",
            "N namespaces in a chain of veth pairs (--n N), for benchmarks",
            &[],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let n: usize = Args::new(args).get_or("--n", 10)?;
        ensure!((2..=4000).contains(&n), "--n must be 2 to 4000, not {n}");
        step(&format!("{n} namespaces in a chain"));
        let mut prev: Option<Netns> = None;
        for i in 0..n {
            let ns = Netns::create(&format!("c{i}"))?;
            if let Some(p) = &prev {
                let (a, b) = Link::veth("right", p, "left", &ns)?;
                // 10.x.y.1/30 and .2/30: one /30 per pair.
                let (hi, lo) = ((i >> 6) & 0xff, (i & 0x3f) << 2);
                a.add_address(&format!("10.{hi}.{lo}.1/30"))?;
                b.add_address(&format!("10.{hi}.{}.2/30", lo))?;
                a.set_up()?;
                b.set_up()?;
            }
            prev = Some(ns);
        }
        check(
            "the chain is built",
            names().len() == n,
            &format!("{} namespaces", names().len()),
        );
        Ok(())
    }
}

export!(Chain);
