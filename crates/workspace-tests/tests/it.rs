//! The runner as a host program uses it: the example workspace's tests in `cargo test`, and
//! a typed report of a failing case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use workspace_tests::{Progress, RunOptions};

fn example() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/workspace"
    ))
}

/// No provider key: the example's own scripted model answers.
fn options() -> RunOptions {
    RunOptions {
        env: Some(BTreeMap::new()),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_workspace_passes_its_tests() {
    let seen = Mutex::new(Vec::new());
    let report = workspace_tests::run(example(), &options(), |progress| {
        if let Progress::Finished { case, done, total } = progress {
            seen.lock().unwrap().push((case.id.clone(), *done, *total));
        }
    })
    .await
    .unwrap();
    assert!(report.all_passed(), "{}", workspace_tests::summary(&report));
    assert_eq!(report.total(), 3);
    assert_eq!(seen.lock().unwrap().len(), 3);
    let time = report
        .cases()
        .find(|c| c.name == "tells the time with the tool")
        .unwrap();
    let calls: Vec<_> = time.transcript.tool_calls().collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "current-time");
    assert_eq!(calls[0].arguments["timezone"], "UTC");
    assert!(calls[0].result.as_deref().unwrap().contains("UTC"));
    assert_eq!(time.transcript.usage.steps(), 3);
    let conversation = report
        .cases()
        .find(|c| c.name == "remembers the conversation")
        .unwrap();
    assert_eq!(conversation.transcript.turns.len(), 2);
    assert_eq!(conversation.model.as_deref(), Some("scripted/inline"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_case_reports_expected_and_actual() {
    let options = RunOptions {
        filter: Some("GREETING".into()),
        model: Some("scripted/nobody".into()),
        ..options()
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("agents/helper")).unwrap();
    std::fs::write(ws.join("agents/helper/AGENT.md"), "Help.\n").unwrap();
    std::fs::create_dir_all(ws.join("tests")).unwrap();
    std::fs::write(
        ws.join("tests/t.yaml"),
        "agent: helper\ncases:\n  - name: greeting\n    message: Hello\n    expect:\n      output_equals: Hi!\n  - name: other\n    message: x\n",
    )
    .unwrap();
    let report = workspace_tests::run(ws, &options, |_| {}).await.unwrap();
    assert_eq!(report.total(), 1, "-k picked one case");
    let case = report.cases().next().unwrap();
    assert!(!case.passed);
    assert_eq!(case.model.as_deref(), Some("scripted/nobody"));
    let failure = case.failures().next().unwrap();
    assert_eq!(failure.kind, "output_equals");
    assert_eq!(failure.expected, "the answer is \"Hi!\"");
    assert_eq!(failure.actual, "\"echo: Hello\"");
    assert!(
        workspace_tests::summary(&report).contains("t::greeting:\n  output_equals: expected"),
        "{}",
        workspace_tests::summary(&report)
    );

    std::fs::write(ws.join("tests/t.yaml"), "cases: []\n").unwrap();
    match workspace_tests::run(ws, &options, |_| {}).await {
        Err(workspace_tests::Error::Invalid(diagnostics)) => {
            assert!(
                diagnostics.errors().any(|d| d.line == Some(1)),
                "{diagnostics:?}"
            );
        }
        other => panic!("expected errors, got {other:?}"),
    }
}
