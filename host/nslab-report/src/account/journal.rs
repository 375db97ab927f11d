//! Where a run's events go: printed as JSON lines (`--json`), kept for the report and the JUnit
//! file, and counted for the progress line a terminal shows while the lab is built.

use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::events::{Event, Line, SCHEMA};
use super::RunAccount;

pub struct Journal {
    started: Instant,
    /// Print each event on stdout as it happens.
    json: bool,
    /// Keep the events, for what is written when the run ends.
    kept: Option<Mutex<Vec<Line>>>,
    programs: AtomicU32,
    progress: Option<Progress>,
    /// The run's account, folded from every event as it comes: the one model the verdict,
    /// the summary and every output read.
    account: Mutex<RunAccount>,
}

impl Journal {
    /// `json`: print each event on stdout; `keep`: keep them for [`Journal::lines`]; `progress`:
    /// draw a live progress line on stderr (only ever when stderr is a terminal).
    pub fn new(json: bool, keep: bool, progress: bool) -> Journal {
        Journal {
            started: Instant::now(),
            json,
            kept: keep.then(Mutex::default),
            programs: AtomicU32::new(0),
            progress: progress.then(Progress::start).flatten(),
            account: Mutex::default(),
        }
    }

    /// Whether anyone will see the events themselves: printed (`--json`), or kept for the
    /// outputs written at the end.
    pub fn shows_events(&self) -> bool {
        self.json || self.kept.is_some()
    }

    /// Whether the events go to stdout (and so the terminal text to stderr).
    pub fn prints_json(&self) -> bool {
        self.json
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn record(&self, event: Event) {
        if let Some(p) = &self.progress {
            p.count(&event);
        }
        let line = Line {
            v: SCHEMA,
            t: super::seconds(self.started.elapsed()),
            event,
        };
        self.account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&line);
        if self.json {
            let mut out = std::io::stdout().lock();
            // A closed stdout (a reader that went away) must not stop the run or its teardown.
            if serde_json::to_writer(&mut out, &line).is_ok() {
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
        if let Some(kept) = &self.kept {
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }

    /// The run's account so far.
    pub fn account(&self) -> RunAccount {
        self.account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The number of the next program started.
    pub fn next_program(&self) -> u32 {
        self.programs.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The events kept so far.
    pub fn lines(&self) -> Vec<Line> {
        self.kept
            .as_ref()
            .map(|k| k.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Print text on the terminal without tearing the progress line.
    pub fn around_progress(&self, print: impl FnOnce()) {
        match &self.progress {
            Some(p) => p.bar.suspend(print),
            None => print(),
        }
    }

    /// How many namespaces and links the lab has now, for the progress line.
    pub fn lab_size(&self, namespaces: usize, links: usize) {
        if let Some(p) = &self.progress {
            p.namespaces.store(namespaces, Ordering::Relaxed);
            p.links.store(links, Ordering::Relaxed);
            p.redraw();
        }
    }

    /// The lab is built and the run is ending: the progress line goes.
    pub fn end_progress(&self) {
        if let Some(p) = &self.progress {
            p.bar.finish_and_clear();
        }
    }
}

/// The progress line: namespaces, links and programs so far, and the time.
struct Progress {
    bar: indicatif::ProgressBar,
    namespaces: AtomicUsize,
    links: AtomicUsize,
    programs: AtomicUsize,
}

impl Progress {
    /// None when stderr is not a terminal: nothing is drawn in a pipe, a file or CI.
    fn start() -> Option<Progress> {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(10),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        let p = Progress {
            bar,
            namespaces: AtomicUsize::new(0),
            links: AtomicUsize::new(0),
            programs: AtomicUsize::new(0),
        };
        p.redraw();
        Some(p)
    }

    fn count(&self, event: &Event) {
        if let Event::ProgramStart { .. } = event {
            self.programs.fetch_add(1, Ordering::Relaxed);
            self.redraw();
        }
    }

    fn redraw(&self) {
        let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "building the lab: {} namespaces, {} links, {} programs",
            n(&self.namespaces),
            n(&self.links),
            n(&self.programs)
        ));
    }
}
