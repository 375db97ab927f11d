//! Scenario projects anywhere: `runner new NAME [--lang rust|python|js|ts]` writes a folder
//! that builds and runs on its own, and `runner wit DIR` writes the contract alone (for Go with
//! TinyGo, or any component toolchain). Everything written is carried inside the runner, taken
//! from this repository when it was built: the WIT contract, the Rust, Python and JavaScript
//! SDKs, and the seed scenario in each language. So a project matches the runner that made it,
//! and needs nothing but the registries (crates.io, PyPI, npm).

use std::path::{Path, PathBuf};

/// The WIT contract, file by file.
pub const WIT: &[(&str, &str)] = &[
    ("world.wit", include_str!("../../../wit/world.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("netns.wit", include_str!("../../../wit/netns.wit")),
    ("link.wit", include_str!("../../../wit/link.wit")),
    ("route.wit", include_str!("../../../wit/route.wit")),
    ("exec.wit", include_str!("../../../wit/exec.wit")),
    ("report.wit", include_str!("../../../wit/report.wit")),
];

/// The Rust SDK's sources (guests/sdk).
const RUST_SDK: &[(&str, &str)] = &[
    ("lib.rs", include_str!("../../../guests/sdk/src/lib.rs")),
    ("args.rs", include_str!("../../../guests/sdk/src/args.rs")),
    ("error.rs", include_str!("../../../guests/sdk/src/error.rs")),
    ("exec.rs", include_str!("../../../guests/sdk/src/exec.rs")),
    ("wait.rs", include_str!("../../../guests/sdk/src/wait.rs")),
];
const RUST_SEED: &str = include_str!("../../../guests/seed/src/lib.rs");
const PYTHON_SDK: &str = include_str!("../../../guests/python/nslab.py");
const PYTHON_SEED: &str = include_str!("../../../guests/python/seed/app.py");
const JS_SDK: &str = include_str!("../../../guests/js/nslab.js");
const JS_SDK_TYPES: &str = include_str!("../../../guests/js/nslab.d.ts");
const JS_SEED: &str = include_str!("../../../guests/js/seed/app.js");
/// The tools the gallery's JavaScript is built with (scripts/build-js.sh): a project pins the
/// same (a test checks they agree).
#[cfg(test)]
const JS_TOOLS: &str = include_str!("../../../guests/js/tools/package.json");

/// The versions a project builds with: the runner's own wit-bindgen and componentize-py.
pub const WIT_BINDGEN: &str = "0.61.1";
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js, and the preview2-shim it imports without declaring it (pinned, or npm may
/// hoist one whose default gives the build no files), and esbuild, which strips TypeScript's
/// types.
pub const COMPONENTIZE_JS: &str = "0.23.0";
pub const PREVIEW2_SHIM: &str = "0.25.0";
pub const ESBUILD: &str = "0.28.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    /// JavaScript (componentize-js).
    Js,
    /// TypeScript (esbuild, then componentize-js).
    Ts,
}

/// Write the contract into `dir` (made if missing): the files written.
pub fn write_wit(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    WIT.iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        })
        .collect()
}

/// A project name: a letter, then letters, digits, `-` or `_` (it names the crate, the module
/// and the .wasm file).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} cannot name a scenario project: use a lowercase letter, then lowercase letters, digits, - or _ (like my-lab)"
        ))
    }
}

fn fill(template: &str, name: &str, lang: Lang) -> String {
    let (lang_name, source, sdk) = match lang {
        Lang::Rust => ("Rust", "src/lib.rs", "`nslab-sdk/`"),
        Lang::Python => ("Python", "app.py", "`nslab.py`"),
        Lang::Js => (
            "JavaScript",
            "app.js",
            "`nslab.js` (its types: `nslab.d.ts`)",
        ),
        Lang::Ts => (
            "TypeScript",
            "app.ts",
            "`nslab.js` with its types `nslab.d.ts`",
        ),
    };
    template
        .replace("{NAME}", name)
        .replace("{CRATE}", &name.replace('-', "_"))
        .replace("{LANG}", lang_name)
        .replace("{SOURCE}", source)
        .replace("{SDK}", sdk)
        .replace("{VERSION}", env!("CARGO_PKG_VERSION"))
        .replace("{WIT_BINDGEN}", WIT_BINDGEN)
        .replace("{COMPONENTIZE_PY}", COMPONENTIZE_PY)
        .replace("{COMPONENTIZE_JS}", COMPONENTIZE_JS)
        .replace("{PREVIEW2_SHIM}", PREVIEW2_SHIM)
        .replace("{ESBUILD}", ESBUILD)
}

fn write(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Write a new project `name` in `parent`: its folder, which must not exist yet.
pub fn write_project(parent: &Path, name: &str, lang: Lang) -> Result<PathBuf, String> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(format!(
            "{} already exists: pick another name, or remove it first",
            dir.display()
        ));
    }
    let io = |e: std::io::Error| format!("cannot write the project in {}: {e}", dir.display());
    let put = |rel: &str, text: &str, exe: bool| write(&dir.join(rel), text, exe).map_err(io);
    put(
        "README.md",
        &fill(include_str!("../templates/README.md"), name, lang),
        false,
    )?;
    // What a build makes is not the project's source: Rust's target/ alone is over 100 MB.
    put(
        ".gitignore",
        match lang {
            Lang::Rust => "# Made by ./build.sh\n/target/\n*.wasm\n",
            Lang::Python => "# Made by ./build.sh\n/.venv/\n__pycache__/\n*.wasm\n",
            Lang::Js | Lang::Ts => "# Made by ./build.sh\n/node_modules/\n/build/\n*.wasm\n",
        },
        false,
    )?;
    // Every language's build reads the contract beside it, through its own build.sh.
    write_wit(&dir.join("wit")).map_err(io)?;
    let build = match lang {
        Lang::Rust => include_str!("../templates/rust-build.sh"),
        Lang::Python => include_str!("../templates/python-build.sh"),
        Lang::Js | Lang::Ts => include_str!("../templates/js-build.sh"),
    };
    put("build.sh", &fill(build, name, lang), true)?;
    match lang {
        Lang::Rust => {
            put(
                "Cargo.toml",
                &fill(include_str!("../templates/rust-Cargo.toml"), name, lang),
                false,
            )?;
            put(
                "src/lib.rs",
                &RUST_SEED.replace("\"seed\",", &format!("\"{name}\",")),
                false,
            )?;
            put(
                "nslab-sdk/Cargo.toml",
                &fill(include_str!("../templates/sdk-Cargo.toml"), name, lang),
                false,
            )?;
            for (file, text) in RUST_SDK {
                // In a project the contract is beside the SDK, not two folders up.
                let text = text.replace("path: \"../../wit\"", "path: \"../wit\"");
                put(&format!("nslab-sdk/src/{file}"), &text, false)?;
            }
        }
        Lang::Python => {
            put(
                "app.py",
                &PYTHON_SEED.replace("\"seed-py\"", &format!("\"{name}\"")),
                false,
            )?;
            put("nslab.py", PYTHON_SDK, false)?;
        }
        Lang::Js | Lang::Ts => {
            put(
                "package.json",
                &fill(include_str!("../templates/js-package.json"), name, lang),
                false,
            )?;
            // The seed, beside the SDK rather than a folder below it.
            let seed = JS_SEED
                .replace("\"seed-js\"", &format!("\"{name}\""))
                .replace("\"../nslab.js\"", "\"./nslab.js\"");
            match lang {
                Lang::Ts => {
                    let seed = seed.replace("in JavaScript", "in TypeScript").replace(
                        "async lab(args) {",
                        "async lab(args: string[]): Promise<void> {",
                    );
                    put("app.ts", &seed, false)?;
                    put(
                        "tsconfig.json",
                        include_str!("../templates/ts-tsconfig.json"),
                        false,
                    )?;
                }
                _ => put("app.js", &seed, false)?,
            }
            put("nslab.js", JS_SDK, false)?;
            put("nslab.d.ts", JS_SDK_TYPES, false)?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_make_a_crate_a_module_and_a_file() {
        for ok in ["lab", "my-lab", "ospf_2"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Lab", "9lab", "../lab", "a b", "lab.wasm"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_seeds_carry_their_names_where_the_project_puts_its_own() {
        // If the seeds change how they name themselves, projects would keep the seed's name.
        assert!(RUST_SEED.contains("\"seed\","));
        assert!(PYTHON_SEED.contains("\"seed-py\""));
        assert!(RUST_SDK[0].1.contains("path: \"../../wit\""));
        for needle in [
            "\"seed-js\"",
            "\"../nslab.js\"",
            "async lab(args) {",
            "in JavaScript",
        ] {
            assert!(JS_SEED.contains(needle), "{needle}");
        }
    }

    #[test]
    fn a_javascript_project_pins_the_tools_the_gallery_is_built_with() {
        for (package, version) in [
            ("@bytecodealliance/componentize-js", COMPONENTIZE_JS),
            ("@bytecodealliance/preview2-shim", PREVIEW2_SHIM),
            ("esbuild", ESBUILD),
        ] {
            let pin = format!("\"{package}\": \"{version}\"");
            assert!(
                JS_TOOLS.contains(&pin),
                "guests/js/tools/package.json lacks {pin}"
            );
        }
    }
}
