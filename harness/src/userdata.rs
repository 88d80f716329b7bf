//! cloud-init seeds for both phases and the install phase's kernel command line.
//!
//! Install: a `#cloud-config-archive` with a cloud-config part (password, output to
//! /var/log/cloud-init-output.log and the console), the packed installer as a shell part,
//! `power_state: {mode: poweroff}`, and the apt proxy when there is one.
//! Boot: cloud-config (password, poweroff, network config disabled), then one shell part
//! that runs the default and the test's collect scripts in /mnt/output and writes the
//! results as a raw tar stream onto the output disk.

use std::path::Path;

use serde_json::json;

use crate::config::{InstallerKind, TestConfig};
use crate::pack::{INSTALL_SH, Pack};
use crate::plan::build_plan;
use crate::settings::ExtraConfig;
use crate::yaml::emit;

/// Serial of the output disk; the guest sees `/dev/disk/by-id/virtio-output_disk.img`.
pub const OUTPUT_DISK_SERIAL: &str = "output_disk.img";
/// Serial of the boot phase's read-only seed disk.
pub const SEED_DISK_SERIAL: &str = "seed";
/// Line the collect script prints when the tar is on the output disk.
pub const COLLECT_DONE: &str = "vmtest: collect finished";

/// Where the guest finds the host: user-mode networking maps 10.0.2.2 to the host's
/// loopback, where the test's HTTP server listens.
pub const HOST_IP: &str = "10.0.2.2";

/// The NoCloud meta-data: an instance id per phase (so cloud-init runs again on first
/// boot) and the test's name as host name (letters, digits and `-` only).
pub fn meta_data_value(test: &str, phase: &str) -> serde_json::Value {
    let host: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    json!({
        "instance-id": format!("vmtest-{host}-{phase}"),
        "local-hostname": host,
    })
}

/// [`meta_data_value`] as the seed's `meta-data` file.
pub fn meta_data(test: &str, phase: &str) -> String {
    emit::to_string(&meta_data_value(test, phase))
}

/// One part of a `#cloud-config-archive`.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// `#cloud-config` with this value.
    CloudConfig(serde_json::Value),
    /// A script cloud-init runs once.
    Shell { name: &'static str, script: String },
}

impl Part {
    /// The part as the archive holds it (`type`, `content`, ...).
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Part::CloudConfig(v) => json!({
                "type": "text/cloud-config",
                "content": format!("#cloud-config\n{}", emit::to_string(v)),
            }),
            Part::Shell { name, script } => {
                json!({"type": "text/x-shellscript", "filename": name, "content": script})
            }
        }
    }
}

/// The user-data text of a `#cloud-config-archive` of `parts`.
pub fn archive(parts: &[Part]) -> String {
    let parts: Vec<serde_json::Value> = parts.iter().map(Part::to_value).collect();
    format!(
        "#cloud-config-archive\n{}",
        emit::to_string(&serde_json::Value::Array(parts))
    )
}

fn base_config() -> serde_json::Value {
    json!({
        "password": "passw0rd",
        "chpasswd": {"expire": false},
        "output": {"all": "| tee -a /var/log/cloud-init-output.log"},
    })
}

/// The install phase's user-data parts around an already packed installer.
pub fn install_parts(packed_installer: &str, apt_proxy: Option<&str>) -> Vec<Part> {
    let mut parts = vec![
        Part::CloudConfig(base_config()),
        Part::Shell {
            name: "vmtest-installer",
            script: packed_installer.to_string(),
        },
        Part::CloudConfig(
            json!({"power_state": {"mode": "poweroff", "message": "vmtest: install phase done"}}),
        ),
    ];
    if let Some(p) = apt_proxy {
        parts.push(Part::CloudConfig(json!({"apt": {"proxy": p}})));
    }
    parts
}

/// The install phase's user-data (see [`install_parts`]).
pub fn install_user_data(packed_installer: &str, apt_proxy: Option<&str>) -> String {
    archive(&install_parts(packed_installer, apt_proxy))
}

/// Collect scripts every test runs: curtin's default set (its `common` scripts and, for
/// a Debian target as for its Ubuntu ones, the package list, network files, apt proxy and
/// kernel-img.conf), with curtin's file names and formats, so its test classes' assertions
/// read what they expect: `ls_dname` holds names only, `debian-packages.txt` is
/// `status<TAB>package<TAB>version`, `efibootmgr.out` exists on UEFI. curtin's own
/// `boot-curtin-block-discover.json` needs curtin inside the target and is left out, and
/// the journal is collected as `journal.txt` (text) rather than as journald's files.
pub const DEFAULT_COLLECT: &str = r#"
cat /etc/fstab > fstab 2>/dev/null
cp -a /etc/udev/rules.d udev_rules.d 2>/dev/null
ifconfig -a > ifconfig_a 2>&1
ip a > ip_a 2>&1
cp -a /var/log/messages /var/log/syslog . 2>/dev/null
cp -a /var/log/cloud-init* . 2>/dev/null
mkdir -p var_lib_cloud && cp -a /var/lib/cloud/. var_lib_cloud/ 2>/dev/null
cp -a /run/cloud-init run_cloud-init 2>/dev/null
find run_cloud-init \( -type p -o -type s \) -delete 2>/dev/null
cat /proc/cmdline > proc_cmdline
cat /proc/mounts > proc_mounts
cat /proc/partitions > proc_partitions
cat /proc/swaps > proc-swaps
mkdir -p /dev/disk/by-dname
ls /dev/disk/by-dname/ > ls_dname 2>/dev/null
ls -al /dev/disk/by-dname/ > ls_al_bydname 2>/dev/null
ls -al /dev/disk/by-id/ > ls_al_byid
ls -al /dev/disk/by-partuuid/ > ls_al_bypartuuid
ls -al /dev/disk/by-path/ > ls_al_bypath
ls -al /dev/disk/by-uuid/ > ls_al_byuuid
blkid -o export > blkid.out 2>/dev/null
find /boot > find_boot.out
if [ -e /sys/firmware/efi ]; then efibootmgr -v > efibootmgr.out 2>&1; fi
[ ! -d /etc/default/grub.d ] || cp -a /etc/default/grub.d etc_default_grub_d
cat /etc/default/grub > etc_default_grub 2>/dev/null
dpkg-query --show --showformat='${db:Status-Abbrev}\t${Package}\t${Version}\n' > debian-packages.txt 2> debian-packages.txt.err
cp -a /etc/network/interfaces . 2>/dev/null
cp -a /etc/network/interfaces.d . 2>/dev/null
find /etc/network/interfaces.d > find_interfacesd 2>/dev/null
v=""; out=$(apt-config shell v Acquire::HTTP::Proxy 2>/dev/null); eval "$out"; echo "$v" > apt-proxy
cp -a /etc/kernel-img.conf . 2>/dev/null
"#;

/// Where the collect scripts write in the booted system (tarred onto the output disk).
pub const OUTPUT_COLLECT_DIR: &str = "/mnt/output";
/// What curtin's collect scripts write for [`OUTPUT_COLLECT_DIR`] (`cd OUTPUT_COLLECT_D`);
/// replaced in the test's collect scripts as curtin's vmtest does.
pub const OUTPUT_COLLECT_MACRO: &str = "OUTPUT_COLLECT_D";

/// The boot phase's user-data (see [`boot_parts`]).
pub fn boot_user_data(test: &TestConfig) -> String {
    archive(&boot_parts(test))
}

/// The boot phase's user-data parts: collect, tar onto the output disk, power off.
pub fn boot_parts(test: &TestConfig) -> Vec<Part> {
    let mut s = String::from(
        "#!/bin/sh\n# vmtest collect\nmkdir -p /mnt/output\ncd /mnt/output\ncp -a /root /mnt/output 2>/dev/null\n",
    );
    s.push_str("(\n");
    s.push_str(DEFAULT_COLLECT);
    s.push_str(")\n(\n");
    s.push_str(&crate::checks::script::collect_script());
    s.push_str(")\n");
    if crate::checks::network::applies(test) {
        s.push_str("(\n");
        s.push_str(crate::checks::network::script::NETWORK);
        s.push_str(")\n");
    }
    for (i, script) in test.vmtest.collect_scripts.iter().enumerate() {
        // curtin's collect scripts name the output directory by this macro.
        let script = script.replace(OUTPUT_COLLECT_MACRO, OUTPUT_COLLECT_DIR);
        s.push_str(&format!("( cd {OUTPUT_COLLECT_DIR} && {{\n{script}\n}} ) || echo \"vmtest: collect script {i} failed: $?\"\n"));
    }
    s.push_str("journalctl -b -o short-monotonic > journal.txt 2>/dev/null\n");
    s.push_str("cd /mnt/output\n");
    // Symlinks travel as a list: the host refuses links in the tar.
    s.push_str("find . -type l -printf '%Y\\t%P\\t%l\\n' -delete > symlinks.txt 2>/dev/null\n");
    s.push_str(&format!(
        "tar -cf /dev/disk/by-id/virtio-{OUTPUT_DISK_SERIAL} --no-xattrs . && sync && echo '{COLLECT_DONE}' || echo 'vmtest: collect could not write the output disk'\n"
    ));
    let mut config = base_config();
    config["network"] = json!({"config": "disabled"});
    config["power_state"] = json!({"mode": "poweroff", "message": "vmtest: boot phase done"});
    vec![
        Part::CloudConfig(config),
        Part::Shell {
            name: "vmtest-collect",
            script: s,
        },
    ]
}

/// Where the packed curtin tree lives inside the archive (`curtin pack`'s layout:
/// `bin/curtin`, the `curtin` package and `helpers/`).
pub const CURTIN_PACK_DIR: &str = "curtin";

/// The source curtin installs from when the test's config names no `sources:`: the
/// ephemeral image's read-only root, the way curtin's vmtest installs the same release.
pub const CURTIN_SOURCE: &str = "cp:///media/root-ro";

/// Checks that `src` is a curtin source tree the harness can pack.
pub fn check_curtin_tree(src: &Path) -> anyhow::Result<()> {
    for (p, what) in [
        ("curtin/__init__.py", "the curtin package"),
        ("curtin/commands/main.py", "curtin's command entry point"),
        ("bin/curtin", "the curtin launcher"),
        ("helpers/common", "curtin's shell helpers"),
    ] {
        if !src.join(p).is_file() {
            anyhow::bail!(
                "{} is not a curtin source tree: {p} ({what}) is missing; give the top of a curtin checkout (git clone https://git.launchpad.net/curtin)",
                src.display()
            );
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
    let mut cmd: Vec<String> = [
        "sh",
        "curtin/bin/curtin",
        "-vv",
        "install",
        "--config=config/vmtest.yaml",
        "--config=config/test.yaml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
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
pub fn cloud_init_network_config(test: &TestConfig) -> anyhow::Result<Option<String>> {
    let Some(node) = test.doc.get("network") else {
        return Ok(None);
    };
    emit::node_under_key("network", node)
        .map(Some)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: network: cannot be handed to cloud-init as it is: {e}",
                test.file.display()
            )
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
pub fn pack_installer(test: &TestConfig, inputs: &PackInputs) -> anyhow::Result<Pack> {
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
                anyhow::bail!(
                    "{}: `dirty_disks: true` runs curtin's block-meta before the install; it needs curtin as the installer",
                    test.file.display()
                );
            }
            let plan =
                build_plan(test).map_err(|e| anyhow::anyhow!("{}: {e}", test.file.display()))?;
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
            let src = curtin_src.ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: this test uses curtin (vmtest.installer: curtin); give a curtin source tree with --curtin DIR or CURTIN_SRC",
                    test.file.display()
                )
            })?;
            check_curtin_tree(src)?;
            // What `curtin pack` ships: the launcher, the package and the helpers; not
            // the tests, docs or packaging.
            for sub in ["bin", "curtin", "helpers"] {
                pack.tree(&src.join(sub), &format!("{CURTIN_PACK_DIR}/{sub}"))?;
            }
            pack.file(
                "config/vmtest.yaml",
                emit::to_string(&curtin_vmtest_config_for(test, webhook, apt_proxy, handoff)),
                0o644,
            )
            // The file as the author wrote it: curtin reads it with the same YAML reader
            // it would read the file with, and ignores the `vmtest:` key.
            .file("config/test.yaml", test.text.as_str(), 0o644);
            if test.vmtest.dirty_disks {
                let dirty = src.join(CURTIN_DIRTY_DISKS_CONFIG);
                let text = std::fs::read(&dirty).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: `dirty_disks: true` needs the curtin tree's {CURTIN_DIRTY_DISKS_CONFIG}: {}: {e}",
                        test.file.display(),
                        dirty.display()
                    )
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

/// The install phase's kernel command line, in curtin's order.
pub fn install_cmdline(port: u16, mac0: &str, extra: &str) -> String {
    let base = format!("http://{HOST_IP}:{port}");
    let bootif = format!("01-{}", mac0.replace(':', "-"));
    let mut s = format!(
        "root=squash:{base}/root/squashfs ds=nocloud-net;seedfrom={base}/ console=ttyS0 overlayroot=tmpfs ro --- \
         panic=-1 softlockup_panic=1 hung_task_panic=1 nmi_watchdog=panic,1"
    );
    if !extra.trim().is_empty() {
        s.push(' ');
        s.push_str(extra.trim());
    }
    s.push_str(&format!(" ip=:::::BOOTIF:dhcp BOOTIF={bootif}"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(p: &Path) -> PackInputs<'_> {
        PackInputs {
            curtin_src: Some(p),
            ..Default::default()
        }
    }

    fn basic() -> TestConfig {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
        TestConfig::load(&p).unwrap()
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

    /// A document the harness wrote, read as curtin's YAML reader reads it.
    fn read(text: &str) -> crate::yaml::Node {
        crate::yaml::load(text).unwrap().unwrap()
    }

    #[test]
    fn install_user_data_shape() {
        let t = basic();
        let packed = pack_installer(
            &t,
            &PackInputs {
                webhook: "http://10.0.2.2:1/webhook",
                ..Default::default()
            },
        )
        .unwrap()
        .render()
        .unwrap();
        let ud = install_user_data(&packed, Some("http://proxy:3128"));
        assert!(ud.starts_with("#cloud-config-archive\n"));
        let doc = read(&ud);
        let parts = doc.as_seq().unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[1].get("type").unwrap().as_str(),
            Some("text/x-shellscript")
        );
        assert_eq!(
            parts[1].get("content").unwrap().as_str(),
            Some(packed.as_str())
        );
        let c = read(parts[2].get("content").unwrap().as_str().unwrap());
        assert_eq!(
            c.get("power_state").unwrap().get("mode").unwrap().as_str(),
            Some("poweroff")
        );
        let c = read(parts[3].get("content").unwrap().as_str().unwrap());
        assert_eq!(
            c.get("apt").unwrap().get("proxy").unwrap().as_str(),
            Some("http://proxy:3128")
        );
    }

    #[test]
    fn boot_user_data_collects_to_output_disk() {
        let ud = boot_user_data(&basic());
        let doc = read(&ud);
        let script = doc.as_seq().unwrap()[1]
            .get("content")
            .unwrap()
            .as_str()
            .unwrap();
        assert!(script.contains("tar -cf /dev/disk/by-id/virtio-output_disk.img"));
        assert!(script.contains("uname -r > uname_r"));
        assert!(script.contains("cat /proc/swaps > proc-swaps"));
        let sh = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap();
        assert!(sh.success());
    }

    /// curtin's default collect files with curtin's names and formats, the harness's
    /// storage facts, and OUTPUT_COLLECT_D in a test's collect scripts replaced as curtin
    /// replaces it.
    #[test]
    fn collect_files_as_curtin_names_them() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml"),
        )
        .unwrap()
        .replace(
            "      cat /etc/hostname > hostname\n",
            "      cd OUTPUT_COLLECT_D\n      cat /etc/hostname > hostname\n",
        );
        let t = TestConfig::parse("basic", Path::new("basic.yaml"), &text).unwrap();
        let parts = boot_parts(&t);
        let Part::Shell { script, .. } = &parts[1] else {
            panic!("{parts:?}")
        };
        for line in [
            // names only (curtin's test_dname reads it line by line)
            "ls /dev/disk/by-dname/ > ls_dname",
            // status, package, version, tab-separated (curtin's debian_packages)
            "dpkg-query --show --showformat='${db:Status-Abbrev}\\t${Package}\\t${Version}\\n' > debian-packages.txt",
            "if [ -e /sys/firmware/efi ]; then efibootmgr -v > efibootmgr.out 2>&1; fi",
            "cp -a /var/log/cloud-init* . 2>/dev/null",
            "lsblk -J -b -O > lsblk.json 2> lsblk.err",
            "cd /mnt/output\ncat /etc/hostname > hostname",
        ] {
            assert!(script.contains(line), "{line}\n{script}");
        }
        assert!(!script.contains("OUTPUT_COLLECT_D"), "{script}");
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

    #[test]
    fn cmdline_order() {
        let c = install_cmdline(8080, "52:54:00:12:34:01", "");
        assert_eq!(
            c,
            "root=squash:http://10.0.2.2:8080/root/squashfs ds=nocloud-net;seedfrom=http://10.0.2.2:8080/ console=ttyS0 overlayroot=tmpfs ro --- panic=-1 softlockup_panic=1 hung_task_panic=1 nmi_watchdog=panic,1 ip=:::::BOOTIF:dhcp BOOTIF=01-52-54-00-12-34-01"
        );
    }

    #[test]
    fn meta() {
        assert_eq!(
            meta_data("a_b", "boot"),
            "{\n  \"instance-id\": \"vmtest-a-b-boot\",\n  \"local-hostname\": \"a-b\"\n}\n"
        );
        // A name YAML 1.1 would type stays a string.
        let m = read(&meta_data("0755", "install"));
        assert_eq!(m.get("local-hostname").unwrap().as_str(), Some("0755"));
    }
}
