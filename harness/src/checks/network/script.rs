//! The network part of the harness's own collect script: what the installed system shows
//! about its network, in machine-readable form, for the derived network checks. It runs
//! in the boot phase in `/mnt/output` and writes under `vmtest/net/` (the test's own
//! collect files never collide with it).
//!
//! | file | from | read by |
//! |---|---|---|
//! | `ip-link.json` | `ip -d -j link show` | every interface: name, MAC, MTU, up, bond/VLAN/bridge kind and settings, master |
//! | `ip-addr.json` | `ip -j addr show` | addresses with prefix, leases (`dynamic`) |
//! | `ip-route4.json`, `ip-route6.json` | `ip -4|-6 -j route show` | default and static routes with metric |
//! | `bonding/NAME` | `/proc/net/bonding/NAME` | bond mode, members (with their permanent MACs), MII interval |
//! | `bridge-link.json` | `bridge -d -j link show` | bridge ports: state, priority, cost |
//! | `resolvectl-dns.txt`, `resolvectl-domain.txt` | `resolvectl dns`, `resolvectl domain` | the resolver's nameservers and search domains |
//! | `etc-resolv.conf`, `run-resolv.conf`, `resolvectl-status.txt` | /etc/resolv.conf, resolved's upstream list, `resolvectl status` | the resolver's view where resolved does not run; evidence |
//! | `networkctl.txt`, `wait-online.txt` | `networkctl list`, the wait below | evidence |
//! | `rendered/...` | /etc/netplan, /etc/systemd/network, /run/systemd/network, /etc/network/interfaces*, /etc/cloud/cloud.cfg.d/50-curtin-networking.cfg, udev's persistent net rules | what the renderer wrote; the config cloud-init was handed |
//!
//! Every tool is in the image (iproute2, systemd) and so in the installed system, a copy
//! of it. A missing tool leaves its file out; the checks that need it fail naming it.
//!
//! Before collecting it waits (at most 30 s) for systemd-networkd to finish what it
//! manages, DHCP leases included, as curtin's network collect waits before `ip a`.

/// The network section of the collect script.
pub const NETWORK: &str = r#"
# vmtest: network facts for the derived checks (harness/src/checks/network)
mkdir -p /mnt/output/vmtest/net/bonding /mnt/output/vmtest/net/rendered
cd /mnt/output/vmtest/net || exit 0
w=/lib/systemd/systemd-networkd-wait-online
[ -x "$w" ] && timeout 40 "$w" --timeout=30 > wait-online.txt 2>&1
echo "exit $?" >> wait-online.txt
ip -d -j link show > ip-link.json 2> ip-link.err
ip -j addr show > ip-addr.json 2> ip-addr.err
ip -4 -j route show > ip-route4.json 2> ip-route4.err
ip -6 -j route show > ip-route6.json 2> ip-route6.err
bridge -d -j link show > bridge-link.json 2> bridge-link.err
for f in /proc/net/bonding/*; do
    [ -f "$f" ] && cat "$f" > "bonding/${f##*/}"
done
resolvectl dns > resolvectl-dns.txt 2>&1 || rm -f resolvectl-dns.txt
resolvectl domain > resolvectl-domain.txt 2>&1 || rm -f resolvectl-domain.txt
resolvectl status --no-pager > resolvectl-status.txt 2>&1
cat /etc/resolv.conf > etc-resolv.conf 2>/dev/null
cat /run/systemd/resolve/resolv.conf > run-resolv.conf 2>/dev/null
networkctl list --no-pager > networkctl.txt 2>&1
for p in /etc/netplan /etc/systemd/network /run/systemd/network /etc/network/interfaces \
    /etc/network/interfaces.d /etc/cloud/cloud.cfg.d/50-curtin-networking.cfg \
    /etc/udev/rules.d/70-persistent-net.rules; do
    [ -e "$p" ] && cp -a --parents "$p" rendered/ 2>/dev/null
done
cd /mnt/output
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn the_section_is_valid_shell() {
        let ok = std::process::Command::new("sh")
            .args(["-n", "-c", super::NETWORK])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}
