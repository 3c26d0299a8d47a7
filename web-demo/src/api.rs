//! The local JSON API the CLI codes against. Field names and shapes are a contract: change them
//! only together with `client-cli`.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /api/resources?kind=&office=&departement=&theme=&sector=&status=&deleted=1` | | `[ListingEntry]` |
//! | `POST /api/resources` | FORMAT.md object | 201 `{"id": URL}` |
//! | `GET /api/resources/{id}` | | `{"id","resource","created_at","deleted"}` |
//! | `POST /api/resources/{id}/edits` | `{"edits":[Edit…]}` | `{"fields":[…]}` |
//! | `DELETE /api/resources/{id}` | | `{"id": URL, "deleted": true}` |
//! | `GET /api/resources/{id}/history` | | `[HistoryEntry]` |
//! | `POST /api/import` | JSON Lines | `ImportReport`, or 422 and nothing imported |
//! | `GET /api/export` | | JSON Lines |
//! | `GET /api/sync`, `POST /api/sync` | | the sync indicator's state; ask for a sync round |
//! | `GET /api/sync-record` | | `SyncRecord`: last syncs, a running `sync --watch` (for `atelier status`) |
//!
//! `{id}` is a document URL, a bare id, or a `ref`. Errors: `{"error": "<French message>"}`
//! (plus `"fields": [{field, message}]` for validation errors) with a 4xx/5xx status.

use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::replica::ListFilter;
use atelier_core::resource::FieldError;
use atelier_core::{jsonl, DocumentId, Resource};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ErrorMessage, WebError};
use crate::sync_status::SyncView;
use crate::AppState;

/// Query of `GET /api/resources`; empty parameters do not filter.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub kind: Option<String>,
    pub office: Option<String>,
    pub departement: Option<String>,
    pub theme: Option<String>,
    pub sector: Option<String>,
    pub status: Option<String>,
    /// `1` or `true` also lists deleted resources.
    pub deleted: Option<String>,
}

impl ListQuery {
    fn filter(self) -> ListFilter {
        let some = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        ListFilter {
            kind: some(self.kind),
            office: some(self.office),
            departement: some(self.departement),
            theme: some(self.theme),
            sector: some(self.sector),
            status: some(self.status),
            include_deleted: matches!(self.deleted.as_deref(), Some("1" | "true" | "oui")),
        }
    }
}

/// Body of `POST /api/resources/{id}/edits`.
#[derive(Debug, Deserialize)]
pub struct EditsBody {
    pub edits: Vec<Edit>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let filter = q.filter();
    let entries = state.blocking(move |r| Ok(r.list(&filter)?)).await?;
    Ok(Json(entries).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let value: Value = parse_json(body)?;
    let resource = Resource::from_json(&value).map_err(|e| WebError::Invalid(e.0))?;
    let id = state
        .blocking(move |r| Ok(r.create(&resource, &mut rand::rngs::OsRng, now_ms())?))
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id.url() }))).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (id, stored) = state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            Ok((id, r.get(&id)?))
        })
        .await?;
    Ok(Json(json!({
        "id": id.url(),
        "resource": stored.resource.to_json(),
        "created_at": stored.created_at,
        "deleted": stored.deleted,
    }))
    .into_response())
}

pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let body: EditsBody = parse_json(body)?;
    let fields = state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            Ok(r.edit(&id, &body.edits, now_ms())?)
        })
        .await?;
    Ok(Json(json!({ "fields": fields })).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = delete_resource(&state, id).await?;
    Ok(Json(json!({ "id": id.url(), "deleted": true })).into_response())
}

/// Deletes the resource named in an address: the one deletion of the API and the page.
pub(crate) async fn delete_resource(state: &AppState, id: String) -> Result<DocumentId, WebError> {
    let (id, ()) = state
        .on_resource(id, |r, id| Ok(r.delete(id, now_ms())?))
        .await?;
    Ok(id)
}

pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let entries = state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            Ok(r.history(&id)?)
        })
        .await?;
    Ok(Json(entries).into_response())
}

/// Validates the whole file first (`jsonl::parse`): one bad line and nothing is imported.
pub async fn import(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let body = read_body(body)?;
    let resources = jsonl::parse(body.as_ref()).map_err(|e| match e {
        jsonl::ImportError::Io(_) => {
            WebError::BadRequest("le fichier n'est pas du texte UTF-8".into())
        }
        other => WebError::Invalid(vec![FieldError {
            field: "(fichier)".into(),
            message: other.to_string(),
        }]),
    })?;
    let report = state
        .blocking(move |r| {
            Ok(r.import(&resources, &mut rand::rngs::OsRng, now_ms(), &mut |_| {})?)
        })
        .await?;
    Ok(Json(report).into_response())
}

pub async fn export(State(state): State<AppState>) -> Result<Response, WebError> {
    let body = state
        .blocking(|r| {
            // Written line by line: the body, not a tree of JSON values, is what is held.
            let mut out = Vec::new();
            r.export_each(|item| {
                // Writing into a Vec cannot fail.
                let _ = jsonl::write_line(&mut out, &item);
                true
            })?;
            Ok(out)
        })
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")],
        body,
    )
        .into_response())
}

pub async fn sync_state(State(state): State<AppState>) -> Response {
    Json(SyncView::of(state.sync().as_ref(), now_ms())).into_response()
}

/// The replica's sync record, for `atelier status` while this process holds the replica.
pub async fn sync_record(State(state): State<AppState>) -> Result<Response, WebError> {
    let record = state.blocking(|r| Ok(r.sync_record()?)).await?;
    Ok(Json(record).into_response())
}

pub async fn sync_now(State(state): State<AppState>) -> Response {
    state.sync().sync_now();
    (StatusCode::ACCEPTED, Json(json!({ "ok": true }))).into_response()
}

/// Unknown `/api/…` route.
pub async fn not_found(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> Response {
    let message = ErrorMessage {
        message: format!("Adresse d'API inconnue : {}", uri.path()),
        fields: Vec::new(),
    };
    let mut response = (StatusCode::NOT_FOUND, message.message.clone()).into_response();
    response.extensions_mut().insert(message);
    response
}

/// The body, or « trop volumineux » when it passed the route's limit.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, WebError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebError::TooLarge
        } else {
            WebError::BadRequest("le corps de la requête n'a pas pu être lu".into())
        }
    })
}

/// Parses a JSON body, saying where it is broken (in French, without serde's English).
pub(crate) fn parse_json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, WebError> {
    let body = read_body(body)?;
    serde_json::from_slice(&body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "contenu inattendu",
            _ => "JSON invalide",
        };
        WebError::BadRequest(format!(
            "{what} (ligne {}, colonne {})",
            e.line(),
            e.column()
        ))
    })
}

/// `POST /api/search` with a `SearchQuery` as JSON: the same search as the list page, for
/// `atelier search` while this server holds the replica.
pub async fn search(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let query: atelier_core::search::SearchQuery = parse_json(body)?;
    let backend = state.search().cloned();
    let results = state
        .blocking(move |r| match backend {
            Some(b) => b.search(&query).map_err(WebError::internal),
            None => Ok(crate::search::fallback(
                &r.list(&ListFilter::default())?,
                &query,
            )),
        })
        .await?;
    Ok(Json(results).into_response())
}
