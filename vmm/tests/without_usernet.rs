//! Built without the `usernet` feature (`cargo test -p vmm --no-default-features --test
//! without_usernet`, run by `make test`), vmm links no libslirp: NIC specs still parse, and
//! a VM with a NIC is refused with one clear error before anything is written. Needs no KVM.

#![cfg(not(feature = "usernet"))]

use vmm::{Error, NetSpec, VmConfig};

#[test]
fn nics_are_refused_with_a_clear_error_and_nothing_written() {
    let dir = std::env::temp_dir().join(format!("vmm-no-usernet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("serial.log");
    let mut config = VmConfig::new(probes::pvh_elf());
    config.serial.log_file = Some(log.clone());
    config.nets = vec!["user,allow=8080".parse::<NetSpec>().unwrap()];
    let e = vmm::run(&config).unwrap_err();
    let log_written = log.exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(e, Error::UserNetUnavailable { nics: 1 }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("`usernet` feature") && text.contains("libslirp"),
        "{text}"
    );
    assert!(!log_written, "serial log written for: {text}");
}
