//! `vmtest list`: the selected tests (of one partition, with `--partition`) as a table
//! for people or as JSON for a CI matrix (`--format json`: an array of objects, usable as
//! a GitHub Actions matrix's `include`).

use crate::config::{HostFacts, InstallerKind, TestConfig};

/// How `vmtest list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}

/// One test as `list --format json` gives it.
#[derive(Debug, serde::Serialize)]
struct Listed<'a> {
    name: &'a str,
    file: String,
    release: &'a str,
    arch: &'a str,
    installer: &'static str,
    /// `qemu` when the test needs it, else `any`.
    vmm: &'static str,
    description: &'a str,
    /// Why this host cannot run it, when it cannot (then `run` refuses it).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_runnable: Option<String>,
}

fn listed<'a>(t: &'a TestConfig, curtin: bool, host: &HostFacts) -> Listed<'a> {
    Listed {
        name: &t.name,
        file: t.file.display().to_string(),
        release: &t.vmtest.release,
        arch: &t.vmtest.arch,
        installer: match t.installer(curtin) {
            InstallerKind::Script => "script",
            InstallerKind::Curtin => "curtin",
        },
        vmm: if t.needs_qemu().is_some() {
            "qemu"
        } else {
            "any"
        },
        description: t.vmtest.description.as_deref().unwrap_or(""),
        not_runnable: t.not_runnable(host),
    }
}

/// The listing of `tests` in `format`.
pub fn render(tests: &[TestConfig], curtin: bool, format: ListFormat) -> String {
    let host = HostFacts::this_host();
    let rows: Vec<Listed> = tests.iter().map(|t| listed(t, curtin, &host)).collect();
    match format {
        ListFormat::Json => serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n",
        ListFormat::Table => {
            let w = rows.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
            let mut s = format!(
                "{:<w$}  {:<10}  {:<9}  {:<5}  description\n",
                "test", "release", "installer", "vmm"
            );
            for t in &rows {
                // What cannot run here says why, where the description would be.
                let about = match &t.not_runnable {
                    Some(why) => format!("NOT RUNNABLE HERE: {why}"),
                    None => t.description.to_string(),
                };
                s.push_str(&format!(
                    "{:<w$}  {:<10}  {:<9}  {:<5}  {about}\n",
                    t.name, t.release, t.installer, t.vmm
                ));
            }
            s
        }
    }
}
