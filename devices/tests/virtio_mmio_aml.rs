//! The AML each virtio-mmio transport emits must disassemble cleanly with ACPICA's iasl and
//! say what Linux's virtio_mmio driver matches on. Needs `iasl` (Debian: acpica-tools).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acpi_tables::Aml;
use acpi_tables::sdt::Sdt;
use devices::interrupt::CountingInterrupt;
use devices::virtio::GuestMemoryMmap;
use devices::virtio::block::{Block, BlockConfig};
use devices::virtio::mmio::MmioTransport;
use vm_memory::GuestAddress;
use vmm_sys_util::tempfile::TempFile;

#[test]
fn dsdt_with_two_transports_disassembles() {
    let img = TempFile::new().unwrap();
    img.as_file().set_len(1 << 20).unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let mut ro = BlockConfig::new(img.as_path());
    ro.read_only = true;
    let mut aml = Vec::new();
    for (i, base) in [0xd000_0000u64, 0xd000_1000].into_iter().enumerate() {
        let blk = Arc::new(Mutex::new(Block::new(ro.open().unwrap()).unwrap()));
        let t = MmioTransport::new(
            blk,
            mem.clone(),
            Arc::new(CountingInterrupt::default()),
            base,
            5 + i as u32,
        )
        .unwrap();
        t.to_aml_bytes(&mut aml);
    }
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, *b"VMTEST", *b"VMTESTDS", 1);
    dsdt.append_slice(&aml);
    dsdt.update_checksum();

    let dir = std::env::temp_dir().join(format!("vmtest-aml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dat = dir.join("dsdt.dat");
    std::fs::write(&dat, dsdt.as_slice()).unwrap();
    let mut child = match Command::new("iasl")
        .arg("-d")
        .arg(&dat)
        .current_dir(&dir)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("iasl not runnable ({e}); install acpica-tools"),
    };
    // Hard timeout: iasl on a tiny table takes milliseconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("iasl did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "iasl -d failed on our DSDT");
    let dsl = std::fs::read_to_string(dir.join("dsdt.dsl")).unwrap();
    if std::env::var_os("KEEP_DSL").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_eq!(dsl.matches("\"LNRO0005\"").count(), 2, "{dsl}");
    assert!(dsl.contains("Memory32Fixed (ReadWrite,"), "{dsl}");
    assert!(dsl.contains("0xD0001000"), "{dsl}");
    assert!(
        dsl.contains("Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive"),
        "{dsl}"
    );
    assert!(dsl.contains("0x00000006"), "GSI 6: {dsl}");
}
