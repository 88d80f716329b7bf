//! Harness time per step, outside the VMs: what the summary's `harness` column adds up.

use std::time::{Duration, Instant};

pub(crate) struct Timer {
    pub(crate) steps: Vec<(&'static str, Duration)>,
    t: Instant,
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            steps: Vec::new(),
            t: Instant::now(),
        }
    }
    pub(crate) fn lap(&mut self, name: &'static str) {
        self.steps.push((name, self.t.elapsed()));
        self.t = Instant::now();
    }
    /// Restart without recording (time spent in a VM).
    pub(crate) fn skip(&mut self) {
        self.t = Instant::now();
    }
}
