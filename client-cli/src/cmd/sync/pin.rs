//! The pinned relay (`<dir>/relay.toml`, written by `atelier join`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atelier_relay::identity::Fingerprint;
use atelier_relay::quic_url::QuicUrl;
use serde::{Deserialize, Serialize};

/// File of the pinned relay, in the replica directory.
pub const RELAY_FILE: &str = "relay.toml";

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
