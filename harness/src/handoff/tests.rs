//! The handoff reader against what a guest could write: good images, and hostile ones
//! (oversized, truncated, path escapes, malformed headers).

use std::io::Cursor;

use super::format::{self, Kind};
use super::*;

const CFG: &str = "set default=0\nmenuentry 'Debian' {\n\tlinux\t/vmlinuz-6.1 root=/dev/mapper/vg0-root ro console=ttyS0 $vt_handoff\n\tinitrd\t/initrd.img-6.1\n}\n";

fn image(entries: &[(Kind, &str, &[u8])]) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    write_image(&mut c, entries).unwrap();
    c.into_inner()
}

fn good() -> Vec<u8> {
    image(&[
        (Kind::GrubCfg, "/boot/grub/grub.cfg", CFG.as_bytes()),
        (Kind::File, "/vmlinuz-6.1", b"KERNEL"),
        (Kind::File, "/initrd.img-6.1", b"INITRD"),
    ])
}

/// A header block of `text`, NUL-padded, on a disk of `len` bytes.
fn header_only(text: &str, len: u64) -> Result<format::Header, HandoffError> {
    let mut b = text.as_bytes().to_vec();
    b.resize(format::HEADER_LEN, 0);
    format::parse(&b, len)
}

const SUM: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn line(kind: &str, size: u64, path: &str) -> String {
    format!("{kind} {size} {SUM} {path}\n")
}

fn with_cfg(rest: &str) -> String {
    format!(
        "vmtest-handoff 1\n{}{rest}end\n",
        line("grub-cfg", 10, "/boot/grub/grub.cfg")
    )
}

fn resolve_bytes(disk: &[u8]) -> Result<Resolved, HandoffError> {
    let mut c = Cursor::new(disk);
    let h = read_header(&mut c, disk.len() as u64)?;
    resolve(&mut c, &h)
}

#[test]
fn a_good_handoff_boots_its_default_entry() {
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("handoff.img");
    std::fs::write(&disk, good()).unwrap();
    let b = boot_entry(&disk, d.path()).unwrap();
    assert_eq!(std::fs::read(&b.kernel).unwrap(), b"KERNEL");
    assert_eq!(std::fs::read(b.initrd.unwrap()).unwrap(), b"INITRD");
    assert_eq!(
        b.cmdline,
        "BOOT_IMAGE=/vmlinuz-6.1 root=/dev/mapper/vg0-root ro console=ttyS0"
    );
    // Entries sit at MiB boundaries, in header order.
    let h = read_header(&mut Cursor::new(good()), good().len() as u64).unwrap();
    let offsets: Vec<u64> = h.entries.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [1 << 20, 2 << 20, 3 << 20]);
}

#[test]
fn a_blank_or_foreign_disk_is_named() {
    assert!(matches!(
        format::parse(&[0u8; 4096], 1 << 30),
        Err(HandoffError::Blank)
    ));
    let e = header_only("hello\n", 1 << 30).unwrap_err().to_string();
    assert!(e.contains("does not start with `vmtest-handoff 1`"), "{e}");
    let e = header_only("vmtest-handoff 2\nend\n", 1 << 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("version 2"), "{e}");
    let e = header_only("vmtest-handoff 1\nend\n", 1 << 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no grub-cfg"), "{e}");
    // A disk smaller than the header.
    assert!(matches!(
        read_header(&mut Cursor::new(vec![0u8; 10]), 10),
        Err(HandoffError::Blank)
    ));
}

#[test]
fn a_truncated_header_or_disk_is_refused() {
    // No `end`: the header was cut short.
    let text = with_cfg("");
    let cut = &text[..text.len() - 4];
    let e = header_only(cut, 1 << 30).unwrap_err().to_string();
    assert!(e.contains("no `end` line"), "{e}");
    // Data past the end of the disk.
    let e = header_only(&with_cfg(&line("file", 5 << 20, "/vmlinuz")), 4 << 20).unwrap_err();
    assert!(
        matches!(&e, HandoffError::PastEnd { path, disk_len, .. } if path == "/vmlinuz" && *disk_len == 4 << 20),
        "{e}"
    );
    // A real image whose last file was cut off by the end of the disk.
    let mut img = good();
    img.truncate(img.len() - 3);
    let e = resolve_bytes(&img).unwrap_err();
    assert!(
        matches!(&e, HandoffError::PastEnd { path, .. } if path == "/initrd.img-6.1"),
        "{e}"
    );
    // A write that did not complete: the bytes are not what the header promised.
    let mut img = good();
    img[(2 << 20) + 1] = 0;
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("h.img");
    std::fs::write(&disk, &img).unwrap();
    let e = boot_entry(&disk, d.path()).unwrap_err();
    assert!(
        matches!(&e, HandoffError::Checksum { path } if path == "/vmlinuz-6.1"),
        "{e}"
    );
    assert!(
        !d.path().join("vmlinuz").exists(),
        "nothing half-copied left"
    );
}

#[test]
fn oversized_entries_are_refused_before_reading() {
    for (kind, cap) in [
        ("grub-cfg", format::GRUB_CFG_CAP),
        ("file", format::FILE_CAP),
    ] {
        let text = format!("vmtest-handoff 1\n{}end\n", line(kind, cap + 1, "/x"));
        let e = header_only(&text, u64::MAX).unwrap_err();
        assert!(
            matches!(&e, HandoffError::TooLarge { size, cap: c, .. } if *size == cap + 1 && *c == cap),
            "{e}"
        );
    }
    let e = header_only(&with_cfg(&line("file", u64::MAX, "/x")), u64::MAX).unwrap_err();
    assert!(matches!(e, HandoffError::TooLarge { .. }), "{e}");
    let e = header_only(
        &with_cfg(&format!("file 99999999999999999999999 {SUM} /x\n")),
        u64::MAX,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a number"), "{e}");
    // A kernel within the file cap but over the kernel's, on a sparse disk: refused by
    // its size, nothing read or allocated for it.
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("h.img");
    let mut f = File::create(&disk).unwrap();
    write_image(
        &mut f,
        &[
            (Kind::GrubCfg, "/boot/grub/grub.cfg", CFG.as_bytes()),
            (Kind::File, "/initrd.img-6.1", b"INITRD"),
        ],
    )
    .unwrap();
    let big = KERNEL_CAP + 1;
    let mut text = String::from("vmtest-handoff 1\n");
    let h = read_header(&mut File::open(&disk).unwrap(), 8 << 20).unwrap();
    for e in &h.entries {
        let sum: String = e.sha256.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{} {} {sum} {}\n", e.kind.name(), e.size, e.path));
    }
    text.push_str(&line("file", big, "/vmlinuz-6.1"));
    text.push_str("end\n");
    let mut block = text.into_bytes();
    block.resize(format::HEADER_LEN, 0);
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&block).unwrap();
    f.set_len(1 << 30).unwrap();
    let e = boot_entry(&disk, d.path()).unwrap_err();
    assert!(
        matches!(&e, HandoffError::TooLarge { what: "kernel", size, .. } if *size == big),
        "{e}"
    );
}

#[test]
fn paths_outside_grubs_root_or_odd_are_refused() {
    for (path, why) in [
        ("/../etc/shadow", "`..`"),
        ("/boot/../../x", "`..`"),
        ("/./vmlinuz", "`.`"),
        ("vmlinuz", "not absolute"),
        ("/a//b", "empty component"),
        ("/boot/", "empty component"),
        ("/", "empty component"),
        ("/a\tb", "character"),
        ("/a\\b", "character"),
        ("/$(reboot)", "character"),
    ] {
        let e = header_only(&with_cfg(&line("file", 1, path)), 1 << 30).unwrap_err();
        assert!(
            matches!(&e, HandoffError::Path { .. }) && e.to_string().contains(why),
            "{path}: {e}"
        );
    }
    let long = format!("/{}", "a".repeat(255));
    let e = header_only(&with_cfg(&line("file", 1, &long)), 1 << 30).unwrap_err();
    assert!(e.to_string().contains("longer than 255"), "{e}");
    assert!(format::check_path("/boot/vmlinuz-6.1.0-13-amd64").is_ok());
    assert!(format::check_path("/@/boot/initrd.img-6.1+deb12~1").is_ok());
}

#[test]
fn malformed_headers_are_refused() {
    for (rest, why) in [
        ("file 1 /x\n", "3 words"),
        ("file  1 x /x\n", "5 words"),
        (
            "kernel 1 x /x\n".to_string().as_str(),
            "neither grub-cfg nor file",
        ),
        (&format!("file 1 {} /x\n", &SUM[1..]), "64 hex digits"),
        (&format!("file +1 {SUM} /x\n"), "not a number"),
        (&line("grub-cfg", 1, "/g"), "second grub-cfg"),
        (
            &(line("file", 1, "/x") + &line("file", 1, "/x")),
            "/x a second time",
        ),
        ("\n", "1 words"),
    ] {
        let e = header_only(&with_cfg(rest), 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{rest:?}: {e}");
    }
    let many: String = (0..format::MAX_ENTRIES)
        .map(|i| line("file", 1, &format!("/f{i}")))
        .collect();
    let e = header_only(&with_cfg(&many), 1 << 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than 17 entries"), "{e}");
    let e = header_only(&format!("{}junk\n", with_cfg("")), 1 << 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("after `end`"), "{e}");
    // Bytes after the padding began, and text that is not ASCII.
    let mut b = with_cfg("").into_bytes();
    b.resize(format::HEADER_LEN, 0);
    b[4000] = 1;
    let e = format::parse(&b, 1 << 30).unwrap_err().to_string();
    assert!(e.contains("after the NUL padding"), "{e}");
    let e = header_only("vmtest-handoff 1\nfile 1 é /x\nend\n", 1 << 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not ASCII"), "{e}");
}

#[test]
fn the_default_entry_must_be_in_the_handoff_with_a_plain_command_line() {
    let img = image(&[
        (Kind::GrubCfg, "/boot/grub/grub.cfg", CFG.as_bytes()),
        (Kind::File, "/vmlinuz-6.1", b"KERNEL"),
    ]);
    let e = resolve_bytes(&img).unwrap_err();
    assert!(
        matches!(&e, HandoffError::Missing { path, what: "initrd", held } if path == "/initrd.img-6.1" && held == "/vmlinuz-6.1"),
        "{e}"
    );
    let img = image(&[(Kind::GrubCfg, "/boot/grub/grub.cfg", b"set default=0\n")]);
    assert!(matches!(
        resolve_bytes(&img),
        Err(HandoffError::NoMenuEntry)
    ));
    for (args, why) in [
        ("ro\u{1b}[2J".to_string(), "not printable ASCII"),
        ("x".repeat(MAX_CMDLINE + 1), "over the 1536-byte limit"),
    ] {
        let cfg = format!("menuentry 'x' {{\n linux /k {args}\n}}\n");
        let img = image(&[
            (Kind::GrubCfg, "/boot/grub/grub.cfg", cfg.as_bytes()),
            (Kind::File, "/k", b"K"),
        ]);
        let e = resolve_bytes(&img).unwrap_err();
        assert!(
            matches!(&e, HandoffError::Cmdline(_)) && e.to_string().contains(why),
            "{e}"
        );
    }
    // No initrd line: the kernel alone.
    let cfg = "menuentry 'x' {\n linux /k root=/dev/vda1\n}\n";
    let img = image(&[
        (Kind::GrubCfg, "/boot/grub/grub.cfg", cfg.as_bytes()),
        (Kind::File, "/k", b"K"),
    ]);
    let r = resolve_bytes(&img).unwrap();
    assert_eq!((r.kernel.path.as_str(), r.initrd), ("/k", None));
}

/// Runs `harness/installer/handoff.sh` on the host for `target`, writing to the image
/// `disk`; `timeout` bounds it (the script waits for udev and devices in a guest).
fn run_writer(target: &Path, disk: &Path) -> std::process::Output {
    std::process::Command::new("timeout")
        .args(["--kill-after=5", "120", "sh"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("installer/handoff.sh"))
        .arg(target)
        .env("VMTEST_HANDOFF_DEV", disk)
        .output()
        .expect("timeout sh handoff.sh")
}

/// The install environment's writer (`harness/installer/handoff.sh`) and this reader
/// agree: the script run on the host against a target tree whose /boot is in its root
/// (VMTEST_HANDOFF_DEV: an image file for the disk), then read back.
#[test]
fn the_shell_writer_and_this_reader_agree() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("target");
    std::fs::create_dir_all(t.join("boot/grub")).unwrap();
    let cfg = "set default=\"0\"\nmenuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1 root=/dev/md0 ro console=ttyS0\n\tinitrd\t/boot/initrd.img-6.1\n}\nmenuentry 'gone' {\n\tlinux\t/boot/vmlinuz-old\n\tinitrd\t(hd0,1)/x\n}\n";
    std::fs::write(t.join("boot/grub/grub.cfg"), cfg).unwrap();
    let kernel: Vec<u8> = (0..1_500_001u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(t.join("boot/vmlinuz-6.1"), &kernel).unwrap();
    std::fs::write(t.join("boot/initrd.img-6.1"), b"INITRD").unwrap();
    let disk = d.path().join("handoff.img");
    File::create(&disk).unwrap().set_len(64 << 20).unwrap();
    let out = run_writer(&t, &disk);
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("/boot/vmlinuz-old, which is not a file in the target: left out"),
        "{log}"
    );
    assert!(
        log.contains("(hd0,1)/x (not a path on grub's root): left out"),
        "{log}"
    );
    let b = boot_entry(&disk, d.path()).unwrap();
    assert!(std::fs::read(&b.kernel).unwrap() == kernel);
    assert_eq!(std::fs::read(b.initrd.unwrap()).unwrap(), b"INITRD");
    assert_eq!(
        b.cmdline,
        "BOOT_IMAGE=/boot/vmlinuz-6.1 root=/dev/md0 ro console=ttyS0"
    );
    // No grub.cfg in the target: the writer fails and says why.
    std::fs::remove_file(t.join("boot/grub/grub.cfg")).unwrap();
    let out = run_writer(&t, &disk);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no /boot/grub/grub.cfg")
            || String::from_utf8_lossy(&out.stderr).contains("no longer mounted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
