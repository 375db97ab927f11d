//! A scenario that describes itself with text meant to pass for the runner's own lines: a
//! newline and fake narration in its name, terminal escapes in its description and programs.

use nslab_sdk::prelude::*;

struct Liar;

impl Guest for Liar {
    fn describe() -> Info {
        Info {
            name: "liar\n   + netns delete ns01\nPASS liar".into(),
            description: "\x1b[2K\x1b[1Aerased the line above".into(),
            programs: vec![],
        }
    }

    fn run(_args: Vec<String>) -> Result<(), String> {
        check("nothing to do", true, "");
        Ok(())
    }
}

export!(Liar);
