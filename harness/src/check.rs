//! One result per check: what verifying a test produces, whatever made the check (the
//! test's own `expect:` today; checks derived from the storage and network configs add
//! groups of their own). The summary counts them, JUnit gives each its own testcase (as
//! nose gave one per `test_*` method), and a failed one carries the evidence found.

use serde::Serialize;

/// Where a check comes from. Derived checks (storage, network) add their own groups, so
/// a reader can tell a hand-written expectation from one the config implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CheckGroup {
    /// The test's `vmtest.expect:` list.
    Expect,
    /// Derived from the storage config (`crate::checks::storage`).
    Storage,
    /// Derived from the network config.
    Network,
}

impl CheckGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckGroup::Expect => "expect",
            CheckGroup::Storage => "storage",
            CheckGroup::Network => "network",
        }
    }
}

/// Whether a check held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckOutcome {
    Pass,
    Fail,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub group: CheckGroup,
    /// What is checked, stable from run to run and unique within a test (CI compares
    /// results by it): `fstab /home`, `by_id virtio-disk-a`, `swaps_in_use >= 1`. Shown
    /// after the test's name: `basic / fstab /home`.
    pub name: String,
    pub outcome: CheckOutcome,
    /// What was found: on a failure, why it failed (the collected lines that disagree, or
    /// the file that is missing); may be empty on a pass.
    pub evidence: String,
    /// The line of the test file whose entry implied the check (a storage item, an
    /// interface, an `expect:` item), where known: CI annotations point there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl CheckResult {
    pub fn pass(group: CheckGroup, name: impl Into<String>) -> CheckResult {
        CheckResult {
            group,
            name: name.into(),
            outcome: CheckOutcome::Pass,
            evidence: String::new(),
            line: None,
        }
    }

    pub fn fail(
        group: CheckGroup,
        name: impl Into<String>,
        evidence: impl Into<String>,
    ) -> CheckResult {
        CheckResult {
            group,
            name: name.into(),
            outcome: CheckOutcome::Fail,
            evidence: evidence.into(),
            line: None,
        }
    }

    /// Pass or fail by `result`, the error being the evidence.
    pub fn from_result(
        group: CheckGroup,
        name: impl Into<String>,
        result: Result<(), String>,
    ) -> CheckResult {
        match result {
            Ok(()) => CheckResult::pass(group, name),
            Err(evidence) => CheckResult::fail(group, name, evidence),
        }
    }

    /// The same result, said to come from line `line` of the test file.
    pub fn at(mut self, line: Option<usize>) -> CheckResult {
        self.line = line;
        self
    }

    pub fn passed(&self) -> bool {
        self.outcome == CheckOutcome::Pass
    }
}

/// (passed, failed) among `checks`.
pub fn counts(checks: &[CheckResult]) -> (usize, usize) {
    let passed = checks.iter().filter(|c| c.passed()).count();
    (passed, checks.len() - passed)
}
