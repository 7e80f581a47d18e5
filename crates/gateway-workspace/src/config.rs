//! `gateway.yaml`: the typed model, `${VAR}` substitution and the `AGENT_GATEWAY_` overlay.
//!
//! Precedence, highest first: environment (`AGENT_GATEWAY_SERVER__PORT=9000`), the file, the
//! defaults below (which are those of agents-gateway 0.2.13 unless a comment says otherwise).
//! Loading never panics: syntax and type errors come back as diagnostics with file and line,
//! unknown keys as warnings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diagnostics::Diagnostics;
use crate::lenient;
use crate::yaml::{self, PathSegment};

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "AGENT_GATEWAY_";

/// Variables with the prefix that are not configuration keys.
const RESERVED_ENV: &[&str] = &["AGENT_GATEWAY_SECRET_KEY"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// IANA timezone used by schedules without their own.
    pub timezone: String,
    /// Free-form values made available to agents (accepted for compatibility).
    pub context: Map<String, Value>,
    pub server: ServerConfig,
    pub model: ModelConfig,
    pub guardrails: GuardrailsConfig,
    pub auth: AuthConfig,
    pub notifications: NotificationsConfig,
    pub persistence: PersistenceConfig,
    pub telemetry: TelemetryConfig,
    pub queue: QueueConfig,
    pub scheduler: SchedulerConfig,
    pub context_retrieval: ContextRetrievalConfig,
    pub mcp: McpConfig,
    pub memory: MemoryConfig,
    pub cors: CorsConfig,
    pub rate_limit: RateLimitConfig,
    pub security: SecurityConfig,
    pub proxy: ProxyConfig,
    pub dashboard: DashboardConfig,
    /// LLM provider credentials and endpoints (ours: 0.2.13 read only LiteLLM env vars).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// In-memory chat sessions (ours: 0.2.13 hard-coded these limits).
    pub sessions: SessionsConfig,
    /// Credentials for agentgate sites that agents call (`sites:` in AGENT.md), by site URL.
    pub sites: BTreeMap<String, SiteCredentials>,
    /// How file tools are run (ours).
    pub tools: ToolsConfig,
    /// The gateway's own agentgate manifest (ours).
    pub agentgate: AgentgateConfig,
    /// What the server logs and how (ours).
    pub log: LogConfig,
    /// The Prometheus endpoint (ours).
    pub metrics: MetricsConfig,
    /// Where the gateway may connect for URLs it is given (ours).
    pub outbound: OutboundConfig,
}

/// `outbound:` — the one policy for URLs from configuration or the admin API (webhooks, MCP
/// servers over HTTP, agentgate sites): private, loopback and metadata addresses are refused
/// unless listed here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboundConfig {
    /// Host names or addresses (`127.0.0.1`, `mcp.internal`, `[::1]`) that may be reached
    /// although private; `*` allows every host (local development).
    pub allowed_private_hosts: Vec<String>,
}

/// `metrics:` — the Prometheus text endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` (scope `metrics:read` when auth is on).
    pub enabled: bool,
    /// Also serve `/metrics` on this address (`127.0.0.1:9464`), without auth: for a
    /// scraper on a private network.
    pub listen: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `log:` — the format of log lines and the level (`RUST_LOG` wins over `level`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `warn,gateway_core=debug`, ...
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Publishing the gateway's agents over the agentgate protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentgateConfig {
    /// Serve `/.well-known/agent-manifest.json` and `/agent/...`.
    pub enabled: bool,
    /// Idle lifetime of a chat flow session.
    pub session_ttl_seconds: u64,
    pub max_sessions: usize,
    /// How long discovering a site listed under `sites:` may take.
    pub discovery_timeout_ms: u64,
}

impl Default for AgentgateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl_seconds: 3600,
            max_sessions: 10_000,
            discovery_timeout_ms: 10_000,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            context: Map::new(),
            server: ServerConfig::default(),
            model: ModelConfig::default(),
            guardrails: GuardrailsConfig::default(),
            auth: AuthConfig::default(),
            notifications: NotificationsConfig::default(),
            persistence: PersistenceConfig::default(),
            telemetry: TelemetryConfig::default(),
            queue: QueueConfig::default(),
            scheduler: SchedulerConfig::default(),
            context_retrieval: ContextRetrievalConfig::default(),
            mcp: McpConfig::default(),
            memory: MemoryConfig::default(),
            cors: CorsConfig::default(),
            rate_limit: RateLimitConfig::default(),
            security: SecurityConfig::default(),
            proxy: ProxyConfig::default(),
            dashboard: DashboardConfig::default(),
            providers: BTreeMap::new(),
            sessions: SessionsConfig::default(),
            sites: BTreeMap::new(),
            tools: ToolsConfig::default(),
            agentgate: AgentgateConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            outbound: OutboundConfig::default(),
        }
    }
}

/// Running file-tool handlers as subprocesses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolsConfig {
    /// Interpreter for `handler.py`.
    pub python: String,
    /// Per-call limit unless the tool sets `timeout_ms`.
    pub timeout_ms: u64,
    /// A handler printing more than this is stopped and its call fails.
    pub max_output_bytes: usize,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            timeout_ms: 30_000,
            max_output_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub workers: u32,
    /// The URL clients reach the gateway at, declared as `base_url` in the agentgate
    /// manifest (ours; empty: relative).
    pub public_url: String,
    /// How long a stopping server lets runs in flight and notification deliveries finish
    /// before it records the unfinished runs cancelled (ours).
    pub shutdown_timeout_s: u64,
    /// The largest request body the HTTP API reads, in bytes: beyond it a request is refused
    /// with 413 (ours).
    pub max_body_bytes: usize,
    /// How long a client has to send a request's head before its connection is closed (ours:
    /// a slow client cannot hold a connection forever).
    pub header_read_timeout_s: u64,
    /// The longest pause allowed while a request's body is read; then the request is refused
    /// (a 4xx) and its connection freed (ours).
    pub body_read_timeout_s: u64,
}

/// `server.max_body_bytes` unless set: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The bounds of `server.max_body_bytes`: below 1 KiB not even a chat turn fits; past 1 GiB
/// one request could take the process's memory.
pub const MAX_BODY_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8000,
            workers: 1,
            public_url: String::new(),
            shutdown_timeout_s: 30,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout_s: 30,
            body_read_timeout_s: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// `provider/model` used by agents that name none.
    pub default: String,
    pub temperature: f64,
    pub max_tokens: u32,
    /// Model tried when the agent's model fails.
    pub fallback: Option<String>,
    /// Base URL for the default model (ours).
    pub api_base: Option<String>,
    /// Model for agents on the default model while the default's provider has no key, e.g.
    /// `scripted/example` so a first run answers before a key exists (ours). Opt-in and
    /// announced at start and in every answer's model; nothing else falls back silently.
    pub without_key: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            default: "gemini/gemini-2.5-flash".into(),
            temperature: 0.1,
            max_tokens: 4096,
            fallback: None,
            api_base: None,
            without_key: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuardrailsConfig {
    pub max_tool_calls: u32,
    pub max_iterations: u32,
    pub timeout_ms: u64,
    pub max_delegation_depth: u32,
    /// Tool calls of one model turn run concurrently, at most this many at once.
    pub max_parallel_tool_calls: u32,
    /// Tool results longer than this are cut before they reach the model.
    pub max_tool_output_chars: usize,
    /// How long a tool call marked `require_approval` waits for a decision before it is
    /// refused. The wait does not count against `timeout_ms`.
    pub approval_timeout_ms: u64,
}

impl Default for GuardrailsConfig {
    fn default() -> Self {
        Self {
            max_tool_calls: 20,
            max_iterations: 10,
            timeout_ms: 60_000,
            max_delegation_depth: 3,
            max_parallel_tool_calls: 5,
            max_tool_output_chars: 32_768,
            approval_timeout_ms: 3_600_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    ApiKey,
    Oauth2,
    Composite,
    /// Accepted for compatibility; means no built-in auth.
    Custom,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub enabled: bool,
    /// Unset: inferred from what is configured (keys → `api_key`, an `oauth2` block →
    /// `oauth2`, both → `composite`, neither → no auth). Set explicitly, the mode must be
    /// usable: `api_key` without keys refuses to start instead of running open.
    pub mode: Option<AuthMode>,
    pub api_keys: Vec<ApiKeyConfig>,
    pub oauth2: Option<OAuth2Config>,
    pub public_paths: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: None,
            api_keys: Vec::new(),
            oauth2: None,
            public_paths: vec!["/v1/health".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyConfig {
    /// The caller's identity (user id) when it presents this key.
    pub name: String,
    /// The key itself; hashed at load and then forgotten. Prefer `key_sha256`.
    #[serde(default)]
    pub key: Option<String>,
    /// SHA-256 of the key, hex (`agents-gateway keys create` prints it).
    #[serde(default)]
    pub key_sha256: Option<String>,
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
}

fn all_scopes() -> Vec<String> {
    vec!["*".into()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuth2Config {
    pub issuer: String,
    pub audience: String,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_scope_claim() -> String {
    "scope".into()
}
fn default_clock_skew() -> u64 {
    30
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationsConfig {
    pub slack: SlackConfig,
    pub webhooks: Vec<WebhookEndpointConfig>,
    pub webhook_secret: String,
    /// Hosts that may be reached although private (ours, older spelling): added to
    /// `outbound.allowed_private_hosts`, which covers webhooks, MCP servers and sites alike.
    pub allowed_private_hosts: Vec<String>,
    /// Delivery attempts per target before it is marked failed (ours; 0.2.13 used 3).
    pub max_attempts: u32,
    /// Wait before the second attempt; it doubles for each further one (ours).
    pub retry_base_ms: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            slack: SlackConfig::default(),
            webhooks: Vec::new(),
            webhook_secret: String::new(),
            allowed_private_hosts: Vec::new(),
            max_attempts: 3,
            retry_base_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlackConfig {
    pub enabled: bool,
    pub bot_token: String,
    pub default_channel: String,
    /// Slack Web API base URL (ours; tests point it at a fake).
    pub api_base: String,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bot_token: String::new(),
            default_channel: "#agent-alerts".into(),
            api_base: "https://slack.com/api".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpointConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub payload_template: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistenceBackend {
    Sqlite,
    #[serde(alias = "postgresql")]
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistenceConfig {
    pub enabled: bool,
    pub backend: PersistenceBackend,
    pub url: String,
    pub table_prefix: String,
    pub db_schema: Option<String>,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: PersistenceBackend::Sqlite,
            url: "sqlite+aiosqlite:///agent_gateway.db".into(),
            table_prefix: String::new(),
            db_schema: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelemetryExporter {
    Console,
    Otlp,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    Grpc,
    /// HTTP with protobuf bodies (`http/protobuf` in `OTEL_EXPORTER_OTLP_PROTOCOL`).
    #[serde(alias = "http/protobuf")]
    Http,
}

/// `telemetry:`: traces (and, over OTLP, the metrics of `GET /metrics`). The standard `OTEL_*`
/// variables fill the keys the file leaves unset (see [`fill_from_otel_env`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    pub enabled: bool,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Where spans go. Default `none`, unlike 0.2.13's `console`: printing every span of
    /// every request would drown the log; `console` prints them to standard error on request.
    pub exporter: TelemetryExporter,
    /// The collector: the gRPC address (`http://localhost:4317` when unset) or the HTTP base
    /// URL (`http://localhost:4318` when unset; `/v1/traces` and `/v1/metrics` are added).
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    /// The share of traces recorded (0 to 1) when the caller sent no sampling decision.
    pub sample_rate: f64,
    /// Headers (gRPC metadata) sent with every export, e.g. an API key of the collector.
    pub headers: BTreeMap<String, String>,
    /// Put prompts and completions on model-call spans (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off by default: they may hold personal data.
    pub capture_content: bool,
    /// How often the metrics are pushed over OTLP; 0 pushes none.
    pub metrics_interval_s: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            service_name: "agent-gateway".into(),
            exporter: TelemetryExporter::None,
            endpoint: None,
            protocol: OtlpProtocol::Grpc,
            sample_rate: 1.0,
            headers: BTreeMap::new(),
            capture_content: false,
            metrics_interval_s: 60,
        }
    }
}

impl TelemetryConfig {
    /// Whether spans are exported anywhere.
    pub fn traces_on(&self) -> bool {
        self.enabled && self.exporter != TelemetryExporter::None
    }

    /// The collector address, with the default of the protocol.
    pub fn endpoint(&self) -> &str {
        match (&self.endpoint, self.protocol) {
            (Some(endpoint), _) => endpoint,
            (None, OtlpProtocol::Grpc) => "http://localhost:4317",
            (None, OtlpProtocol::Http) => "http://localhost:4318",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    None,
    Memory,
    Redis,
    Rabbitmq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    Sync,
    Async,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    pub backend: QueueBackend,
    pub redis_url: String,
    pub rabbitmq_url: String,
    pub stream_key: String,
    pub queue_name: String,
    pub consumer_group: String,
    pub workers: u32,
    pub max_retries: u32,
    pub visibility_timeout_s: u64,
    pub drain_timeout_s: u64,
    pub default_execution_mode: ExecutionMode,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: QueueBackend::None,
            redis_url: "redis://localhost:6379/0".into(),
            rabbitmq_url: "amqp://guest:guest@localhost:5672/".into(),
            stream_key: "ag:executions".into(),
            queue_name: "ag.executions".into(),
            consumer_group: "ag-workers".into(),
            workers: 4,
            max_retries: 3,
            visibility_timeout_s: 300,
            drain_timeout_s: 30,
            default_execution_mode: ExecutionMode::Sync,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockBackend {
    Auto,
    Redis,
    Postgres,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DistributedLockConfig {
    pub enabled: bool,
    pub backend: LockBackend,
    pub redis_url: String,
    pub key_prefix: String,
    pub lock_ttl_seconds: u64,
}

impl Default for DistributedLockConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            backend: LockBackend::Auto,
            redis_url: String::new(),
            key_prefix: "ag:sched-lock:".into(),
            lock_ttl_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    pub enabled: bool,
    pub misfire_grace_seconds: u64,
    pub max_instances: u32,
    pub coalesce: bool,
    pub distributed_lock: DistributedLockConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            misfire_grace_seconds: 60,
            max_instances: 1,
            coalesce: true,
            distributed_lock: DistributedLockConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextRetrievalConfig {
    pub retriever_timeout_seconds: f64,
    pub max_retrieved_chars: usize,
    pub max_context_file_chars: usize,
}

impl Default for ContextRetrievalConfig {
    fn default() -> Self {
        Self {
            retriever_timeout_seconds: 10.0,
            max_retrieved_chars: 50_000,
            max_context_file_chars: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct McpConfig {
    pub tool_call_timeout_ms: u64,
    pub connection_timeout_ms: u64,
    /// MCP servers declared in the file (ours; 0.2.13 registered them only from code or the API).
    pub servers: Vec<Value>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            tool_call_timeout_ms: 30_000,
            connection_timeout_ms: 10_000,
            servers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompactionConfig {
    pub enabled: bool,
    pub max_memories_per_scope: u32,
    pub compact_ratio: f64,
    pub min_age_hours: u64,
    pub importance_threshold: f64,
    pub decay_factor: f64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_memories_per_scope: 100,
            compact_ratio: 0.5,
            min_age_hours: 24,
            importance_threshold: 0.8,
            decay_factor: 0.95,
        }
    }
}

/// Where agents' memories are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryBackend {
    /// The store when persistence is on, else the files (0.2.13's rule).
    #[default]
    Auto,
    /// The gateway's store (SQLite, PostgreSQL, or memory with persistence off).
    Store,
    /// 0.2.13's files: `agents/<id>/MEMORY.md` and `agents/<id>/memory/<user>.md`.
    Files,
}

/// `memory:`: every key is the default of each agent's own `memory:` block, which overrides
/// it key by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryConfig {
    pub enabled: bool,
    /// Characters of memories put in the system prompt (60 % the user's, 40 % shared).
    pub max_injected_chars: usize,
    /// Model of extraction and compaction; the agent's model when absent.
    pub extraction_model: Option<String>,
    /// Extract facts after chat turns.
    pub auto_extract: bool,
    /// Extract facts after invocations too (ours).
    pub extract_on_invoke: bool,
    /// Most memories one scope holds; a save beyond it is refused until compaction makes room
    /// (0.2.13 parsed it and did nothing).
    pub max_memory_md_lines: u32,
    /// Longest content of one memory, in characters (ours).
    pub max_content_chars: usize,
    /// Whether the memory tools of a run with no known user act on the agent's shared
    /// knowledge (ours; 0.2.13 always did, so API-key traffic wrote memories every user sees).
    pub shared_writes: bool,
    /// Model of the provider's embedding endpoint; recall ranks by similarity when set (ours).
    pub embedding_model: Option<String>,
    pub backend: MemoryBackend,
    /// Seconds between two extractions for one user and agent (ours; 0.2.13: 30, fixed).
    pub extract_debounce_seconds: u64,
    /// Extractions running at once, across the gateway (ours).
    pub max_concurrent_extractions: usize,
    /// Extracted facts less important than this are dropped (0.2.13 asked for 0.3 and kept
    /// everything).
    pub min_extracted_importance: f64,
    pub compaction: CompactionConfig,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_injected_chars: 4000,
            extraction_model: None,
            auto_extract: false,
            extract_on_invoke: false,
            max_memory_md_lines: 200,
            max_content_chars: 2000,
            shared_writes: false,
            embedding_model: None,
            backend: MemoryBackend::Auto,
            extract_debounce_seconds: 30,
            max_concurrent_extractions: 2,
            min_extracted_importance: 0.3,
            compaction: CompactionConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    pub enabled: bool,
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_origins: vec!["*".into()],
            allow_methods: ["GET", "POST", "DELETE", "OPTIONS"]
                .map(String::from)
                .to_vec(),
            allow_headers: ["Authorization", "Content-Type"].map(String::from).to_vec(),
            allow_credentials: false,
            max_age: 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// `<count>/<second|minute|hour|day>`.
    pub default_limit: String,
    /// `redis://...` to share counters between instances; in-process when unset.
    pub storage_uri: Option<String>,
    pub trust_forwarded_for: bool,
    /// Per-route limits, keyed by path pattern (ours), e.g. `/v1/agents/*/invoke: 10/minute`.
    pub routes: BTreeMap<String, String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            default_limit: "100/minute".into(),
            storage_uri: None,
            trust_forwarded_for: false,
            routes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    pub enabled: bool,
    pub x_content_type_options: String,
    pub x_frame_options: String,
    /// Empty disables HSTS (local development over plain HTTP).
    pub strict_transport_security: String,
    pub content_security_policy: String,
    pub referrer_policy: String,
    pub dashboard_content_security_policy: String,
    pub docs_content_security_policy: String,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            x_content_type_options: "nosniff".into(),
            x_frame_options: "DENY".into(),
            strict_transport_security: "max-age=31536000; includeSubDomains".into(),
            content_security_policy: "default-src 'self'".into(),
            referrer_policy: "strict-origin-when-cross-origin".into(),
            // Our dashboard and docs serve every asset themselves, so 'self' plus inline
            // scripts/styles (Swagger UI and ReDoc bootstrap inline) is enough: no CDN hosts.
            dashboard_content_security_policy: "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'".into(),
            docs_content_security_policy: "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    pub trust_forwarded: bool,
    pub forwarded_allow_ips: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            trust_forwarded: false,
            forwarded_allow_ips: "127.0.0.1".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DashboardConfig {
    pub enabled: bool,
    pub title: String,
    pub subtitle: String,
    pub logo_url: Option<String>,
    pub favicon_url: Option<String>,
    pub auth: DashboardAuthConfig,
    /// Colours and mode, passed to the templates as they are.
    pub theme: Map<String, Value>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            title: "Agent Gateway".into(),
            subtitle: "AI Control Plane".into(),
            logo_url: None,
            favicon_url: None,
            auth: DashboardAuthConfig::default(),
            theme: Map::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DashboardAuthConfig {
    pub enabled: bool,
    pub username: String,
    pub password: String,
    pub admin_username: Option<String>,
    pub admin_password: Option<String>,
    pub login_button_text: String,
    pub session_secret: String,
    pub oauth2: Option<Map<String, Value>>,
    pub session_cookie_name: String,
    pub session_cookie_secure: bool,
    pub session_max_age_seconds: u64,
}

impl Default for DashboardAuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            username: "admin".into(),
            password: String::new(),
            admin_username: None,
            admin_password: None,
            login_button_text: "Sign in with SSO".into(),
            session_secret: String::new(),
            oauth2: None,
            session_cookie_name: "agw_dashboard_session".into(),
            session_cookie_secure: false,
            session_max_age_seconds: 86_400,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Gemini,
}

/// One LLM provider: a built-in name (`openai`, `anthropic`, `gemini`, `ollama`) to override its
/// key or endpoint, or a new name of a given kind (an OpenAI-compatible server, say).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    /// Wire format; defaults to the built-in provider's of the same name, else OpenAI.
    pub kind: Option<ProviderKind>,
    pub api_key: Option<String>,
    /// Environment variable holding the key.
    pub api_key_env: Option<String>,
    pub api_base: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
    pub retry_base_delay_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionsConfig {
    /// Idle time after which a chat session is forgotten.
    pub ttl_seconds: u64,
    pub max_sessions: usize,
    /// Older messages are dropped beyond this many.
    pub max_messages: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            ttl_seconds: 1800,
            max_sessions: 1000,
            max_messages: 100,
        }
    }
}

/// Credentials sent to one agentgate site.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteCredentials {
    pub api_key: Option<String>,
    pub bearer_token: Option<String>,
}

/// The result of loading `gateway.yaml`: the config when it is usable, and every problem found.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Option<GatewayConfig>,
    pub diagnostics: Diagnostics,
}

impl GatewayConfig {
    /// Loads `<workspace>/gateway.yaml` (absent → defaults), substituting `${VAR}` from `env`
    /// and overlaying `AGENT_GATEWAY_*` entries of `env`. `env` is passed in (usually
    /// `std::env::vars()`) so tests never touch the process environment.
    pub fn load(workspace: &Path, env: &BTreeMap<String, String>) -> LoadedConfig {
        let path = workspace.join("gateway.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_yaml(&path, &text, env),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Self::from_yaml(&path, "", env)
            }
            Err(err) => {
                let mut diagnostics = Diagnostics::new();
                diagnostics.error(&path, None, format!("cannot read file: {err}"));
                LoadedConfig {
                    config: None,
                    diagnostics,
                }
            }
        }
    }

    /// Parses configuration text as if it were the file at `path`.
    pub fn from_yaml(path: &Path, text: &str, env: &BTreeMap<String, String>) -> LoadedConfig {
        let mut diagnostics = Diagnostics::new();
        let config = parse_config(path, text, env, &mut diagnostics);
        LoadedConfig {
            config: if diagnostics.has_errors() {
                None
            } else {
                config
            },
            diagnostics,
        }
    }

    /// The process environment as a map, for [`GatewayConfig::load`].
    pub fn process_env() -> BTreeMap<String, String> {
        std::env::vars().collect()
    }
}

fn parse_config(
    path: &Path,
    text: &str,
    env: &BTreeMap<String, String>,
    diagnostics: &mut Diagnostics,
) -> Option<GatewayConfig> {
    let mut value = match yaml::parse(text) {
        Ok(Value::Null) => lenient::empty_object(),
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            diagnostics.error(path, Some(1), "gateway.yaml must be a mapping of sections");
            return None;
        }
        Err(err) => {
            diagnostics.error(path, err.line, format!("invalid YAML: {}", err.message));
            return None;
        }
    };

    let mut trail = Vec::new();
    substitute_env(&mut value, env, &mut trail, &mut |segments, message| {
        diagnostics.error(path, yaml::locate(text, segments), message);
    });
    if diagnostics.has_errors() {
        return None;
    }

    fill_from_otel_env(&mut value, env);
    let env_paths = overlay_env(&mut value, env);

    let (config, unknown) = match lenient::from_value::<GatewayConfig>(&value) {
        Ok(parsed) => parsed,
        Err(err) => {
            let segments = yaml::parse_path(&err.path);
            match env_source(&env_paths, &segments) {
                Some(var) => diagnostics.error(
                    path,
                    None,
                    format!(
                        "environment variable {var} (key '{}'): {}",
                        err.path, err.message
                    ),
                ),
                None => diagnostics.error(
                    path,
                    yaml::locate(text, &segments),
                    format!("'{}': {}", err.path, err.message),
                ),
            }
            return None;
        }
    };
    for key in unknown {
        let segments = yaml::parse_path(&key);
        match env_source(&env_paths, &segments) {
            Some(var) => diagnostics.warning(
                path,
                None,
                format!("environment variable {var} sets unknown key '{key}' (ignored)"),
            ),
            None => diagnostics.warning(
                path,
                yaml::locate(text, &segments),
                format!("unknown key '{key}' (ignored)"),
            ),
        }
    }
    validate(&config, path, text, diagnostics);
    Some(config)
}

/// `url` with the password of its user part (`scheme://user:password@host`) masked, for
/// messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = match user.split_once(':') {
                Some((name, _)) => format!("{name}:***"),
                None => user.to_string(),
            };
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Checks the rules types alone cannot express.
/// An entry of an allowed-hosts list: `*`, a host name, an IPv4 address or an IPv6 one
/// (bracketed or not) — never a URL or `host:port`, which would silently match nothing.
fn is_host_entry(entry: &str) -> bool {
    if entry == "*" || entry.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if let Some(inner) = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !entry.is_empty()
        && entry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn validate(config: &GatewayConfig, path: &Path, text: &str, diagnostics: &mut Diagnostics) {
    let line = |p: &str| yaml::locate(text, &yaml::parse_path(p));
    if config.timezone.parse::<chrono_tz::Tz>().is_err() {
        diagnostics.error(
            path,
            line("timezone"),
            format!(
                "'timezone': '{}' is not an IANA timezone (e.g. UTC, Europe/London)",
                config.timezone
            ),
        );
    }
    for (key, hosts) in [
        (
            "outbound.allowed_private_hosts",
            &config.outbound.allowed_private_hosts,
        ),
        (
            "notifications.allowed_private_hosts",
            &config.notifications.allowed_private_hosts,
        ),
    ] {
        for host in hosts.iter().filter(|h| !is_host_entry(h)) {
            diagnostics.error(
                path,
                line(key),
                format!(
                    "'{key}': '{host}' is not a host name or address (no scheme, port or path; e.g. 127.0.0.1 or mcp.internal)"
                ),
            );
        }
    }
    if let Some(listen) = &config.metrics.listen
        && listen.parse::<std::net::SocketAddr>().is_err()
    {
        diagnostics.error(
            path,
            line("metrics.listen"),
            format!(
                "'metrics.listen': '{listen}' is not an address with a port (e.g. 127.0.0.1:9464)"
            ),
        );
    }
    if config.cors.allow_credentials && config.cors.allow_origins.iter().any(|o| o == "*") {
        diagnostics.error(
            path,
            line("cors.allow_credentials"),
            "'cors.allow_credentials' cannot be true while 'cors.allow_origins' contains '*': list the origins",
        );
    }
    if config.rate_limit.enabled
        && let Err(message) = crate::rate::parse_rate(&config.rate_limit.default_limit)
    {
        diagnostics.error(path, line("rate_limit.default_limit"), message);
    }
    for (route, limit) in &config.rate_limit.routes {
        if let Err(message) = crate::rate::parse_rate(limit) {
            diagnostics.error(
                path,
                line(&format!("rate_limit.routes.{route}")),
                format!("rate limit for '{route}': {message}"),
            );
        }
    }
    for (i, key) in config.auth.api_keys.iter().enumerate() {
        let plain = key.key.as_deref().map(str::trim);
        match (plain, key.key_sha256.as_deref()) {
            (Some(""), _) => diagnostics.error(
                path,
                line(&format!("auth.api_keys[{i}].key")),
                format!("API key '{}' has an empty key", key.name),
            ),
            (Some(_), Some(_)) | (None, None) => diagnostics.error(
                path,
                line(&format!("auth.api_keys[{i}]")),
                format!(
                    "API key '{}' needs exactly one of 'key' and 'key_sha256'",
                    key.name
                ),
            ),
            (None, Some(hash))
                if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                diagnostics.error(
                    path,
                    line(&format!("auth.api_keys[{i}].key_sha256")),
                    format!("API key '{}': key_sha256 must be 64 hex digits", key.name),
                )
            }
            _ => {}
        }
    }
    if config.auth.enabled {
        match config.auth.mode {
            Some(AuthMode::ApiKey) if config.auth.api_keys.is_empty() => diagnostics.error(
                path,
                line("auth.mode"),
                "auth mode api_key has no api_keys: the gateway would be open to anyone (add keys, or set auth.enabled: false on purpose)",
            ),
            Some(AuthMode::Oauth2) if config.auth.oauth2.is_none() => diagnostics.error(
                path,
                line("auth.mode"),
                "auth mode oauth2 needs an 'oauth2' block (issuer, audience)",
            ),
            Some(AuthMode::Composite)
                if config.auth.api_keys.is_empty() && config.auth.oauth2.is_none() =>
            {
                diagnostics.error(
                    path,
                    line("auth.mode"),
                    "auth mode composite needs api_keys, an oauth2 block, or both",
                )
            }
            _ => {}
        }
    }
    let security = &config.security;
    for (key, value) in [
        ("x_content_type_options", &security.x_content_type_options),
        ("x_frame_options", &security.x_frame_options),
        (
            "strict_transport_security",
            &security.strict_transport_security,
        ),
        ("content_security_policy", &security.content_security_policy),
        ("referrer_policy", &security.referrer_policy),
        (
            "dashboard_content_security_policy",
            &security.dashboard_content_security_policy,
        ),
        (
            "docs_content_security_policy",
            &security.docs_content_security_policy,
        ),
    ] {
        // What HTTP allows in a header value (visible ASCII, spaces and tabs).
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            diagnostics.error(
                path,
                line(&format!("security.{key}")),
                format!(
                    "'security.{key}' is sent as an HTTP header: printable ASCII on one line only"
                ),
            );
        }
    }
    let memory = &config.memory;
    let fractions = [
        (
            "memory.min_extracted_importance",
            memory.min_extracted_importance,
            true,
        ),
        (
            "memory.compaction.compact_ratio",
            memory.compaction.compact_ratio,
            false,
        ),
        (
            "memory.compaction.importance_threshold",
            memory.compaction.importance_threshold,
            true,
        ),
        (
            "memory.compaction.decay_factor",
            memory.compaction.decay_factor,
            false,
        ),
    ];
    for (key, value, zero_allowed) in fractions {
        let low_ok = if zero_allowed {
            value >= 0.0
        } else {
            value > 0.0
        };
        if !(low_ok && value <= 1.0) {
            let range = if zero_allowed {
                "0 to 1"
            } else {
                "above 0, at most 1"
            };
            diagnostics.error(path, line(key), format!("'{key}' must be {range}"));
        }
    }
    if memory.compaction.enabled
        && memory.max_memory_md_lines <= memory.compaction.max_memories_per_scope
    {
        diagnostics.error(
            path,
            line("memory.max_memory_md_lines"),
            format!(
                "'memory.max_memory_md_lines' ({}) must be above 'memory.compaction.max_memories_per_scope' ({}): a scope refuses saves at the first and is compacted only above the second",
                memory.max_memory_md_lines, memory.compaction.max_memories_per_scope
            ),
        );
    }
    if memory.compaction.min_age_hours > 100_000 {
        diagnostics.error(
            path,
            line("memory.compaction.min_age_hours"),
            "'memory.compaction.min_age_hours' must be at most 100000",
        );
    }
    if config.queue.drain_timeout_s > 86_400 {
        diagnostics.error(
            path,
            line("queue.drain_timeout_s"),
            "'queue.drain_timeout_s' must be at most 86400",
        );
    }
    for (key, value) in [
        (
            "memory.max_memory_md_lines",
            u64::from(memory.max_memory_md_lines),
        ),
        ("memory.max_content_chars", memory.max_content_chars as u64),
        (
            "memory.max_concurrent_extractions",
            memory.max_concurrent_extractions as u64,
        ),
    ] {
        if value == 0 {
            diagnostics.error(path, line(key), format!("'{key}' must be at least 1"));
        }
    }
    for (key, value) in [
        (
            "server.shutdown_timeout_s",
            config.server.shutdown_timeout_s,
        ),
        (
            "server.header_read_timeout_s",
            config.server.header_read_timeout_s,
        ),
        (
            "server.body_read_timeout_s",
            config.server.body_read_timeout_s,
        ),
    ] {
        if value == 0 || value > 3600 {
            diagnostics.error(
                path,
                line(key),
                format!("'{key}' must be between 1 and 3600 seconds"),
            );
        }
    }
    if !MAX_BODY_BYTES_RANGE.contains(&config.server.max_body_bytes) {
        diagnostics.error(
            path,
            line("server.max_body_bytes"),
            format!(
                "'server.max_body_bytes' must be between {} and {} bytes",
                MAX_BODY_BYTES_RANGE.start(),
                MAX_BODY_BYTES_RANGE.end()
            ),
        );
    }
    validate_telemetry(&config.telemetry, &line, path, diagnostics);
    if config.log.level.trim().is_empty() {
        diagnostics.error(path, line("log.level"), "'log.level' cannot be empty");
    }
    if !(0.0..=2.0).contains(&config.model.temperature) {
        diagnostics.error(
            path,
            line("model.temperature"),
            "'model.temperature' must be between 0 and 2",
        );
    }
}

fn validate_telemetry(
    telemetry: &TelemetryConfig,
    line: &dyn Fn(&str) -> Option<usize>,
    path: &Path,
    diagnostics: &mut Diagnostics,
) {
    if !(0.0..=1.0).contains(&telemetry.sample_rate) {
        diagnostics.error(
            path,
            line("telemetry.sample_rate"),
            "'telemetry.sample_rate' must be between 0 and 1",
        );
    }
    if let Some(endpoint) = &telemetry.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        diagnostics.error(
            path,
            line("telemetry.endpoint"),
            format!(
                "'telemetry.endpoint': '{endpoint}' is not an http:// or https:// URL (e.g. http://localhost:4317)"
            ),
        );
    }
    for (name, value) in &telemetry.headers {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid_name || value.bytes().any(|b| b.is_ascii_control()) {
            diagnostics.error(
                path,
                line(&format!("telemetry.headers.{name}")),
                format!("'telemetry.headers': '{name}' is not a valid header name and value"),
            );
        }
    }
    if telemetry.metrics_interval_s > 86_400 {
        diagnostics.error(
            path,
            line("telemetry.metrics_interval_s"),
            "'telemetry.metrics_interval_s' must be at most 86400",
        );
    }
}

static VAR_PATTERN: std::sync::LazyLock<Option<Regex>> =
    std::sync::LazyLock::new(|| Regex::new(r"\$\{([^}]+)\}").ok());

/// Replaces `${VAR}` in every string value (not keys). An undefined variable is an error.
fn substitute_env(
    value: &mut Value,
    env: &BTreeMap<String, String>,
    trail: &mut Vec<PathSegment>,
    report: &mut dyn FnMut(&[PathSegment], String),
) {
    match value {
        Value::String(text) => {
            let Some(pattern) = VAR_PATTERN.as_ref() else {
                return;
            };
            if !text.contains("${") {
                return;
            }
            let mut missing = Vec::new();
            let replaced = pattern.replace_all(text, |caps: &regex::Captures<'_>| {
                let name = &caps[1];
                match env.get(name) {
                    Some(v) => v.clone(),
                    None => {
                        missing.push(name.to_string());
                        String::new()
                    }
                }
            });
            if missing.is_empty() {
                *text = replaced.into_owned();
            } else {
                for name in missing {
                    report(
                        trail,
                        format!(
                            "environment variable '${{{name}}}' is not defined: set it or remove the reference"
                        ),
                    );
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                trail.push(PathSegment::Index(i));
                substitute_env(item, env, trail, report);
                trail.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                trail.push(PathSegment::Key(key.clone()));
                substitute_env(item, env, trail, report);
                trail.pop();
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The standard OpenTelemetry variables, for the `telemetry:` keys the file leaves unset:
/// `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_EXPORTER` (`otlp`, `console`,
/// `none`), `OTEL_EXPORTER_OTLP_ENDPOINT` (which also selects the `otlp` exporter when neither
/// the file nor `OTEL_TRACES_EXPORTER` names one), `OTEL_EXPORTER_OTLP_PROTOCOL`,
/// `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`), `OTEL_TRACES_SAMPLER_ARG` and
/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds). `AGENT_GATEWAY_TELEMETRY__*` still overrides.
pub fn fill_from_otel_env(value: &mut Value, env: &BTreeMap<String, String>) {
    let Value::Object(root) = value else {
        return;
    };
    let telemetry = root
        .entry("telemetry")
        .or_insert_with(lenient::empty_object);
    if telemetry.is_null() {
        *telemetry = lenient::empty_object();
    }
    let Value::Object(telemetry) = telemetry else {
        return;
    };
    let var = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut fill = |key: &str, new: Option<Value>| {
        if let Some(new) = new {
            telemetry.entry(key).or_insert(new);
        }
    };
    fill(
        "enabled",
        var("OTEL_SDK_DISABLED").map(|v| Value::Bool(!v.eq_ignore_ascii_case("true"))),
    );
    fill("service_name", var("OTEL_SERVICE_NAME").map(Value::from));
    let exporter = var("OTEL_TRACES_EXPORTER")
        .or(var("OTEL_EXPORTER_OTLP_ENDPOINT").map(|_| "otlp"))
        .map(Value::from);
    fill("exporter", exporter);
    fill(
        "endpoint",
        var("OTEL_EXPORTER_OTLP_ENDPOINT").map(Value::from),
    );
    fill(
        "protocol",
        var("OTEL_EXPORTER_OTLP_PROTOCOL").map(Value::from),
    );
    fill(
        "headers",
        var("OTEL_EXPORTER_OTLP_HEADERS").map(|list| {
            Value::Object(
                list.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), Value::from(v.trim())))
                    .collect(),
            )
        }),
    );
    fill(
        "sample_rate",
        var("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|v| v.parse::<f64>().ok())
            .map(Value::from),
    );
    fill(
        "metrics_interval_s",
        var("OTEL_METRIC_EXPORT_INTERVAL")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ms| Value::from(ms.div_ceil(1000))),
    );
}

/// Writes `AGENT_GATEWAY_A__B=v` into `value` at `a.b`, returning (path, variable) pairs.
/// Values that parse as JSON (numbers, booleans, arrays, objects) are used as such.
fn overlay_env(value: &mut Value, env: &BTreeMap<String, String>) -> Vec<(Vec<String>, String)> {
    let mut applied = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if RESERVED_ENV.contains(&var.as_str()) || rest.is_empty() {
            continue;
        }
        let keys: Vec<String> = rest.split("__").map(|k| k.to_ascii_lowercase()).collect();
        if keys.iter().any(String::is_empty) {
            continue;
        }
        let parsed = match serde_json::from_str::<Value>(raw) {
            Ok(v @ (Value::Array(_) | Value::Object(_) | Value::Number(_) | Value::Bool(_))) => v,
            _ => Value::String(raw.clone()),
        };
        if set_path(value, &keys, parsed) {
            applied.push((keys, var.clone()));
        }
    }
    applied
}

fn set_path(root: &mut Value, keys: &[String], new: Value) -> bool {
    let mut node = root;
    for (i, key) in keys.iter().enumerate() {
        let Value::Object(map) = node else {
            return false;
        };
        if i + 1 == keys.len() {
            map.insert(key.clone(), new);
            return true;
        }
        let child = map.entry(key.clone()).or_insert_with(lenient::empty_object);
        if child.is_null() {
            *child = lenient::empty_object();
        }
        node = child;
    }
    false
}

/// The environment variable that set `segments` or one of its ancestors.
fn env_source<'a>(
    applied: &'a [(Vec<String>, String)],
    segments: &[PathSegment],
) -> Option<&'a str> {
    let keys: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            PathSegment::Key(k) => Some(k.as_str()),
            PathSegment::Index(_) => None,
        })
        .collect();
    applied
        .iter()
        .find(|(path, _)| path.len() <= keys.len() && path.iter().zip(&keys).all(|(a, b)| a == b))
        .map(|(_, var)| var.as_str())
}

/// Resolves the SQLite file path of a `persistence.url` such as
/// `sqlite+aiosqlite:///agent_gateway.db` or `sqlite:///data/x.db` (text after `///`),
/// relative paths being relative to `base`.
pub fn sqlite_path(url: &str, base: &Path) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite")?;
    let rest = rest.split_once("://").map(|(_, r)| r)?;
    let file = rest.strip_prefix('/').unwrap_or(rest);
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    let file = Path::new(file);
    Some(if file.is_absolute() {
        file.to_path_buf()
    } else {
        base.join(file)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(text: &str, pairs: &[(&str, &str)]) -> LoadedConfig {
        GatewayConfig::from_yaml(Path::new("ws/gateway.yaml"), text, &env(pairs))
    }

    #[test]
    fn otel_variables_fill_what_the_file_leaves_unset() {
        let otel = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k1, team=core"),
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
        ];
        let telemetry = load("", &otel).config.map(|c| c.telemetry);
        let telemetry = telemetry.unwrap_or_default();
        assert_eq!(telemetry.exporter, TelemetryExporter::Otlp);
        assert_eq!(telemetry.endpoint(), "http://collector:4318");
        assert_eq!(telemetry.protocol, OtlpProtocol::Http);
        assert_eq!(
            telemetry.headers.get("api-key").map(String::as_str),
            Some("k1")
        );
        assert_eq!(
            telemetry.headers.get("team").map(String::as_str),
            Some("core")
        );
        assert_eq!(telemetry.service_name, "from-env");
        assert!((telemetry.sample_rate - 0.25).abs() < f64::EPSILON);
        assert_eq!(telemetry.metrics_interval_s, 2);
        assert!(telemetry.traces_on());

        // The file wins over OTEL_*; AGENT_GATEWAY_ wins over the file.
        let text = "telemetry:\n  exporter: console\n  service_name: from-file\n";
        let telemetry = load(text, &otel)
            .config
            .map(|c| c.telemetry)
            .unwrap_or_default();
        assert_eq!(telemetry.exporter, TelemetryExporter::Console);
        assert_eq!(telemetry.service_name, "from-file");
        let overridden = [("AGENT_GATEWAY_TELEMETRY__SERVICE_NAME", "from-prefix")];
        let telemetry = load(text, &overridden)
            .config
            .map(|c| c.telemetry)
            .unwrap_or_default();
        assert_eq!(telemetry.service_name, "from-prefix");

        let off = load("", &[("OTEL_SDK_DISABLED", "true")])
            .config
            .unwrap_or_default();
        assert!(!off.telemetry.enabled);
        // Nothing set: no traces, and the gRPC default address.
        let plain = load("", &[]).config.unwrap_or_default().telemetry;
        assert!(!plain.traces_on());
        assert_eq!(plain.endpoint(), "http://localhost:4317");
    }

    #[test]
    fn telemetry_values_are_checked_at_their_line() {
        let loaded = load(
            "telemetry:\n  sample_rate: 1.5\n  endpoint: collector:4317\n  headers:\n    \"bad name\": x\n",
            &[],
        );
        let text: String = loaded
            .diagnostics
            .iter()
            .map(|d| format!("{d}\n"))
            .collect();
        assert!(
            text.contains("gateway.yaml:2") && text.contains("sample_rate"),
            "{text}"
        );
        assert!(
            text.contains("gateway.yaml:3") && text.contains("endpoint"),
            "{text}"
        );
        assert!(text.contains("'bad name' is not a valid header"), "{text}");
        let loaded = load("", &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        assert!(loaded.config.is_none(), "http/json is refused, not ignored");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let loaded = load("", &[]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.config, Some(GatewayConfig::default()));
    }

    #[test]
    fn env_overrides_the_file() {
        let loaded = load(
            "server:\n  port: 8000\n  host: 127.0.0.1\n",
            &[
                ("AGENT_GATEWAY_SERVER__PORT", "9000"),
                ("AGENT_GATEWAY_GUARDRAILS__MAX_ITERATIONS", "3"),
                (
                    "AGENT_GATEWAY_AUTH__API_KEYS",
                    r#"[{"name":"a","key":"k"}]"#,
                ),
                ("AGENT_GATEWAY_SECRET_KEY", "not-a-config-key"),
            ],
        );
        let config = loaded.config.unwrap();
        assert_eq!(config.server.port, 9000);
        assert_eq!(config.server.host, "127.0.0.1");
        assert_eq!(config.guardrails.max_iterations, 3);
        assert_eq!(config.auth.api_keys[0].name, "a");
        assert_eq!(config.auth.api_keys[0].scopes, vec!["*"]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    }

    #[test]
    fn substitutes_variables_whole_and_embedded() {
        let loaded = load(
            "server:\n  port: ${PORT}\nmodel:\n  default: \"openai/${MODEL}-mini\"\n",
            &[("PORT", "7000"), ("MODEL", "gpt-4o")],
        );
        let config = loaded.config.unwrap();
        assert_eq!(config.server.port, 7000);
        assert_eq!(config.model.default, "openai/gpt-4o-mini");
    }

    #[test]
    fn undefined_variable_is_an_error_at_its_line() {
        let loaded = load("server:\n  host: ${NOPE}\n", &[]);
        assert!(loaded.config.is_none());
        let d: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, Some(2));
        assert!(d[0].message.contains("NOPE"));
    }

    #[test]
    fn type_error_names_key_and_line() {
        let loaded = load("server:\n  host: x\n  port: many\n", &[]);
        let d: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, Some(3));
        assert!(d[0].message.contains("server.port"), "{}", d[0].message);
        assert_eq!(d[0].to_string().split(':').next(), Some("ws/gateway.yaml"));
    }

    #[test]
    fn env_type_error_names_the_variable() {
        let loaded = load("", &[("AGENT_GATEWAY_SERVER__PORT", "lots")]);
        let d: Vec<_> = loaded.diagnostics.errors().collect();
        assert!(
            d[0].message.contains("AGENT_GATEWAY_SERVER__PORT"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn unknown_keys_are_warnings_with_lines() {
        let loaded = load("server:\n  port: 1\n  prot: 2\nextra: true\n", &[]);
        assert!(loaded.config.is_some());
        let w: Vec<_> = loaded.diagnostics.warnings().collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].line, Some(3));
        assert!(w[0].message.contains("server.prot"));
        assert_eq!(w[1].line, Some(4));
    }

    #[test]
    fn invalid_yaml_reports_a_line() {
        let loaded = load("server:\n  port: [1,\n", &[]);
        assert!(loaded.config.is_none());
        assert!(loaded.diagnostics.errors().next().unwrap().line.is_some());
    }

    #[test]
    fn semantic_rules() {
        let loaded = load(
            "timezone: Mars/Olympus\ncors:\n  allow_credentials: true\nauth:\n  mode: magic\n",
            &[],
        );
        assert!(loaded.config.is_none());
        let loaded = load(
            "timezone: Mars/Olympus\ncors:\n  allow_credentials: true\n",
            &[],
        );
        let errors: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, Some(1));
        assert_eq!(errors[1].line, Some(3));
    }

    #[test]
    fn passwords_are_masked_in_urls() {
        assert_eq!(
            redact_url("amqp://guest:secret@localhost:5672/"),
            "amqp://guest:***@localhost:5672/"
        );
        assert_eq!(redact_url("redis://:pw@h/0"), "redis://:***@h/0");
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }

    #[test]
    fn log_and_shutdown_keys() {
        let loaded = load(
            "server:\n  shutdown_timeout_s: 5\nlog:\n  format: json\n  level: debug\n",
            &[],
        );
        let config = loaded.config.unwrap();
        assert_eq!(config.server.shutdown_timeout_s, 5);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "debug");
        let loaded = load("server:\n  shutdown_timeout_s: 0\n", &[]);
        let errors: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(2));
        let loaded = load("log:\n  format: xml\n", &[]);
        assert_eq!(loaded.diagnostics.errors().next().unwrap().line, Some(2));
    }

    #[test]
    fn max_body_bytes_has_a_default_and_bounds() {
        let loaded = load("server:\n  port: 9000\n", &[]);
        let config = loaded.config.unwrap();
        assert_eq!(config.server.max_body_bytes, 2 * 1024 * 1024);
        let loaded = load("server:\n  max_body_bytes: 65536\n", &[]);
        assert!(loaded.diagnostics.errors().next().is_none());
        assert_eq!(loaded.config.unwrap().server.max_body_bytes, 65536);
        for bad in ["100", "2147483648"] {
            let loaded = load(&format!("server:\n  max_body_bytes: {bad}\n"), &[]);
            let errors: Vec<_> = loaded.diagnostics.errors().collect();
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].line, Some(2));
            assert!(
                errors[0].message.contains("server.max_body_bytes"),
                "{errors:?}"
            );
        }
        let loaded = load("server:\n  max_body_bytes: lots\n", &[]);
        assert!(loaded.diagnostics.errors().next().is_some());
        let loaded = load(
            "server: {}\n",
            &[("AGENT_GATEWAY_SERVER__MAX_BODY_BYTES", "4096")],
        );
        assert_eq!(loaded.config.unwrap().server.max_body_bytes, 4096);
    }

    #[test]
    fn allowed_private_hosts_are_hosts_not_urls() {
        let loaded = load(
            "outbound:\n  allowed_private_hosts: [\"127.0.0.1\", \"[::1]\", mcp.internal, \"*\"]\n",
            &[],
        );
        assert!(loaded.diagnostics.errors().next().is_none());
        let config = loaded.config.unwrap();
        assert_eq!(config.outbound.allowed_private_hosts.len(), 4);
        let loaded = load(
            "timezone: UTC\noutbound:\n  allowed_private_hosts: [\"http://127.0.0.1:8080\"]\n",
            &[],
        );
        let errors: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("outbound.allowed_private_hosts"));
        assert_eq!(errors[0].line, Some(3));
    }

    #[test]
    fn metrics_listen_must_be_an_address() {
        let loaded = load(
            "metrics:\n  enabled: false\n  listen: \"127.0.0.1:9464\"\n",
            &[],
        );
        assert!(loaded.diagnostics.errors().next().is_none());
        let config = loaded.config.unwrap();
        assert!(!config.metrics.enabled);
        assert_eq!(config.metrics.listen.as_deref(), Some("127.0.0.1:9464"));
        let loaded = load("metrics:\n  listen: localhost\n", &[]);
        let errors: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("metrics.listen"));
        assert_eq!(errors[0].line, Some(2));
    }

    #[test]
    fn security_headers_must_be_valid_header_values() {
        let loaded = load(
            "security:\n  x_frame_options: \"DENY\\nX-Evil: 1\"\n  referrer_policy: \"naïve\"\n",
            &[],
        );
        let errors: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].message.contains("security.x_frame_options"),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[0].line, Some(2));
        assert!(errors[1].message.contains("security.referrer_policy"));
        assert_eq!(errors[1].line, Some(3));
    }

    /// One rule, one error: credentials with '*' is reported once, CORS on or off.
    #[test]
    fn cors_credentials_with_any_origin_is_one_error() {
        let loaded = load(
            "cors:\n  enabled: true\n  allow_origins: [\"*\"]\n  allow_credentials: true\n",
            &[],
        );
        let errors: Vec<_> = loaded.diagnostics.errors().collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(4));
    }

    #[test]
    fn sqlite_paths() {
        let base = Path::new("/ws");
        assert_eq!(
            sqlite_path("sqlite+aiosqlite:///agent_gateway.db", base),
            Some(PathBuf::from("/ws/agent_gateway.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:////var/x.db", base),
            Some(PathBuf::from("/var/x.db"))
        );
        assert_eq!(sqlite_path("postgresql://x", base), None);
    }
}
