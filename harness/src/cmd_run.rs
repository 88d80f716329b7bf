//! `vmtest run` and `vmtest console`: settings, TOPDIR, backends, the tests (grouped by
//! the backend each gets), then the results as the summary table, the failures, the JUnit
//! file (rewritten after every test, so a run killed midway leaves what finished) and,
//! under GitHub Actions, annotations. Ends with an [`Exit`] code.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::VmmChoice;
use crate::backend::qemu::QemuBackend;
use crate::backend::{Backend, BuiltinBackend, Phase};
use crate::config::{HostFacts, InstallerKind, TestConfig};
use crate::exit::{CliError, Exit};
use crate::report::{self, github};
use crate::runner::{self, ImageProvider, Progress, RunContext, StoreImages, TestResult};
use crate::settings::Settings;
use crate::vmm_choice::{HostKvm, choose};

/// How a run was asked for, besides its tests.
pub struct RunOptions<'a> {
    pub vmm: VmmChoice,
    pub curtin: Option<&'a Path>,
    pub console: Option<Phase>,
    pub junit: Option<&'a Path>,
    /// False for `--no-derive-checks`: only the tests' `expect:` lists are checked.
    pub derive_checks: bool,
    /// Print GitHub Actions workflow commands (GITHUB_ACTIONS=true).
    pub github: bool,
    /// Annotation paths relative to this (GITHUB_WORKSPACE).
    pub workspace: Option<PathBuf>,
}

/// Builds a fresh image per release (CURTIN_VMTEST_IMAGE_SYNC), then prunes the store.
fn sync_images(settings: &Settings, tests: &[TestConfig]) -> anyhow::Result<()> {
    // curtin's "sync": fetch the newest images first. Ours are built from Debian
    // packages (no MAAS mirror is reachable), then the store keeps IMAGES_TO_KEEP.
    let store = settings.image_store()?;
    let mut done: Vec<(String, String)> = Vec::new();
    for t in tests {
        let key = (t.vmtest.release.clone(), t.vmtest.arch.clone());
        if done.contains(&key) {
            continue;
        }
        eprintln!(
            "vmtest: CURTIN_VMTEST_IMAGE_SYNC: building a fresh {}/{} image",
            key.0, key.1
        );
        images::build::build(&store, &images::build::BuildOptions::new(&key.0, &key.1))
            .map_err(|e| anyhow::anyhow!("image sync for {}/{}: {e:#}", key.0, key.1))?;
        done.push(key);
    }
    let rep = store.prune(settings.images_to_keep as usize)?;
    eprintln!(
        "vmtest: image sync: kept {}, removed {}, in use {} (IMAGES_TO_KEEP={})",
        rep.kept.len(),
        rep.removed.len(),
        rep.in_use.len(),
        settings.images_to_keep
    );
    Ok(())
}

/// Rewrites the JUnit file with the tests finished so far, in the selection's order.
fn write_junit(path: &Path, slots: &[Option<TestResult>]) -> std::io::Result<()> {
    report::write_junit(path, slots.iter().flatten())
}

/// Runs `tests` in groups (each with its backend; `idx` are indices into `tests`),
/// rewriting the JUnit file (`opts.junit`) as each test ends. Results in `tests`' order.
pub fn run_groups(
    tests: &[TestConfig],
    groups: &[(&dyn Backend, Vec<usize>)],
    images: &dyn ImageProvider,
    settings: &Settings,
    progress: &Progress,
    opts: &RunOptions,
) -> Vec<TestResult> {
    let slots: Mutex<Vec<Option<TestResult>>> = Mutex::new(tests.iter().map(|_| None).collect());
    for (backend, idx) in groups {
        let ctx = RunContext {
            settings,
            backend: *backend,
            images,
            curtin_src: opts.curtin,
            progress: progress.clone(),
            console: opts.console,
        };
        let group: Vec<TestConfig> = idx.iter().map(|&i| tests[i].clone()).collect();
        runner::run_all_with(&group, &ctx, &|i, r| {
            let mut slots = slots.lock().unwrap();
            slots[idx[i]] = Some(r);
            if let Some(j) = opts.junit
                && let Err(e) = write_junit(j, &slots)
            {
                progress.say("vmtest", &format!("cannot write {}: {e}", j.display()));
            }
        });
    }
    slots.into_inner().unwrap().into_iter().flatten().collect()
}

pub fn run_tests(tests: Vec<TestConfig>, opts: &RunOptions) -> Result<Exit, CliError> {
    if tests.is_empty() {
        return Err(CliError::Usage(anyhow::anyhow!("no tests selected")));
    }
    // When nothing selected can run here, say why before making anything.
    let host = HostFacts::this_host();
    let why: Vec<String> = tests
        .iter()
        .filter_map(|t| t.not_runnable(&host).map(|w| format!("{}: {w}", t.name)))
        .collect();
    if why.len() == tests.len() {
        return Err(CliError::Usage(anyhow::anyhow!(
            "cannot run on this host:\n  {}",
            why.join("\n  ")
        )));
    }
    // A missing or wrong curtin tree is one plain error, before TOPDIR or any image.
    runner::check_installers(&tests, opts.curtin).map_err(|e| CliError::Usage(e.into()))?;
    let mut settings = Settings::from_env().map_err(|e| CliError::Usage(anyhow::anyhow!(e)))?;
    settings.derive_checks &= opts.derive_checks;
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    for w in crate::settings::unknown_curtin_vars(names) {
        eprintln!("vmtest: warning: {w}");
    }
    if let Some(x) = &settings.extra_config {
        let script: Vec<&str> = tests
            .iter()
            .filter(|t| t.installer(opts.curtin.is_some()) == InstallerKind::Script)
            .map(|t| t.name.as_str())
            .collect();
        if !script.is_empty() {
            eprintln!(
                "vmtest: warning: CURTIN_VMTEST_EXTRA_CONFIG={} is for curtin; the script installer of {} does not read it",
                x.path.display(),
                script.join(", ")
            );
        }
    }
    if let Some(j) = opts.junit {
        // A valid (empty) file from the start: a run killed before any test ends still
        // leaves one, and a path that cannot be written is refused before any VM.
        report::write_junit(j, std::iter::empty())
            .map_err(|e| CliError::Usage(anyhow::anyhow!("--junit {}: {e}", j.display())))?;
    }
    // Which backend runs each test, and every backend found, before anything is made: a
    // missing qemu stops the run at once and leaves no TOPDIR behind.
    let mut groups: Vec<(VmmChoice, Vec<usize>)> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    // Probed (a tiny VM) once, and only when a choice depends on it.
    let host = std::cell::LazyCell::new(HostKvm::detect);
    for (i, t) in tests.iter().enumerate() {
        let (c, why) = choose(opts.vmm, t, || &*host);
        reasons.push(format!("vmm {}: {why}", format!("{c:?}").to_lowercase()));
        match groups.iter_mut().find(|(g, _)| *g == c) {
            Some((_, v)) => v.push(i),
            None => groups.push((c, vec![i])),
        }
    }
    let mut backends: Vec<(Box<dyn Backend>, Vec<usize>)> = Vec::new();
    for (choice, idx) in groups {
        let backend: Box<dyn Backend> = match choice {
            VmmChoice::Builtin => Box::new(BuiltinBackend),
            _ => {
                let q = QemuBackend::detect().map_err(CliError::infrastructure)?;
                eprintln!("vmtest: qemu backend: {} ({})", q.name(), q.accel_reason);
                Box::new(q)
            }
        };
        backends.push((backend, idx));
    }
    if settings.image_sync {
        sync_images(&settings, &tests).map_err(CliError::Infrastructure)?;
    }
    // From here VMs run: SIGTERM, SIGINT or SIGHUP stop them and end the run in order.
    crate::shutdown::install().map_err(|e| CliError::Infrastructure(anyhow::anyhow!(e)))?;
    settings
        .prepare_topdir()
        .map_err(|e| CliError::Infrastructure(anyhow::anyhow!(e)))?;
    let progress = Progress::new(Some(&settings.log), false);
    eprintln!(
        "vmtest: TOPDIR {} (log {}), {} test(s), {} at a time",
        settings.topdir.display(),
        settings.log.display(),
        tests.len(),
        settings.parallel
    );
    for (t, why) in tests.iter().zip(&reasons) {
        progress.say(&t.name, why);
    }
    let images = StoreImages::of(&settings);
    let groups: Vec<(&dyn Backend, Vec<usize>)> = backends
        .iter()
        .map(|(b, idx)| (b.as_ref(), idx.clone()))
        .collect();
    let results = run_groups(&tests, &groups, &images, &settings, &progress, opts);
    print!("{}", report::summary_table(&results));
    for r in results.iter().filter(|r| r.status != runner::Status::Pass) {
        println!("--- {} ({}):", r.name, r.workdir.display());
        for e in &r.errors() {
            println!("{e}");
        }
    }
    if opts.github {
        print!("{}", github::results(&results, opts.workspace.as_deref()));
    }
    if let Some(j) = opts.junit {
        report::write_junit(j, results.iter()).map_err(|e| {
            CliError::Infrastructure(anyhow::anyhow!("cannot write {}: {e}", j.display()))
        })?;
    }
    if let Some(signal) = crate::shutdown::requested() {
        return Ok(Exit::Interrupted(signal));
    }
    Ok(Exit::of_results(&results))
}
