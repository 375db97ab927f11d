//! Limits on the guest itself, each stopping it with a message that names the limit: its
//! memory (a wasmtime resource limiter) and its output (stdout and stderr streams that label
//! each line as the scenario's and count the bytes).

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use nslab_lab::StartLog;

use nslab_lab::Tripped;

/// How many core instances, memories and tables one scenario may have: far more than any
/// toolchain's component needs (a componentize-py scenario has a few dozen instances), and few
/// enough that the runner's own bookkeeping for them stays small.
pub const MAX_INSTANCES: usize = 256;
pub const MAX_MEMORIES: usize = 32;
pub const MAX_TABLES: usize = 64;
/// What one table element costs the host (a pointer).
const TABLE_ELEMENT_BYTES: usize = 8;

/// Caps the guest's memory at `guest-memory`: every linear memory and table of every instance
/// of the scenario together, not each one alone.
pub struct MemoryLimit {
    bytes: usize,
    tripped: Arc<Tripped>,
    /// What all its memories and tables hold now.
    used: usize,
}

impl MemoryLimit {
    pub fn new(bytes: usize, tripped: Arc<Tripped>) -> MemoryLimit {
        MemoryLimit {
            bytes,
            tripped,
            used: 0,
        }
    }

    /// Grow the total from `current` to `desired` bytes for one memory or table, or refuse.
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let after = (self.used - current.min(self.used)).saturating_add(desired);
        if after > self.bytes {
            let why = format!(
                "it asked for {after} bytes of memory in all, more than the policy allows ({} bytes, policy limit guest-memory; raise it with --guest-memory)",
                self.bytes
            );
            self.tripped.trip(why.clone());
            return Err(wasmtime::format_err!("{why}"));
        }
        self.used = after;
        Ok(true)
    }
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// One of the guest's output streams: whole lines go to the terminal as
/// `   [scenario] text` (stderr lines on the runner's stderr), at most `limit` bytes in all
/// across stdout and stderr; past it the guest is stopped.
#[derive(Clone)]
pub struct GuestOutput {
    label: Arc<str>,
    /// Where its lines go: stderr for its stderr, and for its stdout too under `--json`.
    to_stderr: bool,
    shared: Arc<OutputBudget>,
    line: Arc<Mutex<nslab_lab::text::LineSplitter>>,
    quiet: bool,
    /// The lab's log of background programs' starts, told before each write, so that what the
    /// scenario prints comes after what it started (nslab-lab's programs/starts.rs). A write
    /// waits (Pending) while a start is still out, without blocking the runtime.
    starts: Option<Arc<StartLog>>,
}

/// The guest wrote past its output budget: it is stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "it wrote more than {limit} bytes to its stdout, stderr and report (policy limit \
     guest-output-bytes; raise it with --guest-output)"
)]
pub struct OverBudget {
    pub limit: usize,
}

/// What the guest's streams share: the byte budget.
pub struct OutputBudget {
    used: AtomicUsize,
    limit: usize,
    over: AtomicBool,
    tripped: Arc<Tripped>,
}

impl GuestOutput {
    /// The stdout and stderr of one guest, sharing one budget.
    pub fn pair(
        label: &str,
        limit: usize,
        tripped: Arc<Tripped>,
        quiet: bool,
        text_on_stderr: bool,
        starts: Option<Arc<StartLog>>,
    ) -> (GuestOutput, GuestOutput) {
        let shared = Arc::new(OutputBudget {
            used: AtomicUsize::new(0),
            limit,
            over: AtomicBool::new(false),
            tripped,
        });
        let label = nslab_lab::text::printable(label).into_owned();
        let make = |is_stderr| GuestOutput {
            label: label.as_str().into(),
            to_stderr: is_stderr || text_on_stderr,
            shared: shared.clone(),
            line: Arc::new(Mutex::new(nslab_lab::text::LineSplitter::new(8192))),
            quiet,
            starts: starts.clone(),
        };
        (make(false), make(true))
    }

    fn emit(&self, line: &[u8]) {
        if self.quiet {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let text = nslab_lab::text::printable(text.trim_end_matches(['\n', '\r'])).into_owned();
        let out = format!("   [{}] {text}\n", self.label);
        if self.to_stderr {
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().write_all(out.as_bytes());
        } else {
            let _ = std::io::stdout().write_all(out.as_bytes());
        }
    }

    /// Print what is left of an unfinished line (at the end of the run).
    pub fn flush_line(&self) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        line.finish(|l| self.emit(l));
    }

    /// Count `bytes` of what the guest prints against its budget: its streams and its report
    /// text share one. Past it, the guest is stopped.
    pub fn charge(&self, bytes: usize) -> Result<(), OverBudget> {
        let b = &self.shared;
        let used = b
            .used
            .fetch_add(bytes, Ordering::SeqCst)
            .saturating_add(bytes);
        if used > b.limit {
            let over = OverBudget { limit: b.limit };
            if !b.over.swap(true, Ordering::SeqCst) {
                b.tripped.trip(over.to_string());
            }
            return Err(over);
        }
        Ok(())
    }

    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        self.charge(buf.len()).map_err(std::io::Error::other)?;
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        line.push(buf, |l| self.emit(l));
        Ok(buf.len())
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(starts) = &self.starts {
            if starts.poll_flush_through(u32::MAX, cx).is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(self.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_is_limited_in_total_not_per_memory() {
        let tripped = Arc::new(Tripped::default());
        let mut limit = MemoryLimit::new(100, tripped.clone());
        // Three memories of 40 bytes: each alone is allowed, all three are not.
        assert!(limit.memory_growing(0, 40, None).unwrap());
        assert!(limit.memory_growing(0, 40, None).unwrap());
        assert!(limit.memory_growing(0, 40, None).is_err());
        assert!(tripped
            .reason()
            .unwrap()
            .contains("120 bytes of memory in all"));
        // Growing one memory counts only what it adds; tables count too.
        let mut limit = MemoryLimit::new(100, Arc::default());
        assert!(limit.memory_growing(0, 40, None).unwrap());
        assert!(limit.memory_growing(40, 90, None).unwrap());
        assert!(limit.table_growing(0, 2, None).is_err());
        assert_eq!(limit.instances(), MAX_INSTANCES);
    }
}
