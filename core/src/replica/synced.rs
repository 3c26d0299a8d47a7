//! The relay record: what the relay holds, as of the last sync, so that `atelier status` can
//! say what has not reached it yet without asking it. It is a copy of the heads index taken
//! when a sync with the relay converged (both sides then hold exactly the same documents), plus
//! the bucket digests of that moment, so that recording again and listing differences only
//! look at the buckets that moved since. Comparing heads rather than logging local writes also
//! counts changes received from a peer (`atelier sync --peer`): they are not on the relay
//! either.

use serde::Serialize;

use crate::ids::DocumentId;
use crate::store::keys::{self, synced_key, META_SYNCED_DIGESTS};
use crate::store::Batch;

use super::{Replica, ReplicaError};

/// How a document differs from what the relay held at the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsynced {
    /// The relay has never had this document.
    New,
    /// The relay has an older state of it (local edits, or changes received from a peer).
    Changed,
}

impl Replica {
    /// Records that the relay now holds exactly what this replica holds. Call right after a
    /// sync with the relay converged, with no other writer in between (a write in between
    /// would be recorded as being on the relay).
    pub fn record_synced(&self) -> Result<(), ReplicaError> {
        let digests = self.store.bucket_digests()?;
        let moved = self.buckets_moved_since_sync(&digests)?;
        if moved.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for (_, entries) in self.store.entries_of_buckets(&moved)? {
            for (id, hash) in entries {
                batch.put(synced_key(&id), hash.0.to_vec());
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

    /// Forgets the relay record (another relay is pinned: it holds nothing of ours yet).
    pub fn forget_synced(&self) -> Result<(), ReplicaError> {
        let mut batch = Batch::default();
        self.kv.for_each_prefix(&[keys::SYNCED], &mut |k, _| {
            batch.remove(k.to_vec());
            true
        })?;
        batch.remove(META_SYNCED_DIGESTS.to_vec());
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

#[cfg(test)]
mod tests {
    use super::super::tests::resource;
    use super::*;
    use crate::document::Edit;
    use rand::SeedableRng;
    use serde_json::json;

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
}
