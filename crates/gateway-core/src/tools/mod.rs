//! Tools agents can call: the [`Tool`] trait, the context a call runs in, and the registry
//! that decides which tools an agent gets.
//!
//! Sources, by precedence when names clash: code tools registered from Rust, file tools
//! (`tools/<id>/TOOL.md` + handler), then tools added at runtime (MCP, agentgate sites,
//! built-ins such as delegation).

mod code;
pub mod delegate;
mod file;
pub mod site;
pub mod workflow;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};

pub use code::CodeTool;
pub use file::FileTool;

/// Where a tool comes from (shown by `GET /v1/tools`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolSource {
    File,
    Code,
    Mcp,
    Site,
    Builtin,
}

/// Why a tool call failed; the message goes back to the model.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
}

impl ToolError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

/// What a tool knows about the execution calling it. Sent to file handlers as JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ToolContext {
    pub execution_id: String,
    pub agent_id: String,
    /// The caller's user id, when the request had one.
    pub caller_identity: Option<String>,
    /// The execution input (invoke `input`, accumulated chat input).
    pub metadata: Map<String, Value>,
    /// The caller's settings for a personal agent (non-secret values).
    pub user_config: Map<String, Value>,
    /// The caller's decrypted secrets for a personal agent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub user_secrets: BTreeMap<String, String>,
    pub parent_execution_id: Option<String>,
    pub root_execution_id: Option<String>,
    pub delegation_depth: u32,
    pub delegates_to: Vec<String>,
}

/// A callable tool.
#[async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn parameters(&self) -> &Value;
    fn source(&self) -> ToolSource;
    /// Whether `agent_id` may call it (TOOL.md `permissions.allowed_agents`, code `allowed_agents`).
    fn allows_agent(&self, agent_id: &str) -> bool {
        let _ = agent_id;
        true
    }
    /// Agents that receive the tool without listing it (code tools registered for them).
    fn granted_to(&self) -> &[String] {
        &[]
    }
    /// Extra instructions for the system prompt (a TOOL.md body).
    fn instructions(&self) -> &str {
        ""
    }
    fn requires_approval(&self) -> bool {
        false
    }
    /// Its own argument validator, for tools outside the registry's compiled set (MCP tools
    /// discovered after the generation was built).
    fn argument_validator(&self) -> Option<Arc<jsonschema::Validator>> {
        None
    }
    /// Runs the tool with validated arguments.
    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError>;
}

pub type SharedTool = Arc<dyn Tool>;

/// What a surface may know of a tool: its description, not the tool (runs call tools, through
/// the run pipeline).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub source: ToolSource,
    #[schema(value_type = Object)]
    pub parameters: Value,
    pub require_approval: bool,
}

impl ToolInfo {
    pub fn of(tool: &dyn Tool) -> Self {
        Self {
            name: tool.name().to_string(),
            description: tool.description().to_string(),
            source: tool.source(),
            parameters: tool.parameters().clone(),
            require_approval: tool.requires_approval(),
        }
    }
}

/// Tools by name with the precedence rule applied.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, SharedTool>,
}

impl ToolRegistry {
    /// Builds the registry: code tools override file tools of the same name, and file and code
    /// tools override `extra` tools (MCP, sites, built-ins).
    pub fn new(code: &[SharedTool], file: Vec<SharedTool>, extra: Vec<SharedTool>) -> Self {
        let mut tools = BTreeMap::new();
        for tool in extra.into_iter().chain(file) {
            tools.insert(tool.name().to_string(), tool);
        }
        for tool in code {
            tools.insert(tool.name().to_string(), Arc::clone(tool));
        }
        Self { tools }
    }

    pub fn get(&self, name: &str) -> Option<&SharedTool> {
        self.tools.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &SharedTool> {
        self.tools.values()
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tools `agent_id` gets: the named ones plus those granted to it, that exist and allow
    /// it, sorted by name.
    pub fn resolve_for_agent<'a>(
        &self,
        agent_id: &str,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Vec<SharedTool> {
        let mut wanted: Vec<&str> = names.into_iter().map(String::as_str).collect();
        for tool in self.tools.values() {
            if tool.granted_to().iter().any(|a| a == agent_id) {
                wanted.push(tool.name());
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .filter_map(|name| self.tools.get(name))
            .filter(|tool| tool.allows_agent(agent_id))
            .cloned()
            .collect()
    }
}

/// The schema of a tool without the noise models reject or ignore (`$schema`, `title`).
pub(crate) fn clean_schema(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
        if !map.contains_key("type") {
            map.insert("type".into(), Value::String("object".into()));
        }
        if map.get("type").and_then(Value::as_str) == Some("object")
            && !map.contains_key("properties")
        {
            map.insert("properties".into(), Value::Object(Map::new()));
        }
    }
    schema
}
