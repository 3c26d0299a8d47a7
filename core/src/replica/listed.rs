//! The listing kept in memory for a server that reads all of it at every request (the web
//! app's list page while search catches up, its deleted resources), kept current by the
//! store's write notices instead of being parsed again each time.
//!
//! Parsing the listing index costs about 5 µs per entry, half a second at 100,000 resources,
//! and a page that filters it would pay that at every request. [`Replica::listed`] gives a
//! snapshot, [`Listed`]: every entry, sorted as [`Replica::list`] sorts, shared (`Arc`) with the
//! pages reading it. A store observer notes which documents changed; the next call re-reads
//! just those entries (one key each) and makes a new snapshot, so a reader never sees a write
//! half applied and a write is never missed: it is noted before any reader can ask. Nothing is
//! kept until the first call, so a process that does not ask (the CLI, whose sync must stay
//! lean) pays nothing; once asked, [`Replica::list`] filters the snapshot too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use crate::card::ListingEntry;
use crate::fr::fold;
use crate::ids::DocumentId;
use crate::mutex::lock;
use crate::par;
use crate::store::keys::{self, listing_key};
use crate::store::{Kv, StoreError};

use super::{Replica, ReplicaError};

/// Changed documents noted one by one before the snapshot is dropped instead and read whole
/// again: a sync or an import writing thousands of documents while no one lists would
/// otherwise grow the set without bound, and re-reading that many keys one by one costs more
/// than one scan in key order.
pub const MAX_CHANGED_NOTED: usize = 5_000;

/// Every listing entry (deleted resources too), sorted by title as [`Replica::list`] sorts:
/// lowercased, then by id, the order of the listing index.
#[derive(Debug, Default)]
pub struct Listed {
    entries: Vec<Arc<ListedEntry>>,
    /// Set once [`Listed::fold_all`] ran on this snapshot.
    folded_all: OnceLock<()>,
}

impl Listed {
    /// The entries, sorted by title.
    pub fn entries(&self) -> &[Arc<ListedEntry>] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes every entry's folded text ([`ListedEntry::folded_text`]) now, on several
    /// threads: the first plain word filter over 100,000 entries would otherwise fold them
    /// one by one (~0.2 s) before its page. Later calls on the same snapshot return at once.
    pub fn fold_all(&self) {
        self.folded_all.get_or_init(|| {
            let threads = par::threads_for(self.entries.len(), READ_THREADS, FOLDS_PER_THREAD);
            par::map(&self.entries, threads, |e| e.folded_text().len(), |_| true);
        });
    }
}

/// One listing entry, with what sorting and plain word filtering read of it.
#[derive(Debug)]
pub struct ListedEntry {
    pub entry: ListingEntry,
    /// The title lowercased: the sort key of [`Replica::list`].
    sort_key: String,
    /// Title, summary, commune and ref, folded ([`fold`]); made at the first filter that reads
    /// it, so that a snapshot no page filters by words holds no second copy of the summaries.
    folded: OnceLock<Box<str>>,
}

impl ListedEntry {
    fn new(entry: ListingEntry) -> Self {
        Self {
            sort_key: entry.title.to_lowercase(),
            entry,
            folded: OnceLock::new(),
        }
    }

    /// Title, summary, commune and ref, separated by spaces, folded as search folds words:
    /// what a plain word filter looks in (the web app's while search catches up).
    pub fn folded_text(&self) -> &str {
        self.folded.get_or_init(|| {
            let e = &self.entry;
            fold(&format!(
                "{} {} {} {}",
                e.title,
                e.summary,
                e.commune.as_deref().unwrap_or_default(),
                e.ref_.as_deref().unwrap_or_default()
            ))
            .into_boxed_str()
        })
    }

    fn order(&self) -> (&str, &DocumentId) {
        (&self.sort_key, &self.entry.id)
    }
}

/// The snapshot and the documents changed since it was made.
#[derive(Default)]
pub(super) struct ListingCache {
    /// Only one caller makes a new snapshot at a time; the others wait for it, then use it.
    making: Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    snapshot: Option<Arc<Listed>>,
    /// Whether changes are noted: from the first call on (a snapshot is being made or exists).
    noting: bool,
    changed: HashSet<DocumentId>,
    /// Set when a burst of writes dropped the snapshot (and the changes noted): a snapshot
    /// being made meanwhile may lack some of them and is not kept.
    dropped: bool,
}

impl ListingCache {
    /// What the store's observer calls after every document write.
    pub(super) fn changed(&self, id: &DocumentId) {
        let mut state = lock(&self.state);
        if !state.noting {
            return;
        }
        if state.changed.len() >= MAX_CHANGED_NOTED {
            // Too many to take one by one: the next call reads the whole listing again.
            state.snapshot = None;
            state.changed.clear();
            state.dropped = true;
            return;
        }
        state.changed.insert(*id);
    }

    /// The current snapshot, read from `kv`: made whole at the first call or after a burst of
    /// writes, else the last one with its changed entries read again.
    fn get(&self, kv: &dyn Kv) -> Result<Arc<Listed>, StoreError> {
        let _making = lock(&self.making);
        let (old, changed) = {
            let mut state = lock(&self.state);
            state.noting = true;
            state.dropped = false;
            (state.snapshot.clone(), std::mem::take(&mut state.changed))
        };
        let next = match old {
            Some(old) if changed.is_empty() => return Ok(old),
            Some(old) => Arc::new(updated(&old, &changed, kv)?),
            // Writes during the scan are noted from here on and taken at the next call.
            None => Arc::new(read_all(kv)?),
        };
        let mut state = lock(&self.state);
        // Writes noted meanwhile are taken at the next call. After a burst that dropped the
        // snapshot, this one may lack some writes: it is not kept (the next call reads the
        // whole listing again), but it holds every write before this call, which is what this
        // caller may see.
        if !state.dropped {
            state.snapshot = Some(next.clone());
        }
        Ok(next)
    }
}

impl ListingCache {
    /// [`Self::get`] if this replica keeps its listing in memory (someone asked for it).
    fn kept(&self, kv: &dyn Kv) -> Result<Option<Arc<Listed>>, StoreError> {
        if !lock(&self.state).noting {
            return Ok(None);
        }
        self.get(kv).map(Some)
    }
}

impl Replica {
    /// The listing in memory (see the module doc): every entry, deleted ones too, sorted by
    /// title, as of this call. The first call reads the whole listing index; later ones re-read
    /// only the entries of documents written since.
    pub fn listed(&self) -> Result<Arc<Listed>, ReplicaError> {
        Ok(self.listing_cache.get(self.kv.as_ref())?)
    }

    /// The listing in memory if a call to [`Self::listed`] made it (a server), else `None`:
    /// [`Self::list`] then filters it rather than parsing the index again.
    pub(super) fn listed_if_kept(&self) -> Result<Option<Arc<Listed>>, ReplicaError> {
        Ok(self.listing_cache.kept(self.kv.as_ref())?)
    }
}

/// Threads reading the whole listing index (a server's first call): scanning sled and parsing
/// the JSON take ~5 µs per entry on one thread, half a second at 100,000, before a server's
/// first page.
const READ_THREADS: usize = 4;
/// Fewer entries than this per thread are folded on the calling thread alone.
const FOLDS_PER_THREAD: usize = 2_048;

/// Every entry of the listing index, sorted. Ids are random, so the 256 values of an id's first
/// byte split the index into even parts, which threads scan and parse in turn.
fn read_all(kv: &dyn Kv) -> Result<Listed, StoreError> {
    let firsts: Vec<u8> = (0..=u8::MAX).collect();
    let threads = par::threads_for(firsts.len(), READ_THREADS, 1);
    let parts = par::map(
        &firsts,
        threads,
        |first| {
            let mut part = Vec::new();
            kv.for_each_prefix(&[keys::LISTING, *first], &mut |_, v| {
                if let Ok(e) = serde_json::from_slice::<ListingEntry>(v) {
                    part.push(Arc::new(ListedEntry::new(e)));
                }
                true
            })?;
            Ok::<_, StoreError>(part)
        },
        |part| part.is_ok(),
    );
    let mut entries = Vec::new();
    for part in parts.into_iter().flatten() {
        entries.extend(part?);
    }
    entries.sort_by(|a, b| a.order().cmp(&b.order()));
    Ok(Listed {
        entries,
        folded_all: OnceLock::new(),
    })
}

/// `old` with the entries of `changed` documents read again (added, replaced or removed).
fn updated(old: &Listed, changed: &HashSet<DocumentId>, kv: &dyn Kv) -> Result<Listed, StoreError> {
    let mut fresh = Vec::with_capacity(changed.len());
    for id in changed {
        if let Some(v) = kv.get(&listing_key(id))? {
            if let Ok(e) = serde_json::from_slice::<ListingEntry>(&v) {
                fresh.push(Arc::new(ListedEntry::new(e)));
            }
        }
    }
    fresh.sort_by(|a, b| a.order().cmp(&b.order()));
    let kept = old
        .entries
        .iter()
        .filter(|e| !changed.contains(&e.entry.id));
    // Merge two sorted runs.
    let mut entries = Vec::with_capacity(old.entries.len() + fresh.len());
    let mut fresh = fresh.into_iter().peekable();
    for e in kept {
        while let Some(f) = fresh.next_if(|f| f.order() < e.order()) {
            entries.push(f);
        }
        entries.push(e.clone());
    }
    entries.extend(fresh);
    Ok(Listed {
        entries,
        folded_all: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::resource;
    use super::super::ListFilter;
    use super::*;
    use crate::document::Edit;
    use rand::SeedableRng;
    use serde_json::json;

    fn titles(l: &Listed) -> Vec<String> {
        l.entries().iter().map(|e| e.entry.title.clone()).collect()
    }

    /// The snapshot, and `list` once the snapshot is kept, read what the index holds.
    fn same_as_index(r: &Replica) {
        let all = ListFilter {
            include_deleted: true,
            ..ListFilter::default()
        };
        let listed: Vec<ListingEntry> = r
            .listed()
            .unwrap()
            .entries()
            .iter()
            .map(|e| e.entry.clone())
            .collect();
        assert_eq!(listed, r.list_from_index(&all).unwrap());
        for filter in [all, ListFilter::default()] {
            assert_eq!(
                r.list(&filter).unwrap(),
                r.list_from_index(&filter).unwrap()
            );
        }
    }

    #[test]
    fn the_listing_in_memory_follows_every_write_in_the_index_order() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut create = |title: &str| {
            r.create(
                &resource(json!({"kind":"outil","title":title,"office":"caue-63"})),
                &mut rng,
                0,
            )
            .unwrap()
        };
        let b = create("b");
        // Equal titles but for case: the index order (ids) breaks the tie, as `list` does.
        create("A");
        create("a");
        let first = r.listed().unwrap();
        assert_eq!(titles(&first).len(), 3);
        same_as_index(&r);
        assert!(
            Arc::ptr_eq(&first, &r.listed().unwrap()),
            "no write, same snapshot"
        );

        let c = create("C");
        r.edit(
            &b,
            &[Edit::Set {
                field: "title".into(),
                value: "Zinc".into(),
            }],
            1,
        )
        .unwrap();
        r.delete(&c, 2).unwrap();
        let next = r.listed().unwrap();
        assert_eq!(titles(&first).len(), 3, "a snapshot never changes");
        assert_eq!(titles(&next).last().map(String::as_str), Some("Zinc"));
        assert!(next.entries().iter().any(|e| e.entry.deleted));
        same_as_index(&r);
    }

    #[test]
    fn entries_derived_again_by_reindex_are_read_again() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let id = r
            .create(
                &resource(json!({"kind":"outil","title":"Vrai","office":"caue-63"})),
                &mut rng,
                0,
            )
            .unwrap();
        // An entry gone wrong behind the store's back, as `reindex` is there to repair.
        let mut wrong = r.listing(&id).unwrap().unwrap();
        wrong.title = "Faux".into();
        let mut batch = crate::store::Batch::default();
        batch.put(listing_key(&id), serde_json::to_vec(&wrong).unwrap());
        r.kv.apply(batch).unwrap();
        assert_eq!(titles(&r.listed().unwrap()), ["Faux"]);
        r.reindex(1).unwrap();
        assert_eq!(titles(&r.listed().unwrap()), ["Vrai"]);
        same_as_index(&r);
    }

    #[test]
    fn a_burst_of_writes_makes_the_listing_read_again_and_misses_none() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        assert!(r.listed().unwrap().is_empty());
        for i in 0..MAX_CHANGED_NOTED + 3 {
            r.listing_cache.changed(&DocumentId::random(&mut rng));
            if i == 0 {
                r.create(
                    &resource(json!({"kind":"outil","title":"Seule","office":"caue-63"})),
                    &mut rng,
                    0,
                )
                .unwrap();
            }
        }
        assert!(
            lock(&r.listing_cache.state).snapshot.is_none(),
            "past the limit the snapshot is dropped"
        );
        assert!(lock(&r.listing_cache.state).changed.len() < MAX_CHANGED_NOTED);
        assert_eq!(titles(&r.listed().unwrap()), ["Seule"]);
        same_as_index(&r);
    }

    #[test]
    fn the_folded_text_is_what_a_plain_word_filter_reads() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        r.create(
            &resource(json!({"ref":"ecole-1","kind":"realisation","title":"École en PISÉ","summary":"Une œuvre.","office":"caue-63","location":{"commune":"Thiers","departement":"63"}})),
            &mut rng,
            0,
        )
        .unwrap();
        let listed = r.listed().unwrap();
        assert_eq!(
            listed.entries()[0].folded_text(),
            "ecole en pise une oeuvre. thiers ecole-1"
        );
    }

    #[test]
    fn folding_every_entry_on_threads_folds_each_as_alone() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        r.create(
            &resource(json!({"kind":"realisation","title":"École","summary":"Œuvre en PISÉ.","office":"caue-63"})),
            &mut rng,
            0,
        )
        .unwrap();
        let one = r.listed().unwrap().entries()[0].entry.clone();
        // Enough entries for several threads.
        let many = 3 * FOLDS_PER_THREAD;
        let entries = (0..many)
            .map(|i| {
                let mut e = one.clone();
                e.title = format!("Étude n° {i} À Thiers");
                Arc::new(ListedEntry::new(e))
            })
            .collect();
        let listed = Listed {
            entries,
            folded_all: OnceLock::new(),
        };
        listed.fold_all();
        for (i, e) in listed.entries().iter().enumerate() {
            assert_eq!(
                e.folded.get().map(|f| &**f),
                Some(format!("etude n° {i} a thiers oeuvre en pise.  ").as_str())
            );
        }
    }
}
