//! The gateway's MCP servers: registering them from the three sources at build, keeping the
//! `gateway.yaml` ones in step on reload, and the admin operations on stored servers (with
//! their secrets sealed).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gateway_store::{McpServerRecord, SharedStore};
use gateway_workspace::{Diagnostics, GatewayConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{GatewayError, Record};
use crate::mcp::{
    McpManager, McpOrigin, McpServerConfig, McpServerState, McpTest, McpTimeouts, McpToolInfo,
    McpTransport,
};
use crate::outbound::OutboundPolicy;
use crate::secrets::{SecretBox, SecretError};
use crate::state::GatewayState;

/// An MCP server as the admin API shows it: secrets are never included, only their names.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct McpServerInfo {
    /// The row id of a stored server; the name for servers from `gateway.yaml` or code.
    pub id: String,
    pub name: String,
    pub transport: McpTransport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub header_keys: Vec<String>,
    pub enabled: bool,
    pub credential_keys: Vec<String>,
    pub has_env: bool,
    pub auth_type: String,
    pub tool_count: usize,
    pub connected: bool,
    /// `api`, `config` or `code`: only `api` servers can be edited through the API.
    pub source: String,
    /// Why it is not connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A new stored MCP server.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerCreate {
    pub name: String,
    pub transport: McpTransport,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
    pub enabled: Option<bool>,
}

/// Changes to a stored MCP server: absent fields stay, `{}` clears env/headers/credentials.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerUpdate {
    pub name: Option<String>,
    pub transport: Option<McpTransport>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
    pub enabled: Option<bool>,
}

/// The servers of `mcp.servers` in `gateway.yaml`, or what is wrong with them.
pub(crate) fn config_servers(
    config: &GatewayConfig,
    file: &std::path::Path,
) -> Result<Vec<McpServerConfig>, Diagnostics> {
    let mut diagnostics = Diagnostics::new();
    let mut servers = Vec::new();
    let outbound = OutboundPolicy::from_config(config);
    for (index, raw) in config.mcp.servers.iter().enumerate() {
        match serde_json::from_value::<McpServerConfig>(raw.clone()) {
            Ok(server) => {
                let mut problems = server.problems();
                problems.extend(server.refused_by(&outbound));
                if problems.is_empty() {
                    servers.push(server);
                } else {
                    for problem in problems {
                        diagnostics.error(file, None, format!("mcp.servers[{index}]: {problem}"));
                    }
                }
            }
            Err(err) => diagnostics.error(file, None, format!("mcp.servers[{index}]: {err}")),
        }
    }
    if diagnostics.has_errors() {
        Err(diagnostics)
    } else {
        Ok(servers)
    }
}

/// The runnable configuration of a stored server (its secrets opened).
fn open_record(
    record: &McpServerRecord,
    secrets: Option<&SecretBox>,
) -> Result<McpServerConfig, SecretError> {
    let open = |sealed: &Option<String>| -> Result<Option<Value>, SecretError> {
        match sealed {
            None => Ok(None),
            Some(sealed) => secrets
                .ok_or(SecretError::NoKey)?
                .open_json::<Value>(sealed)
                .map(Some),
        }
    };
    let string_map = |value: Option<Value>| -> BTreeMap<String, String> {
        match value {
            Some(Value::Object(map)) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    Ok(McpServerConfig {
        env: string_map(open(&record.encrypted_env)?),
        headers: string_map(open(&record.encrypted_headers)?),
        credentials: match open(&record.encrypted_credentials)? {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        },
        ..public_config(record)
    })
}

/// A stored server's configuration without its secrets.
fn public_config(record: &McpServerRecord) -> McpServerConfig {
    McpServerConfig {
        name: record.name.clone(),
        transport: McpTransport::parse(&record.transport).unwrap_or(McpTransport::Stdio),
        command: record.command.clone(),
        args: record.args.clone(),
        env: BTreeMap::new(),
        url: record.url.clone(),
        headers: BTreeMap::new(),
        credentials: None,
        enabled: record.enabled,
    }
}

/// Seals a configuration's secrets into a record (refusing without a key).
fn seal_record(
    config: &McpServerConfig,
    id: &str,
    created_at: DateTime<Utc>,
    updated_at: Option<DateTime<Utc>>,
    secrets: Option<&SecretBox>,
) -> Result<McpServerRecord, GatewayError> {
    let key = match (config.has_secrets(), secrets) {
        (true, None) => return Err(SecretError::NoKey.into()),
        (_, key) => key,
    };
    let seal = |present: bool, value: Value| -> Option<String> {
        match (present, key) {
            (true, Some(key)) => Some(key.seal_json(&value)),
            _ => None,
        }
    };
    Ok(McpServerRecord {
        id: id.to_string(),
        name: config.name.clone(),
        transport: config.transport.as_str().to_string(),
        command: config.command.clone(),
        args: config.args.clone(),
        url: config.url.clone(),
        encrypted_env: seal(
            !config.env.is_empty(),
            serde_json::to_value(&config.env).unwrap_or_default(),
        ),
        encrypted_headers: seal(
            !config.headers.is_empty(),
            serde_json::to_value(&config.headers).unwrap_or_default(),
        ),
        encrypted_credentials: seal(
            config.credentials.as_ref().is_some_and(|c| !c.is_empty()),
            Value::Object(config.credentials.clone().unwrap_or_default()),
        ),
        enabled: config.enabled,
        created_at,
        updated_at,
    })
}

fn info(
    id: String,
    config: &McpServerConfig,
    state: Option<&McpServerState>,
    source: &str,
    times: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> McpServerInfo {
    McpServerInfo {
        id,
        name: config.name.clone(),
        transport: config.transport,
        command: config.command.clone(),
        args: (config.transport == McpTransport::Stdio).then(|| config.args.clone()),
        url: config.url.clone(),
        header_keys: config.headers.keys().cloned().collect(),
        enabled: config.enabled,
        credential_keys: config
            .credentials
            .as_ref()
            .map(|c| c.keys().filter(|k| *k != "auth_type").cloned().collect())
            .unwrap_or_default(),
        has_env: !config.env.is_empty(),
        auth_type: config.auth_type().to_string(),
        tool_count: state.map_or(0, |s| s.tool_count),
        connected: state.is_some_and(|s| s.connected),
        source: source.to_string(),
        error: state.and_then(|s| s.error.clone()),
        created_at: times.0,
        updated_at: times.1,
    }
}

/// Builds the manager with every server of `gateway.yaml`, code and the store, and connects
/// them (each bounded by the connection timeout; failures retry in the background).
pub(crate) async fn start_manager(
    config: &GatewayConfig,
    config_file: &std::path::Path,
    code_servers: Vec<McpServerConfig>,
    store: &SharedStore,
    secrets: Option<&SecretBox>,
) -> Result<Arc<McpManager>, GatewayError> {
    let manager = McpManager::new(
        McpTimeouts::from_config(&config.mcp),
        OutboundPolicy::from_config(config),
    );
    for server in config_servers(config, config_file).map_err(GatewayError::InvalidConfig)? {
        manager
            .add(server, McpOrigin::Config)
            .map_err(GatewayError::Conflict)?;
    }
    for server in code_servers {
        let problems = server.problems();
        if !problems.is_empty() {
            return Err(GatewayError::InvalidRequest(format!(
                "MCP server '{}': {}",
                server.name,
                problems.join("; ")
            )));
        }
        manager
            .add(server, McpOrigin::Code)
            .map_err(GatewayError::Conflict)?;
    }
    for record in store.list_mcp_servers().await? {
        match open_record(&record, secrets) {
            Ok(server) => {
                if let Err(err) = manager.add(server, McpOrigin::Api { id: record.id }) {
                    tracing::error!(server = %record.name, error = %err, "stored MCP server skipped");
                }
            }
            Err(err) => {
                tracing::error!(server = %record.name, error = %err, "stored MCP server skipped")
            }
        }
    }
    manager.connect_all().await;
    Ok(manager)
}

/// Brings the `gateway.yaml` servers in line with a reloaded configuration.
pub(crate) async fn sync_config_servers(
    manager: &McpManager,
    config: &GatewayConfig,
    config_file: &std::path::Path,
) -> Result<(), GatewayError> {
    let wanted = config_servers(config, config_file).map_err(GatewayError::ReloadFailed)?;
    manager.set_timeouts(McpTimeouts::from_config(&config.mcp));
    manager.set_outbound(OutboundPolicy::from_config(config));
    for name in manager.names_from("config") {
        let unchanged = manager
            .state(&name)
            .is_some_and(|s| wanted.contains(&s.config));
        if !unchanged {
            manager.remove(&name).await;
        }
    }
    let present = manager.names();
    for server in wanted {
        if !present.contains(&server.name)
            && let Err(err) = manager.add(server, McpOrigin::Config)
        {
            tracing::error!(error = %err, "MCP server from gateway.yaml skipped");
        }
    }
    manager.connect_all().await;
    Ok(())
}

/// Operations on MCP servers (`gateway.mcp_servers()`).
pub struct McpServers<'a> {
    state: &'a Arc<GatewayState>,
}

impl<'a> McpServers<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    fn mcp(&self) -> &Arc<McpManager> {
        &self.state.mcp
    }

    fn secrets(&self) -> Option<&SecretBox> {
        self.state.secrets.as_ref()
    }

    /// Every MCP server: stored ones first-class, plus those of `gateway.yaml` and code.
    pub async fn list(&self) -> Result<Vec<McpServerInfo>, GatewayError> {
        let mut all = Vec::new();
        let stored = self.state.store.list_mcp_servers().await?;
        for record in &stored {
            all.push(self.stored_info(record));
        }
        for state in self.mcp().states() {
            if matches!(state.origin, McpOrigin::Api { .. }) {
                continue;
            }
            all.push(info(
                state.config.name.clone(),
                &state.config,
                Some(&state),
                state.origin.as_str(),
                (None, None),
            ));
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    fn stored_info(&self, record: &McpServerRecord) -> McpServerInfo {
        let state = self.mcp().state(&record.name);
        // Secret names come from the opened record when the key is there, else the running
        // configuration; a record that cannot be opened still shows its public fields.
        let (config, problem) = match open_record(record, self.secrets()) {
            Ok(config) => (config, None),
            Err(err) => match &state {
                Some(running) => (running.config.clone(), None),
                None => (public_config(record), Some(err.to_string())),
            },
        };
        let mut shown = info(
            record.id.clone(),
            &config,
            state.as_ref(),
            "api",
            (Some(record.created_at), record.updated_at),
        );
        if problem.is_some() {
            shown.error = problem;
        }
        shown
    }

    /// One MCP server by row id (stored) or by name (any source).
    pub async fn get(&self, id: &str) -> Result<McpServerInfo, GatewayError> {
        if let Some(record) = self.find_record(id).await? {
            return Ok(self.stored_info(&record));
        }
        let state = self
            .mcp()
            .state(id)
            .ok_or_else(|| GatewayError::not_found(Record::McpServer, id))?;
        Ok(info(
            id.to_string(),
            &state.config,
            Some(&state),
            state.origin.as_str(),
            (None, None),
        ))
    }

    async fn find_record(&self, id: &str) -> Result<Option<McpServerRecord>, GatewayError> {
        if let Some(record) = self.state.store.get_mcp_server(id).await? {
            return Ok(Some(record));
        }
        let stored = self.state.store.list_mcp_servers().await?;
        Ok(stored.into_iter().find(|r| r.name == id))
    }

    /// A stored server, or why it cannot be edited.
    async fn editable(&self, id: &str) -> Result<McpServerRecord, GatewayError> {
        match self.find_record(id).await? {
            Some(record) => Ok(record),
            None => match self.mcp().state(id) {
                Some(state) => Err(GatewayError::Conflict(format!(
                    "MCP server '{id}' is defined in {}; change it there",
                    if state.origin == McpOrigin::Config {
                        "gateway.yaml"
                    } else {
                        "code"
                    }
                ))),
                None => Err(GatewayError::not_found(Record::McpServer, id)),
            },
        }
    }

    /// Stores a new MCP server (secrets sealed) and connects it.
    pub async fn create(&self, request: McpServerCreate) -> Result<McpServerInfo, GatewayError> {
        let config = McpServerConfig {
            name: request.name,
            transport: request.transport,
            command: request.command,
            args: request.args.unwrap_or_default(),
            env: request.env.unwrap_or_default(),
            url: request.url,
            headers: request.headers.unwrap_or_default(),
            credentials: request.credentials.filter(|c| !c.is_empty()),
            enabled: request.enabled.unwrap_or(true),
        };
        self.check(&config)?;
        if self.mcp().state(&config.name).is_some() {
            return Err(GatewayError::Conflict(format!(
                "an MCP server named '{}' already exists",
                config.name
            )));
        }
        let record = seal_record(
            &config,
            &uuid::Uuid::new_v4().to_string(),
            Utc::now(),
            None,
            self.secrets(),
        )?;
        self.state
            .store
            .insert_mcp_server(&record)
            .await
            .map_err(conflict_or_storage)?;
        self.activate(config, &record.id).await;
        Ok(self.stored_info(&record))
    }

    /// What is wrong with a server given through the API: its own problems, and URLs the
    /// outbound policy refuses.
    fn check(&self, config: &McpServerConfig) -> Result<(), GatewayError> {
        let mut problems = config.problems();
        problems.extend(config.refused_by(&self.state.generation().outbound));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GatewayError::InvalidRequest(problems.join("; ")))
        }
    }

    /// Registers a stored server with the manager and connects it if enabled.
    async fn activate(&self, config: McpServerConfig, id: &str) {
        let name = config.name.clone();
        let enabled = config.enabled;
        if let Err(err) = self
            .mcp()
            .add(config, McpOrigin::Api { id: id.to_string() })
        {
            tracing::error!(server = %name, error = %err, "MCP server not activated");
            return;
        }
        if enabled && let Err(err) = self.mcp().refresh(&name).await {
            tracing::warn!(server = %name, error = %err, "MCP server not connected yet");
        }
    }

    /// Changes a stored MCP server and reconnects it.
    pub async fn update(
        &self,
        id: &str,
        update: McpServerUpdate,
    ) -> Result<McpServerInfo, GatewayError> {
        let record = self.editable(id).await?;
        let mut config = open_record(&record, self.secrets())?;
        let old_name = config.name.clone();
        if let Some(name) = update.name {
            config.name = name;
        }
        if let Some(transport) = update.transport {
            config.transport = transport;
        }
        if let Some(command) = update.command {
            config.command = Some(command).filter(|c| !c.is_empty());
        }
        if let Some(args) = update.args {
            config.args = args;
        }
        if let Some(env) = update.env {
            config.env = env;
        }
        if let Some(url) = update.url {
            config.url = Some(url).filter(|u| !u.is_empty());
        }
        if let Some(headers) = update.headers {
            config.headers = headers;
        }
        if let Some(credentials) = update.credentials {
            config.credentials = Some(credentials).filter(|c| !c.is_empty());
        }
        if let Some(enabled) = update.enabled {
            config.enabled = enabled;
        }
        self.check(&config)?;
        if config.name != old_name && self.mcp().state(&config.name).is_some() {
            return Err(GatewayError::Conflict(format!(
                "an MCP server named '{}' already exists",
                config.name
            )));
        }
        let updated = seal_record(
            &config,
            &record.id,
            record.created_at,
            Some(Utc::now()),
            self.secrets(),
        )?;
        self.state
            .store
            .update_mcp_server(&updated)
            .await
            .map_err(conflict_or_storage)?;
        self.mcp().remove(&old_name).await;
        self.activate(config, &record.id).await;
        Ok(self.stored_info(&updated))
    }

    /// Deletes a stored MCP server and closes its connection. Returns whether it existed.
    pub async fn delete(&self, id: &str) -> Result<(), GatewayError> {
        let record = self.editable(id).await?;
        let deleted = self.state.store.delete_mcp_server(&record.id).await?;
        self.mcp().remove(&record.name).await;
        if deleted {
            Ok(())
        } else {
            Err(GatewayError::not_found(Record::McpServer, id))
        }
    }

    /// Connects to a server without keeping the connection, and lists its tools.
    pub async fn test(&self, id: &str) -> Result<McpTest, GatewayError> {
        let config = self.runnable_config(id).await?;
        Ok(self.mcp().test(&config).await)
    }

    async fn runnable_config(&self, id: &str) -> Result<McpServerConfig, GatewayError> {
        if let Some(record) = self.find_record(id).await? {
            return Ok(open_record(&record, self.secrets())?);
        }
        self.mcp()
            .state(id)
            .map(|s| s.config)
            .ok_or_else(|| GatewayError::not_found(Record::McpServer, id))
    }

    /// Reconnects a server and rediscovers its tools. A failure is reported in `error`.
    pub async fn refresh(&self, id: &str) -> Result<McpServerInfo, GatewayError> {
        let config = self.runnable_config(id).await?;
        if let Err(err) = self.mcp().refresh(&config.name).await {
            tracing::warn!(server = %config.name, error = %err, "MCP refresh failed");
        }
        self.get(id).await
    }

    /// The tools discovered on a server.
    pub async fn tools(&self, id: &str) -> Result<Vec<McpToolInfo>, GatewayError> {
        let config = self.runnable_config(id).await?;
        Ok(self.mcp().tool_infos(&config.name))
    }
}

fn conflict_or_storage(err: gateway_store::StoreError) -> GatewayError {
    match err {
        gateway_store::StoreError::Conflict(what) => {
            GatewayError::Conflict(format!("{what} already exists"))
        }
        other => GatewayError::Storage(other),
    }
}
