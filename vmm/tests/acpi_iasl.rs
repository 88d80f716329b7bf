//! The generated ACPI tables decompile cleanly with ACPICA's `iasl -d` (Debian package
//! acpica-tools), and the DSDT holds the devices we expect.

use std::process::Command;

#[test]
fn tables_decompile_cleanly_and_dsdt_lists_the_devices() {
    let dir = std::env::temp_dir().join(format!("vmm-iasl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (sig, bytes) in vmm::testing::acpi_tables(4) {
        let dat = dir.join(format!("{}.dat", sig.to_lowercase()));
        std::fs::write(&dat, bytes).unwrap();
        let out = Command::new("iasl")
            .arg("-d")
            .arg(&dat)
            .current_dir(&dir)
            .output()
            .expect("iasl is needed for this test: apt-get install acpica-tools");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "iasl -d {sig} failed:\n{text}");
        assert!(
            !text.contains("Error"),
            "iasl reported errors for {sig}:\n{text}"
        );
        let dsl = std::fs::read_to_string(dat.with_extension("dsl")).unwrap();
        assert!(
            !dsl.contains("**** ACPI table terminates"),
            "{sig} truncated:\n{dsl}"
        );
        match sig.as_str() {
            "DSDT" => {
                for want in [
                    "Device (COM1)",
                    "EisaId (\"PNP0501\")",
                    "\"QEMU0001\"",
                    "_S5_",
                    "IO (Decode16",
                ] {
                    assert!(dsl.contains(want), "DSDT lacks {want}:\n{dsl}");
                }
            }
            "FACP" => {
                assert!(dsl.contains("Hardware Reduced (V5) : 1"), "{dsl}");
                assert!(dsl.contains("Reset Register Supported (V2) : 1"), "{dsl}");
            }
            "APIC" => {
                assert_eq!(dsl.matches("Processor Local APIC").count(), 4, "{dsl}");
                assert_eq!(
                    dsl.matches("Subtable Type : 01 [I/O APIC]").count(),
                    1,
                    "{dsl}"
                );
            }
            _ => {}
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
