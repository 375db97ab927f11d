//! Readiness without fixed sleeps: poll a condition until it holds, or give up with the time
//! it took. For a line a background program prints, use `Process::wait_for_line`.

use std::time::{Duration, Instant};

use crate::bindings::nslab::lab::types::Error;

/// Call `ready` every `interval` until it returns true, for at most `timeout`: Ok with how long
/// it took, or error.timeout saying what was awaited. An error from `ready` ends the wait.
///
/// ```ignore
/// let took = wait_until("routes to every host", Duration::from_secs(30), || {
///     Ok(r1.exec("ip", ["route", "show", "10.0.3.0/24"])?.stdout_text().contains("proto bird"))
/// })?;
/// ```
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool, Error>,
) -> Result<Duration, Error> {
    let interval = Duration::from_millis(100);
    let started = Instant::now();
    loop {
        if ready()? {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout(format!(
                "{what}: not ready after {} ms",
                timeout.as_millis()
            )));
        }
        std::thread::sleep(interval);
    }
}
