//! An MCP server's tool as one of the gateway's tools.

use std::sync::{Arc, Weak};

use std::collections::BTreeSet;

use async_trait::async_trait;
use jsonschema::Validator;
use rmcp::model::{CallToolResult, Tool as ListedTool};
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

impl McpToolInfo {
    /// A tool `server` listed, as agents will call it (`{server}__{tool}`), or why it cannot
    /// be one: the name reaches every model provider, which refuses names outside
    /// `[A-Za-z0-9_-]{1,64}` for every call of the run.
    pub(crate) fn listed(server: &str, tool: &ListedTool) -> Result<Self, String> {
        let name = format!("{server}__{}", tool.name);
        if !gateway_workspace::tool::is_valid_tool_name(&name) {
            let shown: String = name.chars().take(80).collect();
            return Err(format!(
                "MCP server '{server}': tool '{shown}' skipped (a tool name is 1 to 64 letters, digits, '_' or '-')"
            ));
        }
        Ok(Self {
            name,
            original_name: tool.name.to_string(),
            server_name: server.to_string(),
            description: tool.description.clone().unwrap_or_default().to_string(),
            input_schema: Value::Object((*tool.input_schema).clone()),
        })
    }
}

/// The tools of one listing of `server` that agents can call (each name once), and a
/// warning for each tool left out.
pub(crate) fn listing(server: &str, tools: &[ListedTool]) -> (Vec<McpToolInfo>, Vec<String>) {
    let mut seen = BTreeSet::new();
    let mut infos = Vec::new();
    let mut skipped = Vec::new();
    for tool in tools {
        match McpToolInfo::listed(server, tool) {
            Ok(info) if seen.insert(info.name.clone()) => infos.push(info),
            Ok(info) => skipped.push(format!(
                "MCP server '{server}': tool '{}' listed twice; the first is kept",
                info.original_name
            )),
            Err(warning) => skipped.push(warning),
        }
    }
    (infos, skipped)
}

/// What a call answered, as the model is given it: the text blocks joined, else the
/// structured content, else the blocks as JSON. A result marked as an error is the tool's
/// failure, with that text as its message.
pub(crate) fn call_value(result: &CallToolResult) -> Result<Value, ToolError> {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect();
    let value = if !texts.is_empty() {
        Value::String(texts.join("\n"))
    } else if let Some(structured) = &result.structured_content {
        structured.clone()
    } else {
        serde_json::to_value(&result.content).unwrap_or(Value::Null)
    };
    if result.is_error == Some(true) {
        let message = match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        return Err(ToolError::failed(message));
    }
    Ok(value)
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
