//! The local API of publications numériques, and the views both it and the CLI's local backend
//! build from a replica (so `atelier publication` answers the same whichever holds it).
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /api/publications` | | `[PublicationSummary]` |
//! | `POST /api/publications` | `NewPublication` | 201 `{"id": URL}` |
//! | `GET /api/publications/{p}` | | [`PublicationView`] |
//! | `POST /api/publications/{p}/edits` | `{"edits":[PublicationEdit…]}` | `{"id": URL, "fields":[…]}` |
//! | `POST /api/publications/{p}/sections` | [`SectionRequest`] | 201 `{"id": URL, "section": …}` |
//! | `GET /api/publications/{p}/since` | | `SinceExport` (what changed since the last export) |
//! | `POST /api/publications/{p}/export?un_fichier=1` | | [`ExportBundle`] (the export is recorded) |
//!
//! `{p}` is a publication's URL or id, its resource's URL, id or ref, or its title (or the
//! start of one title). Refused edits answer 400 with the core's French message.

use atelier_core::clock::now_ms;
use atelier_core::replica::{PublicationSummary, Replica, ReplicaError, SinceExport};
use atelier_core::work::publication::{
    Export, NewPublication, Publication, PublicationEdit, SectionContent,
};
use atelier_core::work::{new_key, WorkError};
use atelier_core::DocumentId;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::parse_json;
use super::work::work_error;
use crate::error::WebError;
use crate::publication;
use crate::AppState;

/// A publication as `atelier publication voir` and the editor show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicationView {
    pub id: DocumentId,
    pub publication: Publication,
    /// Each section's heading as the publication shows it, in order.
    pub headings: Vec<String>,
}

/// A section to add, as typed: exactly one of `fiche`, `texte`, `carte`, `theme`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SectionRequest {
    /// A resource's URL, id, ref, or title (or the start of exactly one title).
    #[serde(default)]
    pub fiche: Option<String>,
    /// A free text.
    #[serde(default)]
    pub texte: Option<String>,
    /// A map's filter: the list page's query string.
    #[serde(default)]
    pub carte: Option<String>,
    /// `GROUPE:THÈME`: a group (name, id or URL) and one of its themes (label or id).
    #[serde(default)]
    pub theme: Option<String>,
    /// The heading of a text or map.
    #[serde(default)]
    pub titre: String,
    /// 1-based place among the sections; the end by default.
    #[serde(default)]
    pub position: Option<usize>,
}

/// An export's files, what changed since the one before, and the snapshot recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportBundle {
    pub id: DocumentId,
    /// The files, bytes in hex.
    pub files: Vec<HexFile>,
    pub since: SinceExport,
    pub export: Export,
}

/// One exported file on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HexFile {
    pub path: String,
    pub hex: String,
}

// The views, shared with the CLI's local backend.

/// A publication with its sections' headings.
pub fn publication_view(r: &Replica, name: &str) -> Result<PublicationView, ReplicaError> {
    let id = r.resolve_publication(name)?;
    let a = r.assemble(&id)?;
    let headings = (0..a.sections.len())
        .map(|i| publication::section_title(&a, i))
        .collect();
    Ok(PublicationView {
        id,
        publication: a.publication,
        headings,
    })
}

/// The resource a user named: URL, id or ref, else a title (accents and case ignored) or the
/// start of exactly one title.
pub fn resolve_resource(r: &Replica, text: &str) -> Result<DocumentId, ReplicaError> {
    let text = text.trim();
    if let Ok(id) = r.resolve(text) {
        return Ok(id);
    }
    let wanted = atelier_core::fr::fold(text);
    let live = r.list(&atelier_core::replica::ListFilter::default())?;
    if let Some(e) = live
        .iter()
        .find(|e| atelier_core::fr::fold(&e.title) == wanted)
    {
        return Ok(e.id);
    }
    let starting: Vec<_> = live
        .iter()
        .filter(|e| !wanted.is_empty() && atelier_core::fr::fold(&e.title).starts_with(&wanted))
        .collect();
    match starting[..] {
        [e] => Ok(e.id),
        [] => Err(invalid("fiche", "Fiche", format!("aucune fiche « {text} »")).into()),
        _ => Err(invalid(
            "fiche",
            "Fiche",
            format!(
                "« {text} » désigne {} fiches : donnez la référence ou le titre entier",
                starting.len()
            ),
        )
        .into()),
    }
}

/// The section a request asks for.
pub fn section_of(r: &Replica, req: &SectionRequest) -> Result<SectionContent, ReplicaError> {
    let given = [&req.fiche, &req.texte, &req.carte, &req.theme]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 {
        return Err(invalid(
            "section",
            "Section",
            "donnez une seule chose à ajouter : une fiche, un texte, une carte ou un thème",
        )
        .into());
    }
    if let Some(f) = &req.fiche {
        return Ok(SectionContent::Resource {
            resource: resolve_resource(r, f)?,
        });
    }
    if let Some(t) = &req.texte {
        return Ok(SectionContent::Text {
            title: req.titre.clone(),
            text: t.replace("\r\n", "\n"),
        });
    }
    if let Some(c) = &req.carte {
        return Ok(SectionContent::Map {
            title: req.titre.clone(),
            filter: c.clone(),
        });
    }
    let t = req.theme.as_deref().unwrap_or_default();
    let Some((g, theme)) = t.rsplit_once(':') else {
        return Err(invalid(
            "theme",
            "Thème",
            format!("« {t} » : attendu GROUPE:THÈME (ex. « Massif central:Construire en terre »)"),
        )
        .into());
    };
    let group = r.resolve_group(g)?;
    let found = r.group(&group)?;
    let wanted = atelier_core::fr::fold(theme.trim());
    let theme = found
        .themes
        .iter()
        .find(|x| x.id == theme.trim() || atelier_core::fr::fold(&x.label) == wanted)
        .ok_or_else(|| {
            invalid(
                "theme",
                "Thème",
                format!(
                    "le groupe « {} » n'a pas de thème « {} »",
                    found.name,
                    theme.trim()
                ),
            )
        })?;
    Ok(SectionContent::Theme {
        group,
        theme: theme.id.clone(),
    })
}

/// Adds the section a request asks for; returns the publication and the section's id.
pub fn add_section(
    r: &Replica,
    name: &str,
    req: &SectionRequest,
    rng: &mut impl rand::RngCore,
    now_ms: i64,
) -> Result<(DocumentId, String), ReplicaError> {
    let id = r.resolve_publication(name)?;
    let section = section_of(r, req)?;
    let key = new_key(rng);
    let edit = PublicationEdit::AddSection {
        id: key.clone(),
        section,
        index: req.position.map(|p| p.saturating_sub(1)),
    };
    r.edit_publication(&id, &[edit], now_ms)?;
    Ok((id, key))
}

/// Exports a publication (a folder's files, or one HTML file), recording the snapshot.
pub fn export(
    r: &Replica,
    name: &str,
    single_file: bool,
    rng: &mut impl rand::RngCore,
    now_ms: i64,
) -> Result<
    (
        DocumentId,
        Vec<publication::ExportFile>,
        SinceExport,
        Export,
    ),
    ReplicaError,
> {
    let id = r.resolve_publication(name)?;
    let since = r.since_export(&id)?;
    let a = r.assemble(&id)?;
    let blob = |h: &atelier_core::media::BlobHash| r.media_blob(h).ok().flatten();
    let files = publication::export(&a, &blob, single_file);
    let export = r.record_export(&a, rng, now_ms)?;
    Ok((id, files, since, export))
}

fn invalid(field: &'static str, label: &'static str, message: impl Into<String>) -> WorkError {
    WorkError::Invalid {
        field,
        label,
        message: message.into(),
    }
}

fn api_error(e: ReplicaError) -> WebError {
    match e {
        ReplicaError::Work(w) => work_error(w),
        other => WebError::from(other),
    }
}

// The routes.

/// The routes of the table above, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/publications", get(list).post(create))
        .route("/publications/{p}", get(show))
        .route("/publications/{p}/edits", post(edit))
        .route("/publications/{p}/sections", post(section))
        .route("/publications/{p}/since", get(since))
        .route("/publications/{p}/export", post(export_route))
}

pub async fn list(State(state): State<AppState>) -> Result<Response, WebError> {
    let all: Vec<PublicationSummary> = state
        .blocking(|r| r.publications().map_err(api_error))
        .await?;
    Ok(Json(all).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let new: NewPublication = parse_json(body)?;
    let id = state
        .blocking(move |r| {
            r.create_publication(&new, &mut rand::rngs::OsRng, now_ms())
                .map_err(api_error)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id.url() }))).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Path(p): Path<String>,
) -> Result<Response, WebError> {
    let view = state
        .blocking(move |r| publication_view(r, &p).map_err(api_error))
        .await?;
    Ok(Json(view).into_response())
}

/// Body of `POST /api/publications/{p}/edits`.
#[derive(Debug, Deserialize)]
pub struct EditsBody {
    pub edits: Vec<PublicationEdit>,
}

pub async fn edit(
    State(state): State<AppState>,
    Path(p): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let body: EditsBody = parse_json(body)?;
    let (id, fields) = state
        .blocking(move |r| {
            let id = r.resolve_publication(&p).map_err(api_error)?;
            let fields = r
                .edit_publication(&id, &body.edits, now_ms())
                .map_err(api_error)?;
            Ok((id, fields))
        })
        .await?;
    Ok(Json(json!({ "id": id.url(), "fields": fields })).into_response())
}

pub async fn section(
    State(state): State<AppState>,
    Path(p): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let req: SectionRequest = parse_json(body)?;
    let (id, key) = state
        .blocking(move |r| {
            add_section(r, &p, &req, &mut rand::rngs::OsRng, now_ms()).map_err(api_error)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id.url(), "section": key })),
    )
        .into_response())
}

pub async fn since(
    State(state): State<AppState>,
    Path(p): Path<String>,
) -> Result<Response, WebError> {
    let since = state
        .blocking(move |r| {
            let id = r.resolve_publication(&p)?;
            Ok(r.since_export(&id)?)
        })
        .await?;
    Ok(Json(since).into_response())
}

/// Query of the export route.
#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    /// `1`: one HTML file with the images inlined.
    pub un_fichier: Option<String>,
}

/// Exports a publication and packs the result for the wire (the API and the CLI's local
/// backend give the same bundle).
pub fn export_bundle(
    r: &Replica,
    name: &str,
    single_file: bool,
    rng: &mut impl rand::RngCore,
    now_ms: i64,
) -> Result<ExportBundle, ReplicaError> {
    let (id, files, since, export) = export(r, name, single_file, rng, now_ms)?;
    Ok(ExportBundle {
        id,
        files: files
            .into_iter()
            .map(|f| HexFile {
                path: f.path,
                hex: hex::encode(f.bytes),
            })
            .collect(),
        since,
        export,
    })
}

impl ExportBundle {
    /// The files with their bytes; `None` if a file's hex is broken.
    pub fn decoded(&self) -> Option<Vec<publication::ExportFile>> {
        self.files
            .iter()
            .map(|f| {
                Some(publication::ExportFile {
                    path: f.path.clone(),
                    bytes: hex::decode(&f.hex).ok()?,
                })
            })
            .collect()
    }
}

pub async fn export_route(
    State(state): State<AppState>,
    Path(p): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, WebError> {
    let single = matches!(q.un_fichier.as_deref(), Some("1" | "true" | "oui"));
    let bundle = state
        .blocking(move |r| {
            export_bundle(r, &p, single, &mut rand::rngs::OsRng, now_ms()).map_err(api_error)
        })
        .await?;
    Ok(Json(bundle).into_response())
}
