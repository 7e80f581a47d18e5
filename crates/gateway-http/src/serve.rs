//! Serving the gateway on a socket with graceful shutdown.

use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use gateway_core::Gateway;

/// For `tap_io` (the metrics listener).
fn no_delay(stream: &mut tokio::net::TcpStream) {
    crate::connections::no_delay(stream);
}

/// Serves `gateway` on an already bound listener until `shutdown` resolves, then stops
/// accepting and lets requests, runs and notification deliveries in flight finish up to
/// `server.shutdown_timeout_s` (see [`Gateway::shutdown`]). Fires the startup and shutdown
/// hooks.
pub async fn serve(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::HttpApp::new(gateway).serve(listener, shutdown).await
}

/// How long connections get to close after the gateway drained (a response being written, a
/// client slow to read): then they are dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Serves `router` for `gateway`: hooks around it, small writes sent at once, graceful end
/// bounded by the gateway's shutdown deadline.
pub(crate) async fn serve_router(
    gateway: Gateway,
    router: axum::Router,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Bound before the startup hooks: an address that cannot be bound stops the start. It
    // stops serving when this function returns.
    let _metrics = serve_metrics(&gateway).await?;
    gateway.startup().await;
    let (stopping, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let header_read_timeout =
        Duration::from_secs(gateway.config().server.header_read_timeout_s.max(1));
    let server =
        crate::connections::serve_connections(listener, router, header_read_timeout, signal);
    tokio::pin!(server);
    let mut drained = false;
    let result = tokio::select! {
        // Ended without a shutdown signal: the listener failed.
        result = &mut server => result,
        Ok(()) = &mut stopped => {
            drained = true;
            tracing::info!("shutting down: no new connections; draining runs in flight");
            // The server stops accepting and finishes its requests while the gateway drains
            // its runs (cancelling those still going at the deadline, which ends their
            // requests too).
            let (result, ()) = tokio::join!(
                async {
                    match tokio::time::timeout(shutdown_limit(&gateway), &mut server).await {
                        Ok(result) => result,
                        Err(_) => {
                            tracing::warn!("connections still open at the shutdown deadline: closed");
                            Ok(())
                        }
                    }
                },
                gateway.shutdown()
            );
            result
        }
    };
    if drained {
        tracing::info!("shut down");
    } else {
        gateway.shutdown().await;
    }
    result
}

/// The `/metrics` listener of `metrics.listen`, serving until dropped.
#[must_use = "the listener stops when dropped"]
pub struct MetricsListener {
    /// Dropped with the listener, which then stops accepting and ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `/metrics` without auth on `metrics.listen` when metrics are on and an address is
/// set (`None` otherwise), until the returned [`MetricsListener`] is dropped: what [`serve`]
/// starts beside the API, and what a process without the API (a queue worker) starts alone.
/// An address that cannot be bound is an error, so that the process does not start.
pub async fn serve_metrics(gateway: &Gateway) -> std::io::Result<Option<MetricsListener>> {
    let config = gateway.config().metrics;
    let Some(address) = config.listen.filter(|_| config.enabled) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(&address).await.map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot listen for metrics on {address}: {err}"),
        )
    })?;
    tracing::info!(%address, "serving /metrics (no auth)");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = crate::rest::metrics::listener_router(gateway.clone());
    tokio::spawn(async move {
        let served = axum::serve(listener.tap_io(no_delay), router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "the metrics listener failed");
        }
    });
    Ok(Some(MetricsListener { _stop: stop }))
}

/// How long the server may take to close its connections: the gateway's deadline, the grace
/// its cancelled runs get, and a moment to write their answers.
fn shutdown_limit(gateway: &Gateway) -> Duration {
    Duration::from_secs(gateway.config().server.shutdown_timeout_s.max(1))
        + Duration::from_secs(5)
        + CLOSE_GRACE
}
