//! Why a test's run stopped, typed from the step that failed to the summary, the verdict
//! record, JUnit and the exit code: each variant knows its [`Status`] and whether it is the
//! harness's or the host's fault (infrastructure) rather than the guest's.

use std::path::PathBuf;

use super::Status;
use crate::backend::{BackendError, Outcome, Phase};
use crate::verdict::InstallProblem;

/// The last lines of a phase's serial log, shown with the failure that ended the phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialTail {
    pub phase: Phase,
    pub text: String,
}

impl std::fmt::Display for SerialTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} serial log tail:\n{}", self.phase, self.text)
    }
}

/// What stopped a test's run before all its checks could pass.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("work dir {}: {source}", path.display())]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("disk {file}: {source}")]
    Disk {
        file: String,
        source: std::io::Error,
    },
    /// The image provider found no usable image.
    #[error("image: {0}")]
    Image(#[source] images::StoreError),
    #[error("http server: {0}")]
    Http(std::io::Error),
    /// The test's UEFI variable store could not be made (no OVMF, a backend without UEFI).
    #[error("UEFI variables: {0}")]
    UefiVars(#[source] BackendError),
    /// The installer could not be packed.
    #[error("installer: {0}")]
    Installer(crate::installer::InstallerError),
    /// A file of the work dir (`install/user-data`, ...) could not be written.
    #[error("{file}: {source}")]
    Write {
        file: &'static str,
        source: std::io::Error,
    },
    #[error("boot seed: {0}")]
    Seed(#[from] seed::SeedError),
    /// The VM could not run at all (missing program, unusable disk), as opposed to the
    /// guest failing in it.
    #[error("{phase} phase: {source}")]
    Backend { phase: Phase, source: BackendError },
    /// Ctrl-A x at an attached console stopped the phase on purpose: the test did not
    /// finish, and neither the installer nor the installed system failed.
    #[error("{0} phase {stopped}: left with Ctrl-A x, test not finished", stopped = Outcome::Stopped)]
    LeftAtConsole(Phase),
    /// The harness was told to end (SIGTERM, SIGINT, SIGHUP) during or before this phase:
    /// its VM was stopped, or never started. Neither the test nor the host failed.
    #[error("{phase} phase: interrupted ({}): the run was told to end", crate::shutdown::signal_name(*.signal))]
    Interrupted { phase: Phase, signal: i32 },
    /// The phase ended otherwise than by powering off (timeout, crash, reboot). For the
    /// install phase, `problems` are what the install verdict found in its log too.
    #[error("{phase} phase {outcome}")]
    PhaseEnded {
        phase: Phase,
        outcome: Outcome,
        problems: Vec<InstallProblem>,
        tail: SerialTail,
    },
    /// The install phase powered off but its serial log says the install failed.
    #[error("{}", problems.first().map(ToString::to_string).unwrap_or_else(|| "install verdict failed".into()))]
    InstallVerdict {
        problems: Vec<InstallProblem>,
        tail: SerialTail,
    },
    /// A boot without firmware found no kernel to boot in the install's handoff.
    #[error("the installed system's handoff: {0}")]
    Handoff(#[source] crate::handoff::HandoffError),
    #[error("collect: {0}")]
    Collect(crate::collect::CollectError),
    #[error("the output disk held no files (collect scripts did not run?)")]
    NothingCollected { tail: SerialTail },
    /// CURTIN_VMTEST_REUSE_TOPDIR, but the test's kept data has no collect/.
    #[error("{} has no kept collect/ to re-verify", .0.display())]
    NothingToReverify(PathBuf),
    /// The test needs what this host cannot give (another architecture, an iSCSI
    /// target, ZFS in the image, ...): nothing was run or written.
    #[error("cannot run on this host: {0}")]
    NotRunnableHere(String),
    /// The installers of the selected tests cannot be packed (checked before any VM).
    #[error(transparent)]
    Installers(#[from] super::InstallersError),
}

impl RunError {
    /// Fail: the guest or what it installed is wrong. Error: the test could not run or
    /// did not finish.
    pub fn status(&self) -> Status {
        match self {
            RunError::PhaseEnded { .. }
            | RunError::InstallVerdict { .. }
            | RunError::Handoff(_)
            | RunError::Collect(_)
            | RunError::NothingCollected { .. } => Status::Fail,
            RunError::NotRunnableHere(_) => Status::NotRun,
            _ => Status::Error,
        }
    }

    /// The host or the harness is at fault, not the test: no image, no qemu, a work dir
    /// that cannot be made. CI may retry these; `vmtest run` exits 3 for them.
    pub fn is_infrastructure(&self) -> bool {
        self.status() == Status::Error
            && !matches!(
                self,
                RunError::LeftAtConsole(_)
                    | RunError::Interrupted { .. }
                    | RunError::NothingToReverify(_)
                    | RunError::NotRunnableHere(_)
            )
    }

    /// The serial-log tail shown with this failure, if any.
    pub fn tail(&self) -> Option<&SerialTail> {
        match self {
            RunError::PhaseEnded { tail, .. }
            | RunError::InstallVerdict { tail, .. }
            | RunError::NothingCollected { tail } => Some(tail),
            _ => None,
        }
    }

    /// What to show, one item per problem: the failure, what the install verdict found,
    /// then the serial tail.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![self.to_string()];
        match self {
            RunError::PhaseEnded { problems, .. } => {
                v.extend(problems.iter().map(ToString::to_string))
            }
            RunError::InstallVerdict { problems, .. } => {
                v.extend(problems.iter().skip(1).map(ToString::to_string))
            }
            _ => {}
        }
        if let Some(t) = self.tail() {
            v.push(t.to_string());
        }
        v
    }
}
