//! Agent Gateway: a folder of markdown files (agents, tools, skills) served as a production
//! API for AI agents. This crate is the one to depend on: the core ([`Gateway`] and its
//! operations, from `gateway-core`) and its HTTP surfaces (from `gateway-http`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), agent_gateway::GatewayError> {
//! use agent_gateway::prelude::*;
//! let gateway = agent_gateway::Gateway::builder("./workspace").build().await?;
//! let result = gateway.invoke(&Actor::system(), "assistant", "Hello!").await?;
//! println!("{}", result.answer.raw_text);
//! // Serve it, or nest it in an existing axum app:
//! let app = axum::Router::new().nest("/ai", gateway.router());
//! # let _ = app; Ok(()) }
//! ```

pub use gateway_core::*;
/// The extractors of the API's own handlers, for a host program's routes
/// ([`HttpApp::routes`]): their refusals are the API's error envelope, and `ApiPath` checks the
/// path parameters the document gives a rule (`agent_id`, ...).
pub use gateway_http::kit::extract::{ApiJson, ApiPath, ApiQuery};
pub use gateway_http::{
    ApiError, ErrorResponse, HostRoutes, HttpApp, MetricsListener, RequestError, serve,
    serve_metrics, utoipa, utoipa_axum,
};
/// The log and trace pipeline ([`telemetry::Telemetry::install`]), the exported spans and
/// W3C trace context.
pub use gateway_telemetry as telemetry;

/// The HTTP router of a gateway, as a method.
pub trait GatewayRouter {
    /// The API router (REST, docs, agentgate), to serve directly or to nest under a prefix in
    /// another axum app. For extra OpenAPI tag groups use [`HttpApp`].
    fn router(&self) -> axum::Router;
}

impl GatewayRouter for Gateway {
    fn router(&self) -> axum::Router {
        gateway_http::router(self.clone())
    }
}

/// What a host program usually needs in scope.
pub mod prelude {
    pub use crate::GatewayRouter;
    pub use gateway_core::{Actor, Gateway, RunRequest};
}
