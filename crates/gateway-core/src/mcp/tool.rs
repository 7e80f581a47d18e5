//! An MCP server's tool as one of the gateway's tools.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use jsonschema::Validator;
use serde::Serialize;
use serde_json::Value;

use crate::tools::{Tool, ToolContext, ToolError, ToolSource, clean_schema};

/// A tool discovered on a server.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct McpToolInfo {
    /// `{server}__{tool}`: the name agents call.
    pub name: String,
    pub original_name: String,
    pub server_name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

/// Where a tool's calls go: the connection of its server (the manager, which holds the tool:
/// the tool sees it only through this).
#[async_trait]
pub(crate) trait ToolCalls: Send + Sync {
    /// Calls `tool` on `server_name`.
    async fn call(
        &self,
        server_name: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError>;
}

/// `{server}__{tool}`, called through the manager's connection.
pub struct McpTool {
    info: McpToolInfo,
    parameters: Value,
    validator: Option<Arc<Validator>>,
    calls: Weak<dyn ToolCalls>,
}

impl McpTool {
    pub(crate) fn new(info: McpToolInfo, calls: Weak<dyn ToolCalls>) -> Self {
        let parameters = clean_schema(info.input_schema.clone());
        let validator = gateway_workspace::schema::compile(&parameters)
            .ok()
            .map(Arc::new);
        Self {
            info,
            parameters,
            validator,
            calls,
        }
    }

    pub fn info(&self) -> &McpToolInfo {
        &self.info
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn description(&self) -> &str {
        &self.info.description
    }

    fn parameters(&self) -> &Value {
        &self.parameters
    }

    fn source(&self) -> ToolSource {
        ToolSource::Mcp
    }

    fn argument_validator(&self) -> Option<Arc<Validator>> {
        self.validator.clone()
    }

    async fn call(&self, arguments: Value, _context: &ToolContext) -> Result<Value, ToolError> {
        let calls = self
            .calls
            .upgrade()
            .ok_or_else(|| ToolError::failed("the gateway is shutting down"))?;
        calls
            .call(&self.info.server_name, &self.info.original_name, arguments)
            .await
    }
}
