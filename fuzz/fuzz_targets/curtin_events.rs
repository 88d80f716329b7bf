//! curtin's webhook events as the harness reads them back after a failed install (one
//! JSON event per line; the last may carry curtin's install log, base64): the failed
//! step and the log's tail. Whatever the text: no panic, the description and the tail
//! cut to their limits.
#![no_main]

use harness::curtin_events::{LOG_TAIL_LINES, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let r = parse(&text);
    assert!(r.events <= text.lines().count());
    if let Some(f) = &r.failed {
        assert!(f.description.chars().count() <= 2000);
        assert!(f.name.len() <= text.len());
    }
    if let Some(t) = &r.log_tail {
        assert!(t.lines().count() <= LOG_TAIL_LINES);
        assert!(t.lines().all(|l| l.chars().count() <= 400));
    }
    let _ = r.problems();
});
