//! What the sync commands remember between runs (`<dir>/sync-state.json`): when the last sync
//! with the relay succeeded, the last direct sync with a peer, and a running `sync --watch`.
//!
//! A file beside the database rather than in it: `atelier status` reads it even while another
//! process (a `sync --watch`) holds the database.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pin::write_atomic;

/// File name in the replica directory.
pub const STATE_FILE: &str = "sync-state.json";

/// The remembered sync state. Every field may be absent (a replica that never synced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Milliseconds since the epoch of the last sync with the relay that went to the end.
    #[serde(default)]
    pub last_sync_ms: Option<i64>,
    /// The relay of that sync, `quic://…`.
    #[serde(default)]
    pub last_relay: Option<String>,
    /// The last direct sync with a peer.
    #[serde(default)]
    pub last_peer_sync: Option<PeerSync>,
    /// A `sync --watch` running (or that did not exit cleanly).
    #[serde(default)]
    pub watch: Option<WatchState>,
}

/// A direct sync with another office's replica (`atelier sync --peer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSync {
    /// `quic://…`.
    pub peer: String,
    /// Milliseconds since the epoch.
    pub at_ms: i64,
}

/// A `sync --watch` process, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchState {
    pub pid: u32,
    /// Connected and reconciled: changes flow both ways as they happen.
    pub connected: bool,
    /// Milliseconds since the epoch of the last change of `connected`.
    pub since_ms: i64,
    /// Why the last connection attempt failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl SyncState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// The state, or an empty one if the file is missing or unreadable (it is only a record:
    /// losing it forgets the time of the last sync, nothing else).
    pub fn load(dir: &Path) -> Self {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable sync state, ignored");
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        write_atomic(&Self::path(dir), &bytes)
    }

    /// Loads, changes and saves the state.
    pub fn update(dir: &Path, f: impl FnOnce(&mut Self)) -> anyhow::Result<()> {
        let mut state = Self::load(dir);
        f(&mut state);
        state.save(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_corrupt_state_is_empty_and_updates_persist() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SyncState::load(dir.path()), SyncState::default());
        SyncState::update(dir.path(), |s| s.last_sync_ms = Some(42)).unwrap();
        assert_eq!(SyncState::load(dir.path()).last_sync_ms, Some(42));
        std::fs::write(SyncState::path(dir.path()), "{").unwrap();
        assert_eq!(SyncState::load(dir.path()), SyncState::default());
    }
}
