//! The QUIC server: accepts connections, runs the enrolment or `Hello` handshake, and hands each
//! authenticated connection to a pluggable [`ConnectionHandler`].
//!
//! The same server runs the relay (authorization by the [`AccessStore`]) and an office replica
//! serving its peers directly (authorization by a list of [`PinnedPeers`]): the difference is
//! the [`Authorizer`]. Whatever a peer sends, and whatever the handler does, only that peer's
//! connection is affected: malformed frames, timeouts, handler errors and handler panics close
//! that connection with a [`CloseCode`] and a reason, and are logged with `tracing::warn!`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use quinn::{Connection, ConnectionError, Endpoint, Incoming};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, warn};

use crate::access::{AccessError, AccessStore, Device};
use crate::admission::{Admission, Decision, Limits};
use crate::framing::{FrameError, FramedStream};
use crate::handshake::{ClientHandshake, CloseCode, ServerHandshake, MAX_HANDSHAKE_FRAME_SIZE};
use crate::identity::{Fingerprint, Identity};
use crate::metrics::{Kind, RelayMetrics};
use crate::reset_key::ResetKey;
use crate::transport::{self, TransportError};

/// Default cap on simultaneous connections, handshaking ones included (a share of it is kept
/// for enrolled identities and handshakes are validated with a Retry under load, see
/// [`crate::admission`]). The ~90 CAUE offices
/// with a few devices each make a few hundred; 512 leaves headroom. It also bounds memory: an
/// unauthenticated connection buffers at most a handshake frame and quinn's connection window
/// ([`crate::transport::CONNECTION_RECEIVE_WINDOW`], 4 MiB); an authenticated sync connection
/// at most [`crate::sync_conn::MAX_CONNECTION_MEMORY`] (92 MiB, with a peer that sends maximal
/// frames and never reads), so 512 enrolled devices doing that at once could reach ~46 GiB,
/// and ordinary syncs a few MB each. Configurable.
pub const MAX_CONNECTIONS: usize = 512;

/// Time allowed from the first packet to the end of the handshake (TLS, then `Join` or
/// `Hello`). A few round trips even over a bad satellite link (~600 ms RTT) fit in well under
/// ten seconds, and a silent peer holds a connection slot no longer than that.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server waits for the peer to acknowledge its last handshake frame, or to close
/// after its handler finished, before closing the connection itself. Closing at once could drop
/// that frame; two seconds is many round trips on any link an office has.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How long [`ServerHandle::shutdown`] waits for connection tasks to end after their
/// connections were closed, before aborting them. Closing a connection wakes every read, so
/// this is only reached by a handler that ignores its stream.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Longest reason string sent with a close. quinn would truncate to fit a packet anyway; a
/// fixed bound keeps what a handler's error message can put on the wire predictable.
pub const MAX_CLOSE_REASON: usize = 256;

/// An authenticated peer, as handed to the [`ConnectionHandler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Fingerprint of the peer's certificate.
    pub fingerprint: Fingerprint,
    /// The office it acts for, e.g. `caue-15`.
    pub office: String,
    /// Whether it may only read.
    pub read_only: bool,
}

/// What runs on an authenticated connection: the sync engine, in production.
///
/// The stream has exchanged the handshake and carries only the handler's frames from now on;
/// the connection is given too, for the further streams the peer opens (media, see
/// [`crate::media_sync`]). When the returned future ends, the server waits up to [`CLOSE_LINGER`] for the peer to close,
/// then closes the connection: finish the stream (and await `stream.send.stopped()`) first if
/// the last frames matter. An error or a panic closes this connection only.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves one peer.
    fn handle(
        &self,
        peer: Peer,
        stream: FramedStream,
        connection: Connection,
    ) -> BoxFuture<'static, anyhow::Result<()>>;
}

impl<F> ConnectionHandler for F
where
    F: Fn(Peer, FramedStream, Connection) -> BoxFuture<'static, anyhow::Result<()>>
        + Send
        + Sync
        + 'static,
{
    fn handle(
        &self,
        peer: Peer,
        stream: FramedStream,
        connection: Connection,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        self(peer, stream, connection)
    }
}

/// Why an [`Authorizer`] said no.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The peer may not connect; the reason is sent to it.
    #[error("{0}")]
    Refused(String),
    /// The authorizer itself failed (its storage, typically); the peer is told only that the
    /// server had an internal error, and the details are logged.
    #[error("authorization failed")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Decides who may connect. Methods may block on I/O: the server calls them on the blocking
/// thread pool.
pub trait Authorizer: Send + Sync + 'static {
    /// The peer, if the certificate with this fingerprint may open a session now.
    fn authorize(&self, fingerprint: &Fingerprint, now: OffsetDateTime) -> Result<Peer, AuthError>;

    /// Enrols the certificate with this fingerprint using a one-time token.
    fn enrol(
        &self,
        token: &str,
        fingerprint: &Fingerprint,
        now: OffsetDateTime,
    ) -> Result<Peer, AuthError>;
}

/// The relay's authorizer: devices enrolled in its access registry, read from the file at each
/// connection (the running relay answers from memory instead: `LiveAccess`).
impl Authorizer for AccessStore {
    fn authorize(
        &self,
        fingerprint: &Fingerprint,
        _now: OffsetDateTime,
    ) -> Result<Peer, AuthError> {
        let found = self
            .read(|registry| registry.authorize(fingerprint))
            .map_err(|e| AuthError::Internal(Box::new(e)))?;
        authorized(found)
    }

    fn enrol(
        &self,
        token: &str,
        fingerprint: &Fingerprint,
        now: OffsetDateTime,
    ) -> Result<Peer, AuthError> {
        enrolled(self.update(|registry| registry.redeem(token, fingerprint, now)))
    }
}

/// The peer a registry's `authorize` answer admits, or why not.
pub(crate) fn authorized(found: Result<Device, AccessError>) -> Result<Peer, AuthError> {
    let device = found.map_err(|e| match e {
        AccessError::UnknownDevice(_) => {
            AuthError::Refused("this device is not enrolled on this relay".into())
        }
        AccessError::DeviceRevoked(_) => AuthError::Refused("this device has been revoked".into()),
        other => AuthError::Internal(Box::new(other)),
    })?;
    Ok(Peer::of(device))
}

/// The peer an enrolment (`redeem` of a token) admits, or why not.
pub(crate) fn enrolled(redeemed: Result<Device, AccessError>) -> Result<Peer, AuthError> {
    let device = redeemed.map_err(|e| match e {
        AccessError::Io { .. }
        | AccessError::Corrupt { .. }
        | AccessError::UnsupportedVersion { .. } => AuthError::Internal(Box::new(e)),
        refusal => AuthError::Refused(refusal.to_string()),
    })?;
    Ok(Peer::of(device))
}

impl Peer {
    fn of(device: Device) -> Self {
        Self {
            fingerprint: device.fingerprint,
            office: device.office,
            read_only: device.read_only,
        }
    }
}

/// Peer-to-peer authorizer: a fixed list of pinned peers (an office replica serving its own
/// devices or another office). Enrolment is not offered.
#[derive(Debug, Clone, Default)]
pub struct PinnedPeers {
    peers: HashMap<Fingerprint, Peer>,
}

impl PinnedPeers {
    /// Authorizes exactly these peers.
    pub fn new(peers: impl IntoIterator<Item = Peer>) -> Self {
        Self {
            peers: peers.into_iter().map(|p| (p.fingerprint, p)).collect(),
        }
    }
}

impl Authorizer for PinnedPeers {
    fn authorize(
        &self,
        fingerprint: &Fingerprint,
        _now: OffsetDateTime,
    ) -> Result<Peer, AuthError> {
        self.peers
            .get(fingerprint)
            .cloned()
            .ok_or_else(|| AuthError::Refused("this device is not a pinned peer".into()))
    }

    fn enrol(&self, _: &str, _: &Fingerprint, _: OffsetDateTime) -> Result<Peer, AuthError> {
        Err(AuthError::Refused(
            "this peer does not accept enrolment; enrol with the relay".into(),
        ))
    }
}

/// Everything [`spawn`] needs.
pub struct ServerConfig {
    /// The server's own identity; clients pin its fingerprint.
    pub identity: Identity,
    /// Address to listen on (port 0 picks a free port, see [`ServerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Cap on simultaneous connections; further ones are refused at once, and handshakes are
    /// admitted within it as [`crate::admission::Limits::for_max`] says. Default
    /// [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Time allowed for the TLS handshake and the first frame. Default [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// Who may connect.
    pub authorizer: Arc<dyn Authorizer>,
    /// What runs on each authenticated connection.
    pub handler: Arc<dyn ConnectionHandler>,
    /// The key of stateless resets, kept across restarts by a relay (see
    /// [`crate::reset_key`]); `None` draws one for this run. Default `None`.
    pub reset_key: Option<ResetKey>,
    /// Where refusals and sessions are counted (the relay's `/metrics`). Default `None`.
    pub metrics: Option<RelayMetrics>,
}

impl ServerConfig {
    /// A configuration with the default limits.
    pub fn new(
        identity: Identity,
        listen: SocketAddr,
        authorizer: Arc<dyn Authorizer>,
        handler: Arc<dyn ConnectionHandler>,
    ) -> Self {
        Self {
            identity,
            listen,
            max_connections: MAX_CONNECTIONS,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            authorizer,
            handler,
            reset_key: None,
            metrics: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("identity", &self.identity)
            .field("listen", &self.listen)
            .field("max_connections", &self.max_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The endpoint could not be created.
    #[error("cannot start the quic server")]
    Transport(#[from] TransportError),
    /// The socket's address could not be read back.
    #[error("cannot read the server's local address")]
    LocalAddr(#[source] std::io::Error),
}

/// A running server. Dropping it aborts the server; [`ServerHandle::shutdown`] stops it
/// gracefully.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    fingerprint: Fingerprint,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's certificate fingerprint, which clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Stops accepting, closes every connection with [`CloseCode::ShuttingDown`], and waits for
    /// every connection task to end (aborting those still running after [`SHUTDOWN_GRACE`]).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the accept loop already ended; the join below is all that is left.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                warn!("server task ended abnormally: {e}");
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds the endpoint and starts the accept loop. Must be called within a tokio runtime.
pub fn spawn(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    let endpoint = transport::server_endpoint_with(
        &config.identity,
        config.listen,
        config.reset_key.as_ref(),
    )?;
    let local_addr = endpoint.local_addr().map_err(ServerError::LocalAddr)?;
    let fingerprint = config.identity.fingerprint();
    let (stop_tx, stop_rx) = oneshot::channel();
    let ctx = Arc::new(Context {
        fingerprint,
        handshake_timeout: config.handshake_timeout,
        authorizer: config.authorizer,
        handler: config.handler,
        metrics: config.metrics,
    });
    let task = tokio::spawn(accept_loop(endpoint, ctx, config.max_connections, stop_rx));
    info!(%local_addr, %fingerprint, "quic server listening");
    Ok(ServerHandle {
        local_addr,
        fingerprint,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// What every connection task shares.
struct Context {
    fingerprint: Fingerprint,
    handshake_timeout: Duration,
    authorizer: Arc<dyn Authorizer>,
    handler: Arc<dyn ConnectionHandler>,
    metrics: Option<RelayMetrics>,
}

impl Context {
    fn refusal(&self, reason: &'static str) {
        if let Some(m) = &self.metrics {
            m.refusal(reason);
        }
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    ctx: Arc<Context>,
    max_connections: usize,
    mut stop: oneshot::Receiver<()>,
) {
    let admission = Arc::new(Mutex::new(Admission::new(Limits::for_max(max_connections))));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_task_end(done),
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                while let Some(done) = tasks.try_join_next() {
                    log_task_end(done);
                }
                let remote = incoming.remote_address();
                match admit(remote, incoming.remote_address_validated(), &admission) {
                    Ok(slot) => {
                        tasks.spawn(serve_connection(incoming, slot, ctx.clone()));
                    }
                    Err(Decision::Refuse(why)) => {
                        warn!(%remote, max_connections, "connection refused: {}", why.as_str());
                        ctx.refusal(why.metric());
                        incoming.refuse();
                    }
                    Err(_) => {
                        // A spoofed source never sees the token, so it never holds a slot.
                        debug!(%remote, "handshakes piling up: address validation asked");
                        if let Err(e) = incoming.retry() {
                            e.into_incoming().refuse();
                        }
                    }
                }
            }
        }
    }
    endpoint.set_server_config(None);
    endpoint.close(CloseCode::ShuttingDown.code(), b"server shutting down");
    let drained = timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = tasks.join_next().await {
            log_task_end(done);
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = tasks.len(),
            "connection tasks still running after the grace period; aborting them"
        );
        tasks.shutdown().await;
    }
    if timeout(SHUTDOWN_GRACE, endpoint.wait_idle()).await.is_err() {
        debug!("endpoint not idle after the grace period");
    }
    info!("quic server stopped");
}

fn lock(admission: &Mutex<Admission>) -> std::sync::MutexGuard<'_, Admission> {
    // The counters stay consistent even if a holder panicked: every change is one statement.
    admission
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts a handshake from `remote` if the admission rules let it in, else says what to do.
fn admit(
    remote: SocketAddr,
    validated: bool,
    admission: &Arc<Mutex<Admission>>,
) -> Result<Slot, Decision> {
    let mut counters = lock(admission);
    match counters.decide(remote.ip(), validated) {
        Decision::Accept => counters.admit(remote.ip()),
        other => return Err(other),
    }
    Ok(Slot {
        admission: admission.clone(),
        ip: remote.ip(),
        established: false,
    })
}

/// One admitted connection's place in the [`Admission`] counters, given back when dropped.
struct Slot {
    admission: Arc<Mutex<Admission>>,
    ip: std::net::IpAddr,
    established: bool,
}

impl Slot {
    /// The peer proved an enrolled identity: it may now use the reserved share.
    fn establish(&mut self) {
        if !self.established {
            lock(&self.admission).establish(self.ip);
            self.established = true;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counters = lock(&self.admission);
        if self.established {
            counters.end_established();
        } else {
            counters.end_handshake(self.ip);
        }
    }
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            warn!("connection task panicked outside its handler: {e}");
        }
    }
}

/// A connection that must end now, with this code and reason.
struct Abort {
    code: CloseCode,
    reason: String,
}

impl Abort {
    fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

async fn serve_connection(incoming: Incoming, mut slot: Slot, ctx: Arc<Context>) {
    let remote = incoming.remote_address();
    let deadline = Instant::now() + ctx.handshake_timeout;
    let connection = match timeout_at(deadline, async { incoming.accept()?.await }).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            // Wrong ALPN, bad certificate, garbage: quinn has already closed it with the TLS
            // alert as code and the error as reason.
            warn!(%remote, "tls handshake failed: {e}");
            ctx.refusal("tls_handshake");
            return;
        }
        Err(_) => {
            // Dropping the handshake closes the connection.
            warn!(%remote, "tls handshake timed out");
            ctx.refusal("handshake_timeout");
            return;
        }
    };
    let outcome = match transport::peer_fingerprint(&connection) {
        Ok(fingerprint) => open_session(&connection, fingerprint, deadline, &ctx).await,
        Err(e) => Err(Abort::new(CloseCode::Protocol, e.to_string())),
    };
    match outcome {
        Ok(Some((peer, stream))) => {
            slot.establish();
            run_handler(&connection, peer, stream, &ctx).await
        }
        Ok(None) => {}
        Err(abort) => {
            warn!(%remote, code = ?abort.code, "closing connection: {}", abort.reason);
            close(&connection, abort.code, &abort.reason);
        }
    }
}

/// Runs the handshake. `Ok(None)`: the connection was dealt with (enrolment answered, refusal
/// sent, or the peer went away).
async fn open_session(
    connection: &Connection,
    fingerprint: Fingerprint,
    deadline: Instant,
    ctx: &Context,
) -> Result<Option<(Peer, FramedStream)>, Abort> {
    let timed_out = || Abort::new(CloseCode::Timeout, "handshake timed out");
    let (send, recv) = match timeout_at(deadline, connection.accept_bi()).await {
        Ok(Ok(halves)) => halves,
        Ok(Err(e)) => return gone(&fingerprint, e),
        Err(_) => return Err(timed_out()),
    };
    let mut stream = FramedStream::new(send, recv);
    let frame = match timeout_at(deadline, stream.recv_limited(MAX_HANDSHAKE_FRAME_SIZE)).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => {
            return Err(Abort::new(
                CloseCode::Protocol,
                "stream ended before the handshake",
            ))
        }
        Ok(Err(FrameError::Read(quinn::ReadError::ConnectionLost(e)))) => {
            return gone(&fingerprint, e)
        }
        Ok(Err(e)) => return Err(Abort::new(CloseCode::Protocol, e.to_string())),
        Err(_) => return Err(timed_out()),
    };
    let request = ClientHandshake::decode(&frame)
        .map_err(|_| Abort::new(CloseCode::Protocol, "malformed handshake frame"))?;
    let now = OffsetDateTime::now_utc();
    let authorizer = ctx.authorizer.clone();
    match request {
        ClientHandshake::Join { token } => {
            let result = run_blocking(move || authorizer.enrol(&token, &fingerprint, now)).await;
            let reply = match result {
                Ok(peer) => {
                    info!(%fingerprint, office = %peer.office, read_only = peer.read_only, "device enrolled");
                    ServerHandshake::Enrolled {
                        office: peer.office,
                        read_only: peer.read_only,
                        relay_fingerprint: ctx.fingerprint,
                    }
                }
                Err(refusal) => {
                    ctx.refusal("enrolment_refused");
                    refused(&fingerprint, "enrolment", refusal)
                }
            };
            let code = match reply {
                ServerHandshake::Enrolled { .. } => CloseCode::Done,
                _ => CloseCode::Refused,
            };
            let reason = match &reply {
                ServerHandshake::Refused { reason } => reason.clone(),
                _ => "enrolled".to_owned(),
            };
            send_final(connection, &mut stream, &reply, code, &reason).await;
            Ok(None)
        }
        ClientHandshake::Hello => {
            match run_blocking(move || authorizer.authorize(&fingerprint, now)).await {
                Ok(peer) => {
                    let welcome = ServerHandshake::Welcome {
                        office: peer.office.clone(),
                        read_only: peer.read_only,
                    };
                    send_frame(&mut stream, &welcome).await?;
                    debug!(%fingerprint, office = %peer.office, "session opened");
                    Ok(Some((peer, stream)))
                }
                Err(refusal) => {
                    ctx.refusal("device_refused");
                    let reply = refused(&fingerprint, "session", refusal);
                    let reason = match &reply {
                        ServerHandshake::Refused { reason } => reason.clone(),
                        _ => String::new(),
                    };
                    send_final(connection, &mut stream, &reply, CloseCode::Refused, &reason).await;
                    Ok(None)
                }
            }
        }
    }
}

/// The peer closed or lost the connection during the handshake: nothing left to close.
fn gone<T>(fingerprint: &Fingerprint, e: ConnectionError) -> Result<Option<T>, Abort> {
    debug!(%fingerprint, "connection ended during the handshake: {e}");
    Ok(None)
}

/// Logs a refusal and builds the frame telling the peer.
fn refused(fingerprint: &Fingerprint, what: &str, refusal: AuthError) -> ServerHandshake {
    let reason = match refusal {
        AuthError::Refused(reason) => {
            warn!(%fingerprint, "{what} refused: {reason}");
            reason
        }
        AuthError::Internal(e) => {
            warn!(%fingerprint, "{what} failed: {e}: {}", error_chain(&*e));
            "internal error on the server".to_owned()
        }
    };
    ServerHandshake::Refused { reason }
}

/// Calls the authorizer on the blocking pool; a panic in it is an internal error.
async fn run_blocking(
    f: impl FnOnce() -> Result<Peer, AuthError> + Send + 'static,
) -> Result<Peer, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(AuthError::Internal(Box::new(e))))
}

async fn send_frame(stream: &mut FramedStream, frame: &ServerHandshake) -> Result<(), Abort> {
    let bytes = frame
        .encode()
        .map_err(|e| Abort::new(CloseCode::Protocol, e.to_string()))?;
    stream
        .send(&bytes)
        .await
        .map_err(|e| Abort::new(CloseCode::Protocol, e.to_string()))
}

/// Sends the last handshake frame, lets the peer receive it, and closes.
async fn send_final(
    connection: &Connection,
    stream: &mut FramedStream,
    frame: &ServerHandshake,
    code: CloseCode,
    reason: &str,
) {
    if send_frame(stream, frame).await.is_ok() && stream.finish().is_ok() {
        // Whether the peer acknowledged or the wait ran out, closing is next either way.
        let _ = timeout(CLOSE_LINGER, stream.send.stopped()).await;
    }
    close(connection, code, reason);
}

async fn run_handler(connection: &Connection, peer: Peer, stream: FramedStream, ctx: &Context) {
    let fingerprint = peer.fingerprint;
    let office = peer.office.clone();
    let handler = ctx.handler.clone();
    // Calling `handle` inside the future means a panic before the future exists is caught too.
    let conn = connection.clone();
    let _session = ctx.metrics.as_ref().map(|m| m.session(Kind::Quic));
    let run =
        AssertUnwindSafe(async move { handler.handle(peer, stream, conn).await }).catch_unwind();
    match run.await {
        Ok(Ok(())) => {
            let _ = timeout(CLOSE_LINGER, connection.closed()).await;
            close(connection, CloseCode::Done, "done");
        }
        Ok(Err(e)) => {
            let code = if e.downcast_ref::<FrameError>().is_some() {
                CloseCode::Protocol
            } else {
                CloseCode::HandlerFailed
            };
            warn!(%fingerprint, %office, ?code, "connection handler failed: {e:#}");
            close(connection, code, &e.to_string());
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            warn!(%fingerprint, %office, "connection handler panicked: {message}");
            close(
                connection,
                CloseCode::HandlerPanicked,
                "internal error on the server",
            );
        }
    }
}

fn close(connection: &Connection, code: CloseCode, reason: &str) {
    connection.close(code.code(), truncate(reason, MAX_CLOSE_REASON).as_bytes());
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, ClientError};
    use rand::rngs::OsRng;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Bound on every wait in these tests; only reached when something is broken.
    const WAIT: Duration = Duration::from_secs(15);

    /// A relay on loopback with an access store in a temporary directory, whose handler
    /// echoes frames, panics on the frame `panic`, and fails on the frame `fail`.
    struct TestRelay {
        _dir: tempfile::TempDir,
        store: AccessStore,
        handle: ServerHandle,
        handled: Arc<AtomicUsize>,
    }

    impl TestRelay {
        fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = AccessStore::new(dir.path());
            let handled = Arc::new(AtomicUsize::new(0));
            let counter = handled.clone();
            let handler = move |_peer: Peer,
                                mut stream: FramedStream,
                                _connection: Connection|
                  -> BoxFuture<'static, anyhow::Result<()>> {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    while let Some(frame) = stream.recv().await? {
                        match frame.as_slice() {
                            b"panic" => panic!("handler bug"),
                            b"fail" => anyhow::bail!("handler refuses this frame"),
                            _ => stream.send(&frame).await?,
                        }
                    }
                    Ok(())
                }
                .boxed()
            };
            let handle = spawn(ServerConfig::new(
                Identity::generate().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
                Arc::new(store.clone()),
                Arc::new(handler),
            ))
            .unwrap();
            Self {
                _dir: dir,
                store,
                handle,
                handled,
            }
        }

        fn invite(&self, office: &str, now: OffsetDateTime) -> String {
            self.store
                .update(|r| r.invite(&mut OsRng, office, false, time::Duration::hours(72), now))
                .unwrap()
        }

        async fn enrol(
            &self,
            identity: &Identity,
            token: &str,
        ) -> Result<client::Enrolled, ClientError> {
            let (addr, fp) = (self.handle.local_addr(), self.handle.fingerprint());
            tokio::time::timeout(WAIT, client::enrol(identity, addr, &fp, token))
                .await
                .unwrap()
        }

        async fn open(
            &self,
            identity: &Identity,
        ) -> Result<(Connection, FramedStream), ClientError> {
            let (addr, fp) = (self.handle.local_addr(), self.handle.fingerprint());
            tokio::time::timeout(WAIT, client::open(identity, addr, &fp))
                .await
                .unwrap()
                .map(|o| (o.connection, o.stream))
        }

        /// A fresh identity, enrolled for `office`.
        async fn enrolled_device(&self, office: &str) -> Identity {
            let identity = Identity::generate().unwrap();
            let token = self.invite(office, OffsetDateTime::now_utc());
            self.enrol(&identity, &token).await.unwrap();
            identity
        }
    }

    async fn echo(stream: &mut FramedStream, bytes: &[u8]) {
        tokio::time::timeout(WAIT, async {
            stream.send(bytes).await.unwrap();
            assert_eq!(stream.recv().await.unwrap().unwrap(), bytes);
        })
        .await
        .unwrap();
    }

    /// Waits for the connection to be closed by the server and returns its code and reason.
    async fn closed_by_server(connection: &Connection) -> (Option<CloseCode>, String) {
        let error = tokio::time::timeout(WAIT, connection.closed())
            .await
            .unwrap();
        match error {
            ConnectionError::ApplicationClosed(close) => (
                CloseCode::from_code(close.error_code),
                String::from_utf8_lossy(&close.reason).into_owned(),
            ),
            other => panic!("expected an application close, got {other:?}"),
        }
    }

    fn assert_refused(result: Result<impl fmt::Debug, ClientError>, expected: &str) {
        match result {
            Err(ClientError::Refused { reason }) => assert_eq!(reason, expected),
            other => panic!("expected refusal {expected:?}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn enrolment_then_hello_reaches_the_handler() {
        let relay = TestRelay::start();
        let identity = Identity::generate().unwrap();
        let token = relay.invite("caue-15", OffsetDateTime::now_utc());
        let enrolled = relay.enrol(&identity, &token).await.unwrap();
        assert_eq!(enrolled.office, "caue-15");
        assert!(!enrolled.read_only);
        assert_eq!(enrolled.relay_fingerprint, relay.handle.fingerprint());
        assert_eq!(relay.handled.load(Ordering::SeqCst), 0);

        let (connection, mut stream) = relay.open(&identity).await.unwrap();
        echo(&mut stream, b"sync frame").await;
        assert_eq!(relay.handled.load(Ordering::SeqCst), 1);
        // A clean end of stream ends the handler, and the server closes with Done.
        stream.finish().unwrap();
        assert_eq!(
            closed_by_server(&connection).await,
            (Some(CloseCode::Done), "done".into())
        );
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn reused_expired_and_unknown_tokens_are_refused() {
        let relay = TestRelay::start();
        let token = relay.invite("caue-15", OffsetDateTime::now_utc());
        relay
            .enrol(&Identity::generate().unwrap(), &token)
            .await
            .unwrap();
        assert_refused(
            relay.enrol(&Identity::generate().unwrap(), &token).await,
            "token already used",
        );

        let long_ago = OffsetDateTime::now_utc() - time::Duration::hours(73);
        let expired = relay.invite("caue-15", long_ago);
        assert_refused(
            relay.enrol(&Identity::generate().unwrap(), &expired).await,
            "token expired",
        );
        assert_refused(
            relay
                .enrol(&Identity::generate().unwrap(), &"0".repeat(64))
                .await,
            "unknown token",
        );
        assert_eq!(relay.handled.load(Ordering::SeqCst), 0);
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn unknown_certificate_is_refused_before_the_handler_runs() {
        let relay = TestRelay::start();
        assert_refused(
            relay.open(&Identity::generate().unwrap()).await,
            "this device is not enrolled on this relay",
        );
        assert_eq!(relay.handled.load(Ordering::SeqCst), 0);
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn revoked_office_is_refused() {
        let relay = TestRelay::start();
        let identity = relay.enrolled_device("caue-15").await;
        let other = relay.enrolled_device("caue-63").await;
        relay.store.update(|r| r.revoke_office("caue-15")).unwrap();
        assert_refused(relay.open(&identity).await, "this device has been revoked");
        let (_connection, mut stream) = relay.open(&other).await.unwrap();
        echo(&mut stream, b"still here").await;
        assert_eq!(relay.handled.load(Ordering::SeqCst), 1);
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn client_pinned_to_the_wrong_fingerprint_fails() {
        let relay = TestRelay::start();
        let identity = relay.enrolled_device("caue-15").await;
        let wrong = Fingerprint::from_bytes([9; 32]);
        let result = tokio::time::timeout(
            WAIT,
            client::open(&identity, relay.handle.local_addr(), &wrong),
        )
        .await
        .unwrap();
        assert!(
            matches!(
                result,
                Err(ClientError::Transport(
                    TransportError::FingerprintMismatch { .. }
                ))
            ),
            "{result:?}"
        );
        assert_eq!(relay.handled.load(Ordering::SeqCst), 0);
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn wrong_alpn_is_refused_and_the_server_keeps_serving() {
        let relay = TestRelay::start();
        let identity = relay.enrolled_device("caue-15").await;
        let endpoint = transport::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let config =
            transport::client_config_with_alpn(&identity, &relay.handle.fingerprint(), b"h3")
                .unwrap();
        let result = tokio::time::timeout(WAIT, async {
            endpoint
                .connect_with(config, relay.handle.local_addr(), "atelier")
                .unwrap()
                .await
        })
        .await
        .unwrap();
        match result {
            Err(ConnectionError::ConnectionClosed(close)) => {
                assert_eq!(close.error_code, quinn::TransportErrorCode::crypto(120));
            }
            other => panic!("expected no_application_protocol, got {other:?}"),
        }
        let (_connection, mut stream) = relay.open(&identity).await.unwrap();
        echo(&mut stream, b"ok").await;
        relay.handle.shutdown().await;
    }

    /// A raw connection with a valid certificate and ALPN, on which the test writes bytes
    /// by hand.
    async fn raw_stream(relay: &TestRelay, identity: &Identity) -> (Connection, FramedStream) {
        let endpoint = transport::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let connection = tokio::time::timeout(
            WAIT,
            transport::connect(
                &endpoint,
                identity,
                relay.handle.local_addr(),
                &relay.handle.fingerprint(),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        let (send, recv) = connection.open_bi().await.unwrap();
        (connection, FramedStream::new(send, recv))
    }

    #[tokio::test]
    async fn garbage_handshake_is_refused() {
        let relay = TestRelay::start();
        let identity = Identity::generate().unwrap();

        let (connection, mut stream) = raw_stream(&relay, &identity).await;
        stream.send(b"\x00\x01 not json at all").await.unwrap();
        assert_eq!(
            closed_by_server(&connection).await,
            (
                Some(CloseCode::Protocol),
                "malformed handshake frame".into()
            )
        );

        // Raw bytes that are not even a frame: "GET " read as a length is ~1.2 GB.
        let (connection, mut stream) = raw_stream(&relay, &identity).await;
        stream
            .send
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let (code, reason) = closed_by_server(&connection).await;
        assert_eq!(code, Some(CloseCode::Protocol));
        assert!(
            reason.contains("1195725856 bytes exceeds the limit"),
            "{reason}"
        );

        // A server frame sent by a client is malformed too.
        let (connection, mut stream) = raw_stream(&relay, &identity).await;
        let welcome = ServerHandshake::Welcome {
            office: "caue-15".into(),
            read_only: false,
        };
        stream.send(&welcome.encode().unwrap()).await.unwrap();
        assert_eq!(
            closed_by_server(&connection).await.0,
            Some(CloseCode::Protocol)
        );
        assert_eq!(relay.handled.load(Ordering::SeqCst), 0);
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn oversize_frame_after_hello_closes_that_connection() {
        let relay = TestRelay::start();
        let identity = relay.enrolled_device("caue-15").await;
        let (connection, mut stream) = relay.open(&identity).await.unwrap();
        // A header claiming 4 GiB; no body follows, so only the header can be judged.
        stream
            .send
            .write_all(&[0xff, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        let (code, reason) = closed_by_server(&connection).await;
        assert_eq!(code, Some(CloseCode::Protocol));
        assert!(
            reason.contains("4294967295 bytes exceeds the limit"),
            "{reason}"
        );
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn handler_panic_closes_only_that_connection() {
        let relay = TestRelay::start();
        let calm = relay.enrolled_device("caue-15").await;
        let reckless = relay.enrolled_device("caue-63").await;
        let (_calm_connection, mut calm_stream) = relay.open(&calm).await.unwrap();
        echo(&mut calm_stream, b"before").await;

        let (connection, mut stream) = relay.open(&reckless).await.unwrap();
        stream.send(b"panic").await.unwrap();
        assert_eq!(
            closed_by_server(&connection).await,
            (
                Some(CloseCode::HandlerPanicked),
                "internal error on the server".into()
            )
        );

        // The peer already connected is unaffected, and a new one still gets through.
        echo(&mut calm_stream, b"after").await;
        let (_again, mut again_stream) = relay.open(&reckless).await.unwrap();
        echo(&mut again_stream, b"again").await;

        // A handler error is reported with its message.
        again_stream.send(b"fail").await.unwrap();
        assert_eq!(
            closed_by_server(&_again).await,
            (
                Some(CloseCode::HandlerFailed),
                "handler refuses this frame".into()
            )
        );
        echo(&mut calm_stream, b"still").await;
        relay.handle.shutdown().await;
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::new(dir.path());
        let identity = Identity::generate().unwrap();
        let token = store
            .update(|r| {
                r.invite(
                    &mut OsRng,
                    "caue-15",
                    false,
                    time::Duration::hours(1),
                    OffsetDateTime::now_utc(),
                )
            })
            .unwrap();
        let handler = |_peer: Peer,
                       mut stream: FramedStream,
                       _c: Connection|
         -> BoxFuture<'static, anyhow::Result<()>> {
            async move {
                while stream.recv().await?.is_some() {}
                Ok(())
            }
            .boxed()
        };
        // Enrolled through the store, so that no enrolment connection occupies the one slot.
        store
            .update(|r| r.redeem(&token, &identity.fingerprint(), OffsetDateTime::now_utc()))
            .unwrap();
        let handle = spawn(ServerConfig {
            max_connections: 1,
            ..ServerConfig::new(
                Identity::generate().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
                Arc::new(store),
                Arc::new(handler),
            )
        })
        .unwrap();
        let (addr, fp) = (handle.local_addr(), handle.fingerprint());
        let first = tokio::time::timeout(WAIT, client::open(&identity, addr, &fp))
            .await
            .unwrap()
            .unwrap()
            .connection;
        let second = tokio::time::timeout(WAIT, client::open(&identity, addr, &fp))
            .await
            .unwrap();
        assert!(
            matches!(
                second,
                Err(ClientError::Transport(TransportError::Connection(
                    ConnectionError::ConnectionClosed(_)
                )))
            ),
            "{second:?}"
        );
        handle.shutdown().await;
        // Shutdown closed the open connection with its own code.
        assert_eq!(
            closed_by_server(&first).await,
            (Some(CloseCode::ShuttingDown), "server shutting down".into())
        );
    }

    #[tokio::test]
    async fn silent_peer_is_closed_at_the_handshake_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let handler =
            |_: Peer, _: FramedStream, _: Connection| -> BoxFuture<'static, anyhow::Result<()>> {
                async { Ok(()) }.boxed()
            };
        let handle = spawn(ServerConfig {
            handshake_timeout: Duration::from_millis(300),
            ..ServerConfig::new(
                Identity::generate().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
                Arc::new(AccessStore::new(dir.path())),
                Arc::new(handler),
            )
        })
        .unwrap();
        let identity = Identity::generate().unwrap();
        let endpoint = transport::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let connection = tokio::time::timeout(
            WAIT,
            transport::connect(
                &endpoint,
                &identity,
                handle.local_addr(),
                &handle.fingerprint(),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        // Connected, but no stream and no Hello.
        assert_eq!(
            closed_by_server(&connection).await,
            (Some(CloseCode::Timeout), "handshake timed out".into())
        );
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn pinned_peers_authorize_without_a_registry() {
        let device = Identity::generate().unwrap();
        let stranger = Identity::generate().unwrap();
        let authorizer = PinnedPeers::new([Peer {
            fingerprint: device.fingerprint(),
            office: "caue-15".into(),
            read_only: true,
        }]);
        let handler = |peer: Peer,
                       mut stream: FramedStream,
                       _c: Connection|
         -> BoxFuture<'static, anyhow::Result<()>> {
            async move {
                stream.send(peer.office.as_bytes()).await?;
                stream.finish()?;
                while stream.recv().await?.is_some() {}
                Ok(())
            }
            .boxed()
        };
        let handle = spawn(ServerConfig::new(
            Identity::generate().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(authorizer),
            Arc::new(handler),
        ))
        .unwrap();
        let (addr, fp) = (handle.local_addr(), handle.fingerprint());
        let client::Opened {
            connection: _c,
            mut stream,
            ..
        } = tokio::time::timeout(WAIT, client::open(&device, addr, &fp))
            .await
            .unwrap()
            .unwrap();
        let office = tokio::time::timeout(WAIT, stream.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(office.as_deref(), Some(&b"caue-15"[..]));
        let refused = tokio::time::timeout(WAIT, client::open(&stranger, addr, &fp))
            .await
            .unwrap();
        assert_refused(refused, "this device is not a pinned peer");
        let enrol =
            tokio::time::timeout(WAIT, client::enrol(&stranger, addr, &fp, &"0".repeat(64)))
                .await
                .unwrap();
        assert_refused(
            enrol,
            "this peer does not accept enrolment; enrol with the relay",
        );
        handle.shutdown().await;
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
