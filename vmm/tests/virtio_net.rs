//! virtio-net over user-mode NAT, checked from inside the guest: the probe reads each
//! NIC's MAC, gets a DHCP offer, then opens TCP connections to two host ports at the
//! gateway (10.0.2.2) where the test listens on both. Only the allowed one may connect, and
//! cloud metadata (169.254.169.254) beyond the gateway is refused.

use std::net::TcpListener;
use std::time::Duration;

use probes::Action;
use vmm::{ExitReason, NetSpec, VmConfig};

#[test]
fn dhcp_and_only_allowed_host_ports_are_reachable() {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, po) = (
        allowed.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
    );
    let nic0: NetSpec = format!("user,mac=52:54:00:12:34:01,allow={pa}")
        .parse()
        .unwrap();
    let nic1: NetSpec = "user,mac=52:54:00:12:34:02".parse().unwrap();
    let mut config = VmConfig::new(probes::pvh_elf());
    config.memory_mib = 64;
    config.timeout = Some(Duration::from_secs(60));
    config.cmdline = format!(
        "{} virtio=1 net-allow={pa} net-other={po} net-dst=169.254.169.254:80",
        probes::cmdline(Action::PowerOff, Some(1), &[])
    );
    config.nets = vec![nic0, nic1];
    let out = config.serial.capture();
    let reason = vmm::run(&config).unwrap();
    let serial = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert_eq!(reason, ExitReason::PowerOff, "{serial}");
    assert!(probes::Report::parse(&serial).unwrap().passed(), "{serial}");
    let nets: Vec<&str> = serial
        .lines()
        .filter(|l| l.starts_with("PROBE net "))
        .collect();
    assert_eq!(nets.len(), 2, "{serial}");
    for want in [
        "mac=52:54:00:12:34:01",
        "dhcp=10.0.2.15",
        "tcp_allowed=open",
        "tcp_other=refused",
        "tcp_dst=refused",
    ] {
        assert!(nets[0].contains(want), "NIC 0 lacks {want}: {}", nets[0]);
    }
    for want in [
        "mac=52:54:00:12:34:02",
        "dhcp=10.0.2.15",
        "tcp_allowed=refused",
        "tcp_other=refused",
    ] {
        assert!(nets[1].contains(want), "NIC 1 lacks {want}: {}", nets[1]);
    }
}

#[test]
fn bad_nics_are_refused_before_the_vm_starts() {
    let dup: Vec<NetSpec> = vec![
        "user,mac=52:54:00:12:34:01".parse().unwrap(),
        "user,mac=52:54:00:12:34:01".parse().unwrap(),
    ];
    let mut config = VmConfig::new(probes::pvh_elf());
    config.timeout = Some(Duration::from_secs(30));
    config.nets = dup;
    let e = vmm::run(&config).unwrap_err().to_string();
    assert!(e.contains("52:54:00:12:34:01"), "{e}");
    for bad in [
        "user,mac=zz:54:00:12:34:01",
        "user,allow=http",
        "tap,allow=80",
        "user,fwd=22",
    ] {
        assert!(bad.parse::<NetSpec>().is_err(), "{bad} accepted");
    }
}

#[test]
fn a_busy_forward_port_is_refused_before_anything_is_written() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("vmm-net-fwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("serial.log");
    let mut config = VmConfig::new(probes::pvh_elf());
    config.timeout = Some(Duration::from_secs(30));
    config.nets = vec![format!("user,fwd={port}:22").parse().unwrap()];
    config.serial.log_file = Some(log.clone());
    let e = vmm::run(&config).unwrap_err().to_string();
    let log_written = log.exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.contains(&port.to_string()), "{e}");
    assert!(!log_written, "serial log written for: {e}");
}
