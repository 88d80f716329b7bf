//! Harness overhead per test: everything outside the VMs (work dir and sparse disks, image
//! lookup, packing the installer, seed and HTTP set-up, boot seed, collect, verify), with a
//! fake backend whose "guest" answers at once and writes a realistic output disk (60
//! files, ~200 KiB, like basic's collect). Goal: <= 100 ms per test.
//!
//! `cargo bench -p harness --bench overhead` (add `-- --real` to look the image up in the
//! real image store, IMAGE_DIR, instead of a fake one).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::backend::{BackendError, FakeBackend, Outcome, Phase, PhaseResult, PhaseSpec};
use harness::config::TestConfig;
use harness::runner::{self, DirImages, ImageProvider, Progress, RunContext, StoreImages};
use harness::settings::Settings;

fn collect_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let fstab = b"UUID=1 / ext4 defaults 0 1\nUUID=2 /home ext4 defaults 0 2\nUUID=4 /srv ext4 defaults 0 2\nUUID=3 none swap sw 0 0\n";
    let mounts =
        b"/dev/vda1 / ext4 rw 0 0\n/dev/vda2 /home ext4 rw 0 0\n/dev/vdc1 /srv ext4 rw 0 0\n";
    let swaps = b"Filename Type Size Used Priority\n/dev/vda3 partition 524284 0 -2\n";
    let byid = "lrwxrwxrwx 1 root root 9 x virtio-disk-a -> ../../vda\n\
                lrwxrwxrwx 1 root root 9 x virtio-disk-a-part1 -> ../../vda1\n\
                lrwxrwxrwx 1 root root 9 x virtio-disk-a-part2 -> ../../vda2\n\
                lrwxrwxrwx 1 root root 9 x virtio-disk-b-part1 -> ../../vdc1\n";
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("fstab".into(), fstab.to_vec()),
        ("proc_mounts".into(), mounts.to_vec()),
        ("proc-swaps".into(), swaps.to_vec()),
        ("ls_al_byid".into(), byid.as_bytes().to_vec()),
        ("hostname".into(), b"basic\n".to_vec()),
        (
            "proc_cmdline".into(),
            b"root=UUID=1 ro console=ttyS0\n".to_vec(),
        ),
    ];
    for i in 0..54 {
        files.push((format!("var_lib_cloud/file{i}"), vec![b'x'; 3500]));
    }
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("./{name}")).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn guest(tar: Vec<u8>) -> impl Fn(&PhaseSpec) -> Result<PhaseResult, BackendError> {
    move |spec| {
        if spec.phase == Phase::Install {
            std::fs::write(
                &spec.serial_log,
                "curtin: Installation finished.\nreboot: Power down\n",
            )?;
        } else {
            let d = spec
                .disks
                .iter()
                .find(|d| d.serial == "output_disk.img")
                .unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&d.path)?
                .write_all(&tar)?;
        }
        Ok(PhaseResult {
            outcome: Outcome::PowerOff,
            wall: Duration::ZERO,
        })
    }
}

fn main() {
    let real = std::env::args().any(|a| a == "--real");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image");
    std::fs::create_dir(&img).unwrap();
    for f in ["kernel", "initrd", "squashfs"] {
        std::fs::write(img.join(f), b"x").unwrap();
    }
    let images: Box<dyn ImageProvider> = if real {
        Box::new(StoreImages {
            dir: std::env::var_os("IMAGE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/srv/images".into()),
            // A curtin image sync holding the store is waited for, however long it takes.
            lock_timeout: None,
        })
    } else {
        Box::new(DirImages(img))
    };
    let basic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
    let test = TestConfig::load(&basic).unwrap();
    let n = 20;
    let top = dir.path().join("top");
    let m: HashMap<&str, String> = [("CURTIN_VMTEST_TOPDIR", top.display().to_string())].into();
    let settings = Settings::from_lookup(|k| m.get(k).cloned(), false).unwrap();
    settings.prepare_topdir().unwrap();
    let backend = FakeBackend::new(guest(collect_tar()));
    let ctx = RunContext {
        settings: &settings,
        backend: &backend,
        images: images.as_ref(),
        curtin_src: None,
        progress: Progress::new(None, true),
        console: None,
    };
    let mut per_step: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut totals = Vec::new();
    for i in 0..n {
        let mut t = test.clone();
        t.name = format!("basic{i}");
        let r = runner::run_test(&t, &ctx);
        assert_eq!(r.status, runner::Status::Pass, "{:?}", r.errors());
        for (s, d) in &r.steps {
            per_step
                .entry(s.to_string())
                .or_default()
                .push(d.as_secs_f64() * 1000.0);
        }
        totals.push(r.overhead().as_secs_f64() * 1000.0);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "harness overhead per test (basic.yaml, {n} runs, image store: {}), median ms:",
        if real { "real" } else { "fake" }
    );
    for (s, v) in per_step.iter_mut() {
        println!("  {s:<16} {:>8.2}", med(v));
    }
    let mut t2 = totals.clone();
    let max = totals.iter().cloned().fold(0.0, f64::max);
    println!(
        "  {:<16} {:>8.2}   (max {:.2}; goal <= 100)",
        "total",
        med(&mut t2),
        max
    );
}
