//! Response headers every surface gets: the security headers (built once from `security`),
//! `X-Request-Id` (and the request's log span), `X-Request-Duration-Ms` on `/v1` answers, and
//! CORS (preflights answered before the guard).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use gateway_core::workspace::config::{CorsConfig, SecurityConfig};

/// The security headers, built once from the configuration (not parsed again for every
/// response): one set per content security policy — the API's, the docs', the dashboard's.
pub struct SecurityHeaders {
    api: Vec<(HeaderName, HeaderValue)>,
    docs: Vec<(HeaderName, HeaderValue)>,
    dashboard: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    pub fn new(config: &SecurityConfig) -> Self {
        let set = |csp: &str| -> Vec<(HeaderName, HeaderValue)> {
            if !config.enabled {
                return Vec::new();
            }
            [
                (
                    "x-content-type-options",
                    config.x_content_type_options.as_str(),
                ),
                ("x-frame-options", &config.x_frame_options),
                ("referrer-policy", &config.referrer_policy),
                (
                    "strict-transport-security",
                    &config.strict_transport_security,
                ),
                ("content-security-policy", csp),
            ]
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .filter_map(|(name, value)| match HeaderValue::from_str(value) {
                Ok(value) => Some((HeaderName::from_static(name), value)),
                Err(_) => {
                    // The workspace check refuses such values; a config built in code may not.
                    tracing::warn!(header = name, "not a valid HTTP header value: not sent");
                    None
                }
            })
            .collect()
        };
        Self {
            api: set(&config.content_security_policy),
            docs: set(&config.docs_content_security_policy),
            dashboard: set(&config.dashboard_content_security_policy),
        }
    }

    fn for_path(&self, path: &str) -> &[(HeaderName, HeaderValue)] {
        if path.starts_with("/docs") || path.starts_with("/redoc") || path == "/openapi.json" {
            &self.docs
        } else if path.starts_with("/dashboard") {
            &self.dashboard
        } else {
            &self.api
        }
    }
}

/// The id of a request: the caller's `X-Request-Id` when it is a plain token (at most 64
/// letters, digits, `-`, `_` or `.`), else a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Runs the request in a span carrying its `request_id` (every log line written while
/// handling it has it), answers it in `X-Request-Id`, and adds `X-Request-Duration-Ms` to
/// `/v1` responses and the security headers to all.
pub async fn response_headers(
    State(security): State<Arc<SecurityHeaders>>,
    request: Request,
    next: Next,
) -> Response {
    use tracing::Instrument;
    let path = request.uri().path();
    let timed = path.starts_with("/v1/");
    let set = security.for_path(path);
    let id = request_id(&request);
    // At error level: enabled whatever the log level, so every line has its id. The id
    // only: each field is formatted when the span is made, on every request.
    let span = tracing::error_span!("request", request_id = %id, trace_id = tracing::field::Empty);
    if let Some(trace_id) = gateway_telemetry::context::current_trace_id() {
        span.record("trace_id", trace_id);
    }
    let started = Instant::now();
    let mut response = next.run(request).instrument(span).await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", value);
    }
    if timed {
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        headers.insert("x-request-duration-ms", HeaderValue::from(millis));
    }
    for (name, value) in set {
        headers.insert(name.clone(), value.clone());
    }
    response
}

/// CORS from `cors` (a no-op layer when disabled). Preflights are answered here, before the
/// guard, so they are never authenticated or counted.
pub fn cors_layer(config: &CorsConfig) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if !config.enabled {
        return CorsLayer::new();
    }
    let origins = if config.allow_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods: Vec<http::Method> = config
        .allow_methods
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect();
    let headers: Vec<HeaderName> = config
        .allow_headers
        .iter()
        .filter_map(|h| HeaderName::try_from(h.as_str()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .allow_credentials(config.allow_credentials)
        .max_age(std::time::Duration::from_secs(config.max_age))
}
