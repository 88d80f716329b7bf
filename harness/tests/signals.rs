//! Every child dies with the harness, whatever ends it. `vmtest run` through the real run
//! path with a fake image whose "kernel" is the machine probe told to hang, so the
//! install phase's qemu runs until something stops it:
//! - SIGTERM (and SIGINT, SIGHUP alike): the VM is stopped and reaped, the results are
//!   written (the test ends as interrupted) and vmtest exits 128+15;
//! - SIGKILL, where no handler runs: qemu goes too (the kernel's parent-death signal).
//!
//! Neither leaves a qemu process nor a socket file behind. Needs qemu-system-x86_64; each
//! run is bounded (the phase's own timeout is far beyond the test's wait).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use images::store::{INDEX_FORMAT, ImageIndex, IndexItem, sha256_file};

const KREL: &str = "6.1.0-99-cloud-amd64";

/// An image store holding one bookworm image whose kernel is the probe.
fn probe_image_store(dir: &Path) -> PathBuf {
    let store_dir = dir.join("images");
    let store = images::ImageStore::open(&store_dir).unwrap();
    let slot = store.begin_build("bookworm", "amd64").unwrap();
    let out = slot.staging.join("out");
    let mut items = std::collections::BTreeMap::new();
    for (name, rel) in [
        ("boot-kernel", format!("{KREL}/cloud/boot-kernel")),
        ("boot-initrd", format!("{KREL}/cloud/boot-initrd")),
        ("squashfs", "squashfs".to_string()),
    ] {
        let p = out.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if name == "boot-kernel" {
            std::fs::copy(probes::pvh_elf(), &p).unwrap();
        } else {
            std::fs::write(&p, format!("not a real {name}")).unwrap();
        }
        items.insert(
            name.to_string(),
            IndexItem {
                path: rel,
                size: std::fs::metadata(&p).unwrap().len(),
                sha256: sha256_file(&p).unwrap(),
            },
        );
    }
    let index = ImageIndex {
        format: INDEX_FORMAT.into(),
        os: "debian".into(),
        release: "bookworm".into(),
        arch: "amd64".into(),
        version: String::new(),
        flavor: "cloud".into(),
        kernel_package: "linux-image-cloud-amd64".into(),
        kernel_release: KREL.into(),
        created: "2026-01-01T00:00:00Z".into(),
        source_date_epoch: 0,
        mirrors: vec![],
        builder: "test".into(),
        recipe: images::build::IMAGE_RECIPE,
        items,
    };
    slot.publish(&out, index).unwrap();
    store_dir
}

const HANG_TEST: &str = "\
vmtest:
  release: bookworm
  extra_kernel_args: action=hang
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: gpt, serial: disk-a}
    - {id: sda1, type: partition, device: sda, number: 1, size: 1G}
    - {id: sda1_root, type: format, volume: sda1, fstype: ext4}
    - {id: sda1_mount, type: mount, device: sda1_root, path: /}
network:
  version: 1
  config:
    - {type: physical, name: eth0, mac_address: \"52:54:00:12:34:01\", subnets: [{type: dhcp}]}
";

/// The processes whose command line mentions `needle` (the test's own TOPDIR).
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle).then_some((pid, cmd))
        })
        .collect()
}

fn qemus(topdir: &Path) -> Vec<(u32, String)> {
    processes_mentioning(topdir.to_str().unwrap())
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("qemu-system"))
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Run {
    _dir: tempfile::TempDir,
    topdir: PathBuf,
    child: Child,
}

/// Starts `vmtest run hang` and waits until its install phase's qemu runs.
fn start_hung_run() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("tests");
    std::fs::create_dir(&tests).unwrap();
    std::fs::write(tests.join("hang.yaml"), HANG_TEST).unwrap();
    let images = probe_image_store(dir.path());
    let topdir = dir.path().join("top");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vmtest"));
    cmd.args(["--vmm", "qemu", "run", "--tests-dir"])
        .arg(&tests)
        .arg("hang")
        .env("IMAGE_DIR", &images)
        .env("CURTIN_VMTEST_TOPDIR", &topdir)
        .env("TMPDIR", dir.path())
        .env_remove("CURTIN_SRC")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    while qemus(&topdir).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "vmtest ended ({status}) before its VM ran:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("no qemu within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run {
        _dir: dir,
        topdir,
        child,
    }
}

/// Socket files anywhere under `dir` (TMPDIR and TOPDIR of the run).
fn sockets_under(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_socket() {
                out.push(e.path());
            }
        }
    }
    out
}

fn kill(child: &Child, signal: i32) {
    // SAFETY: a plain syscall on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

#[test]
fn sigterm_stops_the_vm_writes_the_results_and_exits_143() {
    let mut run = start_hung_run();
    kill(&run.child, libc::SIGTERM);
    let start = Instant::now();
    wait_until(
        "vmtest exits after SIGTERM",
        Duration::from_secs(30),
        || run.child.try_wait().unwrap().is_some(),
    );
    let out = run.child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGTERM),
        "{stdout}\n{stderr}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(qemus(&run.topdir).is_empty(), "qemu left running");
    assert!(stderr.contains("SIGTERM: stopping the VMs"), "{stderr}");
    assert!(
        stdout.contains("interrupted (SIGTERM)"),
        "the summary says why the test ended:\n{stdout}"
    );
    let dir = run._dir.path();
    assert_eq!(sockets_under(dir), Vec::<PathBuf>::new());
    // The interrupted test keeps what it had (KEEP_DATA_FAIL: all).
    assert!(run.topdir.join("hang/logs/install-qemu.log").exists());
}

#[test]
fn sigkill_takes_qemu_along() {
    let mut run = start_hung_run();
    kill(&run.child, libc::SIGKILL);
    let _ = run.child.wait();
    wait_until(
        "qemu gone after its harness was killed",
        Duration::from_secs(10),
        || qemus(&run.topdir).is_empty(),
    );
    assert_eq!(sockets_under(run._dir.path()), Vec::<PathBuf>::new());
}
