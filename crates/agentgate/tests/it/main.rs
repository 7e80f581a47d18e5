//! agentgate over real HTTP: the example site, the protocol's errors, sessions, the client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../examples/shared/client_script.rs"]
mod client_script;
#[path = "../../examples/shared/foodpanda.rs"]
#[allow(dead_code)]
mod foodpanda;

mod client;
mod protocol;
mod sessions;
mod support;
