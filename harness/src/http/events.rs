//! The webhook events log (logs/webhooks-events.json): one POST body per line, streamed
//! to the file (never held whole in memory) and capped. Once the next event would pass
//! the cap, one note line says so and later events are read and dropped: the file is
//! always a complete prefix of what the guest sent.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Default cap of the events file. A curtin install sends a few hundred small events
/// (~100 KiB) and, last, the `cmd-install` result carrying the whole install log base64
/// (1-10 MiB for real installs): 64 MiB keeps that with a wide margin, and bounds what a
/// guest that posts in a loop can make the host store.
pub const EVENTS_CAP: u64 = 64 << 20;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Written,
    /// Over the cap: read and dropped.
    Dropped,
}

pub struct EventLog {
    file: File,
    /// Bytes in the file.
    len: u64,
    cap: u64,
    full: bool,
}

impl EventLog {
    /// Appends to `path` (created when missing) up to `cap` bytes in all.
    pub fn open(path: &Path, cap: u64) -> std::io::Result<EventLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(EventLog {
            file,
            len,
            cap,
            full: len >= cap,
        })
    }

    /// Streams a body of `body_len` bytes from `body` as one line, line breaks replaced
    /// by spaces. A read or write error leaves the file as it was before the event.
    pub fn append(&mut self, body: &mut dyn Read, body_len: u64) -> std::io::Result<Appended> {
        if self.full || self.len.saturating_add(body_len).saturating_add(1) > self.cap {
            std::io::copy(&mut body.take(body_len), &mut std::io::sink())?;
            if !self.full {
                self.full = true;
                let note = format!(
                    "{{\"vmtest_note\": \"webhook events stopped at the {}-byte cap of this file; later events were dropped\"}}\n",
                    self.cap
                );
                self.file.write_all(note.as_bytes())?;
                self.len += note.len() as u64;
            }
            return Ok(Appended::Dropped);
        }
        let before = self.len;
        match self.stream_line(body, body_len) {
            Ok(n) => {
                self.len += n;
                Ok(Appended::Written)
            }
            Err(e) => {
                // Append mode writes at the end whatever the offset: cutting back is enough.
                let _ = self.file.set_len(before);
                Err(e)
            }
        }
    }

    fn stream_line(&mut self, body: &mut dyn Read, body_len: u64) -> std::io::Result<u64> {
        let mut buf = vec![0u8; 64 << 10];
        let mut body = body.take(body_len);
        let mut written = 0u64;
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            for b in &mut buf[..n] {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
            self.file.write_all(&buf[..n])?;
            written += n as u64;
        }
        if written != body_len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("body ended after {written} of {body_len} bytes"),
            ));
        }
        self.file.write_all(b"\n")?;
        Ok(written + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_event_a_cap_and_a_note() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("events.json");
        let mut log = EventLog::open(&p, 40).unwrap();
        let mut ev = |s: &str| log.append(&mut s.as_bytes(), s.len() as u64).unwrap();
        assert_eq!(ev("{\"a\":\n1}"), Appended::Written);
        assert_eq!(ev("{\"b\":\r\n2}"), Appended::Written);
        // 9 + 10 bytes written; 30 more would pass 40.
        assert_eq!(ev(&"x".repeat(30)), Appended::Dropped);
        assert_eq!(ev("{}"), Appended::Dropped, "once full, always full");
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["{\"a\": 1}", "{\"b\":  2}"]);
        assert!(lines[2].contains("40-byte cap"), "{text}");
        assert_eq!(lines.len(), 3);
        // Reopened, the full file stays full.
        let mut log = EventLog::open(&p, 40).unwrap();
        assert_eq!(log.append(&mut &b"{}"[..], 2).unwrap(), Appended::Dropped);
    }

    #[test]
    fn a_short_body_leaves_the_file_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("events.json");
        let mut log = EventLog::open(&p, 1 << 20).unwrap();
        log.append(&mut &b"{}"[..], 2).unwrap();
        assert!(log.append(&mut &b"{\"partial"[..], 100).is_err());
        log.append(&mut &b"{}"[..], 2).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}\n{}\n");
    }
}
