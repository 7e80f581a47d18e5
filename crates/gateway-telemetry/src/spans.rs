//! The spans the gateway exports, named and attributed after OpenTelemetry's semantic
//! conventions: HTTP server spans, GenAI agent, model and tool spans, MCP client spans, and
//! notification deliveries. They all have the target [`TARGET`]: the log leaves them out and
//! the trace exporter takes only them, so they cost a disabled-callsite check when no
//! exporter is configured (their fields are not even evaluated then).

use opentelemetry::{Array, StringValue, Value};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every exported span.
pub const TARGET: &str = "otel";

/// An inbound HTTP request, named `METHOD route` (the route template, never the raw path).
pub fn http_server(method: &str, route: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "http.server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    )
}

/// The status of an HTTP server span; 5xx are errors (4xx are the client's).
pub fn record_http_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// One run of an agent (an execution); a delegated run is a child of its parent's tool call.
pub fn agent_run(agent_id: &str, execution_id: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "invoke_agent",
        otel.name = %format_args!("invoke_agent {agent_id}"),
        otel.kind = "internal",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.id = agent_id,
        gen_ai.agent.name = agent_id,
        gen_ai.conversation.id = Empty,
        agw.execution.id = execution_id,
        agw.execution.status = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// A run handed to the queue (`send agent-runs`): the worker's run continues its trace.
pub fn enqueue_run(agent_id: &str, execution_id: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "enqueue",
        otel.name = "send agent-runs",
        otel.kind = "producer",
        messaging.operation.type = "send",
        messaging.destination.name = "agent-runs",
        gen_ai.agent.id = agent_id,
        agw.execution.id = execution_id,
    )
}

/// How a run ended.
pub fn record_run_end(
    span: &Span,
    status: &str,
    error: Option<&str>,
    input_tokens: u64,
    output_tokens: u64,
) {
    span.record("agw.execution.status", status);
    span.record("gen_ai.usage.input_tokens", input_tokens);
    span.record("gen_ai.usage.output_tokens", output_tokens);
    if let Some(error) = error {
        record_error(span, status, error);
    }
}

/// One call to a model, `chat provider/model`.
pub fn model_call(model: &str) -> Span {
    let (provider, name) = model.split_once('/').unwrap_or(("", model));
    let span = tracing::info_span!(
        target: TARGET,
        "chat",
        otel.name = %format_args!("chat {name}"),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = Empty,
        gen_ai.request.model = name,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    );
    if !provider.is_empty() {
        span.record("gen_ai.provider.name", provider);
    }
    span
}

/// What a model answered: the model that did (the fallback when it was used), token counts
/// and why it stopped.
pub fn record_model_answer(
    span: &Span,
    response_model: &str,
    input_tokens: u64,
    output_tokens: u64,
    finish_reason: &str,
) {
    if span.is_disabled() {
        return;
    }
    let name = response_model
        .split_once('/')
        .map_or(response_model, |(_, name)| name);
    span.record("gen_ai.response.model", name);
    span.record("gen_ai.usage.input_tokens", input_tokens);
    span.record("gen_ai.usage.output_tokens", output_tokens);
    span.set_attribute(
        "gen_ai.response.finish_reasons",
        Value::Array(Array::String(vec![StringValue::from(
            finish_reason.to_string(),
        )])),
    );
}

/// The prompt and the answer of a model call, as JSON (only when `telemetry.capture_content`).
pub fn record_model_content(span: &Span, input: &str, output: &str) {
    span.record("gen_ai.input.messages", input);
    span.record("gen_ai.output.messages", output);
}

/// One tool call of a run.
pub fn tool_call(name: &str, call_id: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "execute_tool",
        otel.name = %format_args!("execute_tool {name}"),
        otel.kind = "internal",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = name,
        gen_ai.tool.call.id = call_id,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// One request to an MCP server (`tools/call name`).
pub fn mcp_call(method: &str, server: &str, tool: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "mcp.client",
        otel.name = %format_args!("{method} {tool}"),
        otel.kind = "client",
        mcp.method.name = method,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        agw.mcp.server = server,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// One notification delivery (`notify webhook`, `notify slack`).
pub fn notification(channel: &str, event: &str, target: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "notify",
        otel.name = %format_args!("notify {channel}"),
        otel.kind = "client",
        agw.notification.channel = channel,
        agw.notification.event = event,
        agw.notification.target = target,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// Marks `span` failed: `kind` is a short class (`error.type`), `message` says what.
pub fn record_error(span: &Span, kind: &str, message: &str) {
    span.record("otel.status_code", "error");
    span.record("otel.status_description", message);
    span.record("error.type", kind);
}
