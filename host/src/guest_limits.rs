//! Limits on the guest itself, each stopping it with a message that names the limit: its
//! memory (a wasmtime resource limiter) and its output (stdout and stderr streams that label
//! each line as the scenario's and count the bytes).

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Why the guest was stopped by one of its own limits, if it was.
#[derive(Debug, Default)]
pub struct Tripped {
    reason: Mutex<Option<String>>,
    notify: Notify,
}

impl Tripped {
    pub fn trip(&self, reason: String) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        self.notify.notify_one();
    }

    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves when a limit trips.
    pub async fn tripped(&self) -> String {
        loop {
            if let Some(r) = self.reason() {
                return r;
            }
            self.notify.notified().await;
        }
    }
}

/// Caps the guest's linear memory (and table growth) at `guest-memory`.
pub struct MemoryLimit {
    pub bytes: usize,
    pub tripped: Arc<Tripped>,
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            let why = format!(
                "it asked for {desired} bytes of memory, more than the policy allows ({} bytes, policy limit guest-memory; raise it with --guest-memory)",
                self.bytes
            );
            self.tripped.trip(why.clone());
            return Err(wasmtime::format_err!("{why}"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// One of the guest's output streams: whole lines go to the terminal as
/// `   [scenario] text` (stderr lines on the runner's stderr), at most `limit` bytes in all
/// across stdout and stderr; past it the guest is stopped.
#[derive(Clone)]
pub struct GuestOutput {
    label: Arc<str>,
    is_stderr: bool,
    shared: Arc<OutputBudget>,
    line: Arc<Mutex<Vec<u8>>>,
    quiet: bool,
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
    ) -> (GuestOutput, GuestOutput) {
        let shared = Arc::new(OutputBudget {
            used: AtomicUsize::new(0),
            limit,
            over: AtomicBool::new(false),
            tripped,
        });
        let make = |is_stderr| GuestOutput {
            label: label.into(),
            is_stderr,
            shared: shared.clone(),
            line: Arc::default(),
            quiet,
        };
        (make(false), make(true))
    }

    fn emit(&self, line: &[u8]) {
        if self.quiet {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        let out = format!("   [{}] {text}\n", self.label);
        if self.is_stderr {
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().write_all(out.as_bytes());
        } else {
            let _ = std::io::stdout().write_all(out.as_bytes());
        }
    }

    /// Print what is left of an unfinished line (at the end of the run).
    pub fn flush_line(&self) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        if !line.is_empty() {
            self.emit(&line);
            line.clear();
        }
    }

    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        let b = &self.shared;
        let used = b.used.fetch_add(buf.len(), Ordering::SeqCst) + buf.len();
        if used > b.limit {
            if !b.over.swap(true, Ordering::SeqCst) {
                b.tripped.trip(format!(
                    "it wrote more than {} bytes to its stdout and stderr (policy limit guest-output-bytes; raise it with --guest-output)",
                    b.limit
                ));
            }
            return Err(std::io::Error::other("guest output limit reached"));
        }
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        line.extend_from_slice(buf);
        while let Some(pos) = line.iter().position(|&c| c == b'\n') {
            let rest = line.split_off(pos + 1);
            self.emit(&line);
            *line = rest;
        }
        if line.len() > 8192 {
            self.emit(&line);
            line.clear();
        }
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
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
