//! Import, export and reindex: the operations over the whole corpus.

use rand::RngCore;
use serde::Serialize;

use crate::card::content_hash;
use crate::document;
use crate::ids::DocumentId;
use crate::resource::Resource;
use crate::store::keys::{self, content_key};
use crate::store::Batch;

use super::{ref_id, CatalogEntry, ListFilter, Replica, ReplicaError};

/// Most threads an import writes documents with: the work is CPU-bound, and four threads keep a
/// laptop responsive during a long import.
const IMPORT_THREADS: usize = 4;
/// Fewer resources than this per thread are imported on the calling thread alone: starting
/// threads would cost more than it saves.
const IMPORT_MIN_PER_THREAD: usize = 64;

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

    /// Every live resource in FORMAT.md JSON, sorted by ref then title.
    pub fn export(&self) -> Result<Vec<serde_json::Value>, ReplicaError> {
        let mut items = Vec::new();
        self.export_each(|item| {
            items.push(item);
            true
        })?;
        Ok(items)
    }

    /// [`Self::export`] one resource at a time, so that an export of a large corpus holds one
    /// document in memory, not all of them; `each` returns false to stop.
    pub fn export_each(
        &self,
        mut each: impl FnMut(serde_json::Value) -> bool,
    ) -> Result<(), ReplicaError> {
        let mut entries = self.list(&ListFilter::default())?;
        entries.sort_by(|a, b| (&a.ref_, &a.title).cmp(&(&b.ref_, &b.title)));
        for e in &entries {
            if !each(self.get(&e.id)?.resource.to_json()) {
                break;
            }
        }
        Ok(())
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
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(IMPORT_THREADS)
            .min(resources.len() / IMPORT_MIN_PER_THREAD);
        let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len();
        if threads < 2 || !distinct {
            let mut outcomes = Vec::with_capacity(ids.len());
            for (i, (id, r)) in ids.iter().zip(resources).enumerate() {
                outcomes.push(self.upsert(id, r, now_ms)?);
                progress(i + 1);
            }
            return Ok(outcomes);
        }
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
        let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
        let mut outcomes: Vec<Option<Upsert>> = (0..ids.len()).map(|_| None).collect();
        let mut first_error = None;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..threads {
                let (tx, next, failed) = (tx.clone(), &next, &failed);
                scope.spawn(move || {
                    while !failed.load(Relaxed) {
                        let i = next.fetch_add(1, Relaxed);
                        let (Some(id), Some(r)) = (ids.get(i), resources.get(i)) else {
                            break;
                        };
                        let result = self.upsert(id, r, now_ms);
                        failed.fetch_or(result.is_err(), Relaxed);
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut done = 0;
            for (i, result) in rx {
                match result {
                    Ok(outcome) => {
                        outcomes[i] = Some(outcome);
                        done += 1;
                        progress(done);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(outcomes.into_iter().flatten().collect())
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
