//! How `vmtest list`, `run` and `console` end, as an exit code CI can act on: 0 all
//! passed, 1 a test failed, 2 usage or config error, 3 infrastructure (qemu missing, an
//! image unusable, TOPDIR refused: the host, not the tests), 128+N told to end by
//! signal N (as a shell reports a process that signal ended). Errors keep their type from
//! where they arise (a [`ConfigError`] with its file and line) to here, where they become
//! a code, a message and, under GitHub Actions, an annotation.

use crate::config::ConfigError;
use crate::runner::{Status, TestResult};

/// The exit codes of the harness commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Passed,
    TestFailed,
    Usage,
    Infrastructure,
    /// SIGTERM, SIGINT or SIGHUP ended the run (VMs stopped, results written).
    Interrupted(i32),
}

impl Exit {
    /// The code for a finished run: infrastructure if any test could not run for the
    /// host's sake (the run is incomplete; CI may retry), else failed if any test did
    /// not pass, else passed. A test that needs what no host here has (another
    /// architecture, an iSCSI target) is listed as NOT RUN with its reason and does not
    /// fail the run: retrying would not change it, and a whole selection of such tests is
    /// refused as a usage error before anything runs.
    pub fn of_results(results: &[TestResult]) -> Exit {
        if results
            .iter()
            .any(|r| r.failure.as_ref().is_some_and(|f| f.is_infrastructure()))
        {
            Exit::Infrastructure
        } else if results
            .iter()
            .all(|r| matches!(r.status, Status::Pass | Status::NotRun))
        {
            Exit::Passed
        } else {
            Exit::TestFailed
        }
    }

    pub fn code(self) -> i32 {
        match self {
            Exit::Passed => 0,
            Exit::TestFailed => 1,
            Exit::Usage => 2,
            Exit::Infrastructure => 3,
            Exit::Interrupted(signal) => 128 + signal,
        }
    }
}

/// Why a harness command stopped before (or instead of) running its tests.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A selected test config is broken.
    #[error(transparent)]
    Config(ConfigError),
    /// The command line, a selection matching nothing, a bad environment value, a missing
    /// curtin tree.
    #[error(transparent)]
    Usage(anyhow::Error),
    /// The host cannot run tests: no qemu, an unusable image store, TOPDIR refused.
    #[error(transparent)]
    Infrastructure(anyhow::Error),
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Config(_) | CliError::Usage(_) => Exit::Usage,
            CliError::Infrastructure(_) => Exit::Infrastructure,
        }
    }

    /// A usage error, or the config error it carries.
    pub fn usage(e: anyhow::Error) -> CliError {
        match e.downcast::<ConfigError>() {
            Ok(c) => CliError::Config(c),
            Err(e) => CliError::Usage(e),
        }
    }

    pub fn infrastructure(e: impl Into<anyhow::Error>) -> CliError {
        CliError::Infrastructure(e.into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::{Outcome, Phase};
    use crate::runner::{RunError, SerialTail};

    fn result(status: Status, failure: Option<RunError>) -> TestResult {
        TestResult {
            name: "t".into(),
            file: "t.yaml".into(),
            backend: "fake".into(),
            installer: "script".into(),
            status,
            failure,
            checks: Vec::new(),
            notes: Vec::new(),
            phases: Vec::new(),
            steps: Vec::new(),
            total: Duration::ZERO,
            workdir: "/nonexistent".into(),
        }
    }

    /// An infrastructure error beats a failed test (the run is incomplete); a test that
    /// did not finish for another reason (left at the console) is a failed run, not the
    /// host's fault.
    #[test]
    fn exit_of_results_by_precedence() {
        let pass = || result(Status::Pass, None);
        let failed = || {
            result(
                Status::Fail,
                Some(RunError::PhaseEnded {
                    phase: Phase::Boot,
                    outcome: Outcome::Timeout,
                    problems: Vec::new(),
                    tail: SerialTail {
                        phase: Phase::Boot,
                        text: String::new(),
                    },
                }),
            )
        };
        let infra = || {
            result(
                Status::Error,
                Some(RunError::Http(std::io::Error::other("no sockets"))),
            )
        };
        let left = || result(Status::Error, Some(RunError::LeftAtConsole(Phase::Install)));
        let not_here = || {
            result(
                Status::NotRun,
                Some(RunError::NotRunnableHere("it is for s390x".into())),
            )
        };
        assert_eq!(Exit::of_results(&[pass(), pass()]), Exit::Passed);
        assert_eq!(Exit::of_results(&[pass(), not_here()]), Exit::Passed);
        assert_eq!(Exit::of_results(&[not_here(), failed()]), Exit::TestFailed);
        assert_eq!(Exit::of_results(&[pass(), failed()]), Exit::TestFailed);
        assert_eq!(Exit::of_results(&[pass(), left()]), Exit::TestFailed);
        assert_eq!(Exit::of_results(&[failed(), infra()]), Exit::Infrastructure);
        assert_eq!(
            [
                Exit::Passed,
                Exit::TestFailed,
                Exit::Usage,
                Exit::Infrastructure
            ]
            .map(Exit::code),
            [0, 1, 2, 3]
        );
        assert_eq!(Exit::Interrupted(15).code(), 143);
    }
}
