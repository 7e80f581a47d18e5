//! The gateway's schedules: the loop that fires them, and the operations of the API
//! (list, create, edit, pause, resume, trigger, delete).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gateway_store::ScheduleRecord;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{Gateway, GatewayHandle, InvokeRequest, ScheduleRun, storage};
use crate::error::GatewayError;
use crate::scheduler::{self, EDITABLE};

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

impl Gateway {
    /// Every schedule, with its next fire.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRecord>, GatewayError> {
        let mut all = self.inner.store.list_schedules().await.map_err(storage)?;
        for record in &mut all {
            record.next_run_at = record
                .enabled
                .then(|| scheduler::next_fire(record, Utc::now()))
                .flatten();
        }
        Ok(all)
    }

    pub async fn schedule(&self, id: &str) -> Result<ScheduleRecord, GatewayError> {
        let mut record = self
            .inner
            .store
            .get_schedule(id)
            .await
            .map_err(storage)?
            .ok_or_else(|| GatewayError::ScheduleNotFound(id.to_string()))?;
        record.next_run_at = record
            .enabled
            .then(|| scheduler::next_fire(&record, Utc::now()))
            .flatten();
        Ok(record)
    }

    /// Creates an admin schedule (`admin:<agent>:<name>`).
    pub async fn create_schedule(
        &self,
        request: ScheduleCreate,
    ) -> Result<ScheduleRecord, GatewayError> {
        let runtime = self.runtime();
        if runtime.agent(&request.agent_id).is_none() {
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
            .unwrap_or_else(|| runtime.workspace.config.timezone.clone());
        check_cron_and_zone(&request.cron_expr, &timezone)?;
        let id = format!("admin:{}:{}", request.agent_id, request.name);
        if self
            .inner
            .store
            .get_schedule(&id)
            .await
            .map_err(storage)?
            .is_some()
        {
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
        self.inner
            .store
            .put_schedule(&record)
            .await
            .map_err(storage)?;
        Ok(record)
    }

    /// Edits a schedule at runtime (persisted; AGENT.md is never written).
    pub async fn edit_schedule(
        &self,
        id: &str,
        edit: ScheduleEdit,
    ) -> Result<ScheduleRecord, GatewayError> {
        let mut record = self.schedule(id).await?;
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
        self.inner
            .store
            .put_schedule(&record)
            .await
            .map_err(storage)?;
        Ok(record)
    }

    /// Deletes an admin schedule (workspace schedules live in AGENT.md).
    pub async fn delete_schedule(&self, id: &str) -> Result<(), GatewayError> {
        let record = self.schedule(id).await?;
        if record.source == "workspace" {
            return Err(GatewayError::ScheduleProtected(id.to_string()));
        }
        self.inner
            .store
            .delete_schedule(id, Utc::now())
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Runs a schedule now (no lock, no overlap check). Returns the execution id.
    pub async fn trigger_schedule(&self, id: &str) -> Result<String, GatewayError> {
        let record = self.schedule(id).await?;
        self.dispatch_schedule(&record, Utc::now(), "manual_trigger")
            .await
    }

    /// Starts a run of a schedule in the background. Returns the execution id.
    pub(crate) async fn dispatch_schedule(
        &self,
        record: &ScheduleRecord,
        fire_at: DateTime<Utc>,
        source: &str,
    ) -> Result<String, GatewayError> {
        let mut input = record.input.clone();
        input.insert("source".into(), json!(source));
        input.insert("schedule_id".into(), json!(record.id));
        input.insert("schedule_name".into(), json!(record.name));
        input.insert("scheduled_for".into(), json!(fire_at));
        let mut request = InvokeRequest::new(&record.agent_id, &record.message).input(input);
        request.schedule = Some(ScheduleRun {
            schedule_id: record.id.clone(),
            schedule_name: record.name.clone(),
            instructions: record.instructions.clone(),
        });
        // An asynchronous agent's scheduled runs go through the queue like its API runs.
        request.via_queue = true;
        let prepared = self.prepare_invoke(request).await?;
        let execution_id = prepared.execution_id.clone();
        if prepared.run_async {
            self.enqueue(prepared).await?;
        } else {
            let gateway = self.clone();
            tokio::spawn(async move {
                gateway.run_invoke(prepared).await;
            });
        }
        Ok(execution_id)
    }
}

/// Fires due schedules until `stop` (every instance runs one; the store decides who runs
/// each fire).
pub(super) async fn run_loop(handle: GatewayHandle, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(scheduler::tick());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(gateway) = handle.get() else { return };
        let runtime = gateway.runtime();
        let config = runtime.workspace.config.scheduler.clone();
        if !config.enabled {
            continue;
        }
        let records = match gateway.inner.store.list_schedules().await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!(error = %err, "scheduler could not read schedules");
                continue;
            }
        };
        let now = Utc::now();
        for record in records.into_iter().filter(|r| r.enabled) {
            if runtime.agent(&record.agent_id).is_none_or(|a| !a.enabled) {
                continue;
            }
            for fire_at in scheduler::due_fires(&record, now, &config) {
                let runs = Arc::clone(&gateway.inner.scheduler.runs);
                if !runs.try_start(&record.id, config.max_instances) {
                    tracing::info!(schedule = %record.id, "fire skipped: max_instances runs in progress");
                    continue;
                }
                if !scheduler::claim(
                    &gateway.inner.store,
                    &gateway.inner.scheduler.lock,
                    &record,
                    fire_at,
                )
                .await
                {
                    runs.finish(&record.id);
                    continue;
                }
                tracing::info!(schedule = %record.id, %fire_at, "schedule fired");
                let gateway = gateway.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    match gateway
                        .dispatch_schedule(&record, fire_at, "scheduled")
                        .await
                    {
                        Ok(execution_id) => {
                            // Hold the slot until the run ends.
                            wait_for_end(&gateway, &execution_id).await;
                        }
                        Err(err) => {
                            tracing::error!(schedule = %record.id, error = %err, "scheduled run not started")
                        }
                    }
                    runs.finish(&record.id);
                });
            }
        }
    }
}

async fn wait_for_end(gateway: &Gateway, execution_id: &str) {
    loop {
        match gateway.execution(execution_id).await {
            Ok(Some(record)) if !record.status.is_terminal() => {}
            _ => return,
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
