//! The HTTP surfaces of Agent Gateway, each a module that only calls the core's public
//! operations ([`gateway_core::Gateway`]): the REST API with its OpenAPI document and docs
//! pages (`rest`), and agentgate publishing (`agentgate`). `kit` holds what they share: the
//! error envelope and its one status mapping, extractors, the `/v1` guard and the response
//! headers.

mod agentgate;
mod connections;
pub mod kit;
mod rest;
mod serve;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use gateway_core::Gateway;

pub use kit::error::{ApiError, ErrorBody, ErrorDetail, ErrorResponse, LocItem, RequestError};
pub use serve::{MetricsListener, serve, serve_metrics};
/// What a host program documents its own routes with ([`HttpApp::routes`]): the versions
/// this crate builds its document with.
pub use {utoipa, utoipa_axum};

use kit::error::RequestError as Failure;
use kit::extract::BodyLimit;
use kit::headers::{SecurityHeaders, cors_layer, response_headers};

/// Routes a host program adds, with their OpenAPI description (`utoipa_axum`'s router over
/// handlers annotated with `#[utoipa::path]`); their state is the gateway.
pub type HostRoutes = utoipa_axum::router::OpenApiRouter<Gateway>;

/// Builds the gateway's HTTP app: the REST API, its docs, and the agentgate endpoints, plus
/// the routes a host program adds.
pub struct HttpApp {
    gateway: Gateway,
    openapi_tags: Vec<(String, String)>,
    routes: Vec<HostRoutes>,
}

impl HttpApp {
    pub fn new(gateway: Gateway) -> Self {
        Self {
            gateway,
            openapi_tags: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds an OpenAPI tag group (merged with the built-in ones, by name) for routes a host
    /// program adds.
    pub fn openapi_tag(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.openapi_tags.push((name.into(), description.into()));
        self
    }

    /// Adds a host program's own routes. They are served beside the API's, behind the same
    /// layers (body limit, CORS, security headers, metrics), and are part of `/openapi.json`
    /// with what the API's routes get there: the error responses of the HTTP layer and the
    /// rules of known path parameters (`agent_id`, ...), which the kit's extractors
    /// (`kit::extract::{ApiJson, ApiPath, ApiQuery}`) enforce. Keep them outside `/v1`: a
    /// `/v1` route without an access rule in the guard is refused.
    pub fn routes(mut self, routes: HostRoutes) -> Self {
        self.routes.push(routes);
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
        // Read once: like the listening address, the body limit takes a restart to change.
        let body_limit = config.server.max_body_bytes;
        rest::routes(&gateway, &self.openapi_tags, self.routes, body_limit)
            .merge(agentgate::routes(gateway.clone()))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(body_limit))
            // A client that pauses in its body longer than this gets a 4xx, its connection
            // freed (the head's limit is the accept loop's).
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                std::time::Duration::from_secs(config.server.body_read_timeout_s.max(1)),
            ))
            .layer(axum::Extension(BodyLimit(body_limit)))
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
