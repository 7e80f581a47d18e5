//! Extractors whose rejections are the API's error envelope, with typed locations: a JSON
//! body, a query string and path parameters; and the request rules that both these checks and
//! the OpenAPI document read (one source each): the id rule of each path parameter, the bounds
//! of `limit` and `offset`, the body limit.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr};

use super::error::{ApiError, ErrorDetail, LocItem, RequestError};

/// The body limit in force (`server.max_body_bytes`), put in each request's extensions by the
/// router so that [`ApiJson`] names it in its 413 and refuses a declared length beyond it
/// before reading anything.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The furthest a listing may page (`offset`): past it the store would walk that many rows to
/// answer an empty page.
pub const MAX_OFFSET: i64 = 1_000_000;

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

/// Whether JSON text escapes a NUL character (`\u0000`; JSON cannot carry a raw one). A
/// backslash outside a string is not JSON, so pairing every backslash with the character after
/// it is enough to tell an escaped NUL from an escaped backslash followed by `u0000`.
fn escapes_nul(bytes: &[u8]) -> bool {
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|b| *b == b'\\') {
        let escape = at + offset;
        if bytes[escape + 1..].starts_with(b"u0000") {
            return true;
        }
        at = escape + 2;
        if at >= bytes.len() {
            return false;
        }
    }
    false
}

/// Where the first string (or key) holding a NUL is in `value`, as `loc` items under `loc`.
fn nul_location(value: &serde_json::Value, loc: &mut Vec<LocItem>) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(index, item)| {
            loc.push(LocItem::Index(index as u64));
            let found = nul_location(item, loc);
            if !found {
                loc.pop();
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(key, item)| {
            loc.push(LocItem::Key(key.clone()));
            let found = key.contains('\0') || nul_location(item, loc);
            if !found {
                loc.pop();
            }
            found
        }),
        _ => false,
    }
}

/// A NUL character in a request: refused everywhere, since no store keeps one in text
/// (PostgreSQL refuses it in `text` and `jsonb`) and no id or name may hold one.
fn nul_refused(loc: Vec<LocItem>) -> RequestError {
    RequestError::invalid(
        "Text in a request cannot contain NUL characters (\\u0000)",
        ErrorDetail {
            loc,
            msg: "no NUL characters".into(),
            kind: "string_nul".into(),
        },
    )
}

/// Parses a JSON body into `T`, keeping where a problem is. Nesting deeper than serde_json's
/// limit (128 levels) is a 422 like any other JSON error, and so is a NUL character.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RequestError> {
    if escapes_nul(bytes) {
        // Only on refusal: find the field, for the answer's `loc`.
        let mut loc = vec![LocItem::from("body")];
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            nul_location(&value, &mut loc);
        }
        return Err(nul_refused(loc));
    }
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

/// `Json<T>` whose rejections are envelopes: 415 without a JSON content type, 413 past the
/// body limit ([`BodyLimit`], `server.max_body_bytes`), 422 with the offending field's
/// location otherwise.
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
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |limit| limit.0);
        // A declared length past the limit is refused before a byte of it is read.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(RequestError::BodyTooLarge { limit }.into());
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection {
                    BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                        RequestError::BodyTooLarge { limit }
                    }
                    other if timed_out(&other) => RequestError::BodyTimeout,
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

/// Whether reading the body failed because the client stopped sending it (the body-timeout
/// layer's error, somewhere in the rejection's sources).
fn timed_out(rejection: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = error.source();
    }
    false
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

/// The body limit of a router built without a configuration (`server.max_body_bytes`'s
/// default).
const DEFAULT_BODY_LIMIT: usize = gateway_core::workspace::config::DEFAULT_MAX_BODY_BYTES;

/// `Query<T>` whose rejections are envelopes naming the parameter; a value holding a NUL
/// character is refused.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if !percent_decodes_to_utf8(query) {
            return Err(RequestError::invalid(
                "The query string is not UTF-8 once percent-decoded",
                ErrorDetail {
                    loc: vec![LocItem::from("query")],
                    msg: "UTF-8 text".into(),
                    kind: "utf8_invalid".into(),
                },
            )
            .into());
        }
        if let Some((key, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(key, value)| key.contains('\0') || value.contains('\0'))
        {
            return Err(
                nul_refused(vec![LocItem::from("query"), LocItem::Key(key.into_owned())]).into(),
            );
        }
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

/// Whether `query`, percent-decoded, is UTF-8: `form_urlencoded` would put U+FFFD in place of
/// what is not, and a filter would silently match nothing.
fn percent_decodes_to_utf8(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                at += 3;
            }
            None => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// `Path<T>` whose rejections are envelopes. Every parameter named in
/// [`IdKind::of_path_param`] is checked against its rule first (the rule the OpenAPI document
/// declares for it), so no handler looks up a malformed id.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| path_error(rejection.body_text()))?;
        for (name, value) in &raw {
            if let Some(kind) = IdKind::of_path_param(name) {
                kind.check(&["path", name], value)?;
            }
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_error(rejection.body_text()).into()),
        }
    }
}

/// A path that does not decode (not UTF-8) or does not fit the route's types.
fn path_error(text: String) -> RequestError {
    RequestError::invalid(
        format!("Invalid path: {text}"),
        ErrorDetail {
            loc: vec![LocItem::from("path")],
            msg: text,
            kind: "value_error".into(),
        },
    )
}

/// Which characters an identifier may use, and how long it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Agent, execution and MCP server ids: `^[a-zA-Z0-9_-]{1,128}$`.
    Strict,
    /// Tool, skill, session, conversation and memory ids: `^[a-zA-Z0-9_.-]{1,128}$`.
    Dotted,
    /// Schedule ids: `^[a-zA-Z0-9_.:/-]{1,256}$`.
    Schedule,
}

impl IdKind {
    /// The rule of a path parameter, by its name: the one table [`ApiPath`] enforces and the
    /// OpenAPI document declares (for the built-in routes and a host program's alike).
    pub fn of_path_param(name: &str) -> Option<Self> {
        match name {
            "agent_id" | "execution_id" | "server_id" => Some(Self::Strict),
            "session_id" | "conversation_id" | "memory_id" | "skill_id" | "tool_name" => {
                Some(Self::Dotted)
            }
            "schedule_id" => Some(Self::Schedule),
            _ => None,
        }
    }

    /// The longest id, in characters (all of them ASCII).
    pub const fn max_len(self) -> usize {
        match self {
            Self::Strict | Self::Dotted => 128,
            Self::Schedule => 256,
        }
    }

    /// The characters allowed besides ASCII letters and digits (`-` last: in a regular
    /// expression's class it is then a character, not a range).
    const fn extra(self) -> &'static [char] {
        match self {
            Self::Strict => &['_', '-'],
            Self::Dotted => &['_', '.', '-'],
            Self::Schedule => &['_', '.', ':', '/', '-'],
        }
    }

    fn allows(self, value: &str) -> bool {
        !value.is_empty()
            && value.len() <= self.max_len()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || self.extra().contains(&c))
    }

    /// The rule as a regular expression (ECMA-262, as JSON Schema's `pattern`).
    pub fn pattern(self) -> String {
        let extra: String = self.extra().iter().collect();
        format!("^[a-zA-Z0-9{extra}]{{1,{}}}$", self.max_len())
    }

    /// The rule as a JSON Schema: what the OpenAPI document declares.
    pub fn schema(self) -> Schema {
        self.schema_of(SchemaType::Type(Type::String))
    }

    fn schema_of(self, schema_type: SchemaType) -> Schema {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(schema_type)
                .min_length(Some(1))
                .max_length(Some(self.max_len()))
                .pattern(Some(self.pattern()))
                .build(),
        )
    }

    /// Refuses a malformed id before any lookup (422, like 0.2.13's path validation); `loc`
    /// is where the request gave it.
    pub fn check(self, loc: &[&str], value: &str) -> Result<(), ApiError> {
        if self.allows(value) {
            return Ok(());
        }
        let name = loc.last().copied().unwrap_or("id");
        let allowed = self
            .extra()
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(RequestError::invalid(
            format!("Invalid {name}: '{}'", value.escape_debug()),
            ErrorDetail {
                loc: loc.iter().map(|item| LocItem::from(*item)).collect(),
                msg: format!(
                    "must be 1-{} characters of letters, digits and {allowed}",
                    self.max_len()
                ),
                kind: "string_pattern_mismatch".into(),
            },
        )
        .into())
    }
}

/// An optional session id as the OpenAPI document declares it in a request body (for
/// `schema_with`): the rule, or `null`.
pub fn session_id_schema() -> Schema {
    IdKind::Dotted.schema_of(SchemaType::from_iter([Type::String, Type::Null]))
}

/// The characters Rust's `char::is_whitespace` (Unicode's White_Space) takes for blank, as the
/// members of a regular expression's class: a text is blank, for `trim().is_empty()` (how the
/// gateway checks a user id or a memory's content), when it has no other character.
const BLANK_CLASS: &str =
    "\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

/// Text that is not blank, as the OpenAPI document declares it (for `schema_with`).
pub fn not_blank_schema() -> Schema {
    not_blank_of(SchemaType::Type(Type::String))
}

/// Optional text that is not blank when given (for `schema_with`).
pub fn optional_not_blank_schema() -> Schema {
    not_blank_of(SchemaType::from_iter([Type::String, Type::Null]))
}

fn not_blank_of(schema_type: SchemaType) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(schema_type)
            .pattern(Some(format!("[^{BLANK_CLASS}]")))
            .build(),
    )
}

/// An optional count in a JSON body, read as JSON Schema reads `integer`: `1000` and `1000.0`
/// alike (serde's `u64` refuses the second, which the document allows). For
/// `#[serde(deserialize_with = "whole_number")]`.
pub fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(value) = number.as_u64() {
        return Ok(Some(value));
    }
    match number.as_f64() {
        // Below 2^53 every whole f64 is exact, so the cast keeps the value.
        Some(value) if value.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&value) => {
            Ok(Some(value as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "invalid value: {number}, expected a whole number of at least 0"
        ))),
    }
}

/// A page size (`limit`) between 1 and `MAX`, `DEFAULT` when the query has none: the bounds
/// the OpenAPI document declares are the ones its parsing enforces (422 beyond them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<const MAX: i64, const DEFAULT: i64>(i64);

impl<const MAX: i64, const DEFAULT: i64> Limit<MAX, DEFAULT> {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<const MAX: i64, const DEFAULT: i64> Default for Limit<MAX, DEFAULT> {
    fn default() -> Self {
        Self(DEFAULT)
    }
}

impl<'de, const MAX: i64, const DEFAULT: i64> Deserialize<'de> for Limit<MAX, DEFAULT> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        if (1..=MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "limit must be between 1 and {MAX} (got {value})"
            )))
        }
    }
}

impl<const MAX: i64, const DEFAULT: i64> utoipa::PartialSchema for Limit<MAX, DEFAULT> {
    fn schema() -> RefOr<Schema> {
        bounded_integer(1, MAX, DEFAULT, format!("1 to {MAX}, default {DEFAULT}."))
    }
}

impl<const MAX: i64, const DEFAULT: i64> utoipa::ToSchema for Limit<MAX, DEFAULT> {}

/// Where a listing starts (`offset`): 0 to [`MAX_OFFSET`], 0 when the query has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offset(i64);

impl Offset {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        if (0..=MAX_OFFSET).contains(&value) {
            Ok(Self(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "offset must be between 0 and {MAX_OFFSET} (got {value})"
            )))
        }
    }
}

impl utoipa::PartialSchema for Offset {
    fn schema() -> RefOr<Schema> {
        bounded_integer(0, MAX_OFFSET, 0, format!("0 to {MAX_OFFSET}, default 0."))
    }
}

impl utoipa::ToSchema for Offset {}

/// An integer query value between `min` and `max`.
fn bounded_integer(min: i64, max: i64, default: i64, description: String) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(min))
            .maximum(Some(max))
            .default(Some(serde_json::json!(default)))
            .description(Some(description))
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let loc = ["path", "agent_id"];
        assert!(IdKind::Strict.check(&loc, "my-agent_1").is_ok());
        assert!(IdKind::Strict.check(&loc, "a.b").is_err());
        assert!(IdKind::Dotted.check(&loc, "a.b").is_ok());
        assert!(IdKind::Schedule.check(&loc, "admin:a:b/c").is_ok());
        assert!(IdKind::Dotted.check(&loc, "").is_err());
        assert!(IdKind::Strict.check(&loc, &"a".repeat(128)).is_ok());
        assert!(IdKind::Strict.check(&loc, &"a".repeat(129)).is_err());
        assert!(IdKind::Dotted.check(&loc, "a\0b").is_err());
        assert_eq!(IdKind::Strict.pattern(), "^[a-zA-Z0-9_-]{1,128}$");
        assert_eq!(IdKind::Schedule.pattern(), "^[a-zA-Z0-9_.:/-]{1,256}$");
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        #[derive(Debug, serde::Deserialize)]
        struct Options {
            #[serde(default, deserialize_with = "whole_number")]
            timeout_ms: Option<u64>,
        }
        let parse = |text: &str| serde_json::from_str::<Options>(text).map(|o| o.timeout_ms);
        assert_eq!(parse(r#"{"timeout_ms": 1500}"#).ok(), Some(Some(1500)));
        assert_eq!(parse(r#"{"timeout_ms": 1500.0}"#).ok(), Some(Some(1500)));
        assert_eq!(parse(r#"{"timeout_ms": null}"#).ok(), Some(None));
        assert_eq!(parse("{}").ok(), Some(None));
        assert!(parse(r#"{"timeout_ms": 1500.5}"#).is_err());
        assert!(parse(r#"{"timeout_ms": -1}"#).is_err());
        assert!(parse(r#"{"timeout_ms": "soon"}"#).is_err());
    }

    #[test]
    fn queries_must_decode_to_utf8() {
        assert!(percent_decodes_to_utf8("q=caf%C3%A9&limit=5"));
        assert!(percent_decodes_to_utf8("q=100%&x=%zz"));
        assert!(!percent_decodes_to_utf8("q=%FF"));
        assert!(!percent_decodes_to_utf8("q=%C3"));
    }

    #[test]
    fn the_blank_class_is_what_trim_removes() {
        let listed: Vec<char> = (0..=0x10FFFF_u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        let class = BLANK_CLASS
            .replace("\\t", "\t")
            .replace("\\n", "\n")
            .replace("\\f", "\u{c}")
            .replace("\\r", "\r");
        let mut declared = Vec::new();
        let mut rest = class.as_str();
        while let Some(c) = rest.chars().next() {
            if let Some(hex) = rest.strip_prefix("\\u") {
                let code = u32::from_str_radix(&hex[..4], 16).unwrap_or_default();
                rest = &hex[4..];
                if let Some(to) = rest.strip_prefix("-\\u") {
                    let end = u32::from_str_radix(&to[..4], 16).unwrap_or_default();
                    declared.extend((code..=end).filter_map(char::from_u32));
                    rest = &to[4..];
                } else {
                    declared.extend(char::from_u32(code));
                }
            } else {
                declared.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        declared.sort_unstable();
        assert_eq!(declared, listed);
    }

    #[test]
    fn nul_escapes_are_told_from_escaped_backslashes() {
        assert!(escapes_nul(br#"{"a": "x\u0000"}"#));
        assert!(!escapes_nul(br#"{"a": "x\\u0000"}"#));
        assert!(escapes_nul(br#"{"a": "\\\u0000"}"#));
        // A backslash at the very end, alone or after an escaped one.
        assert!(!escapes_nul(b"x\\"));
        assert!(!escapes_nul(b"\\\\"));
        assert!(!escapes_nul(b"\\u000"));
        let Err(RequestError::Invalid { details, .. }) = parse_json::<Body>(
            br#"{"message": "x", "options": {"timeout_ms": 1}, "k": ["\u0000"]}"#,
        ) else {
            panic!("accepted a NUL");
        };
        assert_eq!(
            details[0].loc,
            vec![LocItem::from("body"), LocItem::from("k"), LocItem::Index(0)]
        );
    }

    #[test]
    fn bounds_are_enforced_as_declared() {
        let parse = |query: &str| {
            serde_urlencoded::from_str::<std::collections::HashMap<String, Limit<500, 50>>>(query)
        };
        assert_eq!(parse("limit=500").unwrap()["limit"].get(), 500);
        assert!(parse("limit=501").is_err());
        assert!(parse("limit=0").is_err());
        assert_eq!(Limit::<500, 50>::default().get(), 50);
        let schema = serde_json::to_value(<Limit<500, 50> as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        assert_eq!(
            (schema["minimum"].as_i64(), schema["maximum"].as_i64()),
            (Some(1), Some(500))
        );
        assert!(
            serde_urlencoded::from_str::<std::collections::HashMap<String, Offset>>(&format!(
                "offset={}",
                MAX_OFFSET + 1
            ))
            .is_err()
        );
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
