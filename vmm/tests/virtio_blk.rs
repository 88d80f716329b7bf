//! virtio-blk checked from inside the guest: the probe finds each device through the DSDT,
//! reads its serial (GET_ID), capacity and block size, reads sector 0, writes sector 1 and
//! reads it back, and tries a read past the end. The host then checks the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use probes::Action;
use vmm::{BlockConfig, ExitReason, VmConfig};

struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn blk_lines(serial: &str) -> Vec<BTreeMap<String, String>> {
    serial
        .lines()
        .filter_map(|l| l.strip_prefix("PROBE blk "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn disks_serials_block_sizes_reads_writes_and_read_only() {
    let dir = std::env::temp_dir().join(format!("vmm-blk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Scratch(dir.clone());
    let target = dir.join("target.img");
    let mut sector0 = b"installer target disk, sector zero. ".repeat(14);
    sector0.resize(512, b'!');
    std::fs::write(&target, &sector0).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&target)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let seed = dir.join("seed.img");
    std::fs::write(&seed, vec![0x5a; 4096]).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seed)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();

    let mut ro = BlockConfig::new(&seed);
    ro.serial = Some("cidata-seed".into());
    ro.read_only = true;
    ro.block_size = 4096;
    let mut rw = BlockConfig::new(&target);
    rw.serial = Some("target-disk-0123456".into());
    let mut config = VmConfig::new(probes::pvh_elf());
    config.memory_mib = 64;
    config.timeout = Some(Duration::from_secs(60));
    config.cmdline = format!(
        "{} virtio=1",
        probes::cmdline(Action::PowerOff, Some(1), &["LNRO0005"])
    );
    config.disks = vec![rw, ro];
    let out = config.serial.capture();
    let reason = vmm::run(&config).unwrap();
    let serial = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert_eq!(reason, ExitReason::PowerOff, "{serial}");
    assert!(probes::Report::parse(&serial).unwrap().passed(), "{serial}");

    let blk = blk_lines(&serial);
    assert_eq!(blk.len(), 2, "{serial}");
    let (t, s) = (&blk[0], &blk[1]);
    assert_eq!(t["serial"], "target-disk-0123456");
    assert_eq!(t["sectors"], "16384");
    assert_eq!(t["blk_size"], "512");
    assert_eq!(t["sector0_fnv"], format!("{:#x}", probes::fnv1a(&sector0)));
    assert_eq!(t["write1"], "ok");
    assert_eq!(t["flush"], "ok");
    assert_eq!(t["readback"], "match");
    assert_eq!(t["read_past_end"], "ioerr");
    assert_eq!(s["serial"], "cidata-seed");
    assert_eq!(s["blk_size"], "4096");
    assert_eq!(
        s["sector0_fnv"],
        format!("{:#x}", probes::fnv1a(&[0x5a; 512]))
    );
    assert_eq!(s["write1"], "ioerr", "a read-only disk must refuse writes");

    let written = std::fs::read(&target).unwrap();
    assert!(written[512..].starts_with(b"PROBE-WRITE target-disk-0123456..."));
    assert_eq!(written[..512], sector0[..], "sector 0 untouched");
    let seed_after = std::fs::read(&seed).unwrap();
    assert!(
        seed_after[..4096].iter().all(|b| *b == 0x5a),
        "seed was written"
    );
}

#[test]
fn bad_disks_are_refused_before_the_vm_starts() {
    let dir = std::env::temp_dir().join(format!("vmm-blk-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Scratch(dir.clone());
    let log = dir.join("serial.log");
    let run = |disks: Vec<BlockConfig>| {
        let mut config = VmConfig::new(probes::pvh_elf());
        config.timeout = Some(Duration::from_secs(30));
        config.serial.log_file = Some(log.clone());
        config.disks = disks;
        let e = vmm::run(&config).unwrap_err().to_string();
        assert!(!log.exists(), "serial log written for: {e}");
        e
    };
    let img = dir.join("a.img");
    std::fs::write(&img, [0u8; 4096]).unwrap();
    let img2 = dir.join("b.img");
    std::fs::write(&img2, [0u8; 4096]).unwrap();
    assert!(run(vec![BlockConfig::new(dir.join("missing.img"))]).contains("missing.img"));
    assert!(run(vec![BlockConfig::new(&dir)]).contains("directory"));
    let mut long = BlockConfig::new(&img);
    long.serial = Some("x".repeat(21));
    assert!(run(vec![long]).contains("at most 20"));
    let mut a = BlockConfig::new(&img);
    a.serial = Some("same".into());
    let mut b = BlockConfig::new(&img2);
    b.serial = Some("same".into());
    assert!(run(vec![a, b]).contains("more than one disk"));
}
