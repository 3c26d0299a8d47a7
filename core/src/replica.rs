//! An office replica: the document store in a data directory, the derived indexes, the
//! catalog documents, and the resource operations the CLI and the web app call.
//!
//! Layout of a data directory: `db/` (sled: document chunks, heads index, listing index, ref
//! index, metadata; every key is described in `store/keys.rs`), `search/` (tantivy, derived),
//! `identity/` (the device key pair, written by the network edge), `media/` (the blobs of photos
//! and documents, see `media`). Every derived index can be
//! rebuilt from the documents (`reindex`).
//!
//! This file holds the replica itself and the operations on one resource; each other concern
//! has a module of its own: `listing` (the listing and ref indexes, and the indexer that keeps
//! them), `listed` (the listing kept in memory for servers, current with every write), `catalog` (the catalog documents for automerge-repo clients), `import` (import, its
//! journal, export, reindex), `synced` (what the relay held at the last sync, and the sync record: when
//! the last syncs happened, a running watch) and `pending` (the search index's to-do list).

mod catalog;
mod import;
mod listed;
mod listing;
mod media;
mod pending;
mod publication;
mod synced;
mod work;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::AutoCommit;
use rand::RngCore;
use thiserror::Error;

use crate::document::{self, DocumentError, Edit, HistoryEntry, Stored};
use crate::ids::{DocumentId, OfficeId};
use crate::resource::Resource;
use crate::store::keys::{META_ACTOR, META_FORMAT, META_OFFICE};
use crate::store::{Batch, DocStore, Kv, SledKv, StoreError};
use catalog::CatalogEntry;
pub use catalog::{
    check_catalog_write, is_catalog, CATALOG_ROOT_NAME, CATALOG_SHARDS, CATALOG_SHARD_TYPE,
    CATALOG_TYPE,
};
use import::Upsert;
pub use import::{ImportReport, Unreadable};
pub use listed::{Listed, ListedEntry, MAX_CHANGED_NOTED};
use listing::ListingIndexer;
pub use listing::{ListFilter, ListingEntry};
pub use media::{tier_of, Added, MediaStatus, NewMedia, MAX_PREPARE_THREADS};
pub use pending::PendingDocs;
pub use publication::{
    Assembled, AssembledSection, Body, MapPoint, PublicationSummary, SinceExport, Source,
    MAX_SECTION_RESOURCES, PUBLICATION_FIELD,
};
pub use synced::{PeerSync, RefusedDoc, SyncRecord, Unsynced, WatchState};
pub use work::{AssignedTask, ForYou, GroupSummary, Mention, ToReview, NEWS_FIRST_VISIT_MS};

/// On-disk format of a replica. Bumped when the layout changes; an older Atelier refuses a
/// newer replica instead of rewriting it.
pub const FORMAT_VERSION: u32 = 1;

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
    #[error(transparent)]
    Media(#[from] crate::media::store::MediaError),
    /// A group, plan de charge, discussion or review edit refused (see `crate::work`).
    #[error(transparent)]
    Work(#[from] crate::work::WorkError),
    /// Resources whose documents cannot be read (`Replica::export`).
    #[error("{} illisible{} : {}", crate::fr::count(.0.len() as u64, "ressource"), crate::fr::plural_s(.0.len() as u64), .0.iter().map(|u| format!("{} « {} » ({})", u.id, u.title, u.reason)).collect::<Vec<_>>().join(" ; "))]
    Unreadable(Vec<Unreadable>),
}

impl From<automerge::AutomergeError> for ReplicaError {
    fn from(e: automerge::AutomergeError) -> Self {
        Self::Store(StoreError::Automerge(e))
    }
}

/// One office's replica.
pub struct Replica {
    dir: PathBuf,
    office: OfficeId,
    store: Arc<DocStore>,
    kv: Arc<dyn Kv>,
    /// The replica's blobs, `<dir>/media`.
    media: crate::media::store::MediaStore,
    /// An in-memory replica's media folder, removed with it.
    _media_tmp: Option<Arc<tempfile::TempDir>>,
    /// Serialises read-modify-writes of the sync record (the watch's hooks and its shutdown
    /// run on different threads).
    sync_record_lock: std::sync::Mutex<()>,
    /// The listing in memory, for servers (see `listed`); empty until first asked for.
    listing_cache: Arc<listed::ListingCache>,
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
        let replica = Self::with_kv(dir, office, kv);
        replica.finish_interrupted_import()?;
        Ok(replica)
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
        let listing_cache = Arc::new(listed::ListingCache::default());
        let noted = listing_cache.clone();
        store.observe(Box::new(move |id| noted.changed(id)));
        let store = Arc::new(store);
        // An in-memory replica (tests, simulations) keeps its blobs in a temporary folder.
        let media_tmp = dir
            .as_os_str()
            .is_empty()
            .then(|| tempfile::tempdir().ok().map(Arc::new))
            .flatten();
        let media_dir = match &media_tmp {
            Some(t) => t.path().to_path_buf(),
            None => dir.join("media"),
        };
        Self {
            dir: dir.to_path_buf(),
            office,
            store,
            media: crate::media::store::MediaStore::new(media_dir),
            _media_tmp: media_tmp,
            kv,
            sync_record_lock: std::sync::Mutex::new(()),
            listing_cache,
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
        let publishes = edits.iter().any(
            |e| matches!(e, Edit::Set { field, value } if field == "status" && value == "publie"),
        );
        if publishes {
            self.check_publishable(id)?;
        }
        let office = self.office.to_string();
        let deletes = edits.iter().any(|e| matches!(e, Edit::SetDeleted(_)));
        let ((fields, read), _) = self.store.update(id, |doc, _| {
            let fields = document::apply_edits(doc, edits, &office, now_ms)?;
            // A deletion changes the catalog too: read what it shows while the document is
            // loaded, rather than loading it again.
            Ok::<_, ReplicaError>((fields, deletes.then(|| document::read(doc))))
        })?;
        if let Some(read) = read {
            self.catalog_set_deleted(id, CatalogEntry::of(&read?), now_ms)?;
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

    fn load(&self, id: &DocumentId) -> Result<AutoCommit, ReplicaError> {
        self.store
            .load(id)?
            .ok_or_else(|| ReplicaError::NotFound(id.to_string()))
    }
}

/// The document id of the resource with this external ref, the same on every replica.
pub fn ref_id(reference: &str) -> DocumentId {
    DocumentId::derived(&format!("atelier/ref/{reference}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Card;
    use rand::SeedableRng;
    use serde_json::json;

    /// A valid resource, for the tests of the replica's modules.
    pub(super) fn resource(v: serde_json::Value) -> Resource {
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
        assert_eq!(sent, Card::of(&id, &mut doc, heads));
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
}
