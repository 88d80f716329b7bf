//! Subcommands of the test harness proper: list, run, console, junit-merge; their
//! arguments, the test selection (patterns, then `--partition`) and the dispatch. The
//! commands themselves are in `cmd_list` and `cmd_run`; how they end is `exit`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::VmmChoice;
use crate::backend::Phase;
use crate::cmd_list::{self, ListFormat};
use crate::cmd_run::{RunOptions, run_tests};
use crate::config::{TestConfig, discover};
use crate::env_help::ENV_HELP;
use crate::exit::{CliError, Exit};
use crate::partition::{self, Durations, Partition, durations_from_junit};
use crate::report::{self, github};

#[derive(Debug, Subcommand)]
pub enum HarnessCommand {
    /// List the test configs found under examples/tests (or --tests-dir).
    List(ListArgs),
    /// Run tests: install → poweroff → boot → collect → verify.
    #[command(after_help = ENV_HELP)]
    Run(RunArgs),
    /// Run one test with a phase's serial console attached to this terminal (debugging).
    #[command(after_help = ENV_HELP)]
    Console(ConsoleArgs),
    /// Merge JUnit files (one per partition) into one.
    JunitMerge(JunitMergeArgs),
    /// Show what running one test would do, without booting anything: its disks and NICs,
    /// the installer, the backend --vmm chooses and why, and every check.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The test to show.
    pub test: String,
    #[arg(long, env = "VMTEST_TESTS_DIR")]
    pub tests_dir: Option<PathBuf>,
    /// With a curtin tree, an unpinned test shows curtin as its installer, as `run` would.
    #[arg(long, env = "CURTIN_SRC")]
    pub curtin: Option<PathBuf>,
    /// Show the checks as `run --no-derive-checks` would make them.
    #[arg(long)]
    pub no_derive_checks: bool,
}

#[derive(Debug, Args)]
pub struct Selection {
    /// Directory holding the test configs (*.yaml).
    #[arg(long, env = "VMTEST_TESTS_DIR")]
    pub tests_dir: Option<PathBuf>,
    /// Tests to select: names, globs (basic*, *lvm*) or regexes (^basic$); all when none.
    pub tests: Vec<String>,
    /// Keep only the K-th of N parts of the selection (1-based), for a CI matrix: every
    /// test lands in exactly one part, the same on every machine.
    #[arg(long, value_name = "K/N")]
    pub partition: Option<Partition>,
    /// A JUnit file of an earlier run (repeatable, e.g. one per partition): parts are
    /// balanced by its test durations instead of by count.
    #[arg(long, value_name = "FILE", requires = "partition")]
    pub durations: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JunitMergeArgs {
    /// The merged file (written atomically).
    #[arg(long, short)]
    pub output: PathBuf,
    /// The JUnit files to merge.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// With a curtin tree, unpinned tests list curtin as their installer, as `run` would.
    #[arg(long, env = "CURTIN_SRC")]
    pub curtin: Option<PathBuf>,
    /// `table` for people, `json` (an array of objects) for a CI matrix.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// A curtin source tree to pack for tests with `installer: curtin`.
    #[arg(long, env = "CURTIN_SRC")]
    pub curtin: Option<PathBuf>,
    /// Write JUnit XML results here: rewritten after every test (atomically), so a run
    /// killed midway leaves a valid file holding the tests that finished.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Attach this phase's serial console (install or boot) to the terminal, for exactly
    /// one test: keystrokes go to the guest, Ctrl-A x leaves (stopping the VM), Ctrl-A h
    /// lists the keys.
    #[arg(long, value_enum)]
    pub console: Option<Phase>,
    /// Check only the tests' own `expect:` lists, not what their storage and network
    /// configs imply (VMTEST_DERIVE_CHECKS=0).
    #[arg(long)]
    pub no_derive_checks: bool,
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

/// The patterns' tests, then the partition's share of them.
fn select_part(sel: &Selection) -> Result<Vec<TestConfig>, CliError> {
    let dir = tests_dir(sel.tests_dir.as_deref());
    let tests = select(&dir, &sel.tests).map_err(CliError::usage)?;
    let Some(p) = sel.partition else {
        return Ok(tests);
    };
    let mut durations = Durations::new();
    for f in &sel.durations {
        durations_from_junit(f, &mut durations)
            .map_err(|e| CliError::Usage(anyhow::anyhow!("--durations {e}")))?;
    }
    Ok(partition::keep(tests, |t| &t.name, p, &durations))
}

fn junit_merge(a: &JunitMergeArgs) -> Result<Exit, CliError> {
    let mut docs = Vec::new();
    for f in &a.files {
        docs.push(
            std::fs::read_to_string(f)
                .map_err(|e| CliError::Usage(anyhow::anyhow!("{}: {e}", f.display())))?,
        );
    }
    let merged = report::merge_junit(&docs).map_err(|e| CliError::Usage(anyhow::anyhow!(e)))?;
    let dir = match a.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, merged.as_bytes())?;
        tmp.persist(&a.output).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| CliError::Usage(anyhow::anyhow!("{}: {e}", a.output.display())))?;
    Ok(Exit::Passed)
}

/// Runs a harness command to its exit code.
pub fn run(cmd: HarnessCommand, vmm: VmmChoice) -> Result<Exit, CliError> {
    fn opts<'a>(
        vmm: VmmChoice,
        curtin: Option<&'a Path>,
        console: Option<Phase>,
        junit: Option<&'a Path>,
    ) -> RunOptions<'a> {
        RunOptions {
            vmm,
            curtin,
            console,
            junit,
            derive_checks: true,
            github: github::enabled(std::env::var("GITHUB_ACTIONS").ok().as_deref()),
            workspace: std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from),
        }
    }
    match cmd {
        HarnessCommand::List(a) => {
            let tests = select_part(&a.sel)?;
            print!("{}", cmd_list::render(&tests, a.curtin.is_some(), a.format));
            Ok(Exit::Passed)
        }
        HarnessCommand::Run(a) => {
            let tests = select_part(&a.sel)?;
            // One terminal, one console: several tests (run in parallel) cannot share stdin.
            if a.console.is_some() && tests.len() != 1 {
                return Err(CliError::Usage(anyhow::anyhow!(
                    "--console attaches to exactly one test, but {} are selected ({}): name one",
                    tests.len(),
                    tests
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let mut o = opts(vmm, a.curtin.as_deref(), a.console, a.junit.as_deref());
            o.derive_checks = !a.no_derive_checks;
            run_tests(tests, &o)
        }
        HarnessCommand::Console(a) => {
            let dir = tests_dir(a.tests_dir.as_deref());
            let tests = select(&dir, std::slice::from_ref(&a.test)).map_err(CliError::usage)?;
            if tests.len() != 1 {
                return Err(CliError::Usage(anyhow::anyhow!(
                    "`{}` selects {} tests; console attaches to exactly one",
                    a.test,
                    tests.len()
                )));
            }
            run_tests(tests, &opts(vmm, a.curtin.as_deref(), Some(a.phase), None))
        }
        HarnessCommand::JunitMerge(a) => junit_merge(&a),
        HarnessCommand::Show(a) => {
            let dir = tests_dir(a.tests_dir.as_deref());
            let tests = select(&dir, std::slice::from_ref(&a.test)).map_err(CliError::usage)?;
            let [test] = tests.as_slice() else {
                return Err(CliError::Usage(anyhow::anyhow!(
                    "`{}` selects {} tests; show takes exactly one",
                    a.test,
                    tests.len()
                )));
            };
            // The host is probed (a tiny guest, no test VM) only when the choice depends on it.
            let host = std::cell::LazyCell::new(crate::vmm_choice::HostKvm::detect);
            let backend = crate::vmm_choice::choose(vmm, test, || &*host, Default::default());
            let derive_on = crate::checks::derivation_on(
                test,
                !a.no_derive_checks
                    && crate::settings::env_bool(
                        std::env::var("VMTEST_DERIVE_CHECKS").ok().as_deref(),
                        true,
                    ),
            );
            print!(
                "{}",
                crate::cmd_show::render(test, a.curtin.as_deref(), backend, derive_on)
            );
            Ok(Exit::Passed)
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
