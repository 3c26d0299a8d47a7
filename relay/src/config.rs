//! The relay's configuration file (`atelier-relay serve --config relay.toml`).
//!
//! Every field is optional and documented with its default. Unknown keys are rejected, so a
//! misspelt setting is reported instead of silently ignored. A minimal file:
//!
//! ```toml
//! listen = "0.0.0.0:4433"
//! data_dir = "/var/lib/atelier-relay"
//! ```
//!
//! Blobs (photos, plans, documents) stay in `<data_dir>/media` unless a `[media]` table names
//! an S3-compatible bucket:
//!
//! ```toml
//! [media]
//! s3_bucket = "atelier-medias"
//! s3_endpoint = "https://s3.fr-par.scw.cloud"
//! s3_region = "fr-par"
//! # s3_access_key_id / s3_secret_access_key, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
//! quota_per_office = 20_000_000_000
//! ```
//!
//! Browsers over `wss://` without a reverse proxy (PEM files, read again on SIGHUP):
//!
//! ```toml
//! [tls]
//! cert = "/etc/atelier-relay/tls/fullchain.pem"
//! key = "/etc/atelier-relay/tls/privkey.pem"
//! ```
//!
//! What each office may write (see `quota.rs` for the defaults and why):
//!
//! ```toml
//! [quotas]
//! max_documents = 50_000
//! max_bytes = 2_000_000_000
//! max_changes_per_minute = 20_000
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::blobs::DEFAULT_OFFICE_MEDIA_QUOTA;
use crate::quota::QuotaConfig;
use crate::server::MAX_CONNECTIONS;
use crate::tls_reload::TlsConfig;

/// Default QUIC listen address: loopback, so a relay is reachable from other machines only when
/// its configuration says so.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4433));

/// Default WebSocket listen address for browser clients, loopback too.
pub const DEFAULT_WS_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4480));

/// Default address of the admin listener (`/metrics`, `/healthz`, `/readyz`, `/backup`):
/// loopback, so only this machine's monitoring and backup tools reach it.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4490));

/// Default data directory, relative to the configuration file's directory.
pub const DEFAULT_DATA_DIR: &str = "data";

/// Default lifetime of an enrolment token, in hours: three days leaves a weekend between the
/// IT staff sending a token and the office using it.
pub const DEFAULT_TOKEN_TTL_HOURS: u32 = 72;

/// Default log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Errors loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration (syntax, unknown key, wrong type); the
    /// message names the key and line.
    #[error("invalid configuration in {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A value is well-formed but unusable.
    #[error("invalid configuration in {path}: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The relay's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// UDP address the QUIC server listens on. Default `127.0.0.1:4433` (loopback only); set
    /// `0.0.0.0:4433` or `[::]:4433` to accept offices from the network.
    pub listen: SocketAddr,
    /// TCP address of the WebSocket endpoint for browser clients. Default `127.0.0.1:4480`.
    pub ws_listen: SocketAddr,
    /// TCP address of the admin listener: Prometheus metrics, health and readiness, backups.
    /// Default `127.0.0.1:4490`. Keep it on loopback (or a management network): `/metrics`
    /// tells who is connected how much.
    pub admin_listen: SocketAddr,
    /// Directory holding the relay's identity and its access registry (`access.json`).
    /// Default `data`; a relative path is taken relative to the configuration file's directory.
    pub data_dir: PathBuf,
    /// Most simultaneous connections; further ones are refused. A quarter is kept for enrolled
    /// devices: connections still handshaking never take it. Default 512.
    pub max_connections: usize,
    /// Lifetime of enrolment tokens, in hours. Default 72.
    pub token_ttl_hours: u32,
    /// Log filter, e.g. `info` or `atelier_relay=debug,quinn=warn`. Default `info`; the
    /// `RUST_LOG` environment variable overrides it.
    pub log_level: String,
    /// Where the relay keeps blobs, and how many bytes of them each office may store.
    pub media: MediaConfig,
    /// `wss://` on `ws_listen`: certificate and key files (PEM), read again on SIGHUP.
    /// Default: none, plain `ws://` (behind a TLS proxy, or on loopback).
    pub tls: Option<TlsConfig>,
    /// What each office may write: documents, bytes, changes per minute (`[quotas]`).
    pub quotas: QuotaConfig,
}

/// The `[media]` table: the relay's blob storage and per-office quota.
///
/// With no `s3_bucket`, blobs are files under `<data_dir>/media`. With one, they go to that
/// bucket of any S3-compatible service; receives in progress stay on local disk in either case
/// (`<data_dir>/media-partial`). Settings left out of the file are taken from the usual
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`), so secrets need not be written in the file.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Bucket holding the blobs. Default: none, blobs stay in `<data_dir>/media`.
    pub s3_bucket: Option<String>,
    /// The service's URL, e.g. `https://s3.fr-par.scw.cloud` or `http://127.0.0.1:9000`
    /// (MinIO, Garage). Default: AWS itself.
    pub s3_endpoint: Option<String>,
    /// The bucket's region. Default: `AWS_REGION`, else `us-east-1`.
    pub s3_region: Option<String>,
    /// Access key. Default: `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// Secret key. Default: `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<String>,
    /// Allows a plain `http://` endpoint (a service on the same host or network). Default false.
    pub s3_allow_http: bool,
    /// Most bytes of blobs one office may store on the relay. Default 20 GB
    /// ([`DEFAULT_OFFICE_MEDIA_QUOTA`]).
    pub quota_per_office: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            quota_per_office: DEFAULT_OFFICE_MEDIA_QUOTA,
        }
    }
}

// By hand, so the secret key never reaches a log.
impl std::fmt::Debug for MediaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaConfig")
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &self.s3_secret_access_key.as_ref().map(|_| "…"),
            )
            .field("s3_allow_http", &self.s3_allow_http)
            .field("quota_per_office", &self.quota_per_office)
            .finish()
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            ws_listen: DEFAULT_WS_LISTEN,
            admin_listen: DEFAULT_ADMIN_LISTEN,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_connections: MAX_CONNECTIONS,
            token_ttl_hours: DEFAULT_TOKEN_TTL_HOURS,
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            media: MediaConfig::default(),
            tls: None,
            quotas: QuotaConfig::default(),
        }
    }
}

impl RelayConfig {
    /// Parses a configuration from TOML text; `origin` names it in errors. Relative paths stay
    /// relative.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Loads the configuration file at `path`, resolving `data_dir` against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml(&text, path)?;
        if config.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new(""));
            config.data_dir = base.join(&config.data_dir);
        }
        Ok(config)
    }

    fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |message: &str| ConfigError::Value {
            path: origin.to_owned(),
            message: message.to_owned(),
        };
        if self.max_connections == 0 {
            return Err(invalid("max_connections must be at least 1"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(invalid(&format!("log_level {:?}: {e}", self.log_level)));
        }
        if self.token_ttl_hours == 0 {
            return Err(invalid("token_ttl_hours must be at least 1"));
        }
        if u64::from(self.token_ttl_hours) * 3600
            > crate::access::MAX_TOKEN_TTL.whole_seconds().unsigned_abs()
        {
            return Err(invalid(&format!(
                "token_ttl_hours must be at most {}",
                crate::access::MAX_TOKEN_TTL.whole_hours()
            )));
        }
        if self.media.quota_per_office == 0 {
            return Err(invalid("media.quota_per_office must be at least 1"));
        }
        let q = &self.quotas;
        if q.max_documents == 0 || q.max_bytes == 0 || q.max_changes_per_minute == 0 {
            return Err(invalid(
                "quotas.max_documents, quotas.max_bytes and quotas.max_changes_per_minute must be at least 1",
            ));
        }
        if self.media.s3_bucket.as_deref() == Some("") {
            return Err(invalid("media.s3_bucket must not be empty"));
        }
        if self.media.s3_bucket.is_none()
            && (self.media.s3_endpoint.is_some() || self.media.s3_access_key_id.is_some())
        {
            return Err(invalid(
                "media.s3_endpoint and media.s3_access_key_id need media.s3_bucket",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_documented_values() {
        let config = RelayConfig::from_toml("", Path::new("relay.toml")).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:4433");
        assert_eq!(config.ws_listen.to_string(), "127.0.0.1:4480");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:4490");
        assert!(config.listen.ip().is_loopback() && config.ws_listen.ip().is_loopback());
        assert_eq!(config.token_ttl_hours, 72);
        assert_eq!(config.max_connections, MAX_CONNECTIONS);
        assert_eq!(config.log_level, "info");
        assert_eq!(config.data_dir, PathBuf::from("data"));
        assert_eq!(config.media.s3_bucket, None);
        assert_eq!(config.media.quota_per_office, DEFAULT_OFFICE_MEDIA_QUOTA);
    }

    #[test]
    fn the_media_table_names_a_bucket_and_a_quota_and_hides_the_secret() {
        let text = r#"
            [media]
            s3_bucket = "medias"
            s3_endpoint = "http://127.0.0.1:9000"
            s3_region = "fr-par"
            s3_access_key_id = "AKIA"
            s3_secret_access_key = "tres-secret"
            s3_allow_http = true
            quota_per_office = 1_000_000
        "#;
        let config = RelayConfig::from_toml(text, Path::new("relay.toml")).unwrap();
        assert_eq!(config.media.s3_bucket.as_deref(), Some("medias"));
        assert!(config.media.s3_allow_http);
        assert_eq!(config.media.quota_per_office, 1_000_000);
        assert!(!format!("{config:?}").contains("tres-secret"));
        for bad in [
            "[media]\nquota_per_office = 0",
            "[media]\ns3_endpoint = \"http://x\"",
            "[media]\ns3_bucket = \"\"",
            "[media]\nbucket = \"x\"",
        ] {
            assert!(
                RelayConfig::from_toml(bad, Path::new("r.toml")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_field_can_be_set() {
        let text = r#"
            listen = "0.0.0.0:5000"
            ws_listen = "[::]:5001"
            data_dir = "/srv/relay"
            max_connections = 10
            token_ttl_hours = 24
            log_level = "debug"
        "#;
        let config = RelayConfig::from_toml(text, Path::new("relay.toml")).unwrap();
        assert_eq!(config.listen.port(), 5000);
        assert_eq!(config.ws_listen.port(), 5001);
        assert_eq!(config.data_dir, PathBuf::from("/srv/relay"));
        assert_eq!(config.max_connections, 10);
        assert_eq!(config.token_ttl_hours, 24);
        assert_eq!(config.log_level, "debug");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported() {
        let err = RelayConfig::from_toml("listen_addr = \"0.0.0.0:1\"", Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `listen_addr`"), "{err}");
        assert!(err.contains("r.toml"), "{err}");
        let err = RelayConfig::from_toml("listen = \"nowhere\"", Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = RelayConfig::from_toml("max_connections = 0", Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_connections must be at least 1"), "{err}");
        let err = RelayConfig::from_toml("log_level = \"atelier=loud\"", Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("log_level"), "{err}");
        let err = RelayConfig::from_toml("token_ttl_hours = 10000", Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 720"), "{err}");
    }

    #[test]
    fn relative_data_dir_follows_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "data_dir = \"state\"\n").unwrap();
        let config = RelayConfig::load(&path).unwrap();
        assert_eq!(config.data_dir, dir.path().join("state"));
        let err = RelayConfig::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}
