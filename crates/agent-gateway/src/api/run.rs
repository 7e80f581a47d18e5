//! Running agents over HTTP: invoke and chat (JSON or server-sent events).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiJson, ApiPath, ErrorDetail, ErrorResponse, IdKind, check_id};
use super::identity::Caller;
use crate::engine::{EngineEvent, ExecutionStatus, Failure};
use crate::error::GatewayError;
use crate::gateway::{
    ChatRequest, ChatResult, ChatStreamEvent, ExecutionOptions, ExecutionResult, Gateway,
    InvokeRequest,
};

/// Longest accepted message, in characters.
const MAX_MESSAGE_CHARS: usize = 102_400;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct InvokeOptionsBody {
    /// Run in the background: answer 202 with a poll URL.
    #[serde(default, rename = "async")]
    pub run_async: bool,
    #[serde(default)]
    pub stream: bool,
    /// 1000–300000 ms; overrides `guardrails.timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// JSON Schema the answer must match.
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InvokeBody {
    pub message: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    #[serde(default)]
    pub options: Option<InvokeOptionsBody>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuedResponse {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub poll_url: String,
}

fn check_message(message: &str) -> Result<(), ApiError> {
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::validation(
            format!("message is longer than {MAX_MESSAGE_CHARS} characters"),
            vec![ErrorDetail {
                loc: vec!["body".into(), "message".into()],
                msg: format!("at most {MAX_MESSAGE_CHARS} characters"),
                kind: "string_too_long".into(),
            }],
        ));
    }
    Ok(())
}

fn check_timeout(timeout_ms: Option<u64>) -> Result<(), ApiError> {
    match timeout_ms {
        Some(ms) if !(1000..=300_000).contains(&ms) => Err(ApiError::validation(
            "options.timeout_ms must be between 1000 and 300000",
            vec![ErrorDetail {
                loc: vec!["body".into(), "options".into(), "timeout_ms".into()],
                msg: "between 1000 and 300000".into(),
                kind: "value_error".into(),
            }],
        )),
        _ => Ok(()),
    }
}

fn with_execution_header(mut response: Response, execution_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(execution_id) {
        response.headers_mut().insert("x-execution-id", value);
    }
    response
}

fn model_unavailable(error: Option<String>, execution_id: &str) -> ApiError {
    ApiError::from(GatewayError::ModelUnavailable {
        message: error.unwrap_or_else(|| "The model is not available".to_string()),
        execution_id: Some(execution_id.to_string()),
    })
}

#[utoipa::path(post, path = "/v1/agents/{agent_id}/invoke", tag = "Agents", summary = "Single-turn invocation",
    description = "Runs the agent once. Model failures, timeouts and guardrail stops are 200 with the execution's status; `options.async` (or `execution_mode: async`) answers 202 with a poll URL.",
    params(("agent_id" = String, Path, description = "Agent id")),
    request_body = InvokeBody,
    responses(
        (status = 200, body = ExecutionResult), (status = 202, body = QueuedResponse),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn invoke(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(body): ApiJson<InvokeBody>,
) -> Result<Response, ApiError> {
    check_id("agent_id", &agent_id, IdKind::Strict)?;
    check_message(&body.message)?;
    let options = body.options.unwrap_or_default();
    check_timeout(options.timeout_ms)?;
    if options.stream && options.run_async {
        return Err(GatewayError::StreamingNotSupported.into());
    }
    let mut request = InvokeRequest::new(agent_id, body.message).input(body.input);
    request.user_id = caller.user_id;
    request.via_queue = true;
    let request = request.options(ExecutionOptions {
        output_schema: options.output_schema,
        timeout_ms: options.timeout_ms,
        run_async: options.run_async,
    });
    // Both futures are boxed so that this handler's own stays small: the server moves it
    // (into its boxes, through the middleware) and each move copies all of it.
    let prepared = Box::pin(gateway.prepare_invoke(request)).await?;
    let execution_id = prepared.execution_id.clone();
    if prepared.run_async {
        let queued = QueuedResponse {
            execution_id: execution_id.clone(),
            agent_id: prepared.agent_id().to_string(),
            status: ExecutionStatus::Queued,
            poll_url: format!("/v1/executions/{execution_id}"),
        };
        gateway.enqueue(prepared).await?;
        let response = (StatusCode::ACCEPTED, axum::Json(queued)).into_response();
        return Ok(with_execution_header(response, &execution_id));
    }
    let result = Box::pin(gateway.run_invoke(prepared)).await;
    if result.failure == Some(Failure::ModelUnavailable) {
        return Err(model_unavailable(result.error, &execution_id));
    }
    Ok(with_execution_header(
        axum::Json(result).into_response(),
        &execution_id,
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ChatOptionsBody {
    /// Answer with server-sent events.
    #[serde(default)]
    pub stream: bool,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatBody {
    pub message: String,
    /// Continue this session; a new one is created when absent.
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
            content((ChatResult = "application/json"), (String = "text/event-stream"))),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn chat(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Response, ApiError> {
    check_id("agent_id", &agent_id, IdKind::Strict)?;
    check_message(&body.message)?;
    let options = body.options.unwrap_or_default();
    check_timeout(options.timeout_ms)?;
    if let Some(session_id) = &body.session_id {
        check_id("session_id", session_id, IdKind::Dotted)?;
    }
    let request = ChatRequest {
        agent_id,
        message: body.message,
        session_id: body.session_id,
        input: body.input,
        timeout_ms: options.timeout_ms,
        user_id: caller.user_id,
    };
    if options.stream {
        let stream = gateway.chat_stream(request).await?;
        let events = stream.map(|event| Ok::<Event, Infallible>(sse_event(event)));
        let mut response = Sse::new(events).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        return Ok(response);
    }
    let result = Box::pin(gateway.chat(request)).await?;
    if result.failure == Some(Failure::ModelUnavailable) {
        return Err(model_unavailable(result.error, &result.execution_id));
    }
    let execution_id = result.execution_id.clone();
    Ok(with_execution_header(
        axum::Json(result).into_response(),
        &execution_id,
    ))
}

fn sse_event(event: ChatStreamEvent) -> Event {
    let (name, data) = match event {
        ChatStreamEvent::Session {
            session_id,
            execution_id,
        } => (
            "session",
            json!({"session_id": session_id, "execution_id": execution_id}),
        ),
        ChatStreamEvent::Engine(EngineEvent::Token { content }) => {
            ("token", json!({"content": content}))
        }
        ChatStreamEvent::Engine(EngineEvent::ToolCall {
            call_id,
            name,
            arguments,
        }) => (
            "tool_call",
            json!({"name": name, "arguments": arguments, "call_id": call_id}),
        ),
        ChatStreamEvent::Engine(EngineEvent::ToolResult {
            call_id,
            name,
            output,
        }) => (
            "tool_result",
            json!({"call_id": call_id, "name": name, "output": output}),
        ),
        ChatStreamEvent::Engine(EngineEvent::ApprovalRequired {
            approval_id,
            call_id,
            name,
            arguments,
        }) => (
            "approval_required",
            json!({"approval_id": approval_id, "call_id": call_id, "name": name, "arguments": arguments}),
        ),
        ChatStreamEvent::Error { message } => ("error", json!({"message": message})),
        ChatStreamEvent::Done {
            stop_reason,
            usage,
            turn_count,
        } => (
            "done",
            json!({"status": stop_reason, "usage": usage, "turn_count": turn_count}),
        ),
    };
    Event::default().event(name).data(data.to_string())
}
