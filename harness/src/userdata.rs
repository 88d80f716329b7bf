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

/// Serial of the output disk; the guest sees `/dev/disk/by-id/virtio-output_disk.img`.
pub const OUTPUT_DISK_SERIAL: &str = "output_disk.img";
/// Line the collect script prints when the tar is on the output disk.
pub const COLLECT_DONE: &str = "vmtest: collect finished";

/// Where the guest finds the host: user-mode networking maps 10.0.2.2 to the host's
/// loopback, where the test's HTTP server listens.
pub const HOST_IP: &str = "10.0.2.2";

pub fn meta_data(test: &str, phase: &str) -> String {
    let host: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    format!("instance-id: vmtest-{host}-{phase}\nlocal-hostname: {host}\n")
}

fn archive(parts: Vec<serde_json::Value>) -> String {
    // JSON is YAML: no quoting pitfalls for scripts and base64 payloads.
    format!(
        "#cloud-config-archive\n{}\n",
        serde_json::to_string_pretty(&parts).unwrap_or_default()
    )
}

fn cloud_config(v: serde_json::Value) -> serde_json::Value {
    json!({"type": "text/cloud-config", "content": format!("#cloud-config\n{}\n", serde_json::to_string(&v).unwrap_or_default())})
}

fn shell_part(name: &str, script: String) -> serde_json::Value {
    json!({"type": "text/x-shellscript", "filename": name, "content": script})
}

fn base_config() -> serde_json::Value {
    json!({
        "password": "passw0rd",
        "chpasswd": {"expire": false},
        "output": {"all": "| tee -a /var/log/cloud-init-output.log"},
    })
}

/// The install phase's user-data around an already packed installer.
pub fn install_user_data(packed_installer: &str, apt_proxy: Option<&str>) -> String {
    let mut parts = vec![
        cloud_config(base_config()),
        shell_part("vmtest-installer", packed_installer.to_string()),
        cloud_config(
            json!({"power_state": {"mode": "poweroff", "message": "vmtest: install phase done"}}),
        ),
    ];
    if let Some(p) = apt_proxy {
        parts.push(cloud_config(json!({"apt": {"proxy": p}})));
    }
    archive(parts)
}

/// Collect scripts every test runs (curtin's default set, the files the assertions read).
pub const DEFAULT_COLLECT: &str = r#"
cat /etc/fstab > fstab 2>/dev/null
cat /proc/cmdline > proc_cmdline
cat /proc/mounts > proc_mounts
cat /proc/partitions > proc_partitions
cat /proc/swaps > proc-swaps
blkid -o export > blkid.out 2>/dev/null
ls -al /dev/disk/by-dname/ > ls_dname 2>/dev/null
ls -al /dev/disk/by-dname/ > ls_al_bydname 2>/dev/null
ls -al /dev/disk/by-id/ > ls_al_byid
ls -al /dev/disk/by-partuuid/ > ls_al_bypartuuid
ls -al /dev/disk/by-path/ > ls_al_bypath
ls -al /dev/disk/by-uuid/ > ls_al_byuuid
ip a > ip_a 2>&1
ifconfig -a > ifconfig_a 2>&1
cp -a /etc/udev/rules.d udev_rules.d 2>/dev/null
cp -a /var/log/cloud-init.log /var/log/cloud-init-output.log . 2>/dev/null
mkdir -p var_lib_cloud && cp -a /var/lib/cloud/. var_lib_cloud/ 2>/dev/null
find /boot > find_boot.out
cat /etc/default/grub > etc_default_grub 2>/dev/null
dpkg-query -W > debian-packages.txt 2>/dev/null
"#;

/// The boot phase's user-data: collect, tar onto the output disk, power off.
pub fn boot_user_data(test: &TestConfig) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# vmtest collect\nmkdir -p /mnt/output\ncd /mnt/output\ncp -a /root /mnt/output 2>/dev/null\n",
    );
    s.push_str("(\n");
    s.push_str(DEFAULT_COLLECT);
    s.push_str(")\n");
    for (i, script) in test.vmtest.collect_scripts.iter().enumerate() {
        s.push_str(&format!("( cd /mnt/output && {{\n{script}\n}} ) || echo \"vmtest: collect script {i} failed: $?\"\n"));
    }
    s.push_str("journalctl -b -o short-monotonic > journal.txt 2>/dev/null\n");
    s.push_str("cd /mnt/output\n");
    // Symlinks travel as a list: the host refuses links in the tar.
    s.push_str("find . -type l -printf '%Y\\t%P\\t%l\\n' -delete > symlinks.txt 2>/dev/null\n");
    s.push_str(&format!(
        "tar -cf /dev/disk/by-id/virtio-{OUTPUT_DISK_SERIAL} --no-xattrs . && sync && echo '{COLLECT_DONE}' || echo 'vmtest: collect could not write the output disk'\n"
    ));
    archive(vec![
        cloud_config(json!({
            "password": "passw0rd",
            "chpasswd": {"expire": false},
            "output": {"all": "| tee -a /var/log/cloud-init-output.log"},
            "network": {"config": "disabled"},
            "power_state": {"mode": "poweroff", "message": "vmtest: boot phase done"},
        })),
        shell_part("vmtest-collect", s),
    ])
}

/// Packs the installer for `test`: the script installer with its plan, or curtin from
/// `curtin_src` (a curtin source tree with `curtin/` and `bin/curtin`).
/// `webhook` is where curtin posts its events.
pub fn pack_installer(
    test: &TestConfig,
    curtin_src: Option<&Path>,
    webhook: &str,
) -> anyhow::Result<Pack> {
    let mut cfg = test.installer_config.clone();
    let mut pack = Pack::new();
    match test.vmtest.installer {
        InstallerKind::Script => {
            let plan =
                build_plan(test).map_err(|e| anyhow::anyhow!("{}: {e}", test.file.display()))?;
            pack.file("installer/install.sh", INSTALL_SH, 0o755)
                .file("config/plan", plan, 0o644)
                .file(
                    "config/install-cfg.yaml",
                    serde_yaml::to_string(&cfg)?,
                    0o644,
                )
                .command(&[
                    "sh",
                    "installer/install.sh",
                    "config/plan",
                    "config/install-cfg.yaml",
                ]);
        }
        InstallerKind::Curtin => {
            let src = curtin_src.ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: this test uses curtin; give its source tree with --curtin DIR or CURTIN_SRC",
                    test.file.display()
                )
            })?;
            if !src.join("curtin").is_dir() || !src.join("bin/curtin").is_file() {
                anyhow::bail!(
                    "{} is not a curtin source tree (no curtin/ and bin/curtin)",
                    src.display()
                );
            }
            if let serde_yaml::Value::Mapping(m) = &mut cfg {
                let key = serde_yaml::Value::from("reporting");
                if !m.contains_key(&key) {
                    let r: serde_yaml::Value = serde_yaml::from_str(&format!(
                        "vmtest: {{type: webhook, endpoint: '{webhook}'}}"
                    ))?;
                    m.insert(key, r);
                }
            }
            pack.tree(src, "curtin-src")?
                .file(
                    "config/install-cfg.yaml",
                    serde_yaml::to_string(&cfg)?,
                    0o644,
                )
                .env("PYTHONPATH", "$PACK_DIR/curtin-src")
                .command(&[
                    "python3",
                    "curtin-src/bin/curtin",
                    "-vv",
                    "install",
                    "--config=config/install-cfg.yaml",
                    "cp:///media/root-ro",
                ]);
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

    fn basic() -> TestConfig {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
        TestConfig::load(&p).unwrap()
    }

    #[test]
    fn install_user_data_shape() {
        let t = basic();
        let packed = pack_installer(&t, None, "http://10.0.2.2:1/webhook")
            .unwrap()
            .render()
            .unwrap();
        let ud = install_user_data(&packed, Some("http://proxy:3128"));
        assert!(ud.starts_with("#cloud-config-archive\n"));
        let parts: Vec<serde_yaml::Value> = serde_yaml::from_str(&ud).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1]["type"].as_str(), Some("text/x-shellscript"));
        assert_eq!(parts[1]["content"].as_str(), Some(packed.as_str()));
        let c: serde_yaml::Value =
            serde_yaml::from_str(parts[2]["content"].as_str().unwrap()).unwrap();
        assert_eq!(c["power_state"]["mode"].as_str(), Some("poweroff"));
        let c: serde_yaml::Value =
            serde_yaml::from_str(parts[3]["content"].as_str().unwrap()).unwrap();
        assert_eq!(c["apt"]["proxy"].as_str(), Some("http://proxy:3128"));
    }

    #[test]
    fn boot_user_data_collects_to_output_disk() {
        let ud = boot_user_data(&basic());
        let parts: Vec<serde_yaml::Value> = serde_yaml::from_str(&ud).unwrap();
        let script = parts[1]["content"].as_str().unwrap();
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

    #[test]
    fn curtin_needs_a_tree() {
        let mut t = basic();
        t.vmtest.installer = InstallerKind::Curtin;
        let e = pack_installer(&t, None, "x").err().unwrap().to_string();
        assert!(e.contains("--curtin"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("curtin")).unwrap();
        std::fs::create_dir_all(d.path().join("bin")).unwrap();
        std::fs::write(d.path().join("curtin/__init__.py"), "").unwrap();
        std::fs::write(d.path().join("bin/curtin"), "#!/usr/bin/python3\n").unwrap();
        let p = pack_installer(&t, Some(d.path()), "http://10.0.2.2:9/webhook")
            .unwrap()
            .render()
            .unwrap();
        assert!(p.contains(
            "curtin-src/bin/curtin -vv install --config=config/install-cfg.yaml cp:///media/root-ro"
        ));
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
            "instance-id: vmtest-a-b-boot\nlocal-hostname: a-b\n"
        );
    }
}
