//! Connections to MCP servers: connect with a timeout, discover tools, call them with a
//! timeout, notice a dead connection and reconnect in the background (calls fail with a clear
//! error meanwhile).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tracing::Instrument;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, JsonObject,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{Peer, RoleClient, ServiceError, ServiceExt};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::tool::{McpTool, McpToolInfo, ToolCalls, call_value, listing};
use super::{McpServerConfig, McpTransport, credential_headers};
use crate::outbound::OutboundPolicy;
use crate::tools::{SharedTool, ToolError};

/// Connection and call limits (`mcp.connection_timeout_ms`, `mcp.tool_call_timeout_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpTimeouts {
    pub connect: Duration,
    pub call: Duration,
}

impl McpTimeouts {
    pub fn from_config(config: &gateway_workspace::config::McpConfig) -> Self {
        Self {
            connect: Duration::from_millis(config.connection_timeout_ms.max(1)),
            call: Duration::from_millis(config.tool_call_timeout_ms.max(1)),
        }
    }
}

/// Where a server's definition lives (and so where it is edited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpOrigin {
    /// `mcp.servers` in `gateway.yaml`.
    Config,
    /// `GatewayBuilder::mcp_server`.
    Code,
    /// The admin API (stored; `id` is its row).
    Api { id: String },
}

impl McpOrigin {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Code => "code",
            Self::Api { .. } => "api",
        }
    }
}

/// What the manager knows of one server.
#[derive(Debug, Clone)]
pub struct McpServerState {
    pub config: McpServerConfig,
    pub origin: McpOrigin,
    pub connected: bool,
    pub tool_count: usize,
    /// Why it is not connected, when it tried.
    pub error: Option<String>,
}

/// The outcome of an ephemeral connect → list → disconnect.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct McpTest {
    pub success: bool,
    pub tool_count: usize,
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `config_error`, `connection_error`, `auth_error` or `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// A connection failure and its class.
struct ConnectError {
    code: &'static str,
    message: String,
}

impl ConnectError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

type Session = RunningService<RoleClient, ClientConfig>;

struct Server {
    config: McpServerConfig,
    origin: McpOrigin,
    /// The live session; its lock also serialises connects.
    session: tokio::sync::Mutex<Option<Session>>,
    /// A handle for calls (cheap to clone), present while connected.
    peer: RwLock<Option<Peer<RoleClient>>>,
    tools: RwLock<Vec<Arc<McpTool>>>,
    error: Mutex<Option<String>>,
    reconnecting: AtomicBool,
    /// Fires when the server is removed or the gateway stops.
    stop: CancellationToken,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock.write().unwrap_or_else(|p| p.into_inner()) = value;
}

impl Server {
    fn set_error(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn live_peer(&self) -> Option<Peer<RoleClient>> {
        read(&self.peer).filter(|p| !p.is_transport_closed())
    }
}

/// The MCP servers of a gateway and their connections.
pub struct McpManager {
    servers: RwLock<BTreeMap<String, Arc<Server>>>,
    timeouts: RwLock<McpTimeouts>,
    /// Where HTTP servers (and their token endpoints) may be reached.
    outbound: RwLock<OutboundPolicy>,
    me: Weak<McpManager>,
}

impl McpManager {
    pub fn new(timeouts: McpTimeouts, outbound: OutboundPolicy) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            servers: RwLock::new(BTreeMap::new()),
            timeouts: RwLock::new(timeouts),
            outbound: RwLock::new(outbound),
            me: me.clone(),
        })
    }

    pub fn set_timeouts(&self, timeouts: McpTimeouts) {
        write(&self.timeouts, timeouts);
    }

    /// The outbound policy of a reloaded configuration (for connections made from now on).
    pub fn set_outbound(&self, outbound: OutboundPolicy) {
        write(&self.outbound, outbound);
    }

    fn outbound(&self) -> OutboundPolicy {
        read(&self.outbound)
    }

    fn timeouts(&self) -> McpTimeouts {
        read(&self.timeouts)
    }

    fn server(&self, name: &str) -> Option<Arc<Server>> {
        self.servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Registers a server without connecting. Fails when the name is taken.
    pub fn add(&self, config: McpServerConfig, origin: McpOrigin) -> Result<(), String> {
        let mut servers = self.servers.write().unwrap_or_else(|p| p.into_inner());
        if servers.contains_key(&config.name) {
            return Err(format!(
                "an MCP server named '{}' already exists",
                config.name
            ));
        }
        servers.insert(
            config.name.clone(),
            Arc::new(Server {
                config,
                origin,
                session: tokio::sync::Mutex::new(None),
                peer: RwLock::new(None),
                tools: RwLock::new(Vec::new()),
                error: Mutex::new(None),
                reconnecting: AtomicBool::new(false),
                stop: CancellationToken::new(),
            }),
        );
        Ok(())
    }

    /// Forgets a server and closes its connection. Returns whether it existed.
    pub async fn remove(&self, name: &str) -> bool {
        let removed = self
            .servers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        match removed {
            Some(server) => {
                close(&server).await;
                true
            }
            None => false,
        }
    }

    /// Every registered server name.
    pub fn names(&self) -> Vec<String> {
        self.servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The servers that came from `origin`'s kind (config, code or api).
    pub fn names_from(&self, origin: &str) -> Vec<String> {
        self.servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|s| s.origin.as_str() == origin)
            .map(|s| s.config.name.clone())
            .collect()
    }

    pub fn state(&self, name: &str) -> Option<McpServerState> {
        let server = self.server(name)?;
        Some(McpServerState {
            config: server.config.clone(),
            origin: server.origin.clone(),
            connected: server.live_peer().is_some(),
            tool_count: read(&server.tools).len(),
            error: server.error(),
        })
    }

    pub fn states(&self) -> Vec<McpServerState> {
        self.names()
            .iter()
            .filter_map(|name| self.state(name))
            .collect()
    }

    /// The tools discovered on `name` (empty when it never connected).
    pub fn tool_infos(&self, name: &str) -> Vec<McpToolInfo> {
        self.server(name)
            .map(|s| read(&s.tools).iter().map(|t| t.info().clone()).collect())
            .unwrap_or_default()
    }

    /// The tools of the named servers, for an agent's `mcp_servers`.
    pub fn tools_of<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<SharedTool> {
        names
            .into_iter()
            .filter_map(|name| self.server(name))
            .filter(|s| s.config.enabled)
            .flat_map(|s| read(&s.tools))
            .map(|t| t as SharedTool)
            .collect()
    }

    /// Every discovered tool of every enabled server.
    pub fn all_tools(&self) -> Vec<SharedTool> {
        let names = self.names();
        self.tools_of(names.iter())
    }

    /// Connects every enabled server that is not connected, concurrently; failures are
    /// logged and retried in the background.
    pub async fn connect_all(&self) {
        let pending: Vec<_> = self
            .names()
            .into_iter()
            .filter_map(|name| self.server(&name))
            .filter(|s| s.config.enabled && s.live_peer().is_none())
            .map(|server| async move {
                if let Err(err) = self.connect_server(&server).await {
                    tracing::warn!(server = %server.config.name, error = %err.message, "MCP server not connected; retrying in the background");
                    self.schedule_reconnect(&server);
                }
            })
            .collect();
        futures::future::join_all(pending).await;
    }

    /// (Re)connects a server now and rediscovers its tools. Returns the tool count.
    pub async fn refresh(&self, name: &str) -> Result<usize, String> {
        let server = self
            .server(name)
            .ok_or_else(|| format!("MCP server '{name}' is not registered"))?;
        if !server.config.enabled {
            return Err(format!("MCP server '{name}' is disabled"));
        }
        self.connect_server(&server)
            .await
            .map_err(|err| err.message)
    }

    /// Connects to `config` without registering it, lists its tools and disconnects.
    pub async fn test(&self, config: &McpServerConfig) -> McpTest {
        let failed = |err: ConnectError| McpTest {
            success: false,
            tool_count: 0,
            tools: Vec::new(),
            error: Some(err.message),
            error_code: Some(err.code.to_string()),
        };
        let problems = config.problems();
        if !problems.is_empty() {
            return failed(ConnectError::new("config_error", problems.join("; ")));
        }
        let timeout = self.timeouts().connect;
        let result = tokio::time::timeout(timeout, async {
            let session = open(config, &self.outbound(), timeout).await?;
            let tools = session
                .peer()
                .list_all_tools()
                .await
                .map_err(|e| ConnectError::new("connection_error", e.to_string()));
            let _ = session.cancel().await;
            tools
        })
        .await
        .unwrap_or_else(|_| {
            Err(ConnectError::new(
                "timeout",
                format!("no answer within {} ms", timeout.as_millis()),
            ))
        });
        match result {
            Ok(tools) => McpTest {
                success: true,
                tool_count: tools.len(),
                tools: tools
                    .iter()
                    .map(|t| json!({"name": t.name, "description": t.description.clone().unwrap_or_default()}))
                    .collect(),
                error: None,
                error_code: None,
            },
            Err(err) => failed(err),
        }
    }

    /// Calls `tool` on `server_name`, in a span of its own whose context travels in the
    /// request's `_meta` (`traceparent`), as OpenTelemetry's MCP conventions have it.
    async fn call_tool(
        &self,
        server_name: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        let span = gateway_telemetry::spans::mcp_call("tools/call", server_name, tool);
        let result = self
            .call_tool_untraced(server_name, tool, arguments)
            .instrument(span.clone())
            .await;
        if let Err(err) = &result {
            gateway_telemetry::spans::record_error(&span, "mcp_error", &err.to_string());
        }
        result
    }

    async fn call_tool_untraced(
        &self,
        server_name: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        let server = self.server(server_name).ok_or_else(|| {
            ToolError::failed(format!("MCP server '{server_name}' is not registered"))
        })?;
        let Some(peer) = server.live_peer() else {
            let why = server
                .error()
                .unwrap_or_else(|| "the connection was lost".to_string());
            self.connection_lost(&server, why.clone());
            return Err(ToolError::failed(format!(
                "MCP server '{server_name}' is not connected (reconnecting): {why}"
            )));
        };
        let arguments: JsonObject = match arguments {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(ToolError::failed(format!(
                    "arguments must be an object, not {other}"
                )));
            }
        };
        let mut request = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let carrier = gateway_telemetry::context::outbound_map();
        if !carrier.is_empty() {
            request.meta = serde_json::from_value(serde_json::json!(carrier)).ok();
        }
        let timeout = self.timeouts().call;
        let result = match tokio::time::timeout(timeout, peer.call_tool(request)).await {
            Err(_) => {
                return Err(ToolError::failed(format!(
                    "MCP tool '{server_name}__{tool}' timed out after {} ms",
                    timeout.as_millis()
                )));
            }
            Ok(Err(ServiceError::McpError(err))) => {
                return Err(ToolError::failed(format!(
                    "MCP server '{server_name}' refused the call: {}",
                    err.message
                )));
            }
            Ok(Err(err)) => {
                let why = err.to_string();
                self.connection_lost(&server, why.clone());
                return Err(ToolError::failed(format!(
                    "MCP server '{server_name}' is unreachable ({why}); reconnecting"
                )));
            }
            Ok(Ok(result)) => result,
        };
        call_value(&result)
    }

    /// Closes every connection (gateway shutdown).
    pub async fn shutdown(&self) {
        let servers: Vec<Arc<Server>> = self
            .servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for server in servers {
            close(&server).await;
        }
    }

    async fn connect_server(&self, server: &Arc<Server>) -> Result<usize, ConnectError> {
        let mut session = server.session.lock().await;
        if let Some(old) = session.take() {
            write(&server.peer, None);
            let _ = old.cancel().await;
        }
        let timeout = self.timeouts().connect;
        let name = &server.config.name;
        let opened = tokio::time::timeout(timeout, async {
            let fresh = open(&server.config, &self.outbound(), timeout).await?;
            let tools = fresh.peer().list_all_tools().await.map_err(|e| {
                ConnectError::new("connection_error", format!("listing tools failed: {e}"))
            })?;
            Ok::<_, ConnectError>((fresh, tools))
        })
        .await
        .unwrap_or_else(|_| {
            Err(ConnectError::new(
                "timeout",
                format!("no answer within {} ms", timeout.as_millis()),
            ))
        });
        let (fresh, tools) = match opened {
            Ok(pair) => pair,
            Err(err) => {
                server.set_error(Some(err.message.clone()));
                return Err(err);
            }
        };
        let (infos, skipped) = listing(name, &tools);
        for warning in skipped {
            tracing::warn!(server = %name, "{warning}");
        }
        let tools: Vec<Arc<McpTool>> = infos
            .into_iter()
            .map(|info| Arc::new(McpTool::new(info, self.me.clone() as Weak<dyn ToolCalls>)))
            .collect();
        let count = tools.len();
        write(&server.tools, tools);
        write(&server.peer, Some(fresh.peer().clone()));
        *session = Some(fresh);
        server.set_error(None);
        tracing::info!(server = %name, tools = count, "MCP server connected");
        Ok(count)
    }

    /// Marks a server disconnected and starts reconnecting it (once).
    fn connection_lost(&self, server: &Arc<Server>, why: String) {
        write(&server.peer, None);
        server.set_error(Some(why));
        self.schedule_reconnect(server);
    }

    fn schedule_reconnect(&self, server: &Arc<Server>) {
        if !server.config.enabled || server.reconnecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(manager) = self.me.upgrade() else {
            return;
        };
        let server = Arc::clone(server);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                tokio::select! {
                    _ = server.stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                match manager.connect_server(&server).await {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::debug!(server = %server.config.name, error = %err.message, "MCP reconnect failed");
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            server.reconnecting.store(false, Ordering::SeqCst);
        });
    }
}

async fn close(server: &Server) {
    server.stop.cancel();
    write(&server.peer, None);
    if let Some(session) = server.session.lock().await.take() {
        let _ = session.cancel().await;
    }
}

/// Opens a session to `config` (process start or HTTP handshake).
async fn open(
    config: &McpServerConfig,
    outbound: &OutboundPolicy,
    connect_timeout: Duration,
) -> Result<Session, ConnectError> {
    let identity = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("agent-gateway", env!("CARGO_PKG_VERSION")),
    );
    let name = config.name.clone();
    match config.transport {
        McpTransport::Stdio => {
            let program = config.command.clone().unwrap_or_default();
            let mut command = tokio::process::Command::new(&program);
            command
                .args(&config.args)
                .envs(&config.env)
                .env_remove(crate::secrets::SECRET_KEY_VAR);
            let (transport, stderr) = TokioChildProcess::builder(command)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| {
                    ConnectError::new(
                        "connection_error",
                        format!("could not start '{program}': {e}"),
                    )
                })?;
            if let Some(stderr) = stderr {
                // The server's log, kept out of our stdout and visible at debug level.
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::debug!(server = %name, "{line}");
                    }
                });
            }
            identity.serve(transport).await.map_err(|e| {
                ConnectError::new(
                    "connection_error",
                    format!("'{program}' did not start an MCP session: {e}"),
                )
            })
        }
        McpTransport::StreamableHttp => {
            let url = config.url.clone().unwrap_or_default();
            if let Some(refused) = config.refused_by(outbound) {
                return Err(ConnectError::new("config_error", refused));
            }
            let mut headers = config.headers.clone();
            if let Some(credentials) = &config.credentials {
                let http = outbound
                    .client_builder()
                    .connect_timeout(connect_timeout)
                    .build()
                    .map_err(|e| ConnectError::new("config_error", e.to_string()))?;
                headers.extend(
                    credential_headers(credentials, &http)
                        .await
                        .map_err(|e| ConnectError::new("auth_error", e))?,
                );
            }
            let mut map = reqwest::header::HeaderMap::new();
            for (key, value) in headers {
                let key = reqwest::header::HeaderName::try_from(key.as_str()).map_err(|_| {
                    ConnectError::new("config_error", format!("invalid header name '{key}'"))
                })?;
                let value =
                    reqwest::header::HeaderValue::try_from(value.as_str()).map_err(|_| {
                        ConnectError::new(
                            "config_error",
                            format!("invalid value for header '{key}'"),
                        )
                    })?;
                map.insert(key, value);
            }
            let client = outbound
                .client_builder()
                .default_headers(map)
                .connect_timeout(connect_timeout)
                .build()
                .map_err(|e| ConnectError::new("config_error", e.to_string()))?;
            let transport = StreamableHttpClientTransport::with_client(
                client,
                StreamableHttpClientTransportConfig::with_uri(url.clone()),
            );
            identity.serve(transport).await.map_err(|e| {
                let message = e.to_string();
                let code = if message.contains("401")
                    || message.contains("403")
                    || message.to_lowercase().contains("unauthorized")
                {
                    "auth_error"
                } else {
                    "connection_error"
                };
                ConnectError::new(code, format!("{url}: {message}"))
            })
        }
    }
}

#[async_trait::async_trait]
impl ToolCalls for McpManager {
    async fn call(
        &self,
        server_name: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        self.call_tool(server_name, tool, arguments).await
    }
}
