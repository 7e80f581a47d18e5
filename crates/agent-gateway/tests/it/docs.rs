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
        result["allOf"][1]["properties"]["result"]["properties"]["output"]["properties"]["temperature"]
            ["type"],
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
