//! How the run ended, said once: the verdict line on the terminal and the verdict event of the
//! account, with the runner's exit status.

use std::time::Instant;

use super::signals::signal_name;
use super::Outcome;
use nslab_report::account::RunAccount;
use nslab_report::account::{Ending, Event, Verdict};
use nslab_report::console::{Console, Verbosity};

/// Why `run` did not return Ok.
pub enum Ended {
    Returned(String),
    Trapped(wasmtime::Error),
    Signal(i32),
    Deadline(std::time::Duration),
    /// Stopped by one of its own limits (memory, output).
    Limit(String),
    /// Declared programs the policy does not allow: refused before anything was created.
    Refused(String),
}

pub fn verdict(
    title: &str,
    account: &RunAccount,
    ended: Result<(), Ended>,
    started: Instant,
    console: &Console,
) -> Outcome {
    let (outcome, event) = judge(title, account, ended, started, console, false);
    console.event(|| event);
    outcome
}

/// The verdict, said on the terminal, and its event, which the caller gives the account: a
/// run that holds (`held`) gives it only once the hold ends, so that it stays the last event.
pub fn judge(
    title: &str,
    account: &RunAccount,
    ended: Result<(), Ended>,
    started: Instant,
    console: &Console,
    held: bool,
) -> (Outcome, Event) {
    let secs = started.elapsed().as_secs_f64();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let counts = format!(
        "{}, {} passed, {} failed, {secs:.1}s",
        plural(account.named_steps(), "step", "steps"),
        plural(account.passed(), "check", "checks"),
        account.failed()
    );
    let (outcome, line, ending) = match ended {
        Err(Ended::Refused(why)) => {
            // Nothing was created and nothing ran: an error, not a verdict.
            console.error(&why);
            let event = Event::Verdict {
                verdict: Verdict::CouldNotRun,
                ended: Ending::Refused,
                exit: Outcome::CouldNotRun.exit_code(),
                message: why.clone(),
                steps: 0,
                passed: 0,
                failed: 0,
                seconds: secs,
            };
            return (Outcome::CouldNotRun, event);
        }
        Ok(()) if account.failed() == 0 => (
            Outcome::Passed,
            format!("PASS {title} ({counts})"),
            Ending::Returned,
        ),
        Ok(()) => (
            Outcome::Failed,
            format!("FAIL {title}: a check failed ({counts})"),
            Ending::Returned,
        ),
        Err(Ended::Returned(msg)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario returned an error: {msg} ({counts})"),
            Ending::ReturnedError,
        ),
        Err(Ended::Limit(reason)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario was stopped: {reason} ({counts})"),
            Ending::Limit,
        ),
        Err(Ended::Deadline(limit)) => (
            Outcome::Failed,
            format!(
                "FAIL {title}: the run passed its deadline of {} and was stopped; its lab {} \
                 (policy limit run-timeout; give more with --timeout) ({counts})",
                humantime::format_duration(limit),
                if held { "is held" } else { "was removed" }
            ),
            Ending::Deadline,
        ),
        Err(Ended::Signal(sig)) => (
            Outcome::Interrupted(sig),
            format!(
                "STOPPED {title}: interrupted by {}; its lab was removed ({counts})",
                signal_name(sig)
            ),
            Ending::Signal,
        ),
        Err(Ended::Trapped(trap)) => (
            Outcome::Failed,
            format!(
                "FAIL {title}: the scenario crashed: {} ({counts})",
                describe_trap(&trap)
            ),
            Ending::Crashed,
        ),
    };
    if !account.refusals.is_empty() {
        console.line(
            Verbosity::Quiet,
            &format!("refused by the policy ({}):", account.refusals.len()),
        );
        for r in &account.refusals {
            console.line(Verbosity::Quiet, &format!("   - {r}"));
        }
    }
    console.line(Verbosity::Quiet, &line);
    let event = Event::Verdict {
        verdict: match outcome {
            Outcome::Passed => Verdict::Passed,
            Outcome::Failed => Verdict::Failed,
            Outcome::CouldNotRun => Verdict::CouldNotRun,
            Outcome::Interrupted(_) => Verdict::Interrupted,
        },
        ended: ending,
        exit: outcome.exit_code(),
        message: line.clone(),
        steps: account.named_steps(),
        passed: account.passed(),
        failed: account.failed(),
        seconds: nslab_report::account::seconds(started.elapsed()),
    };
    (outcome, event)
}

/// One line for a trap: its code (e.g. "wasm trap: wasm `unreachable` instruction executed",
/// which a Rust panic becomes; the panic message is on the scenario's stderr above).
fn describe_trap(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "it panicked or reached unreachable code (its message, if any, is printed above)"
                .to_string()
        }
        Some(trap) => format!("wasm trap: {trap}"),
        None => format!("{e:#}"),
    }
}
/// The runner could not run the file: say why, and end the account with that verdict.
pub fn not_run(console: &Console, why: &str, started: Instant) -> Outcome {
    console.error(why);
    console.event(|| Event::Verdict {
        verdict: Verdict::CouldNotRun,
        ended: Ending::NotRun,
        exit: Outcome::CouldNotRun.exit_code(),
        message: why.to_string(),
        steps: 0,
        passed: 0,
        failed: 0,
        seconds: nslab_report::account::seconds(started.elapsed()),
    });
    Outcome::CouldNotRun
}
