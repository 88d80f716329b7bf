//! `vmtest list` / `vmtest run` as CI sees them, without VMs: refusals before any VM
//! (broken configs, a TOPDIR that is not empty), an exit code per kind of outcome (0
//! passed, 1 failed, 2 usage or config, 3 infrastructure), GitHub annotations,
//! `--partition` and `list --format json`, the environment in `--help`, JUnit merging.
//! Passing and failing tests come from re-verifying kept data
//! (CURTIN_VMTEST_REUSE_TOPDIR).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn vmtest(args: &[&str], envs: &[(&str, impl AsRef<OsStr>)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmtest"));
    c.args(args);
    for k in [
        "CURTIN_VMTEST_TOPDIR",
        "CURTIN_VMTEST_REUSE_TOPDIR",
        "GITHUB_ACTIONS",
        "GITHUB_WORKSPACE",
        "CURTIN_SRC",
        "VMTEST_TESTS_DIR",
    ] {
        c.env_remove(k);
    }
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
    let (code, _, err) = vmtest(
        &["--vmm", "qemu", "run", "--tests-dir", dir, "typo"],
        NO_ENV,
    );
    assert_eq!(code, 2, "a config error is a usage error");
    assert!(
        err.contains("typo.yaml:3") && err.contains("memroy_mib"),
        "{err}"
    );
    std::fs::write(
        d.path().join("typo.yaml"),
        "vmtest:\n  release: bookworm\n  cpus: two\n",
    )
    .unwrap();
    let (code, _, err) = vmtest(&["list", "--tests-dir", dir, "typo"], NO_ENV);
    assert_eq!(code, 2, "a config error is a usage error");
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
    assert_eq!(code, 3, "TOPDIR refused is infrastructure");
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
        NO_ENV,
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
    let (code, out, err) = vmtest(&["list", "--tests-dir", dir], NO_ENV);
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

const NO_ENV: &[(&str, &str)] = &[];

const CONFIG: &str = "vmtest:
  release: bookworm
  derive_checks: false
  expect:
    - file_exists: [fstab]
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: msdos, serial: disk-a}
";

/// A tests dir with `pass` and `fail` and a TOPDIR holding their kept collect/: `pass`
/// has the fstab its check wants, `fail` has not.
fn kept_run(d: &Path) -> (String, String) {
    let tests = d.join("tests");
    let top = d.join("top");
    std::fs::create_dir_all(&tests).unwrap();
    for t in ["pass", "fail"] {
        std::fs::write(tests.join(format!("{t}.yaml")), CONFIG).unwrap();
        std::fs::create_dir_all(top.join(t).join("collect")).unwrap();
        std::fs::create_dir_all(top.join(t).join("logs")).unwrap();
    }
    std::fs::write(
        top.join("pass/collect/fstab"),
        "UUID=1 / ext4 defaults 0 1\n",
    )
    .unwrap();
    std::fs::write(
        top.join("fail/logs/boot-serial.log"),
        "booted\n::warning::from the guest\ncollect done\n",
    )
    .unwrap();
    (tests.display().to_string(), top.display().to_string())
}

fn reuse_env(top: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CURTIN_VMTEST_TOPDIR", top.to_string()),
        ("CURTIN_VMTEST_REUSE_TOPDIR", "1".to_string()),
        // `--vmm qemu` looks qemu up; re-verifying starts no VM.
        ("VMTEST_QEMU", "true".to_string()),
    ]
}

fn run(args: &[&str], envs: &[(&'static str, String)]) -> (i32, String, String) {
    vmtest(args, envs)
}

#[test]
fn exit_code_0_when_all_pass_and_1_when_a_test_fails() {
    let d = tempfile::tempdir().unwrap();
    let (tests, top) = kept_run(d.path());
    let junit = d.path().join("out/j.xml");
    std::fs::create_dir_all(junit.parent().unwrap()).unwrap();
    let j = junit.to_str().unwrap();
    let (code, out, err) = run(
        &[
            "--vmm",
            "qemu",
            "run",
            "--tests-dir",
            &tests,
            "pass",
            "--junit",
            j,
        ],
        &reuse_env(&top),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("name=\"pass / file_exists fstab\""), "{x}");
    let (code, out, err) = run(
        &["--vmm", "qemu", "run", "--tests-dir", &tests, "--junit", j],
        &reuse_env(&top),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    assert!(
        !out.contains("::error"),
        "no annotations outside GitHub: {out}"
    );
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("tests=\"4\" failures=\"1\" errors=\"0\""), "{x}");
    // Only the JUnit file itself is left in its directory (no temporary files).
    let names: Vec<String> = std::fs::read_dir(junit.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["j.xml"]);
}

#[test]
fn exit_code_2_for_usage_and_config_errors() {
    let d = tempfile::tempdir().unwrap();
    let (tests, top) = kept_run(d.path());
    let env = reuse_env(&top);
    for args in [
        vec!["run", "--tests-dir", &tests, "nomatch"],
        vec!["run", "--tests-dir", &tests, "--partition", "3/2"],
        vec!["list", "--tests-dir", &tests, "--durations", "x.xml"],
        vec!["run", "--tests-dir", &tests, "--bogus"],
        vec!["list", "--tests-dir", "/nonexistent/tests"],
    ] {
        let (code, out, err) = run(&args, &env);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
    }
    // A bad environment value is a usage error too.
    let mut env = reuse_env(&top);
    env.push(("CURTIN_VMTEST_VMRAM", "lots".into()));
    let (code, _, err) = run(&["--vmm", "qemu", "run", "--tests-dir", &tests], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("CURTIN_VMTEST_VMRAM"), "{err}");
}

#[test]
fn exit_code_3_when_qemu_is_missing() {
    let d = tempfile::tempdir().unwrap();
    let (tests, top) = kept_run(d.path());
    let mut env = reuse_env(&top);
    env.retain(|(k, _)| *k != "VMTEST_QEMU");
    env.push(("VMTEST_QEMU", "/nonexistent/qemu-system-x86_64".into()));
    let (code, out, err) = run(&["--vmm", "qemu", "run", "--tests-dir", &tests], &env);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("not found or not runnable"), "{err}");
    // Nothing was made for a run that could not start.
    let fresh = d.path().join("fresh-top");
    let env: Vec<(&str, String)> = vec![
        ("CURTIN_VMTEST_TOPDIR", fresh.display().to_string()),
        ("VMTEST_QEMU", "/nonexistent/qemu-system-x86_64".into()),
    ];
    let (code, _, err) = run(
        &["--vmm", "qemu", "run", "--tests-dir", &tests, "pass"],
        &env,
    );
    assert_eq!(code, 3, "{err}");
    assert!(!fresh.exists(), "no TOPDIR left behind");
}

/// The exact lines GitHub gets for a broken config: an annotation on its file (relative
/// to the workspace), line and column, with the key path and the message.
#[test]
fn github_annotation_for_a_broken_config() {
    let d = tempfile::tempdir().unwrap();
    let tests = d.path().join("examples");
    std::fs::create_dir(&tests).unwrap();
    std::fs::write(
        tests.join("typo.yaml"),
        "vmtest:\n  release: bookworm\n  memroy_mib: 512\n",
    )
    .unwrap();
    let t = tests.to_str().unwrap();
    let ws = d.path().to_str().unwrap();
    for args in [
        vec!["list", "--tests-dir", t, "typo"],
        vec!["--vmm", "qemu", "run", "--tests-dir", t, "typo"],
    ] {
        let (code, out, err) = vmtest(
            &args,
            &[("GITHUB_ACTIONS", "true"), ("GITHUB_WORKSPACE", ws)],
        );
        assert_eq!(code, 2, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(
            lines[0].starts_with(
                "::error file=examples/typo.yaml,line=3,col=3,title=vmtest config::vmtest.memroy_mib: unknown key `memroy_mib`"
            ),
            "{out}"
        );
        assert!(err.contains("typo.yaml:3"), "{err}");
    }
    // Outside GitHub Actions: no workflow commands.
    let (code, out, _) = vmtest(&["list", "--tests-dir", t, "typo"], NO_ENV);
    assert_eq!((code, out.as_str()), (2, ""));
}

/// A failed check under GitHub Actions: an annotation on the test's config, at the line
/// of the `expect:` item that made the check, naming the check, and the serial tail in a group (a guest's `::` line cannot issue a command).
#[test]
fn github_annotation_for_a_failed_check_and_its_serial_tail() {
    let d = tempfile::tempdir().unwrap();
    let (tests, top) = kept_run(d.path());
    let mut env = reuse_env(&top);
    env.push(("GITHUB_ACTIONS", "true".into()));
    env.push(("GITHUB_WORKSPACE", d.path().display().to_string()));
    let (code, out, err) = run(&["--vmm", "qemu", "run", "--tests-dir", &tests], &env);
    assert_eq!(code, 1, "{out}{err}");
    let from = out.find("::error").expect("an annotation");
    let gh: Vec<&str> = out[from..].lines().collect();
    assert_eq!(
        gh,
        vec![
            "::error file=tests/fail.yaml,line=5,title=fail / file_exists fstab::file_exists: missing fstab",
            "::group::fail: serial log",
            "boot serial log tail:",
            "booted",
            " ::warning::from the guest",
            "collect done",
            "::endgroup::",
        ],
        "{out}"
    );
}

#[test]
fn list_partitions_and_json_for_a_ci_matrix() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for n in ["a", "b", "c", "d", "e"] {
        std::fs::write(dir.join(format!("{n}.yaml")), CONFIG).unwrap();
    }
    let t = dir.to_str().unwrap();
    let mut all = Vec::new();
    for k in 1..=2 {
        let p = format!("{k}/2");
        let (code, out, err) = vmtest(
            &[
                "list",
                "--tests-dir",
                t,
                "--partition",
                &p,
                "--format",
                "json",
            ],
            NO_ENV,
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for item in v.as_array().unwrap() {
            assert_eq!(item["release"], "bookworm");
            assert_eq!(item["installer"], "script");
            all.push(item["name"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(all, vec!["a", "c", "e", "b", "d"]);
    // Balanced by a previous run's durations: `a` took as long as the rest together.
    let j = dir.join("prev.xml");
    std::fs::write(
        &j,
        r#"<testsuites><testsuite name="vmtest" tests="5">
<testcase classname="vmtest.qemu-tcg" name="a" time="400"/>
<testcase classname="vmtest.qemu-tcg" name="b" time="100"/>
<testcase classname="vmtest.qemu-tcg" name="c" time="100"/>
<testcase classname="vmtest.qemu-tcg" name="d" time="100"/>
<testcase classname="vmtest.qemu-tcg" name="e" time="100"/>
</testsuite></testsuites>"#,
    )
    .unwrap();
    let js = j.to_str().unwrap();
    let (_, one, _) = vmtest(
        &[
            "list",
            "--tests-dir",
            t,
            "--partition",
            "1/2",
            "--durations",
            js,
        ],
        NO_ENV,
    );
    let (_, two, _) = vmtest(
        &[
            "list",
            "--tests-dir",
            t,
            "--partition",
            "2/2",
            "--durations",
            js,
        ],
        NO_ENV,
    );
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&one), vec!["a"]);
    assert_eq!(names(&two), vec!["b", "c", "d", "e"]);
}

/// Every environment variable the harness's source reads is in `vmtest run --help`.
#[test]
fn every_environment_variable_is_in_run_help() {
    let (code, help, _) = vmtest(&["run", "--help"], NO_ENV);
    assert_eq!(code, 0);
    let re = regex::Regex::new(
        r#"(?:env::var(?:_os)?\(|get\(|env = |try_from_env\(|env_bool\()"([A-Za-z][A-Za-z0-9_]*)""#,
    )
    .unwrap();
    let mut missing = Vec::new();
    let mut seen = 0;
    for dir in ["src", "../images/src"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut stack = vec![root];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for c in re.captures_iter(&text) {
                let name = &c[1];
                // Keys of YAML and JSON documents read with `get("...")` are lowercase;
                // environment variables are upper case (and curtin's `apt_proxy`).
                let is_env = name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                    || name == "apt_proxy";
                // PATH is handed to the image builder's tools, not a setting.
                if !is_env || name == "PATH" || name == "SOURCE_DATE_EPOCH" {
                    continue;
                }
                seen += 1;
                if !help.contains(name) {
                    missing.push(format!("{name} ({})", p.display()));
                }
            }
        }
    }
    assert!(seen > 15, "found only {seen} reads");
    assert!(
        missing.is_empty(),
        "not in `vmtest run --help`: {missing:?}"
    );
}

#[test]
fn junit_merge_of_partition_files() {
    let d = tempfile::tempdir().unwrap();
    let (tests, top) = kept_run(d.path());
    let mut files = Vec::new();
    for k in 1..=2 {
        let j = d.path().join(format!("vmtest-{k}.xml"));
        let p = format!("{k}/2");
        let (code, _, err) = run(
            &[
                "--vmm",
                "qemu",
                "run",
                "--tests-dir",
                &tests,
                "--partition",
                &p,
                "--junit",
                j.to_str().unwrap(),
            ],
            &reuse_env(&top),
        );
        assert!(code == 0 || code == 1, "{err}");
        files.push(j.display().to_string());
    }
    let all = d.path().join("all.xml");
    let (code, _, err) = vmtest(
        &[
            "junit-merge",
            "-o",
            all.to_str().unwrap(),
            &files[0],
            &files[1],
        ],
        NO_ENV,
    );
    assert_eq!(code, 0, "{err}");
    let x = std::fs::read_to_string(&all).unwrap();
    assert!(x.contains("tests=\"4\" failures=\"1\" errors=\"0\""), "{x}");
    assert!(
        x.contains("name=\"pass\"") && x.contains("name=\"fail / file_exists fstab\""),
        "{x}"
    );
}
