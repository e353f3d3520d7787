//! HTTP surface. Today the operational endpoints: `/metrics` (Prometheus), `/healthz`
//! (the process is up) and `/readyz` (the pipeline has a broker and an assignment).
//! The investigation API under `/api/v1` joins here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// Something that can say whether the service is ready to do its job.
pub trait Readiness: Send + Sync + 'static {
    fn is_ready(&self) -> bool;
}

impl Readiness for crate::source::kafka::Shared {
    fn is_ready(&self) -> bool {
        crate::source::kafka::Shared::is_ready(self)
    }
}

pub fn router(ready: Arc<dyn Readiness>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    crate::metrics::render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.is_ready() {
                        (StatusCode::OK, "ready").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                    }
                }
            }),
        )
}

/// Serves until `shutdown` is cancelled. Returns the bound address through `bound`.
pub async fn serve(
    listen: SocketAddr,
    ready: Arc<dyn Readiness>,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "http listening");
    if let Some(b) = bound {
        let _ = b.send(addr);
    }
    axum::serve(listener, router(ready))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
