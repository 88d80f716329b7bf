//! A handoff disk as the install environment may write it -> the harness's handoff reader:
//! header, grub.cfg, grub's default entry, each entry streamed with its checksum. Whatever
//! the bytes: no panic, nothing read outside the disk, and what is accepted obeys the caps.
//! The input's first 4096 bytes are the header; the rest is the disk from 1 MiB on, where
//! the first entry's data starts (the bytes between read as zeros), so small inputs reach
//! the entries.
#![no_main]

use std::io::{Read, Seek, SeekFrom};

use harness::handoff::{self, KERNEL_CAP, MAX_CMDLINE, format};
use libfuzzer_sys::fuzz_target;

/// The disk: `header` at 0, zeros up to 1 MiB, then `data`.
struct Disk<'a> {
    header: &'a [u8],
    data: &'a [u8],
    pos: u64,
}

impl Disk<'_> {
    fn len(&self) -> u64 {
        format::DATA_ALIGN + self.data.len() as u64
    }
}

impl Read for Disk<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.pos;
        if start >= self.len() {
            return Ok(0);
        }
        let n = buf.len().min((self.len() - start) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = start + i as u64;
            *b = if at >= format::DATA_ALIGN {
                self.data[(at - format::DATA_ALIGN) as usize]
            } else {
                self.header.get(at as usize).copied().unwrap_or(0)
            };
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Disk<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match to {
            SeekFrom::Start(p) => self.pos = p,
            _ => unreachable!("the reader seeks from the start only"),
        }
        Ok(self.pos)
    }
}

fuzz_target!(|input: &[u8]| {
    let split = input.len().min(format::HEADER_LEN);
    let (header, data) = input.split_at(split);
    let mut disk = Disk {
        header,
        data,
        pos: 0,
    };
    let len = disk.len();
    let Ok(h) = handoff::read_header(&mut disk, len) else {
        return;
    };
    assert!(h.entries.len() <= format::MAX_ENTRIES);
    for e in &h.entries {
        assert!(e.offset >= format::DATA_ALIGN && e.offset + e.size <= len);
        assert!(format::check_path(&e.path).is_ok());
    }
    let Ok(r) = handoff::resolve(&mut disk, &h) else {
        return;
    };
    assert!(r.kernel.size <= KERNEL_CAP && r.args.len() <= MAX_CMDLINE);
    let mut copied = 0u64;
    let _ = handoff::copy_entry(&mut disk, &r.kernel, |b| {
        copied += b.len() as u64;
        Ok(())
    });
    assert!(copied <= r.kernel.size);
});
