//! The client SDK against the example site.

use std::time::Duration;

use agentgate::client::{AgentClient, ClientError};
use serde_json::json;

use crate::client_script;
use crate::foodpanda::{OrderConfirmation, Restaurant};
use crate::support::*;

fn client() -> AgentClient {
    AgentClient::builder()
        .agent_id("test-agent")
        .api_key("demo-key")
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_example_agent_runs_end_to_end() {
    let site = foodpanda_site().await;
    let mut out = Vec::new();
    client_script::run(&site.url, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Results: [{\"id\":\"r1\",\"name\":\"Pizza Palace\""),
        "{text}"
    );
    assert!(text.contains(
        "Order placed: {\"order_id\":\"ORD-001\",\"status\":\"confirmed\",\"estimated_minutes\":35}"
    ));
    assert!(text.contains("Flow complete: true"));
    assert!(text.contains("Status: {\"tracking_id\":\"TRK-001\",\"status\":\"on_the_way\",\"estimated_arrival\":\"18:45\"}"));
}

#[tokio::test]
async fn typed_calls_and_session_state() {
    let site = foodpanda_site().await;
    let found = client().discover(&site.url).await.unwrap();
    assert_eq!(found.name(), "FoodPanda");
    assert_eq!(found.intents(), vec!["search_restaurants"]);
    assert_eq!(found.flows(), vec!["order_food", "track_delivery"]);
    let restaurants: Vec<Restaurant> = found
        .call_intent_as(
            "search_restaurants",
            &json!({"query": "x", "location": "y"}),
        )
        .await
        .unwrap();
    assert_eq!(restaurants.len(), 2);
    let mut session = found.flow("order_food").unwrap().start().await.unwrap();
    assert_eq!(session.allowed_next_steps(), ["search".to_string()]);
    assert!(!session.is_complete());
    session
        .step("search", json!({"query": "pizza", "location": "Berlin"}))
        .await
        .unwrap();
    session
        .step("select_restaurant", json!({"restaurant_id": "r1"}))
        .await
        .unwrap();
    let order: OrderConfirmation = session
        .step_as(
            "checkout",
            &json!({"items": [{"item_id": "m1", "quantity": 1}], "delivery_address": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(order.order_id, "ORD-001");
    assert!(session.is_complete());
    let state = session.state().await.unwrap();
    assert_eq!(state.history.len(), 3);
}

#[tokio::test]
async fn every_error_class() {
    let site = foodpanda_site().await;
    let found = client().discover(&site.url).await.unwrap();
    // Local transition check: no request is sent.
    let mut session = found.flow("order_food").unwrap().start().await.unwrap();
    let err = session.step("checkout", json!({})).await.unwrap_err();
    assert!(
        matches!(err, ClientError::StepTransition { ref allowed, .. } if allowed == &["search".to_string()]),
        "{err}"
    );
    assert!(matches!(
        found.flow("nope"),
        Err(ClientError::FlowNotFound(_))
    ));
    assert!(matches!(
        found.call_intent("nope", json!({})).await,
        Err(ClientError::IntentNotFound(_))
    ));
    let err = found
        .call_intent("search_restaurants", json!({"query": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Intent { status: 422, ref code, .. } if code == "invalid_input"),
        "{err}"
    );

    let anonymous = AgentClient::builder()
        .build()
        .unwrap()
        .discover(&site.url)
        .await
        .unwrap();
    let err = anonymous
        .call_intent("search_restaurants", json!({"query": "a", "location": "b"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err}");

    // A session that vanished on the site.
    let expiring = foodpanda_with(std::sync::Arc::new(
        agentgate::server::MemorySessionStore::new(10, Duration::from_millis(100)),
    ))
    .await;
    let mut session = client()
        .discover(&expiring.url)
        .await
        .unwrap()
        .flow("order_food")
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = session
        .step("search", json!({"query": "a", "location": "b"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::SessionNotFound(_)), "{err}");

    // Sites that do not speak agentgate.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_url = format!("http://{}", plain.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            plain,
            axum::Router::new().route("/", axum::routing::get(|| async { "hi" })),
        )
        .await
    });
    let err = client().discover(&plain_url).await.unwrap_err();
    assert!(matches!(err, ClientError::ManifestNotFound { .. }), "{err}");
    assert!(err.to_string().contains("does not speak agentgate"));
    let err = client().discover("http://127.0.0.1:1").await.unwrap_err();
    assert!(matches!(err, ClientError::ManifestNotFound { .. }), "{err}");

    // A slow site.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}", slow.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/.well-known/agent-manifest.json",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "{}"
        }),
    );
    tokio::spawn(async move { axum::serve(slow, router).await });
    let impatient = AgentClient::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = impatient.discover(&slow_url).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
}

#[tokio::test]
async fn discovery_is_cached_and_revalidated_with_the_etag() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let site = foodpanda_site().await;
    // A proxy in front of the site counts manifest fetches and 304s.
    let fetches = Arc::new(AtomicUsize::new(0));
    let not_modified = Arc::new(AtomicUsize::new(0));
    let (f, n, upstream) = (
        Arc::clone(&fetches),
        Arc::clone(&not_modified),
        site.url.clone(),
    );
    let proxy = axum::Router::new().route(
        "/.well-known/agent-manifest.json",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let (f, n, upstream) = (Arc::clone(&f), Arc::clone(&n), upstream.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let mut request = reqwest::Client::new()
                    .get(format!("{upstream}/.well-known/agent-manifest.json"));
                if let Some(tag) = headers.get("if-none-match") {
                    request = request.header("if-none-match", tag.to_str().unwrap());
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                if status == 304 {
                    n.fetch_add(1, Ordering::SeqCst);
                }
                let etag = response.headers()["etag"].to_str().unwrap().to_string();
                let body = response.text().await.unwrap();
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("etag", etag)],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, proxy).await });

    let client = AgentClient::builder()
        .cache_ttl(Duration::from_millis(200))
        .build()
        .unwrap();
    client.discover(&proxy_url).await.unwrap();
    client.discover(&proxy_url).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fresh cache: no request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = client.discover(&proxy_url).await.unwrap();
    assert_eq!(again.name(), "FoodPanda");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        not_modified.load(Ordering::SeqCst),
        1,
        "revalidated with If-None-Match: 304"
    );
}
