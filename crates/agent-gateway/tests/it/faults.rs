//! Faults, each against a real server: a model that hangs, drops the connection, cuts its
//! answer or its stream, or sends invalid JSON (a clear failure, the fallback where there is
//! one, never a stuck execution); PostgreSQL going away mid-load (503, and the pool recovers
//! without a restart); Redis going away under rate limits (they fail open, as documented) and
//! the queue (a clear 503); a full disk (503, nothing corrupted) and a read-only database (a
//! clear refusal to start).

use std::time::{Duration, Instant};

use agent_gateway::Gateway;
use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

use crate::live_ops::behind_proxy;
use crate::support::*;

async fn invoke(server: &TestServer, agent: &str, body: Value) -> (u16, Value) {
    server
        .post(&format!("/v1/agents/{agent}/invoke"), body)
        .await
}

/// The recorded status of an execution.
async fn recorded_status(server: &TestServer, id: &str) -> Value {
    server.get(&format!("/v1/executions/{id}")).await.1["status"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn model_faults_end_in_a_clear_failure_or_the_fallback() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nproviders:\n  openai:\n    max_retries: 0\n    timeout_ms: 400\n"
    ));
    ws.agent("plain", "description: no fallback", "Answer.");
    ws.agent(
        "backed",
        "description: with a fallback\nmodel:\n  name: openai/gpt-test\n  fallback: openai/backup",
        "Answer.",
    );
    let (mock, server) = start(&ws).await;
    let faults = [
        ("a model that hangs", Reply::text("late").with_delay(3000)),
        ("a dropped connection", Reply::text("never").cut_after(0)),
        (
            "an answer cut short",
            Reply::text("a long answer that is cut").cut_after(30),
        ),
        ("invalid JSON", Reply::malformed("{\"choices\": [oops")),
    ];
    for (label, fault) in faults {
        mock.push(fault.clone().for_model("gpt-test"));
        let asked = Instant::now();
        let (status, body) = invoke(&server, "plain", json!({"message": "x"})).await;
        assert!(asked.elapsed() < Duration::from_secs(3), "{label}: stuck");
        assert_eq!(status, 200, "{label}: {body}");
        assert_eq!(body["status"], "failed", "{label}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("LLM call failed"), "{label}: {body}");
        let id = body["execution_id"].as_str().unwrap();
        assert_eq!(recorded_status(&server, id).await, "failed", "{label}");

        mock.push(fault.for_model("gpt-test"));
        mock.push(Reply::text("from the fallback").for_model("backup"));
        let (status, body) = invoke(&server, "backed", json!({"message": "x"})).await;
        assert_eq!(status, 200, "{label}: {body}");
        assert_eq!(body["status"], "completed", "{label}: {body}");
        assert_eq!(body["result"]["raw_text"], "from the fallback", "{label}");
    }

    // A stream cut after two frames: the events end, with the failure, and so does the run.
    mock.push(
        Reply::text("one two three four five six")
            .cut_after(2)
            .for_model("gpt-test"),
    );
    let response = server
        .client
        .post(format!("{}/v1/agents/plain/invoke", server.url))
        .json(&json!({"message": "x", "options": {"stream": true}}))
        .send()
        .await
        .unwrap();
    let events = parse_sse(
        &tokio::time::timeout(Duration::from_secs(5), response.text())
            .await
            .expect("the stream ends")
            .unwrap(),
    );
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.ends_with(&["error", "done"]), "{names:?}");
    let (_, data) = events.last().unwrap();
    assert_eq!(data["status"], "error", "the run's stop reason: {data}");
    let id = events[0].1["execution_id"].as_str().unwrap();
    assert_eq!(recorded_status(&server, id).await, "failed");

    // A stream that stalls: the provider's limit (400 ms between chunks here) ends the call.
    let (events, text) = streamed_invoke(
        &server,
        &mock,
        Reply::text("slow words come here")
            .with_chunk_delay(10_000)
            .for_model("gpt-test"),
        json!({}),
    )
    .await;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "done", "{text}");
    assert_eq!(data["status"], "error", "{data}");
    assert!(text.contains("400 ms"), "says which limit: {text}");
    let id = events[0].1["execution_id"].as_str().unwrap();
    assert_eq!(recorded_status(&server, id).await, "failed");

    // A stream that trickles on past the run's deadline: the run ends `timeout`.
    let words = vec!["word"; 40].join(" ");
    let (events, text) = streamed_invoke(
        &server,
        &mock,
        Reply::text(words)
            .with_chunk_delay(250)
            .for_model("gpt-test"),
        json!({"timeout_ms": 1000}),
    )
    .await;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "done", "{text}");
    assert_eq!(data["status"], "timeout", "{data}");
    let id = events[0].1["execution_id"].as_str().unwrap();
    assert_eq!(recorded_status(&server, id).await, "timeout");
}

/// A streamed invoke of `plain` answered by `reply`, with extra `options`: its events and
/// text, which must end within 5 s.
async fn streamed_invoke(
    server: &TestServer,
    mock: &MockLlm,
    reply: Reply,
    options: Value,
) -> (Vec<(String, Value)>, String) {
    mock.push(reply);
    let mut body = json!({"message": "x", "options": {"stream": true}});
    for (key, value) in options.as_object().unwrap() {
        body["options"][key] = value.clone();
    }
    let response = server
        .client
        .post(format!("{}/v1/agents/plain/invoke", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(5), response.text())
        .await
        .expect("the stream ends")
        .unwrap();
    (parse_sse(&text), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_going_away_gives_503_and_the_pool_recovers() {
    let Some(url) = test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let (proxy, proxied) = behind_proxy(&url, 5432).await;
    let schema = format!("gw_{}", uuid::Uuid::new_v4().simple());
    let ws = TestWorkspace::new();
    ws.file(
        "gateway.yaml",
        &format!(
            "model:\n  default: {MODEL}\npersistence:\n  backend: postgres\n  url: \"{proxied}\"\n  db_schema: {schema}\n"
        ),
    );
    ws.agent("helper", "description: helps", "Help.");
    let mock = MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("ok"));
    let server = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let (status, before) = invoke(&server, "helper", json!({"message": "x"})).await;
    assert_eq!(status, 200, "{before}");

    proxy.close().await;
    let asked = Instant::now();
    let (status, body) = invoke(&server, "helper", json!({"message": "x"})).await;
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "storage_unavailable");
    let (status, body) = server.get("/v1/executions").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "storage_unavailable");

    proxy.reopen().await;
    let mut recovered = None;
    for _ in 0..50 {
        let (status, body) = invoke(&server, "helper", json!({"message": "x"})).await;
        if status == 200 {
            recovered = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = recovered.expect("the pool recovers without a restart");
    assert_eq!(recovered["status"], "completed");
    let id = before["execution_id"].as_str().unwrap();
    assert_eq!(recorded_status(&server, id).await, "completed");
    // Nothing the outage touched was left running.
    let (_, running) = server.get("/v1/executions?status=running").await;
    assert_eq!(running, json!([]), "{running}");

    server.gateway.shutdown().await;
    if let Ok(mut connection) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut connection)
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_going_away_rate_limits_fail_open_and_queued_runs_fail_clearly() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let (limits, limits_url) = behind_proxy(&url, 6379).await;
    let (queue, queue_url) = behind_proxy(&url, 6379).await;
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nrate_limit:\n  enabled: true\n  default_limit: 1000/minute\n  routes:\n    \"/v1/agents\": 2/minute\n  storage_uri: \"{limits_url}\"\nqueue:\n  backend: redis\n  redis_url: \"{queue_url}\"\n  stream_key: \"agw-faults-{prefix}\"\n  consumer_group: \"g-{prefix}\"\n"
    ));
    ws.agent("helper", "description: helps", "Help.");
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("ok"));

    for _ in 0..2 {
        assert_eq!(server.get("/v1/agents").await.0, 200);
    }
    assert_eq!(
        server.get("/v1/agents").await.0,
        429,
        "limited while Redis is up"
    );
    limits.close().await;
    // Documented degraded mode: without their storage, limits let requests through.
    assert_eq!(server.get("/v1/agents").await.0, 200, "fails open");
    limits.reopen().await;
    let mut limited = false;
    for _ in 0..50 {
        if server.get("/v1/agents").await.0 == 429 {
            limited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(limited, "limits hold again once Redis is back");

    let (status, body) = invoke(
        &server,
        "helper",
        json!({"message": "x", "options": {"async": true}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    queue.close().await;
    let (status, body) = invoke(
        &server,
        "helper",
        json!({"message": "x", "options": {"async": true}}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "queue_unavailable");
    queue.reopen().await;
    let mut accepted = None;
    for _ in 0..50 {
        let (status, body) = invoke(
            &server,
            "helper",
            json!({"message": "x", "options": {"async": true}}),
        )
        .await;
        if status == 202 {
            accepted = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let accepted = accepted.expect("the queue takes runs again");
    let id = accepted["execution_id"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = recorded_status(&server, id).await;
        if status == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "completed");
}

/// A small tmpfs mounted for the test (needs root, as CI has), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Self { dir }
    }

    /// Remounts `ro` or `rw`, trying for a few seconds: a read-only remount waits until the
    /// last writer (a pooled connection closing) lets go.
    async fn remount(&self, mode: &str) {
        for _ in 0..50 {
            let done = std::process::Command::new("mount")
                .args(["-o", &format!("remount,{mode}")])
                .arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if done.success() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not remount {mode}");
    }

    /// Fills the disk; the filler file's path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Invokes until one answers `status` (30 tries); the answers before it must be 200 or
/// `status` — never a 500.
async fn invoke_until(server: &TestServer, status: u16) -> Value {
    for _ in 0..30 {
        let (got, body) = invoke(server, "helper", json!({"message": "x"})).await;
        if got == status {
            return body;
        }
        assert_eq!(got, 200, "{body}");
    }
    panic!("never answered {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_or_a_read_only_database_gives_503_and_corrupts_nothing() {
    let disk = SmallDisk::mount("3m");
    let db = disk.dir.path().join("gateway.db");
    let ws = TestWorkspace::new();
    ws.file(
        "gateway.yaml",
        &format!(
            "model:\n  default: {MODEL}\npersistence:\n  url: \"sqlite:///{}\"\n",
            db.display()
        ),
    );
    ws.agent("helper", "description: helps", "Help.");
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("ok"));
    let mut answered = Vec::new();
    for _ in 0..3 {
        let (status, body) = invoke(&server, "helper", json!({"message": "x"})).await;
        assert_eq!(status, 200, "{body}");
        answered.push(body["execution_id"].as_str().unwrap().to_string());
    }

    let filler = disk.fill();
    let body = invoke_until(&server, 503).await;
    assert_eq!(error_code(&body), "storage_unavailable", "{body}");
    std::fs::remove_file(&filler).unwrap();
    let body = invoke_until(&server, 200).await;
    assert_eq!(body["status"], "completed", "the disk has room again");
    answered.push(body["execution_id"].as_str().unwrap().to_string());

    for id in &answered {
        assert_eq!(recorded_status(&server, id).await, "completed", "{id}");
    }
    server.gateway.shutdown().await;
    drop(server);

    // A database on a read-only disk (remounted once nothing holds it open: the kernel
    // refuses while a writer does): the gateway does not start, and says why.
    disk.remount("ro").await;
    let refused = Gateway::builder(ws.path())
        .env(mock_env(&mock))
        .build()
        .await;
    let err = refused
        .err()
        .expect("no gateway on a read-only database")
        .to_string();
    // SQLite refuses either at opening (the file named, and why) or at the first write,
    // depending on the files a previous run left (a readonly database).
    let opened = err.contains(&db.display().to_string()) && err.contains("read-only file system");
    assert!(
        opened || err.contains("readonly database"),
        "says which file or that it is read-only: {err}"
    );
    disk.remount("rw").await;
    let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    let check: (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(check.0, "ok");
    let running: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM executions WHERE status = 'running'")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!(running.0, 0, "no execution left running");
}
