//! `/openapi.json`, Swagger UI at `/docs` and ReDoc at `/redoc`, all served from assets
//! embedded in the binary (no CDN), with relative links so they also work when the gateway
//! is nested under a prefix.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa_swagger_ui::Config;

use gateway_core::{Gateway, GatewayError};

use super::contract;
use crate::kit::error::{ApiError, RequestError};

const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc.standalone.js");

const REDOC_PAGE: &str = r#"<!DOCTYPE html>
<html>
  <head>
    <title>Agent Gateway — API reference</title>
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <redoc spec-url="openapi.json"></redoc>
    <script src="redoc/redoc.standalone.js"></script>
  </body>
</html>
"#;

/// The document for the current generation: for each enabled agent with an `input_schema` or
/// `output_schema`, its own invoke route typed by those schemas (served by the generic route;
/// documented apart so clients see each agent's contract, completed like every route), and
/// with auth on, the credentials each route takes.
fn for_generation(
    spec: &serde_json::Value,
    gateway: &Gateway,
    body_limit: usize,
) -> serde_json::Value {
    use serde_json::json;
    let mut spec = spec.clone();
    let generation = gateway.generation();
    let generic_body = spec["components"]["schemas"]["InvokeBody"].clone();
    for agent in generation.agents() {
        if !agent.enabled || (agent.input_schema.is_none() && agent.output_schema.is_none()) {
            continue;
        }
        // The generic body, with the agent's input schema in it.
        let mut body = generic_body.clone();
        if let Some(input) = &agent.input_schema {
            body["properties"]["input"] = input.clone();
            body["required"] = json!(["message", "input"]);
        }
        let mut result = json!({"$ref": "#/components/schemas/ExecutionResult"});
        if let Some(output) = &agent.output_schema {
            // A run that failed, or whose answer did not match, has no output.
            result = json!({"allOf": [
                {"$ref": "#/components/schemas/ExecutionResult"},
                {"type": "object", "properties": {"result": {"type": "object", "properties": {"output": {"anyOf": [output, {"type": "null"}]}}}}},
            ]});
        }
        let error = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}});
        let mut operation = json!({
            "tags": ["Agents"],
            "summary": format!("Invoke {}", agent.id),
            "description": format!("`{}` with its input and output typed by the agent's schemas (the generic route with `agent_id` = `{}`).", agent.id, agent.id),
            "operationId": format!("invoke_agent_{}", agent.id.replace('-', "_")),
            "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {"description": "The execution's result, or its events when streaming", "content": {
                    "application/json": {"schema": result},
                    "text/event-stream": {"schema": {"$ref": "#/components/schemas/SseEvent"}},
                }},
                "202": {"description": "Queued (asynchronous execution)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueuedResponse"}}}},
                "400": error.clone(),
                "404": error.clone(),
                "409": error.clone(),
                "503": error,
            },
        });
        contract::complete_operation(
            "/v1/agents/{agent_id}/invoke",
            &Method::POST,
            &mut operation,
            body_limit,
        );
        if let Some(paths) = spec.get_mut("paths").and_then(|p| p.as_object_mut()) {
            paths.insert(
                format!("/v1/agents/{}/invoke", agent.id),
                json!({"post": operation}),
            );
        }
    }
    if generation.auth_enabled() {
        contract::declare_security(&mut spec, &generation.config().auth.public_paths);
    }
    spec
}

pub fn router(spec: serde_json::Value, gateway: Gateway, body_limit: usize) -> Router {
    let spec = Arc::new(spec);
    // The page lives at `docs/`; the spec is one level up.
    let config = Arc::new(Config::new(["../openapi.json"]));
    let swagger = move |rest: Option<Path<String>>| {
        let config = Arc::clone(&config);
        async move { swagger_file(rest.map(|Path(p)| p).unwrap_or_default(), config) }
    };
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let spec = Arc::clone(&spec);
                let gateway = gateway.clone();
                async move {
                    // Per request: the agents of the current workspace generation.
                    axum::Json(for_generation(&spec, &gateway, body_limit))
                }
            }),
        )
        .route("/docs", get(|| async { relative_redirect("docs/") }))
        .route("/docs/", get(swagger.clone()))
        .route("/docs/{*rest}", get(swagger))
        .route("/redoc", get(|| async { Html(REDOC_PAGE) }))
        .route(
            "/redoc/redoc.standalone.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "application/javascript"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    REDOC_JS,
                )
            }),
        )
}

fn relative_redirect(location: &'static str) -> Response {
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    response
}

fn swagger_file(path: String, config: Arc<Config<'static>>) -> Result<Response, ApiError> {
    match utoipa_swagger_ui::serve(&path, config) {
        Ok(Some(file)) => {
            let mut response = (
                [(header::CONTENT_TYPE, file.content_type)],
                file.bytes.into_owned(),
            )
                .into_response();
            if file.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Ok(response)
        }
        Ok(None) => Err(RequestError::NoDocument(path).into()),
        Err(err) => Err(GatewayError::Internal(format!("cannot serve Swagger UI: {err}")).into()),
    }
}
