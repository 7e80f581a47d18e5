//! An MCP server's tool as one of the gateway's tools.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use jsonschema::Validator;
use serde_json::Value;

use super::manager::{McpManager, McpToolInfo};
use crate::tools::{Tool, ToolContext, ToolError, ToolSource, clean_schema};

/// `{server}__{tool}`, called through the manager's connection.
pub struct McpTool {
    info: McpToolInfo,
    parameters: Value,
    validator: Option<Arc<Validator>>,
    manager: Weak<McpManager>,
}

impl McpTool {
    pub(crate) fn new(info: McpToolInfo, manager: Weak<McpManager>) -> Self {
        let parameters = clean_schema(info.input_schema.clone());
        let validator = gateway_workspace::schema::compile(&parameters)
            .ok()
            .map(Arc::new);
        Self {
            info,
            parameters,
            validator,
            manager,
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
        let manager = self
            .manager
            .upgrade()
            .ok_or_else(|| ToolError::failed("the gateway is shutting down"))?;
        manager
            .call(&self.info.server_name, &self.info.original_name, arguments)
            .await
    }
}
