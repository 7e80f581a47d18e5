use std::sync::Arc;
use std::time::Duration;

use agent_gateway::Gateway;
use agent_gateway::tools::{CodeTool, ToolError};
use mock_llm::{MockLlm, Reply};
use serde_json::json;

use crate::support::*;

fn tool_results(request: &serde_json::Value) -> Vec<serde_json::Value> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .cloned()
        .collect()
}

#[tokio::test]
async fn python_tool_round_trip() {
    let ws = TestWorkspace::new();
    ws.agent("mathy", "skills: [arith]", "Do math.");
    ws.skill("arith", "description: arithmetic\ntools: [add]");
    ws.python_tool(
        "add",
        "  a:\n    type: number\n    required: true\n  b:\n    type: number\n    required: true",
        "async def handler(a, b):\n    return {'sum': a + b}\n",
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("add", json!({"a": 2, "b": 40})));
    mock.push(Reply::text("The sum is 42."));

    let (status, body) = server
        .post("/v1/agents/mathy/invoke", json!({"message": "2+40?"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["raw_text"], "The sum is 42.");
    assert_eq!(body["usage"]["tool_calls"], 1);

    let requests = mock.requests();
    let tools = requests[0].body["tools"].as_array().unwrap();
    assert_eq!(tools[0]["function"]["name"], "add");
    assert_eq!(
        tools[0]["function"]["parameters"]["required"],
        json!(["a", "b"])
    );
    let system = requests[0].body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("## Available Skills\n\n### Skill: arith\n*arithmetic*"),
        "{system}"
    );
    let results = tool_results(&requests[1].body);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["content"], r#"{"sum":42}"#);
}

#[cfg(unix)]
#[tokio::test]
async fn executable_tool_round_trip_and_argument_validation() {
    let ws = TestWorkspace::new();
    ws.agent("shell", "tools: [wc]", "Count.");
    ws.executable_tool(
        "wc",
        "  text:\n    type: string\n    required: true",
        "#!/usr/bin/env python3\nimport json, sys\nreq = json.load(sys.stdin)\nprint(json.dumps({'words': len(req['arguments']['text'].split())}))\n",
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_calls(vec![
        ("wc", json!({"text": "one two three"})),
        ("wc", json!({"txt": 1})),
    ]));
    mock.push(Reply::text("Three words."));
    let (status, body) = server
        .post("/v1/agents/shell/invoke", json!({"message": "count"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let results = tool_results(&mock.requests()[1].body);
    assert_eq!(results[0]["content"], r#"{"words":3}"#);
    let invalid = results[1]["content"].as_str().unwrap();
    assert!(
        invalid.contains("Invalid arguments for tool 'wc'"),
        "{invalid}"
    );
}

#[tokio::test]
async fn failing_and_unknown_tools_become_errors_for_the_model() {
    let ws = TestWorkspace::new();
    ws.agent("careful", "skills: [s]", "Careful.");
    ws.skill("s", "tools: [boom]");
    ws.python_tool(
        "boom",
        "  x:\n    type: string",
        "def handle(arguments, context):\n    raise RuntimeError('kaput')\n",
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_calls(vec![
        ("boom", json!({})),
        ("nope", json!({})),
    ]));
    mock.push(Reply::text("Sorry."));
    let (status, body) = server
        .post("/v1/agents/careful/invoke", json!({"message": "go"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    let results = tool_results(&mock.requests()[1].body);
    let boom: serde_json::Value =
        serde_json::from_str(results[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(boom["error"], "Tool 'boom' failed: RuntimeError: kaput");
    let nope: serde_json::Value =
        serde_json::from_str(results[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(nope["error"], "Unknown tool: 'nope'");
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct WaitArgs {
    /// Label of the call
    label: String,
}

#[tokio::test]
async fn tool_calls_of_one_turn_run_in_parallel() {
    let ws = TestWorkspace::new();
    ws.agent("parallel", "description: p", "Go.");
    let mock = MockLlm::start().await.unwrap();
    // Each call waits until both are running: they can only finish if they run concurrently.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tool = CodeTool::new(
        "rendezvous",
        "Wait for the other call",
        move |args: WaitArgs, _ctx| {
            let barrier = Arc::clone(&barrier);
            async move {
                tokio::time::timeout(Duration::from_secs(5), barrier.wait())
                    .await
                    .map_err(|_| ToolError::failed("the other call never started"))?;
                Ok::<_, ToolError>(format!("{} done", args.label))
            }
        },
    )
    .allowed_agents(["parallel"]);
    let server =
        TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock)).tool(tool)).await;
    mock.push(Reply::tool_calls(vec![
        ("rendezvous", json!({"label": "a"})),
        ("rendezvous", json!({"label": "b"})),
    ]));
    mock.push(Reply::text("both done"));
    let (status, body) = server
        .post("/v1/agents/parallel/invoke", json!({"message": "go"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let results = tool_results(&mock.requests()[1].body);
    assert_eq!(results[0]["content"], "a done");
    assert_eq!(results[1]["content"], "b done");
    let schema = &mock.requests()[0].body["tools"][0]["function"]["parameters"];
    assert_eq!(
        schema["properties"]["label"]["description"],
        "Label of the call"
    );
}

#[tokio::test]
async fn long_tool_output_is_truncated_for_the_model() {
    let ws = TestWorkspace::new();
    ws.agent("reader", "tools: [big]", "Read.");
    ws.python_tool(
        "big",
        "  n:\n    type: integer",
        "def handle(arguments, context):\n    return 'x' * 50000\n",
    );
    ws.config(&format!(
        "model:\n  default: {MODEL}\nguardrails:\n  max_tool_output_chars: 1000\n"
    ));
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("big", json!({"n": 1})));
    mock.push(Reply::text("long"));
    server
        .post("/v1/agents/reader/invoke", json!({"message": "read"}))
        .await;
    let content = tool_results(&mock.requests()[1].body)[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.starts_with(&"x".repeat(1000)));
    assert!(
        content.ends_with("[truncated: result exceeded 1000 characters]"),
        "{}",
        &content[990..]
    );
}
