use std::sync::Arc;

use agentgate::server::{AgentApp, MemorySessionStore, SessionStore};
use axum::Router;
use axum::routing::get;
use serde_json::Value;

use crate::foodpanda;

/// A site served on a random port.
pub struct Site {
    pub url: String,
    pub http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn serve(app: AgentApp) -> Site {
    let router = app.mount(
        Router::new()
            .route("/", get(foodpanda::home))
            .route("/api/menu", get(|| async { "plain json route" })),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Site {
        url,
        http: reqwest::Client::new(),
        _stop: tx,
    }
}

pub async fn foodpanda_site() -> Site {
    foodpanda_with(Arc::new(MemorySessionStore::default())).await
}

pub async fn foodpanda_with(store: Arc<dyn SessionStore>) -> Site {
    serve(foodpanda::app(store).unwrap()).await
}

impl Site {
    /// POST with the agent header and the demo key; returns (status, body).
    pub async fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header("x-agent-request", "true")
            .header("x-api-key", foodpanda::DEMO_KEY)
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("x-api-key", foodpanda::DEMO_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts an `order_food` session and returns its id.
    pub async fn start_order(&self) -> String {
        let (status, body) = self.post("/agent/flows/order_food/start", "{}", &[]).await;
        assert_eq!(status, 200, "{body}");
        body["session_id"].as_str().unwrap().to_string()
    }
}
