//! Checking a case's expectations (all but the judge's) against what its runs did.

use gateway_workspace::schema;
use gateway_workspace::test_cases::{Expectations, ExpectedCall, contains_value};
use serde_json::Value;

use crate::report::{Assertion, ToolCallRecord, Transcript, one_line};

/// The longest actual value quoted in a failure.
const QUOTE: usize = 600;

/// Every expectation but the judge's, in the order of the format's documentation.
pub fn check(expect: &Expectations, transcript: &Transcript) -> Vec<Assertion> {
    let mut results = Vec::new();
    let last = transcript.last();
    let answer = last.map(|t| t.answer.as_str()).unwrap_or_default();
    let quoted = || format!("{:?}", one_line(answer, QUOTE));

    let failed = transcript.failed();
    let outcome = match transcript.turns.iter().find(|t| t.error.is_some()) {
        Some(turn) => format!(
            "{}: {}",
            turn.status,
            turn.error.as_deref().unwrap_or_default()
        ),
        None => "completed".to_string(),
    };
    let (expected, passed) = if expect.error {
        ("the run fails", failed)
    } else {
        ("the run completes without error", !failed)
    };
    results.push(Assertion::new("error", passed, expected, outcome));

    for text in &expect.output_contains {
        results.push(Assertion::new(
            "output_contains",
            answer.contains(text.as_str()),
            format!("the answer contains {text:?}"),
            quoted(),
        ));
    }
    if let Some(regex) = &expect.output_matches {
        results.push(Assertion::new(
            "output_matches",
            regex.is_match(answer),
            format!("the answer matches /{}/", regex.as_str()),
            quoted(),
        ));
    }
    if let Some(text) = &expect.output_equals {
        results.push(Assertion::new(
            "output_equals",
            answer.trim() == text.trim(),
            format!("the answer is {text:?}"),
            quoted(),
        ));
    }
    let output = last.and_then(|t| t.output.as_ref());
    let no_output = || match last.and_then(|t| t.validation_errors.as_ref()) {
        Some(errors) if !errors.is_empty() => {
            format!("no structured output ({})", errors.join("; "))
        }
        _ => "no structured output".to_string(),
    };
    if let Some(schema_value) = &expect.structured_schema {
        let expected = format!("structured output valid against {schema_value}");
        let (passed, actual) = match (output, schema::compile(schema_value)) {
            (None, _) => (false, no_output()),
            (Some(_), Err(err)) => (false, err),
            (Some(value), Ok(validator)) => {
                let problems = schema::violations(&validator, value);
                if problems.is_empty() {
                    (true, value.to_string())
                } else {
                    (
                        false,
                        format!("{value} ({})", schema::lines(&problems).join("; ")),
                    )
                }
            }
        };
        results.push(Assertion::new(
            "structured_schema",
            passed,
            expected,
            actual,
        ));
    }
    if let Some(wanted) = &expect.structured_equals {
        let (passed, actual) = match output {
            None => (false, no_output()),
            Some(value) => (json_equal(value, wanted), value.to_string()),
        };
        results.push(Assertion::new(
            "structured_equals",
            passed,
            wanted.to_string(),
            actual,
        ));
    }

    let calls: Vec<&ToolCallRecord> = transcript.tool_calls().collect();
    let names = || {
        if calls.is_empty() {
            "no tool calls".to_string()
        } else {
            let list: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
            format!("called: {}", list.join(", "))
        }
    };
    for tool in &expect.tools_called {
        results.push(Assertion::new(
            "tools_called",
            calls.iter().any(|c| &c.name == tool),
            format!("{tool} is called"),
            names(),
        ));
    }
    for tool in &expect.tools_not_called {
        results.push(Assertion::new(
            "tools_not_called",
            !calls.iter().any(|c| &c.name == tool),
            format!("{tool} is not called"),
            names(),
        ));
    }
    if !expect.tool_calls.is_empty() {
        let expected: Vec<String> = expect.tool_calls.iter().map(describe_expected).collect();
        let actual: Vec<String> = calls
            .iter()
            .map(|c| format!("{}({})", c.name, c.arguments))
            .collect();
        results.push(Assertion::new(
            "tool_calls",
            in_order(&expect.tool_calls, &calls),
            format!("in this order: {}", expected.join(", ")),
            if actual.is_empty() {
                "no tool calls".to_string()
            } else {
                actual.join(", ")
            },
        ));
    }

    let usage = &transcript.usage;
    if let Some(max) = expect.max_steps {
        results.push(Assertion::new(
            "max_steps",
            usage.steps() <= max,
            format!("at most {max} steps"),
            format!(
                "{} steps ({} model calls, {} tool calls)",
                usage.steps(),
                usage.llm_calls,
                usage.tool_calls
            ),
        ));
    }
    if let Some(max) = expect.max_cost_usd {
        results.push(Assertion::new(
            "max_cost_usd",
            usage.cost_usd <= max,
            format!("at most ${max}"),
            format!("${}", usage.cost_usd),
        ));
    }
    if let Some(max) = expect.max_latency_ms {
        let slowest = transcript.max_latency_ms();
        results.push(Assertion::new(
            "max_latency_ms",
            slowest <= max,
            format!("each turn within {max} ms"),
            format!("{slowest} ms"),
        ));
    }
    results
}

fn describe_expected(call: &ExpectedCall) -> String {
    match &call.arguments {
        Some(arguments) => format!("{}({arguments} ⊆ arguments)", call.name),
        None => call.name.clone(),
    }
}

/// Whether `expected` appear among `actual` in order (others may come between).
fn in_order(expected: &[ExpectedCall], actual: &[&ToolCallRecord]) -> bool {
    let mut wanted = expected.iter().peekable();
    for call in actual {
        let Some(next) = wanted.peek() else { break };
        let fits = next.name == call.name
            && next
                .arguments
                .as_ref()
                .is_none_or(|args| contains_value(&call.arguments, args));
        if fits {
            wanted.next();
        }
    }
    wanted.peek().is_none()
}

/// JSON equality where `1` and `1.0` are the same number.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_equal(v, w))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Turn, UsageSummary};
    use serde_json::json;

    fn transcript(answer: &str, calls: &[(&str, Value)], error: Option<&str>) -> Transcript {
        let usage = UsageSummary {
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: 0.002,
            llm_calls: 2,
            tool_calls: calls.len() as u32,
        };
        Transcript {
            turns: vec![Turn {
                message: "hi".into(),
                status: if error.is_some() {
                    "failed"
                } else {
                    "completed"
                }
                .into(),
                error: error.map(String::from),
                tool_calls: calls
                    .iter()
                    .map(|(name, arguments)| ToolCallRecord {
                        name: name.to_string(),
                        arguments: arguments.clone(),
                        result: Some("ok".into()),
                        success: Some(true),
                    })
                    .collect(),
                answer: answer.into(),
                output: serde_json::from_str(answer).ok(),
                usage: usage.clone(),
                duration_ms: 20,
                ..Turn::default()
            }],
            usage,
        }
    }

    fn call(name: &str, arguments: Option<Value>) -> ExpectedCall {
        ExpectedCall {
            name: name.into(),
            arguments,
        }
    }

    #[test]
    fn every_kind_passes_and_fails() {
        let ran = transcript(
            r#"{"time": "12:00"}"#,
            &[
                ("lookup", json!({"q": "x"})),
                ("current-time", json!({"timezone": "UTC", "format": "24h"})),
            ],
            None,
        );
        let passing = Expectations {
            output_contains: vec!["12:00".into()],
            output_matches: Some(regex::Regex::new(r"\d\d:\d\d").unwrap()),
            output_equals: Some(r#"{"time": "12:00"}"#.into()),
            structured_schema: Some(json!({"type": "object", "required": ["time"]})),
            structured_equals: Some(json!({"time": "12:00"})),
            tools_called: vec!["current-time".into()],
            tools_not_called: vec!["delete".into()],
            tool_calls: vec![
                call("lookup", None),
                call("current-time", Some(json!({"timezone": "UTC"}))),
            ],
            max_steps: Some(4),
            max_cost_usd: Some(0.01),
            max_latency_ms: Some(1000),
            ..Expectations::default()
        };
        let results = check(&passing, &ran);
        assert_eq!(results.len(), 12);
        assert!(results.iter().all(|a| a.passed), "{results:#?}");

        let failing = Expectations {
            error: true,
            output_contains: vec!["13:00".into()],
            output_matches: Some(regex::Regex::new(r"^\d+$").unwrap()),
            output_equals: Some("noon".into()),
            structured_schema: Some(json!({"type": "object", "required": ["date"]})),
            structured_equals: Some(json!({"time": "13:00"})),
            tools_called: vec!["delete".into()],
            tools_not_called: vec!["lookup".into()],
            tool_calls: vec![call("current-time", None), call("lookup", None)],
            max_steps: Some(3),
            max_cost_usd: Some(0.001),
            max_latency_ms: Some(10),
            ..Expectations::default()
        };
        let results = check(&failing, &ran);
        assert_eq!(results.len(), 12);
        let passed: Vec<&Assertion> = results.iter().filter(|a| a.passed).collect();
        assert!(passed.is_empty(), "{passed:#?}");
        let steps = results.iter().find(|a| a.kind == "max_steps").unwrap();
        assert_eq!(steps.actual, "4 steps (2 model calls, 2 tool calls)");
        let order = results.iter().find(|a| a.kind == "tool_calls").unwrap();
        assert!(order.actual.starts_with("lookup("), "{order:?}");
        // Arguments must be contained: a wrong value fails.
        let wrong = Expectations {
            tool_calls: vec![call("current-time", Some(json!({"timezone": "CET"})))],
            ..Expectations::default()
        };
        assert!(!check(&wrong, &ran)[1].passed);
    }

    #[test]
    fn a_failed_run_passes_only_when_expected() {
        let ran = transcript("", &[], Some("LLM call failed"));
        let results = check(&Expectations::default(), &ran);
        assert!(!results[0].passed);
        assert_eq!(results[0].actual, "failed: LLM call failed");
        let expect = Expectations {
            error: true,
            structured_equals: Some(json!({})),
            ..Expectations::default()
        };
        let results = check(&expect, &ran);
        assert!(results[0].passed);
        assert_eq!(results[1].actual, "no structured output");
    }
}
