//! Agents delegating to agents: the tree of executions and the refusals.

use mock_llm::Reply;
use serde_json::json;

use crate::support::*;

fn tool_result(request: &serde_json::Value) -> String {
    request["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_three_level_delegation_tree() {
    let ws = TestWorkspace::new();
    ws.agent(
        "boss",
        "description: Runs the show\ndelegates_to: [researcher]",
        "Delegate research.",
    );
    ws.agent(
        "researcher",
        "description: Finds facts\ndelegates_to: [writer]",
        "Research, then have it written.",
    );
    ws.agent("writer", "description: Writes", "Write.");
    let (mock, server) = start(&ws).await;
    // Calls happen one after the other: boss → researcher → writer, then back up.
    mock.push(Reply::tool_call(
        "delegate_to_agent",
        json!({"agent_id": "researcher", "message": "Find facts about Rust"}),
    ));
    mock.push(Reply::tool_call(
        "delegate_to_agent",
        json!({"agent_id": "writer", "message": "Write up: Rust is fast"}),
    ));
    mock.push(Reply::text("Rust is fast and safe."));
    mock.push(Reply::text("Research done: Rust is fast and safe."));
    mock.push(Reply::text("Final report: Rust is fast and safe."));

    let (status, body) = server
        .post(
            "/v1/agents/boss/invoke",
            json!({"message": "Report on Rust"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["raw_text"],
        "Final report: Rust is fast and safe."
    );
    let requests = mock.requests();
    assert_eq!(
        tool_result(&requests[3].body),
        "Rust is fast and safe.",
        "the writer's answer reaches the researcher"
    );
    assert_eq!(
        tool_result(&requests[4].body),
        "Research done: Rust is fast and safe."
    );

    let root = body["execution_id"].as_str().unwrap();
    let (status, tree) = server.get(&format!("/v1/executions/{root}/workflow")).await;
    assert_eq!(status, 200);
    let tree = tree.as_array().unwrap();
    let shape: Vec<(&str, i64)> = tree
        .iter()
        .map(|e| {
            (
                e["agent_id"].as_str().unwrap(),
                e["delegation_depth"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shape, vec![("boss", 0), ("researcher", 1), ("writer", 2)]);
    assert_eq!(tree[1]["parent_execution_id"], root);
    assert_eq!(tree[2]["parent_execution_id"], tree[1]["execution_id"]);
    assert_eq!(tree[2]["root_execution_id"], root);
    assert!(tree.iter().all(|e| e["status"] == "completed"));
    // The same tree from a leaf.
    let leaf = tree[2]["execution_id"].as_str().unwrap();
    let (_, from_leaf) = server.get(&format!("/v1/executions/{leaf}/workflow")).await;
    assert_eq!(from_leaf.as_array().unwrap().len(), 3);
    let (_, children) = server
        .get(&format!("/v1/executions?root_execution_id={root}"))
        .await;
    assert_eq!(children.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn delegation_refusals() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nguardrails:\n  max_delegation_depth: 1\n"
    ));
    ws.agent("boss", "delegates_to: [helper]", "Boss.");
    ws.agent("helper", "description: helps", "Help.");
    ws.agent("outsider", "description: not allowed", "Outside.");
    ws.agent("off", "enabled: false", "Off.");
    let (mock, server) = start(&ws).await;
    for (target, expected) in [
        ("boss", "Error: an agent cannot delegate to itself"),
        ("ghost", "Error: unknown agent 'ghost'"),
        ("off", "Error: agent 'off' is disabled"),
        ("outsider", "Error: 'boss' may only delegate to helper"),
    ] {
        mock.push(Reply::tool_call(
            "delegate_to_agent",
            json!({"agent_id": target, "message": "x"}),
        ));
        mock.push(Reply::text("ok"));
        server
            .post("/v1/agents/boss/invoke", json!({"message": "go"}))
            .await;
        let requests = mock.requests();
        let answer = tool_result(&requests[requests.len() - 1].body);
        assert!(answer.starts_with(expected), "{target}: {answer}");
    }
    // Depth: boss (0) → helper (1) may not delegate further.
    mock.push(Reply::tool_call(
        "delegate_to_agent",
        json!({"agent_id": "helper", "message": "go deeper"}),
    ));
    mock.push(Reply::tool_call(
        "delegate_to_agent",
        json!({"agent_id": "outsider", "message": "deeper still"}),
    ));
    mock.push(Reply::text("helper stops"));
    mock.push(Reply::text("boss stops"));
    server
        .post("/v1/agents/boss/invoke", json!({"message": "go"}))
        .await;
    let requests = mock.requests();
    let refused = tool_result(&requests[requests.len() - 2].body);
    assert!(refused.contains("delegation depth limit (1)"), "{refused}");
}
