//! The report directory of a run (`--report DIR`) and the index of `runner test --report`,
//! written from the account through one directory fd (output/).

use std::path::Path;

use crate::output::OutputError;

use super::{graph, html, junit, Line, Listed, RunAccount};

/// Write the events, one JSON object per line.
fn events_text(lines: &[Line]) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut text, line).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    Ok(text)
}

/// Extensions a web server would serve as a page, a script or a picture that runs script: an
/// attachment named so is saved as `NAME.txt`, so that a report served over HTTP never makes
/// the scenario's bytes active content.
const ACTIVE: &[&str] = &[
    "html", "htm", "xhtml", "xht", "shtml", "svg", "svgz", "xml", "xsl", "xslt", "js", "mjs",
    "css", "php", "pdf", "swf",
];

/// The name an attachment is saved under in `files/`.
pub fn saved_name(name: &str) -> String {
    let active = name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| ACTIVE.iter().any(|a| a.eq_ignore_ascii_case(ext)));
    match active {
        true => format!("{name}.txt"),
        false => name.to_string(),
    }
}

/// Write a run's report directory: index.html, topology.svg, events.jsonl, junit.xml, and the
/// files the scenario saved under files/, all through one directory fd (output/).
/// `account` is the one folded from `lines`.
pub fn write_report(
    dir: &Path,
    account: &RunAccount,
    lines: &[Line],
    attachments: &[(String, Vec<u8>)],
) -> Result<(), OutputError> {
    let out = crate::output::OutputDir::create(dir)?;
    let svg = graph::render(&account.topology, graph::Format::Svg);
    out.write("topology.svg", svg.as_bytes())?;
    out.write("events.jsonl", &events_text(lines)?)?;
    out.write("junit.xml", junit::xml(&[(account, None)]).as_bytes())?;
    if !attachments.is_empty() {
        let files = out.subdir("files")?;
        for (name, bytes) in attachments {
            // Names were checked when the scenario attached them (no path, no dot first).
            files.write(&saved_name(name), bytes)?;
        }
    }
    Ok(out.write("index.html", html::run_page(account, &svg).as_bytes())?)
}

/// Write the index of `runner test --report DIR`: one line per run, linking to its report.
pub fn write_test_index(dir: &Path, runs: &[Listed]) -> Result<(), OutputError> {
    let out = crate::output::OutputDir::create(dir)?;
    let listing: Vec<Entry> = runs
        .iter()
        .map(|r| Entry {
            dir: r.dir.clone(),
            shard: r.shard.clone(),
        })
        .collect();
    let json = serde_json::to_vec_pretty(&listing).map_err(std::io::Error::other)?;
    out.write(RUNS, &json)?;
    Ok(out.write("index.html", html::test_page(runs).as_bytes())?)
}

/// Why report directories could not be merged (`runner report merge`).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// An input is not a test report's directory, or cannot be read: the sentence says which.
    #[error("{what}: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An input's listing of runs is not one.
    #[error("{what}: {source}")]
    Listing {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// An input's listing names what is not a run's directory.
    #[error("{0}")]
    NotARun(String),
    /// The merged report could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl From<MergeError> for String {
    fn from(e: MergeError) -> String {
        e.to_string()
    }
}

/// The error of reading `what`.
fn read_error(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> MergeError {
    move |source| MergeError::Read {
        what: what.to_string(),
        source,
    }
}

/// Where a test report lists its runs, for `runner report merge`.
const RUNS: &str = "runs.json";

/// One run of a test report's listing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    dir: String,
    #[serde(default)]
    shard: Option<String>,
}

/// A file of a run's report directory: in a subdirectory (`files/`) or not, its name, its bytes.
struct ReportFile {
    sub: Option<String>,
    name: String,
    bytes: Vec<u8>,
}

/// A report directory's files, in order, as the runner wrote them: regular files only (never
/// a symlink or a FIFO someone put there), one level of subdirectories (`files/`).
fn report_files(dir: &Path) -> Result<Vec<ReportFile>, MergeError> {
    let mut found = Vec::new();
    let list = |d: &Path| -> Result<Vec<std::fs::DirEntry>, MergeError> {
        let mut e: Vec<_> = std::fs::read_dir(d)
            .map_err(read_error(format!("cannot list {}", d.display())))?
            .flatten()
            .collect();
        e.sort_by_key(|e| e.file_name());
        Ok(e)
    };
    for e in list(dir)? {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path()).map_err(read_error(e.path().display()))?;
        if meta.is_file() {
            let bytes = std::fs::read(e.path()).map_err(read_error(e.path().display()))?;
            found.push(ReportFile {
                sub: None,
                name,
                bytes,
            });
        } else if meta.is_dir() {
            for f in list(&e.path())? {
                let inner =
                    std::fs::symlink_metadata(f.path()).map_err(read_error(f.path().display()))?;
                if inner.is_file() {
                    let bytes = std::fs::read(f.path()).map_err(read_error(f.path().display()))?;
                    found.push(ReportFile {
                        sub: Some(name.clone()),
                        name: f.file_name().to_string_lossy().into_owned(),
                        bytes,
                    });
                }
            }
        }
    }
    Ok(found)
}

/// Join the report directories of `runner test --report` runs (shards of one suite, say) into
/// `out`: every run's own directory copied, one index, one listing and one JUnit file of them
/// all. The number of runs.
pub fn merge_reports(inputs: &[std::path::PathBuf], out: &Path) -> Result<usize, MergeError> {
    let mut runs: Vec<(Listed, std::path::PathBuf)> = Vec::new();
    for input in inputs {
        let listing = std::fs::read(input.join(RUNS)).map_err(|e| {
            MergeError::NotARun(format!(
                "{}: no {RUNS} ({e}): name report directories written by `runner test --report`",
                input.display()
            ))
        })?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&listing).map_err(|source| MergeError::Listing {
                what: format!(
                    "{}: {RUNS} is not a listing of runs",
                    input.join(RUNS).display()
                ),
                source,
            })?;
        for entry in entries {
            // A plain name, as the runner writes them: never a path out of the report.
            let plain =
                !entry.dir.is_empty() && !entry.dir.starts_with('.') && !entry.dir.contains('/');
            if !plain {
                return Err(MergeError::NotARun(format!(
                    "{}: {RUNS} names {:?}, which is not a run's directory",
                    input.display(),
                    entry.dir
                )));
            }
            let source = input.join(&entry.dir);
            let events = std::fs::read_to_string(source.join("events.jsonl"))
                .map_err(read_error(source.join("events.jsonl").display()))?;
            let lines: Vec<Line> = events
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let mut dir = entry.dir.clone();
            let mut n = 1;
            while runs.iter().any(|(r, _)| r.dir == dir) {
                n += 1;
                dir = format!("{}-{n}", entry.dir);
            }
            runs.push((
                Listed {
                    dir,
                    shard: entry.shard,
                    account: RunAccount::from_lines(&lines),
                },
                source,
            ));
        }
    }
    let target = crate::output::OutputDir::create(out)?;
    let written = |e: std::io::Error| MergeError::Output(e.into());
    for (listed, source) in &runs {
        let run_dir = target.subdir(&listed.dir).map_err(written)?;
        for ReportFile { sub, name, bytes } in report_files(source)? {
            match sub {
                None => run_dir.write(&name, &bytes).map_err(written)?,
                Some(sub) => run_dir
                    .subdir(&sub)
                    .and_then(|d| d.write(&name, &bytes))
                    .map_err(written)?,
            }
        }
    }
    let listed: Vec<Listed> = runs.into_iter().map(|(l, _)| l).collect();
    let suites: Vec<(&RunAccount, Option<&str>)> = listed
        .iter()
        .map(|l| (&l.account, l.shard.as_deref()))
        .collect();
    target
        .write("junit.xml", junit::xml(&suites).as_bytes())
        .map_err(written)?;
    write_test_index(out, &listed)?;
    Ok(listed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed when the test ends.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("nslab-merge-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A shard's report as `runner test --report` leaves it, listing `dir`.
    fn shard(at: &Path, dir: &str) {
        std::fs::create_dir_all(at.join(dir)).ok();
        std::fs::write(
            at.join(RUNS),
            format!(r#"[{{"dir": {dir:?}, "shard": "1/1"}}]"#),
        )
        .unwrap();
        std::fs::write(at.join(dir).join("events.jsonl"), "").ok();
    }

    #[test]
    fn a_listing_that_names_a_path_out_of_the_report_is_refused() {
        let s = scratch("escape");
        for bad in ["../elsewhere", ".hidden", "a/b", ""] {
            let input = s.0.join("in");
            let _ = std::fs::remove_dir_all(&input);
            std::fs::create_dir_all(&input).unwrap();
            shard(&input, bad);
            let out = s.0.join("out");
            let e = merge_reports(std::slice::from_ref(&input), &out).unwrap_err();
            assert!(
                matches!(&e, MergeError::NotARun(m) if m.contains("which is not a run's directory")),
                "{bad}: {e}"
            );
            assert!(!out.exists(), "{bad}: nothing is written");
        }
    }

    #[test]
    fn only_regular_files_are_copied_never_what_a_symlink_or_fifo_names() {
        let s = scratch("links");
        let input = s.0.join("in");
        shard(&input, "seed");
        let run = input.join("seed");
        std::fs::write(run.join("index.html"), "page").unwrap();
        std::fs::create_dir_all(run.join("files")).unwrap();
        std::fs::write(run.join("files").join("capture.pcap"), "bytes").unwrap();
        let secret = s.0.join("secret");
        std::fs::write(&secret, "not the report's").unwrap();
        std::os::unix::fs::symlink(&secret, run.join("planted")).unwrap();
        std::os::unix::fs::symlink(&secret, run.join("files").join("planted")).unwrap();
        nix::unistd::mkfifo(&run.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let out = s.0.join("out");
        assert_eq!(merge_reports(&[input], &out).unwrap(), 1);
        let merged = out.join("seed");
        assert_eq!(
            std::fs::read_to_string(merged.join("index.html")).unwrap(),
            "page"
        );
        assert_eq!(
            std::fs::read_to_string(merged.join("files").join("capture.pcap")).unwrap(),
            "bytes"
        );
        for absent in ["planted", "fifo", "files/planted"] {
            assert!(
                std::fs::symlink_metadata(merged.join(absent)).is_err(),
                "{absent} was copied"
            );
        }
        assert!(out.join("junit.xml").is_file() && out.join("index.html").is_file());
    }
}
