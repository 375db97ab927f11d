//! What a run writes for CI and for eyes (docs/report.md): the JSON event stream, JUnit XML,
//! the report directory, the picture of the lab, files a scenario saves, and `runner test`.
//! Each output is read back with a real parser (serde_json, roxmltree) and held against the run.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

/// A directory unique to this test process and `tag`; removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(format!("nslab-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        ScratchDir(path)
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256_of(file: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn json_puts_every_event_on_stdout_and_the_text_on_stderr() {
    let seed = guest("seed");
    let run = run_clean([
        Path::new("run").as_os_str(),
        "--json".as_ref(),
        seed.as_os_str(),
    ]);
    run.assert_code(0);
    let ev = events(&run.stdout);
    assert!(
        ev.iter().all(|e| e["v"] == 1 && e["t"].is_number()),
        "{ev:?}"
    );
    // The run's start names the file by its digest and the policy in force.
    let start = &ev[0];
    assert_eq!(start["event"], "run-start");
    assert_eq!(start["sha256"], sha256_of(&seed));
    assert_eq!(start["policy"]["exec-allow"], "ip, iperf3, ping, ss");
    // Every check the terminal shows is an event, with its status.
    let checks = of_kind(&ev, "check");
    let shown = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("   ok "))
        .count();
    assert_eq!(checks.len(), shown, "{}", run.stderr);
    assert!(checks.iter().all(|c| c["passed"] == true));
    assert!(of_kind(&ev, "step").len() >= 5);
    // Every kernel change the runner made, and the program with its status and bytes.
    let changes: Vec<&str> = of_kind(&ev, "change")
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert!(
        changes.iter().any(|c| c.starts_with("netns add ns01")),
        "{changes:?}"
    );
    assert!(changes.contains(&"link add ns01-veth0 (ns01) type veth peer ns02-veth0 (ns02)"));
    assert!(changes.contains(&"address add 192.168.0.1/24 dev ns01-veth0 (ns01)"));
    let starts = of_kind(&ev, "program-start");
    let ends = of_kind(&ev, "program-end");
    assert_eq!((starts.len(), ends.len()), (1, 1));
    assert_eq!(starts[0]["command"], "ping -c 3 192.168.0.2");
    assert_eq!(ends[0]["program"], starts[0]["program"]);
    assert_eq!(ends[0]["status"], 0);
    let printed: usize = of_kind(&ev, "output")
        .iter()
        .map(|o| o["line"].as_str().unwrap().len() + 1)
        .sum();
    assert_eq!(ends[0]["stdout_bytes"].as_u64().unwrap() as usize, printed);
    // What was built, as the runner built it.
    let topo = of_kind(&ev, "topology");
    assert_eq!(topo[0]["namespaces"].as_array().unwrap().len(), 2);
    let link = &topo[0]["links"][0];
    assert_eq!(link["peer"][1], "ns02-veth0");
    assert_eq!(link["addresses"][0], "192.168.0.1/24");
    assert_eq!(
        of_kind(&ev, "teardown")[0]["removed"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let last = ev.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["verdict"].as_str()),
        (Some("verdict"), Some("passed"))
    );
    assert_eq!(last["exit"], 0);
    // The terminal text went to stderr, whole.
    assert!(run.stderr.contains("PASS seed ("), "{}", run.stderr);
    assert!(
        run.stdout.lines().all(|l| l.starts_with('{')),
        "{}",
        run.stdout
    );
}

#[test]
fn json_accounts_for_refusals_failures_and_files_that_cannot_run() {
    let run = run_clean([
        "run".as_ref(),
        "--json".as_ref(),
        guest("faults").as_os_str(),
        "--".as_ref(),
        "denied".as_ref(),
    ]);
    run.assert_code(1);
    let ev = events(&run.stdout);
    let refusals = of_kind(&ev, "refusal");
    assert_eq!(refusals.len(), 1, "{ev:?}");
    assert!(refusals[0]["text"].as_str().unwrap().contains("nc"));
    let v = ev.last().unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["ended"].as_str()),
        (Some("failed"), Some("returned-error"))
    );

    let bad = Scratch::new("json-corrupt.wasm", b"\0asm\x0d\0\x01\0garbage");
    let run = run_clean(["run".as_ref(), "--json".as_ref(), bad.0.as_os_str()]);
    run.assert_code(2);
    let ev = events(&run.stdout);
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run-start", "error", "verdict"]);
    assert_eq!(ev[2]["verdict"], "could-not-run");
    assert_eq!(ev[2]["exit"], 2);
}

/// A test case of a JUnit file: its suite, its name, and its failure or error with the message.
type Case = (String, String, Option<(String, String)>);

/// The JUnit file, parsed: its test suite and test cases, by name.
fn junit_cases(xml: &str) -> Vec<Case> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let suite = c.parent().unwrap().attribute("name").unwrap().to_string();
            let bad = c
                .children()
                .find(|k| k.has_tag_name("failure") || k.has_tag_name("error"))
                .map(|k| {
                    (
                        k.tag_name().name().to_string(),
                        k.attribute("message").unwrap_or_default().to_string(),
                    )
                });
            (suite, c.attribute("name").unwrap().to_string(), bad)
        })
        .collect()
}

/// Run the faults scenario in `mode` with `--junit FILE`: its exit status and its test cases.
fn faults_junit(file: &Path, mode: &str) -> (i32, Vec<Case>) {
    let run = run_clean([
        "run".as_ref(),
        "-q".as_ref(),
        "--junit".as_ref(),
        file.as_os_str(),
        guest("faults").as_os_str(),
        "--".as_ref(),
        mode.as_ref(),
    ]);
    (run.code, junit_cases(&read(file)))
}

#[test]
fn junit_has_a_case_per_check_and_the_failures_with_their_detail() {
    let dir = ScratchDir::new("junit");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.join("checks.xml");
    let (code, cases) = faults_junit(&file, "check");
    assert_eq!(code, 1);
    assert_eq!(cases.len(), 3, "{cases:?}");
    assert!(cases.iter().all(|(suite, _, _)| suite == "faults"));
    assert_eq!(
        cases[0],
        (
            "faults".into(),
            "Build a lab, then fail: check / one plus one is three".into(),
            Some(("failure".into(), "it is 2".into()))
        )
    );
    assert_eq!(
        cases[1].1,
        "Build a lab, then fail: check / this one passes"
    );
    assert_eq!(cases[1].2, None);
    // Only the check failed: the run itself returned.
    assert_eq!((cases[2].1.as_str(), &cases[2].2), ("run", &None));

    // A scenario error and a refusal are failures of their own.
    let (code, cases) = faults_junit(&file, "denied");
    assert_eq!(code, 1);
    let failures: Vec<&str> = cases
        .iter()
        .filter_map(|(_, name, bad)| bad.as_ref().map(|_| name.as_str()))
        .collect();
    assert_eq!(failures, ["refused by the policy #1", "run"], "{cases:?}");

    // A file that cannot be run is an error, so CI shows it rather than nothing.
    let bad = Scratch::new("junit-core.wasm", b"\0asm\x01\0\0\0");
    let run = run_clean([
        "run".as_ref(),
        "--junit".as_ref(),
        file.as_os_str(),
        bad.0.as_os_str(),
    ]);
    run.assert_code(2);
    let cases = junit_cases(&read(&file));
    assert_eq!(cases.len(), 1);
    let (kind, message) = cases[0].2.clone().unwrap();
    assert_eq!(kind, "error");
    assert!(message.contains("core"), "{message}");
}

/// Every element of an XML tree.
fn all_elements<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants().filter(|n| n.is_element()).collect()
}

#[test]
fn the_report_directory_is_self_contained_and_holds_the_saved_capture() {
    if !Path::new("/usr/bin/tcpdump").exists() && !Path::new("/usr/sbin/tcpdump").exists() {
        return skipped("tcpdump is not installed (scripts/setup.sh installs it)");
    }
    let dir = ScratchDir::new("report");
    let run = run_clean([
        "run".as_ref(),
        "-q".as_ref(),
        "--allow-exec".as_ref(),
        "tcpdump".as_ref(),
        "--report".as_ref(),
        dir.0.as_os_str(),
        guest("capture").as_os_str(),
    ]);
    run.assert_code(0)
        .assert_stdout(&format!("report: {}", dir.join("index.html").display()));
    let html = read(&dir.join("index.html"));
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("index.html is not well-formed: {e}"));
    // Nothing is fetched: no script, no external stylesheet or image, no remote link.
    for node in all_elements(&doc) {
        assert!(!matches!(
            node.tag_name().name(),
            "script" | "link" | "img" | "iframe"
        ));
        for attr in node.attributes() {
            if attr.name() == "xmlns" {
                continue;
            }
            let v = attr.value();
            assert!(
                !v.contains("://") && !v.starts_with("//"),
                "{}={v:?} reaches out",
                attr.name()
            );
        }
    }
    let verdict = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("verdict"))
        .unwrap();
    assert_eq!(verdict.attribute("data-verdict"), Some("passed"));
    // Every check of the run is on the page, marked as it went.
    let events = events(&read(&dir.join("events.jsonl")));
    let checks = of_kind(&events, "check");
    assert_eq!(checks.len(), 4);
    let shown: Vec<String> = doc
        .descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.starts_with("check "))
        })
        .map(|n| {
            n.descendants()
                .find(|k| k.attribute("class") == Some("name"))
                .and_then(|k| k.text())
                .unwrap()
                .to_string()
        })
        .collect();
    let expected: Vec<String> = checks
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown, expected);
    // Both programs, collapsed, with their command lines; the picture is inline.
    let programs = doc
        .descendants()
        .filter(|n| n.has_tag_name("details") && n.attribute("class") == Some("program"))
        .count();
    assert_eq!(programs, 2);
    assert!(doc.descendants().any(|n| n.has_tag_name("svg")));
    // The saved capture is the pcap the scenario parsed, beside the page.
    let pcap = std::fs::read(dir.join("files/icmp.pcap")).unwrap();
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let saved = of_kind(&events, "attachment");
    assert_eq!(saved[0]["bytes"].as_u64().unwrap() as usize, pcap.len());
    assert!(html.contains("href=\"files/icmp.pcap\""));
    roxmltree::Document::parse(&read(&dir.join("topology.svg"))).unwrap();
    assert_eq!(junit_cases(&read(&dir.join("junit.xml"))).len(), 5);
}

/// A box of the picture: (x, y, w, h).
fn rect_of(n: &roxmltree::Node) -> (f64, f64, f64, f64) {
    let f = |a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    (f("x"), f("y"), f("width"), f("height"))
}

fn overlap(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

/// The box a text takes, from its anchor, its size and its length (0.62 em a glyph, as the
/// layout assumes, plus a margin).
fn text_box(n: &roxmltree::Node) -> (f64, f64, f64, f64) {
    let f = |a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    let size = f("font-size");
    let w = n.text().unwrap_or_default().chars().count() as f64 * size * 0.62;
    (f("x") - w / 2.0, f("y") - size * 0.8, w, size)
}

#[test]
fn the_picture_of_a_hundred_host_lan_is_readable() {
    let dir = ScratchDir::new("graph");
    std::fs::create_dir_all(&dir.0).unwrap();
    let svg = dir.join("lan.svg");
    // The lab is built in well under a second; the deadline ends the 9900 pings that follow.
    let run = run_clean([
        "run".as_ref(),
        "-q".as_ref(),
        "--timeout".as_ref(),
        "4s".as_ref(),
        "--max-namespaces".as_ref(),
        "110".as_ref(),
        "--max-links".as_ref(),
        "300".as_ref(),
        "--graph".as_ref(),
        svg.as_os_str(),
        guest("lan").as_os_str(),
        "--".as_ref(),
        "--hosts".as_ref(),
        "100".as_ref(),
    ]);
    run.assert_code(1).assert_stdout("passed its deadline");
    let text = read(&svg);
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    let (w, h): (f64, f64) = (
        root.attribute("width").unwrap().parse().unwrap(),
        root.attribute("height").unwrap().parse().unwrap(),
    );
    // It fits a screen or two: wide layers wrap into rows.
    assert!(w <= 2000.0 && h <= 2000.0, "{w} x {h}");
    let nodes: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .collect();
    assert_eq!(
        nodes.len(),
        102,
        "100 hosts, the switch namespace and its bridge"
    );
    let rects: Vec<_> = nodes.iter().map(rect_of).collect();
    for (i, a) in rects.iter().enumerate() {
        for b in &rects[i + 1..] {
            assert!(!overlap(*a, *b), "boxes {a:?} and {b:?} overlap");
        }
    }
    let texts: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .collect();
    let titles: Vec<&str> = texts
        .iter()
        .filter(|t| t.attribute("font-weight") == Some("bold"))
        .filter_map(|t| t.text())
        .collect();
    for i in 1..=100 {
        assert!(
            titles.contains(&format!("h{i}").as_str()),
            "h{i} is not drawn"
        );
    }
    assert!(texts.iter().any(|t| t.text() == Some("eth0 10.0.0.57/24")));
    // No text sits on another, and the interface labels of the cables stay readable.
    let boxes: Vec<_> = texts.iter().map(text_box).collect();
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            assert!(!overlap(*a, *b), "texts at {a:?} and {b:?} overlap");
        }
    }
    let bridge = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("node bridge"))
        .unwrap();
    assert_eq!(
        bridge
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect::<Vec<_>>(),
        ["br0", "switch in sw, 100 ports"]
    );
}

#[test]
fn the_picture_is_also_dot_and_mermaid_and_an_unknown_format_is_refused_first() {
    let dir = ScratchDir::new("graph-formats");
    std::fs::create_dir_all(&dir.0).unwrap();
    let (dot, mmd) = (dir.join("lab.dot"), dir.join("lab.mmd"));
    for file in [&dot, &mmd] {
        run_clean([
            "run".as_ref(),
            "-q".as_ref(),
            "--graph".as_ref(),
            file.as_os_str(),
            guest("router").as_os_str(),
        ])
        .assert_code(0);
    }
    let dot = read(&dot);
    assert!(
        dot.starts_with("graph lab {") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
    assert!(
        dot.contains(r#"n1 [label="r\neth1 10.0.1.1/24\neth2 10.0.2.1/24"]"#),
        "{dot}"
    );
    assert!(
        dot.contains(r#"n0 -- n1 [taillabel="eth0", headlabel="eth1"];"#),
        "{dot}"
    );
    let mmd = read(&mmd);
    assert!(mmd.starts_with("graph TD\n"), "{mmd}");
    assert!(mmd.contains(r#"n0["h1<br/>eth0 10.0.1.2/24"]"#), "{mmd}");
    assert!(mmd.contains(r#"n0 ---|"eth0 - eth1"| n1"#), "{mmd}");

    let run = run_clean([
        "run".as_ref(),
        "--graph".as_ref(),
        dir.join("lab.png").as_os_str(),
        guest("seed").as_os_str(),
    ]);
    run.assert_code(2)
        .assert_stderr(".svg, .dot (Graphviz) or .mmd (Mermaid)");
    assert!(
        !run.stdout.contains("netns add"),
        "it ran first:\n{}",
        run.stdout
    );
}

#[test]
fn saved_files_are_capped_by_the_policy_and_named_plainly() {
    let dir = ScratchDir::new("attach");
    let mut args = attacks_args(
        &[
            "--attach-bytes",
            "1000",
            "--report",
            dir.0.to_str().unwrap(),
        ],
        "attach",
        &["5", "300"],
    );
    args.insert(1, "--json".into());
    let run = run_clean(args);
    run.assert_code(0);
    let ev = events(&run.stdout);
    let checks = of_kind(&ev, "check");
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
    let capped = checks
        .iter()
        .find(|c| c["name"] == "the report's files are capped")
        .unwrap();
    let detail = capped["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("file 3: ") && detail.contains("Limit"),
        "{capped}"
    );
    assert!(capped["detail"].as_str().unwrap().contains("attach-bytes"));
    // What is on disk: three files of 300 bytes, under files/, and nothing else anywhere.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["f0.bin", "f1.bin", "f2.bin"]);
    assert!(!dir.0.parent().unwrap().join("escape").exists());
    assert!(!dir.join("escape").exists() && !dir.join("files/.hidden").exists());
    assert_eq!(
        std::fs::metadata(dir.join("files/f0.bin")).unwrap().len(),
        300
    );
    assert_eq!(of_kind(&ev, "refusal").len(), 1);
}

#[test]
fn a_report_is_not_written_through_a_planted_symlink_or_into_another_users_directory() {
    let dir = ScratchDir::new("planted");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let target = Scratch::new("planted-target", b"original\n");
    std::os::unix::fs::symlink(&target.0, dir.join("files/f0.bin")).unwrap();
    let run = run_clean(attacks_args(
        &["--report", dir.0.to_str().unwrap()],
        "attach",
        &["1", "10"],
    ));
    // The link is refused by name, never written through nor replaced (output/dir.rs; issue
    // 32: nothing that is not a regular file is renamed over).
    run.assert_code(2)
        .assert_stderr("files/f0.bin is a symbolic link that the runner did not make");
    assert_eq!(std::fs::read(&target.0).unwrap(), b"original\n");
    let kept = std::fs::symlink_metadata(dir.join("files/f0.bin")).unwrap();
    assert!(kept.file_type().is_symlink(), "{:?}", kept.file_type());

    // A directory another user owns could be swapped under the runner: refused before the run.
    let theirs = ScratchDir::new("theirs");
    std::fs::create_dir_all(&theirs.0).unwrap();
    std::os::unix::fs::chown(&theirs.0, Some(65534), Some(65534)).unwrap();
    let run = run_clean([
        "run".as_ref(),
        "--report".as_ref(),
        theirs.0.as_os_str(),
        guest("seed").as_os_str(),
    ]);
    run.assert_code(2)
        .assert_stderr("belongs to user nobody (uid 65534), who could swap it");
    assert!(!run.stdout.contains("netns add"), "it ran:\n{}", run.stdout);
    assert_eq!(std::fs::read_dir(&theirs.0).unwrap().count(), 0);
}

#[test]
fn runner_test_runs_the_gallery_side_by_side() {
    let dir = ScratchDir::new("suite");
    let junit = dir.join("junit.xml");
    let report = dir.join("report");
    let gallery = ["seed", "router", "lan", "shaped", "ipv6"];
    let mut args: Vec<std::ffi::OsString> = vec!["test".into(), "-j".into(), "4".into()];
    args.extend(["--junit".into(), junit.clone().into_os_string()]);
    args.extend(["--report".into(), report.clone().into_os_string()]);
    std::fs::create_dir_all(&dir.0).unwrap();
    args.extend(gallery.iter().map(|g| guest(g).into_os_string()));
    let run = run_clean(args);
    run.assert_code(0)
        .assert_stdout("running 5 scenarios, 4 side by side")
        .assert_stdout("test result: ok. 5 passed; 0 failed; 0 could not run;");
    for g in gallery {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("test {g} ... ok ("))),
            "{}",
            run.stdout
        );
        assert!(report.join(g).join("index.html").is_file());
    }
    let doc_text = read(&junit);
    let doc = roxmltree::Document::parse(&doc_text).unwrap();
    let suites: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(suites.len(), 5);
    for g in gallery {
        assert!(suites.contains(&g), "{suites:?}");
    }
    assert!(junit_cases(&doc_text)
        .iter()
        .all(|(_, _, bad)| bad.is_none()));
    let index = read(&report.join("index.html"));
    let index = roxmltree::Document::parse_with_options(
        &index,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rows = index
        .descendants()
        .filter(|n| n.attribute("class") == Some("run passed"))
        .count();
    assert_eq!(rows, 5);
}

#[test]
fn runner_test_exits_1_when_one_fails_and_2_when_one_cannot_run() {
    let dir = ScratchDir::new("suite-fail");
    std::fs::create_dir_all(&dir.0).unwrap();
    let failing = dir.join("failing.wasm");
    std::fs::copy(guest("faults"), &failing).unwrap();
    let run = run_clean([
        "test".as_ref(),
        guest("seed").as_os_str(),
        failing.as_os_str(),
        "--".as_ref(),
        "check".as_ref(),
    ]);
    run.assert_code(1)
        .assert_stdout("test failing ... FAILED (")
        .assert_stdout("---- failing ----\n   FAIL one plus one is three: it is 2")
        .assert_stdout("test result: FAILED. 1 passed; 1 failed; 0 could not run;");

    let corrupt = dir.join("corrupt.wasm");
    std::fs::write(&corrupt, b"not wasm").unwrap();
    let run = run_clean(["test".as_ref(), dir.0.as_os_str()]);
    run.assert_code(2)
        .assert_stdout("test corrupt ... COULD NOT RUN (")
        .assert_stdout("test failing ... ok (")
        .assert_stdout("test result: FAILED. 1 passed; 0 failed; 1 could not run;");
}

#[test]
fn the_progress_line_is_drawn_on_a_terminal_only() {
    let seed = guest("seed");
    // Not a terminal: not a byte of it.
    let run = run_clean([Path::new("run").as_os_str(), seed.as_os_str()]);
    run.assert_code(0);
    assert!(!run.stderr.contains("building the lab"), "{}", run.stderr);
    assert!(!run.all().contains('\r') && !run.all().contains('\x1b'));
    // A terminal (script(1) gives the runner one): the line, with the lab's size.
    let _labs = lab_lock();
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{RUNNER} run {}", seed.display()),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("building the lab: 2 namespaces, 2 links, 1 programs"),
        "{all}"
    );
}

/// What the scenario itself prints joins the text on stderr under --json: stdout is events
/// alone, every line of it JSON, whatever the scenario writes.
#[test]
fn json_stdout_stays_events_alone_when_the_scenario_prints() {
    let run = run_clean([
        "run",
        "--json",
        "--allow-exec",
        "bird,sleep",
        guest("fabric").to_str().unwrap(),
        "--",
        "--side",
        "1",
        "--daemon",
        "sleep",
    ]);
    run.assert_code(0)
        .assert_stderr("[fabric] SCALE-RUNNER n=1");
    for line in run.stdout.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{}", run.all()));
    }
}

/// A suite run as three shards, as three CI jobs would, then merged: every scenario in exactly
/// one shard, the same share whatever order the files are named in, and the merged report and
/// JUnit file equal in cases to one unsharded run.
#[test]
fn a_suite_in_three_shards_merges_into_the_report_of_one_run() {
    let dir = ScratchDir::new("shards");
    let gallery = dir.join("gallery");
    std::fs::create_dir_all(&gallery).unwrap();
    let names = ["seed", "router", "lan", "ipv6", "shaped"];
    for g in names {
        std::fs::copy(guest(g), gallery.join(format!("{g}.wasm"))).unwrap();
    }
    let suite = |extra: &[&str], report: &str, junit: &str| {
        let mut args: Vec<std::ffi::OsString> = vec!["test".into(), "-j".into(), "3".into()];
        args.extend(extra.iter().map(Into::into));
        args.extend(["--report".into(), dir.join(report).into_os_string()]);
        args.extend(["--junit".into(), dir.join(junit).into_os_string()]);
        args.push(gallery.clone().into_os_string());
        run_clean(args)
    };
    suite(&[], "whole", "whole.xml")
        .assert_code(0)
        .assert_stdout("running 5 scenarios");
    let mut sizes = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let run = suite(
            &["--shard", &shard],
            &format!("shard-{k}"),
            &format!("shard-{k}.xml"),
        );
        run.assert_code(0)
            .assert_stdout(&format!("of 5 scenarios (shard {shard})"));
        let ran = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("test ") && l.contains(" ... "))
            .count();
        sizes.push(ran);
    }
    sizes.sort();
    assert_eq!(sizes, [1, 2, 2], "five scenarios in three shards");
    // The same share whatever order the files are named in.
    let mut reversed: Vec<std::ffi::OsString> = vec![
        "test".into(),
        "--shard".into(),
        "2/3".into(),
        "--report".into(),
        dir.join("again-2").into_os_string(),
    ];
    let mut files: Vec<PathBuf> = names
        .iter()
        .map(|g| gallery.join(format!("{g}.wasm")))
        .collect();
    files.reverse();
    reversed.extend(files.into_iter().map(PathBuf::into_os_string));
    run_clean(reversed).assert_code(0);
    let listed = |d: &str| -> Vec<String> {
        let runs: Value = serde_json::from_str(&read(&dir.join(d).join("runs.json"))).unwrap();
        let mut dirs: Vec<String> = runs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dir"].as_str().unwrap().to_string())
            .collect();
        dirs.sort();
        dirs
    };
    assert_eq!(listed("again-2"), listed("shard-2"));

    let merged = dir.join("merged");
    runner([
        "report".as_ref(),
        "merge".as_ref(),
        dir.join("shard-1").as_os_str(),
        dir.join("shard-2").as_os_str(),
        dir.join("shard-3").as_os_str(),
        "-o".as_ref(),
        merged.as_os_str(),
    ])
    .assert_code(0)
    .assert_stdout("merged 5 runs from 3 reports");
    let merged_xml = dir.join("merged.xml");
    runner([
        "report".as_ref(),
        "merge".as_ref(),
        dir.join("shard-1.xml").as_os_str(),
        dir.join("shard-2.xml").as_os_str(),
        dir.join("shard-3.xml").as_os_str(),
        "-o".as_ref(),
        merged_xml.as_os_str(),
    ])
    .assert_code(0)
    .assert_stdout("merged 5 test suites from 3 JUnit files");
    // Equal in cases to the unsharded run: the same test cases, the same outcomes.
    let cases = |xml: &str| -> Vec<(String, Option<(String, String)>)> {
        let mut c: Vec<_> = junit_cases(xml)
            .into_iter()
            .map(|(suite, name, bad)| {
                let scenario = suite
                    .split(" [shard ")
                    .next()
                    .unwrap_or_default()
                    .to_string();
                (format!("{scenario} / {name}"), bad)
            })
            .collect();
        c.sort();
        c
    };
    let whole = cases(&read(&dir.join("whole.xml")));
    assert!(whole.len() >= 10, "{whole:?}");
    assert_eq!(cases(&read(&merged.join("junit.xml"))), whole);
    assert_eq!(cases(&read(&merged_xml)), whole);
    // Each suite says its shard; the merged index lists every run with its shard.
    let suites = read(&merged_xml);
    for k in 1..=3 {
        assert!(suites.contains(&format!("[shard {k}/3]")), "{suites}");
    }
    assert_eq!(listed("merged"), listed("whole"));
    for run in listed("merged") {
        assert!(merged.join(&run).join("index.html").is_file(), "{run}");
        assert!(merged.join(&run).join("events.jsonl").is_file(), "{run}");
    }
    let index = read(&merged.join("index.html"));
    assert!(
        index.contains("<th>shard</th>") && index.contains("<td>3/3</td>"),
        "{index}"
    );
    // Inputs of both kinds at once are refused with a sentence.
    runner([
        "report".as_ref(),
        "merge".as_ref(),
        dir.join("shard-1").as_os_str(),
        dir.join("shard-1.xml").as_os_str(),
        "-o".as_ref(),
        dir.join("x").as_os_str(),
    ])
    .assert_code(2)
    .assert_stderr("not both");
}
