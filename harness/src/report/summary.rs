//! The summary table printed at the end of a run.

use crate::runner::{Status, TestResult};

/// The summary table printed at the end of a run.
pub fn summary_table(results: &[TestResult]) -> String {
    let mut s = String::new();
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    s.push_str(&format!(
        "{:<w$}  {:<6}  {:<9}  {:<9}  {:>9}  {:>9}  {:>9}  {:>8}\n",
        "test", "result", "backend", "installer", "install", "boot", "total", "harness"
    ));
    for r in results {
        let phase = |n: &str| {
            r.phases
                .iter()
                .find(|(p, _)| p == n)
                .map(|(_, d)| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into())
        };
        let st = match r.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
        };
        s.push_str(&format!(
            "{:<w$}  {:<6}  {:<9}  {:<9}  {:>9}  {:>9}  {:>8.1}s  {:>6.0}ms\n",
            r.name,
            st,
            r.backend,
            r.installer,
            phase("install"),
            phase("boot"),
            r.total.as_secs_f64(),
            r.overhead().as_secs_f64() * 1000.0
        ));
    }
    let pass = results.iter().filter(|r| r.status == Status::Pass).count();
    s.push_str(&format!(
        "{} passed, {} failed\n",
        pass,
        results.len() - pass
    ));
    s
}
