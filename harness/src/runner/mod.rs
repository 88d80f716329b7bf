//! Running tests, in-process: one test end to end ([`run_test`]: the flow in `flow`, then
//! the verdict files and keep-data), and many at once (`pool`). Each job has its own
//! room: image providers (`images`), the phases (`flow`), step timers (`timer`), the
//! per-minute heartbeat (`heartbeat`), the installer checks before any VM (`installers`).
//! Progress lines are in `crate::progress`, the summary table and JUnit in `crate::report`.

mod flow;
mod heartbeat;
mod images;
mod installers;
mod pool;
mod timer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use images::{DirImages, ImageFiles, ImageProvider, StoreImages};
pub use installers::check_installers;
pub use pool::run_all;

use crate::backend::{Backend, Outcome};
use crate::config::{InstallerKind, TestConfig};
pub use crate::progress::Progress;
use crate::settings::Settings;
use crate::verdict;
use crate::workdir::WorkDir;
use timer::Timer;

/// Size of the output disk the collect scripts tar onto (curtin used 10 MiB; larger
/// costs nothing while sparse).
pub const OUTPUT_DISK_SIZE: u64 = 64 << 20;
/// Most that collect/ may receive from the guest.
pub const COLLECT_BUDGET: u64 = OUTPUT_DISK_SIZE;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// The guest or the checks failed.
    Fail,
    /// The harness could not run the test (missing image, qemu, bad config, ...).
    Error,
}

#[derive(Debug, Clone)]
pub struct TestResult {
    pub name: String,
    pub backend: String,
    /// Which installer ran: `script` or `curtin`.
    pub installer: String,
    pub status: Status,
    /// What went wrong, one item per problem.
    pub errors: Vec<String>,
    /// Wall time per VM phase.
    pub phases: Vec<(String, Duration)>,
    /// Harness work outside the VMs, per step.
    pub steps: Vec<(String, Duration)>,
    pub total: Duration,
    pub workdir: PathBuf,
}

impl TestResult {
    pub fn overhead(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }
}

/// Everything a test run needs besides the test.
pub struct RunContext<'a> {
    pub settings: &'a Settings,
    pub backend: &'a dyn Backend,
    pub images: &'a dyn ImageProvider,
    pub curtin_src: Option<&'a Path>,
    pub progress: Progress,
    /// Attach the serial console of this phase (`install` / `boot`) to the terminal.
    pub console: Option<String>,
}

/// Ctrl-A x at an attached console stopped `phase` on purpose: the test did not finish,
/// and neither the installer nor the installed system failed.
pub(crate) fn left_at_console(r: TestResult, phase: &str) -> TestResult {
    let why = format!(
        "{phase} phase {}: left with Ctrl-A x, test not finished",
        Outcome::Stopped
    );
    fail(r, Status::Error, vec![why])
}

pub(crate) fn fail(mut r: TestResult, status: Status, errs: Vec<String>) -> TestResult {
    r.status = status;
    r.errors.extend(errs);
    r
}

pub(crate) fn installer_name(kind: InstallerKind) -> &'static str {
    match kind {
        InstallerKind::Script => "script",
        InstallerKind::Curtin => "curtin",
    }
}

/// Runs one test end to end; never panics on guest or config problems.
pub fn run_test(test: &TestConfig, ctx: &RunContext) -> TestResult {
    let start = Instant::now();
    let s = ctx.settings;
    let mut r = TestResult {
        name: test.name.clone(),
        backend: ctx.backend.name(),
        installer: installer_name(test.installer(ctx.curtin_src.is_some())).into(),
        status: Status::Pass,
        errors: Vec::new(),
        phases: Vec::new(),
        steps: Vec::new(),
        total: Duration::ZERO,
        workdir: s.topdir.join(&test.name),
    };
    let mut r = if s.reuse_topdir {
        let w = WorkDir::existing(&s.topdir, &test.name);
        ctx.progress.say(
            &test.name,
            "re-verifying kept data (CURTIN_VMTEST_REUSE_TOPDIR)",
        );
        let mut timer = Timer::new();
        if !w.collect().is_dir() {
            r = fail(
                r,
                Status::Error,
                vec![format!(
                    "{} has no kept collect/ to re-verify",
                    w.root.display()
                )],
            );
        } else {
            let fails = verdict::check_expectations(&w.collect(), &test.vmtest.expect);
            timer.lap("verify");
            r.steps = timer.steps;
            if !fails.is_empty() {
                r = fail(r, Status::Fail, fails);
            }
        }
        r
    } else {
        flow::run_phases(test, ctx, r)
    };
    r.total = start.elapsed();
    if !s.reuse_topdir {
        finish(test, ctx, &mut r);
    }
    let verdict = match r.status {
        Status::Pass => "PASS".to_string(),
        Status::Fail => format!("FAIL: {}", r.errors.first().cloned().unwrap_or_default()),
        Status::Error => format!("ERROR: {}", r.errors.first().cloned().unwrap_or_default()),
    };
    let steps: Vec<String> = r
        .steps
        .iter()
        .map(|(n, d)| format!("{n} {:.1}", d.as_secs_f64() * 1000.0))
        .collect();
    ctx.progress.say(
        &test.name,
        &format!(
            "{verdict} ({:.1}s; harness overhead {:.0} ms: {})",
            r.total.as_secs_f64(),
            r.overhead().as_secs_f64() * 1000.0,
            steps.join(", ")
        ),
    );
    r
}

/// Writes logs/success or logs/errors.json and applies KEEP_DATA_PASS/FAIL.
fn finish(test: &TestConfig, ctx: &RunContext, r: &mut TestResult) {
    let w = WorkDir {
        root: r.workdir.clone(),
    };
    if !w.root.is_dir() {
        return;
    }
    let _ = std::fs::create_dir_all(w.logs());
    let phases: serde_json::Map<String, serde_json::Value> = r
        .phases
        .iter()
        .map(|(n, d)| (n.clone(), serde_json::json!(d.as_secs_f64())))
        .collect();
    let steps: serde_json::Map<String, serde_json::Value> = r
        .steps
        .iter()
        .map(|(n, d)| (n.clone(), serde_json::json!(d.as_secs_f64() * 1000.0)))
        .collect();
    let record = serde_json::json!({
        "test": test.name, "backend": r.backend, "installer": r.installer,
        "status": format!("{:?}", r.status).to_lowercase(),
        "errors": r.errors, "phases_s": phases, "harness_steps_ms": steps,
        "total_s": r.total.as_secs_f64(),
    });
    let _ = match r.status {
        Status::Pass => std::fs::write(
            w.logs().join("success"),
            serde_json::to_string_pretty(&record).unwrap_or_default(),
        ),
        _ => std::fs::write(
            w.logs().join("errors.json"),
            serde_json::to_string_pretty(&record).unwrap_or_default(),
        ),
    };
    let keep = if r.status == Status::Pass {
        ctx.settings.keep_pass
    } else {
        ctx.settings.keep_fail
    };
    if let Err(e) = w.apply_keep(keep) {
        r.errors
            .push(format!("could not remove data not kept: {e}"));
    }
}
