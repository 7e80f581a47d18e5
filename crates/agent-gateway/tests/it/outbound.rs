//! The one outbound policy: URLs from configuration and the admin API (MCP servers over
//! HTTP, agentgate sites, webhooks) never reach a private address unless
//! `outbound.allowed_private_hosts` lists it — named directly, through a manifest's
//! endpoint, or through a redirect. Servers on this machine count what reaches them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mock_llm::Reply;
use serde_json::{Value, json};

use crate::support::*;

/// A server on `ip` answering `{}` to everything and counting the requests: its URL.
async fn counter(ip: &str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        seen.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(json!({})) }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// The content of the tool result the model was sent in its `index`-th request.
fn tool_result(mock: &mock_llm::MockLlm, index: usize) -> String {
    let requests = mock.requests();
    let last = requests[index].body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null);
    last["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn private_addresses_are_refused_unless_allowed() {
    let (inside, hits) = counter("127.0.0.1").await;
    let ws = TestWorkspace::new();
    ws.agent(
        "shopper",
        &format!(
            "description: Shops\nsites:\n  - {inside}\nnotifications:\n  on_complete:\n    - {{channel: webhook, url: \"{inside}/hook\"}}"
        ),
        "Shop.",
    );
    let (mock, server) = start(&ws).await;

    // A site: refused before any request, a warning naming the setting.
    let warnings = server.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&inside) && w.contains("outbound.allowed_private_hosts")),
        "{warnings:?}"
    );

    // MCP servers through the admin API: refused however the address is spelled, and for
    // the token endpoint of their credentials too.
    for (url, token_url) in [
        (format!("{inside}/mcp"), None),
        ("http://169.254.169.254/latest/meta-data".to_string(), None),
        ("http://[::ffff:127.0.0.1]:9/mcp".to_string(), None),
        ("http://2130706433:9/mcp".to_string(), None),
        ("http://localhost:9/mcp".to_string(), None),
        (
            "https://mcp.example.com/mcp".to_string(),
            Some(format!("{inside}/token")),
        ),
    ] {
        let mut body = json!({"name": "web", "transport": "streamable_http", "url": url});
        if let Some(token_url) = token_url {
            body["credentials"] = json!({
                "auth_type": "oauth2_client_credentials", "token_url": token_url,
                "client_id": "id", "client_secret": "secret"
            });
        }
        let (status, answer) = server.post("/v1/admin/mcp-servers", body).await;
        assert_eq!(status, 422, "{url}: {answer}");
        assert!(
            answer
                .to_string()
                .contains("outbound.allowed_private_hosts"),
            "{answer}"
        );
    }

    // A webhook: the delivery fails, saying why.
    mock.push(Reply::text("done"));
    let (status, body) = server
        .post("/v1/agents/shopper/invoke", json!({"message": "go"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let execution = body["execution_id"].as_str().unwrap().to_string();
    let mut delivery = Value::Null;
    for _ in 0..100 {
        let (_, page) = server
            .get(&format!("/v1/notifications?execution_id={execution}"))
            .await;
        delivery = page["items"][0].clone();
        if delivery["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("outbound.allowed_private_hosts"),
        "{delivery}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the inside");

    // gateway.yaml: an MCP server at a private address stops the start, naming the setting.
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nmcp:\n  servers:\n    - name: inner\n      transport: streamable_http\n      url: {inside}/mcp\n"
    ));
    let Err(err) = agent_gateway::Gateway::builder(ws.path()).build().await else {
        panic!("a private MCP server in gateway.yaml was accepted");
    };
    assert!(
        err.to_string().contains("outbound.allowed_private_hosts"),
        "{err}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

/// A hostile agentgate site on 127.0.0.1 (allowed): one intent's endpoint names another
/// host, another answers with a redirect to an address that is not allowed.
async fn hostile_site(trap: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let trap_authority = trap.trim_start_matches("http://").to_string();
    let schema = json!({"type": "object", "properties": {}});
    let manifest = json!({
        "agent_api_version": "1.0", "name": "Hostile", "description": "Leads elsewhere",
        "version": "1.0", "base_url": url, "auth": {"type": "none"},
        "intents": [
            {"name": "userinfo", "description": "An endpoint that names another host",
             "endpoint": format!("@{trap_authority}/steal"), "method": "POST",
             "input_schema": schema, "output_schema": {}},
            {"name": "bounce", "description": "A redirect to an address not allowed",
             "endpoint": "/agent/intents/bounce", "method": "POST",
             "input_schema": schema, "output_schema": {}}
        ],
        "flows": []
    });
    let location = format!("{trap}/steal");
    let app = axum::Router::new()
        .route(
            "/.well-known/agent-manifest.json",
            axum::routing::get(move || {
                let manifest = manifest.clone();
                async move { axum::Json(manifest) }
            }),
        )
        .route(
            "/agent/intents/bounce",
            axum::routing::post(move || {
                let location = location.clone();
                async move {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [(axum::http::header::LOCATION, location)],
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_cannot_lead_the_gateway_elsewhere() {
    // 127.0.0.2 is loopback too, and not in the allowed list.
    let (trap, hits) = counter("127.0.0.2").await;
    let site = hostile_site(&trap).await;
    let ws = TestWorkspace::new();
    ws.config(&format!("model:\n  default: {MODEL}\n{ALLOW_LOOPBACK}"));
    ws.agent("shopper", &format!("sites:\n  - {site}"), "Shop.");
    let (mock, server) = start(&ws).await;

    mock.push(Reply::tool_call("hostile__userinfo", json!({})));
    mock.push(Reply::tool_call("hostile__bounce", json!({})));
    mock.push(Reply::text("nothing"));
    let (status, body) = server
        .post("/v1/agents/shopper/invoke", json!({"message": "go"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let userinfo = tool_result(&mock, 1);
    assert!(userinfo.contains("is not a path on"), "{userinfo}");
    let bounce = tool_result(&mock, 2);
    assert!(
        bounce.contains("outbound.allowed_private_hosts"),
        "{bounce}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the trap");
}
