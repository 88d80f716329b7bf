//! An installed disk's partition table (MBR with extended partitions, or GPT with its
//! header and entry-array checksums) as the builtin boot phase reads it to find /boot.
//! The first byte picks the logical sector size, the rest is the disk. Whatever the
//! bytes: no panic, no allocation beyond MAX_GPT_ARRAY_BYTES, at most 4 primary plus
//! MAX_LOGICAL_PARTITIONS (MBR) or the entry array's capacity (GPT) partitions, and no
//! partition whose end overflows (the reader of its filesystem adds offsets to its start).
#![no_main]

use std::io::Cursor;

use harness::bootinfo::partition::{MAX_GPT_ARRAY_BYTES, MAX_LOGICAL_PARTITIONS};
use harness::bootinfo::read_partitions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((pick, disk)) = data.split_first() else {
        return;
    };
    let sector = if pick & 1 == 0 { 512 } else { 4096 };
    let size = disk.len() as u64;
    let Ok(parts) = read_partitions(&mut Cursor::new(disk), size, sector) else {
        return;
    };
    let most = (4 + MAX_LOGICAL_PARTITIONS).max((MAX_GPT_ARRAY_BYTES / 128) as usize);
    assert!(parts.len() <= most, "{} partitions", parts.len());
    for p in &parts {
        assert!(p.start.checked_add(p.len).is_some(), "{p:?} ends past 2^64");
    }
});
