use mock_llm::Reply;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn chat_keeps_the_conversation_across_turns() {
    let ws = TestWorkspace::new();
    ws.agent("buddy", "description: chatty", "Chat.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("Nice to meet you, Ann."));
    mock.push(Reply::text("Your name is Ann."));

    let (status, first) = server
        .post("/v1/agents/buddy/chat", json!({"message": "I am Ann"}))
        .await;
    assert_eq!(status, 200, "{first}");
    let session = first["session_id"].as_str().unwrap().to_string();
    assert!(session.starts_with("sess_"));
    assert_eq!(first["turn_count"], 1);
    assert_eq!(first["result"]["raw_text"], "Nice to meet you, Ann.");
    assert_eq!(first["result"]["output"], serde_json::Value::Null);

    let (status, second) = server
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "What is my name?", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["session_id"], session);
    assert_eq!(second["turn_count"], 2);

    let sent = &mock.requests()[1].body["messages"];
    let roles: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
    assert_eq!(sent[1]["content"], "I am Ann");
    assert_eq!(sent[2]["content"], "Nice to meet you, Ann.");

    let (status, info) = server.get(&format!("/v1/sessions/{session}")).await;
    assert_eq!(status, 200);
    assert_eq!(info["turn_count"], 2);
    assert_eq!(info["message_count"], 4);
    let (_, list) = server.get("/v1/sessions?agent_id=buddy").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, deleted) = server.delete(&format!("/v1/sessions/{session}")).await;
    assert_eq!((status, deleted), (200, json!({"deleted": true})));
    let (status, body) = server
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "again", "session_id": session}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "session_not_found");
}

#[tokio::test]
async fn a_session_belongs_to_its_agent() {
    let ws = TestWorkspace::new();
    ws.agent("one", "description: a", "A.")
        .agent("two", "description: b", "B.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("hi"));
    let (_, first) = server
        .post("/v1/agents/one/chat", json!({"message": "hi"}))
        .await;
    let session = first["session_id"].as_str().unwrap();
    let (status, body) = server
        .post(
            "/v1/agents/two/chat",
            json!({"message": "hi", "session_id": session}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&body), "session_agent_mismatch");
}

#[tokio::test]
async fn streaming_emits_events_in_order() {
    let ws = TestWorkspace::new();
    ws.agent("streamer", "skills: [s]", "Stream.");
    ws.skill("s", "tools: [shout]");
    ws.python_tool(
        "shout",
        "  text:\n    type: string\n    required: true",
        "def handle(arguments, context):\n    return arguments['text'].upper()\n",
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("shout", json!({"text": "hey"})));
    mock.push(Reply::text("The tool said HEY loudly."));

    let response = server
        .client
        .post(format!("{}/v1/agents/streamer/chat", server.url))
        .json(&json!({"message": "shout hey", "options": {"stream": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, "text/event-stream; charset=utf-8");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let first_token = names.iter().position(|n| *n == "token").unwrap();
    assert_eq!(names[0], "session");
    assert_eq!(names[1], "tool_call");
    assert_eq!(names[2], "tool_result");
    assert!(first_token > 2);
    assert!(
        names[first_token..names.len() - 1]
            .iter()
            .all(|n| *n == "token"),
        "{names:?}"
    );
    assert_eq!(*names.last().unwrap(), "done");

    let (_, session) = &events[0];
    assert!(session["session_id"].as_str().unwrap().starts_with("sess_"));
    assert!(session["execution_id"].is_string());
    let (_, call) = &events[1];
    assert_eq!(call["name"], "shout");
    assert_eq!(call["arguments"], json!({"text": "hey"}));
    let (_, result) = &events[2];
    assert_eq!(result["output"], "HEY");
    assert_eq!(result["call_id"], call["call_id"]);
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "token")
        .map(|(_, d)| d["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "The tool said HEY loudly.");
    let (_, done) = events.last().unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["turn_count"], 1);
    assert_eq!(done["usage"]["llm_calls"], 2);
}

#[tokio::test]
async fn streaming_reports_model_failure_then_done() {
    let ws = TestWorkspace::new();
    ws.agent("fragile", "description: x", "X.");
    ws.config(&format!(
        "model:\n  default: {MODEL}\nproviders:\n  openai:\n    max_retries: 0\n"
    ));
    let (mock, server) = start(&ws).await;
    mock.push(Reply::error(500, None));
    let response = server
        .client
        .post(format!("{}/v1/agents/fragile/chat", server.url))
        .json(&json!({"message": "hi", "options": {"stream": true}}))
        .send()
        .await
        .unwrap();
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, vec!["session", "error", "done"]);
    assert!(
        events[1].1["message"]
            .as_str()
            .unwrap()
            .starts_with("LLM call failed")
    );
    assert_eq!(events[2].1["status"], "error");
}
