//! Results shown as people want them: a summary table on the terminal, JUnit XML for CI,
//! GitHub Actions annotations.

pub mod github;
mod junit;
mod junit_read;
mod summary;

pub use junit::{junit_xml, write_junit};
pub use junit_read::{Case, junit_testcases, merge_junit};
pub use summary::summary_table;
