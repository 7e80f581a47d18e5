//! The types of a run: what a surface asks the run pipeline for, and what it gets back — one
//! request type for an invocation or a chat turn (streamed or not), one result type for both.

use gateway_store::ExecutionStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::{EngineEvent, Failure, StopReason, Usage};

/// One run of an agent: an invocation or a chat turn, from any surface.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub agent_id: String,
    pub message: String,
    /// Structured input (invoke `input`; for chat, merged into the session's input).
    pub input: Map<String, Value>,
    pub kind: RunKind,
    /// Overrides `guardrails.timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// The caller takes a queued run as an answer: an asynchronous run (asked for, or of an
    /// `execution_mode: async` agent) goes to the queue. Without it the caller waits and the
    /// run happens in this process.
    pub may_queue: bool,
    /// What started the run besides a caller's request: only the core sets it (a schedule, a
    /// delegating agent), so no caller can claim to be one.
    pub(crate) origin: Origin,
}

/// An invocation or a chat turn.
#[derive(Debug, Clone, PartialEq)]
pub enum RunKind {
    Invoke {
        /// JSON Schema the final answer must match (overrides the agent's `output_schema`).
        output_schema: Option<Value>,
        /// Run in the background (see [`RunRequest::may_queue`]).
        run_async: bool,
    },
    Chat {
        /// Continue this session; a new one is created when absent.
        session_id: Option<String>,
    },
}

/// What started a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Origin {
    /// A caller asked for it.
    #[default]
    Request,
    /// A schedule fired.
    Schedule(ScheduleRun),
    /// Another execution delegated it.
    Delegation(ParentLink),
}

/// A schedule that started a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleRun {
    pub schedule_id: String,
    pub schedule_name: String,
    pub instructions: Option<String>,
}

/// The execution that delegated a run (for child executions).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParentLink {
    pub execution_id: String,
    /// The root of the delegation tree (the parent itself when it is top-level).
    pub root_execution_id: String,
    /// Depth of the child (parent's depth + 1).
    pub depth: u32,
}

impl RunRequest {
    /// A run of `kind`.
    pub fn new(agent_id: impl Into<String>, message: impl Into<String>, kind: RunKind) -> Self {
        Self {
            agent_id: agent_id.into(),
            message: message.into(),
            input: Map::new(),
            kind,
            timeout_ms: None,
            may_queue: false,
            origin: Origin::Request,
        }
    }

    /// A single-turn invocation with the agent's own output schema, run now.
    pub fn invoke(agent_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            agent_id,
            message,
            RunKind::Invoke {
                output_schema: None,
                run_async: false,
            },
        )
    }

    /// A chat turn: in a new session, or continuing `session_id`.
    pub fn chat(
        agent_id: impl Into<String>,
        message: impl Into<String>,
        session_id: Option<String>,
    ) -> Self {
        Self::new(agent_id, message, RunKind::Chat { session_id })
    }

    pub fn input(mut self, input: Map<String, Value>) -> Self {
        self.input = input;
        self
    }

    /// Lets asynchronous runs go to the queue (see [`RunRequest::may_queue`]).
    pub fn may_queue(mut self) -> Self {
        self.may_queue = true;
        self
    }

    pub(crate) fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }
}

/// The final answer of a run (`result` in the API).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FinalAnswer {
    /// The structured output (when an output schema applied and was met), else null.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// The model's final text.
    pub raw_text: String,
    pub validation_errors: Option<Vec<String>>,
}

/// Where a chat turn belongs.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTurn {
    pub session_id: String,
    /// Completed turns of the session, this one included when it completed.
    pub turn_count: u32,
}

/// How a run ended: the same for an invocation and a chat turn.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub execution_id: String,
    pub agent_id: String,
    /// As recorded (a cancel that landed first wins over the run's own end).
    pub status: ExecutionStatus,
    pub stop_reason: StopReason,
    pub answer: FinalAnswer,
    pub usage: Usage,
    pub error: Option<String>,
    /// Set for chat turns.
    pub chat: Option<ChatTurn>,
    /// Set when the run could not reach its model at all (surfaces answer "unavailable").
    pub failure: Option<Failure>,
}

/// The result as an execution record keeps it: one typed shape for invocations and chat
/// turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResult {
    pub output: Option<Value>,
    pub raw_text: String,
    pub stop_reason: StopReason,
    pub validation_errors: Option<Vec<String>>,
}

impl From<&RunResult> for StoredResult {
    fn from(result: &RunResult) -> Self {
        Self {
            output: result.answer.output.clone(),
            raw_text: result.answer.raw_text.clone(),
            stop_reason: result.stop_reason,
            validation_errors: result.answer.validation_errors.clone(),
        }
    }
}

/// A run handed to the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRun {
    pub execution_id: String,
    pub agent_id: String,
}

/// What a streamed run yields: `Started` first, then the engine's events, then exactly one
/// `Finished`.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Started {
        execution_id: String,
        /// The chat session of a chat turn.
        session_id: Option<String>,
    },
    Engine(EngineEvent),
    Finished(Box<RunResult>),
}
