//! Running tests, in-process: one test end to end ([`run_test`]: the flow in `flow`, then
//! the verdict files and keep-data), and many at once (`pool`). Each job has its own
//! room: image providers (`images`), the phases (`flow`) and their typed errors
//! (`error`), step timers (`timer`), the per-minute heartbeat (`heartbeat`), the installer
//! checks before any VM (`installers`).
//! Progress lines are in `crate::progress`, the summary table and JUnit in `crate::report`.

mod error;
mod flow;
mod heartbeat;
mod images;
mod installers;
mod pool;
mod timer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use error::{RunError, SerialTail};
pub use images::{DirImages, ImageFiles, ImageProvider, StoreImages};
pub use installers::{InstallersError, check_installers};
pub use pool::{run_all, run_all_with};

use crate::backend::{Backend, Phase};
use crate::check::CheckResult;
use crate::config::{HostFacts, InstallerKind, TestConfig};
pub use crate::progress::Progress;
use crate::settings::Settings;
use crate::workdir::WorkDir;
use timer::Timer;

/// Size of the output disk the collect scripts tar onto (curtin used 10 MiB; larger
/// costs nothing while sparse).
pub const OUTPUT_DISK_SIZE: u64 = 64 << 20;
/// Most that collect/ may receive from the guest.
pub const COLLECT_BUDGET: u64 = OUTPUT_DISK_SIZE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// The guest or the checks failed.
    Fail,
    /// The harness could not run the test (missing image, qemu, bad config, ...) or the
    /// test did not finish.
    Error,
    /// The test needs what this host cannot give (another architecture, an iSCSI target,
    /// ZFS in the image, ...): listed with the reason, neither passed nor failed.
    #[serde(rename = "not_run")]
    NotRun,
}

impl Status {
    /// `PASS`, `FAIL`, `ERROR`, as the summary shows it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::NotRun => "NOT RUN",
        }
    }
}

#[derive(Debug)]
pub struct TestResult {
    pub name: String,
    /// The test's config file.
    pub file: PathBuf,
    pub backend: String,
    /// Which installer ran: `script` or `curtin`.
    pub installer: String,
    pub status: Status,
    /// What stopped the run before its checks could all pass, if anything did.
    pub failure: Option<RunError>,
    /// One result per check, in the order they ran (empty when the run stopped before).
    pub checks: Vec<CheckResult>,
    /// Problems after the verdict that do not change it (data that could not be removed).
    pub notes: Vec<String>,
    /// Wall time per VM phase.
    pub phases: Vec<(Phase, Duration)>,
    /// Harness work outside the VMs, per step.
    pub steps: Vec<(&'static str, Duration)>,
    pub total: Duration,
    pub workdir: PathBuf,
}

impl TestResult {
    pub(crate) fn new(test: &TestConfig, ctx: &RunContext) -> TestResult {
        TestResult {
            name: test.name.clone(),
            file: test.file.clone(),
            backend: ctx.backend.name(),
            installer: installer_name(test.installer(ctx.curtin_src.is_some())).into(),
            status: Status::Pass,
            failure: None,
            checks: Vec::new(),
            notes: Vec::new(),
            phases: Vec::new(),
            steps: Vec::new(),
            total: Duration::ZERO,
            workdir: ctx.settings.topdir.join(&test.name),
        }
    }

    pub fn overhead(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }

    /// Wall time of a phase, if it ran.
    pub fn phase_time(&self, phase: Phase) -> Option<Duration> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
    }

    /// What went wrong, one item per problem, to show: the failure (with what the
    /// install verdict found and the serial tail), each failed check (`name: evidence`),
    /// then the notes.
    pub fn errors(&self) -> Vec<String> {
        let mut v = self
            .failure
            .as_ref()
            .map(RunError::lines)
            .unwrap_or_default();
        v.extend(
            self.checks
                .iter()
                .filter(|c| !c.passed())
                .map(|c| format!("{}: {}", c.name, c.evidence)),
        );
        v.extend(self.notes.iter().cloned());
        v
    }

    /// The verdict from the failure and the checks.
    fn judge(&self) -> Status {
        match &self.failure {
            Some(f) => f.status(),
            None if self.checks.iter().all(CheckResult::passed) => Status::Pass,
            None => Status::Fail,
        }
    }
}

/// Everything a test run needs besides the test.
pub struct RunContext<'a> {
    pub settings: &'a Settings,
    pub backend: &'a dyn Backend,
    pub images: &'a dyn ImageProvider,
    pub curtin_src: Option<&'a Path>,
    pub progress: Progress,
    /// Attach the serial console of this phase to the terminal.
    pub console: Option<Phase>,
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
    let mut r = TestResult::new(test, ctx);
    // The work dir, once this run has created it: only then may keep-data touch it.
    let mut created: Option<WorkDir> = None;
    let mut run = flow::Run {
        test,
        ctx,
        r: &mut r,
        timer: Timer::new(),
    };
    let outcome = if let Some(why) = test.not_runnable(&HostFacts::this_host()) {
        Err(RunError::NotRunnableHere(why))
    } else if s.reuse_topdir {
        reverify(&mut run)
    } else {
        match WorkDir::create(&s.topdir, &test.name) {
            Ok(w) => {
                let w = created.insert(w);
                flow::run_phases(&mut run, w)
            }
            Err(source) => Err(RunError::WorkDir {
                path: s.topdir.join(&test.name),
                source,
            }),
        }
    };
    r.steps = std::mem::take(&mut run.timer.steps);
    r.failure = outcome.err();
    r.status = r.judge();
    r.total = start.elapsed();
    if let Some(w) = &created {
        finish(w, ctx, &mut r);
    }
    let verdict = match r.status {
        Status::Pass => "PASS".to_string(),
        // One line: the first line of the first problem (the rest is in the summary).
        st => format!(
            "{}: {}",
            st.label(),
            r.errors()
                .first()
                .and_then(|e| e.lines().next().map(str::to_string))
                .unwrap_or_default()
        ),
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

/// CURTIN_VMTEST_REUSE_TOPDIR: no VMs, the checks again on the kept collect/.
fn reverify(run: &mut flow::Run) -> Result<(), RunError> {
    let w = WorkDir::existing(&run.ctx.settings.topdir, &run.test.name);
    run.ctx.progress.say(
        &run.test.name,
        "re-verifying kept data (CURTIN_VMTEST_REUSE_TOPDIR)",
    );
    if !w.collect().is_dir() {
        return Err(RunError::NothingToReverify(w.root));
    }
    flow::verify(run, &w);
    Ok(())
}

/// Writes logs/success or logs/errors.json into the work dir this run created and
/// applies KEEP_DATA_PASS/FAIL to it.
fn finish(w: &WorkDir, ctx: &RunContext, r: &mut TestResult) {
    let _ = std::fs::create_dir_all(w.logs());
    let phases: serde_json::Map<String, serde_json::Value> = r
        .phases
        .iter()
        .map(|(p, d)| (p.to_string(), serde_json::json!(d.as_secs_f64())))
        .collect();
    let steps: serde_json::Map<String, serde_json::Value> = r
        .steps
        .iter()
        .map(|(n, d)| (n.to_string(), serde_json::json!(d.as_secs_f64() * 1000.0)))
        .collect();
    let record = serde_json::json!({
        "test": r.name, "backend": r.backend, "installer": r.installer,
        "status": r.status,
        "errors": r.errors(), "checks": r.checks, "phases_s": phases,
        "harness_steps_ms": steps, "total_s": r.total.as_secs_f64(),
    });
    let file = match r.status {
        Status::Pass => "success",
        _ => "errors.json",
    };
    let _ = std::fs::write(
        w.logs().join(file),
        serde_json::to_string_pretty(&record).unwrap_or_default(),
    );
    let keep = if r.status == Status::Pass {
        ctx.settings.keep_pass
    } else {
        ctx.settings.keep_fail
    };
    if let Err(e) = w.apply_keep(keep) {
        r.notes.push(format!("could not remove data not kept: {e}"));
    }
}
