//! examples/tests-curtin: the configs only curtin installs (`make vmtest-ci-curtin`, `make
//! vmtest-curtin`). Each loads, pins curtin as its installer (so a run without a curtin tree
//! names them instead of handing them to the script installer), and every test the
//! Makefile's CI selection names is one of them or one of curtin's own configs.

use std::path::Path;

use harness::config::{InstallerKind, TestConfig, discover};

#[path = "support/curtin_tree.rs"]
mod support;
use support::curtin_tree;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests-curtin")
}

#[test]
fn every_curtin_example_loads_and_pins_curtin() {
    let files = discover(&dir()).unwrap();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let t = TestConfig::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.vmtest.installer_pinned, "{}", f.display());
        assert_eq!(t.installer(false), InstallerKind::Curtin, "{}", f.display());
        assert!(
            !t.vmtest.expect.is_empty() || !harness::checks::derive(&t).is_empty(),
            "{}: no checks",
            f.display()
        );
    }
}

/// The CI selection: names in examples/tests-curtin and curtin's own configs by path
/// (`$(CURTIN_EXAMPLES)/NAME.yaml`), each of which exists and loads; at least two are
/// curtin's own, run unchanged (issue 9's end-to-end), and no name is there twice.
#[test]
fn the_ci_selection_names_existing_configs() {
    let makefile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Makefile")).unwrap();
    let line = makefile
        .lines()
        .find(|l| l.starts_with("CURTIN_CI_TESTS ?="))
        .expect("CURTIN_CI_TESTS in the Makefile");
    let entries: Vec<&str> = line["CURTIN_CI_TESTS ?=".len()..]
        .split_whitespace()
        .collect();
    assert!(!entries.is_empty());
    let mut names = Vec::new();
    let mut curtins_own = 0;
    for e in entries {
        let file = match e.strip_prefix("$(CURTIN_EXAMPLES)/") {
            Some(f) => {
                curtins_own += 1;
                curtin_tree().join("examples/tests").join(f)
            }
            None => {
                assert!(
                    !e.contains(['/', '$']),
                    "CURTIN_CI_TESTS: unexpected entry {e}"
                );
                dir().join(format!("{e}.yaml"))
            }
        };
        assert!(
            file.is_file(),
            "CURTIN_CI_TESTS names {e}, which is not a file ({})",
            file.display()
        );
        let t = TestConfig::load(&file).unwrap_or_else(|err| panic!("{err}"));
        assert!(
            !harness::checks::derive(&t).is_empty(),
            "{e}: no derived checks"
        );
        assert!(!names.contains(&t.name), "{} is selected twice", t.name);
        names.push(t.name);
    }
    assert!(
        curtins_own >= 2,
        "at least two of curtin's own configs run unchanged in CI"
    );
}
