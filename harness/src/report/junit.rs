//! JUnit XML, for CI.

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

/// JUnit XML for CI.
pub fn junit_xml(results: &[TestResult]) -> String {
    let failures = results.iter().filter(|r| r.status == Status::Fail).count();
    let errors = results.iter().filter(|r| r.status == Status::Error).count();
    let total: f64 = results.iter().map(|r| r.total.as_secs_f64()).sum();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vmtest\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">\n",
        results.len()
    );
    for r in results {
        s.push_str(&format!(
            "  <testcase classname=\"vmtest.{}\" name=\"{}\" time=\"{:.3}\">\n",
            xml_escape(&r.backend),
            xml_escape(&r.name),
            r.total.as_secs_f64()
        ));
        let body = xml_escape(&r.errors.join("\n"));
        match r.status {
            Status::Pass => {}
            Status::Fail => s.push_str(&format!(
                "    <failure message=\"{}\">{body}</failure>\n",
                xml_escape(
                    r.errors
                        .first()
                        .map(|e| e.lines().next().unwrap_or(""))
                        .unwrap_or("")
                )
            )),
            Status::Error => s.push_str(&format!(
                "    <error message=\"{}\">{body}</error>\n",
                xml_escape(
                    r.errors
                        .first()
                        .map(|e| e.lines().next().unwrap_or(""))
                        .unwrap_or("")
                )
            )),
        }
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|(n, d)| format!("{n}={:.1}s", d.as_secs_f64()))
            .collect();
        s.push_str(&format!(
            "    <system-out>work dir: {}\ninstaller: {}\nphases: {}\nharness overhead: {:.0} ms</system-out>\n",
            xml_escape(&r.workdir.display().to_string()),
            xml_escape(&r.installer),
            phases.join(" "),
            r.overhead().as_secs_f64() * 1000.0
        ));
        s.push_str("  </testcase>\n");
    }
    s.push_str("</testsuite>\n</testsuites>\n");
    s
}
