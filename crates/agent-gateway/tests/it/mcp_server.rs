//! MCP servers for the tests, built with the official SDK: one served over streamable HTTP
//! inside the test process, and one over stdio by re-running this test binary as a child
//! (`stdio_server_entry` below, selected by an environment variable).

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// Set in a child's environment to make the test binary serve MCP on stdio.
pub const STDIO_SERVER_VAR: &str = "AGW_TEST_MCP_STDIO";

#[derive(Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    text: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Deserialize, JsonSchema)]
pub struct SleepArgs {
    ms: u64,
}

#[derive(Deserialize, JsonSchema)]
pub struct EnvArgs {
    name: String,
}

#[derive(Clone)]
pub struct TestTools {
    tool_router: ToolRouter<Self>,
    /// Only the stdio server (a child process) may exit on request.
    can_crash: bool,
}

#[tool_router]
impl TestTools {
    pub fn new(can_crash: bool) -> Self {
        Self {
            tool_router: Self::tool_router(),
            can_crash,
        }
    }

    #[tool(description = "Echo text back")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Add two integers")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Sleep for ms milliseconds")]
    async fn sleep(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[tool(description = "Read an environment variable of the server process")]
    async fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> String {
        std::env::var(&name).unwrap_or_else(|_| format!("{name} is not set"))
    }

    #[tool(description = "The server's process id")]
    async fn pid(&self) -> String {
        std::process::id().to_string()
    }

    #[tool(description = "Fails on purpose")]
    async fn fail(&self) -> Result<String, String> {
        Err("the tool broke".to_string())
    }

    #[tool(description = "Exits the server process")]
    async fn crash(&self) -> Result<String, String> {
        if self.can_crash {
            std::process::exit(3);
        }
        Err("this server does not crash".to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("test-tools", "0.1.0"))
    }
}

/// The command line that starts the stdio server: this binary, running only the entry test.
pub fn stdio_command() -> (String, Vec<String>) {
    let exe = std::env::current_exe().unwrap();
    (
        exe.to_string_lossy().into_owned(),
        vec![
            "mcp_server::stdio_server_entry".into(),
            "--exact".into(),
            "--ignored".into(),
            "--nocapture".into(),
            "--quiet".into(),
        ],
    )
}

/// The stdio server, when this binary runs as a child (libtest's own lines on stdout are
/// not JSON, and MCP clients skip them).
#[tokio::test]
#[ignore = "runs only as a child process of the MCP tests"]
async fn stdio_server_entry() {
    if std::env::var(STDIO_SERVER_VAR).is_err() {
        return;
    }
    let service = TestTools::new(true)
        .serve(rmcp::transport::stdio())
        .await
        .unwrap();
    let _ = service.waiting().await;
}

/// A streamable-HTTP MCP server on a random port that requires `x-api-key: <key>`.
pub struct HttpServer {
    pub url: String,
    /// The body of every request it received (JSON-RPC messages), in order.
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn http_server(key: &'static str) -> HttpServer {
    let stop = tokio_util::sync::CancellationToken::new();
    let service = StreamableHttpService::new(
        || Ok(TestTools::new(false)),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_cancellation_token(stop.child_token()),
    );
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = std::sync::Arc::clone(&bodies);
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let recorded = std::sync::Arc::clone(&recorded);
                async move {
                    let ok = request
                        .headers()
                        .get("x-api-key")
                        .is_some_and(|v| v.as_bytes() == key.as_bytes());
                    if !ok {
                        return axum::http::StatusCode::UNAUTHORIZED.into_response();
                    }
                    let (parts, body) = request.into_parts();
                    let bytes = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    recorded
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&bytes).into_owned());
                    let request = axum::extract::Request::from_parts(parts, bytes.into());
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    HttpServer {
        url: format!("http://{addr}/mcp"),
        bodies,
        stop,
    }
}

use axum::response::IntoResponse;
