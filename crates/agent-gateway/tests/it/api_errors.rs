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
    let warnings: Vec<String> = server
        .gateway
        .diagnostics()
        .warnings()
        .map(|d| d.to_string())
        .collect();
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
