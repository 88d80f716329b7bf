//! Shared by the end-to-end tests that drive the `vmtest` binary.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `vmtest` with the repository as its working directory (so examples/tests is found).
pub fn vmtest() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmtest"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    c
}

/// Runs `cmd` in its own process group, stdout captured (and echoed), stderr passed
/// through, and returns (exit code, stdout). Past `limit` the whole group (vmtest and the
/// VMs it started) is killed and the test panics with `what`.
pub fn run_with_limit(mut cmd: Command, limit: Duration, what: &str) -> (i32, String) {
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vmtest");
    // Read stdout on a thread so a chatty run cannot fill the pipe and stall.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            // SAFETY: plain syscall; the group id is the child's pid (process_group(0)).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}: killed with its VMs");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let out = reader.join().unwrap();
    println!("{out}");
    (status.code().unwrap_or(-1), out)
}

/// Asserts from a test's logs/ that its install wrote the handoff and its boot phase ran
/// the handed-off kernel directly: the kernel's command line holds each of `cmdline_has`,
/// and neither firmware nor grub printed anything. Returns that command line.
pub fn assert_booted_from_the_handoff(logs: &std::path::Path, cmdline_has: &[&str]) -> String {
    let read = |f: &str| std::fs::read_to_string(logs.join(f)).unwrap_or_default();
    assert!(
        read("install-serial.log").contains("vmtest-handoff: wrote grub.cfg and"),
        "the install wrote the handoff ({})",
        logs.display()
    );
    let boot = read("boot-serial.log");
    let cmdline = boot
        .lines()
        .find(|l| l.contains("Command line: "))
        .map(str::trim_end)
        .unwrap_or_else(|| panic!("no kernel command line in the boot serial log"));
    for want in cmdline_has {
        assert!(cmdline.contains(want), "{want} not in {cmdline}");
    }
    assert!(
        !boot.contains("SeaBIOS") && !boot.contains("GNU GRUB"),
        "no firmware or grub in a direct boot"
    );
    cmdline.to_string()
}
