//! Reading JUnit files back: the testcases' names and times (durations for
//! `--partition`), and merging the files of several partitions into one.

use quick_xml::Reader;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};

/// A testcase as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub classname: String,
    pub name: String,
    pub time: Option<f64>,
}

fn attr(e: &BytesStart, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| AsRef::<str>::as_ref(&a.key) == key)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::default())
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Every `<testcase>` in a JUnit document, in order.
pub fn junit_testcases(text: &str) -> Result<Vec<Case>, String> {
    let mut reader = Reader::from_str(text);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e))
                if AsRef::<str>::as_ref(&e.name()) == "testcase" =>
            {
                out.push(Case {
                    classname: attr(&e, "classname").unwrap_or_default(),
                    name: attr(&e, "name").unwrap_or_default(),
                    time: attr(&e, "time").and_then(|t| t.parse().ok()),
                });
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("at byte {}: {e}", reader.error_position())),
        }
    }
    Ok(out)
}

/// Several JUnit documents as one: every testsuite's testcases under one
/// `<testsuite name="vmtest">`, with its counts and time the sums of theirs.
pub fn merge_junit(docs: &[String]) -> Result<String, String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let mut body = Writer::new(Vec::new());
    let (mut tests, mut failures, mut errors, mut skipped, mut time) =
        (0u64, 0u64, 0u64, 0u64, 0f64);
    for (i, text) in docs.iter().enumerate() {
        let mut reader = Reader::from_str(text);
        // Depth inside a <testsuite>: its children are copied as they are.
        let mut depth = 0usize;
        loop {
            let ev = reader.read_event().map_err(|e| {
                format!(
                    "document {}: at byte {}: {e}",
                    i + 1,
                    reader.error_position()
                )
            })?;
            match &ev {
                Event::Start(e) if depth == 0 && AsRef::<str>::as_ref(&e.name()) == "testsuite" => {
                    let num = |k: &str| attr(e, k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                    tests += num("tests");
                    failures += num("failures");
                    errors += num("errors");
                    skipped += num("skipped");
                    time += attr(e, "time")
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0);
                    depth = 1;
                    continue;
                }
                Event::Start(_) if depth > 0 => depth += 1,
                Event::End(e) if depth == 1 && AsRef::<str>::as_ref(&e.name()) == "testsuite" => {
                    depth = 0;
                    continue;
                }
                Event::End(_) if depth > 0 => depth -= 1,
                Event::Eof => break,
                _ => {}
            }
            if depth > 0 {
                body.write_event(ev).map_err(|e| e.to_string())?;
            }
        }
    }
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(|e| e.to_string())?;
    let mut out = String::from_utf8(w.into_inner()).map_err(|e| e.to_string())?;
    out.push_str("\n<testsuites>\n");
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", "vmtest"));
    suite.push_attribute(("tests", tests.to_string().as_str()));
    suite.push_attribute(("failures", failures.to_string().as_str()));
    suite.push_attribute(("errors", errors.to_string().as_str()));
    if skipped > 0 {
        suite.push_attribute(("skipped", skipped.to_string().as_str()));
    }
    suite.push_attribute(("time", format!("{time:.3}").as_str()));
    let mut sw = Writer::new(Vec::new());
    sw.write_event(Event::Start(suite))
        .map_err(|e| e.to_string())?;
    out.push_str(&String::from_utf8(sw.into_inner()).map_err(|e| e.to_string())?);
    out.push_str(&String::from_utf8(body.into_inner()).map_err(|e| e.to_string())?);
    let mut ew = Writer::new(Vec::new());
    ew.write_event(Event::End(BytesEnd::new("testsuite")))
        .map_err(|e| e.to_string())?;
    out.push_str(&String::from_utf8(ew.into_inner()).map_err(|e| e.to_string())?);
    out.push_str("\n</testsuites>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
<testsuite name="vmtest" tests="2" failures="1" errors="0" time="10.500">
  <testcase classname="vmtest.fake" name="a" time="10.500">
    <failure message="x &lt;&amp;&gt;">body &amp; more</failure>
  </testcase>
  <testcase classname="vmtest.fake.a" name="a / fstab /" time="0.000"/>
</testsuite>
</testsuites>
"#;
    const B: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
<testsuite name="vmtest" tests="1" failures="0" errors="1" time="2.000">
  <testcase classname="vmtest.fake" name="b" time="2.000"><error message="no image"/></testcase>
</testsuite>
</testsuites>
"#;

    #[test]
    fn merged_files_keep_every_testcase_and_add_up_counts() {
        let m = merge_junit(&[A.to_string(), B.to_string()]).unwrap();
        assert!(
            m.contains(
                r#"<testsuite name="vmtest" tests="3" failures="1" errors="1" time="12.500">"#
            ),
            "{m}"
        );
        assert!(
            m.contains(r#"<failure message="x &lt;&amp;&gt;">body &amp; more</failure>"#),
            "{m}"
        );
        let cases = junit_testcases(&m).unwrap();
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["a", "a / fstab /", "b"]);
        assert_eq!(cases[0].time, Some(10.5));
        assert_eq!(m.matches("<testsuite ").count(), 1);
        assert!(merge_junit(&["<testsuite><testcase".into()]).is_err());
    }
}
