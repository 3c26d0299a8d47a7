//! `GET /`: the corpus as cards, with a search box and filters (checkboxes with French labels
//! and counts); the query and filters are in the address (`?q=…&kind=…`).
//!
//! `GET /fragments/resultats` answers the same parameters with only the facets (`#facettes`)
//! and the results (`#resultats`), rendered by the same functions: the script swaps them in as
//! the person types or ticks a box, and when a change arrives live. Without script the form
//! submits to `/` and the page does the same work.

use std::collections::BTreeMap;

use atelier_core::card::ListingEntry;
use atelier_core::media::{Media, Tier};
use atelier_core::search::{SearchQuery, SearchResults};
use atelier_core::{fr, vocab, DocumentId};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use crate::error::WebError;
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::gallery::{card_cover, Presence};
use crate::pages::{encode_query, kind_badge, resource_path, status_badge};
use crate::search::{fallback, FACETS};
use crate::AppState;

/// Cards per page: a screenful or two, quick to render and to scan.
pub const PAGE_SIZE: usize = 24;

/// What the address asks for.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params {
    text: String,
    /// Facet → chosen codes.
    chosen: BTreeMap<String, Vec<String>>,
    page: usize,
    /// Show deleted resources instead (to restore one).
    deleted: bool,
    /// Id of a resource just deleted (to offer « annuler »).
    just_deleted: Option<String>,
}

impl Params {
    pub(crate) fn parse(pairs: Vec<(String, String)>) -> Self {
        let mut p = Params {
            page: 1,
            ..Params::default()
        };
        for (k, v) in pairs {
            match k.as_str() {
                "q" => p.text = v,
                "page" => p.page = v.parse().unwrap_or(1).max(1),
                "supprimees" => p.deleted = v == "1",
                "supprimee" => p.just_deleted = Some(v),
                facet if FACETS.contains(&facet) && !v.is_empty() => {
                    p.chosen.entry(k).or_default().push(v)
                }
                _ => {}
            }
        }
        p
    }

    pub(crate) fn query(&self) -> SearchQuery {
        let get = |f: &str| self.chosen.get(f).cloned().unwrap_or_default();
        let mut q = SearchQuery {
            text: self.text.clone(),
            limit: PAGE_SIZE,
            offset: (self.page - 1) * PAGE_SIZE,
            ..SearchQuery::default()
        };
        if self.text.trim().is_empty() {
            q.sort = atelier_core::search::Sort::Title;
        }
        q.filters.kind = get("kind");
        q.filters.status = get("status");
        q.filters.office = get("office");
        q.filters.departement = get("departement");
        q.filters.axe = get("axe");
        q.filters.theme = get("theme");
        q.filters.sector = get("sector");
        q
    }

    /// The address of this list with `facet=value` toggled (page reset).
    fn toggled(&self, facet: &str, value: &str) -> String {
        let mut next = self.clone();
        next.page = 1;
        next.just_deleted = None;
        let values = next.chosen.entry(facet.to_string()).or_default();
        if let Some(i) = values.iter().position(|v| v == value) {
            values.remove(i);
        } else {
            values.push(value.to_string());
        }
        next.href()
    }

    fn at_page(&self, page: usize) -> String {
        let mut next = self.clone();
        next.page = page;
        next.just_deleted = None;
        next.href()
    }

    /// The list page's address for these parameters.
    pub(crate) fn href(&self) -> String {
        format!("/{}", self.query_string())
    }

    /// The atlas of the same search and filters (no page, never the deleted resources).
    pub(crate) fn atlas_href(&self) -> String {
        let mut all = self.clone();
        all.page = 1;
        all.deleted = false;
        all.just_deleted = None;
        format!("/atlas{}", all.query_string())
    }

    /// `?q=…&kind=…`, or nothing when there is nothing to say.
    fn query_string(&self) -> String {
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            parts.push(format!("q={}", encode_query(&self.text)));
        }
        for (facet, values) in &self.chosen {
            for v in values {
                parts.push(format!("{facet}={}", encode_query(v)));
            }
        }
        if self.deleted {
            parts.push("supprimees=1".into());
        }
        if self.page > 1 {
            parts.push(format!("page={}", self.page));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// Whether a search or a filter narrows the corpus.
    pub(crate) fn narrows(&self) -> bool {
        !self.text.trim().is_empty() || self.chosen.values().any(|v| !v.is_empty())
    }

    /// The French labels of the chosen filters.
    pub(crate) fn filter_labels(&self) -> Vec<String> {
        self.chosen
            .iter()
            .flat_map(|(facet, values)| values.iter().map(|v| value_label(facet, v)))
            .collect()
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The search and filters as a query string (no page), for the download links.
    fn search_query(&self) -> String {
        let mut all = self.clone();
        all.page = 1;
        all.deleted = false;
        all.just_deleted = None;
        all.href()
            .trim_start_matches('/')
            .trim_start_matches('?')
            .to_string()
    }

    fn is_chosen(&self, facet: &str, value: &str) -> bool {
        self.chosen
            .get(facet)
            .is_some_and(|v| v.iter().any(|x| x == value))
    }
}

/// One card.
struct Card {
    id: DocumentId,
    title: String,
    kind: String,
    office: String,
    status: String,
    place: Option<String>,
    summary: String,
    snippet_html: String,
    deleted: bool,
    /// The first photo or plan (its thumbnail is the card's image), and whether it is here.
    cover: Option<(Media, Presence)>,
}

/// What a list address finds: the results with their facet counts, the cards to show, and the
/// resource just deleted (title) if the address names one.
struct Found {
    results: SearchResults,
    /// Documents the search index is still taking (the results come from the listing).
    catching_up: Option<usize>,
    cards: Vec<Card>,
    undo: Option<(DocumentId, String)>,
}

pub async fn page(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let params = Params::parse(pairs);
    let found = find(&state, &params).await?;
    let content = html! {
        @if let Some((id, title)) = &found.undo {
            div.notice role="status" {
                "La fiche « " (title) " » a été supprimée. "
                form.inline method="post" action={ (resource_path(id)) "/restaurer" } {
                    button.link type="submit" { "Annuler la suppression" }
                }
            }
        }
        div.list-layout {
            (filters(&params, &found.results))
            div {
                // Results replaced by the script are announced here, once, by their count.
                p #resultats-annonce .visually-hidden role="status" {}
                (results_section(&params, &found))
            }
        }
    };
    let title = if params.deleted {
        "Fiches supprimées"
    } else {
        "Toutes les fiches"
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title,
            page: "list",
            doc: None,
            nav: Nav::List,
        },
        content,
    )
    .into_response())
}

/// `GET /fragments/resultats`: the facets and results of the list page for the same
/// parameters, without the page around them.
pub async fn fragment(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let mut params = Params::parse(pairs);
    params.just_deleted = None;
    let found = find(&state, &params).await?;
    let body = html! {
        (facets(&params, &found.results))
        (results_section(&params, &found))
    };
    // Each keystroke asks for a new address: nothing is worth keeping.
    Ok(([(header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// Runs the search of `params` (or the plain filter), then reads the cards' resources.
async fn find(state: &AppState, params: &Params) -> Result<Found, WebError> {
    let query = params.query();
    let backend = state.search().cloned();
    let deleted_view = params.deleted;
    let just_deleted = params.just_deleted.clone();
    state
        .blocking(move |r| {
            let catching_up = backend
                .as_ref()
                .filter(|_| !deleted_view)
                .and_then(|b| b.catching_up());
            let results = search(r, backend.as_ref(), &query, deleted_view)?;
            let mut cards = Vec::with_capacity(results.hits.len());
            for hit in &results.hits {
                let Ok(id) = hit.id.parse::<DocumentId>() else {
                    continue;
                };
                cards.extend(card(r, id, hit));
            }
            let undo = just_deleted
                .and_then(|raw| r.resolve(&raw).ok())
                .and_then(|id| {
                    r.get(&id)
                        .ok()
                        .filter(|s| s.deleted)
                        .map(|s| (id, s.resource.title))
                });
            Ok(Found {
                results,
                catching_up,
                cards,
                undo,
            })
        })
        .await
}

/// A hit's card, from its listing entry: a document is loaded only for its cover's media (its
/// size, caption, kind), which the entry names by hash only.
fn card(
    r: &atelier_core::replica::Replica,
    id: DocumentId,
    hit: &atelier_core::search::Hit,
) -> Option<Card> {
    let entry = r.listing(&id).ok().flatten()?;
    let place = match (entry.commune.as_deref(), entry.departement.as_deref()) {
        (Some(c), Some(d)) => Some(format!("{c} ({d})")),
        (Some(c), None) => Some(c.to_string()),
        (None, Some(d)) => Some(fr::departement_name(d)),
        _ => None,
    };
    let cover = entry.cover.and_then(|hash| {
        let stored = r.get(&id).ok()?;
        let m = stored
            .resource
            .media
            .iter()
            .find(|m| m.image_at(Tier::Thumb) == Some(hash))?;
        let present = Presence::of(r, std::slice::from_ref(m));
        Some((m.clone(), present))
    });
    let ListingEntry {
        title,
        kind,
        office,
        status,
        summary,
        deleted,
        ..
    } = entry;
    Some(Card {
        cover,
        id,
        title,
        kind,
        office,
        status,
        place,
        summary,
        snippet_html: hit.snippet_html.clone(),
        deleted,
    })
}

/// The hits of `query`: through the search backend, or the plain listing filter when there is
/// none, when it fails, or for the deleted resources (which the index does not hold). The list
/// page and the atlas both search here, so their filters are the same.
pub(crate) fn search(
    r: &atelier_core::replica::Replica,
    backend: Option<&std::sync::Arc<dyn crate::SearchBackend>>,
    query: &SearchQuery,
    deleted_view: bool,
) -> Result<SearchResults, WebError> {
    // While the index takes a large backlog, the listing answers (the page says so).
    let backend = backend.filter(|b| !deleted_view && b.catching_up().is_none());
    Ok(match backend {
        Some(b) => b.search(query).or_else(|e| {
            tracing::error!(error = %e, "search failed, using the plain listing filter");
            Ok::<_, WebError>(fallback(&*r.listed()?, query, false))
        })?,
        None => fallback(&*r.listed()?, query, deleted_view),
    })
}

/// `#resultats`; `data-annonce` is what the script reads out after replacing it.
fn results_section(params: &Params, found: &Found) -> Markup {
    html! {
        section #resultats data-annonce=(announcement(found.results.total)) {
            @if let Some(n) = found.catching_up {
                p.notice role="status" {
                    "La recherche se met à jour : il lui reste " (fr::count(n as u64, "fiche"))
                    " à lire. En attendant, les résultats viennent des titres et des résumés."
                }
            }
            (results_block(params, &found.results, &found.cards))
        }
    }
}

fn results_block(params: &Params, results: &SearchResults, cards: &[Card]) -> Markup {
    let pages = results.total.div_ceil(PAGE_SIZE).max(1);
    html! {
        div.results-head {
            h1 {
                @if params.deleted { "Fiches supprimées" } @else { "Fiches" }
                " "
                span.count { (count_text(results.total)) }
            }
            @if !params.deleted {
                div.results-actions {
                    @if results.total > 0 { a.button href=(params.atlas_href()) { "Voir sur l'atlas" } }
                    a.button.primary href="/ressources/nouvelle" { "+ Ajouter une fiche" }
                }
            }
        }
        @if params.chosen.values().any(|v| !v.is_empty()) {
            p.chips {
                "Filtres : "
                @for (facet, values) in &params.chosen {
                    @for v in values {
                        a.chip href=(params.toggled(facet, v)) title="Retirer ce filtre" { (value_label(facet, v)) " ✕" }
                    }
                }
            }
        }
        @if results.relaxed {
            p.notice { "Aucune fiche ne contient tous vos mots : voici celles qui en contiennent une partie." }
        }
        @if cards.is_empty() {
            div.empty {
                @if params.text.trim().is_empty() {
                    p { "Aucune fiche ne correspond." }
                } @else {
                    p { "Aucune fiche ne correspond à « " (params.text.trim()) " »." }
                }
                @if !params.chosen.values().all(Vec::is_empty) || !params.text.is_empty() {
                    p { a href="/" { "Effacer la recherche et les filtres" } }
                }
            }
        } @else {
            ol.cards {
                @for c in cards {
                    li.card.with-cover[c.cover.is_some()] data-id=(c.id.to_base58()) {
                        @if let Some((m, present)) = &c.cover { (card_cover(m, present)) }
                        div.card-top { (kind_badge(&c.kind)) @if c.status != "publie" { (status_badge(&c.status)) } }
                        h2 { a href=(resource_path(&c.id)) { (c.title) } }
                        p.meta {
                            (glossary::office_name(&c.office))
                            @if let Some(p) = &c.place { " · " (p) }
                        }
                        @if !c.snippet_html.is_empty() {
                            p.summary { (layout::trusted(&c.snippet_html)) }
                        } @else if !c.summary.is_empty() {
                            p.summary { (c.summary) }
                        }
                        @if c.deleted {
                            form.inline method="post" action={ (resource_path(&c.id)) "/restaurer" } {
                                button type="submit" { "Restaurer cette fiche" }
                            }
                        }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pager aria-label="Pages de résultats" {
                @if params.page > 1 { a href=(params.at_page(params.page - 1)) rel="prev" { "← Page précédente" } }
                span { "Page " (params.page) " sur " (pages) }
                @if params.page < pages { a href=(params.at_page(params.page + 1)) rel="next" { "Page suivante →" } }
            }
        }
        @if !params.deleted && results.total > 0 {
            (downloads(params))
        }
        p.more-links {
            @if !params.deleted { a href="/import" { "Importer un tableur" } " · " }
            @if params.deleted { a href="/" { "← Revenir aux fiches" } }
            @else { a href="/?supprimees=1" { "Voir les fiches supprimées" } }
        }
    }
}

/// « Télécharger ces fiches »: the current search and filters in each export format.
fn downloads(params: &Params) -> Markup {
    let q = params.search_query();
    let with = |path: &str, extra: &str| {
        let parts: Vec<&str> = [q.as_str(), extra]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", parts.join("&"))
        }
    };
    html! {
        nav.downloads aria-label="Télécharger ces fiches" {
            span { "Télécharger ces fiches : " }
            a href=(with("/export.geojson", "")) download title="Pour QGIS, uMap : un point par fiche" { "GeoJSON" }
            " · "
            a href=(with("/export.csv", "")) download title="Séparateur virgule, pour les portails de données ouvertes" { "CSV" }
            " · "
            a href=(with("/export.csv", "separateur=%3B")) download title="Séparateur point-virgule, pour Excel ou LibreOffice en français" { "CSV (;)" }
            " · "
            a href=(with("/export.jsonl", "")) download title="Le format d'échange complet d'Atelier" { "JSON Lines" }
        }
    }
}

/// The French label of a facet value.
fn value_label(facet: &str, code: &str) -> String {
    match facet {
        "kind" => glossary::kind_name(code).to_string(),
        "status" => vocab::label_or_code(vocab::STATUSES, code).to_string(),
        "axe" => vocab::label_or_code(vocab::AXES, code).to_string(),
        "theme" => vocab::label_or_code(vocab::THEMES, code).to_string(),
        "sector" => vocab::label_or_code(vocab::SECTORS, code).to_string(),
        "office" => glossary::office_name(code),
        "departement" => fr::departement_name(code),
        _ => code.to_string(),
    }
}

/// « 3 fiches trouvées »: the count as a sentence, for screen readers.
fn announcement(n: usize) -> String {
    match n {
        0 => "Aucune fiche trouvée".into(),
        1 => "1 fiche trouvée".into(),
        n => format!("{} fiches trouvées", fr::integer(n as u64)),
    }
}

fn count_text(n: usize) -> String {
    match n {
        0 => "(aucune)".into(),
        1 => "(1 fiche)".into(),
        n => format!("({} fiches)", fr::integer(n as u64)),
    }
}

/// The filter panel: a search box and one group of checkboxes per facet. The script sends
/// it on every keystroke and ticked box; without script, « Chercher » and « Filtrer » do.
fn filters(params: &Params, results: &SearchResults) -> Markup {
    html! {
        form.filters #filtres method="get" action="/" role="search" {
            @if params.deleted { input type="hidden" name="supprimees" value="1"; }
            label for="q" { "Rechercher dans le corpus" }
            div.search {
                input type="search" id="q" name="q" value=(params.text) placeholder="Ex. : pisé, Thiers, école…" autocomplete="off";
                button type="submit" { "Chercher" }
            }
            (facets(params, results))
            div.filter-actions {
                button type="submit" .primary { "Filtrer" }
                a href="/" { "Tout effacer" }
            }
            p.help { "Cochez plusieurs cases d'un même groupe pour voir l'une ou l'autre." }
        }
    }
}

/// `#facettes`: one group of checkboxes per facet, with the counts of the current results.
fn facets(params: &Params, results: &SearchResults) -> Markup {
    let groups: [(&str, &str, Option<&str>); 7] = [
        ("kind", "Type de fiche", Some(vocab::KINDS)),
        ("status", "État de la fiche", Some(vocab::STATUSES)),
        ("axe", "Axe du programme", Some(vocab::AXES)),
        ("theme", "Thème", Some(vocab::THEMES)),
        ("sector", "Filière de construction", Some(vocab::SECTORS)),
        ("office", "Office", None),
        ("departement", "Département", None),
    ];
    html! {
        div #facettes {
            @for (facet, title, vocabulary) in groups {
                @let options = facet_options(params, results, facet, vocabulary);
                @if !options.is_empty() {
                    fieldset.facet data-facet=(facet) {
                        legend { (title) }
                        @for (code, label, count) in &options {
                            @let id = format!("f-{facet}-{code}");
                            label.option for=(id) {
                                input type="checkbox" id=(id) name=(facet) value=(code) checked[params.is_chosen(facet, code)];
                                " " (label) " " span.n { "(" (count) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// (code, French label, count) of a facet: vocabulary order for controlled lists, most
/// frequent first for offices and départements. Values with no fiche are hidden unless chosen.
fn facet_options(
    params: &Params,
    results: &SearchResults,
    facet: &str,
    vocabulary: Option<&str>,
) -> Vec<(String, String, u64)> {
    let counts = results.facets.get(facet).cloned().unwrap_or_default();
    let count = |c: &str| counts.get(c).copied().unwrap_or(0);
    let mut out: Vec<(String, String, u64)> = match vocabulary {
        Some(v) => vocab::codes(v)
            .iter()
            .map(|(code, label)| {
                let label = if facet == "kind" {
                    glossary::kind_name(code).to_string()
                } else {
                    label.clone()
                };
                (code.clone(), label, count(code))
            })
            .collect(),
        None => {
            let mut o: Vec<(String, String, u64)> = counts
                .iter()
                .map(|(code, n)| {
                    let label = if facet == "office" {
                        glossary::office_name(code)
                    } else {
                        fr::departement_name(code)
                    };
                    (code.clone(), label, *n)
                })
                .collect();
            o.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
            o
        }
    };
    out.retain(|(code, _, n)| *n > 0 || params.is_chosen(facet, code));
    for chosen in params.chosen.get(facet).into_iter().flatten() {
        if !out.iter().any(|(c, _, _)| c == chosen) {
            out.push((chosen.clone(), chosen.clone(), 0));
        }
    }
    out
}
