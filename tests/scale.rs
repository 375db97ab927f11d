//! How the runner's cost grows with the lab, counted rather than timed (bench/run.sh times it):
//! the netlink requests a chain costs per namespace, which must not depend on the chain's length.

use crate::common::*;

/// Build a chain of `n` with `--json`; the lab's netlink requests and the teardown's report.
fn chain(n: usize) -> (u64, serde_json::Value) {
    let args: Vec<std::ffi::OsString> = [
        "run".into(),
        "-q".into(),
        "--json".into(),
        "--max-namespaces".into(),
        (n + 10).to_string().into(),
        "--max-links".into(),
        (2 * n + 10).to_string().into(),
        guest("chain").into_os_string(),
        "--".into(),
        "--n".into(),
        n.to_string().into(),
    ]
    .into();
    let run = run_clean(args);
    run.assert_code(0);
    let teardown: serde_json::Value = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "teardown")
        .expect("a teardown event");
    (teardown["kernel_requests"].as_u64().unwrap(), teardown)
}

#[test]
fn a_chain_costs_five_netlink_requests_per_namespace_however_long() {
    let (short, _) = chain(10);
    let (long, teardown) = chain(40);
    // Each namespace after the first: its veth pair (one request: the lab picks both ends'
    // indexes, so nothing is looked up), two addresses, two links up. Namespaces themselves are
    // made by the helper, and teardown closes fds: neither costs a netlink request.
    assert_eq!(short, 9 * 5, "a chain of 10");
    assert_eq!(
        long - short,
        30 * 5,
        "30 more namespaces: {short} -> {long}"
    );
    assert_eq!(teardown["removed"].as_array().unwrap().len(), 40);
}

/// The account says where the lab's time went, kind by kind (nslab-lab's spent.rs), counting
/// each kind's calls where they happen: a chain makes namespaces and netlink requests, writes
/// its record, and tears down; it makes no box and starts nothing, so those are left out.
#[test]
fn the_account_says_where_the_labs_time_went() {
    let (requests, teardown) = chain(10);
    let spent: std::collections::BTreeMap<String, (u64, f64)> = teardown["spent"]
        .as_array()
        .expect("a spent list in the teardown event")
        .iter()
        .map(|s| {
            let work = s["work"].as_str().unwrap().to_string();
            (
                work,
                (s["calls"].as_u64().unwrap(), s["ms"].as_f64().unwrap()),
            )
        })
        .collect();
    let calls = |work: &str| spent.get(work).map(|s| s.0);
    assert_eq!(calls("namespaces"), Some(10), "{spent:?}");
    assert_eq!(calls("netlink"), Some(requests), "{spent:?}");
    // The record written whole at the first namespace, then a line for each.
    assert_eq!(calls("records"), Some(11), "{spent:?}");
    assert_eq!(calls("teardown"), Some(1), "{spent:?}");
    for absent in [
        "boxes",
        "starts",
        "files",
        "cgroups",
        "confinement",
        "deleting",
    ] {
        assert_eq!(calls(absent), None, "{absent}: {spent:?}");
    }
    assert!(
        spent.values().all(|(_, ms)| *ms >= 0.0) && spent["netlink"].1 > 0.0,
        "{spent:?}"
    );
}

/// `fabric` with `--daemon sleep`: COPIES idle programs in one namespace. The time from the
/// scenario's last line to the runner's exit: what ending the lab costs.
fn ending_a_lab_with(copies: usize) -> f64 {
    let args: Vec<std::ffi::OsString> = vec![
        "run".into(),
        "-q".into(),
        "--allow-exec".into(),
        "bird,sleep".into(),
        "--max-processes".into(),
        "300".into(),
        guest("fabric").into_os_string(),
        "--".into(),
        "--side".into(),
        "1".into(),
        "--daemon".into(),
        "sleep".into(),
        "--copies".into(),
        copies.to_string().into(),
    ];
    let mut bg = Background::start(args);
    bg.wait_for("SCALE-RUNNER");
    let ended = std::time::Instant::now();
    let run = bg.finish();
    run.assert_code(0);
    ended.elapsed().as_secs_f64()
}

/// Stopping programs is one signal to each and one wait for all, not a stop-and-wait per
/// program: ending a lab of 200 running programs costs far less than 200 times ending a lab of
/// one (medians of three, alternated). The runner before this measured about 35 times.
#[test]
fn ending_a_lab_of_200_programs_costs_far_less_than_200_labs_of_one() {
    let _labs = lab_lock();
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        one.push(ending_a_lab_with(1));
        many.push(ending_a_lab_with(200));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let (one, many) = (median(&mut one), median(&mut many));
    assert!(
        many < 20.0 * one,
        "ending 200 programs took {:.1} ms, one {:.1} ms: {:.0}x",
        many * 1000.0,
        one * 1000.0,
        many / one
    );
}

/// The scale scenario at a small size, with real daemons: a 3 x 3 grid of BIRD routers
/// converges, its phases are reported, and nothing is left (bench/birdgrid.sh runs 100 to 1000).
#[test]
fn a_small_bird_fabric_converges_and_reports_its_phases() {
    let run = run_clean([
        "run",
        "--allow-exec",
        "bird,sleep",
        guest("fabric").to_str().unwrap(),
        "--",
        "--side",
        "3",
        "--converge-s",
        "60",
    ]);
    run.assert_code(0)
        .assert_stdout("SCALE-RUNNER n=9 build=")
        .assert_stdout("ok   all 9 daemons are running")
        .assert_stdout("ok   OSPF converged: the corners know every router");
    assert!(lab_processes("bird").is_empty(), "a bird is left");
}

/// The pid a background program is shown with is the program's own, under its init, as the
/// host sees it (the init tells it, read from its own children before it can reap the
/// program).
#[test]
fn a_background_program_is_shown_with_its_own_pid() {
    let _labs = lab_lock();
    let args: Vec<std::ffi::OsString> = vec![
        "run".into(),
        "-v".into(),
        "--allow-exec".into(),
        "bird,sleep".into(),
        guest("fabric").into_os_string(),
        "--".into(),
        "--side".into(),
        "2".into(),
        "--daemon".into(),
        "sleep".into(),
        "--hold-s".into(),
        "5".into(),
    ];
    let mut bg = Background::start(args);
    // The fourth is shown as it starts; the lab is held 5 s after that.
    bg.wait_for("$ bg3: sleep");
    let shown: Vec<u32> = bg
        .seen
        .iter()
        .filter_map(|l| {
            l.split("(background, pid ")
                .nth(1)?
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .collect();
    // Each is the program, under its init, once it has executed (it is shown as soon as it
    // is forked).
    let comm = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let found = || -> Vec<(String, String)> {
        shown
            .iter()
            .map(|pid| {
                let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| s.rsplit(") ").next()?.split(' ').nth(1).map(str::to_string))
                    .unwrap_or_default();
                (comm(&pid.to_string()), comm(&parent))
            })
            .collect()
    };
    let right = |f: &[(String, String)]| {
        f.len() == 4
            && f.iter()
                .all(|(c, parent)| c == "sleep" && parent == "nslab-init")
    };
    let settled = within(std::time::Duration::from_secs(3), || right(&found()));
    let found = found();
    bg.signal(libc::SIGINT);
    let run = bg.finish();
    assert_eq!(shown.len(), 4, "{}", run.all());
    assert!(settled, "pids {shown:?} are {found:?}\n{}", run.all());
}

/// A background program's start is told as it is handed over, not waited for; yet its command
/// line still comes before anything the scenario prints next, even with no call to the host
/// in between.
#[test]
fn the_starts_of_background_programs_come_before_what_the_scenario_prints_next() {
    let _labs = lab_lock();
    let run = run_checked(attacks_args(&[], "spawn-say", &["10"]));
    let lines: Vec<&str> = run.stdout.lines().collect();
    let said = lines
        .iter()
        .position(|l| l.contains("SPAWNED-ALL 10"))
        .unwrap_or_else(|| panic!("the scenario's line is missing\n{}", run.all()));
    let started: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("$ a: sleep 5 &"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(started.len(), 10, "{}", run.all());
    assert!(
        started.iter().all(|&i| i < said),
        "a start was told after the scenario's next line\n{}",
        run.all()
    );
}
