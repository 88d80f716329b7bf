//! Serial logs (and qemu's stderr) as the harness reads them: the tail and last line
//! from a window at the end, and every line streamed in chunks with a line cap, with
//! escape sequences stripped. The first bytes pick the window, chunk and line cap (small,
//! so inputs cross them) and how short each read is. Whatever the bytes: no panic, the
//! lines do not depend on how the reads split the log, no line holds more than its cap
//! (a byte of invalid UTF-8 becomes 3 bytes of U+FFFD), and the tail holds no more than
//! the window.
#![no_main]

use std::io::Read;

use harness::fuzzing::{serial_log_lines, serial_log_tail};
use libfuzzer_sys::fuzz_target;

/// A reader that returns the log in reads of the sizes `sizes` cycles through.
struct Uneven<'a> {
    log: &'a [u8],
    sizes: &'a [u8],
    turn: usize,
}

impl Read for Uneven<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = usize::from(self.sizes[self.turn % self.sizes.len()]).max(1);
        self.turn += 1;
        let n = want.min(buf.len()).min(self.log.len());
        buf[..n].copy_from_slice(&self.log[..n]);
        self.log = &self.log[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let [w, c, m, s0, s1, s2, log @ ..] = data else {
        return;
    };
    let window = u64::from(*w) * 4 + 1;
    let chunk = usize::from(*c % 64) + 1;
    let max_line = usize::from(*m % 128);
    let (tail, last) = serial_log_tail(log, window, 5);
    assert!(last.len() as u64 <= 3 * window);
    if let Some(t) = &tail {
        assert!(t.len() as u64 <= 3 * window + 5);
        assert!(t.lines().count() <= 5);
    }
    let whole = serial_log_lines(log, log.len() + 1, max_line);
    let sizes = [*s0, *s1, *s2];
    let uneven = serial_log_lines(
        Uneven {
            log,
            sizes: &sizes,
            turn: 0,
        },
        chunk,
        max_line,
    );
    assert_eq!(whole, uneven, "lines depend on how the log was read");
    assert!(whole.iter().all(|l| l.len() <= 3 * max_line));
    assert!(whole.len() <= log.len() + 1);
});
