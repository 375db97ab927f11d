//! A run that holds (`--hold`, `--hold-on-fail`): once the scenario has returned and every
//! output is written, the lab stays up for the operator to step into (`runner shell`, `exec`,
//! `capture`: host/src/enter/), until Ctrl-C, SIGTERM, `runner release` or `--hold-timeout`.
//! The run's deadline no longer counts; the verdict and the exit status are the scenario's,
//! said when the hold begins and given when it ends, when the lab goes as any run's does.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::signals::signal_name;
use super::verdict::{judge, Ended};
use super::{finish, lab_of, outputs, Outcome, Prepared, RunConfig};
use crate::enter::server::{HoldLine, Server, ToHold};
use nslab_lab::Lab;
use nslab_report::account::{Event, Line, RunAccount, SCHEMA};
use nslab_report::console::{Console, Verbosity};

/// When a run holds its lab after the scenario (`runner run --hold`, `--hold-on-fail`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HoldWhen {
    #[default]
    Never,
    Always,
    /// When a check failed, or the scenario returned an error, trapped, passed its deadline
    /// or a limit.
    OnFail,
}

/// The run's control socket and the hold's end of its line.
pub struct Control {
    pub server: Option<Server>,
    pub line: HoldLine,
    pub asks: tokio::sync::mpsc::UnboundedReceiver<ToHold>,
}

impl Control {
    /// Answer on the control socket for `lab`'s run; a run goes on without one (with a
    /// warning) when it cannot be made.
    pub fn start(lab: &Lab, console: &Console) -> Control {
        let (to_hold, asks) = tokio::sync::mpsc::unbounded_channel();
        let line = HoldLine {
            to_hold,
            holding: Default::default(),
        };
        // Beside the run's record, where `runner exec` looks for it.
        let dir = lab.record_dir();
        let server = match Server::start(dir, lab.run_id(), lab.doors(), line.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                console.warn(&format!(
                    "cannot answer at {}: {e}; runner exec, shell and capture cannot step into \
                     this run",
                    crate::enter::socket_path(dir, lab.run_id()).display()
                ));
                None
            }
        };
        Control { server, line, asks }
    }

    /// Stop answering: before the lab is kept or torn down.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

/// Whether a run that ended so holds.
pub fn holds(when: HoldWhen, ended: &Result<(), Ended>, failed_checks: usize) -> bool {
    match (when, ended) {
        (HoldWhen::Never, _) => false,
        // Stopped by the operator, or refused before anything was made: nothing to look at.
        (_, Err(Ended::Signal(_) | Ended::Refused(_))) => false,
        (HoldWhen::Always, _) => true,
        (HoldWhen::OnFail, Ok(())) => failed_checks > 0,
        (HoldWhen::OnFail, Err(_)) => true,
    }
}

/// Say the verdict, write the outputs, hold the lab until released, then end it: the outcome.
pub async fn hold(
    cfg: &RunConfig,
    run: &mut Prepared,
    ended: Result<(), Ended>,
    started: Instant,
    opened: &outputs::Opened,
) -> Outcome {
    let console = &cfg.console;
    let cost = finish::observe(lab_of(&mut run.store), console).await;
    let journal = console.journal().cloned();
    let account = journal.as_ref().map(|j| j.account()).unwrap_or_default();
    let (mut outcome, verdict) = judge(&run.title, &account, ended, started, console, true);
    let lab = lab_of(&mut run.store);
    let id = lab.run_id().to_string();
    let namespaces = lab.namespace_names();
    let timeout = cfg.hold_timeout;
    // The outputs, with the verdict the journal gets only when the hold ends.
    let mut lines = journal.as_ref().map(|j| j.lines()).unwrap_or_default();
    lines.push(Line {
        v: SCHEMA,
        t: journal.as_ref().map_or(0.0, |j| j.elapsed().as_secs_f64()),
        event: verdict.clone(),
    });
    let files = std::mem::take(&mut run.store.data_mut().report.files);
    let written = outputs::write_from(
        &cfg.outputs,
        opened,
        console,
        &files,
        &lines,
        &RunAccount::from_lines(&lines),
    );
    let by = match written {
        Err(why) => {
            console.error(&why);
            outcome = Outcome::CouldNotRun;
            "not held: an output could not be written".to_string()
        }
        Ok(()) if run.control.server.is_none() => "not held: nothing could step in".to_string(),
        Ok(()) => wait(cfg, run, &id, &namespaces, timeout).await,
    };
    console.event(|| Event::Released { by: by.clone() });
    run.control.stop();
    let lab = lab_of(&mut run.store);
    finish::end(lab, cfg.keep, console, &mut run.signals, cost).await;
    console.event(|| verdict);
    console.line(
        Verbosity::Normal,
        &format!(
            "released run {id} ({by}); exit status {}",
            outcome.exit_code()
        ),
    );
    outcome
}

/// Hold until released: by what.
async fn wait(
    cfg: &RunConfig,
    run: &mut Prepared,
    id: &str,
    namespaces: &[String],
    timeout: Option<Duration>,
) -> String {
    // Holding before it is said (every output is written by now): whoever reads the block or
    // the event may step in at once.
    lab_of(&mut run.store).record_held(true);
    run.control.line.holding.store(true, Ordering::SeqCst);
    let console = &cfg.console;
    console.event(|| Event::Held {
        run: id.to_string(),
        namespaces: namespaces.to_vec(),
        timeout_seconds: timeout.map(|t| t.as_secs_f64()),
    });
    let say = |text: &str| console.line(Verbosity::Quiet, text);
    let first = namespaces.first().map_or("NS", String::as_str);
    say(&format!(
        "held: run {id}; its namespaces: {}",
        if namespaces.is_empty() {
            "none".to_string()
        } else {
            namespaces.join(", ")
        }
    ));
    say(&format!(
        "   runner shell {id} {first}               a shell there (exit returns)"
    ));
    say(&format!(
        "   runner exec {id} {first} -- CMD ARGS    one command, its status yours"
    ));
    say(&format!(
        "   runner capture {id} {first} IFACE | wireshark -k -i -"
    ));
    say(&format!(
        "   Ctrl-C here, or runner release {id}, ends the hold and removes the lab{}",
        match timeout {
            Some(t) => format!(" (it ends by itself in {})", humantime::format_duration(t)),
            None => String::new(),
        }
    ));
    let expiry = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let by = loop {
        tokio::select! {
            sig = run.signals.recv() => break signal_name(sig).to_string(),
            _ = &mut expiry => break "timeout".to_string(),
            ask = run.control.asks.recv() => match ask {
                Some(ToHold::Release) | None => break "release".to_string(),
                Some(ToHold::OpenDoor(ns, answer)) => {
                    let opened = lab_of(&mut run.store)
                        .open_door(&ns)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = answer.send(opened);
                }
            },
        }
    };
    run.control.line.holding.store(false, Ordering::SeqCst);
    lab_of(&mut run.store).record_held(false);
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_holds_as_asked_and_never_one_stopped_by_a_signal_or_refused() {
        let ok: Result<(), Ended> = Ok(());
        let err = || Err(Ended::Returned("no".into()));
        assert!(!holds(HoldWhen::Never, &err(), 1));
        assert!(holds(HoldWhen::Always, &ok, 0));
        assert!(!holds(HoldWhen::OnFail, &ok, 0));
        assert!(holds(HoldWhen::OnFail, &ok, 1));
        assert!(holds(HoldWhen::OnFail, &err(), 0));
        assert!(holds(
            HoldWhen::OnFail,
            &Err(Ended::Deadline(Duration::from_secs(1))),
            0
        ));
        for when in [HoldWhen::Always, HoldWhen::OnFail] {
            assert!(!holds(when, &Err(Ended::Signal(libc::SIGINT)), 1));
            assert!(!holds(when, &Err(Ended::Refused("policy".into())), 0));
        }
    }
}
