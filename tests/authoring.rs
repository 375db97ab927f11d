//! Scenarios written anywhere, in Rust, Python, JavaScript or TypeScript: `runner new` as a new
//! user would use it, the Python and JavaScript SDKs and their gallery, `runner wit`, and the
//! compile cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A fresh folder outside the repository, removed on drop.
struct Folder(PathBuf);

impl Folder {
    fn new(tag: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("nslab-new-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Folder(dir)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `runner new NAME --lang LANG && cd NAME && ./build.sh && runner run NAME.wasm`, as a user:
/// the folder, for more.
fn new_build_run(lang: &str) -> Folder {
    let folder = Folder::new(lang);
    let made = Command::new(RUNNER)
        .args(["new", "lab", "--lang", lang])
        .current_dir(&folder.0)
        .output()
        .unwrap();
    Run::from_output(made)
        .assert_code(0)
        .assert_stdout("cd lab && ./build.sh && runner run lab.wasm");
    let project = folder.0.join("lab");
    let built = Command::new("./build.sh")
        .current_dir(&project)
        .output()
        .unwrap();
    Run::from_output(built)
        .assert_code(0)
        .assert_stdout("built lab.wasm");
    // What the build made stays out of the project's git (git itself is the judge): the
    // component, Rust's target/ (over 100 MB), Python's .venv.
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(&project)
            .output()
            .unwrap()
    };
    git(&["init", "-q"]);
    let tracked = String::from_utf8_lossy(&git(&["add", "-A", "--dry-run"]).stdout).into_owned();
    assert!(tracked.contains("build.sh"), "{tracked}");
    for made in [
        "lab.wasm",
        "target/",
        ".venv/",
        "__pycache__",
        "node_modules/",
        "build/",
    ] {
        assert!(
            !tracked.contains(made),
            "{made} would be committed:\n{tracked}"
        );
    }
    let _labs = lab_lock();
    run_lab(&project)
        .assert_code(0)
        .assert_stdout("ok   ping lost nothing: 3 packets transmitted, 3 received, 0% packet loss")
        .assert_stdout("PASS lab (");
    folder
}

/// `runner run lab.wasm` in a project's folder, as its README says.
fn run_lab(project: &Path) -> Run {
    let run = Command::new(RUNNER)
        .args(["run", "lab.wasm"])
        .current_dir(project)
        .output()
        .unwrap();
    Run::from_output(run)
}

#[test]
fn a_new_python_project_builds_and_runs_in_a_fresh_folder() {
    new_build_run("python");
}

#[test]
fn a_new_rust_project_builds_and_runs_in_a_fresh_folder() {
    new_build_run("rust");
}

/// A JavaScript project as a new user makes it; then an error the scenario does not catch:
/// its stack, with the file and line, on the scenario's stderr, and the run fails with exit 1.
#[test]
fn a_new_javascript_project_builds_and_runs_and_an_uncaught_error_shows_its_stack() {
    let folder = new_build_run("js");
    let project = folder.0.join("lab");
    std::fs::write(
        project.join("app.js"),
        r#"import { scenario, step } from "./nslab.js";

export const { describe, run } = scenario({
  name: "lab", description: "an error nobody catches", programs: [],
  async lab(args) {
    step("about to fail");
    const config = JSON.parse(args[0] ?? "{}");
    return config.routers.length;
  },
});
"#,
    )
    .unwrap();
    let built = Command::new("./build.sh")
        .current_dir(&project)
        .output()
        .unwrap();
    Run::from_output(built).assert_code(0);
    run_lab(&project)
        .assert_code(1)
        .assert_stderr("TypeError: can't access property \"length\", config.routers is undefined")
        .assert_stderr("lab@app.js:8:")
        .assert_stdout("FAIL lab: the scenario returned an error: can't access property");
}

#[test]
fn a_new_typescript_project_builds_and_runs_in_a_fresh_folder() {
    let folder = new_build_run("ts");
    for file in ["app.ts", "tsconfig.json", "nslab.d.ts"] {
        assert!(folder.0.join("lab").join(file).is_file(), "{file}");
    }
}

#[test]
fn the_javascript_and_typescript_gallery_runs_and_host_errors_carry_their_kind() {
    run_clean([std::ffi::OsString::from("run"), js_guest("seed").into()])
        .assert_code(0)
        .assert_stdout("ok   ping lost nothing: 3 packets transmitted, 3 received")
        .assert_stdout("PASS seed-js (2 steps, 1 check passed, 0 failed");
    run_clean([std::ffi::OsString::from("run"), js_guest("router").into()])
        .assert_code(0)
        .assert_stdout("ok   a second h1 is refused with the kind exists: exists")
        .assert_stdout("ok   h2 answers once forwarding is on: within ")
        .assert_stdout("ok   h1 pings h2 through the router: ttl=63")
        .assert_stdout("PASS router-ts (2 steps, 3 checks passed, 0 failed");
}

#[test]
fn runner_new_refuses_a_bad_name_and_an_existing_folder() {
    let folder = Folder::new("refuse");
    let new = |name: &str| {
        Run::from_output(
            Command::new(RUNNER)
                .args(["new", name])
                .current_dir(&folder.0)
                .output()
                .unwrap(),
        )
    };
    new("../escape")
        .assert_code(2)
        .assert_stderr("cannot name a scenario project");
    assert!(!folder.0.join("../escape").exists());
    new("lab").assert_code(0);
    new("lab").assert_code(2).assert_stderr("already exists");
}

#[test]
fn runner_wit_writes_the_contract_as_the_runner_knows_it() {
    let folder = Folder::new("wit");
    runner(["wit".as_ref(), folder.0.as_os_str()]).assert_code(0);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let mut names = 0;
    for entry in std::fs::read_dir(&repo).unwrap().flatten() {
        let written = std::fs::read(folder.0.join(entry.file_name())).unwrap();
        assert_eq!(
            written,
            std::fs::read(entry.path()).unwrap(),
            "{:?}",
            entry.file_name()
        );
        names += 1;
    }
    assert_eq!(names, 7);
}

#[test]
fn the_python_seed_and_router_pass() {
    run_clean([os("run"), python_guest("seed").as_os_str()])
        .assert_code(0)
        .assert_stdout("   + netns add ns01")
        .assert_stdout("PASS seed-py (4 steps, 1 check passed, 0 failed");
    run_clean([os("run"), python_guest("router").as_os_str()])
        .assert_code(0)
        .assert_stdout("ok   no forwarding, no reply")
        .assert_stdout("ok   h1 pings h2 through the router: ttl=63")
        .assert_stdout("ok   h2 answers once forwarding is on: within ")
        .assert_stdout("PASS router-py (3 steps, 3 checks passed, 0 failed");
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn a_python_scenario_fails_with_the_hosts_sentence_or_its_own_traceback() {
    let faults = python_guest("faults");
    run_clean([os("run"), faults.as_os_str(), os("--"), os("host-error")])
        .assert_code(1)
        .assert_stdout(
            "FAIL faults-py: the scenario returned an error: invalid: namespace name \"sixteen-chars-xx\" is 16 characters long",
        );
    run_clean([os("run"), faults.as_os_str(), os("--"), os("raise")])
        .assert_code(1)
        .assert_stdout("the scenario raised ZeroDivisionError: division by zero (traceback above)")
        .assert_stderr("   [faults] Traceback (most recent call last):")
        .assert_stderr("app.py\", line 19, in lab")
        .assert_stderr("   [faults] ZeroDivisionError: division by zero");
}

#[test]
fn a_second_run_of_the_same_file_compiles_nothing() {
    let file = python_guest("router");
    let first = runner([os("inspect"), os("--no-cache"), file.as_os_str()]);
    first.assert_code(0);
    // One run fills the cache (or finds it filled); the next one compiles nothing.
    let run = |extra: &[&str]| {
        let mut args = vec![os("run"), os("-v")];
        args.extend(extra.iter().map(|a| os(a)));
        args.push(file.as_os_str());
        run_clean(args)
    };
    run(&[]).assert_code(0);
    run(&[])
        .assert_code(0)
        .assert_stdout("compiled code: from the compile cache");
    run(&["--no-cache"])
        .assert_code(0)
        .assert_stdout("compiled code: compiled now");
}
