//! The output disk's tar stream as the guest wrote it, extracted the way the harness does
//! (`collect::extract_tar_with`) into a fresh directory below a temporary one, with limits
//! small enough for fuzz inputs to reach each of them. Whatever the bytes: no panic,
//! nothing written beside collect/ (the temporary parent holds collect/ alone), nothing
//! in it but plain files and directories within the depth, byte and entry limits, and
//! the temporary directory removed after each input.
#![no_main]

use std::path::Path;

use harness::collect::{CollectLimits, extract_tar_with};
use libfuzzer_sys::fuzz_target;

const LIMITS: CollectLimits = CollectLimits {
    max_bytes: 16 << 10,
    max_entries: 32,
    max_path_bytes: 256,
    max_name_bytes: 32,
    max_depth: 6,
};

/// (files, directories, bytes, deepest level) below `dir`; panics on anything that is
/// neither a plain file nor a directory.
fn census(dir: &Path, level: usize) -> (usize, usize, u64, usize) {
    let mut c = (0, 0, 0, level);
    for e in std::fs::read_dir(dir).expect("readable") {
        let e = e.expect("entry");
        let t = e.file_type().expect("file type");
        if t.is_dir() {
            let (f, d, b, l) = census(&e.path(), level + 1);
            c = (c.0 + f, c.1 + d + 1, c.2 + b, c.3.max(l));
        } else {
            assert!(t.is_file(), "{:?} is neither file nor directory", e.path());
            c.0 += 1;
            c.2 += e.metadata().expect("metadata").len();
        }
    }
    c
}

fuzz_target!(|data: &[u8]| {
    let parent = tempfile::tempdir().expect("temporary directory");
    let dest = parent.path().join("collect");
    std::fs::create_dir(&dest).expect("collect/");
    let rep = extract_tar_with(data, &dest, &LIMITS);
    let beside: Vec<_> = std::fs::read_dir(parent.path())
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(beside, ["collect"], "written beside collect/");
    let (files, dirs, bytes, depth) = census(&dest, 0);
    assert!(bytes <= LIMITS.max_bytes, "{bytes} bytes written");
    assert!(depth <= LIMITS.max_depth, "{depth} levels");
    assert!(files + dirs <= LIMITS.max_entries * LIMITS.max_depth);
    if let Ok(rep) = rep {
        assert!(rep.bytes <= LIMITS.max_bytes);
        assert!(rep.files + rep.rejected.len() <= LIMITS.max_entries + 1);
        assert!(files <= rep.files);
        for (name, why) in &rep.rejected {
            assert!(name.len() <= 1200 && why.len() <= 1200, "{name}: {why}");
            assert!(
                !name.contains('\n') && !why.contains('\n'),
                "{name:?}: {why:?}"
            );
        }
    }
    parent.close().expect("temporary directory removed");
});
