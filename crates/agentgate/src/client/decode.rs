//! What a site answers, read from its text: the manifest, successful answers, error bodies
//! and what a failed step means. Pure (no connection), so it is what the client runs and what
//! the fuzz targets drive: none of it may panic whatever a site sends.

use serde::de::DeserializeOwned;

use super::ClientError;
use crate::protocol::{ErrorBody, Manifest};

/// Characters of a non-protocol error answer kept in its message.
const MAX_ERROR_TEXT_CHARS: usize = 500;

/// The manifest the site at `url` published (`text` is the body of its
/// `/.well-known/agent-manifest.json`). A body that is not a manifest, or one without
/// `agent_api_version`, means the site does not speak agentgate.
pub fn manifest(url: &str, text: &str) -> Result<Manifest, ClientError> {
    let not_found = |reason: String| ClientError::ManifestNotFound {
        url: url.to_string(),
        reason,
    };
    let manifest: Manifest = serde_json::from_str(text)
        .map_err(|err| not_found(format!("the manifest is not valid: {err}")))?;
    if manifest.agent_api_version.is_empty() {
        return Err(not_found("the manifest has no agent_api_version".into()));
    }
    Ok(manifest)
}

/// A successful answer (an intent's result, a flow's start, step or session state) as `T`.
pub fn answer<T: DeserializeOwned>(text: &str) -> Result<T, ClientError> {
    serde_json::from_str(text)
        .map_err(|err| ClientError::Transport(format!("unexpected answer: {err}")))
}

/// The error body of a failed call, or one describing whatever came back instead (its first
/// characters as the message).
pub fn error_body(text: &str) -> ErrorBody {
    serde_json::from_str::<ErrorBody>(text).unwrap_or_else(|_| ErrorBody {
        error: "http_error".into(),
        message: text.chars().take(MAX_ERROR_TEXT_CHARS).collect(),
        current_step: None,
        allowed_next_steps: None,
        details: None,
    })
}

/// What a failed flow call (`status` with `body`) means for step `step` of `flow`.
pub fn step_error(
    flow: &str,
    step: &str,
    session_id: Option<&str>,
    status: u16,
    body: ErrorBody,
) -> ClientError {
    match (status, body.error.as_str()) {
        (401, _) => ClientError::Unauthorized(body.message),
        (422, "step_not_allowed") => ClientError::StepTransition {
            step: step.to_string(),
            allowed: body.allowed_next_steps.unwrap_or_default(),
        },
        (404, "session_not_found") => {
            ClientError::SessionNotFound(session_id.unwrap_or_default().to_string())
        }
        (404, "flow_not_found") => ClientError::FlowNotFound(flow.to_string()),
        _ => ClientError::Http {
            status,
            code: body.error,
            message: body.message,
        },
    }
}

/// What a failed intent call (`status` with `body`) means.
pub fn intent_error(intent: &str, status: u16, body: ErrorBody) -> ClientError {
    match status {
        401 => ClientError::Unauthorized(body.message),
        _ => ClientError::Intent {
            intent: intent.to_string(),
            status,
            code: body.error,
            message: body.message,
        },
    }
}
