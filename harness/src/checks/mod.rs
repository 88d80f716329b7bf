//! Checks derived from a test's config: what the installed system must show, found from
//! the config alone and evaluated against the files the boot phase collected.
//!
//! A [`Check`] is a stable name (`raid os-raid1 level`), a group (where it comes from:
//! the storage config, the network config, the test's `expect:`), what it expects in
//! words (`raid5`), and a [`Probe`] that evaluates it against the collected data and,
//! when it does not hold, says what was found instead (the evidence). Each domain derives
//! its own checks from its part of the config and reads its own collected files:
//!
//! - [`storage`]: disks, partitions, filesystems, mounts, RAID, LVM, dm-crypt, bcache,
//!   swap, from `storage:`;
//! - [`network`]: interfaces, addresses, routes, bonds, VLANs, bridges, DNS, from
//!   `network:` (its collected facts and their bounded parsers in `network::facts`, its
//!   section of the collect script in `network::script`).
//!
//! [`Collected`] reads collect/ lazily and bounded, and caches each parsed artifact, so
//! many checks share one parse of `lsblk.json`. The test's own `expect:` list adds to the
//! derived checks; `vmtest: {derive_checks: false}` or `vmtest run --no-derive-checks`
//! turns derivation off.

pub mod collected;
pub mod network;
pub mod parse;
pub mod script;
pub mod storage;

use std::fmt;

pub use collected::{Artifact, Collected, DataError};

use crate::check::{CheckGroup, CheckResult};
use crate::config::TestConfig;

/// How a check is evaluated against what the installed system showed.
pub trait Probe: fmt::Debug + Send + Sync {
    /// Ok when the collected data shows what the check expects; otherwise what it shows
    /// instead (the evidence, a few lines at most).
    fn evaluate(&self, data: &Collected) -> Result<(), String>;
}

/// One derived check.
#[derive(Debug)]
pub struct Check {
    pub group: CheckGroup,
    /// Stable and unique within a test: `partition sda1 size`, `mount / fstab`.
    pub name: String,
    /// What the config implies, in words: `3221225472 bytes (3 GiB), within 1 MiB`.
    pub expects: String,
    /// The line of the test file whose entry implies this check, where known.
    pub line: Option<usize>,
    probe: Box<dyn Probe>,
}

impl Check {
    pub fn new(
        group: CheckGroup,
        name: impl Into<String>,
        expects: impl Into<String>,
        probe: impl Probe + 'static,
    ) -> Check {
        Check {
            group,
            name: name.into(),
            expects: expects.into(),
            line: None,
            probe: Box::new(probe),
        }
    }

    /// The same check, said to come from line `line` of the test file.
    pub fn at(mut self, line: Option<usize>) -> Check {
        self.line = line;
        self
    }

    /// The check's result on `data`; a failure's evidence starts with what was expected.
    pub fn run(&self, data: &Collected) -> CheckResult {
        let r = match self.probe.evaluate(data) {
            Ok(()) => CheckResult::pass(self.group, &self.name),
            Err(found) => CheckResult::fail(
                self.group,
                &self.name,
                format!("expected {}; {found}", self.expects),
            ),
        };
        r.at(self.line)
    }
}

/// Every check the config implies, in config order (storage, then network). Names are
/// made unique (a second `mount none fstab` becomes `mount none fstab #2`).
pub fn derive(test: &TestConfig) -> Vec<Check> {
    let mut checks = storage::derive(test);
    checks.extend(network::derive(test));
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for c in &mut checks {
        let n = seen.entry(c.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            c.name = format!("{} #{n}", c.name);
        }
    }
    checks
}

/// Runs `checks` on the data collected in `collect`.
pub fn evaluate(checks: &[Check], collect: &std::path::Path) -> Vec<CheckResult> {
    let data = Collected::new(collect);
    checks.iter().map(|c| c.run(&data)).collect()
}

/// Whether checks are derived for `test`: its `vmtest: {derive_checks}` (default true)
/// and the run's switch (`--no-derive-checks`, VMTEST_DERIVE_CHECKS=0) must both allow it.
pub fn derivation_on(test: &TestConfig, run_allows: bool) -> bool {
    run_allows && test.vmtest.derive_checks
}

/// The checks of one test on its collect/: the derived ones (when on), then the test's
/// own `expect:` items.
pub fn verify(test: &TestConfig, collect: &std::path::Path, derive_on: bool) -> Vec<CheckResult> {
    let mut results = if derive_on {
        evaluate(&derive(test), collect)
    } else {
        Vec::new()
    };
    // Each `expect:` item gives one or more results, all from its line.
    for (i, e) in test.vmtest.expect.iter().enumerate() {
        let line = test.expect_line(i);
        results.extend(
            crate::verdict::check_expectations(collect, std::slice::from_ref(e))
                .into_iter()
                .map(|r| r.at(line)),
        );
    }
    results
}

/// `group` as shown by `vmtest show`.
pub fn group_label(group: CheckGroup) -> &'static str {
    group.as_str()
}
