//! A network test through the whole run flow with a fake backend playing the guest (no
//! VMs): both phases get the config's NICs, and the boot phase "collects" the files of a
//! real network_basic install (its network facts; the storage checks find nothing and
//! are not looked at here). As collected it passes every derived network check; with the
//! data changed to contradict the config, exactly the network checks about what changed
//! fail, each with its evidence, in the results and the JUnit file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::backend::{FakeBackend, Outcome, Phase, PhaseResult, PhaseSpec};
use harness::check::CheckGroup;
use harness::config::TestConfig;
use harness::runner::{self, Progress, RunContext, Status};
use harness::settings::Settings;

// Only its output-disk writer is used here.
#[allow(dead_code)]
mod fake;
use fake::write_output_disk;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/net/network_basic")
}

fn network_basic() -> TestConfig {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/network_basic.yaml");
    let mut t = TestConfig::load(&p).unwrap();
    // The fake disks need not be large.
    t.disks.iter_mut().for_each(|d| d.size = 64 << 20);
    t
}

/// The collect tar: every fixture file, `change` applied to each (by path).
fn collect_tar(change: &dyn Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let top = fixture();
    let mut stack = vec![top.clone()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    for p in files {
        let rel = p.strip_prefix(&top).unwrap().display().to_string();
        let data = change(&rel, std::fs::read(&p).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("./{rel}")).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Runs network_basic with a guest that installs fine and collects `tar`; returns the
/// result, what each phase was given, and the JUnit text.
fn run_with(tar: Vec<u8>) -> (runner::TestResult, Vec<PhaseSpec>, String) {
    let dir = tempfile::tempdir().unwrap();
    let images = fake::fake_images(dir.path());
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "CURTIN_VMTEST_TOPDIR".into(),
        dir.path().join("top").display().to_string(),
    );
    let s = Settings::from_lookup(|k| env.get(k).cloned(), false).unwrap();
    s.prepare_topdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let backend = FakeBackend::new(move |spec: &PhaseSpec| {
        seen2.lock().unwrap().push(spec.clone());
        if spec.phase == Phase::Install {
            std::fs::write(&spec.serial_log, "curtin: Installation finished.\n")?;
        } else {
            std::fs::write(&spec.serial_log, "collect\n")?;
            write_output_disk(spec, &tar);
        }
        Ok(PhaseResult {
            outcome: Outcome::PowerOff,
            wall: Duration::from_millis(1),
        })
    });
    let ctx = RunContext {
        settings: &s,
        backend: &backend,
        images: &images,
        curtin_src: None,
        progress: Progress::new(None, true),
        console: None,
    };
    let mut results = runner::run_all(&[network_basic()], &ctx);
    let junit = harness::report::junit_xml(&results);
    let specs = seen.lock().unwrap().clone();
    (results.remove(0), specs, junit)
}

#[test]
fn the_collected_data_of_a_real_install_passes_and_both_phases_get_the_nics() {
    let (r, specs, junit) = run_with(collect_tar(&|_, d| d));
    // The fixture holds the network facts only: the storage checks have nothing to read.
    assert!(r.failure.is_none(), "{:?}", r.errors());
    let net: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.group == CheckGroup::Network)
        .collect();
    assert_eq!(net.len(), 30);
    for c in &net {
        assert!(c.passed(), "{}: {}", c.name, c.evidence);
    }
    assert!(
        junit.contains("name=\"network_basic / interface interface1 mtu\""),
        "{junit}"
    );
    for s in &specs {
        let macs: Vec<&str> = s.nics.iter().map(|n| n.mac.as_str()).collect();
        assert_eq!(
            macs,
            [
                "52:54:00:12:34:00",
                "52:54:00:12:34:02",
                "52:54:00:12:34:04"
            ],
            "{} phase",
            s.phase
        );
    }
}

#[test]
fn data_contradicting_the_config_fails_exactly_those_checks_with_evidence() {
    let tar = collect_tar(&|rel, data| {
        let text = String::from_utf8(data).unwrap();
        let text = match rel {
            // The unconfigured NIC got an address; interface1 lost its MTU.
            "vmtest/net/ip-addr.json" => {
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                for l in v.as_array_mut().unwrap() {
                    if l["ifname"] == "interface2" {
                        l["addr_info"].as_array_mut().unwrap().push(serde_json::json!(
                            {"family": "inet", "local": "10.0.9.9", "prefixlen": 24, "scope": "global"}
                        ));
                    }
                }
                v.to_string()
            }
            "vmtest/net/ip-link.json" => text.replace(r#""mtu":1492"#, r#""mtu":1500"#),
            // The resolver does not use the configured nameserver.
            "vmtest/net/resolvectl-dns.txt" => text.replace("8.8.8.8", "10.0.2.3"),
            _ => text,
        };
        text.into_bytes()
    });
    let (r, _, junit) = run_with(tar);
    assert_eq!(r.status, Status::Fail, "{:?}", r.errors());
    let failed: Vec<(&str, &str)> = r
        .checks
        .iter()
        .filter(|c| c.group == CheckGroup::Network && !c.passed())
        .map(|c| (c.name.as_str(), c.evidence.as_str()))
        .collect();
    let names: Vec<&str> = failed.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "interface interface1 mtu",
            "interface interface2 no other ipv4 address",
            "dns nameserver 8.8.8.8",
        ],
        "{failed:#?}"
    );
    let ev = |n: &str| failed.iter().find(|(x, _)| *x == n).unwrap().1;
    assert!(ev("interface interface1 mtu").contains("interface1 has MTU 1500, not 1492\n"));
    assert!(
        ev("interface interface2 no other ipv4 address")
            .contains("interface2 has unconfigured IPv4 address 10.0.9.9/24 scope global\n"),
        "{}",
        ev("interface interface2 no other ipv4 address")
    );
    let e = ev("dns nameserver 8.8.8.8");
    assert!(
        e.contains("the resolver does not use nameserver 8.8.8.8\n") && e.contains("10.0.2.3"),
        "{e}"
    );
    // JUnit: the failed checks are failures with the first evidence line as the message.
    assert!(
        junit.contains("interface1 has MTU 1500, not 1492"),
        "{junit}"
    );
    let storage_failures = r
        .checks
        .iter()
        .filter(|c| c.group == CheckGroup::Storage && !c.passed())
        .count();
    assert!(
        junit.contains(&format!(
            "failures=\"{}\" errors=\"0\"",
            3 + storage_failures
        )),
        "{junit}"
    );
}
