//! Black-box tests: the real server on a random port, a mock LLM over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agentgate;
mod api_errors;
mod approvals;
mod auth;
mod chat;
mod delegation;
mod docs;
mod faults;
mod invoke;
mod library;
mod live_ops;
mod mcp;
mod mcp_server;
mod memory;
mod memory_api;
mod metrics;
mod notifications;
mod outbound;
mod persistence;
mod queues;
mod schedules;
mod sessions;
mod support;
mod tools;
mod workflows;
