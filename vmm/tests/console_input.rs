//! Console input and host-requested stops on the builtin VMM, checked from inside with the
//! machine probe: bytes sent through a `SerialInput` come back from the guest's echo (so
//! they crossed the 16550's registers), more than the 64-byte FIFO arrives whole, and a
//! `StopHandle` ends a hung guest with `ExitReason::Stopped`.
//!
//! Every boot has a watchdog far above what the probe needs (tens of milliseconds), so a
//! broken input path fails with a timeout instead of hanging.

use std::time::{Duration, Instant};

use probes::Action;
use vmm::{ExitReason, StopHandle, VmConfig};

const LIMIT: Duration = Duration::from_secs(60);

fn echo_probe() -> VmConfig {
    let mut config = VmConfig::new(probes::pvh_elf());
    config.memory_mib = 64;
    config.timeout = Some(LIMIT);
    config.cmdline = probes::cmdline(Action::Echo, Some(1), &[]);
    config
}

/// What the probe echoed: the serial output between its ready and done lines.
fn echoed(serial: &str) -> &str {
    let start = serial
        .find("PROBE echo ready\n")
        .unwrap_or_else(|| panic!("the probe never got to echo:\n{serial}"))
        + "PROBE echo ready\n".len();
    let end = serial[start..]
        .find("\nPROBE echo done")
        .unwrap_or_else(|| panic!("the probe never saw the terminator:\n{serial}"));
    &serial[start..start + end]
}

#[test]
fn typed_input_is_echoed_by_the_guest() {
    let mut config = echo_probe();
    let out = config.serial.capture();
    let input = config.serial.input();
    // Sent before the VM exists: it waits, then the guest reads it through RBR.
    input.send(b"hello\n");
    input.send(b"\x04");
    let reason = vmm::run(&config).expect("VM runs");
    let serial = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert_eq!(reason, ExitReason::PowerOff, "{serial}");
    assert_eq!(echoed(&serial), "hello\n");
    assert!(serial.contains("PROBE echo done bytes=6"), "{serial}");
}

#[test]
fn input_longer_than_the_fifo_arrives_whole_and_in_order() {
    let mut config = echo_probe();
    let out = config.serial.capture();
    let input = config.serial.input();
    let text: String = (0..40).map(|i| format!("line {i:02}|")).collect();
    assert!(text.len() > 64 * 4, "several FIFOs' worth");
    // Sent while the guest runs, from another thread, in pieces.
    let feeder = {
        let (input, text) = (input.clone(), text.clone());
        std::thread::spawn(move || {
            for piece in text.as_bytes().chunks(37) {
                input.send(piece);
            }
            input.send(b"\x04");
        })
    };
    let reason = vmm::run(&config).expect("VM runs");
    feeder.join().unwrap();
    let serial = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert_eq!(reason, ExitReason::PowerOff, "{serial}");
    assert_eq!(echoed(&serial), text);
    assert_eq!(input.backlog(), 0);
}

#[test]
fn a_stop_handle_ends_a_hung_guest_with_stopped() {
    let stop = StopHandle::new();
    let mut config = VmConfig::new(probes::pvh_elf());
    config.vcpus = 2;
    config.memory_mib = 64;
    config.timeout = Some(LIMIT);
    config.cmdline = probes::cmdline(Action::Hang, Some(2), &[]);
    config.stop = Some(stop.clone());
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let asked = Instant::now();
        stop.stop();
        asked
    });
    let reason = vmm::run(&config).expect("VM runs");
    let ended = Instant::now();
    let asked = stopper.join().unwrap();
    assert_eq!(reason, ExitReason::Stopped);
    let took = ended - asked;
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
}

#[test]
fn a_stop_requested_before_the_start_ends_the_vm_at_once() {
    let stop = StopHandle::new();
    stop.stop();
    let mut config = echo_probe();
    config.stop = Some(stop.clone());
    let start = Instant::now();
    assert_eq!(vmm::run(&config).unwrap(), ExitReason::Stopped);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // The stop sticks to the handle: a rerun with it ends the same way.
    assert_eq!(vmm::run(&config).unwrap(), ExitReason::Stopped);
}
