//! Notifications when an execution ends (`notifications.on_complete|on_error|on_timeout` in
//! AGENT.md): Slack messages and webhooks (HMAC-signed, optional payload templates), with
//! retries and backoff, every attempt counted in the notification log, and a retry that
//! replays the message that was first sent.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use chrono::Utc;
use gateway_store::{NotificationRecord, SharedStore};
use gateway_workspace::config::NotificationsConfig;
use gateway_workspace::{AgentDefinition, agent::NotificationTarget};
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};

use crate::engine::ExecutionStatus;
use crate::metrics::Metrics;
use crate::outbound::OutboundPolicy;

/// What happened to an execution, as notifications describe it.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionEvent {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub message: String,
    pub input: Map<String, Value>,
    pub output: Option<Value>,
    pub raw_text: String,
    pub error: Option<String>,
    pub usage: Value,
    pub duration_ms: u64,
}

impl ExecutionEvent {
    /// The event type and the rule it triggers (`None`: nothing is sent for this status).
    fn kind(&self) -> Option<(&'static str, &'static str)> {
        match self.status {
            ExecutionStatus::Completed => Some(("execution.completed", "on_complete")),
            ExecutionStatus::Failed | ExecutionStatus::Cancelled => {
                Some(("execution.failed", "on_error"))
            }
            ExecutionStatus::Timeout => Some(("execution.timeout", "on_timeout")),
            _ => None,
        }
    }

    fn as_json(&self, event_type: &str) -> Value {
        json!({
            "type": event_type,
            "execution_id": self.execution_id,
            "agent_id": self.agent_id,
            "status": self.status,
            "message": self.message,
            "input": self.input,
            "result": {"output": self.output, "raw_text": self.raw_text},
            "error": self.error,
            "usage": self.usage,
            "duration_ms": self.duration_ms,
            "completed_at": Utc::now(),
        })
    }
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A message ready to go to one target.
#[derive(Debug, Clone)]
struct Prepared {
    channel: &'static str,
    /// What the log shows: the Slack channel or the URL without its query.
    display: String,
    /// Stored as the log's payload: `{url | slack_channel, endpoint?, body}`, the body as the
    /// exact text sent (a retry sends the same bytes; JSON columns may reorder keys).
    payload: Value,
}

fn webhook_body(event: &ExecutionEvent, event_type: &str) -> Value {
    let mut body = json!({
        "event": event_type,
        "execution_id": event.execution_id,
        "agent_id": event.agent_id,
        "status": event.status,
        "message": clip(&event.message, 4096),
        "output": event.output,
        "duration_ms": event.duration_ms,
    });
    if let Some(error) = &event.error {
        body["error"] = json!(error);
    }
    body
}

/// Renders a payload template (minijinja: `{{ event.agent_id }}`, `{{ event | tojson }}`);
/// it must produce JSON.
fn render_template(template: &str, event: &Value) -> Result<Value, String> {
    let env = minijinja::Environment::new();
    let text = env
        .render_str(
            template,
            minijinja::context! { event => minijinja::Value::from(minijinja::value::Serde(event)) },
        )
        .map_err(|e| format!("payload template: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("payload template did not render JSON: {e}"))
}

fn slack_body(event: &ExecutionEvent, event_type: &str, channel: &str) -> Value {
    let (emoji, title) = match event_type {
        "execution.completed" => (":white_check_mark:", "Agent Execution Completed"),
        "execution.timeout" => (":hourglass:", "Agent Execution Timed Out"),
        _ => (":x:", "Agent Execution Failed"),
    };
    let detail = match &event.error {
        Some(error) => format!("*Error*\n{}", clip(error, 1000)),
        None => {
            let result = match &event.output {
                Some(output) => output.to_string(),
                None => event.raw_text.clone(),
            };
            format!("*Result*\n{}", clip(&result, 2000))
        }
    };
    json!({
        "channel": channel,
        "text": format!("Agent '{}' execution {}: {}", event.agent_id, event.status.as_str(), event.execution_id),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": format!("{emoji}  {title}")}},
            {"type": "divider"},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": format!("*Agent*\n{}", event.agent_id)},
                {"type": "mrkdwn", "text": format!("*Execution ID*\n{}", event.execution_id)},
                {"type": "mrkdwn", "text": format!("*Duration*\n{} ms", event.duration_ms)},
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*Input*\n{}", clip(&event.message, 300))}},
            {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("agent-gateway | {}", Utc::now().format("%Y-%m-%d %H:%M:%S UTC"))}]},
        ],
    })
}

fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

fn prepare(
    config: &NotificationsConfig,
    target: &NotificationTarget,
    event: &ExecutionEvent,
    event_type: &str,
) -> Result<Option<Prepared>, String> {
    match target.channel.as_str() {
        "slack" => {
            let channel = if target.target.is_empty() {
                config.slack.default_channel.clone()
            } else {
                target.target.clone()
            };
            Ok(Some(Prepared {
                channel: "slack",
                display: channel.clone(),
                payload: json!({"slack_channel": channel, "body": slack_body(event, event_type, &channel).to_string()}),
            }))
        }
        "webhook" => {
            let endpoint = config.webhooks.iter().find(|w| w.name == target.target);
            let url = match (&target.url, endpoint) {
                (Some(url), _) => url.clone(),
                (None, Some(endpoint)) => endpoint.url.clone(),
                (None, None) => {
                    return Err(format!(
                        "no webhook endpoint named '{}' in gateway.yaml",
                        target.target
                    ));
                }
            };
            if let Some(endpoint) = endpoint
                && target.url.is_none()
                && !endpoint.events.is_empty()
                && !endpoint.events.iter().any(|e| e == event_type)
            {
                return Ok(None);
            }
            let template = target
                .payload_template
                .clone()
                .or_else(|| endpoint.and_then(|e| e.payload_template.clone()));
            let body = match template {
                Some(template) => render_template(&template, &event.as_json(event_type))?,
                None => webhook_body(event, event_type),
            };
            Ok(Some(Prepared {
                channel: "webhook",
                display: without_query(&url),
                payload: json!({"url": url, "endpoint": endpoint.map(|e| e.name.clone()), "body": body.to_string()}),
            }))
        }
        other => Err(format!("unknown notification channel '{other}'")),
    }
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length: the error case cannot happen.
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("{timestamp}.{body}").as_bytes());
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Sends one stored message once.
async fn send_once(
    config: &NotificationsConfig,
    outbound: &OutboundPolicy,
    payload: &Value,
) -> Result<(), String> {
    let text = match payload.get("body") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "null".to_string(),
    };
    if let Some(url) = payload.get("url").and_then(Value::as_str) {
        // Pinned to the address checked: DNS cannot change it between check and connect.
        let (host, address) = outbound
            .resolve(url)
            .await
            .map_err(|err| format!("webhook target refused: {err}"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .resolve(&host, address)
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .headers(gateway_telemetry::context::outbound_headers())
            .body(text.clone());
        let endpoint = payload.get("endpoint").and_then(Value::as_str);
        let secret = endpoint
            .and_then(|name| config.webhooks.iter().find(|w| w.name == name))
            .map(|w| w.secret.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| config.webhook_secret.clone());
        if !secret.is_empty() {
            let timestamp = Utc::now().timestamp();
            request = request
                .header("x-agentgateway-timestamp", timestamp.to_string())
                .header(
                    "x-agentgateway-signature",
                    signature(&secret, timestamp, &text),
                );
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status().as_u16()))
        }
    } else {
        let slack = &config.slack;
        if !slack.enabled || slack.bot_token.is_empty() {
            return Err("Slack is not configured (notifications.slack.enabled, bot_token)".into());
        }
        let response = reqwest::Client::new()
            .post(format!(
                "{}/chat.postMessage",
                slack.api_base.trim_end_matches('/')
            ))
            .bearer_auth(&slack.bot_token)
            .timeout(Duration::from_secs(10))
            .header("content-type", "application/json; charset=utf-8")
            .body(text)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && answer["ok"] == true {
            Ok(())
        } else {
            Err(format!(
                "Slack answered {}: {}",
                status.as_u16(),
                answer["error"].as_str().unwrap_or("no ok")
            ))
        }
    }
}

/// Delivers a logged notification with retries, recording each attempt, in a span of its
/// own (`notify <channel>`). Returns the record as it ends.
pub(crate) async fn deliver(
    store: &SharedStore,
    config: &NotificationsConfig,
    outbound: &OutboundPolicy,
    metrics: &Metrics,
    record: NotificationRecord,
) -> NotificationRecord {
    let span =
        gateway_telemetry::spans::notification(&record.channel, &record.event_type, &record.target);
    let record = deliver_untraced(store, config, outbound, metrics, record)
        .instrument(span.clone())
        .await;
    if let Some(error) = record
        .last_error
        .as_deref()
        .filter(|_| record.status != "delivered")
    {
        gateway_telemetry::spans::record_error(&span, "notification_failed", error);
    }
    record
}

async fn deliver_untraced(
    store: &SharedStore,
    config: &NotificationsConfig,
    outbound: &OutboundPolicy,
    metrics: &Metrics,
    mut record: NotificationRecord,
) -> NotificationRecord {
    let attempts = config.max_attempts.max(1);
    let mut delay = Duration::from_millis(config.retry_base_ms);
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        let result = send_once(config, outbound, &record.payload).await;
        record.attempts += 1;
        match result {
            Ok(()) => {
                record.status = "delivered".into();
                record.last_error = None;
                record.delivered_at = Some(Utc::now());
            }
            Err(error) => {
                tracing::warn!(notification = record.id, target = %record.target, %error, "notification attempt failed");
                record.status = if attempt + 1 == attempts {
                    "failed"
                } else {
                    "pending"
                }
                .into();
                record.last_error = Some(error);
            }
        }
        if let Err(err) = store
            .update_notification(
                record.id,
                &record.status,
                record.attempts,
                record.last_error.as_deref(),
                record.delivered_at,
            )
            .await
        {
            tracing::error!(error = %err, "could not record a notification attempt");
        }
        if record.status == "delivered" {
            break;
        }
    }
    metrics.notification(&record.channel, record.status == "delivered");
    record
}

/// Sends the notifications an ended execution calls for (concurrently, one log row per
/// target).
pub(crate) async fn notify(
    store: SharedStore,
    config: NotificationsConfig,
    outbound: OutboundPolicy,
    metrics: Arc<Metrics>,
    agent: AgentDefinition,
    event: ExecutionEvent,
) {
    let Some((event_type, rule)) = event.kind() else {
        return;
    };
    let targets = match rule {
        "on_complete" => &agent.notifications.on_complete,
        "on_error" => &agent.notifications.on_error,
        _ => &agent.notifications.on_timeout,
    };
    let mut sends = Vec::new();
    for target in targets {
        let now = Utc::now();
        let mut record = NotificationRecord {
            id: 0,
            execution_id: event.execution_id.clone(),
            agent_id: event.agent_id.clone(),
            event_type: event_type.to_string(),
            channel: target.channel.clone(),
            target: target.url.clone().unwrap_or_else(|| target.target.clone()),
            status: "pending".into(),
            attempts: 0,
            last_error: None,
            payload: Value::Null,
            created_at: now,
            delivered_at: None,
        };
        match prepare(&config, target, &event, event_type) {
            Ok(None) => continue,
            Ok(Some(prepared)) => {
                record.channel = prepared.channel.to_string();
                record.target = prepared.display;
                record.payload = prepared.payload;
            }
            Err(error) => {
                record.status = "failed".into();
                record.last_error = Some(error);
            }
        }
        match store.insert_notification(&record).await {
            Ok(id) => record.id = id,
            Err(err) => {
                tracing::error!(error = %err, "could not log a notification");
                continue;
            }
        }
        if record.status == "pending" {
            sends.push(deliver(&store, &config, &outbound, &metrics, record));
        } else {
            metrics.notification(&record.channel, false);
        }
    }
    futures::future::join_all(sends).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_reference() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed with Python's hmac module.
        assert_eq!(
            signature("secret", 1_700_000_000, "{}"),
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(
            signature("secret", 1_700_000_000, "{}"),
            signature("other", 1_700_000_000, "{}")
        );
    }

    #[test]
    fn templates_must_render_json() {
        let event = json!({"agent_id": "writer", "status": "completed"});
        let rendered = render_template(
            r#"{"text": "{{ event.agent_id }} {{ event.status }}", "raw": {{ event | tojson }}}"#,
            &event,
        );
        assert_eq!(
            rendered.ok().map(|v| v["text"].clone()),
            Some(json!("writer completed"))
        );
        assert!(render_template("not json {{ event.agent_id }}", &event).is_err());
    }
}
