//! Power events a guest can cause through devices (ACPI sleep/reset registers, i8042,
//! pvpanic). The VMM turns them into its exit reasons.

/// Which mechanism asked for the reset; logged and reported so a test can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetSource {
    /// FADT RESET_REG write.
    AcpiResetRegister,
    /// Pulse of the CPU reset line through the i8042 controller (command 0xFE).
    I8042,
    /// A triple fault (KVM reports a shutdown exit).
    TripleFault,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerEvent {
    /// ACPI S5 (soft off).
    PowerOff,
    Reboot(ResetSource),
    /// The guest told us it panicked (pvpanic).
    GuestPanic,
}

/// Receives power events. Called from vCPU threads; must not block for long.
pub trait PowerEventSink: Send + Sync {
    fn power_event(&self, event: PowerEvent);
}

/// Records events; for device tests.
#[derive(Default)]
pub struct RecordingSink(pub std::sync::Mutex<Vec<PowerEvent>>);

impl PowerEventSink for RecordingSink {
    fn power_event(&self, event: PowerEvent) {
        self.0.lock().unwrap().push(event);
    }
}
