//! MCP servers over stdio and streamable HTTP: discovery, namespacing, calls, timeouts, a
//! crash and its reconnection, and the admin API with its secrets sealed.

use std::time::Duration;

use mock_llm::Reply;
use serde_json::{Value, json};

use crate::mcp_server::{STDIO_SERVER_VAR, http_server, stdio_command};
use crate::support::*;

const SECRET_KEY: &str = "test-secret-key-for-mcp";

fn last_tool_result(request: &Value) -> String {
    request["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Invokes `agent`, whose model calls `tool` with `arguments` once; returns what the tool
/// answered (as the model saw it).
async fn call_through(
    mock: &mock_llm::MockLlm,
    server: &TestServer,
    agent: &str,
    tool: &str,
    arguments: Value,
) -> String {
    let before = mock.requests().len();
    mock.push(Reply::tool_call(tool, arguments));
    mock.push(Reply::text("done"));
    let (status, body) = server
        .post(
            &format!("/v1/agents/{agent}/invoke"),
            json!({"message": "go"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    last_tool_result(&mock.requests()[before + 1].body)
}

fn stdio_server_yaml(name: &str, extra_env: &str) -> String {
    let (command, args) = stdio_command();
    format!(
        "    - name: {name}\n      transport: stdio\n      command: {command:?}\n      args: {}\n      env:\n        {STDIO_SERVER_VAR}: \"1\"\n{extra_env}",
        serde_json::to_string(&args).unwrap()
    )
}

async fn wait_connected(server: &TestServer, id: &str) -> Value {
    for _ in 0..200 {
        let (_, info) = server.get(&format!("/v1/admin/mcp-servers/{id}")).await;
        if info["connected"] == true {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("MCP server {id} did not reconnect");
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_from_config_give_their_tools_to_the_agents_that_list_them() {
    let remote = http_server("remote-key").await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\n{ALLOW_LOOPBACK}mcp:\n  tool_call_timeout_ms: 400\n  servers:\n{}    - name: remote\n      transport: streamable_http\n      url: {}\n      headers:\n        x-api-key: remote-key\n",
        stdio_server_yaml("local", "        GREETING: hello from env\n"),
        remote.url
    ));
    ws.agent("helper", "mcp_servers: [local, remote]", "Use the tools.");
    ws.agent("plain", "", "No tools.");
    let (mock, server) = start(&ws).await;

    let (_, tools) = server.get("/v1/tools").await;
    let mcp: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["source"] == "mcp")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        mcp.contains(&"local__echo") && mcp.contains(&"remote__add"),
        "{mcp:?}"
    );
    let (status, echo) = server.get("/v1/tools/local__echo").await;
    assert_eq!(status, 200);
    assert_eq!(echo["parameters"]["required"], json!(["text"]));

    // Calls over both transports; the stdio child got its env.
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "local__echo",
            json!({"text": "ping"})
        )
        .await,
        "ping"
    );
    let offered = tool_names(&mock.requests().last().unwrap().body);
    assert!(offered.contains(&"remote__add".to_string()), "{offered:?}");
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "remote__add",
            json!({"a": 2, "b": 3})
        )
        .await,
        "5"
    );
    // No trace is recorded here: the call carries no trace context (`_meta` stays unset).
    let bodies = remote.bodies.lock().unwrap().clone();
    let call = bodies.iter().find(|b| b.contains("tools/call")).unwrap();
    assert!(!call.contains("traceparent"), "{call}");
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "local__env",
            json!({"name": "GREETING"})
        )
        .await,
        "hello from env"
    );
    // Arguments are checked against the tool's schema before the call.
    let refused = call_through(&mock, &server, "helper", "local__add", json!({"a": "x"})).await;
    assert!(refused.contains("Invalid arguments"), "{refused}");
    // A failing tool and a slow one: clear errors, the run goes on.
    let failed = call_through(&mock, &server, "helper", "remote__fail", json!({})).await;
    assert!(failed.contains("the tool broke"), "{failed}");
    let slow = call_through(
        &mock,
        &server,
        "helper",
        "local__sleep",
        json!({"ms": 3000}),
    )
    .await;
    assert!(slow.contains("timed out after 400 ms"), "{slow}");

    // Agents that do not list a server do not get its tools.
    mock.push(Reply::text("hi"));
    server
        .post("/v1/agents/plain/invoke", json!({"message": "hi"}))
        .await;
    let offered = tool_names(&mock.requests().last().unwrap().body);
    assert!(!offered.iter().any(|n| n.contains("__")), "{offered:?}");

    // The admin view: both servers, read-only, secrets by name only.
    let (status, list) = server.get("/v1/admin/mcp-servers").await;
    assert_eq!(status, 200);
    let remote_info = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "remote")
        .unwrap();
    assert_eq!(remote_info["source"], "config");
    assert_eq!(remote_info["connected"], true);
    assert_eq!(remote_info["header_keys"], json!(["x-api-key"]));
    assert!(!list.to_string().contains("remote-key"), "{list}");
    assert!(!list.to_string().contains("hello from env"), "{list}");
    let (_, tools) = server.get("/v1/admin/mcp-servers/local/tools").await;
    let echo = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["original_name"] == "echo")
        .unwrap();
    assert_eq!(echo["name"], "local__echo");
    assert_eq!(echo["server_name"], "local");
    let (status, body) = server.delete("/v1/admin/mcp-servers/local").await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server.get("/v1/admin/mcp-servers/nope").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "mcp_server_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_stdio_server_is_reconnected() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nmcp:\n  servers:\n{}",
        stdio_server_yaml("local", "")
    ));
    ws.agent("helper", "mcp_servers: [local]", "Use the tools.");
    let (mock, server) = start(&ws).await;
    let first_pid = call_through(&mock, &server, "helper", "local__pid", json!({})).await;

    let crashed = call_through(&mock, &server, "helper", "local__crash", json!({})).await;
    assert!(
        crashed.contains("MCP server 'local'"),
        "the call fails with a clear error: {crashed}"
    );
    let meanwhile = call_through(
        &mock,
        &server,
        "helper",
        "local__echo",
        json!({"text": "x"}),
    )
    .await;
    assert!(
        meanwhile == "x"
            || meanwhile.contains("not connected")
            || meanwhile.contains("unreachable"),
        "{meanwhile}"
    );

    wait_connected(&server, "local").await;
    let second_pid = call_through(&mock, &server, "helper", "local__pid", json!({})).await;
    assert_ne!(first_pid, second_pid, "a new server process");
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "local__echo",
            json!({"text": "back"})
        )
        .await,
        "back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_added_through_the_api_keep_their_secrets_sealed() {
    let remote = http_server("api-key-123").await;
    let ws = TestWorkspace::new();
    ws.config(&format!("model:\n  default: {MODEL}\n{ALLOW_LOOPBACK}"));
    ws.agent("helper", "mcp_servers: [vault, web]", "Use the tools.");
    let mock = mock_llm::MockLlm::start().await.unwrap();
    let mut env = mock_env(&mock);
    env.insert("AGENT_GATEWAY_SECRET_KEY".into(), SECRET_KEY.into());
    let server =
        TestServer::start(agent_gateway::Gateway::builder(ws.path()).env(env.clone())).await;

    let (command, args) = stdio_command();
    let secret = "s3cr3t-value-9f2c";
    let (status, created) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({
                "name": "vault", "transport": "stdio", "command": command, "args": args,
                "env": {STDIO_SERVER_VAR: "1", "VAULT_TOKEN": secret}
            }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(created["has_env"], true);
    assert_eq!(created["connected"], true, "{created}");
    assert!(created["tool_count"].as_u64().unwrap() >= 5);
    assert!(!created.to_string().contains(secret));
    let id = created["id"].as_str().unwrap().to_string();

    let (status, web) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({
                "name": "web", "transport": "streamable_http", "url": remote.url,
                "credentials": {"auth_type": "static_header", "api_key": "api-key-123", "api_key_header": "x-api-key"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{web}");
    assert_eq!(web["auth_type"], "static_header");
    assert_eq!(web["credential_keys"], json!(["api_key", "api_key_header"]));
    assert_eq!(web["connected"], true, "{web}");

    // Never readable back: not in any response, not in the database file (checked before a
    // tool prints the secret, which the execution record would then rightly hold).
    for path in [
        "/v1/admin/mcp-servers",
        &format!("/v1/admin/mcp-servers/{id}"),
    ] {
        let (_, body) = server.get(path).await;
        assert!(!body.to_string().contains(secret), "{body}");
        assert!(!body.to_string().contains("api-key-123"), "{body}");
    }
    let mut files_checked = 0;
    for name in ["gateway.db", "gateway.db-wal"] {
        if let Ok(bytes) = std::fs::read(ws.path().join(name)) {
            files_checked += 1;
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "{name} holds the secret in clear");
            assert!(
                !text.contains("api-key-123"),
                "{name} holds the key in clear"
            );
        }
    }
    if let Some((url, schema)) = ws.postgres() {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(m)::text FROM \"{schema}\".mcp_servers m"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows {
            assert!(
                !row.contains(secret) && !row.contains("api-key-123"),
                "{row}"
            );
            files_checked += 1;
        }
    }
    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() != Ok("memory") {
        assert!(files_checked > 0, "the stored rows were inspected");
    }

    // The secret reaches the server process, and the agent can use both servers.
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "vault__env",
            json!({"name": "VAULT_TOKEN"})
        )
        .await,
        secret
    );
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "web__add",
            json!({"a": 1, "b": 1})
        )
        .await,
        "2"
    );

    // Test, refresh, tools.
    let (_, test) = server
        .post(&format!("/v1/admin/mcp-servers/{id}/test"), json!({}))
        .await;
    assert_eq!(test["success"], true, "{test}");
    assert!(
        test["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );
    let (_, refreshed) = server
        .post(&format!("/v1/admin/mcp-servers/{id}/refresh"), json!({}))
        .await;
    assert_eq!(refreshed["connected"], true);
    let (_, tools) = server
        .get(&format!("/v1/admin/mcp-servers/{id}/tools"))
        .await;
    assert!(
        tools
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "vault__echo")
    );

    // Bad requests.
    let (status, body) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({"name": "vault", "transport": "stdio", "command": "x"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({"name": "Bad Name", "transport": "stdio"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("command"),
        "{body}"
    );
    let (status, _) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({"name": "x", "transport": "carrier_pigeon"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, broken) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({"name": "broken", "transport": "stdio", "command": "/no/such/program"}),
        )
        .await;
    assert_eq!(
        status, 200,
        "stored even when it cannot connect yet: {broken}"
    );
    assert_eq!(broken["connected"], false);
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("could not start"),
        "{broken}"
    );
    let broken_id = broken["id"].as_str().unwrap();
    let (_, test) = server
        .post(
            &format!("/v1/admin/mcp-servers/{broken_id}/test"),
            json!({}),
        )
        .await;
    assert_eq!(test["success"], false);
    assert_eq!(test["error_code"], "connection_error");

    // Update: `{}` clears the env; the server restarts without it.
    let (status, updated) = server
        .client
        .put(format!("{}/v1/admin/mcp-servers/{id}", server.url))
        .json(&json!({"env": {STDIO_SERVER_VAR: "1"}}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "vault__env",
            json!({"name": "VAULT_TOKEN"})
        )
        .await,
        "VAULT_TOKEN is not set"
    );

    // A restarted gateway finds the stored servers and reconnects them.
    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() == Ok("memory") {
        return;
    }
    drop(server);
    let again = TestServer::start(agent_gateway::Gateway::builder(ws.path()).env(env)).await;
    let info = wait_connected(&again, "web").await;
    assert_eq!(info["source"], "api");
    let (status, deleted) = again.delete(&format!("/v1/admin/mcp-servers/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["deleted"], true);
    let (status, _) = again.get(&format!("/v1/admin/mcp-servers/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn without_a_secret_key_secrets_are_refused() {
    let ws = TestWorkspace::new();
    let (_mock, server) = start(&ws).await;
    let (status, body) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({"name": "s", "transport": "stdio", "command": "x", "env": {"TOKEN": "t"}}),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(error_code(&body), "secret_key_missing");
    let (status, body) = server
        .post(
            "/v1/admin/mcp-servers",
            json!({"name": "s", "transport": "stdio", "command": "/no/such/program", "enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "no secrets, nothing to seal: {body}");
    assert_eq!(body["enabled"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_from_code_and_from_a_reloaded_config() {
    let remote = http_server("code-key").await;
    let ws = TestWorkspace::new();
    ws.config(&format!("model:\n  default: {MODEL}\n{ALLOW_LOOPBACK}"));
    ws.agent("helper", "mcp_servers: [coded, local]", "Use the tools.");
    let mock = mock_llm::MockLlm::start().await.unwrap();
    let server = TestServer::start(
        agent_gateway::Gateway::builder(ws.path())
            .env(mock_env(&mock))
            .reload(true)
            .mcp_server(
                agent_gateway::mcp::McpServerConfig::http("coded", remote.url.clone())
                    .header("x-api-key", "code-key"),
            ),
    )
    .await;
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "coded__echo",
            json!({"text": "from code"})
        )
        .await,
        "from code"
    );
    let (_, info) = server.get("/v1/admin/mcp-servers/coded").await;
    assert_eq!(info["source"], "code");

    // A server added to gateway.yaml appears on reload.
    ws.config(&format!(
        "model:\n  default: {MODEL}\n{ALLOW_LOOPBACK}mcp:\n  servers:\n{}",
        stdio_server_yaml("local", "")
    ));
    let (status, body) = server.post("/v1/reload", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        call_through(
            &mock,
            &server,
            "helper",
            "local__echo",
            json!({"text": "reloaded"})
        )
        .await,
        "reloaded"
    );
    let (_, info) = server.get("/v1/admin/mcp-servers/local").await;
    assert_eq!(info["source"], "config");
}
