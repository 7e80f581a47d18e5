//! `serve` in operation: `--reload` picks up file edits without a restart and rejects a
//! broken one (reported with its file and line on /v1/health while the old agents keep
//! serving); `log.format: json` writes one JSON object per line with the run's ids;
//! `--worker-only` serves `/metrics` on `metrics.listen`, counting the jobs it ran.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

use super::{
    bin, free_port, post_json, rand_suffix, serve_command, serve_with, wait_healthy, write,
};

/// Stops the server on drop, whatever the test's outcome.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(ws: &Path, port: u16, mock: &MockLlm, extra: &[&str], stderr: Stdio) -> Server {
    let child = serve_command(ws, port)
        .args(extra)
        .env("OPENAI_API_KEY", "sk-test-secret-0123456789")
        .env("OPENAI_API_BASE", mock.openai_base())
        .env("RUST_LOG", "info")
        .stderr(stderr)
        .spawn()
        .unwrap();
    Server(child)
}

async fn get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `path` until `done` holds for its body (10 s at most); returns the last body.
async fn poll(base: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut body = Value::Null;
    for _ in 0..100 {
        body = get(base, path).await;
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_reload_picks_up_edits_and_rejects_broken_ones() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("still here"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write(
        ws,
        "gateway.yaml",
        "model:\n  default: openai/gpt-test\npersistence:\n  url: sqlite:///state/gateway.db\n",
    );
    let agent = "agents/greeter/AGENT.md";
    write(ws, agent, "---\ndescription: first words\n---\nGreet.\n");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = serve(ws, port, &mock, &["--reload"], Stdio::null());
    wait_healthy(&base).await;
    assert_eq!(
        get(&base, "/v1/agents/greeter").await["description"],
        "first words"
    );

    write(ws, agent, "---\ndescription: second words\n---\nGreet.\n");
    let body = poll(&base, "/v1/agents/greeter", |b| {
        b["description"] == "second words"
    })
    .await;
    assert_eq!(
        body["description"], "second words",
        "edit picked up: {body}"
    );
    let health = get(&base, "/v1/health").await;
    assert_eq!(health["reload"]["status"], "ok", "{health}");

    // A broken edit: the running agents stay, the problem is reported with file and line.
    write(ws, agent, "---\ndescription: [unclosed\n---\nGreet.\n");
    let health = poll(&base, "/v1/health", |h| h["reload"]["status"] == "failed").await;
    assert_eq!(health["reload"]["status"], "failed", "{health}");
    assert_eq!(
        health["status"], "ok",
        "the running generation is fine: {health}"
    );
    let problems = health["reload"]["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{health}");
    assert_eq!(problems[0]["file"], agent, "{health}");
    assert_eq!(problems[0]["line"], 2, "{health}");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("frontmatter"),
        "{health}"
    );
    assert!(health["reload"]["at"].is_string());
    let body = get(&base, "/v1/agents/greeter").await;
    assert_eq!(
        body["description"], "second words",
        "old agent serves: {body}"
    );
    let answer: Value = post_json(
        format!("{base}/v1/agents/greeter/invoke"),
        &json!({"message": "hi"}),
    )
    .await;
    assert_eq!(answer["result"]["raw_text"], "still here", "{answer}");

    // Fixed again: taken.
    write(ws, agent, "---\ndescription: third words\n---\nGreet.\n");
    let body = poll(&base, "/v1/agents/greeter", |b| {
        b["description"] == "third words"
    })
    .await;
    assert_eq!(body["description"], "third words", "{body}");
    assert_eq!(get(&base, "/v1/health").await["reload"]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_execution_id() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("logged"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    write(
        &ws,
        "gateway.yaml",
        "model:\n  default: openai/gpt-test\nlog:\n  format: json\n  level: warn\npersistence:\n  url: sqlite:///state/gateway.db\n",
    );
    write(&ws, "agents/greeter/AGENT.md", "Greet.\n");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = serve(&ws, port, &mock, &[], Stdio::from(log));
    wait_healthy(&base).await;
    let answer: Value = post_json(
        format!("{base}/v1/agents/greeter/invoke"),
        &json!({"message": "hi"}),
    )
    .await;
    let execution_id = answer["execution_id"].as_str().unwrap().to_string();

    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log_path).unwrap();
        lines = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines
            .iter()
            .any(|l| l["span"]["execution_id"] == execution_id.as_str())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = lines
        .iter()
        .find(|l| l["span"]["execution_id"] == execution_id.as_str())
        .unwrap_or_else(|| panic!("no line of execution {execution_id} in {lines:?}"));
    assert_eq!(ended["message"], "execution ended", "{ended}");
    assert_eq!(ended["status"], "completed", "{ended}");
    // Written while handling the request: the request's id is on the line too.
    let spans = ended["spans"].as_array().unwrap();
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "request"
                && s["request_id"].as_str().is_some_and(|id| !id.is_empty())),
        "{ended}"
    );
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains("sk-test-secret"), "no secret in the log");
}

/// `serve --worker-only` over `ws`, talking to the mock, with extra environment.
fn worker_only(ws: &Path, mock: &MockLlm, env: &[(&str, &str)]) -> Server {
    let child = bin()
        .args(["serve", "--worker-only", "-w"])
        .arg(ws)
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server(child)
}

/// `GET /metrics` on 127.0.0.1:`port` once it answers (10 s at most): the exposition.
async fn scrape(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(&url).await {
            assert_eq!(response.status(), 200);
            let content_type = response.headers()["content-type"].to_str().unwrap();
            assert!(
                content_type.starts_with("text/plain; version=0.0.4"),
                "{content_type}"
            );
            return response.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing serves {url}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_serves_metrics_on_the_listen_address() {
    let mock = MockLlm::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let port = free_port();
    write(
        ws,
        "gateway.yaml",
        &format!(
            "model:\n  default: openai/gpt-test\npersistence:\n  url: sqlite:///gateway.db\nqueue:\n  backend: memory\nmetrics:\n  listen: \"127.0.0.1:{port}\"\n"
        ),
    );
    write(ws, "agents/greeter/AGENT.md", "Greet.\n");
    let _worker = worker_only(ws, &mock, &[]);
    let text = scrape(port).await;
    for family in [
        "# TYPE agw_executions_total counter\n",
        "# TYPE agw_model_calls_total counter\n",
        "# TYPE agw_queue_depth gauge\n",
    ] {
        assert!(text.contains(family), "{family} in {text}");
    }
    // Read at scrape time from the worker's own queue.
    assert!(
        text.contains("agw_queue_depth{backend=\"memory\"} 0\n"),
        "{text}"
    );
    // No API beside it: only /metrics.
    let other = reqwest::get(format!("http://127.0.0.1:{port}/v1/health"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_counts_the_jobs_it_ran_on_its_metrics() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let mock = MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("done by the worker"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let stream = format!("agw-cli-metrics-{}", rand_suffix());
    write(
        ws,
        "gateway.yaml",
        &format!(
            "model:\n  default: openai/gpt-test\npersistence:\n  url: sqlite:///gateway.db\nqueue:\n  backend: redis\n  redis_url: {url}\n  stream_key: {stream}\n  workers: 1\n"
        ),
    );
    write(
        ws,
        "agents/slow/AGENT.md",
        "---\nexecution_mode: async\n---\nTake your time.\n",
    );
    // The API takes no jobs; the worker alone listens for metrics (set for it only).
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _api = Server(serve_with(
        ws,
        port,
        &mock,
        &[("AGENT_GATEWAY_QUEUE__WORKERS", "0")],
    ));
    wait_healthy(&base).await;
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let _worker = worker_only(ws, &mock, &[("AGENT_GATEWAY_METRICS__LISTEN", &listen)]);
    let queued: Value = post_json(
        format!("{base}/v1/agents/slow/invoke"),
        &json!({"message": "go"}),
    )
    .await;
    let id = queued["execution_id"].as_str().unwrap();
    let record = poll(&base, &format!("/v1/executions/{id}"), |r| {
        r["status"] == "completed"
    })
    .await;
    assert_eq!(record["status"], "completed", "{record}");
    let completed = "agw_executions_total{agent=\"slow\",status=\"completed\"} 1\n";
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(metrics_port).await;
        if text.contains(completed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains(completed), "{text}");
    assert!(
        text.contains("agw_queue_depth{backend=\"redis\"} 0\n"),
        "{text}"
    );
}
