//! Import, export and reindex: the operations over the whole corpus.
//!
//! An import is written one document at a time (on several threads), then the catalog, so a
//! crash could leave documents the catalog never lists. A journal key
//! (`keys::META_IMPORT_JOURNAL`: the ids of every document the import writes) is flushed before
//! the first document and removed after the catalog; `Replica::open` finds a journal left by a
//! crash and completes the catalog for the documents written. Ids are a function of the input
//! (a line's `ref`, or the batch's content hash and the line's position), so running the same
//! import again after a crash writes the rest into the same documents: nothing is duplicated.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::card::{content_hash, Card};
use crate::document;
use crate::ids::{DocumentId, HeadsHash};
use crate::par;
use crate::resource::Resource;
use crate::store::keys::{self, content_key, META_IMPORT_JOURNAL};
use crate::store::{Batch, StoreError, CREATE_BATCH_DOCS};

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

/// The document id of each resource of an import: its `ref`'s, or for a line without one, an id
/// derived from the content of the whole batch and the line's position, so the same file
/// imported again (after a crash, or by mistake) lands on the same documents. The batch is
/// hashed only when some line lacks a ref: it is a pass over every resource on one thread.
pub fn import_ids(resources: &[Resource]) -> Vec<DocumentId> {
    let batch = std::cell::OnceCell::new();
    resources
        .iter()
        .enumerate()
        .map(|(line, r)| match &r.ref_ {
            Some(reference) => ref_id(reference),
            None => {
                let batch = batch.get_or_init(|| batch_hash(resources));
                DocumentId::derived(&format!("atelier/import/{batch}/{line}"))
            }
        })
        .collect()
}

/// What names an import's lines without a ref: a hash of every resource's content, in order.
fn batch_hash(resources: &[Resource]) -> String {
    let mut batch = Sha256::new();
    for r in resources {
        batch.update(content_hash(r));
    }
    hex::encode(&batch.finalize()[..16])
}

impl Replica {
    /// Writes every valid resource into its document (import): new refs are created, known refs
    /// updated field by field, unchanged ones left alone. The caller validated the whole input.
    /// Ids come from [`import_ids`]; a journal makes a crash recoverable (see the module doc).
    pub fn import(
        &self,
        resources: &[Resource],
        now_ms: i64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<ImportReport, ReplicaError> {
        let ids = import_ids(resources);
        self.kv.apply(journal(&ids, now_ms))?;
        self.store.flush()?;
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
        let mut done = Batch::default();
        done.remove(META_IMPORT_JOURNAL.to_vec());
        self.kv.apply(done)?;
        self.store.flush()?;
        Ok(report)
    }

    /// Completes an import a crash cut short (called by `open`): every journaled document that
    /// was written gets its catalog entry, then the journal goes. Documents not written yet are
    /// written by running the same import again, into the same ids.
    pub(super) fn finish_interrupted_import(&self) -> Result<(), ReplicaError> {
        let Some(bytes) = self.kv.get(META_IMPORT_JOURNAL)? else {
            return Ok(());
        };
        let (now_ms, ids) = read_journal(&bytes);
        let mut written = Vec::new();
        for id in ids {
            if self.store.contains(&id)? {
                written.push(id);
            }
        }
        tracing::warn!(
            written = written.len(),
            "an import was cut short: its written documents are added to the catalog; run it again to write the rest"
        );
        self.catalog_add_loaded(&written, now_ms)?;
        self.store.flush()?;
        let mut done = Batch::default();
        done.remove(META_IMPORT_JOURNAL.to_vec());
        self.kv.apply(done)?;
        self.store.flush()?;
        Ok(())
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
        each: impl FnMut(serde_json::Value) -> bool,
    ) -> Result<Vec<Unreadable>, ReplicaError> {
        self.export_matching(&ListFilter::default(), each)
    }

    /// [`Self::export_each`] for the resources `filter` lists (`atelier export --departement 15`,
    /// the web list's download links).
    pub fn export_matching(
        &self,
        filter: &ListFilter,
        mut each: impl FnMut(serde_json::Value) -> bool,
    ) -> Result<Vec<Unreadable>, ReplicaError> {
        let mut entries = self.list(filter)?;
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

    /// Rebuilds the listing and ref indexes from the documents, then adds to the catalog every
    /// resource it lacks (a lost shard is written again); `now_ms` dates those catalog changes.
    pub fn reindex(&self, now_ms: i64) -> Result<usize, ReplicaError> {
        let mut stale = Batch::default();
        for prefix in [keys::LISTING, keys::REFS, keys::CONTENT, keys::SEARCH_CARD] {
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
        let listed = self.list(&ListFilter {
            include_deleted: true,
            ..ListFilter::default()
        })?;
        let entries: Vec<(DocumentId, CatalogEntry)> = listed
            .iter()
            .map(|e| (e.id, CatalogEntry::of_listing(e)))
            .collect();
        self.catalog_add(&entries, now_ms)?;
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
        // In id order, the store's key order (see `sorted_by_id`).
        let work = sorted_by_id(ids, resources, distinct);
        // New documents are written `CREATE_BATCH_DOCS` at a time; a document named twice
        // is written line by line, so that its last line wins.
        let chunk = if distinct { CREATE_BATCH_DOCS } else { 1 };
        let chunks: Vec<_> = work.chunks(chunk).collect();
        let mut done = 0;
        let results = par::map(
            &chunks,
            threads,
            |items| self.upsert_chunk(items, now_ms),
            |result| {
                // Every resource counted, a chunk's at once.
                for _ in result.iter().flatten() {
                    done += 1;
                    progress(done);
                }
                // The first failure stops the import.
                result.is_ok()
            },
        );
        // Back in the order of the lines.
        let mut in_order: Vec<Option<Result<Upsert, ReplicaError>>> =
            ids.iter().map(|_| None).collect();
        for (items, result) in chunks.iter().zip(results) {
            match result {
                Some(Ok(outcomes)) => {
                    for ((line, _, _), o) in items.iter().zip(outcomes) {
                        in_order[*line] = Some(Ok(o));
                    }
                }
                Some(Err(e)) => in_order[items[0].0] = Some(Err(e)),
                None => {}
            }
        }
        in_order.into_iter().flatten().collect()
    }

    /// Upserts one chunk of an import's lines (distinct documents, in id order): its new
    /// documents are encoded, then written in one batch ([`crate::store::DocStore::create_all`]); the others
    /// are changed one by one.
    fn upsert_chunk(
        &self,
        items: &[(usize, &DocumentId, &Resource)],
        now_ms: i64,
    ) -> Result<Vec<Upsert>, ReplicaError> {
        let actor = self.store.actor_or_random();
        let mut new = Vec::new();
        let mut outcomes = Vec::with_capacity(items.len());
        for (_, id, r) in items {
            outcomes.push(if self.unchanged(id, r)? {
                Some(Upsert::Unchanged)
            } else if !self.store.contains(id)? {
                let (bytes, card) = self.encode_new(id, r, now_ms, &actor)?;
                new.push((**id, bytes, card));
                None
            } else {
                Some(self.update_existing(id, r, now_ms)?)
            });
        }
        let batch: Vec<_> = new.iter().map(|(id, b, c)| (*id, &b[..], c)).collect();
        let mut created = self.store.create_all(&batch)?.into_iter();
        let mut out = Vec::with_capacity(items.len());
        for ((_, id, r), outcome) in items.iter().zip(outcomes) {
            out.push(match outcome {
                Some(outcome) => outcome,
                None if created.next() == Some(true) => Upsert::Created,
                // Written meanwhile by someone else: changed like any existing document.
                None => self.update_existing(id, r, now_ms)?,
            });
        }
        Ok(out)
    }

    pub(super) fn upsert(
        &self,
        id: &DocumentId,
        r: &Resource,
        now_ms: i64,
    ) -> Result<Upsert, ReplicaError> {
        if self.unchanged(id, r)? {
            return Ok(Upsert::Unchanged);
        }
        if !self.store.contains(id)? {
            let created = self
                .store
                .create(id, |actor| self.encode_new(id, r, now_ms, actor))?;
            if created.is_some() {
                return Ok(Upsert::Created);
            }
        }
        self.update_existing(id, r, now_ms)
    }

    /// Whether the stored document already holds exactly `r`. The indexer keeps a hash of every
    /// resource document's content: a re-imported line equal to it is unchanged, and the
    /// document need not be loaded to find that out.
    fn unchanged(&self, id: &DocumentId, r: &Resource) -> Result<bool, ReplicaError> {
        Ok(self.kv.get(&content_key(id))? == Some(content_hash(r)))
    }

    /// A new document for `r`, encoded directly, without Automerge building it
    /// (`first_change`), with its card.
    fn encode_new(
        &self,
        id: &DocumentId,
        r: &Resource,
        now_ms: i64,
        actor: &automerge::ActorId,
    ) -> Result<(Vec<u8>, Card), ReplicaError> {
        let office = self.office.to_string();
        let (change, stored) = document::create_encoded(r, &office, now_ms, actor)?;
        let heads = HeadsHash::of(&[change.hash]);
        let card = Card::of_created(id, &stored, &office, now_ms / 1000, heads);
        Ok((change.bytes, card))
    }

    /// Changes a stored document to hold `r` (or makes it a resource, if it was not one).
    fn update_existing(
        &self,
        id: &DocumentId,
        r: &Resource,
        now_ms: i64,
    ) -> Result<Upsert, ReplicaError> {
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

/// The lines of an import as (line, id, resource), in the order of their ids when they are
/// `distinct` (otherwise in the order of the lines, so that a document's last line wins). Ids
/// are random, so lines in file order would insert every document's keys all over sled's
/// B-tree, splitting and rewriting its leaves again and again; in id order each key prefix
/// grows at one end: the replica takes a fifth less disk (10,000 resources: 84–89 → 65–70 MB).
fn sorted_by_id<'a>(
    ids: &'a [DocumentId],
    resources: &'a [Resource],
    distinct: bool,
) -> Vec<(usize, &'a DocumentId, &'a Resource)> {
    let mut work: Vec<_> = ids
        .iter()
        .zip(resources)
        .enumerate()
        .map(|(line, (id, r))| (line, id, r))
        .collect();
    if distinct {
        work.sort_unstable_by_key(|(_, id, _)| **id);
    }
    work
}

/// The journal of an import about to write `ids` at `now_ms`.
fn journal(ids: &[DocumentId], now_ms: i64) -> Batch {
    let mut value = Vec::with_capacity(8 + 16 * ids.len());
    value.extend_from_slice(&now_ms.to_be_bytes());
    for id in ids {
        value.extend_from_slice(id.as_bytes());
    }
    let mut batch = Batch::default();
    batch.put(META_IMPORT_JOURNAL.to_vec(), value);
    batch
}

/// The time and ids of a journal (a truncated tail is ignored: the journal is written in one
/// atomic batch, so there is none).
fn read_journal(bytes: &[u8]) -> (i64, Vec<DocumentId>) {
    let now_ms = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0);
    let ids = bytes
        .get(8..)
        .unwrap_or_default()
        .chunks_exact(16)
        .filter_map(|c| c.try_into().ok().map(DocumentId::from_bytes))
        .collect();
    (now_ms, ids)
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Upsert {
    Created,
    Updated,
    Unchanged,
}

#[cfg(test)]
mod tests {
    use super::super::tests::resource;
    use super::*;
    use crate::store::{Kv, SledKv, StoreError};
    use automerge::ReadDoc;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn import_same_ref_twice_updates_and_catalog_lists_it() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let v1 = resource(json!({"ref":"x","kind":"outil","title":"Guide","office":"caue-63"}));
        let v2 =
            resource(json!({"ref":"x","kind":"outil","title":"Guide du pisé","office":"caue-63"}));
        assert_eq!(
            r.import(std::slice::from_ref(&v1), 0, &mut |_| {})
                .unwrap()
                .created,
            1
        );
        assert_eq!(r.import(&[v1], 0, &mut |_| {}).unwrap().unchanged, 1);
        assert_eq!(r.import(&[v2], 0, &mut |_| {}).unwrap().updated, 1);
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
        assert_eq!(r.reindex(0).unwrap(), 1 + 1 + 1);
        assert_eq!(
            r.list(&ListFilter::default()).unwrap()[0].title,
            "Guide du pisé"
        );
    }

    /// `n` resources without a `ref` (their ids come from the batch's content).
    fn unnamed(n: usize) -> Vec<Resource> {
        (0..n)
            .map(|i| {
                resource(json!({"kind":"outil","title":format!("Fiche {i}"),"office":"caue-63"}))
            })
            .collect()
    }

    /// The number of resources the catalog shards list.
    fn catalogued(r: &Replica, ids: &[DocumentId]) -> usize {
        ids.iter()
            .filter(|id| {
                r.store()
                    .load(&Replica::catalog_shard(id))
                    .unwrap()
                    .is_some_and(|s| s.get(automerge::ROOT, id.url().as_str()).unwrap().is_some())
            })
            .count()
    }

    /// A disk that fails every document write after the first `left` ones, as a crash in the
    /// middle of an import would stop it: the documents written so far stay, nothing after
    /// that point runs (no catalog, no journal removal).
    struct CrashAfter {
        inner: Arc<dyn Kv>,
        left: std::sync::atomic::AtomicUsize,
    }

    impl Kv for CrashAfter {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn for_each_prefix(
            &self,
            prefix: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), StoreError> {
            self.inner.for_each_prefix(prefix, f)
        }
        fn apply(&self, batch: Batch) -> Result<(), StoreError> {
            use std::sync::atomic::Ordering::SeqCst;
            if batch.keys().any(|k| k.first() == Some(&keys::CHUNK))
                && self
                    .left
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_err()
            {
                return Err(StoreError::Db("injected crash".into()));
            }
            self.inner.apply(batch)
        }
        fn remove_if(&self, key: &[u8], expected: &[u8]) -> Result<bool, StoreError> {
            self.inner.remove_if(key, expected)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.inner.flush()
        }
    }

    #[test]
    fn each_line_gets_its_own_outcome_though_lines_are_written_in_id_order() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let lines: Vec<Resource> = (0..40)
            .map(|i| {
                resource(json!({"ref": format!("r{i}"), "kind": "outil", "title": format!("Fiche {i}"), "office": "caue-63"}))
            })
            .collect();
        let ids = import_ids(&lines);
        let mut sorted = ids.clone();
        sorted.sort();
        assert_ne!(sorted, ids, "the lines' ids must not be in order already");
        // Every third line is imported first: the second time it is unchanged, the others new.
        let first: Vec<usize> = (0..40).step_by(3).collect();
        let first_ids: Vec<DocumentId> = first.iter().map(|i| ids[*i]).collect();
        let first_lines: Vec<Resource> = first.iter().map(|i| lines[*i].clone()).collect();
        r.upsert_all(&first_ids, &first_lines, 1, &mut |_| {})
            .unwrap();
        let outcomes = r.upsert_all(&ids, &lines, 2, &mut |_| {}).unwrap();
        for (i, outcome) in outcomes.iter().enumerate() {
            let expected = match i % 3 {
                0 => Upsert::Unchanged,
                _ => Upsert::Created,
            };
            assert_eq!(outcome, &expected, "line {i}");
        }
        for (id, line) in ids.iter().zip(&lines) {
            assert_eq!(r.get(id).unwrap().resource.title, line.title);
        }
    }

    #[test]
    fn lines_without_a_ref_are_named_by_their_batch_and_position_lines_with_one_by_it() {
        let mut resources = unnamed(3);
        resources[1].ref_ = Some("caue-63-001".into());
        let ids = import_ids(&resources);
        assert_eq!(ids[1], ref_id("caue-63-001"));
        let batch = batch_hash(&resources);
        assert_eq!(
            ids[2],
            DocumentId::derived(&format!("atelier/import/{batch}/2"))
        );
        // Another file names its lines without a ref differently, not the others.
        let mut other = resources.clone();
        other[0].title.push('!');
        let other_ids = import_ids(&other);
        assert_eq!(other_ids[1], ids[1]);
        assert_ne!(other_ids[2], ids[2]);
        assert_eq!(import_ids(&resources), ids, "the same file, the same ids");
    }

    #[test]
    fn a_crashed_import_is_completed_at_open_and_running_it_again_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let resources = unnamed(300);
        let ids = import_ids(&resources);
        drop(Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap());
        {
            let kv: Arc<dyn Kv> = Arc::new(CrashAfter {
                inner: Arc::new(SledKv::open(&dir.path().join("db")).unwrap()),
                left: 3.into(),
            });
            let r = Replica::with_kv(dir.path(), "caue-63".parse().unwrap(), kv);
            assert!(r.import(&resources, 5, &mut |_| {}).is_err());
            let listed = r.list(&ListFilter::default()).unwrap().len();
            // New documents are written `CREATE_BATCH_DOCS` at a time, each batch whole or
            // not at all; the threads in flight when the disk failed may not have finished
            // theirs.
            assert!(
                listed > 0 && listed < resources.len() && listed.is_multiple_of(CREATE_BATCH_DOCS),
                "{listed} documents written"
            );
            assert_eq!(
                catalogued(&r, &ids),
                0,
                "the catalog was written before the crash"
            );
            assert!(r.kv.get(META_IMPORT_JOURNAL).unwrap().is_some());
        }
        let r = Replica::open(dir.path()).unwrap();
        // Every document the crashed import wrote is in the catalog; the journal is gone.
        let listed = r.list(&ListFilter::default()).unwrap();
        assert!(listed.len() >= CREATE_BATCH_DOCS);
        assert_eq!(catalogued(&r, &ids), listed.len());
        assert!(r.kv.get(META_IMPORT_JOURNAL).unwrap().is_none());
        // The same import again writes the rest into the same ids: no line twice.
        let report = r.import(&resources, 6, &mut |_| {}).unwrap();
        assert_eq!(
            report.created + report.unchanged,
            resources.len(),
            "{report:?}"
        );
        assert_eq!(report.unchanged, listed.len());
        assert_eq!(
            r.list(&ListFilter::default()).unwrap().len(),
            resources.len()
        );
        assert_eq!(catalogued(&r, &ids), resources.len());
        // And once more, by mistake: nothing changes.
        let again = r.import(&resources, 7, &mut |_| {}).unwrap();
        assert_eq!(again.unchanged, resources.len());
        assert_eq!(
            r.list(&ListFilter::default()).unwrap().len(),
            resources.len()
        );
    }

    #[test]
    fn reindex_writes_a_lost_catalog_shard_again() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let resources = unnamed(50);
        let ids = import_ids(&resources);
        r.import(&resources, 0, &mut |_| {}).unwrap();
        assert_eq!(catalogued(&r, &ids), ids.len());
        let shard = Replica::catalog_shard(&ids[0]);
        let in_shard = ids
            .iter()
            .filter(|id| Replica::catalog_shard(id) == shard)
            .count();
        let mut lost = Batch::default();
        r.kv.for_each_prefix(&keys::chunk_prefix(&shard), &mut |k, _| {
            lost.remove(k.to_vec());
            true
        })
        .unwrap();
        lost.remove(keys::heads_key(&shard));
        r.kv.apply(lost).unwrap();
        assert!(r.store().load(&shard).unwrap().is_none(), "shard not lost");
        assert_eq!(catalogued(&r, &ids), ids.len() - in_shard);
        let documents = r.store().len().unwrap();
        assert_eq!(r.reindex(9).unwrap(), documents);
        assert_eq!(r.store().len().unwrap(), documents + 1, "the shard is back");
        assert_eq!(catalogued(&r, &ids), ids.len());
    }

    #[test]
    fn an_imported_document_is_encoded_by_the_replica_and_edits_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap();
        let v1 = resource(
            json!({"ref":"enc","kind":"realisation","title":"Maison en pisé",
            "office":"caue-63","description":"Une maison en terre crue, rénovée en 2020.",
            "keywords":["pisé","terre"],"year":2020}),
        );
        assert_eq!(
            r.import(std::slice::from_ref(&v1), 5_000, &mut |_| {})
                .unwrap()
                .created,
            1
        );
        let id = ref_id("enc");
        let mut doc = r.load(&id).unwrap();
        let heads = crate::store::HeadsHash::of(&doc.get_heads());
        let sent: Card =
            serde_json::from_slice(&r.store().card_json(&id).unwrap().unwrap()).unwrap();
        assert_eq!(sent, Card::of(&id, &mut doc, heads));
        assert_eq!(r.get(&id).unwrap().resource, v1);

        let edit = crate::document::Edit::Append {
            field: "description".into(),
            text: " Visite en mai.".into(),
        };
        r.edit(&id, &[edit], 6_000).unwrap();
        let v2 = resource(
            json!({"ref":"enc","kind":"realisation","title":"Maison en pisé",
            "office":"caue-63","description":"Une maison en terre crue, rénovée en 2020. Visite en mai.",
            "keywords":["pisé","terre"],"year":2020}),
        );
        assert_eq!(r.get(&id).unwrap().resource, v2);
        let changes = r.load(&id).unwrap().get_changes(&[]);
        assert_eq!(
            changes[0].actor_id(),
            changes[1].actor_id(),
            "one actor per replica"
        );
        assert_eq!(
            r.import(std::slice::from_ref(&v2), 7_000, &mut |_| {})
                .unwrap()
                .unchanged,
            1
        );
        drop(r);
        let r = Replica::open(dir.path()).unwrap();
        assert_eq!(r.get(&id).unwrap().resource, v2);
        assert_eq!(r.history(&id).unwrap().len(), 2);
    }
}
