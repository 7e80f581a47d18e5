//! The HTTP surfaces of Agent Gateway, each a module that only calls the core's public
//! operations ([`gateway_core::Gateway`]): the REST API with its OpenAPI document and docs
//! pages (`rest`), and agentgate publishing (`agentgate`). `kit` holds what they share: the
//! error envelope and its one status mapping, extractors, the `/v1` guard and the response
//! headers.

mod agentgate;
pub mod kit;
mod rest;
mod serve;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use gateway_core::Gateway;

pub use kit::error::{ApiError, ErrorBody, ErrorDetail, ErrorResponse, LocItem, RequestError};
pub use serve::{MetricsListener, serve, serve_metrics};

use kit::error::RequestError as Failure;
use kit::extract::MAX_BODY_BYTES;
use kit::headers::{SecurityHeaders, cors_layer, response_headers};

/// Builds the gateway's HTTP app: the REST API, its docs, and the agentgate endpoints.
pub struct HttpApp {
    gateway: Gateway,
    openapi_tags: Vec<(String, String)>,
}

impl HttpApp {
    pub fn new(gateway: Gateway) -> Self {
        Self {
            gateway,
            openapi_tags: Vec::new(),
        }
    }

    /// Adds an OpenAPI tag group (merged with the built-in ones, by name) for routes a host
    /// program adds.
    pub fn openapi_tag(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.openapi_tags.push((name.into(), description.into()));
        self
    }

    /// Serves the app on an already bound listener until `shutdown` resolves (see
    /// [`serve`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let gateway = self.gateway.clone();
        serve::serve_router(gateway, self.router(), listener, shutdown).await
    }

    /// The router, to serve directly or to nest under a prefix in another axum app. Each
    /// router publishes its own agentgate site (its flow sessions are its own).
    pub fn router(self) -> Router {
        let gateway = self.gateway;
        let gateway_for_metrics = gateway.clone();
        let config = gateway.config();
        let security = Arc::new(SecurityHeaders::new(&config.security));
        rest::routes(&gateway, &self.openapi_tags)
            .merge(agentgate::routes(gateway.clone()))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(
                gateway,
                kit::guard::guard,
            ))
            .layer(cors_layer(&config.cors))
            .layer(axum::middleware::from_fn_with_state(
                security,
                response_headers,
            ))
            .layer(axum::middleware::from_fn_with_state(
                gateway_for_metrics,
                kit::metrics::record,
            ))
            .layer(kit::trace::layer())
    }
}

/// The router of `gateway` with the built-in OpenAPI tags.
pub fn router(gateway: Gateway) -> Router {
    HttpApp::new(gateway).router()
}

async fn not_found(request: Request) -> ApiError {
    Failure::NoRoute {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
    }
    .into()
}

async fn method_not_allowed(request: Request) -> ApiError {
    Failure::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
    }
    .into()
}
