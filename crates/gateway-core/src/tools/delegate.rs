//! `delegate_to_agent`: an agent hands a task to another agent and gets its answer back. The
//! child execution is linked to its parent and to the root of the tree, and runs for the same
//! user through the one run pipeline (the [`Runner`] seam).

use std::sync::Arc;

use async_trait::async_trait;
use gateway_workspace::Workspace;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, ToolSource};
use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::runner::Runner;
use crate::runs::{Origin, ParentLink, RunRequest};

/// The tool's name, as 0.2.13 spells it.
pub const NAME: &str = "delegate_to_agent";
/// Longest answer passed back (UTF-8 bytes).
const MAX_RESULT_BYTES: usize = 32_768;

pub struct DelegateTool {
    description: String,
    parameters: Value,
    /// Every agent gets the tool.
    agents: Vec<String>,
    max_depth: u32,
    runner: Arc<dyn Runner>,
    /// Agents by id, and whether each is enabled (of the generation the tool belongs to).
    enabled: std::collections::BTreeMap<String, bool>,
}

impl DelegateTool {
    /// The tool for a workspace, or `None` when there is nobody to delegate to.
    pub(crate) fn for_workspace(workspace: &Workspace, runner: Arc<dyn Runner>) -> Option<Self> {
        if workspace.agents.len() < 2 {
            return None;
        }
        let ids: Vec<&str> = workspace.agents.keys().map(String::as_str).collect();
        let roster: Vec<String> = workspace
            .agents
            .values()
            .filter(|a| a.enabled)
            .map(|a| format!("- {}: {}", a.id, a.display_description()))
            .collect();
        Some(Self {
            description: format!(
                "Delegate a task to another agent and get its answer. Agents:\n{}",
                roster.join("\n")
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "agent_id": {"type": "string", "description": format!("The agent to delegate to: one of {}", ids.join(", "))},
                    "message": {"type": "string", "description": "The task, stated fully: the other agent sees nothing else"},
                    "input": {"type": "object", "description": "Structured input for the agent, if it takes any"}
                },
                "required": ["agent_id", "message"]
            }),
            agents: workspace.agents.keys().cloned().collect(),
            max_depth: workspace.config.guardrails.max_delegation_depth,
            runner,
            enabled: workspace
                .agents
                .values()
                .map(|a| (a.id.clone(), a.enabled))
                .collect(),
        })
    }
}

fn refuse(message: String) -> Result<Value, ToolError> {
    // Refusals are answers, not failures: the model reads them and decides what to do.
    Ok(Value::String(format!("Error: {message}")))
}

fn cap(text: String) -> String {
    if text.len() <= MAX_RESULT_BYTES {
        return text;
    }
    let mut cut = MAX_RESULT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... [truncated]", &text[..cut])
}

#[async_trait]
impl Tool for DelegateTool {
    fn name(&self) -> &str {
        NAME
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

    fn granted_to(&self) -> &[String] {
        &self.agents
    }

    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError> {
        let target = arguments["agent_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let message = arguments["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let input = arguments["input"].as_object().cloned().unwrap_or_default();
        if target == context.agent_id {
            return refuse("an agent cannot delegate to itself".into());
        }
        match self.enabled.get(&target) {
            None => {
                return refuse(format!(
                    "unknown agent '{target}'; agents: {}",
                    self.agents.join(", ")
                ));
            }
            Some(false) => return refuse(format!("agent '{target}' is disabled")),
            Some(true) => {}
        }
        if !context.delegates_to.is_empty() && !context.delegates_to.contains(&target) {
            return refuse(format!(
                "'{}' may only delegate to {}",
                context.agent_id,
                context.delegates_to.join(", ")
            ));
        }
        if context.delegation_depth >= self.max_depth {
            return refuse(format!(
                "the delegation depth limit ({}) is reached",
                self.max_depth
            ));
        }
        let parent = ParentLink {
            execution_id: context.execution_id.clone(),
            root_execution_id: context
                .root_execution_id
                .clone()
                .unwrap_or_else(|| context.execution_id.clone()),
            depth: context.delegation_depth + 1,
        };
        let request = RunRequest::invoke(&target, message)
            .input(input)
            .origin(Origin::Delegation(parent));
        // The child runs for the parent's user (who owns it); `delegates_to` of the parent,
        // not the user's scopes, decides which agents it may reach.
        let actor = match &context.caller_identity {
            Some(user) => Actor::on_behalf_of(user.clone()),
            None => Actor::system(),
        };
        match self.runner.run(&actor, request).await {
            Ok(result) => {
                let text = if !result.answer.raw_text.is_empty() {
                    result.answer.raw_text
                } else {
                    serde_json::to_string(&result.answer).unwrap_or_default()
                };
                if let Some(error) = result.error {
                    Ok(Value::String(cap(format!(
                        "Error: Delegation to '{target}' failed: {error}"
                    ))))
                } else {
                    Ok(Value::String(cap(text)))
                }
            }
            Err(GatewayError::ShuttingDown) => {
                Err(ToolError::failed("the gateway is shutting down"))
            }
            Err(GatewayError::NotFound {
                record: Record::Agent,
                ..
            }) => refuse(format!("unknown agent '{target}'")),
            Err(err) => Ok(Value::String(format!(
                "Error: Delegation to '{target}' failed: {err}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_on_a_char_boundary() {
        let long = "é".repeat(MAX_RESULT_BYTES);
        let capped = cap(long);
        assert!(capped.ends_with("... [truncated]"));
        assert!(capped.len() <= MAX_RESULT_BYTES + 20);
    }
}
