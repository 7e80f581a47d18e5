//! Extractors whose rejections are the API's error envelope, with typed locations: a JSON
//! body, a query string and path parameters, and the id rules of path parameters.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorDetail, LocItem, RequestError};

/// The largest request body accepted (413 beyond it).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The path of a deserialization error as `loc` items under `root`.
fn location(root: &str, path: &serde_path_to_error::Path) -> Vec<LocItem> {
    use serde_path_to_error::Segment;
    let mut loc = vec![LocItem::from(root)];
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => loc.push(LocItem::Index(*index as u64)),
            Segment::Map { key } => loc.push(LocItem::Key(key.clone())),
            Segment::Enum { variant } => loc.push(LocItem::Key(variant.clone())),
            Segment::Unknown => {}
        }
    }
    loc
}

/// Parses a JSON body into `T`, keeping where a problem is.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RequestError> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut reader)
        .map_err(|err| body_error(err.inner(), location("body", err.path())))?;
    reader
        .end()
        .map_err(|err| body_error(&err, vec![LocItem::from("body")]))?;
    Ok(value)
}

/// A body that is not JSON, or JSON that does not fit the route's type.
fn body_error(err: &serde_json::Error, loc: Vec<LocItem>) -> RequestError {
    let (message, kind) = match err.classify() {
        serde_json::error::Category::Data => {
            (format!("Invalid request body: {err}"), "value_error")
        }
        _ => (
            format!("Request body is not valid JSON: {err}"),
            "json_invalid",
        ),
    };
    RequestError::invalid(
        message,
        ErrorDetail {
            loc,
            msg: err.to_string(),
            kind: kind.into(),
        },
    )
}

/// `Json<T>` whose rejections are envelopes: 415 without a JSON content type, 413 past
/// [`MAX_BODY_BYTES`], 422 with the offending field's location otherwise.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(RequestError::UnsupportedMediaType.into());
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection {
                    BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                        RequestError::BodyTooLarge {
                            limit: MAX_BODY_BYTES,
                        }
                    }
                    other => RequestError::invalid(
                        format!("Could not read the request body: {}", other.body_text()),
                        ErrorDetail {
                            loc: vec![LocItem::from("body")],
                            msg: other.body_text(),
                            kind: "body_unreadable".into(),
                        },
                    ),
                })?;
        Ok(Self(parse_json(&bytes)?))
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
        let headers = request.headers();
        let has_body = headers.contains_key(header::CONTENT_TYPE)
            || headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        if !has_body {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(request, state)
            .await
            .map(Some)
    }
}

/// `Query<T>` whose rejections are envelopes naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let reader = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(reader)
            .map(Self)
            .map_err(|err| {
                RequestError::invalid(
                    format!("Invalid query parameters: {}", err.inner()),
                    ErrorDetail {
                        loc: location("query", err.path()),
                        msg: err.inner().to_string(),
                        kind: "value_error".into(),
                    },
                )
                .into()
            })
    }
}

/// `Path<T>` whose rejections are envelopes.
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
            Err(rejection) => Err(RequestError::invalid(
                format!("Invalid path: {}", rejection.body_text()),
                ErrorDetail {
                    loc: vec![LocItem::from("path")],
                    msg: rejection.body_text(),
                    kind: "value_error".into(),
                },
            )
            .into()),
        }
    }
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
        return Ok(());
    }
    let allowed = extra
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(RequestError::invalid(
        format!("Invalid {name}: '{value}'"),
        ErrorDetail {
            loc: vec![LocItem::from("path"), LocItem::from(name)],
            msg: format!("must be 1-{max} characters of letters, digits and {allowed}"),
            kind: "string_pattern_mismatch".into(),
        },
    )
    .into())
}

/// Rejects a query value outside `1..=max`.
pub fn check_limit<N: PartialOrd + From<u8> + std::fmt::Display + Copy>(
    name: &str,
    value: N,
    max: N,
) -> Result<(), ApiError> {
    if value >= N::from(1) && value <= max {
        return Ok(());
    }
    Err(RequestError::invalid(
        format!("{name} must be between 1 and {max}"),
        ErrorDetail {
            loc: vec![LocItem::from("query"), LocItem::from(name)],
            msg: format!("between 1 and {max}"),
            kind: "value_error".into(),
        },
    )
    .into())
}

/// Rejects a negative offset.
pub fn check_offset(offset: i64) -> Result<(), ApiError> {
    if offset >= 0 {
        return Ok(());
    }
    Err(RequestError::invalid(
        "offset must not be negative",
        ErrorDetail {
            loc: vec![LocItem::from("query"), LocItem::from("offset")],
            msg: "at least 0".into(),
            kind: "value_error".into(),
        },
    )
    .into())
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

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        message: String,
        options: Option<Options>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Options {
        timeout_ms: Option<u64>,
    }

    #[test]
    fn body_errors_name_the_field() {
        let Err(RequestError::Invalid { details, .. }) =
            parse_json::<Body>(br#"{"message": "x", "options": {"timeout_ms": "soon"}}"#)
        else {
            panic!("accepted a string timeout");
        };
        assert_eq!(
            details[0].loc,
            vec![
                LocItem::from("body"),
                LocItem::from("options"),
                LocItem::from("timeout_ms")
            ]
        );
        assert_eq!(details[0].kind, "value_error");
        let Err(RequestError::Invalid { details, .. }) = parse_json::<Body>(b"{\"message\": ")
        else {
            panic!("accepted broken JSON");
        };
        assert_eq!(details[0].kind, "json_invalid");
        assert!(parse_json::<Body>(br#"{"message": "x"} trailing"#).is_err());
    }
}
