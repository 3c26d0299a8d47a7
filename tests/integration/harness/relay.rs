//! A whole relay (sled store, QUIC, WebSocket) on loopback ports, in a temporary data directory.

use std::net::SocketAddr;
use std::sync::Arc;

use atelier_core::store::DocStore;
use atelier_relay::access::{AccessError, AccessRegistry, AccessStore};
use atelier_relay::config::{MediaConfig, RelayConfig};
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::quota::QuotaConfig;
use atelier_relay::relay::{self, RelayHandle};
use atelier_relay::tls_reload::TlsConfig;
use rand::rngs::OsRng;
use tempfile::TempDir;

/// A whole relay on loopback, with its data directory (identity, registry, sled store).
pub(crate) struct TestRelay {
    pub dir: TempDir,
    pub handle: Option<RelayHandle>,
    /// Where the relay keeps blobs (its `[media]` table): `<dir>/media` unless a test says so.
    pub media: MediaConfig,
    /// What each office may write (its `[quotas]` table): the defaults unless a test says so.
    pub quotas: QuotaConfig,
    /// Cap on simultaneous QUIC connections (`max_connections` in relay.toml).
    pub max_connections: usize,
    /// `wss://` certificate and key (`[tls]` in relay.toml): plain `ws://` unless a test says so.
    pub tls: Option<TlsConfig>,
}

impl TestRelay {
    /// A new relay on `127.0.0.1:0` (QUIC and WebSocket), with a fresh identity.
    pub async fn start() -> Self {
        Self::start_with_media(MediaConfig::default()).await
    }

    /// [`TestRelay::start`] with blobs where `media` says (an S3 bucket, a small quota).
    pub async fn start_with_media(media: MediaConfig) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), media, QuotaConfig::default()).await
    }

    /// [`TestRelay::start`] with small quotas.
    pub async fn start_with_quotas(quotas: QuotaConfig) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), MediaConfig::default(), quotas).await
    }

    /// A relay with its data in `dir` (on a power-cut filesystem), blobs where `media` says,
    /// and `quotas`.
    pub async fn start_in(dir: TempDir, media: MediaConfig, quotas: QuotaConfig) -> Self {
        Self::start_configured(Self {
            dir,
            handle: None,
            media,
            quotas,
            max_connections: RelayConfig::default().max_connections,
            tls: None,
        })
        .await
    }

    /// [`TestRelay::start`] serving `wss://` with the certificate and key `tls` names.
    pub async fn start_with_tls(tls: TlsConfig) -> Self {
        Self::start_configured(Self {
            dir: tempfile::tempdir().unwrap(),
            handle: None,
            media: MediaConfig::default(),
            quotas: QuotaConfig::default(),
            max_connections: RelayConfig::default().max_connections,
            tls: Some(tls),
        })
        .await
    }

    /// [`TestRelay::start`] with a cap on simultaneous connections.
    pub async fn start_with_max_connections(max_connections: usize) -> Self {
        Self::start_configured(Self {
            dir: tempfile::tempdir().unwrap(),
            handle: None,
            media: MediaConfig::default(),
            quotas: QuotaConfig::default(),
            max_connections,
            tls: None,
        })
        .await
    }

    /// Starts `relay` (not yet running) on `127.0.0.1:0`, with a fresh identity.
    async fn start_configured(mut relay: Self) -> Self {
        Identity::load_or_create(relay.dir.path()).unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        relay.spawn(any, any).await;
        relay
    }

    async fn spawn(&mut self, listen: SocketAddr, ws_listen: SocketAddr) {
        let config = RelayConfig {
            listen,
            ws_listen,
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.dir.path().to_path_buf(),
            media: self.media.clone(),
            quotas: self.quotas.clone(),
            max_connections: self.max_connections,
            tls: self.tls.clone(),
            ..RelayConfig::default()
        };
        self.handle = Some(relay::spawn(&config).await.unwrap());
    }

    /// Stops the relay and starts it again from its data directory, on the same ports (as an
    /// operator restarting it would).
    pub async fn restart(&mut self) {
        let addrs = self.stop().await;
        self.resume(addrs).await;
    }

    /// Stops the relay for a while (see [`TestRelay::resume`] to bring it back).
    pub async fn stop(&mut self) -> (SocketAddr, SocketAddr) {
        let handle = self.handle.take().expect("relay running");
        let addrs = (handle.quic_addr(), handle.ws_addr());
        handle.shutdown().await;
        addrs
    }

    /// Starts a stopped relay again on the addresses [`TestRelay::stop`] gave.
    pub async fn resume(&mut self, (listen, ws_listen): (SocketAddr, SocketAddr)) {
        self.spawn(listen, ws_listen).await;
    }

    pub fn handle(&self) -> &RelayHandle {
        self.handle.as_ref().expect("relay running")
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle().quic_addr()
    }

    /// Where automerge-repo clients connect (the token goes in the URL or the join message).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.handle().ws_addr())
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.handle().fingerprint()
    }

    pub fn store(&self) -> &Arc<DocStore> {
        self.handle().store()
    }

    /// The relay's access registry, as `atelier-relay` commands change it; a running relay takes
    /// each change in at once (rather than at its next poll), so a test can act on it next.
    pub fn access(&self) -> RelayAccess<'_> {
        RelayAccess { relay: self }
    }

    /// The relay's own certificate, for clients that trust it without an identity of theirs.
    pub fn identity(&self) -> Identity {
        Identity::load(self.dir.path()).unwrap()
    }

    /// A one-time enrolment token for `office`, as `atelier-relay invite` makes.
    pub fn invite(&self, office: &str, read_only: bool) -> String {
        let now = time::OffsetDateTime::now_utc();
        self.access()
            .update(|r| r.invite(&mut OsRng, office, read_only, time::Duration::hours(1), now))
            .unwrap()
    }

    /// A WebSocket bearer token for `office`'s browsers, as `atelier-relay token` makes.
    pub fn ws_token(&self, office: &str, read_only: bool) -> String {
        let now = time::OffsetDateTime::now_utc();
        self.access()
            .update(|r| {
                r.issue_ws_token(
                    &mut OsRng,
                    office,
                    read_only,
                    atelier_relay::access::DEFAULT_WS_TOKEN_TTL,
                    now,
                )
            })
            .unwrap()
    }

    pub async fn shutdown(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

/// [`TestRelay::access`]: `access.json` written as the CLI writes it, then taken in by the
/// running relay, if any.
pub(crate) struct RelayAccess<'a> {
    relay: &'a TestRelay,
}

impl RelayAccess<'_> {
    fn store(&self) -> AccessStore {
        AccessStore::new(self.relay.dir.path())
    }

    /// Changes the registry on disk, then has the running relay read it.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut AccessRegistry) -> Result<T, AccessError>,
    ) -> Result<T, AccessError> {
        let value = self.store().update(f)?;
        if let Some(handle) = &self.relay.handle {
            handle
                .access()
                .refresh(time::OffsetDateTime::now_utc())
                .unwrap();
        }
        Ok(value)
    }

    /// Reads the registry on disk.
    pub fn read<T>(&self, f: impl FnOnce(&AccessRegistry) -> T) -> Result<T, AccessError> {
        self.store().read(f)
    }
}
