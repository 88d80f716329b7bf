//! The interactive console end to end, under a pseudo-terminal as a user would have it:
//! typed text reaches the guest (the probe's `action=echo` sends it back), Ctrl-A h shows
//! the keys, Ctrl-A x stops the VM with the documented result, and the terminal's settings
//! are the same afterwards as before (also when vmtest is killed by a signal).
//!
//! `vmtest vm --console` on the builtin VMM, and a phase with `interactive` on both
//! backends (qemu under TCG here), which must report the same outcome. The backend checks
//! run this test binary again, under the pty, as the child that runs the phase.
//!
//! Every child is killed at a hard deadline. Needs qemu-system-x86_64 for the qemu case.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(120);

struct Pty {
    master: File,
    slave: OwnedFd,
}

fn openpty() -> Pty {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty fills two descriptors; no name buffer, default settings.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are new descriptors owned here.
    unsafe {
        Pty {
            master: File::from(OwnedFd::from_raw_fd(m)),
            slave: OwnedFd::from_raw_fd(s),
        }
    }
}

/// The settings that matter for "restored": flags and control characters.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    iflag: libc::tcflag_t,
    oflag: libc::tcflag_t,
    cflag: libc::tcflag_t,
    lflag: libc::tcflag_t,
    cc: Vec<libc::cc_t>,
}

fn settings(fd: RawFd) -> Settings {
    // SAFETY: termios is plain integers, for which all-zero is a valid value.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable termios for tcgetattr to fill.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
    Settings {
        iflag: t.c_iflag,
        oflag: t.c_oflag,
        cflag: t.c_cflag,
        lflag: t.c_lflag,
        cc: t.c_cc.to_vec(),
    }
}

/// Runs `cmd` on the pty's slave as its controlling terminal (a new session, as a login
/// shell would start it).
fn spawn_on(pty: &Pty, cmd: &mut Command) -> Child {
    let fd = || Stdio::from(pty.slave.try_clone().unwrap());
    cmd.stdin(fd()).stdout(fd()).stderr(fd());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("the child starts")
}

/// Everything the child writes to the terminal, collected by a thread.
#[derive(Clone)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn watch(master: &File) -> Screen {
        let screen = Screen(Arc::new(Mutex::new(Vec::new())));
        let mut m = master.try_clone().unwrap();
        let s = screen.clone();
        // Ends with EIO once the test drops the slave; until then it may block (detached).
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = m.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.0.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        screen
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until the screen holds `needle` after `after` (both text); panics at the
    /// deadline with what was seen, killing the child.
    fn wait_for(&self, child: &mut Child, after: &str, needle: &str) {
        let start = Instant::now();
        loop {
            let text = self.text();
            if let Some(i) = text.find(after)
                && text[i + after.len()..].contains(needle)
            {
                return;
            }
            if start.elapsed() > DEADLINE || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{needle}` (after `{after}`) never showed; the terminal had:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn wait_exit(child: &mut Child, screen: &Screen) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the child did not end; the terminal had:\n{}",
                screen.text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn vm_console(action: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmtest"));
    c.args(["vm", "--console", "--timeout", "100", "--kernel"])
        .arg(probes::pvh_elf())
        .args(["--append", action]);
    c
}

const ATTACHED: &str = "console attached: Ctrl-A x to leave, Ctrl-A h for help";

#[test]
fn vm_console_types_into_the_guest_and_ctrl_a_x_leaves_with_code_5() {
    let mut pty = openpty();
    let before = settings(pty.slave.as_raw_fd());
    let screen = Screen::watch(&pty.master);
    let mut child = spawn_on(&pty, &mut vm_console("action=echo"));
    screen.wait_for(&mut child, ATTACHED, "PROBE echo ready");
    let during = settings(pty.slave.as_raw_fd());
    assert_eq!(during.lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
    assert_ne!(during.oflag & libc::OPOST, 0, "output processing stays on");

    // Raw mode: no echo from the terminal, so "hello" can only come back from the guest.
    pty.master.write_all(b"hello\r").unwrap();
    screen.wait_for(&mut child, "PROBE echo ready", "hello");
    pty.master.write_all(b"\x01h").unwrap();
    screen.wait_for(&mut child, "hello", "Ctrl-A x");
    // Ctrl-C is the guest's (no signal); Ctrl-A Ctrl-A sends one Ctrl-A, also echoed.
    pty.master.write_all(b"\x03\x01\x01!").unwrap();
    screen.wait_for(&mut child, "Ctrl-A x", "\x03\x01!");
    pty.master.write_all(b"\x01x").unwrap();
    let status = wait_exit(&mut child, &screen);
    assert_eq!(status.code(), Some(5), "terminal:\n{}", screen.text());
    assert_eq!(settings(pty.slave.as_raw_fd()), before, "terminal restored");
    let text = screen.text();
    assert!(
        !text.contains("PROBE echo done"),
        "the VM was stopped, not ended: {text}"
    );
}

/// A guest that reads no input (the probe hangs) while far more than the VMM's 64 KiB
/// input backlog is typed: the console keeps reading its keys, so Ctrl-A x still leaves.
#[test]
fn ctrl_a_x_leaves_while_the_guest_reads_no_input() {
    let mut pty = openpty();
    let before = settings(pty.slave.as_raw_fd());
    let screen = Screen::watch(&pty.master);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmtest"));
    cmd.args(["vm", "--console", "--timeout", "60", "--kernel"])
        .arg(probes::pvh_elf())
        .args(["--append", "action=hang"]);
    let mut child = spawn_on(&pty, &mut cmd);
    screen.wait_for(&mut child, ATTACHED, "PROBE RESULT");
    // 256 KiB of keys from a process of its own: if the console stopped reading, its write
    // blocks and only a kill ends it.
    let mut typist = Command::new("head")
        .args(["-c", "262144", "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(pty.master.try_clone().unwrap()))
        .spawn()
        .expect("head runs");
    let start = Instant::now();
    let typed = loop {
        if let Some(status) = typist.try_wait().unwrap() {
            break status.success();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = typist.kill();
            let _ = typist.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if typed {
        pty.master.write_all(b"\x01x").unwrap();
    }
    let status = wait_exit(&mut child, &screen);
    let text = screen.text();
    assert!(
        typed,
        "the console stopped reading its keys; terminal:\n{text}"
    );
    assert_eq!(status.code(), Some(5), "terminal:\n{text}");
    assert_eq!(settings(pty.slave.as_raw_fd()), before, "terminal restored");
    assert!(
        text.contains("the guest is not reading its input"),
        "{text}"
    );
}

#[test]
fn a_signal_while_attached_still_restores_the_terminal() {
    let pty = openpty();
    let before = settings(pty.slave.as_raw_fd());
    let screen = Screen::watch(&pty.master);
    let mut child = spawn_on(&pty, &mut vm_console("action=echo"));
    screen.wait_for(&mut child, ATTACHED, "PROBE echo ready");
    assert_ne!(
        settings(pty.slave.as_raw_fd()),
        before,
        "raw while attached"
    );
    assert_eq!(sigterm(&mut child, &screen), Some(libc::SIGTERM));
    assert_eq!(settings(pty.slave.as_raw_fd()), before, "terminal restored");
}

/// Sends the child SIGTERM and returns the signal that ended it, if one did.
fn sigterm(child: &mut Child, screen: &Screen) -> Option<i32> {
    // SAFETY: kill(2) of our own child, which has not been reaped (no pid reuse).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(child, screen);
    std::os::unix::process::ExitStatusExt::signal(&status)
}

/// Once the console has detached, a terminating signal does what it always did (the
/// signal watcher stays registered, so it must hand the signal back to its default).
#[test]
fn a_signal_after_the_console_detached_still_ends_the_process() {
    const CHILD: &str = "VMTEST_CONSOLE_DETACH_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let console =
            harness::console::Console::attach_stdin(vmm::SerialInput::new(), || {}).unwrap();
        drop(console);
        println!("\nCHILD DETACHED");
        std::thread::sleep(Duration::from_secs(60));
        println!("CHILD STILL ALIVE");
        return;
    }
    let pty = openpty();
    let before = settings(pty.slave.as_raw_fd());
    let screen = Screen::watch(&pty.master);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "a_signal_after_the_console_detached_still_ends_the_process",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, "1");
    let mut child = spawn_on(&pty, &mut cmd);
    screen.wait_for(&mut child, ATTACHED, "CHILD DETACHED");
    assert_eq!(
        settings(pty.slave.as_raw_fd()),
        before,
        "restored on detach"
    );
    assert_eq!(
        sigterm(&mut child, &screen),
        Some(libc::SIGTERM),
        "terminal:\n{}",
        screen.text()
    );
}

#[test]
fn vm_console_from_a_pipe_passes_bytes_and_honours_the_escape() {
    let run = |input: &[u8]| {
        let mut child = vm_console("action=echo")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("vmtest vm --console did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    // Ctrl-D ends the echo probe, which powers off: exit code 0.
    let out = run(b"abc\x01\x01def\x04");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.contains("PROBE echo ready\nabc\x01def\n"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(ATTACHED));
    // Ctrl-A x in a pipe stops the VM like a key would.
    let out = run(b"ab\x01x");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped at the console"));
}

// ---- both backends' interactive phases ----

const CHILD_ENV: &str = "VMTEST_CONSOLE_TEST_CHILD";

/// In the child: runs an interactive echo phase on the named backend and prints how it
/// ended. (This is the same test binary, started by `backend_console` under a pty.)
fn run_child_phase(backend: &str) {
    use harness::backend::{Backend, Boot, PhaseSpec};
    let dir = tempfile::tempdir().unwrap();
    // "qemu-hang": a guest that never ends, killed at a short timeout. "builtin-shutdown":
    // a guest that never ends, under the harness's orderly shutdown (as `vmtest run`).
    let hang = backend.ends_with("-hang") || backend == "builtin-shutdown";
    if backend == "builtin-shutdown" {
        harness::shutdown::install().unwrap();
    }
    let spec = PhaseSpec {
        phase: harness::backend::Phase::Boot,
        boot: Boot::Direct {
            kernel: probes::pvh_elf().to_path_buf(),
            initrd: None,
            cmdline: if hang { "action=hang" } else { "action=echo" }.into(),
        },
        disks: vec![],
        nics: vec![],
        memory_mib: 128,
        vcpus: 1,
        serial_log: dir.path().join("serial.log"),
        serial_log_cap: vmm::DEFAULT_LOG_CAP,
        log_dir: dir.path().to_path_buf(),
        timeout: Duration::from_secs(match backend {
            "qemu-hang" => 3,
            _ => 100,
        }),
        host_ports: vec![],
        outbound: Default::default(),
        interactive: true,
        uefi_nvram: None,
    };
    let b: Box<dyn Backend> = match backend {
        "qemu" | "qemu-hang" => Box::new(
            harness::backend::qemu::QemuBackend::detect()
                .unwrap_or_else(|e| panic!("prerequisite missing: {e}")),
        ),
        _ => Box::new(harness::backend::BuiltinBackend),
    };
    let r = b.run_phase(&spec).unwrap();
    let log = std::fs::read_to_string(&spec.serial_log).unwrap_or_default();
    println!("\nCHILD OUTCOME [{}]", r.outcome);
    println!(
        "CHILD LOG HAS HELLO [{}]",
        log.contains("PROBE echo ready\nhello")
    );
}

/// A phase run by this test binary in a child under a pseudo-terminal.
struct ChildPhase {
    pty: Pty,
    /// The terminal's settings before the child started.
    before: Settings,
    screen: Screen,
    child: Child,
}

impl ChildPhase {
    /// The terminal's settings now.
    fn settings(&self) -> Settings {
        settings(self.pty.slave.as_raw_fd())
    }
}

/// In the child: runs the `which` phase and returns `None`. In the test: starts the child
/// (`test_name` again, told to run `which`) and waits until the guest shows `ready`.
fn child_phase(test_name: &str, which: &str, ready: &str) -> Option<ChildPhase> {
    if let Ok(which) = std::env::var(CHILD_ENV) {
        run_child_phase(&which);
        return None;
    }
    let pty = openpty();
    let before = settings(pty.slave.as_raw_fd());
    let screen = Screen::watch(&pty.master);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, which);
    let mut child = spawn_on(&pty, &mut cmd);
    screen.wait_for(&mut child, ATTACHED, ready);
    Some(ChildPhase {
        pty,
        before,
        screen,
        child,
    })
}

fn backend_console(backend: &str, test_name: &str) {
    let Some(mut p) = child_phase(test_name, backend, "PROBE echo ready") else {
        return;
    };
    p.pty.master.write_all(b"hello\r").unwrap();
    p.screen.wait_for(&mut p.child, "PROBE echo ready", "hello");
    p.pty.master.write_all(b"\x01x").unwrap();
    let status = wait_exit(&mut p.child, &p.screen);
    let text = p.screen.text();
    assert!(status.success(), "{backend} child failed:\n{text}");
    assert!(
        text.contains("CHILD OUTCOME [console: stopped by the user]"),
        "{backend}:\n{text}"
    );
    assert!(
        text.contains("CHILD LOG HAS HELLO [true]"),
        "{backend}: the serial log has the session:\n{text}"
    );
    assert_eq!(p.settings(), p.before, "terminal restored");
}

#[test]
fn builtin_phase_console_stopped_by_the_user() {
    backend_console("builtin", "builtin_phase_console_stopped_by_the_user");
}

#[test]
fn qemu_phase_console_stopped_by_the_user() {
    backend_console("qemu", "qemu_phase_console_stopped_by_the_user");
}

/// Under `vmtest run`'s orderly shutdown a signal while the console is attached restores
/// the terminal and leaves the rest to the shutdown: the VM is stopped and the phase ends
/// as interrupted, the process is not killed by the signal.
#[test]
fn a_signal_with_the_orderly_shutdown_interrupts_the_phase_and_restores_the_terminal() {
    let Some(mut p) = child_phase(
        "a_signal_with_the_orderly_shutdown_interrupts_the_phase_and_restores_the_terminal",
        "builtin-shutdown",
        "PROBE RESULT",
    ) else {
        return;
    };
    assert_ne!(p.settings(), p.before, "raw while attached");
    assert_eq!(
        sigterm(&mut p.child, &p.screen),
        None,
        "{}",
        p.screen.text()
    );
    let text = p.screen.text();
    assert!(
        text.contains("CHILD OUTCOME [interrupted: the harness got SIGTERM]"),
        "{text}"
    );
    assert_eq!(p.settings(), p.before, "terminal restored");
}

/// qemu restores the terminal when it exits, but a phase's timeout kills it: the harness
/// must put the settings back itself.
#[test]
fn qemu_killed_at_the_timeout_leaves_the_terminal_restored() {
    let Some(mut p) = child_phase(
        "qemu_killed_at_the_timeout_leaves_the_terminal_restored",
        "qemu-hang",
        "PROBE RESULT",
    ) else {
        return;
    };
    assert_ne!(p.settings(), p.before, "qemu made it raw");
    let status = wait_exit(&mut p.child, &p.screen);
    let text = p.screen.text();
    assert!(status.success(), "child failed:\n{text}");
    assert!(text.contains("CHILD OUTCOME [timed out]"), "{text}");
    assert_eq!(p.settings(), p.before, "terminal restored");
}
