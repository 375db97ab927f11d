//! JUnit XML, which GitLab, GitHub Actions and Jenkins read: each run a test suite, each check
//! a test case (its detail the failure's message), each refusal a failing test case, and a
//! test case "run" for how the run itself ended (a scenario error, a crash, a limit, a file
//! that could not be run).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{xml_text as x, Ending, RunAccount, Verdict};

/// The JUnit file of `runs`; a run's shard (`runner test --shard`), if any, is in its suite's
/// name, as "NAME [shard K/N]" (its test cases are named as in an unsharded run).
pub fn xml(runs: &[(&RunAccount, Option<&str>)]) -> String {
    let mut report = Report::new("nslab");
    let mut total = 0.0;
    for (run, shard) in runs {
        report.add_test_suite(suite(run, *shard));
        total += run.seconds();
    }
    report.set_time(Duration::from_secs_f64(total));
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write the JUnit report: {e} -->\n"))
}

fn suite(run: &RunAccount, shard: Option<&str>) -> TestSuite {
    let name = match shard {
        Some(s) => format!("{} [shard {s}]", run.name),
        None => run.name.clone(),
    };
    let mut suite = TestSuite::new(x(&name));
    suite.set_time(Duration::from_secs_f64(run.seconds()));
    let mut since = 0.0;
    for step in &run.steps {
        for check in &step.checks {
            let status = if check.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(x(&check.detail)).set_type("check");
                s
            };
            let name = match step.name.is_empty() {
                true => check.name.clone(),
                false => format!("{} / {}", step.name, check.name),
            };
            let mut case = TestCase::new(x(&name), status);
            case.set_classname(x(&run.name))
                .set_time(Duration::from_secs_f64((check.t - since).max(0.0)));
            since = check.t;
            suite.add_test_case(case);
        }
    }
    for (i, refusal) in run.refusals.iter().enumerate() {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(x(refusal)).set_type("refused");
        let mut case = TestCase::new(format!("refused by the policy #{}", i + 1), s);
        case.set_classname(x(&run.name));
        suite.add_test_case(case);
    }
    suite.add_test_case(run_case(run));
    suite
}

/// How the run itself ended: a failure when it did not end by returning (failing checks are
/// their own cases), an error when it could not run at all.
fn run_case(run: &RunAccount) -> TestCase {
    let message = run
        .end
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| {
            "the run left no verdict: the runner was stopped before it ended".to_string()
        });
    let returned = run
        .end
        .as_ref()
        .is_some_and(|e| e.ended == Ending::Returned);
    let status = match run.verdict() {
        // Failing checks are test cases of their own.
        Verdict::Passed => TestCaseStatus::success(),
        Verdict::Failed if returned => TestCaseStatus::success(),
        Verdict::Failed | Verdict::Interrupted => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(x(&message)).set_type("run");
            s
        }
        Verdict::CouldNotRun => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            let why = run.errors.last().cloned().unwrap_or(message);
            s.set_message(x(&why)).set_type("could-not-run");
            s
        }
    };
    let mut case = TestCase::new("run", status);
    case.set_classname(x(&run.name))
        .set_time(Duration::from_secs_f64(run.seconds()));
    case
}
