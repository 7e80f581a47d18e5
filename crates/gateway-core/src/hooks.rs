//! Lifecycle hooks: async callbacks registered from Rust, fired by the engine and the gateway.
//! A hook that fails is logged and never breaks the request.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

/// A lifecycle event and its payload.
#[derive(Debug, Clone)]
pub enum HookEvent {
    GatewayStartup,
    GatewayShutdown,
    AgentInvokeBefore {
        agent_id: String,
        message: String,
        execution_id: String,
    },
    AgentInvokeAfter {
        agent_id: String,
        execution_id: String,
        /// The execution result as JSON (output, raw_text, stop_reason, usage, error, ...).
        result: Value,
        duration_ms: u64,
    },
    LlmCallBefore {
        model: String,
        agent_id: String,
    },
    LlmCallAfter {
        model: String,
        agent_id: String,
        duration_ms: u64,
        input_tokens: u64,
        output_tokens: u64,
        /// Set when the call failed.
        error: Option<String>,
    },
    ToolExecuteBefore {
        tool_name: String,
        agent_id: String,
        arguments: Value,
    },
    ToolExecuteAfter {
        tool_name: String,
        agent_id: String,
        duration_ms: u64,
        success: bool,
    },
}

impl HookEvent {
    /// The event's name as 0.2.13 spells it (`agent.invoke.before`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::GatewayStartup => "gateway.startup",
            Self::GatewayShutdown => "gateway.shutdown",
            Self::AgentInvokeBefore { .. } => "agent.invoke.before",
            Self::AgentInvokeAfter { .. } => "agent.invoke.after",
            Self::LlmCallBefore { .. } => "llm.call.before",
            Self::LlmCallAfter { .. } => "llm.call.after",
            Self::ToolExecuteBefore { .. } => "tool.execute.before",
            Self::ToolExecuteAfter { .. } => "tool.execute.after",
        }
    }
}

/// Every event name a hook can subscribe to.
pub const EVENT_NAMES: &[&str] = &[
    "gateway.startup",
    "gateway.shutdown",
    "agent.invoke.before",
    "agent.invoke.after",
    "llm.call.before",
    "llm.call.after",
    "tool.execute.before",
    "tool.execute.after",
];

type Callback = Arc<dyn Fn(HookEvent) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Registered hooks, by event name.
#[derive(Clone, Default)]
pub struct Hooks {
    entries: Vec<(&'static str, Callback)>,
}

/// An event name that is not one of [`EVENT_NAMES`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown hook event '{0}': expected one of {EVENT_NAMES:?}")]
pub struct UnknownEvent(pub String);

impl Hooks {
    /// Registers `callback` for `event` (one of [`EVENT_NAMES`]).
    pub fn on<F, Fut>(&mut self, event: &str, callback: F) -> Result<(), UnknownEvent>
    where
        F: Fn(HookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let Some(name) = EVENT_NAMES.iter().find(|n| **n == event) else {
            return Err(UnknownEvent(event.to_string()));
        };
        let callback: Callback = Arc::new(move |e| Box::pin(callback(e)));
        self.entries.push((name, callback));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any hook listens to `event`: callers skip building a costly payload (the
    /// result as JSON, copies of the message) on every request when none does.
    pub fn listens(&self, event: &str) -> bool {
        self.entries.iter().any(|(name, _)| *name == event)
    }

    /// Runs every hook registered for the event, in registration order.
    pub async fn fire(&self, event: HookEvent) {
        let name = event.name();
        for (_, callback) in self.entries.iter().filter(|(n, _)| *n == name) {
            if let Err(message) = callback(event.clone()).await {
                tracing::warn!(hook = name, error = %message, "hook failed (ignored)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn fires_matching_hooks_and_survives_failures() {
        let count = Arc::new(AtomicUsize::new(0));
        let mut hooks = Hooks::default();
        let c = Arc::clone(&count);
        hooks
            .on("gateway.startup", move |_| {
                let c = Arc::clone(&c);
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .unwrap();
        hooks
            .on("gateway.startup", |_| async {
                Err("broken hook".to_string())
            })
            .unwrap();
        assert!(hooks.on("agent.started", |_| async { Ok(()) }).is_err());
        hooks.fire(HookEvent::GatewayStartup).await;
        hooks.fire(HookEvent::GatewayShutdown).await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
