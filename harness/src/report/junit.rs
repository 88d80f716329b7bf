//! JUnit XML, for CI: per test one testcase for the run itself (its phases: install,
//! boot, collect; an infrastructure error or a phase that failed shows here), then one
//! testcase per check, as nose gave one per `test_*` method. The file can be rewritten
//! after every test ([`write_junit`]: a temporary file renamed over it), so a run killed
//! midway leaves a valid file holding the tests that finished.

use std::io::Write;
use std::path::Path;

use crate::runner::{Status, TestResult};

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// A `<failure>` or `<error>` element: the first line as its message, all as its text.
fn problem(kind: &str, lines: &[String]) -> String {
    let first = lines
        .first()
        .and_then(|e| e.lines().next())
        .unwrap_or_default();
    format!(
        "    <{kind} message=\"{}\">{}</{kind}>\n",
        xml_escape(first),
        xml_escape(&lines.join("\n"))
    )
}

/// JUnit XML for CI.
pub fn junit_xml<'a>(results: impl IntoIterator<Item = &'a TestResult>) -> String {
    let results: Vec<&TestResult> = results.into_iter().collect();
    let mut cases = String::new();
    let (mut tests, mut failures, mut errors, mut skipped) = (0, 0, 0, 0);
    for r in &results {
        tests += 1;
        cases.push_str(&format!(
            "  <testcase classname=\"vmtest.{}\" name=\"{}\" time=\"{:.3}\">\n",
            xml_escape(&r.backend),
            xml_escape(&r.name),
            r.total.as_secs_f64()
        ));
        if let Some(f) = &r.failure {
            let mut lines = f.lines();
            lines.extend(r.notes.iter().cloned());
            if f.status() == Status::NotRun {
                // Neither passed nor failed: JUnit's `skipped`, with the reason.
                skipped += 1;
                cases.push_str(&format!(
                    "    <skipped message=\"{}\"/>\n",
                    xml_escape(&f.to_string())
                ));
            } else if f.status() == Status::Error {
                errors += 1;
                cases.push_str(&problem("error", &lines));
            } else {
                failures += 1;
                cases.push_str(&problem("failure", &lines));
            }
        }
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|(n, d)| format!("{n}={:.1}s", d.as_secs_f64()))
            .collect();
        cases.push_str(&format!(
            "    <system-out>work dir: {}\ninstaller: {}\nphases: {}\nharness overhead: {:.0} ms</system-out>\n",
            xml_escape(&r.workdir.display().to_string()),
            xml_escape(&r.installer),
            phases.join(" "),
            r.overhead().as_secs_f64() * 1000.0
        ));
        cases.push_str("  </testcase>\n");
        for c in &r.checks {
            tests += 1;
            cases.push_str(&format!(
                "  <testcase classname=\"vmtest.{}.{}\" name=\"{} / {}\" time=\"0.000\">\n",
                xml_escape(&r.backend),
                xml_escape(&r.name),
                xml_escape(&r.name),
                xml_escape(&c.name)
            ));
            // Properties first, as pytest writes them inside a testcase.
            cases.push_str(&format!(
                "    <properties><property name=\"group\" value=\"{}\"/></properties>\n",
                c.group.as_str()
            ));
            if !c.passed() {
                failures += 1;
                cases.push_str(&problem("failure", std::slice::from_ref(&c.evidence)));
            }
            cases.push_str("  </testcase>\n");
        }
    }
    let total: f64 = results.iter().map(|r| r.total.as_secs_f64()).sum();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vmtest\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total:.3}\">\n{cases}</testsuite>\n</testsuites>\n"
    )
}

/// Writes [`junit_xml`] of `results` to `path` atomically: into a temporary file in the
/// same directory, synced, then renamed over `path`, so a reader (or a run killed now)
/// sees the previous complete file or the new one, never half of one.
pub fn write_junit<'a>(
    path: &Path,
    results: impl IntoIterator<Item = &'a TestResult>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".vmtest-junit-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(junit_xml(results).as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
