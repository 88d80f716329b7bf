//! Subcommands of the test harness proper: list, run, console, junit-merge; their
//! arguments, the test selection (patterns, then `--partition`) and the dispatch. The
//! commands themselves are in `cmd_list` and `cmd_run`; how they end is `exit`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::VmmChoice;
use crate::backend::Phase;
use crate::cmd_list::{self, ListFormat};
use crate::cmd_run::{RunOptions, run_tests};
use crate::config::{ConfReplace, TestConfig, discover};
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
    /// As `run --conf-replace`: a placeholder's value, applied to the config's text.
    #[arg(long, value_name = "__KEY__=VALUE")]
    pub conf_replace: Vec<ConfReplace>,
}

#[derive(Debug, Args)]
pub struct Selection {
    /// Directory holding the test configs (*.yaml).
    #[arg(long, env = "VMTEST_TESTS_DIR")]
    pub tests_dir: Option<PathBuf>,
    /// Tests to select: names, globs (basic*, *lvm*) or regexes (^basic$) in the tests
    /// directory, or config files by path (DIR/NAME.yaml), run in the order given; all
    /// of the tests directory when none.
    pub tests: Vec<String>,
    /// Keep only the K-th of N parts of the selection (1-based), for a CI matrix: every
    /// test lands in exactly one part, the same on every machine.
    #[arg(long, value_name = "K/N")]
    pub partition: Option<Partition>,
    /// A JUnit file of an earlier run (repeatable, e.g. one per partition): parts are
    /// balanced by its test durations instead of by count.
    #[arg(long, value_name = "FILE", requires = "partition")]
    pub durations: Vec<PathBuf>,
    /// Replace a placeholder in every selected config's text before it is read, as curtin's
    /// vmtest does per test class (repeatable): curtin's lvmroot.yaml and uefi_lvmroot.yaml
    /// need `__ROOTFS_FORMAT__` (and `__BOOTFS_FORMAT__`), ext4 or xfs.
    #[arg(long, value_name = "__KEY__=VALUE")]
    pub conf_replace: Vec<ConfReplace>,
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

/// A pattern that names a config file rather than a test in the tests directory: it
/// ends in `.yaml` or `.yml` (a test name never does: names are file stems).
fn config_file(pattern: &str) -> Option<&Path> {
    let p = Path::new(pattern);
    p.extension()
        .is_some_and(|x| x == "yaml" || x == "yml")
        .then_some(p)
}

/// The tests the patterns pick, in pattern order: a pattern ending in `.yaml`/`.yml` is a
/// config file, loaded as it is from wherever it is (so one run can mix `examples/tests-curtin`
/// with curtin's own `examples/tests/*.yaml`); any other is a name, glob or regex over the
/// configs in `dir` (all of them without patterns). A pattern that matches nothing is an
/// error, so typos do not run zero tests; so are two selected tests of one name, whose
/// results would overwrite each other.
pub fn select(dir: &Path, patterns: &[String]) -> anyhow::Result<Vec<TestConfig>> {
    select_with(dir, patterns, &[])
}

/// [`select`], each config's text with `replace` applied first (`--conf-replace`).
pub fn select_with(
    dir: &Path,
    patterns: &[String],
    replace: &[ConfReplace],
) -> anyhow::Result<Vec<TestConfig>> {
    let needs_dir = patterns.is_empty() || patterns.iter().any(|p| config_file(p).is_none());
    let in_dir = if needs_dir {
        InDir::load(dir, replace)?
    } else {
        InDir::default()
    };
    let mut chosen: Vec<TestConfig> = Vec::new();
    let push = |t: TestConfig, chosen: &mut Vec<TestConfig>| -> anyhow::Result<()> {
        match chosen.iter().find(|c| c.name == t.name) {
            Some(c) if c.file == t.file => Ok(()),
            Some(c) => anyhow::bail!(
                "{} and {} are both the test `{}`: select one (their results would overwrite each other)",
                c.file.display(),
                t.file.display(),
                t.name
            ),
            None => {
                chosen.push(t);
                Ok(())
            }
        }
    };
    if patterns.is_empty() {
        for n in in_dir.names.clone() {
            push(in_dir.get(&n)?, &mut chosen)?;
        }
    }
    for p in patterns {
        if let Some(file) = config_file(p) {
            push(TestConfig::load_with(file, replace)?, &mut chosen)?;
            continue;
        }
        for n in in_dir.matching(dir, p)? {
            push(in_dir.get(&n)?, &mut chosen)?;
        }
    }
    Ok(chosen)
}

/// The configs of a tests directory: those that load, and the errors of those that do
/// not (a broken config fails the run only when it is selected).
#[derive(Default)]
struct InDir {
    names: Vec<String>,
    loaded: Vec<TestConfig>,
    errors: Vec<crate::config::ConfigError>,
}

impl InDir {
    fn load(dir: &Path, replace: &[ConfReplace]) -> anyhow::Result<InDir> {
        let files = discover(dir)?;
        let mut d = InDir::default();
        for f in &files {
            match TestConfig::load_with(f, replace) {
                Ok(t) => d.loaded.push(t),
                Err(e) => d.errors.push(e),
            }
        }
        d.names = files
            .iter()
            .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        Ok(d)
    }

    /// The test names a name, glob or regex picks.
    fn matching(&self, dir: &Path, p: &str) -> anyhow::Result<Vec<String>> {
        let names = &self.names;
        let hits: Vec<String> = if names.iter().any(|n| n == p) {
            vec![p.to_string()]
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
        Ok(hits)
    }

    /// The selected test `name`, or the error of its broken config.
    fn get(&self, name: &str) -> anyhow::Result<TestConfig> {
        if let Some(t) = self.loaded.iter().find(|t| t.name == name) {
            return Ok(t.clone());
        }
        match self.errors.iter().find(|e| {
            e.file
                .file_stem()
                .is_some_and(|s| s.to_string_lossy() == name)
        }) {
            Some(e) => Err(e.clone().into()),
            None => anyhow::bail!("test `{name}` vanished while it was being selected"),
        }
    }
}

/// The patterns' tests, then the partition's share of them.
fn select_part(sel: &Selection) -> Result<Vec<TestConfig>, CliError> {
    let dir = tests_dir(sel.tests_dir.as_deref());
    let tests = select_with(&dir, &sel.tests, &sel.conf_replace).map_err(CliError::usage)?;
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
            let tests = select_with(&dir, std::slice::from_ref(&a.test), &a.conf_replace)
                .map_err(CliError::usage)?;
            let [test] = tests.as_slice() else {
                return Err(CliError::Usage(anyhow::anyhow!(
                    "`{}` selects {} tests; show takes exactly one",
                    a.test,
                    tests.len()
                )));
            };
            // The host is probed (a tiny guest, no test VM) only when the choice depends on it.
            let host = std::cell::LazyCell::new(crate::vmm_choice::HostKvm::detect);
            let backend = crate::vmm_choice::choose(vmm, test, || &*host);
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

    /// Config files named by path join the selection where they are named, from any
    /// directory, as curtin's own examples/tests beside this project's in one CI run.
    #[test]
    fn config_files_by_path_mix_with_names_in_order() {
        let d = dir_with(&[("basic.yaml", T), ("uefi.yaml", T)]);
        let other = dir_with(&[("raid5boot.yaml", "storage: {version: 1, config: []}\n")]);
        let other_file = other.path().join("raid5boot.yaml");
        let pick = |p: &[String]| -> Vec<String> {
            select(d.path(), p)
                .unwrap()
                .into_iter()
                .map(|t| t.name)
                .collect()
        };
        let f = other_file.display().to_string();
        assert_eq!(
            pick(&["uefi".into(), f.clone(), "basic".into()]),
            vec!["uefi", "raid5boot", "basic"]
        );
        // Only files: the tests directory need not exist.
        assert_eq!(
            select(&d.path().join("absent"), std::slice::from_ref(&f))
                .unwrap()
                .iter()
                .map(|t| t.file.clone())
                .collect::<Vec<_>>(),
            vec![other_file.clone()]
        );
        // The same file twice is one test.
        assert_eq!(pick(&[f.clone(), f.clone()]), vec!["raid5boot"]);
        // A missing file names itself.
        let e = select(d.path(), &["no/such.yaml".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no/such.yaml") && e.contains("cannot read"),
            "{e}"
        );
    }

    /// Two selected tests of one name would share a data directory and a JUnit name.
    #[test]
    fn two_selected_tests_of_one_name_are_refused() {
        let d = dir_with(&[("uefi_basic.yaml", T)]);
        let other = dir_with(&[("uefi_basic.yaml", T)]);
        let f = other.path().join("uefi_basic.yaml").display().to_string();
        let e = select(d.path(), &["uefi_basic".into(), f.clone()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("are both the test `uefi_basic`") && e.contains(&f),
            "{e}"
        );
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
