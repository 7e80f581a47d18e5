//! A report as JUnit XML for CI: one `testsuite` per test file, one `testcase` per case, a
//! failed case's `failure` naming each failed assertion with the transcript.

use crate::report::{CaseReport, Report};

/// The report as a JUnit XML document.
pub fn to_xml(report: &Report) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"agents-gateway test\" tests=\"{}\" failures=\"{}\" time=\"{}\">\n",
        report.total(),
        report.failed(),
        seconds(report.duration_ms)
    ));
    for file in &report.files {
        let failures = file.cases.iter().filter(|c| !c.passed).count();
        let time: u64 = file.cases.iter().map(|c| c.duration_ms).sum();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{}\" file=\"{}\">\n",
            escape(&file.name),
            file.cases.len(),
            failures,
            seconds(time),
            escape(&file.path.display().to_string())
        ));
        for case in &file.cases {
            testcase(&mut xml, case);
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn testcase(xml: &mut String, case: &CaseReport) {
    xml.push_str(&format!(
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        escape(&case.name),
        escape(&case.file),
        seconds(case.duration_ms)
    ));
    if case.passed {
        xml.push_str("/>\n");
        return;
    }
    xml.push_str(">\n");
    let mut message: Vec<String> = Vec::new();
    let mut body: Vec<String> = Vec::new();
    if let Some(error) = &case.error {
        message.push(error.clone());
        body.push(error.clone());
    }
    for failure in case.failures() {
        message.push(format!("{} failed", failure.kind));
        body.push(format!(
            "{}: expected {}\n  got {}",
            failure.kind, failure.expected, failure.actual
        ));
    }
    let transcript = case.transcript.lines();
    if !transcript.is_empty() {
        body.push(format!("transcript:\n{}", transcript.join("\n")));
    }
    xml.push_str(&format!(
        "      <failure message=\"{}\" type=\"AssertionFailed\">{}</failure>\n",
        escape(&message.join("; ")),
        escape(&body.join("\n\n"))
    ));
    xml.push_str("    </testcase>\n");
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Text as an XML attribute value or character data: the five special characters and the
/// whitespace an attribute would flatten escaped, and characters XML 1.0 cannot hold (most
/// control characters) dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push_str(&format!("&#{};", u32::from(c))),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Assertion, FileReport, Transcript, Turn};

    fn case(name: &str, passed: bool) -> CaseReport {
        CaseReport {
            id: format!("a::{name}"),
            file: "a".into(),
            name: name.into(),
            agent: "assistant".into(),
            model: None,
            passed,
            error: None,
            assertions: vec![Assertion::new(
                "output_contains",
                passed,
                "the answer contains \"<b>\"",
                "\"x & y\"",
            )],
            transcript: Transcript {
                turns: vec![Turn {
                    message: "say \"hi\"".into(),
                    status: "completed".into(),
                    answer: "x & y\u{1}".into(),
                    ..Turn::default()
                }],
                ..Transcript::default()
            },
            duration_ms: 1500,
        }
    }

    #[test]
    fn writes_suites_cases_and_escaped_failures() {
        let report = Report {
            files: vec![FileReport {
                name: "a".into(),
                path: "tests/a.yaml".into(),
                cases: vec![case("passes", true), case("fails <here>", false)],
            }],
            duration_ms: 3000,
        };
        let xml = to_xml(&report);
        assert!(xml.starts_with("<?xml"), "{xml}");
        assert!(xml.contains("<testsuites name=\"agents-gateway test\" tests=\"2\" failures=\"1\" time=\"3.000\">"), "{xml}");
        assert!(
            xml.contains("<testsuite name=\"a\" tests=\"2\" failures=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("<testcase name=\"passes\" classname=\"a\" time=\"1.500\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<testcase name=\"fails &lt;here&gt;\""),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"output_contains failed\""),
            "{xml}"
        );
        assert!(
            xml.contains("the answer contains &quot;&lt;b&gt;&quot;"),
            "{xml}"
        );
        assert!(xml.contains("assistant: x &amp; y"), "{xml}");
        assert!(!xml.contains('\u{1}'));
        assert_eq!(xml.matches("<testcase").count(), 2);
        assert_eq!(xml.matches("</testcase>").count(), 1);
    }
}
