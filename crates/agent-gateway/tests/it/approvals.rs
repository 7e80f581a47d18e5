//! `permissions.require_approval`: the run pauses in `waiting_approval` until a person
//! approves or denies the call, on this instance or another one sharing the database.

use std::time::Duration;

use mock_llm::Reply;
use serde_json::{Value, json};

use crate::support::*;

fn last_tool_result(request: &Value) -> String {
    request["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

fn workspace(extra_config: &str) -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.config(&format!("model:\n  default: {MODEL}\n{extra_config}"));
    ws.python_tool(
        "refund",
        "  amount:\n    type: number\n    required: true",
        "def handle(arguments, context):\n    return {'refunded': arguments['amount']}\n",
    );
    // The flag sits in TOOL.md's permissions block.
    let tool_md = ws.path().join("tools/refund/TOOL.md");
    let text = std::fs::read_to_string(&tool_md).unwrap();
    std::fs::write(
        &tool_md,
        text.replacen("---\n", "---\npermissions:\n  require_approval: true\n", 1),
    )
    .unwrap();
    ws.file(
        "skills/bulk_refund/SKILL.md",
        "---\ndescription: Refund twice\nsteps:\n  - name: one\n    tool: refund\n    input: {amount: $.input.amount}\n---\n",
    );
    ws.agent(
        "clerk",
        "tools: [refund]\nskills: [bulk_refund]",
        "Handle refunds.",
    );
    ws
}

/// Waits until the agent's execution waits for approval; returns its id.
async fn waiting_execution(server: &TestServer) -> String {
    for _ in 0..200 {
        let (_, list) = server
            .get("/v1/executions?agent_id=clerk&status=waiting_approval")
            .await;
        if let Some(id) = list[0]["execution_id"].as_str() {
            return id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no execution reached waiting_approval");
}

fn invoke_in_background(server: &TestServer) -> tokio::task::JoinHandle<(u16, Value)> {
    let client = server.client.clone();
    let url = format!("{}/v1/agents/clerk/invoke", server.url);
    tokio::spawn(async move {
        let response = client
            .post(url)
            .json(&json!({"message": "Refund 42"}))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    })
}

#[tokio::test]
async fn an_approved_call_runs_after_the_pause() {
    let ws = workspace("");
    let (mock, server) = start(&ws).await;
    let (_, tool) = server.get("/v1/tools/refund").await;
    assert_eq!(tool["require_approval"], true);
    let (_, workflow) = server.get("/v1/tools/bulk_refund").await;
    assert_eq!(
        workflow["require_approval"], true,
        "a workflow that calls the tool needs approval too: {workflow}"
    );
    mock.push(Reply::tool_call("refund", json!({"amount": 42})));
    mock.push(Reply::text("Refunded 42."));
    let invoke = invoke_in_background(&server);

    let id = waiting_execution(&server).await;
    let (status, approvals) = server.get(&format!("/v1/executions/{id}/approvals")).await;
    assert_eq!(status, 200);
    assert_eq!(approvals[0]["status"], "pending");
    assert_eq!(approvals[0]["tool_name"], "refund");
    assert_eq!(approvals[0]["arguments"], json!({"amount": 42}));
    assert_eq!(mock.requests().len(), 1, "nothing runs while it waits");

    let (status, body) = server
        .post(
            &format!("/v1/executions/{id}/approve"),
            json!({"reason": "customer is right"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decided"][0]["status"], "approved");

    let (status, result) = invoke.await.unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["result"]["raw_text"], "Refunded 42.");
    assert_eq!(
        last_tool_result(&mock.requests()[1].body),
        r#"{"refunded":42}"#,
        "the tool ran with its arguments"
    );
    let (_, steps) = server.get(&format!("/v1/executions/{id}/steps")).await;
    let approval = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_type"] == "approval")
        .unwrap();
    assert_eq!(approval["data"]["status"], "approved");
    assert_eq!(approval["data"]["reason"], "customer is right");
    let (_, record) = server.get(&format!("/v1/executions/{id}")).await;
    assert_eq!(record["status"], "completed");

    // Nothing waits any more.
    let (status, body) = server
        .post(&format!("/v1/executions/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "invalid_state");
}

#[tokio::test]
async fn a_denied_call_is_refused_and_the_model_is_told_why() {
    let ws = workspace("");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("refund", json!({"amount": 42})));
    mock.push(Reply::text("I could not refund it."));
    let invoke = invoke_in_background(&server);
    let id = waiting_execution(&server).await;

    // Bad decisions first: unknown approval, malformed body, unknown execution.
    let (status, body) = server
        .post(
            &format!("/v1/executions/{id}/deny"),
            json!({"approval_id": "nope"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "approval_not_found");
    let (status, body) = server
        .post(&format!("/v1/executions/{id}/deny"), json!({"reason": 5}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = server
        .post("/v1/executions/no-such-execution/approve", json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "execution_not_found");

    // No body at all is a plain decision.
    let response = server
        .client
        .post(format!("{}/v1/executions/{id}/deny", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (status, result) = invoke.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(result["status"], "completed");
    let told = last_tool_result(&mock.requests()[1].body);
    assert!(told.contains("denied by a reviewer"), "{told}");
    assert!(!told.contains("refunded"), "the tool did not run: {told}");
    let (_, approvals) = server.get(&format!("/v1/executions/{id}/approvals")).await;
    assert_eq!(approvals[0]["status"], "denied");
}

#[tokio::test]
async fn an_undecided_call_expires_and_a_waiting_run_can_be_cancelled() {
    let ws = workspace("guardrails:\n  approval_timeout_ms: 300\n");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("refund", json!({"amount": 1})));
    mock.push(Reply::text("Nobody approved."));
    let (status, result) = server
        .post("/v1/agents/clerk/invoke", json!({"message": "Refund 1"}))
        .await;
    assert_eq!(status, 200, "{result}");
    let told = last_tool_result(&mock.requests()[1].body);
    assert!(told.contains("not approved in time"), "{told}");
    let id = result["execution_id"].as_str().unwrap();
    let (_, approvals) = server.get(&format!("/v1/executions/{id}/approvals")).await;
    assert_eq!(approvals[0]["status"], "expired");

    // A cancel reaches a run that waits.
    let ws = workspace("");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("refund", json!({"amount": 2})));
    let invoke = invoke_in_background(&server);
    let id = waiting_execution(&server).await;
    let (status, _) = server
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, result) = invoke.await.unwrap();
    assert_eq!(result["status"], "cancelled", "{result}");
    let (_, approvals) = server.get(&format!("/v1/executions/{id}/approvals")).await;
    assert_eq!(approvals[0]["status"], "cancelled");
}

#[tokio::test]
async fn a_decision_on_another_instance_resumes_the_run() {
    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() == Ok("memory") {
        eprintln!("note: instances cannot share an in-memory store; skipped");
        return;
    }
    let ws = workspace("");
    let (mock, first) = start(&ws).await;
    // A second gateway on the same database.
    let second =
        TestServer::start(agent_gateway::Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    mock.push(Reply::tool_call("refund", json!({"amount": 7})));
    mock.push(Reply::text("Done."));
    let invoke = invoke_in_background(&first);
    let id = waiting_execution(&second).await;
    let (status, body) = second
        .post(&format!("/v1/executions/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, result) = tokio::time::timeout(Duration::from_secs(10), invoke)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(result["status"], "completed");
    assert_eq!(
        last_tool_result(&mock.requests()[1].body),
        r#"{"refunded":7}"#
    );
}
