//! The search index's to-do list: every write of a resource document marks it pending, in the
//! same batch as the write, and the search index takes the marks once it holds the documents.
//!
//! A mark holds the heads hash the document had when it was marked. The search index reads the
//! list, indexes the documents, then clears what it read; a document that sync changes in
//! between is marked again with other heads, and clearing leaves that newer mark in place, so
//! the change is indexed on the next round rather than lost.

use std::ops::Deref;

use crate::card::Card;
use crate::ids::DocumentId;
use crate::store::keys::{self, pending_key};
use crate::store::Batch;

use super::{Replica, ReplicaError};

/// Documents changed since the search index last took them, as read by [`Replica::pending`]:
/// a list of ids (it derefs to `[DocumentId]`) that also remembers each one's mark, so that
/// [`Replica::clear_pending`] clears only marks that did not change since.
#[derive(Debug, Default)]
pub struct PendingDocs {
    ids: Vec<DocumentId>,
    marks: Vec<Vec<u8>>,
}

impl PendingDocs {
    /// These documents in runs of at most `n` (at least 1), each indexed and cleared on its own.
    pub fn into_slices(self, n: usize) -> Vec<PendingDocs> {
        let n = n.max(1);
        let marks = self.marks.chunks(n).map(<[_]>::to_vec);
        self.ids
            .chunks(n)
            .zip(marks)
            .map(|(ids, marks)| PendingDocs {
                ids: ids.to_vec(),
                marks,
            })
            .collect()
    }
}

impl Deref for PendingDocs {
    type Target = [DocumentId];

    fn deref(&self) -> &[DocumentId] {
        &self.ids
    }
}

impl Replica {
    /// Documents changed since the search index last took them (see `clear_pending`).
    pub fn pending(&self) -> Result<PendingDocs, ReplicaError> {
        let mut out = PendingDocs::default();
        self.kv.for_each_prefix(&[keys::PENDING], &mut |k, v| {
            if let Some(id) = keys::document_of(k) {
                out.ids.push(id);
                out.marks.push(v.to_vec());
            }
            true
        })?;
        Ok(out)
    }

    /// At most `limit` of the documents [`Self::pending`] would give (the first in key order):
    /// how a caller takes a large backlog in slices, or checks its size without reading it all.
    pub fn pending_at_most(&self, limit: usize) -> Result<PendingDocs, ReplicaError> {
        let mut out = PendingDocs::default();
        if limit == 0 {
            return Ok(out);
        }
        self.kv.for_each_prefix(&[keys::PENDING], &mut |k, v| {
            if let Some(id) = keys::document_of(k) {
                out.ids.push(id);
                out.marks.push(v.to_vec());
            }
            out.ids.len() < limit
        })?;
        Ok(out)
    }

    /// How many resources (deleted ones too) the replica lists, counting at most `limit`.
    pub fn resources_at_most(&self, limit: usize) -> Result<usize, ReplicaError> {
        if let Some(listed) = self.listed_if_kept()? {
            return Ok(listed.len().min(limit));
        }
        let mut n = 0;
        if limit > 0 {
            self.kv.for_each_prefix(&[keys::LISTING], &mut |_, _| {
                n += 1;
                n < limit
            })?;
        }
        Ok(n)
    }

    /// Marks every resource (deleted ones too) pending, with its current heads: what a search
    /// index recreated empty must take. The marks are durable when this returns; the index is
    /// kept only once they are (`SearchIndex::rebuild_marked`), so a crash while marking
    /// recreates the index and marks again, and a crash while the index takes them leaves the
    /// rest pending rather than an index that looks complete. Written in batches of
    /// [`MARK_BATCH`]: sled holds every node a batch replaces until the batch ends.
    pub fn mark_all_pending(&self) -> Result<usize, ReplicaError> {
        // Two scans in key order, no point reads and no parsing: the listing index's keys name
        // every resource, the heads index gives each one's heads.
        let mut listed = Vec::new();
        self.kv.for_each_prefix(&[keys::LISTING], &mut |k, _| {
            listed.extend(keys::document_of(k));
            true
        })?;
        listed.sort_unstable();
        let mut marks = Vec::with_capacity(listed.len());
        self.store.for_each_heads(&mut |id, heads| {
            if listed.binary_search(&id).is_ok() {
                marks.push((id, heads));
            }
            true
        })?;
        for chunk in marks.chunks(MARK_BATCH) {
            let mut batch = Batch::default();
            for (id, heads) in chunk {
                batch.put(pending_key(id), heads.0.to_vec());
            }
            self.kv.apply(batch)?;
        }
        self.kv.flush()?;
        Ok(listed.len())
    }

    /// Forgets pending documents once the search index holds them, except those written again
    /// since `pending` read them: they stay pending.
    pub fn clear_pending(&self, taken: &PendingDocs) -> Result<(), ReplicaError> {
        for (id, mark) in taken.ids.iter().zip(&taken.marks) {
            self.kv.remove_if(&pending_key(id), mark)?;
        }
        Ok(())
    }
}

/// Pending marks `mark_all_pending` writes per batch (as `record_synced` does, for memory).
const MARK_BATCH: usize = 5_000;

/// Marks a document pending, in the batch that writes it (called by the listing's indexer).
pub(super) fn mark(id: &DocumentId, card: &Card, batch: &mut Batch) {
    batch.put(pending_key(id), card.heads.0.to_vec());
}

#[cfg(test)]
mod tests {
    use super::super::tests::resource;
    use super::*;
    use crate::document::Edit;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn a_document_written_between_reading_and_clearing_stays_pending() {
        let dir = tempfile::tempdir().unwrap();
        let on_disk = Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap();
        let in_memory = Replica::in_memory("caue-63".parse().unwrap());
        for r in [on_disk, in_memory] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            let mut create = |title: &str| {
                let v = json!({"kind":"outil","title":title,"office":"caue-63"});
                r.create(&resource(v), &mut rng, 0).unwrap()
            };
            let (a, b) = (create("A"), create("B"));
            let taken = r.pending().unwrap();
            assert!(taken.contains(&a) && taken.contains(&b));
            // As sync would, while the search index works on what it read.
            r.edit(
                &a,
                &[Edit::Append {
                    field: "description".into(),
                    text: "Reçu.".into(),
                }],
                1,
            )
            .unwrap();
            r.clear_pending(&taken).unwrap();
            let left = r.pending().unwrap();
            assert!(left.contains(&a), "the newer change of A must be indexed");
            assert!(!left.contains(&b), "B did not change: it is taken");
            r.clear_pending(&left).unwrap();
            assert!(!r.pending().unwrap().contains(&a));
        }
    }

    #[test]
    fn slices_of_the_pending_list_clear_each_their_own_documents() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        for i in 0..5 {
            let v = json!({"kind":"outil","title":format!("Fiche {i}"),"office":"caue-63"});
            r.create(&resource(v), &mut rng, 0).unwrap();
        }
        let all = r.pending().unwrap();
        let ids: Vec<DocumentId> = all.to_vec();
        let slices = all.into_slices(2);
        assert_eq!(
            slices.iter().map(|s| s.len()).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        r.clear_pending(&slices[0]).unwrap();
        let left = r.pending().unwrap();
        assert_eq!(&left[..], &ids[2..], "only the first slice is taken");
        for slice in &slices[1..] {
            r.clear_pending(slice).unwrap();
        }
        assert!(r.pending().unwrap().is_empty());
    }
}
