//! What the runner writes and prints for the operator is safe from other local users and from
//! the scenario's text (issue 21). `nslab-test` (made by scripts/test.sh) plays the other user
//! of a shared machine; a root-only directory stands for what they would like root to write
//! into. Each test asserts that no byte landed there and that the runner ended in time.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

const OTHER: &str = "nslab-test";

fn uid_of(user: &str) -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", user])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("user {user} does not exist: scripts/test.sh creates it"))
}

/// A scratch tree for one test, removed afterwards: `secret`, root's own (0700), with a file in
/// it, which the other user would like root to write into; `sticky`, a /tmp-like directory.
struct Shared {
    base: PathBuf,
}

impl Shared {
    fn new(tag: &str) -> Shared {
        let base = std::env::temp_dir().join(format!("nslab-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("secret")).unwrap();
        std::fs::set_permissions(base.join("secret"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(base.join("secret/victim"), b"root's own").unwrap();
        std::fs::create_dir(base.join("sticky")).unwrap();
        std::fs::set_permissions(base.join("sticky"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        Shared { base }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }

    /// Something the other user made: owned by them.
    fn theirs(&self, path: &Path) {
        let uid = uid_of(OTHER);
        std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    }

    /// The root-only directory holds exactly what it held.
    fn assert_secret_untouched(&self, run: &Run) {
        let entries: Vec<String> = std::fs::read_dir(self.path("secret"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, vec!["victim".to_string()], "{}", run.all());
        assert_eq!(
            std::fs::read(self.path("secret/victim")).unwrap(),
            b"root's own",
            "{}",
            run.all()
        );
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// `runner run FLAGS seed.wasm`, which must end within `limit`.
fn seed_with(flags: &[&str], limit: Duration) -> (Run, Duration) {
    let started = Instant::now();
    let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
    args.extend(flags.iter().map(Into::into));
    args.push(guest("seed").into());
    let run = Background::start(args).finish_within(limit);
    (run, started.elapsed())
}

#[test]
fn a_report_inside_another_users_directory_is_refused_before_the_run() {
    let _labs = lab_lock();
    let s = Shared::new("out-theirs");
    // Their directory, where they have prepared a report directory whose files/ is a link to
    // root's secret directory, ready to swap whatever root makes there.
    let theirs = s.path("theirs");
    std::fs::create_dir_all(theirs.join("r")).unwrap();
    std::os::unix::fs::symlink(s.path("secret"), theirs.join("r/files")).unwrap();
    for p in [&theirs, &theirs.join("r"), &theirs.join("r/files")] {
        s.theirs(p);
    }
    let report = theirs.join("r");
    let (run, took) = seed_with(
        &["--report", report.to_str().unwrap()],
        Duration::from_secs(10),
    );
    run.assert_code(2).assert_stderr(&format!(
        "{} is writable by another user (it belongs to user {OTHER}",
        theirs.display()
    ));
    run.assert_stderr("name a directory that only you (and root) can write");
    // Refused before anything was made.
    assert!(!run.stdout.contains("netns add"), "{}", run.all());
    assert!(took < Duration::from_secs(5));
    s.assert_secret_untouched(&run);
}

#[test]
fn a_link_one_component_above_an_output_is_refused_for_every_output() {
    let _labs = lab_lock();
    let s = Shared::new("out-link");
    // In a sticky, world-writable directory, their link to root's secret directory.
    let out = s.path("sticky/out");
    std::os::unix::fs::symlink(s.path("secret"), &out).unwrap();
    s.theirs(&out);
    for (flag, target) in [
        ("--report", out.join("r")),
        ("--junit", out.join("junit.xml")),
        ("--graph", out.join("lab.svg")),
    ] {
        let (run, _) = seed_with(&[flag, target.to_str().unwrap()], Duration::from_secs(10));
        run.assert_code(2).assert_stderr(&format!(
            "{} is writable by another user (anyone may write it), and {} belongs to user {OTHER}",
            s.path("sticky").display(),
            out.display()
        ));
        s.assert_secret_untouched(&run);
    }
}

#[test]
fn a_fifo_where_an_output_goes_never_holds_the_runner() {
    let _labs = lab_lock();
    let s = Shared::new("out-fifo");
    let mkfifo =
        |p: &Path| nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    // Theirs, in the sticky directory: refused at once, before the run.
    let fifo = s.path("sticky/junit.xml");
    mkfifo(&fifo);
    s.theirs(&fifo);
    let (run, took) = seed_with(
        &["--junit", fifo.to_str().unwrap()],
        Duration::from_secs(10),
    );
    run.assert_code(2)
        .assert_stderr(&format!("{} belongs to user {OTHER}", fifo.display()));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // One left in the runner's own directory (by an earlier mistake, say), with no reader:
    // refused at once too, never waited on, and left a FIFO (issue 32: nothing that is not a
    // regular file is renamed over).
    let mine = s.path("mine");
    std::fs::create_dir(&mine).unwrap();
    mkfifo(&mine.join("junit.xml"));
    let (run, took) = seed_with(
        &["-q", "--junit", mine.join("junit.xml").to_str().unwrap()],
        Duration::from_secs(30),
    );
    run.assert_code(2).assert_stderr("is a FIFO with no reader");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let meta = std::fs::symlink_metadata(mine.join("junit.xml")).unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()),
        "{:?}",
        meta.file_type()
    );
    s.assert_secret_untouched(&run);
}

#[test]
fn links_planted_at_each_output_file_are_refused_never_followed() {
    let _labs = lab_lock();
    let s = Shared::new("out-planted");
    let report = s.path("mine");
    std::fs::create_dir(&report).unwrap();
    for name in ["index.html", "junit.xml", "events.jsonl", "topology.svg"] {
        std::os::unix::fs::symlink(s.path("secret/victim"), report.join(name)).unwrap();
    }
    let run = Background::start(attacks_args(
        &["-q", "--report", report.to_str().unwrap()],
        "outputs",
        &[],
    ))
    .finish_within(Duration::from_secs(30));
    // Refused by name (issue 32: a link the runner did not make is never renamed over), each
    // left a link, its target untouched.
    run.assert_code(2)
        .assert_stderr("is a symbolic link that the runner did not make");
    for name in ["index.html", "junit.xml", "events.jsonl", "topology.svg"] {
        let meta = std::fs::symlink_metadata(report.join(name)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{name}: {:?}",
            meta.file_type()
        );
    }
    s.assert_secret_untouched(&run);
    // With the links gone, the report is written whole.
    for name in ["index.html", "junit.xml", "events.jsonl", "topology.svg"] {
        std::fs::remove_file(report.join(name)).unwrap();
    }
    let run = Background::start(attacks_args(
        &["-q", "--report", report.to_str().unwrap()],
        "outputs",
        &[],
    ))
    .finish_within(Duration::from_secs(30));
    run.assert_code(1);
    for name in ["index.html", "junit.xml", "events.jsonl", "topology.svg"] {
        let meta = std::fs::symlink_metadata(report.join(name)).unwrap();
        assert!(
            meta.is_file() && meta.uid() == 0,
            "{name}: {:?}",
            meta.file_type()
        );
    }
    s.assert_secret_untouched(&run);
    // Attachments named like pages are saved under names no server runs, linked as downloads.
    let files: Vec<String> = std::fs::read_dir(report.join("files"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for saved in ["page.html.txt", "picture.svg.txt", "notes.txt"] {
        assert!(files.contains(&saved.to_string()), "{files:?}");
    }
    assert!(!files.iter().any(|f| f == "page.html" || f == "picture.svg"));
    let index = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(
        index.contains("href=\"files/page.html.txt\" download=\"page.html\""),
        "{index}"
    );

    // And a link where files/ goes: the report is refused, nothing lands beyond it.
    let again = s.path("again");
    std::fs::create_dir(&again).unwrap();
    std::os::unix::fs::symlink(s.path("secret"), again.join("files")).unwrap();
    let run = Background::start(attacks_args(
        &["-q", "--report", again.to_str().unwrap()],
        "outputs",
        &[],
    ))
    .finish_within(Duration::from_secs(30));
    run.assert_code(2)
        .assert_stderr("files is a symbolic link or not a directory");
    s.assert_secret_untouched(&run);
}

/// A record of another user's run, in their runtime directory, that root's `runner ls` reads.
struct TheirRecords {
    dir: PathBuf,
    made_runtime: bool,
}

impl Drop for TheirRecords {
    fn drop(&mut self) {
        if self.made_runtime {
            let _ = std::fs::remove_dir_all(self.dir.ancestors().nth(2).unwrap());
        } else {
            let _ = std::fs::remove_dir_all(self.dir.parent().unwrap());
        }
    }
}

#[test]
fn root_ls_shows_another_users_record_inert_and_skips_what_is_no_record() {
    let uid = uid_of(OTHER);
    let runtime = PathBuf::from(format!("/run/user/{uid}"));
    let made_runtime = !runtime.exists();
    let dir = runtime.join("nslab/runs");
    if runtime.join("nslab").exists() {
        skipped("the ls record test: a session of nslab-test is open");
        return;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TheirRecords {
        dir: dir.clone(),
        made_runtime,
    };
    let record = serde_json::json!({
        "id": "1a2b3c4d",
        "scenario": "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}]52;c;ZXZpbA==\u{7}evil.wasm",
        "pid": 999_999_999u32,
        "pid_start": 1,
        "started_unix": 1,
        "kept": true,
        "namespaces": [{"name": "ns\u{1b}[31mred", "inode": 1, "pinned": null}],
    });
    std::fs::write(dir.join("1a2b3c4d.json"), record.to_string()).unwrap();
    std::fs::write(dir.join("deadbeef.json"), b"{ not a record \x1b[2J").unwrap();
    std::fs::write(dir.join("cafe0000.json"), vec![b' '; 2 << 20]).unwrap();
    for p in ["", "1a2b3c4d.json", "deadbeef.json", "cafe0000.json"] {
        std::os::unix::fs::lchown(dir.join(p), Some(uid), Some(uid)).unwrap();
    }
    let ls = runner(["ls"]);
    ls.assert_code(0)
        .assert_stdout("\\x1b]0;pwned\\x07\\x1b[2J")
        .assert_stdout("ns\\x1b[31mred");
    assert!(
        !ls.stdout.contains('\u{1b}') && !ls.stderr.contains('\u{1b}'),
        "{}",
        ls.all()
    );
    assert!(!ls.stdout.contains('\u{7}'), "{}", ls.all());
    // Each file that is no record: one line, named, and nothing of it shown.
    let skipped: Vec<&str> = ls
        .stderr
        .lines()
        .filter(|l| l.contains("skipped"))
        .collect();
    assert_eq!(skipped.len(), 2, "{}", ls.all());
    ls.assert_stderr("deadbeef.json: ")
        .assert_stderr("cafe0000.json: not a run record: too large");
}

#[test]
fn runner_test_junit_stays_readable_beside_a_hostile_scenario() {
    let _labs = lab_lock();
    let s = Shared::new("out-test");
    let junit = s.path("junit.xml");
    let report = s.path("report");
    let hostile = s.path("hostile.wasm");
    std::fs::copy(guest("attacks"), &hostile).unwrap();
    let honest = s.path("seed.wasm");
    std::fs::copy(guest("seed"), &honest).unwrap();
    let run = runner([
        "test".as_ref(),
        "--allow-exec".as_ref(),
        ATTACKS_ALLOW.as_ref(),
        "--junit".as_ref(),
        junit.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
        hostile.as_os_str(),
        honest.as_os_str(),
        "--".as_ref(),
        "outputs".as_ref(),
    ]);
    run.assert_code(1);
    assert!(!run.stdout.contains('\u{1b}'), "{}", run.all());
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let suites: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(suites, vec!["attacks", "seed"], "{xml}");
    let seed_cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase") && n.attribute("classname") == Some("seed"))
        .count();
    assert!(seed_cases >= 3, "{xml}");
    // The combined index, and each run's page, parse too.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    for page in ["index.html", "hostile/index.html", "seed/index.html"] {
        let text = std::fs::read_to_string(report.join(page)).unwrap();
        roxmltree::Document::parse_with_options(&text, options)
            .unwrap_or_else(|e| panic!("{page}: {e}"));
    }
}
