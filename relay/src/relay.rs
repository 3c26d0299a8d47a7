//! A whole relay in one value: the sled document store, the blob store, the QUIC sync server,
//! the automerge-repo WebSocket endpoint (with `GET /media/{hash}`) and the admin listener
//! (metrics, health, backup), started together and stopped together.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use atelier_core::store::keys::META_RELAY_FORMAT;
use atelier_core::store::{Batch, DocStore, Kv, SledKv};

use crate::access::AccessStore;
use crate::admin::{self, AdminHandle, AdminState};
use crate::blobs::RelayBlobs;
use crate::config::RelayConfig;
use crate::identity::{Fingerprint, Identity};
use crate::live_access::{LiveAccess, Revocable, WatchHandle};
use crate::metrics::RelayMetrics;
use crate::quota::Quotas;
use crate::reset_key::ResetKey;
use crate::server::{self, ServerConfig, ServerHandle};
use crate::sync_conn::{LiveChanges, SyncHandler};
use crate::tls_reload::ReloadableCert;
use crate::ws::{self, WsHandle, WsState};

/// The document store's directory in the data directory.
pub const STORE_DIR: &str = "store";

/// On-disk format of the relay's store (`m/relay-format`), as core's `replica::FORMAT_VERSION`
/// is a replica's: bumped when the layout changes; a relay refuses a newer store instead of
/// rewriting it. Stores from before the key existed are format 1 and get the key at open.
pub const RELAY_FORMAT_VERSION: u32 = 1;

/// Errors opening the relay's store, worded for the IT staff who run it.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    /// Written by a newer relay.
    #[error("le stockage du relais « {path} » est au format {found}, cette version d'atelier-relay lit le format {RELAY_FORMAT_VERSION} : mettez atelier-relay à jour (rien n'a été modifié)")]
    Newer { path: String, found: String },
    /// sled refused (in use by another process, damaged, unreadable).
    #[error("ouverture du stockage {path}")]
    Store {
        path: String,
        #[source]
        source: Box<atelier_core::store::StoreError>,
    },
}

/// Opens (or creates) the relay's store in `data_dir`, checking its format version.
pub fn open_store(data_dir: &Path) -> Result<Arc<DocStore>, StoreOpenError> {
    let db = data_dir.join(STORE_DIR);
    let path = db.display().to_string();
    let store_err = |source| StoreOpenError::Store {
        path: path.clone(),
        source: Box::new(source),
    };
    let kv: Arc<dyn Kv> = Arc::new(SledKv::open(&db).map_err(store_err)?);
    let current = RELAY_FORMAT_VERSION.to_string();
    match kv.get(META_RELAY_FORMAT).map_err(store_err)? {
        Some(found) if found == current.as_bytes() => {}
        Some(found) => {
            return Err(StoreOpenError::Newer {
                path: path.clone(),
                found: String::from_utf8_lossy(&found).into_owned(),
            })
        }
        None => {
            let mut batch = Batch::default();
            batch.put(META_RELAY_FORMAT.to_vec(), current.into_bytes());
            kv.apply(batch).map_err(store_err)?;
            kv.flush().map_err(store_err)?;
        }
    }
    Ok(Arc::new(DocStore::new(kv)))
}

/// A running relay.
pub struct RelayHandle {
    quic: ServerHandle,
    ws: WsHandle,
    /// The `wss://` certificate, when `[tls]` is set.
    tls: Option<Arc<ReloadableCert>>,
    admin: AdminHandle,
    ready: Arc<AtomicBool>,
    metrics: RelayMetrics,
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

    /// Whether browsers connect with `wss://` (`[tls]` is set).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads the `wss://` certificate and key again (SIGHUP): new handshakes present the renewed
    /// certificate; open WebSockets and QUIC sessions are not touched. `Ok(false)` without
    /// `[tls]`; on error the previous certificate stays.
    pub fn reload_tls(&self) -> Result<bool, crate::tls_reload::TlsError> {
        match &self.tls {
            Some(cert) => cert.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Where operators' tools ask (`/metrics`, `/healthz`, `/readyz`, `/backup`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// The relay's counters (also on `/metrics`).
    pub fn metrics(&self) -> &RelayMetrics {
        &self.metrics
    }

    /// Stops announcing readiness (`/readyz` answers 503) while everything keeps running: what
    /// an operator does before taking the relay out of a load balancer. [`RelayHandle::shutdown`]
    /// starts with it.
    pub fn drain(&self) {
        self.ready.store(false, Ordering::Release);
        self.metrics.set_ready(false);
    }

    /// What each office has written, against its quotas.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Stops accepting, closes every connection, flushes the store.
    pub async fn shutdown(self) {
        self.drain();
        self.watch.shutdown().await;
        self.quic.shutdown().await;
        self.ws.shutdown().await;
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "flushing the relay store at shutdown");
        }
        // Last, so that `/readyz` answers "not ready" for as long as the store is closing.
        self.admin.shutdown().await;
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
    let store = open_store(&config.data_dir)?;
    let metrics = RelayMetrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let admin_token = admin::load_or_create_token(&config.data_dir)
        .context("jeton d'administration du relais")?;
    let blobs = RelayBlobs::open_with(&config.data_dir, &config.media)
        .context("ouverture du stockage des médias")?;
    blobs
        .check()
        .await
        .context("stockage des médias inaccessible (voir la table [media] de relay.toml)")?;
    let quotas = Quotas::open(store.clone(), config.quotas.clone())
        .context("lecture des quotas des CAUE")?
        .with_metrics(metrics.clone());
    let live = LiveChanges::attach(&store);
    let quic = server::spawn(ServerConfig {
        max_connections: config.max_connections,
        reset_key: Some(reset_key),
        metrics: Some(metrics.clone()),
        ..ServerConfig::new(
            identity,
            config.listen,
            Arc::new(access.clone()),
            Arc::new(Revocable::new(
                Arc::new(
                    SyncHandler::new(store.clone(), live)
                        .with_media(Arc::new(blobs.clone()))
                        .with_quotas(quotas.clone())
                        .with_metrics(metrics.clone()),
                ),
                access.clone(),
            )),
        )
    })
    .with_context(|| format!("démarrage du relais QUIC sur {}", config.listen))?;
    let ws_state = WsState::relay(
        store.clone(),
        Arc::new(access.clone()),
        blobs.clone(),
        quotas.clone(),
    )
    .with_metrics(metrics.clone());
    let tls = match &config.tls {
        Some(tls) => {
            Some(ReloadableCert::load(tls).context("certificat TLS du WebSocket ([tls])")?)
        }
        None => None,
    };
    let ws = match &tls {
        Some(cert) => {
            let server = cert
                .server_config()
                .context("configuration TLS du WebSocket")?;
            ws::spawn_wss(config.ws_listen, ws_state, server).await
        }
        None => ws::spawn_ws(config.ws_listen, ws_state).await,
    }
    .with_context(|| format!("démarrage du WebSocket sur {}", config.ws_listen))?;
    // Revocations made by `atelier-relay revoke` (another process) reach live sessions here.
    let watch = access.spawn_watch();
    let admin = admin::spawn(
        config.admin_listen,
        AdminState {
            metrics: metrics.clone(),
            store: store.clone(),
            access: access.clone(),
            data_dir: config.data_dir.clone(),
            ready: ready.clone(),
            token: admin_token.into(),
        },
    )
    .await
    .with_context(|| {
        format!(
            "démarrage de l'écoute d'administration sur {}",
            config.admin_listen
        )
    })?;
    ready.store(true, Ordering::Release);
    metrics.set_ready(true);
    Ok(RelayHandle {
        quic,
        ws,
        tls,
        admin,
        ready,
        metrics,
        access,
        watch,
        quotas,
        store,
        blobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_a_newer_format_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        // A store from before the format key: format 1, and it gets the key.
        {
            let kv = SledKv::open(&dir.path().join(STORE_DIR)).unwrap();
            kv.flush().unwrap();
        }
        let store = open_store(dir.path()).unwrap();
        assert_eq!(
            store.kv().get(META_RELAY_FORMAT).unwrap().as_deref(),
            Some(b"1".as_slice())
        );
        let mut batch = Batch::default();
        batch.put(META_RELAY_FORMAT.to_vec(), b"2".to_vec());
        store.kv().apply(batch).unwrap();
        store.flush().unwrap();
        drop(store);
        let err = open_store(dir.path()).err().unwrap().to_string();
        assert!(err.contains("format 2"), "{err}");
        assert!(err.contains("mettez atelier-relay à jour"), "{err}");
        // Nothing rewritten.
        let kv = SledKv::open(&dir.path().join(STORE_DIR)).unwrap();
        assert_eq!(
            kv.get(META_RELAY_FORMAT).unwrap().as_deref(),
            Some(b"2".as_slice())
        );
    }
}
