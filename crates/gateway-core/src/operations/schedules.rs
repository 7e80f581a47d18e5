//! Schedules: list, create, edit (pause and resume too), delete, trigger, and starting the
//! run of a fire (the fire loop is in `background`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gateway_store::ScheduleRecord;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::run::{self, Started};
use crate::runs::{Origin, RunRequest, ScheduleRun};
use crate::scheduler::{self, EDITABLE};
use crate::state::GatewayState;

/// A schedule created at runtime.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleCreate {
    pub agent_id: String,
    /// `^[a-zA-Z0-9_.-]{1,128}$`; the id becomes `admin:<agent_id>:<name>`.
    pub name: String,
    /// 5 fields (or 6 with seconds).
    pub cron_expr: String,
    pub message: String,
    pub instructions: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    pub timezone: Option<String>,
    pub enabled: Option<bool>,
}

/// Runtime edits of a schedule (absent fields stay). Workspace schedules keep them apart
/// from AGENT.md, which is never written.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEdit {
    pub cron_expr: Option<String>,
    pub message: Option<String>,
    pub timezone: Option<String>,
    pub enabled: Option<bool>,
    /// A string sets, `null` clears.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub instructions: Option<Value>,
}

/// Keeps an explicit `null` apart from an absent field.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Some(Value::deserialize(d)?))
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::ScheduleInvalid(message.into())
}

fn check_cron_and_zone(cron: &str, timezone: &str) -> Result<(), GatewayError> {
    gateway_workspace::schedule::parse_cron(cron).map_err(invalid)?;
    gateway_workspace::schedule::parse_timezone(timezone).map_err(invalid)?;
    Ok(())
}

/// Operations on schedules (`gateway.schedules()`).
pub struct Schedules<'a> {
    state: &'a Arc<GatewayState>,
}

impl<'a> Schedules<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    /// Every schedule, with its next fire.
    pub async fn list(&self) -> Result<Vec<ScheduleRecord>, GatewayError> {
        let mut all = self.state.store.list_schedules().await?;
        for record in &mut all {
            record.next_run_at = record
                .enabled
                .then(|| scheduler::next_fire(record, Utc::now()))
                .flatten();
        }
        Ok(all)
    }

    pub async fn get(&self, id: &str) -> Result<ScheduleRecord, GatewayError> {
        let mut record = self
            .state
            .store
            .get_schedule(id)
            .await?
            .ok_or_else(|| GatewayError::not_found(Record::Schedule, id))?;
        record.next_run_at = record
            .enabled
            .then(|| scheduler::next_fire(&record, Utc::now()))
            .flatten();
        Ok(record)
    }

    /// Creates an admin schedule (`admin:<agent>:<name>`).
    pub async fn create(&self, request: ScheduleCreate) -> Result<ScheduleRecord, GatewayError> {
        let generation = self.state.generation();
        if generation.agent(&request.agent_id).is_none() {
            return Err(invalid(format!("unknown agent '{}'", request.agent_id)));
        }
        let name_ok = !request.name.is_empty()
            && request.name.len() <= 128
            && request
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !name_ok {
            return Err(invalid(format!(
                "name '{}' must match ^[a-zA-Z0-9_.-]{{1,128}}$",
                request.name
            )));
        }
        if request.message.is_empty() {
            return Err(invalid("message must not be empty"));
        }
        let timezone = request
            .timezone
            .clone()
            .unwrap_or_else(|| generation.config().timezone.clone());
        check_cron_and_zone(&request.cron_expr, &timezone)?;
        let id = format!("admin:{}:{}", request.agent_id, request.name);
        if self.state.store.get_schedule(&id).await?.is_some() {
            return Err(GatewayError::ScheduleConflict(id));
        }
        let mut record = ScheduleRecord {
            id,
            agent_id: request.agent_id,
            name: request.name,
            cron_expr: request.cron_expr,
            message: request.message,
            instructions: request.instructions,
            input: request.input,
            enabled: request.enabled.unwrap_or(true),
            timezone,
            source: "admin".into(),
            last_run_at: None,
            next_run_at: None,
            overrides: Map::new(),
            created_at: Utc::now(),
        };
        record.next_run_at = scheduler::next_fire(&record, Utc::now());
        self.state.store.put_schedule(&record).await?;
        Ok(record)
    }

    /// Edits a schedule at runtime (persisted; AGENT.md is never written).
    pub async fn edit(&self, id: &str, edit: ScheduleEdit) -> Result<ScheduleRecord, GatewayError> {
        let mut record = self.get(id).await?;
        let mut edits = Map::new();
        if let Some(cron) = edit.cron_expr {
            edits.insert("cron_expr".into(), Value::String(cron));
        }
        if let Some(message) = edit.message {
            if message.is_empty() {
                return Err(invalid("message must not be empty"));
            }
            edits.insert("message".into(), Value::String(message));
        }
        if let Some(timezone) = edit.timezone {
            edits.insert("timezone".into(), Value::String(timezone));
        }
        if let Some(enabled) = edit.enabled {
            edits.insert("enabled".into(), Value::Bool(enabled));
        }
        if let Some(instructions) = edit.instructions {
            if !(instructions.is_string() || instructions.is_null()) {
                return Err(invalid("instructions must be a string or null"));
            }
            edits.insert("instructions".into(), instructions);
        }
        scheduler::apply_edits(&mut record, &edits);
        check_cron_and_zone(&record.cron_expr, &record.timezone)?;
        if record.source == "workspace" {
            for (key, value) in edits {
                if EDITABLE.contains(&key.as_str()) {
                    record.overrides.insert(key, value);
                }
            }
        }
        record.next_run_at = scheduler::next_fire(&record, Utc::now());
        self.state.store.put_schedule(&record).await?;
        Ok(record)
    }

    /// Deletes an admin schedule (workspace schedules live in AGENT.md).
    pub async fn delete(&self, id: &str) -> Result<(), GatewayError> {
        let record = self.get(id).await?;
        if record.source == "workspace" {
            return Err(GatewayError::ScheduleProtected(id.to_string()));
        }
        self.state.store.delete_schedule(id, Utc::now()).await?;
        Ok(())
    }

    /// Runs a schedule now, for `actor` (who must be allowed to run its agent, and owns the
    /// execution); no lock, no overlap check. Returns the execution id.
    pub async fn trigger(&self, actor: &Actor, id: &str) -> Result<String, GatewayError> {
        let record = self.get(id).await?;
        self.dispatch(actor, &record, Utc::now(), "manual_trigger")
            .await
    }

    /// Starts a run of a schedule in the background for `actor` ([`Actor::system`] when the
    /// schedule fires by itself). Returns the execution id.
    pub(crate) async fn dispatch(
        &self,
        actor: &Actor,
        record: &ScheduleRecord,
        fire_at: DateTime<Utc>,
        source: &str,
    ) -> Result<String, GatewayError> {
        let mut input = record.input.clone();
        input.insert("source".into(), json!(source));
        input.insert("schedule_id".into(), json!(record.id));
        input.insert("schedule_name".into(), json!(record.name));
        input.insert("scheduled_for".into(), json!(fire_at));
        let request = RunRequest::invoke(&record.agent_id, &record.message)
            .input(input)
            .origin(Origin::Schedule(ScheduleRun {
                schedule_id: record.id.clone(),
                schedule_name: record.name.clone(),
                instructions: record.instructions.clone(),
            }))
            // An asynchronous agent's scheduled runs go through the queue like its API runs.
            .may_queue();
        match run::start(self.state, actor, request).await? {
            Started::Queued(queued) => Ok(queued.execution_id),
            Started::Running(ticket) => {
                let execution_id = ticket.execution_id().to_string();
                self.state.tasks.spawn(async move {
                    ticket.run().await;
                });
                Ok(execution_id)
            }
        }
    }
}
