//! Secrets never leave: a server holding a provider key, API keys, the sealing key, a webhook
//! secret, a database password, a collector token and MCP credentials, driven through
//! successes and failures (bad keys, a failing model, unreachable MCP server and collector,
//! admin reads), logs at debug level; neither its log nor any response holds a secret.

use std::process::Stdio;
use std::time::Duration;

use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

use super::{free_port, serve_command, wait_healthy, write};

const SECRETS: [&str; 8] = [
    "sk-live-SECRET-provider",
    "agw-SECRET-apikey",
    "SECRET-sealing-key",
    "whsec-SECRET-hook",
    "pg-SECRET-pass",
    "otel-SECRET-token",
    "mcp-SECRET-header",
    "mcp-SECRET-api-key",
];

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_log_or_a_response() {
    let Some(pg) = test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    // Trust authentication: the password is carried and ignored, so it can be a marker.
    let pg = pg.replacen("postgres@", "postgres:pg-SECRET-pass@", 1);
    let mock = MockLlm::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let schema = format!("gw_secrets_{}", std::process::id());
    write(
        &ws,
        "gateway.yaml",
        &format!(
            "model:\n  default: openai/gpt-test\nauth:\n  api_keys:\n    - {{name: ops, key: agw-SECRET-apikey}}\npersistence:\n  backend: postgres\n  url: \"{pg}\"\n  db_schema: {schema}\nnotifications:\n  webhook_secret: whsec-SECRET-hook\n  allowed_private_hosts: [\"127.0.0.1\"]\ntelemetry:\n  exporter: otlp\n  protocol: http\n  endpoint: http://127.0.0.1:1\n  headers: {{authorization: \"Bearer otel-SECRET-token\"}}\nmcp:\n  servers:\n    - name: gone\n      transport: streamable_http\n      url: http://127.0.0.1:1/mcp\n      headers: {{x-api-key: mcp-SECRET-header}}\n"
        ),
    );
    write(
        &ws,
        "agents/greeter/AGENT.md",
        "---\nnotifications:\n  on_complete:\n    - {channel: webhook, url: \"http://127.0.0.1:1/hook\"}\n---\nGreet.\n",
    );
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve_command(&ws, port)
        .env("OPENAI_API_KEY", "sk-live-SECRET-provider")
        .env("OPENAI_API_BASE", mock.openai_base())
        .env("AGENT_GATEWAY_SECRET_KEY", "SECRET-sealing-key")
        .env("RUST_LOG", "debug")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    wait_healthy(&base).await;

    let client = reqwest::Client::new();
    let mut bodies = Vec::new();
    let mut send =
        async |method: reqwest::Method, path: &str, key: Option<&str>, body: Option<Value>| {
            let mut request = client.request(method, format!("{base}{path}"));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let headers = format!("{:?}", response.headers());
            let text = response.text().await.unwrap();
            bodies.push(format!("{path}: {headers} {text}"));
            text
        };
    let key = Some("agw-SECRET-apikey");
    use reqwest::Method;
    send(Method::GET, "/v1/agents", Some("agw-SECRET-apikeX"), None).await;
    send(Method::GET, "/v1/agents", None, None).await;
    send(Method::GET, "/v1/agents", key, None).await;
    mock.push(Reply::text("hello"));
    send(
        Method::POST,
        "/v1/agents/greeter/invoke",
        key,
        Some(json!({"message": "hi"})),
    )
    .await;
    mock.push(Reply::error(401, Some("{\"error\": {\"message\": \"bad key\"}}")).times(5));
    send(
        Method::POST,
        "/v1/agents/greeter/invoke",
        key,
        Some(json!({"message": "hi"})),
    )
    .await;
    send(Method::GET, "/v1/ready", None, None).await;
    send(Method::GET, "/v1/ready", key, None).await;
    send(Method::GET, "/v1/health", key, None).await;
    send(Method::GET, "/v1/executions", key, None).await;
    send(Method::GET, "/v1/notifications", key, None).await;
    send(Method::GET, "/v1/admin/mcp-servers", key, None).await;
    send(
        Method::POST,
        "/v1/admin/mcp-servers",
        key,
        Some(json!({
            "name": "added", "transport": "streamable_http", "url": "http://127.0.0.1:1/mcp",
            "credentials": {"auth_type": "static_header", "api_key": "mcp-SECRET-api-key", "api_key_header": "x-api-key"}
        })),
    )
    .await;
    send(Method::GET, "/v1/admin/mcp-servers", key, None).await;
    send(Method::GET, "/metrics", key, None).await;
    send(Method::GET, "/openapi.json", key, None).await;
    // Let deliveries fail, exports fail and reconnections be tried, all of it logged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.lines().count() > 20,
        "the log was written at debug level: {log}"
    );
    for secret in SECRETS {
        assert!(
            !log.contains(secret),
            "'{secret}' in the log:\n{}",
            lines_with(&log, secret)
        );
        for body in &bodies {
            assert!(!body.contains(secret), "'{secret}' in a response: {body}");
        }
    }

    if let Ok(mut connection) = <sqlx::PgConnection as sqlx::Connection>::connect(&pg.replacen(
        "postgres:pg-SECRET-pass@",
        "postgres@",
        1,
    ))
    .await
    {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut connection)
        .await;
    }
}

fn lines_with(log: &str, secret: &str) -> String {
    log.lines()
        .filter(|l| l.contains(secret))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n")
}
