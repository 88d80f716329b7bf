//! `vmtest vm` from the outside: exit codes per exit reason, and bad input answered with
//! one clear line, a non-zero exit and nothing written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vmtest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmtest"))
}

struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vmtest-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("vmtest runs")
}

/// One error line on stderr naming `what`, exit code 1, and no serial log left behind.
fn assert_rejected(out: &Output, what: &str, log: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].starts_with("vmtest: error:"), "{stderr}");
    assert!(lines[0].contains(what), "'{what}' not in: {stderr}");
    assert!(!log.exists(), "{} was written", log.display());
}

fn vm(kernel: &Path, log: &Path) -> Command {
    vm_with_timeout(kernel, log, "30")
}

fn vm_with_timeout(kernel: &Path, log: &Path, timeout: &str) -> Command {
    let mut c = vmtest();
    c.args(["vm", "--quiet", "--timeout", timeout, "--kernel"])
        .arg(kernel)
        .arg("--serial-log")
        .arg(log);
    c
}

#[test]
fn exit_code_tells_the_exit_reason() {
    let s = Scratch::new("codes");
    for (action, code) in [("poweroff", 0), ("reboot-acpi", 2), ("crash", 3)] {
        let log = s.path(&format!("{action}.log"));
        let out = run(vm(probes::pvh_elf(), &log).args(["--append", &format!("action={action}")]));
        assert_eq!(out.status.code(), Some(code), "{action}: {out:?}");
        let serial = std::fs::read_to_string(&log).unwrap();
        assert!(serial.contains("PROBE RESULT PASS"), "{serial}");
    }
    let log = s.path("hang.log");
    let out = run(vm_with_timeout(probes::pvh_elf(), &log, "1").args(["--append", "action=hang"]));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}

#[test]
fn missing_unreadable_and_non_kernels_are_rejected() {
    let s = Scratch::new("kernel");
    let log = s.path("serial.log");
    assert_rejected(
        &run(&mut vm(&s.path("no-such-vmlinuz"), &log)),
        "no-such-vmlinuz",
        &log,
    );
    // Root reads any file, so "unreadable" is a path that cannot be opened at all.
    assert_rejected(
        &run(&mut vm(Path::new("/etc/hostname/vmlinuz"), &log)),
        "cannot read kernel",
        &log,
    );
    let text = s.path("notes.txt");
    std::fs::write(&text, "not a kernel\n").unwrap();
    assert_rejected(&run(&mut vm(&text, &log)), "is not a kernel", &log);
    assert_rejected(&run(&mut vm(&s.0, &log)), "directory", &log);
}

#[test]
fn initrd_larger_than_memory_is_rejected() {
    let s = Scratch::new("initrd");
    let log = s.path("serial.log");
    let initrd = s.path("big.img");
    let f = std::fs::File::create(&initrd).unwrap();
    f.set_len(64 << 20).unwrap(); // sparse
    let out = run(vm(probes::pvh_elf(), &log)
        .args(["--memory", "32M", "--initrd"])
        .arg(&initrd));
    assert_rejected(&out, "does not fit in guest memory", &log);
    let out = run(vm(probes::pvh_elf(), &log)
        .arg("--initrd")
        .arg(s.path("missing.img")));
    assert_rejected(&out, "missing.img", &log);
}

#[test]
fn memory_too_small_and_bad_sizes_are_rejected() {
    let s = Scratch::new("memory");
    let log = s.path("serial.log");
    assert_rejected(
        &run(vm(probes::pvh_elf(), &log).args(["--memory", "2M"])),
        "too small",
        &log,
    );
    let out = run(vm(probes::pvh_elf(), &log).args(["--memory", "lots"]));
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a memory size"));
    assert!(!log.exists());
}

#[test]
fn command_line_too_long_is_rejected() {
    let s = Scratch::new("cmdline");
    let log = s.path("serial.log");
    let long = "x".repeat(3000);
    assert_rejected(
        &run(vm(probes::bzimage(), &log).args(["--append", &long])),
        "longer than the 2047",
        &log,
    );
}

#[test]
fn an_existing_serial_log_is_not_overwritten() {
    let s = Scratch::new("log");
    let log = s.path("serial.log");
    std::fs::write(&log, "precious\n").unwrap();
    let out = run(vm(probes::pvh_elf(), &log).args(["--append", "action=poweroff"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serial.log"));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "precious\n");
}

#[test]
fn no_access_to_dev_kvm_is_one_clear_error() {
    // Whether an unprivileged user may open /dev/kvm differs from host to host (root-only
    // here, 0666 on many CI runners), so the test takes access away itself: in a private
    // mount namespace an unreadable file hides /dev/kvm, and the VMM runs as `nobody`.
    let s = Scratch::new("nokvm");
    std::fs::set_permissions(&s.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let log = s.path("serial.log");
    let denied = s.path("kvm-denied");
    std::fs::write(&denied, "").unwrap();
    std::fs::set_permissions(&denied, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "if [ -e /dev/kvm ]; then mount --bind \"$0\" /dev/kvm || exit 97; fi; \
             exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- \"$@\"",
        )
        .arg(&denied)
        .arg(env!("CARGO_BIN_EXE_vmtest"))
        .args(["vm", "--quiet", "--kernel"])
        .arg(probes::pvh_elf())
        .arg("--serial-log")
        .arg(&log);
    let out = cmd
        .output()
        .expect("unshare and setpriv (util-linux) are needed for this test");
    assert_ne!(
        out.status.code(),
        Some(97),
        "cannot hide /dev/kvm (this test needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_rejected(&out, "/dev/kvm", &log);
}
