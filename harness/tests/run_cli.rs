//! `vmtest list` / `vmtest run` refusals that happen before any VM: broken configs and a
//! TOPDIR that is not empty.

use std::process::Command;

fn vmtest(args: &[&str], envs: &[(&str, &std::path::Path)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmtest"));
    c.args(args).env_remove("CURTIN_VMTEST_TOPDIR");
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("typo.yaml"),
        "vmtest:\n  release: bookworm\n  memroy_mib: 512\n",
    )
    .unwrap();
    let dir = d.path().to_str().unwrap();
    let (code, _, err) = vmtest(&["--vmm", "qemu", "run", "--tests-dir", dir, "typo"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("typo.yaml:3") && err.contains("memroy_mib"),
        "{err}"
    );
    std::fs::write(
        d.path().join("typo.yaml"),
        "vmtest:\n  release: bookworm\n  cpus: two\n",
    )
    .unwrap();
    let (code, _, err) = vmtest(&["list", "--tests-dir", dir, "typo"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("typo.yaml:3") && err.contains("cpus"), "{err}");
}

#[test]
fn topdir_not_empty_is_refused_and_untouched() {
    let d = tempfile::tempdir().unwrap();
    let top = d.path().join("top");
    std::fs::create_dir(&top).unwrap();
    std::fs::write(top.join("keep.txt"), "mine").unwrap();
    let (code, _, err) = vmtest(
        &["--vmm", "qemu", "run", "basic"],
        &[("CURTIN_VMTEST_TOPDIR", &top)],
    );
    assert_eq!(code, 1);
    assert!(err.contains("is not empty"), "{err}");
    let entries: Vec<_> = std::fs::read_dir(&top).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        std::fs::read_to_string(top.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn list_shows_the_examples() {
    let (code, out, err) = vmtest(
        &[
            "list",
            "--tests-dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tests"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("basic ") && out.contains("basic_lvm"), "{out}");
}

/// A test this host cannot run is listed with its reason, and `run` of it says why
/// without making TOPDIR or anything in it.
#[test]
fn what_cannot_run_here_is_listed_and_refused_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("iscsi.yaml"),
        "storage:\n  version: 1\n  config:\n    - {id: sda, type: disk, path: 'iscsi:__RFC4173__', ptable: msdos}\n",
    )
    .unwrap();
    let dir = d.path().to_str().unwrap();
    let (code, out, err) = vmtest(&["list", "--tests-dir", dir], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("NOT RUNNABLE HERE") && out.contains("iSCSI"),
        "{out}"
    );
    let top = d.path().join("top");
    let (code, _, err) = vmtest(
        &["--vmm", "qemu", "run", "--tests-dir", dir, "iscsi"],
        &[("CURTIN_VMTEST_TOPDIR", &top)],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot run on this host") && err.contains("iSCSI"),
        "{err}"
    );
    assert!(!top.exists(), "nothing is made for a test that cannot run");
}

/// A file named `...yaml` gives the test name `..`: refused before anything touches
/// disk, and the directory above TOPDIR keeps its files.
#[test]
fn a_test_named_dot_dot_is_refused_before_anything_touches_disk() {
    let d = tempfile::tempdir().unwrap();
    let tests = d.path().join("tests");
    std::fs::create_dir(&tests).unwrap();
    std::fs::write(tests.join("...yaml"), "showtrace: true\n").unwrap();
    std::fs::write(d.path().join("precious"), "x").unwrap();
    let top = d.path().join("top");
    let (code, _, err) = vmtest(
        &[
            "--vmm",
            "qemu",
            "run",
            "--tests-dir",
            tests.to_str().unwrap(),
        ],
        &[("CURTIN_VMTEST_TOPDIR", &top)],
    );
    assert_ne!(code, 0);
    assert!(err.contains("`..` is not a usable test name"), "{err}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("precious")).unwrap(),
        "x"
    );
    assert!(!top.exists());
}
