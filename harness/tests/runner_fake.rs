//! The run flow and its failure paths, with a fake backend playing the guest (no VMs, so
//! these run in the default `cargo test`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::backend::{BackendError, FakeBackend, Outcome, Phase, PhaseResult, PhaseSpec};
use harness::config::TestConfig;
use harness::runner::{self, DirImages, Progress, RunContext, Status};
use harness::settings::Settings;

mod fake;
use fake::{TEST, good_tar, write_output_disk};

struct Env {
    dir: tempfile::TempDir,
    images: DirImages,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        Env {
            images: fake::fake_images(dir.path()),
            dir,
        }
    }

    fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let mut m: HashMap<String, String> = HashMap::new();
        m.insert(
            "CURTIN_VMTEST_TOPDIR".into(),
            self.dir.path().join("top").display().to_string(),
        );
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        let s = Settings::from_lookup(|k| m.get(k).cloned(), false).unwrap();
        s.prepare_topdir().unwrap();
        s
    }

    fn test(&self, name: &str) -> TestConfig {
        TestConfig::parse(name, Path::new("t.yaml"), TEST).unwrap()
    }
}

fn ok(outcome: Outcome) -> Result<PhaseResult, BackendError> {
    Ok(PhaseResult {
        outcome,
        wall: Duration::from_millis(1),
    })
}

/// A guest that installs and collects successfully.
fn good_guest(spec: &PhaseSpec) -> Result<PhaseResult, BackendError> {
    if spec.phase == Phase::Install {
        std::fs::write(
            &spec.serial_log,
            "booting\ncurtin: Installation finished.\nreboot: Power down\n",
        )?;
    } else {
        std::fs::write(&spec.serial_log, "collect\n")?;
        write_output_disk(spec, &good_tar());
    }
    ok(Outcome::PowerOff)
}

fn run(
    env: &Env,
    s: &Settings,
    backend: FakeBackend,
    tests: &[TestConfig],
) -> Vec<runner::TestResult> {
    let ctx = RunContext {
        settings: s,
        backend: &backend,
        images: &env.images,
        curtin_src: None,
        progress: Progress::new(None, true),
        console: None,
    };
    runner::run_all(tests, &ctx)
}

#[test]
fn passing_test_records_success_and_keeps_per_keep_data_pass() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_PASS", "logs,collect")]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let b = FakeBackend::new(move |spec| {
        seen2.lock().unwrap().push(spec.clone());
        good_guest(spec)
    });
    let r = &run(&env, &s, b, &[env.test("good")])[0];
    assert_eq!(r.status, Status::Pass, "{:?}", r.errors());
    let w = s.topdir.join("good");
    assert!(w.join("logs/success").is_file());
    assert!(w.join("collect/fstab").is_file());
    assert!(
        !w.join("disks").exists() && !w.join("boot").exists(),
        "not kept"
    );
    let seen = seen.lock().unwrap();
    // Install: direct kernel boot with curtin's cmdline, the storage disk with its serial.
    match &seen[0].boot {
        harness::backend::Boot::Direct { cmdline, .. } => {
            assert!(
                cmdline.starts_with("root=squash:http://10.0.2.2:"),
                "{cmdline}"
            );
            assert!(cmdline.contains("BOOTIF=01-52-54-00-12-34-01"));
        }
        b => panic!("{b:?}"),
    }
    assert_eq!(seen[0].disks.len(), 1);
    assert_eq!(seen[0].disks[0].serial, "disk-a");
    // Boot: firmware, installed disk first, output disk second, read-only seed last.
    assert_eq!(
        seen[1].boot,
        harness::backend::Boot::Firmware { uefi: false }
    );
    let serials: Vec<&str> = seen[1].disks.iter().map(|d| d.serial.as_str()).collect();
    assert_eq!(serials, vec!["disk-a", "output_disk.img", "seed"]);
    assert!(seen[1].disks[2].read_only);
}

#[test]
fn installer_failure_fails_with_serial_tail_and_keeps_data() {
    let env = Env::new();
    let s = env.settings(&[]); // KEEP_DATA_FAIL defaults to all
    let b = FakeBackend::new(|spec| {
        std::fs::write(
            &spec.serial_log,
            "mkfs...\nvmtest-installer: ERROR: sfdisk failed\ncurtin: Installation failed: sfdisk\nreboot: Power down\n",
        )?;
        ok(Outcome::PowerOff)
    });
    let r = &run(&env, &s, b, &[env.test("instfail")])[0];
    assert_eq!(r.status, Status::Fail);
    let all = r.errors().join("\n");
    assert!(all.contains("Installation failed"), "{all}");
    assert!(all.contains("install serial log tail:\nmkfs..."), "{all}");
    assert_eq!(r.phases.len(), 1, "no boot phase after a failed install");
    let w = s.topdir.join("instfail");
    for p in ["install", "boot", "disks", "logs", "collect"] {
        assert!(w.join(p).is_dir(), "{p} kept");
    }
    let ej: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.join("logs/errors.json")).unwrap())
            .unwrap();
    assert_eq!(ej["status"], "fail");
    assert!(w.join("disks/install_disk.img").is_file());
}

#[test]
fn keep_data_fail_is_honoured() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_FAIL", "logs")]);
    let b = FakeBackend::new(|_| ok(Outcome::Timeout));
    let r = &run(&env, &s, b, &[env.test("kf")])[0];
    assert_eq!(r.status, Status::Fail);
    let w = s.topdir.join("kf");
    assert!(w.join("logs/errors.json").is_file());
    assert!(!w.join("disks").exists());
}

/// Ctrl-A x at an attached console stops the VM on purpose: the test is an error (not
/// finished), not a failure of the installer or the installed system.
#[test]
fn leaving_the_console_is_an_unfinished_test_in_either_phase() {
    let env = Env::new();
    let s = env.settings(&[]);
    for phase in [Phase::Install, Phase::Boot] {
        let b = FakeBackend::new(move |spec| {
            if spec.phase == phase {
                return ok(Outcome::Stopped);
            }
            good_guest(spec)
        });
        let name = format!("left_{phase}");
        let r = &run(&env, &s, b, &[env.test(&name)])[0];
        assert_eq!(r.status, Status::Error, "{phase}: {:?}", r.errors());
        assert!(
            r.errors()[0].contains(&format!("{phase} phase"))
                && r.errors()[0].contains("Ctrl-A x, test not finished"),
            "{:?}",
            r.errors()
        );
    }
}

#[test]
fn hang_times_out_and_panic_fails_at_once() {
    let env = Env::new();
    let s = env.settings(&[]);
    let b = FakeBackend::new(|spec| {
        if spec.phase == Phase::Install {
            return good_guest(spec);
        }
        ok(Outcome::Timeout)
    });
    let r = &run(&env, &s, b, &[env.test("hang")])[0];
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.errors()[0].contains("boot phase timed out"),
        "{:?}",
        r.errors()
    );
    assert!(
        s.topdir.join("hang/boot/output_disk.img").is_file(),
        "data kept"
    );

    let b = FakeBackend::new(|spec| {
        std::fs::write(
            &spec.serial_log,
            "[ 3.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n",
        )?;
        ok(Outcome::Crash(
            "Kernel panic - not syncing: VFS: Unable to mount root fs".into(),
        ))
    });
    let r = &run(&env, &s, b, &[env.test("panic")])[0];
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.errors()[0].contains("install phase crashed: Kernel panic"),
        "{:?}",
        r.errors()
    );
}

#[test]
fn hostile_output_disk_writes_nothing_outside_collect() {
    let env = Env::new();
    let s = env.settings(&[]);
    let b = FakeBackend::new(|spec| {
        if spec.phase == Phase::Install {
            return good_guest(spec);
        }
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link) in [
            ("./fstab", tar::EntryType::Regular, None),
            ("../../escape", tar::EntryType::Regular, None),
            ("/tmp/vmtest-abs-escape", tar::EntryType::Regular, None),
            ("./etc", tar::EntryType::Symlink, Some("/etc")),
            ("./sda", tar::EntryType::Block, None),
        ] {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            h.set_entry_type(kind);
            let data: &[u8] = if kind == tar::EntryType::Regular {
                b"UUID=1 / ext4 defaults 0 1\n"
            } else {
                b""
            };
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        write_output_disk(spec, &b.into_inner().unwrap());
        ok(Outcome::PowerOff)
    });
    let r = &run(&env, &s, b, &[env.test("hostile")])[0];
    assert_eq!(
        r.status,
        Status::Pass,
        "the good entry still verifies: {:?}",
        r.errors()
    );
    let w = s.topdir.join("hostile");
    assert!(!env.dir.path().join("escape").exists());
    assert!(!s.topdir.join("escape").exists());
    assert!(!Path::new("/tmp/vmtest-abs-escape").exists());
    assert!(!s.topdir.join("hostile/collect/etc").exists());
    assert!(!s.topdir.join("hostile/collect/sda").exists());
    // Passed tests keep nothing by default, so check the rejection record on a kept run.
    let _ = w;
}

#[test]
fn collect_rejections_are_recorded() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_PASS", "all")]);
    let b = FakeBackend::new(|spec| {
        if spec.phase == Phase::Install {
            return good_guest(spec);
        }
        let mut t = good_tar();
        // Append-only tars are fine; put a symlink in front instead.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("./link").unwrap();
        h.set_link_name("/etc/shadow").unwrap();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let mut front = b.into_inner().unwrap();
        front.truncate(front.len() - 1024); // drop the end-of-archive blocks
        front.append(&mut t);
        write_output_disk(spec, &front);
        ok(Outcome::PowerOff)
    });
    let r = &run(&env, &s, b, &[env.test("rej")])[0];
    assert_eq!(r.status, Status::Pass, "{:?}", r.errors());
    let rej = std::fs::read_to_string(s.topdir.join("rej/logs/collect-rejected.txt")).unwrap();
    assert!(rej.contains("link\tsymlink"), "{rej}");
}

#[test]
fn empty_output_disk_fails() {
    let env = Env::new();
    let s = env.settings(&[]);
    let b = FakeBackend::new(|spec| {
        if spec.phase == Phase::Install {
            return good_guest(spec);
        }
        ok(Outcome::PowerOff)
    });
    let r = &run(&env, &s, b, &[env.test("empty")])[0];
    assert_eq!(r.status, Status::Fail);
    assert!(r.errors()[0].contains("no files"), "{:?}", r.errors());
}

/// Two tests at once: each guest fetches its own seed from its own HTTP server, and both
/// run at the same time without seeing each other's data.
#[test]
fn parallel_tests_do_not_interfere() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_PARALLEL", "2")]);
    let spans = Arc::new(Mutex::new(Vec::new()));
    let spans2 = spans.clone();
    let b = FakeBackend::new(move |spec| {
        if spec.phase == Phase::Install {
            let harness::backend::Boot::Direct { cmdline, .. } = &spec.boot else {
                panic!()
            };
            let port: u16 = cmdline
                .split("http://10.0.2.2:")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let t0 = Instant::now();
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(b"GET /meta-data HTTP/1.1\r\n\r\n").unwrap();
            let mut body = String::new();
            c.read_to_string(&mut body).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            spans2
                .lock()
                .unwrap()
                .push((body, t0, Instant::now(), port));
        }
        good_guest(spec)
    });
    let results = run(&env, &s, b, &[env.test("par_a"), env.test("par_b")]);
    assert!(
        results.iter().all(|r| r.status == Status::Pass),
        "{results:?}"
    );
    let spans = spans.lock().unwrap();
    assert_eq!(spans.len(), 2);
    let bodies: Vec<&String> = spans.iter().map(|s| &s.0).collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("\"instance-id\": \"vmtest-par-a-install\""))
    );
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("\"instance-id\": \"vmtest-par-b-install\""))
    );
    assert_ne!(spans[0].3, spans[1].3, "own port each");
    let overlap = spans[0].1 < spans[1].2 && spans[1].1 < spans[0].2;
    assert!(overlap, "ran at the same time");
}

#[test]
fn reuse_topdir_reverifies_kept_data() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_PASS", "collect")]);
    let r = &run(&env, &s, FakeBackend::new(good_guest), &[env.test("again")])[0];
    assert_eq!(r.status, Status::Pass);
    let top = s.topdir.display().to_string();
    let m: HashMap<&str, &str> = [
        ("CURTIN_VMTEST_TOPDIR", top.as_str()),
        ("CURTIN_VMTEST_REUSE_TOPDIR", "1"),
    ]
    .into();
    let s2 = Settings::from_lookup(|k| m.get(k).map(|v| v.to_string()), false).unwrap();
    s2.prepare_topdir().unwrap();
    let b = FakeBackend::new(|_| panic!("no VM when re-verifying"));
    let r = &run(&env, &s2, b, &[env.test("again")])[0];
    assert_eq!(r.status, Status::Pass, "{:?}", r.errors());
}

#[test]
fn summary_and_junit() {
    let env = Env::new();
    let s = env.settings(&[]);
    let b = FakeBackend::new(|spec| {
        if spec.phase == Phase::Install {
            std::fs::write(&spec.serial_log, "curtin: Installation failed <&>\n")?;
            return ok(Outcome::PowerOff);
        }
        good_guest(spec)
    });
    let results = run(&env, &s, b, &[env.test("j1")]);
    let table = harness::report::summary_table(&results);
    assert!(table.contains("j1") && table.contains("FAIL"), "{table}");
    assert!(
        table.lines().next().unwrap().contains("installer")
            && table.lines().nth(1).unwrap().contains("script"),
        "{table}"
    );
    assert!(table.trim_end().ends_with("0 passed, 1 failed"), "{table}");
    let x = harness::report::junit_xml(&results);
    assert!(
        x.contains("<testcase classname=\"vmtest.fake\" name=\"j1\""),
        "{x}"
    );
    assert!(
        x.contains("<failure message=") && x.contains("&lt;&amp;&gt;"),
        "{x}"
    );
}

/// A test that needs what no host here has (an s390x DASD) is listed as NOT RUN with its
/// reason, boots nothing, creates no work dir, and does not fail the run: the summary,
/// JUnit (`skipped`) and the exit code say so.
#[test]
fn a_test_this_host_cannot_run_is_listed_not_failed() {
    let env = Env::new();
    let s = env.settings(&[]);
    let phases = Arc::new(Mutex::new(Vec::new()));
    let phases2 = phases.clone();
    let b = FakeBackend::new(move |spec| {
        phases2.lock().unwrap().push(spec.phase);
        good_guest(spec)
    });
    let dasd = TestConfig::parse(
        "dasd",
        Path::new("dasd.yaml"),
        "storage:\n  version: 1\n  config:\n    - {id: dasdb, type: dasd, device_id: 0.0.1544, blocksize: 4096, mode: quick, disk_layout: cdl}\n    - {id: sda, type: disk, serial: a, ptable: gpt}\n",
    )
    .unwrap();
    let results = run(&env, &s, b, &[env.test("good"), dasd]);
    assert_eq!(results[0].status, Status::Pass, "{:?}", results[0].errors());
    let r = &results[1];
    assert_eq!(r.status, Status::NotRun, "{:?}", r.errors());
    assert!(
        r.errors()[0].contains("cannot run on this host") && r.errors()[0].contains("DASD"),
        "{:?}",
        r.errors()
    );
    assert_eq!(*phases.lock().unwrap(), [Phase::Install, Phase::Boot]);
    assert!(!s.topdir.join("dasd").exists());
    let table = harness::report::summary_table(&results);
    assert!(table.contains("NOT RUN"), "{table}");
    assert!(
        table.contains("\n1 passed, 0 failed, 1 not run here (neither passed nor failed);"),
        "{table}"
    );
    let x = harness::report::junit_xml(&results);
    assert!(
        x.contains("<skipped message=\"cannot run on this host") && x.contains("skipped=\"1\""),
        "{x}"
    );
    assert_eq!(
        harness::exit::Exit::of_results(&results),
        harness::exit::Exit::Passed
    );
    let gh = harness::report::github::results(&results, None);
    assert!(
        gh.starts_with(
            "::warning file=dasd.yaml,title=vmtest dasd NOT RUN::cannot run on this host"
        ),
        "{gh}"
    );
}

/// curtin's order: a test's `timeouts:` beat CURTIN_VMTEST_*_TIMEOUT, which beat the
/// defaults (in curtin the environment sets the default a test class may override).
#[test]
fn timeout_precedence() {
    let env = Env::new();
    let text = TEST.replace(
        "  release: bookworm\n",
        "  release: bookworm\n  timeouts: {install: 77, boot: 88}\n",
    );
    let t = TestConfig::parse("to", Path::new("t.yaml"), &text).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let b = FakeBackend::new(move |spec| {
        s2.lock().unwrap().push(spec.timeout);
        good_guest(spec)
    });
    let s = env.settings(&[]);
    run(&env, &s, b.clone(), std::slice::from_ref(&t));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Duration::from_secs(77), Duration::from_secs(88)]
    );
    seen.lock().unwrap().clear();
    let env2 = Env::new();
    let s = env2.settings(&[("CURTIN_VMTEST_INSTALL_TIMEOUT", "5")]);
    run(&env2, &s, b.clone(), &[t]);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Duration::from_secs(77), Duration::from_secs(88)]
    );
    seen.lock().unwrap().clear();
    let env3 = Env::new();
    let s = env3.settings(&[("CURTIN_VMTEST_INSTALL_TIMEOUT", "5")]);
    run(&env3, &s, b, &[env3.test("plain")]);
    assert_eq!(seen.lock().unwrap()[0], Duration::from_secs(5));
}

fn run_with_curtin(
    env: &Env,
    s: &Settings,
    backend: FakeBackend,
    tests: &[TestConfig],
    curtin: Option<&Path>,
) -> Vec<runner::TestResult> {
    let ctx = RunContext {
        settings: s,
        backend: &backend,
        images: &env.images,
        curtin_src: curtin,
        progress: Progress::new(None, true),
        console: None,
    };
    runner::run_all(tests, &ctx)
}

fn pinned(env: &Env, name: &str, installer: &str) -> TestConfig {
    let _ = env;
    let text = TEST.replace(
        "  release: bookworm",
        &format!("  release: bookworm\n  installer: {installer}"),
    );
    TestConfig::parse(name, Path::new(&format!("{name}.yaml")), &text).unwrap()
}

#[test]
fn curtin_test_without_a_tree_is_one_error_before_any_vm() {
    let env = Env::new();
    let s = env.settings(&[]);
    let started = Arc::new(Mutex::new(0));
    let started2 = started.clone();
    let b = FakeBackend::new(move |spec| {
        *started2.lock().unwrap() += 1;
        good_guest(spec)
    });
    let tests = [env.test("plain"), pinned(&env, "needs_curtin", "curtin")];
    let rs = run_with_curtin(&env, &s, b, &tests, None);
    assert_eq!(*started.lock().unwrap(), 0, "no VM may start");
    for r in &rs {
        assert_eq!(r.status, Status::Error);
        let e = r.errors().join("\n");
        assert!(
            e.contains("needs_curtin sets `vmtest.installer: curtin`")
                && e.contains("--curtin DIR")
                && e.contains("CURTIN_SRC"),
            "{e}"
        );
    }
    // Not a curtin tree: named before any VM too.
    let b = FakeBackend::new(|_| panic!("no VM may start"));
    let rs = run_with_curtin(&env, &s, b, &[env.test("plain2")], Some(env.dir.path()));
    assert_eq!(rs[0].status, Status::Error);
    assert!(
        rs[0].errors()[0].contains("is not a curtin source tree"),
        "{:?}",
        rs[0].errors()
    );
}

#[test]
fn a_curtin_tree_makes_curtin_the_installer_unless_a_test_pins_script() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_PASS", "install,logs")]);
    let tree = fake::fake_curtin_tree(env.dir.path());
    let b = FakeBackend::new(good_guest);
    let tests = [env.test("follows"), pinned(&env, "pinned_script", "script")];
    let rs = run_with_curtin(&env, &s, b, &tests, Some(&tree));
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{}: {:?}", r.name, r.errors());
    }
    let ud = |t: &str| std::fs::read_to_string(s.topdir.join(t).join("install/user-data")).unwrap();
    let follows = ud("follows");
    assert!(
        follows.contains("sh curtin/bin/curtin -vv install --config=config/vmtest.yaml --config=config/test.yaml cp:///media/root-ro"),
        "curtin runs for the unpinned test"
    );
    let added =
        std::fs::read_to_string(s.topdir.join("follows/install/curtin-vmtest.yaml")).unwrap();
    assert!(
        added.contains("/webhook") && added.contains("\"install\": false"),
        "{added}"
    );
    assert_eq!(rs[0].installer, "curtin");
    assert_eq!(rs[1].installer, "script");
    let rec = std::fs::read_to_string(s.topdir.join("follows/logs/success")).unwrap_or_default();
    assert!(rec.contains("\"installer\": \"curtin\""), "{rec}");
    let script = ud("pinned_script");
    assert!(script.contains("sh installer/install.sh config/plan"));
    assert!(!script.contains("curtin/bin/curtin"));
    assert!(
        !s.topdir
            .join("pinned_script/install/curtin-vmtest.yaml")
            .exists()
    );
}

/// One result per check: the summary counts them, JUnit has a testcase for the run and
/// one per check (the failing one with its evidence), and a failed check alone fails the
/// test without failing its phases.
#[test]
fn one_result_per_check_in_summary_and_junit() {
    let env = Env::new();
    let s = env.settings(&[]);
    let text = TEST.replace(
        "    - fstab: [{mountpoint: /, fstype: ext4}]\n",
        "    - fstab: [{mountpoint: /, fstype: ext4}, {mountpoint: /home, fstype: ext4}]\n",
    );
    let t = TestConfig::parse("checks", Path::new("checks.yaml"), &text).unwrap();
    let results = run(&env, &s, FakeBackend::new(good_guest), &[t]);
    let r = &results[0];
    assert_eq!(r.status, Status::Fail);
    assert!(r.failure.is_none(), "the phases passed: {:?}", r.failure);
    let names: Vec<(&str, bool)> = r
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.passed()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("file_exists fstab", true),
            ("fstab /", true),
            ("fstab /home", false)
        ]
    );
    assert!(
        r.checks[2].evidence.contains("no entry for /home")
            && r.checks[2]
                .evidence
                .contains("UUID=1234 / ext4 defaults 0 1"),
        "evidence quotes what fstab has: {}",
        r.checks[2].evidence
    );
    let table = harness::report::summary_table(&results);
    let row = table.lines().nth(1).unwrap();
    assert!(row.contains("FAIL") && row.contains(" 2/1 "), "{table}");
    let x = harness::report::junit_xml(&results);
    assert!(x.contains("tests=\"4\" failures=\"1\" errors=\"0\""), "{x}");
    assert!(
        x.contains("<testcase classname=\"vmtest.fake\" name=\"checks\""),
        "{x}"
    );
    for name in ["file_exists fstab", "fstab /", "fstab /home"] {
        assert!(
            x.contains(&format!(
                "<testcase classname=\"vmtest.fake.checks\" name=\"checks / {name}\""
            )),
            "{name}: {x}"
        );
    }
    assert!(
        x.contains("<failure message=\"fstab: no entry for /home (ext4)\">"),
        "{x}"
    );
}

/// A work dir this run did not create (another run's, sharing TOPDIR) is never touched:
/// no verdict file written into it, and keep-data removes nothing of it.
#[test]
fn keep_data_touches_only_work_dirs_this_run_created() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_FAIL", "none")]);
    let theirs = s.topdir.join("shared");
    std::fs::create_dir_all(theirs.join("logs")).unwrap();
    std::fs::write(theirs.join("logs/install-serial.log"), "their run").unwrap();
    let b = FakeBackend::new(|_| panic!("no VM without a work dir"));
    let r = &run(&env, &s, b, &[env.test("shared")])[0];
    assert_eq!(r.status, Status::Error);
    assert!(r.errors()[0].starts_with("work dir "), "{:?}", r.errors());
    assert_eq!(
        std::fs::read_to_string(theirs.join("logs/install-serial.log")).unwrap(),
        "their run"
    );
    assert!(!theirs.join("logs/errors.json").exists());
    let entries: Vec<_> = std::fs::read_dir(&theirs).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing added beside logs/");
}

#[test]
fn a_uefi_test_keeps_one_nvram_from_install_to_boot() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_PASS", "all")]);
    let tree = fake::fake_curtin_tree(env.dir.path());
    let text = TEST
        .replace("  release: bookworm", "  release: bookworm\n  uefi: true")
        .replace("ptable: msdos", "ptable: gpt");
    let t = TestConfig::parse("uefi", Path::new("uefi.yaml"), &text).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    // The fake firmware: the installer adds a boot entry to the variables in the install
    // phase; the boot phase must find it there.
    let b = FakeBackend::new(move |spec| {
        let nvram = spec.uefi_nvram.clone().expect("a UEFI phase has NVRAM");
        if spec.phase == Phase::Install {
            let mut f = std::fs::OpenOptions::new().append(true).open(&nvram)?;
            f.write_all(b"Boot0004* debian\n")?;
        } else {
            let vars = std::fs::read_to_string(&nvram)?;
            assert!(vars.contains("Boot0004* debian"), "{vars}");
        }
        seen2.lock().unwrap().push(spec.clone());
        good_guest(spec)
    });
    let r = &run_with_curtin(&env, &s, b, &[t], Some(&tree))[0];
    assert_eq!(r.status, Status::Pass, "{:?}", r.errors());
    let seen = seen.lock().unwrap();
    let nvram = s.topdir.join("uefi/disks/ovmf_vars.fd");
    assert_eq!(seen[0].uefi_nvram.as_deref(), Some(nvram.as_path()));
    assert_eq!(seen[1].uefi_nvram.as_deref(), Some(nvram.as_path()));
    // Install: the image's kernel, loaded through the firmware; boot: the firmware.
    assert!(matches!(
        seen[0].boot,
        harness::backend::Boot::Direct { .. }
    ));
    assert_eq!(
        seen[1].boot,
        harness::backend::Boot::Firmware { uefi: true }
    );
    assert!(nvram.is_file(), "kept with the disks");
    // curtin is asked to write its boot entry into the NVRAM.
    let added = std::fs::read_to_string(s.topdir.join("uefi/install/curtin-vmtest.yaml")).unwrap();
    assert!(added.contains("\"update_nvram\": true"), "{added}");
}

#[test]
fn a_failed_curtin_install_names_its_failing_step_and_keeps_the_data() {
    let env = Env::new();
    let s = env.settings(&[("CURTIN_VMTEST_KEEP_DATA_FAIL", "logs,disks")]);
    let tree = fake::fake_curtin_tree(env.dir.path());
    // The fake curtin fails in block-meta: its events reach the webhook, the console shows
    // curtin's failure line.
    let b = FakeBackend::new(|spec| {
        let cmdline = match &spec.boot {
            harness::backend::Boot::Direct { cmdline, .. } => cmdline.clone(),
            b => panic!("{b:?}"),
        };
        let port: u16 = cmdline
            .split("http://10.0.2.2:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("seed URL in the command line");
        let post = |body: serde_json::Value| {
            let body = body.to_string();
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(
                c,
                "POST /webhook HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut resp = String::new();
            let _ = c.read_to_string(&mut resp);
        };
        post(
            serde_json::json!({"event_type": "start", "name": "cmd-install", "origin": "curtin", "description": "curtin command install"}),
        );
        post(
            serde_json::json!({"event_type": "finish", "name": "cmd-install/stage-partitioning/builtin/cmd-block-meta", "origin": "curtin", "result": "FAIL", "description": "Mount failed: /dev/vdb1 @ /target/srv with options defaults"}),
        );
        std::fs::write(
            &spec.serial_log,
            "[  OK  ] Started cloud-final\ncurtin: Installation failed with exception: Unexpected error while running command.\nreboot: Power down\n",
        )?;
        ok(Outcome::PowerOff)
    });
    let r = &run_with_curtin(&env, &s, b, &[env.test("cfail")], Some(&tree))[0];
    assert_eq!(r.status, Status::Fail);
    let all = r.errors().join("\n");
    assert!(
        all.contains("curtin step failed: cmd-install/stage-partitioning/builtin/cmd-block-meta: Mount failed: /dev/vdb1 @ /target/srv"),
        "{all}"
    );
    assert!(
        all.contains("install serial log tail:\n[  OK  ] Started cloud-final"),
        "{all}"
    );
    let w = s.topdir.join("cfail");
    assert!(w.join("logs/webhooks-events.json").is_file());
    assert!(w.join("disks/install_disk.img").is_file());
    assert!(
        !w.join("install").exists(),
        "not kept per KEEP_DATA_FAIL=logs,disks"
    );
}

/// As curtin's vmtest: a disk whose serial starts with `nvme` is an NVMe drive, the others
/// stay on the test's driver, in both phases.
#[test]
fn nvme_serials_make_nvme_disks_beside_virtio() {
    let env = Env::new();
    let s = env.settings(&[]);
    let text = TEST.replace(
        "    - {id: sda1, type: partition",
        "    - {id: nv, type: disk, ptable: gpt, serial: nvme-a}\n    - {id: sda1, type: partition",
    );
    let t = TestConfig::parse("nvme", Path::new("nvme.yaml"), &text).unwrap();
    assert!(t.needs_qemu().unwrap().contains("NVMe"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let b = FakeBackend::new(move |spec| {
        seen2.lock().unwrap().push(spec.clone());
        good_guest(spec)
    });
    let r = &run(&env, &s, b, &[t])[0];
    assert_eq!(r.status, Status::Pass, "{:?}", r.errors());
    use harness::backend::DiskBus;
    for spec in seen.lock().unwrap().iter() {
        let bus = |serial: &str| spec.disks.iter().find(|d| d.serial == serial).unwrap().bus;
        assert_eq!(bus("disk-a"), DiskBus::VirtioBlk, "{:?}", spec.phase);
        assert_eq!(bus("nvme-a"), DiskBus::Nvme, "{:?}", spec.phase);
    }
}
