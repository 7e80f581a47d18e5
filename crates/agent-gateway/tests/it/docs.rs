use agent_gateway::{utoipa, utoipa_axum};
use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn openapi_describes_every_route_with_tags() {
    let ws = TestWorkspace::new();
    ws.agent("assistant", "description: ok", "Help.");
    let mock = mock_llm::MockLlm::start().await.unwrap();
    let gateway = agent_gateway::Gateway::builder(ws.path())
        .env(mock_env(&mock))
        .build()
        .await
        .unwrap();
    let app = agent_gateway::HttpApp::new(gateway.clone())
        .openapi_tag("Reports", "Custom reports")
        .openapi_tag("Agents", "duplicate of a built-in tag")
        .router();
    let server = TestServer::serve_router(gateway, app).await;
    let (status, spec) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/v1/health",
        "/v1/agents",
        "/v1/agents/{agent_id}",
        "/v1/agents/{agent_id}/invoke",
        "/v1/agents/{agent_id}/chat",
        "/v1/sessions/{session_id}",
        "/v1/tools",
        "/v1/skills/{skill_id}",
        "/v1/reload",
        "/v1/executions/{execution_id}/approve",
        "/v1/admin/mcp-servers/{server_id}/refresh",
        "/v1/agents/{agent_id}/memories",
        "/v1/agents/{agent_id}/memories/{memory_id}",
        "/v1/agents/{agent_id}/memory/compact",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    let memories = &spec["paths"]["/v1/agents/{agent_id}/memories"]["get"];
    assert_eq!(memories["tags"][0], "Memory");
    let params: Vec<&str> = memories["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "agent_id", "user", "scope", "type", "source", "q", "limit", "offset"
        ]
    );
    for schema in [
        "Memory",
        "MemoryPage",
        "MemoryCreateBody",
        "MemoryEditBody",
        "CompactReport",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    let invoke = &spec["paths"]["/v1/agents/{agent_id}/invoke"]["post"];
    assert_eq!(invoke["tags"][0], "Agents");
    assert!(invoke["responses"]["404"].is_object());
    let tags: Vec<&str> = spec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags.iter().filter(|t| **t == "Agents").count(), 1);
    assert!(tags.contains(&"Reports"));
    assert!(tags.contains(&"MCP"));
    assert!(tags.contains(&"Memory"));
    assert_eq!(tags.len(), 15);
    assert!(spec["components"]["schemas"]["ErrorResponse"].is_object());
}

#[tokio::test]
async fn swagger_ui_and_redoc_are_served_offline() {
    let ws = TestWorkspace::new();
    let (_mock, server) = start(&ws).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = client
        .get(format!("{}/docs", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "docs/");
    let page = server
        .client
        .get(format!("{}/docs/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("cdn."),
        "Swagger UI must not load from a CDN"
    );
    let init = server
        .client
        .get(format!("{}/docs/swagger-initializer.js", server.url))
        .send()
        .await
        .unwrap();
    assert!(init.text().await.unwrap().contains("../openapi.json"));
    let redoc = server
        .client
        .get(format!("{}/redoc", server.url))
        .send()
        .await
        .unwrap();
    let html = redoc.text().await.unwrap();
    assert!(html.contains("redoc/redoc.standalone.js") && !html.contains("cdn."));
    let js = server
        .client
        .get(format!("{}/redoc/redoc.standalone.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.unwrap().len() > 500_000);
    let _: Value = server.get("/openapi.json").await.1;
}

#[tokio::test]
async fn agents_with_schemas_get_their_own_typed_invoke_route() {
    let ws = TestWorkspace::new();
    ws.agent(
        "extractor",
        "input_schema:\n  type: object\n  required: [city]\n  properties:\n    city: {type: string}\noutput_schema:\n  type: object\n  properties:\n    temperature: {type: number}",
        "Extract.",
    );
    ws.agent("plain", "", "Chat.");
    let (_mock, server) = start(&ws).await;
    let (_, spec) = server.get("/openapi.json").await;
    let route = &spec["paths"]["/v1/agents/extractor/invoke"]["post"];
    let body = &route["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], serde_json::json!(["message", "input"]));
    assert_eq!(
        body["properties"]["input"]["required"],
        serde_json::json!(["city"])
    );
    let result = &route["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        // Or null: a failed run, or an answer that did not match, has no output.
        result["allOf"][1]["properties"]["result"]["properties"]["output"]["anyOf"][0]["properties"]
            ["temperature"]["type"],
        "number"
    );
    assert!(spec["paths"].get("/v1/agents/plain/invoke").is_none());
    // Every reference resolves.
    let text = spec.to_string();
    for name in text.split("#/components/schemas/").skip(1) {
        let name: String = name.chars().take_while(|c| *c != '"').collect();
        assert!(
            spec["components"]["schemas"].get(&name).is_some(),
            "dangling $ref {name}"
        );
    }
}

/// A host program's own route, documented with utoipa.
#[utoipa::path(get, path = "/reports/{agent_id}", tag = "Reports",
    params(("agent_id" = String, Path, description = "Agent id")),
    responses((status = 200, description = "The report", body = String)))]
async fn report(agent_gateway::ApiPath(agent_id): agent_gateway::ApiPath<String>) -> String {
    format!("report of {agent_id}")
}

#[tokio::test]
async fn every_route_documents_what_the_http_layer_answers() {
    let ws = TestWorkspace::new();
    ws.agent(
        "extractor",
        "input_schema:\n  type: object\n  required: [city]\n  properties:\n    city: {type: string}\noutput_schema:\n  type: object\n  properties:\n    temperature: {type: number}",
        "Extract.",
    );
    ws.config(&format!(
        "model:\n  default: {MODEL}\nauth:\n  api_keys:\n    - {{name: ci, key: k-1, scopes: [\"*\"]}}\n"
    ));
    let mock = mock_llm::MockLlm::start().await.unwrap();
    let gateway = agent_gateway::Gateway::builder(ws.path())
        .env(mock_env(&mock))
        .build()
        .await
        .unwrap();
    let host = utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(report));
    let app = agent_gateway::HttpApp::new(gateway.clone())
        .openapi_tag("Reports", "Custom reports")
        .routes(host)
        .router();
    let server = TestServer::serve_router(gateway, app).await;
    let (status, spec) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let error_ref = serde_json::json!("#/components/schemas/ErrorResponse");
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let in_path = parameters.iter().any(|p| p["in"] == "path");
            let in_query = parameters.iter().any(|p| p["in"] == "query");
            if operation.get("requestBody").is_some() {
                assert!(
                    has("408") && has("413") && has("415") && has("422"),
                    "{method} {path}"
                );
            }
            if in_path {
                assert!(has("404") && has("422"), "{method} {path}");
            }
            if in_query {
                assert!(has("422"), "{method} {path}");
            }
            let guarded = path.starts_with("/v1/") || path == "/metrics";
            assert_eq!(has("429"), guarded, "{method} {path}");
            let public = path == "/v1/health" || path == "/v1/ready";
            assert_eq!(
                has("401") && has("403"),
                guarded && !public,
                "{method} {path}"
            );
            // Secured with auth on, except what is public.
            assert_eq!(
                operation.get("security").is_some(),
                guarded && !public,
                "{method} {path}"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["description"]
                            .as_str()
                            .is_some_and(|d| !d.is_empty()),
                        "{method} {path} {status}"
                    );
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], error_ref,
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(operations > 50, "{operations}");
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    // The host program's route, and its path parameter's rule.
    let route = &spec["paths"]["/reports/{agent_id}"]["get"];
    assert_eq!(route["tags"][0], "Reports");
    assert_eq!(
        route["parameters"][0]["schema"]["pattern"],
        "^[a-zA-Z0-9_-]{1,128}$"
    );
    assert!(route["responses"]["422"].is_object());
    let answer = server
        .client
        .get(format!("{}/reports/ok-1", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "report of ok-1");
    let (status, body) = server.get("/reports/not%20ok").await;
    assert_eq!((status, error_code(&body)), (422, "validation_error"));
    // The per-agent route: the generic body with the agent's input in it, its events.
    let typed = &spec["paths"]["/v1/agents/extractor/invoke"]["post"];
    let body = &typed["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["properties"]["message"]["maxLength"], 102_400);
    assert!(body["properties"]["options"]["oneOf"].is_array(), "{body}");
    assert_eq!(
        typed["responses"]["200"]["content"]["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/SseEvent"
    );
    assert!(typed["responses"]["413"].is_object() && typed["responses"]["401"].is_object());
    // `loc` items are what is sent: keys and indexes.
    let loc = &spec["components"]["schemas"]["LocItem"]["oneOf"];
    assert_eq!(loc[0]["type"], "string");
    assert_eq!(loc[1]["type"], "integer");
    let (_, error) = server.get("/v1/executions?limit=0").await;
    assert_eq!(error_code(&error), "auth_required");
}
