//! What a run writes when it ends, all read from its account: the JUnit file, the report
//! directory and the picture.

use std::path::PathBuf;

use nslab_report::account::graph::{Format, UnknownFormat};
use nslab_report::console::{Console, Verbosity};
use nslab_report::output::{FileOutput, Stream};

/// The files a run writes when it ends. Each needs the console's journal to keep the events.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// `--junit FILE`.
    pub junit: Option<PathBuf>,
    /// `--report DIR`.
    pub report: Option<PathBuf>,
    /// `--graph FILE`: the picture alone, its format by extension.
    pub graph: Option<PathBuf>,
    /// `--graph-format`: the picture's format, whatever the file's name.
    pub graph_format: Option<Format>,
}

impl Outputs {
    /// The picture's format: `--graph-format`, or the extension of `--graph`'s file.
    fn graph_format(&self, path: &std::path::Path) -> Result<Format, UnknownFormat> {
        match self.graph_format {
            Some(f) => Ok(f),
            None => Format::for_path(path),
        }
    }

    pub fn any(&self) -> bool {
        self.junit.is_some() || self.report.is_some() || self.graph.is_some()
    }

    /// Open before the run what it will write after it, or say why it could not be written:
    /// a missing directory, a picture of an unknown format, an unsafe path, a FIFO with no
    /// reader, two outputs into one stream.
    pub fn open(&self) -> Result<Opened, String> {
        if let Some(g) = &self.graph {
            self.graph_format(g).map_err(|e| e.to_string())?;
        }
        let mut opened = Opened::default();
        for (flag, file, slot) in [
            ("--junit", &self.junit, &mut opened.junit),
            ("--graph", &self.graph, &mut opened.graph),
        ] {
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
            *slot = Some(FileOutput::open(file).map_err(|e| format!("{flag}: {e}"))?);
        }
        if let (Some(j), Some(g)) = (&opened.junit, &opened.graph) {
            if let (Some(a), Some(b)) = (j.stream(), g.stream()) {
                if a == b {
                    return Err(format!(
                        "--junit {} and --graph {} both go to the runner's {}, where the two \
                         documents would run together; write one of them to a file",
                        j.path().display(),
                        g.path().display(),
                        a.name()
                    ));
                }
            }
        }
        if let Some(dir) = &self.report {
            nslab_report::output::check(dir).map_err(|e| format!("--report: {e}"))?;
        }
        Ok(opened)
    }
}

/// The single-file outputs, opened before the run (output/file.rs).
#[derive(Debug, Default)]
pub struct Opened {
    junit: Option<FileOutput>,
    graph: Option<FileOutput>,
}

impl Opened {
    pub fn junit(&self) -> Option<&FileOutput> {
        self.junit.as_ref()
    }

    /// The first output, by its flag, that goes to the runner's standard output.
    pub fn on_stdout(&self) -> Option<(&'static str, &FileOutput)> {
        [("--junit", &self.junit), ("--graph", &self.graph)]
            .into_iter()
            .find_map(|(flag, f)| {
                f.as_ref()
                    .filter(|f| f.stream() == Some(Stream::Stdout))
                    .map(|f| (flag, f))
            })
    }
}

/// Write the JUnit file, the report directory and the picture from the run's account.
pub fn write_outputs(
    outputs: &Outputs,
    opened: &Opened,
    console: &Console,
    files: &[(String, Vec<u8>)],
) -> Result<(), String> {
    if !outputs.any() {
        return Ok(());
    }
    let lines = console.journal().map(|j| j.lines()).unwrap_or_default();
    // The journal's own account: folded from these very events as they came.
    let account = console.journal().map(|j| j.account()).unwrap_or_default();
    write_from(outputs, opened, console, files, &lines, &account)
}

/// [`write_outputs`] from these events and their account (a held run's, with its verdict
/// before the journal has it: run/hold.rs).
pub fn write_from(
    outputs: &Outputs,
    opened: &Opened,
    console: &Console,
    files: &[(String, Vec<u8>)],
    lines: &[nslab_report::account::Line],
    account: &nslab_report::account::RunAccount,
) -> Result<(), String> {
    if !outputs.any() {
        return Ok(());
    }
    let failed = |what: &str, path: &std::path::Path, e: nslab_report::output::OutputError| {
        format!("cannot write {what} {}: {e}", path.display())
    };
    if let Some(file) = &opened.junit {
        file.write(nslab_report::account::junit::xml(&[(account, None)]).as_bytes())
            .map_err(|e| failed("the JUnit file", file.path(), e))?;
    }
    if let (Some(file), Some(path)) = (&opened.graph, &outputs.graph) {
        let format = outputs.graph_format(path).map_err(|e| e.to_string())?;
        let picture = nslab_report::account::graph::render(&account.topology, format);
        file.write(picture.as_bytes())
            .map_err(|e| failed("the picture", file.path(), e))?;
    }
    if let Some(dir) = &outputs.report {
        nslab_report::account::write_report(dir, account, lines, files)
            .map_err(|e| failed("the report into", dir, e))?;
        console.line(
            Verbosity::Quiet,
            &format!("report: {}", dir.join("index.html").display()),
        );
    }
    Ok(())
}
