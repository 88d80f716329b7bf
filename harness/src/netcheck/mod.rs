//! Network checks derived from the test's network config: from `network:` alone (v1 or
//! v2, the model in [`crate::config`]), what the installed system must show, checked
//! against what the harness's collect script gathered there. One result per check, in
//! the [`CheckGroup::Network`] group, named for what it checks (`interface eth1 mtu`,
//! `bond bond0 mode`, `route default via 10.0.2.2`).
//!
//! - [`derive`]: the checks a config implies (per interface: exists, MAC, MTU, up or
//!   down, each static address with its prefix, no IPv4 beyond the configured ones, a
//!   lease where DHCP is asked; routes and gateways with metrics; nameservers and search
//!   domains; bond mode, members and settings; VLAN id and parent; bridge members, STP,
//!   timers and port settings; the MACs and addresses in the rendered configuration; the
//!   config cloud-init was handed);
//! - [`facts`]: the collected files, read with caps and typed errors (guest input);
//! - [`eval`]: each check against the facts, with the evidence on failure;
//! - [`script`]: the collect script's network section.

pub mod addr;
pub mod derive;
pub mod eval;
pub mod facts;
pub mod script;

use std::path::Path;

pub use derive::{NetCheck, Want};

use crate::check::{CheckGroup, CheckResult};
use crate::config::TestConfig;

/// The network checks `test` implies (none without a network config, or with a disabled
/// one).
pub fn checks_for(test: &TestConfig) -> Vec<NetCheck> {
    let Some(net) = &test.network else {
        return Vec::new();
    };
    // The section as PyYAML reads it: what cloud-init must be handed.
    let network = test
        .doc
        .get("network")
        .and_then(|n| crate::yaml::from_node::<serde_json::Value>(n).ok());
    derive::derive(net, network)
}

/// Evaluates `checks` on the files collected into `collect`: one result each.
pub fn evaluate(checks: &[NetCheck], collect: &Path) -> Vec<CheckResult> {
    if checks.is_empty() {
        return Vec::new();
    }
    let facts = facts::Facts::read(collect);
    checks
        .iter()
        .map(|c| {
            CheckResult::from_result(
                CheckGroup::Network,
                c.name.clone(),
                eval::evaluate(&c.want, &facts),
            )
        })
        .collect()
}

/// The derived network checks of `test` on `collect`.
pub fn run(test: &TestConfig, collect: &Path) -> Vec<CheckResult> {
    evaluate(&checks_for(test), collect)
}

#[cfg(test)]
mod tests;
