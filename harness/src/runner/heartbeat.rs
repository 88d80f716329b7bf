//! A running phase reports itself every minute, so a slow (TCG) install is visibly alive.

use std::path::Path;
use std::time::{Duration, Instant};

use super::RunContext;
use crate::backend::PhaseSpec;

/// How often a running phase reports itself.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// The last non-empty line of the serial log, cleaned of escape sequences, for progress.
fn last_serial_line(path: &Path) -> String {
    let data = std::fs::read(path).unwrap_or_default();
    let start = data.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&data[start..]);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out = String::new();
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
            (false, c) if !c.is_control() => out.push(c),
            _ => {}
        }
    }
    out.chars().take(100).collect()
}

/// Runs a phase, printing every minute how long it has run and the console's last line,
/// so a slow (TCG) install is visibly alive.
pub(crate) fn run_phase_with_heartbeat(
    ctx: &RunContext,
    test: &str,
    spec: &PhaseSpec,
) -> anyhow::Result<crate::backend::PhaseResult> {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let start = Instant::now();
            let mut next = HEARTBEAT;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                // With the console attached the guest's output is on the terminal
                // already; a progress line would land in the middle of it.
                if start.elapsed() >= next && !spec.interactive {
                    next += HEARTBEAT;
                    ctx.progress.say(
                        test,
                        &format!(
                            "{}: running {}s; console: {}",
                            spec.name,
                            start.elapsed().as_secs(),
                            last_serial_line(&spec.serial_log)
                        ),
                    );
                }
            }
        });
        let r = ctx.backend.run_phase(spec);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_line_for_progress() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.log");
        std::fs::write(
            &p,
            "a\n[\u{1b}[0;32m  OK  \u{1b}[0m] Reached target Network.\r\n\n",
        )
        .unwrap();
        assert_eq!(last_serial_line(&p), "[  OK  ] Reached target Network.");
        assert_eq!(last_serial_line(&d.path().join("none")), "");
    }
}
