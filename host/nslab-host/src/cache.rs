//! The runner's cache of compiled scenarios, so that the second run of the same `.wasm` compiles
//! nothing (a Python scenario is an 18 MB component: seconds to compile).
//!
//! Cached native code is executed as it is, so the cache is trusted only as far as it is the
//! runner's own, and checked before use:
//! - the directory belongs to the runner's user and no one else may write it (0700); an entry
//!   is a regular file of that user, not a link, mode 0600;
//! - an entry is keyed by the sha256 of the component and the engine's compatibility hash (this
//!   runner's wasmtime and settings), and holds the sha256 of its own contents: a file that was
//!   cut, changed or put there by anyone else is not loaded but compiled again and replaced;
//! - wasmtime itself refuses an entry of another version or configuration.
//!
//! The cache is bounded ([`MAX_BYTES`]): the least recently used entries go first.
//! `runner cache clean` empties it, `--no-cache` passes it by.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The most the cache holds; past it the least recently used entries are removed.
pub const MAX_BYTES: u64 = 2 << 30;

/// Where the cache lives: root's under /var/cache, a user's under their own cache directory.
pub fn default_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/cache/nslab/compiled");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("nslab/compiled")
}

pub struct Cache {
    dir: PathBuf,
}

/// What the cache did for one component, for the narration and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    /// Compiled, and stored for next time (or not, when the cache could not take it).
    Miss,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// The cache in `dir`, made if missing; None (and no caching) if `dir` is not the runner's
    /// own to trust.
    pub fn open(dir: &Path) -> Option<Cache> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ok()?;
        let meta = std::fs::symlink_metadata(dir).ok()?;
        let ours = meta.is_dir()
            && meta.uid() == nix::unistd::geteuid().as_raw()
            && meta.permissions().mode() & 0o077 == 0;
        ours.then(|| Cache {
            dir: dir.to_path_buf(),
        })
    }

    fn key(engine: &Engine, wasm: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let mut sha = Sha256::new();
        sha.update(wasm);
        sha.update(h.finish().to_le_bytes());
        hex(&sha.finalize())
    }

    /// The compiled component, from the cache or compiled now (and then stored).
    pub fn component(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<(Component, Lookup)> {
        let path = self.dir.join(format!("{}.cwasm", Self::key(engine, wasm)));
        if let Some(code) = self.read_entry(&path) {
            // SAFETY: the entry is the runner's own (checked in read_entry: owner, mode, its
            // digest), made by Component::serialize of this engine; wasmtime checks the rest.
            if let Ok(component) = unsafe { Component::deserialize(engine, &code) } {
                // Used now: the last to be evicted.
                let _ = std::fs::File::open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                return Ok((component, Lookup::Hit));
            }
        }
        let component = Component::from_binary(engine, wasm)?;
        if let Ok(code) = component.serialize() {
            self.store(&path, &code);
            self.evict();
        }
        Ok((component, Lookup::Miss))
    }

    /// An entry's code, if it is the runner's own and whole.
    fn read_entry(&self, path: &Path) -> Option<Vec<u8>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file()
            || meta.uid() != nix::unistd::geteuid().as_raw()
            || meta.permissions().mode() & 0o777 != 0o600
        {
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut std::io::BufReader::new(file), &mut bytes).ok()?;
        let (digest, code) = bytes.split_at_checked(32)?;
        (Sha256::digest(code).as_slice() == digest).then(|| code.to_vec())
    }

    /// Write an entry whole (a temporary file renamed into place), with its digest first.
    fn store(&self, path: &Path, code: &[u8]) {
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            std::process::id(),
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
        let digest = Sha256::digest(code);
        // A cache that cannot take it only means compiling again next time.
        let _ = nslab_lab::records::write_whole(path, &tmp, 0o600, &[&digest, code]);
    }

    /// Keep the cache under MAX_BYTES, removing the least recently used entries first.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= MAX_BYTES {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    /// Remove every entry: (how many, how many bytes).
    pub fn clean(&self) -> std::io::Result<(usize, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(e.path()).is_ok() {
                count += 1;
                bytes += len;
            }
        }
        Ok((count, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("nslab-cache-{}-{tag}", std::process::id()))
    }

    /// A tiny component: a component with no imports or exports.
    fn component_bytes() -> Vec<u8> {
        // (component) in the binary format: magic, version 0xd, layer 1.
        b"\0asm\x0d\0\x01\0".to_vec()
    }

    #[test]
    fn a_second_lookup_is_a_hit_and_a_tampered_entry_is_compiled_again() {
        let dir = scratch("hit");
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Cache::open(&dir).expect("our own directory");
        let engine = Engine::default();
        let wasm = component_bytes();
        assert_eq!(cache.component(&engine, &wasm).unwrap().1, Lookup::Miss);
        assert_eq!(cache.component(&engine, &wasm).unwrap().1, Lookup::Hit);
        // Change one byte of the stored code: its digest no longer matches.
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        assert_eq!(cache.component(&engine, &wasm).unwrap().1, Lookup::Miss);
        // A readable-by-others entry is not the runner's own: not trusted either.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(cache.component(&engine, &wasm).unwrap().1, Lookup::Miss);
        assert_eq!(cache.component(&engine, &wasm).unwrap().1, Lookup::Hit);
        assert_eq!(cache.clean().unwrap().0, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_may_write_is_not_a_cache() {
        let dir = scratch("open");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(Cache::open(&dir).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
