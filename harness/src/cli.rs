//! Subcommands of the test harness proper: list, run, console.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::VmmChoice;
use crate::backend::qemu::QemuBackend;
use crate::backend::{Backend, BuiltinBackend, Phase};
use crate::config::{HostFacts, TestConfig, discover};
use crate::runner::{self, Progress, RunContext, StoreImages, TestResult};
use crate::settings::Settings;
use crate::vmm_choice::{BootSource, HostKvm, choose};

#[derive(Debug, Subcommand)]
pub enum HarnessCommand {
    /// List the test configs found under examples/tests (or --tests-dir).
    List(ListArgs),
    /// Run tests: install → poweroff → boot → collect → verify.
    Run(RunArgs),
    /// Run one test with a phase's serial console attached to this terminal (debugging).
    Console(ConsoleArgs),
}

#[derive(Debug, Args)]
pub struct Selection {
    /// Directory holding the test configs (*.yaml).
    #[arg(long, env = "VMTEST_TESTS_DIR")]
    pub tests_dir: Option<PathBuf>,
    /// Tests to select: names, globs (basic*, *lvm*) or regexes (^basic$); all when none.
    pub tests: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// With a curtin tree, unpinned tests list curtin as their installer, as `run` would.
    #[arg(long, env = "CURTIN_SRC")]
    pub curtin: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// A curtin source tree to pack for tests with `installer: curtin`.
    #[arg(long, env = "CURTIN_SRC")]
    pub curtin: Option<PathBuf>,
    /// Write JUnit XML results here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Attach this phase's serial console (install or boot) to the terminal, for exactly
    /// one test: keystrokes go to the guest, Ctrl-A x leaves (stopping the VM), Ctrl-A h
    /// lists the keys.
    #[arg(long, value_enum)]
    pub console: Option<Phase>,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The test to run.
    pub test: String,
    /// Which phase's console to attach.
    #[arg(long, value_enum, default_value_t = Phase::Boot)]
    pub phase: Phase,
    #[arg(long, env = "VMTEST_TESTS_DIR")]
    pub tests_dir: Option<PathBuf>,
    #[arg(long, env = "CURTIN_SRC")]
    pub curtin: Option<PathBuf>,
}

/// examples/tests under the current directory, else the one next to this crate's source.
fn tests_dir(given: Option<&Path>) -> PathBuf {
    if let Some(d) = given {
        return d.to_path_buf();
    }
    let here = PathBuf::from("examples/tests");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests")
}

/// Loads every config in `dir` and picks those the patterns name (all without patterns).
/// A pattern that matches nothing is an error, so typos do not run zero tests.
pub fn select(dir: &Path, patterns: &[String]) -> anyhow::Result<Vec<TestConfig>> {
    let files = discover(dir)?;
    let mut all = Vec::new();
    let mut errors: Vec<crate::config::ConfigError> = Vec::new();
    for f in &files {
        match TestConfig::load(f) {
            Ok(t) => all.push(t),
            Err(e) => errors.push(e),
        }
    }
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let mut chosen: Vec<String> = Vec::new();
    if patterns.is_empty() {
        chosen = names.clone();
    }
    for p in patterns {
        let hits: Vec<String> = if names.contains(p) {
            vec![p.clone()]
        } else if p.contains(['*', '?', '[']) {
            let g = glob::Pattern::new(p).map_err(|e| anyhow::anyhow!("bad glob `{p}`: {e}"))?;
            names.iter().filter(|n| g.matches(n)).cloned().collect()
        } else {
            let re = regex::Regex::new(p)
                .map_err(|e| anyhow::anyhow!("`{p}` is no test name, glob or regex: {e}"))?;
            names.iter().filter(|n| re.is_match(n)).cloned().collect()
        };
        if hits.is_empty() {
            anyhow::bail!(
                "no test matches `{p}` in {} (tests: {})",
                dir.display(),
                names.join(", ")
            );
        }
        for h in hits {
            if !chosen.contains(&h) {
                chosen.push(h);
            }
        }
    }
    // A broken config fails the run only when it was selected.
    for e in errors {
        let stem = e.file.file_stem().map(|s| s.to_string_lossy().into_owned());
        if stem.is_some_and(|s| chosen.contains(&s)) {
            return Err(e.into());
        }
    }
    Ok(chosen
        .iter()
        .filter_map(|n| all.iter().find(|t| &t.name == n).cloned())
        .collect())
}

fn list(args: ListArgs) -> anyhow::Result<i32> {
    let dir = tests_dir(args.sel.tests_dir.as_deref());
    let tests = select(&dir, &args.sel.tests)?;
    let w = tests.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<w$}  {:<10}  {:<9}  {:<5}  description",
        "test", "release", "installer", "vmm"
    );
    let host = HostFacts::this_host();
    for t in &tests {
        let need = if t.needs_qemu().is_some() {
            "qemu"
        } else {
            "any"
        };
        // What cannot run here says why, where the description would be.
        let about = match t.not_runnable(&host) {
            Some(why) => format!("NOT RUNNABLE HERE: {why}"),
            None => t.vmtest.description.clone().unwrap_or_default(),
        };
        println!(
            "{:<w$}  {:<10}  {:<9}  {:<5}  {about}",
            t.name,
            t.vmtest.release,
            format!("{:?}", t.installer(args.curtin.is_some())).to_lowercase(),
            need,
        );
    }
    Ok(0)
}

fn run_tests(
    tests: Vec<TestConfig>,
    vmm: VmmChoice,
    curtin: Option<&Path>,
    console: Option<Phase>,
    junit: Option<&Path>,
) -> anyhow::Result<i32> {
    if tests.is_empty() {
        anyhow::bail!("no tests selected");
    }
    // When nothing selected can run here, say why before making anything.
    let host = HostFacts::this_host();
    let why: Vec<String> = tests
        .iter()
        .filter_map(|t| t.not_runnable(&host).map(|w| format!("{}: {w}", t.name)))
        .collect();
    if why.len() == tests.len() {
        anyhow::bail!("cannot run on this host:\n  {}", why.join("\n  "));
    }
    // A missing or wrong curtin tree is one plain error, before TOPDIR or any image.
    runner::check_installers(&tests, curtin)?;
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!(e))?;
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    for w in crate::settings::unknown_curtin_vars(names) {
        eprintln!("vmtest: warning: {w}");
    }
    if let Some(x) = &settings.extra_config {
        let script: Vec<&str> = tests
            .iter()
            .filter(|t| t.installer(curtin.is_some()) == crate::config::InstallerKind::Script)
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
    if settings.image_sync {
        // curtin's "sync": fetch the newest images first. Ours are built from Debian
        // packages (no MAAS mirror is reachable), then the store keeps IMAGES_TO_KEEP.
        let store = images::ImageStore::open(&settings.image_dir)?;
        let mut done: Vec<(String, String)> = Vec::new();
        for t in &tests {
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
    }
    settings.prepare_topdir().map_err(|e| anyhow::anyhow!(e))?;
    let progress = Progress::new(Some(&settings.log), false);
    eprintln!(
        "vmtest: TOPDIR {} (log {}), {} test(s), {} at a time",
        settings.topdir.display(),
        settings.log.display(),
        tests.len(),
        settings.parallel
    );
    let mut groups: Vec<(VmmChoice, Vec<usize>)> = Vec::new();
    // Probed (a tiny VM) once, and only when a choice depends on it.
    let host = std::cell::LazyCell::new(HostKvm::detect);
    for (i, t) in tests.iter().enumerate() {
        let (c, why) = choose(vmm, t, || &*host, BootSource::default());
        progress.say(
            &t.name,
            &format!("vmm {}: {why}", format!("{c:?}").to_lowercase()),
        );
        match groups.iter_mut().find(|(g, _)| *g == c) {
            Some((_, v)) => v.push(i),
            None => groups.push((c, vec![i])),
        }
    }
    let images = StoreImages {
        dir: settings.image_dir.clone(),
    };
    let mut results: Vec<Option<TestResult>> = tests.iter().map(|_| None).collect();
    for (choice, idx) in groups {
        let backend: Box<dyn Backend> = match choice {
            VmmChoice::Builtin => Box::new(BuiltinBackend),
            _ => {
                let q = QemuBackend::detect()?;
                eprintln!("vmtest: qemu backend: {} ({})", q.name(), q.accel_reason);
                Box::new(q)
            }
        };
        let ctx = RunContext {
            settings: &settings,
            backend: backend.as_ref(),
            images: &images,
            curtin_src: curtin,
            progress: progress.clone(),
            console,
        };
        let group: Vec<TestConfig> = idx.iter().map(|&i| tests[i].clone()).collect();
        for (i, r) in idx.into_iter().zip(runner::run_all(&group, &ctx)) {
            results[i] = Some(r);
        }
    }
    let results: Vec<TestResult> = results.into_iter().flatten().collect();
    print!("{}", crate::report::summary_table(&results));
    for r in results.iter().filter(|r| r.status != runner::Status::Pass) {
        println!("--- {} ({}):", r.name, r.workdir.display());
        for e in &r.errors() {
            println!("{e}");
        }
    }
    if let Some(j) = junit {
        std::fs::write(j, crate::report::junit_xml(&results))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", j.display()))?;
    }
    Ok(
        if results.iter().all(|r| r.status == runner::Status::Pass) {
            0
        } else {
            1
        },
    )
}

pub fn run(cmd: HarnessCommand, vmm: VmmChoice) -> anyhow::Result<i32> {
    match cmd {
        HarnessCommand::List(a) => list(a),
        HarnessCommand::Run(a) => {
            let dir = tests_dir(a.sel.tests_dir.as_deref());
            let tests = select(&dir, &a.sel.tests)?;
            // One terminal, one console: several tests (run in parallel) cannot share stdin.
            if a.console.is_some() && tests.len() != 1 {
                anyhow::bail!(
                    "--console attaches to exactly one test, but {} are selected ({}): name one",
                    tests.len(),
                    tests
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            run_tests(
                tests,
                vmm,
                a.curtin.as_deref(),
                a.console,
                a.junit.as_deref(),
            )
        }
        HarnessCommand::Console(a) => {
            let dir = tests_dir(a.tests_dir.as_deref());
            let tests = select(&dir, std::slice::from_ref(&a.test))?;
            if tests.len() != 1 {
                anyhow::bail!(
                    "`{}` selects {} tests; console attaches to exactly one",
                    a.test,
                    tests.len()
                );
            }
            run_tests(tests, vmm, a.curtin.as_deref(), Some(a.phase), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (n, t) in files {
            std::fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    const T: &str = "vmtest: {release: bookworm}\n";

    #[test]
    fn selection() {
        let d = dir_with(&[
            ("basic.yaml", T),
            ("basic_lvm.yaml", T),
            ("uefi.yaml", T),
            ("notes.txt", "x"),
        ]);
        let names = |p: &[&str]| -> Vec<String> {
            select(
                d.path(),
                &p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect()
        };
        assert_eq!(names(&[]), vec!["basic", "basic_lvm", "uefi"]);
        assert_eq!(names(&["basic"]), vec!["basic"]);
        assert_eq!(names(&["basic*"]), vec!["basic", "basic_lvm"]);
        assert_eq!(names(&["lvm$", "^u"]), vec!["basic_lvm", "uefi"]);
        let e = select(d.path(), &["nope".into()]).unwrap_err().to_string();
        assert!(e.contains("no test matches `nope`"), "{e}");
    }

    #[test]
    fn broken_config_fails_only_when_selected() {
        let d = dir_with(&[
            ("good.yaml", T),
            ("bad.yaml", "vmtest: {release: x, colour: red}\n"),
        ]);
        assert_eq!(select(d.path(), &["good".into()]).unwrap().len(), 1);
        let e = select(d.path(), &["bad".into()]).unwrap_err().to_string();
        assert!(e.contains("bad.yaml:1") && e.contains("colour"), "{e}");
    }

    /// The error stays typed up to here: a tests dir whose path holds `:` still finds
    /// the broken config it belongs to (the file name was once cut at the first `:`).
    #[test]
    fn a_broken_config_under_a_path_with_colons_is_still_reported() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("ci:run:1");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("good.yaml"), T).unwrap();
        std::fs::write(
            dir.join("bad.yaml"),
            "vmtest:\n  release: x\n  colour: red\n",
        )
        .unwrap();
        let e = select(&dir, &["bad".into()]).unwrap_err();
        let ce = e
            .downcast_ref::<crate::config::ConfigError>()
            .expect("a typed ConfigError");
        assert_eq!(ce.file, dir.join("bad.yaml"));
        assert_eq!((ce.line, ce.column), (Some(3), Some(3)));
        assert_eq!(ce.key.as_deref(), Some("vmtest.colour"));
        assert_eq!(
            select(&dir, &[])
                .unwrap_err()
                .downcast_ref::<crate::config::ConfigError>(),
            Some(ce)
        );
        assert_eq!(select(&dir, &["good".into()]).unwrap().len(), 1);
    }
}
