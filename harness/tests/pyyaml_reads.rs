//! What the installer gets means to curtin's YAML reader (PyYAML, `yaml.safe_load`)
//! exactly what the test file meant (issue 15). Checked with PyYAML itself, for:
//!
//! - every config in curtin's `examples/tests` and in `examples/tests`, plus configs
//!   with adversarial scalars (MACs, `no`, `on`, `0755`, `12:30`, `1_000`, `1e3`, `~`,
//!   `.inf`) in storage, network and free-form keys: what curtin and the script installer
//!   are handed reads as the original does, and the harness's own reading of the file
//!   is PyYAML's;
//! - every YAML document the harness writes itself (user-data parts, meta-data, curtin's
//!   config/vmtest.yaml) and the emitter on adversarial values: PyYAML reads back the
//!   value meant.
//!
//! PyYAML must be importable by `python3` (Debian: python3-yaml, which
//! `scripts/install-deps.sh` installs); without it this test fails, saying so.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use harness::config::{TestConfig, discover};
use harness::installer::{self, PackInputs};
use harness::settings::ExtraConfig;
use harness::userdata::{self, Part};
use harness::yaml::{self, Kind, Node, Scalar, emit};
use serde_json::{Value, json};

#[path = "support/curtin_tree.rs"]
mod support;

/// Reads a JSON list of checks on stdin; prints one line per mismatch and a summary.
const CHECKER: &str = r#"
import json, math, sys
try:
    import yaml
except ImportError as e:
    print("NO-PYYAML: %s" % e)
    sys.exit(3)

def tag(v):
    if v is None: return ["null", None]
    if isinstance(v, bool): return ["bool", v]
    if isinstance(v, int): return ["int", str(v)]
    if isinstance(v, float):
        if math.isnan(v): return ["float", "nan"]
        if math.isinf(v): return ["float", "inf" if v > 0 else "-inf"]
        return ["float", v]
    if isinstance(v, str): return ["str", v]
    if isinstance(v, list): return ["seq", [tag(x) for x in v]]
    if isinstance(v, dict): return ["map", {keystr(k): tag(x) for k, x in v.items()}]
    return ["other", None]

def keystr(k):
    t = tag(k)
    if t[0] == "float": return "float:?"
    return "%s:%s" % (t[0], t[1])

checks = json.load(sys.stdin)
bad = 0
for c in checks:
    try:
        if c["kind"] == "same":
            a, b = tag(yaml.safe_load(c["a"])), tag(yaml.safe_load(c["b"]))
        elif c["kind"] == "value":
            a, b = tag(yaml.safe_load(c["yaml"])), tag(json.loads(c["json"]))
        elif c["kind"] == "key":
            k = c["key"]
            a, b = tag({k: yaml.safe_load(c["a"])[k]}), tag(yaml.safe_load(c["b"]))
        elif c["kind"] == "ours":
            a, b = tag(yaml.safe_load(c["yaml"])), c["tagged"]
        else:
            raise ValueError("unknown check kind %r" % c["kind"])
    except Exception as e:
        print("FAIL %s: %s: %s" % (c["name"], type(e).__name__, e))
        bad += 1
        continue
    if a != b:
        bad += 1
        print("FAIL %s:\n  pyyaml: %s\n  meant:  %s" % (c["name"], json.dumps(a)[:600], json.dumps(b)[:600]))
print("checked %d, %d differ" % (len(checks), bad))
sys.exit(1 if bad else 0)
"#;

/// The harness's reading of a document in the checker's tagged form.
fn tagged(n: &Node) -> Value {
    match &n.kind {
        Kind::Scalar { value, .. } => match value {
            Scalar::Null => json!(["null", null]),
            Scalar::Bool(b) => json!(["bool", b]),
            Scalar::Int(i) => json!(["int", i.to_string()]),
            Scalar::Float(f) if f.is_nan() => json!(["float", "nan"]),
            Scalar::Float(f) if f.is_infinite() => {
                json!(["float", if *f > 0.0 { "inf" } else { "-inf" }])
            }
            Scalar::Float(f) => json!(["float", f]),
            Scalar::Str(s) => json!(["str", s]),
            Scalar::Other { .. } => json!(["other", null]),
        },
        Kind::Seq(items) => json!(["seq", items.iter().map(tagged).collect::<Vec<_>>()]),
        Kind::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                // Later duplicates replace earlier ones, as in PyYAML.
                m.insert(key_string(k), tagged(v));
            }
            json!(["map", m])
        }
    }
}

fn key_string(k: &Node) -> String {
    match k.scalar() {
        Some(Scalar::Null) => "null:None".into(),
        Some(Scalar::Bool(b)) => format!("bool:{}", if *b { "True" } else { "False" }),
        Some(Scalar::Int(i)) => format!("int:{i}"),
        Some(Scalar::Float(_)) => "float:?".into(),
        Some(Scalar::Str(s)) => format!("str:{s}"),
        Some(Scalar::Other { .. }) => "other:None".into(),
        None => "?".into(),
    }
}

struct Checks(Vec<Value>);

impl Checks {
    fn same(&mut self, name: String, original: &str, handed: &str) {
        self.0
            .push(json!({"name": name, "kind": "same", "a": original, "b": handed}));
    }
    /// `handed` reads as `{key: <original's key>}`.
    fn key(&mut self, name: String, key: &str, original: &str, handed: &str) {
        self.0
            .push(json!({"name": name, "kind": "key", "key": key, "a": original, "b": handed}));
    }
    fn value(&mut self, name: String, yaml_text: &str, meant: &Value) {
        self.0
            .push(json!({"name": name, "kind": "value", "yaml": yaml_text,
            "json": serde_json::to_string(meant).unwrap()}));
    }
    fn ours(&mut self, name: String, text: &str, doc: &Node) {
        self.0
            .push(json!({"name": name, "kind": "ours", "yaml": text, "tagged": tagged(doc)}));
    }
    /// A `#cloud-config-archive` and each `#cloud-config` part in it.
    fn archive(&mut self, name: &str, parts: &[Part]) {
        let meant: Vec<Value> = parts.iter().map(Part::to_value).collect();
        self.value(
            format!("{name} (archive)"),
            &userdata::archive(parts),
            &Value::Array(meant.clone()),
        );
        for (i, (p, v)) in parts.iter().zip(&meant).enumerate() {
            if let Part::CloudConfig(cfg) = p {
                let text = v["content"].as_str().unwrap();
                assert!(text.starts_with("#cloud-config\n"));
                self.value(format!("{name} part {i} (#cloud-config)"), text, cfg);
            }
        }
    }
}

fn fake_curtin(dir: &Path) {
    for (p, text) in [
        ("curtin/__init__.py", ""),
        ("curtin/commands/main.py", ""),
        ("bin/curtin", "#!/bin/sh\n"),
        ("helpers/common", "#!/bin/bash\n"),
    ] {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, text).unwrap();
    }
}

fn pack_files(p: &harness::pack::Pack) -> BTreeMap<String, String> {
    let payload = p.payload().unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&payload[..]));
    let mut out = BTreeMap::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name.starts_with("config/") {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            out.insert(name, s);
        }
    }
    out
}

/// Adversarial scalars: quoted where the harness reads a string, bare where the
/// installer alone reads them (there they mean what YAML 1.1 says, to both).
const ADVERSARIAL_V1: &str = r#"# scalars YAML 1.1 readers type
vmtest:
  description: "no"
  collect_scripts: ["echo no > 0755", 'printf "%s" 12:30 > t']
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: msdos, serial: "0755", name: "no", grub_device: 1, note: 52:54:00:12:34:00, extra: [on, off, 1e3]}
    - {id: sda1, type: partition, device: sda, number: 1, size: 3G, flag: boot, name: "12:30"}
    - {id: sda1_root, type: format, volume: sda1, fstype: ext4, label: "on", extra_options: ["-E", "0755", "1_000"]}
    - {id: sda1_mount, type: mount, device: sda1_root, path: /, options: "noatime", freq: 0755, passno: 1_0}
network:
  version: 1
  config:
    - type: physical
      name: "no"
      mac_address: "52:54:00:12:34:00"
      mtu: 1_500
      subnets:
        - {type: static, address: "10.0.2.15/24", gateway: "10.0.2.2", dns_nameservers: ["1e3"], dns_search: ["on", "off"]}
    - type: bond
      name: bond0
      bond_interfaces: ["no"]
      params: {bond-mode: 0755, bond-miimon: 1_000, bond-xmit-hash-policy: 12:30, x: ~, y: .inf, z: 1e3, w: on, v: .NaN}
late_commands:
  a: [52:54:00:12:34:00, no, on, off, yes, y, n, 0755, 08, 12:30, 1:30.5, 1_000, 1e3, 1.0e3, 1.0e+3, ~, null, .inf, -.inf, .nan, 0x1F, 0b101, +12, 2001-12-14, "no", '0755', "caf\u00e9", "\U0001F600"]
  b: {no: yes, on: off, 0755: x, ~: null, 12:30: time}
  c: |
    literal 0755
    no
  d: >-
    folded
    12:30
debconf_selections:
  x: "d-i foo/bar boolean no"
"#;

const ADVERSARIAL_V2: &str = r#"
network:
  version: 2
  ethernets:
    "no":
      match: {macaddress: "52:54:00:12:34:02"}
      set-name: "on"
      addresses: ["192.168.1.2/24"]
      dhcp4: no
      mtu: 0x5DC
      nameservers: {addresses: ["1.1.1.1"], search: ["0755"]}
      routes: [{to: "0.0.0.0/0", via: "192.168.1.1", metric: 1_00}]
  bridges:
    br0:
      interfaces: ["no"]
      parameters: {stp: off, priority: 0755, path-cost: {"no": 12:30}}
base: &base {x: 0755, y: no}
merged: {<<: *base, y: on, z: *base}
"#;

#[test]
fn what_the_installer_gets_means_what_the_file_meant_to_pyyaml() {
    let probe = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to check what curtin reads: {e}"));
    assert!(
        probe.status.success(),
        "PyYAML (curtin's YAML reader) is not importable by python3: install python3-yaml (scripts/install-deps.sh does): {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    let curtin = tmp.path().join("curtin");
    fake_curtin(&curtin);
    let extra = ExtraConfig {
        path: "extra.yaml".into(),
        text: "late_commands: {zz: [echo, no, 0755, 52:54:00:12:34:00]}\n".into(),
    };
    let webhook = "http://10.0.2.2:8080/webhook?a=no&b=0755#12:30";
    let proxy = "http://user:pa\"ss@proxy:3128/é";

    let mut tests: Vec<TestConfig> = Vec::new();
    let curtin_examples = support::curtin_tree().join("examples/tests");
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests");
    for dir in [&curtin_examples, &ours] {
        for f in discover(dir).unwrap() {
            tests.push(TestConfig::load(&f).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    for (name, text) in [
        ("adversarial_v1", ADVERSARIAL_V1),
        ("adversarial_v2", ADVERSARIAL_V2),
    ] {
        tests
            .push(TestConfig::parse(name, Path::new(name), text).unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(tests.len() >= 90, "{} configs", tests.len());

    let mut checks = Checks(Vec::new());
    let (mut curtin_packs, mut script_packs, mut net_configs) = (0, 0, 0);
    for t in &tests {
        // The harness reads the file as PyYAML does.
        checks.ours(format!("{} (harness's reading)", t.name), &t.text, &t.doc);
        let curtin_pack = installer::pack_installer(
            t,
            &PackInputs {
                curtin_src: Some(&curtin),
                webhook,
                apt_proxy: Some(proxy),
                extra_config: Some(&extra),
                // The handoff's late command (a multi-line script) read back too.
                handoff: true,
            },
        );
        match curtin_pack {
            Ok(p) => {
                curtin_packs += 1;
                let files = pack_files(&p);
                checks.same(
                    format!("{} config/test.yaml", t.name),
                    &t.text,
                    &files["config/test.yaml"],
                );
                checks.same(
                    format!("{} config/extra.yaml", t.name),
                    &extra.text,
                    &files["config/extra.yaml"],
                );
                checks.value(
                    format!("{} config/vmtest.yaml", t.name),
                    &files["config/vmtest.yaml"],
                    &installer::curtin_vmtest_config_for(t, webhook, Some(proxy), true),
                );
            }
            Err(e) => panic!("{}: {e:#}", t.name),
        }
        if let Ok(p) = installer::pack_installer(t, &PackInputs::default()) {
            script_packs += 1;
            let files = pack_files(&p);
            checks.same(
                format!("{} config/install-cfg.yaml", t.name),
                &t.text,
                &files["config/install-cfg.yaml"],
            );
            // The installed system's cloud-init network config, as curtin hands it on.
            match files.get("config/50-curtin-networking.cfg") {
                Some(net) => {
                    net_configs += 1;
                    checks.key(
                        format!("{} config/50-curtin-networking.cfg", t.name),
                        "network",
                        &t.text,
                        net,
                    );
                }
                None => assert!(t.doc.get("network").is_none(), "{}", t.name),
            }
        }
        checks.archive(
            &format!("{} boot user-data", t.name),
            &userdata::boot_parts(t),
        );
    }
    checks.archive(
        "install user-data",
        &userdata::install_parts("#!/bin/bash\necho no 0755 12:30\n", Some(proxy)),
    );
    checks.archive(
        "install user-data, no proxy",
        &userdata::install_parts("x", None),
    );
    for name in [
        "basic", "0755", "no", "on", "1e3", "12-30", "1_000", "null", "~",
    ] {
        for phase in ["install", "boot"] {
            checks.value(
                format!("meta-data {name} {phase}"),
                &userdata::meta_data(name, phase),
                &userdata::meta_data_value(name, phase),
            );
        }
    }
    // The emitter on values no config above holds.
    let values = json!({
        "strings": ["52:54:00:12:34:00", "no", "on", "0755", "12:30", "1_000", "1e3", "~", ".inf",
            "", " ", "- a", "a: b", "#c", "&a", "*a", "!t", "%", "@", "`", "'", "\"", "\\", "\t\r\n",
            "\u{0}\u{7}\u{1b}\u{7f}\u{85}\u{a0}\u{2028}\u{2029}\u{feff}\u{fffe}", "\u{1F600}", "é"],
        "floats": [1000.0, 1.5, 0.1, -2.5e-7, 1e300, 5e-324, 123456789.0, -0.0, 1e16, 2.0e-5],
        "ints": [0, -1, 493, 9007199254740993u64, u64::MAX, i64::MIN],
        "bools": [true, false, null],
        "nested": {"": {"a": [[], {}, [[]]]}, "no": {"0755": "12:30"}},
    });
    checks.value(
        "emitter on adversarial values".into(),
        &emit::to_string(&values),
        &values,
    );

    let n = checks.0.len();
    let mut child = Command::new("python3")
        .args(["-c", CHECKER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(&checks.0).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "{} configs ({} packed for curtin, {} for the script installer, {} with a cloud-init network config), {n} checks: {}",
        tests.len(),
        curtin_packs,
        script_packs,
        net_configs,
        stdout.lines().last().unwrap_or("")
    );
    assert!(
        out.status.success(),
        "PyYAML reads something other than what was meant:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Our reader sanity: the adversarial MAC is typed as PyYAML types it.
    let doc = yaml::load("m: 52:54:00:12:34:00\n").unwrap().unwrap();
    assert_eq!(
        doc.get("m").unwrap().scalar(),
        Some(&Scalar::Int(41135085240))
    );
}
