//! The one error shape of the `/v1` API, `{"error": {"code", "message", "execution_id"?,
//! "details"?}}`, and the one place that gives every failure its status and code: the core's
//! [`GatewayError`]s and the HTTP layer's own [`RequestError`]s alike.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway_core::auth::AuthError;
use gateway_core::workspace::schema::{PathSegment, Violation};
use gateway_core::{GatewayError, InputPart};
use serde::Serialize;

/// One step of the path to the field a problem is about (`loc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    Key(String),
    Index(u64),
}

impl From<&str> for LocItem {
    fn from(key: &str) -> Self {
        Self::Key(key.to_string())
    }
}

impl From<&PathSegment> for LocItem {
    fn from(segment: &PathSegment) -> Self {
        match segment {
            PathSegment::Key(key) => Self::Key(key.clone()),
            PathSegment::Index(index) => Self::Index(*index as u64),
        }
    }
}

/// One field-level problem (`loc` is the path to the field).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub loc: Vec<LocItem>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl ErrorDetail {
    /// A schema violation of the value found at `root` (e.g. `["input"]`).
    pub fn of_violation(root: &[&str], violation: &Violation) -> Self {
        let mut loc: Vec<LocItem> = root.iter().map(|r| LocItem::from(*r)).collect();
        loc.extend(violation.path.iter().map(LocItem::from));
        Self {
            loc,
            msg: violation.message.clone(),
            kind: violation.keyword.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `agent_not_found`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ErrorDetail>>,
}

/// The error envelope.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

/// A failure of the HTTP layer itself: the request never reached an operation of the core.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("No route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("Expected a JSON body with 'Content-Type: application/json'")]
    UnsupportedMediaType,
    #[error("The request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The client stopped sending its body for longer than `server.body_read_timeout_s`.
    #[error("The request body stopped coming (server.body_read_timeout_s)")]
    BodyTimeout,
    /// A body, query or path that does not fit the route's contract.
    #[error("{message}")]
    Invalid {
        message: String,
        details: Vec<ErrorDetail>,
    },
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("Rate limit exceeded ({limit} requests per window); retry in {retry_after} s")]
    RateLimited { retry_after: u64, limit: u32 },
    /// A `/v1` route without an access rule: refused rather than served unguarded.
    #[error("This route has no access rule")]
    Unguarded,
    /// A page of the docs that is missing from the embedded assets.
    #[error("No such document: {0}")]
    NoDocument(String),
}

impl RequestError {
    /// A request that breaks the route's contract, with one detail.
    pub fn invalid(message: impl Into<String>, detail: ErrorDetail) -> Self {
        Self::Invalid {
            message: message.into(),
            details: vec![detail],
        }
    }
}

/// Any failure an HTTP handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Request(#[from] RequestError),
}

impl ApiError {
    /// The status and code of every failure, in one place.
    pub fn status_and_code(&self) -> (StatusCode, Cow<'static, str>) {
        use StatusCode as S;
        let fixed = |status: StatusCode, code: &'static str| (status, Cow::Borrowed(code));
        match self {
            Self::Request(error) => match error {
                RequestError::NoRoute { .. } => fixed(S::NOT_FOUND, "not_found"),
                RequestError::MethodNotAllowed { .. } => {
                    fixed(S::METHOD_NOT_ALLOWED, "method_not_allowed")
                }
                RequestError::UnsupportedMediaType => {
                    fixed(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                }
                RequestError::BodyTooLarge { .. } => fixed(S::PAYLOAD_TOO_LARGE, "body_too_large"),
                RequestError::BodyTimeout => fixed(S::REQUEST_TIMEOUT, "body_timeout"),
                RequestError::Invalid { .. } => fixed(S::UNPROCESSABLE_ENTITY, "validation_error"),
                RequestError::Unauthenticated(_) => fixed(S::UNAUTHORIZED, "auth_required"),
                RequestError::RateLimited { .. } => fixed(S::TOO_MANY_REQUESTS, "rate_limited"),
                RequestError::Unguarded => fixed(S::INTERNAL_SERVER_ERROR, "route_unguarded"),
                RequestError::NoDocument(_) => fixed(S::NOT_FOUND, "not_found"),
            },
            Self::Gateway(error) => match error {
                GatewayError::NotFound { record, .. } => (
                    S::NOT_FOUND,
                    Cow::Owned(format!("{}_not_found", record.code())),
                ),
                GatewayError::Forbidden { .. } => fixed(S::FORBIDDEN, "forbidden"),
                GatewayError::InsufficientScope { .. } => fixed(S::FORBIDDEN, "insufficient_scope"),
                GatewayError::AgentDisabled(_) => fixed(S::SERVICE_UNAVAILABLE, "agent_disabled"),
                GatewayError::InvalidInput { .. } => {
                    fixed(S::UNPROCESSABLE_ENTITY, "input_validation_failed")
                }
                GatewayError::SessionAgentMismatch { .. } => {
                    fixed(S::CONFLICT, "session_agent_mismatch")
                }
                GatewayError::StreamingNotSupported => {
                    fixed(S::BAD_REQUEST, "streaming_not_supported")
                }
                GatewayError::ModelUnavailable { .. } => {
                    fixed(S::SERVICE_UNAVAILABLE, "model_unavailable")
                }
                GatewayError::NotCancellable { .. } | GatewayError::NotWaitingApproval { .. } => {
                    fixed(S::CONFLICT, "invalid_state")
                }
                GatewayError::ReloadDisabled => fixed(S::FORBIDDEN, "reload_disabled"),
                GatewayError::ReloadFailed(_) => fixed(S::INTERNAL_SERVER_ERROR, "reload_failed"),
                GatewayError::Storage(_) => fixed(S::SERVICE_UNAVAILABLE, "storage_unavailable"),
                GatewayError::AuthRequired => fixed(S::UNAUTHORIZED, "auth_required"),
                GatewayError::NotPersonalAgent(_) => fixed(S::BAD_REQUEST, "not_personal_agent"),
                GatewayError::SetupRequired { .. } => fixed(S::CONFLICT, "setup_required"),
                GatewayError::QueueUnavailable(_) => {
                    fixed(S::SERVICE_UNAVAILABLE, "queue_unavailable")
                }
                GatewayError::ScheduleInvalid(_) => {
                    fixed(S::BAD_REQUEST, "schedule_validation_error")
                }
                GatewayError::ScheduleConflict(_) => fixed(S::CONFLICT, "schedule_conflict"),
                GatewayError::ScheduleProtected(_) => {
                    fixed(S::BAD_REQUEST, "cannot_delete_workspace_schedule")
                }
                GatewayError::Conflict(_) => fixed(S::CONFLICT, "conflict"),
                GatewayError::InvalidRequest(_) => {
                    fixed(S::UNPROCESSABLE_ENTITY, "validation_error")
                }
                GatewayError::Secrets(_) => fixed(S::INTERNAL_SERVER_ERROR, "secret_key_missing"),
                GatewayError::ShuttingDown => fixed(S::SERVICE_UNAVAILABLE, "shutting_down"),
                GatewayError::NotReady(_) => fixed(S::SERVICE_UNAVAILABLE, "not_ready"),
                GatewayError::MemoryUnavailable(_) => {
                    fixed(S::SERVICE_UNAVAILABLE, "memory_unavailable")
                }
                GatewayError::MemoryFull(_) => fixed(S::CONFLICT, "memory_full"),
                GatewayError::MemoryModelFailed(_) => fixed(S::BAD_GATEWAY, "memory_model_failed"),
                GatewayError::InvalidConfig(_)
                | GatewayError::AuthConfig(_)
                | GatewayError::RateLimitConfig(_)
                | GatewayError::SchedulerLock(_)
                | GatewayError::OutputMismatch(_)
                | GatewayError::ExecutionFailed(_)
                | GatewayError::Internal(_) => fixed(S::INTERNAL_SERVER_ERROR, "execution_error"),
            },
        }
    }

    /// Field-level problems, for the failures that have them.
    fn details(&self) -> Option<Vec<ErrorDetail>> {
        match self {
            Self::Request(RequestError::Invalid { details, .. }) if !details.is_empty() => {
                Some(details.clone())
            }
            Self::Gateway(GatewayError::InvalidInput { part, violations }) => {
                // Where each part sits in the request bodies that carry it.
                let root: &[&str] = match part {
                    InputPart::RunInput => &["body", "input"],
                    InputPart::OutputSchema => &["body", "options", "output_schema"],
                    InputPart::Setup => &["body"],
                };
                Some(
                    violations
                        .iter()
                        .map(|v| ErrorDetail::of_violation(root, v))
                        .collect(),
                )
            }
            Self::Gateway(GatewayError::NotReady(readiness)) => Some(
                readiness
                    .failures()
                    .map(|(name, error)| ErrorDetail {
                        loc: vec![LocItem::from("checks"), LocItem::from(name)],
                        msg: error.unwrap_or("failed").to_string(),
                        kind: "check_failed".to_string(),
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    fn execution_id(&self) -> Option<String> {
        match self {
            Self::Gateway(GatewayError::ModelUnavailable { execution_id, .. }) => {
                execution_id.clone()
            }
            _ => None,
        }
    }

    /// The response headers some failures carry.
    fn headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        match self {
            Self::Request(RequestError::Unauthenticated(_))
            | Self::Gateway(GatewayError::AuthRequired) => {
                vec![(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))]
            }
            Self::Request(RequestError::RateLimited { retry_after, .. }) => {
                vec![(header::RETRY_AFTER, HeaderValue::from(*retry_after))]
            }
            _ => Vec::new(),
        }
    }

    /// The envelope this failure is answered with.
    pub fn body(&self) -> ErrorResponse {
        let (_, code) = self.status_and_code();
        ErrorResponse {
            error: ErrorBody {
                code: code.into_owned(),
                message: self.to_string(),
                execution_id: self.execution_id(),
                details: self.details(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        response.headers_mut().extend(self.headers());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Record;

    #[test]
    fn every_failure_has_one_status_and_code() {
        let missing: ApiError = GatewayError::not_found(Record::McpServer, "x").into();
        assert_eq!(
            missing.status_and_code(),
            (StatusCode::NOT_FOUND, "mcp_server_not_found".into())
        );
        assert_eq!(missing.body().error.message, "MCP server 'x' not found");
        let limited: ApiError = RequestError::RateLimited {
            retry_after: 3,
            limit: 10,
        }
        .into();
        let response = limited.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "3");
    }

    #[test]
    fn violations_keep_their_path_and_keyword() {
        let error: ApiError = GatewayError::InvalidInput {
            part: InputPart::RunInput,
            violations: vec![Violation::new(
                vec![PathSegment::Key("days".into()), PathSegment::Index(2)],
                "too small",
                "minimum",
            )],
        }
        .into();
        let detail = &error.body().error.details.unwrap_or_default()[0];
        assert_eq!(
            serde_json::to_value(detail).unwrap_or_default(),
            serde_json::json!({"loc": ["body", "input", "days", 2], "msg": "too small", "type": "minimum"})
        );
    }
}
