//! Reading and validating a scenario file before anything is created. Every failure here is a
//! [`LoadError`]: the runner could not run the file (exit status 2), with a message that says
//! what the file is and what to do instead.

use std::path::Path;

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// The version/layer field of a core module (version 1, layer 0).
const CORE_MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
pub(crate) const WORLD: &str = "nslab:lab/scenario@0.1.0";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is empty: expected a WebAssembly component built for the world {WORLD}")]
    Empty { path: String },
    #[error("{path} is not WebAssembly: it does not start with the \\0asm magic bytes")]
    NotWasm { path: String },
    #[error(
        "{path} is a core WebAssembly module, not a component: build the scenario for the \
         wasm32-wasip2 target (cargo build --target wasm32-wasip2), which makes a component"
    )]
    CoreModule { path: String },
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    Invalid { path: String, reason: String },
    /// wasmtime itself could not be set up (no file's fault).
    #[error("cannot set up WebAssembly: {0}")]
    Engine(String),
    #[error(
        "{path} is a component but not an nslab scenario: {reason}. A scenario is built against \
         the world {WORLD} (see wit/) and exports `describe` and `run`"
    )]
    WrongWorld { path: String, reason: String },
}

/// Read the file and check it is a component at all, without compiling it.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: shown.clone(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(LoadError::Empty { path: shown });
    }
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(LoadError::NotWasm { path: shown });
    }
    if bytes[4..8] == CORE_MODULE {
        return Err(LoadError::CoreModule { path: shown });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        let file = std::env::temp_dir().join(format!(
            "nslab-load-{}-{}.wasm",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&file, bytes).unwrap();
        let r = read(&file);
        std::fs::remove_file(&file).unwrap();
        r
    }

    #[test]
    fn tells_the_kinds_of_bad_file_apart() {
        assert!(matches!(check(b""), Err(LoadError::Empty { .. })));
        assert!(matches!(
            check(b"#!/bin/sh\necho hi\n"),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(check(b"\0asm"), Err(LoadError::NotWasm { .. })));
        assert!(matches!(
            check(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(check(b"\0asm\x0d\0\x01\0").is_ok());
        let missing = read(Path::new("/nonexistent/x.wasm")).unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("cannot read /nonexistent/x.wasm: "));
    }
}
