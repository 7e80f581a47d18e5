//! `/metrics`: the gateway's metrics in the Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gateway_core::Gateway;

use crate::kit::error::{ApiError, ErrorResponse, RequestError};

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[utoipa::path(get, path = "/metrics", tag = "Admin", summary = "Metrics",
    description = "The gateway's metrics in the Prometheus text format: requests by route template, executions by agent, model calls, tokens and cost by model, tool calls, queue depth, active chat sessions, schedule fires, notification deliveries. Needs the `metrics:read` scope when auth is on (`metrics.listen` serves it on a separate address without auth); answers 404 with `metrics.enabled: false`.",
    responses((status = 200, description = "Prometheus text format (version 0.0.4)", content_type = "text/plain", body = String),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn metrics(State(gateway): State<Gateway>) -> Response {
    if !gateway.generation().config().metrics.enabled {
        return ApiError::from(RequestError::NoRoute {
            method: "GET".into(),
            path: "/metrics".into(),
        })
        .into_response();
    }
    exposition(&gateway).await
}

/// The metrics answer, whoever serves it (this route, or the separate listener).
pub(crate) async fn exposition(gateway: &Gateway) -> Response {
    let text = gateway.metrics_snapshot().await.to_prometheus();
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
    )
        .into_response()
}

/// The router of the separate metrics listener (`metrics.listen`): `GET /metrics` only, no
/// auth.
pub(crate) fn listener_router(gateway: Gateway) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(gateway): State<Gateway>| async move {
                exposition(&gateway).await
            }),
        )
        .with_state(gateway)
}
