//! What the gateway reports of its own condition: the outcome of the last reload and
//! readiness. Plain types (the operations in `operations::admin` fill them), kept below the
//! state and the errors that carry them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use gateway_workspace::Diagnostic;
use serde::Serialize;

/// The outcome of the last reload.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadReport {
    /// `ok` (the new generation is in effect) or `failed` (the running one stays).
    pub status: String,
    pub at: DateTime<Utc>,
    /// The generation in effect after it.
    pub generation: u64,
    /// Why it failed: every error, with its file and line.
    pub problems: Vec<ReloadProblem>,
}

/// One problem that stopped a reload.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadProblem {
    /// The file, relative to the workspace when it is inside it.
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl ReloadProblem {
    pub(crate) fn of(diagnostic: &Diagnostic, root: &Path) -> Self {
        let file = diagnostic
            .file
            .strip_prefix(root)
            .unwrap_or(&diagnostic.file)
            .display()
            .to_string();
        Self {
            file,
            line: diagnostic.line,
            message: diagnostic.message.clone(),
        }
    }
}

/// Whether this instance can serve: each dependency it needs answered (`GET /v1/ready`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, or `not_ready` when a check failed.
    pub status: String,
    /// By name: `store`, plus `queue` with a broker and `scheduler_lock` with a Redis lock.
    pub checks: BTreeMap<String, ReadinessCheck>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.values().all(|c| c.status == "ok")
    }

    /// The failed checks: (name, error; `None` when the error is withheld from the caller).
    pub fn failures(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.checks
            .iter()
            .filter(|(_, check)| check.status != "ok")
            .map(|(name, check)| (name.as_str(), check.error.as_deref()))
    }

    /// The failed checks in one line: `queue: <error>; store failed`.
    pub fn failure_summary(&self) -> String {
        let failures: Vec<String> = self
            .failures()
            .map(|(name, error)| match error {
                Some(error) => format!("{name}: {error}"),
                None => format!("{name} failed"),
            })
            .collect();
        failures.join("; ")
    }

    /// The same answer without the errors' text, which names hosts, ports and drivers: for a
    /// caller nobody authenticated.
    pub(crate) fn without_errors(mut self) -> Self {
        for check in self.checks.values_mut() {
            check.error = None;
        }
        self
    }
}

/// One dependency's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReadinessCheck {
    /// `ok` or `failed`.
    pub status: String,
    /// How long it took to answer (or to give up).
    pub duration_ms: u64,
    /// Why it failed; withheld from a caller nobody authenticated while auth is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReadinessCheck {
    pub(crate) fn of<E: std::fmt::Display>(started: Instant, answer: Result<(), E>) -> Self {
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match answer {
            Ok(()) => Self {
                status: "ok".into(),
                duration_ms,
                error: None,
            },
            Err(err) => Self {
                status: "failed".into(),
                duration_ms,
                error: Some(err.to_string()),
            },
        }
    }
}
