//! The Prometheus endpoint: `GET /metrics` on the configured TCP address.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use axum::{http::StatusCode, response::IntoResponse, routing::get, Router};
use tracing::error;

use super::controller::Controller;

pub async fn serve(
    addr: SocketAddr,
    ctl: Arc<Mutex<Controller>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr} (global.metrics_address)"))?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let ctl = ctl.clone();
            async move {
                let snap = tokio::task::spawn_blocking(move || {
                    ctl.lock().unwrap_or_else(|p| p.into_inner()).snapshot()
                })
                .await;
                match snap {
                    Ok(Ok(s)) => match crate::metrics::encode(s) {
                        Ok(text) => (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                crate::metrics::CONTENT_TYPE,
                            )],
                            text,
                        )
                            .into_response(),
                        Err(e) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("encoding metrics: {e}"),
                        )
                            .into_response(),
                    },
                    Ok(Err(e)) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("reading the maps: {e}"),
                    )
                        .into_response(),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("metrics task: {e}"),
                    )
                        .into_response(),
                }
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "the metrics server stopped");
        }
    }))
}
