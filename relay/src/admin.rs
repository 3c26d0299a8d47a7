//! The relay's admin listener (`admin_listen` in `relay.toml`, loopback by default): what an
//! operator's tools ask a running relay.
//!
//! * `GET /metrics` — [`crate::metrics`], OpenMetrics text (Prometheus scrapes it as is).
//! * `GET /healthz` — `200 ok` while the process serves HTTP at all (liveness).
//! * `GET /readyz` — `200 ready` while the relay accepts work and its store answers a read;
//!   `503` while it starts, drains or shuts down (a load balancer or orchestrator stops sending
//!   offices here first).
//! * `GET /backup` — a consistent snapshot of the relay ([`crate::backup`]), streamed; only with
//!   the bearer token of `<data_dir>/admin-token` (0600), so only someone who can read the
//!   relay's data directory can copy its identity through this port.
//!
//! No other route; nothing here writes to the relay.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use atelier_core::store::DocStore;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::live_access::LiveAccess;
use crate::metrics::{RelayMetrics, CONTENT_TYPE};

/// The admin token's file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// Bytes of randomness in the admin token: 256 bits, like the WebSocket tokens.
const ADMIN_TOKEN_BYTES: usize = 32;

/// What the admin routes read.
#[derive(Clone)]
pub struct AdminState {
    /// The relay's metrics.
    pub metrics: RelayMetrics,
    /// The relay's documents.
    pub store: Arc<DocStore>,
    /// The access registry in memory (enrolled devices).
    pub access: LiveAccess,
    /// The relay's data directory (the store's size on disk, backups).
    pub data_dir: PathBuf,
    /// Whether the relay accepts work (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// The bearer token `/backup` asks for.
    pub token: Arc<str>,
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/backup", get(backup))
        .with_state(state)
}

/// A running admin listener.
pub struct AdminHandle {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinSet<io::Result<()>>,
}

impl AdminHandle {
    /// Where the listener answers (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the listener once its requests in flight are answered.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(());
        while let Some(result) = self.server.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "admin listener failed");
            }
        }
    }
}

/// Binds `addr` and serves [`router`] on it until [`AdminHandle::shutdown`].
pub async fn spawn(addr: SocketAddr, state: AdminState) -> io::Result<AdminHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state);
    let mut server = JoinSet::new();
    server.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%local_addr, "admin listener (metrics, health, backup) listening");
    Ok(AdminHandle {
        local_addr,
        stop,
        server,
    })
}

/// The admin token of `data_dir`, made (0600) on first use.
pub fn load_or_create_token(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; ADMIN_TOKEN_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let token = hex::encode(bytes);
    atelier_core::fs::write_atomic(&path, format!("{token}\n").as_bytes(), Some(0o600))?;
    Ok(token)
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let devices = state
        .access
        .registry()
        .devices()
        .filter(|d| !d.revoked)
        .count();
    let store = state.store.clone();
    let dir = state.data_dir.join(crate::relay::STORE_DIR);
    // Counting documents walks the heads index: off the async threads.
    let holdings = tokio::task::spawn_blocking(move || (store.len(), dir_size(&dir))).await;
    match holdings {
        Ok((Ok(documents), bytes)) => state.metrics.set_holdings(devices, documents, bytes),
        Ok((Err(e), _)) => tracing::warn!(error = %e, "counting documents for metrics"),
        Err(e) => tracing::warn!(error = %e, "counting documents for metrics"),
    }
    state.metrics.set_ready(state.ready.load(Ordering::Acquire));
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if !state.ready.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting or shutting down\n",
        )
            .into_response();
    }
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || store.kv().get(b"m/readyz")).await;
    match read {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: store error\n").into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
        }
    }
}

async fn backup(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let given = crate::ws::bearer(&headers).unwrap_or_default();
    let expected = state.token.as_bytes();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected)) {
        return (StatusCode::UNAUTHORIZED, "admin token required\n").into_response();
    }
    match crate::backup::stream(state.store.clone(), state.data_dir.clone()) {
        Ok(stream) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from_stream(stream),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "starting a backup");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("backup failed: {e}\n"),
            )
                .into_response()
        }
    }
}

/// Bytes of the files directly in `dir` and below (sled keeps a handful of files), 0 if absent.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
