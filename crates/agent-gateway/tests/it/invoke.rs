use mock_llm::Reply;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn invoke_returns_the_answer_and_usage() {
    let ws = TestWorkspace::new();
    ws.agent("assistant", "description: Helpful", "You are helpful.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("Hello there!").with_usage(12, 3));

    let (status, body) = server
        .post("/v1/agents/assistant/invoke", json!({"message": "Hi"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["agent_id"], "assistant");
    assert_eq!(body["result"]["raw_text"], "Hello there!");
    assert_eq!(body["result"]["output"], serde_json::Value::Null);
    assert_eq!(body["usage"]["input_tokens"], 12);
    assert_eq!(body["usage"]["output_tokens"], 3);
    assert_eq!(body["usage"]["llm_calls"], 1);
    assert_eq!(body["usage"]["models_used"], json!([MODEL]));
    assert!(
        body["execution_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36)
    );

    // The model saw the layered system prompt and the user message.
    let requests = mock.requests();
    let sent = &requests[0].body;
    assert_eq!(sent["model"], "gpt-test");
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("Current date and time (UTC): "),
        "{system}"
    );
    assert!(system.contains("You are helpful."));
    assert_eq!(messages[1], json!({"role": "user", "content": "Hi"}));

    // The execution is recorded.
    let id = body["execution_id"].as_str().unwrap();
    let (status, record) = server.get(&format!("/v1/executions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(record["status"], "completed");
    assert_eq!(record["message"], "Hi");
}

#[tokio::test]
async fn input_schema_validates_and_reaches_the_model() {
    let ws = TestWorkspace::new();
    ws.agent(
        "typed",
        "input_schema:\n  type: object\n  required: [city]\n  properties:\n    city: {type: string}\n    days: {type: integer, minimum: 1}",
        "Plan trips.",
    );
    let (mock, server) = start(&ws).await;

    let (status, body) = server
        .post(
            "/v1/agents/typed/invoke",
            json!({"message": "plan", "input": {"days": 0}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "input_validation_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Input validation failed: ")
    );
    assert!(
        body["error"]["details"]
            .as_array()
            .is_some_and(|d| d.len() == 2),
        "{body}"
    );
    assert!(
        mock.requests().is_empty(),
        "no model call for invalid input"
    );

    mock.push(Reply::text("Paris it is"));
    let (status, _) = server
        .post(
            "/v1/agents/typed/invoke",
            json!({"message": "plan", "input": {"city": "Paris", "days": 2}}),
        )
        .await;
    assert_eq!(status, 200);
    let user = mock.requests()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(user.starts_with("plan\n\n## Input\n```json\n"), "{user}");
    assert!(user.contains("\"city\": \"Paris\""));
}

#[tokio::test]
async fn structured_output_is_validated_with_one_corrective_retry() {
    let ws = TestWorkspace::new();
    ws.agent("calc", "description: math", "Compute.");
    let (mock, server) = start(&ws).await;
    let schema = json!({"type": "object", "required": ["value"], "properties": {"value": {"type": "number"}}});

    // First answer is not JSON; the retry fixes it.
    mock.push(Reply::text("It is four."));
    mock.push(Reply::text("```json\n{\"value\": 4}\n```"));
    let (status, body) = server
        .post(
            "/v1/agents/calc/invoke",
            json!({"message": "2+2?", "options": {"output_schema": schema}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["result"]["output"], json!({"value": 4}));
    assert_eq!(body["usage"]["llm_calls"], 2);
    let requests = mock.requests();
    let system = requests[0].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("## Required Output Format"), "{system}");
    let retry = requests[1].body["messages"].as_array().unwrap();
    let correction = retry.last().unwrap()["content"].as_str().unwrap();
    assert!(
        correction.starts_with("Your response did not match the required JSON schema."),
        "{correction}"
    );

    // Both answers wrong: output is null and the errors are reported.
    mock.push(Reply::text("{\"value\": \"four\"}"));
    mock.push(Reply::text("still not a number"));
    let (status, body) = server
        .post(
            "/v1/agents/calc/invoke",
            json!({"message": "2+2?", "options": {"output_schema": schema}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["output"], serde_json::Value::Null);
    assert!(
        body["result"]["validation_errors"][0]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON"),
        "{body}"
    );
}

#[tokio::test]
async fn fallback_model_answers_when_the_primary_fails() {
    let ws = TestWorkspace::new();
    ws.agent(
        "resilient",
        "model:\n  name: openai/primary\n  fallback: openai/backup",
        "Answer.",
    );
    ws.config(&format!("model:\n  default: {MODEL}\nproviders:\n  openai:\n    max_retries: 1\n    retry_base_delay_ms: 1\n"),
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::error(500, None).for_model("primary").times(10));
    mock.push(Reply::text("from backup").for_model("backup"));

    let (status, body) = server
        .post("/v1/agents/resilient/invoke", json!({"message": "hi"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["result"]["raw_text"], "from backup");
    assert_eq!(body["usage"]["models_used"], json!(["openai/backup"]));
    let models: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        models,
        vec!["primary", "primary", "backup"],
        "one retry of the primary, then the fallback"
    );
}

#[tokio::test]
async fn guardrails_stop_runaway_runs_with_a_reason() {
    let ws = TestWorkspace::new();
    ws.agent("looper", "skills: [loop-skill]", "Loop.");
    ws.skill("loop-skill", "tools: [echo]");
    ws.python_tool(
        "echo",
        "  text:\n    type: string",
        "def handle(arguments, context):\n    return arguments\n",
    );
    ws.config(&format!(
        "model:\n  default: {MODEL}\nguardrails:\n  max_iterations: 3\n  max_tool_calls: 100\n"
    ));
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_call("echo", json!({"text": "again"})).times(10));
    let (status, body) = server
        .post("/v1/agents/looper/invoke", json!({"message": "go"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "failed");
    assert_eq!(body["stop_reason"], "max_iterations");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max_iterations (3)"),
        "{body}"
    );
    assert_eq!(body["usage"]["llm_calls"], 3);
    assert_eq!(body["usage"]["tool_calls"], 3, "{body}");
}

#[tokio::test]
async fn tool_call_budget_and_timeout_stop_runs() {
    let ws = TestWorkspace::new();
    ws.agent("busy", "skills: [s]", "Work.");
    ws.skill("s", "tools: [echo]");
    ws.python_tool(
        "echo",
        "  text:\n    type: string",
        "def handle(arguments, context):\n    return 'ok'\n",
    );
    ws.config(&format!(
        "model:\n  default: {MODEL}\nguardrails:\n  max_tool_calls: 2\n"
    ));
    let (mock, server) = start(&ws).await;
    mock.push(Reply::tool_calls(vec![
        ("echo", json!({"text": "1"})),
        ("echo", json!({"text": "2"})),
        ("echo", json!({"text": "3"})),
    ]));
    let (_, body) = server
        .post("/v1/agents/busy/invoke", json!({"message": "go"}))
        .await;
    assert_eq!(body["stop_reason"], "max_tool_calls", "{body}");
    assert_eq!(body["status"], "failed");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max_tool_calls (2)")
    );

    mock.push(Reply::text("too late").with_delay(3000));
    let (status, body) = server
        .post(
            "/v1/agents/busy/invoke",
            json!({"message": "go", "options": {"timeout_ms": 1000}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "timeout", "{body}");
    assert_eq!(body["stop_reason"], "timeout");
    assert_eq!(body["error"], "Execution timed out");
}

#[tokio::test]
async fn async_invoke_answers_202_and_can_be_polled() {
    let ws = TestWorkspace::new();
    ws.agent("bg", "description: background", "Work.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("done later").with_delay(200));
    let (status, body) = server
        .post(
            "/v1/agents/bg/invoke",
            json!({"message": "go", "options": {"async": true}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["execution_id"].as_str().unwrap().to_string();
    assert_eq!(body["poll_url"], format!("/v1/executions/{id}"));
    let mut record = json!(null);
    for _ in 0..100 {
        let (_, r) = server.get(&format!("/v1/executions/{id}")).await;
        record = r;
        if record["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["result"]["raw_text"], "done later");
}

#[tokio::test]
async fn a_running_execution_can_be_cancelled() {
    let ws = TestWorkspace::new();
    ws.agent("slow", "description: slow", "Work.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("never seen").with_delay(5000));
    let (_, body) = server
        .post(
            "/v1/agents/slow/invoke",
            json!({"message": "go", "options": {"async": true}}),
        )
        .await;
    let id = body["execution_id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, body) = server
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, body) = server
        .post(&format!("/v1/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&body), "invalid_state");
    let (_, record) = server.get(&format!("/v1/executions/{id}")).await;
    assert_eq!(record["status"], "cancelled");
}

#[tokio::test]
async fn a_streamed_invoke_answers_events_ending_with_the_result() {
    let ws = TestWorkspace::new();
    ws.agent("assistant", "description: ok", "Help.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("Hello there"));
    let response = server
        .client
        .post(format!("{}/v1/agents/assistant/invoke", server.url))
        .json(&json!({"message": "hi", "options": {"stream": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"execution"), "{names:?}");
    assert!(names.contains(&"token"), "{names:?}");
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["raw_text"], "Hello there");
    let execution = events[0].1["execution_id"].as_str().unwrap();
    assert_eq!(done["execution_id"], execution);
    let (_, record) = server.get(&format!("/v1/executions/{execution}")).await;
    assert_eq!(record["status"], "completed");
    assert_eq!(record["result"]["raw_text"], "Hello there");
}
