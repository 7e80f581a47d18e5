//! agentgate
