//! Serving the gateway on a socket with graceful shutdown.

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use gateway_core::Gateway;

/// Sends small writes at once. Without it a streamed event written while the client's
/// acknowledgement of the previous one is delayed waits for that acknowledgement (up to
/// 40 ms on Linux): Nagle's algorithm meeting delayed ACKs.
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY on a connection");
    }
}

/// Serves `gateway` on an already bound listener until `shutdown` resolves, then lets
/// requests in flight finish. Fires the startup and shutdown hooks.
pub async fn serve(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::HttpApp::new(gateway).serve(listener, shutdown).await
}

/// Serves `router` for `gateway`: hooks around it, small writes sent at once, graceful end.
pub(crate) async fn serve_router(
    gateway: Gateway,
    router: axum::Router,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    gateway.startup().await;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener.tap_io(no_delay), app)
        .with_graceful_shutdown(shutdown)
        .await;
    gateway.shutdown().await;
    result
}
