//! Search on the list page: the integration point with `atelier_core::search`, and a plain
//! fallback when no index is configured.
//!
//! [`SearchBackend`] is what the list page asks; [`IndexedSearch`] implements it over core's
//! tantivy [`SearchIndex`], keeping the index in step with the replica through the replica's
//! to-do list of changed documents (`Replica::pending`). Without a backend, [`fallback`] filters
//! the listing index with plain word matching, with the same filter and facet semantics, so the
//! page behaves the same (minus stemming, typo tolerance and snippets).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use atelier_core::replica::{ListFilter, ListingEntry, Replica};
use atelier_core::search::analysis::fold;
use atelier_core::search::{Filters, Hit, SearchDoc, SearchIndex, SearchQuery, SearchResults};
use atelier_core::{vocab, DocumentId, Resource};

/// What the list page needs from a search engine.
pub trait SearchBackend: Send + Sync {
    /// One page of hits with facet counts (core's semantics: OR within a facet, AND across
    /// facets, each facet counted without its own filter). The error is logged, not shown.
    fn search(&self, query: &SearchQuery) -> Result<SearchResults, String>;
}

/// Most threads loading documents to index them.
const MAX_LOAD_THREADS: usize = 4;
/// Fewer documents than this per thread are loaded on the calling thread alone.
const MIN_LOADS_PER_THREAD: usize = 64;

/// Core's search index, refreshed from the replica before each search.
pub struct IndexedSearch {
    replica: Arc<Replica>,
    index: Mutex<SearchIndex>,
}

impl IndexedSearch {
    /// Wraps `index`; if it was recreated empty (`needs_rebuild`), every resource is indexed on
    /// the first search.
    pub fn new(replica: Arc<Replica>, index: SearchIndex) -> Result<Self, String> {
        let search = Self {
            replica,
            index: Mutex::new(index),
        };
        let rebuild = search.lock().needs_rebuild();
        if rebuild {
            // What is pending now gets indexed with everything else: not twice (a fresh
            // replica's first search would index every document twice).
            let pending = search.replica.pending().map_err(|e| e.to_string())?;
            let all = search
                .replica
                .list(&ListFilter {
                    include_deleted: true,
                    ..ListFilter::default()
                })
                .map_err(|e| e.to_string())?;
            let ids: Vec<DocumentId> = all.iter().map(|e| e.id).collect();
            search.index_ids(&ids)?;
            search
                .replica
                .clear_pending(&pending)
                .map_err(|e| e.to_string())?;
        }
        Ok(search)
    }

    /// Takes the replica's pending changes into the index.
    pub fn refresh(&self) -> Result<(), String> {
        let pending = self.replica.pending().map_err(|e| e.to_string())?;
        if pending.is_empty() {
            return Ok(());
        }
        self.index_ids(&pending)?;
        self.replica
            .clear_pending(&pending)
            .map_err(|e| e.to_string())
    }

    fn index_ids(&self, ids: &[DocumentId]) -> Result<(), String> {
        // Loading documents is most of the work when there are many (a fresh replica's first
        // search indexes all of them): share it among threads, each a slice of `ids`.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_LOAD_THREADS)
            .min(ids.len() / MIN_LOADS_PER_THREAD)
            .max(1);
        let load = |ids: &[DocumentId]| -> Vec<Result<SearchDoc, String>> {
            ids.iter()
                .map(|id| match self.replica.get(id) {
                    Ok(s) if !s.deleted => Ok(search_doc(id, &s.resource)),
                    _ => Err(id.url()),
                })
                .collect()
        };
        let loaded: Vec<Result<SearchDoc, String>> = if threads == 1 {
            load(ids)
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = ids
                    .chunks(ids.len().div_ceil(threads))
                    .map(|chunk| scope.spawn(move || load(chunk)))
                    .collect();
                workers
                    .into_iter()
                    // `load` only reads; a panic there is a bug worth crashing on.
                    .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
        for doc in loaded {
            match doc {
                Ok(doc) => upserts.push(doc),
                Err(url) => deletes.push(url),
            }
        }
        let mut index = self.lock();
        index.delete(&deletes).map_err(|e| e.to_string())?;
        index.upsert(&upserts).map_err(|e| e.to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SearchIndex> {
        // The index is a cache: a panic mid-write leaves at worst a stale entry.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SearchBackend for IndexedSearch {
    fn search(&self, query: &SearchQuery) -> Result<SearchResults, String> {
        self.refresh()?;
        self.lock().search(query).map_err(|e| e.to_string())
    }
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
    fn indexed_search_follows_the_replica() {
        let r = replica();
        let s = IndexedSearch::new(r.clone(), SearchIndex::in_memory().unwrap()).unwrap();
        let res = s.search(&SearchQuery::text("lauze")).unwrap();
        assert_eq!(res.hits.len(), 1);
        let id: DocumentId = res.hits[0].id.parse().unwrap();
        r.delete(&id, 1).unwrap();
        assert_eq!(s.search(&SearchQuery::text("lauze")).unwrap().hits.len(), 0);
    }
}
