//! Search on the list page: the integration point with `atelier_core::search`, and a plain
//! fallback when no index is configured.
//!
//! [`SearchBackend`] is what the list page asks; core's [`IndexedSearch`] (the replica's tantivy
//! index, kept in step with the replica) implements it. Without a backend, [`fallback`] filters
//! the listing index with plain word matching, with the same filter and facet semantics, so the
//! page behaves the same (minus stemming, typo tolerance and snippets).

use std::collections::BTreeMap;

use atelier_core::fr::fold;
use atelier_core::replica::ListingEntry;
use atelier_core::search::{Filters, Hit, IndexedSearch, SearchQuery, SearchResults};

/// What the list page needs from a search engine.
pub trait SearchBackend: Send + Sync {
    /// One page of hits with facet counts (core's semantics: OR within a facet, AND across
    /// facets, each facet counted without its own filter). The error is logged, not shown.
    fn search(&self, query: &SearchQuery) -> Result<SearchResults, String>;
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
    use std::sync::Arc;

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
