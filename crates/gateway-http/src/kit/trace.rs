//! The exported span of each request (`METHOD route`, the route template), continuing the
//! trace its caller sent in `traceparent`. Costs a disabled-callsite check when no trace
//! exporter is configured.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use gateway_telemetry::{context, spans};
use tower::layer::util::Identity;
use tracing::Instrument;

use super::metrics::UNMATCHED;

/// The middleware as a plain function pointer, so that its layer has a type to name.
type Middleware = fn(Request, Next) -> futures::future::BoxFuture<'static, Response>;

/// The layer [`layer`] returns: the middleware, or nothing.
pub type TraceLayer =
    tower::util::Either<axum::middleware::FromFnLayer<Middleware, (), (Request,)>, Identity>;

/// The server-span middleware when traces are recorded (decided when the router is built:
/// install the trace pipeline first); without traces, no layer at all, so requests pay
/// nothing for it.
pub fn layer() -> TraceLayer {
    fn boxed(request: Request, next: Next) -> futures::future::BoxFuture<'static, Response> {
        Box::pin(server_span(request, next))
    }
    if gateway_telemetry::traces_on() {
        tower::util::Either::Left(axum::middleware::from_fn(boxed as Middleware))
    } else {
        tower::util::Either::Right(Identity::new())
    }
}

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
