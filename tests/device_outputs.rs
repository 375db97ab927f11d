//! Outputs the operator points at something that is not a regular file (issue 32): `--junit
//! /dev/stdout` once replaced the machine's `/dev/stdout` link with a file. These tests never
//! touch the machine's own `/dev`: each works on private copies in a root-only temporary
//! directory (a link to `/proc/self/fd/1`, a `mknod` copy of `/dev/null`'s node, FIFOs), and
//! asserts that every one of them is exactly what it was afterwards.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A root-only directory of private device entries, removed on drop.
struct PrivateDev(PathBuf);

impl PrivateDev {
    fn new(tag: &str) -> PrivateDev {
        let dir = std::env::temp_dir().join(format!("nslab-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd/1", dir.join("stdout")).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd/2", dir.join("stderr")).unwrap();
        nix::sys::stat::mknod(
            &dir.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        for fifo in ["fifo", "lonely"] {
            nix::unistd::mkfifo(
                &dir.join(fifo),
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )
            .unwrap();
        }
        PrivateDev(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Every entry is what it was made as: the links point where they did, the node is still
    /// null's, the FIFOs are FIFOs, and nothing else appeared.
    fn assert_unchanged(&self, run: &Run) {
        for (link, target) in [("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            let meta = std::fs::symlink_metadata(self.path(link)).unwrap();
            assert!(meta.file_type().is_symlink(), "{link}\n{}", run.all());
            assert_eq!(
                std::fs::read_link(self.path(link)).unwrap(),
                Path::new(target)
            );
        }
        let null = std::fs::symlink_metadata(self.path("null")).unwrap();
        assert!(null.file_type().is_char_device(), "{}", run.all());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        for fifo in ["fifo", "lonely"] {
            let meta = std::fs::symlink_metadata(self.path(fifo)).unwrap();
            assert!(meta.file_type().is_fifo(), "{fifo}\n{}", run.all());
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["fifo", "lonely", "null", "stderr", "stdout"],
            "{}",
            run.all()
        );
    }
}

impl Drop for PrivateDev {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The JUnit document parses on its own, and is the seed's.
fn assert_junit(xml: &str, run: &Run) {
    let doc = roxmltree::Document::parse(xml)
        .unwrap_or_else(|e| panic!("not a JUnit document: {e}\n{xml}\n{}", run.all()));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .and_then(|n| n.attribute("name"));
    assert_eq!(suite, Some("seed"), "{xml}");
}

fn seed(flags: &[&std::ffi::OsStr]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
    args.extend(flags.iter().map(|f| f.to_os_string()));
    args.push(guest("seed").into());
    args
}

/// `--junit` at a link to `/proc/self/fd/1`, without `-q`: the link stays a link, stdout
/// carries the JUnit document alone (the runner's own text moved to stderr), and it parses.
#[test]
fn junit_at_a_link_to_stdout_is_written_through_and_stdout_is_the_document_alone() {
    let dev = PrivateDev::new("dev-stdout");
    let run = run_clean(seed(&["--junit".as_ref(), dev.path("stdout").as_os_str()]));
    run.assert_code(0);
    assert!(run.stdout.starts_with("<?xml"), "{}", run.all());
    assert_junit(&run.stdout, &run);
    run.assert_stderr("PASS seed");
    dev.assert_unchanged(&run);

    // At a link to stderr, the document comes after everything the runner printed there.
    let run = run_clean(seed(&["--junit".as_ref(), dev.path("stderr").as_os_str()]));
    run.assert_code(0).assert_stdout("PASS seed");
    let start = run
        .stderr
        .find("<?xml")
        .unwrap_or_else(|| panic!("{}", run.all()));
    assert_junit(&run.stderr[start..], &run);
    dev.assert_unchanged(&run);
}

/// `--junit` and `--graph` at a private copy of `/dev/null`'s node: written through, the node
/// stays the device it was.
#[test]
fn outputs_at_a_device_node_are_written_through_never_replaced() {
    let dev = PrivateDev::new("dev-null");
    let run = run_clean(seed(&[
        "-q".as_ref(),
        "--junit".as_ref(),
        dev.path("null").as_os_str(),
        "--graph".as_ref(),
        dev.path("null").as_os_str(),
        "--graph-format".as_ref(),
        "dot".as_ref(),
    ]));
    run.assert_code(0).assert_stdout("PASS seed");
    dev.assert_unchanged(&run);
}

/// A FIFO with a reader gets the whole document; one without is refused at once, before any
/// lab is made, and is never waited on.
#[test]
fn a_fifo_with_a_reader_gets_the_document_and_one_without_is_refused_at_once() {
    let dev = PrivateDev::new("dev-fifo");
    let fifo = dev.path("fifo");
    // A reader is there from now on (this end never reads); the thread's own reader waits for
    // the runner's writing end, then reads to its end.
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::fs::File::open(fifo).and_then(|mut f| f.read_to_string(&mut s));
            s
        })
    };
    let run = run_clean(seed(&["-q".as_ref(), "--junit".as_ref(), fifo.as_os_str()]));
    // Whatever the runner did (even replacing the FIFO), the thread's reader is released: a
    // writer of the same FIFO, reached through the holder, comes and goes.
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("/proc/self/fd/{}", holder.as_raw_fd())),
    );
    drop(holder);
    let got = reader.join().unwrap();
    run.assert_code(0);
    assert_junit(&got, &run);

    let started = Instant::now();
    let run = run_clean(seed(&["--junit".as_ref(), dev.path("lonely").as_os_str()]));
    run.assert_code(2).assert_stderr(&format!(
        "{} is a FIFO with no reader: the runner would wait for one",
        dev.path("lonely").display()
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!run.stdout.contains("netns add"), "{}", run.all());
    dev.assert_unchanged(&run);
}

/// `--junit >(...)`, as bash writes it (`/dev/fd/63`, a pipe): the process substitution's
/// reader gets the document.
#[test]
fn junit_into_a_process_substitution_reaches_its_reader() {
    let dev = PrivateDev::new("dev-procsub");
    let got = dev.path("got.xml");
    let script = format!(
        "{RUNNER} run -q --junit >(cat > '{}') '{}'; code=$?; wait; exit $code",
        got.display(),
        guest("seed").display()
    );
    let _labs = lab_lock();
    let out = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run::from_output(out);
    run.assert_code(0);
    // `wait` does not wait for a process substitution in every bash: give cat a moment.
    assert!(within(Duration::from_secs(5), || std::fs::read_to_string(
        &got
    )
    .is_ok_and(|s| s.contains("</testsuites>"))));
    assert_junit(&std::fs::read_to_string(&got).unwrap(), &run);
    std::fs::remove_file(&got).unwrap();
    dev.assert_unchanged(&run);
}

/// A link to a regular file stays a link; its target gets the document.
#[test]
fn a_link_to_a_file_stays_a_link_and_its_target_gets_the_document() {
    let dev = PrivateDev::new("dev-link");
    let target = dev.path("target.xml");
    std::fs::write(&target, b"old").unwrap();
    let link = dev.path("junit.xml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let run = run_clean(seed(&["-q".as_ref(), "--junit".as_ref(), link.as_os_str()]));
    run.assert_code(0);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_junit(&std::fs::read_to_string(&target).unwrap(), &run);
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&target).unwrap();
    dev.assert_unchanged(&run);
}

/// Two documents into one stream would run together: refused before the run. So is a JUnit
/// document on the stdout that `--json` gives to its events.
#[test]
fn two_documents_into_stdout_are_refused_before_the_run() {
    let dev = PrivateDev::new("dev-two");
    let stdout = dev.path("stdout");
    let run = runner(seed(&[
        "--junit".as_ref(),
        stdout.as_os_str(),
        "--graph".as_ref(),
        stdout.as_os_str(),
        "--graph-format".as_ref(),
        "svg".as_ref(),
    ]));
    run.assert_code(2)
        .assert_stderr("both go to the runner's standard output");
    let run = runner(seed(&[
        "--json".as_ref(),
        "--junit".as_ref(),
        stdout.as_os_str(),
    ]));
    run.assert_code(2)
        .assert_stderr("which --json gives to its events");
    assert!(!run.stdout.contains("netns"), "{}", run.all());
    dev.assert_unchanged(&run);
}

/// In a report directory (the runner's own tree), a device node or link the runner did not
/// make is refused by name and left as it was.
#[test]
fn a_device_node_in_the_report_directory_is_refused_by_name() {
    let dev = PrivateDev::new("dev-report");
    let report = dev.path("report");
    std::fs::create_dir(&report).unwrap();
    nix::sys::stat::mknod(
        &report.join("index.html"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let run = run_clean(seed(&[
        "-q".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ]));
    run.assert_code(2).assert_stderr(&format!(
        "{} is a character device that the runner did not make",
        report.join("index.html").display()
    ));
    let meta = std::fs::symlink_metadata(report.join("index.html")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), nix::sys::stat::makedev(1, 3));
    std::fs::remove_dir_all(&report).unwrap();
    dev.assert_unchanged(&run);
}
