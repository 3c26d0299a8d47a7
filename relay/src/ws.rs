//! The relay's automerge-repo WebSocket endpoint, for clients we did not write: JS
//! automerge-repo's `WebSocketClientAdapter` (browsers, Node) and samod's tungstenite dialer.
//!
//! # Rules a client must follow
//!
//! * **Token.** The bearer token goes in the URL, `ws://relay:port/?token=<token>`: the JS
//!   adapter only takes a URL (`new WebSocket(url)`; browsers cannot set headers on a WebSocket),
//!   and samod's dialer likewise. `Authorization: Bearer <token>` is accepted too. The token is
//!   checked before the upgrade; a missing or unknown token gets `401` and no WebSocket. Tokens
//!   in URLs end up in proxy logs: terminate TLS at the relay or a proxy that does not log query
//!   strings, and never log request URIs here.
//! * **Peer id.** The `senderId` of the client's `join` must be `<office>/<anything>`, where
//!   `<office>` is the office its token was issued for (e.g. `caue-63/laptop-1`; JS:
//!   `new Repo({ peerId: "caue-63/laptop-1", … })`, samod: `with_peer_id`). Any other join gets
//!   an `error` message and the connection is closed. Every later message must carry that same
//!   `senderId`, or the connection is closed as spoofing.
//! * **Writers may create documents**: a `sync` carrying changes for a document the relay lacks
//!   creates it (that is how `repo.create()` in a browser reaches the relay); a `request` for one
//!   is answered `doc-unavailable`.
//! * **Read-only offices** receive documents but their changes are never applied: the relay
//!   advertises itself as read-only in its sync messages (Automerge's `READ_ONLY` flag), logs and
//!   ignores any change they send, and answers `doc-unavailable` when they ask for a document it
//!   lacks (they cannot create one).
//!
//! # What it does
//!
//! Per connection and per document, the relay runs Automerge's sync protocol against the
//! [`DocStore`] (one `sync::State` each, dropped with the connection); received changes go
//! through [`DocStore::update`], so they persist (flushed before the relay answers) and every
//! other connection that synced that document is sent them. Every sync message passes through
//! [`atelier_core::sync_guard`]. Bad CBOR, unknown message types, oversized messages and hostile
//! sync messages close that connection only, after an `error` message and a `tracing::warn!`.
//! `ephemeral`, `remote-subscription-change` and `remote-heads-changed` are accepted and ignored:
//! the relay neither relays presence nor gossips heads.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use atelier_core::repo_wire::{
    PeerId, PeerMetadata, RepoMessage, MAX_WIRE_MESSAGE_BYTES, PROTOCOL_V1,
};
use atelier_core::store::{DocStore, StoreError};
use atelier_core::sync_guard::{self, GuardError};
// Nothing here can leave the guarded maps half-updated on a panic: poisoning is ignored.
use atelier_core::mutex::lock;
use atelier_core::DocumentId;
use automerge::sync;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::blobs::RelayBlobs;
use crate::live_access::SessionTicket;
use crate::metrics::{Direction, Kind, RelayMetrics};
use crate::quota::Quotas;

/// The peer id the relay announces in its `peer` messages.
pub const RELAY_PEER_ID: &str = "atelier-relay";
/// Most WebSocket connections at once. An office has a handful of browsers; 1,024 covers every
/// CAUE twice over, and each connection costs a task and its sync states.
pub const MAX_WS_CONNECTIONS: usize = 1024;
/// A client must send `join` this soon after the upgrade: the JS adapter sends it on `open`, so
/// anything slower is a stuck or hostile client holding a connection slot.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the client to accept one message. A client that stops reading is dropped
/// rather than letting changes queue up for it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Change notifications queued per connection. Notifications of one document coalesce, so this
/// is the number of distinct documents changed while the connection is busy; past it, the
/// client is too slow and is dropped (it reconnects and resyncs).
pub const MAX_PENDING_CHANGES: usize = 1024;
/// Documents one connection may sync. The corpus is about 100,000 documents and a sync state
/// costs a few hundred bytes, so this bounds a connection's memory to tens of MB.
pub const MAX_DOCS_PER_CONNECTION: usize = 100_000;
/// How long shutdown waits for connections to close before aborting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// WebSocket close codes (RFC 6455): going away, protocol error, policy violation, too big.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_NORMAL: u16 = 1000;

/// Decides what a bearer token grants. Implemented by the relay's in-memory access registry
/// ([`crate::live_access::LiveAccess`]); tests use a fixed table. Called on the async runtime
/// for every upgrade attempt, before any other work: it must answer from memory, never block,
/// so that a flood of bad tokens costs a hash and a compare each.
pub trait WsAuth: Send + Sync + 'static {
    /// The grant of `token`, or `None` if it is unknown, expired or revoked.
    fn authorize(&self, token: &str) -> Option<WsPeer>;

    /// Registers the live session opened with `token`; the connection closes when the ticket
    /// fires (the token was revoked or expired). Tokens that cannot be revoked never fire.
    fn session(&self, _token: &str) -> SessionTicket {
        SessionTicket::never()
    }
}

/// What a WebSocket bearer token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsPeer {
    /// The office the client acts for, e.g. `caue-63`.
    pub office: String,
    /// Whether the client may only read.
    pub read_only: bool,
}

/// Shared state of the endpoint: the store, the token check, the live connections.
#[derive(Clone)]
pub struct WsState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<DocStore>,
    auth: Arc<dyn WsAuth>,
    /// The relay's blobs, served on `GET /media/{hash}` when present.
    media: Option<RelayBlobs>,
    /// What each office may write (the relay's quotas); `None` admits everything.
    quotas: Option<Quotas>,
    hub: Arc<Hub>,
    relay_id: PeerId,
    slots: Arc<Semaphore>,
    tasks: Mutex<JoinSet<()>>,
    shutdown: watch::Sender<bool>,
    /// Where sessions, messages and refusals are counted (the relay's `/metrics`).
    metrics: OnceLock<RelayMetrics>,
}

impl WsState {
    /// Endpoint state over `store`; registers one observer on the store for live updates.
    pub fn new(store: Arc<DocStore>, auth: Arc<dyn WsAuth>) -> Self {
        Self::build(store, auth, None, None)
    }

    /// [`WsState::new`] that also serves `media`'s blobs on `GET /media/{hash}`
    /// ([`crate::media_http`]), with the same tokens.
    pub fn with_media(store: Arc<DocStore>, auth: Arc<dyn WsAuth>, media: RelayBlobs) -> Self {
        Self::build(store, auth, Some(media), None)
    }

    /// The relay's endpoint: [`WsState::with_media`], every write checked against `quotas`.
    pub fn relay(
        store: Arc<DocStore>,
        auth: Arc<dyn WsAuth>,
        media: RelayBlobs,
        quotas: Quotas,
    ) -> Self {
        Self::build(store, auth, Some(media), Some(quotas))
    }

    fn build(
        store: Arc<DocStore>,
        auth: Arc<dyn WsAuth>,
        media: Option<RelayBlobs>,
        quotas: Option<Quotas>,
    ) -> Self {
        let hub = Arc::new(Hub::default());
        let weak: Weak<Hub> = Arc::downgrade(&hub);
        store.observe(Box::new(move |id| {
            if let Some(hub) = weak.upgrade() {
                hub.notify(id);
            }
        }));
        let relay_id = PeerId::new(RELAY_PEER_ID).expect("the relay peer id is valid");
        Self {
            inner: Arc::new(Shared {
                store,
                auth,
                media,
                quotas,
                hub,
                relay_id,
                slots: Arc::new(Semaphore::new(MAX_WS_CONNECTIONS)),
                tasks: Mutex::new(JoinSet::new()),
                shutdown: watch::Sender::new(false),
                metrics: OnceLock::new(),
            }),
        }
    }

    /// Counts sessions, messages and refusals in `metrics` (set once; later calls are ignored).
    pub fn with_metrics(self, metrics: RelayMetrics) -> Self {
        let _ = self.inner.metrics.set(metrics);
        self
    }

    fn refusal(&self, reason: &'static str) {
        if let Some(m) = self.inner.metrics.get() {
            m.refusal(reason);
        }
    }

    /// Number of open WebSocket connections.
    pub fn connections(&self) -> usize {
        MAX_WS_CONNECTIONS - self.inner.slots.available_permits()
    }

    /// Closes every connection (close code 1001) and waits for their tasks, aborting those still
    /// running after [`SHUTDOWN_GRACE`]. New upgrades are refused from now on.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("websocket connections still open after the grace period, aborting");
            tasks.shutdown().await;
        }
    }

    fn spawn_connection(
        &self,
        socket: WebSocket,
        peer: WsPeer,
        ticket: SessionTicket,
        permit: OwnedSemaphorePermit,
    ) {
        if *self.inner.shutdown.borrow() {
            return;
        }
        let mut tasks = lock(&self.inner.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(run_connection(
            socket,
            peer,
            ticket,
            self.inner.clone(),
            permit,
        ));
    }
}

/// The endpoint's routes: `GET /` upgrades to an automerge-repo WebSocket; `GET /media/{hash}`
/// serves blobs when the state has them.
pub fn router(state: WsState) -> Router {
    let media = state
        .inner
        .media
        .clone()
        .map(|blobs| crate::media_http::router(blobs, state.inner.auth.clone()));
    let ws = Router::new().route("/", get(upgrade)).with_state(state);
    match media {
        Some(media) => ws.merge(media),
        None => ws,
    }
}

/// A running endpoint started by [`spawn_ws`].
pub struct WsHandle {
    local_addr: SocketAddr,
    state: WsState,
    stop: oneshot::Sender<()>,
    server: JoinSet<io::Result<()>>,
}

impl WsHandle {
    /// The address the endpoint listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every WebSocket, and waits for all of it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(());
        self.state.shutdown().await;
        while let Some(result) = self.server.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "websocket server failed"),
                Err(e) => tracing::warn!(error = %e, "websocket server task failed"),
            }
        }
    }
}

/// Binds `addr` and serves [`router`] on it until [`WsHandle::shutdown`].
pub async fn spawn_ws(addr: SocketAddr, state: WsState) -> io::Result<WsHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, state)
}

/// [`spawn_ws`] over TLS (`wss://`), presenting what `tls` resolves at each handshake (see
/// [`crate::tls_reload`]).
pub async fn spawn_wss(
    addr: SocketAddr,
    state: WsState,
    tls: Arc<rustls::ServerConfig>,
) -> io::Result<WsHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(crate::tls_reload::TlsListener::new(listener, tls)?, state)
}

fn serve_on<L>(listener: L, state: WsState) -> io::Result<WsHandle>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state.clone());
    let mut server = JoinSet::new();
    server.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%local_addr, "automerge-repo websocket endpoint listening");
    Ok(WsHandle {
        local_addr,
        state,
        stop,
        server,
    })
}

/// `?token=…`, the way browsers pass a bearer token where they cannot set headers.
#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    pub(crate) token: Option<String>,
}

async fn upgrade(
    State(state): State<WsState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let token = query.token.or_else(|| bearer(&headers));
    let Some(token) = token else {
        state.refusal("ws_missing_token");
        return (StatusCode::UNAUTHORIZED, "missing token").into_response();
    };
    // From memory, on this task: a flood of bad tokens reaches neither a file nor the
    // blocking pool.
    let Some(peer) = state.inner.auth.authorize(&token) else {
        tracing::debug!("websocket upgrade with an unknown token refused");
        state.refusal("ws_unknown_token");
        return (StatusCode::UNAUTHORIZED, "unknown token").into_response();
    };
    if *state.inner.shutdown.borrow() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Ok(permit) = state.inner.slots.clone().try_acquire_owned() else {
        tracing::warn!(office = %peer.office, "websocket connection limit reached");
        state.refusal("ws_too_many_connections");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    ws.max_message_size(MAX_WIRE_MESSAGE_BYTES)
        .max_frame_size(MAX_WIRE_MESSAGE_BYTES)
        .on_failed_upgrade(|e| tracing::warn!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let ticket = state.inner.auth.session(&token);
            state.spawn_connection(socket, peer, ticket, permit)
        })
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// Drives one connection: socket frames and change notifications in, session steps out.
async fn run_connection(
    socket: WebSocket,
    peer: WsPeer,
    mut ticket: SessionTicket,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let metrics = shared.metrics.get().cloned();
    let _session = metrics.as_ref().map(|m| m.session(Kind::Ws));
    let (conn, mut changes) = shared.hub.register();
    let mut session = Some(Session::new(
        shared.store.clone(),
        peer.clone(),
        shared.relay_id.clone(),
    ));
    if let (Some(s), Some(quotas)) = (session.as_mut(), &shared.quotas) {
        s.gate = Some(quotas.gate(&peer.office));
    }
    let mut shutdown = shared.shutdown.subscribe();
    let (mut sink, mut stream) = socket.split();
    let join_deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    tracing::debug!(office = %peer.office, "websocket connection open");

    let close: Option<(u16, String)> = loop {
        let joined = session.as_ref().is_some_and(Session::joined);
        let work = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break Some((CLOSE_GOING_AWAY, "relay shutting down".into())),
            _ = ticket.revoked() => {
                tracing::info!(office = %peer.office, "closing a websocket whose token was revoked or expired");
                break Some((CLOSE_POLICY, crate::live_access::REVOKED_REASON.into()));
            }
            _ = tokio::time::sleep_until(join_deadline), if !joined => {
                let reason = "no join message in time".to_string();
                tracing::warn!(office = %peer.office, %reason, "closing websocket");
                break Some((CLOSE_POLICY, reason));
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(m) = &metrics {
                        m.frame(Kind::Ws, Direction::In, bytes.len());
                    }
                    Work::Frame(bytes.to_vec())
                }
                Some(Ok(Message::Text(_))) => Work::Frame(Vec::new()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(e)) => {
                    tracing::debug!(office = %peer.office, error = %e, "websocket read failed");
                    break None;
                }
            },
            changed = changes.recv() => match changed {
                Some(doc) => {
                    let mut docs = HashSet::from([doc]);
                    while let Ok(doc) = changes.try_recv() {
                        docs.insert(doc);
                    }
                    Work::Changed(docs)
                }
                None => {
                    let reason = "client too slow, dropped".to_string();
                    tracing::warn!(office = %peer.office, %reason, "closing websocket");
                    break Some((CLOSE_POLICY, reason));
                }
            },
        };

        // Automerge and the store block: run them on the blocking pool, session and all.
        let Some(mut s) = session.take() else {
            break None;
        };
        let result = tokio::task::spawn_blocking(move || {
            let steps = match work {
                Work::Frame(bytes) => s.handle_frame(&bytes),
                Work::Changed(docs) => s.handle_changed(docs),
            };
            (s, steps)
        })
        .await;
        let steps = match result {
            Ok((s, steps)) => {
                session = Some(s);
                steps
            }
            Err(e) => {
                tracing::error!(office = %peer.office, error = %e, "websocket session failed");
                break Some((CLOSE_POLICY, "internal error".into()));
            }
        };
        match apply(steps, conn, &shared.hub, &mut sink, metrics.as_ref()).await {
            Ok(None) => {}
            Ok(Some(close)) => break Some(close),
            Err(()) => break None,
        }
    };

    shared.hub.unregister(conn);
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
    tracing::debug!(office = %peer.office, "websocket connection closed");
}

enum Work {
    Frame(Vec<u8>),
    Changed(HashSet<DocumentId>),
}

/// Sends a session's steps; `Ok(Some(close))` when the session asks to close, `Err` when the
/// client cannot be written to.
async fn apply(
    steps: Vec<Step>,
    conn: u64,
    hub: &Hub,
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    metrics: Option<&RelayMetrics>,
) -> Result<Option<(u16, String)>, ()> {
    for step in steps {
        match step {
            Step::Subscribe(doc) => hub.subscribe(conn, doc),
            Step::Send(msg) => {
                let bytes = msg.encode();
                if let Some(m) = metrics {
                    m.frame(Kind::Ws, Direction::Out, bytes.len());
                }
                let frame = Message::Binary(bytes.into());
                match tokio::time::timeout(SEND_TIMEOUT, sink.send(frame)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(()),
                    Err(_) => {
                        tracing::warn!("websocket client not reading, dropped");
                        return Err(());
                    }
                }
            }
            Step::Close { code, reason } => return Ok(Some((code, reason))),
        }
    }
    Ok(None)
}

/// What a session asks its connection to do, in order.
#[derive(Debug, PartialEq)]
enum Step {
    Send(RepoMessage),
    /// Send this connection the document's future changes.
    Subscribe(DocumentId),
    Close {
        code: u16,
        reason: String,
    },
}

/// Errors of one sync round; every one closes the connection.
#[derive(Debug, Error)]
enum SessionError {
    /// The peer's sync message was refused, or Automerge failed on it.
    #[error("{0}")]
    Guard(#[from] GuardError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The automerge-repo protocol of one connection, without I/O: frames in, steps out.
struct Session {
    store: Arc<DocStore>,
    /// What this office may write; a refused message's changes are dropped, the rest goes on.
    gate: Option<Arc<dyn atelier_core::change_gate::ChangeGate>>,
    peer: WsPeer,
    relay_id: PeerId,
    client: Option<PeerId>,
    docs: HashMap<DocumentId, sync::State>,
}

impl Session {
    fn new(store: Arc<DocStore>, peer: WsPeer, relay_id: PeerId) -> Self {
        Self {
            store,
            gate: None,
            peer,
            relay_id,
            client: None,
            docs: HashMap::new(),
        }
    }

    fn joined(&self) -> bool {
        self.client.is_some()
    }

    fn handle_frame(&mut self, bytes: &[u8]) -> Vec<Step> {
        let msg = match RepoMessage::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => return self.fail(format!("invalid message: {e}")),
        };
        let Some(client) = self.client.clone() else {
            return match msg {
                RepoMessage::Join {
                    sender_id,
                    supported_protocol_versions,
                    ..
                } => self.handle_join(sender_id, &supported_protocol_versions),
                other => self.fail(format!("expected join, got {}", other.message_type())),
            };
        };
        if let Some(sender) = msg.sender_id() {
            if *sender != client {
                return self.fail(format!("senderId {sender} is not the joined peer {client}"));
            }
        }
        match msg {
            RepoMessage::Join { .. } => vec![Step::Send(self.peer_message(&client))],
            RepoMessage::Request {
                document_id, data, ..
            } => self.handle_sync(document_id, &data, true),
            RepoMessage::Sync {
                document_id, data, ..
            } => self.handle_sync(document_id, &data, false),
            RepoMessage::Leave { .. } => {
                vec![Step::Close {
                    code: CLOSE_NORMAL,
                    reason: "leave".into(),
                }]
            }
            RepoMessage::Error { message, .. } => {
                tracing::info!(office = %self.peer.office, %client, %message, "client reported an error");
                vec![Step::Close {
                    code: CLOSE_NORMAL,
                    reason: "client error".into(),
                }]
            }
            RepoMessage::Peer { .. } => self.fail("unexpected peer message".into()),
            RepoMessage::DocUnavailable { .. }
            | RepoMessage::Ephemeral { .. }
            | RepoMessage::RemoteSubscriptionChange { .. }
            | RepoMessage::RemoteHeadsChanged { .. } => {
                tracing::debug!(office = %self.peer.office, kind = msg.message_type(), "ignored");
                Vec::new()
            }
        }
    }

    /// Changed documents this connection syncs: send each its next sync message.
    fn handle_changed(&mut self, docs: HashSet<DocumentId>) -> Vec<Step> {
        let mut steps = Vec::new();
        for id in docs {
            match self.push(id) {
                Ok(Some(step)) => steps.push(step),
                Ok(None) => {}
                Err(e) => return self.fail(format!("document {}: {e}", id.to_base58())),
            }
        }
        steps
    }

    fn handle_join(&mut self, sender: PeerId, versions: &[String]) -> Vec<Step> {
        let prefix = format!("{}/", self.peer.office);
        if !sender.as_str().starts_with(&prefix) || sender.as_str().len() == prefix.len() {
            return self.fail(format!(
                "peer id {sender} must be {prefix}<device> for this token"
            ));
        }
        if !versions.iter().any(|v| v == PROTOCOL_V1) {
            return self.fail("unsupported protocol version".into());
        }
        tracing::info!(office = %self.peer.office, peer = %sender, read_only = self.peer.read_only, "websocket peer joined");
        self.client = Some(sender.clone());
        vec![Step::Send(self.peer_message(&sender))]
    }

    fn peer_message(&self, client: &PeerId) -> RepoMessage {
        RepoMessage::Peer {
            sender_id: self.relay_id.clone(),
            target_id: client.clone(),
            selected_protocol_version: PROTOCOL_V1.into(),
            peer_metadata: Some(PeerMetadata {
                storage_id: None,
                is_ephemeral: false,
            }),
        }
    }

    fn handle_sync(&mut self, id: DocumentId, data: &[u8], is_request: bool) -> Vec<Step> {
        match self.sync_round(id, data, is_request) {
            Ok(steps) => steps,
            Err(e) => self.fail(format!("document {}: {e}", id.to_base58())),
        }
    }

    fn sync_round(
        &mut self,
        id: DocumentId,
        data: &[u8],
        is_request: bool,
    ) -> Result<Vec<Step>, SessionError> {
        let mut msg = sync_guard::decode_sync_message(data)?;
        if let Some(gate) = self.gate.as_ref().filter(|_| !self.peer.read_only) {
            let chunks: Vec<&[u8]> = msg.changes.iter().collect();
            if !chunks.is_empty() && gate.admit(&id, &chunks).is_err() {
                // Logged by the gate; the client keeps its changes and its other documents.
                msg.changes = automerge::sync::ChunkList::empty();
            }
        }
        let mut steps = Vec::new();
        if !self.docs.contains_key(&id) {
            if self.docs.len() >= MAX_DOCS_PER_CONNECTION {
                return Err(GuardError::Malformed("too many documents on one connection").into());
            }
            let state = if self.peer.read_only {
                sync::State::new_read_only()
            } else {
                sync::State::new()
            };
            self.docs.insert(id, state);
            steps.push(Step::Subscribe(id));
        }
        // A request for a document we lack, or anything from a read-only office about one:
        // nothing to sync. The subscription stays, so the document is sent if it appears.
        if !self.store.contains(&id)? && (is_request || self.peer.read_only) {
            steps.push(Step::Send(RepoMessage::DocUnavailable {
                sender_id: self.relay_id.clone(),
                target_id: self.client_id(),
                document_id: id,
            }));
            return Ok(steps);
        }
        let state = self.docs.get_mut(&id).expect("inserted above");
        let reply = if self.peer.read_only {
            if !msg.changes.is_empty() {
                tracing::warn!(office = %self.peer.office, doc = %id.to_base58(), "changes from a read-only office ignored");
            }
            let mut doc = self.store.load(&id)?.unwrap_or_default();
            sync_guard::receive_sync_message(&mut doc, state, msg)?;
            sync_guard::generate_sync_message(&mut doc, state)?
        } else {
            let (reply, written) = self.store.update(&id, |doc, _| {
                sync_guard::receive_sync_message(doc, state, msg)?;
                Ok::<_, SessionError>(sync_guard::generate_sync_message(doc, state)?)
            })?;
            if written.changed {
                // Our answer acknowledges the change: it must be on disk first.
                self.store.flush()?;
            }
            reply
        };
        if let Some(reply) = reply {
            steps.push(self.sync_step(id, reply));
        }
        Ok(steps)
    }

    /// The next sync message of a document this connection syncs, if it has anything new.
    fn push(&mut self, id: DocumentId) -> Result<Option<Step>, SessionError> {
        let Some(state) = self.docs.get_mut(&id) else {
            return Ok(None);
        };
        let Some(mut doc) = self.store.load(&id)? else {
            return Ok(None);
        };
        let reply = sync_guard::generate_sync_message(&mut doc, state)?;
        Ok(reply.map(|m| self.sync_step(id, m)))
    }

    fn sync_step(&self, id: DocumentId, msg: sync::Message) -> Step {
        Step::Send(RepoMessage::Sync {
            sender_id: self.relay_id.clone(),
            target_id: self.client_id(),
            document_id: id,
            data: msg.encode(),
        })
    }

    fn client_id(&self) -> PeerId {
        self.client.clone().unwrap_or_else(|| self.relay_id.clone())
    }

    /// Refuses the connection: an `error` message, then close.
    fn fail(&self, reason: String) -> Vec<Step> {
        tracing::warn!(office = %self.peer.office, peer = ?self.client.as_ref().map(PeerId::as_str), %reason, "closing websocket");
        vec![
            Step::Send(RepoMessage::Error {
                sender_id: Some(self.relay_id.clone()),
                target_id: self.client.clone(),
                message: reason.clone(),
            }),
            Step::Close {
                code: CLOSE_POLICY,
                reason: truncate(reason),
            },
        ]
    }
}

/// A close frame's reason must fit in 123 bytes.
fn truncate(mut reason: String) -> String {
    const MAX_CLOSE_REASON: usize = 123;
    if reason.len() > MAX_CLOSE_REASON {
        let mut cut = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

/// Routes store change notifications to the connections that sync each document.
#[derive(Default)]
struct Hub {
    next: AtomicU64,
    inner: Mutex<HubInner>,
}

#[derive(Default)]
struct HubInner {
    senders: HashMap<u64, mpsc::Sender<DocumentId>>,
    by_doc: HashMap<DocumentId, HashSet<u64>>,
    docs_of: HashMap<u64, Vec<DocumentId>>,
}

impl Hub {
    fn register(&self) -> (u64, mpsc::Receiver<DocumentId>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(MAX_PENDING_CHANGES);
        lock(&self.inner).senders.insert(id, tx);
        (id, rx)
    }

    fn subscribe(&self, conn: u64, doc: DocumentId) {
        let mut inner = lock(&self.inner);
        if !inner.senders.contains_key(&conn) {
            return;
        }
        if inner.by_doc.entry(doc).or_default().insert(conn) {
            inner.docs_of.entry(conn).or_default().push(doc);
        }
    }

    fn unregister(&self, conn: u64) {
        let mut inner = lock(&self.inner);
        inner.remove(conn);
    }

    /// Called by the store after every change; never blocks. A connection whose queue is full
    /// loses its sender, which makes it close.
    fn notify(&self, doc: &DocumentId) {
        let mut inner = lock(&self.inner);
        let Some(conns) = inner.by_doc.get(doc) else {
            return;
        };
        let mut dropped = Vec::new();
        for conn in conns {
            if let Some(tx) = inner.senders.get(conn) {
                if tx.try_send(*doc).is_err() {
                    dropped.push(*conn);
                }
            }
        }
        for conn in dropped {
            inner.remove(conn);
        }
    }
}

impl HubInner {
    fn remove(&mut self, conn: u64) {
        self.senders.remove(&conn);
        for doc in self.docs_of.remove(&conn).unwrap_or_default() {
            if let Some(conns) = self.by_doc.get_mut(&doc) {
                conns.remove(&conn);
                if conns.is_empty() {
                    self.by_doc.remove(&doc);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ReadDoc};

    fn session(read_only: bool) -> (Arc<DocStore>, Session) {
        let store = Arc::new(DocStore::in_memory());
        let peer = WsPeer {
            office: "caue-63".into(),
            read_only,
        };
        let relay = PeerId::new(RELAY_PEER_ID).unwrap();
        (store.clone(), Session::new(store, peer, relay))
    }

    fn join(sender: &str) -> Vec<u8> {
        RepoMessage::Join {
            sender_id: PeerId::new(sender).unwrap(),
            supported_protocol_versions: vec![PROTOCOL_V1.into()],
            peer_metadata: None,
        }
        .encode()
    }

    fn sync_frame(sender: &str, doc: DocumentId, msg: sync::Message, request: bool) -> Vec<u8> {
        let (sender_id, target_id) = (
            PeerId::new(sender).unwrap(),
            PeerId::new(RELAY_PEER_ID).unwrap(),
        );
        let data = msg.encode();
        if request {
            RepoMessage::Request {
                sender_id,
                target_id,
                document_id: doc,
                data,
            }
            .encode()
        } else {
            RepoMessage::Sync {
                sender_id,
                target_id,
                document_id: doc,
                data,
            }
            .encode()
        }
    }

    fn is_close(steps: &[Step]) -> bool {
        matches!(steps.last(), Some(Step::Close { .. }))
    }

    fn sent_sync(steps: &[Step]) -> Option<sync::Message> {
        steps.iter().find_map(|s| match s {
            Step::Send(RepoMessage::Sync { data, .. }) => {
                Some(sync::Message::decode(data).unwrap())
            }
            _ => None,
        })
    }

    /// Runs a client document against the session until neither side has anything to say.
    fn converge(s: &mut Session, client: &mut AutoCommit, doc: DocumentId, request: bool) {
        let mut state = sync::State::new();
        let mut first = request;
        for _ in 0..10 {
            let Some(msg) = sync_guard::generate_sync_message(client, &mut state).unwrap() else {
                return;
            };
            let steps = s.handle_frame(&sync_frame("caue-63/a", doc, msg, first));
            first = false;
            assert!(!is_close(&steps), "{steps:?}");
            if let Some(reply) = sent_sync(&steps) {
                sync_guard::receive_sync_message(client, &mut state, reply).unwrap();
            }
        }
    }

    #[test]
    fn join_must_carry_the_token_office() {
        let (_, mut s) = session(false);
        assert!(is_close(&s.handle_frame(&join("caue-15/a"))));
        let (_, mut s) = session(false);
        assert!(is_close(&s.handle_frame(&join("caue-63/"))));
        let (_, mut s) = session(false);
        assert!(is_close(&s.handle_frame(&join("caue-630/a"))));
        let (_, mut s) = session(false);
        let steps = s.handle_frame(&join("caue-63/a"));
        assert!(
            matches!(&steps[..], [Step::Send(RepoMessage::Peer { .. })]),
            "{steps:?}"
        );
    }

    #[test]
    fn messages_before_join_spoofed_or_garbage_close() {
        let doc = DocumentId::derived("x");
        let msg = AutoCommit::new()
            .sync()
            .generate_sync_message(&mut sync::State::new())
            .unwrap();
        let (_, mut s) = session(false);
        assert!(is_close(&s.handle_frame(&sync_frame(
            "caue-63/a",
            doc,
            msg.clone(),
            true
        ))));
        let (_, mut s) = session(false);
        s.handle_frame(&join("caue-63/a"));
        assert!(is_close(&s.handle_frame(&sync_frame(
            "caue-63/b",
            doc,
            msg,
            true
        ))));
        let (_, mut s) = session(false);
        s.handle_frame(&join("caue-63/a"));
        let steps = s.handle_frame(b"\xff\xff");
        assert!(matches!(&steps[0], Step::Send(RepoMessage::Error { .. })));
        assert!(is_close(&steps));
    }

    #[test]
    fn hostile_sync_message_closes_the_connection() {
        let (store, mut s) = session(false);
        let doc = DocumentId::derived("h");
        store
            .update(&doc, |d, _| {
                d.put(automerge::ROOT, "a", 1).map_err(StoreError::from)
            })
            .unwrap();
        s.handle_frame(&join("caue-63/a"));
        let bytes = [0x42, 0x00, 0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01, 0x00];
        let frame = RepoMessage::Sync {
            sender_id: PeerId::new("caue-63/a").unwrap(),
            target_id: PeerId::new(RELAY_PEER_ID).unwrap(),
            document_id: doc,
            data: bytes.to_vec(),
        };
        assert!(is_close(&s.handle_frame(&frame.encode())));
    }

    #[test]
    fn request_for_a_missing_document_is_unavailable() {
        let (_, mut s) = session(false);
        s.handle_frame(&join("caue-63/a"));
        let doc = DocumentId::derived("missing");
        let msg = AutoCommit::new()
            .sync()
            .generate_sync_message(&mut sync::State::new())
            .unwrap();
        let steps = s.handle_frame(&sync_frame("caue-63/a", doc, msg, true));
        assert!(steps
            .iter()
            .any(|s| matches!(s, Step::Send(RepoMessage::DocUnavailable { .. }))));
    }

    #[test]
    fn writer_changes_are_stored_and_reader_changes_ignored() {
        let doc = DocumentId::derived("w");
        let (store, mut s) = session(false);
        s.handle_frame(&join("caue-63/a"));
        let mut client = AutoCommit::new();
        client.put(automerge::ROOT, "titre", "Maison").unwrap();
        converge(&mut s, &mut client, doc, false);
        let stored = store.load(&doc).unwrap().unwrap();
        assert!(stored.get(automerge::ROOT, "titre").unwrap().is_some());

        let (store, mut s) = session(true);
        store
            .update(&doc, |d, _| {
                d.put(automerge::ROOT, "titre", "Relais")
                    .map_err(StoreError::from)
            })
            .unwrap();
        s.handle_frame(&join("caue-63/a"));
        let mut reader = AutoCommit::new();
        converge(&mut s, &mut reader, doc, true);
        let (v, _) = reader.get(automerge::ROOT, "titre").unwrap().unwrap();
        assert_eq!(
            v.into_string().unwrap(),
            "Relais",
            "a read-only office still reads"
        );
        // A client that ignores the relay's read-only flag and pushes its change anyway.
        reader.put(automerge::ROOT, "titre", "Pirate").unwrap();
        reader.commit();
        let change = reader.get_last_local_change().unwrap().raw_bytes().to_vec();
        let forced = sync::Message {
            heads: reader.get_heads(),
            need: vec![],
            have: vec![],
            changes: vec![change].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let steps = s.handle_frame(&sync_frame("caue-63/a", doc, forced, false));
        assert!(!is_close(&steps), "{steps:?}");
        let stored = store.load(&doc).unwrap().unwrap();
        let (v, _) = stored.get(automerge::ROOT, "titre").unwrap().unwrap();
        assert_eq!(v.into_string().unwrap(), "Relais");
    }

    #[test]
    fn full_queue_drops_the_subscriber() {
        let hub = Hub::default();
        let (conn, mut rx) = hub.register();
        let doc = DocumentId::derived("q");
        hub.subscribe(conn, doc);
        for _ in 0..=MAX_PENDING_CHANGES {
            hub.notify(&doc);
        }
        let mut received = 0;
        while rx.try_recv().is_ok() {
            received += 1;
        }
        assert_eq!(received, MAX_PENDING_CHANGES);
        assert!(rx.try_recv().is_err());
        assert!(lock(&hub.inner).senders.is_empty());
    }
}
