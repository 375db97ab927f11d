//! Files the runner cannot run: each is exit status 2 with one sentence that says what the file
//! is and what to do, no panic, and nothing created.

use crate::common::*;

fn refuse(path: &std::path::Path, message: &str) {
    let run = run_clean([std::path::Path::new("run"), path]);
    run.assert_code(2).assert_stderr(message);
    assert!(
        run.stdout.is_empty(),
        "nothing should be narrated\n{}",
        run.all()
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.all());
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one line of error\n{}",
        run.all()
    );
}

#[test]
fn missing_file() {
    refuse(
        std::path::Path::new("/nonexistent/lab.wasm"),
        "runner: error: cannot read /nonexistent/lab.wasm: No such file or directory",
    );
}

#[test]
fn empty_file() {
    let f = Scratch::new("empty.wasm", b"");
    refuse(
        &f.0,
        "is empty: expected a WebAssembly component built for the world nslab:lab/scenario@0.1.0",
    );
}

#[test]
fn random_bytes() {
    // Fixed pseudo-random bytes (an LCG), so the test is the same every time.
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let f = Scratch::new("random.wasm", &bytes);
    refuse(
        &f.0,
        "is not WebAssembly: it does not start with the \\0asm magic bytes",
    );
}

#[test]
fn corrupt_component() {
    // The component header, then garbage.
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend_from_slice(&[0xff; 64]);
    let f = Scratch::new("corrupt.wasm", &bytes);
    refuse(&f.0, "is not a valid WebAssembly component: ");
}

#[test]
fn core_module_instead_of_component() {
    // The smallest valid core module: magic and version 1.
    let f = Scratch::new("core.wasm", b"\0asm\x01\0\0\0");
    refuse(&f.0, "is a core WebAssembly module, not a component: build the scenario for the wasm32-wasip2 target");
}

#[test]
fn wasi_command_component_of_another_world() {
    refuse(
        &guest("hello"),
        "is a component but not an nslab scenario: no export `describe` found. A scenario is built against the world nslab:lab/scenario@0.1.0",
    );
}
