//! `agents-gateway test`: a workspace's own test cases, run by the binary as a user would.

use std::path::Path;
use std::process::Output;

use mock_llm::{MockLlm, Reply};

use super::{bin, text, write};

/// A workspace on scripted models: `assistant` (tools `weather` and `alarm`), `extractor`
/// (structured output), and the judges `scripted/grader` (0.9 for a rubric about sunshine,
/// else 0.2) and `scripted/rambler` (no grade at all).
fn workspace(ws: &Path) {
    write(ws, "gateway.yaml", "model:\n  default: scripted/default\n");
    write(
        ws,
        "agents/assistant/AGENT.md",
        "---\ndescription: helps\ntools: [weather, alarm]\n---\nHelp.\n",
    );
    write(
        ws,
        "agents/extractor/AGENT.md",
        "---\ndescription: extracts\noutput_schema:\n  type: object\n---\nExtract the city.\n",
    );
    write(
        ws,
        "tools/weather/TOOL.md",
        "---\ndescription: The forecast of a city\nparameters:\n  city:\n    type: string\n---\n",
    );
    write(
        ws,
        "tools/weather/handler.py",
        "def handle(arguments, context):\n    return {\"city\": arguments.get(\"city\"), \"forecast\": \"sunny\"}\n",
    );
    write(ws, "tools/alarm/TOOL.md", "---\ndescription: Rings\n---\n");
    write(
        ws,
        "tools/alarm/handler.py",
        "def handle(arguments, context):\n    return \"ring\"\n",
    );
    write(
        ws,
        "replies/grader.yaml",
        "replies:\n  - match: {contains: Mentions sunshine}\n    text: '{\"score\": 0.9, \"reason\": \"it is sunny\"}'\n    times: 100\ndefault:\n  text: '{\"score\": 0.2, \"reason\": \"no rain in sight\"}'\n",
    );
    write(
        ws,
        "replies/rambler.yaml",
        "default:\n  text: I liked the answer a lot.\nreplies: []\n",
    );
}

/// Every assertion kind, each passing.
const PASSING: &str = r#"agent: assistant
judge_model: scripted/grader
cases:
  - name: weather with the tool
    message: What is the weather in city=Paris?
    expect:
      error: false
      output_contains: [weather returned, sunny]
      output_matches: 'forecast.+sunny'
      tools_called: [weather]
      tools_not_called: [alarm]
      tool_calls:
        - {name: weather, arguments: {city: Paris}}
      max_steps: 3
      max_cost_usd: 0.01
      max_latency_ms: 60000
      judge: {rubric: Mentions sunshine, threshold: 0.8}
  - name: exact scripted answer
    message: hi
    replies: [{text: It is sunny.}]
    expect:
      output_equals: It is sunny.
  - name: structured output
    agent: extractor
    message: Paris
    replies: [{output: {city: Paris}}]
    expect:
      structured_schema: {type: object, required: [city]}
      structured_equals: {city: Paris}
  - name: an expected failure
    message: hi
    replies: [{status: 400, body: bad request}]
    expect:
      error: true
  - name: a conversation
    conversation: [I am Ann, Who am I?]
    replies: [{text: Hello Ann}, {text: You are Ann}]
    expect:
      output_equals: You are Ann
"#;

/// Every assertion kind (but the cost, see the mock test), each failing.
const FAILING: &str = r#"agent: assistant
judge_model: scripted/grader
cases:
  - name: everything wrong
    message: What is the weather in city=Paris?
    expect:
      error: true
      output_contains: rain
      output_matches: '^\d+$'
      output_equals: It rains.
      tools_called: [alarm]
      tools_not_called: [weather]
      tool_calls:
        - {name: weather, arguments: {city: Rome}}
      max_steps: 1
      judge: {rubric: Mentions rain, threshold: 0.5}
  - name: a broken model
    message: hi
    replies: [{status: 400, body: bad request}]
  - name: slow
    message: hi
    replies: [{text: late, delay_ms: 400}]
    expect:
      max_latency_ms: 100
  - name: structured output
    agent: extractor
    message: Paris
    replies: [{output: {city: Paris}}]
    expect:
      structured_schema: {type: object, required: [country]}
      structured_equals: {city: Rome}
  - name: unreadable grade
    message: hi
    replies: [{text: hello}]
    expect:
      judge: {rubric: Polite, model: scripted/rambler}
"#;

/// The table row of a case.
fn row<'a>(stdout: &'a str, case: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {case} ")))
        .unwrap_or_else(|| panic!("no row for {case} in\n{stdout}"))
}

fn run(ws: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output: Output = bin()
        .arg("test")
        .arg("-w")
        .arg(ws)
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    (output.status.code(), stdout, stderr)
}

#[test]
fn every_assertion_kind_passes() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    workspace(ws);
    write(ws, "tests/pass.yaml", PASSING);
    let (code, stdout, stderr) = run(ws, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");
    for case in [
        "pass::weather with the tool",
        "pass::exact scripted answer",
        "pass::structured output",
        "pass::an expected failure",
        "pass::a conversation",
    ] {
        assert!(stdout.contains(&format!("| {case}")), "{case}: {stdout}");
    }
    // Every expectation of the first case was checked (the judge's too).
    assert!(
        row(&stdout, "pass::weather with the tool").contains("| 11/11 "),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stderr.contains("Running 5 test case(s)"), "{stderr}");
    assert!(stderr.contains("[5/5] pass"), "{stderr}");
}

#[test]
fn every_assertion_kind_fails_with_expected_actual_and_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    workspace(ws);
    write(ws, "tests/fail.yaml", FAILING);
    let (code, stdout, stderr) = run(ws, &["--jobs", "2"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("0 passed, 5 failed"), "{stdout}");
    let expect = [
        "FAIL fail::everything wrong (agent assistant)",
        "  error:\n    expected: the run fails\n    actual:   completed",
        "  output_contains:\n    expected: the answer contains \"rain\"\n    actual:   \"weather returned: ",
        "  output_matches:\n    expected: the answer matches /^\\d+$/",
        "  output_equals:\n    expected: the answer is \"It rains.\"",
        "  tools_called:\n    expected: alarm is called\n    actual:   called: weather",
        "  tools_not_called:\n    expected: weather is not called\n    actual:   called: weather",
        "  tool_calls:\n    expected: in this order: weather({\"city\":\"Rome\"} ⊆ arguments)\n    actual:   weather({\"city\":\"Paris\"})",
        "  max_steps:\n    expected: at most 1 steps\n    actual:   3 steps (2 model calls, 1 tool calls)",
        "  judge:\n    expected: score >= 0.5 from scripted/grader for rubric \"Mentions rain\"\n    actual:   score 0.2: no rain in sight",
        // The transcript of the case.
        "  transcript:\n    user: What is the weather in city=Paris?\n    tool call: weather({\"city\":\"Paris\"})\n    tool result: ",
        "FAIL fail::a broken model",
        "  error:\n    expected: the run completes without error\n    actual:   failed: ",
        "  max_latency_ms:\n    expected: each turn within 100 ms\n    actual:   ",
        "  structured_schema:\n    expected: structured output valid against",
        "  structured_equals:\n    expected: {\"city\":\"Rome\"}\n    actual:   {\"city\":\"Paris\"}",
        "  judge:\n    expected: score >= 0.7 from scripted/rambler for rubric \"Polite\"\n    actual:   unreadable grade (expected {\"score\": 0..1, \"reason\": ...}): \"I liked the answer a lot.\"",
    ];
    for want in expect {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    assert!(stdout.contains("| fail::slow "), "{stdout}");
    assert!(stdout.contains("| FAIL "), "{stdout}");
}

#[test]
fn junit_file_filter_and_model_override() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    workspace(ws);
    write(ws, "tests/pass.yaml", PASSING);
    write(ws, "tests/fail.yaml", FAILING);
    write(
        ws,
        "replies/parrot.yaml",
        "default:\n  text: Squawk & <squawk>\nreplies: []\n",
    );

    let junit = dir.path().join("reports/junit.xml");
    let (code, stdout, stderr) = run(ws, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuites name=\"agents-gateway test\" tests=\"10\" failures=\"5\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"fail\" tests=\"5\" failures=\"5\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"pass\" tests=\"5\" failures=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"a conversation\" classname=\"pass\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure ").count(), 5, "{xml}");
    assert!(
        xml.contains("<failure message=\"error failed; output_contains failed;"),
        "{xml}"
    );
    // The transcript is in the failure, escaped.
    assert!(
        xml.contains("user: What is the weather in city=Paris?"),
        "{xml}"
    );
    assert!(xml.contains("&quot;city&quot;:&quot;Rome&quot;"), "{xml}");

    // -k picks cases by `<file>::<case>`, ignoring case.
    let (code, stdout, stderr) = run(ws, &["-k", "PASS::A CONV"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    assert!(stdout.contains("| pass::a conversation"), "{stdout}");
    let (code, _, stderr) = run(ws, &["-k", "nothing like this"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("No test case matches -k"), "{stderr}");

    // --model runs every case against another model: inline scripts and the files' models
    // are set aside.
    let (code, stdout, stderr) = run(ws, &["-k", "pass::exact", "--model", "scripted/parrot"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout
            .contains("FAIL pass::exact scripted answer (agent assistant, model scripted/parrot)"),
        "{stdout}"
    );
    assert!(stdout.contains("assistant: Squawk & <squawk>"), "{stdout}");
    let (code, stdout, stderr) = run(
        ws,
        &["-k", "pass::an expected", "--model", "scripted/parrot"],
    );
    assert_eq!(
        code,
        Some(1),
        "a model that answers is no failure: {stdout}{stderr}"
    );

    // Usage mistakes.
    let (code, _, stderr) = run(ws, &["--jobs", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    let output = bin()
        .args(["test", "-w"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("not found"), "{:?}", text(&output));
}

#[test]
fn bad_test_files_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    workspace(ws);
    write(ws, "tests/good.yaml", PASSING);
    write(
        ws,
        "tests/bad.yaml",
        "agent: assistant\ncases:\n  - name: typo\n    mesage: hi\n  - name: ghost\n    agent: asistant\n    message: hi\n    expect:\n      tools_called: [wether]\n      output_matches: '(open'\n      judge: {rubric: r, threshold: 2}\n",
    );
    let (code, stdout, stderr) = run(ws, &[]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    let bad = ws.join("tests/bad.yaml").display().to_string();
    for want in [
        format!("{bad}:4: unknown key 'cases[0].mesage'"),
        format!("{bad}:3: case 'typo': no input"),
        format!("{bad}:10: case 'ghost': invalid regular expression '(open'"),
        format!("{bad}:11: case 'ghost': the judge's threshold 2 is outside 0..=1"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in\n{stderr}");
    }
    assert!(stderr.contains("The tests did not run"), "{stderr}");
    assert!(stdout.is_empty(), "nothing ran: {stdout}");

    // The references are checked once the file itself is right; `check` reports them too.
    write(
        ws,
        "tests/bad.yaml",
        "agent: assistant\ncases:\n  - name: ghost\n    agent: asistant\n    message: hi\n  - name: tools\n    message: hi\n    expect:\n      tools_called: [wether]\n",
    );
    let (code, _, stderr) = run(ws, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{bad}:4: case 'ghost': unknown agent 'asistant' (did you mean 'assistant'?)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{bad}:9: case 'tools': unknown tool 'wether' (did you mean 'weather'?)"
        )),
        "{stderr}"
    );
    let output = bin().args(["check", "-w"]).arg(ws).output().unwrap();
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("Tests:\n  [ok] bad (2 cases)\n  [ok] good (5 cases)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "[x] {bad}:4: case 'ghost': unknown agent 'asistant'"
        )),
        "{stdout}"
    );
}

#[test]
fn the_example_workspace_and_the_scaffold_pass_their_tests() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
    let (code, stdout, stderr) = run(&example, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let output = bin()
        .current_dir(dir.path())
        .args(["init", "demo"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    let output = bin()
        .current_dir(dir.path().join("demo"))
        .arg("test")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
}

/// The judge and the agent on a provider of `gateway.yaml` served by `mock-llm` over HTTP:
/// the judge's grades come from the mock, and a priced model's cost can break its bound.
#[tokio::test(flavor = "multi_thread")]
async fn the_judge_grades_over_http_with_mock_llm() {
    let mock = MockLlm::start().await.unwrap();
    // Cases run one at a time (--jobs 1), each answer then its grade.
    mock.push(Reply::text("Sunny all day in Paris.").with_usage(1_000_000, 0));
    mock.push(Reply::text(
        "```json\n{\"score\": 0.9, \"reason\": \"mentions the sun\"}\n```",
    ));
    mock.push(Reply::text("Maybe rain."));
    mock.push(Reply::text("{\"score\": 0.2, \"reason\": \"no sun\"}"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_path_buf();
    write(
        &ws,
        "gateway.yaml",
        &format!(
            "model:\n  default: mockai/gpt-4o\nproviders:\n  mockai:\n    kind: openai\n    api_base: {}\n    api_key: k\n",
            mock.openai_base()
        ),
    );
    write(&ws, "agents/forecaster/AGENT.md", "Forecast the weather.\n");
    write(
        &ws,
        "tests/judged.yaml",
        "agent: forecaster\njudge_model: mockai/gpt-4o-mini\ncases:\n  - name: sunny\n    message: Weather in Paris?\n    expect:\n      max_cost_usd: 0.01\n      judge: {rubric: Mentions the sun, threshold: 0.8}\n  - name: rainy\n    message: Weather in London?\n    expect:\n      judge: {rubric: Mentions the sun, threshold: 0.8}\n",
    );
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .args(["test", "--jobs", "1", "-w"])
            .arg(&ws)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    for want in [
        "  max_cost_usd:\n    expected: at most $0.01\n    actual:   $2.5",
        "FAIL judged::rainy",
        "  judge:\n    expected: score >= 0.8 from mockai/gpt-4o-mini for rubric \"Mentions the sun\"\n    actual:   score 0.2: no sun",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    // The first case failed on its cost alone: its judge passed.
    let sunny = row(&stdout, "judged::sunny");
    assert!(
        sunny.contains("FAIL") && sunny.contains("| 2/3 "),
        "{stdout}"
    );
    let requests = mock.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    assert_eq!(requests[1].body["model"], "gpt-4o-mini");
    let grading = requests[1].body["messages"].to_string();
    assert!(grading.contains("Rubric:\\nMentions the sun"), "{grading}");
    assert!(grading.contains("Sunny all day in Paris."), "{grading}");
    assert!(grading.contains("Weather in Paris?"), "{grading}");
}
