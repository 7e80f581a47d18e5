//! The gateway's operations on its records, one type per kind of record, each reached from
//! [`crate::Gateway`] (`gateway.executions()`, `gateway.sessions()`, ...). Operations on
//! owned records take the [`crate::Actor`] who asks and apply its one visibility rule.

pub mod admin;
pub mod conversations;
pub mod executions;
pub mod mcp_servers;
pub mod memories;
pub mod notifications;
pub mod schedules;
pub mod sessions;
pub mod user_configs;
