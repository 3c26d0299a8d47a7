//! Document storage: Automerge documents as snapshot + incremental chunks over a key-value store,
//! with a heads index and per-bucket digests kept current on every write.
//!
//! Documents are loaded only while something works on them; nothing here keeps a document in
//! memory between calls. Every write of a document (its new chunk, its heads hash, and whatever
//! derived index entries the caller adds) goes to the key-value store as one atomic batch.

/// Public so that tests and tools can write what an older version could have stored (the
/// layout is not an API: only the store and the replica write through it).
mod doc_cache;
pub mod keys;
pub mod kv;

pub use doc_cache::{DOC_CACHE_BYTES, DOC_CACHE_ENTRIES};

use std::sync::{Arc, Mutex};

use automerge::AutoCommit;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::card::{self, Card, CardMemo};
pub use crate::document::{new_doc, TEXT_ENCODING};
use crate::ids::DocumentId;
pub use crate::ids::HeadsHash;
use crate::mutex::lock;
use keys::{chunk_key, chunk_prefix, chunk_seq, heads_key};
pub use kv::{Batch, Kv, MemKv, SledKv};

/// Number of buckets the document id space is split into for set reconciliation. 256 keeps the
/// digest exchange at 4 KB while each bucket of a 100,000-document corpus lists ~400 documents.
pub const BUCKETS: usize = 256;
/// A document is compacted into one snapshot once it has this many incremental chunks: loading
/// then reads at most this many small chunks, and compaction cost is amortised over as many writes.
pub const MAX_INCREMENTAL_CHUNKS: u32 = 32;
/// Largest saved document accepted from anywhere (import, peer, browser). Automerge documents of
/// this corpus are a few KB (the longest generated descriptions, 20 KB, save to ~30 KB with
/// history); 8 MB leaves room for years of edits and stops a peer from making us load a huge
/// document. It is below the sync frame limit so any document fits in one frame.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;
/// New documents [`DocStore::create_all`] is best given at once: an import of 10,000 went from
/// ~3,700 to ~7,500 resources/s with 64 per batch instead of one (8: 6,400/s; 256: 7,100/s,
/// and more memory).
pub const CREATE_BATCH_DOCS: usize = 64;

/// Lock stripes guarding read-modify-write of documents: two writers of one document serialise,
/// writers of different documents rarely contend.
const LOCK_STRIPES: usize = 64;

/// Errors of the document store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error("les données sont déjà utilisées par un autre processus atelier (« {0} »)")]
    InUse(String),
    /// The underlying database failed.
    #[error("base de données : {0}")]
    Db(String),
    /// A stored or received document could not be decoded.
    #[error("document {id} illisible : {reason}")]
    Corrupt { id: DocumentId, reason: String },
    /// A document exceeds `MAX_DOCUMENT_BYTES`.
    #[error("document {id} trop gros ({size} octets, {MAX_DOCUMENT_BYTES} au plus)")]
    TooLarge { id: DocumentId, size: usize },
    /// Automerge refused an operation.
    #[error("automerge : {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// One bucket's number and its `(id, heads hash)` entries.
pub type BucketList = (usize, Vec<(DocumentId, HeadsHash)>);

/// What a write did to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub id: DocumentId,
    /// False when the document was already in this state (nothing was written).
    pub changed: bool,
    pub heads: HeadsHash,
    /// Some received changes wait for dependencies that have not arrived (`apply_bytes`).
    pub missing_deps: bool,
}

/// Receives the id of every document that changed, after the change is in the store.
pub type Observer = Box<dyn Fn(&DocumentId) + Send + Sync>;

/// A change as the sync engine pushes it live: the new changes of one document.
#[derive(Debug, Clone)]
pub struct DocChange {
    pub id: DocumentId,
    pub heads: HeadsHash,
    /// The heads hash before this change (`None`: the document is new here).
    pub previous: Option<HeadsHash>,
    /// The changes since the previous state (loads with `load_incremental`).
    pub changes: Vec<u8>,
}

/// Receives every change with its bytes, after the change is in the store.
pub type ChangeObserver = Box<dyn Fn(&DocChange) + Send + Sync>;

/// Derives index entries from a document's card; called inside every write, so the entries
/// land in the same atomic batch as the document change, whoever wrote it (user, sync, browser),
/// whether the card was derived here or received with the document (`apply_bytes_with_card`).
pub trait Indexer: Send + Sync {
    fn index(&self, id: &DocumentId, card: &Card, batch: &mut Batch) -> Result<(), StoreError>;

    /// The resource part of a stored document's card (`ResourceCard` as JSON, `null` for a
    /// document that is not a resource), read back from this indexer's entries without parsing
    /// them; `None` when the entries cannot tell.
    fn resource_card_json(
        &self,
        kv: &dyn Kv,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The indexer of a store that lists nothing itself (a relay's): it keeps the resource part of
/// every document's card, so that the store can send documents with their cards.
pub struct CardIndexer;

impl Indexer for CardIndexer {
    fn index(&self, id: &DocumentId, card: &Card, batch: &mut Batch) -> Result<(), StoreError> {
        if let Some(work) = &card.work {
            // A group's members are what the relay's gate checks; no resource card, so that the
            // document travels without one and each receiver derives its own.
            batch.remove(keys::resource_card_key(id));
            batch.put(
                keys::work_key(id),
                serde_json::to_vec(work).unwrap_or_default(),
            );
            return Ok(());
        }
        // An entry for every document, `null` for those that are not resources, so that a
        // missing entry means "written before cards existed".
        batch.put(
            keys::resource_card_key(id),
            serde_json::to_vec(&card.resource).unwrap_or_default(),
        );
        Ok(())
    }

    fn resource_card_json(
        &self,
        kv: &dyn Kv,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        kv.get(&keys::resource_card_key(id))
    }
}

/// The document store of one replica or relay.
pub struct DocStore {
    kv: Arc<dyn Kv>,
    stripes: Vec<Mutex<()>>,
    /// Each bucket's digest and entries, built by one scan of the heads index at the first
    /// need, then kept current on every write (see [`Buckets`]).
    buckets: Mutex<Option<Buckets>>,
    observers: Mutex<Vec<Observer>>,
    change_observers: Mutex<Vec<ChangeObserver>>,
    indexer: Box<dyn Indexer>,
    actor: Option<automerge::ActorId>,
    /// The documents written last, kept loaded (see `doc_cache`).
    loaded: Mutex<doc_cache::DocCache>,
}

impl DocStore {
    pub fn new(kv: Arc<dyn Kv>) -> Self {
        Self {
            kv,
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            buckets: Mutex::new(None),
            observers: Mutex::new(Vec::new()),
            change_observers: Mutex::new(Vec::new()),
            indexer: Box::new(CardIndexer),
            actor: None,
            loaded: Mutex::new(doc_cache::DocCache::default()),
        }
    }

    /// Every change this store makes is authored by `actor` (one actor per replica keeps
    /// documents' actor tables small; without it every write would mint a random actor).
    pub fn with_actor(mut self, actor: automerge::ActorId) -> Self {
        self.actor = Some(actor);
        self
    }

    /// A store whose every write also runs `indexer`.
    pub fn with_indexer(kv: Arc<dyn Kv>, indexer: Box<dyn Indexer>) -> Self {
        Self {
            indexer,
            ..Self::new(kv)
        }
    }

    /// Derives one stored document's card and index entries again. Observers hear of it (the
    /// document is unchanged, its entries may not be: whoever keeps them in memory reads them
    /// again); change observers do not, as there is no change to send.
    pub fn reindex(&self, id: &DocumentId) -> Result<(), StoreError> {
        let Some(mut doc) = self.load(id)? else {
            return Ok(());
        };
        let heads = HeadsHash::of(&doc.get_heads());
        let mut batch = Batch::default();
        self.indexer
            .index(id, &Card::of(id, &mut doc, heads), &mut batch)?;
        self.kv.apply(batch)?;
        for o in lock(&self.observers).iter() {
            o(id);
        }
        Ok(())
    }

    /// A document's card as JSON, from the heads index and the indexer's entries, without
    /// loading the document (nor parsing the entries: a relay sends thousands); `None` if the
    /// store lacks the document or the indexer cannot tell (a relay's documents stored before
    /// cards existed, until their next write).
    pub fn card_json(&self, id: &DocumentId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(heads) = self.heads_hash(id)? else {
            return Ok(None);
        };
        let Some(resource) = self.indexer.resource_card_json(self.kv.as_ref(), id)? else {
            return Ok(None);
        };
        let json = card::splice_object(&[
            ("heads", &card::hex_json(&heads.0)),
            ("resource", &resource),
        ]);
        Ok(Some(json))
    }

    /// An in-memory store, for tests and simulations.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemKv::default()))
    }

    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }

    /// Calls `observer` after every document change, whoever made it (local edit, sync, import).
    pub fn observe(&self, observer: Observer) {
        lock(&self.observers).push(observer);
    }

    /// Calls `observer` with the new changes after every document change (for live sync).
    pub fn observe_changes(&self, observer: ChangeObserver) {
        lock(&self.change_observers).push(observer);
    }

    /// Stores bytes received from a peer (a saved document or incremental changes). A document
    /// the store lacks keeps the received bytes as its snapshot, with no re-encoding.
    pub fn apply_bytes(&self, id: &DocumentId, bytes: &[u8]) -> Result<Written, StoreError> {
        self.apply_bytes_with_card(id, bytes, None)
    }

    /// [`apply_bytes`](Self::apply_bytes), with the card the peer holds for this document. A
    /// document the store lacks whose card fits is stored without being loaded: its heads and
    /// index entries come from the card (see `card.rs` for when a card is trusted).
    pub fn apply_bytes_with_card(
        &self,
        id: &DocumentId,
        bytes: &[u8],
        card: Option<&Card>,
    ) -> Result<Written, StoreError> {
        self.apply_bytes_loaded(id, bytes, card, None)
    }

    /// [`Self::apply_bytes_with_card`], given `bytes` already loaded into `loaded` (with
    /// [`new_doc`]'s settings), as a relay's gate leaves them: a new document is then not
    /// loaded a second time.
    pub fn apply_bytes_loaded(
        &self,
        id: &DocumentId,
        bytes: &[u8],
        card: Option<&Card>,
        loaded: Option<AutoCommit>,
    ) -> Result<Written, StoreError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(StoreError::TooLarge {
                id: *id,
                size: bytes.len(),
            });
        }
        if !self.contains(id)? {
            let _guard = lock(&self.stripes[id.bucket(LOCK_STRIPES)]);
            if !self.contains(id)? {
                // A saved document is at least one chunk: no card stands for nothing.
                return match card.filter(|c| c.fits(id) && !bytes.is_empty()) {
                    Some(card) => self.insert_carded(id, bytes, card),
                    None => self.insert_loaded(id, bytes, loaded),
                };
            }
        }
        let (missing_deps, written) = self.update(id, |doc, _| {
            doc.load_incremental(bytes)
                .map_err(|e| StoreError::Corrupt {
                    id: *id,
                    reason: e.to_string(),
                })?;
            Ok::<_, StoreError>(!doc.get_missing_deps(&[]).is_empty())
        })?;
        Ok(Written {
            missing_deps,
            ..written
        })
    }

    /// Writes a new document made whole by this replica (`document::create_encoded`, an
    /// import's new resources): `make` is given the actor its change must be authored by and
    /// returns the saved document and its card, which are stored as they are.
    /// `None`, with nothing written, if the store already holds the document.
    pub fn create<E: From<StoreError>>(
        &self,
        id: &DocumentId,
        make: impl FnOnce(&automerge::ActorId) -> Result<(Vec<u8>, Card), E>,
    ) -> Result<Option<Written>, E> {
        let _guard = lock(&self.stripes[id.bucket(LOCK_STRIPES)]);
        if self.contains(id)? {
            return Ok(None);
        }
        let actor = self
            .actor
            .clone()
            .unwrap_or_else(automerge::ActorId::random);
        let (bytes, card) = make(&actor)?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(StoreError::TooLarge {
                id: *id,
                size: bytes.len(),
            }
            .into());
        }
        Ok(Some(self.insert_carded(id, &bytes, &card)?))
    }

    /// The actor new documents are written by (random if the store has none).
    pub fn actor_or_random(&self) -> automerge::ActorId {
        self.actor
            .clone()
            .unwrap_or_else(automerge::ActorId::random)
    }

    /// New documents with their cards (an import's, encoded here; a fresh pull's, received
    /// with their cards), written in one atomic batch: one sled batch per document cost as
    /// much as the rest of the write (see [`CREATE_BATCH_DOCS`]). Those the store still lacks
    /// are written (a document named twice, once); the result says which, in order. Every document's size is checked before
    /// anything is written. The documents' lock stripes are held, in order, for the write.
    pub fn create_all(&self, docs: &[(DocumentId, &[u8], &Card)]) -> Result<Vec<bool>, StoreError> {
        for (id, bytes, _) in docs {
            if bytes.len() > MAX_DOCUMENT_BYTES {
                return Err(StoreError::TooLarge {
                    id: *id,
                    size: bytes.len(),
                });
            }
        }
        let mut stripes: Vec<usize> = docs
            .iter()
            .map(|(id, _, _)| id.bucket(LOCK_STRIPES))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _guards: Vec<_> = stripes.iter().map(|s| lock(&self.stripes[*s])).collect();
        let mut batch = Batch::default();
        let mut created = Vec::with_capacity(docs.len());
        let mut named = std::collections::HashSet::new();
        for (id, bytes, card) in docs {
            // A document named twice is written once: the second is the caller's to apply.
            let absent = named.insert(*id) && !self.contains(id)?;
            if absent {
                batch.put(chunk_key(id, 0), bytes.to_vec());
                self.stage(id, card, &mut batch)?;
            }
            created.push(absent);
        }
        if batch.is_empty() {
            return Ok(created);
        }
        self.kv.apply(batch)?;
        for ((id, bytes, card), created) in docs.iter().zip(&created) {
            if *created {
                self.committed(id, None, card, || bytes.to_vec());
            }
        }
        Ok(created)
    }

    /// A new document, stored as received, described by its peer's card.
    fn insert_carded(
        &self,
        id: &DocumentId,
        bytes: &[u8],
        card: &Card,
    ) -> Result<Written, StoreError> {
        let mut batch = Batch::default();
        batch.put(chunk_key(id, 0), bytes.to_vec());
        self.commit(id, batch, None, card, || bytes.to_vec())?;
        Ok(Written {
            id: *id,
            changed: true,
            heads: card.heads,
            missing_deps: false,
        })
    }

    /// A new document, loaded (unless `loaded` already holds `bytes`) to learn its heads and card.
    fn insert_loaded(
        &self,
        id: &DocumentId,
        bytes: &[u8],
        loaded: Option<AutoCommit>,
    ) -> Result<Written, StoreError> {
        let mut doc = match loaded {
            Some(doc) => doc,
            None => {
                // `load_incremental` rather than `load`: changes whose dependencies have not
                // arrived yet are queued instead of failing the whole input.
                let mut doc = new_doc();
                doc.load_incremental(bytes)
                    .map_err(|e| StoreError::Corrupt {
                        id: *id,
                        reason: e.to_string(),
                    })?;
                doc
            }
        };
        let heads = doc.get_heads();
        let complete = doc.get_missing_deps(&[]).is_empty();
        if heads.is_empty() {
            return Ok(Written {
                id: *id,
                changed: false,
                heads: HeadsHash::of(&heads),
                missing_deps: !complete,
            });
        }
        let mut batch = Batch::default();
        // Changes whose dependencies are missing are held in memory by Automerge, not applied:
        // store only what was applied, or a later load would disagree with the heads index.
        if complete {
            batch.put(chunk_key(id, 0), bytes.to_vec());
        } else {
            batch.put(chunk_key(id, 0), doc.save());
        }
        let hash = HeadsHash::of(&heads);
        // The received bytes are the document: no need to save it again for live peers.
        let card = Card::of(id, &mut doc, hash);
        self.commit(id, batch, None, &card, || {
            if complete {
                bytes.to_vec()
            } else {
                doc.save()
            }
        })?;
        Ok(Written {
            id: *id,
            changed: true,
            heads: hash,
            missing_deps: !complete,
        })
    }

    /// Writes a document change: `batch` (its chunks) plus its heads hash and the index
    /// entries of its new card, atomically; then the digests and observers learn of it.
    fn commit(
        &self,
        id: &DocumentId,
        mut batch: Batch,
        old: Option<HeadsHash>,
        card: &Card,
        changes: impl FnOnce() -> Vec<u8>,
    ) -> Result<(), StoreError> {
        self.stage(id, card, &mut batch)?;
        self.kv.apply(batch)?;
        self.committed(id, old, card, changes);
        Ok(())
    }

    /// Adds a document's heads hash and the index entries of its card to the batch writing it.
    fn stage(&self, id: &DocumentId, card: &Card, batch: &mut Batch) -> Result<(), StoreError> {
        batch.put(heads_key(id), card.heads.0.to_vec());
        self.indexer.index(id, card, batch)
    }

    /// After the batch writing a document is applied: the digests and observers learn of it.
    fn committed(
        &self,
        id: &DocumentId,
        old: Option<HeadsHash>,
        card: &Card,
        changes: impl FnOnce() -> Vec<u8>,
    ) {
        self.update_digest(id, old, Some(card.heads));
        self.notify(id, old, card.heads, changes);
    }

    fn notify(
        &self,
        id: &DocumentId,
        previous: Option<HeadsHash>,
        heads: HeadsHash,
        changes: impl FnOnce() -> Vec<u8>,
    ) {
        for o in lock(&self.observers).iter() {
            o(id);
        }
        let change_observers = lock(&self.change_observers);
        if !change_observers.is_empty() {
            let change = DocChange {
                id: *id,
                heads,
                previous,
                changes: changes(),
            };
            for o in change_observers.iter() {
                o(&change);
            }
        }
    }

    /// Whether the store holds this document.
    pub fn contains(&self, id: &DocumentId) -> Result<bool, StoreError> {
        Ok(self.kv.get(&heads_key(id))?.is_some())
    }

    /// The saved bytes of a document (snapshot and incremental chunks, concatenated: Automerge
    /// loads that as one document), without decoding it.
    pub fn saved(&self, id: &DocumentId) -> Result<Option<Vec<u8>>, StoreError> {
        let mut bytes = Vec::new();
        let mut found = false;
        self.kv.for_each_prefix(&chunk_prefix(id), &mut |_, v| {
            found = true;
            bytes.extend_from_slice(v);
            true
        })?;
        Ok(found.then_some(bytes))
    }

    /// Loads a document, or `None` if the store does not hold it.
    pub fn load(&self, id: &DocumentId) -> Result<Option<AutoCommit>, StoreError> {
        let Some(bytes) = self.saved(id)? else {
            return Ok(None);
        };
        decode(id, &bytes).map(Some)
    }

    /// The heads hash of a document, from the index (no document is loaded).
    pub fn heads_hash(&self, id: &DocumentId) -> Result<Option<HeadsHash>, StoreError> {
        Ok(self
            .kv
            .get(&heads_key(id))?
            .and_then(|v| v.try_into().ok().map(HeadsHash)))
    }

    /// Loads (or creates empty) a document, lets `f` change it, and stores what changed in one
    /// atomic batch together with the `extra` index writes `f` asks for. Not flushed: call
    /// `flush` before acknowledging the write to a user or a peer.
    pub fn update<R, E>(
        &self,
        id: &DocumentId,
        f: impl FnOnce(&mut AutoCommit, &mut Batch) -> Result<R, E>,
    ) -> Result<(R, Written), E>
    where
        E: From<StoreError>,
    {
        let _guard = lock(&self.stripes[id.bucket(LOCK_STRIPES)]);
        let mut chunks = Vec::new();
        let mut saved = Vec::new();
        self.kv.for_each_prefix(&chunk_prefix(id), &mut |k, v| {
            chunks.push((chunk_seq(k), v.len()));
            saved.extend_from_slice(v);
            true
        })?;
        // What identifies the stored bytes: the loaded copy kept for them, if any, is theirs.
        let mut stored = blake3::Hasher::new();
        stored.update(&saved);
        let kept = lock(&self.loaded).take(id, stored.finalize().as_bytes());
        let (mut doc, mut memo) = match kept {
            Some(kept) => kept,
            None if chunks.is_empty() => (new_doc(), CardMemo::default()),
            None => (decode(id, &saved)?, CardMemo::default()),
        };
        let saved_len = saved.len();
        drop(saved);
        if let Some(actor) = &self.actor {
            doc.set_actor(actor.clone());
        }
        let old_heads = doc.get_heads();
        let mut batch = Batch::default();
        let result = f(&mut doc, &mut batch)?;
        let heads = doc.get_heads();
        if heads == old_heads && batch.is_empty() {
            if !chunks.is_empty() {
                lock(&self.loaded).keep(*id, *stored.finalize().as_bytes(), saved_len, doc, memo);
            }
            return Ok((
                result,
                Written {
                    id: *id,
                    changed: false,
                    heads: HeadsHash::of(&heads),
                    missing_deps: false,
                },
            ));
        }
        if heads != old_heads {
            let next = chunks.last().map(|(seq, _)| seq + 1).unwrap_or(0);
            let held: usize = chunks.iter().map(|c| c.1).sum();
            // The size the document will have once this batch is written: checked before
            // committing, so a change that would take it past the cap is refused alone and the
            // document stays as it was (checking what was held before the write let one large
            // change, or two that each fit, store a document no peer could load).
            let (size, written) = if next >= MAX_INCREMENTAL_CHUNKS || next == 0 {
                let snapshot = doc.save();
                let size = snapshot.len();
                if next > 0 {
                    for (seq, _) in &chunks {
                        batch.remove(chunk_key(id, *seq));
                    }
                }
                let written = *blake3::hash(&snapshot).as_bytes();
                batch.put(chunk_key(id, 0), snapshot);
                (size, written)
            } else {
                let chunk = doc.save_after(&old_heads);
                let size = held + chunk.len();
                stored.update(&chunk);
                batch.put(chunk_key(id, next), chunk);
                (size, *stored.finalize().as_bytes())
            };
            if size > MAX_DOCUMENT_BYTES {
                return Err(StoreError::TooLarge { id: *id, size }.into());
            }
            let old_hash = self.heads_hash(id)?;
            // What these changes touched is read again; the rest comes from the memo.
            memo.follow(&mut doc, &old_heads);
            let card = Card::of_memoized(id, &mut doc, HeadsHash::of(&heads), &mut memo);
            self.commit(id, batch, old_hash, &card, || doc.save_after(&old_heads))?;
            lock(&self.loaded).keep(*id, written, size, doc, memo);
        } else {
            if !chunks.is_empty() {
                lock(&self.loaded).keep(*id, *stored.finalize().as_bytes(), saved_len, doc, memo);
            }
            self.kv.apply(batch)?;
            for o in lock(&self.observers).iter() {
                o(id);
            }
        }
        Ok((
            result,
            Written {
                id: *id,
                changed: heads != old_heads,
                heads: HeadsHash::of(&heads),
                missing_deps: false,
            },
        ))
    }

    /// Flushes every write so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush()
    }

    /// Whether [`Self::flush`] would find nothing to write (see [`Kv::is_flushed`]).
    pub fn is_flushed(&self) -> bool {
        self.kv.is_flushed()
    }

    /// Whether the bucket digests are in memory, so that reading them touches no disk (the
    /// first reader scans the heads index).
    pub fn has_buckets_loaded(&self) -> bool {
        lock(&self.buckets).is_some()
    }

    /// Every document id with its heads hash, in id order, without loading documents.
    pub fn for_each_heads(
        &self,
        f: &mut dyn FnMut(DocumentId, HeadsHash) -> bool,
    ) -> Result<(), StoreError> {
        self.kv
            .for_each_prefix(&[keys::HEADS], &mut |k, v| match parse_heads(k, v) {
                Some((id, h)) => f(id, h),
                None => true,
            })
    }

    /// Number of documents held.
    pub fn len(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        self.for_each_heads(&mut |_, _| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// The reconciliation digest of every bucket: XOR of a hash of `(id, heads hash)` over the
    /// bucket's documents. Computed once by a scan, then kept current on every write.
    pub fn bucket_digests(&self) -> Result<Vec<[u8; 16]>, StoreError> {
        self.with_buckets(|b| b.digests.clone())
    }

    /// The `(id, heads hash)` entries of one bucket, in id order.
    pub fn bucket_entries(
        &self,
        bucket: usize,
    ) -> Result<Vec<(DocumentId, HeadsHash)>, StoreError> {
        self.with_buckets(|b| b.entries_of(bucket))
    }

    /// The entries of several buckets.
    pub fn entries_of_buckets(&self, buckets: &[usize]) -> Result<Vec<BucketList>, StoreError> {
        self.with_buckets(|b| buckets.iter().map(|n| (*n, b.entries_of(*n))).collect())
    }

    /// Runs `f` on the buckets, scanning the heads index first if no one has yet.
    fn with_buckets<R>(&self, f: impl FnOnce(&Buckets) -> R) -> Result<R, StoreError> {
        let mut cached = lock(&self.buckets);
        if cached.is_none() {
            let mut buckets = Buckets::default();
            self.for_each_heads(&mut |id, h| {
                buckets.set(&id, None, Some(h));
                true
            })?;
            *cached = Some(buckets);
        }
        Ok(cached.as_ref().map(f).expect("just built"))
    }

    fn update_digest(&self, id: &DocumentId, old: Option<HeadsHash>, new: Option<HeadsHash>) {
        if let Some(buckets) = lock(&self.buckets).as_mut() {
            buckets.set(id, old, new);
        }
    }
}

/// Every bucket's digest and `(id, heads hash)` entries, in memory. Ids are random, so a bucket
/// is not a key range of the heads index: without these, listing one bucket's entries (which a
/// live peer's confirmation round asks for after each change) scanned the whole index, ~50 ms
/// at 100,000 documents. About 80 bytes per document.
struct Buckets {
    digests: Vec<[u8; 16]>,
    entries: Vec<std::collections::BTreeMap<DocumentId, HeadsHash>>,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            digests: vec![[0u8; 16]; BUCKETS],
            entries: vec![std::collections::BTreeMap::new(); BUCKETS],
        }
    }
}

impl Buckets {
    /// Records that `id`'s heads hash went from `old` to `new` (`None`: not held).
    fn set(&mut self, id: &DocumentId, old: Option<HeadsHash>, new: Option<HeadsHash>) {
        let bucket = id.bucket(BUCKETS);
        let d = &mut self.digests[bucket];
        if let Some(old) = old {
            xor_into(d, &entry_hash(id, &old));
        }
        if let Some(new) = new {
            xor_into(d, &entry_hash(id, &new));
        }
        match new {
            Some(h) => self.entries[bucket].insert(*id, h),
            None => self.entries[bucket].remove(id),
        };
    }

    fn entries_of(&self, bucket: usize) -> Vec<(DocumentId, HeadsHash)> {
        self.entries
            .get(bucket)
            .map(|e| e.iter().map(|(id, h)| (*id, *h)).collect())
            .unwrap_or_default()
    }
}

/// Decodes saved bytes, refusing oversized input before Automerge allocates for it.
pub fn decode(id: &DocumentId, bytes: &[u8]) -> Result<AutoCommit, StoreError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(StoreError::TooLarge {
            id: *id,
            size: bytes.len(),
        });
    }
    let options = automerge::LoadOptions::new().text_encoding(TEXT_ENCODING);
    AutoCommit::load_with_options(bytes, options).map_err(|e| StoreError::Corrupt {
        id: *id,
        reason: e.to_string(),
    })
}

fn entry_hash(id: &DocumentId, h: &HeadsHash) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(id.as_bytes());
    hasher.update(h.0);
    let d = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn xor_into(acc: &mut [u8; 16], x: &[u8; 16]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a ^= b;
    }
}

fn parse_heads(k: &[u8], v: &[u8]) -> Option<(DocumentId, HeadsHash)> {
    Some((keys::document_of(k)?, HeadsHash(v.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;

    fn set(store: &DocStore, id: &DocumentId, key: &str, value: i64) -> Written {
        store
            .update(id, |doc, _| {
                doc.put(automerge::ROOT, key, value)
                    .map_err(StoreError::from)
            })
            .unwrap()
            .1
    }

    fn card_of(store: &DocStore, id: &DocumentId) -> Option<Card> {
        let json = store.card_json(id).unwrap()?;
        Some(serde_json::from_slice(&json).unwrap())
    }

    #[test]
    fn cards_derived_from_the_memo_are_the_cards_of_the_document() {
        use crate::document::{self, Edit};
        use serde_json::json;
        let r = crate::Resource::from_json(&json!({
            "kind": "realisation", "title": "Maison de bourg", "office": "caue-63",
            "summary": "Une maison en pierre.",
            "description": "Les murs en basalte sont rejointoyés à la chaux. ".repeat(40),
        }))
        .unwrap();
        let id = DocumentId::derived("memo");
        let mut author = new_doc();
        document::create(&mut author, &r, "caue-63", 1_750_000_000_000).unwrap();
        let receiver = DocStore::in_memory();
        receiver.apply_bytes(&id, &author.save()).unwrap();
        let splice = |field: &str, pos, insert: &str| Edit::Splice {
            field: field.into(),
            pos,
            delete: 1,
            insert: insert.into(),
        };
        let set = |field: &str, value: &str| Edit::Set {
            field: field.into(),
            value: json!(value),
        };
        // Changes that leave the texts alone, then touch each of them, then replace one whole.
        let edits = [
            set("title", "Maison de bourg rénovée"),
            set("title", "Maison de bourg, Aurillac"),
            splice("description", 5, "M"),
            set("title", "Maison de bourg"),
            splice("summary", 0, "L"),
            set("status", "publie"),
            set("description", "Un autre texte."),
            set("title", "Maison"),
            splice("description", 0, "D"),
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            let before = author.get_heads();
            // Several offices, so that who changed it when moves too.
            let office = ["caue-15", "caue-07", "caue-63"][i % 3];
            let at = 1_750_000_000_000 + 1_000 * i as i64;
            document::apply_edits(&mut author, &[edit], office, at).unwrap();
            receiver
                .apply_bytes(&id, &author.save_after(&before))
                .unwrap();
            let mut fresh = decode(&id, &receiver.saved(&id).unwrap().unwrap()).unwrap();
            let heads = HeadsHash::of(&fresh.get_heads());
            assert_eq!(
                card_of(&receiver, &id),
                Some(Card::of(&id, &mut fresh, heads)),
                "after edit {i}"
            );
        }
        let read = document::read(&author).unwrap().resource;
        let card = card_of(&receiver, &id).unwrap().resource.unwrap();
        assert_eq!(card.search.unwrap().description, "Dn autre texte.");
        assert_eq!(card.listing.summary, read.summary);
    }

    #[test]
    fn a_new_document_already_loaded_by_a_gate_is_stored_from_that_document() {
        let from = DocStore::in_memory();
        let id = DocumentId::derived("a");
        for i in 0..3 {
            set(&from, &id, "n", i);
        }
        let bytes = from.saved(&id).unwrap().unwrap();
        let loaded = || {
            let mut doc = new_doc();
            doc.load_incremental(&bytes).unwrap();
            doc
        };

        let to = DocStore::in_memory();
        let written = to
            .apply_bytes_loaded(&id, &bytes, None, Some(loaded()))
            .unwrap();
        assert!(written.changed && !written.missing_deps);
        assert_eq!(written.heads, from.heads_hash(&id).unwrap().unwrap());
        assert_eq!(card_of(&to, &id), card_of(&from, &id));
        assert_eq!(to.saved(&id).unwrap(), Some(bytes.clone()));

        // The card is derived from the document handed over, not from loading the bytes again.
        let mut other = loaded();
        other.put(automerge::ROOT, "n", 99).unwrap();
        other.commit();
        let trusting = DocStore::in_memory();
        let written = trusting
            .apply_bytes_loaded(&id, &bytes, None, Some(other.clone()))
            .unwrap();
        assert_eq!(written.heads, HeadsHash::of(&other.get_heads()));

        // A document already held is updated as before: the loaded one is not needed.
        let again = to
            .apply_bytes_loaded(&id, &bytes, None, Some(other))
            .unwrap();
        assert!(!again.changed);
    }

    #[test]
    fn a_new_document_with_a_fitting_card_is_stored_from_the_card_without_loading() {
        let from = DocStore::in_memory();
        let id = DocumentId::derived("a");
        for i in 0..3 {
            set(&from, &id, "n", i);
        }
        let bytes = from.saved(&id).unwrap().unwrap();
        let hash = from.heads_hash(&id).unwrap().unwrap();
        let card = card_of(&from, &id).unwrap();
        assert_eq!((card.heads, card.resource.is_none()), (hash, true));

        let to = DocStore::in_memory();
        let written = to.apply_bytes_with_card(&id, &bytes, Some(&card)).unwrap();
        assert!(written.changed && !written.missing_deps);
        assert_eq!(written.heads, hash);
        assert_eq!(card_of(&to, &id), Some(card.clone()));
        assert_eq!(to.bucket_digests().unwrap(), from.bucket_digests().unwrap());
        let (mut got, mut want) = (
            to.load(&id).unwrap().unwrap(),
            from.load(&id).unwrap().unwrap(),
        );
        assert_eq!(got.save(), want.save());

        // The heads come from the card, not from loading: a card naming other heads is believed
        // (cards are trusted only from the peer a replica pinned, see card.rs)…
        let believer = DocStore::in_memory();
        let other = Card {
            heads: HeadsHash([9; 32]),
            resource: None,
            work: None,
        };
        believer
            .apply_bytes_with_card(&id, &bytes, Some(&other))
            .unwrap();
        assert_eq!(believer.heads_hash(&id).unwrap(), Some(other.heads));
        // …until the next write, which loads the document and derives them again.
        set(&believer, &id, "n", 7);
        let mut doc = believer.load(&id).unwrap().unwrap();
        assert_eq!(
            believer.heads_hash(&id).unwrap(),
            Some(HeadsHash::of(&doc.get_heads()))
        );

        // A card that does not fit the document is ignored: the document is loaded.
        let r = crate::Resource::from_json(&serde_json::json!({
            "kind": "outil", "title": "Guide", "office": "caue-63"
        }))
        .unwrap();
        let guide = DocumentId::derived("guide");
        from.update(&guide, |doc, _| {
            crate::document::create(doc, &r, "caue-63", 0)
                .map_err(|e| StoreError::Db(e.to_string()))
        })
        .unwrap();
        let mut misfit = card_of(&from, &guide).unwrap();
        assert!(misfit.fits(&guide));
        misfit.heads = HeadsHash([9; 32]);
        if let Some(r) = misfit.resource.as_mut() {
            r.listing.id = id;
        }
        assert!(!misfit.fits(&guide));
        let loader = DocStore::in_memory();
        let guide_bytes = from.saved(&guide).unwrap().unwrap();
        loader
            .apply_bytes_with_card(&guide, &guide_bytes, Some(&misfit))
            .unwrap();
        assert_eq!(
            loader.heads_hash(&guide).unwrap(),
            from.heads_hash(&guide).unwrap()
        );
        assert_eq!(card_of(&loader, &guide), card_of(&from, &guide));
        let nothing = loader.apply_bytes_with_card(&id, &[], Some(&card)).unwrap();
        assert!(
            !nothing.changed && !loader.contains(&id).unwrap(),
            "empty bytes store nothing"
        );
    }

    #[test]
    fn documents_created_together_are_written_with_their_cards_and_held_ones_left_alone() {
        let from = DocStore::in_memory();
        let ids: Vec<_> = (0..3)
            .map(|i| DocumentId::derived(&format!("d{i}")))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            set(&from, id, "n", i as i64);
        }
        let docs: Vec<_> = (ids.iter())
            .map(|id| {
                (
                    *id,
                    from.saved(id).unwrap().unwrap(),
                    card_of(&from, id).unwrap(),
                )
            })
            .collect();
        let batch: Vec<_> = docs.iter().map(|(id, b, c)| (*id, &b[..], c)).collect();

        let to = DocStore::in_memory();
        set(&to, &ids[1], "n", 42);
        let held = to.saved(&ids[1]).unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let told = heard.clone();
        to.observe_changes(Box::new(move |c| lock(&told).push((c.id, c.previous))));
        assert_eq!(to.create_all(&batch).unwrap(), [true, false, true]);
        assert_eq!(
            to.saved(&ids[1]).unwrap(),
            held,
            "a held document is left alone"
        );
        for i in [0, 2] {
            assert_eq!(to.saved(&ids[i]).unwrap().as_ref(), Some(&docs[i].1));
            assert_eq!(card_of(&to, &ids[i]).as_ref(), Some(&docs[i].2));
            assert_eq!(to.heads_hash(&ids[i]).unwrap(), Some(docs[i].2.heads));
        }
        assert_eq!(*lock(&heard), [(ids[0], None), (ids[2], None)]);
        // The same store as documents written one by one, down to the bucket digests.
        let one_by_one = DocStore::in_memory();
        (one_by_one.apply_bytes(&ids[1], held.as_ref().unwrap())).unwrap();
        for i in [0, 2] {
            (one_by_one.apply_bytes_with_card(&ids[i], &docs[i].1, Some(&docs[i].2))).unwrap();
        }
        assert_eq!(
            to.bucket_digests().unwrap(),
            one_by_one.bucket_digests().unwrap()
        );

        // A document over the cap refuses the whole batch before anything is written.
        let big = vec![0; MAX_DOCUMENT_BYTES + 1];
        let fresh = DocStore::in_memory();
        let oversized = [batch[0], (ids[2], &big[..], &docs[2].2)];
        assert!(matches!(
            fresh.create_all(&oversized),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(!fresh.contains(&ids[0]).unwrap());
    }

    #[test]
    fn a_store_without_card_entries_offers_no_card() {
        let store = DocStore::in_memory();
        let id = DocumentId::derived("old");
        set(&store, &id, "n", 1);
        assert!(card_of(&store, &id).is_some());
        // As a relay's documents written before cards existed.
        let mut batch = Batch::default();
        batch.remove(keys::resource_card_key(&id));
        store.kv().apply(batch).unwrap();
        assert_eq!(card_of(&store, &id), None);
        assert_eq!(card_of(&store, &DocumentId::derived("absent")), None);
    }

    #[test]
    fn writes_are_incremental_then_compacted_and_load_back() {
        let store = DocStore::in_memory();
        let id = DocumentId::derived("a");
        for i in 0..(MAX_INCREMENTAL_CHUNKS as i64 + 5) {
            assert!(set(&store, &id, "n", i).changed);
        }
        let mut chunks = 0;
        store
            .kv()
            .for_each_prefix(&chunk_prefix(&id), &mut |_, _| {
                chunks += 1;
                true
            })
            .unwrap();
        assert!(
            chunks < MAX_INCREMENTAL_CHUNKS as usize,
            "compaction kept {chunks} chunks"
        );
        let doc = store.load(&id).unwrap().unwrap();
        let (v, _) = doc.get(automerge::ROOT, "n").unwrap().unwrap();
        assert_eq!(
            v.as_scalar().and_then(|s| s.as_i64()),
            Some(MAX_INCREMENTAL_CHUNKS as i64 + 4)
        );
    }

    #[test]
    fn unchanged_document_writes_nothing() {
        let store = DocStore::in_memory();
        let id = DocumentId::derived("b");
        set(&store, &id, "x", 1);
        let w = store.update(&id, |_, _| Ok::<_, StoreError>(())).unwrap().1;
        assert!(!w.changed);
    }

    #[test]
    fn digests_follow_writes_and_match_a_fresh_scan() {
        let store = DocStore::in_memory();
        let ids: Vec<_> = (0..50)
            .map(|i| DocumentId::derived(&i.to_string()))
            .collect();
        let empty = store.bucket_digests().unwrap();
        for id in &ids {
            set(&store, id, "x", 1);
        }
        set(&store, &ids[3], "x", 2);
        let live = store.bucket_digests().unwrap();
        assert_ne!(live, empty);
        let fresh = DocStore::new(store.kv().clone());
        assert_eq!(live, fresh.bucket_digests().unwrap());
        let b = ids[3].bucket(BUCKETS);
        assert!(store
            .bucket_entries(b)
            .unwrap()
            .iter()
            .any(|(id, h)| *id == ids[3] && Some(*h) == store.heads_hash(id).unwrap()));
        // The entries kept in memory since the first scan (before any write) are what a scan
        // of the heads index finds now, bucket by bucket, in id order.
        let all: Vec<usize> = (0..BUCKETS).collect();
        assert_eq!(
            store.entries_of_buckets(&all).unwrap(),
            fresh.entries_of_buckets(&all).unwrap()
        );
        let mut scanned = Vec::new();
        store
            .for_each_heads(&mut |id, h| {
                if id.bucket(BUCKETS) == b {
                    scanned.push((id, h));
                }
                true
            })
            .unwrap();
        assert_eq!(store.bucket_entries(b).unwrap(), scanned);
    }

    /// Random bytes, which no column compression shrinks.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        use rand::{RngCore, SeedableRng};
        let mut bytes = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
        bytes
    }

    #[test]
    fn a_change_taking_a_document_past_the_cap_is_refused_alone() {
        let store = DocStore::in_memory();
        let id = DocumentId::derived("big");
        let other = DocumentId::derived("small");
        let part = MAX_DOCUMENT_BYTES * 5 / 8;
        let put = |key: &str, seed| {
            store.update(&id, |doc, _| {
                doc.put(automerge::ROOT, key, noise(part, seed))
                    .map_err(StoreError::from)
            })
        };
        // Each change fits on its own…
        assert!(put("a", 1).unwrap().1.changed);
        set(&store, &other, "n", 1);
        let before = (
            store.saved(&id).unwrap().unwrap(),
            store.heads_hash(&id).unwrap(),
            store.bucket_digests().unwrap(),
        );
        // …but the second takes the document past the cap: refused, nothing written.
        match put("b", 2) {
            Err(StoreError::TooLarge { id: refused, size }) => {
                assert_eq!(refused, id);
                assert!(size > MAX_DOCUMENT_BYTES, "{size}");
            }
            result => panic!("expected TooLarge, got {result:?}"),
        }
        let after = (
            store.saved(&id).unwrap().unwrap(),
            store.heads_hash(&id).unwrap(),
            store.bucket_digests().unwrap(),
        );
        assert!(before == after, "the refused change left a trace");
        assert!(
            store.load(&id).unwrap().is_some(),
            "the document still loads"
        );
        // Other documents and smaller changes to this one go on.
        assert!(set(&store, &other, "n", 2).changed);
        assert!(set(&store, &id, "n", 1).changed);
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        let id = DocumentId::derived("c");
        let err = decode(&id, &vec![0u8; MAX_DOCUMENT_BYTES + 1]).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }));
        assert!(matches!(
            decode(&id, b"garbage").unwrap_err(),
            StoreError::Corrupt { .. }
        ));
    }
}
