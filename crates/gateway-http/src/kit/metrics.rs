//! Counting HTTP requests: by route template (`MatchedPath`, never the raw path), method and
//! status, with their latency (to the response head) — recorded in the gateway's metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use gateway_core::Gateway;

/// The route label of a request no route matched (404s, probes): one series for all.
pub const UNMATCHED: &str = "unmatched";

/// A method as a label: the standard ones by name, anything else as `other` (a client cannot
/// grow the series by inventing methods).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records each request once its response head is ready.
pub async fn record(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let status = response.status();
    (gateway.metrics()).http_request(route, method, status.as_str(), started.elapsed());
    response
}
