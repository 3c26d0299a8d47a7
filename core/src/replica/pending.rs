//! The search index's to-do list: every write of a resource document marks it pending, in the
//! same batch as the write, and the search index takes the marks once it holds the documents.

use crate::card::Card;
use crate::ids::DocumentId;
use crate::store::keys::{self, pending_key};
use crate::store::Batch;

use super::{Replica, ReplicaError};

impl Replica {
    /// Ids of documents changed since the search index last took them (see `clear_pending`).
    pub fn pending(&self) -> Result<Vec<DocumentId>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[keys::PENDING], &mut |k, _| {
            out.extend(keys::document_of(k));
            true
        })?;
        Ok(out)
    }

    /// Forgets pending ids once the search index holds them.
    pub fn clear_pending(&self, ids: &[DocumentId]) -> Result<(), ReplicaError> {
        let mut batch = Batch::default();
        for id in ids {
            batch.remove(pending_key(id));
        }
        self.kv.apply(batch)?;
        Ok(())
    }
}

/// Marks a document pending, in the batch that writes it (called by the listing's indexer).
pub(super) fn mark(id: &DocumentId, _card: &Card, batch: &mut Batch) {
    batch.put(pending_key(id), Vec::new());
}
