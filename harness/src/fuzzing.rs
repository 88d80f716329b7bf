//! Entry points for the cargo-fuzz targets under `fuzz/` into code that is otherwise
//! private: the serial-log readers, which the harness runs on files, here run on bytes in
//! memory with their window, chunk and line caps scaled down so that small fuzz inputs
//! reach every boundary. Everything else the targets drive (HTTP request heads, collect
//! extraction, grub.cfg, partition tables, webhook events, the collected-data parsers) is
//! the public API the harness itself uses.

use std::io::{Cursor, Read};
use std::ops::ControlFlow;

use crate::serial_log;

/// The tail (`lines` lines; None when blank) and the last line of `log` as
/// [`serial_log::tail`] and [`serial_log::last_line`] compute them, with a `window`-byte
/// window instead of [`serial_log::TAIL_WINDOW`].
pub fn serial_log_tail(log: &[u8], window: u64, lines: usize) -> (Option<String>, String) {
    let v = serial_log::window_lines_in(&mut Cursor::new(log), log.len() as u64, window)
        .expect("reading from memory cannot fail");
    (serial_log::tail_of(&v, lines), serial_log::last_of(&v))
}

/// Every line [`serial_log::for_each_line`] hands over for the log `r` yields, with
/// `chunk`-byte reads and `max_line`-byte lines instead of its constants.
pub fn serial_log_lines<R: Read>(r: R, chunk: usize, max_line: usize) -> Vec<String> {
    let mut out = Vec::new();
    serial_log::lines_in(r, chunk, max_line, |l| {
        out.push(l.to_string());
        ControlFlow::Continue(())
    });
    out
}
