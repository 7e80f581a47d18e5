//! The FoodPanda example site.
//!
//! ```text
//! cargo run -p agentgate --example foodpanda_server [-- --addr 127.0.0.1:8000]
//! ```
//! (or `FOODPANDA_ADDR=...`). Agents discover it at /.well-known/agent-manifest.json and call
//! it with `X-API-Key: demo-key`.

#[path = "shared/foodpanda.rs"]
mod foodpanda;

use std::process::ExitCode;

use agentgate::server::MemorySessionStore;
use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut addr = std::env::var("FOODPANDA_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            _ => {
                eprintln!("usage: foodpanda_server [--addr HOST:PORT]");
                return ExitCode::FAILURE;
            }
        }
    }
    let app = match foodpanda::app(std::sync::Arc::new(MemorySessionStore::default())) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("Error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let site = Router::new().route("/", get(foodpanda::home));
    let router = app.mount_at(site, &format!("http://{addr}"));
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("Error: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "FoodPanda listening on http://{addr} (manifest: http://{addr}/.well-known/agent-manifest.json)"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // Answers are small writes: send them at once (no Nagle delay behind a delayed ACK).
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    if let Err(err) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("Error: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
