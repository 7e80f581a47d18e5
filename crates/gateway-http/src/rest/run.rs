//! Running agents over HTTP: invoke and chat, answered as JSON or as server-sent events. The
//! handlers translate the wire format to a [`RunRequest`] and the [`RunResult`] back.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use gateway_core::engine::{EngineEvent, ExecutionStatus, Failure, StopReason, Usage};
use gateway_core::{
    FinalAnswer, Gateway, GatewayError, RunEvent, RunKind, RunRequest, RunResult, Started,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorDetail, ErrorResponse, LocItem, RequestError};
use crate::kit::extract::{ApiJson, ApiPath, IdKind, session_id_schema, whole_number};

/// Longest accepted message, in characters.
const MAX_MESSAGE_CHARS: usize = 102_400;

/// The bounds of `options.timeout_ms`.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1000..=300_000;

/// `message` as the document declares it (the bound [`check_message`] enforces).
fn message_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .max_length(Some(MAX_MESSAGE_CHARS))
        .description(Some(format!("At most {MAX_MESSAGE_CHARS} characters.")))
        .into()
}

/// `options.timeout_ms` as the document declares it (the bounds [`check_timeout`] enforces).
fn timeout_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(*TIMEOUT_MS.start()))
        .maximum(Some(*TIMEOUT_MS.end()))
        .description(Some(format!(
            "{}–{} ms; overrides `guardrails.timeout_ms`.",
            TIMEOUT_MS.start(),
            TIMEOUT_MS.end()
        )))
        .into()
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct InvokeOptionsBody {
    /// Run in the background: answer 202 with a poll URL.
    #[serde(default, rename = "async")]
    pub run_async: bool,
    /// Answer with server-sent events (not with `async`).
    #[serde(default)]
    pub stream: bool,
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(schema_with = timeout_schema)]
    pub timeout_ms: Option<u64>,
    /// JSON Schema the answer must match.
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InvokeBody {
    #[schema(schema_with = message_schema)]
    pub message: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    #[serde(default)]
    pub options: Option<InvokeOptionsBody>,
}

/// The names of the server-sent events a streamed run sends ([`sse_events`]).
const SSE_EVENTS: &[&str] = &[
    "session",
    "execution",
    "token",
    "tool_call",
    "tool_result",
    "approval_required",
    "error",
    "done",
];

/// One server-sent event of a streamed run, as the document declares it: its name and its
/// data, a JSON object.
pub struct SseEvent;

impl utoipa::PartialSchema for SseEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let text = || ObjectBuilder::new().schema_type(SchemaType::Type(Type::String));
        let data = text()
            .description(Some("A JSON object: the event's fields"))
            .content_media_type("application/json");
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "One server-sent event of a streamed run (`text/event-stream`)",
            ))
            .property(
                "event",
                text().enum_values(Some(SSE_EVENTS.iter().copied())),
            )
            .property("data", data)
            .property("id", text())
            .property(
                "retry",
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)),
            )
            .required("event")
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for SseEvent {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuedResponse {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub poll_url: String,
}

/// The outcome of an invocation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExecutionResult {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub stop_reason: StopReason,
    pub result: FinalAnswer,
    pub usage: Usage,
    pub error: Option<String>,
}

impl From<RunResult> for ExecutionResult {
    fn from(result: RunResult) -> Self {
        Self {
            execution_id: result.execution_id,
            agent_id: result.agent_id,
            status: result.status,
            stop_reason: result.stop_reason,
            result: result.answer,
            usage: result.usage,
            error: result.error,
        }
    }
}

/// The outcome of a chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChatResult {
    pub session_id: String,
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub stop_reason: StopReason,
    pub result: FinalAnswer,
    pub usage: Usage,
    pub error: Option<String>,
    pub turn_count: u32,
}

impl From<RunResult> for ChatResult {
    fn from(result: RunResult) -> Self {
        let (session_id, turn_count) = result
            .chat
            .map(|chat| (chat.session_id, chat.turn_count))
            .unwrap_or_default();
        Self {
            session_id,
            execution_id: result.execution_id,
            agent_id: result.agent_id,
            status: result.status,
            stop_reason: result.stop_reason,
            result: result.answer,
            usage: result.usage,
            error: result.error,
            turn_count,
        }
    }
}

/// What invoke and chat check alike: the message's length, the timeout.
fn check_run(message: &str, timeout_ms: Option<u64>) -> Result<(), ApiError> {
    check_message(message)?;
    check_timeout(timeout_ms)
}

fn check_message(message: &str) -> Result<(), ApiError> {
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(RequestError::invalid(
            format!("message is longer than {MAX_MESSAGE_CHARS} characters"),
            ErrorDetail {
                loc: vec![LocItem::from("body"), LocItem::from("message")],
                msg: format!("at most {MAX_MESSAGE_CHARS} characters"),
                kind: "string_too_long".into(),
            },
        )
        .into());
    }
    Ok(())
}

fn check_timeout(timeout_ms: Option<u64>) -> Result<(), ApiError> {
    match timeout_ms {
        Some(ms) if !TIMEOUT_MS.contains(&ms) => Err(RequestError::invalid(
            format!(
                "options.timeout_ms must be between {} and {}",
                TIMEOUT_MS.start(),
                TIMEOUT_MS.end()
            ),
            ErrorDetail {
                loc: vec![
                    LocItem::from("body"),
                    LocItem::from("options"),
                    LocItem::from("timeout_ms"),
                ],
                msg: format!("between {} and {}", TIMEOUT_MS.start(), TIMEOUT_MS.end()),
                kind: "value_error".into(),
            },
        )
        .into()),
        _ => Ok(()),
    }
}

fn with_execution_header(mut response: Response, execution_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(execution_id) {
        response.headers_mut().insert("x-execution-id", value);
    }
    response
}

/// A run that could not reach its model at all is the service being unavailable, not a
/// result (the execution is recorded as failed).
fn unless_unavailable(result: RunResult) -> Result<RunResult, ApiError> {
    if result.failure == Some(Failure::ModelUnavailable) {
        return Err(GatewayError::ModelUnavailable {
            message: result
                .error
                .unwrap_or_else(|| "The model is not available".to_string()),
            execution_id: Some(result.execution_id),
        }
        .into());
    }
    Ok(result)
}

/// The events of a streamed run as `text/event-stream`.
fn event_stream(stream: gateway_core::RunStream) -> Response {
    let events = stream
        .flat_map(|event| futures::stream::iter(sse_events(event)))
        .map(Ok::<Event, Infallible>);
    let mut response = Sse::new(events).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[utoipa::path(post, path = "/v1/agents/{agent_id}/invoke", tag = "Agents", summary = "Single-turn invocation",
    description = "Runs the agent once. Model failures, timeouts and guardrail stops are 200 with the execution's status; `options.async` (or `execution_mode: async`) answers 202 with a poll URL. With `options.stream` the answer is `text/event-stream` with events `execution`, `token`, `tool_call`, `tool_result`, `approval_required`, `error` and `done` (which carries the result and usage). A streamed request runs at once, also for an `execution_mode: async` agent.",
    params(("agent_id" = String, Path, description = "Agent id")),
    request_body = InvokeBody,
    responses(
        (status = 200, description = "The execution's result, or its events when streaming",
            content((ExecutionResult = "application/json"), (SseEvent = "text/event-stream"))),
        (status = 202, description = "Queued (asynchronous execution)", body = QueuedResponse),
        (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn invoke(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(body): ApiJson<InvokeBody>,
) -> Result<Response, ApiError> {
    let options = body.options.unwrap_or_default();
    check_run(&body.message, options.timeout_ms)?;
    let kind = RunKind::Invoke {
        output_schema: options.output_schema.map(Value::Object),
        run_async: options.run_async,
    };
    let mut request = RunRequest::new(agent_id, body.message, kind)
        .input(body.input)
        .may_queue();
    request.timeout_ms = options.timeout_ms;
    if options.stream {
        return Ok(event_stream(gateway.run_stream(&actor, request).await?));
    }
    // Both futures are boxed so that this handler's own stays small: the server moves it
    // (into its boxes, through the middleware) and each move copies all of it.
    match Box::pin(gateway.start(&actor, request)).await? {
        Started::Queued(queued) => {
            let execution_id = queued.execution_id.clone();
            let body = QueuedResponse {
                poll_url: format!("/v1/executions/{execution_id}"),
                execution_id: queued.execution_id,
                agent_id: queued.agent_id,
                status: ExecutionStatus::Queued,
            };
            let response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
            Ok(with_execution_header(response, &execution_id))
        }
        Started::Running(ticket) => {
            let result = unless_unavailable(Box::pin(ticket.run()).await)?;
            let execution_id = result.execution_id.clone();
            Ok(with_execution_header(
                axum::Json(ExecutionResult::from(result)).into_response(),
                &execution_id,
            ))
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ChatOptionsBody {
    /// Answer with server-sent events.
    #[serde(default)]
    pub stream: bool,
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(schema_with = timeout_schema)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatBody {
    #[schema(schema_with = message_schema)]
    pub message: String,
    /// Continue this session; a new one is created when absent.
    #[schema(schema_with = session_id_schema)]
    pub session_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    #[serde(default)]
    pub options: Option<ChatOptionsBody>,
}

#[utoipa::path(post, path = "/v1/agents/{agent_id}/chat", tag = "Chat", summary = "Multi-turn chat",
    description = "One chat turn. With `options.stream` the answer is `text/event-stream` with events `session`, `token`, `tool_call`, `tool_result`, `error` and `done`.",
    params(("agent_id" = String, Path, description = "Agent id")),
    request_body = ChatBody,
    responses(
        (status = 200, description = "The turn's result, or its events when streaming",
            content((ChatResult = "application/json"), (SseEvent = "text/event-stream"))),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn chat(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Response, ApiError> {
    let options = body.options.unwrap_or_default();
    check_run(&body.message, options.timeout_ms)?;
    if let Some(session_id) = &body.session_id {
        IdKind::Dotted.check(&["body", "session_id"], session_id)?;
    }
    let mut request = RunRequest::chat(agent_id, body.message, body.session_id).input(body.input);
    request.timeout_ms = options.timeout_ms;
    if options.stream {
        return Ok(event_stream(gateway.run_stream(&actor, request).await?));
    }
    let result = unless_unavailable(Box::pin(gateway.run(&actor, request)).await?)?;
    let execution_id = result.execution_id.clone();
    Ok(with_execution_header(
        axum::Json(ChatResult::from(result)).into_response(),
        &execution_id,
    ))
}

/// The SSE events of one run event: a finished run is an `error` event when it failed
/// (timeout or error) and always a `done` event.
fn sse_events(event: RunEvent) -> Vec<Event> {
    let one = |name: &str, data: Value| Event::default().event(name).data(data.to_string());
    match event {
        RunEvent::Started {
            execution_id,
            session_id: Some(session_id),
        } => vec![one(
            "session",
            json!({"session_id": session_id, "execution_id": execution_id}),
        )],
        RunEvent::Started {
            execution_id,
            session_id: None,
        } => vec![one("execution", json!({"execution_id": execution_id}))],
        RunEvent::Engine(EngineEvent::Token { content }) => {
            vec![one("token", json!({"content": content}))]
        }
        RunEvent::Engine(EngineEvent::ToolCall {
            call_id,
            name,
            arguments,
        }) => vec![one(
            "tool_call",
            json!({"name": name, "arguments": arguments, "call_id": call_id}),
        )],
        RunEvent::Engine(EngineEvent::ToolResult {
            call_id,
            name,
            output,
        }) => vec![one(
            "tool_result",
            json!({"call_id": call_id, "name": name, "output": output}),
        )],
        RunEvent::Engine(EngineEvent::ApprovalRequired {
            approval_id,
            call_id,
            name,
            arguments,
        }) => vec![one(
            "approval_required",
            json!({"approval_id": approval_id, "call_id": call_id, "name": name, "arguments": arguments}),
        )],
        RunEvent::Finished(result) => {
            let mut events = Vec::new();
            let message = match result.stop_reason {
                StopReason::Timeout => Some("Execution timed out".to_string()),
                StopReason::Error => result.error.clone(),
                _ => None,
            };
            if let Some(message) = message {
                events.push(one("error", json!({"message": message})));
            }
            let mut done = json!({"status": result.stop_reason, "usage": result.usage});
            match &result.chat {
                Some(chat) => done["turn_count"] = json!(chat.turn_count),
                None => {
                    done["execution_id"] = json!(result.execution_id);
                    done["result"] = json!(result.answer);
                }
            }
            events.push(one("done", done));
            events
        }
    }
}
