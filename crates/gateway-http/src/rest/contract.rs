//! What `/openapi.json` says of every operation beyond its handler's own annotation, taken
//! from the rules the HTTP layer applies rather than repeated per handler: the error responses
//! of the guard (401, 403, 429) and of the extractors (404 and 422 for path parameters, 422
//! for query strings, 413, 415 and 422 for bodies), each with the error envelope; the id rule
//! of each known path parameter; the body limit; and, with auth on, the credentials a route
//! takes. Built-in routes, a host program's routes and the per-agent typed invoke routes all
//! go through here, so none of them can document less than it answers.

use axum::http::Method;
use serde_json::{Map, Value, json};

use crate::kit::extract::IdKind;
use crate::kit::guard::{Access, access, is_guarded};

/// The methods an OpenAPI path item may hold operations for.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The rules of every request, stated once in the document's description.
fn rules(body_limit: usize) -> String {
    format!(
        "\n\nEvery error is `{{\"error\": {{\"code\", \"message\", \"execution_id\"?, \"details\"?}}}}` (`ErrorResponse`). \
         A request that breaks this document's rules — a path id's pattern, a query bound, a body's schema — is `422 validation_error`, \
         with `details[].loc` locating each problem; a well-formed request refused for what it means (an unknown agent in a schedule, \
         a cron expression that does not parse, a personal agent's setup on another agent) is `400`. \
         A body is JSON (`415` otherwise) of at most {body_limit} bytes (`server.max_body_bytes`; `413` beyond), \
         nested at most 128 levels deep. No text in a request may hold a NUL character (U+0000): no store keeps one, so it is refused with `422`."
    )
}

/// Completes every operation of `spec` (see the module's description).
pub(crate) fn complete(spec: &mut Value, body_limit: usize) {
    if let Some(info) = spec.get_mut("info").and_then(Value::as_object_mut) {
        let description = info
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        info.insert(
            "description".into(),
            Value::String(description + &rules(body_limit)),
        );
    }
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (route, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if let Some(method) = method_of(method) {
                complete_operation(route, &method, operation, body_limit);
            }
        }
    }
}

fn method_of(key: &str) -> Option<Method> {
    METHODS
        .contains(&key)
        .then(|| key.to_ascii_uppercase().parse().ok())
        .flatten()
}

/// Completes one operation served at the route template `route` (for a per-agent route, the
/// generic route that serves it: the guard's rule is that route's).
pub(crate) fn complete_operation(
    route: &str,
    method: &Method,
    operation: &mut Value,
    body_limit: usize,
) {
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    let mut path = false;
    let mut query = false;
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut() {
            match parameter.get("in").and_then(Value::as_str) {
                Some("path") => {
                    path = true;
                    let kind = parameter
                        .get("name")
                        .and_then(Value::as_str)
                        .and_then(IdKind::of_path_param);
                    if let Some(kind) = kind {
                        parameter["schema"] =
                            serde_json::to_value(kind.schema()).unwrap_or_default();
                    }
                }
                Some("query") => query = true,
                _ => {}
            }
        }
    }
    let body = match operation.get_mut("requestBody") {
        Some(request_body) => {
            request_body["x-max-body-bytes"] = json!(body_limit);
            true
        }
        None => false,
    };
    let mut statuses: Vec<u16> = Vec::new();
    if is_guarded(route) {
        statuses.push(429);
        if !matches!(access(method, route), Some(Access::Public) | None) {
            statuses.extend([401, 403]);
        }
    }
    if path {
        statuses.extend([404, 422]);
    }
    if query {
        statuses.push(422);
    }
    if body {
        statuses.extend([408, 413, 415, 422]);
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    for status in statuses {
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let Ok(status) = status.parse::<u16>() else {
            continue;
        };
        if status >= 400 {
            describe_error(status, response, body_limit);
        }
    }
}

/// An error response as the gateway sends it: the error envelope, and a description when the
/// handler gave none.
fn describe_error(status: u16, response: &mut Value, body_limit: usize) {
    let Some(response) = response.as_object_mut() else {
        return;
    };
    let described = response
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty());
    if !described {
        response.insert("description".into(), json!(description(status, body_limit)));
    }
    response.entry("content").or_insert_with(
        || json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}),
    );
    if status == 429 {
        response.entry("headers").or_insert_with(|| {
            json!({"Retry-After": {"description": "Seconds until the limit's window ends", "schema": {"type": "integer", "minimum": 0}}})
        });
    }
}

/// What an error status means on this API (the body's `code` says which case it is).
fn description(status: u16, body_limit: usize) -> String {
    match status {
        400 => "Well formed, but not meaningful here (`code` says why)".into(),
        401 => "No valid credential (`auth_required`)".into(),
        403 => "The credential's scopes do not cover this (`insufficient_scope`), or the record is another user's (`forbidden`)".into(),
        404 => "No such record (`<record>_not_found`), or no route for this path (`not_found`)".into(),
        408 => "The body stopped coming for longer than `server.body_read_timeout_s` (`body_timeout`)".into(),
        409 => "The record's state does not allow this (`code` says which)".into(),
        413 => format!(
            "The body is larger than {body_limit} bytes, `server.max_body_bytes` (`body_too_large`)"
        ),
        415 => "The body is not sent as JSON, `Content-Type: application/json` (`unsupported_media_type`)".into(),
        422 => "A value breaks this document's rules (`validation_error`; `details[].loc` is where: `[\"path\" | \"query\" | \"body\", ...]`), or a run's input breaks the agent's schema (`input_validation_failed`)".into(),
        429 => "Over the rate limit (`rate_limited`)".into(),
        500 => "The gateway failed (`code` says how)".into(),
        502 => "A model the operation needed answered with an error or nonsense (`code` says which)".into(),
        503 => "A dependency is unavailable: the store, the queue, the model (`code` says which)".into(),
        _ => "Error".into(),
    }
}

/// With auth on: the credentials the document declares (`bearer`: an API key or an OAuth2
/// access token; `api_key`: the `X-API-Key` header), required by every guarded operation
/// that is not public (`public_paths` included).
pub(crate) fn declare_security(spec: &mut Value, public_paths: &[String]) {
    if let Some(components) = spec.get_mut("components").and_then(Value::as_object_mut) {
        components.insert(
            "securitySchemes".into(),
            json!({
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (`auth.api_keys`) or an OAuth2 access token"},
                "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key (`auth.api_keys`)"},
            }),
        );
    }
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (route, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let Some(method) = method_of(method) else {
                continue;
            };
            let template = generic_route(route);
            let open = !is_guarded(route)
                || public_paths.iter().any(|p| p == route)
                || matches!(access(&method, &template), Some(Access::Public) | None);
            if !open && let Some(operation) = operation.as_object_mut() {
                operation.insert("security".into(), json!([{"bearer": []}, {"api_key": []}]));
            }
        }
    }
}

/// The route template that serves a documented path: a per-agent invoke route is served by
/// the generic one.
pub(crate) fn generic_route(route: &str) -> String {
    match route
        .strip_prefix("/v1/agents/")
        .and_then(|rest| rest.strip_suffix("/invoke"))
    {
        Some(agent) if !agent.contains('/') && !agent.starts_with('{') => {
            "/v1/agents/{agent_id}/invoke".to_string()
        }
        _ => route.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_get_the_errors_of_their_shape() {
        let mut operation = json!({
            "parameters": [
                {"name": "agent_id", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer"}},
            ],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "ok"}, "409": {"description": ""}},
        });
        complete_operation(
            "/v1/agents/{agent_id}/memories",
            &Method::POST,
            &mut operation,
            4096,
        );
        let responses = operation["responses"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [
                "200", "401", "403", "404", "408", "409", "413", "415", "422", "429"
            ]
        );
        assert!(
            responses["413"]["description"]
                .as_str()
                .unwrap_or_default()
                .contains("4096")
        );
        assert!(
            !responses["409"]["description"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
        assert_eq!(
            responses["415"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorResponse"
        );
        assert_eq!(
            operation["parameters"][0]["schema"]["pattern"],
            IdKind::Strict.pattern()
        );
        // A public route is not refused for credentials; a host route outside /v1 is not
        // guarded at all.
        let mut health = json!({"responses": {"200": {"description": "ok"}}});
        complete_operation("/v1/health", &Method::GET, &mut health, 4096);
        assert!(health["responses"].get("401").is_none());
        assert!(health["responses"].get("429").is_some());
        let mut host = json!({"responses": {"200": {"description": "ok"}}});
        complete_operation("/reports", &Method::GET, &mut host, 4096);
        assert_eq!(host["responses"].as_object().map(Map::len), Some(1));
    }

    #[test]
    fn agent_routes_are_served_by_the_generic_one() {
        assert_eq!(
            generic_route("/v1/agents/extractor/invoke"),
            "/v1/agents/{agent_id}/invoke"
        );
        assert_eq!(generic_route("/v1/agents/x/chat"), "/v1/agents/x/chat");
    }
}
