//! What every HTTP surface shares: the error envelope and its one status mapping, extractors,
//! the caller's identity, the `/v1` guard, the response headers, and request metrics.

pub mod actor;
pub mod error;
pub mod extract;
pub mod guard;
pub mod headers;
pub mod metrics;
pub mod trace;
