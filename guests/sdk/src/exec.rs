use crate::bindings::nslab::lab::exec::{run, run_quiet, spawn, Command, Output, Process};
use crate::bindings::nslab::lab::netns::Namespace;
use crate::bindings::nslab::lab::route::{self, RouteDetail, RouteInfo};
use crate::bindings::nslab::lab::types::Error;

/// A program to run, with the options `ip netns exec` does not have on its command line.
#[derive(Debug, Clone)]
pub struct Cmd {
    command: Command,
    quiet: bool,
}

impl Cmd {
    pub fn new<I, S>(program: &str, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Cmd {
            command: Command {
                program: program.to_string(),
                args: args.into_iter().map(|a| a.as_ref().to_string()).collect(),
                env: Vec::new(),
                stdin: None,
                timeout_ms: None,
            },
            quiet: false,
        }
    }

    /// Do not echo it to the terminal (a poll): its output is still returned, and kept in
    /// the run's account and its --json events.
    pub fn quiet(mut self) -> Cmd {
        self.quiet = true;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.command.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.command.stdin = Some(data.into());
        self
    }

    pub fn timeout_ms(mut self, ms: u32) -> Cmd {
        self.command.timeout_ms = Some(ms);
        self
    }
}

/// `ns.exec("ping", ["-c", "3", "192.168.0.2"])`, as `ip netns exec ns ping -c 3 ...`.
pub trait NetnsExt {
    fn exec<I, S>(&self, program: &str, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>;
    fn run(&self, cmd: Cmd) -> Result<Output, Error>;
    /// A link the run made in this namespace (or `lo`), by its name here: handy after making
    /// it in a helper function.
    fn link(&self, name: &str) -> Result<crate::Link, Error>;
    /// Start a program in the background (`ip netns exec ns PROGRAM &`); see [`Process`].
    fn spawn<I, S>(&self, program: &str, args: I) -> Result<Process, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>;
    /// `ip route add DEST [via GATEWAY] [dev DEVICE]` inside this namespace.
    fn add_route(
        &self,
        destination: &str,
        gateway: Option<&str>,
        device: Option<&str>,
    ) -> Result<(), Error>;
    /// `ip route del ...` inside this namespace.
    fn remove_route(
        &self,
        destination: &str,
        gateway: Option<&str>,
        device: Option<&str>,
    ) -> Result<(), Error>;
    /// `ip route show` (IPv4 then IPv6) inside this namespace.
    fn routes(&self) -> Result<Vec<RouteInfo>, Error>;
    /// `ip route show table all`, with what a check needs: protocol ("ospf", "bird"), metric,
    /// table, and every next hop of a multipath route.
    fn route_details(&self) -> Result<Vec<RouteDetail>, Error>;
    /// Run `cmd` quietly until it succeeds (exit status 0), for at most `timeout`: how long
    /// that took. Readiness in one line, e.g. until a daemon answers on its control socket:
    /// `router.wait_until_ok(Cmd::new("vtysh", ["-d", "zebra", "-c", "show version"]), secs(10))`.
    /// error.timeout says what the command last printed.
    fn wait_until_ok(
        &self,
        cmd: Cmd,
        timeout: std::time::Duration,
    ) -> Result<std::time::Duration, Error>;
}

fn route_info(destination: &str, gateway: Option<&str>, device: Option<&str>) -> RouteInfo {
    RouteInfo {
        destination: destination.to_string(),
        gateway: gateway.map(str::to_string),
        device: device.map(str::to_string),
    }
}

impl NetnsExt for Namespace {
    fn exec<I, S>(&self, program: &str, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.run(Cmd::new(program, args))
    }

    fn run(&self, cmd: Cmd) -> Result<Output, Error> {
        match cmd.quiet {
            true => run_quiet(self, &cmd.command),
            false => run(self, &cmd.command),
        }
    }

    fn link(&self, name: &str) -> Result<crate::Link, Error> {
        crate::Link::by_name(self, name)
    }

    fn spawn<I, S>(&self, program: &str, args: I) -> Result<Process, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        spawn(self, &Cmd::new(program, args).command)
    }

    fn add_route(
        &self,
        destination: &str,
        gateway: Option<&str>,
        device: Option<&str>,
    ) -> Result<(), Error> {
        route::add(self, &route_info(destination, gateway, device))
    }

    fn remove_route(
        &self,
        destination: &str,
        gateway: Option<&str>,
        device: Option<&str>,
    ) -> Result<(), Error> {
        route::remove(self, &route_info(destination, gateway, device))
    }

    fn routes(&self) -> Result<Vec<RouteInfo>, Error> {
        route::routes(self)
    }

    fn route_details(&self) -> Result<Vec<RouteDetail>, Error> {
        route::route_details(self)
    }

    fn wait_until_ok(
        &self,
        cmd: Cmd,
        timeout: std::time::Duration,
    ) -> Result<std::time::Duration, Error> {
        let cmd = cmd.quiet();
        let shown = std::iter::once(cmd.command.program.as_str())
            .chain(cmd.command.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let mut last = String::new();
        let waited = crate::wait_until(&shown, timeout, || {
            let out = self.run(cmd.clone())?;
            last = format!("{}{}", out.stdout_text(), out.stderr_text());
            Ok(out.success())
        });
        waited.map_err(|e| match e {
            Error::Timeout(t) => Error::Timeout(format!("{t}; it last said: {}", last.trim())),
            other => other,
        })
    }
}

pub trait OutputExt {
    /// Exited with status 0 within its time limit.
    fn success(&self) -> bool;
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
    /// The first stdout line containing `needle`, trimmed.
    fn line_with(&self, needle: &str) -> Option<String>;
}

impl OutputExt for Output {
    fn success(&self) -> bool {
        self.status == 0 && !self.timed_out
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn line_with(&self, needle: &str) -> Option<String> {
        self.stdout_text()
            .lines()
            .find(|l| l.contains(needle))
            .map(|l| l.trim().to_string())
    }
}
