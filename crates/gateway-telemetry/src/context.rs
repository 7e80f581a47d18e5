//! W3C trace context (`traceparent`, `tracestate`): read from an inbound request to continue
//! its caller's trace, written on outbound requests (model providers, MCP servers, agentgate
//! sites, webhooks) so theirs continues ours. Nothing is written when no trace is recorded.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::install;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The trace context of the span being run, as headers for an outbound request (empty when
/// no trace is recorded).
pub fn outbound_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    if install::traces_on() {
        let cx = opentelemetry::Context::current();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
        }
    }
    headers
}

/// The same as a map (`{"traceparent": ..}`), for protocols that carry it in their messages
/// (MCP's `_meta`, a queued run's options).
pub fn outbound_map() -> HashMap<String, String> {
    let mut map = HashMap::new();
    if install::traces_on() {
        let cx = opentelemetry::Context::current();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut map);
        }
    }
    map
}

/// Makes `span` continue the trace the caller sent in `headers`, if any.
pub fn continue_from_headers(span: &tracing::Span, headers: &HeaderMap) {
    if install::traces_on() && headers.contains_key("traceparent") {
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        continue_from(span, cx);
    }
}

/// Makes `span` continue the trace of a map written by [`outbound_map`].
pub fn continue_from_map(span: &tracing::Span, map: &HashMap<String, String>) {
    if install::traces_on() && map.contains_key("traceparent") {
        continue_from(span, TraceContextPropagator::new().extract(map));
    }
}

fn continue_from(span: &tracing::Span, cx: opentelemetry::Context) {
    if cx.span().span_context().is_valid() {
        // Fails only when the span is not recorded (no exporter): nothing to continue then.
        let _ = span.set_parent(cx);
    }
}

/// The trace id of `span` (32 hex digits) when its trace is recorded and sampled.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if !install::traces_on() || span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    (span_context.is_valid() && span_context.is_sampled())
        .then(|| span_context.trace_id().to_string())
}

/// The trace id of the span being run, for a log line.
pub fn current_trace_id() -> Option<String> {
    if !install::traces_on() {
        return None;
    }
    let cx = opentelemetry::Context::current();
    let span_context = cx.span().span_context().clone();
    (span_context.is_valid() && span_context.is_sampled())
        .then(|| span_context.trace_id().to_string())
}

/// Carrying the trace into a spawned task: spans made in the task are children of the span
/// being run where it was spawned.
pub trait TraceFutureExt: std::future::Future + Sized {
    fn with_current_trace(self) -> opentelemetry::context::WithContext<Self> {
        opentelemetry::context::FutureExt::with_context(self, opentelemetry::Context::current())
    }
}

impl<F: std::future::Future> TraceFutureExt for F {}
