//! Verdicts: the install phase from its serial log (curtin's success line and failure
//! patterns), and the expectations of a test on its collected files, one check result
//! per item.

use std::path::Path;

use regex::Regex;

use crate::check::{CheckGroup, CheckResult};
use crate::config::Expectation;

pub const INSTALL_SUCCESS: &str = "curtin: Installation finished.";

/// Patterns that fail an install even when the success line is there.
pub const INSTALL_FAILURE_PATTERNS: &[&str] = &[
    r"Kernel panic -",
    r"Installation failed",
    r"blocked for more than",
    r"Out of memory:",
    r"Unexpected error while running command",
    r"E: Unable to locate package",
    r"cloud-init.*: Traceback",
    r"ImportError: No module named",
    r"vmtest-initramfs: FATAL",
];

/// What the install verdict found wrong in a serial log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallProblem {
    /// A failure pattern matched: its first matching line.
    #[error("serial log matches `{pattern}`: {line}")]
    Matches { pattern: &'static str, line: String },
    /// curtin's success line is not there.
    #[error("serial log lacks `{INSTALL_SUCCESS}`")]
    NoSuccessLine,
    /// curtin reported this step as failed (its webhook events).
    #[error("curtin step failed: {name}: {description}")]
    CurtinStep { name: String, description: String },
    /// The last lines of curtin's install log, carried by its last webhook event.
    #[error("curtin install log tail:\n{0}")]
    CurtinLogTail(String),
}

/// The install verdict, fed one line at a time: the first line matching each failure
/// pattern, and whether the success line was seen anywhere. Fed from a file by
/// [`install_verdict_of_log`], it holds no more than one line of the log.
struct InstallScan {
    patterns: regex::RegexSet,
    /// First matching line per pattern.
    hits: Vec<Option<String>>,
    success: bool,
}

impl InstallScan {
    fn new() -> InstallScan {
        InstallScan {
            patterns: regex::RegexSet::new(INSTALL_FAILURE_PATTERNS).expect("static patterns"),
            hits: vec![None; INSTALL_FAILURE_PATTERNS.len()],
            success: false,
        }
    }

    fn line(&mut self, line: &str) {
        self.success |= line.contains(INSTALL_SUCCESS);
        for i in self.patterns.matches(line).iter() {
            self.hits[i].get_or_insert_with(|| line.trim().to_string());
        }
    }

    fn finish(self) -> Result<(), Vec<InstallProblem>> {
        let mut errs: Vec<InstallProblem> = INSTALL_FAILURE_PATTERNS
            .iter()
            .zip(self.hits)
            .filter_map(|(p, hit)| hit.map(|line| InstallProblem::Matches { pattern: p, line }))
            .collect();
        if !self.success {
            errs.push(InstallProblem::NoSuccessLine);
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

/// Checks an install serial log's text; `Err` lists what is wrong (first matching lines).
pub fn install_verdict(serial: &str) -> Result<(), Vec<InstallProblem>> {
    let mut scan = InstallScan::new();
    serial.lines().for_each(|l| scan.line(l));
    scan.finish()
}

/// [`install_verdict`] of a serial log file, streamed: the success line is near the end
/// but a failure pattern may be anywhere, so every line is looked at, in bounded chunks
/// and never the whole file at once.
pub fn install_verdict_of_log(path: &Path) -> Result<(), Vec<InstallProblem>> {
    let mut scan = InstallScan::new();
    crate::serial_log::for_each_line(path, |l| {
        scan.line(l);
        std::ops::ControlFlow::Continue(())
    });
    scan.finish()
}

fn read(collect: &Path, file: &str) -> Result<String, String> {
    if file.split('/').any(|c| c == "..") || file.starts_with('/') {
        return Err(format!(
            "{file}: expectation paths are relative to collect/"
        ));
    }
    std::fs::read(collect.join(file))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("{file}: not collected ({e})"))
}

/// Runs the expectations on `collect`: one result per item (each file of a
/// `file_exists`, each entry of an `fstab`, ...), as nose gave one per test method.
pub fn check_expectations(collect: &Path, expect: &[Expectation]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for e in expect {
        check_one(collect, e, &mut out);
    }
    out
}

/// At most this many collected lines are quoted as evidence.
const EVIDENCE_LINES: usize = 20;

/// `lines` as evidence: what was found, bounded; it follows the line saying what is
/// wrong (the first line is the failure's message in JUnit and annotations).
fn found(what: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        return format!("{what}: nothing");
    }
    let mut s = format!("{what}:");
    for l in lines.iter().take(EVIDENCE_LINES) {
        s.push_str("\n  ");
        s.push_str(l);
    }
    if lines.len() > EVIDENCE_LINES {
        s.push_str(&format!("\n  ... {} more", lines.len() - EVIDENCE_LINES));
    }
    s
}

fn check_one(collect: &Path, e: &Expectation, out: &mut Vec<CheckResult>) {
    let g = CheckGroup::Expect;
    let mut push = |name: String, r: Result<(), String>| {
        out.push(CheckResult::from_result(g, name, r));
    };
    match e {
        Expectation::FileExists(files) => {
            for f in files {
                let r = if collect.join(f).exists() {
                    Ok(())
                } else {
                    Err(format!("file_exists: missing {f}"))
                };
                push(format!("file_exists {f}"), r);
            }
        }
        Expectation::FileAbsent(files) => {
            for f in files {
                let r = if collect.join(f).exists() {
                    Err(format!("file_absent: present {f}"))
                } else {
                    Ok(())
                };
                push(format!("file_absent {f}"), r);
            }
        }
        Expectation::ContainsLine { file, line } => {
            let r = read(collect, file).and_then(|text| {
                if text.lines().any(|l| l.trim() == line.trim()) {
                    Ok(())
                } else {
                    Err(format!("contains_line: {file} has no line `{line}`"))
                }
            });
            push(format!("contains_line {file}: {}", line.trim()), r);
        }
        Expectation::Matches { file, regex } => {
            let r = read(collect, file).and_then(|text| {
                // Multi-line: `^` and `$` anchor at line boundaries, as one expects of files.
                let re = Regex::new(&format!("(?m){regex}")).map_err(|e| e.to_string())?;
                if re.is_match(&text) {
                    Ok(())
                } else {
                    Err(format!("matches: `{regex}` not found in {file}"))
                }
            });
            push(format!("matches {file} `{regex}`"), r);
        }
        Expectation::NotMatches { file, regex } => {
            let r = read(collect, file).and_then(|text| {
                let re = Regex::new(regex).map_err(|e| e.to_string())?;
                match text.lines().find(|l| re.is_match(l)) {
                    None => Ok(()),
                    Some(l) => Err(format!("not_matches: `{regex}` found in {file}: {l}")),
                }
            });
            push(format!("not_matches {file} `{regex}`"), r);
        }
        Expectation::Fstab(entries) => {
            let text = read(collect, "fstab");
            let rows: Vec<Vec<&str>> = match &text {
                Ok(t) => t
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| l.split_whitespace().collect())
                    .collect(),
                Err(_) => Vec::new(),
            };
            for want in entries {
                let r = text.as_ref().map_err(Clone::clone).and_then(|_| {
                    let spec_re = match &want.spec {
                        Some(s) => Some(Regex::new(s).map_err(|e| e.to_string())?),
                        None => None,
                    };
                    let hit = rows.iter().any(|r| {
                        r.len() >= 3
                            && r[1] == want.mountpoint
                            && spec_re.as_ref().is_none_or(|re| re.is_match(r[0]))
                            && want.fstype.as_ref().is_none_or(|t| r[2] == t)
                            && want
                                .options
                                .as_ref()
                                .is_none_or(|o| r.get(3) == Some(&o.as_str()))
                    });
                    if hit {
                        return Ok(());
                    }
                    let entries: Vec<String> = rows.iter().map(|r| r.join(" ")).collect();
                    Err(format!(
                        "fstab: no entry for {} ({})\n{}",
                        want.mountpoint,
                        want.fstype.as_deref().unwrap_or("any type"),
                        found("fstab has", &entries)
                    ))
                });
                push(format!("fstab {}", want.mountpoint), r);
            }
        }
        Expectation::Mounts(entries) => {
            let text = read(collect, "proc_mounts");
            for want in entries {
                let r = text.as_ref().map_err(Clone::clone).and_then(|text| {
                    let mut same_place = Vec::new();
                    for l in text.lines() {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        if f.len() >= 3 && f[1] == want.mountpoint {
                            if want.fstype.as_ref().is_none_or(|t| f[2] == t) {
                                return Ok(());
                            }
                            same_place.push(l.to_string());
                        }
                    }
                    Err(format!(
                        "mounts: not mounted: {}\n{}",
                        want.mountpoint,
                        found("proc_mounts there", &same_place)
                    ))
                });
                push(format!("mounts {}", want.mountpoint), r);
            }
        }
        Expectation::SwapsInUse(n) => {
            let r = read(collect, "proc-swaps").and_then(|text| {
                let used: Vec<String> = text
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect();
                if used.len() >= *n {
                    Ok(())
                } else {
                    Err(format!(
                        "swaps_in_use: {} in use, expected at least {n}\n{}",
                        used.len(),
                        found("proc-swaps", &used)
                    ))
                }
            });
            push(format!("swaps_in_use >= {n}"), r);
        }
        Expectation::ById(names) => {
            let text = read(collect, "ls_al_byid");
            let present: Vec<String> = match &text {
                Ok(t) => t
                    .lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        // `ls -al` shows "name -> target" for the links.
                        let i = f.iter().position(|x| *x == "->")?;
                        i.checked_sub(1).map(|j| f[j].to_string())
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            for name in names {
                let r = text.as_ref().map_err(Clone::clone).and_then(|_| {
                    if present.contains(name) {
                        Ok(())
                    } else {
                        Err(format!(
                            "by_id: missing {name}\n{}",
                            found("/dev/disk/by-id has", &present)
                        ))
                    }
                });
                push(format!("by_id {name}"), r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FstabEntry, MountEntry};

    #[test]
    fn install_lines() {
        assert!(install_verdict("x\ncurtin: Installation finished.\n").is_ok());
        let e = install_verdict("curtin: Installation failed: sfdisk\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        let e = install_verdict(
            "curtin: Installation finished.\n[ 1.0] Kernel panic - not syncing: x\n",
        )
        .unwrap_err();
        assert!(e[0].to_string().contains("Kernel panic"));
        assert!(install_verdict("").is_err());
    }

    /// The verdict of a log file streams it: a failure line far from the end is found,
    /// and so is the success line at the very end.
    #[test]
    fn install_verdict_of_a_big_log() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("install-serial.log");
        let mut text = String::from("early: \u{1b}[31mcurtin: Installation failed\u{1b}[0m\n");
        for i in 0..50_000 {
            text.push_str(&format!("[{i}] chatter\r\n"));
        }
        text.push_str("curtin: Installation finished.\n");
        std::fs::write(&p, &text).unwrap();
        let e = install_verdict_of_log(&p).unwrap_err();
        assert_eq!(
            e,
            vec![InstallProblem::Matches {
                pattern: "Installation failed",
                line: "early: curtin: Installation failed".into()
            }]
        );
        assert_eq!(
            e[0].to_string(),
            "serial log matches `Installation failed`: early: curtin: Installation failed"
        );
        std::fs::write(&p, &text[text.find('\n').unwrap() + 1..]).unwrap();
        assert!(install_verdict_of_log(&p).is_ok());
        assert!(install_verdict_of_log(&d.path().join("none")).is_err());
    }

    #[test]
    fn expectations() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path();
        std::fs::write(
            c.join("fstab"),
            "# c\nUUID=1 / ext4 defaults 0 1\nUUID=2 none swap sw 0 0\n",
        )
        .unwrap();
        std::fs::write(c.join("proc_mounts"), "/dev/vda1 / ext4 rw 0 0\n").unwrap();
        std::fs::write(
            c.join("proc-swaps"),
            "Filename Type Size Used Priority\n/dev/vda3 partition 1 0 -2\n",
        )
        .unwrap();
        std::fs::write(
            c.join("ls_al_byid"),
            "lrwxrwxrwx 1 root root 9 Nov 24 23:00 virtio-disk-a -> ../../vda\n",
        )
        .unwrap();
        let fe = |m: &str, t: &str| FstabEntry {
            spec: Some("^UUID=".into()),
            mountpoint: m.into(),
            fstype: Some(t.into()),
            options: None,
        };
        let ok = vec![
            Expectation::FileExists(vec!["fstab".into()]),
            Expectation::FileAbsent(vec!["nope".into()]),
            Expectation::ContainsLine {
                file: "fstab".into(),
                line: "UUID=1 / ext4 defaults 0 1".into(),
            },
            Expectation::Fstab(vec![fe("/", "ext4"), fe("none", "swap")]),
            Expectation::Mounts(vec![MountEntry {
                mountpoint: "/".into(),
                fstype: Some("ext4".into()),
            }]),
            Expectation::SwapsInUse(1),
            Expectation::ById(vec!["virtio-disk-a".into()]),
            Expectation::Matches {
                file: "fstab".into(),
                regex: "ext4".into(),
            },
            Expectation::NotMatches {
                file: "fstab".into(),
                regex: "xfs".into(),
            },
        ];
        let failed = |r: Vec<CheckResult>| -> Vec<CheckResult> {
            r.into_iter().filter(|c| !c.passed()).collect()
        };
        assert_eq!(failed(check_expectations(c, &ok)), Vec::new());
        let bad = vec![
            Expectation::FileExists(vec!["nope".into()]),
            Expectation::Fstab(vec![fe("/home", "ext4")]),
            Expectation::SwapsInUse(2),
            Expectation::ById(vec!["virtio-disk-b".into()]),
            Expectation::Matches {
                file: "../etc/passwd".into(),
                regex: "root".into(),
            },
            Expectation::Mounts(vec![MountEntry {
                mountpoint: "/home".into(),
                fstype: None,
            }]),
        ];
        assert_eq!(failed(check_expectations(c, &bad)).len(), 6);
    }
}
