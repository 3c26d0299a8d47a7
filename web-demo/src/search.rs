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
use atelier_core::replica::{Listed, ListingEntry, Replica};
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

/// Plain search over the listing in memory ([`Replica::listed`]): every word of `text` (case and
/// accents ignored) must appear in the title, summary, commune or ref; only deleted resources
/// when `deleted`, else only live ones. Sorted by title.
///
/// One pass over the entries: an entry that passes every filter is a hit and counts in every
/// facet; one that fails a single facet's filter counts in that facet only (a facet is counted
/// without its own filter); the words are looked for in each entry's folded text, folded once
/// per snapshot.
pub fn fallback(listed: &Listed, query: &SearchQuery, deleted: bool) -> SearchResults {
    let words: Vec<String> = fold(&query.text)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if !words.is_empty() {
        listed.fold_all();
    }
    let wanted = wanted(&query.filters);
    let mut counts: [BTreeMap<&str, u64>; FACETS.len()] = Default::default();
    let mut total = 0;
    let mut hits = Vec::new();
    for listed in listed.entries() {
        let e = &listed.entry;
        if e.deleted != deleted {
            continue;
        }
        if !words.is_empty() {
            let text = listed.folded_text();
            if !words.iter().all(|w| text.contains(w.as_str())) {
                continue;
            }
        }
        // The facet whose filter `e` fails, if only one does.
        let mut failing = None;
        let mut failures = 0;
        for (facet, want) in wanted.iter().enumerate() {
            if !want.is_empty() && !values(e, facet).any(|v| want.iter().any(|w| w == v)) {
                failures += 1;
                failing = Some(facet);
                if failures > 1 {
                    break;
                }
            }
        }
        match (failures, failing) {
            (0, _) => {
                for (facet, into) in counts.iter_mut().enumerate() {
                    count_values(into, e, facet);
                }
                if total >= query.offset && hits.len() < query.limit {
                    hits.push(hit(e));
                }
                total += 1;
            }
            (1, Some(facet)) => count_values(&mut counts[facet], e, facet),
            _ => {}
        }
    }
    let facets = FACETS
        .iter()
        .zip(counts)
        .map(|(facet, counts)| {
            let counts = counts
                .into_iter()
                .map(|(v, n)| (v.to_string(), n))
                .collect();
            (facet.to_string(), counts)
        })
        .collect();
    SearchResults {
        total,
        hits,
        facets,
        relaxed: false,
    }
}

fn hit(e: &ListingEntry) -> Hit {
    Hit {
        id: e.id.url(),
        ref_: e.ref_.clone(),
        title: e.title.clone(),
        kind: e.kind.clone(),
        office: e.office.clone(),
        score: 0.0,
        snippet: e.summary.clone(),
        snippet_html: String::new(),
    }
}

/// The chosen values of each facet, in [`FACETS`] order.
fn wanted(f: &Filters) -> [&[String]; FACETS.len()] {
    [
        &f.kind,
        &f.status,
        &f.office,
        &f.departement,
        &f.axe,
        &f.theme,
        &f.sector,
    ]
}

/// The values of the facet `FACETS[facet]` an entry has.
fn values(e: &ListingEntry, facet: usize) -> impl Iterator<Item = &str> {
    let (one, many): (Option<&str>, &[String]) = match facet {
        0 => (Some(&e.kind), &[]),
        1 => (Some(&e.status), &[]),
        2 => (Some(&e.office), &[]),
        3 => (e.departement.as_deref(), &[]),
        4 => (None, &e.axes),
        5 => (None, &e.themes),
        _ => (None, &e.sectors),
    };
    one.into_iter().chain(many.iter().map(String::as_str))
}

fn count_values<'a>(into: &mut BTreeMap<&'a str, u64>, e: &'a ListingEntry, facet: usize) {
    for v in values(e, facet) {
        match into.get_mut(v) {
            Some(n) => *n += 1,
            None => {
                into.insert(v, 1);
            }
        }
    }
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
        let all = r.listed().unwrap();
        let mut q = SearchQuery {
            limit: 10,
            ..SearchQuery::default()
        };
        q.filters.kind = vec!["realisation".into()];
        let res = fallback(&all, &q, false);
        assert_eq!(res.total, 2);
        assert_eq!(
            res.facets["kind"]["outil"], 1,
            "own facet counted without its filter"
        );
        assert_eq!(res.facets["sector"].get("pierre"), None);
        q.text = "ECOLE thiers".into();
        assert_eq!(fallback(&all, &q, false).hits[0].title, "École en pisé");
    }

    /// The fallback as it was before the listing in memory: entries parsed for each page,
    /// every facet counted in a pass of its own. The one-pass filter must find the same.
    fn reference(entries: &[ListingEntry], query: &SearchQuery) -> SearchResults {
        let words: Vec<String> = fold(&query.text)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let text_ok: Vec<&ListingEntry> = entries
            .iter()
            .filter(|e| {
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
        let wanted = wanted(&query.filters);
        let passes = |e: &ListingEntry, except: Option<usize>| {
            (0..FACETS.len()).all(|f| {
                Some(f) == except
                    || wanted[f].is_empty()
                    || values(e, f).any(|v| wanted[f].iter().any(|w| w == v))
            })
        };
        let matching: Vec<&ListingEntry> = text_ok
            .iter()
            .copied()
            .filter(|e| passes(e, None))
            .collect();
        let mut facets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (i, facet) in FACETS.iter().enumerate() {
            let counts = facets.entry(facet.to_string()).or_default();
            for e in text_ok.iter().filter(|e| passes(e, Some(i))) {
                for v in values(e, i) {
                    *counts.entry(v.to_string()).or_default() += 1;
                }
            }
        }
        SearchResults {
            total: matching.len(),
            hits: matching
                .iter()
                .skip(query.offset)
                .take(query.limit)
                .map(|e| hit(e))
                .collect(),
            facets,
            relaxed: false,
        }
    }

    #[test]
    fn the_one_pass_fallback_finds_what_the_reference_finds() {
        use rand::seq::SliceRandom;
        use rand::Rng;
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let kinds = ["realisation", "outil", "action"];
        let offices = ["caue-63", "caue-15", "caue-07"];
        let sectors = ["terre", "pierre", "bois", "fibres_vegetales"];
        let themes = ["habitat", "paysage", "patrimoine"];
        let words = ["école", "Maison", "pisé", "lauze", "grange", "Thiers"];
        let departements = ["63", "15"];
        let mut ids = Vec::new();
        for i in 0..120 {
            let (n_sectors, n_themes) = (rng.gen_range(0..3), rng.gen_range(0..3));
            let title = format!(
                "{} {} {i}",
                words.choose(&mut rng).unwrap(),
                words.choose(&mut rng).unwrap()
            );
            let v = json!({
                "kind": kinds.choose(&mut rng).unwrap(),
                "title": title,
                "summary": words.choose(&mut rng).unwrap(),
                "office": offices.choose(&mut rng).unwrap(),
                "sectors": sectors.choose_multiple(&mut rng, n_sectors).collect::<Vec<_>>(),
                "themes": themes.choose_multiple(&mut rng, n_themes).collect::<Vec<_>>(),
                "location": {"departement": departements.choose(&mut rng).unwrap()},
            });
            ids.push(
                r.create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
                    .unwrap(),
            );
        }
        for id in ids.iter().step_by(9) {
            r.delete(id, 1).unwrap();
        }
        let listed = r.listed().unwrap();
        let live = r.list(&ListFilter::default()).unwrap();
        let mut deleted = r
            .list(&ListFilter {
                include_deleted: true,
                ..ListFilter::default()
            })
            .unwrap();
        deleted.retain(|e| e.deleted);
        for round in 0..200 {
            let mut q = SearchQuery {
                limit: rng.gen_range(1..30),
                offset: rng.gen_range(0..20),
                ..SearchQuery::default()
            };
            if rng.gen_bool(0.5) {
                q.text = words.choose(&mut rng).unwrap().to_uppercase();
            }
            if rng.gen_bool(0.5) {
                q.filters.kind = vec![kinds.choose(&mut rng).unwrap().to_string()];
            }
            if rng.gen_bool(0.5) {
                q.filters.sector = sectors
                    .choose_multiple(&mut rng, 2)
                    .map(|s| s.to_string())
                    .collect();
            }
            if rng.gen_bool(0.3) {
                q.filters.departement = vec!["63".into()];
            }
            if rng.gen_bool(0.3) {
                q.filters.theme = vec![themes.choose(&mut rng).unwrap().to_string()];
            }
            let view_deleted = round % 4 == 0;
            let entries = if view_deleted { &deleted } else { &live };
            let (got, want) = (fallback(&listed, &q, view_deleted), reference(entries, &q));
            assert_eq!(got.total, want.total, "{q:?}");
            assert_eq!(got.facets, want.facets, "{q:?}");
            let ids = |r: &SearchResults| r.hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&want), "{q:?}");
        }
    }
}
