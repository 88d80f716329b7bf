//! Progress lines of a run: on stderr and in the extended log (CURTIN_VMTEST_LOG), each
//! stamped with the seconds since the run started.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where progress goes: stderr and the extended log (CURTIN_VMTEST_LOG).
#[derive(Clone)]
pub struct Progress {
    log: Arc<Mutex<Option<std::fs::File>>>,
    start: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(log: Option<&Path>, quiet: bool) -> Progress {
        let f = log.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        Progress {
            log: Arc::new(Mutex::new(f)),
            start: Instant::now(),
            quiet,
        }
    }

    pub fn say(&self, test: &str, msg: &str) {
        let line = format!(
            "[{:>7.1}s] {test}: {msg}",
            self.start.elapsed().as_secs_f64()
        );
        if !self.quiet {
            eprintln!("{line}");
        }
        if let Some(f) = self.log.lock().unwrap().as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }
}
