//! A whole relay in one value: the sled document store, the blob store, the QUIC sync server
//! and the automerge-repo WebSocket endpoint (with `GET /media/{hash}`), started together and
//! stopped together.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use atelier_core::store::{DocStore, Kv, SledKv};

use crate::access::AccessStore;
use crate::blobs::RelayBlobs;
use crate::config::RelayConfig;
use crate::identity::{Fingerprint, Identity};
use crate::live_access::{LiveAccess, Revocable, WatchHandle};
use crate::quota::Quotas;
use crate::reset_key::ResetKey;
use crate::server::{self, ServerConfig, ServerHandle};
use crate::sync_conn::{LiveChanges, SyncHandler};
use crate::ws::{self, WsHandle, WsState};

/// A running relay.
pub struct RelayHandle {
    quic: ServerHandle,
    ws: WsHandle,
    access: LiveAccess,
    watch: WatchHandle,
    quotas: Quotas,
    store: Arc<DocStore>,
    blobs: RelayBlobs,
}

impl RelayHandle {
    /// Where offices connect (`quic://…`).
    pub fn quic_addr(&self) -> SocketAddr {
        self.quic.local_addr()
    }

    /// Where browsers and automerge-repo clients connect (`ws://…/?token=…`).
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws.local_addr()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.quic.fingerprint()
    }

    /// The relay's documents (tests and the demo read them directly).
    pub fn store(&self) -> &Arc<DocStore> {
        &self.store
    }

    /// The relay's blobs (photos, plans, documents), as `relay.toml`'s `[media]` says.
    pub fn blobs(&self) -> &RelayBlobs {
        &self.blobs
    }

    /// The access registry this relay holds in memory (tests count its file reads and its live
    /// sessions).
    pub fn access(&self) -> &LiveAccess {
        &self.access
    }

    /// What each office has written, against its quotas.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Stops accepting, closes every connection, flushes the store.
    pub async fn shutdown(self) {
        self.watch.shutdown().await;
        self.quic.shutdown().await;
        self.ws.shutdown().await;
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "flushing the relay store at shutdown");
        }
    }
}

/// Starts a relay from its configuration (the identity must exist: `atelier-relay init`).
pub async fn spawn(config: &RelayConfig) -> Result<RelayHandle> {
    let identity = Identity::load(&config.data_dir).with_context(|| {
        format!(
            "identité du relais introuvable dans {} (lancez « atelier-relay init »)",
            config.data_dir.display()
        )
    })?;
    let reset_key = ResetKey::load_or_create(&config.data_dir)
        .context("clé de réinitialisation QUIC du relais")?;
    let registry = AccessStore::new(&config.data_dir);
    // Fail at start, not at the first connection, on a registry this relay cannot read.
    let access = LiveAccess::open(registry.clone())
        .with_context(|| format!("lecture du registre {}", registry.path().display()))?;
    let db = config.data_dir.join("store");
    let kv: Arc<dyn Kv> = Arc::new(
        SledKv::open(&db).with_context(|| format!("ouverture du stockage {}", db.display()))?,
    );
    let store = Arc::new(DocStore::new(kv));
    let blobs = RelayBlobs::open_with(&config.data_dir, &config.media)
        .context("ouverture du stockage des médias")?;
    blobs
        .check()
        .await
        .context("stockage des médias inaccessible (voir la table [media] de relay.toml)")?;
    let quotas = Quotas::open(store.clone(), config.quotas.clone())
        .context("lecture des quotas des CAUE")?;
    let live = LiveChanges::attach(&store);
    let quic = server::spawn(ServerConfig {
        max_connections: config.max_connections,
        reset_key: Some(reset_key),
        ..ServerConfig::new(
            identity,
            config.listen,
            Arc::new(access.clone()),
            Arc::new(Revocable::new(
                Arc::new(
                    SyncHandler::new(store.clone(), live)
                        .with_media(Arc::new(blobs.clone()))
                        .with_quotas(quotas.clone()),
                ),
                access.clone(),
            )),
        )
    })
    .with_context(|| format!("démarrage du relais QUIC sur {}", config.listen))?;
    let ws = ws::spawn_ws(
        config.ws_listen,
        WsState::relay(
            store.clone(),
            Arc::new(access.clone()),
            blobs.clone(),
            quotas.clone(),
        ),
    )
    .await
    .with_context(|| format!("démarrage du WebSocket sur {}", config.ws_listen))?;
    // Revocations made by `atelier-relay revoke` (another process) reach live sessions here.
    let watch = access.spawn_watch();
    Ok(RelayHandle {
        quic,
        ws,
        access,
        watch,
        quotas,
        store,
        blobs,
    })
}
