//! Derivation from real configs (this project's examples, curtin's), and evaluation on
//! data collected from a real install of `network_basic` (qemu, bookworm, netplan), as
//! it was and changed to contradict the config.

use std::path::{Path, PathBuf};

use super::*;
use crate::check::CheckOutcome;

fn example(name: &str) -> TestConfig {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/tests/{name}.yaml"));
    TestConfig::load(&p).unwrap()
}

fn curtin_example(name: &str) -> TestConfig {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../shared/curtin/examples/tests/{name}.yaml"));
    let p = match std::env::var_os("CURTIN_SRC") {
        Some(src) => PathBuf::from(src).join(format!("examples/tests/{name}.yaml")),
        None => p,
    };
    TestConfig::load(&p).unwrap_or_else(|e| {
        panic!("{e}: curtin's examples are needed here (CURTIN_SRC or ../shared/curtin)")
    })
}

fn names(t: &TestConfig) -> Vec<String> {
    wants(t).into_iter().map(|c| c.name).collect()
}

/// The collected files of a real `network_basic` run, copied where a test may change them.
fn collected() -> tempfile::TempDir {
    collected_of("network_basic")
}

/// The collected files of a real run of `test` (tests/fixtures/net/TEST).
fn collected_of(test: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/net/{test}"));
    let d = tempfile::tempdir().unwrap();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let to = d.path().join(p.strip_prefix(&src).unwrap());
            if p.is_dir() {
                std::fs::create_dir_all(&to).unwrap();
                stack.push(p);
            } else {
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(&p, &to).unwrap();
            }
        }
    }
    d
}

fn edit(dir: &Path, rel: &str, f: impl FnOnce(String) -> String) {
    let p = dir.join(rel);
    let text = std::fs::read_to_string(&p).unwrap();
    let new = f(text.clone());
    assert_ne!(new, text, "{rel}: the edit changed nothing");
    std::fs::write(p, new).unwrap();
}

fn edit_json(dir: &Path, rel: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(rel);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn network_basic_as_derived() {
    let n = names(&example("network_basic"));
    for want in [
        "cloud-init network config",
        "interface interface0 exists",
        "interface interface0 mac",
        "interface interface0 up",
        "interface interface0 dhcp4 lease",
        "interface interface0 no other ipv4 address",
        "interface interface1 mtu",
        "interface interface1 address 10.0.2.100/24",
        "interface interface1 address 10.0.5.100/24",
        "interface interface1 address 10.0.2.200/24",
        "interface interface2 no other ipv4 address",
        "dns nameserver 8.8.8.8",
        "dns search barley.maas",
        "rendered interface1 mac 52:54:00:12:34:02",
        "rendered interface1 address 10.0.3.100",
    ] {
        assert!(n.iter().any(|x| x == want), "{want} not in {n:#?}");
    }
    assert_eq!(n.len(), 30, "{n:#?}");
    // Nothing expects a lease or an MTU where the config asks for none.
    assert!(
        !n.iter()
            .any(|x| x == "interface interface2 dhcp4 lease" || x == "interface interface0 mtu")
    );
}

#[test]
fn every_check_passes_on_the_real_install() {
    let d = collected();
    let results = run(&example("network_basic"), d.path());
    assert_eq!(results.len(), 30);
    for r in &results {
        assert_eq!(r.outcome, CheckOutcome::Pass, "{}: {}", r.name, r.evidence);
        assert_eq!(r.group, crate::check::CheckGroup::Network);
    }
}

/// The same install with its data changed to contradict the config: exactly the checks
/// about what changed fail, each with the evidence.
#[test]
fn contradicting_data_fails_exactly_the_checks_it_contradicts() {
    let d = collected();
    let net = "vmtest/net";
    // interface1 lost its MTU and has an address with the wrong prefix; interface2 got
    // a lease it must not have.
    edit_json(d.path(), &format!("{net}/ip-addr.json"), |links| {
        for l in links.as_array_mut().unwrap() {
            let name = l["ifname"].as_str().unwrap().to_string();
            let addrs = l["addr_info"].as_array_mut().unwrap();
            match name.as_str() {
                "interface1" => {
                    for a in addrs.iter_mut() {
                        if a["local"] == "10.0.4.100" {
                            a["prefixlen"] = 16.into();
                        }
                    }
                }
                "interface2" => addrs.push(serde_json::json!({"family": "inet",
                    "local": "10.0.2.16", "prefixlen": 24, "scope": "global", "dynamic": true})),
                _ => {}
            }
        }
    });
    edit_json(d.path(), &format!("{net}/ip-link.json"), |links| {
        for l in links.as_array_mut().unwrap() {
            if l["ifname"] == "interface1" {
                l["mtu"] = 1500.into();
            }
        }
    });
    // The resolver forgot the search domain.
    edit(d.path(), &format!("{net}/resolvectl-domain.txt"), |t| {
        t.replace("barley.maas", "")
    });
    let results = run(&example("network_basic"), d.path());
    let failed: Vec<(&str, &str)> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| (r.name.as_str(), r.evidence.as_str()))
        .collect();
    let names: Vec<&str> = failed.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "interface interface1 mtu",
            "interface interface1 address 10.0.4.100/24",
            "interface interface2 no other ipv4 address",
            "dns search barley.maas",
        ],
        "{failed:#?}"
    );
    let ev = |n: &str| failed.iter().find(|(x, _)| *x == n).unwrap().1;
    assert!(
        ev("interface interface1 mtu")
            .contains("expected MTU 1492; interface1 has MTU 1500, not 1492\n"),
        "{}",
        ev("interface interface1 mtu")
    );
    assert!(
        ev("interface interface1 address 10.0.4.100/24")
            .contains("interface1 has 10.0.4.100 with prefix 16, not 24\n")
    );
    let e = ev("interface interface2 no other ipv4 address");
    assert!(
        e.contains("interface2 has a DHCP lease the config does not ask for\n")
            && e.contains("10.0.2.16/24 scope global dynamic"),
        "{e}"
    );
    let e = ev("dns search barley.maas");
    assert!(
        e.contains("the resolver does not search barley.maas\n") && e.contains("resolvectl"),
        "{e}"
    );
}

#[test]
fn missing_collect_files_fail_the_checks_saying_which() {
    let d = tempfile::tempdir().unwrap();
    let results = run(&example("network_basic"), d.path());
    assert_eq!(results.len(), 30);
    assert!(results.iter().all(|r| !r.passed()));
    let exists = results
        .iter()
        .find(|r| r.name == "interface interface0 exists")
        .unwrap();
    assert!(
        exists
            .evidence
            .contains("vmtest/net/ip-link.json: not collected"),
        "{}",
        exists.evidence
    );
}

#[test]
fn a_renamed_nic_and_a_lost_mac_in_the_rendered_files() {
    let d = collected();
    let net = "vmtest/net";
    edit_json(d.path(), &format!("{net}/ip-link.json"), |links| {
        for l in links.as_array_mut().unwrap() {
            if l["ifname"] == "interface2" {
                l["ifname"] = "ens7".into();
            }
        }
    });
    for f in [
        "etc/netplan/50-cloud-init.yaml",
        "run/systemd/network/10-netplan-interface2.link",
        "run/systemd/network/10-netplan-interface2.network",
    ] {
        let p = d.path().join(format!("{net}/rendered/{f}"));
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replace("52:54:00:12:34:04", "41135085244")).unwrap();
    }
    let failed: Vec<String> = run(&example("network_basic"), d.path())
        .into_iter()
        .filter(|r| !r.passed())
        .map(|r| r.name)
        .collect();
    assert_eq!(
        failed,
        [
            "interface interface2 exists",
            "interface interface2 mac",
            "interface interface2 up",
            "interface interface2 no other ipv4 address",
            "rendered interface2 mac 52:54:00:12:34:04",
        ]
    );
}

#[test]
fn network_advanced_as_derived() {
    let n = names(&example("network_advanced"));
    for want in [
        "interface interface0 address 2001:db8:1::10/64",
        "route default via 10.0.2.2",
        "route ::/0 via 2001:db8:1::1",
        "route 2001:db8:100::/48 via 2001:db8:1::2",
        "route 10.30.0.0/16 via 10.0.2.1",
        "bond bond0 members",
        "bond bond0 mode",
        "bond bond0 miimon",
        "bond bond0 primary",
        "bridge br0 members",
        "bridge br0 stp",
        "bridge br0 forward-delay",
        "bridge br0 ageing-time",
        "bridge br0 port interface3 path-cost",
        "bridge br0 port interface3 port-priority",
        "vlan br0.100 id",
        "vlan br0.100 parent",
        "interface br0.100 address 2001:db8:20::2/64",
        "dns nameserver 2001:db8:1::53",
        "dns search example.test",
    ] {
        assert!(n.iter().any(|x| x == want), "{want} not in {n:#?}");
    }
    let checks = wants(&example("network_advanced"));
    let want = |name: &str| checks.iter().find(|c| c.name == name).unwrap().want.clone();
    assert_eq!(
        want("route ::/0 via 2001:db8:1::1"),
        Want::Route {
            dst: addr::parse_dest("::/0", None).unwrap(),
            via: Some("2001:db8:1::1".parse().unwrap()),
            metric: Some(300),
            dev: Some("interface0".into()),
        }
    );
    // Timers in the kernel's 1/100 s.
    assert!(matches!(
        want("bridge br0 forward-delay"),
        Want::BridgeOption { value: 200, .. }
    ));
    assert!(matches!(
        want("bridge br0 ageing-time"),
        Want::BridgeOption { value: 25000, .. }
    ));
}

/// curtin's own network configs give the checks curtin's test classes make (named).
#[test]
fn curtin_network_configs_as_derived() {
    // tests/vmtests/test_network_bonding.py (TestNetworkBondingAbs) checks the bond
    // through check_interface (name, MTU, subnets); the bond's mode and members are what
    // makes it a bond.
    let n = names(&curtin_example("bonding_network"));
    for want in [
        "bond bond1 mode",
        "bond bond1 members",
        "interface bond1 address 10.23.23.2/24",
        "interface interface0 dhcp4 lease",
    ] {
        assert!(
            n.iter().any(|x| x == want),
            "bonding_network: {want} not in {n:#?}"
        );
    }
    // test_network_bridging.py (TestBridgeNetworkAbs.test_bridge_params): every bridge_*
    // param with a sysfs value, not bridge_gcint, bridge_maxwait, bridge_waitport.
    let n = names(&curtin_example("bridging_network"));
    for want in [
        "bridge br0 ageing-time",
        "bridge br0 priority",
        "bridge br0 forward-delay",
        "bridge br0 hello-time",
        "bridge br0 max-age",
        "bridge br0 stp",
        "bridge br0 port eth1 path-cost",
        "bridge br0 port eth2 path-cost",
        "bridge br0 port eth1 port-priority",
        "bridge br0 port eth2 port-priority",
        "bridge br0 members",
    ] {
        assert!(
            n.iter().any(|x| x == want),
            "bridging_network: {want} not in {n:#?}"
        );
    }
    assert!(
        !n.iter()
            .any(|x| x.contains("gcint") || x.contains("maxwait") || x.contains("waitport"))
    );
    // test_network_vlan.py (TestNetworkVlanAbs.test_vlan_enabled): each VLAN with its id.
    let n = names(&curtin_example("vlan_network"));
    for id in [2667, 2668, 2669, 2670] {
        assert!(n.contains(&format!("vlan interface1.{id} id")), "{n:#?}");
        assert!(
            n.contains(&format!("vlan interface1.{id} parent")),
            "{n:#?}"
        );
    }
    // test_network_static_routes.py (test_ip_output's gateways): each route with its metric.
    let checks = wants(&curtin_example("network_static_routes"));
    let route = checks
        .iter()
        .find(|c| c.name == "route 10.200.0.0/16 via 172.23.31.1")
        .unwrap();
    assert!(
        matches!(
            route.want,
            Want::Route {
                metric: Some(1),
                ..
            }
        ),
        "{:?}",
        route.want
    );
    assert!(
        checks
            .iter()
            .any(|c| c.name == "route default via 172.23.31.2")
    );
    // test_network_ipv6_static.py: the address with its netmask as a prefix, the route
    // `::/0` given as network and netmask `::`.
    let n = names(&curtin_example("basic_network_static_ipv6"));
    for want in [
        "interface interface0 address 2001:4800:78ff:1b:be76:4eff:fe06:96b3/64",
        "route ::/0 via 2001:4800:78ff:1b::1",
        "dns nameserver 10.0.2.3",
        "dns search wark.maas",
        "dns search foobar.maas",
    ] {
        assert!(
            n.iter().any(|x| x == want),
            "basic_network_static_ipv6: {want} not in {n:#?}"
        );
    }
    // A disabled network config implies nothing.
    assert!(names(&curtin_example("network_config_disabled")).is_empty());
}

#[test]
fn network_advanced_passes_on_its_real_install() {
    let d = collected_of("network_advanced");
    let results = run(&example("network_advanced"), d.path());
    assert_eq!(results.len(), 64);
    for r in &results {
        assert!(r.passed(), "{}: {}", r.name, r.evidence);
    }
}

/// Bonds, bridges, VLANs and routes as collected from a real install, changed: exactly
/// the checks about the changes fail.
#[test]
fn a_wrong_bond_bridge_vlan_and_route_fail_their_checks() {
    let d = collected_of("network_advanced");
    let net = "vmtest/net";
    edit_json(d.path(), &format!("{net}/ip-link.json"), |links| {
        for l in links.as_array_mut().unwrap() {
            let name = l["ifname"].as_str().unwrap().to_string();
            let data = &mut l["linkinfo"]["info_data"];
            match name.as_str() {
                "bond0" => data["mode"] = "balance-rr".into(),
                "br0" => data["stp_state"] = 1.into(),
                "br0.100" => data["id"] = 101.into(),
                _ => {}
            }
        }
    });
    edit_json(d.path(), &format!("{net}/bridge-link.json"), |ports| {
        ports[0]["cost"] = 100.into();
    });
    edit_json(d.path(), &format!("{net}/ip-route6.json"), |routes| {
        for r in routes.as_array_mut().unwrap() {
            if r["dst"] == "2001:db8:100::/48" {
                r["metric"] = 1024.into();
            }
        }
    });
    // One bond member is gone from the kernel's list (its MAC check still holds: the
    // link keeps its permanent MAC).
    edit(d.path(), &format!("{net}/bonding/bond0"), |t| {
        t.replace("Slave Interface: interface2", "Slave Interface: interface9")
    });
    let failed: Vec<(String, String)> = run(&example("network_advanced"), d.path())
        .into_iter()
        .filter(|r| !r.passed())
        .map(|r| (r.name, r.evidence))
        .collect();
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "route 2001:db8:100::/48 via 2001:db8:1::2",
            "bond bond0 members",
            "bond bond0 mode",
            "bridge br0 port interface3 path-cost",
            "bridge br0 stp",
            "vlan br0.100 id",
        ],
        "{failed:#?}"
    );
    let ev = |n: &str| &failed.iter().find(|(x, _)| x == n).unwrap().1;
    assert!(ev("bond bond0 mode").contains("bond bond0 mode is balance-rr, not active-backup\n"));
    assert!(
        ev("bond bond0 mode").contains("fault-tolerance (active-backup)"),
        "the kernel's own words as evidence"
    );
    assert!(ev("bond bond0 members").contains(
        "bond bond0 members are [interface9, interface1], not [interface1, interface2]\n"
    ));
    assert!(ev("bridge br0 stp").contains("bridge br0 STP is on (stp_state 1), not off\n"));
    assert!(
        ev("bridge br0 port interface3 path-cost")
            .contains("br0 port interface3 cost is 100, not 50\n")
    );
    assert!(ev("vlan br0.100 id").contains("br0.100 is not VLAN 100 (kind vlan, id 101)\n"));
    let e = ev("route 2001:db8:100::/48 via 2001:db8:1::2");
    assert!(
        e.contains("no route to 2001:db8:100::/48 via 2001:db8:1::2 dev interface0 metric 50\n")
            && e.contains("metric 1024"),
        "{e}"
    );
}

/// Interface checks point at the line where the config defines that interface.
#[test]
fn interface_checks_carry_the_line_of_their_interface() {
    let t = example("network_advanced");
    let checks = derive(&t);
    let mtu = checks
        .iter()
        .find(|c| c.name.starts_with("interface ") && c.name.ends_with(" exists"))
        .expect("an interface check");
    let iface = mtu.name.split(' ').nth(1).unwrap();
    assert_eq!(mtu.line, t.interface_line(iface));
    assert!(mtu.line.is_some(), "{}", mtu.name);
}
