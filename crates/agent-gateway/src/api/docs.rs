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

pub fn router(openapi: &OpenApi) -> Router {
    let spec: Arc<String> = Arc::new(openapi.to_json().unwrap_or_else(|_| "{}".to_string()));
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
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        spec.as_str().to_owned(),
                    )
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

fn swagger_file(path: String, config: Arc<Config<'static>>) -> Response {
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
            response
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot serve Swagger UI");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
