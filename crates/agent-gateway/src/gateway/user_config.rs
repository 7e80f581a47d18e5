//! Personal agents (`scope: personal`): each user's setup, validated against the agent's
//! `setup_schema`, with `sensitive: true` fields sealed at rest and masked in every answer;
//! what a run of the agent gets from it (prompt instructions, tool context).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gateway_store::UserConfigRecord;
use gateway_workspace::{AgentDefinition, AgentScope};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Gateway, storage};
use crate::error::GatewayError;
use crate::secrets::SecretError;

/// How secrets are shown.
const MASK: &str = "***";

/// A user's config of a personal agent, secrets masked.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserConfigInfo {
    pub user_id: String,
    pub agent_id: String,
    pub instructions: Option<String>,
    #[schema(value_type = Object)]
    pub config_values: Map<String, Value>,
    /// Sensitive fields that are set, each shown as `***`.
    pub secrets: BTreeMap<String, String>,
    pub setup_completed: bool,
    /// Required fields still missing.
    pub missing: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

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

fn sensitive_fields(agent: &AgentDefinition) -> Vec<String> {
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

fn missing_fields(agent: &AgentDefinition, record: &UserConfigRecord) -> Vec<String> {
    required_fields(agent)
        .into_iter()
        .filter(|f| {
            !record.config_values.contains_key(f) && !record.encrypted_secrets.contains_key(f)
        })
        .collect()
}

fn info(agent: &AgentDefinition, record: &UserConfigRecord) -> UserConfigInfo {
    UserConfigInfo {
        user_id: record.user_id.clone(),
        agent_id: record.agent_id.clone(),
        instructions: record.instructions.clone(),
        config_values: record.config_values.clone(),
        secrets: record
            .encrypted_secrets
            .keys()
            .map(|k| (k.clone(), MASK.to_string()))
            .collect(),
        setup_completed: record.setup_completed,
        missing: missing_fields(agent, record),
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

impl Gateway {
    fn personal_agent(&self, agent_id: &str) -> Result<AgentDefinition, GatewayError> {
        let runtime = self.runtime();
        let agent = runtime
            .agent(agent_id)
            .ok_or_else(|| GatewayError::AgentNotFound(agent_id.to_string()))?;
        if agent.scope != AgentScope::Personal {
            return Err(GatewayError::NotPersonalAgent(agent_id.to_string()));
        }
        Ok(agent.clone())
    }

    /// Sets fields of the caller's config of a personal agent: present keys replace, `null`
    /// removes, `instructions` is kept apart; values are checked against `setup_schema`
    /// (without its `required`, so setup can be done in steps).
    pub async fn set_user_config(
        &self,
        user_id: Option<&str>,
        agent_id: &str,
        mut body: Map<String, Value>,
    ) -> Result<UserConfigInfo, GatewayError> {
        let user_id = user_id.ok_or(GatewayError::AuthRequired)?;
        let agent = self.personal_agent(agent_id)?;
        let instructions = match body.remove("instructions") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => Some(Some(text)),
            Some(_) => {
                return Err(GatewayError::InvalidInput {
                    details: vec!["instructions: must be a string".into()],
                });
            }
        };
        if let Some(schema) = &agent.setup_schema {
            let mut partial = schema.clone();
            if let Some(map) = partial.as_object_mut() {
                map.remove("required");
            }
            let present: Map<String, Value> = body
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let validator = gateway_workspace::schema::compile(&partial)
                .map_err(|e| GatewayError::Internal(format!("setup_schema: {e}")))?;
            let details =
                gateway_workspace::schema::violations(&validator, &Value::Object(present));
            if !details.is_empty() {
                return Err(GatewayError::InvalidInput { details });
            }
        }
        let now = Utc::now();
        let mut record = self
            .inner
            .store
            .get_user_config(user_id, agent_id)
            .await
            .map_err(storage)?
            .unwrap_or_else(|| UserConfigRecord {
                user_id: user_id.to_string(),
                agent_id: agent_id.to_string(),
                instructions: None,
                config_values: Map::new(),
                encrypted_secrets: Map::new(),
                setup_completed: false,
                created_at: now,
                updated_at: now,
            });
        if let Some(instructions) = instructions {
            record.instructions = instructions;
        }
        let sensitive = sensitive_fields(&agent);
        for (key, value) in body {
            record.config_values.remove(&key);
            record.encrypted_secrets.remove(&key);
            if value.is_null() {
                continue;
            }
            if sensitive.contains(&key) {
                let secrets = self.inner.secrets.as_ref().ok_or_else(|| {
                    GatewayError::SecretsUnavailable(SecretError::NoKey.to_string())
                })?;
                let plain = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                record
                    .encrypted_secrets
                    .insert(key, Value::String(secrets.seal(plain.as_bytes())));
            } else {
                record.config_values.insert(key, value);
            }
        }
        record.setup_completed = missing_fields(&agent, &record).is_empty();
        record.updated_at = now;
        self.inner
            .store
            .put_user_config(&record)
            .await
            .map_err(storage)?;
        Ok(info(&agent, &record))
    }

    /// The caller's config of a personal agent, secrets masked.
    pub async fn user_config(
        &self,
        user_id: Option<&str>,
        agent_id: &str,
    ) -> Result<UserConfigInfo, GatewayError> {
        let user_id = user_id.ok_or(GatewayError::AuthRequired)?;
        let agent = self.personal_agent(agent_id)?;
        let record = self
            .inner
            .store
            .get_user_config(user_id, agent_id)
            .await
            .map_err(storage)?
            .ok_or_else(|| GatewayError::ConfigNotFound(agent_id.to_string()))?;
        Ok(info(&agent, &record))
    }

    /// Forgets the caller's config of an agent. Returns whether there was one.
    pub async fn delete_user_config(
        &self,
        user_id: Option<&str>,
        agent_id: &str,
    ) -> Result<bool, GatewayError> {
        let user_id = user_id.ok_or(GatewayError::AuthRequired)?;
        self.personal_agent(agent_id)?;
        self.inner
            .store
            .delete_user_config(user_id, agent_id)
            .await
            .map_err(storage)
    }

    /// For a personal agent: the user's completed setup, opened for a run (a clear error
    /// when there is no user or the setup is incomplete). `None` for other agents.
    pub(crate) async fn personal_context(
        &self,
        agent: &AgentDefinition,
        user_id: Option<&str>,
    ) -> Result<Option<PersonalContext>, GatewayError> {
        if agent.scope != AgentScope::Personal {
            return Ok(None);
        }
        let user_id = user_id.ok_or(GatewayError::AuthRequired)?;
        let record = self
            .inner
            .store
            .get_user_config(user_id, &agent.id)
            .await
            .map_err(storage)?;
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
            let opened = self
                .inner
                .secrets
                .as_ref()
                .ok_or(SecretError::NoKey)
                .and_then(|b| b.open(sealed))
                .map_err(|e| GatewayError::SecretsUnavailable(e.to_string()))?;
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
}
