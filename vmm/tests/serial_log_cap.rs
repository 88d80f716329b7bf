//! The serial log file never passes its cap, whatever the guest prints: the machine probe
//! echoes more input than the cap holds, and the file keeps the probe's first lines, one
//! marker line and its last ones. The writes happen on the vCPU thread under its seccomp
//! filter, so this also checks that the filter lets the capped log work.

use std::time::Duration;

use probes::Action;
use vmm::{ExitReason, VmConfig};

#[test]
fn the_serial_log_keeps_head_and_tail_within_its_cap() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("serial.log");
    let cap = 4096;
    let mut config = VmConfig::new(probes::pvh_elf());
    config.memory_mib = 64;
    config.timeout = Some(Duration::from_secs(120));
    config.cmdline = probes::cmdline(Action::Echo, Some(1), &[]);
    config.serial.log_file = Some(log.clone());
    config.serial.log_cap = cap;
    let out = config.serial.capture();
    let input = config.serial.input();
    let text: String = (0..800).map(|i| format!("echo line {i:04}\n")).collect();
    assert!(text.len() as u64 > 2 * cap);
    let feeder = {
        let (input, text) = (input.clone(), text.clone());
        std::thread::spawn(move || {
            input.send(text.as_bytes());
            input.send(b"\x04");
        })
    };
    let reason = vmm::run(&config).expect("VM runs");
    feeder.join().unwrap();
    let all = out.lock().unwrap().clone();
    assert_eq!(
        reason,
        ExitReason::PowerOff,
        "{}",
        String::from_utf8_lossy(&all)
    );
    let file = std::fs::read(&log).unwrap();
    assert!(file.len() as u64 <= cap, "{} bytes", file.len());
    let head = (cap / 2) as usize;
    assert_eq!(
        &file[..head],
        &all[..head],
        "the beginning is kept as printed"
    );
    let text = String::from_utf8_lossy(&file);
    assert!(text.starts_with("PROBE "), "{text}");
    assert!(
        text.contains("[vmtest: log cap of 4096 bytes reached:"),
        "{text}"
    );
    let tail = text.lines().last().unwrap();
    assert!(tail.starts_with("PROBE echo done bytes="), "{tail}");
    // Every byte is accounted for: kept, or counted in the marker.
    let dropped: usize = text
        .split("reached:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(file.len() - 128 + dropped, all.len());
}
