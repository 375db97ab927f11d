//! The ELF loader as a way past the allowlist (issue 32): Landlock's execute right covers
//! `execve`, and the loader must have it for every dynamically linked program, so handed to
//! the loader as an argument any host program could run. `loader LOADER` declares `env`,
//! `timeout` and `python3` (harmless-looking tools a lab uses) and tries four routes to `id`,
//! which it never declared: `env LOADER /usr/bin/id`, `timeout 5 LOADER /bin/sh -c 'echo uid=shell-ran'`,
//! python3's `os.execv` on the loader, and a copy of `id` the scenario gave its namespace
//! with `write-file`, run through the loader. Each check passes only if nothing printed `uid=`.

use nslab_sdk::prelude::*;

struct Loader;

impl Guest for Loader {
    fn describe() -> Info {
        info(
            "loader",
            "tries to run an undeclared program through the ELF loader, four ways",
            &["env", "timeout", "python3", "cat"],
        )
    }

    fn run(args: Vec<String>) -> Result<(), String> {
        let loader = args
            .first()
            .cloned()
            .unwrap_or_else(|| "/lib64/ld-linux-x86-64.so.2".into());
        let ns = Netns::create("a")?;
        step("Give the namespace a copy of id (its bytes as cat prints them)");
        let id = ns.run(Cmd::new("cat", ["/usr/bin/id"]).quiet())?.stdout;
        ensure!(id.starts_with(b"\x7fELF"), "cat did not print an ELF file");
        ns.write_file("/tmp/id", &id, 0o755)?;
        let python = format!("import os; os.execv({loader:?}, [{loader:?}, '/usr/bin/id'])");
        let routes: [(&str, Cmd); 4] = [
            ("env", Cmd::new("env", [loader.as_str(), "/usr/bin/id"])),
            (
                "timeout",
                // The shell itself is the undeclared program here: it says so if it runs.
                Cmd::new(
                    "timeout",
                    ["5", loader.as_str(), "/bin/sh", "-c", "echo uid=shell-ran"],
                ),
            ),
            ("python3", Cmd::new("python3", ["-c", python.as_str()])),
            ("write-file", Cmd::new("env", [loader.as_str(), "/tmp/id"])),
        ];
        for (route, cmd) in routes {
            step(&format!("Run id through the loader ({route})"));
            let out = ns.run(cmd)?;
            let printed = out.stdout_text();
            check(
                &format!("{route}: id never ran"),
                !printed.contains("uid="),
                &format!("{} {}", printed.trim(), out.stderr_text().trim()),
            );
        }
        // The allowed programs themselves still run.
        let out = ns.run(Cmd::new(
            "python3",
            ["-c", "import ctypes, socket; print('python ok')"],
        ))?;
        check(
            "python3 runs, with its modules",
            out.stdout_text().contains("python ok"),
            out.stderr_text().trim(),
        );
        Ok(())
    }
}

export!(Loader);
