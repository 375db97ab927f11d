//! `runner report merge`: one report of a suite that ran in shards (`runner test --shard K/N`
//! on many machines), from their `--report` directories or their `--junit` files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// Work with the reports `runner test` writes
#[derive(Args)]
pub struct ReportCmd {
    #[command(subcommand)]
    action: ReportAction,
}

#[derive(Subcommand)]
enum ReportAction {
    /// Join the reports of shards into one: `--report` directories into one directory (every
    /// run, one index, one junit.xml), or `--junit` files into one JUnit file
    Merge(MergeArgs),
}

#[derive(Args)]
struct MergeArgs {
    /// The shards' report directories, or their JUnit files (.xml); all of one kind.
    #[arg(required = true, value_name = "DIR|FILE.xml")]
    inputs: Vec<PathBuf>,

    /// Where the merged report goes: a directory for directories, a file for JUnit files.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
}

pub fn main(a: ReportCmd) -> ExitCode {
    match a.action {
        ReportAction::Merge(m) => merge(m),
    }
}

fn merge(m: MergeArgs) -> ExitCode {
    let dirs = m.inputs.iter().filter(|p| p.is_dir()).count();
    let result = if dirs == m.inputs.len() {
        if let Err(why) = nslab_report::output::check(&m.output) {
            return super::fail(format!("-o: {why}"));
        }
        nslab_report::account::merge_reports(&m.inputs, &m.output)
            .map(|n| {
                format!(
                    "merged {n} runs from {} reports: {}",
                    m.inputs.len(),
                    m.output.join("index.html").display()
                )
            })
            .map_err(|e| e.to_string())
    } else if dirs == 0 {
        merge_junit(&m.inputs).and_then(|(xml, suites)| {
            nslab_report::output::write_file(&m.output, xml.as_bytes())?;
            Ok(format!(
                "merged {suites} test suites from {} JUnit files: {}",
                m.inputs.len(),
                m.output.display()
            ))
        })
    } else {
        Err(
            "name report directories or JUnit files, not both: merge each kind on its own"
                .to_string(),
        )
    };
    match result {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(why) => super::fail(why),
    }
}

/// The test suites of every file, each as it was written, under one `<testsuites>` with the
/// totals: the merged file and how many suites it holds.
fn merge_junit(files: &[PathBuf]) -> Result<(String, usize), String> {
    let mut suites = String::new();
    let (mut tests, mut failures, mut errors, mut time, mut count) = (0u64, 0u64, 0u64, 0f64, 0);
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let doc = roxmltree::Document::parse(&text)
            .map_err(|e| format!("{} is not XML: {e}", file.display()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "testsuites" {
            return Err(format!(
                "{} is not a JUnit file (its root is <{}>, not <testsuites>)",
                file.display(),
                root.tag_name().name()
            ));
        }
        for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
            let number = |attr: &str| suite.attribute(attr).and_then(|v| v.parse::<u64>().ok());
            tests += number("tests").unwrap_or(0);
            failures += number("failures").unwrap_or(0);
            errors += number("errors").unwrap_or(0);
            time += suite
                .attribute("time")
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            count += 1;
            suites.push_str("    ");
            suites.push_str(&text[suite.range()]);
            suites.push('\n');
        }
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"nslab\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n{suites}</testsuites>\n"
    );
    Ok((xml, count))
}
