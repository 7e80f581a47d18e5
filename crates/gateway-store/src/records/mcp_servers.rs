//! MCP servers added at runtime: the record and [`McpServerStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;

/// An MCP server added through the admin API. Env, headers and credentials are sealed by the
/// gateway before they reach the store; the store never sees them in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerRecord {
    pub id: String,
    pub name: String,
    /// `stdio` or `streamable_http`.
    pub transport: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub url: Option<String>,
    pub encrypted_env: Option<String>,
    pub encrypted_headers: Option<String>,
    pub encrypted_credentials: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// MCP servers added at runtime.
#[async_trait]
pub trait McpServerStore: Send + Sync {
    /// Adds an MCP server; a taken name is [`StoreError::Conflict`].
    async fn insert_mcp_server(&self, record: &McpServerRecord) -> Result<(), StoreError>;

    /// Replaces an MCP server's fields (by id). Returns whether it exists.
    async fn update_mcp_server(&self, record: &McpServerRecord) -> Result<bool, StoreError>;

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError>;

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServerRecord>, StoreError>;

    /// Every stored MCP server, by name.
    async fn list_mcp_servers(&self) -> Result<Vec<McpServerRecord>, StoreError>;
}
