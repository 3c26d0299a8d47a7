//! Live text editing for the pages: typing in `summary` or `description` sends splices computed
//! against the version of the text the page last saw, so concurrent typing merges like two
//! replicas would, even when the page is behind.
//!
//! `GET /ressources/{id}/texte` → `{"heads":[…],"resource":{FORMAT.md},"deleted":bool}`: the
//! document's heads and the resource read from that very state.
//! `POST /ressources/{id}/texte` with `{"base":[heads],"edits":[Edit…]}` → `{"heads":[…],"fields":[…]}`:
//! the edits are applied to the document *as it was at `base`* (a fork), then merged; the answer's
//! heads name that new state, which is the base of the page's next batch. When `base` is the
//! current state, which is the common case, no fork is made.
//!
//! These routes are for the pages only (session cookie); the CLI uses `/api`, whose contract is
//! kept as it is.

use atelier_core::clock::now_ms;
use atelier_core::document::{self, Edit};
use automerge::ChangeHash;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::api::parse_json;
use crate::error::WebError;
use crate::{load_document, AppState};

/// Body of `POST /ressources/{id}/texte`.
#[derive(Debug, Deserialize)]
pub struct SpliceBody {
    /// The heads of the state the page computed its edits against.
    pub base: Vec<String>,
    pub edits: Vec<Edit>,
}

pub async fn state(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (_, body) = state
        .on_resource(id, |r, id| {
            let mut doc = load_document(r, id)?;
            let stored = document::read(&doc)?;
            Ok(json!({
                "heads": heads_text(&doc.get_heads()),
                "resource": stored.resource.to_json(),
                "deleted": stored.deleted,
            }))
        })
        .await?;
    Ok(Json(body).into_response())
}

pub async fn splice(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let body: SpliceBody = parse_json(body)?;
    // Only text goes this way; deletion and other fields go through `Replica::edit`, which keeps
    // the catalog in step.
    if !body
        .edits
        .iter()
        .all(|e| matches!(e, Edit::Splice { .. } | Edit::Append { .. }))
    {
        return Err(WebError::BadRequest(
            "seules des modifications de texte (splice, append) passent ici".into(),
        ));
    }
    let base = parse_heads(&body.base)?;
    let (fields, heads) = state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            if !r.store().contains(&id)? {
                return Err(WebError::NotFound(id.to_string()));
            }
            let office = r.office().to_string();
            let now = now_ms();
            let (out, _) = r.store().update(&id, |doc, _| {
                let mut current = doc.get_heads();
                current.sort();
                if current == base {
                    let fields = document::apply_edits(doc, &body.edits, &office, now)?;
                    return Ok::<_, WebError>((fields, doc.get_heads()));
                }
                let mut fork = doc.fork_at(&base).map_err(|_| {
                    WebError::BadRequest("version du texte inconnue : rechargez la page".into())
                })?;
                let fields = document::apply_edits(&mut fork, &body.edits, &office, now)?;
                let mine = fork.get_heads();
                doc.merge(&mut fork).map_err(WebError::internal)?;
                Ok((fields, mine))
            })?;
            r.store().flush()?;
            Ok(out)
        })
        .await?;
    Ok(Json(json!({ "heads": heads_text(&heads), "fields": fields })).into_response())
}

fn heads_text(heads: &[ChangeHash]) -> Vec<String> {
    heads.iter().map(ToString::to_string).collect()
}

/// Sorted change hashes, or a French error naming the bad one.
fn parse_heads(text: &[String]) -> Result<Vec<ChangeHash>, WebError> {
    let mut heads = text
        .iter()
        .map(|h| {
            h.parse()
                .map_err(|_| WebError::BadRequest(format!("version « {h} » illisible")))
        })
        .collect::<Result<Vec<ChangeHash>, _>>()?;
    heads.sort();
    Ok(heads)
}
