//! Traces exported over OTLP, received by a real OTLP receiver (decoding the protobuf
//! payloads): the caller's `traceparent` continued, a span per request, run, model call,
//! tool call, delegation, MCP call and notification with their parent links and GenAI
//! attributes, the trace context passed to the model provider, the MCP server, an agentgate
//! site and webhooks, and the trace id in the execution record.
//!
//! Its own test binary: the log and trace pipeline is process-wide, installed once here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../../agentgate/examples/shared/foodpanda.rs"]
mod foodpanda;
#[allow(dead_code)]
#[path = "it/mcp_server.rs"]
mod mcp_server;
#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_gateway::telemetry::Telemetry;
use agent_gateway::workspace::config::{
    LogConfig, OtlpProtocol, TelemetryConfig, TelemetryExporter,
};
use mock_llm::Reply;
use serde_json::{Value, json};
use test_services::otlp::{ReceivedSpan, Receiver};

use support::*;

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;

/// A webhook receiver that keeps the `traceparent` of each delivery.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let kept = Arc::clone(&kept);
            async move {
                let parent = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                kept.lock().unwrap().push(parent);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

/// The FoodPanda agentgate site, keeping the `traceparent` of each intent call.
async fn agentgate_site() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    let food = foodpanda::app(Arc::new(agentgate::server::MemorySessionStore::default())).unwrap();
    let app = food
        .mount(axum::Router::new())
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let kept = Arc::clone(&kept);
                async move {
                    if request.uri().path().contains("/intents/")
                        && let Some(parent) = request.headers().get("traceparent")
                    {
                        kept.lock()
                            .unwrap()
                            .push(parent.to_str().unwrap_or("").to_string());
                    }
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span '{name}' in {spans:#?}");
    found[0]
}

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id)
        .collect()
}

/// The (trace id, parent span id) of a `traceparent` value.
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_string(), parts[2].to_string())
}

async fn invoke(server: &TestServer, agent: &str, traceparent: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .post(format!("{}/v1/agents/{agent}/invoke", server.url))
        .header("traceparent", traceparent)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_follow_a_run_through_delegation_mcp_and_notifications() {
    let receiver = Receiver::grpc().await;
    let telemetry = Telemetry::install(
        &TelemetryConfig {
            exporter: TelemetryExporter::Otlp,
            protocol: OtlpProtocol::Grpc,
            endpoint: Some(receiver.endpoint.clone()),
            service_name: "traces-test".into(),
            headers: BTreeMap::from([("x-collector-key".to_string(), "k1".to_string())]),
            capture_content: false,
            ..TelemetryConfig::default()
        },
        &LogConfig {
            level: "error".into(),
            ..LogConfig::default()
        },
    )
    .unwrap();

    let mcp = mcp_server::http_server("mcp-key").await;
    let (hook, deliveries) = webhook_receiver().await;
    let (site, site_calls) = agentgate_site().await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\ntelemetry:\n  capture_content: true\nnotifications:\n  allowed_private_hosts: [\"127.0.0.1\"]\nsites:\n  \"{site}\":\n    api_key: demo-key\nmcp:\n  servers:\n    - name: remote\n      transport: streamable_http\n      url: {}\n      headers:\n        x-api-key: mcp-key\n",
        mcp.url
    ));
    ws.agent(
        "lead",
        &format!(
            "delegates_to: [helper]\nmcp_servers: [remote]\nsites:\n  - {site}\nnotifications:\n  on_complete:\n    - {{channel: webhook, url: \"{hook}\"}}"
        ),
        "Lead.",
    );
    ws.agent("helper", "description: Helps", "Help.");
    let (mock, server) = start(&ws).await;

    // 1. A run that delegates, calls an MCP tool and notifies, in the caller's trace.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = "b7ad6b7169203331";
    mock.push(Reply::tool_call(
        "delegate_to_agent",
        json!({"agent_id": "helper", "message": "help"}),
    ));
    mock.push(Reply::text("helped"));
    mock.push(Reply::tool_call("remote__echo", json!({"text": "hi"})));
    mock.push(Reply::tool_call(
        "foodpanda__search_restaurants",
        json!({"query": "pizza", "location": "Berlin"}),
    ));
    mock.push(Reply::text("all done"));
    let (status, body) = invoke(
        &server,
        "lead",
        &format!("00-{trace}-{caller}-01"),
        json!({"message": "go"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["raw_text"], "all done", "{body}");
    let execution_id = body["execution_id"].as_str().unwrap().to_string();
    for _ in 0..100 {
        if !deliveries.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    telemetry.flush().await;
    let spans = receiver
        .wait_for(|spans| spans.iter().any(|s| s.name == "notify webhook"))
        .await;
    let spans: Vec<ReceivedSpan> = spans.into_iter().filter(|s| s.trace_id == trace).collect();

    let request = one(&spans, "POST /v1/agents/{agent_id}/invoke");
    assert_eq!(request.kind, SERVER);
    assert_eq!(
        request.parent_span_id, caller,
        "the caller's trace continues"
    );
    assert_eq!(request.attr("http.response.status_code"), Some("200"));
    assert_eq!(
        request.attr("http.route"),
        Some("/v1/agents/{agent_id}/invoke")
    );
    assert_eq!(request.service_name, "traces-test");

    let lead = one(&spans, "invoke_agent lead");
    assert_eq!(lead.parent_span_id, request.span_id);
    assert_eq!(lead.attr("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(lead.attr("agw.execution.id"), Some(execution_id.as_str()));
    assert_eq!(lead.attr("agw.execution.status"), Some("completed"));

    let lead_calls: Vec<_> = children(&spans, lead)
        .into_iter()
        .filter(|s| s.name == "chat gpt-test")
        .collect();
    assert_eq!(
        lead_calls.len(),
        4,
        "four model calls of the lead: {spans:#?}"
    );
    let first = lead_calls
        .iter()
        .find(|s| s.attr("gen_ai.response.finish_reasons") == Some("[tool_calls]"))
        .expect("a call that asked for a tool");
    assert_eq!(first.kind, CLIENT);
    assert_eq!(first.attr("gen_ai.operation.name"), Some("chat"));
    assert_eq!(first.attr("gen_ai.provider.name"), Some("openai"));
    assert_eq!(first.attr("gen_ai.request.model"), Some("gpt-test"));
    assert_eq!(first.attr("gen_ai.response.model"), Some("gpt-test"));
    assert!(
        first.attr("gen_ai.usage.input_tokens").is_some(),
        "{first:?}"
    );
    assert!(
        first.attr("gen_ai.usage.output_tokens").is_some(),
        "{first:?}"
    );
    assert!(
        first
            .attr("gen_ai.input.messages")
            .is_some_and(|m| m.contains("Lead.")),
        "the prompt is captured when asked for: {first:?}"
    );

    let delegation = one(&spans, "execute_tool delegate_to_agent");
    assert_eq!(delegation.parent_span_id, lead.span_id);
    assert_eq!(
        delegation.attr("gen_ai.tool.name"),
        Some("delegate_to_agent")
    );
    let helper = one(&spans, "invoke_agent helper");
    assert_eq!(
        helper.parent_span_id, delegation.span_id,
        "the child run is a child span"
    );
    assert_eq!(
        children(&spans, helper)
            .iter()
            .filter(|s| s.name == "chat gpt-test")
            .count(),
        1
    );

    let echo = one(&spans, "execute_tool remote__echo");
    assert_eq!(echo.parent_span_id, lead.span_id);
    let mcp_call = one(&spans, "tools/call echo");
    assert_eq!(mcp_call.parent_span_id, echo.span_id);
    assert_eq!(mcp_call.kind, CLIENT);
    assert_eq!(mcp_call.attr("mcp.method.name"), Some("tools/call"));
    assert_eq!(mcp_call.attr("agw.mcp.server"), Some("remote"));
    let call_body = mcp
        .bodies
        .lock()
        .unwrap()
        .iter()
        .find(|b| b.contains("tools/call"))
        .cloned()
        .expect("the MCP server got the call");
    let call: Value = serde_json::from_str(&call_body).unwrap();
    let sent = call["params"]["_meta"]["traceparent"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        parse_traceparent(sent),
        (trace.to_string(), mcp_call.span_id.clone()),
        "the MCP request carries the context in _meta: {call}"
    );

    let search = one(&spans, "execute_tool foodpanda__search_restaurants");
    assert_eq!(search.parent_span_id, lead.span_id);
    let site_parents = site_calls.lock().unwrap().clone();
    assert_eq!(site_parents.len(), 1, "one intent call: {site_parents:?}");
    assert_eq!(
        parse_traceparent(&site_parents[0]),
        (trace.to_string(), search.span_id.clone()),
        "the agentgate site gets the tool call's context"
    );

    let notify = one(&spans, "notify webhook");
    assert_eq!(notify.parent_span_id, lead.span_id);
    assert_eq!(
        notify.attr("agw.notification.event"),
        Some("execution.completed")
    );
    let delivered = deliveries.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        parse_traceparent(&delivered[0]),
        (trace.to_string(), notify.span_id.clone())
    );

    // The model provider got the context of each model call.
    let model_calls: Vec<&ReceivedSpan> =
        spans.iter().filter(|s| s.name == "chat gpt-test").collect();
    assert_eq!(model_calls.len(), 5);
    for recorded in mock.requests() {
        let sent = recorded
            .headers
            .get("traceparent")
            .expect("traceparent sent");
        let (sent_trace, parent) = parse_traceparent(sent);
        assert_eq!(sent_trace, trace);
        assert!(model_calls.iter().any(|s| s.span_id == parent), "{sent}");
    }

    // The execution record keeps its trace id.
    let (_, record) = server.get(&format!("/v1/executions/{execution_id}")).await;
    assert_eq!(record["trace_id"], trace, "{record}");
    // The exports carried the configured headers.
    assert!(
        receiver
            .export_headers()
            .iter()
            .any(|h| h.get("x-collector-key").map(String::as_str) == Some("k1"))
    );

    // 2. A queued run: sent in the request's trace, run by a worker in the same trace.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    mock.push(Reply::text("later"));
    let (status, body) = invoke(
        &server,
        "helper",
        &format!("00-{trace}-00f067aa0ba902b7-01"),
        json!({"message": "go", "options": {"async": true}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let execution_id = body["execution_id"].as_str().unwrap().to_string();
    let mut record = Value::Null;
    for _ in 0..100 {
        record = server
            .get(&format!("/v1/executions/{execution_id}"))
            .await
            .1;
        if record["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["trace_id"], trace, "{record}");
    telemetry.flush().await;
    let spans = receiver
        .wait_for(|spans| {
            spans
                .iter()
                .any(|s| s.trace_id == trace && s.name == "invoke_agent helper")
        })
        .await;
    let spans: Vec<ReceivedSpan> = spans.into_iter().filter(|s| s.trace_id == trace).collect();
    let request = one(&spans, "POST /v1/agents/{agent_id}/invoke");
    let sent = one(&spans, "send agent-runs");
    assert_eq!(sent.kind, PRODUCER);
    assert_eq!(sent.parent_span_id, request.span_id);
    let run = one(&spans, "invoke_agent helper");
    assert_eq!(
        run.parent_span_id, sent.span_id,
        "the worker continues the trace"
    );

    // 3. Without a traceparent, each request starts a trace of its own.
    let (status, _) = server.get("/v1/health").await;
    assert_eq!(status, 200);
    telemetry.flush().await;
    let spans = receiver
        .wait_for(|spans| spans.iter().any(|s| s.name == "GET /v1/health"))
        .await;
    let health = spans.iter().find(|s| s.name == "GET /v1/health").unwrap();
    assert!(health.parent_span_id.is_empty(), "{health:?}");
    telemetry.shutdown().await;
}
