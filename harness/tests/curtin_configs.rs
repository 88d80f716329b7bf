//! Every config in curtin's `examples/tests` is a test config as it is: it loads, or it
//! is listed as not runnable on this host with its reason. None is a parse error.
//!
//! The curtin tree comes from CURTIN_SRC, else `<repo>/../shared/curtin` (where CI has
//! it); without either this test fails, naming both.

use std::collections::BTreeMap;

use harness::config::{ConfReplace, HostFacts, TestConfig, discover};

#[path = "support/curtin_tree.rs"]
mod support;
use support::curtin_tree;

#[test]
fn every_curtin_example_loads_or_says_why_it_cannot_run_here() {
    let dir = curtin_tree().join("examples/tests");
    let files = discover(&dir).unwrap();
    assert!(
        files.len() >= 80,
        "only {} configs in {}",
        files.len(),
        dir.display()
    );
    let host = HostFacts::this_host();
    let mut loads = Vec::new();
    let mut not_runnable: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut errors = Vec::new();
    for f in &files {
        match TestConfig::load(f) {
            Ok(t) => match t.not_runnable(&host) {
                None => loads.push(t.name),
                Some(why) => not_runnable.entry(why).or_default().push(t.name),
            },
            Err(e) => errors.push(e.to_string()),
        }
    }
    println!("{} configs in {}", files.len(), dir.display());
    println!("load and can run here: {}", loads.len());
    let n: usize = not_runnable.values().map(Vec::len).sum();
    println!("load, not runnable here: {n}");
    for (why, names) in &not_runnable {
        println!("  {} ({}): {why}", names.join(", "), names.len());
    }
    assert!(
        errors.is_empty(),
        "configs that did not load:\n{}",
        errors.join("\n")
    );
}

/// curtin's two templates run with the values curtin's own classes give them
/// (`conf_replace` in tests/vmtests/test_lvm_root.py: ext4 or xfs), and what the
/// installer gets is the filled-in text.
#[test]
fn curtin_templates_run_with_their_placeholders_given() {
    let dir = curtin_tree().join("examples/tests");
    let host = HostFacts::this_host();
    for (name, keys) in [
        ("lvmroot", &["__ROOTFS_FORMAT__"][..]),
        ("uefi_lvmroot", &["__ROOTFS_FORMAT__", "__BOOTFS_FORMAT__"]),
    ] {
        let file = dir.join(format!("{name}.yaml"));
        let bare = TestConfig::load(&file).unwrap();
        let why = bare.not_runnable(&host).unwrap();
        assert!(
            why.contains("it is a template") && why.contains(keys[0]),
            "{why}"
        );
        for fs in ["ext4", "xfs"] {
            let replace: Vec<ConfReplace> = keys
                .iter()
                .map(|k| format!("{k}={fs}").parse().unwrap())
                .collect();
            let t = TestConfig::load_with(&file, &replace).unwrap();
            assert_eq!(t.not_runnable(&host), None, "{name} with {fs}");
            assert!(
                !t.text.contains("__ROOTFS_FORMAT__") && t.text.contains(&format!("fstype: {fs}"))
            );
        }
    }
}
