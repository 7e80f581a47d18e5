//! The exported span of each request (`METHOD route`, the route template), continuing the
//! trace its caller sent in `traceparent`. Costs a disabled-callsite check when no trace
//! exporter is configured.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use gateway_telemetry::{context, spans};
use tracing::Instrument;

use super::metrics::UNMATCHED;

/// Runs the request in its server span and records the status it answered.
pub async fn server_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    let span = spans::http_server(request.method().as_str(), route);
    if span.is_disabled() {
        return next.run(request).await;
    }
    context::continue_from_headers(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    spans::record_http_status(&span, response.status().as_u16());
    response
}
