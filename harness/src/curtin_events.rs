//! curtin's webhook events (`logs/webhooks-events.json`, one JSON event per line, as the
//! harness's HTTP server logs the guest's POSTs): which step of a curtin install failed and
//! what curtin's own install log says at its end, for the summary of a failed install.
//!
//! curtin reports nested stages (`cmd-install/stage-partitioning/builtin/cmd-block-meta`);
//! a failing command finishes with `result: FAIL` first at the innermost stage, then at
//! every stage around it, so the first failed finish event names the step that failed.
//! The last event carries curtin's install log (`files`, base64) when curtin got that far.
//!
//! The file is the guest's doing: only its last [`READ_LIMIT`] bytes are read, and what
//! is shown is cut to a few lines.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use base64::Engine;

use crate::verdict::InstallProblem;

/// Most of the events file that is read (its tail; the install log is in the last event).
pub const READ_LIMIT: u64 = 16 << 20;
/// Lines of curtin's install log shown after a failure.
pub const LOG_TAIL_LINES: usize = 15;
/// Longest event description shown.
const MAX_DESCRIPTION: usize = 2000;

/// The step that failed, from the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedStep {
    /// curtin's event name, e.g. `cmd-install/stage-partitioning/builtin/cmd-block-meta`.
    pub name: String,
    /// Its description (curtin's message for the step).
    pub description: String,
}

/// What the events tell about an install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// The first step that finished with `FAIL`, if any.
    pub failed: Option<FailedStep>,
    /// The last lines of curtin's install log, when an event carried it.
    pub log_tail: Option<String>,
    /// Events read.
    pub events: usize,
}

impl InstallReport {
    /// What to add to a failed install's problems (empty when the events say nothing).
    pub fn problems(&self) -> Vec<InstallProblem> {
        let mut out = Vec::new();
        if let Some(f) = &self.failed {
            out.push(InstallProblem::CurtinStep {
                name: f.name.clone(),
                description: f.description.trim().to_string(),
            });
        }
        if let Some(t) = &self.log_tail {
            out.push(InstallProblem::CurtinLogTail(t.clone()));
        }
        out
    }
}

/// Reads the tail of an events file; a missing file reports nothing.
pub fn read(path: &Path) -> std::io::Result<InstallReport> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(InstallReport::default()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(READ_LIMIT);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.take(READ_LIMIT).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    // A tail read starts mid-line: drop the partial first line.
    let text = if start > 0 {
        text.split_once('\n').map(|x| x.1).unwrap_or("")
    } else {
        &text
    };
    Ok(parse(text))
}

/// The report from events text (one JSON object per line; other lines are skipped).
pub fn parse(text: &str) -> InstallReport {
    let mut report = InstallReport::default();
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        report.events += 1;
        let s = |k: &str| ev.get(k).and_then(|v| v.as_str()).unwrap_or("");
        if report.failed.is_none() && s("event_type") == "finish" && s("result") == "FAIL" {
            report.failed = Some(FailedStep {
                name: s("name").to_string(),
                description: s("description").chars().take(MAX_DESCRIPTION).collect(),
            });
        }
        if let Some(files) = ev.get("files").and_then(|f| f.as_array()) {
            for file in files {
                if let Some(t) = install_log_tail(file) {
                    report.log_tail = Some(t);
                }
            }
        }
    }
    report
}

/// The last lines of a posted file (`{path, content, encoding: base64}`).
fn install_log_tail(file: &serde_json::Value) -> Option<String> {
    let content = file.get("content")?.as_str()?;
    let bytes = match file.get("encoding").and_then(|e| e.as_str()) {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .ok()?,
        _ => content.as_bytes().to_vec(),
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let tail: Vec<String> = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..]
        .iter()
        .map(|l| l.chars().take(400).collect())
        .collect();
    Some(tail.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: &str, name: &str, result: Option<&str>, description: &str) -> String {
        let mut v = serde_json::json!({
            "origin": "curtin", "event_type": event_type, "name": name,
            "description": description, "timestamp": 1.5, "level": "DEBUG",
        });
        if let Some(r) = result {
            v["result"] = r.into();
        }
        v.to_string()
    }

    fn failing_install() -> String {
        let log = "line 1\nTraceback (most recent call last):\nRuntimeError: Mount failed: /dev/vdb1 @ /target/srv\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(log);
        let mut last: serde_json::Value = serde_json::from_str(&ev(
            "finish",
            "cmd-install",
            Some("FAIL"),
            "curtin command install",
        ))
        .unwrap();
        last["files"] =
            serde_json::json!([{"path": "/tmp/install.log", "content": b64, "encoding": "base64"}]);
        [
            ev("start", "cmd-install", None, "curtin command install"),
            ev(
                "start",
                "cmd-install/stage-partitioning",
                None,
                "configuring storage",
            ),
            ev(
                "finish",
                "cmd-install/stage-partitioning/builtin/cmd-block-meta/mount",
                Some("FAIL"),
                "Mount failed: /dev/vdb1 @ /target/srv",
            ),
            ev(
                "finish",
                "cmd-install/stage-partitioning",
                Some("FAIL"),
                "configuring storage",
            ),
            "not json at all".into(),
            last.to_string(),
        ]
        .join("\n")
    }

    #[test]
    fn the_innermost_failed_step_and_the_install_log_tail() {
        let r = parse(&failing_install());
        assert_eq!(r.events, 5);
        let f = r.failed.clone().unwrap();
        assert_eq!(
            f.name,
            "cmd-install/stage-partitioning/builtin/cmd-block-meta/mount"
        );
        assert_eq!(f.description, "Mount failed: /dev/vdb1 @ /target/srv");
        let tail = r.log_tail.clone().unwrap();
        assert!(
            tail.ends_with("RuntimeError: Mount failed: /dev/vdb1 @ /target/srv"),
            "{tail}"
        );
        let s: Vec<String> = r.problems().iter().map(ToString::to_string).collect();
        let s = s.join("\n");
        assert!(
            s.starts_with("curtin step failed: cmd-install/stage-partitioning/builtin/cmd-block-meta/mount: Mount failed"),
            "{s}"
        );
    }

    #[test]
    fn a_successful_install_reports_no_failure() {
        let text = [
            ev("start", "cmd-install", None, "x"),
            ev("finish", "cmd-install", Some("SUCCESS"), "x"),
        ]
        .join("\n");
        let r = parse(&text);
        assert_eq!(r.failed, None);
        assert!(r.problems().is_empty());
    }

    #[test]
    fn only_the_tail_of_a_huge_file_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("webhooks-events.json");
        let mut text = "x".repeat((READ_LIMIT + 100) as usize);
        text.push('\n');
        text.push_str(&failing_install());
        std::fs::write(&p, text).unwrap();
        let r = read(&p).unwrap();
        assert!(r.failed.is_some());
        assert_eq!(
            read(&d.path().join("none")).unwrap(),
            InstallReport::default()
        );
    }
}
