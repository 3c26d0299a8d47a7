//! Search on the list page: the integration point with `atelier_core::search`, and a plain
//! fallback when no index is configured.
//!
//! [`SearchBackend`] is what the list page asks; core's [`IndexedSearch`] (the replica's tantivy
//! index, kept in step with the replica) implements it. Without a backend, [`fallback`] filters
//! the listing index with plain word matching, with the same filter and facet semantics, so the
//! page behaves the same (minus stemming, typo tolerance and snippets).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use atelier_core::fr::fold;
use atelier_core::replica::{ListingEntry, Replica};
use atelier_core::search::{
    Filters, Hit, IndexedSearch, IndexedSearchError, SearchQuery, SearchResults,
};

/// What the list page needs from a search engine.
pub trait SearchBackend: Send + Sync {
    /// One page of hits with facet counts (core's semantics: OR within a facet, AND across
    /// facets, each facet counted without its own filter). The error is logged, not shown.
    fn search(&self, query: &SearchQuery) -> Result<SearchResults, String>;

    /// `Some(n)` while the engine is taking a backlog of about `n` documents in the
    /// background: the page answers from the listing meanwhile ([`fallback`]) and says so.
    fn catching_up(&self) -> Option<usize> {
        None
    }
}

/// A backlog up to this size is indexed inline by the search that finds it (a few hundred
/// documents load in well under a second); a larger one (an import, a fresh pull, an index
/// recreated empty) is taken in the background and pages answer from the listing meanwhile.
pub const INLINE_BACKLOG: usize = 500;
/// Documents the background catch-up takes per slice: the index lock is released between
/// slices, and the count shown on pages moves.
pub const CATCH_UP_SLICE: usize = 2_000;

/// Full-text search that never makes a page wait for a large backlog: [`IndexedSearch`]
/// opened deferred, with a background thread that takes the backlog in slices while
/// [`SearchBackend::catching_up`] tells pages how far it is.
pub struct CatchingUp {
    engine: Arc<IndexedSearch>,
    inline: usize,
    /// Documents left, while a catch-up thread runs; `usize::MAX` when none runs.
    left: Arc<AtomicUsize>,
}

impl CatchingUp {
    /// The replica's search engine (the one in its folder, see [`IndexedSearch::open`]),
    /// without indexing a backlog before answering.
    pub fn open(replica: Arc<Replica>) -> Result<Self, IndexedSearchError> {
        let engine = IndexedSearch::open_deferred(replica)?;
        Ok(Self::new(Arc::new(engine), INLINE_BACKLOG))
    }

    /// Wraps `engine`; a backlog above `inline` documents is taken in the background.
    pub fn new(engine: Arc<IndexedSearch>, inline: usize) -> Self {
        Self {
            engine,
            inline,
            left: Arc::new(AtomicUsize::new(usize::MAX)),
        }
    }

    /// Starts the catch-up thread (the caller checked none runs): slices until nothing is
    /// left, then marks itself stopped. A failing slice is logged and ends the thread; the
    /// next page starts another.
    fn start(&self, left: usize) {
        self.left.store(left, Ordering::SeqCst);
        let engine = self.engine.clone();
        let counter = self.left.clone();
        let spawned = std::thread::Builder::new()
            .name("search-catch-up".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let mut taken = 0;
                loop {
                    match engine.refresh_some(CATCH_UP_SLICE) {
                        Ok(0) => break,
                        Ok(n) => {
                            taken += n;
                            let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
                                Some(l.saturating_sub(n).max(1))
                            });
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "search catch-up failed");
                            break;
                        }
                    }
                }
                tracing::info!(documents = taken, elapsed = ?started.elapsed(), "search index caught up");
                counter.store(usize::MAX, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the search catch-up");
            self.left.store(usize::MAX, Ordering::SeqCst);
        }
    }
}

impl SearchBackend for CatchingUp {
    fn search(&self, query: &SearchQuery) -> Result<SearchResults, String> {
        IndexedSearch::search(&self.engine, query).map_err(|e| e.to_string())
    }

    fn catching_up(&self) -> Option<usize> {
        let left = self.left.load(Ordering::SeqCst);
        if left != usize::MAX {
            return Some(left);
        }
        // Counting stops past the inline limit: cheap however large the backlog.
        match self.engine.backlog_at_most(self.inline + 1) {
            Ok(n) if n <= self.inline => None,
            Ok(_) => {
                let all = self
                    .engine
                    .backlog_at_most(usize::MAX)
                    .unwrap_or(self.inline + 1);
                self.start(all);
                Some(all)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the search backlog");
                None
            }
        }
    }
}

impl SearchBackend for IndexedSearch {
    fn search(&self, query: &SearchQuery) -> Result<SearchResults, String> {
        IndexedSearch::search(self, query).map_err(|e| e.to_string())
    }
}

/// The facets the list page filters on, with the listing field each reads.
pub const FACETS: &[&str] = &[
    "kind",
    "status",
    "office",
    "departement",
    "axe",
    "theme",
    "sector",
];

/// Plain search over the listing index: every word of `text` (case and accents ignored) must
/// appear in the title, summary, commune or ref. Sorted by title.
pub fn fallback(entries: &[ListingEntry], query: &SearchQuery) -> SearchResults {
    let words: Vec<String> = fold(&query.text)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let text_ok: Vec<&ListingEntry> = entries
        .iter()
        .filter(|e| {
            if words.is_empty() {
                return true;
            }
            let hay = fold(&format!(
                "{} {} {} {}",
                e.title,
                e.summary,
                e.commune.as_deref().unwrap_or_default(),
                e.ref_.as_deref().unwrap_or_default()
            ));
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect();
    let f = &query.filters;
    let matching: Vec<&ListingEntry> = text_ok
        .iter()
        .copied()
        .filter(|e| matches(e, f, None))
        .collect();
    let mut facets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for facet in FACETS {
        let counts = facets.entry(facet.to_string()).or_default();
        for e in text_ok.iter().filter(|e| matches(e, f, Some(facet))) {
            for v in values(e, facet) {
                *counts.entry(v.to_string()).or_default() += 1;
            }
        }
    }
    let hits = matching
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|e| Hit {
            id: e.id.url(),
            ref_: e.ref_.clone(),
            title: e.title.clone(),
            kind: e.kind.clone(),
            office: e.office.clone(),
            score: 0.0,
            snippet: e.summary.clone(),
            snippet_html: String::new(),
        })
        .collect();
    SearchResults {
        total: matching.len(),
        hits,
        facets,
        relaxed: false,
    }
}

fn values<'a>(e: &'a ListingEntry, facet: &str) -> Vec<&'a str> {
    let one = |v: &'a str| vec![v];
    match facet {
        "kind" => one(&e.kind),
        "status" => one(&e.status),
        "office" => one(&e.office),
        "departement" => e.departement.as_deref().map(one).unwrap_or_default(),
        "axe" => e.axes.iter().map(String::as_str).collect(),
        "theme" => e.themes.iter().map(String::as_str).collect(),
        "sector" => e.sectors.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `e` passes every filter but `except`'s.
fn matches(e: &ListingEntry, f: &Filters, except: Option<&str>) -> bool {
    let lists: [(&str, &Vec<String>); 7] = [
        ("kind", &f.kind),
        ("status", &f.status),
        ("office", &f.office),
        ("departement", &f.departement),
        ("axe", &f.axe),
        ("theme", &f.theme),
        ("sector", &f.sector),
    ];
    lists.iter().all(|(facet, wanted)| {
        Some(*facet) == except
            || wanted.is_empty()
            || values(e, facet)
                .iter()
                .any(|v| wanted.iter().any(|w| w == v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::replica::{ListFilter, Replica};
    use atelier_core::Resource;
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
    fn fallback_filters_words_and_counts_facets_without_their_own_filter() {
        let r = replica();
        let all = r.list(&ListFilter::default()).unwrap();
        let mut q = SearchQuery {
            limit: 10,
            ..SearchQuery::default()
        };
        q.filters.kind = vec!["realisation".into()];
        let res = fallback(&all, &q);
        assert_eq!(res.total, 2);
        assert_eq!(
            res.facets["kind"]["outil"], 1,
            "own facet counted without its filter"
        );
        assert_eq!(res.facets["sector"].get("pierre"), None);
        q.text = "ECOLE thiers".into();
        assert_eq!(fallback(&all, &q).hits[0].title, "École en pisé");
    }
}
