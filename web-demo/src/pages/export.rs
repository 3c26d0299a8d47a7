//! `GET /export.csv`, `/export.geojson`, `/export.jsonl`: the resources the list page shows for
//! the same address (search and filters), as a file to download (core's `opendata` writers).
//!
//! Without words to search, the list's plain filter (`search::fallback`) picks the resources,
//! every one of them; with words, the search index's pages, up to [`MAX_SEARCH_EXPORT`].

use atelier_core::opendata::{Format, Separator, Writer};
use atelier_core::search::{SearchQuery, MAX_LIMIT, MAX_OFFSET};
use atelier_core::DocumentId;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::list::Params;
use crate::error::WebError;
use crate::search::fallback;
use crate::AppState;

/// Most resources a search with words exports: the search index serves pages up to
/// `MAX_OFFSET` deep; an export of everything, or by filters only, has no such bound.
pub const MAX_SEARCH_EXPORT: usize = MAX_OFFSET + MAX_LIMIT;

pub async fn csv(
    state: State<AppState>,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    download(state, q, Format::Csv).await
}

pub async fn geojson(
    state: State<AppState>,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    download(state, q, Format::GeoJson).await
}

pub async fn jsonl(
    state: State<AppState>,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    download(state, q, Format::Jsonl).await
}

async fn download(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
    format: Format,
) -> Result<Response, WebError> {
    let semicolon = pairs.iter().any(|(k, v)| k == "separateur" && v == ";");
    let sep = if semicolon && format == Format::Csv {
        Separator::Semicolon
    } else {
        Separator::Comma
    };
    let params = Params::parse(pairs);
    let query = params.query();
    let search = state.search().cloned();
    let body = state
        .blocking(move |r| {
            let ids = matching(r, search.as_deref(), query)?;
            let mut w = Writer::new(format, sep, Vec::new()).map_err(WebError::internal)?;
            for id in ids {
                // A resource deleted or unreadable since the search is left out.
                let Ok(stored) = r.get(&id) else { continue };
                if !stored.deleted {
                    w.write(&stored.resource).map_err(WebError::internal)?;
                }
            }
            w.finish().map_err(WebError::internal)
        })
        .await?;
    let name = match (format, sep) {
        (Format::Csv, Separator::Semicolon) => "fiches-atelier-pointvirgule.csv".to_string(),
        _ => format!("fiches-atelier.{}", format.extension()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// The ids the list page finds for `query`, all of them (not one page).
fn matching(
    r: &atelier_core::replica::Replica,
    search: Option<&dyn crate::SearchBackend>,
    mut query: SearchQuery,
) -> Result<Vec<DocumentId>, WebError> {
    query.offset = 0;
    let ids = |hits: &[atelier_core::search::Hit]| -> Vec<DocumentId> {
        hits.iter().filter_map(|h| h.id.parse().ok()).collect()
    };
    match search.filter(|_| !query.text.trim().is_empty()) {
        Some(engine) => {
            let mut out = Vec::new();
            query.limit = MAX_LIMIT;
            while out.len() < MAX_SEARCH_EXPORT {
                let page = engine.search(&query).map_err(WebError::internal)?;
                out.extend(ids(&page.hits));
                if page.hits.len() < MAX_LIMIT || query.offset + MAX_LIMIT >= page.total {
                    break;
                }
                query.offset += MAX_LIMIT;
            }
            Ok(out)
        }
        None => {
            query.limit = usize::MAX;
            Ok(ids(&fallback(&*r.listed()?, &query, false).hits))
        }
    }
}
