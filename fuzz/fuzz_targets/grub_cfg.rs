//! An installed system's grub.cfg as the builtin boot phase reads it from the handoff disk (invalid UTF-8
//! replaced, at most GRUB_CFG_CAP bytes): which entry grub boots by default, and its
//! kernel, initrd and arguments. Whatever the text: no panic, and what comes out is text
//! of the input (no output longer than it).
#![no_main]

use harness::bootinfo::parse_grub_cfg;
use harness::handoff::format::GRUB_CFG_CAP;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(GRUB_CFG_CAP as usize)];
    let text = String::from_utf8_lossy(data);
    if let Some((kernel, initrd, args)) = parse_grub_cfg(&text) {
        assert!(!kernel.is_empty());
        assert!(kernel.len() <= text.len() && args.len() <= text.len());
        assert!(initrd.is_none_or(|i| i.len() <= text.len()));
    }
});
