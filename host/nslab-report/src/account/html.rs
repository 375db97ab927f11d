//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! with the verdict, the picture of the lab, the steps and checks, each program's output
//! (collapsed), the kernel changes and the timings. It is well-formed XML as well as HTML, so
//! tests (and other tools) can read it with an XML parser.

use std::fmt::Write;

use super::{escape as esc, RunAccount, Stream, Verdict};

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2333; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 1.2em; }
header.verdict { padding: 1em 1.2em; border-radius: 8px; color: #fff; }
header.passed { background: #2e7d4f; } header.failed { background: #b3261e; }
header.could-not-run { background: #5f6368; } header.interrupted { background: #c26a00; }
header h1 { margin: 0 0 .2em 0; font-size: 1.5em; }
header p { margin: .2em 0; }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; margin: 1em 0; padding: .6em 1.2em 1em; }
h2 { font-size: 1.15em; margin: .5em 0; }
h3 { font-size: 1em; margin: .8em 0 .3em; }
.meta { color: #e8eaed; font-size: .9em; }
.meta code { color: #fff; }
.figure { overflow: auto; max-height: 80vh; border: 1px solid #eef0f3; border-radius: 6px; background: #fff; }
ul.checks { list-style: none; padding-left: .4em; margin: .2em 0; }
ul.checks li { margin: .15em 0; }
.pass { color: #2e7d4f; font-weight: bold; } .fail { color: #b3261e; font-weight: bold; }
.detail { color: #555; }
.t { color: #888; font-size: .85em; font-variant-numeric: tabular-nums; }
details { margin: .3em 0; }
summary { cursor: pointer; }
pre { background: #1d2333; color: #e8eaed; padding: .6em; border-radius: 6px; overflow: auto; max-height: 24em; font-size: .85em; }
pre .err { color: #ffb4ab; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
td, th { text-align: left; padding: .25em .5em; border-bottom: 1px solid #eef0f3; }
.warn { color: #8a5a00; }
"#;

fn verdict_words(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Passed => ("passed", "PASS"),
        Verdict::Failed => ("failed", "FAIL"),
        Verdict::CouldNotRun => ("could-not-run", "COULD NOT RUN"),
        Verdict::Interrupted => ("interrupted", "STOPPED"),
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        esc(title)
    )
}

/// The report of one run; `svg` is the picture of its lab.
pub fn run_page(a: &RunAccount, svg: &str) -> String {
    let mut b = String::new();
    let (class, word) = verdict_words(a.verdict());
    let message = a
        .end
        .as_ref()
        .map_or("the run left no verdict", |e| &e.message);
    let _ = writeln!(
        b,
        "<header class=\"verdict {class}\" id=\"verdict\" data-verdict=\"{class}\">\n<h1>{word} {}</h1>\n<p>{}</p>",
        esc(&a.name),
        esc(&a.description)
    );
    let _ = writeln!(b, "<p class=\"summary\">{}</p>", esc(message));
    let _ = writeln!(
        b,
        "<p class=\"meta\">file <code>{}</code> &#183; run <code>{}</code> &#183; sha256 <code>{}</code> &#183; {:.2} s</p>\n</header>",
        esc(&a.file),
        esc(&a.run),
        esc(&a.sha256),
        a.seconds()
    );

    if !a.errors.is_empty() {
        b.push_str("<section id=\"errors\">\n<h2>Could not run</h2>\n<ul>\n");
        for e in &a.errors {
            let _ = writeln!(b, "<li class=\"fail\">{}</li>", esc(e));
        }
        b.push_str("</ul>\n</section>\n");
    }

    let _ = writeln!(
        b,
        "<section id=\"lab\">\n<h2>The lab</h2>\n<p>{} namespaces, {} links when the scenario ended, \
         as the kernel had them (<a href=\"topology.svg\">topology.svg</a>).</p>\n<div class=\"figure\">\n{svg}</div>",
        a.topology.namespaces.len(),
        a.topology.links.len()
    );
    let routed: Vec<_> = a
        .topology
        .namespaces
        .iter()
        .filter(|n| !n.routes.is_empty())
        .collect();
    if !routed.is_empty() {
        b.push_str(
            "<details class=\"routes\">\n<summary>Routes at the end, whoever made them</summary>\n",
        );
        for n in routed {
            let _ = writeln!(b, "<h3>{}</h3>\n<pre>", esc(&n.name));
            for r in &n.routes {
                let _ = writeln!(b, "{}", esc(r));
            }
            b.push_str("</pre>\n");
        }
        b.push_str("</details>\n");
    }
    b.push_str("</section>\n");

    b.push_str("<section id=\"checks\">\n<h2>Steps and checks</h2>\n");
    if a.steps.is_empty() {
        b.push_str("<p>The scenario made no steps and no checks.</p>\n");
    }
    for step in &a.steps {
        if !step.name.is_empty() {
            let _ = writeln!(
                b,
                "<h3 class=\"step\"><span class=\"t\">{:7.2}s</span> {}</h3>",
                step.t,
                esc(&step.name)
            );
        }
        if step.checks.is_empty() {
            continue;
        }
        b.push_str("<ul class=\"checks\">\n");
        for c in &step.checks {
            let (class, mark) = if c.passed {
                ("pass", "ok")
            } else {
                ("fail", "FAIL")
            };
            let _ = writeln!(
                b,
                "<li class=\"check {class}-check\"><span class=\"t\">{:7.2}s</span> <span class=\"{class}\">{mark}</span> <span class=\"name\">{}</span> <span class=\"detail\">{}</span></li>",
                c.t,
                esc(&c.name),
                esc(&c.detail)
            );
        }
        b.push_str("</ul>\n");
    }
    b.push_str("</section>\n");

    if !a.refusals.is_empty() || !a.warnings.is_empty() {
        b.push_str("<section id=\"refusals\">\n<h2>Refusals and warnings</h2>\n<ul>\n");
        for r in &a.refusals {
            let _ = writeln!(
                b,
                "<li class=\"fail\">refused by the policy: {}</li>",
                esc(r)
            );
        }
        for w in &a.warnings {
            let _ = writeln!(b, "<li class=\"warn\">{}</li>", esc(w));
        }
        b.push_str("</ul>\n</section>\n");
    }

    let _ = writeln!(
        b,
        "<section id=\"programs\">\n<h2>Programs ({})</h2>",
        a.programs.len()
    );
    for p in &a.programs {
        let ended = match p.ended {
            Some(e) => format!(
                "status {}{}, {:.2} s, {} + {} bytes",
                e.status,
                if e.timed_out {
                    " (killed at its time limit)"
                } else {
                    ""
                },
                e.seconds,
                e.stdout_bytes,
                e.stderr_bytes
            ),
            None => "still running when the run ended".to_string(),
        };
        let _ = writeln!(
            b,
            "<details class=\"program\">\n<summary><span class=\"t\">{:7.2}s</span> <b>{}</b>: <code>{}</code>{} &#8212; {}</summary>",
            p.t,
            esc(&p.ns),
            esc(&p.command),
            if p.background { " (background)" } else { "" },
            esc(&ended)
        );
        if p.output.is_empty() {
            b.push_str("<p>(no output shown)</p>\n");
        } else {
            b.push_str("<pre>");
            for (stream, line) in &p.output {
                match stream {
                    Stream::Stdout => b.push_str(&esc(line)),
                    Stream::Stderr => {
                        let _ = write!(b, "<span class=\"err\">{}</span>", esc(line));
                    }
                }
                b.push('\n');
            }
            b.push_str("</pre>\n");
        }
        b.push_str("</details>\n");
    }
    b.push_str("</section>\n");

    let _ = writeln!(
        b,
        "<section id=\"changes\">\n<h2>Kernel changes</h2>\n<details>\n<summary>{} changes the runner made</summary>\n<table>",
        a.changes.len()
    );
    for (t, text) in &a.changes {
        let _ = writeln!(
            b,
            "<tr><td class=\"t\">{t:.3}s</td><td><code>{}</code></td></tr>",
            esc(text)
        );
    }
    b.push_str("</table>\n</details>\n");
    if let Some(super::TeardownAccount {
        kept,
        removed,
        problems,
    }) = &a.teardown
    {
        let what = if *kept {
            "The lab was kept (runner cleanup removes it).".to_string()
        } else {
            format!("Teardown removed {} objects.", removed.len())
        };
        let _ = writeln!(b, "<p class=\"teardown\">{}</p>", esc(&what));
        for p in problems {
            let _ = writeln!(b, "<p class=\"warn\">teardown: {}</p>", esc(p));
        }
    }
    b.push_str("</section>\n");

    b.push_str("<section id=\"files\">\n<h2>Files</h2>\n<ul>\n");
    for (name, bytes) in &a.attachments {
        // A download, saved under a name no web server would serve as a page (mod.rs).
        let _ = writeln!(
            b,
            "<li><a href=\"files/{}\" download=\"{1}\" type=\"application/octet-stream\">{1}</a> ({bytes} bytes, saved by the scenario)</li>",
            esc(&super::saved_name(name)),
            esc(name)
        );
    }
    b.push_str(
        "<li><a href=\"events.jsonl\">events.jsonl</a> (every event, docs/report.md)</li>\n\
         <li><a href=\"junit.xml\">junit.xml</a></li>\n<li><a href=\"topology.svg\">topology.svg</a></li>\n</ul>\n</section>\n",
    );
    page(&format!("{word} {}", a.name), &b)
}

/// The index of `runner test --report DIR`.
pub fn test_page(runs: &[super::Listed]) -> String {
    let failed = runs
        .iter()
        .filter(|r| r.account.verdict() != Verdict::Passed)
        .count();
    let sharded = runs.iter().any(|r| r.shard.is_some());
    let class = if failed == 0 { "passed" } else { "failed" };
    let mut b = format!(
        "<header class=\"verdict {class}\" id=\"verdict\" data-verdict=\"{class}\">\n<h1>{} scenarios, {} passed, {failed} not</h1>\n</header>\n<section>\n<table>\n<tr><th>scenario</th><th>verdict</th><th>checks</th><th>time</th>{}</tr>\n",
        runs.len(),
        runs.len() - failed,
        if sharded { "<th>shard</th>" } else { "" }
    );
    for super::Listed {
        dir,
        shard,
        account: a,
    } in runs
    {
        let (class, word) = verdict_words(a.verdict());
        let (passed, failed) = a.end.as_ref().map_or((0, 0), |e| (e.passed, e.failed));
        let _ = writeln!(
            b,
            "<tr class=\"run {class}\"><td><a href=\"{}/index.html\">{}</a></td><td>{word}</td><td>{passed} passed, {failed} failed</td><td>{:.2} s</td>{}</tr>",
            esc(dir),
            esc(&a.name),
            a.seconds(),
            match (sharded, shard) {
                (true, Some(s)) => format!("<td>{}</td>", esc(s)),
                (true, None) => "<td></td>".to_string(),
                (false, _) => String::new(),
            }
        );
    }
    b.push_str("</table>\n</section>\n");
    page("nslab test report", &b)
}
