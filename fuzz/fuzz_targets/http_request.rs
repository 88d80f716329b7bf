//! What a guest sends the harness's HTTP server (seed, squashfs, webhook): the request
//! head as the server accumulates it (at most MAX_HEAD + 1 bytes), its headers, the
//! `Content-Length` and `Range` values, and a webhook POST body streamed into a capped
//! events log. Whatever the bytes: no panic, at most MAX_HEADERS headers, ranges inside
//! the resource, and the events file never past its cap (plus one note line) nor left
//! with a partial event.
#![no_main]

use std::io::Read;

use harness::http::{
    Appended, EventLog, MAX_HEAD, MAX_HEADERS, RequestHead, head_end, parse_range,
};
use libfuzzer_sys::fuzz_target;

/// The events log's cap here: small, so inputs reach it.
const EVENTS_CAP: u64 = 512;

fuzz_target!(|data: &[u8]| {
    // The server stops reading a head at MAX_HEAD + 1 bytes.
    let buf = &data[..data.len().min(MAX_HEAD + 1)];
    let Some(end) = head_end(buf) else {
        return;
    };
    assert!(end > 0 && end <= buf.len());
    let Ok(head) = RequestHead::parse(&buf[..end]) else {
        return;
    };
    assert!(head.headers.len() <= MAX_HEADERS);
    if let Ok(Some(range)) = head.header("range") {
        for len in [0, 1, 7, 4096, u64::MAX] {
            if let Some((s, e)) = parse_range(range, len) {
                assert!(s <= e && e < len, "{range:?} against {len}: {s}-{e}");
            }
        }
    }
    let Ok(len) = head.content_length() else {
        return;
    };
    if head.method != "POST" {
        return;
    }
    // The body as the server streams it: what came with the head, then nothing more.
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("events.json");
    let mut log = EventLog::open(&path, EVENTS_CAP).expect("events file");
    let mut body = &data[end..];
    let fits = (body.len() as u64) >= len;
    let before = std::fs::metadata(&path).expect("events file").len();
    let r = log.append(&mut body.by_ref(), len);
    let after = std::fs::metadata(&path).expect("events file").len();
    match r {
        Ok(Appended::Written) => {
            assert!(fits);
            assert_eq!(after, before + len + 1);
            let text = std::fs::read(&path).expect("events file");
            assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 1);
        }
        Ok(Appended::Dropped) => assert!(after <= EVENTS_CAP + 200, "{after}"),
        Err(_) => assert_eq!(after, before, "a short body leaves no partial line"),
    }
});
