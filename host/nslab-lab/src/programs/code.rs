//! What the run's programs may map as code: the files the box mounts executable, everything
//! else of the host being `noexec` there (lab/helper/sandbox.rs).
//!
//! Landlock's execute right covers `execve`, not the ELF loader's `mmap(PROT_EXEC)`: with the
//! loader allowed (every dynamically linked program needs it), `ld-linux-x86-64.so.2
//! /usr/bin/id` ran any host program. The kernel refuses to map a file of a `noexec` mount as
//! code, the loader's mapping included, so the box mounts executable exactly what the allowed
//! programs need to run, worked out here once per run:
//!
//! - each allowed program and its ELF interpreter (the loader);
//! - the shared objects they need, as the loader finds them (`DT_NEEDED`, through `DT_RPATH`
//!   or `DT_RUNPATH` with `$ORIGIN`, `/etc/ld.so.conf` and the default directories, every
//!   `glibc-hwcaps` variant the loader might prefer), and what those need in turn;
//! - the directories known programs and libraries `dlopen` from, as whole directories, and
//!   what their objects need: libc's NSS modules and `gconv`, Python's `lib-dynload` and
//!   `dist-packages`, Perl's XS modules, and beside the libraries that load them, PAM's
//!   modules, OpenSSL's, SASL's, Kerberos', libyang's and iptables' plugins, FRR's `modules`.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use object::read::elf::{Dyn, FileHeader};
use object::{elf, Endianness, ReadCache};

/// The code a run's programs may map: files and directories, as canonical host paths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Code {
    pub files: BTreeSet<PathBuf>,
    pub dirs: BTreeSet<PathBuf>,
}

impl Code {
    /// Every path to mount executable in the box: the directories, and the files not in one.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.dirs.iter().cloned().collect();
        out.extend(
            self.files
                .iter()
                .filter(|f| !self.dirs.iter().any(|d| f.starts_with(d)))
                .cloned(),
        );
        out
    }
}

/// The most objects read from plugin directories, so a huge `dist-packages` stays cheap.
const MOST_PLUGINS: usize = 4000;

/// The code `executables` (the allowed programs' files and their loaders) need.
pub fn closure(executables: &[PathBuf]) -> Code {
    let search = Search::of_this_machine();
    let mut code = Code::default();
    let mut todo: VecDeque<PathBuf> = executables
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    for program in executables {
        code.dirs.extend(search.plugin_dirs(program));
    }
    let mut scanned_dirs = BTreeSet::new();
    let mut any_elf = false;
    loop {
        while let Some(file) = todo.pop_front() {
            if !code.files.insert(file.clone()) {
                continue;
            }
            let Some(dynamic) = Dynamic::read(&file) else {
                continue;
            };
            any_elf = true;
            for name in &dynamic.needed {
                for found in search.resolve(name, &dynamic, &file) {
                    code.dirs.extend(modules_beside(&found));
                    todo.push_back(found);
                }
            }
        }
        if any_elf {
            let (nss, gconv) = search.libc_plugins();
            todo.extend(nss.into_iter().filter(|f| !code.files.contains(f)));
            code.dirs.extend(gconv);
        }
        // What plugin directories' objects need, once per directory.
        let fresh: Vec<PathBuf> = code.dirs.difference(&scanned_dirs).cloned().collect();
        if fresh.is_empty() && todo.is_empty() {
            break;
        }
        for dir in fresh {
            let mut objects = Vec::new();
            shared_objects(&dir, 4, &mut objects);
            todo.extend(objects.into_iter().filter(|f| !code.files.contains(f)));
            scanned_dirs.insert(dir);
        }
    }
    code
}

/// Libraries that load modules from a directory beside them, and those directories: PAM's
/// modules (vtysh authenticates through PAM), OpenSSL's engines and providers, SASL's and
/// Kerberos' plugins, libyang's extensions, iptables' extensions, FRR's daemon modules.
const MODULES_BESIDE: &[(&str, &[&str])] = &[
    ("libpam.so", &["security"]),
    ("libcrypto.so", &["engines-3", "ossl-modules"]),
    ("libsasl2.so", &["sasl2"]),
    ("libkrb5.so", &["krb5/plugins"]),
    ("libyang.so", &["libyang"]),
    ("libxtables.so", &["xtables"]),
    ("libfrr.so", &["modules"]),
];

/// The module directories beside library `lib`, by [`MODULES_BESIDE`].
fn modules_beside(lib: &Path) -> Vec<PathBuf> {
    let (Some(name), Some(dir)) = (lib.file_name().and_then(OsStr::to_str), lib.parent()) else {
        return Vec::new();
    };
    MODULES_BESIDE
        .iter()
        .filter(|(prefix, _)| name.starts_with(prefix))
        .flat_map(|(_, subs)| subs.iter().map(|s| dir.join(s)))
        .filter(|d| d.is_dir())
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .collect()
}

/// The `.so` files below `dir`, at most `depth` levels down, at most [`MOST_PLUGINS`] in all.
fn shared_objects(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if out.len() >= MOST_PLUGINS {
            return;
        }
        let Ok(kind) = e.file_type() else { continue };
        let path = e.path();
        if kind.is_dir() && depth > 0 {
            shared_objects(&path, depth - 1, out);
        } else if kind.is_file() && is_shared_object_name(e.file_name().as_os_str()) {
            out.push(path);
        }
    }
}

fn is_shared_object_name(name: &OsStr) -> bool {
    let n = name.as_bytes();
    n.ends_with(b".so") || n.windows(4).any(|w| w == b".so.")
}

/// What an ELF file's dynamic section asks of the loader.
#[derive(Debug, Default)]
struct Dynamic {
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    machine: u16,
    class64: bool,
}

impl Dynamic {
    /// Read `file`'s dynamic section; None when it is no ELF file (a script) or has none.
    fn read(file: &Path) -> Option<Dynamic> {
        let f = std::fs::File::open(file).ok()?;
        // Only the headers and the dynamic section are read, not the whole (large) file.
        let data = ReadCache::new(f);
        match object::FileKind::parse(&data).ok()? {
            object::FileKind::Elf64 => read_dynamic::<elf::FileHeader64<Endianness>>(&data),
            object::FileKind::Elf32 => read_dynamic::<elf::FileHeader32<Endianness>>(&data),
            _ => None,
        }
    }
}

fn read_dynamic<H: FileHeader<Endian = Endianness>>(
    data: &ReadCache<std::fs::File>,
) -> Option<Dynamic> {
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, data).ok()?;
    let (entries, link) = sections.dynamic(endian, data).ok()??;
    let strings = sections.strings(endian, data, link).ok()?;
    let mut d = Dynamic {
        machine: header.e_machine(endian),
        class64: header.is_class_64(),
        ..Dynamic::default()
    };
    for e in entries {
        let list = match e.tag32(endian).map(i64::from) {
            Some(elf::DT_NEEDED) => &mut d.needed,
            Some(elf::DT_RPATH) => &mut d.rpath,
            Some(elf::DT_RUNPATH) => &mut d.runpath,
            _ => continue,
        };
        if let Ok(s) = e.string(endian, strings) {
            list.push(String::from_utf8_lossy(s).into_owned());
        }
    }
    Some(d)
}

/// Whether `file` is an ELF object of `machine` and class.
fn same_kind(file: &Path, machine: u16, class64: bool) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    let read = std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() {
        return false;
    }
    let little = header.get(5) == Some(&1);
    let raw = [header[18], header[19]];
    let m = if little {
        u16::from_le_bytes(raw)
    } else {
        u16::from_be_bytes(raw)
    };
    header.starts_with(b"\x7fELF") && (header[4] == 2) == class64 && m == machine
}

/// Where the loader looks, on this machine.
struct Search {
    /// `/etc/ld.so.conf` (and its includes), then the default directories.
    dirs: Vec<PathBuf>,
    /// The multiarch triple (`x86_64-linux-gnu`).
    triple: String,
}

impl Search {
    fn of_this_machine() -> Search {
        let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
        let mut dirs = Vec::new();
        ld_so_conf(Path::new("/etc/ld.so.conf"), &mut dirs, 0);
        for d in [
            format!("/lib/{triple}"),
            format!("/usr/lib/{triple}"),
            "/lib64".to_string(),
            "/usr/lib64".to_string(),
            "/lib".to_string(),
            "/usr/lib".to_string(),
        ] {
            dirs.push(PathBuf::from(d));
        }
        Search { dirs, triple }
    }

    /// Where `name`, needed by `file` (whose dynamic section is `dynamic`), is found: the
    /// first directory that has it, with every `glibc-hwcaps` variant there.
    fn resolve(&self, name: &str, dynamic: &Dynamic, file: &Path) -> Vec<PathBuf> {
        if name.contains('/') {
            return std::fs::canonicalize(name).into_iter().collect();
        }
        let origin = file.parent().unwrap_or(Path::new("/"));
        let expand = |p: &String| -> PathBuf {
            PathBuf::from(
                p.replace("${ORIGIN}", &origin.to_string_lossy())
                    .replace("$ORIGIN", &origin.to_string_lossy()),
            )
        };
        let own: Vec<PathBuf> = if dynamic.runpath.is_empty() {
            &dynamic.rpath
        } else {
            &dynamic.runpath
        }
        .iter()
        .flat_map(|p| p.split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|p| !p.is_empty())
        .map(|p| expand(&p))
        .collect();
        for dir in own.iter().chain(&self.dirs) {
            let mut found: Vec<PathBuf> = Vec::new();
            if let Ok(hwcaps) = std::fs::read_dir(dir.join("glibc-hwcaps")) {
                for level in hwcaps.flatten() {
                    found.push(level.path().join(name));
                }
            }
            found.push(dir.join(name));
            let found: Vec<PathBuf> = found
                .into_iter()
                .filter(|p| same_kind(p, dynamic.machine, dynamic.class64))
                .filter_map(|p| std::fs::canonicalize(p).ok())
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    /// libc's modules, for any dynamically linked program: its NSS modules (files), and its
    /// `gconv` directory.
    fn libc_plugins(&self) -> (Vec<PathBuf>, Option<PathBuf>) {
        let mut nss = Vec::new();
        let mut gconv = None;
        for dir in [
            format!("/lib/{}", self.triple),
            format!("/usr/lib/{}", self.triple),
        ] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_name().as_bytes().starts_with(b"libnss_") {
                        nss.extend(std::fs::canonicalize(e.path()));
                    }
                }
            }
            let g = Path::new(&dir).join("gconv");
            if gconv.is_none() && g.is_dir() {
                gconv = std::fs::canonicalize(g).ok();
            }
        }
        (nss, gconv)
    }

    /// The directories a program of this name loads code from at run time.
    fn plugin_dirs(&self, program: &Path) -> Vec<PathBuf> {
        let real = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut dirs: Vec<String> = Vec::new();
        if let Some(version) = name.strip_prefix("python") {
            for base in ["/usr/lib", "/usr/local/lib"] {
                dirs.push(format!("{base}/python{version}/lib-dynload"));
                dirs.push(format!("{base}/python{version}/site-packages"));
                dirs.push(format!("{base}/python{version}/dist-packages"));
            }
            dirs.push("/usr/lib/python3/dist-packages".into());
        }
        if name.starts_with("perl") {
            for sub in ["perl-base", "perl", "perl5"] {
                dirs.push(format!("/usr/lib/{}/{sub}", self.triple));
                dirs.push(format!("/usr/local/lib/{}/{sub}", self.triple));
            }
        }
        dirs.into_iter()
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .collect()
    }
}

/// The directories `/etc/ld.so.conf` names, following its `include` lines (with `*` globs in
/// the last component, as glibc's ldconfig reads them).
fn ld_so_conf(file: &Path, dirs: &mut Vec<PathBuf>, depth: u32) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    if depth > 8 {
        return;
    }
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            for included in glob(pattern.trim()) {
                ld_so_conf(&included, dirs, depth + 1);
            }
        } else if line.starts_with('/') {
            dirs.push(PathBuf::from(line));
        }
    }
}

/// The files `pattern` names, where only its last component may hold one `*`.
fn glob(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (Some(dir), Some(last)) = (path.parent(), path.file_name().and_then(OsStr::to_str)) else {
        return Vec::new();
    };
    let Some((before, after)) = last.split_once('*') else {
        return vec![path.to_path_buf()];
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(before) && n.ends_with(after) && n.len() >= before.len() + after.len()
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(p: &str) -> PathBuf {
        std::fs::canonicalize(p).unwrap()
    }

    #[test]
    fn a_dynamic_program_brings_its_libraries_and_nothing_of_the_rest() {
        let sh = real("/bin/sh");
        let code = closure(std::slice::from_ref(&sh));
        assert!(code.files.contains(&sh));
        let libc = code.files.iter().find(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
        });
        assert!(libc.is_some(), "{code:?}");
        // Not another program, and not a library nothing asked for.
        assert!(!code.files.contains(&real("/usr/bin/id")), "{code:?}");
        assert!(!code
            .files
            .iter()
            .any(|f| f.to_string_lossy().contains("libcrypto")));
    }

    #[test]
    fn runpath_with_origin_is_followed_and_frr_brings_its_modules() {
        let zebra = Path::new("/usr/lib/frr/zebra");
        if !zebra.exists() {
            return;
        }
        let code = closure(&[zebra.to_path_buf()]);
        let libfrr = code
            .files
            .iter()
            .find(|f| f.to_string_lossy().contains("/frr/libfrr.so"));
        assert!(libfrr.is_some(), "{code:?}");
        assert!(
            code.dirs.iter().any(|d| d.ends_with("frr/modules")),
            "{:?}",
            code.dirs
        );
    }

    #[test]
    fn python_brings_lib_dynload_and_what_its_modules_need() {
        let Ok(python) = std::fs::canonicalize("/usr/bin/python3") else {
            return;
        };
        let code = closure(&[python]);
        assert!(
            code.dirs.iter().any(|d| d.ends_with("lib-dynload")),
            "{:?}",
            code.dirs
        );
        // _ctypes needs libffi, which nothing in python3 itself links.
        assert!(
            code.files
                .iter()
                .any(|f| f.to_string_lossy().contains("libffi")),
            "{code:?}"
        );
    }

    #[test]
    fn a_script_brings_nothing_but_itself() {
        let script = std::env::temp_dir().join(format!("nslab-code-{}.sh", std::process::id()));
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let code = closure(std::slice::from_ref(&script));
        std::fs::remove_file(&script).unwrap();
        assert_eq!(code.files.len(), 1, "{code:?}");
        assert!(code.dirs.is_empty());
    }

    #[test]
    fn include_lines_of_ld_so_conf_are_followed() {
        let base = std::env::temp_dir().join(format!("nslab-ldconf-{}", std::process::id()));
        std::fs::create_dir_all(base.join("d")).unwrap();
        std::fs::write(
            base.join("ld.so.conf"),
            format!("# comment\ninclude {}/d/*.conf\n/opt/a\n", base.display()),
        )
        .unwrap();
        std::fs::write(base.join("d/x.conf"), "/opt/x\n").unwrap();
        std::fs::write(base.join("d/y.txt"), "/opt/y\n").unwrap();
        let mut dirs = Vec::new();
        ld_so_conf(&base.join("ld.so.conf"), &mut dirs, 0);
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(dirs, [PathBuf::from("/opt/x"), PathBuf::from("/opt/a")]);
    }
}
