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
//! | `GET /api/export` | the filters of `GET /api/resources` | JSON Lines |
//! | `GET /api/sync`, `POST /api/sync` | | the sync indicator's state; ask for a sync round |
//! | `GET /api/sync-record` | | `SyncRecord`: last syncs, a running `sync --watch` (for `atelier status`) |
//! | `POST /api/resources/{id}/media` | [`MEDIA_UPLOAD_TYPE`] body | `[Added]`, or 422 and nothing added |
//! | `POST /api/media/present` | `[hash…]` | `[bool…]`: which blobs are on this device |
//! | `GET /api/media/{hash}` | | the blob's bytes (the page route's `media::serve`, streamed and verified), 404 if not here yet |
//! | `POST /api/media/{hash}` | the blob's bytes | 204; 422 if they do not have that hash (an import's media folder) |
//! | `GET /api/media-policy`, `PUT /api/media-policy` | `MediaPolicy` | `MediaPolicy` |
//! | `GET /api/media-status` | | `MediaStatus`: blobs still to receive and to send |
//! | `POST /api/login-link` | `{"suite": "/…"}` (optional) | `{"path": "/connexion?jeton=…", "expires_in_s"}`; bearer token only (`auth::mint_link`) |
//!
//! Working together (groups, tasks, review, discussion, news): see [`work`].
//!
//! `{id}` is a document URL, a bare id, or a `ref`. Errors: `{"error": "<French message>"}`
//! (plus `"fields": [{field, message}]` for validation errors) with a 4xx/5xx status.

pub mod publication;
pub mod work;

use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::media::store::MediaError;
use atelier_core::media::{BlobHash, MediaPolicy};
use atelier_core::replica::{ListFilter, NewMedia, ReplicaError};
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
        .blocking(move |r| Ok(r.import(&resources, now_ms(), &mut |_| {})?))
        .await?;
    Ok(Json(report).into_response())
}

/// Header of an export response naming, comma-separated, the resources left out because their
/// documents cannot be read (the log says why); absent when there are none.
pub const UNREADABLE_HEADER: &str = "x-atelier-unreadable";

/// `GET /api/export[?kind=&office=&departement=&theme=&sector=&status=]`: the resources the
/// same query of `GET /api/resources` lists, as JSON Lines.
pub async fn export(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let filter = ListFilter {
        include_deleted: false,
        ..q.filter()
    };
    let (body, unreadable) = state
        .blocking(move |r| {
            // Written line by line: the body, not a tree of JSON values, is what is held.
            let mut out = Vec::new();
            let unreadable = r.export_matching(&filter, |item| {
                // Writing into a Vec cannot fail.
                let _ = jsonl::write_line(&mut out, &item);
                true
            })?;
            Ok((out, unreadable))
        })
        .await?;
    let mut response = (
        [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")],
        body,
    )
        .into_response();
    let ids: Vec<String> = unreadable.iter().map(|u| u.id.url()).collect();
    if let Ok(value) = header::HeaderValue::from_str(&ids.join(",")) {
        if !ids.is_empty() {
            response.headers_mut().insert(UNREADABLE_HEADER, value);
        }
    }
    Ok(response)
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
            None => Ok(crate::search::fallback(&*r.listed()?, &query, false)),
        })
        .await?;
    Ok(Json(results).into_response())
}

/// Content type of `POST /api/resources/{id}/media`: a u32 (big-endian) length, that many bytes
/// of JSON describing the files (`[{name, bytes, plan, credit, caption, alt, use_gps}]`, where
/// `bytes` is the file's length), then the files' bytes one after the other. Files are sent as
/// they are, without the third of extra weight base64 would add.
pub const MEDIA_UPLOAD_TYPE: &str = "application/x-atelier-media";
/// Largest media upload through the local API: a few files of the largest size.
pub const MAX_MEDIA_UPLOAD_BYTES: usize = 4 * atelier_core::media::MAX_BLOB_BYTES as usize;
/// Most blobs `POST /api/media/present` answers for at once.
pub const MAX_PRESENT_QUERY: usize = 10_000;

#[derive(Debug, serde::Serialize, Deserialize)]
struct UploadedFile {
    name: String,
    bytes: usize,
    #[serde(default)]
    plan: bool,
    credit: Option<String>,
    caption: Option<String>,
    alt: Option<String>,
    #[serde(default)]
    use_gps: bool,
}

/// The body of a media upload ([`MEDIA_UPLOAD_TYPE`]).
pub fn encode_media_upload(files: &[NewMedia]) -> Vec<u8> {
    let header: Vec<UploadedFile> = files
        .iter()
        .map(|f| UploadedFile {
            name: f.name.clone(),
            bytes: f.bytes.len(),
            plan: f.plan,
            credit: f.credit.clone(),
            caption: f.caption.clone(),
            alt: f.alt.clone(),
            use_gps: f.use_gps,
        })
        .collect();
    let json = serde_json::to_vec(&header).unwrap_or_default();
    let mut out =
        Vec::with_capacity(4 + json.len() + files.iter().map(|f| f.bytes.len()).sum::<usize>());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    for f in files {
        out.extend_from_slice(&f.bytes);
    }
    out
}

/// Reads a media upload, refusing a body whose parts do not add up.
fn decode_media_upload(body: &[u8]) -> Result<Vec<NewMedia>, WebError> {
    let bad = |m: &str| WebError::BadRequest(format!("envoi de médias illisible : {m}"));
    let len = body
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("corps trop court"))?;
    let header = body.get(4..4 + len).ok_or_else(|| bad("en-tête tronqué"))?;
    let header: Vec<UploadedFile> =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let mut rest = &body[4 + len..];
    let mut files = Vec::with_capacity(header.len());
    for f in header {
        if f.bytes > rest.len() {
            return Err(bad("fichier tronqué"));
        }
        let (bytes, tail) = rest.split_at(f.bytes);
        rest = tail;
        files.push(NewMedia {
            name: f.name,
            bytes: bytes.to_vec(),
            plan: f.plan,
            credit: f.credit,
            caption: f.caption,
            alt: f.alt,
            use_gps: f.use_gps,
        });
    }
    if !rest.is_empty() {
        return Err(bad("octets en trop"));
    }
    Ok(files)
}

pub async fn add_media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let body = body.map_err(|_| WebError::TooLarge)?;
    let files = decode_media_upload(&body)?;
    let (_, added) = state
        .on_resource(id, move |r, id| Ok(r.add_media(id, files, now_ms())?))
        .await?;
    Ok(Json(added).into_response())
}

pub async fn media_present(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let hashes: Vec<BlobHash> = parse_json(body)?;
    if hashes.len() > MAX_PRESENT_QUERY {
        return Err(WebError::BadRequest(format!(
            "{MAX_PRESENT_QUERY} empreintes au plus par demande"
        )));
    }
    let present = state
        .blocking(move |r| {
            Ok(hashes
                .iter()
                .map(|h| r.media_store().contains(h))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(present).into_response())
}

pub async fn import_blob(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let hash: BlobHash = hash
        .parse()
        .map_err(|e: atelier_core::media::BadHash| WebError::BadRequest(e.to_string()))?;
    let body = body.map_err(|_| WebError::TooLarge)?;
    state
        .blocking(move |r| match r.import_blob(&hash, &body) {
            Err(ReplicaError::Media(MediaError::Corrupt { .. })) => {
                Err(WebError::Invalid(vec![FieldError {
                    field: "media".into(),
                    message: format!("le fichier envoyé n'a pas l'empreinte {hash}"),
                }]))
            }
            other => Ok(other?),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn media_policy(State(state): State<AppState>) -> Result<Response, WebError> {
    let p = state.blocking(|r| Ok(r.media_policy()?)).await?;
    Ok(Json(p).into_response())
}

pub async fn set_media_policy(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let p: MediaPolicy = parse_json(body)?;
    let p = state
        .blocking(move |r| {
            r.set_media_policy(&p)?;
            Ok(p)
        })
        .await?;
    Ok(Json(p).into_response())
}

pub async fn media_status(State(state): State<AppState>) -> Result<Response, WebError> {
    let s = state.blocking(|r| Ok(r.media_status()?)).await?;
    Ok(Json(s).into_response())
}
