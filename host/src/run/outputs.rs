//! What a run writes when it ends, all read from its account: the JUnit file, the report
//! directory and the picture.

use std::path::PathBuf;

use crate::console::{Console, Verbosity};

/// The files a run writes when it ends. Each needs the console's journal to keep the events.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// `--junit FILE`.
    pub junit: Option<PathBuf>,
    /// `--report DIR`.
    pub report: Option<PathBuf>,
    /// `--graph FILE`: the picture alone, its format by extension.
    pub graph: Option<PathBuf>,
}

impl Outputs {
    pub fn any(&self) -> bool {
        self.junit.is_some() || self.report.is_some() || self.graph.is_some()
    }

    /// Say before the run what could not be written after it: a missing directory, a picture
    /// of an unknown format.
    pub fn check(&self) -> Result<(), String> {
        if let Some(g) = &self.graph {
            crate::account::graph::Format::for_path(g)?;
        }
        for (flag, file) in [("--junit", &self.junit), ("--graph", &self.graph)] {
            let Some(file) = file else { continue };
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if !dir.is_dir() {
                return Err(format!(
                    "{flag} {}: the directory {} does not exist; create it first",
                    file.display(),
                    dir.display()
                ));
            }
            crate::output::check(file).map_err(|e| format!("{flag}: {e}"))?;
        }
        if let Some(dir) = &self.report {
            crate::output::check(dir).map_err(|e| format!("--report: {e}"))?;
        }
        Ok(())
    }
}

/// Write the JUnit file, the report directory and the picture from the run's account.
pub fn write_outputs(
    outputs: &Outputs,
    console: &Console,
    files: &[(String, Vec<u8>)],
) -> Result<(), String> {
    if !outputs.any() {
        return Ok(());
    }
    let lines = console.journal().map(|j| j.lines()).unwrap_or_default();
    // The journal's own account: folded from these very events as they came.
    let account = console.journal().map(|j| j.account()).unwrap_or_default();
    let failed = |what: &str, path: &std::path::Path, e: String| {
        format!("cannot write {what} {}: {e}", path.display())
    };
    if let Some(file) = &outputs.junit {
        crate::output::write_file(
            file,
            crate::account::junit::xml(&[(&account, None)]).as_bytes(),
        )
        .map_err(|e| failed("the JUnit file", file, e))?;
    }
    if let Some(file) = &outputs.graph {
        let format = crate::account::graph::Format::for_path(file)?;
        let picture = crate::account::graph::render(&account.topology, format);
        crate::output::write_file(file, picture.as_bytes())
            .map_err(|e| failed("the picture", file, e))?;
    }
    if let Some(dir) = &outputs.report {
        crate::account::write_report(dir, &account, &lines, files)
            .map_err(|e| failed("the report into", dir, e))?;
        console.line(
            Verbosity::Quiet,
            &format!("report: {}", dir.join("index.html").display()),
        );
    }
    Ok(())
}
