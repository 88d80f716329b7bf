//! Packing the installer a test runs: the project's script installer with its plan, or
//! curtin from a source tree, with what the harness adds to curtin's config (its webhook,
//! the handoff's late command, the dirty-disks config, CURTIN_VMTEST_EXTRA_CONFIG). The
//! seeds that carry the pack to the guest are in [`crate::userdata`].
//!
//! One job; past 600 lines only by its tests (about half the file: one per way a pack is
//! asked for, each reading back what the guest would unpack).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::{InstallerKind, TestConfig};
use crate::pack::{INSTALL_SH, Pack, PackError};
use crate::plan::build_plan;
use crate::settings::ExtraConfig;
use crate::yaml::emit;

/// Why a test's installer could not be packed: each names the test's file.
#[derive(Debug, thiserror::Error)]
pub enum InstallerError {
    #[error("{}: `dirty_disks: true` runs curtin's block-meta before the install; it needs curtin as the installer", file.display())]
    DirtyDisksNeedCurtin { file: PathBuf },
    #[error("{}: {msg}", file.display())]
    Plan { file: PathBuf, msg: String },
    #[error("{}: network: cannot be handed to cloud-init as it is: {msg}", file.display())]
    NetworkConfig { file: PathBuf, msg: String },
    #[error("{}: this test uses curtin (vmtest.installer: curtin); give a curtin source tree with --curtin DIR or CURTIN_SRC", file.display())]
    NoCurtinTree { file: PathBuf },
    #[error(transparent)]
    NotACurtinTree(#[from] NotACurtinTree),
    #[error("{}: `dirty_disks: true` needs the curtin tree's {CURTIN_DIRTY_DISKS_CONFIG}: {}: {source}", file.display(), path.display())]
    DirtyDisksConfig {
        file: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The pack could not be rendered into its self-extracting script.
    #[error("rendering the installer pack: {0}")]
    Render(std::io::Error),
}

/// A directory given as a curtin tree lacks what the harness packs from one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is not a curtin source tree: {missing} ({what}) is missing; give the top of a curtin checkout (git clone https://git.launchpad.net/curtin)", tree.display())]
pub struct NotACurtinTree {
    pub tree: PathBuf,
    pub missing: &'static str,
    pub what: &'static str,
}

/// Where the packed curtin tree lives inside the archive (`curtin pack`'s layout:
/// `bin/curtin`, the `curtin` package and `helpers/`).
pub const CURTIN_PACK_DIR: &str = "curtin";

/// The source curtin installs from when the test's config names no `sources:`: the
/// ephemeral image's read-only root, the way curtin's vmtest installs the same release.
pub const CURTIN_SOURCE: &str = "cp:///media/root-ro";

/// Where the pack keeps what the harness adds to the test's config for curtin
/// ([`curtin_vmtest_config_for`]); curtin reads it first, so the test's own config wins.
pub const CURTIN_VMTEST_CFG: &str = "config/vmtest.yaml";

/// Checks that `src` is a curtin source tree the harness can pack.
pub fn check_curtin_tree(src: &Path) -> Result<(), NotACurtinTree> {
    for (p, what) in [
        ("curtin/__init__.py", "the curtin package"),
        ("curtin/commands/main.py", "curtin's command entry point"),
        ("bin/curtin", "the curtin launcher"),
        ("helpers/common", "curtin's shell helpers"),
    ] {
        if !src.join(p).is_file() {
            return Err(NotACurtinTree {
                tree: src.to_path_buf(),
                missing: p,
                what,
            });
        }
    }
    Ok(())
}

/// What the harness adds to a test's curtin config. It is passed to curtin *before* the
/// test's own config, so anything the test says wins (curtin merges configs in order).
///
/// - `kernel: {install: false}`: the install source is the ephemeral root, which already
///   carries its kernel; without it curtin looks the running kernel up in its Ubuntu
///   table, finds nothing for a Debian release and falls back to `linux-generic`, which
///   Debian does not have.
/// - `reporting.vmtest`: a webhook to the harness, whose events land in
///   `logs/webhooks-events.json` (curtin's vmtest does the same with its `maas` reporter).
/// - `apt.proxy`: the proxy the test run hands on (apt_proxy / CURTIN_VMTEST_APT_PROXY),
///   used by apt inside the target when curtin installs packages there.
/// - `showtrace: true`: a failing curtin command prints its traceback on the console.
pub fn curtin_vmtest_config(webhook: &str, apt_proxy: Option<&str>) -> serde_json::Value {
    let mut cfg = json!({
        "showtrace": true,
        "kernel": {"install": false},
        "reporting": {"vmtest": {"type": "webhook", "endpoint": webhook, "level": "DEBUG"}},
    });
    if let Some(p) = apt_proxy {
        cfg["apt"] = json!({"proxy": p});
    }
    cfg
}

/// [`curtin_vmtest_config`] for one test: a UEFI test also gets
/// `grub: {update_nvram: true}` (as curtin's vmtest gives its UEFI tests), so curtin
/// writes its boot entry and BootOrder into the test's NVRAM; the test's own `grub:`
/// settings, merged after, win. With `handoff`, a last late command
/// ([`HANDOFF_LATE_COMMAND`], sorted after the test's own) writes the handoff while
/// curtin still has the target mounted at `$TARGET_MOUNT_POINT`.
pub fn curtin_vmtest_config_for(
    test: &TestConfig,
    webhook: &str,
    apt_proxy: Option<&str>,
    handoff: bool,
) -> serde_json::Value {
    let mut cfg = curtin_vmtest_config(webhook, apt_proxy);
    if test.vmtest.uefi {
        cfg["grub"] = json!({"update_nvram": true});
    }
    if handoff {
        cfg["late_commands"] =
            json!({HANDOFF_LATE_COMMAND: ["sh", "-c", HANDOFF_SH, "vmtest-handoff"]});
    }
    cfg
}

/// The name of the late command that writes the handoff: curtin runs late commands in
/// the order of their names, and this sorts after any name a test is likely to use.
pub const HANDOFF_LATE_COMMAND: &str = "zz_vmtest_handoff";

/// The handoff writer (see [`crate::handoff`] for the format and its reader).
pub const HANDOFF_SH: &str = include_str!("../installer/handoff.sh");

/// Where a curtin tree keeps the config that dirties the disks before the install
/// (`vmtest: {dirty_disks: true}`), relative to the tree.
pub const CURTIN_DIRTY_DISKS_CONFIG: &str = "examples/tests/dirty_disks_config.yaml";

/// The `curtin install` command line inside the unpacked archive: the harness's config,
/// the test's, the dirty-disks config when the test asks for it, then
/// CURTIN_VMTEST_EXTRA_CONFIG's when `extra` (curtin merges them in order, the last
/// winning, as curtin's vmtest orders them).
pub fn curtin_command(test: &TestConfig, extra: bool) -> Vec<String> {
    let mut cmd: Vec<String> = ["sh", "curtin/bin/curtin", "-vv", "install"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd.push(format!("--config={CURTIN_VMTEST_CFG}"));
    cmd.push("--config=config/test.yaml".into());
    if test.vmtest.dirty_disks {
        cmd.push("--config=config/dirty-disks.yaml".into());
    }
    if extra {
        cmd.push("--config=config/extra.yaml".into());
    }
    // A source on the command line replaces the config's `sources:`; only give the
    // default when the test names none.
    if test.doc.get("sources").is_none() {
        cmd.push(CURTIN_SOURCE.into());
    }
    cmd
}

/// Where the script installer's pack holds the installed system's cloud-init network config.
const NETWORK_CFG: &str = "config/50-curtin-networking.cfg";

/// The installed system's cloud-init network config, as curtin hands it on
/// (`/etc/cloud/cloud.cfg.d/50-curtin-networking.cfg`: `{network: <the test's network:>}`)
/// when the target's cloud-init takes network config v2: the test's `network:` section as
/// PyYAML reads it, written so that PyYAML reads back the same (see [`emit`]). `None`
/// without a network config.
pub fn cloud_init_network_config(test: &TestConfig) -> Result<Option<String>, InstallerError> {
    let Some(node) = test.doc.get("network") else {
        return Ok(None);
    };
    emit::node_under_key("network", node)
        .map(Some)
        .map_err(|e| InstallerError::NetworkConfig {
            file: test.file.clone(),
            msg: e.to_string(),
        })
}

/// What an installer pack is made from besides the test.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackInputs<'a> {
    /// A curtin tree (--curtin / CURTIN_SRC).
    pub curtin_src: Option<&'a Path>,
    /// Where curtin posts its events.
    pub webhook: &'a str,
    /// The proxy apt in the target uses.
    pub apt_proxy: Option<&'a str>,
    /// CURTIN_VMTEST_EXTRA_CONFIG, handed to curtin after the test's config.
    pub extra_config: Option<&'a ExtraConfig>,
    /// The boot phase boots directly: the installer's last step writes the handoff
    /// ([`crate::handoff`]) onto the disk with serial [`crate::handoff::HANDOFF_DISK_SERIAL`].
    pub handoff: bool,
}

/// Packs the installer for `test`: the script installer with its plan, or curtin from
/// `inputs.curtin_src` (see [`TestConfig::installer`] for which).
///
/// Configs the author wrote (the test, CURTIN_VMTEST_EXTRA_CONFIG) go in as their text,
/// so curtin's YAML reader reads exactly what it would read from the files; what the
/// harness writes goes through [`emit`].
pub fn pack_installer(test: &TestConfig, inputs: &PackInputs) -> Result<Pack, InstallerError> {
    let PackInputs {
        curtin_src,
        webhook,
        apt_proxy,
        extra_config,
        handoff,
    } = *inputs;
    let mut pack = Pack::new();
    match test.installer(curtin_src.is_some()) {
        InstallerKind::Script => {
            if test.vmtest.dirty_disks {
                return Err(InstallerError::DirtyDisksNeedCurtin {
                    file: test.file.clone(),
                });
            }
            let plan = build_plan(test).map_err(|e| InstallerError::Plan {
                file: test.file.clone(),
                msg: e.to_string(),
            })?;
            pack.file("installer/install.sh", INSTALL_SH, 0o755)
                .file("config/plan", plan, 0o644)
                .file("config/install-cfg.yaml", test.text.as_str(), 0o644);
            let mut cmd = vec![
                "sh",
                "installer/install.sh",
                "config/plan",
                "config/install-cfg.yaml",
            ];
            if let Some(net) = cloud_init_network_config(test)? {
                pack.file(NETWORK_CFG, net, 0o644);
                cmd.push(NETWORK_CFG);
            }
            if handoff {
                // install.sh runs it last, with the target still mounted.
                pack.file("installer/handoff.sh", HANDOFF_SH, 0o755)
                    .env("VMTEST_HANDOFF", "$PACK_DIR/installer/handoff.sh");
            }
            pack.command(&cmd);
        }
        InstallerKind::Curtin => {
            let src = curtin_src.ok_or_else(|| InstallerError::NoCurtinTree {
                file: test.file.clone(),
            })?;
            check_curtin_tree(src)?;
            // What `curtin pack` ships: the launcher, the package and the helpers; not
            // the tests, docs or packaging.
            for sub in ["bin", "curtin", "helpers"] {
                pack.tree(&src.join(sub), &format!("{CURTIN_PACK_DIR}/{sub}"))?;
            }
            pack.file(
                CURTIN_VMTEST_CFG,
                emit::to_string(&curtin_vmtest_config_for(test, webhook, apt_proxy, handoff)),
                0o644,
            )
            // The file as the author wrote it: curtin reads it with the same YAML reader
            // it would read the file with, and ignores the `vmtest:` key.
            .file("config/test.yaml", test.text.as_str(), 0o644);
            if test.vmtest.dirty_disks {
                let dirty = src.join(CURTIN_DIRTY_DISKS_CONFIG);
                let text =
                    std::fs::read(&dirty).map_err(|source| InstallerError::DirtyDisksConfig {
                        file: test.file.clone(),
                        path: dirty.clone(),
                        source,
                    })?;
                pack.file("config/dirty-disks.yaml", text, 0o644);
            }
            if let Some(x) = extra_config {
                pack.file("config/extra.yaml", x.text.as_str(), 0o644);
            }
            pack.command(&curtin_command(test, extra_config.is_some()));
        }
    }
    Ok(pack)
}

#[cfg(test)]
mod tests {
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
            text.contains(
                "--config=config/test.yaml --config=config/extra.yaml cp:///media/root-ro)"
            ),
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
        assert_eq!(words, ["sh", "-c", HANDOFF_SH, "vmtest-handoff"]);
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
}
