//! A scenario whose describe() never returns: `runner inspect` and `runner run` must give up on
//! it at the policy's describe-timeout instead of hanging.

use nslab_sdk::prelude::*;

struct Hangs;

impl Guest for Hangs {
    fn describe() -> Info {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        Ok(())
    }
}

export!(Hangs);
