//! Verdicts: the install phase from its serial log (curtin's success line and failure
//! patterns), and the expectations of a test on its collected files.

use std::path::Path;

use regex::Regex;

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

    fn finish(self) -> Result<(), Vec<String>> {
        let mut errs: Vec<String> = INSTALL_FAILURE_PATTERNS
            .iter()
            .zip(self.hits)
            .filter_map(|(p, hit)| hit.map(|l| format!("serial log matches `{p}`: {l}")))
            .collect();
        if !self.success {
            errs.push(format!("serial log lacks `{INSTALL_SUCCESS}`"));
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

/// Checks an install serial log's text; `Err` lists what is wrong (first matching lines).
pub fn install_verdict(serial: &str) -> Result<(), Vec<String>> {
    let mut scan = InstallScan::new();
    serial.lines().for_each(|l| scan.line(l));
    scan.finish()
}

/// [`install_verdict`] of a serial log file, streamed: the success line is near the end
/// but a failure pattern may be anywhere, so every line is looked at, in bounded chunks
/// and never the whole file at once.
pub fn install_verdict_of_log(path: &Path) -> Result<(), Vec<String>> {
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

/// Runs the expectations on `collect`; returns every failure (empty: all passed).
pub fn check_expectations(collect: &Path, expect: &[Expectation]) -> Vec<String> {
    let mut fails = Vec::new();
    for e in expect {
        if let Err(f) = check_one(collect, e) {
            fails.push(f);
        }
    }
    fails
}

fn check_one(collect: &Path, e: &Expectation) -> Result<(), String> {
    match e {
        Expectation::FileExists(files) => {
            let missing: Vec<&str> = files
                .iter()
                .filter(|f| !collect.join(f).exists())
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("file_exists: missing {}", missing.join(", ")))
            }
        }
        Expectation::FileAbsent(files) => {
            let present: Vec<&str> = files
                .iter()
                .filter(|f| collect.join(f).exists())
                .map(String::as_str)
                .collect();
            if present.is_empty() {
                Ok(())
            } else {
                Err(format!("file_absent: present {}", present.join(", ")))
            }
        }
        Expectation::ContainsLine { file, line } => {
            let text = read(collect, file)?;
            if text.lines().any(|l| l.trim() == line.trim()) {
                Ok(())
            } else {
                Err(format!("contains_line: {file} has no line `{line}`"))
            }
        }
        Expectation::Matches { file, regex } => {
            let text = read(collect, file)?;
            // Multi-line: `^` and `$` anchor at line boundaries, as one expects of files.
            let re = Regex::new(&format!("(?m){regex}")).map_err(|e| e.to_string())?;
            if re.is_match(&text) {
                Ok(())
            } else {
                Err(format!("matches: `{regex}` not found in {file}"))
            }
        }
        Expectation::NotMatches { file, regex } => {
            let text = read(collect, file)?;
            let re = Regex::new(regex).map_err(|e| e.to_string())?;
            match text.lines().find(|l| re.is_match(l)) {
                None => Ok(()),
                Some(l) => Err(format!("not_matches: `{regex}` found in {file}: {l}")),
            }
        }
        Expectation::Fstab(entries) => {
            let text = read(collect, "fstab")?;
            let rows: Vec<Vec<&str>> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.split_whitespace().collect())
                .collect();
            let mut missing = Vec::new();
            for want in entries {
                let spec_re = match &want.spec {
                    Some(s) => Some(Regex::new(s).map_err(|e| e.to_string())?),
                    None => None,
                };
                let found = rows.iter().any(|r| {
                    r.len() >= 3
                        && r[1] == want.mountpoint
                        && spec_re.as_ref().is_none_or(|re| re.is_match(r[0]))
                        && want.fstype.as_ref().is_none_or(|t| r[2] == t)
                        && want
                            .options
                            .as_ref()
                            .is_none_or(|o| r.get(3) == Some(&o.as_str()))
                });
                if !found {
                    missing.push(format!(
                        "{} ({})",
                        want.mountpoint,
                        want.fstype.as_deref().unwrap_or("any type")
                    ));
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("fstab: no entry for {}", missing.join(", ")))
            }
        }
        Expectation::Mounts(entries) => {
            let text = read(collect, "proc_mounts")?;
            let mut missing = Vec::new();
            for want in entries {
                let found = text.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() >= 3
                        && f[1] == want.mountpoint
                        && want.fstype.as_ref().is_none_or(|t| f[2] == t)
                });
                if !found {
                    missing.push(want.mountpoint.clone());
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("mounts: not mounted: {}", missing.join(", ")))
            }
        }
        Expectation::SwapsInUse(n) => {
            let text = read(collect, "proc-swaps")?;
            let used = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count();
            if used >= *n {
                Ok(())
            } else {
                Err(format!(
                    "swaps_in_use: {used} in use, expected at least {n}"
                ))
            }
        }
        Expectation::ById(names) => {
            let text = read(collect, "ls_al_byid")?;
            let present: Vec<&str> = text
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    // `ls -al` shows "name -> target" for the links.
                    let i = f.iter().position(|x| *x == "->")?;
                    i.checked_sub(1).map(|j| f[j])
                })
                .collect();
            let missing: Vec<&str> = names
                .iter()
                .filter(|n| !present.contains(&n.as_str()))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("by_id: missing {}", missing.join(", ")))
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
        assert!(e[0].contains("Kernel panic"));
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
            vec!["serial log matches `Installation failed`: early: curtin: Installation failed"]
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
        assert_eq!(check_expectations(c, &ok), Vec::<String>::new());
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
        assert_eq!(check_expectations(c, &bad).len(), 6);
    }
}
