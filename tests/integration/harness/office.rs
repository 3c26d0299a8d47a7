//! One office's device: a replica on disk and its identity, enrolled with a [`TestRelay`] and
//! synced through it as `atelier join` and `atelier sync` do (texts, then media).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::replica::{ListFilter, Replica};
use atelier_core::store::DocStore;
use atelier_core::sync::{Role, Session, SyncStats};
use atelier_core::{DocumentId, Resource};
use atelier_relay::agent::{self, Converged, Target};
use atelier_relay::client::{self, ClientError};
use atelier_relay::handshake::CloseCode;
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::media_sync::{MediaReport, MediaTransfer, ReplicaBlobs};
use atelier_relay::server::{self, Peer, PinnedPeers, ServerConfig, ServerHandle};
use atelier_relay::sync_conn::{drive, DriveError, LiveChanges, Mode, SyncHandler};
use serde_json::json;
use tempfile::TempDir;
use tokio::time::timeout;

use super::{TestRelay, WAIT};

/// One office's device: a replica on disk and its identity, as `atelier init` makes them.
pub(crate) struct Office {
    pub dir: TempDir,
    /// Shared with media transfers and agents.
    pub replica: Arc<Replica>,
}

/// Why a test sync failed.
#[derive(Debug)]
#[allow(dead_code)] // Read through `Debug` in assertion messages.
pub(crate) enum SyncFailed {
    Connect(ClientError),
    Drive(DriveError),
    TimedOut,
}

impl Office {
    pub fn new(office: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let replica = Arc::new(Replica::init(dir.path(), office.parse().unwrap()).unwrap());
        Identity::load_or_create(&dir.path().join("identity")).unwrap();
        Self { dir, replica }
    }

    /// A new office's device, enrolled with `relay` (read-only or not).
    pub async fn enrolled(office: &str, relay: &TestRelay, read_only: bool) -> Self {
        let device = Self::new(office);
        device.join(relay, read_only).await;
        device
    }

    pub fn identity(&self) -> Identity {
        Identity::load(&self.dir.path().join("identity")).unwrap()
    }

    pub fn store(&self) -> &Arc<DocStore> {
        self.replica.store()
    }

    /// Enrols this device with the relay, as `atelier join` does.
    pub async fn join(&self, relay: &TestRelay, read_only: bool) {
        let token = relay.invite(self.replica.office().as_str(), read_only);
        let enrolled = timeout(
            WAIT,
            client::enrol(&self.identity(), relay.addr(), &relay.fingerprint(), &token),
        )
        .await
        .expect("enrolment timed out")
        .unwrap();
        assert_eq!(enrolled.office, self.replica.office().as_str());
    }

    /// Syncs with the server at `addr` until both sides hold the same documents, as
    /// `atelier sync` does.
    pub async fn sync_with(
        &self,
        addr: SocketAddr,
        fingerprint: &Fingerprint,
    ) -> Result<SyncStats, SyncFailed> {
        self.sync_within(addr, fingerprint, WAIT, |_| {}).await
    }

    /// [`Office::sync_with`], given up after `bound`; `on_progress` sees the counters.
    pub async fn sync_within(
        &self,
        addr: SocketAddr,
        fingerprint: &Fingerprint,
        bound: Duration,
        on_progress: impl FnMut(&SyncStats) + Send,
    ) -> Result<SyncStats, SyncFailed> {
        let opened = timeout(WAIT, client::open(&self.identity(), addr, fingerprint))
            .await
            .expect("connection timed out")
            .map_err(SyncFailed::Connect)?;
        let (connection, stream) = (opened.connection, opened.stream);
        let mut session = Session::new(self.store().clone(), Role::Initiator)
            .with_office_lookup(self.replica.office_lookup());
        if opened.read_only {
            session = session.pull_only();
        }
        session.start().unwrap();
        let result = timeout(
            bound,
            drive(session, stream, Mode::UntilConverged, on_progress),
        )
        .await
        .map_err(|_| SyncFailed::TimedOut);
        connection.close(CloseCode::Done.code(), b"done");
        result?.map_err(SyncFailed::Drive)
    }

    /// Syncs with the relay, which must succeed, and records what it published.
    pub async fn sync(&self, relay: &TestRelay) -> SyncStats {
        let stats = self
            .sync_with(relay.addr(), &relay.fingerprint())
            .await
            .unwrap_or_else(|e| panic!("{} could not sync: {e:?}", self.replica.office()));
        self.replica
            .record_synced_except(&stats.unpublished_ids)
            .unwrap();
        stats
    }

    /// Where this device syncs: `relay`, pinned.
    pub fn target(relay: &TestRelay) -> Target {
        Target {
            url: relay.addr().into(),
            fingerprint: relay.fingerprint(),
            is_relay: true,
        }
    }

    /// Syncs the texts with the relay, then keeps the connection for media, as `atelier sync`
    /// does.
    pub async fn converge(&self, relay: &TestRelay) -> Converged {
        self.converge_to(&Self::target(relay)).await
    }

    /// [`Office::converge`] with any target: the relay, or a peer serving its replica.
    pub async fn converge_to(&self, target: &Target) -> Converged {
        let replica = self.replica.clone();
        let session = move |read_only| {
            let s = Session::new(replica.store().clone(), Role::Initiator)
                .with_office_lookup(replica.office_lookup());
            if read_only {
                s.pull_only()
            } else {
                s
            }
        };
        let converged = timeout(
            WAIT,
            agent::converge(&self.identity(), target, session, |_| {}),
        )
        .await
        .expect("sync timed out")
        .unwrap_or_else(|e| panic!("{} could not sync: {e}", self.replica.office()));
        self.replica
            .record_synced_except(&converged.stats.unpublished_ids)
            .unwrap();
        converged
    }

    /// A one-shot `atelier sync`: texts, then media both ways; what the media part did.
    pub async fn sync_media(&self, relay: &TestRelay) -> MediaReport {
        self.media_with(relay, |t| t).await
    }

    /// [`Office::sync_media`] with a transfer set up by `setup` (a byte budget, a forced
    /// upload…).
    pub async fn media_with(
        &self,
        relay: &TestRelay,
        setup: impl FnOnce(MediaTransfer) -> MediaTransfer,
    ) -> MediaReport {
        let converged = self.converge(relay).await;
        let transfer = MediaTransfer::new(converged.connection.clone(), self.replica.clone())
            .read_only(converged.read_only);
        let report = timeout(WAIT, setup(transfer).run())
            .await
            .expect("media transfer timed out")
            .unwrap_or_else(|e| panic!("{} media transfer: {e}", self.replica.office()));
        converged.close();
        report
    }

    /// Serves this replica, texts and media, to `peer` only, as `atelier serve --allow
    /// FP:OFFICE` does.
    pub fn serve_to(&self, peer: &Office) -> ServerHandle {
        server::spawn(ServerConfig::new(
            self.identity(),
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(PinnedPeers::new([Peer {
                fingerprint: peer.identity().fingerprint(),
                office: peer.replica.office().to_string(),
                read_only: false,
            }])),
            Arc::new(
                SyncHandler::new(self.store().clone(), LiveChanges::attach(self.store()))
                    .with_media(Arc::new(ReplicaBlobs::new(self.replica.clone()))),
            ),
        ))
        .unwrap()
    }

    /// Adds a resource of this office.
    pub fn create(&self, title: &str, description: &str) -> DocumentId {
        let r = Resource::from_json(&json!({
            "kind": "realisation",
            "title": title,
            "description": description,
            "office": self.replica.office().as_str(),
        }))
        .unwrap();
        self.replica
            .create(&r, &mut rand::thread_rng(), now_ms())
            .unwrap()
    }

    pub fn edit(&self, id: &DocumentId, edit: Edit) {
        self.replica.edit(id, &[edit], now_ms()).unwrap();
    }

    /// The titles of this office's listing, sorted.
    pub fn titles(&self) -> Vec<String> {
        let mut titles: Vec<String> = self
            .replica
            .list(&ListFilter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.title)
            .collect();
        titles.sort();
        titles
    }
}
