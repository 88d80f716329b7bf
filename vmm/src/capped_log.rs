//! A log file the guest fills (the serial console) that never passes a size cap, and
//! keeps both ends of what was written: the first half of the cap as it came, then one
//! marker line, then the most recent output. People debugging an install want its
//! beginning (boot, the installer's start) and its end (the failure, the verdict), so a
//! log that stopped at the cap, or kept only a rolling tail, would each lose one of them.
//!
//! Layout once over the cap: `head | marker | tail`. The head is the first `cap / 2`
//! bytes. The marker is a line of fixed length that says how many bytes were dropped,
//! rewritten in place as that grows. The tail region grows to twice its share and is
//! then cut back to its newer half (copied over the older one and the file truncated), so
//! the file is always in order for a reader of its end, and the copying costs one byte
//! per byte written at most.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The serial log cap when none is given: far above what an install prints (a few MiB
/// even at debug level), small enough that a guest printing for the whole install
/// timeout does not fill the disk.
pub const DEFAULT_LOG_CAP: u64 = 64 << 20;

/// Smallest cap accepted: room for a head, the marker and a tail.
pub const MIN_LOG_CAP: u64 = 1 << 10;

/// Bytes of the marker line (fixed, so it can be rewritten in place).
const MARKER_LEN: u64 = 128;

fn marker(cap: u64, dropped: u64) -> Vec<u8> {
    let text = format!(
        "\n[vmtest: log cap of {cap} bytes reached: {dropped:>20} bytes dropped here; the newest output follows]"
    );
    let mut line = text.into_bytes();
    line.resize(MARKER_LEN as usize - 1, b' ');
    line.push(b'\n');
    line
}

pub struct CappedLog {
    file: File,
    cap: u64,
    /// Bytes kept from the start.
    head: u64,
    /// Bytes of recent output kept after a cut; the tail region holds up to twice this.
    tail: u64,
    /// Bytes in the file.
    len: u64,
    /// Bytes dropped between the head and the tail; `None` until the head is full and
    /// the marker written.
    dropped: Option<u64>,
}

impl CappedLog {
    /// Creates the log at `path`: a new file, or with `overwrite` replacing one. `cap`
    /// below [`MIN_LOG_CAP`] is raised to it.
    pub fn create(path: &Path, overwrite: bool, cap: u64) -> io::Result<CappedLog> {
        let mut opts = OpenOptions::new();
        opts.write(true).read(true);
        if overwrite {
            opts.create(true).truncate(true);
        } else {
            opts.create_new(true);
        }
        Ok(Self::new(opts.open(path)?, cap))
    }

    /// A log over an empty file open for reading and writing.
    pub fn new(file: File, cap: u64) -> CappedLog {
        let cap = cap.max(MIN_LOG_CAP);
        let head = cap / 2;
        CappedLog {
            file,
            cap,
            head,
            tail: (cap - head - MARKER_LEN) / 2,
            len: 0,
            dropped: None,
        }
    }

    /// Bytes in the file now (at most the cap).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of output dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.unwrap_or(0)
    }

    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.len)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn tail_start(&self) -> u64 {
        self.head + MARKER_LEN
    }

    /// Keeps the newest `tail` bytes of the tail region, at its start.
    fn cut_tail(&mut self) -> io::Result<()> {
        let start = self.tail_start();
        let region = self.len - start;
        let drop = region - self.tail;
        // Forward copy to a lower offset: a chunk is written only below what is still
        // to be read.
        let mut buf = vec![0u8; (1 << 20).min(self.tail as usize)];
        let mut done = 0u64;
        while done < self.tail {
            let n = (self.tail - done).min(buf.len() as u64) as usize;
            self.file
                .read_exact_at(&mut buf[..n], start + drop + done)?;
            self.file.write_all_at(&buf[..n], start + done)?;
            done += n as u64;
        }
        self.len = start + self.tail;
        self.file.set_len(self.len)?;
        let dropped = self.dropped() + drop;
        self.dropped = Some(dropped);
        self.file
            .write_all_at(&marker(self.cap, dropped), self.head)
    }
}

impl Write for CappedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if self.dropped.is_none() {
            let room = (self.head - self.len) as usize;
            let n = room.min(rest.len());
            self.append(&rest[..n])?;
            rest = &rest[n..];
            if rest.is_empty() {
                return Ok(buf.len());
            }
            self.append(&marker(self.cap, 0))?;
            self.dropped = Some(0);
        }
        // Pieces of at most `tail` bytes, so a cut always keeps whole pieces' worth.
        for piece in rest.chunks(self.tail as usize) {
            let region = self.len - self.tail_start();
            if region + piece.len() as u64 > 2 * self.tail {
                self.cut_tail()?;
            }
            self.append(piece)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(cap: u64) -> (tempfile::TempDir, std::path::PathBuf, CappedLog) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("serial.log");
        let l = CappedLog::create(&p, false, cap).unwrap();
        (d, p, l)
    }

    #[test]
    fn under_the_cap_it_is_a_plain_file() {
        let (_d, p, mut l) = log(1 << 20);
        l.write_all(b"hello\n").unwrap();
        l.write_all(b"world\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello\nworld\n");
        assert_eq!(l.dropped(), 0);
        // Never replaces an existing log unasked.
        assert!(CappedLog::create(&p, false, 1 << 20).is_err());
    }

    /// A guest writing far past the cap: the file never passes it, holds the first half
    /// as written, a marker with the exact count dropped, and the newest bytes in order.
    #[test]
    fn over_the_cap_it_keeps_head_marker_and_newest_tail() {
        let cap = 8192;
        let (_d, p, mut l) = log(cap);
        let total: usize = 1_000_000;
        let data: Vec<u8> = (0..total).map(|i| b'a' + (i % 23) as u8).collect();
        let mut max_len = 0;
        // Odd-sized writes, as a UART's FIFO gives them.
        for piece in data.chunks(997) {
            l.write_all(piece).unwrap();
            max_len = max_len.max(std::fs::metadata(&p).unwrap().len());
        }
        assert!(max_len <= cap, "{max_len} > {cap}");
        let file = std::fs::read(&p).unwrap();
        let head = (cap / 2) as usize;
        assert_eq!(&file[..head], &data[..head]);
        let marker = &file[head..head + MARKER_LEN as usize];
        let text = String::from_utf8_lossy(marker);
        assert!(
            text.starts_with("\n[vmtest: log cap of 8192 bytes reached:"),
            "{text}"
        );
        let tail = &file[head + MARKER_LEN as usize..];
        assert_eq!(
            tail,
            &data[total - tail.len()..],
            "the tail is the newest output"
        );
        assert!(
            tail.len() as u64 >= l.tail,
            "at least a tail's worth is kept"
        );
        assert_eq!(l.dropped() as usize, total - head - tail.len());
        assert!(
            text.contains(&format!("{} bytes dropped", l.dropped())),
            "{text}"
        );
    }

    /// One write larger than the whole cap.
    #[test]
    fn a_single_huge_write() {
        let (_d, p, mut l) = log(4096);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        l.write_all(&data).unwrap();
        let file = std::fs::read(&p).unwrap();
        assert!(file.len() <= 4096);
        assert_eq!(&file[..2048], &data[..2048]);
        let tail = &file[2048 + MARKER_LEN as usize..];
        assert_eq!(tail, &data[data.len() - tail.len()..]);
    }
}
