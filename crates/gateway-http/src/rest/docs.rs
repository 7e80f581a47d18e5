//! `/openapi.json`, Swagger UI at `/docs` and ReDoc at `/redoc`, all served from assets
//! embedded in the binary (no CDN), with relative links so they also work when the gateway
//! is nested under a prefix.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::Config;

use gateway_core::{Gateway, GatewayError};

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

/// Adds, for each enabled agent with an `input_schema` or `output_schema`, its own invoke
/// route typed by those schemas (served by the generic route; documented apart so clients
/// see each agent's contract).
fn with_agent_routes(spec: &serde_json::Value, gateway: &Gateway) -> serde_json::Value {
    use serde_json::json;
    let mut spec = spec.clone();
    let generation = gateway.generation();
    for agent in generation.agents() {
        if !agent.enabled || (agent.input_schema.is_none() && agent.output_schema.is_none()) {
            continue;
        }
        let input = agent
            .input_schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object"}));
        let mut body = json!({
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string", "maxLength": 102_400},
                "input": input,
                "options": {"$ref": "#/components/schemas/InvokeOptionsBody"},
            },
        });
        if agent.input_schema.is_some() {
            body["required"] = json!(["message", "input"]);
        }
        let mut result = json!({"$ref": "#/components/schemas/ExecutionResult"});
        if let Some(output) = &agent.output_schema {
            result = json!({"allOf": [
                {"$ref": "#/components/schemas/ExecutionResult"},
                {"type": "object", "properties": {"result": {"type": "object", "properties": {"output": output}}}},
            ]});
        }
        let error = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}});
        let operation = json!({
            "tags": ["Agents"],
            "summary": format!("Invoke {}", agent.id),
            "description": format!("`{}` with its input and output typed by the agent's schemas (the generic route with `agent_id` = `{}`).", agent.id, agent.id),
            "operationId": format!("invoke_agent_{}", agent.id.replace('-', "_")),
            "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {"description": "The execution's result", "content": {"application/json": {"schema": result}}},
                "202": {"description": "Queued (asynchronous execution)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueuedResponse"}}}},
                "404": error.clone(),
                "422": error.clone(),
                "503": error,
            },
        });
        if let Some(paths) = spec.get_mut("paths").and_then(|p| p.as_object_mut()) {
            paths.insert(
                format!("/v1/agents/{}/invoke", agent.id),
                json!({"post": operation}),
            );
        }
    }
    spec
}

pub fn router(openapi: &OpenApi, gateway: Gateway) -> Router {
    let spec: Arc<serde_json::Value> =
        Arc::new(serde_json::to_value(openapi).unwrap_or(serde_json::Value::Null));
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
                    axum::Json(with_agent_routes(&spec, &gateway))
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
