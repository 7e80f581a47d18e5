//! The site side: [`AgentApp`] publishes intents and flows on an axum router.

mod app;
mod auth;
mod handler;
#[cfg(feature = "redis")]
pub mod redis_store;
mod router;
mod session;
#[cfg(feature = "sql")]
pub mod sql_store;

pub use app::{AgentApp, AgentAppBuilder, BuildError, Flow, Intent, Step};
pub use auth::Auth;
pub use handler::{Context, DynHandler, HandlerError};
pub use session::{
    Claim, FlowSession, MemorySessionStore, SessionStore, SessionStoreError, now_ms,
};
