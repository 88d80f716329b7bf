//! The summary table printed at the end of a run: per test its verdict, where it ran,
//! how many checks passed and failed, the phase times and the harness's own time.

use crate::backend::Phase;
use crate::check;
use crate::runner::{Status, TestResult};

/// The summary table; its last line counts the tests that passed and failed, those this
/// host could not run (neither), then (when any ran) the checks of all of them.
pub fn summary_table(results: &[TestResult]) -> String {
    let mut s = String::new();
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    s.push_str(&format!(
        "{:<w$}  {:<7}  {:<9}  {:<9}  {:>13}  {:>9}  {:>9}  {:>9}  {:>8}\n",
        "test",
        "result",
        "backend",
        "installer",
        "checks ok/bad",
        "install",
        "boot",
        "total",
        "harness"
    ));
    for r in results {
        let phase = |p: Phase| {
            r.phase_time(p)
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into())
        };
        let (ok, bad) = check::counts(&r.checks);
        s.push_str(&format!(
            "{:<w$}  {:<7}  {:<9}  {:<9}  {:>13}  {:>9}  {:>9}  {:>8.1}s  {:>6.0}ms\n",
            r.name,
            r.status.label(),
            r.backend,
            r.installer,
            format!("{ok}/{bad}"),
            phase(Phase::Install),
            phase(Phase::Boot),
            r.total.as_secs_f64(),
            r.overhead().as_secs_f64() * 1000.0
        ));
    }
    let count = |st: Status| results.iter().filter(|r| r.status == st).count();
    let (pass, not_run) = (count(Status::Pass), count(Status::NotRun));
    s.push_str(&format!(
        "{} passed, {} failed",
        pass,
        results.len() - pass - not_run
    ));
    if not_run > 0 {
        s.push_str(&format!(
            ", {not_run} not run here (neither passed nor failed)"
        ));
    }
    let (ok, bad) = results
        .iter()
        .map(|r| check::counts(&r.checks))
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    if ok + bad > 0 {
        s.push_str(&format!("; checks: {ok} passed, {bad} failed"));
    }
    s.push('\n');
    s
}
