//! Results shown as people want them: a summary table on the terminal, JUnit XML for CI.

mod junit;
mod summary;

pub use junit::{junit_xml, write_junit};
pub use summary::summary_table;
