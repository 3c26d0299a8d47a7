//! A background sync agent: keeps one store in live sync with a relay (or a peer), reconnecting
//! with backoff when the link drops, and reports its state for status displays.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atelier_core::store::DocStore;
use atelier_core::sync::{Role, Session};
use rand::Rng;
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::client;
use crate::identity::{Fingerprint, Identity};
use crate::sync_conn::{drive, LiveChanges, Mode};

/// First wait after a failed connection; doubles up to `MAX_BACKOFF`.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between attempts: an office back online syncs within half a minute.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the agent connects.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
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

/// A running agent; dropping it stops it.
pub struct SyncAgent {
    status: Arc<Mutex<AgentStatus>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    enabled: Arc<std::sync::atomic::AtomicBool>,
}

/// Called after every reconciliation that ended in sync.
pub type OnSettled = dyn Fn(&atelier_core::sync::SyncStats) + Send + Sync;

impl SyncAgent {
    /// Starts syncing `store` with `target` as `identity`. `on_settled` runs after every
    /// completed reconciliation, with the session's counters (to record what the relay holds,
    /// the time of the last sync…).
    pub fn spawn(
        store: Arc<DocStore>,
        live: LiveChanges,
        identity: Identity,
        target: Target,
        on_settled: Arc<OnSettled>,
    ) -> Self {
        let status = Arc::new(Mutex::new(AgentStatus {
            relay: format!("quic://{}", target.addr),
            ..AgentStatus::default()
        }));
        let wake = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let enabled = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let task = tokio::spawn(run(
            store,
            live,
            identity,
            target,
            status.clone(),
            wake.clone(),
            stop_rx,
            on_settled,
            enabled.clone(),
        ));
        Self {
            status,
            wake,
            stop,
            task: Some(task),
            enabled,
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
        self.enabled.store(on, std::sync::atomic::Ordering::SeqCst);
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

#[allow(clippy::too_many_arguments)]
async fn run(
    store: Arc<DocStore>,
    live: LiveChanges,
    identity: Identity,
    target: Target,
    status: Arc<Mutex<AgentStatus>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    on_settled: Arc<OnSettled>,
    enabled: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        if enabled.load(std::sync::atomic::Ordering::SeqCst) {
            let attempt = session_once(
                &store,
                &live,
                &identity,
                &target,
                &status,
                &on_settled,
                &enabled,
                &wake,
            );
            tokio::select! {
                outcome = attempt => {
                    let mut s = lock(&status);
                    s.connected = false;
                    match outcome {
                        Ok(()) => { s.last_error = None; backoff = MIN_BACKOFF; }
                        Err(e) => { tracing::info!(error = %e, "sync link down"); s.last_error = Some(e) }
                    }
                }
                _ = stop.changed() => return,
            }
        }
        let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 4);
        let wait = backoff + Duration::from_millis(jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => backoff = MIN_BACKOFF,
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: reconcile, then stay live until the link drops or the agent is paused.
#[allow(clippy::too_many_arguments)]
async fn session_once(
    store: &Arc<DocStore>,
    live: &LiveChanges,
    identity: &Identity,
    target: &Target,
    status: &Arc<Mutex<AgentStatus>>,
    on_settled: &Arc<OnSettled>,
    enabled: &Arc<std::sync::atomic::AtomicBool>,
    wake: &Arc<Notify>,
) -> Result<(), String> {
    let opened = client::open(identity, target.addr, &target.fingerprint)
        .await
        .map_err(|e| e.to_string())?;
    let (connection, stream) = (opened.connection, opened.stream);
    let rx = live.subscribe();
    let mut session = Session::new(store.clone(), Role::Initiator);
    if opened.read_only {
        session = session.pull_only();
    }
    session.start().map_err(|e| e.to_string())?;
    let mut settled_rounds = 0;
    let status2 = status.clone();
    let on_settled = on_settled.clone();
    let progress = move |stats: &atelier_core::sync::SyncStats| {
        let mut s = lock(&status2);
        s.docs_received = stats.docs_received;
        s.docs_sent = stats.docs_sent;
        if stats.settled_rounds > settled_rounds {
            settled_rounds = stats.settled_rounds;
            s.connected = true;
            s.last_sync_ms = Some(now_ms());
            drop(s);
            on_settled(stats);
        }
    };
    let paused = async {
        while enabled.load(std::sync::atomic::Ordering::SeqCst) {
            wake.notified().await;
        }
    };
    let result = tokio::select! {
        r = drive(session, stream, Mode::Live(rx), progress) => r.map(|_| ()).map_err(|e| e.to_string()),
        _ = paused => Ok(()),
    };
    connection.close(0u32.into(), b"bye");
    result
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
