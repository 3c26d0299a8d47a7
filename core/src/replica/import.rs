//! Import, export and reindex: the operations over the whole corpus.

use rand::RngCore;
use serde::Serialize;

use crate::card::content_hash;
use crate::document;
use crate::ids::DocumentId;
use crate::par;
use crate::resource::Resource;
use crate::store::keys::{self, content_key};
use crate::store::{Batch, StoreError};

use super::{ref_id, CatalogEntry, ListFilter, Replica, ReplicaError};

/// Most threads an import writes documents with: the work is CPU-bound, and four threads keep a
/// laptop responsive during a long import.
const IMPORT_THREADS: usize = 4;
/// Fewer resources than this per thread are imported on the calling thread alone: starting
/// threads would cost more than it saves.
const IMPORT_MIN_PER_THREAD: usize = 64;

/// A resource an export left out because its document cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub id: DocumentId,
    /// Its title in the listing (which is derived, so still readable).
    pub title: String,
    /// Why, in French (the error's own message).
    pub reason: String,
}

/// Result of an import.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl Replica {
    /// Writes every valid resource into its document (import): new refs are created, known refs
    /// updated field by field, unchanged ones left alone. The caller validated the whole input.
    pub fn import(
        &self,
        resources: &[Resource],
        rng: &mut impl RngCore,
        now_ms: i64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<ImportReport, ReplicaError> {
        // Ids are drawn in input order, whichever thread then writes each document.
        let ids: Vec<DocumentId> = resources
            .iter()
            .map(|r| match &r.ref_ {
                Some(reference) => ref_id(reference),
                None => DocumentId::random(rng),
            })
            .collect();
        let outcomes = self.upsert_all(&ids, resources, now_ms, progress)?;
        let mut report = ImportReport::default();
        let mut created = Vec::new();
        for ((id, r), outcome) in ids.iter().zip(resources).zip(outcomes) {
            match outcome {
                Upsert::Created => {
                    report.created += 1;
                    created.push((*id, CatalogEntry::created(r, now_ms)));
                }
                Upsert::Updated => report.updated += 1,
                Upsert::Unchanged => report.unchanged += 1,
            }
        }
        self.catalog_add(&created, now_ms)?;
        self.store.flush()?;
        Ok(report)
    }

    /// Every live resource in FORMAT.md JSON, sorted by ref then title; fails naming every
    /// resource that cannot be read (see [`Self::export_each`] to export the others anyway).
    pub fn export(&self) -> Result<Vec<serde_json::Value>, ReplicaError> {
        let mut items = Vec::new();
        let unreadable = self.export_each(|item| {
            items.push(item);
            true
        })?;
        if !unreadable.is_empty() {
            return Err(ReplicaError::Unreadable(unreadable));
        }
        Ok(items)
    }

    /// [`Self::export`] one resource at a time, so that an export of a large corpus holds one
    /// document in memory, not all of them; `each` returns false to stop. A resource whose
    /// document cannot be read (corrupt, or stored past the size cap by an older version) is
    /// left out and returned, so that one bad document does not stop the export of the others;
    /// a failing database still ends it.
    pub fn export_each(
        &self,
        mut each: impl FnMut(serde_json::Value) -> bool,
    ) -> Result<Vec<Unreadable>, ReplicaError> {
        let mut entries = self.list(&ListFilter::default())?;
        entries.sort_by(|a, b| (&a.ref_, &a.title).cmp(&(&b.ref_, &b.title)));
        let mut unreadable = Vec::new();
        for e in &entries {
            let item = match self.get(&e.id) {
                Ok(r) => r.resource.to_json(),
                Err(e @ (ReplicaError::Io { .. } | ReplicaError::Store(StoreError::Db(_)))) => {
                    return Err(e)
                }
                Err(err) => {
                    tracing::warn!(id = %e.id, error = %err, "unreadable resource left out of the export");
                    unreadable.push(Unreadable {
                        id: e.id,
                        title: e.title.clone(),
                        reason: err.to_string(),
                    });
                    continue;
                }
            };
            if !each(item) {
                break;
            }
        }
        Ok(unreadable)
    }

    /// Rebuilds the listing and ref indexes from the documents.
    pub fn reindex(&self) -> Result<usize, ReplicaError> {
        let mut stale = Batch::default();
        for prefix in [keys::LISTING, keys::REFS, keys::CONTENT] {
            self.kv.for_each_prefix(&[prefix], &mut |k, _| {
                stale.remove(k.to_vec());
                true
            })?;
        }
        self.kv.apply(stale)?;
        let mut ids = Vec::new();
        self.store.for_each_heads(&mut |id, _| {
            ids.push(id);
            true
        })?;
        for id in &ids {
            self.store.reindex(id)?;
        }
        self.store.flush()?;
        Ok(ids.len())
    }

    /// Upserts `resources[i]` into `ids[i]` for every i, on several threads when there are
    /// many: documents are independent and their Automerge work is CPU-bound. A batch naming one
    /// document twice is written in order on this thread, so that its last line wins.
    fn upsert_all(
        &self,
        ids: &[DocumentId],
        resources: &[Resource],
        now_ms: i64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Upsert>, ReplicaError> {
        let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len();
        let threads = match distinct {
            true => par::threads_for(ids.len(), IMPORT_THREADS, IMPORT_MIN_PER_THREAD),
            false => 1,
        };
        let work: Vec<(&DocumentId, &Resource)> = ids.iter().zip(resources).collect();
        let mut done = 0;
        let results = par::map(
            &work,
            threads,
            |(id, r)| self.upsert(id, r, now_ms),
            |result| {
                if result.is_ok() {
                    done += 1;
                    progress(done);
                }
                // The first failure stops the import.
                result.is_ok()
            },
        );
        results.into_iter().flatten().collect()
    }

    pub(super) fn upsert(
        &self,
        id: &DocumentId,
        r: &Resource,
        now_ms: i64,
    ) -> Result<Upsert, ReplicaError> {
        // The indexer keeps a hash of every resource document's content: a re-imported line equal
        // to it is unchanged, and the document need not be loaded to find that out.
        if let Some(stored) = self.kv.get(&content_key(id))? {
            if stored == content_hash(r) {
                return Ok(Upsert::Unchanged);
            }
        }
        let office = self.office.to_string();
        let (outcome, _) = self.store.update(id, |doc, _| {
            if document::is_resource(doc) {
                let fields = document::replace(doc, r, &office, now_ms)?;
                Ok::<_, ReplicaError>(if fields.is_empty() {
                    Upsert::Unchanged
                } else {
                    Upsert::Updated
                })
            } else {
                document::create(doc, r, &office, now_ms)?;
                Ok(Upsert::Created)
            }
        })?;
        Ok(outcome)
    }
}

pub(super) enum Upsert {
    Created,
    Updated,
    Unchanged,
}

#[cfg(test)]
mod tests {
    use super::super::tests::resource;
    use super::*;
    use automerge::ReadDoc;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn import_same_ref_twice_updates_and_catalog_lists_it() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let v1 = resource(json!({"ref":"x","kind":"outil","title":"Guide","office":"caue-63"}));
        let v2 =
            resource(json!({"ref":"x","kind":"outil","title":"Guide du pisé","office":"caue-63"}));
        assert_eq!(
            r.import(std::slice::from_ref(&v1), &mut rng, 0, &mut |_| {})
                .unwrap()
                .created,
            1
        );
        assert_eq!(
            r.import(&[v1], &mut rng, 0, &mut |_| {}).unwrap().unchanged,
            1
        );
        assert_eq!(
            r.import(&[v2], &mut rng, 0, &mut |_| {}).unwrap().updated,
            1
        );
        assert_eq!(r.list(&ListFilter::default()).unwrap().len(), 1);
        let id = ref_id("x");
        let shard = r
            .store()
            .load(&Replica::catalog_shard(&id))
            .unwrap()
            .unwrap();
        assert!(shard
            .get(automerge::ROOT, id.url().as_str())
            .unwrap()
            .is_some());
        assert_eq!(r.reindex().unwrap(), 1 + 1 + 1);
        assert_eq!(
            r.list(&ListFilter::default()).unwrap()[0].title,
            "Guide du pisé"
        );
    }
}
