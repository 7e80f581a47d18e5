//! `memory_save`, `memory_recall` and `memory_forget` (0.2.13's names and parameters), given
//! to memory-enabled agents. They act in the run's scope: the user's memories (and, for
//! recall, the shared knowledge); with no known user, the shared knowledge only when the
//! agent allows it.

use async_trait::async_trait;
use gateway_store::{MemorySource, MemoryType};
use serde_json::{Value, json};

use super::{MemoryBank, MemoryError, NewMemory};
use crate::tools::{SharedTool, Tool, ToolContext, ToolError, ToolSource};

pub const SAVE: &str = "memory_save";
pub const RECALL: &str = "memory_recall";
pub const FORGET: &str = "memory_forget";
/// Most memories one recall returns.
const MAX_RECALL: usize = 20;

/// The three tools over `bank`, given to its memory-enabled agents (none when no agent has
/// memory).
pub(crate) fn all(bank: &MemoryBank) -> Vec<SharedTool> {
    let granted: std::sync::Arc<Vec<String>> = std::sync::Arc::new(bank.enabled_agents());
    if granted.is_empty() {
        return Vec::new();
    }
    let types = json!(["semantic", "episodic", "procedural"]);
    vec![
        std::sync::Arc::new(MemoryTool {
            kind: Kind::Save,
            bank: bank.clone(),
            granted: granted.clone(),
            description: "Remember a fact, preference, event or procedure about the user (or, with no user, the agent's shared knowledge) for later conversations.".into(),
            parameters: json!({"type": "object", "properties": {
                "content": {"type": "string", "description": "What to remember, as one self-contained statement."},
                "memory_type": {"type": "string", "enum": types, "description": "semantic (a fact), episodic (an event) or procedural (how to do something); default semantic"},
                "importance": {"type": "number", "minimum": 0, "maximum": 1, "description": "0 to 1; default 0.5"}},
                "required": ["content"]}),
        }),
        std::sync::Arc::new(MemoryTool {
            kind: Kind::Recall,
            bank: bank.clone(),
            granted: granted.clone(),
            description: "Search what is remembered about the user and the agent's shared knowledge.".into(),
            parameters: json!({"type": "object", "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "memory_type": {"type": "string", "enum": types},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RECALL, "description": "default 5"}},
                "required": ["query"]}),
        }),
        std::sync::Arc::new(MemoryTool {
            kind: Kind::Forget,
            bank: bank.clone(),
            granted: granted.clone(),
            description: "Forget one remembered memory, by the id memory_recall gave.".into(),
            parameters: json!({"type": "object", "properties": {
                "memory_id": {"type": "string"}}, "required": ["memory_id"]}),
        }),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Save,
    Recall,
    Forget,
}

struct MemoryTool {
    kind: Kind,
    bank: MemoryBank,
    granted: std::sync::Arc<Vec<String>>,
    description: String,
    parameters: Value,
}

fn failed(err: MemoryError) -> ToolError {
    ToolError::failed(err.to_string())
}

impl MemoryTool {
    async fn save(&self, arguments: &Value, context: &ToolContext) -> Result<Value, MemoryError> {
        let scope = self
            .bank
            .writable_scope(&context.agent_id, context.caller_identity.as_deref())?;
        let memory = NewMemory {
            content: arguments["content"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            memory_type: arguments["memory_type"]
                .as_str()
                .and_then(MemoryType::parse)
                .unwrap_or_default(),
            importance: arguments["importance"].as_f64().unwrap_or(0.5),
            pinned: false,
            source: MemorySource::Manual,
        };
        let saved = self.bank.save(&context.agent_id, &scope, memory).await?;
        self.bank
            .compact_after_save(&context.agent_id, &scope)
            .await;
        Ok(json!({"id": saved.id, "status": "saved"}))
    }

    async fn recall(&self, arguments: &Value, context: &ToolContext) -> Result<Value, MemoryError> {
        let limit = arguments["limit"]
            .as_u64()
            .map_or(5, |n| (n as usize).clamp(1, MAX_RECALL));
        let found = self
            .bank
            .recall(
                &context.agent_id,
                context.caller_identity.as_deref(),
                arguments["query"].as_str().unwrap_or_default(),
                arguments["memory_type"]
                    .as_str()
                    .and_then(MemoryType::parse),
                limit,
            )
            .await?;
        Ok(Value::Array(
            found
                .into_iter()
                .map(|r| {
                    json!({"id": r.memory.id, "content": r.memory.content,
                           "type": r.memory.memory_type.as_str(), "importance": r.memory.importance,
                           "score": (r.score * 1000.0).round() / 1000.0,
                           "scope": if r.own { "user" } else { "global" }})
                })
                .collect(),
        ))
    }

    async fn forget(&self, arguments: &Value, context: &ToolContext) -> Result<Value, MemoryError> {
        let scope = self
            .bank
            .writable_scope(&context.agent_id, context.caller_identity.as_deref())?;
        let id = arguments["memory_id"].as_str().unwrap_or_default();
        match self.bank.forget(&context.agent_id, &scope, id).await {
            Ok(()) => Ok(json!({"deleted": true})),
            Err(MemoryError::NotFound(_)) => Ok(json!({"deleted": false,
                "reason": format!("no memory '{id}' among this user's memories")})),
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl Tool for MemoryTool {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Save => SAVE,
            Kind::Recall => RECALL,
            Kind::Forget => FORGET,
        }
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> &Value {
        &self.parameters
    }

    fn source(&self) -> ToolSource {
        ToolSource::Builtin
    }

    fn allows_agent(&self, agent_id: &str) -> bool {
        self.bank.enabled(agent_id)
    }

    fn granted_to(&self) -> &[String] {
        &self.granted
    }

    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError> {
        match self.kind {
            Kind::Save => self.save(&arguments, context).await,
            Kind::Recall => self.recall(&arguments, context).await,
            Kind::Forget => self.forget(&arguments, context).await,
        }
        .map_err(failed)
    }
}
