//! A hundred runs in one long-lived process leak nothing: file descriptors, threads, child
//! processes, namespaces, memory. Uses the runner as a library, the way a long-lived embedder
//! (or a test harness) would.

mod common;
use common::*;

use nslab_host::policy::Policy;
use nslab_report::console::{Console, Verbosity};
use nslab_runner::run::{run, Outcome, RunConfig};

struct Usage {
    fds: usize,
    nsfs_fds: usize,
    threads: usize,
    children: usize,
    rss_kib: u64,
}

fn usage() -> Usage {
    let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let children = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default())
        .map(|c| c.split_whitespace().count())
        .sum();
    Usage {
        fds: fds.len(),
        nsfs_fds: fds.iter().filter(|t| t.starts_with("net:[")).count(),
        threads: field("Threads:") as usize,
        children,
        rss_kib: field("VmRSS:"),
    }
}

#[test]
fn a_hundred_runs_in_one_process_leak_nothing() {
    let _labs = lab_lock();
    let before_host = host_state();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let once = || {
        let cfg = RunConfig {
            file: guest("faults"),
            args: vec!["ok".into()],
            policy: Policy::default(),
            console: Console::new(Verbosity::Silent),
            keep: false,
            helper: RUNNER.into(),
            cache: None,
            outputs: Default::default(),
            hold: Default::default(),
            hold_timeout: None,
        };
        assert_eq!(rt.block_on(run(cfg)), Outcome::Passed);
    };
    // Warm up: the allocator, tokio's pools and wasmtime's caches settle in the first runs.
    for _ in 0..10 {
        once();
    }
    let before = usage();
    let started = std::time::Instant::now();
    for _ in 0..100 {
        once();
    }
    let elapsed = started.elapsed();
    let after = usage();
    eprintln!(
        "100 runs in {:.1?} ({:.1?} each): fds {} -> {}, threads {} -> {}, children {} -> {}, RSS {} -> {} KiB",
        elapsed,
        elapsed / 100,
        before.fds,
        after.fds,
        before.threads,
        after.threads,
        before.children,
        after.children,
        before.rss_kib,
        after.rss_kib
    );
    assert_eq!(after.fds, before.fds, "file descriptors leaked");
    assert_eq!(after.nsfs_fds, 0, "namespace fds left open");
    assert_eq!(after.threads, before.threads, "threads leaked");
    assert_eq!(after.children, 0, "child processes left");
    // Memory: a leak of even one namespace's worth of state per run would show as megabytes;
    // allow for allocator noise.
    assert!(
        after.rss_kib < before.rss_kib + 16 * 1024,
        "RSS grew from {} to {} KiB",
        before.rss_kib,
        after.rss_kib
    );
    assert_eq!(host_state(), before_host);
}
