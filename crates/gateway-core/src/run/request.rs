//! What a surface asks the run pipeline for, and what it gets back: one request type for an
//! invocation or a chat turn (streamed or not), one result type for both.

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
    /// What started the run besides a caller's request.
    pub origin: Origin,
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
pub enum Origin {
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
pub struct ScheduleRun {
    pub schedule_id: String,
    pub schedule_name: String,
    pub instructions: Option<String>,
}

/// The execution that delegated a run (for child executions).
#[derive(Debug, Clone, PartialEq)]
pub struct ParentLink {
    pub execution_id: String,
    /// The root of the delegation tree (the parent itself when it is top-level).
    pub root_execution_id: String,
    /// Depth of the child (parent's depth + 1).
    pub depth: u32,
}

impl RunRequest {
    fn new(agent_id: impl Into<String>, message: impl Into<String>, kind: RunKind) -> Self {
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

    /// A single-turn invocation.
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

    /// A chat turn in a new session (see [`RunRequest::session`]).
    pub fn chat(agent_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(agent_id, message, RunKind::Chat { session_id: None })
    }

    pub fn input(mut self, input: Map<String, Value>) -> Self {
        self.input = input;
        self
    }

    /// Continues a chat session (no effect on an invocation).
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        if let RunKind::Chat { session_id: slot } = &mut self.kind {
            *slot = Some(session_id.into());
        }
        self
    }

    /// The schema the answer must match (no effect on a chat turn).
    pub fn output_schema(mut self, schema: Value) -> Self {
        if let RunKind::Invoke { output_schema, .. } = &mut self.kind {
            *output_schema = Some(schema);
        }
        self
    }

    /// Asks for a background run (no effect on a chat turn).
    pub fn run_async(mut self) -> Self {
        if let RunKind::Invoke { run_async, .. } = &mut self.kind {
            *run_async = true;
        }
        self
    }

    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// Lets asynchronous runs go to the queue (see [`RunRequest::may_queue`]).
    pub fn may_queue(mut self) -> Self {
        self.may_queue = true;
        self
    }

    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// The session a chat turn continues.
    pub fn session_id(&self) -> Option<&str> {
        match &self.kind {
            RunKind::Chat { session_id } => session_id.as_deref(),
            RunKind::Invoke { .. } => None,
        }
    }

    pub fn is_chat(&self) -> bool {
        matches!(self.kind, RunKind::Chat { .. })
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
