//! A running phase reports itself every minute, so a slow (TCG) install is visibly alive.

use std::path::Path;
use std::time::{Duration, Instant};

use super::RunContext;
use crate::backend::PhaseSpec;

/// How often a running phase reports itself.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Runs a phase, printing every minute how long it has run and the console's last line,
/// so a slow (TCG) install is visibly alive.
pub(crate) fn run_phase_with_heartbeat(
    ctx: &RunContext,
    test: &str,
    spec: &PhaseSpec,
) -> Result<crate::backend::PhaseResult, crate::backend::BackendError> {
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
                            spec.phase,
                            start.elapsed().as_secs(),
                            console_line(&spec.serial_log)
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

/// The console's last line, short enough for a progress line.
fn console_line(serial_log: &Path) -> String {
    crate::serial_log::last_line(serial_log)
        .chars()
        .take(100)
        .collect()
}
