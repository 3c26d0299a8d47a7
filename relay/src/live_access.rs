//! The running relay's access registry, held in memory: watched on disk, so that a device,
//! office or token revoked by `atelier-relay revoke` (another process) loses its open QUIC and
//! WebSocket sessions within [`ACCESS_POLL_INTERVAL`].
//!
//! [`LiveAccess`] answers every check (a `Hello`, a WebSocket upgrade, a `GET /media`) from an
//! in-memory copy of `access.json`: a hash and a constant-time compare, no file read and no
//! blocking-pool task, so a flood of bad tokens costs the relay nothing but that. A watch task
//! ([`LiveAccess::spawn_watch`]) polls the file's identity (size, mtime, inode) and reloads it
//! when it changes; after every reload, and at every poll for tokens that expire, each live
//! session whose device or token is no longer allowed is cut. Sessions register with
//! [`LiveAccess::device_session`] or [`LiveAccess::ws_session`] and hold the returned
//! [`SessionTicket`] for as long as they run.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use atelier_core::mutex::lock;
use futures::future::BoxFuture;
use futures::FutureExt;
use quinn::Connection;
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::access::{self, AccessError, AccessRegistry, AccessStore, TokenHash};
use crate::framing::FramedStream;
use crate::handshake::CloseCode;
use crate::identity::Fingerprint;
use crate::server::{authorized, enrolled, AuthError, Authorizer, ConnectionHandler, Peer};
use crate::ws::{WsAuth, WsPeer};

/// How often the running relay looks at `access.json` for changes made by another process.
/// Half a second keeps a revocation's effect within the "second or two" staff expect, for one
/// `stat` per poll; the file is read again only when its size, mtime or inode changed.
pub const ACCESS_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The reason sent with the close of a session whose access was revoked or expired.
pub const REVOKED_REASON: &str = "access revoked";

/// The access registry of a running relay, in memory, with its live sessions.
#[derive(Clone)]
pub struct LiveAccess {
    inner: Arc<Inner>,
}

struct Inner {
    store: AccessStore,
    registry: RwLock<Arc<AccessRegistry>>,
    /// Identity of the file the registry was last read from.
    stamp: Mutex<Option<FileStamp>>,
    sessions: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    next: u64,
    live: HashMap<u64, LiveSession>,
}

struct LiveSession {
    who: Who,
    cut: watch::Sender<bool>,
}

/// What a live session was allowed by.
#[derive(Clone, Copy)]
enum Who {
    Device(Fingerprint),
    WsToken(TokenHash),
}

/// What identifies a version of `access.json`: writes are atomic renames, so every write
/// changes the inode, and the mtime and size catch an edit in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl LiveAccess {
    /// Reads the registry of `store` into memory (an absent file is an empty registry).
    pub fn open(store: AccessStore) -> Result<Self, AccessError> {
        let stamp = file_stamp(&store)?;
        let registry = store.read(Clone::clone)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                registry: RwLock::new(Arc::new(registry)),
                stamp: Mutex::new(stamp),
                sessions: Mutex::default(),
            }),
        })
    }

    /// The registry on disk behind this one.
    pub fn store(&self) -> &AccessStore {
        &self.inner.store
    }

    /// The registry as this relay knows it now.
    pub fn registry(&self) -> Arc<AccessRegistry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the registry on disk (under its lock, as the CLI does) and takes the result in.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut AccessRegistry) -> Result<T, AccessError>,
    ) -> Result<T, AccessError> {
        let value = self.inner.store.update(f)?;
        self.reload()?;
        Ok(value)
    }

    /// Reads `access.json` again if it changed since the last read, then cuts every session no
    /// longer allowed at `now`. Blocks on file I/O. Returns whether the file had changed.
    pub fn refresh(&self, now: OffsetDateTime) -> Result<bool, AccessError> {
        let stamp = file_stamp(&self.inner.store)?;
        let changed = *lock(&self.inner.stamp) != stamp;
        if changed {
            self.reload()?;
        } else {
            self.sweep(now);
        }
        Ok(changed)
    }

    /// Number of sessions registered now.
    pub fn live_sessions(&self) -> usize {
        lock(&self.inner.sessions).live.len()
    }

    /// Starts the task that calls [`LiveAccess::refresh`] every [`ACCESS_POLL_INTERVAL`].
    pub fn spawn_watch(&self) -> WatchHandle {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let access = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ACCESS_POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let access = access.clone();
                let now = OffsetDateTime::now_utc();
                match tokio::task::spawn_blocking(move || access.refresh(now)).await {
                    Ok(Ok(_)) => failing = false,
                    // A registry this relay cannot read keeps the last good one in force: logged
                    // once, not every half second.
                    Ok(Err(e)) if !failing => {
                        failing = true;
                        warn!("cannot reload the access registry, keeping the previous one: {e}");
                    }
                    Ok(Err(_)) => {}
                    Err(e) => warn!("access registry watch failed: {e}"),
                }
            }
        });
        WatchHandle {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Registers the live session of an enrolled device. Its ticket fires when the device (or
    /// its office) is revoked; at once if that already happened.
    pub fn device_session(&self, fingerprint: Fingerprint) -> SessionTicket {
        self.register(Who::Device(fingerprint))
    }

    /// Registers the live WebSocket session opened with `token`. Its ticket fires when the token
    /// (or its office) is revoked, or expires.
    pub fn ws_session(&self, token: &str) -> SessionTicket {
        match access::parse_token(token) {
            Ok(hash) => self.register(Who::WsToken(hash)),
            Err(_) => SessionTicket::cut(),
        }
    }

    fn register(&self, who: Who) -> SessionTicket {
        // Checked under the sessions lock, which a sweep also holds: a revocation is either
        // seen here or cuts this session in the sweep that follows it.
        let mut sessions = lock(&self.inner.sessions);
        let allowed = allows(&self.registry(), who, OffsetDateTime::now_utc());
        let (cut, rx) = watch::channel(!allowed);
        let id = sessions.next;
        sessions.next += 1;
        sessions.live.insert(id, LiveSession { who, cut });
        SessionTicket {
            cut: Some(rx),
            registered: Some((Arc::downgrade(&self.inner), id)),
        }
    }

    fn reload(&self) -> Result<(), AccessError> {
        // The stamp is taken before the read: a write in between is read now and read again
        // at the next poll, never missed.
        let stamp = file_stamp(&self.inner.store)?;
        let registry = self.inner.store.read(Clone::clone)?;
        *self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
        *lock(&self.inner.stamp) = stamp;
        self.sweep(OffsetDateTime::now_utc());
        Ok(())
    }

    /// Cuts every live session the registry no longer allows at `now`.
    fn sweep(&self, now: OffsetDateTime) {
        let sessions = lock(&self.inner.sessions);
        let registry = self.registry();
        let mut cut = 0usize;
        for session in sessions.live.values() {
            if !*session.cut.borrow() && !allows(&registry, session.who, now) {
                session.cut.send_replace(true);
                cut += 1;
            }
        }
        if cut > 0 {
            info!(
                sessions = cut,
                "live sessions cut: access revoked or expired"
            );
        }
    }
}

/// Whether the registry still allows a session opened by `who`.
fn allows(registry: &AccessRegistry, who: Who, now: OffsetDateTime) -> bool {
    match who {
        Who::Device(fingerprint) => registry.authorize(&fingerprint).is_ok(),
        Who::WsToken(hash) => registry.authorize_ws_hash(&hash, now).is_ok(),
    }
}

fn file_stamp(store: &AccessStore) -> Result<Option<FileStamp>, AccessError> {
    let path = store.path();
    match std::fs::metadata(&path) {
        Ok(meta) => Ok(Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: inode(&meta),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AccessError::Io { path, source }),
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// A live session's registration: [`SessionTicket::revoked`] completes when its access is gone.
/// Dropping it unregisters the session.
pub struct SessionTicket {
    cut: Option<watch::Receiver<bool>>,
    registered: Option<(Weak<Inner>, u64)>,
}

impl SessionTicket {
    /// A ticket that never fires (a session nobody can revoke: tests, peer-to-peer serving).
    pub fn never() -> Self {
        Self {
            cut: None,
            registered: None,
        }
    }

    /// A ticket that has already fired.
    fn cut() -> Self {
        Self {
            cut: Some(watch::channel(true).1),
            registered: None,
        }
    }

    /// Completes once the session's access is revoked or expired.
    pub async fn revoked(&mut self) {
        match &mut self.cut {
            Some(rx) => {
                if rx.wait_for(|cut| *cut).await.is_err() {
                    // The sender lives as long as the registration, so this is a dropped
                    // registry: nothing will cut this session any more.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }

    /// Whether the access is already gone.
    pub fn is_revoked(&self) -> bool {
        self.cut.as_ref().is_some_and(|rx| *rx.borrow())
    }
}

impl Drop for SessionTicket {
    fn drop(&mut self) {
        if let Some((inner, id)) = self.registered.take() {
            if let Some(inner) = inner.upgrade() {
                lock(&inner.sessions).live.remove(&id);
            }
        }
    }
}

/// The running watch task; [`WatchHandle::shutdown`] stops it, dropping it aborts it.
pub struct WatchHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl WatchHandle {
    /// Stops the watch and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The relay's authorizer, answered from memory; enrolment writes `access.json` and takes the
/// new device in at once.
impl Authorizer for LiveAccess {
    fn authorize(
        &self,
        fingerprint: &Fingerprint,
        _now: OffsetDateTime,
    ) -> Result<Peer, AuthError> {
        authorized(self.registry().authorize(fingerprint))
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

/// The WebSocket and media token check, answered from memory.
impl WsAuth for LiveAccess {
    fn authorize(&self, token: &str) -> Option<WsPeer> {
        let grant = self
            .registry()
            .authorize_ws_token(token, OffsetDateTime::now_utc())
            .ok()?;
        Some(WsPeer {
            office: grant.office,
            read_only: grant.read_only,
        })
    }

    fn session(&self, token: &str) -> SessionTicket {
        self.ws_session(token)
    }
}

/// A [`ConnectionHandler`] whose sessions end when their device's access is revoked: the
/// connection is closed with [`CloseCode::Refused`] and [`REVOKED_REASON`].
pub struct Revocable {
    inner: Arc<dyn ConnectionHandler>,
    access: LiveAccess,
}

impl Revocable {
    /// `inner`, cut on revocation as `access` sees it.
    pub fn new(inner: Arc<dyn ConnectionHandler>, access: LiveAccess) -> Self {
        Self { inner, access }
    }
}

impl ConnectionHandler for Revocable {
    fn handle(
        &self,
        peer: Peer,
        stream: FramedStream,
        connection: Connection,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        let mut ticket = self.access.device_session(peer.fingerprint);
        let (fingerprint, office) = (peer.fingerprint, peer.office.clone());
        let run = self.inner.handle(peer, stream, connection.clone());
        async move {
            tokio::select! {
                result = run => result,
                _ = ticket.revoked() => {
                    info!(%fingerprint, %office, "closing a session whose access was revoked");
                    connection.close(CloseCode::Refused.code(), REVOKED_REASON.as_bytes());
                    Ok(())
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn ws_checks_read_nothing_and_see_changes_made_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::new(dir.path());
        let token = store
            .update(|r| {
                r.issue_ws_token(&mut OsRng, "caue-63", true, time::Duration::hours(1), now())
            })
            .unwrap();
        let live = LiveAccess::open(store.clone()).unwrap();
        let loads = store.loads();
        for _ in 0..1000 {
            assert_eq!(WsAuth::authorize(&live, &"0".repeat(64)), None);
            assert_eq!(WsAuth::authorize(&live, "not a token"), None);
        }
        assert_eq!(
            WsAuth::authorize(&live, &token),
            Some(WsPeer {
                office: "caue-63".into(),
                read_only: true
            })
        );
        assert_eq!(store.loads(), loads, "token checks read access.json");

        // Another process (another store on the same directory) revokes the office.
        let mut ticket = live.ws_session(&token);
        assert!(!ticket.is_revoked());
        AccessStore::new(dir.path())
            .update(|r| r.revoke_office("caue-63"))
            .unwrap();
        assert!(live.refresh(now()).unwrap());
        assert!(ticket.is_revoked());
        assert_eq!(WsAuth::authorize(&live, &token), None);
        // Polling an unchanged file reads nothing.
        let loads = store.loads();
        assert!(!live.refresh(now()).unwrap());
        assert_eq!(store.loads(), loads);
        futures::executor::block_on(ticket.revoked());
        drop(ticket);
        assert_eq!(live.live_sessions(), 0);
    }

    #[test]
    fn expiry_cuts_a_session_at_the_next_poll() {
        let dir = tempfile::tempdir().unwrap();
        let live = LiveAccess::open(AccessStore::new(dir.path())).unwrap();
        let token = live
            .update(|r| {
                r.issue_ws_token(
                    &mut OsRng,
                    "caue-15",
                    false,
                    time::Duration::hours(1),
                    now(),
                )
            })
            .unwrap();
        let ticket = live.ws_session(&token);
        assert!(!ticket.is_revoked());
        live.refresh(now() + time::Duration::hours(2)).unwrap();
        assert!(ticket.is_revoked());
        // A session opened with a token already refused is cut from the start.
        assert!(live.ws_session(&"0".repeat(64)).is_revoked());
        assert!(live.ws_session("garbage").is_revoked());
    }

    #[test]
    fn revoking_a_device_cuts_its_sessions_only() {
        let dir = tempfile::tempdir().unwrap();
        let live = LiveAccess::open(AccessStore::new(dir.path())).unwrap();
        let enrol = |office: &str, n: u8| {
            let fp = Fingerprint::from_bytes([n; 32]);
            let token = live
                .update(|r| r.invite(&mut OsRng, office, false, time::Duration::hours(1), now()))
                .unwrap();
            Authorizer::enrol(&live, &token, &fp, now()).unwrap();
            fp
        };
        let (a, b) = (enrol("caue-15", 1), enrol("caue-63", 2));
        let (ta, tb) = (live.device_session(a), live.device_session(b));
        AccessStore::new(dir.path())
            .update(|r| r.revoke_office("caue-15"))
            .unwrap();
        live.refresh(now()).unwrap();
        assert!(ta.is_revoked());
        assert!(!tb.is_revoked());
        assert!(Authorizer::authorize(&live, &a, now()).is_err());
        assert!(Authorizer::authorize(&live, &b, now()).is_ok());
    }
}
