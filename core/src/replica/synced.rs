//! The relay record: what the relay holds, as of the last sync, so that `atelier status` can
//! say what has not reached it yet without asking it. It is a copy of the heads index taken
//! when a sync with the relay converged (both sides then hold exactly the same documents), plus
//! the bucket digests of that moment, so that recording again and listing differences only
//! look at the buckets that moved since. Comparing heads rather than logging local writes also
//! counts changes received from a peer (`atelier sync --peer`): they are not on the relay
//! either.
//!
//! Beside it, the sync record ([`SyncRecord`]): when the last sync with the relay and with a
//! peer happened, and how a running `atelier sync --watch` goes. It lives in the replica so that
//! every piece of sync bookkeeping is in one place and written by the process that holds it;
//! other processes read it through that process's local API.

use serde::{Deserialize, Serialize};

use crate::ids::DocumentId;
use crate::mutex::lock;
use crate::store::keys::{self, synced_key, META_SYNCED_DIGESTS, META_SYNC_RECORD};
use crate::store::{Batch, DocChange};
use crate::sync::Refusal;

use super::{Replica, ReplicaError};

/// Entries `record_synced` writes per batch. sled keeps every tree node a batch replaces until
/// the batch ends: after a fresh pull of 100,000 resources, one batch of every entry took the
/// puller from ~300 MB to 858 MB of peak memory (heaptrack of `atelier-bench sync`).
const SYNCED_BATCH: usize = 5_000;

/// How a document differs from what the relay held at the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsynced {
    /// The relay has never had this document.
    New,
    /// The relay has an older state of it (local edits, or changes received from a peer).
    Changed,
}

/// What the sync commands remember between runs. Every field may be absent (a replica that
/// never synced). Its JSON shape is part of the local API (`GET /api/sync-record`) and of
/// `atelier status --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
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
    /// Documents the last recorded sync left out because one side refused them
    /// (`SyncStats::skipped`); replaced at every recorded sync, empty when none was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedDoc>,
}

/// A document a sync left out, and why (`atelier status` words it in French).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDoc {
    pub id: DocumentId,
    /// With the relay, or with a peer (`quic://…`).
    pub with: String,
    pub reason: Refusal,
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

impl SyncRecord {
    /// Fills the fields this record lacks from `other` (a record kept elsewhere by an older
    /// version); fields present here are newer and stay.
    pub fn merge_missing(&mut self, other: SyncRecord) {
        self.last_sync_ms = self.last_sync_ms.or(other.last_sync_ms);
        self.last_relay = self.last_relay.take().or(other.last_relay);
        self.last_peer_sync = self.last_peer_sync.take().or(other.last_peer_sync);
        self.watch = self.watch.take().or(other.watch);
        if self.refused.is_empty() {
            self.refused = other.refused;
        }
    }
}

impl Replica {
    /// The sync record, or an empty one if none was written or it cannot be read (it is only a
    /// record: losing it forgets the time of the last sync, nothing else).
    pub fn sync_record(&self) -> Result<SyncRecord, ReplicaError> {
        let Some(bytes) = self.kv.get(META_SYNC_RECORD)? else {
            return Ok(SyncRecord::default());
        };
        Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable sync record, ignored");
            SyncRecord::default()
        }))
    }

    /// Changes the sync record and writes it durably (flushed before returning); returns it as
    /// written.
    pub fn update_sync_record(
        &self,
        f: impl FnOnce(&mut SyncRecord),
    ) -> Result<SyncRecord, ReplicaError> {
        let _guard = lock(&self.sync_record_lock);
        let mut record = self.sync_record()?;
        f(&mut record);
        let mut batch = Batch::default();
        batch.put(META_SYNC_RECORD.to_vec(), record_bytes(&record));
        self.kv.apply(batch)?;
        self.kv.flush()?;
        Ok(record)
    }

    /// Records that the relay now holds exactly what this replica holds. Call right after a
    /// sync with the relay converged, with no other writer in between (a write in between
    /// would be recorded as being on the relay).
    pub fn record_synced(&self) -> Result<(), ReplicaError> {
        self.record_synced_in_batches(SYNCED_BATCH)
    }

    /// [`Self::record_synced`], writing at most `per_batch` entries per batch. The entries are
    /// written first and the digests last: an entry alone only says what the relay holds (true
    /// once the sync converged), and until the digests are written the buckets count as moved,
    /// so a crash in between leaves them to be recorded again.
    fn record_synced_in_batches(&self, per_batch: usize) -> Result<(), ReplicaError> {
        let digests = self.store.bucket_digests()?;
        let moved = self.buckets_moved_since_sync(&digests)?;
        if moved.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        let mut in_batch = 0;
        for (_, entries) in self.store.entries_of_buckets(&moved)? {
            for (id, hash) in entries {
                batch.put(synced_key(&id), hash.0.to_vec());
                in_batch += 1;
                if in_batch == per_batch {
                    self.kv.apply(std::mem::take(&mut batch))?;
                    in_batch = 0;
                }
            }
        }
        batch.put(META_SYNCED_DIGESTS.to_vec(), digests.concat());
        self.kv.apply(batch)?;
        self.kv.flush()?;
        Ok(())
    }

    /// [`Self::record_synced`] for a read-only device: the relay converged with it except for
    /// `unpublished`, the documents changed here that the relay does not take.
    pub fn record_synced_except(
        &self,
        unpublished: &std::collections::BTreeSet<DocumentId>,
    ) -> Result<(), ReplicaError> {
        self.record_synced()?;
        if unpublished.is_empty() {
            return Ok(());
        }
        let mut digests = self.kv.get(META_SYNCED_DIGESTS)?.unwrap_or_default();
        let mut batch = Batch::default();
        for id in unpublished {
            // Not what the relay holds: listed as changed here, and its bucket checked again.
            batch.put(synced_key(id), vec![0; 32]);
            let b = id.bucket(crate::store::BUCKETS);
            if let Some(d) = digests.get_mut(b * 16..(b + 1) * 16) {
                d.fill(0);
            }
        }
        batch.put(META_SYNCED_DIGESTS.to_vec(), digests);
        self.kv.apply(batch)?;
        self.kv.flush()?;
        Ok(())
    }

    /// Records that the relay holds these documents as they are now: changes the relay pushed
    /// to a live session, which it had stored before sending them.
    pub fn mark_synced(&self, ids: &[DocumentId]) -> Result<(), ReplicaError> {
        let mut batch = Batch::default();
        for id in ids {
            if let Some(hash) = self.store.heads_hash(id)? {
                batch.put(synced_key(id), hash.0.to_vec());
            }
        }
        if !batch.is_empty() {
            self.kv.apply(batch)?;
        }
        Ok(())
    }

    /// Records that the relay holds a document a live session just changed with what the relay
    /// sent ([`Session::on_peer_change`](crate::sync::Session::on_peer_change)), if the record
    /// says it held the document's previous state: it then holds all of the new one (its own
    /// changes on top of the previous state). Without this a device would count the document
    /// as changed here until its held confirmation round settles. Returns whether it recorded.
    pub fn mark_synced_from_relay(&self, change: &DocChange) -> Result<bool, ReplicaError> {
        let recorded = self.kv.get(&synced_key(&change.id))?;
        if recorded.as_deref() != change.previous.as_ref().map(|h| &h.0[..]) {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.put(synced_key(&change.id), change.heads.0.to_vec());
        self.kv.apply(batch)?;
        Ok(true)
    }

    /// Documents holding something the relay did not have at the last sync, in id order. Before
    /// any sync, that is every document.
    pub fn unsynced(&self) -> Result<Vec<(DocumentId, Unsynced)>, ReplicaError> {
        let digests = self.store.bucket_digests()?;
        let moved = self.buckets_moved_since_sync(&digests)?;
        let mut out = Vec::new();
        for (_, entries) in self.store.entries_of_buckets(&moved)? {
            for (id, hash) in entries {
                match self.kv.get(&synced_key(&id))? {
                    None => out.push((id, Unsynced::New)),
                    Some(relay) if relay != hash.0 => out.push((id, Unsynced::Changed)),
                    Some(_) => {}
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Forgets the relay record and the last sync with the relay (another relay is pinned: it
    /// holds nothing of ours yet, and was never synced with). The last peer sync stays.
    pub fn forget_synced(&self) -> Result<(), ReplicaError> {
        let _guard = lock(&self.sync_record_lock);
        let mut batch = Batch::default();
        self.kv.for_each_prefix(&[keys::SYNCED], &mut |k, _| {
            batch.remove(k.to_vec());
            true
        })?;
        batch.remove(META_SYNCED_DIGESTS.to_vec());
        let mut record = self.sync_record()?;
        record.last_sync_ms = None;
        record.last_relay = None;
        batch.put(META_SYNC_RECORD.to_vec(), record_bytes(&record));
        self.kv.apply(batch)?;
        self.kv.flush()?;
        Ok(())
    }

    /// Buckets whose digest differs from the one recorded at the last sync (all before any).
    fn buckets_moved_since_sync(&self, digests: &[[u8; 16]]) -> Result<Vec<usize>, ReplicaError> {
        let recorded = self
            .kv
            .get(META_SYNCED_DIGESTS)?
            .filter(|v| v.len() == digests.len() * 16);
        Ok((0..digests.len())
            .filter(|b| {
                recorded
                    .as_ref()
                    .is_none_or(|r| r[b * 16..(b + 1) * 16] != digests[*b])
            })
            .collect())
    }
}

/// The record as stored (JSON, so that it reads back across versions that add fields).
fn record_bytes(record: &SyncRecord) -> Vec<u8> {
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::tests::resource;
    use super::*;
    use crate::document::Edit;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn a_sync_recorded_in_small_batches_records_every_document_and_the_digests() {
        for per_batch in [1, 3, usize::MAX] {
            let r = Replica::in_memory("caue-63".parse().unwrap());
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            for i in 0..7 {
                let title = format!("Fiche {i}");
                r.create(
                    &resource(json!({"kind":"outil","title":title,"office":"caue-63"})),
                    &mut rng,
                    i,
                )
                .unwrap();
            }
            assert!(!r.unsynced().unwrap().is_empty());
            r.record_synced_in_batches(per_batch).unwrap();
            assert_eq!(r.unsynced().unwrap(), [], "{per_batch} per batch");
            let mut recorded = 0;
            for (_, entries) in r
                .store()
                .entries_of_buckets(&(0..crate::store::BUCKETS).collect::<Vec<_>>())
                .unwrap()
            {
                for (id, hash) in entries {
                    let synced = r.kv.get(&synced_key(&id)).unwrap();
                    assert!(synced == Some(hash.0.to_vec()), "{per_batch} per batch");
                    recorded += 1;
                }
            }
            assert_eq!(recorded, r.store().len().unwrap());
            let digests = r.store().bucket_digests().unwrap().concat();
            let recorded_digests = r.kv.get(META_SYNCED_DIGESTS).unwrap();
            assert!(recorded_digests == Some(digests), "{per_batch} per batch");
        }
    }

    #[test]
    fn relay_record_lists_what_the_relay_lacks_and_follows_syncs() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let a = r
            .create(
                &resource(json!({"kind":"outil","title":"A","office":"caue-63"})),
                &mut rng,
                0,
            )
            .unwrap();
        // Never synced: everything is new to the relay (the catalog documents too).
        let before = r.unsynced().unwrap();
        assert!(before.contains(&(a, Unsynced::New)), "{before:?}");
        assert!(before.iter().all(|(_, u)| *u == Unsynced::New));
        r.record_synced().unwrap();
        assert_eq!(r.unsynced().unwrap(), []);

        // A local edit and a new resource.
        r.edit(
            &a,
            &[Edit::Append {
                field: "description".into(),
                text: "Texte.".into(),
            }],
            1,
        )
        .unwrap();
        let b = r
            .create(
                &resource(json!({"kind":"outil","title":"B","office":"caue-63"})),
                &mut rng,
                2,
            )
            .unwrap();
        let after = r.unsynced().unwrap();
        assert!(
            after.contains(&(a, Unsynced::Changed)) && after.contains(&(b, Unsynced::New)),
            "{after:?}"
        );

        // A document received from a peer is not on the relay either.
        let peer = Replica::in_memory("caue-15".parse().unwrap());
        let c = peer
            .create(
                &resource(json!({"kind":"outil","title":"C","office":"caue-15"})),
                &mut rng,
                3,
            )
            .unwrap();
        r.store()
            .apply_bytes(&c, &peer.store().saved(&c).unwrap().unwrap())
            .unwrap();
        assert!(r.unsynced().unwrap().contains(&(c, Unsynced::New)));

        // Documents the relay pushed live are on it; a recorded sync covers the rest.
        r.mark_synced(&[c]).unwrap();
        assert!(!r.unsynced().unwrap().iter().any(|(id, _)| *id == c));
        r.record_synced().unwrap();
        assert_eq!(r.unsynced().unwrap(), []);
        assert_eq!(r.listing(&b).unwrap().unwrap().title, "B");
        assert_eq!((r.office_lookup())(&c).as_deref(), Some("caue-15"));
        assert_eq!((r.office_lookup())(&Replica::catalog_root()), None);

        // Another relay holds nothing of ours.
        r.forget_synced().unwrap();
        assert_eq!(r.unsynced().unwrap().len(), r.store().len().unwrap());
    }

    #[test]
    fn a_change_from_the_relay_is_on_it_only_when_the_state_before_it_was() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let relay = Replica::in_memory("caue-15".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let a = r
            .create(
                &resource(json!({"kind":"outil","title":"A","office":"caue-63"})),
                &mut rng,
                0,
            )
            .unwrap();
        r.record_synced().unwrap();
        let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = notices.clone();
        r.store()
            .observe_changes(Box::new(move |c| lock(&seen).push(c.clone())));
        // The relay's copy of `a` as recorded; then each call is an edit made on the relay.
        relay
            .store()
            .apply_bytes(&a, &r.store().saved(&a).unwrap().unwrap())
            .unwrap();
        let from_relay = |edit: &str, at: i64| {
            relay
                .edit(
                    &a,
                    &[Edit::Append {
                        field: "description".into(),
                        text: edit.into(),
                    }],
                    at,
                )
                .unwrap();
            r.store()
                .apply_bytes(&a, &relay.store().saved(&a).unwrap().unwrap())
                .unwrap();
            lock(&notices).pop().unwrap()
        };

        // On the relay before, on it after: nothing left to send.
        let change = from_relay("Relais.", 1);
        assert_eq!(r.unsynced().unwrap(), [(a, Unsynced::Changed)]);
        assert!(r.mark_synced_from_relay(&change).unwrap());
        assert_eq!(r.unsynced().unwrap(), []);

        // A local edit not on the relay yet stays unsent, whatever arrives on top of it.
        r.edit(
            &a,
            &[Edit::Append {
                field: "description".into(),
                text: "Ici.".into(),
            }],
            2,
        )
        .unwrap();
        lock(&notices).clear();
        let change = from_relay("Encore.", 3);
        assert!(!r.mark_synced_from_relay(&change).unwrap());
        assert_eq!(r.unsynced().unwrap(), [(a, Unsynced::Changed)]);

        // A document new here, which the record never listed, is on the relay that sent it.
        let b = relay
            .create(
                &resource(json!({"kind":"outil","title":"B","office":"caue-15"})),
                &mut rng,
                4,
            )
            .unwrap();
        r.store()
            .apply_bytes(&b, &relay.store().saved(&b).unwrap().unwrap())
            .unwrap();
        let change = lock(&notices).pop().unwrap();
        assert_eq!(change.previous, None);
        assert!(r.mark_synced_from_relay(&change).unwrap());
        assert!(!r.unsynced().unwrap().iter().any(|(id, _)| *id == b));
    }

    #[test]
    fn sync_record_persists_and_forgetting_the_relay_keeps_the_peer_sync() {
        let dir = tempfile::tempdir().unwrap();
        let peer = PeerSync {
            peer: "quic://192.0.2.1:4433".into(),
            at_ms: 7,
        };
        {
            let r = Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap();
            assert_eq!(r.sync_record().unwrap(), SyncRecord::default());
            let written = r
                .update_sync_record(|s| {
                    s.last_sync_ms = Some(42);
                    s.last_relay = Some("quic://192.0.2.2:4433".into());
                    s.last_peer_sync = Some(peer.clone());
                })
                .unwrap();
            assert_eq!(written.last_sync_ms, Some(42));
        }
        let r = Replica::open(dir.path()).unwrap();
        assert_eq!(r.sync_record().unwrap().last_sync_ms, Some(42));
        r.forget_synced().unwrap();
        let forgotten = r.sync_record().unwrap();
        assert_eq!((forgotten.last_sync_ms, forgotten.last_relay), (None, None));
        assert_eq!(forgotten.last_peer_sync, Some(peer));

        // A record that cannot be read is an empty one, and is overwritten by the next update.
        let mut batch = Batch::default();
        batch.put(META_SYNC_RECORD.to_vec(), b"{".to_vec());
        r.kv.apply(batch).unwrap();
        assert_eq!(r.sync_record().unwrap(), SyncRecord::default());
        r.update_sync_record(|s| s.last_sync_ms = Some(1)).unwrap();
        assert_eq!(r.sync_record().unwrap().last_sync_ms, Some(1));
    }

    #[test]
    fn merging_keeps_present_fields_and_fills_missing_ones() {
        let mut record = SyncRecord {
            last_sync_ms: Some(2),
            ..SyncRecord::default()
        };
        record.merge_missing(SyncRecord {
            last_sync_ms: Some(1),
            last_relay: Some("quic://192.0.2.2:4433".into()),
            ..SyncRecord::default()
        });
        assert_eq!(record.last_sync_ms, Some(2));
        assert_eq!(record.last_relay.as_deref(), Some("quic://192.0.2.2:4433"));
    }
}
