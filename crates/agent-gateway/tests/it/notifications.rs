//! Notifications: signed webhooks to a receiver started here, payload templates, a fake
//! Slack, failures retried with backoff and replayed on request, and the private-address
//! guard.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use mock_llm::Reply;
use serde_json::{Value, json};

use crate::support::*;

/// What a receiver got: (path, headers, body).
type Received = Arc<Mutex<Vec<(String, axum::http::HeaderMap, String)>>>;

/// A receiver that answers 500 to its first `failures` requests, then 200 (Slack-style
/// `{"ok": true}` bodies).
async fn receiver(failures: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let seen = Arc::clone(&seen);
            async move {
                let mut all = seen.lock().unwrap();
                all.push((uri.path().to_string(), headers, body));
                if all.len() <= failures {
                    (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({"ok": false, "error": "boom"})),
                    )
                } else {
                    (axum::http::StatusCode::OK, axum::Json(json!({"ok": true})))
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

async fn deliveries(server: &TestServer, execution_id: &str, expected: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (_, page) = server
            .get(&format!("/v1/notifications?execution_id={execution_id}"))
            .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() == expected && items.iter().all(|i| i["status"] != "pending") {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries of {execution_id} did not settle");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_templated_and_guarded() {
    let (base, received) = receiver(0).await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nnotifications:\n  allowed_private_hosts: [\"127.0.0.1\"]\n  retry_base_ms: 20\n  webhooks:\n    - {{name: hooks, url: \"{base}/hook?token=abc\", secret: s3cret}}\n"
    ));
    ws.agent(
        "reporter",
        &format!(
            "notifications:\n  on_complete:\n    - {{channel: webhook, target: hooks}}\n    - {{channel: webhook, url: \"http://10.1.2.3/hook\"}}\n  on_error:\n    - channel: webhook\n      url: \"{base}/errors\"\n      payload_template: '{{\"text\": \"{{{{ event.agent_id }}}} failed: {{{{ event.error }}}}\", \"status\": {{{{ event.status | tojson }}}}}}'\n"
        ),
        "Report.",
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("All good."));
    let (status, body) = server
        .post("/v1/agents/reporter/invoke", json!({"message": "report"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let execution = body["execution_id"].as_str().unwrap();
    let items = deliveries(&server, execution, 2).await;
    let webhook = items
        .iter()
        .find(|i| i["target"] == format!("{base}/hook"))
        .unwrap();
    assert_eq!(webhook["status"], "delivered", "{items:?}");
    assert_eq!(webhook["attempts"], 1);
    assert_eq!(webhook["event_type"], "execution.completed");
    let guarded = items
        .iter()
        .find(|i| i["target"] == "http://10.1.2.3/hook")
        .unwrap();
    assert_eq!(guarded["status"], "failed");
    assert!(
        guarded["last_error"].as_str().unwrap().contains("private"),
        "{guarded}"
    );

    let (path, headers, sent) = received.lock().unwrap()[0].clone();
    assert_eq!(path, "/hook");
    let timestamp = headers["x-agentgateway-timestamp"].to_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(format!("{timestamp}.{sent}").as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        headers["x-agentgateway-signature"].to_str().unwrap(),
        expected
    );
    let payload: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(payload["event"], "execution.completed");
    assert_eq!(payload["execution_id"], execution);
    assert_eq!(payload["agent_id"], "reporter");
    assert_eq!(payload["status"], "completed");

    // A failed run goes to on_error, through the template.
    mock.push(Reply::error(400, Some("bad request")));
    let (_, failed) = server
        .post("/v1/agents/reporter/invoke", json!({"message": "report"}))
        .await;
    let failed_id = failed["execution_id"].as_str().unwrap();
    let items = deliveries(&server, failed_id, 1).await;
    assert_eq!(items[0]["event_type"], "execution.failed");
    assert_eq!(items[0]["status"], "delivered", "{items:?}");
    let all = received.lock().unwrap().clone();
    let (path, _, sent) = all.last().unwrap();
    assert_eq!(path, "/errors");
    let templated: Value = serde_json::from_str(sent).unwrap();
    assert!(
        templated["text"]
            .as_str()
            .unwrap()
            .starts_with("reporter failed: "),
        "{templated}"
    );
    assert_eq!(templated["status"], "failed");

    let (_, page) = server.get("/v1/notifications?status=failed&limit=1").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["limit"], 1);
    let (status, _) = server.get("/v1/notifications?limit=500").await;
    assert_eq!(status, 422);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_is_retried_and_replayed() {
    // Three failures: both attempts fail, then a manual retry (attempt 3 fails, 4 succeeds).
    let (base, received) = receiver(3).await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nnotifications:\n  allowed_private_hosts: [\"127.0.0.1\"]\n  max_attempts: 2\n  retry_base_ms: 30\n  slack:\n    enabled: true\n    bot_token: xoxb-test\n    api_base: \"{base}/api\"\n"
    ));
    ws.agent(
        "reporter",
        "notifications:\n  on_complete:\n    - {channel: slack, target: \"#ops\"}\n",
        "Report.",
    );
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("Done and dusted."));
    let (_, body) = server
        .post("/v1/agents/reporter/invoke", json!({"message": "report"}))
        .await;
    let execution = body["execution_id"].as_str().unwrap();
    let items = deliveries(&server, execution, 1).await;
    assert_eq!(items[0]["status"], "failed");
    assert_eq!(items[0]["attempts"], 2, "every attempt is counted");
    assert_eq!(items[0]["channel"], "slack");
    assert_eq!(items[0]["target"], "#ops");
    assert!(items[0]["last_error"].as_str().unwrap().contains("500"));

    let id = items[0]["id"].as_i64().unwrap();
    let (status, retried) = server
        .post(&format!("/v1/notifications/{id}/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["status"], "delivered");
    assert_eq!(retried["attempts"], 4);

    let all = received.lock().unwrap().clone();
    assert_eq!(all.len(), 4);
    let (path, headers, first) = &all[0];
    assert_eq!(path, "/api/chat.postMessage");
    assert_eq!(headers["authorization"], "Bearer xoxb-test");
    assert_eq!(&all[3].2, first, "the retry replays the original message");
    let message: Value = serde_json::from_str(first).unwrap();
    assert_eq!(message["channel"], "#ops");
    assert!(message["text"].as_str().unwrap().contains("completed"));
    assert_eq!(message["blocks"][0]["type"], "header");
    let (status, _) = server
        .post("/v1/notifications/424242/retry", json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_turns_streamed_or_not_fire_the_same_hooks_and_notifications_as_invoke() {
    let (base, received) = receiver(0).await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nnotifications:\n  allowed_private_hosts: [\"127.0.0.1\"]\n  retry_base_ms: 20\n"
    ));
    ws.agent(
        "reporter",
        &format!(
            "notifications:\n  on_complete:\n    - {{channel: webhook, url: \"{base}/done\"}}\n"
        ),
        "Report.",
    );
    let mock = mock_llm::MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("reported"));
    let hooked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut builder = agent_gateway::Gateway::builder(ws.path()).env(mock_env(&mock));
    for event in ["agent.invoke.before", "agent.invoke.after"] {
        let hooked = Arc::clone(&hooked);
        builder = builder.on(event, move |event| {
            let hooked = Arc::clone(&hooked);
            async move {
                let execution = match &event {
                    agent_gateway::hooks::HookEvent::AgentInvokeBefore { execution_id, .. }
                    | agent_gateway::hooks::HookEvent::AgentInvokeAfter { execution_id, .. } => {
                        execution_id.clone()
                    }
                    _ => String::new(),
                };
                hooked
                    .lock()
                    .unwrap()
                    .push((event.name().to_string(), execution));
                Ok(())
            }
        });
    }
    let server = TestServer::start(builder).await;

    let (_, invoked) = server
        .post("/v1/agents/reporter/invoke", json!({"message": "one"}))
        .await;
    let (_, chatted) = server
        .post("/v1/agents/reporter/chat", json!({"message": "two"}))
        .await;
    let streamed = server
        .client
        .post(format!("{}/v1/agents/reporter/chat", server.url))
        .json(&json!({"message": "three", "options": {"stream": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&streamed);
    let streamed_id = events[0].1["execution_id"].as_str().unwrap().to_string();
    assert_eq!(events.last().unwrap().0, "done", "{streamed}");

    for execution in [
        invoked["execution_id"].as_str().unwrap(),
        chatted["execution_id"].as_str().unwrap(),
        streamed_id.as_str(),
    ] {
        let items = deliveries(&server, execution, 1).await;
        assert_eq!(items[0]["status"], "delivered", "{execution}: {items:?}");
        let hooks: Vec<String> = hooked
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, id)| id == execution)
            .map(|(name, _)| name.clone())
            .collect();
        assert_eq!(
            hooks,
            vec!["agent.invoke.before", "agent.invoke.after"],
            "{execution}"
        );
    }
    let bodies: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, body)| serde_json::from_str(body).unwrap())
        .collect();
    let mut messages: Vec<&str> = bodies
        .iter()
        .map(|b| b["message"].as_str().unwrap())
        .collect();
    messages.sort_unstable();
    assert_eq!(messages, vec!["one", "three", "two"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_sees_the_deliveries_about_their_own_executions() {
    use agent_gateway::{Actor, RunRequest};
    let (base, _received) = receiver(0).await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nnotifications:\n  allowed_private_hosts: [\"127.0.0.1\"]\n  retry_base_ms: 20\n"
    ));
    ws.agent(
        "reporter",
        &format!(
            "notifications:\n  on_complete:\n    - {{channel: webhook, url: \"{base}/done\"}}\n"
        ),
        "Report.",
    );
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("reported"));
    let gateway = &server.gateway;
    let alice = Actor::user(
        "alice",
        vec!["agents:invoke".into(), "notifications:read".into()],
    );
    let bob = Actor::user(
        "bob",
        vec!["agents:invoke".into(), "notifications:read".into()],
    );
    let result = gateway
        .run(&alice, RunRequest::invoke("reporter", "mine"))
        .await
        .unwrap();
    deliveries(&server, &result.execution_id, 1).await;
    let page = |limit| agent_gateway::store::NotificationFilter {
        limit,
        ..Default::default()
    };
    let (hers, total) = gateway
        .notifications()
        .list(&alice, page(10))
        .await
        .unwrap();
    assert_eq!((hers.len(), total), (1, 1));
    let (his, total) = gateway.notifications().list(&bob, page(10)).await.unwrap();
    assert_eq!(
        (his.len(), total),
        (0, 0),
        "bob sees none of alice's deliveries"
    );
    let refused = gateway
        .notifications()
        .retry(&bob, hers[0].id)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, agent_gateway::GatewayError::Forbidden { .. }),
        "{refused}"
    );
}
