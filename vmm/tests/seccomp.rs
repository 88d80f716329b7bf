//! The VMM's threads run confined: while a guest runs, every vCPU thread and the device
//! thread show `Seccomp: 2` (a filter) in /proc/self/task/*/status, and the probe with a
//! disk, a NIC, several vCPUs and console input gets through its whole report under the
//! filters with no system call refused. (The other probe suites in vmm/tests run with the
//! filters on too: they are the default.)

use std::time::{Duration, Instant};

use probes::Action;
use vmm::{ExitReason, StopHandle, VmConfig};

/// (thread name, Seccomp mode) of every thread of this process.
fn threads() -> Vec<(String, String)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let field = |k: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            };
            Some((field("Name:")?, field("Seccomp:")?))
        })
        .collect()
}

/// A vCPU thread's name: `vcpu` and its index.
fn is_vcpu(name: &str) -> bool {
    name.strip_prefix("vcpu")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn disk(dir: &std::path::Path) -> vmm::BlockConfig {
    let p = dir.join("disk.img");
    std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
    let mut d = vmm::BlockConfig::new(&p);
    d.serial = Some("filtered".into());
    d
}

#[test]
fn the_vmm_threads_are_filtered_and_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _ = vmm::testing::seccomp_take_denied();

    // 1. A hung guest with two vCPUs, a disk and a NIC: look at the threads, then stop it.
    let mut config = VmConfig::new(probes::pvh_elf());
    config.memory_mib = 64;
    config.vcpus = 2;
    config.timeout = Some(Duration::from_secs(60));
    config.cmdline = probes::cmdline(Action::Hang, None, &[]);
    config.disks.push(disk(dir.path()));
    config.nets.push("user".parse().unwrap());
    let stop = StopHandle::new();
    config.stop = Some(stop.clone());
    let vm = std::thread::spawn(move || vmm::run(&config));
    // A thread is named when it is spawned and installs its filter a moment later, so
    // wait (bounded) until every VMM thread shows one rather than judging the first
    // sighting: a thread that never gets its filter fails at the deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let unfiltered = loop {
        let t = threads();
        let ours: Vec<_> = t
            .iter()
            .filter(|(n, _)| is_vcpu(n) || n == "virtio")
            .collect();
        let vcpus = ours.iter().filter(|(n, _)| is_vcpu(n)).count();
        let device = ours.iter().any(|(n, _)| n == "virtio");
        let unfiltered: Vec<(String, String)> = ours
            .iter()
            .filter(|(_, m)| m != "2")
            .map(|&t| t.clone())
            .collect();
        if vcpus == 2 && device && unfiltered.is_empty() {
            break None;
        }
        if Instant::now() >= deadline {
            break Some((unfiltered, t.clone()));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stop.stop();
    assert_eq!(vm.join().unwrap().unwrap(), ExitReason::Stopped);
    if let Some((unfiltered, all)) = unfiltered {
        panic!(
            "VMM threads not all present and filtered after 30 s: unfiltered {unfiltered:?}, all {all:?}"
        );
    }
    // The test's own thread is not: the filters are per thread.
    let me = threads();
    assert!(
        me.iter().any(|(_, mode)| mode == "0"),
        "unfiltered threads remain: {me:?}"
    );

    // 2. The probe's whole report through the filtered threads: disk I/O, DHCP and TCP,
    //    console input echoed, then power-off.
    let mut config = VmConfig::new(probes::pvh_elf());
    config.memory_mib = 64;
    config.vcpus = 2;
    config.timeout = Some(Duration::from_secs(60));
    config.cmdline = format!(
        "{} virtio=1",
        probes::cmdline(Action::Echo, Some(2), &["LNRO0005"])
    );
    config.disks.push(disk(dir.path()));
    config.nets.push("user".parse().unwrap());
    let out = config.serial.capture();
    let input = config.serial.input();
    input.send(b"typed\n\x04");
    let reason = vmm::run(&config).unwrap();
    let serial = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert_eq!(reason, ExitReason::PowerOff, "{serial}");
    assert!(probes::Report::parse(&serial).unwrap().passed(), "{serial}");
    assert!(
        serial.contains("PROBE blk ") && serial.contains("write1=ok"),
        "{serial}"
    );
    assert!(serial.contains("dhcp=10.0.2.15"), "{serial}");
    assert!(serial.contains("PROBE echo done bytes=6"), "{serial}");
    let (refused, n) = vmm::testing::seccomp_take_denied();
    assert_eq!(n, 0, "system calls refused by the filters: {refused:?}");
}
