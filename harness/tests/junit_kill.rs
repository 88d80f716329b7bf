//! A run killed midway (SIGKILL, as a CI timeout does) leaves a valid JUnit file holding
//! the tests that finished: the file is rewritten, atomically, after every test.
//!
//! The run is this test binary again, in a child process (the environment variable below
//! says so), driving the same code as `vmtest run` (`cmd_run::run_groups`) with a fake
//! backend: the first test passes at once, the second hangs in its install phase until
//! the parent kills the child.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::backend::{
    Backend, BackendError, FakeBackend, Outcome, Phase, PhaseResult, PhaseSpec,
};
use harness::cmd_run::{RunOptions, run_groups};
use harness::config::TestConfig;
use harness::runner::Progress;
use harness::settings::Settings;

mod fake;
use fake::{TEST, good_tar, write_output_disk};

const CHILD: &str = "VMTEST_JUNIT_KILL_CHILD";

fn guest(spec: &PhaseSpec) -> Result<PhaseResult, BackendError> {
    let hang = spec.serial_log.to_string_lossy().contains("/second/");
    if spec.phase == Phase::Install {
        if hang {
            std::fs::write(&spec.serial_log, "installing for ever\n")?;
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        std::fs::write(&spec.serial_log, "curtin: Installation finished.\n")?;
    } else {
        write_output_disk(spec, &good_tar());
    }
    Ok(PhaseResult {
        outcome: Outcome::PowerOff,
        wall: Duration::from_millis(1),
    })
}

/// The child: runs `first` then `second` (which never ends), JUnit to DIR/junit.xml.
fn child(dir: &Path) {
    let images = fake::fake_images(dir);
    let m: HashMap<&str, String> = [(
        "CURTIN_VMTEST_TOPDIR",
        dir.join("top").display().to_string(),
    )]
    .into();
    let settings = Settings::from_lookup(|k| m.get(k).cloned(), false).unwrap();
    settings.prepare_topdir().unwrap();
    let tests: Vec<TestConfig> = ["first", "second"]
        .iter()
        .map(|n| TestConfig::parse(n, Path::new("t.yaml"), TEST).unwrap())
        .collect();
    let backend = FakeBackend::new(guest);
    let junit = dir.join("junit.xml");
    let opts = RunOptions {
        derive_checks: true,
        vmm: harness::VmmChoice::Qemu,
        curtin: None,
        console: None,
        junit: Some(&junit),
        github: false,
        workspace: None,
    };
    let groups: Vec<(&dyn Backend, Vec<usize>)> = vec![(&backend, vec![0, 1])];
    let results = run_groups(
        &tests,
        &groups,
        &images,
        &settings,
        &Progress::new(None, true),
        &opts,
    );
    let errors: Vec<Vec<String>> = results.iter().map(|r| r.errors()).collect();
    unreachable!("the second test never ends: {errors:?}");
}

#[test]
fn a_killed_run_leaves_junit_with_the_finished_tests() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return child(Path::new(&dir));
    }
    let d = tempfile::tempdir().unwrap();
    let junit: PathBuf = d.path().join("junit.xml");
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_killed_run_leaves_junit_with_the_finished_tests",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, d.path())
        .spawn()
        .unwrap();
    // Wait for the first test's result, and for the second to be running.
    let start = Instant::now();
    let hanging = d.path().join("top/second/logs/install-serial.log");
    loop {
        let text = std::fs::read_to_string(&junit).unwrap_or_default();
        if text.contains("name=\"first\"") && hanging.exists() {
            break;
        }
        if let Some(status) = c.try_wait().unwrap() {
            panic!("the child ended ({status}) before it was killed");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no result for the first test: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill().unwrap(); // SIGKILL: nothing of the child runs after this
    c.wait().unwrap();
    let text = std::fs::read_to_string(&junit).unwrap();
    let cases = harness::report::junit_testcases(&text).expect("valid XML");
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["first", "first / file_exists fstab", "first / fstab /"],
        "{text}"
    );
    assert!(
        text.contains("tests=\"3\" failures=\"0\" errors=\"0\"")
            && text.trim_end().ends_with("</testsuites>"),
        "{text}"
    );
    // No temporary file left beside it but what the run itself made.
    let stray: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".vmtest-junit-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}
