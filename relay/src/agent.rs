//! The client sync loop: keeps one store in sync with a relay (or a peer), live, reconnecting
//! with backoff when the link drops; tells its owner what happens through [`AgentHooks`] and
//! reports its state for status displays. `atelier sync --watch`, the demo and the demo's web
//! apps all run this one loop; a one-shot `atelier sync` runs [`sync_until_converged`] (or
//! [`converge`], to go on with media on the same connection).
//!
//! With [`AgentHooks::media`], each live connection also transfers blobs once the texts are
//! settled (see [`crate::media_sync`]): again after every change of the store (a received
//! document may name blobs not here yet, a local add queues blobs to send), and after a bounded
//! backoff while some blob is not on the relay yet.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atelier_core::clock::now_ms;
use atelier_core::media::BlobHash;
use atelier_core::mutex::lock;
use atelier_core::replica::Replica;
use atelier_core::store::{DocChange, DocStore};
use atelier_core::sync::{Role, Session, SyncError, SyncStats};
use rand::Rng;
use serde::Serialize;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use crate::client::{self, ClientError, Opened};
use crate::handshake::CloseCode;
use crate::identity::{Fingerprint, Identity};
use crate::media_sync::{MediaTransfer, OnBlob};
use crate::quic_url::QuicUrl;
use crate::sync_conn::{drive, DriveError, LiveChanges, Mode};

/// First backoff step after a lost connection. Short: a relay restart takes about that long.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest backoff step: an office back online is in sync within half a minute, and ninety
/// offices retrying do not hammer a relay that is coming back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a sync may exchange frames without any document moving before it is abandoned: a
/// last line of defence against a protocol livelock (a healthy sync moves documents every few
/// milliseconds, even while one large document is reconciled).
pub const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Frames received without any document moving, on top of `STALL_LIMIT`, before a sync counts
/// as stalled: a slow link that delivers little is not a stall.
const STALL_FRAMES: u64 = 200;
/// First wait before asking again for blobs the relay did not have (the office that made them
/// is usually uploading them right then: its document travels faster than its photos).
pub const MEDIA_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between two media passes while some blob is still missing: a photo whose
/// office went offline before uploading it is not asked for more often than this.
pub const MEDIA_RETRY_MAX: Duration = Duration::from_secs(60);

/// Where a sync goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// Resolved at every connection, so a relay that changes address stays reachable.
    pub url: QuicUrl,
    /// The certificate the server must present; any other is refused.
    pub fingerprint: Fingerprint,
    /// The relay (true) or another office's `atelier serve` (false).
    pub is_relay: bool,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address's host name gave no address.
    #[error("cannot resolve the address: {0}")]
    Resolve(std::io::Error),
    /// The QUIC connection or the handshake failed.
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// Why a connection of the sync loop (or a one-shot sync) ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No connection could be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The session could not start (the local store failed).
    #[error("starting the session: {0}")]
    Start(SyncError),
    /// The sync broke off.
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// Frames kept coming for `STALL_LIMIT` without any document moving.
    #[error("the sync went round in circles: no document moved for {0:?}")]
    Stalled(Duration),
    /// The peer ended the live session cleanly (a relay shutting down, for one).
    #[error("the peer closed the connection")]
    Closed,
    /// A hook failed (the local store, most likely).
    #[error("{0}")]
    Local(String),
}

impl LinkError {
    /// Whether the connection ended with a stateless reset: the relay (or peer) restarted and
    /// no longer knows it, so it is up again.
    pub fn is_reset(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if let Some(quinn::ConnectionError::Reset) = e.downcast_ref::<quinn::ConnectionError>()
            {
                return true;
            }
            source = e.source();
        }
        false
    }
}

/// What a status display shows.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct AgentStatus {
    /// Connected and reconciled: local changes reach the relay as they happen.
    pub connected: bool,
    /// `quic://addr`.
    pub relay: String,
    /// Milliseconds since the epoch of the last completed reconciliation.
    pub last_sync_ms: Option<i64>,
    /// The last connection error, in the words of the transport.
    pub last_error: Option<String>,
    pub docs_received: u64,
    pub docs_sent: u64,
}

/// Builds the initiating session of a connection; the argument says whether the server lets
/// this device only read (the session then only pulls).
pub type SessionFactory = dyn Fn(bool) -> Session + Send + Sync;
/// Called after every reconciliation that ended in sync.
pub type OnSettled = dyn Fn(&Settled<'_>) + Send + Sync;
/// Called for every change of the store while live; an error ends the connection.
pub type OnChange = dyn Fn(&DocChange) -> Result<(), String> + Send + Sync;
/// Called when a connection ends or cannot be made, with the wait before the next attempt;
/// `Break` stops the agent (retrying would not help: the relay refused this device).
pub type OnLinkDown = dyn Fn(&LinkError, Duration) -> ControlFlow<()> + Send + Sync;

/// A reconciliation that ended in sync, as [`AgentHooks::on_settled`] hears of it.
#[derive(Debug)]
pub struct Settled<'a> {
    /// The session's counters (to record what the relay holds, to report what moved…).
    pub stats: &'a SyncStats,
    /// The first of its connection.
    pub first: bool,
    /// Since the connection's first attempt began.
    pub elapsed: Duration,
}

/// What the agent's owner wants done at each step. Every hook is optional.
#[derive(Default)]
pub struct AgentHooks {
    session: Option<Box<SessionFactory>>,
    converge_first: bool,
    on_settled: Option<Box<OnSettled>>,
    on_change: Option<Box<OnChange>>,
    on_link_down: Option<Box<OnLinkDown>>,
    media: Option<Arc<Replica>>,
    on_blob: Option<Arc<OnBlob>>,
}

impl AgentHooks {
    /// Transfers this replica's blobs on every live connection, once the texts are settled.
    pub fn media(mut self, replica: Arc<Replica>) -> Self {
        self.media = Some(replica);
        self
    }

    /// Called when a blob has arrived and been verified (a page showing its placeholder can
    /// refresh).
    pub fn on_blob(mut self, f: impl Fn(&BlobHash) + Send + Sync + 'static) -> Self {
        self.on_blob = Some(Arc::new(f));
        self
    }

    /// Builds each connection's session (by default a plain initiator over the store).
    pub fn session(mut self, f: impl Fn(bool) -> Session + Send + Sync + 'static) -> Self {
        self.session = Some(Box::new(f));
        self
    }

    /// Starts each connection with a sync until converged (its own connection, guarded against
    /// stalls), then goes live: the first `on_settled` of a connection then carries exactly
    /// what that sync moved, and `on_change` sees only what came after it.
    pub fn converge_first(mut self) -> Self {
        self.converge_first = true;
        self
    }

    pub fn on_settled(mut self, f: impl Fn(&Settled<'_>) + Send + Sync + 'static) -> Self {
        self.on_settled = Some(Box::new(f));
        self
    }

    /// Follows the store's changes while live (this costs a subscription to them).
    pub fn on_change(
        mut self,
        f: impl Fn(&DocChange) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.on_change = Some(Box::new(f));
        self
    }

    pub fn on_link_down(
        mut self,
        f: impl Fn(&LinkError, Duration) -> ControlFlow<()> + Send + Sync + 'static,
    ) -> Self {
        self.on_link_down = Some(Box::new(f));
        self
    }

    fn new_session(&self, store: &Arc<DocStore>, read_only: bool) -> Session {
        match &self.session {
            Some(f) => f(read_only),
            None => plain_session(store, read_only),
        }
    }

    fn settled(&self, stats: &SyncStats, first: bool, started: Instant) {
        if let Some(f) = &self.on_settled {
            f(&Settled {
                stats,
                first,
                elapsed: started.elapsed(),
            });
        }
    }
}

/// A running agent; dropping it stops it.
pub struct SyncAgent {
    status: Arc<Mutex<AgentStatus>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    enabled: Arc<AtomicBool>,
}

impl SyncAgent {
    /// Starts syncing `store` (whose changes `live` carries) with `target` as `identity`.
    pub fn spawn(
        store: Arc<DocStore>,
        live: LiveChanges,
        identity: Identity,
        target: Target,
        hooks: AgentHooks,
    ) -> Self {
        let shared = Shared {
            status: Arc::new(Mutex::new(AgentStatus {
                relay: target.url.to_string(),
                ..AgentStatus::default()
            })),
            wake: Arc::new(Notify::new()),
            enabled: Arc::new(AtomicBool::new(true)),
        };
        let (stop, stop_rx) = watch::channel(false);
        let agent = Agent {
            store,
            live,
            identity,
            target,
            hooks,
            shared: shared.clone(),
        };
        Self {
            status: shared.status,
            wake: shared.wake,
            stop,
            task: Some(tokio::spawn(agent.run(stop_rx))),
            enabled: shared.enabled,
        }
    }

    pub fn status(&self) -> AgentStatus {
        lock(&self.status).clone()
    }

    /// Retries at once instead of waiting for the backoff.
    pub fn sync_now(&self) {
        self.wake.notify_one();
    }

    /// Pauses (false) or resumes (true) syncing: "work offline" in the demo.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Stops the agent and waits for its connection to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncAgent {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Opens a sync connection to `target` as `identity` (handshake `Hello`/`Welcome`).
pub async fn connect(identity: &Identity, target: &Target) -> Result<Opened, ConnectError> {
    let addr = target.url.resolve().await.map_err(ConnectError::Resolve)?;
    Ok(client::open(identity, addr, &target.fingerprint).await?)
}

/// [`connect`] for a live session, which watches the link at an idle device's pace
/// ([`crate::transport::LinkKind::Live`]).
pub async fn connect_live(identity: &Identity, target: &Target) -> Result<Opened, ConnectError> {
    let addr = target.url.resolve().await.map_err(ConnectError::Resolve)?;
    Ok(client::open_live(identity, addr, &target.fingerprint).await?)
}

/// Closes a sync connection once the session is over.
pub fn close(opened: &Opened) {
    opened
        .connection
        .close(CloseCode::Done.code(), b"sync done");
}

/// One sync that goes until both sides hold the same documents, on its own connection.
/// `session` builds the session (its argument: the server lets this device only read);
/// `on_progress` sees the counters after every frame.
pub async fn sync_until_converged(
    identity: &Identity,
    target: &Target,
    session: impl FnOnce(bool) -> Session,
    on_progress: impl FnMut(&SyncStats) + Send,
) -> Result<SyncStats, LinkError> {
    let converged = converge(identity, target, session, on_progress).await?;
    converged.close();
    Ok(converged.stats)
}

/// A sync that ended in sync, its connection still open (for media).
pub struct Converged {
    pub stats: SyncStats,
    /// Close it with [`CloseCode::Done`] when done.
    pub connection: quinn::Connection,
    /// The server lets this device only read.
    pub read_only: bool,
}

impl Converged {
    /// Ends the connection: the sync (and its media) are done.
    pub fn close(&self) {
        self.connection.close(CloseCode::Done.code(), b"sync done");
    }
}

/// [`sync_until_converged`], leaving the connection open once the texts are settled: the
/// caller transfers media on it, then closes it. On error the connection is closed.
pub async fn converge(
    identity: &Identity,
    target: &Target,
    session: impl FnOnce(bool) -> Session,
    mut on_progress: impl FnMut(&SyncStats) + Send,
) -> Result<Converged, LinkError> {
    let opened = connect(identity, target).await?;
    let read_only = opened.read_only;
    let mut session = session(opened.read_only);
    if let Err(e) = session.start() {
        close(&opened);
        return Err(LinkError::Start(e));
    }
    let moved = Moved::new();
    let on_progress = |s: &SyncStats| {
        Moved::update(&moved, s);
        on_progress(s);
    };
    let Opened {
        connection, stream, ..
    } = opened;
    let driven = drive(session, stream, Mode::UntilConverged, on_progress);
    let result = match until_stalled(driven, &moved).await {
        Some(Ok(stats)) => Ok(stats),
        Some(Err(e)) => Err(e.into()),
        None => Err(LinkError::Stalled(STALL_LIMIT)),
    };
    match result {
        Ok(stats) => Ok(Converged {
            stats,
            connection,
            read_only,
        }),
        Err(e) => {
            connection.close(CloseCode::Done.code(), b"sync done");
            Err(e)
        }
    }
}

/// The default session: an initiator over `store`, pulling only when the server lets this
/// device only read (it would ignore what we offer).
pub fn plain_session(store: &Arc<DocStore>, read_only: bool) -> Session {
    let session = Session::new(store.clone(), Role::Initiator);
    if read_only {
        session.pull_only()
    } else {
        session
    }
}

/// What the agent's handle and its task share.
#[derive(Clone)]
struct Shared {
    status: Arc<Mutex<AgentStatus>>,
    wake: Arc<Notify>,
    enabled: Arc<AtomicBool>,
}

/// The agent's task.
struct Agent {
    store: Arc<DocStore>,
    live: LiveChanges,
    identity: Identity,
    target: Target,
    hooks: AgentHooks,
    shared: Shared,
}

/// How one connection ended.
struct Ended {
    /// At least one reconciliation ended in sync: the link worked, the backoff starts over.
    settled: bool,
    /// `None` when the agent was paused.
    error: Option<LinkError>,
}

impl Agent {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            if *stop.borrow() {
                return;
            }
            if self.shared.enabled.load(Ordering::SeqCst) {
                let ended = tokio::select! {
                    ended = self.connection() => ended,
                    _ = stop.changed() => return,
                };
                if ended.settled {
                    backoff.reset();
                }
                // A stateless reset comes from a relay that restarted and is answering again:
                // reconnect at once, it is there.
                let wait = match &ended.error {
                    Some(e) if e.is_reset() => {
                        backoff.reset();
                        Duration::ZERO
                    }
                    _ => backoff.next(),
                };
                {
                    let mut s = lock(&self.shared.status);
                    s.connected = false;
                    s.last_error = match &ended.error {
                        None | Some(LinkError::Closed) => None,
                        Some(e) => Some(e.to_string()),
                    };
                }
                if let Some(e) = &ended.error {
                    tracing::info!(error = %e, "sync link down");
                    if let Some(f) = &self.hooks.on_link_down {
                        if f(e, wait).is_break() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.shared.wake.notified() => backoff.reset(),
                    _ = stop.changed() => return,
                }
            } else {
                tokio::select! {
                    _ = self.shared.wake.notified() => backoff.reset(),
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// One connection: reconcile (first on a connection of its own if asked), then stay live
    /// until the link drops or the agent is paused.
    async fn connection(&self) -> Ended {
        let started = Instant::now();
        let mut settled = false;
        if self.hooks.converge_first {
            let session = |read_only| self.hooks.new_session(&self.store, read_only);
            match sync_until_converged(&self.identity, &self.target, session, |_| {}).await {
                Ok(stats) => {
                    settled = true;
                    self.settled_round(&stats);
                    self.hooks.settled(&stats, true, started);
                }
                Err(e) => {
                    return Ended {
                        settled,
                        error: Some(e),
                    }
                }
            }
        }
        let error = self.live(settled, started).await.err();
        Ended {
            settled: settled || lock(&self.shared.status).connected,
            error: match error {
                Some(e) => Some(e),
                None if self.shared.enabled.load(Ordering::SeqCst) => Some(LinkError::Closed),
                None => None,
            },
        }
    }

    /// The live session; `Ok` when the peer closed it cleanly or the agent was paused.
    async fn live(&self, settled_before: bool, started: Instant) -> Result<(), LinkError> {
        // Subscribed before connecting: no local change between two sessions is missed.
        let session_changes = self.live.subscribe();
        let mut followed = self
            .hooks
            .on_change
            .as_deref()
            .map(|f| (f, self.live.subscribe()));
        let opened = connect_live(&self.identity, &self.target).await?;
        let mut session = self.hooks.new_session(&self.store, opened.read_only);
        if let Err(e) = session.start() {
            close(&opened);
            return Err(LinkError::Start(e));
        }
        let Opened {
            connection,
            stream,
            read_only,
            ..
        } = opened;
        let mut settled_rounds = 0;
        let mut first = !settled_before;
        // Media wait for the texts: the first settled round of this session lets them go.
        let texts_settled = Notify::new();
        let media = self.media(&connection, read_only, &texts_settled);
        tokio::pin!(media);
        let progress = |stats: &SyncStats| {
            {
                let mut s = lock(&self.shared.status);
                s.docs_received = stats.docs_received;
                s.docs_sent = stats.docs_sent;
            }
            if stats.settled_rounds > settled_rounds {
                settled_rounds = stats.settled_rounds;
                texts_settled.notify_one();
                self.settled_round(stats);
                self.hooks
                    .settled(stats, std::mem::take(&mut first), started);
            }
        };
        let driven = drive(session, stream, Mode::Live(session_changes), progress);
        tokio::pin!(driven);
        let paused = async {
            while self.shared.enabled.load(Ordering::SeqCst) {
                self.shared.wake.notified().await;
            }
        };
        tokio::pin!(paused);
        let result = loop {
            tokio::select! {
                ended = &mut driven => break ended.map(|_| ()).map_err(LinkError::from),
                _ = &mut paused => break Ok(()),
                () = &mut media => {}
                change = next_change(&mut followed) => match change {
                    Ok((f, change)) => {
                        if let Err(e) = f(&change) {
                            break Err(LinkError::Local(e));
                        }
                    }
                    // Missed notices only delay what the hook records until the next sync.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => followed = None,
                },
            }
        };
        connection.close(CloseCode::Done.code(), b"sync done");
        result
    }

    /// Transfers blobs on a live connection, for as long as it lasts (never returns when media
    /// are on): a pass once `texts_settled` fires, another after every change of the store,
    /// and after a growing wait while some blob could not be had.
    async fn media(&self, connection: &quinn::Connection, read_only: bool, texts_settled: &Notify) {
        let Some(replica) = &self.hooks.media else {
            return std::future::pending().await;
        };
        let mut changes = self.live.subscribe();
        texts_settled.notified().await;
        let mut retry = MEDIA_RETRY_MIN;
        loop {
            let mut transfer =
                MediaTransfer::new(connection.clone(), replica.clone()).read_only(read_only);
            if let Some(f) = self.hooks.on_blob.clone() {
                transfer = transfer.on_blob(move |h| f(h));
            }
            let complete = match transfer.run().await {
                Ok(report) => {
                    if report != Default::default() {
                        tracing::debug!(?report, "media pass");
                    }
                    report.complete()
                }
                Err(e) => {
                    tracing::info!(error = %e, "media pass failed");
                    false
                }
            };
            let wait = if complete {
                retry = MEDIA_RETRY_MIN;
                None
            } else {
                let wait = retry;
                retry = (retry * 2).min(MEDIA_RETRY_MAX);
                Some(wait)
            };
            tokio::select! {
                change = changes.recv() => match change {
                    // Coalesce a burst of changes into one pass.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        while changes.try_recv().is_ok() {}
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        if let Some(wait) = wait {
                            tokio::time::sleep(wait).await;
                        } else {
                            std::future::pending::<()>().await;
                        }
                    }
                },
                _ = tokio::time::sleep(wait.unwrap_or(MEDIA_RETRY_MAX)), if wait.is_some() => {}
            }
        }
    }

    /// Updates the status after a reconciliation that ended in sync.
    fn settled_round(&self, stats: &SyncStats) {
        let mut s = lock(&self.shared.status);
        s.connected = true;
        s.last_sync_ms = Some(now_ms());
        s.docs_received = stats.docs_received;
        s.docs_sent = stats.docs_sent;
    }
}

/// The next change of the store, when a hook follows them.
async fn next_change<'a>(
    followed: &mut Option<(&'a OnChange, broadcast::Receiver<DocChange>)>,
) -> Result<(&'a OnChange, DocChange), broadcast::error::RecvError> {
    match followed {
        Some((f, rx)) => rx.recv().await.map(|change| (*f, change)),
        None => std::future::pending().await,
    }
}

/// Exponential backoff, doubled after each failure up to `MAX_BACKOFF`, each wait drawn
/// uniformly between half and all of the current step so that offices cut off by the same
/// relay restart do not all come back in the same instant.
#[derive(Debug)]
struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { step: MIN_BACKOFF }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(MAX_BACKOFF);
        let half = step / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    fn reset(&mut self) {
        self.step = MIN_BACKOFF;
    }
}

/// Runs a sync, or gives up (`None`) when it keeps exchanging frames without moving documents.
async fn until_stalled<T>(
    driven: impl std::future::Future<Output = T>,
    progress: &Mutex<Moved>,
) -> Option<T> {
    tokio::pin!(driven);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            result = &mut driven => return Some(result),
            _ = tick.tick() => {
                let moved = lock(progress);
                if moved.since.elapsed() >= STALL_LIMIT
                    && moved.frames_now - moved.frames_then >= STALL_FRAMES
                {
                    return None;
                }
            }
        }
    }
}

/// When documents last moved during a sync, for [`until_stalled`].
struct Moved {
    docs: u64,
    since: Instant,
    frames_then: u64,
    frames_now: u64,
}

impl Moved {
    fn new() -> Mutex<Self> {
        Mutex::new(Self {
            docs: 0,
            since: Instant::now(),
            frames_then: 0,
            frames_now: 0,
        })
    }

    fn update(progress: &Mutex<Self>, s: &SyncStats) {
        let mut m = lock(progress);
        let docs = s.docs_received + s.docs_sent;
        m.frames_now = s.frames_received;
        if docs != m.docs {
            m.docs = docs;
            m.since = Instant::now();
            m.frames_then = s.frames_received;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_bound_and_resets() {
        let mut b = Backoff::default();
        let mut previous_step = Duration::ZERO;
        for _ in 0..20 {
            let step = b.step;
            let wait = b.next();
            assert!(
                wait >= step / 2 && wait <= step,
                "{wait:?} outside {step:?}"
            );
            assert!(step >= previous_step && step <= MAX_BACKOFF);
            previous_step = step;
        }
        assert_eq!(b.step, MAX_BACKOFF);
        b.reset();
        assert!(b.next() <= MIN_BACKOFF);
    }

    #[tokio::test]
    async fn a_sync_that_moves_no_document_for_long_is_abandoned() {
        let moved = Moved::new();
        let stats = SyncStats {
            docs_received: 3,
            frames_received: 10,
            ..Default::default()
        };
        Moved::update(&moved, &stats);
        // Documents moved just now: a sync still running is waited for.
        let running = until_stalled(std::future::pending::<()>(), &moved);
        assert!(tokio::time::timeout(Duration::from_millis(50), running)
            .await
            .is_err());
        // Frames kept coming for longer than the limit without any document moving.
        {
            let mut m = moved.lock().unwrap();
            m.since = Instant::now() - STALL_LIMIT;
            m.frames_now = m.frames_then + STALL_FRAMES;
        }
        assert_eq!(
            until_stalled(std::future::pending::<()>(), &moved).await,
            None
        );
        assert_eq!(until_stalled(async { 7 }, &moved).await, Some(7));
    }
}
