//! Packing the installer a test runs: the project's script installer with its plan, or
//! curtin from a source tree, with what the harness adds to curtin's config (its webhook,
//! the handoff's late command, the dirty-disks config, CURTIN_VMTEST_EXTRA_CONFIG). The
//! seeds that carry the pack to the guest are in [`crate::userdata`].

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
        cfg["late_commands"] = json!({HANDOFF_LATE_COMMAND: ["sh", "-c", HANDOFF_CURTIN_RUN]});
    }
    cfg
}

/// Where the pack carries the handoff writer, for either installer.
pub const HANDOFF_SH_PATH: &str = "installer/handoff.sh";

/// How curtin's late command runs the packed writer. curtin runs late commands from the
/// unpacked pack with its environment ($PACK_DIR, $TARGET_MOUNT_POINT), and with `-vv`
/// prints each command it runs: naming the file rather than inlining the script keeps the
/// writer's text, including its own error messages, out of the serial log the verdict
/// reads.
pub const HANDOFF_CURTIN_RUN: &str = "exec sh \"$PACK_DIR/installer/handoff.sh\"";

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
                pack.file(HANDOFF_SH_PATH, HANDOFF_SH, 0o755)
                    .env("VMTEST_HANDOFF", &format!("$PACK_DIR/{HANDOFF_SH_PATH}"));
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
            if handoff {
                // The late command curtin_vmtest_config_for adds runs it.
                pack.file(HANDOFF_SH_PATH, HANDOFF_SH, 0o755);
            }
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
mod tests;
