//! `/metrics`: the Prometheus text format read by a small parser of its own (HELP, TYPE,
//! samples with escaped labels; a malformed line fails the test) after known traffic —
//! invokes, a tool call, a failed model call, a chat turn, a run its queue refused — and its
//! guard and separate listener.

use std::collections::{BTreeMap, HashMap};

use mock_llm::Reply;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A series' labels (name, value), sorted by name.
type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: each family's type and help, every sample in order.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    helps: HashMap<String, String>,
    samples: Vec<Sample>,
}

fn is_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_value(text: &str, line: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("bad value {other:?} in {line:?}")),
    }
}

/// `{a="x",b="y\"z"}` from just after `{`: the labels and what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\" in {line:?}"));
        assert!(is_name(name, false), "bad label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((at, '"')) => break at,
                Some((_, '\n')) | None => panic!("unterminated label value in {line:?}"),
                Some((_, c)) => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label {name} twice in {line:?}"
        );
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else {
            assert!(rest.starts_with('}'), "expected , or }} in {line:?}");
        }
    }
}

fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    assert!(text.ends_with('\n'), "the exposition ends with a line feed");
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.as_slice() {
                ["HELP", name, help] => {
                    assert!(is_name(name, true), "bad name in {line:?}");
                    assert!(
                        out.helps
                            .insert(name.to_string(), help.to_string())
                            .is_none(),
                        "HELP twice for {name}"
                    );
                }
                ["TYPE", name, kind] => {
                    assert!(is_name(name, true), "bad name in {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(kind),
                        "bad type in {line:?}"
                    );
                    assert!(
                        !out.samples
                            .iter()
                            .any(|s| family_of(&out, &s.name) == *name),
                        "TYPE after samples of {name}"
                    );
                    assert!(
                        out.types
                            .insert(name.to_string(), kind.to_string())
                            .is_none(),
                        "TYPE twice for {name}"
                    );
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = &line[..name_end];
        assert!(is_name(name, true), "bad metric name in {line:?}");
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(rest) => parse_labels(rest, line),
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let rest = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        let mut parts = rest.split(' ');
        let value = parse_value(parts.next().unwrap_or_default(), line);
        if let Some(timestamp) = parts.next() {
            timestamp
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
        }
        assert!(parts.next().is_none(), "trailing text in {line:?}");
        let sample = Sample {
            name: name.to_string(),
            labels,
            value,
        };
        assert!(
            out.types.contains_key(&family_of(&out, name)),
            "sample before its TYPE: {line:?}"
        );
        out.samples.push(sample);
    }
    out
}

/// The family a sample belongs to (a histogram's `_bucket`, `_sum`, `_count`).
fn family_of(exposition: &Exposition, name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && exposition.types.get(base).map(String::as_str) == Some("histogram")
        {
            return base.to_string();
        }
    }
    name.to_string()
}

impl Exposition {
    /// The samples of `name` whose labels include every pair of `with`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the matching samples (0 when none).
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.matching(name, with).map(|s| s.value).sum()
    }

    /// Every histogram: buckets ascending in `le` and cumulative, `+Inf` equal to `_count`.
    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let bucket = format!("{family}_bucket");
            let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for sample in self.samples.iter().filter(|s| s.name == bucket) {
                let mut labels = sample.labels.clone();
                let le = labels
                    .remove("le")
                    .unwrap_or_else(|| panic!("{bucket} without le"));
                series
                    .entry(labels.into_iter().collect())
                    .or_default()
                    .push((parse_value(&le, &le), sample.value));
            }
            for (labels, buckets) in series {
                assert!(
                    buckets
                        .windows(2)
                        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                    "{family} {labels:?}: buckets not ascending and cumulative: {buckets:?}"
                );
                let (last_le, last) = *buckets.last().unwrap();
                assert_eq!(last_le, f64::INFINITY, "{family} {labels:?} ends with +Inf");
                let with: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let count_name = format!("{family}_count");
                let count: Vec<&Sample> = self
                    .matching(&count_name, &with)
                    .filter(|s| s.labels.len() == with.len())
                    .collect();
                assert_eq!(count.len(), 1, "{family} {labels:?}: one _count");
                assert_eq!(
                    count[0].value, last,
                    "{family} {labels:?}: _count = +Inf bucket"
                );
                let sums = self
                    .matching(&format!("{family}_sum"), &with)
                    .filter(|s| s.labels.len() == with.len())
                    .count();
                assert_eq!(sums, 1, "{family} {labels:?}: one _sum");
            }
        }
    }
}

async fn scrape(client: &reqwest::Client, url: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
    }
    (status, response.text().await.unwrap())
}

async fn post(server: &TestServer, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .post(format!("{}{path}", server.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn workspace(extra: &str) -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nproviders:\n  openai:\n    max_retries: 0\nauth:\n  api_keys:\n    - {{name: root, key: root-key}}\n    - {{name: scraper, key: scraper-key, scopes: [\"metrics:read\"]}}\n    - {{name: caller, key: caller-key, scopes: [\"agents:invoke\"]}}\n{extra}"
    ));
    ws.agent("assistant", "description: helps\ntools: [add]", "Help.");
    ws.python_tool(
        "add",
        "  a:\n    type: number\n  b:\n    type: number",
        "def handle(arguments, context):\n    return {'sum': arguments['a'] + arguments['b']}\n",
    );
    ws
}

const MODEL_LABEL: (&str, &str) = ("model", MODEL);

#[tokio::test]
async fn metrics_count_known_traffic() {
    let ws = workspace("");
    let (mock, server) = start(&ws).await;
    let url = format!("{}/metrics", server.url);
    let invokes = 3;
    let mut cost = 0.0;
    for i in 0..invokes {
        mock.push(Reply::text(format!("answer {i}")).with_usage(7, 3));
        let (status, body) = post(
            &server,
            "/v1/agents/assistant/invoke",
            "caller-key",
            json!({"message": "hi"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "completed");
        cost += body["usage"]["cost_usd"].as_f64().unwrap();
    }
    // One tool call: two model calls.
    mock.push(Reply::tool_call("add", json!({"a": 2, "b": 40})).with_usage(7, 3));
    mock.push(Reply::text("42").with_usage(7, 3));
    let (status, body) = post(
        &server,
        "/v1/agents/assistant/invoke",
        "caller-key",
        json!({"message": "2+40?"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["tool_calls"], 1, "{body}");
    cost += body["usage"]["cost_usd"].as_f64().unwrap();
    // One failed model call.
    mock.push(Reply::error(400, None));
    let (status, body) = post(
        &server,
        "/v1/agents/assistant/invoke",
        "caller-key",
        json!({"message": "fail"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    // One chat turn.
    mock.push(Reply::text("hello").with_usage(7, 3));
    let (status, body) = post(
        &server,
        "/v1/agents/assistant/chat",
        "caller-key",
        json!({"message": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The guard: no credential, then a key without `metrics:read`.
    let (status, _) = scrape(&server.client, &url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = scrape(&server.client, &url, Some("caller-key")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_code(&serde_json::from_str(&body).unwrap()),
        "insufficient_scope"
    );
    let (status, text) = scrape(&server.client, &url, Some("scraper-key")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let metrics = parse(&text);
    metrics.check_histograms();

    // Every family has its HELP and TYPE.
    for (family, kind) in [
        ("agw_http_requests_total", "counter"),
        ("agw_http_request_duration_seconds", "histogram"),
        ("agw_executions_total", "counter"),
        ("agw_execution_duration_seconds", "histogram"),
        ("agw_model_calls_total", "counter"),
        ("agw_model_call_duration_seconds", "histogram"),
        ("agw_model_tokens_total", "counter"),
        ("agw_model_cost_usd_total", "counter"),
        ("agw_tool_calls_total", "counter"),
        ("agw_tool_call_duration_seconds", "histogram"),
        ("agw_queue_depth", "gauge"),
        ("agw_queue_oldest_age_seconds", "gauge"),
        ("agw_chat_sessions_active", "gauge"),
        ("agw_schedule_fires_total", "counter"),
        ("agw_schedule_misfires_total", "counter"),
        ("agw_notification_deliveries_total", "counter"),
    ] {
        assert_eq!(
            metrics.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
        assert!(metrics.helps.contains_key(family), "{family}");
    }

    // Requests, by route template.
    let invoke = ("route", "/v1/agents/{agent_id}/invoke");
    let requests = "agw_http_requests_total";
    let ok = [invoke, ("method", "POST"), ("status", "200")];
    assert_eq!(metrics.sum(requests, &ok), f64::from(invokes + 2));
    assert_eq!(
        metrics.sum("agw_http_request_duration_seconds_count", &ok),
        f64::from(invokes + 2)
    );
    let chat = [("route", "/v1/agents/{agent_id}/chat"), ("status", "200")];
    assert_eq!(metrics.sum(requests, &chat), 1.0);
    let metrics_route = [("route", "/metrics"), ("method", "GET")];
    assert_eq!(
        metrics.sum(requests, &[metrics_route[0], ("status", "401")]),
        1.0
    );
    assert_eq!(
        metrics.sum(requests, &[metrics_route[0], ("status", "403")]),
        1.0
    );
    assert!(
        metrics
            .samples
            .iter()
            .filter_map(|s| s.labels.get("route"))
            .all(|route| !route.contains("/assistant")),
        "routes are templates, not paths"
    );

    // Executions by agent and status.
    let agent = ("agent", "assistant");
    let executions = "agw_executions_total";
    let completed = f64::from(invokes + 2);
    assert_eq!(
        metrics.sum(executions, &[agent, ("status", "completed")]),
        completed
    );
    assert_eq!(metrics.sum(executions, &[agent, ("status", "failed")]), 1.0);
    assert_eq!(
        metrics.sum("agw_execution_duration_seconds_count", &[agent]),
        completed + 1.0
    );

    // Model calls, tokens and cost.
    let calls = "agw_model_calls_total";
    let answered = f64::from(invokes + 3);
    assert_eq!(
        metrics.sum(calls, &[MODEL_LABEL, ("outcome", "ok")]),
        answered
    );
    assert_eq!(
        metrics.sum(calls, &[MODEL_LABEL, ("outcome", "error")]),
        1.0
    );
    let tokens = "agw_model_tokens_total";
    assert_eq!(
        metrics.sum(tokens, &[MODEL_LABEL, ("type", "input")]),
        7.0 * answered
    );
    assert_eq!(
        metrics.sum(tokens, &[MODEL_LABEL, ("type", "output")]),
        3.0 * answered
    );
    let counted_cost = metrics.sum("agw_model_cost_usd_total", &[MODEL_LABEL]);
    assert!(
        (counted_cost - cost).abs() < 1e-4,
        "{counted_cost} vs {cost}"
    );

    // Tool calls.
    let add = ("tool", "add");
    assert_eq!(
        metrics.sum("agw_tool_calls_total", &[add, ("success", "true")]),
        1.0
    );
    assert_eq!(
        metrics.sum("agw_tool_calls_total", &[add, ("success", "false")]),
        0.0
    );
    assert_eq!(
        metrics.sum("agw_tool_call_duration_seconds_count", &[add]),
        1.0
    );

    // Gauges read at scrape time: the chat session, an empty queue.
    assert_eq!(metrics.sum("agw_chat_sessions_active", &[]), 1.0);
    let depth: Vec<&Sample> = metrics.matching("agw_queue_depth", &[]).collect();
    assert_eq!(depth.len(), 1, "{depth:?}");
    assert_eq!(depth[0].value, 0.0);
}

#[tokio::test]
async fn a_separate_listen_address_serves_metrics_without_auth() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let ws = workspace(&format!("metrics:\n  listen: \"127.0.0.1:{port}\"\n"));
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("hi"));
    let (status, _) = post(
        &server,
        "/v1/agents/assistant/invoke",
        "caller-key",
        json!({"message": "hi"}),
    )
    .await;
    assert_eq!(status, 200);
    let separate = format!("http://127.0.0.1:{port}/metrics");
    let (status, text) = scrape(&server.client, &separate, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let metrics = parse(&text);
    metrics.check_histograms();
    assert_eq!(
        metrics.sum(
            "agw_executions_total",
            &[("agent", "assistant"), ("status", "completed")]
        ),
        1.0
    );
    // The main address still asks for the scope.
    let (status, _) = scrape(&server.client, &format!("{}/metrics", server.url), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_its_queue_refused_counts_as_failed() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let stream = format!("agw-test-refused-{}", uuid::Uuid::new_v4().simple());
    let ws = workspace(&format!(
        "queue:\n  backend: redis\n  redis_url: {url}\n  stream_key: {stream}\n  workers: 0\n"
    ));
    ws.agent("later", "execution_mode: async", "Later.");
    let (_mock, server) = start(&ws).await;
    // The stream's key turned into a string: Redis refuses to add the job (WRONGTYPE).
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&stream)
        .arg("not a stream")
        .query_async(&mut redis)
        .await
        .unwrap();
    let (status, body) = post(
        &server,
        "/v1/agents/later/invoke",
        "caller-key",
        json!({"message": "hi"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "queue_unavailable");
    let (status, text) = scrape(
        &server.client,
        &format!("{}/metrics", server.url),
        Some("scraper-key"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let metrics = parse(&text);
    metrics.check_histograms();
    let agent = ("agent", "later");
    assert_eq!(
        metrics.sum("agw_executions_total", &[agent, ("status", "failed")]),
        1.0,
        "{text}"
    );
    // It never ran: no duration to observe.
    assert_eq!(
        metrics.sum("agw_execution_duration_seconds_count", &[agent]),
        0.0
    );
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let ws = workspace("metrics:\n  enabled: false\n");
    let (_mock, server) = start(&ws).await;
    let (status, body) = scrape(
        &server.client,
        &format!("{}/metrics", server.url),
        Some("root-key"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[test]
fn the_parser_refuses_malformed_lines() {
    let good =
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\",y=\"\"} 1.5\n";
    let parsed = parse(good);
    assert_eq!(parsed.samples[0].labels["x"], "q\"\\\n");
    for bad in [
        "a_total 1\n",                                    // no TYPE
        "# TYPE a_total counter\na_total{x=\"1} 1\n",     // unterminated value
        "# TYPE a_total counter\na_total{x=1} 1\n",       // unquoted value
        "# TYPE a_total counter\na_total one\n",          // not a number
        "# TYPE a_total counter\n9a 1\n",                 // bad name
        "# TYPE a_total counter\na_total{x=\"\\t\"} 1\n", // bad escape
        "# TYPE a_total counter\na_total 1 2 3\n",        // trailing text
        "# TYPE a_total bogus\n",                         // bad type
    ] {
        let result = std::panic::catch_unwind(|| parse(bad));
        assert!(result.is_err(), "accepted {bad:?}");
    }
}
