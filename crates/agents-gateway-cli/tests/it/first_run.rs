//! The README's first command on a fresh machine: the example workspace served with no
//! provider key answers through its scripted model, and says so.

use std::path::Path;

use super::{bin, free_port, serve_command, wait_healthy};

#[tokio::test(flavor = "multi_thread")]
async fn the_example_workspace_answers_with_no_key() {
    // A copy, so the server's SQLite file lands in a temporary folder, not in the repository.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("workspace");
    test_services::copy_tree(&example, &ws, &["db"]).unwrap();
    let log = dir.path().join("serve.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // `serve_command` (through `bin()`) clears the environment: no GEMINI_API_KEY, no key.
    let mut server = serve_command(&ws, port)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_healthy(&base).await;
    let client = reqwest::Client::new();

    // An answer, through a tool call the message asks for.
    let answer: serde_json::Value = client
        .post(format!("{base}/v1/agents/assistant/invoke"))
        .json(&serde_json::json!({"message": "What is the current time?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(
        answer["usage"]["models_used"],
        serde_json::json!(["scripted/example"])
    );
    assert_eq!(answer["usage"]["tool_calls"], 1, "{answer}");
    let text = answer["result"]["raw_text"].as_str().unwrap();
    assert!(text.starts_with("current-time returned: {"), "{text}");
    assert!(text.contains("\"now\""), "the tool really ran: {text}");

    // A streamed chat turn.
    let stream = client
        .post(format!("{base}/v1/agents/assistant/chat"))
        .json(&serde_json::json!({"message": "hello there", "options": {"stream": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stream.contains("event: session"), "{stream}");
    assert!(stream.contains("event: token"), "{stream}");
    assert!(stream.contains("\"scripted/example\""), "{stream}");
    let streamed: String = stream
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .filter_map(|event| event["content"].as_str().map(String::from))
        .collect();
    assert_eq!(streamed, "echo: hello there");

    server.kill().unwrap();
    server.wait().unwrap();
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains("!! no key for gemini/gemini-2.5-flash")
            && printed.contains("scripted/example")
            && printed.contains("set GEMINI_API_KEY"),
        "the start says loudly which model answers and how to switch: {printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_key_the_example_uses_the_real_model_and_elsewhere_nothing_falls_back() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("workspace");
    test_services::copy_tree(&example, &ws, &["db"]).unwrap();
    // The key is set: the real provider (here the mock, over Gemini's wire format) answers.
    let mock = mock_llm::MockLlm::start().await.unwrap();
    mock.push(mock_llm::Reply::text("from gemini"));
    let output = bin()
        .args(["invoke", "assistant", "hi", "-w"])
        .arg(&ws)
        .env("GEMINI_API_KEY", "k")
        .env("GEMINI_API_BASE", mock.gemini_base())
        .output()
        .unwrap();
    let (stdout, stderr) = super::text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("from gemini"), "{stdout}");
    assert_eq!(mock.requests().len(), 1);

    // Without `model.without_key`, a missing key is still a clear failure.
    std::fs::remove_file(ws.join("gateway.yaml")).unwrap();
    let output = bin()
        .args(["invoke", "assistant", "hi", "-w"])
        .arg(&ws)
        .output()
        .unwrap();
    let (stdout, stderr) = super::text(&output);
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("set GEMINI_API_KEY"),
        "{stdout}{stderr}"
    );
}
