//! Shared helpers: a workspace written to a temp folder, a mock LLM, and the real server on a
//! random port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_gateway::{Gateway, GatewayBuilder};
use mock_llm::MockLlm;
use serde_json::Value;

/// The model every test agent uses unless it names another.
pub const MODEL: &str = "openai/gpt-test";

/// The `gateway.yaml` section that lets MCP servers, agentgate sites and webhooks on this
/// machine be reached (the outbound policy refuses loopback addresses otherwise).
pub const ALLOW_LOOPBACK: &str = "outbound:\n  allowed_private_hosts: [\"127.0.0.1\"]\n";

/// A workspace folder built file by file.
pub struct TestWorkspace {
    dir: tempfile::TempDir,
    /// The PostgreSQL schema this workspace's tests use (dropped with the workspace).
    pg_schema: Option<(String, String)>,
}

/// Which store the black-box suite runs on: `AGW_TEST_PERSISTENCE` = `sqlite` (default),
/// `postgres` (with `TEST_POSTGRES_URL`, one schema per workspace) or `memory`.
fn postgres_schema() -> Option<(String, String)> {
    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() != Ok("postgres") {
        return None;
    }
    let Some(url) = test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        panic!("AGW_TEST_PERSISTENCE=postgres needs TEST_POSTGRES_URL");
    };
    Some((url, format!("gw_{}", uuid::Uuid::new_v4().simple())))
}

impl TestWorkspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ws = Self {
            dir,
            pg_schema: postgres_schema(),
        };
        ws.config(&format!("model:\n  default: {MODEL}\n"));
        ws
    }

    fn persistence_section(&self) -> String {
        match &self.pg_schema {
            Some((url, schema)) => format!(
                "persistence:\n  backend: postgres\n  url: \"{url}\"\n  db_schema: {schema}\n"
            ),
            // `memory`: the in-memory store (memories too, see `mock_env`); `files`: the same
            // with memories in 0.2.13's files.
            None if matches!(
                std::env::var("AGW_TEST_PERSISTENCE").as_deref(),
                Ok("memory" | "files")
            ) =>
            {
                "persistence:\n  enabled: false\n".to_string()
            }
            None => "persistence:\n  url: sqlite:///gateway.db\n".to_string(),
        }
    }

    /// The PostgreSQL (URL, schema) of this workspace, when the suite runs on PostgreSQL.
    pub fn postgres(&self) -> Option<&(String, String)> {
        self.pg_schema.as_ref()
    }

    /// Writes `gateway.yaml`: `yaml` plus the persistence section of this test run.
    pub fn config(&self, yaml: &str) {
        self.file(
            "gateway.yaml",
            &format!("{yaml}\n{}", self.persistence_section()),
        );
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    /// `agents/<id>/AGENT.md` with the given frontmatter lines.
    pub fn agent(&self, id: &str, frontmatter: &str, prompt: &str) -> &Self {
        self.file(
            &format!("agents/{id}/AGENT.md"),
            &format!("---\n{frontmatter}\n---\n{prompt}\n"),
        );
        self
    }

    pub fn skill(&self, id: &str, frontmatter: &str) -> &Self {
        self.file(
            &format!("skills/{id}/SKILL.md"),
            &format!("---\n{frontmatter}\n---\nUse the tools wisely.\n"),
        );
        self
    }

    /// A file tool with a Python handler.
    pub fn python_tool(&self, name: &str, parameters: &str, handler: &str) -> &Self {
        self.file(
            &format!("tools/{name}/TOOL.md"),
            &format!(
                "---\nname: {name}\ndescription: test tool {name}\nparameters:\n{parameters}\n---\n"
            ),
        );
        self.file(&format!("tools/{name}/handler.py"), handler);
        self
    }

    /// A file tool with an executable handler.
    #[cfg(unix)]
    pub fn executable_tool(&self, name: &str, parameters: &str, script: &str) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        self.file(
            &format!("tools/{name}/TOOL.md"),
            &format!(
                "---\nname: {name}\ndescription: test tool {name}\nparameters:\n{parameters}\n---\n"
            ),
        );
        let path = self.file(&format!("tools/{name}/handler"), script);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        self
    }
}

impl Drop for TestWorkspace {
    fn drop(&mut self) {
        if let Some((url, schema)) = self.pg_schema.take() {
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    if let Ok(mut connection) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&url).await
                    {
                        // A gateway of the test may still hold a lock (its runtime is
                        // blocked by this drop): give up rather than wait for ever.
                        let _ = sqlx::query("SET lock_timeout = '5s'")
                            .execute(&mut connection)
                            .await;
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                        )))
                        .execute(&mut connection)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The environment of a gateway whose OpenAI provider is the mock.
pub fn mock_env(mock: &MockLlm) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("OPENAI_API_KEY".to_string(), "test-key".to_string()),
        ("OPENAI_API_BASE".to_string(), mock.openai_base()),
    ]);
    // With persistence off, memories would go to 0.2.13's files (`memory.backend: auto`): the
    // `memory` run keeps them in the in-memory store, the `files` run in the files.
    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() == Ok("memory") {
        env.insert(
            "AGENT_GATEWAY_MEMORY__BACKEND".to_string(),
            "store".to_string(),
        );
    }
    env
}

/// A running server.
pub struct TestServer {
    pub url: String,
    pub client: reqwest::Client,
    pub gateway: Gateway,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start(builder: GatewayBuilder) -> Self {
        let gateway = builder.build().await.expect("gateway builds");
        Self::serve(gateway).await
    }

    /// Serves `gateway` as `agent_gateway::serve` does (hooks, graceful shutdown).
    pub async fn serve(gateway: Gateway) -> Self {
        let served = gateway.clone();
        Self::spawn(gateway, move |listener, stop| async move {
            let _ = agent_gateway::serve(served, listener, stop).await;
        })
        .await
    }

    /// Serves `router` (built from `gateway` by the test).
    pub async fn serve_router(gateway: Gateway, router: axum::Router) -> Self {
        let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        Self::spawn(gateway, move |listener, stop| async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        })
        .await
    }

    /// Binds a random port and runs `server` on it until the test server is dropped.
    async fn spawn<F, Fut>(gateway: Gateway, server: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, futures::future::BoxFuture<'static, ()>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop: futures::future::BoxFuture<'static, ()> = Box::pin(async {
            let _ = rx.await;
        });
        tokio::spawn(server(listener, stop));
        Self {
            url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            gateway,
            _shutdown: tx,
        }
    }

    /// The warnings of the running generation (what `check` prints), as text.
    pub fn warnings(&self) -> Vec<String> {
        self.gateway
            .diagnostics()
            .warnings()
            .map(|d| d.to_string())
            .collect()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .delete(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Starts the mock and a server over `ws` talking to it.
pub async fn start(ws: &TestWorkspace) -> (MockLlm, TestServer) {
    let mock = MockLlm::start().await.expect("mock starts");
    let server = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    (mock, server)
}

/// Asserts the error envelope and returns its code.
pub fn error_code(body: &Value) -> &str {
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no error envelope in {body}"));
    assert!(
        error
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"))
}

/// Parses a `text/event-stream` body into (event, data) pairs.
pub fn parse_sse(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(rest) = line.strip_prefix("event:") {
                    event = rest.trim().to_string();
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data.push_str(rest.trim_start());
                }
            }
            (event, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}
