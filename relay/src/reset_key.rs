//! The relay's stateless-reset key: kept in its data directory so that a restarted relay can
//! tell the offices still talking to its previous run that their connection is gone.
//!
//! QUIC lets a server end a connection it no longer knows with a *stateless reset*: a packet
//! ending with a token derived (HMAC) from a key and the connection id, which the client
//! learnt during the handshake. quinn draws a fresh key per process by default, so after a
//! crash the restarted relay's resets do not verify and an office waits out its idle timeout.
//! With the key on disk, created by `atelier-relay init` and loaded by `serve`, the first
//! packet an office sends after a restart is answered by a reset it recognises at once.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atelier_core::fs::write_atomic;
use rand::RngCore;

/// File name of the key in the relay's data directory.
pub const RESET_KEY_FILE: &str = "quic-reset-key";

/// What the key signs to derive the connection-id generator's own key.
const CID_KEY_LABEL: &[u8] = b"atelier relay connection ids";

/// Bytes of key: the output size of the HMAC (SHA-256), as RFC 2104 recommends.
pub const RESET_KEY_BYTES: usize = 32;

/// Errors reading or creating the key file.
#[derive(Debug, thiserror::Error)]
pub enum ResetKeyError {
    /// The file could not be read or written.
    #[error("cannot access the stateless-reset key {path}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file does not hold a key (wrong length).
    #[error("the stateless-reset key {path} holds {len} bytes, not {RESET_KEY_BYTES}")]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

/// A stateless-reset key, read from or written to a data directory.
#[derive(Clone)]
pub struct ResetKey([u8; RESET_KEY_BYTES]);

impl std::fmt::Debug for ResetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetKey(…)")
    }
}

impl ResetKey {
    /// The key kept in `dir`, created (private, written atomically) if there is none yet: a
    /// data directory made before keys existed gets one at its next start.
    pub fn load_or_create(dir: &Path) -> Result<Self, ResetKeyError> {
        let path = dir.join(RESET_KEY_FILE);
        let io = |source| ResetKeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = <[u8; RESET_KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| {
                    ResetKeyError::Corrupt {
                        path: path.clone(),
                        len: bytes.len(),
                    }
                })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut key = [0u8; RESET_KEY_BYTES];
                rand::rngs::OsRng.fill_bytes(&mut key);
                std::fs::create_dir_all(dir).map_err(io)?;
                write_atomic(&path, &key, Some(0o600)).map_err(io)?;
                Ok(Self(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The endpoint configuration of a server using this key: stateless resets signed with
    /// it, and connection ids that a later run with the same key recognises as its own (quinn
    /// answers only ids its generator validates, and its default generator's key is drawn
    /// per process).
    pub fn endpoint_config(&self) -> quinn::EndpointConfig {
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&hmac, CID_KEY_LABEL);
        let mut cid_key = [0u8; 8];
        cid_key.copy_from_slice(&tag.as_ref()[..8]);
        let cid_key = u64::from_le_bytes(cid_key);
        let mut config = quinn::EndpointConfig::new(Arc::new(hmac));
        config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let created = ResetKey::load_or_create(dir.path()).unwrap();
        let loaded = ResetKey::load_or_create(dir.path()).unwrap();
        assert_eq!(created.0, loaded.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(RESET_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key must be private, mode {mode:o}");
        }
    }

    #[test]
    fn a_truncated_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RESET_KEY_FILE), [1, 2, 3]).unwrap();
        assert!(matches!(
            ResetKey::load_or_create(dir.path()),
            Err(ResetKeyError::Corrupt { len: 3, .. })
        ));
    }
}
