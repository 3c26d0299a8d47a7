//! An office replica: the document store in a data directory, the derived listing index, the
//! catalog documents, and the resource operations the CLI and the web app call.
//!
//! Layout of a data directory: `db/` (sled: document chunks, heads index, listing index, ref
//! index, metadata), `search/` (tantivy, derived), `identity/` (the device key pair, written by
//! the network edge). Every derived index can be rebuilt from the documents (`reindex`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::{AutoCommit, ReadDoc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::card::{self, content_hash, Card};
use crate::document::{self, DocumentError, Edit, HistoryEntry, Stored};
use crate::ids::{DocumentId, OfficeId};
use crate::resource::Resource;
use crate::store::{Batch, DocStore, Indexer, Kv, SledKv, StoreError};

/// On-disk format of a replica. Bumped when the layout changes; an older Atelier refuses a
/// newer replica instead of rewriting it.
pub const FORMAT_VERSION: u32 = 1;
/// Catalog shards: 64 keeps each shard document near 1,600 entries at 100,000 resources, so a
/// shard loads in milliseconds and an automerge-repo client fetches only the shards it needs.
pub const CATALOG_SHARDS: usize = 64;
/// Name from which every replica derives the catalog's root document id.
pub const CATALOG_ROOT_NAME: &str = "atelier/catalog/v1";
pub const CATALOG_TYPE: &str = "atelier.catalog";
pub const CATALOG_SHARD_TYPE: &str = "atelier.catalog-shard";

const META_FORMAT: &[u8] = b"m/format";
const META_OFFICE: &[u8] = b"m/office";
const META_ACTOR: &[u8] = b"m/actor";
const LISTING: u8 = b'l';
const REFS: u8 = b'r';
const PENDING: u8 = b'p';
/// SHA-256 of each resource document's FORMAT.md JSON, kept by the indexer (see `upsert`).
const CONTENT: u8 = b'x';
/// Most threads an import writes documents with: the work is CPU-bound, and four threads keep a
/// laptop responsive during a long import.
const IMPORT_THREADS: usize = 4;
/// Fewer resources than this per thread are imported on the calling thread alone: starting
/// threads would cost more than it saves.
const IMPORT_MIN_PER_THREAD: usize = 64;

/// Errors of replica operations, worded for office staff.
#[derive(Debug, Error)]
pub enum ReplicaError {
    /// No replica in this directory.
    #[error("aucun réplica dans « {0} » : créez-le avec « atelier init --office caue-XX »")]
    NotInitialised(PathBuf),
    /// A replica already exists there.
    #[error("un réplica existe déjà dans « {0} »")]
    AlreadyInitialised(PathBuf),
    /// The replica was written by a newer Atelier.
    #[error("le réplica « {path} » est au format {found}, cette version d'atelier lit le format {FORMAT_VERSION} : mettez atelier à jour (rien n'a été modifié)")]
    UnsupportedFormat { path: PathBuf, found: String },
    /// No resource with this id or ref.
    #[error("aucune ressource « {0} »")]
    NotFound(String),
    /// Filesystem error.
    #[error("{path} : {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Document(#[from] DocumentError),
}

impl From<automerge::AutomergeError> for ReplicaError {
    fn from(e: automerge::AutomergeError) -> Self {
        Self::Store(StoreError::Automerge(e))
    }
}

/// What lists and filters read: derived from each resource document by the indexer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListingEntry {
    pub id: DocumentId,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    pub kind: String,
    pub office: String,
    pub title: String,
    pub summary: String,
    pub status: String,
    pub commune: Option<String>,
    pub departement: Option<String>,
    pub axes: Vec<String>,
    pub themes: Vec<String>,
    pub sectors: Vec<String>,
    pub year: Option<i64>,
    pub created_at: i64,
    pub deleted: bool,
}

impl ListingEntry {
    /// What the listing shows of a resource document.
    pub fn of(id: &DocumentId, stored: &Stored) -> Self {
        let r = &stored.resource;
        Self {
            id: *id,
            ref_: r.ref_.clone(),
            kind: r.kind.clone(),
            office: r.office.clone(),
            title: r.title.clone(),
            summary: r.summary.clone(),
            status: r.status.clone(),
            commune: r.commune().map(str::to_string),
            departement: r.departement().map(str::to_string),
            axes: r.axes.clone(),
            themes: r.themes.clone(),
            sectors: r.sectors.clone(),
            year: r.year,
            created_at: stored.created_at,
            deleted: stored.deleted,
        }
    }
}

/// Filters of `list`; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub kind: Option<String>,
    pub office: Option<String>,
    pub departement: Option<String>,
    pub theme: Option<String>,
    pub sector: Option<String>,
    pub status: Option<String>,
    pub include_deleted: bool,
}

impl ListFilter {
    fn matches(&self, e: &ListingEntry) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let has = |want: &Option<String>, have: &[String]| {
            want.as_deref().is_none_or(|w| have.iter().any(|h| h == w))
        };
        (self.include_deleted || !e.deleted)
            && eq(&self.kind, &e.kind)
            && eq(&self.office, &e.office)
            && eq(&self.status, &e.status)
            && self
                .departement
                .as_deref()
                .is_none_or(|d| e.departement.as_deref() == Some(d))
            && has(&self.theme, &e.themes)
            && has(&self.sector, &e.sectors)
    }
}

/// Result of an import.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// One office's replica.
pub struct Replica {
    dir: PathBuf,
    office: OfficeId,
    store: Arc<DocStore>,
    kv: Arc<dyn Kv>,
}

impl Replica {
    /// Creates a replica for `office` in `dir` (which may exist but must not hold a replica).
    pub fn init(dir: &Path, office: OfficeId) -> Result<Self, ReplicaError> {
        let db = dir.join("db");
        if db.exists() {
            return Err(ReplicaError::AlreadyInitialised(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(|source| ReplicaError::Io {
            path: dir.into(),
            source,
        })?;
        let kv: Arc<dyn Kv> = Arc::new(SledKv::open(&db)?);
        let mut batch = Batch::default();
        batch.put(
            META_FORMAT.to_vec(),
            FORMAT_VERSION.to_string().into_bytes(),
        );
        batch.put(META_OFFICE.to_vec(), office.to_string().into_bytes());
        let mut actor = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut actor);
        batch.put(META_ACTOR.to_vec(), actor.to_vec());
        kv.apply(batch)?;
        kv.flush()?;
        Ok(Self::with_kv(dir, office, kv))
    }

    /// Opens the replica in `dir`. A second process gets `StoreError::InUse`.
    pub fn open(dir: &Path) -> Result<Self, ReplicaError> {
        let db = dir.join("db");
        if !db.exists() {
            return Err(ReplicaError::NotInitialised(dir.to_path_buf()));
        }
        let kv: Arc<dyn Kv> = Arc::new(SledKv::open(&db)?);
        let format = kv
            .get(META_FORMAT)?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        match format.as_deref() {
            Some(f) if f == FORMAT_VERSION.to_string() => {}
            Some(f) => {
                return Err(ReplicaError::UnsupportedFormat {
                    path: dir.into(),
                    found: f.into(),
                })
            }
            None => return Err(ReplicaError::NotInitialised(dir.to_path_buf())),
        }
        let office = kv
            .get(META_OFFICE)?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ReplicaError::NotInitialised(dir.to_path_buf()))?;
        Ok(Self::with_kv(dir, office, kv))
    }

    /// A replica in memory, for tests and simulations.
    pub fn in_memory(office: OfficeId) -> Self {
        Self::with_kv(
            Path::new(""),
            office,
            Arc::new(crate::store::MemKv::default()),
        )
    }

    fn with_kv(dir: &Path, office: OfficeId, kv: Arc<dyn Kv>) -> Self {
        let mut store = DocStore::with_indexer(kv.clone(), Box::new(ListingIndexer));
        if let Ok(Some(actor)) = kv.get(META_ACTOR) {
            store = store.with_actor(automerge::ActorId::from(actor));
        }
        let store = Arc::new(store);
        Self {
            dir: dir.to_path_buf(),
            office,
            store,
            kv,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn office(&self) -> &OfficeId {
        &self.office
    }

    /// The document store (the sync engine works on it directly).
    pub fn store(&self) -> &Arc<DocStore> {
        &self.store
    }

    /// Adds a new resource; a resource with a `ref` gets the id derived from it, so the same
    /// ref names the same document on every replica.
    pub fn create(
        &self,
        r: &Resource,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<DocumentId, ReplicaError> {
        let id = match &r.ref_ {
            Some(reference) => ref_id(reference),
            None => DocumentId::random(rng),
        };
        match self.upsert(&id, r, now_ms)? {
            // A new document holds exactly `r`: no need to load it back for the catalog.
            Upsert::Created => {
                self.catalog_add(&[(id, CatalogEntry::created(r, now_ms))], now_ms)?
            }
            Upsert::Updated | Upsert::Unchanged => self.catalog_add_loaded(&[id], now_ms)?,
        }
        self.store.flush()?;
        Ok(id)
    }

    /// Applies user edits to a resource and flushes before returning.
    pub fn edit(
        &self,
        id: &DocumentId,
        edits: &[Edit],
        now_ms: i64,
    ) -> Result<Vec<String>, ReplicaError> {
        if !self.store.contains(id)? {
            return Err(ReplicaError::NotFound(id.to_string()));
        }
        let office = self.office.to_string();
        let (fields, _) = self.store.update(id, |doc, _| {
            document::apply_edits(doc, edits, &office, now_ms).map_err(ReplicaError::from)
        })?;
        if edits.iter().any(|e| matches!(e, Edit::SetDeleted(_))) {
            self.catalog_set_deleted(id, now_ms)?;
        }
        self.store.flush()?;
        Ok(fields)
    }

    /// Deletes a resource (a tombstone that syncs).
    pub fn delete(&self, id: &DocumentId, now_ms: i64) -> Result<(), ReplicaError> {
        self.edit(id, &[Edit::SetDeleted(true)], now_ms).map(|_| ())
    }

    /// The resource and its metadata.
    pub fn get(&self, id: &DocumentId) -> Result<Stored, ReplicaError> {
        Ok(document::read(&self.load(id)?)?)
    }

    /// The resource as it was at an earlier version (`heads`, as printed by `history`).
    pub fn get_at(&self, id: &DocumentId, heads: &[String]) -> Result<Stored, ReplicaError> {
        let mut doc = self.load(id)?;
        let heads: Vec<automerge::ChangeHash> = heads
            .iter()
            .map(|h| {
                h.parse()
                    .map_err(|_| ReplicaError::NotFound(format!("{id}@{h}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(document::read_at(&mut doc, &heads)?)
    }

    /// Every change of a resource, oldest first.
    pub fn history(&self, id: &DocumentId) -> Result<Vec<HistoryEntry>, ReplicaError> {
        Ok(document::history(&mut self.load(id)?))
    }

    /// Resolves what a user typed: a document URL, a bare id, or a `ref`.
    pub fn resolve(&self, text: &str) -> Result<DocumentId, ReplicaError> {
        if let Ok(id) = text.parse::<DocumentId>() {
            if self.store.contains(&id)? {
                return Ok(id);
            }
        }
        let mut key = vec![REFS];
        key.extend_from_slice(text.as_bytes());
        match self.kv.get(&key)? {
            Some(v) => {
                let bytes: [u8; 16] = v
                    .try_into()
                    .map_err(|_| ReplicaError::NotFound(text.into()))?;
                Ok(DocumentId::from_bytes(bytes))
            }
            None => Err(ReplicaError::NotFound(text.into())),
        }
    }

    /// Listing entries matching `filter`, sorted by title, read from the listing index only.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<ListingEntry>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[LISTING], &mut |_, v| {
            if let Ok(e) = serde_json::from_slice::<ListingEntry>(v) {
                if filter.matches(&e) {
                    out.push(e);
                }
            }
            true
        })?;
        // One lowercase key per entry, rather than two allocations per comparison.
        out.sort_by_cached_key(|e| e.title.to_lowercase());
        Ok(out)
    }

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
        for prefix in [LISTING, REFS, CONTENT] {
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

    /// Ids of documents changed since the search index last took them (see `take_pending`).
    pub fn pending(&self) -> Result<Vec<DocumentId>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[PENDING], &mut |k, _| {
            if let Some(id) = k.get(1..17).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                out.push(DocumentId::from_bytes(id));
            }
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

    /// The catalog's root document id (the URL an automerge-repo client starts from).
    pub fn catalog_root() -> DocumentId {
        DocumentId::derived(CATALOG_ROOT_NAME)
    }

    /// The catalog shard holding `id`.
    pub fn catalog_shard(id: &DocumentId) -> DocumentId {
        DocumentId::derived(&format!(
            "{CATALOG_ROOT_NAME}/shard/{:02x}",
            id.bucket(CATALOG_SHARDS)
        ))
    }

    fn load(&self, id: &DocumentId) -> Result<AutoCommit, ReplicaError> {
        self.store
            .load(id)?
            .ok_or_else(|| ReplicaError::NotFound(id.to_string()))
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

    fn upsert(&self, id: &DocumentId, r: &Resource, now_ms: i64) -> Result<Upsert, ReplicaError> {
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

    /// Adds catalog entries for documents already stored, reading what the catalog shows of them.
    fn catalog_add_loaded(&self, ids: &[DocumentId], now_ms: i64) -> Result<(), ReplicaError> {
        let entries: Vec<(DocumentId, CatalogEntry)> = ids
            .iter()
            .filter_map(|id| self.get(id).ok().map(|s| (*id, CatalogEntry::of(&s))))
            .collect();
        self.catalog_add(&entries, now_ms)
    }

    /// Adds catalog entries, one write per shard touched, and makes sure the root lists shards.
    fn catalog_add(
        &self,
        entries: &[(DocumentId, CatalogEntry)],
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        if entries.is_empty() {
            return Ok(());
        }
        use automerge::transaction::Transactable;
        let root = Self::catalog_root();
        let office = self.office.to_string();
        self.store.update(&root, |doc, _| {
            if doc.get(automerge::ROOT, "@type").ok().flatten().is_none() {
                doc.put(automerge::ROOT, "@type", CATALOG_TYPE)?;
                for shard in 0..CATALOG_SHARDS {
                    let shard_id =
                        DocumentId::derived(&format!("{CATALOG_ROOT_NAME}/shard/{shard:02x}"));
                    doc.put(
                        automerge::ROOT,
                        format!("shard-{shard:02x}"),
                        shard_id.url(),
                    )?;
                }
                commit_note(doc, &office, "catalogue", now_ms);
            }
            Ok::<_, ReplicaError>(())
        })?;
        let mut by_shard: std::collections::BTreeMap<DocumentId, Vec<&(DocumentId, CatalogEntry)>> =
            Default::default();
        for entry in entries {
            by_shard
                .entry(Self::catalog_shard(&entry.0))
                .or_default()
                .push(entry);
        }
        for (shard, metas) in by_shard {
            self.store.update(&shard, |doc, _| {
                if doc.get(automerge::ROOT, "@type").ok().flatten().is_none() {
                    doc.put(automerge::ROOT, "@type", CATALOG_SHARD_TYPE)?;
                }
                for (id, s) in &metas {
                    let key = id.url();
                    if doc
                        .get(automerge::ROOT, key.as_str())
                        .ok()
                        .flatten()
                        .is_some()
                    {
                        continue;
                    }
                    let entry =
                        doc.put_object(automerge::ROOT, key.as_str(), automerge::ObjType::Map)?;
                    doc.put(&entry, "kind", s.kind.as_str())?;
                    doc.put(&entry, "office", s.office.as_str())?;
                    doc.put(&entry, "title", s.title.as_str())?;
                    doc.put(&entry, "created", s.created)?;
                    doc.put(&entry, "deleted", s.deleted)?;
                }
                commit_note(doc, &office, "catalogue", now_ms);
                Ok::<_, ReplicaError>(())
            })?;
        }
        Ok(())
    }

    fn catalog_set_deleted(&self, id: &DocumentId, now_ms: i64) -> Result<(), ReplicaError> {
        use automerge::transaction::Transactable;
        let deleted = self.get(id)?.deleted;
        let office = self.office.to_string();
        self.catalog_add_loaded(&[*id], now_ms)?;
        self.store.update(&Self::catalog_shard(id), |doc, _| {
            if let Some((_, entry)) = doc.get(automerge::ROOT, id.url().as_str())? {
                doc.put(&entry, "deleted", deleted)?;
                commit_note(doc, &office, "catalogue", now_ms);
            }
            Ok::<_, ReplicaError>(())
        })?;
        Ok(())
    }
}

enum Upsert {
    Created,
    Updated,
    Unchanged,
}

/// What a catalog shard lists of one resource.
struct CatalogEntry {
    kind: String,
    office: String,
    title: String,
    created: i64,
    deleted: bool,
}

impl CatalogEntry {
    /// The entry of a document just created from `r` at `now_ms` (what `document::create` wrote).
    fn created(r: &Resource, now_ms: i64) -> Self {
        Self {
            kind: r.kind.clone(),
            office: r.office.clone(),
            title: r.title.clone(),
            created: now_ms,
            deleted: false,
        }
    }

    fn of(s: &Stored) -> Self {
        Self {
            kind: s.resource.kind.clone(),
            office: s.resource.office.clone(),
            title: s.resource.title.clone(),
            created: s.created_at,
            deleted: s.deleted,
        }
    }
}

/// Key prefix of the relay record: `s` + document id → the heads hash the relay held at the
/// last sync (see [`Replica::record_synced`]).
const SYNCED: u8 = b's';
/// The replica's bucket digests (`BUCKETS` × 16 bytes) when the relay record was last written.
const META_SYNCED_DIGESTS: &[u8] = b"m/synced-digests";

/// How a document differs from what the relay held at the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsynced {
    /// The relay has never had this document.
    New,
    /// The relay has an older state of it (local edits, or changes received from a peer).
    Changed,
}

/// The relay record: what the relay holds, as of the last sync, so that `atelier status` can
/// say what has not reached it yet without asking it. It is a copy of the heads index taken
/// when a sync with the relay converged (both sides then hold exactly the same documents), plus
/// the bucket digests of that moment, so that recording again and listing differences only
/// look at the buckets that moved since. Comparing heads rather than logging local writes also
/// counts changes received from a peer (`atelier sync --peer`): they are not on the relay
/// either.
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
        self.kv.for_each_prefix(&[SYNCED], &mut |k, _| {
            batch.remove(k.to_vec());
            true
        })?;
        batch.remove(META_SYNCED_DIGESTS.to_vec());
        self.kv.apply(batch)?;
        self.kv.flush()?;
        Ok(())
    }

    /// The listing entry of one document (`None` for a document that is not a resource).
    pub fn listing(&self, id: &DocumentId) -> Result<Option<ListingEntry>, ReplicaError> {
        Ok(self
            .kv
            .get(&listing_key(id))?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Names the owner office of a document from the listing index, for the sync summary
    /// (documents received during the sync are indexed as they are written, so they count).
    pub fn office_lookup(&self) -> crate::sync::OfficeLookup {
        let kv = self.kv.clone();
        Box::new(move |id| {
            let entry = kv.get(&listing_key(id)).ok()??;
            serde_json::from_slice::<ListingEntry>(&entry)
                .ok()
                .map(|e| e.office)
        })
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

fn synced_key(id: &DocumentId) -> Vec<u8> {
    let mut k = vec![SYNCED];
    k.extend_from_slice(id.as_bytes());
    k
}

fn listing_key(id: &DocumentId) -> Vec<u8> {
    let mut k = vec![LISTING];
    k.extend_from_slice(id.as_bytes());
    k
}

/// The document id of the resource with this external ref, the same on every replica.
pub fn ref_id(reference: &str) -> DocumentId {
    DocumentId::derived(&format!("atelier/ref/{reference}"))
}

fn commit_note(doc: &mut AutoCommit, office: &str, what: &str, now_ms: i64) {
    let note = document::ChangeNote {
        office: office.into(),
        fields: vec![what.into()],
    };
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(serde_json::to_string(&note).unwrap_or_default())
            .with_time(now_ms / 1000),
    );
}

fn content_key(id: &DocumentId) -> Vec<u8> {
    let mut k = vec![CONTENT];
    k.extend_from_slice(id.as_bytes());
    k
}

fn pending_key(id: &DocumentId) -> Vec<u8> {
    let mut k = vec![PENDING];
    k.extend_from_slice(id.as_bytes());
    k
}

/// Keeps the listing and ref indexes, and the search to-do list, in step with resource documents.
struct ListingIndexer;

impl Indexer for ListingIndexer {
    fn index(&self, id: &DocumentId, card: &Card, batch: &mut Batch) -> Result<(), StoreError> {
        let Some(resource) = &card.resource else {
            // Not a resource (a catalog shard, or a foreign document): nothing to list, and no
            // content for an import to compare with.
            batch.remove(content_key(id));
            return Ok(());
        };
        // `Card::fits` checked the hex of cards from peers; ours are written by `Card::of`.
        batch.put(
            content_key(id),
            hex::decode(&resource.content).unwrap_or_default(),
        );
        let entry = &resource.listing;
        batch.put(
            listing_key(id),
            serde_json::to_vec(entry).unwrap_or_default(),
        );
        if let Some(reference) = &entry.ref_ {
            let mut rkey = vec![REFS];
            rkey.extend_from_slice(reference.as_bytes());
            batch.put(rkey, id.as_bytes().to_vec());
        }
        batch.put(pending_key(id), Vec::new());
        Ok(())
    }

    fn resource_card_json(
        &self,
        kv: &dyn Kv,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // Every resource document is listed (since the first replica format); its content hash
        // came later, so a listed document without one cannot make a card.
        let Some(listing) = kv.get(&listing_key(id))? else {
            return Ok(Some(b"null".to_vec()));
        };
        let Some(content) = kv.get(&content_key(id))? else {
            return Ok(None);
        };
        // The listing entry is stored as `serde_json` wrote it: splice it in as it is.
        let json = card::splice_object(&[
            ("listing", &listing),
            ("content", &card::hex_json(&content)),
        ]);
        Ok(Some(json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn resource(v: serde_json::Value) -> Resource {
        Resource::from_json(&v).unwrap()
    }

    #[test]
    fn a_replica_sends_the_card_it_would_derive_from_the_document() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let id = r
            .create(
                &resource(
                    json!({"ref":"mc-1","kind":"outil","title":"Guide","office":"caue-63",
                    "location":{"commune":"Thiers","departement":"63"}}),
                ),
                &mut rng,
                1000,
            )
            .unwrap();
        let mut doc = r.load(&id).unwrap();
        let heads = crate::store::HeadsHash::of(&doc.get_heads());
        let sent: Card =
            serde_json::from_slice(&r.store().card_json(&id).unwrap().unwrap()).unwrap();
        assert_eq!(sent, Card::of(&id, &doc, heads));
        assert!(sent.fits(&id));
        let shard = Replica::catalog_shard(&id);
        let sent: Card =
            serde_json::from_slice(&r.store().card_json(&shard).unwrap().unwrap()).unwrap();
        assert_eq!(sent.resource, None, "a catalog shard is not a resource");
    }

    #[test]
    fn reopen_shows_every_acknowledged_write_and_a_second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let id = {
            let r = Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap();
            let id = r
                .create(
                    &resource(json!({"kind":"outil","title":"Guide","office":"caue-63"})),
                    &mut rng,
                    1000,
                )
                .unwrap();
            r.edit(
                &id,
                &[Edit::Append {
                    field: "description".into(),
                    text: "Texte.".into(),
                }],
                2000,
            )
            .unwrap();
            assert!(matches!(
                Replica::open(dir.path()),
                Err(ReplicaError::Store(StoreError::InUse(_)))
            ));
            id
        };
        let r = Replica::open(dir.path()).unwrap();
        assert_eq!(r.office().as_str(), "caue-63");
        assert_eq!(r.get(&id).unwrap().resource.description, "Texte.");
        assert_eq!(r.list(&ListFilter::default()).unwrap().len(), 1);
        assert_eq!(r.history(&id).unwrap().len(), 2);
    }

    #[test]
    fn newer_format_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        {
            let r = Replica::init(dir.path(), "caue-15".parse().unwrap()).unwrap();
            let mut b = Batch::default();
            b.put(META_FORMAT.to_vec(), b"99".to_vec());
            r.kv.apply(b).unwrap();
            r.kv.flush().unwrap();
        }
        let err = Replica::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("format 99"), "{err}");
        assert!(matches!(
            Replica::open(&dir.path().join("nothing")),
            Err(ReplicaError::NotInitialised(_))
        ));
    }

    #[test]
    fn list_filters_and_tombstones() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let a = r.create(&resource(json!({"ref":"a","kind":"realisation","title":"A","office":"caue-63","themes":["habitat"],"location":{"departement":"63"}})), &mut rng, 0).unwrap();
        r.create(
            &resource(json!({"ref":"b","kind":"outil","title":"B","office":"caue-15"})),
            &mut rng,
            0,
        )
        .unwrap();
        let only = |f: ListFilter| {
            r.list(&f)
                .unwrap()
                .into_iter()
                .map(|e| e.title)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            only(ListFilter {
                kind: Some("outil".into()),
                ..Default::default()
            }),
            ["B"]
        );
        assert_eq!(
            only(ListFilter {
                theme: Some("habitat".into()),
                ..Default::default()
            }),
            ["A"]
        );
        assert_eq!(
            only(ListFilter {
                departement: Some("63".into()),
                ..Default::default()
            }),
            ["A"]
        );
        r.delete(&a, 5).unwrap();
        assert_eq!(only(ListFilter::default()), ["B"]);
        assert_eq!(
            only(ListFilter {
                include_deleted: true,
                ..Default::default()
            }),
            ["A", "B"]
        );
        assert_eq!(r.resolve("a").unwrap(), a);
        assert_eq!(r.resolve(&a.to_string()).unwrap(), a);
        assert!(r.resolve("zzz").is_err());
    }

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
