//! Executions running in this process: their cancellation handles. Records live in the
//! store (`gateway_store`); this is only what the store cannot hold.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// Cancellation handles of the executions this process is running.
#[derive(Default)]
pub struct CancelHandles {
    tokens: Mutex<HashMap<String, CancellationToken>>,
    /// Why a run was cancelled, when it was not a caller's cancel (shutdown).
    reasons: Mutex<HashMap<String, String>>,
}

impl CancelHandles {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an execution and returns the handle its run watches.
    pub fn start(&self, execution_id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(execution_id.to_string(), token.clone());
        token
    }

    pub fn finish(&self, execution_id: &str) {
        self.lock().remove(execution_id);
    }

    /// Signals the run to stop at its next step. Returns whether it runs here.
    pub fn cancel(&self, execution_id: &str) -> bool {
        match self.lock().get(execution_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Cancels a run saying why: its recorded error is `reason`.
    pub fn cancel_because(&self, execution_id: &str, reason: &str) -> bool {
        self.reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(execution_id.to_string(), reason.to_string());
        self.cancel(execution_id)
    }

    /// The reason given to [`CancelHandles::cancel_because`] for a run, once.
    pub fn take_reason(&self, execution_id: &str) -> Option<String> {
        self.reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution_id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
