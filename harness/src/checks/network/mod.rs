//! Network checks derived from the test's network config: from `network:` alone (v1 or
//! v2, the model in [`crate::config`]), what the installed system must show, checked
//! against what the harness's collect script gathered there. One [`Check`] per fact, in
//! the [`CheckGroup::Network`] group, named for what it checks (`interface eth1 mtu`,
//! `bond bond0 mode`, `route default via 10.0.2.2`).
//!
//! - [`derive`]: the checks a config implies (per interface: exists, MAC, MTU, up or
//!   down, each static address with its prefix, no IPv4 beyond the configured ones, a
//!   lease where DHCP is asked; routes and gateways with metrics; nameservers and search
//!   domains; bond mode, members and settings; VLAN id and parent; bridge members, STP,
//!   timers and port settings; the MACs and addresses in the rendered configuration; the
//!   config cloud-init was handed);
//! - [`want`]: what one such check expects, in words;
//! - [`facts`]: the collected files, read with caps and typed errors (guest input), one
//!   [`Artifact`] shared by every network check;
//! - [`eval`]: each check against the facts, with the evidence on failure;
//! - [`script`]: the collect script's network section.

pub mod addr;
pub mod derive;
pub mod eval;
pub mod facts;
pub mod script;
pub mod want;

use std::path::Path;

pub use want::{NetCheck, Want};

use super::{Artifact, Check, Collected, DataError, Probe};
use crate::check::{CheckGroup, CheckResult};
use crate::config::TestConfig;

impl Artifact for facts::Facts {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Ok(facts::Facts::read(c.dir()))
    }
}

impl Probe for Want {
    fn evaluate(&self, data: &Collected) -> Result<(), String> {
        let f = data.get::<facts::Facts>().map_err(|e| e.to_string())?;
        eval::evaluate(self, &f)
    }
}

/// Whether `test` has a network config that implies checks (present, not disabled): then
/// the boot phase collects the network facts.
pub fn applies(test: &TestConfig) -> bool {
    test.network.as_ref().is_some_and(|n| !n.disabled)
}

/// What the network config implies, as the network domain's own values (for tests and
/// for [`derive`]).
pub fn wants(test: &TestConfig) -> Vec<NetCheck> {
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

/// The network checks `test` implies (none without a network config, or with a disabled
/// one).
pub fn derive(test: &TestConfig) -> Vec<Check> {
    wants(test)
        .into_iter()
        .map(|c| {
            let expects = c.want.describe();
            let line = c.want.iface().and_then(|i| test.interface_line(i));
            Check::new(CheckGroup::Network, c.name, expects, c.want).at(line)
        })
        .collect()
}

/// The derived network checks of `test` on `collect`.
pub fn run(test: &TestConfig, collect: &Path) -> Vec<CheckResult> {
    super::evaluate(&derive(test), collect)
}

#[cfg(test)]
mod tests;
