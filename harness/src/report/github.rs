//! GitHub Actions workflow commands: under `GITHUB_ACTIONS=true`, config errors and failed
//! checks become `::error` annotations (with the file and line they are about, so the
//! pull request shows them in place), and each failed test's serial tail sits in a
//! `::group::` the log viewer folds. Escaping follows the runner's rules: `%`, CR and LF
//! in the message; also `:` and `,` in properties.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::ConfigError;
use crate::runner::{Status, TestResult};

/// Whether workflow commands are wanted (`GITHUB_ACTIONS=true`, as the runner sets it).
pub fn enabled(github_actions: Option<&str>) -> bool {
    github_actions == Some("true")
}

/// A message (the part after `::`).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value (`file=`, `title=`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// How loud an annotation is: an error, or a warning for what neither passed nor failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Level {
    #[default]
    Error,
    Warning,
}

/// One `::error` (or `::warning`) line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotation {
    pub level: Level,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub title: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Annotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut props = Vec::new();
        if let Some(file) = &self.file {
            props.push(format!("file={}", escape_property(file)));
        }
        if let Some(l) = self.line {
            props.push(format!("line={l}"));
        }
        if let Some(c) = self.col {
            props.push(format!("col={c}"));
        }
        if let Some(t) = &self.title {
            props.push(format!("title={}", escape_property(t)));
        }
        let sep = if props.is_empty() { "" } else { " " };
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(
            f,
            "::{level}{sep}{}::{}",
            props.join(","),
            escape_data(&self.message)
        )
    }
}

/// `path` as GitHub wants it: relative to the workspace (the checkout) when under it.
fn shown_path(path: &Path, workspace: Option<&Path>) -> String {
    workspace
        .and_then(|w| path.strip_prefix(w).ok())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The annotation of a broken config: its file and line, and what is wrong there.
pub fn config_error(e: &ConfigError, workspace: Option<&Path>) -> Annotation {
    Annotation {
        file: Some(shown_path(&e.file, workspace)),
        line: e.line,
        col: e.column,
        title: Some("vmtest config".into()),
        message: match &e.key {
            Some(k) => format!("{k}: {}", e.msg),
            None => e.msg.clone(),
        },
        ..Default::default()
    }
}

/// Annotations and serial-tail groups for the tests that did not pass: one `::error`
/// for a run that stopped (infrastructure or a phase), one per failed check, all on
/// the test's config file; then the test's serial tail in a `::group::`. A test this
/// host cannot run gets one `::warning` with the reason, and no serial tail (it booted
/// nothing).
pub fn results(results: &[TestResult], workspace: Option<&Path>) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| r.status == Status::NotRun) {
        let a = Annotation {
            level: Level::Warning,
            file: Some(shown_path(&r.file, workspace)),
            title: Some(format!("vmtest {} {}", r.name, r.status.label())),
            message: r
                .failure
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            ..Default::default()
        };
        let _ = writeln!(out, "{a}");
    }
    for r in results
        .iter()
        .filter(|r| !matches!(r.status, Status::Pass | Status::NotRun))
    {
        let file = Some(shown_path(&r.file, workspace));
        if let Some(f) = &r.failure {
            let a = Annotation {
                file: file.clone(),
                title: Some(format!("vmtest {} {}", r.name, r.status.label())),
                message: f.to_string(),
                ..Default::default()
            };
            let _ = writeln!(out, "{a}");
        }
        for c in r.checks.iter().filter(|c| !c.passed()) {
            let a = Annotation {
                file: file.clone(),
                line: c.line,
                title: Some(format!("{} / {}", r.name, c.name)),
                message: c.evidence.clone(),
                ..Default::default()
            };
            let _ = writeln!(out, "{a}");
        }
        let tail = match r.failure.as_ref().and_then(|f| f.tail()) {
            Some(t) => t.to_string(),
            None => {
                let log = r.workdir.join("logs/boot-serial.log");
                format!(
                    "boot serial log tail:\n{}",
                    crate::serial_log::tail(&log, 25)
                )
            }
        };
        // Inside a group the lines are plain log text, not commands: a guest printing
        // `::` at a line's start must not issue one.
        let _ = writeln!(out, "::group::{}: serial log", escape_data(&r.name));
        for l in tail.lines() {
            if l.starts_with("::") {
                let _ = writeln!(out, " {l}");
            } else {
                let _ = writeln!(out, "{l}");
            }
        }
        let _ = writeln!(out, "::endgroup::");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_the_runner() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        let a = Annotation {
            level: Level::Error,
            file: Some("tests/x,y.yaml".into()),
            line: Some(3),
            col: Some(2),
            title: Some("t: 1".into()),
            message: "bad: a, b\nmore".into(),
        };
        assert_eq!(
            a.to_string(),
            "::error file=tests/x%2Cy.yaml,line=3,col=2,title=t%3A 1::bad: a, b%0Amore"
        );
        assert_eq!(
            Annotation {
                message: "m".into(),
                ..Default::default()
            }
            .to_string(),
            "::error::m"
        );
        let w = Annotation {
            level: Level::Warning,
            message: "not run".into(),
            ..Default::default()
        };
        assert_eq!(w.to_string(), "::warning::not run");
        assert!(enabled(Some("true")) && !enabled(Some("1")) && !enabled(None));
    }

    #[test]
    fn paths_relative_to_the_workspace() {
        let e = ConfigError {
            file: "/w/repo/examples/tests/bad.yaml".into(),
            line: Some(7),
            column: Some(3),
            key: Some("vmtest.colour".into()),
            msg: "unknown key `colour`".into(),
        };
        assert_eq!(
            config_error(&e, Some(Path::new("/w/repo"))).to_string(),
            "::error file=examples/tests/bad.yaml,line=7,col=3,title=vmtest config::vmtest.colour: unknown key `colour`"
        );
        assert!(
            config_error(&e, Some(Path::new("/elsewhere")))
                .to_string()
                .starts_with("::error file=/w/repo/examples/tests/bad.yaml,")
        );
    }
}
