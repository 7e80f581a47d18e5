//! Serving the gateway on a socket with graceful shutdown.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::gateway::Gateway;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
}

impl Gateway {
    /// The API router, to serve directly or to nest under a prefix in another axum app.
    pub fn router(&self) -> axum::Router {
        crate::api::router(self.clone())
    }
}

/// Serves `gateway` on an already bound listener until `shutdown` resolves, then lets
/// requests in flight finish. Fires the startup and shutdown hooks.
pub async fn serve(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    gateway.startup().await;
    let app = gateway
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    gateway.shutdown().await;
    result
}
