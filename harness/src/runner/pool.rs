//! Many tests, `settings.parallel` at a time, on scoped threads. Each result is handed
//! over as soon as its test ends (so a report can be rewritten while the run goes on).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{RunContext, RunError, Status, TestResult, check_installers, run_test};
use crate::config::TestConfig;

/// Runs tests, `settings.parallel` at a time; results in the order given. When the
/// installers cannot be packed ([`check_installers`]) no VM starts and every test is an
/// error with that reason.
pub fn run_all(tests: &[TestConfig], ctx: &RunContext) -> Vec<TestResult> {
    let slots: Mutex<Vec<Option<TestResult>>> = Mutex::new(tests.iter().map(|_| None).collect());
    run_all_with(tests, ctx, &|i, r| slots.lock().unwrap()[i] = Some(r));
    slots.into_inner().unwrap().into_iter().flatten().collect()
}

/// [`run_all`], handing each result to `done` with its index in `tests` as soon as the
/// test ends (from the worker thread that ran it).
pub fn run_all_with(
    tests: &[TestConfig],
    ctx: &RunContext,
    done: &(dyn Fn(usize, TestResult) + Sync),
) {
    if let Err(e) = check_installers(tests, ctx.curtin_src) {
        ctx.progress.say("vmtest", &format!("no test run: {e}"));
        for (i, t) in tests.iter().enumerate() {
            let mut r = TestResult::new(t, ctx);
            r.failure = Some(RunError::Installers(e.clone()));
            r.status = Status::Error;
            done(i, r);
        }
        return;
    }
    let n = ctx.settings.parallel.max(1).min(tests.len().max(1));
    let next = AtomicUsize::new(0);
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= tests.len() {
                break;
            }
            done(i, run_test(&tests[i], ctx));
        }
    };
    if n <= 1 {
        return worker();
    }
    std::thread::scope(|sc| {
        for _ in 0..n {
            sc.spawn(worker);
        }
    });
}
