//! Running one build step (mmdebstrap, mksquashfs): its output teed to a log and to
//! stderr as it comes, and a time limit that kills the step with every helper it started.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// How long one build step (mmdebstrap, mksquashfs) may run before it is killed: a build
/// takes minutes, so this only catches a stalled mirror or a wedged tool.
/// VMTEST_IMAGE_STEP_TIMEOUT (seconds) overrides it.
fn step_limit() -> std::time::Duration {
    let secs = std::env::var("VMTEST_IMAGE_STEP_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3600);
    std::time::Duration::from_secs(secs)
}

/// Runs a command, teeing its output (stdout and stderr, as it comes) to `log` and to
/// stderr, killing it after [`step_limit`]; fails naming the log.
pub(crate) fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    run_logged_within(cmd, log, step_limit())
}

fn run_logged_within(cmd: &mut Command, log: &Path, limit: std::time::Duration) -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};
    let logf = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let logf = Arc::new(Mutex::new(logf));
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        // Its own process group, so a kill reaches the helpers it starts (apt, dpkg), which
        // would otherwise keep the output pipes open.
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    fn tee(r: impl std::io::Read, logf: Arc<Mutex<fs::File>>) {
        for l in BufReader::new(r).split(b'\n').map_while(Result::ok) {
            if let Ok(mut f) = logf.lock() {
                let _ = f.write_all(&l);
                let _ = f.write_all(b"\n");
            }
            // apt's progress bars redraw with \r: show the last state only.
            let text = String::from_utf8_lossy(&l);
            let shown = text
                .rsplit('\r')
                .find(|s| !s.trim().is_empty())
                .unwrap_or("");
            eprintln!("    {shown}");
        }
    }
    // The watchdog kills the child when the limit passes before the step ends; the pipes
    // then close, the tee threads finish and the wait below returns.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let pid = child.id() as libc::pid_t;
    let watchdog = std::thread::spawn(move || {
        let timed_out = matches!(
            done_rx.recv_timeout(limit),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if timed_out {
            // SAFETY: kill(2) of our child's process group; the child is not reaped before
            // the watchdog is told the step ended, so the group id is still ours.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        timed_out
    });
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let l2 = logf.clone();
    let t = std::thread::spawn(move || tee(stderr, l2));
    tee(stdout, logf);
    let _ = t.join();
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let status = child.wait()?;
    if timed_out {
        bail!(
            "{program} did not finish within {} s and was killed (VMTEST_IMAGE_STEP_TIMEOUT raises the limit); its output is in {}",
            limit.as_secs(),
            log.display()
        );
    }
    if !status.success() {
        bail!(
            "{program} failed ({status}); its output is in {}",
            log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod run_logged_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_step_over_its_limit_is_killed_with_its_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        // The grandchild keeps the pipe open: only a process-group kill ends the step.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; sleep 30 | cat"]);
        let start = Instant::now();
        let e = run_logged_within(&mut cmd, &log, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(
            e.contains("did not finish within 1 s") && e.contains("step.log"),
            "{e}"
        );
        assert!(fs::read_to_string(&log).unwrap().contains("started"));
    }

    #[test]
    fn a_quick_step_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ok.log");
        run_logged_within(Command::new("true").arg("x"), &log, Duration::from_secs(30)).unwrap();
    }
}
