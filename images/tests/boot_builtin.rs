//! The image boot test on the builtin VMM: the newest bookworm/amd64 image from the store,
//! its squashfs as a virtio-blk disk found by serial, a NoCloud seed disk whose user-data
//! prints a marker and powers off, one NIC on user-mode NAT. Checks the marker, that
//! cloud-init used the NoCloud datasource, and that the VM powered off by itself.
//!
//! Opt-in (`make test-images-builtin`). On a hardware KVM host it takes seconds; where KVM
//! is emulated (PVM hosts) the guest runs in KVM's instruction emulator, about a thousand
//! times slower, with the VMM's emulated-KVM adaptations; the test then prints how far the
//! guest got. The limit is IMAGES_BUILTIN_TIMEOUT seconds (default 3600).

use std::time::{Duration, Instant};

use images::store::ImageStore;

mod common;
use vmm::{BlockConfig, BootPath, ExitReason, VmConfig};

const SQUASH_SERIAL: &str = "vmtest-root";

#[test]
#[ignore = "a full Linux boot; slow where KVM is emulated: run by `make test-images-builtin`"]
fn builtin_vmm_boots_the_image_with_a_nocloud_seed_and_powers_off() {
    let store = ImageStore::from_env().unwrap();
    let image = store
        .find_newest("bookworm", "amd64")
        .unwrap_or_else(|e| panic!("{e}\n(`make test-images` builds the image first)"));
    let limit = Duration::from_secs(
        std::env::var("IMAGES_BUILTIN_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600),
    );
    let tmp = tempfile::tempdir().unwrap();
    let (seed, marker) = common::marker_seed(tmp.path());

    let mut root = BlockConfig::new(&image.squashfs);
    root.serial = Some(SQUASH_SERIAL.into());
    root.read_only = true;
    let mut cidata = BlockConfig::new(&seed);
    cidata.serial = Some("cidata".into());
    cidata.read_only = true;
    let mut config = VmConfig::new(&image.kernel);
    config.initrd = Some(image.initrd.clone());
    config.memory_mib = 2048;
    config.timeout = Some(limit);
    config.boot_path = BootPath::Pvh;
    config.cmdline = format!(
        "console=ttyS0 overlayroot=tmpfs ro root=squash:serial={SQUASH_SERIAL} panic=-1 rootdelay=120"
    );
    config.disks = vec![root, cidata];
    config.nets = vec!["user,mac=52:54:00:12:34:01".parse().unwrap()];
    if vmm::host::probe_kvm()
        .expect("/dev/kvm is usable")
        .is_emulated()
    {
        config.adapt_linux_guest_to_emulated_kvm();
    }
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("boot-builtin.log");
    config.serial.log_file = Some(log.clone());
    config.serial.overwrite_log = true;
    let capture = config.serial.capture();

    let start = Instant::now();
    let reason = vmm::run(&config).expect("the VM runs");
    let serial = String::from_utf8_lossy(&capture.lock().unwrap()).into_owned();
    eprintln!(
        "builtin boot: {reason} after {:.1} s; serial log {}; last lines:",
        start.elapsed().as_secs_f64(),
        log.display()
    );
    let tail: Vec<&str> = serial.lines().rev().take(20).collect();
    for l in tail.iter().rev() {
        eprintln!("  | {l}");
    }
    assert!(
        serial.contains(&marker),
        "no marker: the user-data did not run ({reason})"
    );
    assert!(
        serial.contains("DataSourceNoCloud"),
        "cloud-init did not use NoCloud"
    );
    assert_eq!(reason, ExitReason::PowerOff);
}
