//! Many tests, `settings.parallel` at a time, on scoped threads.

use std::sync::Mutex;

use super::{RunContext, RunError, Status, TestResult, check_installers, run_test};
use crate::config::TestConfig;

/// Runs tests, `settings.parallel` at a time; results in the order given. When the
/// installers cannot be packed ([`check_installers`]) no VM starts and every test is an
/// error with that reason.
pub fn run_all(tests: &[TestConfig], ctx: &RunContext) -> Vec<TestResult> {
    if let Err(e) = check_installers(tests, ctx.curtin_src) {
        ctx.progress.say("vmtest", &format!("no test run: {e}"));
        return tests
            .iter()
            .map(|t| {
                let mut r = TestResult::new(t, ctx);
                r.failure = Some(RunError::Installers(e.clone()));
                r.status = Status::Error;
                r
            })
            .collect();
    }
    let n = ctx.settings.parallel.max(1).min(tests.len().max(1));
    if n <= 1 {
        return tests.iter().map(|t| run_test(t, ctx)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(tests.iter().map(|_| None).collect());
    std::thread::scope(|sc| {
        for _ in 0..n {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= tests.len() {
                        break;
                    }
                    let r = run_test(&tests[i], ctx);
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .flatten()
        .collect()
}
