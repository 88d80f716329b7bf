//! The guest's own words when it panics: the VMM keeps the last few KiB of serial output,
//! and when pvpanic reports a panic the crash report carries the kernel's panic line
//! ("Kernel panic - not syncing: ...") instead of only saying that one happened. Linux
//! prints that line before it calls its panic notifiers, pvpanic's among them.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// How much output is kept: a panic line and what leads up to it, never more, however much
/// the guest prints.
const KEEP: usize = 8 << 10;
/// Longest line reported: a guest decides what it prints.
const MAX_LINE: usize = 512;
const MARKER: &str = "Kernel panic - not syncing";

/// The tail of the serial output (a serial writer; clones share one tail).
#[derive(Clone, Default)]
pub struct SerialTail(Arc<Mutex<Vec<u8>>>);

impl SerialTail {
    /// The last line of the kept output that holds Linux's panic marker (preferring the
    /// panic itself to its closing "---[ end Kernel panic ..." line), from the marker on,
    /// without control characters and at most [`MAX_LINE`] bytes long.
    pub fn panic_line(&self) -> Option<String> {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&tail);
        let marked = || text.lines().rev().filter(|l| l.contains(MARKER));
        let line = marked()
            .find(|l| !l.contains("---[ end "))
            .or_else(|| marked().next())?;
        let from = &line[line.find(MARKER)?..];
        let clean: String = from
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_LINE)
            .collect();
        Some(clean.trim_end().to_string())
    }
}

impl Write for SerialTail {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let buf = &buf[buf.len().saturating_sub(KEEP)..];
        let excess = (tail.len() + buf.len()).saturating_sub(KEEP);
        tail.drain(..excess);
        tail.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_panic_line_is_found_from_its_marker_on() {
        let mut t = SerialTail::default();
        t.write_all(b"[    1.0] booting\r\n[    2.5] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n[    2.6] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---\r\n").unwrap();
        assert_eq!(
            t.panic_line().as_deref(),
            Some("Kernel panic - not syncing: VFS: Unable to mount root fs")
        );
        let mut t = SerialTail::default();
        t.write_all(b"[ 72.1] Kernel panic - not syncing: No working init found.\n")
            .unwrap();
        assert_eq!(
            t.panic_line().as_deref(),
            Some("Kernel panic - not syncing: No working init found.")
        );
        assert_eq!(SerialTail::default().panic_line(), None);
    }

    #[test]
    fn the_tail_is_bounded_whatever_the_guest_prints() {
        let mut t = SerialTail::default();
        t.write_all(b"Kernel panic - not syncing: early\n").unwrap();
        for _ in 0..100 {
            t.write_all(&[b'x'; 1000]).unwrap();
        }
        assert_eq!(t.0.lock().unwrap().len(), KEEP);
        assert_eq!(t.panic_line(), None, "the early line has scrolled out");
        let mut long = b"Kernel panic - not syncing: ".to_vec();
        long.extend_from_slice(&[b'y'; 4000]);
        long.push(b'\x1b');
        t.write_all(&long).unwrap();
        let line = t.panic_line().unwrap();
        assert_eq!(line.len(), MAX_LINE);
        assert!(!line.contains('\x1b'));
    }
}
