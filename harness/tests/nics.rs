//! The NICs a test's network config asks for, attached by both backends: a config with
//! three physical interfaces (and one without a MAC, which gets no NIC, as in curtin's
//! vmtest) becomes three NICs with those MACs in config order, on the builtin microVM and
//! on qemu `-M microvm` alike. The machine probe plays the guest: it reads each NIC's MAC
//! from its config space and gets a DHCP lease on each one from the harness's user-mode
//! network; the harness's HTTP port is reachable through every NIC.
//! Needs qemu-system-x86_64 for the qemu half; fails, not skips, without it.

use std::path::Path;
use std::time::Duration;

use harness::backend::qemu::{Machine, QemuBackend};
use harness::backend::{Backend, Boot, BuiltinBackend, Nic, Outcome, Phase, PhaseSpec};
use harness::config::TestConfig;

const CONFIG: &str = r#"
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: msdos, serial: disk-a}
network:
  version: 1
  config:
    - {type: physical, name: interface0, mac_address: "52:54:00:12:34:00", subnets: [{type: dhcp}]}
    - {type: physical, name: nomac}
    - {type: physical, name: interface1, mac_address: "52:54:00:12:34:02", mtu: 1492}
    - {type: physical, name: interface2, mac_address: "52:54:00:12:34:04"}
    - {type: bond, name: bond0, bond_interfaces: [interface1, interface2]}
"#;

const MACS: [&str; 3] = [
    "52:54:00:12:34:00",
    "52:54:00:12:34:02",
    "52:54:00:12:34:04",
];

fn phase(dir: &Path, name: &str, http_port: u16) -> PhaseSpec {
    let test = TestConfig::parse("nics", Path::new("nics.yaml"), CONFIG).unwrap();
    let nics = Nic::for_test(&test);
    assert_eq!(
        nics.iter().map(|n| n.mac.as_str()).collect::<Vec<_>>(),
        MACS,
        "the NICs follow the config's physical interfaces with MACs, in order"
    );
    PhaseSpec {
        phase: Phase::Install,
        boot: Boot::Direct {
            kernel: probes::pvh_elf().to_path_buf(),
            initrd: None,
            cmdline: format!("action=poweroff virtio=1 net-allow={http_port}"),
        },
        disks: vec![],
        nics,
        memory_mib: 128,
        vcpus: 1,
        serial_log: dir.join(format!("{name}-serial.log")),
        serial_log_cap: vmm::DEFAULT_LOG_CAP,
        uefi_nvram: None,
        log_dir: dir.to_path_buf(),
        timeout: Duration::from_secs(300),
        host_ports: vec![http_port],
        outbound: Default::default(),
        interactive: false,
    }
}

/// Runs the phase and checks, NIC by NIC, what the probe read inside.
fn three_nics_with_their_macs_and_leases(backend: &dyn Backend, name: &str) {
    let http = harness::http::HttpServer::start().unwrap();
    let d = tempfile::tempdir().unwrap();
    let spec = phase(d.path(), name, http.port());
    let start = std::time::Instant::now();
    let r = backend.run_phase(&spec).unwrap();
    let serial = std::fs::read_to_string(&spec.serial_log).unwrap_or_default();
    assert_eq!(r.outcome, Outcome::PowerOff, "{name}: {serial}");
    let nets: Vec<&str> = serial
        .lines()
        .filter(|l| l.starts_with("PROBE net "))
        .collect();
    assert_eq!(nets.len(), 3, "{name}: three NICs seen inside: {serial}");
    for (i, (line, mac)) in nets.iter().zip(MACS).enumerate() {
        for want in [
            format!("index={i}"),
            format!("mac={mac}"),
            "dhcp=10.0.2.15".into(),
            "tcp_allowed=open".into(),
        ] {
            assert!(line.contains(&want), "{name}: NIC {i} lacks {want}: {line}");
        }
    }
    println!(
        "{name}: 3 NICs, MACs in config order, a lease on each, in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn the_builtin_vmm_attaches_the_configs_nics() {
    three_nics_with_their_macs_and_leases(&BuiltinBackend, "builtin");
}

#[test]
fn qemu_attaches_the_same_nics() {
    let mut q = QemuBackend::detect().unwrap_or_else(|e| panic!("prerequisite missing: {e}"));
    q.machine = Machine::Microvm;
    three_nics_with_their_macs_and_leases(&q, "qemu-microvm");
}
