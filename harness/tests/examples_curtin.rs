//! examples/tests-curtin: the configs only curtin installs (`make vmtest-ci-curtin`, `make
//! vmtest-curtin`). Each loads, pins curtin as its installer (so a run without a curtin tree
//! names them instead of handing them to the script installer), and every test the
//! Makefile's CI selection names is one of them.

use std::path::Path;

use harness::config::{InstallerKind, TestConfig, discover};

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
        assert!(!t.vmtest.expect.is_empty(), "{}: no checks", f.display());
    }
}

#[test]
fn the_ci_selection_names_existing_configs() {
    let makefile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Makefile")).unwrap();
    let line = makefile
        .lines()
        .find(|l| l.starts_with("CURTIN_CI_TESTS ?="))
        .expect("CURTIN_CI_TESTS in the Makefile");
    let names: Vec<&str> = line["CURTIN_CI_TESTS ?=".len()..]
        .split_whitespace()
        .collect();
    assert!(!names.is_empty());
    for n in names {
        assert!(
            dir().join(format!("{n}.yaml")).is_file(),
            "CURTIN_CI_TESTS names {n}, which examples/tests-curtin does not have"
        );
    }
}
