//! The same PVH probe under qemu (TCG: KVM is emulated on these hosts), `-M microvm` and
//! `-M pc`, so both backends are held to one standard. qemu must be installed
//! (qemu-system-x86); a missing qemu fails the test with that reason.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use probes::{Action, Report};

const LIMIT: Duration = Duration::from_secs(60);

fn qemu(machine: &str, cpus: u32) -> (bool, String) {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-M", machine, "-accel", "tcg", "-m", "128", "-nographic", "-nodefaults"])
        .args(["-no-reboot", "-serial", "stdio", "-smp", &cpus.to_string(), "-kernel"])
        .arg(probes::pvh_elf())
        .args(["-append", &probes::cmdline(Action::PowerOff, Some(cpus), &["PNP0501"])])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 is needed for this test: apt-get install qemu-system-x86");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.is_some(), "qemu -M {machine} hit the {LIMIT:?} limit:\n{out}\n{err}");
    (status.unwrap().success(), format!("{out}{err}"))
}

fn check(machine: &str, cpus: u32) {
    let (ok, out) = qemu(machine, cpus);
    assert!(ok, "qemu -M {machine} failed:\n{out}");
    let r = Report::parse(&out).unwrap_or_else(|| panic!("no probe report:\n{out}"));
    assert!(r.passed(), "{:?}\n{out}", r.result);
    assert_eq!(r.get("entry"), Some("pvh"));
    assert_eq!(r.get("lapics"), Some(cpus.to_string().as_str()));
}

#[test]
fn pvh_probe_under_qemu_microvm() {
    check("microvm", 1);
    check("microvm", 4);
}

#[test]
fn pvh_probe_under_qemu_pc() {
    check("pc", 1);
    check("pc", 4);
}
