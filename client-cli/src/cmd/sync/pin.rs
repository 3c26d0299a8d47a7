//! The pinned relay (`<dir>/relay.toml`, written by `atelier join`) and the `quic://` addresses
//! that `join`, `sync --peer` and `serve` take.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use atelier_relay::identity::Fingerprint;
use serde::{Deserialize, Serialize};

/// File of the pinned relay, in the replica directory.
pub const RELAY_FILE: &str = "relay.toml";
/// Port used when an address gives none: the relay's default (`atelier-relay`'s `listen`).
pub const DEFAULT_PORT: u16 = 4433;

/// A `quic://HOST:PORT` address as the user typed it. The host may be a name: it is resolved
/// at every connection, so a relay that moves to another IP address stays reachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QuicUrl {
    host: String,
    port: u16,
}

impl QuicUrl {
    /// The address to connect to now (the first one the resolver gives).
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        tokio::net::lookup_host((host, self.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "aucune adresse pour ce nom")
            })
    }
}

impl FromStr for QuicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("adresse « {text} » invalide : attendu quic://HÔTE:PORT, ex. quic://relais.caue.fr:4433")
        };
        let rest = text.trim();
        let rest = match rest.split_once("://") {
            Some(("quic", rest)) => rest,
            Some(_) => return Err(bad()),
            None => rest,
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad());
        }
        // `[v6]:port`, `[v6]`, `host:port` or `host`.
        let (host, port) = if let Some(end) = rest.find(']') {
            let host = &rest[..=end];
            match &rest[end + 1..] {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(bad()), // v6 without brackets
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None => DEFAULT_PORT,
        };
        if host.is_empty() || host == "[]" {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl TryFrom<String> for QuicUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<QuicUrl> for String {
    fn from(u: QuicUrl) -> Self {
        u.to_string()
    }
}

impl fmt::Display for QuicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quic://{}:{}", self.host, self.port)
    }
}

/// The relay this replica syncs with: where it is, the fingerprint its certificate must have,
/// and what it enrolled this device as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayPin {
    /// Where the relay listens, `quic://HOST:PORT`.
    pub address: QuicUrl,
    /// SHA-256 of the relay's certificate (64 hex digits); any other certificate is refused.
    #[serde(with = "fingerprint_hex")]
    pub fingerprint: Fingerprint,
    /// The office the relay enrolled this device for.
    pub office: String,
    /// Whether the relay lets this device only read.
    #[serde(default)]
    pub read_only: bool,
}

impl RelayPin {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(RELAY_FILE)
    }

    /// The pinned relay, or `None` if `atelier join` has not run.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("lecture de « {} »", path.display())),
        };
        let pin = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "« {} » illisible ({}) : relancez « atelier join »",
                path.display(),
                e.message()
            )
        })?;
        Ok(Some(pin))
    }

    /// Writes the file atomically (a crash leaves the old pin or the new one, never half).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let body = toml::to_string(self).context("écriture de la configuration du relais")?;
        let text = format!(
            "# Relais de synchronisation de ce réplica, écrit par « atelier join ».\n\
             # address : où joindre le relais ; fingerprint : empreinte SHA-256 de son certificat\n\
             # (tout autre certificat est refusé) ; office et read_only : l'inscription de cet\n\
             # appareil. Pour changer de relais, relancez « atelier join ».\n{body}"
        );
        write_atomic(&Self::path(dir), text.as_bytes())
    }
}

/// Writes `bytes` to `path` atomically and readable by this user only (see
/// [`atelier_core::fs::write_atomic`]), saying in French which file could not be written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    atelier_core::fs::write_atomic(path, bytes, None)
        .with_context(|| format!("écriture de « {} »", path.display()))
}

mod fingerprint_hex {
    use atelier_relay::identity::Fingerprint;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(fp: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(fp)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_or_without_scheme_and_port() {
        let url = |s: &str| s.parse::<QuicUrl>().map(|u| u.to_string());
        assert_eq!(
            url("quic://127.0.0.1:4433").unwrap(),
            "quic://127.0.0.1:4433"
        );
        assert_eq!(url("relais.caue.fr").unwrap(), "quic://relais.caue.fr:4433");
        assert_eq!(url("quic://[::1]:5000/").unwrap(), "quic://[::1]:5000");
        assert_eq!(url("[::1]").unwrap(), "quic://[::1]:4433");
        for bad in [
            "http://x:1",
            "quic://",
            "x:0",
            "x:port",
            "::1",
            "quic://a/b",
            "[::1]5",
        ] {
            assert!(url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn pin_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RelayPin::load(dir.path()).unwrap(), None);
        let pin = RelayPin {
            address: "quic://127.0.0.1:4433".parse().unwrap(),
            fingerprint: Fingerprint::from_bytes([7; 32]),
            office: "caue-63".into(),
            read_only: true,
        };
        pin.save(dir.path()).unwrap();
        assert_eq!(RelayPin::load(dir.path()).unwrap(), Some(pin));
        std::fs::write(RelayPin::path(dir.path()), "address = 3").unwrap();
        let err = RelayPin::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("atelier join"), "{err}");
    }
}
