//! A replica's search engine: core's tantivy [`SearchIndex`] kept in step with the replica.
//!
//! The replica keeps a to-do list of documents changed since the index last took them
//! (`Replica::pending`), whoever changed them (user, sync, browser); [`IndexedSearch`] takes
//! that list into the index before each search. [`IndexedSearch::open`] is the one way the CLI,
//! the watch's local API, the web app and the demo open a replica's engine, so they all find the
//! same index in the same folder ([`SEARCH_DIR`]).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::{SearchDoc, SearchError, SearchIndex, SearchQuery, SearchResults};
use crate::par;
use crate::replica::{Replica, ReplicaError};
use crate::{vocab, DocumentId, Resource};

/// The search index's folder inside a replica directory (derived, rebuildable).
pub const SEARCH_DIR: &str = "search";

/// Most threads loading documents to index them.
const MAX_LOAD_THREADS: usize = 4;
/// Fewer documents than this per thread are loaded on the calling thread alone.
const MIN_LOADS_PER_THREAD: usize = 64;
/// Documents indexed per index commit when there are many (a fresh replica's first search takes
/// 100,000): their search documents are held in memory until the commit, a few KB each, so
/// memory stays within tens of MB whatever the backlog, and an interrupted build keeps what it
/// committed.
const INDEX_SLICE: usize = 5_000;
/// Documents written between two refreshes of [`IndexedSearch::index_during`]'s thread: a
/// slice, so that each refresh commits a full one.
const INDEX_DURING_EVERY: usize = INDEX_SLICE;

/// Errors of a replica's search engine.
#[derive(Debug, thiserror::Error)]
pub enum IndexedSearchError {
    /// The index in the replica's folder could not be opened or recreated.
    #[error("search index {path}: {source}")]
    Open { path: PathBuf, source: SearchError },
    /// The index failed to take documents or to answer.
    #[error(transparent)]
    Index(#[from] SearchError),
    /// The replica could not give its changed documents.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

/// Core's search index, refreshed from the replica before each search.
pub struct IndexedSearch {
    replica: Arc<Replica>,
    index: Mutex<SearchIndex>,
}

impl IndexedSearch {
    /// The search engine over `replica`'s index (in [`SEARCH_DIR`]), recreated if it is missing
    /// or unreadable; it catches up with changes made since its last use at its next search.
    pub fn open(replica: Arc<Replica>) -> Result<Self, IndexedSearchError> {
        let index = open_index(&replica)?;
        Self::new(replica, index)
    }

    /// Like [`Self::open`], but a backlog (an index recreated empty, or thousands of documents
    /// imported or pulled since its last use) is left for [`Self::refresh_some`] to take in
    /// slices: a web app answers its pages at once and says search is catching up.
    pub fn open_deferred(replica: Arc<Replica>) -> Result<Self, IndexedSearchError> {
        let index = open_index(&replica)?;
        Self::new_deferred(replica, index)
    }

    /// Wraps `index`; if it was recreated empty (`needs_rebuild`), every resource is indexed
    /// now.
    pub fn new(replica: Arc<Replica>, index: SearchIndex) -> Result<Self, IndexedSearchError> {
        let search = Self::new_deferred(replica, index)?;
        search.refresh()?;
        Ok(search)
    }

    /// Wraps `index` without reading the replica: an index recreated empty is filled by the
    /// refreshes to come (the first one marks every resource pending, see
    /// [`Self::refresh_some`]), so a server opens at once however large the replica.
    pub fn new_deferred(
        replica: Arc<Replica>,
        index: SearchIndex,
    ) -> Result<Self, IndexedSearchError> {
        Ok(Self {
            replica,
            index: Mutex::new(index),
        })
    }

    /// If the index was recreated empty, marks every resource pending, durably (a crash
    /// halfway through the rebuild leaves the rest to do, not a partial index that looks
    /// whole), then lets the index forget its rebuild marker. Under the index's lock, so a
    /// concurrent refresh waits for the marks rather than finding none.
    fn mark_rebuild(&self) -> Result<(), IndexedSearchError> {
        let mut index = self.lock();
        if index.needs_rebuild() {
            let marked = self.replica.mark_all_pending()?;
            index.rebuild_marked()?;
            tracing::debug!(
                marked,
                "search index rebuild: every resource marked pending"
            );
        }
        Ok(())
    }

    /// Takes the replica's pending changes into the index.
    pub fn refresh(&self) -> Result<(), IndexedSearchError> {
        self.refresh_some(usize::MAX).map(|_| ())
    }

    /// Takes at most `limit` of the replica's pending changes into the index; returns how many
    /// it took (0: the index is up to date).
    pub fn refresh_some(&self, limit: usize) -> Result<usize, IndexedSearchError> {
        self.mark_rebuild()?;
        let pending = match limit {
            usize::MAX => self.replica.pending()?,
            _ => self.replica.pending_at_most(limit)?,
        };
        let taken = pending.len();
        if taken > INDEX_SLICE {
            // A large build (a fresh pull, an import): start it from the memory in use, not
            // from what the work before it freed but the process kept.
            crate::malloc::trim();
        }
        for slice in pending.into_slices(INDEX_SLICE) {
            self.index_ids(&slice)?;
            self.replica.clear_pending(&slice)?;
        }
        Ok(taken)
    }

    /// Runs `work` (a pull, an import) while a thread takes what it writes into `replica`'s
    /// index ([`SEARCH_DIR`]) a slice at a time, so search is complete soon after `work` ends
    /// instead of a whole build later (20 s after a fresh pull of 100,000 resources). The index
    /// is opened only once a slice has been written: a small sync leaves its few documents to
    /// the next search, as any write does. Returns what `work` returned and how indexing went;
    /// a failure never stops `work`, and leaves what is not indexed pending for the next search.
    pub fn index_during<T>(
        replica: &Arc<Replica>,
        work: impl FnOnce() -> T,
    ) -> (T, Result<IndexedDuring, IndexedSearchError>) {
        let open = || Self::open_deferred(replica.clone());
        index_during_every(replica, INDEX_DURING_EVERY, open, work)
    }

    /// How many documents the index has yet to take, counting at most `limit` (a cheap check
    /// however large the backlog).
    pub fn backlog_at_most(&self, limit: usize) -> Result<usize, IndexedSearchError> {
        if self.lock().needs_rebuild() {
            // Not marked yet: the whole listing is to do.
            return Ok(self.replica.resources_at_most(limit)?);
        }
        Ok(self.replica.pending_at_most(limit)?.len())
    }

    /// One page of hits with facet counts, after taking the replica's pending changes.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults, IndexedSearchError> {
        self.refresh()?;
        Ok(self.lock().search(query)?)
    }

    fn index_ids(&self, ids: &[DocumentId]) -> Result<(), IndexedSearchError> {
        // A resource received with its search card is read from the replica's entries; one
        // without (written before search cards, or too long for one) is loaded, which is most of
        // the work when there are many: share it among threads.
        let threads = par::threads_for(ids.len(), MAX_LOAD_THREADS, MIN_LOADS_PER_THREAD);
        let load = |id: &DocumentId| -> Result<SearchDoc, String> {
            match self.replica.searchable(id) {
                Ok(Some(r)) => Ok(search_doc(id, &r)),
                _ => Err(id.url()),
            }
        };
        // Nothing stops the map early, so every slot holds a result.
        let loaded = par::map(ids, threads, load, |_| true).into_iter().flatten();
        let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
        for doc in loaded {
            match doc {
                Ok(doc) => upserts.push(doc),
                Err(url) => deletes.push(url),
            }
        }
        let mut index = self.lock();
        index.delete(&deletes)?;
        index.upsert(&upserts)?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SearchIndex> {
        // The index is a cache: a panic mid-write leaves at worst a stale entry.
        crate::mutex::lock(&self.index)
    }
}

fn index_during_every<T>(
    replica: &Replica,
    every: usize,
    open: impl FnOnce() -> Result<IndexedSearch, IndexedSearchError> + Send,
    work: impl FnOnce() -> T,
) -> (T, Result<IndexedDuring, IndexedSearchError>) {
    index_during_counted(replica, Arc::new(Written::new(every)), open, work)
}

/// [`index_during_every`], counting writes in `written` (which a test watches).
fn index_during_counted<T>(
    replica: &Replica,
    written: Arc<Written>,
    open: impl FnOnce() -> Result<IndexedSearch, IndexedSearchError> + Send,
    work: impl FnOnce() -> T,
) -> (T, Result<IndexedDuring, IndexedSearchError>) {
    let heard = Arc::downgrade(&written);
    replica.store().observe(Box::new(move |_| {
        // After `work`, the observer stays registered and does nothing.
        if let Some(written) = heard.upgrade() {
            written.one_more();
        }
    }));
    std::thread::scope(|scope| {
        let indexer = std::thread::Builder::new()
            .name("search-during".into())
            .spawn_scoped(scope, || {
                let mut open = Some(open);
                let mut engine = None;
                let mut during = 0;
                while written.wait_for_a_slice() {
                    let search = match engine.take() {
                        Some(search) => search,
                        None => {
                            let open = open.take().expect("the engine is kept once open");
                            let search = open()?;
                            search.mark_rebuild()?;
                            search
                        }
                    };
                    during += search.refresh_some(usize::MAX)?;
                    engine = Some(search);
                }
                Ok::<_, IndexedSearchError>((engine, during))
            });
        let out = {
            // Even if `work` panics: the scope waits for the thread, which waits for this.
            let _finish = FinishOnDrop(&written);
            work()
        };
        let indexed = match indexer {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start indexing during the work");
                Ok((None, 0))
            }
        };
        let indexed = indexed.and_then(|(engine, during)| {
            // Once open, the index takes the rest now; otherwise the next search does.
            let after = match engine {
                Some(search) => search.refresh_some(usize::MAX)?,
                None => 0,
            };
            Ok(IndexedDuring { during, after })
        });
        (out, indexed)
    })
}

/// Tells [`Written`] the work is over when dropped.
struct FinishOnDrop<'a>(&'a Written);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Documents [`IndexedSearch::index_during`] indexed while the work ran, and after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexedDuring {
    /// Taken by slices while the work ran.
    pub during: usize,
    /// Taken once it ended (none if fewer than a slice were written: the index was not opened).
    pub after: usize,
}

/// What [`IndexedSearch::index_during`]'s thread waits for: a slice of documents written, or
/// the end of the work.
struct Written {
    every: usize,
    state: Mutex<WrittenState>,
    changed: Condvar,
}

#[derive(Default)]
struct WrittenState {
    since_refresh: usize,
    done: bool,
    /// The indexing thread is waiting for the next slice.
    waiting: bool,
}

impl Written {
    fn new(every: usize) -> Self {
        Self {
            every: every.max(1),
            state: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    fn one_more(&self) {
        let mut state = crate::mutex::lock(&self.state);
        state.since_refresh += 1;
        if state.since_refresh == self.every {
            self.changed.notify_one();
        }
    }

    fn finish(&self) {
        crate::mutex::lock(&self.state).done = true;
        self.changed.notify_one();
    }

    /// Waits until a slice was written since the last call (true) or the work is over (false).
    fn wait_for_a_slice(&self) -> bool {
        let mut state = crate::mutex::lock(&self.state);
        while state.since_refresh < self.every && !state.done {
            state.waiting = true;
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.waiting = false;
        state.since_refresh = 0;
        !state.done
    }

    /// Whether the indexing thread waits for a slice that has not begun: a write now is
    /// left for it (or for after the work) rather than caught by a refresh under way.
    #[cfg(test)]
    fn idle(&self) -> bool {
        let state = crate::mutex::lock(&self.state);
        state.waiting && state.since_refresh == 0
    }

    /// Whether the indexing thread waits for a slice that is not complete yet (some writes may
    /// count toward it).
    #[cfg(test)]
    fn waiting_for_more(&self) -> bool {
        let state = crate::mutex::lock(&self.state);
        state.waiting && state.since_refresh < self.every
    }
}

/// The index in the replica's folder ([`SEARCH_DIR`]), recreated if missing or unreadable.
fn open_index(replica: &Replica) -> Result<SearchIndex, IndexedSearchError> {
    let path = replica.dir().join(SEARCH_DIR);
    SearchIndex::open_or_create(&path).map_err(|source| IndexedSearchError::Open { path, source })
}

/// The search document of a resource, with the French labels of its codes as weak text.
pub fn search_doc(id: &DocumentId, r: &Resource) -> SearchDoc {
    let mut labels = Vec::new();
    let mut label = |vocabulary: &str, code: &str| {
        if let Some(l) = vocab::label(vocabulary, code) {
            labels.push(l.to_string());
        }
    };
    label(vocab::KINDS, &r.kind);
    for (vocabulary, codes) in [
        (vocab::AXES, &r.axes),
        (vocab::THEMES, &r.themes),
        (vocab::SECTORS, &r.sectors),
        (vocab::AUDIENCES, &r.audiences),
    ] {
        for c in codes {
            label(vocabulary, c);
        }
    }
    for (vocabulary, code) in [
        (vocab::INTERVENTIONS, &r.intervention),
        (vocab::BUILDING_TYPES, &r.building_type),
        (vocab::TOOL_TYPES, &r.tool_type),
        (vocab::ACTION_TYPES, &r.action_type),
    ] {
        if let Some(c) = code {
            label(vocabulary, c);
        }
    }
    let location = r.location.clone().unwrap_or_default();
    SearchDoc {
        id: id.url(),
        ref_: r.ref_.clone(),
        kind: r.kind.clone(),
        office: r.office.clone(),
        title: r.title.clone(),
        summary: r.summary.clone(),
        description: r.description.clone(),
        materials: r.materials.clone(),
        keywords: r.keywords.clone(),
        commune: location.commune,
        departement: location.departement,
        region: None,
        axes: r.axes.clone(),
        themes: r.themes.clone(),
        sectors: r.sectors.clone(),
        audiences: r.audiences.clone(),
        status: r.status.clone(),
        year: r.year,
        lat: location.lat,
        lon: location.lon,
        client: r.client.clone(),
        designers: r.designers.iter().map(|d| d.name.clone()).collect(),
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn replica() -> Arc<Replica> {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for v in [
            json!({"kind":"realisation","title":"École en pisé","office":"caue-63","sectors":["terre"],"location":{"commune":"Thiers","departement":"63"}}),
            json!({"kind":"outil","title":"Guide de la lauze","office":"caue-15","sectors":["pierre"]}),
            json!({"kind":"realisation","title":"Maison en paille","office":"caue-15","sectors":["fibres_vegetales","bois"]}),
        ] {
            r.create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
                .unwrap();
        }
        Arc::new(r)
    }

    #[test]
    fn a_rebuilt_index_takes_everything_once_on_several_threads() {
        let r = replica();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let many = 2 * MIN_LOADS_PER_THREAD + 5;
        for i in 0..many {
            let v =
                json!({"kind":"outil","title":format!("Fiche xylophage {i}"),"office":"caue-63"});
            r.create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
                .unwrap();
        }
        assert!(r.pending().unwrap().len() > many);
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open_or_create(dir.path()).unwrap();
        assert!(index.needs_rebuild());
        let s = IndexedSearch::new(r.clone(), index).unwrap();
        assert!(
            r.pending().unwrap().is_empty(),
            "indexed once, not again at the first search"
        );
        let mut q = SearchQuery::text("xylophage");
        q.limit = 1;
        assert_eq!(s.search(&q).unwrap().total, many);
        assert_eq!(s.search(&SearchQuery::text("lauze")).unwrap().total, 1);
    }

    #[test]
    fn indexing_during_a_pull_takes_slices_as_they_come_and_the_rest_after() {
        let r = replica();
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let index = SearchIndex::open_or_create(dir.path()).unwrap();
            assert!(
                index.needs_rebuild(),
                "the resources already there are rebuilt too"
            );
            IndexedSearch::new_deferred(r.clone(), index)
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut write = |i: usize| {
            let v =
                json!({"kind":"outil","title":format!("Fiche xylophage {i}"),"office":"caue-63"});
            r.create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
                .unwrap();
        };
        let counted = Arc::new(Written::new(4));
        let (written, indexed) = index_during_counted(&r, counted.clone(), open, || {
            (0..4).for_each(&mut write);
            // A slice is written: the thread takes it while the work goes on.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !r.pending().unwrap().is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the slice was not indexed during the work"
                );
                std::thread::yield_now();
            }
            // Writes made while it indexed count toward a next slice. Documents that are not
            // resources (nothing to index) fill that slice, until the thread waits on an empty
            // one: the next resource is then surely left for after the work.
            let mut filler = 0;
            while !counted.idle() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the thread never waited"
                );
                r.store()
                    .update(&DocumentId::derived("filler"), |doc, _| {
                        automerge::transaction::Transactable::put(
                            doc,
                            automerge::ROOT,
                            "n",
                            filler,
                        )?;
                        doc.commit();
                        Ok::<_, crate::store::StoreError>(())
                    })
                    .unwrap();
                filler += 1;
                // One write each: when one completes the slice, the thread takes it (finding
                // nothing to index) and waits again on an empty one.
                while !counted.waiting_for_more() {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the thread never waited"
                    );
                    std::thread::yield_now();
                }
            }
            // Less than a slice: left for after the work.
            write(4);
            5
        });
        assert_eq!(written, 5);
        let indexed = indexed.unwrap();
        assert!(indexed.during >= 4 + 3, "{indexed:?}");
        assert!(indexed.after >= 1, "{indexed:?}");
        assert!(r.pending().unwrap().is_empty());
        let s = IndexedSearch::new(r.clone(), SearchIndex::open_or_create(dir.path()).unwrap())
            .unwrap();
        let mut q = SearchQuery::text("xylophage");
        q.limit = 1;
        assert_eq!(s.search(&q).unwrap().total, 5);
        assert_eq!(s.search(&SearchQuery::text("lauze")).unwrap().total, 1);
    }

    #[test]
    fn a_work_that_panics_ends_the_indexing_thread_too() {
        let r = replica();
        let dir = tempfile::tempdir().unwrap();
        let open =
            || IndexedSearch::new_deferred(r.clone(), SearchIndex::open_or_create(dir.path())?);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            index_during_every(&r, 1_000, open, || panic!("the pull failed"))
        }));
        assert!(
            panicked.is_err(),
            "the panic is the caller's, and nothing hangs"
        );
    }

    #[test]
    fn a_small_pull_leaves_its_documents_to_the_next_search() {
        let r = replica();
        let before = r.pending().unwrap().len();
        let open = || -> Result<IndexedSearch, IndexedSearchError> {
            panic!("fewer than a slice: the index is not opened")
        };
        let ((), indexed) = index_during_every(&r, 1_000, open, || {
            let v = json!({"kind":"outil","title":"Fiche xylophage","office":"caue-63"});
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            r.create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
                .unwrap();
        });
        assert_eq!(indexed.unwrap(), IndexedDuring::default());
        assert!(r.pending().unwrap().len() > before);
    }

    #[test]
    fn a_deferred_index_catches_up_in_slices_and_then_answers_completely() {
        let r = replica();
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open_or_create(dir.path()).unwrap();
        assert!(index.needs_rebuild());
        // Taken by the replica's own writes, as if a previous index had held them.
        r.clear_pending(&r.pending().unwrap()).unwrap();
        let s = IndexedSearch::new_deferred(r.clone(), index).unwrap();
        assert!(
            r.pending().unwrap().is_empty(),
            "opening deferred reads nothing: the first refresh marks the rebuild"
        );
        assert_eq!(
            s.backlog_at_most(100).unwrap(),
            3,
            "before the marks, the backlog is every listed resource"
        );
        assert_eq!(
            s.backlog_at_most(2).unwrap(),
            2,
            "counting stops at the limit"
        );
        assert_eq!(s.refresh_some(1).unwrap(), 1);
        assert_eq!(
            s.backlog_at_most(100).unwrap(),
            2,
            "the rebuild marks all three"
        );
        assert_eq!(
            s.backlog_at_most(2).unwrap(),
            2,
            "counting stops at the limit"
        );
        assert_eq!(s.refresh_some(2).unwrap(), 2);
        assert_eq!(s.refresh_some(2).unwrap(), 0);
        for (text, n) in [("lauze", 1), ("pisé", 1), ("paille", 1)] {
            assert_eq!(
                s.search(&SearchQuery::text(text)).unwrap().total,
                n,
                "{text}"
            );
        }
    }

    /// A resource with every field search reads, and a bare one.
    fn searchable_resources() -> Vec<Resource> {
        [
            json!({"ref":"r-1","kind":"realisation","title":"Maison en pisé","office":"caue-63",
                "summary":"Une maison","description":"Murs en **terre crue**, charpente en mélèze.",
                "status":"publie","axes":["architecture_integree"],"themes":["habitat"],"sectors":["terre"],
                "materials":["pisé","chaux"],"audiences":["particuliers"],"keywords":["enduit"],
                "location":{"commune":"Thiers","insee":"63430","departement":"63","lat":45.85,"lon":3.55},
                "year":2019,"client":"Commune de Thiers",
                "designers":[{"role":"architecte","name":"Atelier Terre"}],
                "intervention":"construction_neuve","building_type":"logement_individuel",
                "links":[{"url":"https://example.org"}]}),
            json!({"kind":"outil","title":"Guide","office":"caue-15","tool_type":"guide"}),
        ]
        .iter()
        .map(|v| Resource::from_json(v).unwrap())
        .collect()
    }

    #[test]
    fn a_search_card_indexes_exactly_what_the_document_would() {
        for r in searchable_resources() {
            let id = DocumentId::derived(&r.title);
            let stored = crate::document::Stored {
                resource: r.clone(),
                created_at: 5,
                deleted: false,
            };
            let listing = crate::card::ListingEntry::of(&id, &stored);
            let card = crate::card::SearchCard::of(&r).expect("short texts have a card");
            assert_eq!(
                search_doc(&id, &card.resource(&listing)),
                search_doc(&id, &r),
                "{}",
                r.title
            );
        }
        let mut long = searchable_resources().remove(1);
        long.description = "x".repeat(crate::card::MAX_SEARCH_CARD_BYTES + 1);
        assert_eq!(crate::card::SearchCard::of(&long), None);
    }

    #[test]
    fn a_received_document_is_indexed_from_its_card_without_loading_it() {
        let sender = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let r = searchable_resources().remove(0);
        let id = sender.create(&r, &mut rng, 0).unwrap();
        let bytes = sender.store().saved(&id).unwrap().unwrap();
        let card: crate::card::Card =
            serde_json::from_slice(&sender.store().card_json(&id).unwrap().unwrap()).unwrap();
        let search = card.resource.as_ref().unwrap().search.as_ref().unwrap();
        assert_eq!(
            search.description, r.description,
            "the sender's card carries it"
        );

        // An honest card matches its document; this one says « douglas » where the document
        // says « mélèze », which shows what the index read.
        let mut told = card.clone();
        if let Some(rc) = told.resource.as_mut() {
            rc.search.as_mut().unwrap().description = "Charpente en douglas.".into();
        }
        let receiver = Arc::new(Replica::in_memory("caue-15".parse().unwrap()));
        receiver
            .store()
            .apply_bytes_with_card(&id, &bytes, Some(&told))
            .unwrap();
        let s = IndexedSearch::new(receiver.clone(), SearchIndex::in_memory().unwrap()).unwrap();
        assert_eq!(s.search(&SearchQuery::text("douglas")).unwrap().total, 1);
        assert_eq!(s.search(&SearchQuery::text("mélèze")).unwrap().total, 0);
        assert_eq!(s.search(&SearchQuery::text("Thiers")).unwrap().total, 1);

        // Once written here, the card is derived from the document again.
        receiver
            .edit(
                &id,
                &[crate::document::Edit::Set {
                    field: "title".into(),
                    value: json!("Maison en pisé à Thiers"),
                }],
                1,
            )
            .unwrap();
        assert_eq!(s.search(&SearchQuery::text("mélèze")).unwrap().total, 1);
        assert_eq!(s.search(&SearchQuery::text("douglas")).unwrap().total, 0);
    }

    #[test]
    fn indexed_search_follows_the_replica() {
        let r = replica();
        let s = IndexedSearch::new(r.clone(), SearchIndex::in_memory().unwrap()).unwrap();
        let res = s.search(&SearchQuery::text("lauze")).unwrap();
        assert_eq!(res.hits.len(), 1);
        let id: DocumentId = res.hits[0].id.parse().unwrap();
        r.delete(&id, 1).unwrap();
        assert_eq!(s.search(&SearchQuery::text("lauze")).unwrap().hits.len(), 0);
    }

    #[test]
    fn open_finds_the_index_in_the_replica_folder() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let v = json!({"kind":"outil","title":"Guide de la lauze","office":"caue-63"});
        r.create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
            .unwrap();
        let s = IndexedSearch::open(Arc::new(r)).unwrap();
        assert!(dir.path().join(SEARCH_DIR).is_dir());
        assert_eq!(s.search(&SearchQuery::text("lauze")).unwrap().total, 1);
    }

    #[test]
    fn an_index_recreated_before_a_crash_is_rebuilt_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let r = Arc::new(Replica::init(dir.path(), "caue-63".parse().unwrap()).unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for title in ["Guide de la lauze", "Fiche lauze et ardoise"] {
            let v = json!({"kind":"outil","title":title,"office":"caue-63"});
            r.create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
                .unwrap();
        }
        IndexedSearch::open(r.clone()).unwrap();
        // The index is found damaged and recreated, and the process dies before the replica
        // noted what to reindex (nothing is pending: everything had been indexed).
        std::fs::write(dir.path().join(SEARCH_DIR).join("meta.json"), "{ abîmé").unwrap();
        assert!(r.pending().unwrap().is_empty());
        drop(open_index(&r).unwrap());
        assert!(r.pending().unwrap().is_empty());
        // A server opens it deferred and stops before its catch-up marked anything.
        drop(IndexedSearch::open_deferred(r.clone()).unwrap());
        assert!(r.pending().unwrap().is_empty());
        assert!(open_index(&r).unwrap().needs_rebuild(), "still to rebuild");

        let s = IndexedSearch::open(r.clone()).unwrap();
        assert_eq!(s.search(&SearchQuery::text("lauze")).unwrap().total, 2);
        drop(s);
        // Marked and rebuilt: the next open keeps the index.
        assert!(!open_index(&r).unwrap().needs_rebuild());
    }
}
