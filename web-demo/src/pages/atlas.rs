//! `GET /atlas`: the map of every resource the list page's search and filters find (same
//! address parameters, same search code: `list::Params` and `list::search`), drawn by
//! `crate::atlas`, with the way back to the list.

use atelier_core::par;
use atelier_core::replica::Replica;
use atelier_core::search::MAX_LIMIT;
use atelier_core::{fr, DocumentId};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::atlas::{self, AtlasPoint};
use crate::error::WebError;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::list::{self, Params};
use crate::pages::resource_path;
use crate::AppState;

/// Most resources one atlas shows. Each is read from the replica (its coordinates are in the
/// document, not the listing: about half a millisecond each) and is one entry of the list under
/// the map, so 5,000 is a few seconds and a long but usable page; past it the page says so and
/// asks for a filter.
pub const MAX_ATLAS_POINTS: usize = 5_000;
/// Threads reading resources for one atlas: loading a document is CPU work (Automerge), and
/// the search index's loads use the same bound.
const MAX_LOAD_THREADS: usize = 4;
/// Fewest resources per reading thread: below that, starting a thread costs more than it saves.
const MIN_LOADS_PER_THREAD: usize = 64;

pub async fn page(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let params = Params::parse(pairs);
    let Found {
        points,
        total,
        relaxed,
    } = find(&state, &params).await?;
    let filters = params.filter_labels();
    let content = html! {
        div.results-head {
            h1 { "Atlas des fiches " span.count { "(" (count_text(total)) ")" } }
            div.results-actions {
                a.button href=(params.href()) { "← Revenir à la liste" }
            }
        }
        @if params.narrows() {
            p.atlas-filters {
                @if !params.text().trim().is_empty() { "Recherche : « " (params.text().trim()) " ». " }
                @if !filters.is_empty() { "Filtres : " (filters.join(", ")) ". " }
                a href=(params.href()) { "Modifier la recherche et les filtres" }
                " · "
                a href="/atlas" { "Voir toutes les fiches" }
            }
        } @else {
            p.help { "Pour n'afficher qu'une partie des fiches, cherchez ou filtrez depuis la liste, puis choisissez « Voir sur l'atlas »." }
        }
        @if relaxed {
            p.notice { "Aucune fiche ne contient tous vos mots : voici celles qui en contiennent une partie." }
        }
        @if points.len() < total {
            p.notice role="status" {
                "L'atlas montre les " (fr::integer(points.len() as u64)) " premières fiches sur "
                (fr::integer(total as u64)) " : affinez la recherche pour voir les autres."
            }
        }
        (atlas::render(&points, &|id: &DocumentId| resource_path(id)))
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: "Atlas des fiches",
            page: "atlas",
            doc: None,
            nav: Nav::Atlas,
        },
        content,
    )
    .into_response())
}

/// What an atlas address finds.
struct Found {
    /// At most [`MAX_ATLAS_POINTS`], in the list's order.
    points: Vec<AtlasPoint>,
    /// How many resources match in all.
    total: usize,
    /// No resource had every word: these have only some of them (as the list says too).
    relaxed: bool,
}

/// Every resource `params` finds (at most [`MAX_ATLAS_POINTS`]) as atlas points.
async fn find(state: &AppState, params: &Params) -> Result<Found, WebError> {
    let mut query = params.query();
    query.offset = 0;
    query.limit = MAX_LIMIT;
    let backend = state.search().cloned();
    state
        .blocking(move |r| {
            let mut ids = Vec::new();
            let mut relaxed = false;
            let total = loop {
                let results = list::search(r, backend.as_ref(), &query, false)?;
                relaxed |= results.relaxed;
                let page = results.hits.len();
                ids.extend(
                    results
                        .hits
                        .iter()
                        .filter_map(|hit| hit.id.parse::<DocumentId>().ok()),
                );
                query.offset += page;
                if page == 0 || query.offset >= results.total || ids.len() >= MAX_ATLAS_POINTS {
                    break results.total;
                }
            };
            ids.truncate(MAX_ATLAS_POINTS);
            let threads = par::threads_for(ids.len(), MAX_LOAD_THREADS, MIN_LOADS_PER_THREAD);
            let points = par::map(&ids, threads, |id| point(r, id), |_| true)
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            Ok(Found {
                points,
                total,
                relaxed,
            })
        })
        .await
}

/// A resource as the atlas places it; `None` when it was deleted or became unreadable since
/// the search.
fn point(r: &Replica, id: &DocumentId) -> Option<AtlasPoint> {
    let stored = r.get(id).ok().filter(|s| !s.deleted)?;
    let res = stored.resource;
    let loc = res.location.unwrap_or_default();
    Some(AtlasPoint {
        id: *id,
        title: res.title,
        kind: res.kind,
        commune: loc.commune,
        departement: loc.departement,
        lon: loc.lon,
        lat: loc.lat,
    })
}

fn count_text(n: usize) -> String {
    match n {
        0 => "aucune".into(),
        1 => "1 fiche".into(),
        n => format!("{} fiches", fr::integer(n as u64)),
    }
}
