//! A scenario that declares only `ip`, then uses it to start what it did not declare: `ip netns
//! exec` runs any program it can find, unless the kernel enforces the allowlist. `allowlist
//! PROGRAM [ARGS...]` asks `ip -batch` to run PROGRAM in a namespace it names itself (made with
//! `netns add`, or, where that is refused, attached from its own), then checks that PROGRAM
//! left no trace: it is given `-c 'echo ran > /tmp/ran'` when it is a shell.

use nslab_sdk::prelude::*;

struct Allowlist;

impl Guest for Allowlist {
    fn describe() -> Info {
        info(
            "allowlist",
            "declares only ip, and tries to start other programs through ip netns exec",
            &["ip"],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let program = args.first().map(String::as_str).unwrap_or("sh");
        step(&format!("Start {program} through ip netns exec"));
        let ns = Netns::create("a")?;
        // `ip` is PID 2 of its PID namespace: `netns attach` names its own namespace.
        let batch = format!(
            "netns add own\n\
             netns attach mine 2\n\
             netns exec own {program} -c 'echo ran > /tmp/ran'\n\
             netns exec mine {program} -c 'echo ran > /tmp/ran'\n"
        );
        let out = ns.run(Cmd::new("ip", ["-force", "-batch", "-"]).stdin(batch))?;
        let ran = ns.read_file("/tmp/ran").is_ok();
        check(
            &format!("{program} never ran"),
            !ran,
            out.stderr_text().trim(),
        );
        Ok(())
    }
}

export!(Allowlist);
