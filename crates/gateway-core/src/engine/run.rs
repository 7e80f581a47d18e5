//! One run of the loop: model turn → tool calls → model turn ... until a final answer or a
//! guardrail stops it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_llm::{
    Completion, CompletionRequest, LlmClient, LlmError, Message, ModelTarget, Role, StreamEvent,
    ToolCall, ToolSpec,
};
use jsonschema::Validator;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use gateway_store::{ApprovalStatus, StepRecord};

use super::{EngineEvent, Failure, StopReason, Usage, output};
use crate::approvals::{ApprovalGate, WaitError};
use crate::hooks::{HookEvent, Hooks};
use crate::metrics::{CallOutcome, Metrics};
use crate::tools::{SharedTool, ToolContext, ToolError};

/// Guardrails of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_iterations: u32,
    pub max_tool_calls: u32,
    pub max_parallel_tool_calls: usize,
    pub max_tool_output_chars: usize,
    pub tool_timeout: Duration,
}

/// Everything a run needs.
pub(crate) struct RunSpec {
    pub llm: LlmClient,
    pub hooks: Hooks,
    pub agent_id: String,
    pub tools: Vec<SharedTool>,
    /// Compiled argument schemas by tool name (tools without one are not validated).
    pub validators: Arc<HashMap<String, Arc<Validator>>>,
    pub target: ModelTarget,
    /// The conversation so far, system prompt first, ending with the new user message.
    pub messages: Vec<Message>,
    pub output_schema: Option<(Value, Arc<Validator>)>,
    pub limits: Limits,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    pub context: ToolContext,
    pub events: Option<mpsc::Sender<EngineEvent>>,
    /// Where calls of tools marked `require_approval` wait for a person.
    pub approval: ApprovalGate,
    /// Where model and tool calls are counted.
    pub metrics: Arc<Metrics>,
    /// Prompts and answers go on model-call spans (`telemetry.capture_content`).
    pub capture_content: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub(crate) struct RunOutcome {
    pub stop_reason: StopReason,
    pub raw_text: String,
    pub output: Option<Value>,
    pub validation_errors: Option<Vec<String>>,
    pub usage: Usage,
    pub error: Option<String>,
    pub failure: Option<Failure>,
    /// Messages added during the run (assistant turns, tool results), for chat history.
    pub transcript: Vec<Message>,
    /// What happened, step by step (model calls, tool calls, tool results), for the record.
    pub steps: Vec<StepRecord>,
}

enum Interrupt {
    Timeout,
    Cancelled,
}

async fn guarded<F: Future>(
    deadline: Instant,
    cancel: &CancellationToken,
    future: F,
) -> Result<F::Output, Interrupt> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Interrupt::Cancelled),
        _ = tokio::time::sleep_until(deadline.into()) => Err(Interrupt::Timeout),
        out = future => Ok(out),
    }
}

struct Run {
    spec: RunSpec,
    usage: Usage,
    transcript: Vec<Message>,
    steps: Vec<StepRecord>,
    last_text: String,
    tool_calls_made: u32,
}

/// Step texts longer than this are cut in the record (the model saw them whole).
const STEP_TEXT_LIMIT: usize = 2048;

fn clip(text: &str) -> (String, bool) {
    match text.char_indices().nth(STEP_TEXT_LIMIT) {
        None => (text.to_string(), false),
        Some((cut, _)) => (text[..cut].to_string(), true),
    }
}

/// Runs the loop to its end. Never fails: every problem becomes the outcome's stop reason.
///
/// The loop's state machine is several kilobytes (model call, tool calls, approvals); boxed
/// here, the futures of its callers stay small, so the server does not copy kilobytes each
/// time it moves a request's future.
pub(crate) fn run(spec: RunSpec) -> futures::future::BoxFuture<'static, RunOutcome> {
    Box::pin(run_to_end(spec))
}

async fn run_to_end(spec: RunSpec) -> RunOutcome {
    let started = Instant::now();
    let mut state = Run {
        spec,
        usage: Usage::default(),
        transcript: Vec::new(),
        steps: Vec::new(),
        last_text: String::new(),
        tool_calls_made: 0,
    };
    let mut outcome = state.drive().await;
    outcome.usage.duration_ms = started.elapsed().as_millis() as u64;
    outcome
}

impl Run {
    fn finish(&mut self, stop_reason: StopReason, error: Option<String>) -> RunOutcome {
        RunOutcome {
            stop_reason,
            raw_text: self.last_text.clone(),
            output: None,
            validation_errors: None,
            usage: std::mem::take(&mut self.usage),
            error,
            failure: None,
            transcript: std::mem::take(&mut self.transcript),
            steps: std::mem::take(&mut self.steps),
        }
    }

    fn step(&mut self, step_type: &str, data: Value, duration_ms: u64) {
        self.steps.push(StepRecord {
            step_type: step_type.to_string(),
            sequence: self.steps.len() as i64 + 1,
            data,
            duration_ms: duration_ms as i64,
            created_at: chrono::Utc::now(),
        });
    }

    fn interrupted(&mut self, interrupt: Interrupt) -> RunOutcome {
        match interrupt {
            Interrupt::Timeout => {
                self.finish(StopReason::Timeout, Some("Execution timed out".to_string()))
            }
            Interrupt::Cancelled => self.finish(
                StopReason::Cancelled,
                Some("Execution was cancelled".to_string()),
            ),
        }
    }

    fn model_failed(&mut self, err: LlmError) -> RunOutcome {
        let mut outcome = self.finish(StopReason::Error, Some(format!("LLM call failed: {err}")));
        if err.is_configuration() {
            outcome.failure = Some(Failure::ModelUnavailable);
        }
        outcome
    }

    async fn drive(&mut self) -> RunOutcome {
        let specs: Vec<ToolSpec> = self
            .spec
            .tools
            .iter()
            .map(|t| ToolSpec {
                name: t.name().to_string(),
                description: t.description().to_string(),
                parameters: t.parameters().clone(),
            })
            .collect();
        let limits = self.spec.limits;
        for _ in 0..limits.max_iterations {
            let request = self.request(specs.clone());
            let completion = match self.call_model(request).await {
                Ok(Ok(completion)) => completion,
                Ok(Err(err)) => return self.model_failed(err),
                Err(interrupt) => return self.interrupted(interrupt),
            };
            if !completion.text.is_empty() {
                self.last_text = completion.text.clone();
            }
            if completion.tool_calls.is_empty() {
                self.transcript
                    .push(Message::assistant(completion.text.clone()));
                return self.final_answer(completion.text).await;
            }

            self.transcript.push(Message::assistant_with_tool_calls(
                completion.text.clone(),
                completion.tool_calls.clone(),
            ));
            let budget = limits.max_tool_calls.saturating_sub(self.tool_calls_made) as usize;
            let (allowed, refused) = completion
                .tool_calls
                .split_at(budget.min(completion.tool_calls.len()));
            let refusals = match self.approve(allowed).await {
                Ok(refusals) => refusals,
                Err(interrupt) => return self.interrupted(interrupt),
            };
            let results = match guarded(
                self.spec.deadline,
                &self.spec.cancel.clone(),
                self.execute_calls(allowed, &refusals),
            )
            .await
            {
                Ok(results) => results,
                Err(interrupt) => return self.interrupted(interrupt),
            };
            self.tool_calls_made += allowed.len() as u32;
            self.usage.tool_calls += allowed.len() as u32;
            for (call, (output, success, duration_ms)) in allowed.iter().zip(results) {
                self.step(
                    "tool_call",
                    json!({"tool_name": call.name, "call_id": call.id, "arguments": call.arguments}),
                    0,
                );
                let (recorded, truncated) = clip(&model_text(&output));
                self.step(
                    "tool_result",
                    json!({"tool_name": call.name, "call_id": call.id, "success": success, "result": recorded, "truncated": truncated}),
                    duration_ms,
                );
                let text = truncate(&model_text(&output), limits.max_tool_output_chars);
                self.transcript
                    .push(Message::tool_result(&call.id, &call.name, text));
                if let Some(events) = &self.spec.events {
                    let _ = events
                        .send(EngineEvent::ToolResult {
                            call_id: call.id.clone(),
                            name: call.name.clone(),
                            output,
                        })
                        .await;
                }
            }
            if !refused.is_empty() {
                // Answer every call so the history stays valid for the next chat turn.
                for call in refused {
                    let text = json!({"error": "Max tool calls limit reached"}).to_string();
                    self.transcript
                        .push(Message::tool_result(&call.id, &call.name, text));
                }
                let error = format!(
                    "Stopped: the run reached max_tool_calls ({}) before a final answer",
                    limits.max_tool_calls
                );
                return self.finish(StopReason::MaxToolCalls, Some(error));
            }
        }
        let error = format!(
            "Stopped: the run reached max_iterations ({}) before a final answer",
            limits.max_iterations
        );
        self.finish(StopReason::MaxIterations, Some(error))
    }

    fn request(&self, tools: Vec<ToolSpec>) -> CompletionRequest {
        let mut messages = self.spec.messages.clone();
        messages.extend(self.transcript.iter().cloned());
        CompletionRequest {
            messages,
            tools,
            temperature: None,
            max_tokens: None,
            output_schema: self
                .spec
                .output_schema
                .as_ref()
                .map(|(schema, _)| schema.clone()),
        }
    }

    /// One model call, streamed to the event channel when there is one.
    async fn call_model(
        &mut self,
        request: CompletionRequest,
    ) -> Result<Result<Completion, LlmError>, Interrupt> {
        let hooks = self.spec.hooks.clone();
        if hooks.listens("llm.call.before") {
            hooks
                .fire(HookEvent::LlmCallBefore {
                    model: self.spec.target.name.clone(),
                    agent_id: self.spec.agent_id.clone(),
                })
                .await;
        }
        let started = Instant::now();
        let llm = self.spec.llm.clone();
        let target = self.spec.target.clone();
        let events = self.spec.events.clone();
        let span = gateway_telemetry::spans::model_call(&target.name);
        let prompt = (self.spec.capture_content && !span.is_disabled())
            .then(|| serde_json::to_string(&request.messages).unwrap_or_default());
        let call = async move {
            match events {
                None => llm.complete(&target, &request).await,
                Some(events) => {
                    let mut stream = llm.stream(&target, &request).await?;
                    let mut finished = None;
                    while let Some(event) = stream.next().await {
                        match event? {
                            StreamEvent::Text(content) => {
                                let _ = events.send(EngineEvent::Token { content }).await;
                            }
                            StreamEvent::ToolCall(call) => {
                                let _ = events
                                    .send(EngineEvent::ToolCall {
                                        call_id: call.id,
                                        name: call.name,
                                        arguments: call.arguments,
                                    })
                                    .await;
                            }
                            StreamEvent::Finished(completion) => finished = Some(completion),
                        }
                    }
                    finished.ok_or_else(|| LlmError::InvalidResponse {
                        provider: target.name.clone(),
                        message: "stream ended without a final message".to_string(),
                    })
                }
            }
        };
        let call = call.instrument(span.clone());
        let ended = guarded(self.spec.deadline, &self.spec.cancel.clone(), call).await;
        let elapsed = started.elapsed();
        trace_model_call(&span, &ended, prompt.as_deref());
        let metrics = &self.spec.metrics;
        let model = self.spec.target.name.as_str();
        match &ended {
            Ok(Ok(completion)) => {
                let usage = completion.usage;
                let cost = gateway_llm::pricing::cost_usd(&completion.model, &usage);
                let counts = (usage.input_tokens, usage.output_tokens, cost);
                metrics.model_call(&completion.model, CallOutcome::Ok, elapsed, Some(counts));
            }
            Ok(Err(_)) => metrics.model_call(model, CallOutcome::Error, elapsed, None),
            Err(Interrupt::Timeout) => {
                metrics.model_call(model, CallOutcome::Timeout, elapsed, None)
            }
            Err(Interrupt::Cancelled) => {
                metrics.model_call(model, CallOutcome::Cancelled, elapsed, None)
            }
        }
        let result = ended?;
        let duration_ms = elapsed.as_millis() as u64;
        if let Ok(completion) = &result {
            self.usage.add_llm_call(&completion.model, completion.usage);
            let (content, _) = clip(&completion.text);
            self.step(
                "llm_call",
                json!({
                    "model": completion.model,
                    "input_tokens": completion.usage.input_tokens,
                    "output_tokens": completion.usage.output_tokens,
                    "cost_usd": gateway_llm::pricing::cost_usd(&completion.model, &completion.usage),
                    "has_tool_calls": !completion.tool_calls.is_empty(),
                    "tool_calls_count": completion.tool_calls.len(),
                    "content": content,
                }),
                duration_ms,
            );
        }
        if hooks.listens("llm.call.after") {
            let (model, agent_id) = (self.spec.target.name.clone(), self.spec.agent_id.clone());
            let after = match &result {
                Ok(completion) => HookEvent::LlmCallAfter {
                    model,
                    agent_id,
                    duration_ms,
                    input_tokens: completion.usage.input_tokens,
                    output_tokens: completion.usage.output_tokens,
                    error: None,
                },
                Err(err) => HookEvent::LlmCallAfter {
                    model,
                    agent_id,
                    duration_ms,
                    input_tokens: 0,
                    output_tokens: 0,
                    error: Some(err.to_string()),
                },
            };
            hooks.fire(after).await;
        }
        Ok(result)
    }

    /// Validates and parses the final text when an output schema applies, with one
    /// corrective retry.
    async fn final_answer(&mut self, text: String) -> RunOutcome {
        let Some((schema, validator)) = self.spec.output_schema.clone() else {
            return self.finish(StopReason::Completed, None);
        };
        let errors = match output::parse_and_validate(&text, &validator) {
            Ok(value) => {
                let mut outcome = self.finish(StopReason::Completed, None);
                outcome.output = Some(value);
                return outcome;
            }
            Err(errors) => errors,
        };
        self.transcript
            .push(Message::user(output::correction_message(&errors, &schema)));
        let request = self.request(Vec::new());
        // The retry is never streamed: its text would duplicate the first answer's tokens.
        let events = self.spec.events.take();
        let retried = self.call_model(request).await;
        self.spec.events = events;
        let completion = match retried {
            Ok(Ok(completion)) => completion,
            Ok(Err(err)) => return self.model_failed(err),
            Err(interrupt) => return self.interrupted(interrupt),
        };
        self.last_text = completion.text.clone();
        self.transcript
            .push(Message::assistant(completion.text.clone()));
        let mut outcome = self.finish(StopReason::Completed, None);
        match output::parse_and_validate(&completion.text, &validator) {
            Ok(value) => outcome.output = Some(value),
            Err(errors) => outcome.validation_errors = Some(errors),
        }
        outcome
    }

    /// Asks a person about the calls whose tools require approval and waits for the
    /// decisions (the wait does not count against the run's timeout). Returns why each
    /// refused call was refused, by call id.
    async fn approve(&mut self, calls: &[ToolCall]) -> Result<HashMap<String, String>, Interrupt> {
        let needing: Vec<&ToolCall> = calls
            .iter()
            .filter(|call| {
                self.spec
                    .tools
                    .iter()
                    .any(|t| t.name() == call.name && t.requires_approval())
            })
            .collect();
        if needing.is_empty() {
            return Ok(HashMap::new());
        }
        let started = Instant::now();
        let gate = self.spec.approval.clone();
        let execution_id = self.spec.context.execution_id.clone();
        let result = async {
            let requests = gate.approvals.request(&execution_id, &needing).await?;
            if let Some(events) = &self.spec.events {
                for request in &requests {
                    let _ = events
                        .send(EngineEvent::ApprovalRequired {
                            approval_id: request.approval_id.clone(),
                            call_id: request.call_id.clone(),
                            name: request.tool_name.clone(),
                            arguments: request.arguments.clone(),
                        })
                        .await;
                }
            }
            gate.approvals
                .wait(&execution_id, &requests, gate.timeout, &self.spec.cancel)
                .await
        }
        .await;
        let waited = started.elapsed();
        self.spec.deadline += waited;
        let records = match result {
            Ok(records) => records,
            Err(WaitError::Cancelled) => return Err(Interrupt::Cancelled),
            Err(WaitError::Storage(err)) => {
                tracing::error!(%execution_id, error = %err, "could not request an approval");
                return Ok(needing
                    .iter()
                    .map(|call| {
                        let why = format!(
                            "Tool '{}' needs approval, which could not be requested",
                            call.name
                        );
                        (call.id.clone(), why)
                    })
                    .collect());
            }
        };
        let mut refusals = HashMap::new();
        for record in records {
            self.step(
                "approval",
                json!({
                    "approval_id": record.approval_id,
                    "tool_name": record.tool_name,
                    "call_id": record.call_id,
                    "status": record.status,
                    "decided_by": record.decided_by,
                    "reason": record.reason,
                }),
                waited.as_millis() as u64,
            );
            let because = record
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let why = match record.status {
                ApprovalStatus::Approved => continue,
                ApprovalStatus::Expired => {
                    format!(
                        "Tool '{}' was not approved in time{because}",
                        record.tool_name
                    )
                }
                _ => format!(
                    "Tool '{}' was denied by a reviewer{because}",
                    record.tool_name
                ),
            };
            refusals.insert(record.call_id, why);
        }
        Ok(refusals)
    }

    /// Runs the calls concurrently (bounded), results in call order. Refused calls answer
    /// with their refusal and do not run.
    async fn execute_calls(
        &self,
        calls: &[ToolCall],
        refusals: &HashMap<String, String>,
    ) -> Vec<(Value, bool, u64)> {
        // Collected first: a lazily mapped iterator inside the stream would make the future
        // not `Send` for every lifetime.
        let pending: Vec<_> = calls
            .iter()
            .map(|call| async move {
                let started = Instant::now();
                let span = gateway_telemetry::spans::tool_call(&call.name, &call.id);
                let (output, success) = match refusals.get(&call.id) {
                    Some(why) => (json!({ "error": why }), false),
                    None => self.execute_call(call).instrument(span.clone()).await,
                };
                if !success {
                    let message = output
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("failed");
                    gateway_telemetry::spans::record_error(&span, "tool_error", message);
                }
                let elapsed = started.elapsed();
                // Labelled by the agent's own tools only: a name the model made up is not a
                // series of its own.
                let tool = match self.spec.tools.iter().find(|t| t.name() == call.name) {
                    Some(tool) => tool.name(),
                    None => "_unknown",
                };
                self.spec.metrics.tool_call(tool, success, elapsed);
                (output, success, elapsed.as_millis() as u64)
            })
            .collect();
        futures::stream::iter(pending)
            .buffered(self.spec.limits.max_parallel_tool_calls.max(1))
            .collect()
            .await
    }

    /// One tool call and whether it succeeded; every failure becomes `{"error": ...}` for
    /// the model.
    async fn execute_call(&self, call: &ToolCall) -> (Value, bool) {
        let spec = &self.spec;
        let error = |message: String| (json!({ "error": message }), false);
        let Some(tool) = spec.tools.iter().find(|t| t.name() == call.name) else {
            return error(format!("Unknown tool: '{}'", call.name));
        };
        if !tool.allows_agent(&spec.agent_id) {
            return error(format!(
                "Tool '{}' is not permitted for this agent",
                call.name
            ));
        }
        if let Some(raw) = call.arguments.get("_raw").and_then(Value::as_str)
            && call.arguments.as_object().is_some_and(|m| m.len() == 1)
        {
            return error(format!(
                "Invalid arguments for tool '{}': not valid JSON: {raw}",
                call.name
            ));
        }
        if let Some(validator) = spec
            .validators
            .get(&call.name)
            .cloned()
            .or_else(|| tool.argument_validator())
        {
            let problems = gateway_workspace::schema::violations(&validator, &call.arguments);
            if !problems.is_empty() {
                return error(format!(
                    "Invalid arguments for tool '{}': {}",
                    call.name,
                    gateway_workspace::schema::lines(&problems).join("; ")
                ));
            }
        }
        if spec.hooks.listens("tool.execute.before") {
            spec.hooks
                .fire(HookEvent::ToolExecuteBefore {
                    tool_name: call.name.clone(),
                    agent_id: spec.agent_id.clone(),
                    arguments: call.arguments.clone(),
                })
                .await;
        }
        let started = Instant::now();
        let result = tokio::time::timeout(
            spec.limits.tool_timeout,
            tool.call(call.arguments.clone(), &spec.context),
        )
        .await
        .unwrap_or(Err(ToolError::Timeout(
            spec.limits.tool_timeout.as_millis() as u64,
        )));
        if spec.hooks.listens("tool.execute.after") {
            spec.hooks
                .fire(HookEvent::ToolExecuteAfter {
                    tool_name: call.name.clone(),
                    agent_id: spec.agent_id.clone(),
                    duration_ms: started.elapsed().as_millis() as u64,
                    success: result.is_ok(),
                })
                .await;
        }
        match result {
            Ok(value) => (value, true),
            Err(ToolError::Timeout(_)) => error(format!("Tool '{}' timed out", call.name)),
            Err(ToolError::Failed(message)) => {
                tracing::info!(tool = %call.name, agent = %spec.agent_id, error = %message, "tool call failed");
                error(format!("Tool '{}' failed: {message}", call.name))
            }
        }
    }
}

/// What a model call's span records: the answer's model, tokens and finish reason (and the
/// prompt and answer when they are captured), or how it failed.
fn trace_model_call(
    span: &tracing::Span,
    ended: &Result<Result<Completion, LlmError>, Interrupt>,
    prompt: Option<&str>,
) {
    if span.is_disabled() {
        return;
    }
    match ended {
        Ok(Ok(completion)) => {
            let usage = completion.usage;
            gateway_telemetry::spans::record_model_answer(
                span,
                &completion.model,
                usage.input_tokens,
                usage.output_tokens,
                completion.finish_reason.as_str(),
            );
            if let Some(prompt) = prompt {
                let answer = json!([{
                    "role": "assistant",
                    "content": completion.text,
                    "tool_calls": completion.tool_calls,
                }]);
                gateway_telemetry::spans::record_model_content(span, prompt, &answer.to_string());
            }
        }
        Ok(Err(err)) => {
            gateway_telemetry::spans::record_error(span, "model_error", &err.to_string())
        }
        Err(Interrupt::Timeout) => {
            gateway_telemetry::spans::record_error(span, "timeout", "the run's deadline passed")
        }
        Err(Interrupt::Cancelled) => {
            gateway_telemetry::spans::record_error(span, "cancelled", "the run was cancelled")
        }
    }
}

/// A tool result as the model sees it: strings as they are, anything else as JSON.
fn model_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Cuts text longer than `max` characters, saying so.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!(
            "{}\n[truncated: result exceeded {} characters]",
            &text[..cut],
            max
        ),
    }
}

/// Drops assistant turns whose tool calls were not all answered (a run stopped midway), so
/// the history can be sent to a provider again.
pub(crate) fn answered_only(messages: Vec<Message>) -> Vec<Message> {
    let answered: std::collections::HashSet<String> = messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .filter_map(|m| m.tool_call_id.clone())
        .collect();
    let dropped: std::collections::HashSet<String> = messages
        .iter()
        .filter(|m| {
            m.role == Role::Assistant && m.tool_calls.iter().any(|c| !answered.contains(&c.id))
        })
        .flat_map(|m| m.tool_calls.iter().map(|c| c.id.clone()))
        .collect();
    messages
        .into_iter()
        .filter(|m| match m.role {
            Role::Assistant => !m.tool_calls.iter().any(|c| dropped.contains(&c.id)),
            Role::Tool => m
                .tool_call_id
                .as_ref()
                .is_none_or(|id| !dropped.contains(id)),
            Role::System | Role::User => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(
            truncate("héllo", 2),
            "hé\n[truncated: result exceeded 2 characters]"
        );
    }

    #[test]
    fn unanswered_tool_calls_are_dropped_from_history() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "t".into(),
            arguments: json!({}),
        };
        let history = vec![
            Message::user("hi"),
            Message::assistant_with_tool_calls("", vec![call("a")]),
            Message::tool_result("a", "t", "ok"),
            Message::assistant_with_tool_calls("", vec![call("b"), call("c")]),
            Message::tool_result("b", "t", "ok"),
        ];
        let kept = answered_only(history);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[2].tool_call_id.as_deref(), Some("a"));
    }
}
