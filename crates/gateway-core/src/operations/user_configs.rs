//! Operations on users' setups of personal agents (`scope: personal`): set, read, delete,
//! validated against the agent's `setup_schema`, with `sensitive: true` fields sealed at rest
//! and masked in every answer. What a run gets from a setup is in `personal`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gateway_store::UserConfigRecord;
use gateway_workspace::schema::{PathSegment, Violation};
use gateway_workspace::{AgentDefinition, AgentScope};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::actor::Actor;
use crate::error::{GatewayError, InputPart, Record};
use crate::personal::{missing_fields, sensitive_fields};
use crate::secrets::SecretError;
use crate::state::GatewayState;

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
    state: &'a Arc<GatewayState>,
}

impl<'a> UserConfigs<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    fn personal_agent(&self, agent_id: &str) -> Result<AgentDefinition, GatewayError> {
        let generation = self.state.generation();
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
                    part: InputPart::Setup,
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
                return Err(GatewayError::InvalidInput {
                    part: InputPart::Setup,
                    violations,
                });
            }
        }
        let store = &self.state.store;
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
                let secrets = self.state.secrets.as_ref().ok_or(SecretError::NoKey)?;
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
            .state
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
            .state
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
