//! Personal agents (`scope: personal`): each user's setup, validated against the agent's
//! `setup_schema`, with `sensitive: true` fields sealed at rest and masked in every answer;
//! what a run of the agent gets from it (prompt instructions, tool context).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gateway_store::UserConfigRecord;
use gateway_workspace::schema::{PathSegment, Violation};
use gateway_workspace::{AgentDefinition, AgentScope};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::secrets::SecretError;
use crate::state::Shared;

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

/// Operations on users' setups of personal agents (`gateway.user_configs()`). Each acts on
/// the asking actor's own setup.
pub struct UserConfigs<'a> {
    shared: &'a Arc<Shared>,
}

impl<'a> UserConfigs<'a> {
    pub(crate) fn new(shared: &'a Arc<Shared>) -> Self {
        Self { shared }
    }

    fn personal_agent(&self, agent_id: &str) -> Result<AgentDefinition, GatewayError> {
        let generation = self.shared.generation();
        let agent = generation
            .agent(agent_id)
            .ok_or_else(|| GatewayError::not_found(Record::Agent, agent_id))?;
        if agent.scope != AgentScope::Personal {
            return Err(GatewayError::NotPersonalAgent(agent_id.to_string()));
        }
        Ok(agent.clone())
    }

    /// Sets fields of the actor's config of a personal agent: present keys replace, `null`
    /// removes, `instructions` is kept apart; values are checked against `setup_schema`
    /// (without its `required`, so setup can be done in steps).
    pub async fn set(
        &self,
        actor: &Actor,
        agent_id: &str,
        mut body: Map<String, Value>,
    ) -> Result<UserConfigInfo, GatewayError> {
        let user_id = actor.user_id().ok_or(GatewayError::AuthRequired)?;
        let agent = self.personal_agent(agent_id)?;
        let instructions = match body.remove("instructions") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => Some(Some(text)),
            Some(_) => {
                return Err(GatewayError::InvalidInput {
                    violations: vec![Violation::new(
                        vec![PathSegment::Key("instructions".into())],
                        "must be a string",
                        "type",
                    )],
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
            let violations =
                gateway_workspace::schema::violations(&validator, &Value::Object(present));
            if !violations.is_empty() {
                return Err(GatewayError::InvalidInput { violations });
            }
        }
        let store = &self.shared.store;
        let now = Utc::now();
        let mut record = store
            .get_user_config(user_id, agent_id)
            .await?
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
                let secrets = self.shared.secrets.as_ref().ok_or(SecretError::NoKey)?;
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
        store.put_user_config(&record).await?;
        Ok(info(&agent, &record))
    }

    /// The actor's config of a personal agent, secrets masked.
    pub async fn get(&self, actor: &Actor, agent_id: &str) -> Result<UserConfigInfo, GatewayError> {
        let user_id = actor.user_id().ok_or(GatewayError::AuthRequired)?;
        let agent = self.personal_agent(agent_id)?;
        let record = self
            .shared
            .store
            .get_user_config(user_id, agent_id)
            .await?
            .ok_or_else(|| GatewayError::not_found(Record::Config, agent_id))?;
        Ok(info(&agent, &record))
    }

    /// Forgets the actor's config of an agent.
    pub async fn delete(&self, actor: &Actor, agent_id: &str) -> Result<(), GatewayError> {
        let user_id = actor.user_id().ok_or(GatewayError::AuthRequired)?;
        self.personal_agent(agent_id)?;
        if self
            .shared
            .store
            .delete_user_config(user_id, agent_id)
            .await?
        {
            Ok(())
        } else {
            Err(GatewayError::not_found(Record::Config, agent_id))
        }
    }
}

/// For a personal agent: the user's completed setup, opened for a run (a clear error when
/// there is no user or the setup is incomplete). `None` for other agents.
pub(crate) async fn personal_context(
    shared: &Shared,
    agent: &AgentDefinition,
    user_id: Option<&str>,
) -> Result<Option<PersonalContext>, GatewayError> {
    if agent.scope != AgentScope::Personal {
        return Ok(None);
    }
    let user_id = user_id.ok_or(GatewayError::AuthRequired)?;
    let record = shared.store.get_user_config(user_id, &agent.id).await?;
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
        let opened = shared
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
