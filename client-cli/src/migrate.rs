//! Opening the replica from the CLI, upgrading what an older atelier left beside it.
//!
//! Older versions kept the sync record (last syncs, a running `sync --watch`) in
//! `<dir>/sync-state.json`; it now lives in the replica ([`SyncRecord`]). The first command
//! that opens the replica merges that file into the record, then removes it.

use std::path::Path;

use atelier_core::replica::{Replica, ReplicaError, SyncRecord};

/// Where older versions kept the sync record, in the replica directory.
const LEGACY_SYNC_STATE_FILE: &str = "sync-state.json";

/// Opens the replica in `dir` (see [`Replica::open`]) and moves a legacy sync state file into
/// it.
pub fn open_replica(dir: &Path) -> Result<Replica, ReplicaError> {
    let replica = Replica::open(dir)?;
    migrate_sync_state(&replica)?;
    Ok(replica)
}

/// Merges `sync-state.json` into the replica's sync record (fields the record already has are
/// newer and stay), then removes the file. The file goes only once the record is flushed, so a
/// crash in between loses nothing: the next open merges it again, which changes nothing.
fn migrate_sync_state(replica: &Replica) -> Result<(), ReplicaError> {
    let path = replica.dir().join(LEGACY_SYNC_STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            // Left in place: the next command tries again.
            tracing::warn!(path = %path.display(), error = %e, "legacy sync state unreadable");
            return Ok(());
        }
    };
    match serde_json::from_slice::<SyncRecord>(&bytes) {
        Ok(legacy) => {
            replica.update_sync_record(|record| record.merge_missing(legacy))?;
        }
        // Older versions read such a file as an empty state: there is nothing to keep.
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "corrupt legacy sync state, dropped")
        }
    }
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "removing the legacy sync state");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `sync-state.json` as older versions wrote it.
    const LEGACY: &str = r#"{
  "last_sync_ms": 1764600000000,
  "last_relay": "quic://192.0.2.2:4433",
  "last_peer_sync": {
    "peer": "quic://192.0.2.1:4433",
    "at_ms": 1764500000000
  },
  "watch": null
}"#;

    #[test]
    fn a_legacy_sync_state_is_merged_into_the_replica_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(LEGACY_SYNC_STATE_FILE);
        drop(Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap());
        std::fs::write(&file, LEGACY).unwrap();

        let replica = open_replica(dir.path()).unwrap();
        let record = replica.sync_record().unwrap();
        assert_eq!(record.last_sync_ms, Some(1_764_600_000_000));
        assert_eq!(record.last_relay.as_deref(), Some("quic://192.0.2.2:4433"));
        assert_eq!(record.last_peer_sync.unwrap().at_ms, 1_764_500_000_000);
        assert!(!file.exists());
        drop(replica);

        // Durable: a later open finds the record without the file.
        let replica = open_replica(dir.path()).unwrap();
        assert_eq!(
            replica.sync_record().unwrap().last_sync_ms,
            Some(1_764_600_000_000)
        );
        drop(replica);

        // A file reappearing (an older atelier ran meanwhile) does not override newer fields.
        std::fs::write(&file, r#"{"last_sync_ms": 5, "last_relay": null}"#).unwrap();
        let replica = open_replica(dir.path()).unwrap();
        assert_eq!(
            replica.sync_record().unwrap().last_sync_ms,
            Some(1_764_600_000_000)
        );
        assert!(!file.exists());
    }

    #[test]
    fn a_corrupt_legacy_sync_state_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(LEGACY_SYNC_STATE_FILE);
        drop(Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap());
        std::fs::write(&file, "{").unwrap();
        let replica = open_replica(dir.path()).unwrap();
        assert_eq!(replica.sync_record().unwrap(), SyncRecord::default());
        assert!(!file.exists());
    }
}
