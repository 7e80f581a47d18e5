//! agent-gateway
