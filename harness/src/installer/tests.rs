//! Tests of the installer pack: one per way a pack is asked for, each reading back what
//! the guest would unpack.

use super::*;
use crate::userdata::tests::{basic, read};

fn tree(p: &Path) -> PackInputs<'_> {
    PackInputs {
        curtin_src: Some(p),
        ..Default::default()
    }
}

/// A minimal tree with curtin's layout (what `check_curtin_tree` looks for), plus
/// files `curtin pack` leaves out.
fn fake_curtin() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, text) in [
        ("curtin/__init__.py", ""),
        ("curtin/commands/main.py", ""),
        ("bin/curtin", "#!/bin/sh\n"),
        ("helpers/common", "#!/bin/bash\n"),
        ("tests/vmtests/__init__.py", ""),
        ("doc/index.rst", ""),
        ("curtin/__pycache__/x.cpython-311.pyc", ""),
    ] {
        let f = d.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, text).unwrap();
    }
    d
}

fn payload_files(p: &Pack) -> std::collections::BTreeMap<String, String> {
    let payload = p.payload().unwrap();
    let gz = flate2::read::GzDecoder::new(&payload[..]);
    let mut tar = tar::Archive::new(gz);
    let mut out = std::collections::BTreeMap::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut e, &mut s).unwrap();
        out.insert(e.path().unwrap().display().to_string(), s);
    }
    out
}

#[test]
fn without_a_curtin_tree_the_script_installer_runs() {
    let p = pack_installer(&basic(), &PackInputs::default()).unwrap();
    let files = payload_files(&p);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "config/50-curtin-networking.cfg",
            "config/install-cfg.yaml",
            "config/plan",
            "installer/install.sh"
        ]
    );
    // The installed system's cloud-init gets the test's `network:` as curtin hands it
    // on, MACs as strings.
    let net = read(&files["config/50-curtin-networking.cfg"]);
    let mac = net
        .get("network")
        .unwrap()
        .get("config")
        .unwrap()
        .as_seq()
        .unwrap()[0]
        .get("mac_address")
        .unwrap()
        .as_str();
    assert_eq!(mac, Some("52:54:00:12:34:01"));
    let text = p.render().unwrap();
    assert!(
        text.contains("config/install-cfg.yaml config/50-curtin-networking.cfg)"),
        "{}",
        &text[..text.find(MARKER_LINE).unwrap_or(text.len())]
    );
    // Without a network config there is nothing to hand on.
    let plain = basic().text.split("\nnetwork:").next().unwrap().to_string() + "\n";
    let t = TestConfig::parse("plain", Path::new("plain.yaml"), &plain).unwrap();
    assert!(cloud_init_network_config(&t).unwrap().is_none());
    let files = payload_files(&pack_installer(&t, &PackInputs::default()).unwrap());
    assert!(!files.contains_key("config/50-curtin-networking.cfg"));
}

#[test]
fn a_pinned_curtin_test_needs_a_tree() {
    let mut t = basic();
    t.vmtest.installer = InstallerKind::Curtin;
    t.vmtest.installer_pinned = true;
    let e = pack_installer(&t, &PackInputs::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--curtin") && e.contains("CURTIN_SRC"), "{e}");
    assert!(e.contains("basic.yaml"), "{e}");
}

#[test]
fn not_a_curtin_tree_is_named() {
    let d = tempfile::tempdir().unwrap();
    let e = pack_installer(&basic(), &tree(d.path()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("is not a curtin source tree") && e.contains("curtin/__init__.py"),
        "{e}"
    );
}

#[test]
fn a_pinned_script_test_ignores_the_tree() {
    let mut t = basic();
    t.vmtest.installer = InstallerKind::Script;
    t.vmtest.installer_pinned = true;
    let c = fake_curtin();
    let files = payload_files(&pack_installer(&t, &tree(c.path())).unwrap());
    assert!(files.contains_key("installer/install.sh"), "{files:?}");
}

#[test]
fn curtin_pack_holds_what_curtin_pack_ships_and_both_configs() {
    let c = fake_curtin();
    let p = pack_installer(
        &basic(),
        &PackInputs {
            curtin_src: Some(c.path()),
            webhook: "http://10.0.2.2:9/webhook",
            apt_proxy: Some("http://proxy:3128"),
            extra_config: None,
            handoff: false,
        },
    )
    .unwrap();
    let files = payload_files(&p);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "config/test.yaml",
            "config/vmtest.yaml",
            "curtin/bin/curtin",
            "curtin/curtin/__init__.py",
            "curtin/curtin/commands/main.py",
            "curtin/helpers/common",
        ]
    );
    // The test's config goes to curtin as the file says it; the harness's additions
    // apart.
    assert_eq!(files["config/test.yaml"], basic().text);
    let added = read(&files["config/vmtest.yaml"]);
    use crate::yaml::Scalar;
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(&added, |n, k| n.get(k))
            .and_then(|n| n.scalar().cloned())
    };
    assert_eq!(at(&["kernel", "install"]), Some(Scalar::Bool(false)));
    assert_eq!(at(&["showtrace"]), Some(Scalar::Bool(true)));
    assert_eq!(
        at(&["reporting", "vmtest", "type"]),
        Some(Scalar::Str("webhook".into()))
    );
    assert_eq!(
        at(&["reporting", "vmtest", "endpoint"]),
        Some(Scalar::Str("http://10.0.2.2:9/webhook".into()))
    );
    assert_eq!(
        at(&["apt", "proxy"]),
        Some(Scalar::Str("http://proxy:3128".into()))
    );
    let added = curtin_vmtest_config("http://h/webhook", None);
    assert!(added.get("apt").is_none());
    // The launcher runs through sh (bin/curtin is a shell script that finds python3
    // and puts the unpacked tree on PYTHONPATH); the harness's config comes first so
    // the test's own config wins where both say something.
    let text = p.render().unwrap();
    assert!(
            text.contains(
                "PACK_COMMAND=(sh curtin/bin/curtin -vv install --config=config/vmtest.yaml --config=config/test.yaml cp:///media/root-ro)"
            ),
            "{}",
            &text[..text.find(MARKER_LINE).unwrap_or(text.len())]
        );
}

#[test]
fn an_extra_config_goes_to_curtin_last_as_its_text() {
    let c = fake_curtin();
    let x = ExtraConfig {
        path: "/x.yaml".into(),
        text: "# mine\nlate_commands: {a: [echo, no, 0755]}\n".into(),
    };
    let p = pack_installer(
        &basic(),
        &PackInputs {
            curtin_src: Some(c.path()),
            extra_config: Some(&x),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(payload_files(&p)["config/extra.yaml"], x.text);
    let text = p.render().unwrap();
    assert!(
        text.contains("--config=config/test.yaml --config=config/extra.yaml cp:///media/root-ro)"),
        "{}",
        &text[..text.find(MARKER_LINE).unwrap_or(text.len())]
    );
}

const MARKER_LINE: &str = "\n_____PAYLOAD_____\n";

/// A boot phase without firmware needs the handoff: the script installer packs its
/// writer and install.sh runs it (VMTEST_HANDOFF); curtin gets it as its last late
/// command, run with `sh -c` so nothing depends on curtin's working directory. Without
/// it, neither installer writes one.
#[test]
fn the_handoff_is_the_installers_last_step_when_asked_for() {
    let with = |curtin: Option<&Path>, handoff| {
        pack_installer(
            &basic(),
            &PackInputs {
                curtin_src: curtin,
                handoff,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let p = with(None, true);
    let files = payload_files(&p);
    assert_eq!(files["installer/handoff.sh"], HANDOFF_SH);
    let text = p.render().unwrap();
    assert!(
        text.contains("export VMTEST_HANDOFF=\"$PACK_DIR/installer/handoff.sh\""),
        "{}",
        &text[..text.find(MARKER_LINE).unwrap_or(text.len())]
    );
    assert!(INSTALL_SH.contains("sh \"$VMTEST_HANDOFF\" \"$TARGET\""));
    let p = with(None, false);
    assert!(!payload_files(&p).contains_key("installer/handoff.sh"));
    assert!(!p.render().unwrap().contains("VMTEST_HANDOFF"));

    let c = fake_curtin();
    let added = read(&payload_files(&with(Some(c.path()), true))["config/vmtest.yaml"]);
    let cmd = added
        .get("late_commands")
        .and_then(|l| l.get(HANDOFF_LATE_COMMAND))
        .and_then(|c| c.as_seq())
        .unwrap();
    let words: Vec<&str> = cmd.iter().filter_map(|w| w.as_str()).collect();
    assert_eq!(words, ["sh", "-c", HANDOFF_CURTIN_RUN]);
    // It runs the writer packed beside curtin, by name: curtin -vv prints the commands
    // it runs, and the script's text must stay out of the serial log the verdict reads.
    assert!(HANDOFF_CURTIN_RUN.contains(&format!("\"$PACK_DIR/{HANDOFF_SH_PATH}\"")));
    let curtin_files = payload_files(&with(Some(c.path()), true));
    assert_eq!(curtin_files[HANDOFF_SH_PATH], HANDOFF_SH);
    assert!(!payload_files(&with(Some(c.path()), false)).contains_key(HANDOFF_SH_PATH));
    // Nothing in the writer reads as an install failure, should it reach a log.
    assert!(!HANDOFF_SH.contains("Installation failed"));
    let added = read(&payload_files(&with(Some(c.path()), false))["config/vmtest.yaml"]);
    assert!(added.get("late_commands").is_none());
    // The writer is valid sh.
    let sh = std::process::Command::new("sh")
        .args(["-n", "-c", HANDOFF_SH])
        .status()
        .unwrap();
    assert!(sh.success());
}

#[test]
fn uefi_with_curtin_packs_and_asks_curtin_to_update_the_nvram() {
    let c = fake_curtin();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic_uefi.yaml");
    let t = TestConfig::load(&file).unwrap();
    assert!(t.vmtest.uefi);
    let files = payload_files(&pack_installer(&t, &tree(c.path())).unwrap());
    let added = crate::yaml::load(&files["config/vmtest.yaml"])
        .unwrap()
        .unwrap();
    let nvram = added.get("grub").and_then(|g| g.get("update_nvram"));
    assert_eq!(
        nvram.and_then(|n| n.scalar()),
        Some(&crate::yaml::Scalar::Bool(true)),
        "{}",
        files["config/vmtest.yaml"]
    );
    // A BIOS test gets no grub settings from the harness.
    let bios = curtin_vmtest_config_for(&basic(), "x", None, false);
    assert!(bios.get("grub").is_none());
    // The script installer does UEFI installs too.
    assert!(pack_installer(&t, &PackInputs::default()).is_ok());
}

#[test]
fn dirty_disks_adds_the_trees_dirty_disks_config_after_the_tests() {
    let c = fake_curtin();
    let mut t = basic();
    let text = t
        .text
        .replace("vmtest:\n", "vmtest:\n  dirty_disks: true\n");
    assert_ne!(text, t.text, "basic.yaml has a vmtest: section");
    t = TestConfig::parse(&t.name, &t.file, &text).unwrap();
    assert!(t.vmtest.dirty_disks);
    // The tree lacks the file: one error naming it.
    let e = pack_installer(&t, &tree(c.path()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(CURTIN_DIRTY_DISKS_CONFIG), "{e}");
    let dirty = c.path().join(CURTIN_DIRTY_DISKS_CONFIG);
    std::fs::create_dir_all(dirty.parent().unwrap()).unwrap();
    std::fs::write(
        &dirty,
        "early_commands: {01-blockmeta: [curtin, block-meta, custom]}\n",
    )
    .unwrap();
    let files = payload_files(&pack_installer(&t, &tree(c.path())).unwrap());
    assert!(files["config/dirty-disks.yaml"].contains("01-blockmeta"));
    let cmd = curtin_command(&t, false).join(" ");
    assert!(
        cmd.contains("--config=config/test.yaml --config=config/dirty-disks.yaml"),
        "{cmd}"
    );
    // The script installer cannot dirty the disks.
    let e = pack_installer(&t, &PackInputs::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("dirty_disks"), "{e}");
}

#[test]
fn a_test_with_sources_gets_no_source_argument() {
    let mut t = basic();
    assert_eq!(curtin_command(&t, false).last().unwrap(), CURTIN_SOURCE);
    let text = format!("{}sources: {{rootfs: 'cp:///somewhere'}}\n", t.text);
    t = TestConfig::parse(&t.name, &t.file, &text).unwrap();
    assert!(!curtin_command(&t, false).iter().any(|w| w == CURTIN_SOURCE));
}

/// curtin puts a swap format into fstab only when a `type: mount` entry names it;
/// the script installer uses every swap format. basic.yaml carries such a path-less
/// mount entry for curtin; without it the script installer's plan is the same.
#[test]
fn a_swap_mount_entry_for_curtin_leaves_the_script_plan_unchanged() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = "    - {id: sda3_swap_mount, type: mount, device: sda3_swap}\n";
    assert!(text.contains(line));
    let without = TestConfig::parse("basic", &file, &text.replace(line, "")).unwrap();
    assert_eq!(build_plan(&without).unwrap(), build_plan(&basic()).unwrap());
}
