//! Live operations: readiness (the store, the queue broker and the scheduler's Redis lock,
//! each behind a TCP proxy that the test closes; the errors withheld from a caller nobody
//! authenticated), shutdown that delivers a pending webhook, and runs unfinished at the
//! shutdown deadline recorded with the reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_gateway::{Actor, Gateway};
use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn readiness_checks_the_store_and_health_stays_cheap() {
    let ws = TestWorkspace::new();
    ws.agent("helper", "description: helps", "Help.");
    let (_mock, server) = start(&ws).await;
    let (status, body) = server.get("/v1/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["store"]["status"], "ok", "{body}");
    assert!(body["checks"].get("queue").is_none(), "no broker: {body}");
    let (status, health) = server.get("/v1/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert!(health.get("reload").is_none(), "no reload yet: {health}");
}

/// A TCP proxy to `target` on a port of its own, that can be closed (listener and every
/// forwarded connection) and opened again on the same port.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    pub(crate) async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            target: target.to_string(),
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        let tasks = Arc::clone(&self.tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(forward);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stops listening and cuts every forwarded connection; returns once every socket is
    /// closed (an aborted task drops its sockets only when it is next polled).
    pub(crate) async fn close(&self) {
        let tasks: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    pub(crate) async fn reopen(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

/// `(user-part, host:port, rest)` of a service URL (`default_port` when it names none).
pub(crate) fn split_url(url: &str, default_port: u16) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{scheme}://{user}@"), host.to_string()),
        None => (format!("{scheme}://"), authority.to_string()),
    };
    let host = if host.contains(':') {
        host
    } else {
        format!("{host}:{default_port}")
    };
    (user, host, path.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_fails_while_postgresql_is_unreachable() {
    let Some(url) = test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let (user, target, path) = split_url(&url, 5432);
    let proxy = Proxy::start(&target).await;
    let proxied = format!("{user}127.0.0.1:{}{path}", proxy.port);
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
    let server = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let (status, body) = server.get("/v1/ready").await;
    assert_eq!(status, 200, "{body}");

    proxy.close().await;
    let asked = Instant::now();
    let (status, body) = server.get("/v1/ready").await;
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "readiness fails fast: {:?}",
        asked.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "not_ready");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{body}");
    assert_eq!(details[0]["loc"], json!(["checks", "store"]), "{body}");
    assert_eq!(details[0]["type"], "check_failed");
    assert!(
        !details[0]["msg"].as_str().unwrap().is_empty(),
        "the store's error: {body}"
    );
    // Liveness does not depend on the database.
    let (status, _) = server.get("/v1/health").await;
    assert_eq!(status, 200);

    proxy.reopen().await;
    let mut ready = false;
    for _ in 0..50 {
        if server.get("/v1/ready").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "ready again once the database is back");

    server.gateway.shutdown().await;
    if let Ok(mut connection) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut connection)
        .await;
    }
}

/// A proxy to the service of `url`, and `url` through it.
pub(crate) async fn behind_proxy(url: &str, default_port: u16) -> (Proxy, String) {
    let (user, target, path) = split_url(url, default_port);
    let proxy = Proxy::start(&target).await;
    let proxied = format!("{user}127.0.0.1:{}{path}", proxy.port);
    (proxy, proxied)
}

/// A server whose `gateway.yaml` adds `yaml` to the model.
async fn server_with(yaml: &str) -> (TestWorkspace, MockLlm, TestServer) {
    let ws = TestWorkspace::new();
    ws.config(&format!("model:\n  default: {MODEL}\n{yaml}"));
    ws.agent("helper", "description: helps", "Help.");
    let (mock, server) = start(&ws).await;
    (ws, mock, server)
}

/// `GET /v1/ready` with `key`, until it answers `status` (10 s at most); the last answer.
async fn ready_until(server: &TestServer, key: Option<&str>, status: u16) -> (u16, Value) {
    let mut answer = (0, Value::Null);
    for _ in 0..50 {
        let mut request = server.client.get(format!("{}/v1/ready", server.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        answer = (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        );
        if answer.0 == status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    answer
}

/// Ready with `check` ok while the proxy is open; once it is closed, 503 `not_ready` naming
/// `check` alone, with its error.
async fn readiness_follows(server: &TestServer, proxy: &Proxy, check: &str) {
    let (status, body) = server.get("/v1/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"][check]["status"], "ok", "{body}");
    assert_eq!(body["checks"]["store"]["status"], "ok", "{body}");
    proxy.close().await;
    let (status, body) = ready_until(server, None, 503).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "not_ready");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{body}");
    assert_eq!(details[0]["loc"], json!(["checks", check]), "{body}");
    assert_eq!(details[0]["type"], "check_failed");
    let msg = details[0]["msg"].as_str().unwrap();
    assert!(
        !msg.is_empty() && msg != "failed",
        "the error, auth being off: {body}"
    );
    // Liveness does not depend on the broker.
    assert_eq!(server.get("/v1/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_checks_the_redis_queue() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let (proxy, proxied) = behind_proxy(&url, 6379).await;
    let stream = format!("agw-test-ready-{}", uuid::Uuid::new_v4().simple());
    let (_ws, _mock, server) = server_with(&format!(
        "queue:\n  backend: redis\n  redis_url: {proxied}\n  stream_key: {stream}\n  workers: 0\n"
    ))
    .await;
    readiness_follows(&server, &proxy, "queue").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_checks_the_rabbitmq_queue() {
    let Some(url) = test_services::service_url("TEST_RABBITMQ_URL", "RabbitMQ") else {
        return;
    };
    let (proxy, proxied) = behind_proxy(&url, 5672).await;
    let queue = format!("agw.test.ready.{}", uuid::Uuid::new_v4().simple());
    let (_ws, _mock, server) = server_with(&format!(
        "queue:\n  backend: rabbitmq\n  rabbitmq_url: \"{proxied}\"\n  queue_name: {queue}\n  workers: 0\n"
    ))
    .await;
    readiness_follows(&server, &proxy, "queue").await;
    crate::queues::delete_rabbitmq_queues(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_checks_the_scheduler_lock() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let (proxy, proxied) = behind_proxy(&url, 6379).await;
    let (_ws, _mock, server) = server_with(&format!(
        "scheduler:\n  distributed_lock:\n    enabled: true\n    backend: redis\n    redis_url: {proxied}\n"
    ))
    .await;
    readiness_follows(&server, &proxy, "scheduler_lock").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_withholds_errors_from_callers_nobody_authenticated() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let (proxy, proxied) = behind_proxy(&url, 6379).await;
    let stream = format!("agw-test-ready-{}", uuid::Uuid::new_v4().simple());
    let (_ws, _mock, server) = server_with(&format!(
        "queue:\n  backend: redis\n  redis_url: {proxied}\n  stream_key: {stream}\n  workers: 0\nauth:\n  api_keys:\n    - {{name: ops, key: ops-key, scopes: [\"metrics:read\"]}}\n"
    ))
    .await;
    // Ready: the same answer for everyone, with no error to withhold.
    let (status, body) = ready_until(&server, None, 200).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["queue"]["status"], "ok", "{body}");

    proxy.close().await;
    let port = proxy.port.to_string();
    // No credential, then a wrong one: the names of the checks and their outcome only.
    for key in [None, Some("not-a-key")] {
        let (status, body) = ready_until(&server, key, 503).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(error_code(&body), "not_ready");
        let details = body["error"]["details"].as_array().unwrap();
        assert_eq!(details.len(), 1, "{body}");
        assert_eq!(details[0]["loc"], json!(["checks", "queue"]), "{body}");
        assert_eq!(details[0]["msg"], "failed", "{body}");
        assert_eq!(
            body["error"]["message"], "Not ready: queue failed",
            "{body}"
        );
        let text = body.to_string();
        assert!(
            !text.contains(&port) && !text.contains("127.0.0.1") && !text.contains("Redis"),
            "no error text for {key:?}: {text}"
        );
    }
    // An authenticated caller (whatever its scopes) is told why.
    let (status, body) = ready_until(&server, Some("ops-key"), 503).await;
    assert_eq!(status, 503, "{body}");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details[0]["loc"], json!(["checks", "queue"]), "{body}");
    let msg = details[0]["msg"].as_str().unwrap();
    assert!(msg != "failed" && !msg.is_empty(), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Not ready: queue: "), "{body}");
}

/// A webhook receiver that takes `delay` to answer; says when it answered.
async fn slow_receiver(delay: Duration) -> (String, Arc<AtomicBool>, Arc<Mutex<Vec<Value>>>) {
    let answered = Arc::new(AtomicBool::new(false));
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (done, seen) = (Arc::clone(&answered), Arc::clone(&bodies));
    let app = axum::Router::new().fallback(move |body: String| {
        let (done, seen) = (Arc::clone(&done), Arc::clone(&seen));
        async move {
            seen.lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap_or(Value::Null));
            tokio::time::sleep(delay).await;
            done.store(true, Ordering::SeqCst);
            axum::Json(json!({"ok": true}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), answered, bodies)
}

/// Serves `gateway` until the returned sender fires; the handle ends when serving ended
/// (the gateway shut down).
async fn serve_until(
    gateway: Gateway,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        agent_gateway::serve(gateway, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (url, stop, served)
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_delivers_a_pending_webhook() {
    let (base, answered, bodies) = slow_receiver(Duration::from_millis(1500)).await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nnotifications:\n  allowed_private_hosts: [\"127.0.0.1\"]\n"
    ));
    ws.agent(
        "reporter",
        &format!(
            "description: reports\nnotifications:\n  on_complete:\n    - {{channel: webhook, url: \"{base}/done\"}}"
        ),
        "Report.",
    );
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("all done"));
    let gateway = Gateway::builder(ws.path())
        .env(mock_env(&mock))
        .build()
        .await
        .unwrap();
    let (url, stop, served) = serve_until(gateway.clone()).await;
    let response: Value = reqwest::Client::new()
        .post(format!("{url}/v1/agents/reporter/invoke"))
        .json(&json!({"message": "go"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "completed", "{response}");
    // Shut down right after the run: its webhook is still being delivered.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("shutdown ends")
        .unwrap();
    assert!(
        answered.load(Ordering::SeqCst),
        "the webhook was delivered before shutdown returned"
    );
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["execution_id"], response["execution_id"]);
    let (deliveries, _) = gateway
        .notifications()
        .list(
            &Actor::system(),
            agent_gateway::store::NotificationFilter {
                execution_id: response["execution_id"].as_str().map(String::from),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, "delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_unfinished_at_the_shutdown_deadline_are_recorded_cancelled() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nserver:\n  shutdown_timeout_s: 1\n"
    ));
    ws.agent("slow", "description: slow", "Take your time.");
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("too late").with_delay(60_000));
    let gateway = Gateway::builder(ws.path())
        .env(mock_env(&mock))
        .build()
        .await
        .unwrap();
    let (url, stop, served) = serve_until(gateway.clone()).await;
    let invoke = tokio::spawn({
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/v1/agents/slow/invoke"))
                .json(&json!({"message": "go"}))
                .send()
                .await
        }
    });
    let mut execution_id = None;
    for _ in 0..100 {
        let records = gateway
            .executions()
            .list(
                &Actor::system(),
                agent_gateway::store::ExecutionFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if let Some(record) = records.first() {
            execution_id = Some(record.execution_id.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let execution_id = execution_id.expect("the run started");
    let stopping = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .expect("shutdown ends at its deadline")
        .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    let record = gateway
        .executions()
        .get(&Actor::system(), &execution_id)
        .await
        .unwrap();
    assert_eq!(record.status.as_str(), "cancelled", "{record:?}");
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("shut down before the run finished"),
        "{record:?}"
    );
    // The caller got an answer (the cancelled run) or its connection closed; never a hang.
    let _ = tokio::time::timeout(Duration::from_secs(5), invoke).await;
}

/// Reads what the server sends until it closes the connection (5 s at most).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received));
    read.await
        .ok()
        .map(|_| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let (_ws, _mock, server) =
        server_with("server:\n  header_read_timeout_s: 1\n  body_read_timeout_s: 1\n").await;
    let addr = server.url.trim_start_matches("http://").to_string();

    // A head that never ends.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut slow)
        .await
        .expect("the connection is closed, not held");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A body that stops coming.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"POST /v1/agents/helper/invoke HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"message\": ",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut slow)
        .await
        .expect("the request ends, not held");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"),
        "408 body_timeout: {answer}"
    );

    // Everyone else is served as before.
    assert_eq!(server.get("/v1/health").await.0, 200);
}
