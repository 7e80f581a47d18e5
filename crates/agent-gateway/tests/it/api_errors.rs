//! Every 4xx/5xx path of the core endpoints answers with the error envelope.

use agent_gateway::Gateway;
use mock_llm::{MockLlm, Reply};
use serde_json::json;

use crate::support::*;

async fn server() -> (TestWorkspace, MockLlm, TestServer) {
    let ws = TestWorkspace::new();
    ws.agent("assistant", "description: ok", "Help.");
    ws.agent("off", "enabled: false", "Disabled.");
    ws.agent(
        "typed",
        "input_schema:\n  type: object\n  required: [n]\n  properties:\n    n: {type: integer}",
        "Typed.",
    );
    let mock = MockLlm::start().await.unwrap();
    let server = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    (ws, mock, server)
}

#[tokio::test]
async fn invoke_and_chat_error_paths() {
    let (_ws, mock, server) = server().await;
    let cases: Vec<(&str, serde_json::Value, u16, &str)> = vec![
        (
            "/v1/agents/ghost/invoke",
            json!({"message": "x"}),
            404,
            "agent_not_found",
        ),
        (
            "/v1/agents/off/invoke",
            json!({"message": "x"}),
            503,
            "agent_disabled",
        ),
        (
            "/v1/agents/off/chat",
            json!({"message": "x"}),
            503,
            "agent_disabled",
        ),
        (
            "/v1/agents/typed/invoke",
            json!({"message": "x", "input": {"n": "one"}}),
            422,
            "input_validation_failed",
        ),
        (
            "/v1/agents/assistant/invoke",
            json!({"msg": "x"}),
            422,
            "validation_error",
        ),
        (
            "/v1/agents/assistant/invoke",
            json!({"message": 5}),
            422,
            "validation_error",
        ),
        (
            "/v1/agents/assistant/invoke",
            json!({"message": "x".repeat(102_401)}),
            422,
            "validation_error",
        ),
        (
            "/v1/agents/assistant/invoke",
            json!({"message": "x", "options": {"timeout_ms": 5}}),
            422,
            "validation_error",
        ),
        (
            "/v1/agents/assistant/invoke",
            json!({"message": "x", "options": {"async": true, "stream": true}}),
            400,
            "streaming_not_supported",
        ),
        (
            "/v1/agents/assistant/invoke",
            json!({"message": "x", "options": {"output_schema": {"type": "nonsense"}}}),
            422,
            "input_validation_failed",
        ),
        (
            "/v1/agents/bad.id/invoke",
            json!({"message": "x"}),
            422,
            "validation_error",
        ),
        (
            "/v1/agents/assistant/chat",
            json!({"message": "x", "session_id": "sess_missing"}),
            404,
            "session_not_found",
        ),
        (
            "/v1/agents/assistant/chat",
            json!({"message": "x", "session_id": "bad id!"}),
            422,
            "validation_error",
        ),
        ("/v1/reload", json!({}), 403, "reload_disabled"),
        (
            "/v1/executions/nope/cancel",
            json!({}),
            404,
            "execution_not_found",
        ),
    ];
    for (path, body, want_status, want_code) in cases {
        let (status, answer) = server.post(path, body.clone()).await;
        assert_eq!(status, want_status, "{path} {body}: {answer}");
        assert_eq!(error_code(&answer), want_code, "{path}: {answer}");
    }
    assert!(
        mock.requests().is_empty(),
        "no error path may reach the model"
    );

    // A body that is not JSON at all.
    let response = server
        .client
        .post(format!("{}/v1/agents/assistant/invoke", server.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "validation_error");
    let response = server
        .client
        .post(format!("{}/v1/agents/assistant/invoke", server.url))
        .body("message=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn read_error_paths() {
    let (_ws, _mock, server) = server().await;
    let cases = [
        ("/v1/agents/ghost", 404, "agent_not_found"),
        ("/v1/skills/ghost", 404, "skill_not_found"),
        ("/v1/tools/ghost", 404, "tool_not_found"),
        ("/v1/sessions/sess_ghost", 404, "session_not_found"),
        ("/v1/executions/ghost", 404, "execution_not_found"),
        (
            "/v1/agents/assistant/setup-schema",
            400,
            "not_personal_agent",
        ),
        ("/v1/sessions?limit=0", 422, "validation_error"),
        ("/v1/sessions?limit=abc", 422, "validation_error"),
        ("/v1/executions?limit=501", 422, "validation_error"),
        ("/v1/nothing-here", 404, "not_found"),
    ];
    for (path, want_status, want_code) in cases {
        let (status, body) = server.get(path).await;
        assert_eq!(status, want_status, "{path}: {body}");
        assert_eq!(error_code(&body), want_code, "{path}: {body}");
    }
    let (status, body) = server.delete("/v1/sessions/sess_ghost").await;
    assert_eq!((status, error_code(&body)), (404, "session_not_found"));
    let (status, body) = server.delete("/v1/agents/assistant").await;
    assert_eq!((status, error_code(&body)), (405, "method_not_allowed"));
}

#[tokio::test]
async fn a_missing_provider_key_is_a_503_naming_the_variable() {
    let ws = TestWorkspace::new();
    ws.agent("keyless", "model: anthropic/claude-test", "Hi.");
    let server = TestServer::start(Gateway::builder(ws.path()).env(Default::default())).await;
    let (status, body) = server
        .post("/v1/agents/keyless/invoke", json!({"message": "x"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "model_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ANTHROPIC_API_KEY"),
        "{body}"
    );
    assert!(body["error"]["execution_id"].is_string());
    let (status, body) = server
        .post("/v1/agents/keyless/chat", json!({"message": "x"}))
        .await;
    assert_eq!((status, error_code(&body)), (503, "model_unavailable"));
    // `check`-time warning too.
    let warnings = server.warnings();
    assert!(
        warnings.iter().any(|w| w.contains("ANTHROPIC_API_KEY")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn model_failures_are_failed_executions_not_http_errors() {
    let ws = TestWorkspace::new();
    ws.agent("a", "description: a", "A.");
    ws.config(&format!(
        "model:\n  default: {MODEL}\nproviders:\n  openai:\n    max_retries: 0\n"
    ));
    let (mock, server) = start(&ws).await;
    mock.push(Reply::malformed("{\"choices\": oops"));
    let (status, body) = server
        .post("/v1/agents/a/invoke", json!({"message": "x"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("LLM call failed"),
        "{body}"
    );
}

#[tokio::test]
async fn every_response_has_security_and_timing_headers() {
    let (_ws, _mock, server) = server().await;
    for path in ["/v1/health", "/v1/agents/ghost", "/docs/"] {
        let response = server
            .client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(headers.contains_key("strict-transport-security"));
        let csp = headers["content-security-policy"].to_str().unwrap();
        if path.starts_with("/v1") {
            assert!(headers.contains_key("x-request-duration-ms"), "{path}");
            assert_eq!(csp, "default-src 'self'");
        } else {
            // The docs' own policy: their bundled UI needs inline scripts and a worker.
            assert!(csp.contains("worker-src 'self' blob:"), "{csp}");
            assert!(!headers.contains_key("x-request-duration-ms"), "{path}");
        }
    }
}

/// Sends `body` as JSON text (whatever it is) and returns the status and the answer.
async fn post_raw(
    server: &TestServer,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    let response = server
        .client
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn bodies_over_the_configured_limit_get_413() {
    let ws = TestWorkspace::new();
    ws.agent("assistant", "description: ok", "Help.");
    ws.config(&format!(
        "model:\n  default: {MODEL}\nserver:\n  max_body_bytes: 4096\n"
    ));
    let (mock, server) = start(&ws).await;
    let big = json!({"message": "x".repeat(8000)}).to_string();
    // With its length declared, and streamed without one (chunked): the same answer.
    let (status, body) = post_raw(&server, "/v1/agents/assistant/invoke", big.clone()).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "body_too_large"),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("4096"),
        "{body}"
    );
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, body) = post_raw(&server, "/v1/agents/assistant/invoke", streamed).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "body_too_large"),
        "{body}"
    );
    // Every JSON route: a memory, a schedule.
    let (status, body) = post_raw(&server, "/v1/schedules", big).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "body_too_large"),
        "{body}"
    );
    // Under the limit, the same route answers.
    let (status, body) = server
        .post("/v1/agents/assistant/invoke", json!({"message": "hi"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.requests().len(), 1);
    // The document says what the server does.
    let (_, spec) = server.get("/openapi.json").await;
    let invoke = &spec["paths"]["/v1/agents/{agent_id}/invoke"]["post"];
    assert_eq!(invoke["requestBody"]["x-max-body-bytes"], 4096);
    assert!(
        invoke["responses"]["413"]["description"]
            .as_str()
            .unwrap()
            .contains("4096")
    );
}

#[tokio::test]
async fn a_50_mb_body_gets_413_under_the_default_limit() {
    let (_ws, mock, server) = server().await;
    // Declared past the default limit (2 MiB): refused before it is read.
    let body = format!("{{\"message\": \"{}\"}}", "x".repeat(50 * 1024 * 1024));
    let (status, answer) = post_raw(&server, "/v1/agents/assistant/invoke", body).await;
    assert_eq!((status, error_code(&answer)), (413, "body_too_large"));
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&(2 * 1024 * 1024).to_string()),
        "{answer}"
    );
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn hostile_bodies_get_a_4xx_envelope_never_a_5xx() {
    let (_ws, mock, server) = server().await;
    let invoke = "/v1/agents/assistant/invoke";
    // Nesting past serde_json's 128 levels, in a field and as the whole body.
    let deep = format!(
        "{{\"message\": \"x\", \"input\": {{\"a\": {}1{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body) = post_raw(&server, invoke, deep).await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_error"),
        "{body}"
    );
    let (status, body) = post_raw(&server, invoke, "[".repeat(1_000_000)).await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_error"),
        "{body}"
    );
    // Nested as deep as JSON here may be, it runs.
    let nested = format!(
        "{{\"message\": \"x\", \"input\": {{\"a\": {}1{}}}}}",
        "[".repeat(120),
        "]".repeat(120)
    );
    let (status, body) = post_raw(&server, invoke, nested).await;
    assert_eq!(status, 200, "{body}");
    // Invalid UTF-8 in a body, a path and a query string.
    let (status, body) = post_raw(&server, invoke, b"{\"message\": \"\xff\xfe\"}".to_vec()).await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_error"),
        "{body}"
    );
    let (status, body) = server.get("/v1/sessions/%FF%FE").await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_error"),
        "{body}"
    );
    let (status, body) = server.get("/v1/executions?agent_id=%FF").await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_error"),
        "{body}"
    );
    assert_eq!(body["error"]["details"][0]["loc"], json!(["query"]));
    // NUL in ids, names and text: no store keeps it (PostgreSQL refuses it), so none gets in.
    let nul_cases: Vec<(&str, serde_json::Value, serde_json::Value)> = vec![
        (
            invoke,
            json!({"message": "a\u{0}b"}),
            json!(["body", "message"]),
        ),
        (
            "/v1/agents/assistant/chat",
            json!({"message": "hi", "session_id": "s\u{0}1"}),
            json!(["body", "session_id"]),
        ),
        (
            "/v1/schedules",
            json!({"agent_id": "assistant", "name": "n\u{0}", "cron_expr": "0 * * * *", "message": "m"}),
            json!(["body", "name"]),
        ),
        (
            invoke,
            json!({"message": "x", "input": {"k\u{0}": 1}}),
            json!(["body", "input", "k\u{0}"]),
        ),
    ];
    for (path, body, loc) in nul_cases {
        let (status, answer) = server.post(path, body.clone()).await;
        assert_eq!(
            (status, error_code(&answer)),
            (422, "validation_error"),
            "{body}: {answer}"
        );
        assert_eq!(answer["error"]["details"][0]["loc"], loc, "{answer}");
        assert_eq!(answer["error"]["details"][0]["type"], "string_nul");
    }
    for path in [
        "/v1/agents/assi%00stant",
        "/v1/executions/e%00",
        "/v1/executions?agent_id=a%00b",
        "/v1/users/me/conversations?agent_id=%00",
    ] {
        let (status, answer) = server.get(path).await;
        assert_eq!(
            (status, error_code(&answer)),
            (422, "validation_error"),
            "{path}: {answer}"
        );
    }
    // An escaped backslash before `u0000` is text, not a NUL.
    let (status, body) = post_raw(&server, invoke, r#"{"message": "C:\\u0000"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        mock.requests().len(),
        2,
        "only the two valid runs reached the model"
    );
}

#[tokio::test]
async fn path_and_query_rules_answer_as_documented() {
    let (_ws, _mock, server) = server().await;
    let (_, spec) = server.get("/openapi.json").await;
    let parameter = |path: &str, name: &str| -> serde_json::Value {
        let operation = &spec["paths"][path]["get"];
        operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no {name}"))
            .clone()
    };
    let agent_id = parameter("/v1/agents/{agent_id}", "agent_id");
    assert_eq!(agent_id["schema"]["pattern"], "^[a-zA-Z0-9_-]{1,128}$");
    assert_eq!(agent_id["schema"]["maxLength"], 128);
    let session_id = parameter("/v1/sessions/{session_id}", "session_id");
    assert_eq!(session_id["schema"]["pattern"], "^[a-zA-Z0-9_.-]{1,128}$");
    let limit = parameter("/v1/executions", "limit");
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["required"], false);
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(500))
    );
    let offset = parameter("/v1/executions", "offset");
    assert_eq!(offset["schema"]["maximum"], 1_000_000);
    let sessions_limit = parameter("/v1/sessions", "limit");
    assert_eq!(sessions_limit["schema"]["maximum"], 200);
    // What the document declares is what the server enforces, at the bound and past it.
    let long = "a".repeat(128);
    for (path, want) in [
        ("/v1/agents/bad.id".to_string(), 422),
        (format!("/v1/agents/{long}"), 404),
        (format!("/v1/agents/{long}a"), 422),
        ("/v1/sessions/a%20b".to_string(), 422),
        ("/v1/sessions/a.b".to_string(), 404),
        ("/v1/executions?limit=500".to_string(), 200),
        ("/v1/executions?limit=501".to_string(), 422),
        ("/v1/executions?offset=1000000".to_string(), 200),
        ("/v1/executions?offset=1000001".to_string(), 422),
        ("/v1/executions?offset=-1".to_string(), 422),
        ("/v1/executions?status=finished".to_string(), 422),
        ("/v1/executions?status=waiting_approval".to_string(), 200),
        ("/v1/sessions?limit=201".to_string(), 422),
        ("/v1/users/me/conversations?limit=201".to_string(), 422),
        ("/v1/notifications?offset=1000001".to_string(), 422),
        ("/v1/agents/assistant/memories?limit=201".to_string(), 422),
    ] {
        let (status, body) = server.get(&path).await;
        assert_eq!(status, want, "{path}: {body}");
        if status == 422 {
            let loc = &body["error"]["details"][0]["loc"];
            let root = if path.contains('?') { "query" } else { "path" };
            assert_eq!(loc[0], root, "{path}: {body}");
            // Each documented status carries the error envelope in the document too.
            assert!(error_code(&body) == "validation_error");
        }
    }
    // A whole number written as a float is an integer to JSON Schema, so to the server too.
    let (status, body) = server
        .post(
            "/v1/agents/assistant/invoke",
            json!({"message": "x", "options": {"timeout_ms": 1500.0}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .post(
            "/v1/agents/assistant/invoke",
            json!({"message": "x", "options": {"timeout_ms": 1500.5}}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_error"));
    // `null` is a documented body for a decision (every pending call): not a 422.
    let (status, body) = server
        .post("/v1/executions/nope/approve", serde_json::Value::Null)
        .await;
    assert_eq!((status, error_code(&body)), (404, "execution_not_found"));
}
