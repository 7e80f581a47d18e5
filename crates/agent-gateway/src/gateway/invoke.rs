//! Single-turn invocations: checked and recorded, then run now or in the background.

use std::sync::Arc;

use chrono::Utc;
use gateway_llm::Message;
use gateway_store::{ExecutionOutcome, ExecutionRecord};
use gateway_workspace::{AgentDefinition, ExecutionMode};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ExecutionOptions, ExecutionResult, Gateway, InvokeRequest, RunResult};
use crate::engine::{self, ExecutionStatus};
use crate::error::GatewayError;
use crate::hooks::HookEvent;
use crate::runtime::Runtime;
use crate::tools::ToolContext;

/// An invocation checked and recorded, ready to run.
pub(crate) struct PreparedInvoke {
    runtime: Arc<Runtime>,
    agent: AgentDefinition,
    request: InvokeRequest,
    pub execution_id: String,
    output_schema: Option<(Value, Arc<jsonschema::Validator>)>,
    cancel: CancellationToken,
    pub run_async: bool,
    personal: Option<super::user_config::PersonalContext>,
}

/// An invocation that passed its checks.
struct Checked {
    runtime: Arc<Runtime>,
    agent: AgentDefinition,
    personal: Option<super::user_config::PersonalContext>,
    output_schema: Option<(Value, Arc<jsonschema::Validator>)>,
}

impl PreparedInvoke {
    pub fn agent_id(&self) -> &str {
        &self.agent.id
    }
}

impl Gateway {
    /// Runs an agent once and waits for its answer.
    pub async fn invoke(
        &self,
        agent_id: &str,
        message: &str,
    ) -> Result<ExecutionResult, GatewayError> {
        self.invoke_with(InvokeRequest::new(agent_id, message))
            .await
    }

    /// Runs an agent once and deserializes its structured output into `T` (whose JSON Schema
    /// is sent as the output schema).
    pub async fn invoke_typed<T: DeserializeOwned + JsonSchema>(
        &self,
        agent_id: &str,
        message: &str,
    ) -> Result<T, GatewayError> {
        let schema = crate::tools::clean_schema(
            serde_json::to_value(schemars::schema_for!(T))
                .map_err(|e| GatewayError::Internal(e.to_string()))?,
        );
        let request = InvokeRequest::new(agent_id, message).options(ExecutionOptions {
            output_schema: Some(schema),
            ..ExecutionOptions::default()
        });
        let result = self.invoke_with(request).await?;
        if result.status != ExecutionStatus::Completed {
            return Err(GatewayError::ExecutionFailed(
                result
                    .error
                    .unwrap_or_else(|| result.status.as_str().to_string()),
            ));
        }
        let output = result.result.output.ok_or_else(|| {
            GatewayError::OutputMismatch(
                result
                    .result
                    .validation_errors
                    .map(|e| e.join("; "))
                    .unwrap_or_else(|| "no structured output".to_string()),
            )
        })?;
        serde_json::from_value(output).map_err(|e| GatewayError::OutputMismatch(e.to_string()))
    }

    /// Runs an invocation to its end (also when the agent or the options ask for async:
    /// programmatic callers wait).
    pub async fn invoke_with(
        &self,
        request: InvokeRequest,
    ) -> Result<ExecutionResult, GatewayError> {
        let prepared = self.prepare_invoke(request).await?;
        Ok(self.run_invoke(prepared).await)
    }

    /// What an invocation needs before it runs: its agent (enabled), the user's setup of a
    /// personal agent, a valid input, and the output schema that applies.
    async fn check_invoke(&self, request: &InvokeRequest) -> Result<Checked, GatewayError> {
        let runtime = self.runtime();
        let agent = Self::enabled_agent(&runtime, &request.agent_id)?;
        let personal = self
            .personal_context(&agent, request.user_id.as_deref())
            .await?;
        if let Some(validator) = runtime.input_validators.get(&agent.id) {
            let details = gateway_workspace::schema::violations(
                validator,
                &Value::Object(request.input.clone()),
            );
            if !details.is_empty() {
                return Err(GatewayError::InvalidInput { details });
            }
        }
        let output_schema = match &request.options.output_schema {
            Some(schema) => {
                let validator = gateway_workspace::schema::compile(schema).map_err(|message| {
                    GatewayError::InvalidInput {
                        details: vec![format!("options.output_schema: {message}")],
                    }
                })?;
                Some((schema.clone(), Arc::new(validator)))
            }
            None => runtime.output_validators.get(&agent.id).cloned(),
        };
        Ok(Checked {
            runtime,
            agent,
            personal,
            output_schema,
        })
    }

    /// An invocation of an execution already recorded and marked running (a queued job).
    pub(crate) async fn prepare_existing(
        &self,
        request: InvokeRequest,
        execution_id: String,
    ) -> Result<PreparedInvoke, GatewayError> {
        let checked = self.check_invoke(&request).await?;
        let cancel = self.inner.running.start(&execution_id);
        Ok(PreparedInvoke {
            runtime: checked.runtime,
            agent: checked.agent,
            request,
            execution_id,
            output_schema: checked.output_schema,
            cancel,
            run_async: false,
            personal: checked.personal,
        })
    }

    /// Checks an invocation and records it (`queued` when it will run in the background,
    /// else `running`), without running it.
    pub(crate) async fn prepare_invoke(
        &self,
        request: InvokeRequest,
    ) -> Result<PreparedInvoke, GatewayError> {
        let Checked {
            runtime,
            agent,
            personal,
            output_schema,
        } = self.check_invoke(&request).await?;
        let execution_id = gateway_store::new_execution_id();
        let run_async = request.options.run_async || agent.execution_mode == ExecutionMode::Async;
        let mut record = ExecutionRecord::new(
            &execution_id,
            &agent.id,
            &request.message,
            request.input.clone(),
        );
        record.user_id = request.user_id.clone();
        record.options = Some(json!({
            "async": run_async,
            "timeout_ms": request.options.timeout_ms,
            "output_schema": request.options.output_schema,
        }));
        if run_async && request.via_queue && self.durable_queue() {
            // The queue redelivers it if its worker dies: the orphan reaper leaves it alone.
            if let Some(options) = record.options.as_mut() {
                options["queue"] = json!("durable");
            }
        }
        if let Some(schedule) = &request.schedule {
            record.schedule_id = Some(schedule.schedule_id.clone());
            record.schedule_name = Some(schedule.schedule_name.clone());
        }
        if let Some(parent) = &request.parent {
            record.parent_execution_id = Some(parent.execution_id.clone());
            record.root_execution_id = Some(parent.root_execution_id.clone());
            record.delegation_depth = i64::from(parent.depth);
        }
        if !run_async {
            record.status = ExecutionStatus::Running;
            record.started_at = Some(Utc::now());
        }
        let cancel = self.start_execution(record).await?;
        Ok(PreparedInvoke {
            runtime,
            agent,
            request,
            execution_id,
            output_schema,
            cancel,
            run_async,
            personal,
        })
    }

    /// Runs a prepared invocation to its end and records the result.
    pub(crate) async fn run_invoke(&self, prepared: PreparedInvoke) -> ExecutionResult {
        let PreparedInvoke {
            runtime,
            agent,
            request,
            execution_id,
            output_schema,
            cancel,
            run_async,
            personal,
        } = prepared;
        if run_async
            && let Err(err) = self
                .inner
                .store
                .mark_running(&execution_id, Utc::now())
                .await
        {
            tracing::error!(%execution_id, error = %err, "could not mark the execution running");
        }
        let hooks = &self.inner.hooks;
        if hooks.listens("agent.invoke.before") {
            hooks
                .fire(HookEvent::AgentInvokeBefore {
                    agent_id: agent.id.clone(),
                    message: request.message.clone(),
                    execution_id: execution_id.clone(),
                })
                .await;
        }
        let tools = runtime.agent_tools(&agent);
        let extras = engine::prompt::PromptExtras {
            schedule_instructions: request
                .schedule
                .as_ref()
                .and_then(|s| s.instructions.as_deref()),
            user_instructions: super::user_config::PersonalContext::prompt_of(&personal),
            ..Default::default()
        };
        let mut system =
            engine::prompt::system_prompt(&runtime.workspace, &agent, &tools, &extras, Utc::now());
        if let Some((schema, _)) = &output_schema {
            system.push_str(&engine::prompt::output_format_instruction(schema));
        }
        let mut user = request.message.clone();
        if agent.input_schema.is_some() && !request.input.is_empty() {
            let block = serde_json::to_string_pretty(&request.input).unwrap_or_default();
            user = format!("{user}\n\n## Input\n```json\n{block}\n```");
        }
        let mut context = ToolContext {
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            caller_identity: request.user_id.clone(),
            metadata: request.input.clone(),
            delegates_to: agent.delegates_to.clone(),
            parent_execution_id: request.parent.as_ref().map(|p| p.execution_id.clone()),
            root_execution_id: request.parent.as_ref().map(|p| p.root_execution_id.clone()),
            delegation_depth: request.parent.as_ref().map_or(0, |p| p.depth),
            ..ToolContext::default()
        };
        super::user_config::PersonalContext::into_tool_context(personal, &mut context);
        let spec = self.run_spec(
            &runtime,
            &agent,
            tools,
            vec![Message::system(system), Message::user(user)],
            output_schema,
            request.options.timeout_ms,
            cancel,
            context,
            None,
        );
        let outcome = engine::run(spec).await;
        let mut result = ExecutionResult {
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            status: outcome.stop_reason.status(),
            stop_reason: outcome.stop_reason,
            result: RunResult {
                output: outcome.output,
                raw_text: outcome.raw_text,
                validation_errors: outcome.validation_errors,
            },
            usage: outcome.usage,
            error: outcome.error,
            failure: outcome.failure,
        };
        let stored = ExecutionOutcome {
            status: result.status,
            result: Some(json!({
                "output": result.result.output,
                "raw_text": result.result.raw_text,
                "stop_reason": result.stop_reason,
                "validation_errors": result.result.validation_errors,
            })),
            usage: serde_json::to_value(&result.usage).ok(),
            error: result.error.clone(),
            completed_at: Utc::now(),
        };
        result.status = self
            .finish_execution(&execution_id, stored, outcome.steps)
            .await;
        if !agent.notifications.is_empty() {
            let event = crate::notifications::ExecutionEvent {
                execution_id: execution_id.clone(),
                agent_id: agent.id.clone(),
                status: result.status,
                message: request.message.clone(),
                input: request.input.clone(),
                output: result.result.output.clone(),
                raw_text: result.result.raw_text.clone(),
                error: result.error.clone(),
                usage: serde_json::to_value(&result.usage).unwrap_or(Value::Null),
                duration_ms: result.usage.duration_ms,
            };
            tokio::spawn(crate::notifications::notify(
                std::sync::Arc::clone(&self.inner.store),
                runtime.workspace.config.notifications.clone(),
                agent.clone(),
                event,
            ));
        }
        if hooks.listens("agent.invoke.after") {
            hooks
                .fire(HookEvent::AgentInvokeAfter {
                    agent_id: agent.id.clone(),
                    execution_id,
                    result: serde_json::to_value(&result).unwrap_or(Value::Null),
                    duration_ms: result.usage.duration_ms,
                })
                .await;
        }
        result
    }
}
