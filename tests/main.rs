//! The integration tests: the real `runner` binary on real scenarios, as root, in real
//! namespaces. One harness (one test binary) for all of them, so that a test file is a module
//! here; `every_test_file_is_in_the_harness` fails if one is left out. `repeat.rs` is the one
//! test binary of its own: it measures its own process (fds, threads, children), which other
//! tests running beside it would disturb.

mod authoring;
mod bad_files;
mod boxing;
mod cli;
mod common;
mod confinement;
mod conformance;
mod device_outputs;
mod failures;
mod gallery;
mod keep;
mod labs;
mod lifecycle;
mod outputs;
mod policy;
mod principal;
mod reports;
mod rootless;
mod scale;
mod security;
mod seed;
mod stepping_in;
mod structure;

#[test]
fn every_test_file_is_in_the_harness() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests");
    let harness = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module == "main" || module == "repeat" {
            continue;
        }
        assert!(
            harness.contains(&format!("mod {module};")),
            "tests/{name} is not a module of tests/main.rs: add `mod {module};` there"
        );
    }
}
