//! Address-range dispatch for port I/O and MMIO exits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device that answers guest reads and writes inside the range it was inserted at.
///
/// `offset` is relative to the start of that range, so a device does not care where the
/// VMM placed it. Reads of bytes a device does not implement must fill `data` with a
/// defined value (usually all-ones, as real hardware floats) rather than leave it as is.
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]);
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("bus range {base:#x}+{len:#x} overlaps a device already at {other:#x}+{other_len:#x}")]
    Overlap {
        base: u64,
        len: u64,
        other: u64,
        other_len: u64,
    },
    #[error("bus range at {base:#x} has zero length or wraps around")]
    BadRange { base: u64 },
}

/// Shared handle to a device on a bus. vCPU threads lock it for the duration of one access.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Clone)]
struct Entry {
    len: u64,
    device: SharedDevice,
}

/// A set of non-overlapping address ranges, each owned by one device.
#[derive(Clone, Default)]
pub struct Bus {
    ranges: BTreeMap<u64, Entry>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `device` at `[base, base + len)`.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base })?;
        // The only candidates for overlap are the last range starting before `end`.
        if let Some((&other, e)) = self.ranges.range(..end).next_back()
            && other + e.len > base
        {
            return Err(BusError::Overlap {
                base,
                len,
                other,
                other_len: e.len,
            });
        }
        self.ranges.insert(base, Entry { len, device });
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(u64, &SharedDevice)> {
        let (&base, e) = self.ranges.range(..=addr).next_back()?;
        (addr - base < e.len).then_some((base, &e.device))
    }

    /// Dispatches a read; returns false when no device claims `addr` (the caller decides
    /// what an unclaimed access means, typically all-ones).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((base, dev)) => {
                lock(dev).read(addr - base, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; returns false when no device claims `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr) {
            Some((base, dev)) => {
                lock(dev).write(addr - base, data);
                true
            }
            None => false,
        }
    }
}

/// A device mutex is only poisoned if a device panicked; keep serving the guest with the
/// state as it was rather than cascading the panic into every vCPU.
pub fn lock(dev: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    dev.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reg(u8);
    impl BusDevice for Reg {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0 + offset as u8);
        }
        fn write(&mut self, _offset: u64, data: &[u8]) {
            self.0 = data[0];
        }
    }

    #[test]
    fn dispatches_by_range_and_offset() {
        let mut bus = Bus::new();
        bus.insert(Arc::new(Mutex::new(Reg(10))), 0x100, 8).unwrap();
        bus.insert(Arc::new(Mutex::new(Reg(20))), 0x108, 8).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x103, &mut b));
        assert_eq!(b[0], 13);
        assert!(bus.read(0x108, &mut b));
        assert_eq!(b[0], 20);
        assert!(!bus.read(0x110, &mut b));
        assert!(!bus.read(0xff, &mut b));
        assert!(bus.write(0x109, &[5]));
        bus.read(0x108, &mut b);
        assert_eq!(b[0], 5);
    }

    #[test]
    fn rejects_overlaps_and_bad_ranges() {
        let mut bus = Bus::new();
        bus.insert(Arc::new(Mutex::new(Reg(0))), 0x100, 0x10)
            .unwrap();
        assert!(matches!(
            bus.insert(Arc::new(Mutex::new(Reg(0))), 0xf8, 0x10),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(Arc::new(Mutex::new(Reg(0))), 0x10f, 1),
            Err(BusError::Overlap { .. })
        ));
        assert_eq!(
            bus.insert(Arc::new(Mutex::new(Reg(0))), 0x200, 0),
            Err(BusError::BadRange { base: 0x200 })
        );
        assert_eq!(
            bus.insert(Arc::new(Mutex::new(Reg(0))), u64::MAX, 2),
            Err(BusError::BadRange { base: u64::MAX })
        );
        bus.insert(Arc::new(Mutex::new(Reg(0))), 0x110, 1).unwrap();
    }
}
