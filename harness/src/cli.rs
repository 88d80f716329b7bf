//! Subcommands of the test harness proper (run, list, ...).

use clap::Subcommand;

use crate::VmmChoice;

#[derive(Debug, Subcommand)]
pub enum HarnessCommand {
    /// List the test configs found under examples/tests (or --tests-dir).
    List,
    /// Run tests: install → poweroff → boot → collect → verify.
    Run,
}

pub fn run(cmd: HarnessCommand, _vmm: VmmChoice) -> anyhow::Result<i32> {
    match cmd {
        HarnessCommand::List | HarnessCommand::Run => {
            anyhow::bail!("the test runner is not built yet (issue 5)")
        }
    }
}
