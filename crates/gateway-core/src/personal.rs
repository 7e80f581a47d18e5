//! What a run of a personal agent (`scope: personal`) gets from its user's setup: the
//! instructions and settings for the prompt, the settings and opened secrets for its tools; and
//! which fields of a setup are required, missing or sensitive.

use std::collections::BTreeMap;

use gateway_store::UserConfigRecord;
use gateway_workspace::{AgentDefinition, AgentScope};
use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::secrets::SecretError;
use crate::state::GatewayState;

/// What a run of a personal agent gets from its user's setup.
#[derive(Debug, Clone, Default)]
pub(crate) struct PersonalContext {
    /// For the system prompt: the user's instructions and settings.
    pub prompt: String,
    pub config: Map<String, Value>,
    pub secrets: BTreeMap<String, String>,
}

impl PersonalContext {
    /// The prompt section of an optional personal context (`None` when there is nothing).
    pub fn prompt_of(personal: &Option<Self>) -> Option<&str> {
        personal
            .as_ref()
            .map(|p| p.prompt.as_str())
            .filter(|p| !p.is_empty())
    }

    /// Gives a run's tools the user's settings and secrets.
    pub fn into_tool_context(personal: Option<Self>, context: &mut crate::tools::ToolContext) {
        if let Some(personal) = personal {
            context.user_config = personal.config;
            context.user_secrets = personal.secrets;
        }
    }
}

fn schema_properties(agent: &AgentDefinition) -> Map<String, Value> {
    agent
        .setup_schema
        .as_ref()
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn sensitive_fields(agent: &AgentDefinition) -> Vec<String> {
    schema_properties(agent)
        .into_iter()
        .filter(|(_, p)| p.get("sensitive").and_then(Value::as_bool) == Some(true))
        .map(|(name, _)| name)
        .collect()
}

fn required_fields(agent: &AgentDefinition) -> Vec<String> {
    agent
        .setup_schema
        .as_ref()
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn missing_fields(agent: &AgentDefinition, record: &UserConfigRecord) -> Vec<String> {
    required_fields(agent)
        .into_iter()
        .filter(|f| {
            !record.config_values.contains_key(f) && !record.encrypted_secrets.contains_key(f)
        })
        .collect()
}

/// For a personal agent: the user's completed setup, opened for a run (a clear error when
/// there is no user or the setup is incomplete). `None` for other agents.
pub(crate) async fn personal_context(
    state: &GatewayState,
    agent: &AgentDefinition,
    user_id: Option<&str>,
) -> Result<Option<PersonalContext>, GatewayError> {
    if agent.scope != AgentScope::Personal {
        return Ok(None);
    }
    let user_id = user_id.ok_or(GatewayError::AuthRequired)?;
    let record = state.store.get_user_config(user_id, &agent.id).await?;
    let missing = match &record {
        None => required_fields(agent),
        Some(record) => missing_fields(agent, record),
    };
    let Some(record) = record.filter(|_| missing.is_empty()) else {
        return Err(GatewayError::SetupRequired {
            agent_id: agent.id.clone(),
            missing,
        });
    };
    let mut secrets = BTreeMap::new();
    for (key, sealed) in &record.encrypted_secrets {
        let sealed = sealed.as_str().unwrap_or_default();
        let opened = state
            .secrets
            .as_ref()
            .ok_or(SecretError::NoKey)
            .and_then(|b| b.open(sealed))?;
        secrets.insert(key.clone(), String::from_utf8_lossy(&opened).into_owned());
    }
    let mut prompt = String::new();
    if let Some(instructions) = record
        .instructions
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        prompt.push_str(instructions.trim());
        prompt.push('\n');
    }
    if !record.config_values.is_empty() {
        prompt.push_str("\nThe user's settings:\n");
        for (key, value) in &record.config_values {
            let shown = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            prompt.push_str(&format!("- {key}: {shown}\n"));
        }
    }
    Ok(Some(PersonalContext {
        prompt,
        config: record.config_values,
        secrets,
    }))
}
