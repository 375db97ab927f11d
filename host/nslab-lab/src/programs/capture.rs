//! A program's output as it comes: kept for the scenario up to a limit, told line by line to
//! the lab's sink (which echoes and records it), and searched for a line a scenario waits for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe::Receiver;

use crate::text::LineSplitter;
use crate::{LabEvent, Sink};

/// What a program has printed so far, (stdout, stderr), shared by its capture tasks and the
/// lab; `news` wakes whoever waits for a line.
#[derive(Default)]
pub struct Printed {
    streams: std::sync::Mutex<[Vec<u8>; 2]>,
    pub news: tokio::sync::Notify,
    /// How many of the two streams have reached their end (counted before the last `news`).
    pub closed: std::sync::atomic::AtomicUsize,
    /// Bytes printed on each stream, kept or not.
    printed: [std::sync::atomic::AtomicU64; 2],
}

impl Printed {
    pub fn total(&self) -> [u64; 2] {
        [0, 1].map(|i| self.printed[i].load(Ordering::SeqCst))
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, [Vec<u8>; 2]> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The first line of `streams` that contains `text` (a last line without its newline counts
/// only once the stream has ended).
pub fn line_with(streams: [&Vec<u8>; 2], text: &str, ended: bool) -> Option<String> {
    streams.into_iter().find_map(|bytes| {
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            _ if ended => &bytes[..],
            Some(last) => &bytes[..last],
            None => &[][..],
        };
        String::from_utf8_lossy(complete)
            .lines()
            .find(|l| l.contains(text))
            .map(str::to_string)
    })
}

/// How one output stream is captured.
pub struct Capture {
    /// Bytes kept for the scenario (exec-output-bytes).
    pub limit: usize,
    /// Recorded, not echoed (`run-quiet`).
    pub quiet: bool,
    /// Where each line is told.
    pub sink: Arc<dyn Sink>,
    /// The program's number in the run's account.
    pub program: u32,
    pub is_stderr: bool,
    pub tag: Option<String>,
    pub discard: Arc<AtomicBool>,
    pub printed: Arc<Printed>,
    /// For a background program: the log its start is told from, which tells it before the
    /// program's first line (starts.rs).
    pub starts: Option<Arc<super::starts::StartLog>>,
}

/// Read a stream to its end: tell each line to the sink as it comes (which echoes it within the
/// run's echo budget), keep at most `limit` bytes where the lab can see them as they come, and mark the
/// cut. The program is not stopped for writing more.
pub async fn capture(stream: Option<Receiver>, c: Capture) {
    let Some(mut stream) = stream else {
        c.printed.closed.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let index = usize::from(c.is_stderr);
    let mut dropped = 0usize;
    let mut lines = LineSplitter::new(4096);
    let mut buf = [0u8; 8192];
    let echo = |line: &[u8]| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        c.sink.event(LabEvent::ProgramLine {
            program: c.program,
            tag: c.tag.as_deref(),
            text,
            stderr: c.is_stderr,
            quiet: c.quiet,
        });
    };
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        c.printed.printed[index].fetch_add(n as u64, Ordering::SeqCst);
        {
            let mut streams = c.printed.lock();
            let kept = &mut streams[index];
            if c.discard.load(Ordering::Relaxed) {
                *kept = Vec::new();
            } else {
                let room = c.limit.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..room.min(n)]);
                dropped += n.saturating_sub(room);
            }
        }
        c.printed.news.notify_waiters();
        // Its start, and every start before it, is told before its first line.
        if let Some(starts) = &c.starts {
            starts.flush_through(c.program).await;
        }
        lines.push(chunk, echo);
    }
    if let Some(starts) = &c.starts {
        starts.flush_through(c.program).await;
    }
    lines.finish(echo);
    if dropped > 0 {
        c.printed.lock()[index].extend_from_slice(
            format!("\n[nslab: output cut here: {dropped} more bytes beyond the policy limit exec-output-bytes = {}]\n", c.limit)
                .as_bytes(),
        );
    }
    c.printed.closed.fetch_add(1, Ordering::SeqCst);
    c.printed.news.notify_waiters();
}
