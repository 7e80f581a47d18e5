//! The one error shape of the `/v1` API: `{"error": {"code", "message", "execution_id"?,
//! "details"?}}`, for every status (including 401/403/422/429, which 0.2.13 left unenveloped),
//! and the extractors that turn bad requests into it.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::GatewayError;

/// One field-level problem (`loc` is the path to the field).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[schema(value_type = Vec<Object>)]
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
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

/// An API failure: status, body and any extra headers (boxed: errors travel in `Result`s).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Box<ErrorBody>,
    pub headers: Option<Box<HeaderMap>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                code: code.into(),
                message: message.into(),
                execution_id: None,
                details: None,
            }),
            headers: None,
        }
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        let mut label = kind.replace('_', " ");
        if let Some(first) = label.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        Self::new(
            StatusCode::NOT_FOUND,
            format!("{kind}_not_found"),
            format!("{label} '{id}' not found"),
        )
    }

    pub fn validation(message: impl Into<String>, details: Vec<ErrorDetail>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            message,
        );
        if !details.is_empty() {
            error.body.details = Some(details);
        }
        error
    }

    pub fn with_execution(mut self, execution_id: impl Into<String>) -> Self {
        self.body.execution_id = Some(execution_id.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers
                .get_or_insert_with(Default::default)
                .insert(name, value);
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(ErrorResponse { error: *self.body })).into_response();
        if let Some(headers) = self.headers {
            response.headers_mut().extend(*headers);
        }
        response
    }
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        let message = error.to_string();
        match error {
            GatewayError::AgentNotFound(id) => Self::not_found("agent", &id),
            GatewayError::SessionNotFound(id) => Self::not_found("session", &id),
            GatewayError::AgentDisabled(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "agent_disabled", message)
            }
            GatewayError::InvalidInput { details } => {
                let mut error = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "input_validation_failed",
                    message,
                );
                error.body.details = Some(
                    details
                        .into_iter()
                        .map(|d| {
                            let (path, msg) = d.split_once(": ").unwrap_or(("", d.as_str()));
                            let mut loc = vec![serde_json::Value::from("input")];
                            loc.extend(path.split('/').filter(|p| !p.is_empty()).map(|p| {
                                p.parse::<u64>()
                                    .map(serde_json::Value::from)
                                    .unwrap_or_else(|_| p.into())
                            }));
                            ErrorDetail {
                                loc,
                                msg: msg.to_string(),
                                kind: "schema_violation".into(),
                            }
                        })
                        .collect(),
                );
                error
            }
            GatewayError::SessionAgentMismatch { .. } => {
                Self::new(StatusCode::CONFLICT, "session_agent_mismatch", message)
            }
            GatewayError::SessionForbidden(_) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            GatewayError::StreamingNotSupported => {
                Self::new(StatusCode::BAD_REQUEST, "streaming_not_supported", message)
            }
            GatewayError::ModelUnavailable { execution_id, .. } => {
                let error = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "model_unavailable",
                    message,
                );
                match execution_id {
                    Some(id) => error.with_execution(id),
                    None => error,
                }
            }
            GatewayError::ReloadDisabled => {
                Self::new(StatusCode::FORBIDDEN, "reload_disabled", message)
            }
            GatewayError::Storage(_) => {
                tracing::error!(%message, "storage failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    message,
                )
            }
            GatewayError::AuthRequired => {
                Self::new(StatusCode::UNAUTHORIZED, "auth_required", message)
                    .with_header(axum::http::header::WWW_AUTHENTICATE, "Bearer")
            }
            GatewayError::NotPersonalAgent(_) => {
                Self::new(StatusCode::BAD_REQUEST, "not_personal_agent", message)
            }
            GatewayError::ConfigNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "config_not_found", message)
            }
            GatewayError::SetupRequired { .. } => {
                Self::new(StatusCode::CONFLICT, "setup_required", message)
            }
            GatewayError::QueueUnavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                message,
            ),
            GatewayError::NotificationNotFound(id) => {
                Self::not_found("notification", &id.to_string())
            }
            GatewayError::ScheduleNotFound(id) => Self::not_found("schedule", &id),
            GatewayError::ScheduleInvalid(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "schedule_validation_error",
                message,
            ),
            GatewayError::ScheduleConflict(_) => {
                Self::new(StatusCode::CONFLICT, "schedule_conflict", message)
            }
            GatewayError::ScheduleProtected(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "cannot_delete_workspace_schedule",
                message,
            ),
            GatewayError::McpServerNotFound(id) => Self::not_found("mcp_server", &id),
            GatewayError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            GatewayError::InvalidRequest(_) => Self::validation(message, Vec::new()),
            GatewayError::SecretsUnavailable(_) => {
                tracing::error!(%message, "secrets unavailable");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secret_key_missing",
                    message,
                )
            }
            GatewayError::ReloadFailed(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "reload_failed", message)
            }
            GatewayError::InvalidConfig(_)
            | GatewayError::OutputMismatch(_)
            | GatewayError::ExecutionFailed(_)
            | GatewayError::Internal(_) => {
                tracing::error!(%message, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "execution_error",
                    message,
                )
            }
        }
    }
}

/// `Json<T>` whose rejections are 422 envelopes (400 for a missing/invalid content type).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Option<ApiJson<T>>`: no body (no content type) is `None`; a body is parsed as above.
impl<T, S> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let has_body = request
            .headers()
            .contains_key(axum::http::header::CONTENT_TYPE)
            || request
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        if !has_body {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(request, state)
            .await
            .map(Some)
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected a JSON body with 'Content-Type: application/json'",
        ),
        JsonRejection::JsonDataError(err) => {
            // "Failed to deserialize the JSON body into the target type: message: missing field ..."
            let text = err.body_text();
            let detail = text
                .rsplit_once("type: ")
                .map_or(text.as_str(), |(_, d)| d)
                .to_string();
            let (path, msg) = match detail.split_once(": ") {
                Some((path, msg)) if !path.contains(' ') => (path.to_string(), msg.to_string()),
                _ => (String::new(), detail.clone()),
            };
            let mut loc = vec![serde_json::Value::from("body")];
            loc.extend(
                path.split('.')
                    .filter(|p| !p.is_empty())
                    .map(serde_json::Value::from),
            );
            ApiError::validation(
                format!("Invalid request body: {detail}"),
                vec![ErrorDetail {
                    loc,
                    msg,
                    kind: "value_error".into(),
                }],
            )
        }
        JsonRejection::JsonSyntaxError(err) => ApiError::validation(
            format!("Request body is not valid JSON: {}", err.body_text()),
            vec![ErrorDetail {
                loc: vec!["body".into()],
                msg: "invalid JSON".into(),
                kind: "json_invalid".into(),
            }],
        ),
        other => ApiError::validation(
            format!("Invalid request body: {}", other.body_text()),
            Vec::new(),
        ),
    }
}

/// `Query<T>` with enveloped 422 rejections.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let detail = text
        .rsplit_once("string: ")
        .map_or(text.as_str(), |(_, d)| d)
        .to_string();
    ApiError::validation(
        format!("Invalid query parameters: {detail}"),
        vec![ErrorDetail {
            loc: vec!["query".into()],
            msg: detail,
            kind: "value_error".into(),
        }],
    )
}

/// `Path<T>` with enveloped 422 rejections.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::validation(
        format!("Invalid path: {}", rejection.body_text()),
        Vec::new(),
    )
}

/// Which characters a path identifier may use.
#[derive(Debug, Clone, Copy)]
pub enum IdKind {
    /// Agent and execution ids: `^[a-zA-Z0-9_-]{1,128}$`.
    Strict,
    /// Tool, skill and session ids: `^[a-zA-Z0-9_.-]{1,128}$`.
    Dotted,
    /// Schedule ids: `^[a-zA-Z0-9_.:/-]{1,256}$`.
    Schedule,
}

/// Rejects malformed ids before any lookup (422, like 0.2.13's path validation).
pub fn check_id(name: &str, value: &str, kind: IdKind) -> Result<(), ApiError> {
    let (max, extra): (usize, &[char]) = match kind {
        IdKind::Strict => (128, &['_', '-']),
        IdKind::Dotted => (128, &['_', '-', '.']),
        IdKind::Schedule => (256, &['_', '-', '.', ':', '/']),
    };
    let valid = !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::validation(
            format!("Invalid {name}: '{value}'"),
            vec![ErrorDetail {
                loc: vec!["path".into(), name.into()],
                msg: format!(
                    "must be 1-{max} characters of letters, digits and {}",
                    extra
                        .iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                kind: "string_pattern_mismatch".into(),
            }],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("agent_id", "my-agent_1", IdKind::Strict).is_ok());
        assert!(check_id("agent_id", "a.b", IdKind::Strict).is_err());
        assert!(check_id("id", "a.b", IdKind::Dotted).is_ok());
        assert!(check_id("id", "admin:a:b/c", IdKind::Schedule).is_ok());
        assert!(check_id("id", "", IdKind::Dotted).is_err());
        assert!(check_id("id", &"a".repeat(129), IdKind::Strict).is_err());
    }

    #[test]
    fn not_found_messages() {
        let e = ApiError::not_found("mcp_server", "x");
        assert_eq!(e.body.code, "mcp_server_not_found");
        assert_eq!(e.body.message, "Mcp server 'x' not found");
    }
}
