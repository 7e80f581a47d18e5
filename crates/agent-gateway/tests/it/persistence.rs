//! Executions, steps and conversations through the API, on whichever store the suite runs
//! (SQLite by default, PostgreSQL or memory by `AGW_TEST_PERSISTENCE`).

use agent_gateway::Gateway;
use mock_llm::{MockLlm, Reply};
use serde_json::json;

use crate::support::*;

fn persistent() -> bool {
    std::env::var("AGW_TEST_PERSISTENCE").as_deref() != Ok("memory")
}

#[tokio::test]
async fn a_conversation_continues_after_a_restart() {
    if !persistent() {
        return;
    }
    let ws = TestWorkspace::new();
    ws.agent("buddy", "description: chatty", "Chat.");
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("Nice to meet you, Ann."));
    mock.push(Reply::text("You are Ann."));

    let first = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let (status, body) = first
        .post("/v1/agents/buddy/chat", json!({"message": "I am Ann"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let session = body["session_id"].as_str().unwrap().to_string();
    first.gateway.shutdown().await;
    drop(first);

    let second = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let (status, body) = second
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "Who am I?", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["turn_count"], 2);
    assert_eq!(body["result"]["raw_text"], "You are Ann.");
    let sent = &mock.requests()[1].body["messages"];
    assert_eq!(sent[1]["content"], "I am Ann", "history restored: {sent}");
    assert_eq!(sent[2]["content"], "Nice to meet you, Ann.");
    assert_eq!(sent[3]["content"], "Who am I?");
}

#[tokio::test]
async fn an_expired_session_is_not_restored() {
    if !persistent() {
        return;
    }
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nsessions:\n  ttl_seconds: 1\n"
    ));
    ws.agent("buddy", "description: chatty", "Chat.");
    let mock = MockLlm::start().await.unwrap();
    let first = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let (_, body) = first
        .post("/v1/agents/buddy/chat", json!({"message": "hi"}))
        .await;
    let session = body["session_id"].as_str().unwrap().to_string();
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let (status, body) = second
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "again", "session_id": session}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "session_not_found");
}

#[tokio::test]
async fn executions_are_recorded_with_their_steps() {
    let ws = TestWorkspace::new();
    ws.agent("mathy", "tools: [add]", "Do math.");
    ws.python_tool(
        "add",
        "  a:\n    type: number\n  b:\n    type: number",
        "def handle(arguments, context):\n    return arguments['a'] + arguments['b']\n",
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("add", json!({"a": 1, "b": 2})).with_usage(10, 2));
    mock.push(Reply::text("3").with_usage(12, 1));
    let (_, invoked) = server
        .post(
            "/v1/agents/mathy/invoke",
            json!({"message": "1+2", "input": {}}),
        )
        .await;
    let id = invoked["execution_id"].as_str().unwrap();

    let (status, record) = server.get(&format!("/v1/executions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(record["status"], "completed");
    assert_eq!(record["agent_id"], "mathy");
    assert_eq!(record["message"], "1+2");
    assert_eq!(record["result"]["raw_text"], "3");
    assert_eq!(record["usage"]["input_tokens"], 22);
    assert!(record["started_at"].is_string() && record["completed_at"].is_string());

    let (status, steps) = server.get(&format!("/v1/executions/{id}/steps")).await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["llm_call", "tool_call", "tool_result", "llm_call"]
    );
    assert_eq!(steps[0]["data"]["input_tokens"], 10);
    assert_eq!(steps[0]["data"]["has_tool_calls"], true);
    assert_eq!(steps[1]["data"]["arguments"], json!({"a": 1, "b": 2}));
    assert_eq!(steps[2]["data"]["success"], true);
    assert_eq!(steps[2]["data"]["result"], "3");

    let (_, workflow) = server.get(&format!("/v1/executions/{id}/workflow")).await;
    assert_eq!(workflow.as_array().unwrap().len(), 1);
    assert_eq!(workflow[0]["execution_id"], id);

    mock.push(Reply::text("chatting"));
    let (_, chat) = server
        .post("/v1/agents/mathy/chat", json!({"message": "hi"}))
        .await;
    let session = chat["session_id"].as_str().unwrap();
    let (_, by_session) = server
        .get(&format!("/v1/executions?session_id={session}"))
        .await;
    assert_eq!(by_session.as_array().unwrap().len(), 1);
    // One stored shape for invocations and chat turns.
    assert_eq!(by_session[0]["result"]["raw_text"], "chatting");
    assert_eq!(by_session[0]["result"]["stop_reason"], "completed");
    assert_eq!(
        record["result"]
            .as_object()
            .map(|r| r.keys().collect::<Vec<_>>()),
        by_session[0]["result"]
            .as_object()
            .map(|r| r.keys().collect::<Vec<_>>())
    );
    let (_, all) = server.get("/v1/executions?agent_id=mathy").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["session_id"], session, "newest first");
    let (_, page) = server
        .get("/v1/executions?agent_id=mathy&limit=1&offset=1")
        .await;
    assert_eq!(page[0]["execution_id"], id);
    let (_, done) = server
        .get("/v1/executions?agent_id=mathy&status=completed")
        .await;
    assert_eq!(done.as_array().unwrap().len(), 2);
    let (status, body) = server.get("/v1/executions?status=exploded").await;
    assert_eq!((status, error_code(&body)), (422, "validation_error"));
    let (status, body) = server
        .get(&format!("/v1/executions/{}/steps", "nope"))
        .await;
    assert_eq!((status, error_code(&body)), (404, "execution_not_found"));
}

#[tokio::test]
async fn conversations_are_listed_with_their_messages() {
    let ws = TestWorkspace::new();
    ws.agent("buddy", "description: chatty", "Chat.")
        .agent("other", "description: x", "X.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("Hello!"));
    mock.push(Reply::text("Fine, thanks."));
    let (_, first) = server
        .post("/v1/agents/buddy/chat", json!({"message": "Hi there"}))
        .await;
    let session = first["session_id"].as_str().unwrap().to_string();
    server
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "How are you?", "session_id": session}),
        )
        .await;
    server
        .post("/v1/agents/other/chat", json!({"message": "Other agent"}))
        .await;

    let (status, list) = server
        .get("/v1/users/me/conversations?agent_id=buddy")
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["conversation_id"], session);
    assert_eq!(list[0]["message_count"], 4);
    assert_eq!(list[0]["title"], "Hi there");
    let (_, everything) = server.get("/v1/users/me/conversations").await;
    assert_eq!(everything.as_array().unwrap().len(), 2);

    let (status, messages) = server
        .get(&format!("/v1/users/me/conversations/{session}/messages"))
        .await;
    assert_eq!(status, 200);
    let text: Vec<(&str, &str)> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        text,
        vec![
            ("user", "Hi there"),
            ("assistant", "Hello!"),
            ("user", "How are you?"),
            ("assistant", "Fine, thanks.")
        ]
    );
    let (_, page) = server
        .get(&format!(
            "/v1/users/me/conversations/{session}/messages?limit=1&offset=2"
        ))
        .await;
    assert_eq!(page[0]["content"], "How are you?");
    let (status, body) = server
        .get("/v1/users/me/conversations/sess_nope/messages")
        .await;
    assert_eq!((status, error_code(&body)), (404, "conversation_not_found"));
    let (status, body) = server.get("/v1/users/me/conversations?limit=500").await;
    assert_eq!((status, error_code(&body)), (422, "validation_error"));
}
