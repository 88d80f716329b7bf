//! cloud-init seeds for both phases and the install phase's kernel command line.
//!
//! Install: a `#cloud-config-archive` with a cloud-config part (password, output to
//! /var/log/cloud-init-output.log and the console), the packed installer as a shell part,
//! `power_state: {mode: poweroff}`, and the apt proxy when there is one.
//! Boot: cloud-config (password, poweroff, network config disabled), then one shell part
//! that runs the default and the test's collect scripts in /mnt/output and writes the
//! results as a raw tar stream onto the output disk.

use serde_json::json;

use crate::config::TestConfig;
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
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::installer::{PackInputs, pack_installer};

    pub(crate) fn basic() -> TestConfig {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
        TestConfig::load(&p).unwrap()
    }

    /// A document the harness wrote, read as curtin's YAML reader reads it.
    pub(crate) fn read(text: &str) -> crate::yaml::Node {
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
