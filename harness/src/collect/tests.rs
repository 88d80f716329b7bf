//! Tests of the output-disk extraction: one or more per way a guest's tar stream can be
//! hostile.

use super::*;

/// Builds a tar with raw headers so hostile names are written unchanged.
fn hostile_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        if let Some(l) = link {
            let raw = h.as_old_mut();
            raw.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("./", tar::EntryType::Directory, b"", None);
    add(
        "./fstab",
        tar::EntryType::Regular,
        b"UUID=1 / ext4 defaults 0 1\n",
        None,
    );
    add("./sub/", tar::EntryType::Directory, b"", None);
    add("./sub/f", tar::EntryType::Regular, b"ok", None);
    add("../escape", tar::EntryType::Regular, b"bad", None);
    add("./a/../../escape2", tar::EntryType::Regular, b"bad", None);
    add(
        "/tmp/abs_escape_vmtest",
        tar::EntryType::Regular,
        b"bad",
        None,
    );
    add("./link", tar::EntryType::Symlink, b"", Some("/etc"));
    add("./link/passwd", tar::EntryType::Regular, b"bad", None);
    add("./hard", tar::EntryType::Link, b"", Some("/etc/passwd"));
    add("./dev", tar::EntryType::Block, b"", None);
    add("./chr", tar::EntryType::Char, b"", None);
    add("./fifo", tar::EntryType::Fifo, b"", None);
    b.into_inner().unwrap()
}

#[test]
fn rejects_hostile_entries() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("collect");
    std::fs::create_dir(&dest).unwrap();
    let rep = extract_tar(&hostile_tar()[..], &dest, 1 << 20).unwrap();
    // ./link was refused, so ./link/passwd lands in a plain directory inside collect/.
    assert_eq!(rep.files, 3);
    assert_eq!(std::fs::read(dest.join("fstab")).unwrap().len(), 27);
    assert_eq!(std::fs::read(dest.join("sub/f")).unwrap(), b"ok");
    assert!(!d.path().join("escape").exists());
    assert!(!d.path().join("escape2").exists());
    assert!(!Path::new("/tmp/abs_escape_vmtest").exists());
    let names: Vec<&str> = rep.rejected.iter().map(|(n, _)| n.as_str()).collect();
    for n in [
        "../escape",
        "./a/../../escape2",
        "/tmp/abs_escape_vmtest",
        "./link",
        "./hard",
        "./dev",
        "./chr",
        "./fifo",
    ] {
        assert!(names.contains(&n), "{n} not rejected: {:?}", rep.rejected);
    }
    // Nothing but the two files and a directory was written.
    let mut all: Vec<_> = walk(&dest);
    all.sort();
    assert_eq!(all, vec!["fstab", "link", "link/passwd", "sub", "sub/f"]);
}

#[test]
fn never_writes_through_an_existing_symlink() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    let dest = d.path().join("collect");
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.join("f"), dest.join("evilfile")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for name in ["evil/x", "evilfile"] {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(1);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
    }
    let rep = extract_tar(&b.into_inner().unwrap()[..], &dest, 1 << 20).unwrap();
    // evil/x is refused; evilfile replaces the link with a plain file inside collect/.
    assert_eq!(rep.files, 1, "{:?}", rep.rejected);
    assert_eq!(rep.rejected.len(), 1, "{:?}", rep.rejected);
    assert!(rep.rejected[0].1.contains("not a directory"));
    assert!(dest.join("evilfile").symlink_metadata().unwrap().is_file());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

/// A tar with entries whose names are written raw (GNU long names when over 100
/// bytes), so names no `tar` would produce can be tested.
fn raw_tar(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        if name.len() < 100 {
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        } else {
            let mut l = tar::Header::new_gnu();
            l.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            l.set_entry_type(tar::EntryType::GNULongName);
            l.set_size(name.len() as u64 + 1);
            l.set_cksum();
            let mut long = name.to_vec();
            long.push(0);
            b.append(&l, &long[..]).unwrap();
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn extract(tar: &[u8], limits: &CollectLimits) -> (tempfile::TempDir, CollectReport) {
    let d = tempfile::tempdir().unwrap();
    let rep = extract_tar_with(tar, d.path(), limits).unwrap();
    (d, rep)
}

fn reason<'a>(rep: &'a CollectReport, name_start: &str) -> &'a str {
    rep.rejected
        .iter()
        .find(|(n, _)| n.starts_with(name_start))
        .map(|(_, why)| why.as_str())
        .unwrap_or_else(|| panic!("{name_start} not rejected: {:?}", rep.rejected))
}

/// A file then a directory of the same name, and the other way round: each later
/// entry is rejected and extraction goes on (it used to end with an error).
#[test]
fn same_name_conflicts_reject_the_entry_only() {
    let tar = raw_tar(&[
        (b"a", tar::EntryType::Regular, b"file"),
        (b"a/", tar::EntryType::Directory, b""),
        (b"a/b", tar::EntryType::Regular, b"x"),
        (b"d/", tar::EntryType::Directory, b""),
        (b"d", tar::EntryType::Regular, b"file"),
        (b"after", tar::EntryType::Regular, b"still here"),
        (b"after", tar::EntryType::Regular, b"later wins"),
    ]);
    let (d, rep) = extract(&tar, &CollectLimits::with_budget(1 << 20));
    assert!(reason(&rep, "a/").contains("not a directory"));
    assert!(reason(&rep, "a/b").contains("not a directory"));
    assert!(reason(&rep, "d").contains("is a directory"));
    assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"file");
    assert_eq!(
        std::fs::read(d.path().join("after")).unwrap(),
        b"later wins"
    );
    assert_eq!(rep.files, 3);
}

/// A name of a few MB (GNU long name) cost hours in the old per-prefix check; it is
/// now rejected by length before any file system call. So are over-long components,
/// over-deep paths and NUL bytes, each alone.
#[test]
fn long_deep_and_odd_names_are_rejected_per_entry() {
    let huge: Vec<u8> = b"a/".repeat(2 << 20);
    let long_name = [b"x".repeat(256), b"/f".to_vec()].concat();
    let deep = b"d/"
        .repeat(64)
        .into_iter()
        .chain(*b"f")
        .collect::<Vec<u8>>();
    let ok_deep = b"d/"
        .repeat(63)
        .into_iter()
        .chain(*b"f")
        .collect::<Vec<u8>>();
    let tar = raw_tar(&[
            (&huge, tar::EntryType::Regular, b"x"),
            (&long_name, tar::EntryType::Regular, b"x"),
            (&deep, tar::EntryType::Regular, b"x"),
            (b"nul\0/x/y/z/0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", tar::EntryType::Regular, b"x"),
            (&ok_deep, tar::EntryType::Regular, b"deep"),
            (b"fine", tar::EntryType::Regular, b"ok"),
        ]);
    let (d, rep) = extract(&tar, &CollectLimits::with_budget(1 << 20));
    assert!(reason(&rep, "a/a/").contains("longer than 4096"));
    assert!(reason(&rep, "xxx").contains("256 bytes is longer than 255"));
    assert!(reason(&rep, "d/d/").contains("65 levels deep"));
    assert!(reason(&rep, r"nul\u{0}").contains("NUL"));
    // Rejection records stay short whatever the name.
    assert!(
        rep.rejected.iter().all(|(n, _)| n.len() < 300),
        "{:?}",
        rep.rejected
    );
    assert_eq!(rep.files, 2, "{:?}", rep.rejected);
    assert_eq!(std::fs::read(d.path().join("fine")).unwrap(), b"ok");
    let deep_file = d.path().join(std::str::from_utf8(&ok_deep).unwrap());
    assert_eq!(std::fs::read(deep_file).unwrap(), b"deep");
}

/// Past the entry cap the stream is not read further: one record says so.
#[test]
fn entry_count_is_capped() {
    let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let entries: Vec<(&[u8], tar::EntryType, &[u8])> = names
        .iter()
        .map(|n| (n.as_bytes(), tar::EntryType::Regular, &b"x"[..]))
        .collect();
    let limits = CollectLimits {
        max_entries: 20,
        ..CollectLimits::with_budget(1 << 20)
    };
    let (_d, rep) = extract(&raw_tar(&entries), &limits);
    assert_eq!(rep.files, 20);
    assert_eq!(rep.rejected.len(), 1);
    assert!(rep.rejected[0].1.contains("more than 20 entries"));
}

/// Names with newlines or tabs cannot forge lines of collect-rejected.txt.
#[test]
fn rejected_names_are_printable() {
    assert_eq!(shown_name(b"a\nb\tc"), "a\\nb\\tc");
    assert_eq!(shown_name(b"\x01\n\t"), "\\u{1}\\n\\t");
    let long = shown_name(&[b'y'; 10_000]);
    assert!(
        long.len() < 250 && long.ends_with("(10000 bytes)"),
        "{long}"
    );
}

/// The tar reader's errors quote the entry's name: a name with a newline in a header
/// whose checksum is not a number forged a second line of collect-rejected.txt
/// (found by the collect_tar fuzz target).
#[test]
fn stream_errors_quoting_a_name_stay_one_line() {
    let mut h = tar::Header::new_ustar();
    let name = b"evil\nforged line\t";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().cksum = [0; 8];
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0u8; 1024]);
    let (_d, rep) = extract(&tar, &CollectLimits::with_budget(1 << 20));
    assert_eq!(rep.rejected.len(), 1, "{:?}", rep.rejected);
    let (name, why) = &rep.rejected[0];
    assert_eq!(name, "<stream>");
    assert!(why.contains("evil\\nforged line\\t"), "{why}");
    assert!(!why.contains('\n') && !why.contains('\t'), "{why:?}");
    let long = shown_reason(&"y".repeat(10_000));
    assert!(
        long.len() < 450 && long.ends_with("(10000 bytes)"),
        "{long}"
    );
}

fn walk(d: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type().unwrap().is_dir() {
            v.extend(walk(&e.path()).into_iter().map(|s| format!("{name}/{s}")));
        }
        v.push(name);
    }
    v
}

#[test]
fn budget_and_garbage() {
    let d = tempfile::tempdir().unwrap();
    let rep = extract_tar(&hostile_tar()[..], d.path(), 10).unwrap();
    assert_eq!(
        rep.files, 2,
        "fstab (27 bytes) is over budget, the small ones fit"
    );
    // A disk of zeros is an empty archive; random bytes are reported, not a panic.
    let rep = extract_tar(&[0u8; 4096][..], d.path(), 10).unwrap();
    assert_eq!(rep.files, 0);
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let rep = extract_tar(&junk[..], d.path(), 10);
    if let Ok(rep) = rep {
        assert_eq!(rep.files, 0);
    }
}
