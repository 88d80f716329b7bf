//! Guest Ethernet frames -> the user-mode network's host-access filter and RST builder.
//! Whatever the bytes, no panic, and a RST is only ever built for a rejected TCP segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use usernet::filter::{HostFilter, Verdict, tcp_reset_for};

fuzz_target!(|frame: &[u8]| {
    let f = HostFilter::new(
        &[8080, 443],
        vec![
            (Ipv4Addr::LOCALHOST, 8),
            (Ipv4Addr::new(192, 168, 1, 2), 24),
        ],
        "internet,192.168.1.5:3142".parse().unwrap(),
    );
    if f.check(frame) == Verdict::Reject {
        let rst = tcp_reset_for(frame).expect("a rejected frame is a TCP segment");
        assert_eq!(rst.len(), 54);
    } else {
        let _ = tcp_reset_for(frame);
    }
});
