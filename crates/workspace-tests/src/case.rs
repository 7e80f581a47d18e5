//! Running one case: its own gateway (in-memory store, no background work, the case's
//! model), its turns through the run pipeline, the transcript read from the recorded steps,
//! then its assertions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use gateway_core::store::StepRecord;
use gateway_core::workspace::config::QueueBackend;
use gateway_core::workspace::test_cases::{CaseInput, TestCase};
use gateway_core::{Actor, Gateway, GatewayBuilder, RunRequest, RunResult};
use serde_json::Value;

use crate::assertions;
use crate::judge;
use crate::report::{CaseReport, ToolCallRecord, Transcript, Turn, UsageSummary};

/// One case to run, with everything it needs (owned: it runs on a task of its own).
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub workspace: PathBuf,
    pub env: BTreeMap<String, String>,
    /// The file's name (the first half of the case's id).
    pub file: String,
    pub case: TestCase,
    /// `--model`: wins over the case's and the file's model.
    pub model: Option<String>,
}

impl Job {
    fn id(&self) -> String {
        format!("{}::{}", self.file, self.case.name)
    }

    /// The model every agent of the case's gateway uses, when one is chosen.
    fn model(&self) -> Option<String> {
        self.model.clone().or_else(|| self.case.model.clone())
    }

    /// A gateway of the workspace for this case alone, every agent answering with `model`.
    fn builder(&self, model: Option<String>) -> GatewayBuilder {
        let mut builder = Gateway::builder(&self.workspace)
            .env(self.env.clone())
            .background(false)
            .notifications(false)
            .configure(isolate);
        if let Some(model) = model {
            builder = builder.model(model);
        }
        if let (Some(name), Some(script)) = (self.case.script_name(), &self.case.script) {
            builder = builder.model_script(name, script.clone());
        }
        builder
    }
}

/// A case shares nothing with other cases or other gateways: no queue, scheduler lock or
/// rate-limit counters outside the process, no persistence (its store is in memory).
fn isolate(config: &mut gateway_core::workspace::GatewayConfig) {
    config.persistence.enabled = false;
    config.queue.backend = QueueBackend::Memory;
    config.scheduler.enabled = false;
    config.scheduler.distributed_lock.enabled = false;
    config.rate_limit.enabled = false;
    // Memories stay in the case's own store, never in the workspace's files.
    config.memory.backend = gateway_core::workspace::config::MemoryBackend::Store;
}

/// Runs the case and checks it. Never fails: a case that cannot run is a failed case.
pub(crate) async fn run(job: Job) -> CaseReport {
    let started = Instant::now();
    let case = &job.case;
    let model = job.model();
    let mut report = CaseReport {
        id: job.id(),
        file: job.file.clone(),
        name: case.name.clone(),
        agent: case.agent.clone(),
        model: model.clone(),
        passed: false,
        error: None,
        assertions: Vec::new(),
        transcript: Transcript::default(),
        duration_ms: 0,
    };
    let gateway = match job.builder(model.clone()).build().await {
        Ok(gateway) => gateway,
        Err(err) => {
            report.error = Some(format!("the gateway could not start: {err}"));
            report.duration_ms = elapsed_ms(started);
            return report;
        }
    };
    report.transcript = transcript(&gateway, case).await;
    report.assertions = assertions::check(&case.expect, &report.transcript);
    if let Some(judgement) = &case.expect.judge {
        let judge_model = judgement
            .model
            .clone()
            .or_else(|| case.judge_model.clone())
            .or_else(|| model.clone())
            .unwrap_or_else(|| {
                let generation = gateway.generation();
                generation
                    .agent(&case.agent)
                    .map(|agent| generation.model_of(agent))
                    .unwrap_or_else(|| generation.default_model().to_string())
            });
        // The case's own gateway: its model client reaches the judge's model as the workspace
        // configures it (providers, replies/ scripts, the case's inline script).
        let generation = gateway.generation();
        report.assertions.push(
            judge::ask(
                generation.llm(),
                &judge_model,
                judgement,
                case,
                &report.transcript,
            )
            .await,
        );
    }
    gateway.shutdown().await;
    report.passed = report.error.is_none() && report.assertions.iter().all(|a| a.passed);
    report.duration_ms = elapsed_ms(started);
    report
}

/// Sends the case's messages: one invocation, or the turns of one chat session.
async fn transcript(gateway: &Gateway, case: &TestCase) -> Transcript {
    let actor = match &case.user {
        Some(user) => Actor::on_behalf_of(user.clone()),
        None => Actor::system(),
    };
    let mut transcript = Transcript::default();
    if let (Some(setup), Some(_)) = (&case.setup, &case.user)
        && let Err(err) = gateway
            .user_configs()
            .set(&actor, &case.agent, setup.clone())
            .await
    {
        transcript.turns.push(Turn {
            message: "(setup)".to_string(),
            status: "refused".to_string(),
            error: Some(format!("the user's setup was refused: {err}")),
            ..Turn::default()
        });
        return transcript;
    }
    let mut session: Option<String> = None;
    for message in case.input.messages() {
        let request = match &case.input {
            CaseInput::Message(_) => RunRequest::invoke(&case.agent, message),
            CaseInput::Conversation(_) => RunRequest::chat(&case.agent, message, session.clone()),
        }
        .input(case.fields.clone());
        let started = Instant::now();
        let outcome = gateway.run(&actor, request).await;
        let duration_ms = elapsed_ms(started);
        let turn = match outcome {
            Err(err) => Turn {
                message: message.to_string(),
                status: "refused".to_string(),
                error: Some(err.to_string()),
                duration_ms,
                ..Turn::default()
            },
            Ok(result) => {
                if let Some(chat) = &result.chat {
                    session = Some(chat.session_id.clone());
                }
                let steps = gateway
                    .executions()
                    .steps(&Actor::system(), &result.execution_id)
                    .await
                    .unwrap_or_default();
                turn_of(message, &result, &steps, duration_ms)
            }
        };
        let stop = turn.error.is_some();
        transcript.usage.add(&turn.usage);
        transcript.turns.push(turn);
        if stop {
            // A conversation cannot go on from a turn that did not complete.
            break;
        }
    }
    transcript
}

fn turn_of(message: &str, result: &RunResult, steps: &[StepRecord], duration_ms: u64) -> Turn {
    let completed = result.status == gateway_core::engine::ExecutionStatus::Completed;
    let error = (!completed).then(|| {
        result
            .error
            .clone()
            .unwrap_or_else(|| format!("the run ended {}", result.status.as_str()))
    });
    Turn {
        message: message.to_string(),
        execution_id: Some(result.execution_id.clone()),
        status: result.status.as_str().to_string(),
        error,
        tool_calls: tool_calls(steps),
        answer: result.answer.raw_text.clone(),
        output: result.answer.output.clone(),
        validation_errors: result.answer.validation_errors.clone(),
        usage: UsageSummary {
            input_tokens: result.usage.input_tokens,
            output_tokens: result.usage.output_tokens,
            cost_usd: result.usage.cost_usd,
            llm_calls: result.usage.llm_calls,
            tool_calls: result.usage.tool_calls,
        },
        duration_ms,
    }
}

/// The tool calls of a run's recorded steps, each with its result.
fn tool_calls(steps: &[StepRecord]) -> Vec<ToolCallRecord> {
    let mut calls: Vec<(Option<String>, ToolCallRecord)> = Vec::new();
    for step in steps {
        let data = &step.data;
        let text = |key: &str| data.get(key).and_then(Value::as_str).map(String::from);
        match step.step_type.as_str() {
            "tool_call" => calls.push((
                text("call_id"),
                ToolCallRecord {
                    name: text("tool_name").unwrap_or_default(),
                    arguments: data.get("arguments").cloned().unwrap_or(Value::Null),
                    result: None,
                    success: None,
                },
            )),
            "tool_result" => {
                let id = text("call_id");
                let name = text("tool_name").unwrap_or_default();
                let pending = calls.iter_mut().find(|(call_id, call)| {
                    call.result.is_none() && *call_id == id && call.name == name
                });
                if let Some((_, call)) = pending {
                    call.result = Some(match data.get("result") {
                        Some(Value::String(result)) => result.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    });
                    call.success = data.get("success").and_then(Value::as_bool);
                }
            }
            _ => {}
        }
    }
    calls.into_iter().map(|(_, call)| call).collect()
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
