//! agentgate: an open protocol that lets a website publish what agents can do on it —
//! `/.well-known/agent-manifest.json`, single-step *intents* and multi-step *flows* — and a
//! client SDK for agents to discover and drive such sites.
//!
//! Server side (feature `server`):
//!
//! ```
//! use agentgate::server::{AgentApp, Auth, Context, HandlerError, Intent};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Search { query: String }
//!
//! let app = AgentApp::builder("MyShop")
//!     .auth(Auth::api_key("X-API-Key", ["secret"]))
//!     .intent(Intent::new("search", "Search products", |_ctx: Context, args: Search| async move {
//!         Ok::<_, HandlerError>(vec![args.query])
//!     }))
//!     .build()
//!     .unwrap();
//! let router: axum::Router = app.mount(axum::Router::new());
//! ```
//!
//! Client side (feature `client`): [`client::AgentClient`].

pub mod protocol;
pub mod schema;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "client")]
pub mod client;

pub use protocol::{AuthDef, ErrorBody, FlowDef, IntentDef, Manifest, Orchestration, StepDef};
