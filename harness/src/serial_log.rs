//! The one reader of serial logs (and of the other logs a guest or a VMM can grow, such
//! as qemu's stderr). The guest decides how big these files get, so nothing here holds a
//! whole file: the tail, the last line and the console's last words come from a bounded
//! window at the end ([`TAIL_WINDOW`]), and what must look at every line (the install
//! verdict's failure patterns, a kernel panic) streams the file in fixed chunks with a
//! bounded line length ([`for_each_line`]). Every line comes out with terminal escape
//! sequences and control characters stripped, so what reaches a progress line, an error
//! or a JUnit file is plain text.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::Path;

/// Most bytes read from the end of a log for its tail or last line.
pub const TAIL_WINDOW: u64 = 64 << 10;
/// Bytes read at a time when streaming a whole log.
const CHUNK: usize = 64 << 10;
/// A line longer than this is cut there when streaming (the rest, up to its newline, is
/// skipped): a guest writing megabytes without a newline costs no more memory.
pub const MAX_LINE: usize = 4096;

/// `bytes` as text: invalid UTF-8 replaced, escape sequences and control characters
/// (carriage returns and tabs included) removed.
fn clean(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    strip_ansi_escapes::strip_str(text.as_ref())
}

/// The last [`TAIL_WINDOW`] bytes of `path` as cleaned lines (see [`window_lines_in`]).
/// `None` when it cannot be read.
fn window_lines(path: &Path) -> Option<Vec<String>> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    window_lines_in(&mut f, len, TAIL_WINDOW)
}

/// The last `window` bytes of a log of `len` bytes as cleaned lines, starting at a line
/// boundary when the window does not reach the start of the log. Holds at most `window`
/// bytes whatever `len` says.
pub(crate) fn window_lines_in<R: Read + Seek>(
    r: &mut R,
    len: u64,
    window: u64,
) -> Option<Vec<String>> {
    let start = len.saturating_sub(window);
    r.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::with_capacity((len - start).min(window) as usize);
    r.take(window).read_to_end(&mut buf).ok()?;
    let mut body = &buf[..];
    if start > 0 {
        // The window began mid-line: drop that partial line unless it is all there is.
        if let Some(nl) = body.iter().position(|&b| b == b'\n') {
            body = &body[nl + 1..];
        }
    }
    Some(body.split(|&b| b == b'\n').map(clean).collect())
}

/// The last `lines` of a window's lines joined, or None when they are all blank.
pub(crate) fn tail_of(v: &[String], lines: usize) -> Option<String> {
    let mut end = v.len();
    // A final newline leaves one empty piece; it is not a line.
    if v.last().is_some_and(String::is_empty) {
        end -= 1;
    }
    let v = &v[..end];
    if v.iter().all(|l| l.trim().is_empty()) {
        return None;
    }
    Some(v[v.len().saturating_sub(lines)..].join("\n"))
}

/// The last line of a window's lines that is not blank, trimmed.
pub(crate) fn last_of(v: &[String]) -> String {
    v.iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

/// The last `lines` lines of a log, for error messages; says so when the guest printed
/// nothing (or the file is missing).
pub fn tail(path: &Path, lines: usize) -> String {
    let v = window_lines(path).unwrap_or_default();
    tail_of(&v, lines)
        .unwrap_or_else(|| format!("({} is empty: the guest printed nothing)", path.display()))
}

/// The last non-empty line, trimmed (empty when there is none): for progress lines and
/// for how a console session ended.
pub fn last_line(path: &Path) -> String {
    last_of(&window_lines(path).unwrap_or_default())
}

/// Calls `f` with every line of the log in order (cleaned, at most [`MAX_LINE`] bytes
/// each before cleaning) until it breaks; reads [`CHUNK`] bytes at a time, so memory stays
/// bounded whatever the file's size. A missing file has no lines.
pub fn for_each_line(path: &Path, f: impl FnMut(&str) -> ControlFlow<()>) {
    let Ok(file) = File::open(path) else {
        return;
    };
    lines_in(file, CHUNK, MAX_LINE, f);
}

/// [`for_each_line`] over any reader: reads `chunk` bytes at a time and hands over at
/// most `max_line` bytes of each line (before cleaning). How the reader splits the data
/// does not change the lines.
pub(crate) fn lines_in<R: Read>(
    mut r: R,
    chunk: usize,
    max_line: usize,
    mut f: impl FnMut(&str) -> ControlFlow<()>,
) {
    let mut chunk = vec![0u8; chunk.max(1)];
    let mut line: Vec<u8> = Vec::with_capacity(max_line);
    // Past max_line: skip to the next newline.
    let mut skipping = false;
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for piece in chunk[..n].split_inclusive(|&b| b == b'\n') {
            let (body, ends) = match piece.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (piece, false),
            };
            if !skipping {
                let take = body.len().min(max_line - line.len());
                line.extend_from_slice(&body[..take]);
                if take < body.len() {
                    // Too long: hand over what fits now, skip the rest of this line.
                    if f(&clean(&line)).is_break() {
                        return;
                    }
                    line.clear();
                    skipping = true;
                }
            }
            if ends {
                if skipping {
                    skipping = false;
                } else {
                    if f(&clean(&line)).is_break() {
                        return;
                    }
                    line.clear();
                }
            }
        }
    }
    if !skipping && !line.is_empty() {
        let _ = f(&clean(&line));
    }
}

/// The first line holding `needle`, trimmed.
pub fn first_line_containing(path: &Path, needle: &str) -> Option<String> {
    let mut found = None;
    for_each_line(path, |l| {
        if l.contains(needle) {
            found = Some(l.trim().to_string());
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}

/// A kernel panic in the serial log (with `-no-reboot`, `panic=-1` shows as a reset).
pub fn panic_line(path: &Path) -> Option<String> {
    first_line_containing(path, "Kernel panic - not syncing")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(path: &Path) -> Vec<String> {
        let mut v = Vec::new();
        for_each_line(path, |l| {
            v.push(l.to_string());
            ControlFlow::Continue(())
        });
        v
    }

    #[test]
    fn serial_line_for_progress() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.log");
        std::fs::write(
            &p,
            "a\n[\u{1b}[0;32m  OK  \u{1b}[0m] Reached target Network.\r\n\n",
        )
        .unwrap();
        assert_eq!(last_line(&p), "[  OK  ] Reached target Network.");
        assert_eq!(last_line(&d.path().join("none")), "");
    }

    #[test]
    fn tail_is_the_last_lines_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.log");
        std::fs::write(&p, "one\ntwo\n\u{1b}[1mthree\u{1b}[0m\r\n").unwrap();
        assert_eq!(tail(&p, 2), "two\nthree");
        assert_eq!(tail(&p, 10), "one\ntwo\nthree");
        std::fs::write(&p, "\n\n").unwrap();
        assert!(tail(&p, 5).contains("is empty: the guest printed nothing"));
        assert!(tail(&d.path().join("none"), 5).contains("is empty"));
    }

    /// A log far larger than the window: the tail and the last line come from its end,
    /// starting at a whole line, and reading it costs the window, not the file.
    #[test]
    fn tail_of_a_big_log_reads_only_its_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.log");
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str(&format!("line {i:06} of the guest's chatter\n"));
        }
        std::fs::write(&p, &text).unwrap();
        assert!(text.len() as u64 > 20 * TAIL_WINDOW);
        assert_eq!(
            tail(&p, 2),
            "line 099998 of the guest's chatter\nline 099999 of the guest's chatter"
        );
        assert_eq!(last_line(&p), "line 099999 of the guest's chatter");
        let lines = window_lines(&p).unwrap();
        assert!(lines[0].starts_with("line "), "{}", lines[0]);
        assert!(lines.len() < 2000);
    }

    #[test]
    fn streaming_sees_every_line_across_chunks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.log");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("l{i}\r\n"));
        }
        text.push_str("Kernel panic - not syncing: \u{1b}[31mVFS\u{1b}[0m\nafter\nno newline");
        std::fs::write(&p, &text).unwrap();
        let lines = lines_of(&p);
        assert_eq!(lines.len(), 20_003);
        assert_eq!(lines[12345], "l12345");
        assert_eq!(panic_line(&p).unwrap(), "Kernel panic - not syncing: VFS");
        assert_eq!(lines.last().unwrap(), "no newline");
        assert_eq!(panic_line(&d.path().join("none")), None);
    }

    /// Streaming gives the same lines whatever sizes the reads return, right at the line
    /// cap included (the property the serial_log fuzz target checks on any input).
    #[test]
    fn lines_do_not_depend_on_read_sizes() {
        struct Drip<'a>(&'a [u8], usize);
        impl Read for Drip<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let log = b"12345678\n123456789\n\x1b[1mab\x1b[0m\n\n1234567890123\ntail";
        let all = |r: &mut dyn Read, chunk| {
            let mut v = Vec::new();
            lines_in(r, chunk, 8, |l| {
                v.push(l.to_string());
                ControlFlow::Continue(())
            });
            v
        };
        let whole = all(&mut &log[..], log.len());
        assert_eq!(
            whole,
            ["12345678", "12345678", "ab", "", "12345678", "tail"]
        );
        for read in 1..10 {
            for chunk in 1..10 {
                assert_eq!(all(&mut Drip(log, read), chunk), whole, "{read} {chunk}");
            }
        }
    }

    /// A line of megabytes without a newline is cut at MAX_LINE; the lines after it are
    /// still seen.
    #[test]
    fn a_huge_line_is_cut_and_the_next_ones_still_seen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.log");
        let mut data = vec![b'x'; 3 * CHUNK + 17];
        data.extend_from_slice(b"\nKernel panic - not syncing: late\n");
        std::fs::write(&p, &data).unwrap();
        let lines = lines_of(&p);
        assert_eq!(
            lines.len(),
            2,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "Kernel panic - not syncing: late");
        assert!(panic_line(&p).is_some());
    }
}
