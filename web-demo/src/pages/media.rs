//! `/ressources/{id}/medias`: a resource's photos and documents — adding several at once
//! (multipart form; the script adds a drop zone, per-file texts and upload progress), changing
//! an entry's credit, caption and description (`Edit::SetMedia`), and removing one after a
//! confirmation (`Edit::RemoveMedia`; history keeps it).
//!
//! The upload form works without script: one credit, caption and description for every file
//! chosen. The script gives each file its own (`credit.N`, `caption.N`, `alt.N`, `plan.N`,
//! `gps.N`, N being the file's position) and sends the form by `XMLHttpRequest` with
//! `Accept: application/json`, so errors come back as JSON and land next to the file's fields
//! with nothing lost. Without script, errors are shown next to the shared fields, with what was
//! typed; only the files must be chosen again (browsers never keep them).

use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::media::{rendition, BlobHash, Media, MediaKind, MAX_BLOB_BYTES};
use atelier_core::replica::NewMedia;
use atelier_core::resource::FieldError;
use atelier_core::{fields, fr, DocumentId};
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::FormRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{html, Markup};

use crate::error::{ErrorMessage, WebError};
use crate::form::FormData;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::gallery::{
    credit_text, media_page_path, placeholder, shown, type_label, Presence,
};
use crate::pages::{form_data, resource_path};
use crate::AppState;

/// Largest upload from the page: a few files of the largest size a file may have. The whole
/// body is held in memory while the files are checked, so this also bounds memory.
pub const MAX_UPLOAD_BYTES: usize = 4 * MAX_BLOB_BYTES as usize;
/// Most files in one upload: a report's photos at once, not an archive.
pub const MAX_FILES_PER_UPLOAD: usize = 30;
/// Longest text field of the upload form read (a credit, a caption): the core's limit on media
/// texts is in characters; this bounds what is read before it says so.
const MAX_UPLOAD_TEXT_BYTES: usize = 16 * 1024;

/// The texts staff may change on an entry, with the form's input names.
const TEXTS: [&str; 3] = ["credit", "caption", "alt"];

/// Notices after a form: `?modifie=1`, `?retire=1`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Notice {
    modifie: Option<String>,
    retire: Option<String>,
}

/// What the page shows besides the resource: what was typed and refused.
#[derive(Default)]
struct View {
    notice: Option<&'static str>,
    /// The upload form's shared fields as typed, and their errors (`fichier`, `credit`, …).
    upload: FormData,
    upload_errors: Vec<FieldError>,
    /// An entry's texts as typed, and their errors.
    entry: Option<(BlobHash, FormData, Vec<FieldError>)>,
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    let view = View {
        notice: if notice.modifie.is_some() {
            Some("Textes enregistrés.")
        } else if notice.retire.is_some() {
            Some("Le fichier a été retiré de la fiche. L'historique le garde.")
        } else {
            None
        },
        ..View::default()
    };
    render(&state, id, view, StatusCode::OK).await
}

/// `POST /ressources/{id}/medias` (multipart): adds every file, or none and says why.
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, WebError> {
    let wants_json = wants_json(&headers);
    let (files, form) = match read_upload(multipart).await {
        Ok(x) => x,
        Err(e) => return Ok(e.into_response()),
    };
    let mut errors = Vec::new();
    if files.is_empty() {
        errors.push(FieldError {
            field: "fichier".into(),
            message: "choisissez au moins un fichier".into(),
        });
    } else if files.len() > MAX_FILES_PER_UPLOAD {
        errors.push(FieldError {
            field: "fichier".into(),
            message: format!(
                "{MAX_FILES_PER_UPLOAD} fichiers au plus par envoi ; envoyez les autres ensuite"
            ),
        });
    }
    let news: Vec<NewMedia> = files
        .into_iter()
        .enumerate()
        .map(|(i, (name, bytes))| new_media(&form, i, name, bytes))
        .collect();
    let names: Vec<String> = news.iter().map(|n| n.name.clone()).collect();
    let outcome = if errors.is_empty() {
        let (rid, result) = state
            .on_resource(id.clone(), move |r, id| {
                match r.add_media(id, news, now_ms()) {
                    Ok(added) => Ok(Ok(added)),
                    Err(e) => match WebError::from(e) {
                        WebError::Invalid(errors) => Ok(Err(errors)),
                        other => Err(other),
                    },
                }
            })
            .await?;
        match result {
            Ok(added) => {
                let gps = added.iter().filter(|a| a.gps_offered.is_some()).count();
                let mut to = format!("{}?medias_ajoutes={}", resource_path(&rid), added.len());
                if gps > 0 {
                    to.push_str(&format!("&gps={gps}"));
                }
                to.push_str("#mediatheque");
                return Ok(if wants_json {
                    Json(serde_json::json!({ "redirect": to, "added": added.len() }))
                        .into_response()
                } else {
                    Redirect::to(&to).into_response()
                });
            }
            Err(e) => e,
        }
    } else {
        errors
    };
    if wants_json {
        let per_file = per_file_errors(&outcome, &names);
        let message = ErrorMessage {
            message: summary_sentence(per_file.len()),
            fields: per_file,
        };
        let mut response =
            (StatusCode::UNPROCESSABLE_ENTITY, message.message.clone()).into_response();
        response.extensions_mut().insert(message);
        return Ok(response);
    }
    let upload_errors = outcome
        .into_iter()
        .map(|e| FieldError {
            field: shared_input(&e.field).into(),
            message: e.message,
        })
        .collect();
    let view = View {
        upload: form,
        upload_errors,
        ..View::default()
    };
    render(&state, id, view, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// `POST /ressources/{id}/medias/{hash}`: the entry's credit, caption and description.
pub async fn edit_texts(
    State(state): State<AppState>,
    Path((id, hash)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let hash = parse_hash(&hash)?;
    let form = form_data(form)?;
    let typed = form.clone();
    let (rid, outcome) = state
        .on_resource(id.clone(), move |r, id| {
            let current = entry_of(&r.get(id)?.resource.media, &hash)?;
            let edits: Vec<Edit> = TEXTS
                .into_iter()
                .filter_map(|field| {
                    let now = form.get(field).map(str::trim).unwrap_or_default();
                    let before = text_of(&current, field).unwrap_or_default();
                    (now != before).then(|| Edit::SetMedia {
                        hash,
                        field: field.into(),
                        value: if now.is_empty() {
                            serde_json::Value::Null
                        } else {
                            now.into()
                        },
                    })
                })
                .collect();
            if edits.is_empty() {
                return Ok(Ok(()));
            }
            match r.edit(id, &edits, now_ms()) {
                Ok(_) => Ok(Ok(())),
                Err(e) => match WebError::from(e) {
                    WebError::Invalid(errors) => Ok(Err(errors)),
                    other => Err(other),
                },
            }
        })
        .await?;
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!(
            "{}?modifie=1#{}",
            media_page_path(&rid),
            entry_anchor(&hash)
        ))
        .into_response()),
        Err(errors) => {
            let view = View {
                entry: Some((hash, typed, errors)),
                ..View::default()
            };
            render(&state, id, view, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// `GET /ressources/{id}/medias/{hash}/retirer`: asks before removing.
pub async fn confirm_remove(
    State(state): State<AppState>,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let hash = parse_hash(&hash)?;
    let (rid, (title, m, present)) = state
        .on_resource(id, move |r, id| {
            let stored = r.get(id)?;
            let m = entry_of(&stored.resource.media, &hash)?;
            let present = Presence::of(r, std::slice::from_ref(&m));
            Ok((stored.resource.title, m, present))
        })
        .await?;
    let back = media_page_path(&rid);
    let heading = format!("Retirer « {} » de la fiche ?", m.name);
    let content = html! {
        p.crumbs { a href=(back) { "← Photos et documents de « " (title) " »" } }
        section.confirm {
            h1 { (heading) }
            @if m.kind != MediaKind::Document {
                @if let Some((h, _)) = shown(&m, atelier_core::media::Tier::Thumb, &present) {
                    img.confirm-thumb src=(crate::media::blob_path(&h)) alt=(m.alt.as_deref().unwrap_or(&m.name));
                }
            }
            p { "Le fichier ne sera plus montré avec la fiche, dans aucun office. L'historique de la fiche le garde : vous pourrez le retrouver dans une ancienne version." }
            form method="post" action={ (back) "/" (m.hash) "/retirer" } {
                div.form-actions {
                    button.danger type="submit" { "Oui, retirer ce fichier" }
                    a href=(back) { "Non, le garder" }
                }
            }
        }
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: &heading,
            page: "media-remove",
            doc: Some(rid.to_base58()),
            nav: Nav::None,
        },
        content,
    )
    .into_response())
}

/// `POST /ressources/{id}/medias/{hash}/retirer`.
pub async fn remove(
    State(state): State<AppState>,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let hash = parse_hash(&hash)?;
    let (rid, ()) = state
        .on_resource(id, move |r, id| {
            entry_of(&r.get(id)?.resource.media, &hash)?;
            Ok(r.remove_media(id, &hash, now_ms())?)
        })
        .await?;
    Ok(Redirect::to(&format!("{}?retire=1", media_page_path(&rid))).into_response())
}

/// The page itself, for `id`, with `view`'s typed values and errors.
async fn render(
    state: &AppState,
    id: String,
    view: View,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (id, (stored, present)) = state
        .on_resource(id, |r, id| {
            let stored = r.get(id)?;
            let present = Presence::of(r, &stored.resource.media);
            Ok((stored, present))
        })
        .await?;
    let r = &stored.resource;
    let title = format!("Photos et documents — {}", r.title);
    let content = html! {
        p.crumbs { a href=(resource_path(&id)) { "← Revenir à la fiche" } }
        h1 { "Photos et documents de « " (r.title) " »" }
        @if let Some(n) = view.notice { div.notice.ok role="status" { (n) } }
        @if stored.deleted {
            div.notice.warn role="status" { "Cette fiche est supprimée : restaurez-la pour lui ajouter des fichiers." }
        } @else {
            (upload_form(&id, &view))
        }
        section.media-current aria-labelledby="deja-titre" {
            h2 #deja-titre { "Déjà dans la fiche" span.count { " (" (r.media.len()) ")" } }
            @if r.media.is_empty() {
                p.empty { "Aucun fichier pour l'instant." }
            } @else {
                ul.media-edit {
                    @for m in &r.media { li { (entry_form(&id, m, &present, &view)) } }
                }
            }
        }
    };
    let page = layout::page(
        state,
        PageMeta {
            title: &title,
            page: "media",
            doc: Some(id.to_base58()),
            nav: Nav::None,
        },
        content,
    );
    Ok((status, page).into_response())
}

/// The help line of a media text, from core's field table.
fn help(field: &str) -> &'static str {
    fields::field(&format!("media.{field}")).map_or("", |f| f.help)
}

fn label(field: &str) -> &'static str {
    fields::field(&format!("media.{field}")).map_or("", |f| f.label)
}

/// The upload form: the files (a drop zone with the script), the texts shared by every file
/// (each file gets its own with the script), and the progress of the sending.
fn upload_form(id: &DocumentId, view: &View) -> Markup {
    let error = |name: &str| {
        view.upload_errors
            .iter()
            .filter(|e| e.field == name)
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    };
    let files_errors = error("fichier");
    html! {
        section.upload aria-labelledby="ajout-titre" {
            h2 #ajout-titre { "Ajouter des photos ou des documents" }
            form #envoi-medias method="post" enctype="multipart/form-data" action=(media_page_path(id)) novalidate
                data-max-bytes=(MAX_UPLOAD_BYTES) data-max-files=(MAX_FILES_PER_UPLOAD) {
                @if !view.upload_errors.is_empty() {
                    div.error-summary role="alert" tabindex="-1" #erreurs {
                        h2 { (summary_sentence(view.upload_errors.len())) }
                        ul { @for e in &view.upload_errors { li { (capitalise(&e.message)) } } }
                        p { "Les textes tapés sont gardés ci-dessous ; choisissez à nouveau les fichiers (un navigateur ne les garde pas après un envoi)." }
                    }
                }
                div.dropzone #depot {
                    label for="fichiers" { "Fichiers à ajouter" }
                    p.help #fichiers-aide {
                        "Plusieurs à la fois si vous voulez. Formats acceptés : " (rendition::ACCEPTED) ". "
                        (fr::size(MAX_BLOB_BYTES)) " au plus par fichier, " (fr::size(MAX_UPLOAD_BYTES as u64)) " par envoi."
                    }
                    input type="file" id="fichiers" name="fichier" multiple
                        accept="image/jpeg,image/png,image/webp,application/pdf,.jpg,.jpeg,.png,.webp,.pdf"
                        aria-describedby={ "fichiers-aide" @if !files_errors.is_empty() { " fichiers-erreur" } }
                        aria-invalid=[(!files_errors.is_empty()).then_some("true")];
                    p.drop-hint hidden { "… ou faites glisser les fichiers ici." }
                    @for m in &files_errors { p.error #fichiers-erreur { (capitalise(m)) } }
                }
                // Filled by the script: one block of texts per file chosen.
                ol #fichiers-choisis .file-list hidden {}
                fieldset #textes-communs {
                    legend { "Textes pour tous les fichiers choisis" }
                    @for field in TEXTS {
                        (text_field(&format!("commun-{field}"), field, label(field), help(field),
                            view.upload.get(field).unwrap_or_default(), &error(field)))
                    }
                    (checkbox("commun-plan", "plan", "Ce sont des plans ou dessins (pas des photos)",
                        "Un plan n'a pas besoin de description ; il garde un crédit.", view.upload.get("plan").is_some()))
                    (checkbox("commun-gps", "gps", "Utiliser la position GPS de la photo pour situer la fiche",
                        "Sans cette case, la position enregistrée par l'appareil reste privée : elle n'est ni publiée ni envoyée aux autres offices.",
                        view.upload.get("gps").is_some()))
                }
                div.progress #progression hidden {
                    label for="progression-barre" { "Envoi en cours" }
                    progress #progression-barre max="100" value="0" {}
                    span #progression-texte {}
                }
                p #envoi-annonce .visually-hidden role="status" aria-live="polite" {}
                div.form-actions {
                    button.primary type="submit" { "Ajouter à la fiche" }
                }
            }
        }
    }
}

/// One entry with its texts to change and the link to remove it.
fn entry_form(id: &DocumentId, m: &Media, present: &Presence, view: &View) -> Markup {
    let anchor = entry_anchor(&m.hash);
    let (typed, errors) = match &view.entry {
        Some((h, typed, errors)) if *h == m.hash => (Some(typed), errors.as_slice()),
        _ => (None, &[][..]),
    };
    let error = |field: &str| {
        errors
            .iter()
            .filter(|e| e.field == format!("media.{field}"))
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    };
    let value = |field: &str| match typed {
        Some(t) => t.get(field).unwrap_or_default().to_string(),
        None => text_of(m, field).unwrap_or_default(),
    };
    let action = format!("{}/{}", media_page_path(id), m.hash);
    html! {
        article.media-entry #(anchor) aria-labelledby={ (anchor) "-nom" } {
            div.entry-thumb {
                @if m.kind == MediaKind::Document {
                    span.doc-icon aria-hidden="true" { (type_label(&m.mime)) }
                } @else if let Some((h, size)) = shown(m, atelier_core::media::Tier::Thumb, present) {
                    img src=(crate::media::blob_path(&h)) alt=(m.alt.as_deref().unwrap_or(&m.name)) loading="lazy"
                        width=[size.map(|s| s.0)] height=[size.map(|s| s.1)];
                } @else {
                    (placeholder(m, present))
                }
            }
            div.entry-body {
                h3 #{ (anchor) "-nom" } { (m.name) }
                p.meta { (m.kind.label()) " · " (type_label(&m.mime)) ", " (fr::size(m.bytes))
                    @if let (Some(w), Some(h)) = (m.width, m.height) { " · " (w) " × " (h) " pixels" }
                    @if let Some(c) = &m.credit { " · " (credit_text(c)) }
                }
                @if !errors.is_empty() {
                    div.error-summary role="alert" tabindex="-1" {
                        h2 { "Les textes n'ont pas été enregistrés." }
                    }
                }
                form method="post" action=(action) novalidate {
                    @for field in TEXTS {
                        @if !(field == "alt" && m.kind == MediaKind::Document) {
                            (text_field(&format!("{anchor}-{field}"), field, label(field), help(field), &value(field), &error(field)))
                        }
                    }
                    div.form-actions {
                        button type="submit" { "Enregistrer ces textes" }
                        a.button.danger href={ (action) "/retirer" } { "Retirer de la fiche…" }
                    }
                }
            }
        }
    }
}

/// A labelled text input with its help line and its errors, described by both.
fn text_field(
    id: &str,
    name: &str,
    label: &str,
    help: &str,
    value: &str,
    errors: &[String],
) -> Markup {
    let mut described = vec![format!("{id}-aide")];
    if !errors.is_empty() {
        described.push(format!("{id}-erreur"));
    }
    html! {
        div.field.invalid[!errors.is_empty()] {
            label for=(id) { (label) }
            p.help id={ (id) "-aide" } { (help) }
            @for m in errors { p.error id={ (id) "-erreur" } { (capitalise(m)) } }
            input type="text" id=(id) name=(name) value=(value) maxlength="1000"
                aria-describedby=(described.join(" "))
                aria-invalid=[(!errors.is_empty()).then_some("true")];
        }
    }
}

fn checkbox(id: &str, name: &str, label: &str, help: &str, checked: bool) -> Markup {
    html! {
        div.field.check {
            input type="checkbox" id=(id) name=(name) value="1" checked[checked] aria-describedby={ (id) "-aide" };
            label for=(id) { (label) }
            p.help id={ (id) "-aide" } { (help) }
        }
    }
}

/// The anchor of an entry on the page.
fn entry_anchor(hash: &BlobHash) -> String {
    format!("m-{}", &hash.to_hex()[..16])
}

fn text_of(m: &Media, field: &str) -> Option<String> {
    match field {
        "credit" => m.credit.clone(),
        "caption" => m.caption.clone(),
        "alt" => m.alt.clone(),
        _ => None,
    }
}

fn entry_of(media: &[Media], hash: &BlobHash) -> Result<Media, WebError> {
    media
        .iter()
        .find(|m| m.hash == *hash)
        .cloned()
        .ok_or_else(|| {
            WebError::BadRequest("Ce fichier ne fait pas (ou plus) partie de la fiche.".into())
        })
}

fn parse_hash(hash: &str) -> Result<BlobHash, WebError> {
    hash.parse()
        .map_err(|e: atelier_core::media::BadHash| WebError::BadRequest(e.to_string()))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// « 2 problèmes empêchent l'ajout : rien n'a été ajouté. »
fn summary_sentence(n: usize) -> String {
    if n <= 1 {
        "Rien n'a été ajouté : un point est à corriger.".into()
    } else {
        format!("Rien n'a été ajouté : {n} points sont à corriger.")
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The file N of the upload, with its texts: its own (`credit.N`…) when the script sent them,
/// else the shared ones.
fn new_media(form: &FormData, i: usize, name: String, bytes: Vec<u8>) -> NewMedia {
    let own = |field: &str| form.get(&format!("{field}.{i}"));
    let text = |field: &str| {
        own(field)
            .or_else(|| form.get(field))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    // The script sends every file's boxes as `0` or `1`; an unticked shared box sends nothing.
    let flag = |field: &str| match own(field) {
        Some(v) => v == "1",
        None => form.get(field) == Some("1"),
    };
    NewMedia {
        name,
        bytes,
        plan: flag("plan"),
        credit: text("credit"),
        caption: text("caption"),
        alt: text("alt"),
        use_gps: flag("gps"),
    }
}

/// Core's errors for the script: each on the input of the file it names (`credit.2`,
/// `fichier.0`), or on the files' input when no file is named.
fn per_file_errors(errors: &[FieldError], names: &[String]) -> Vec<FieldError> {
    errors
        .iter()
        .map(|e| {
            let file = names
                .iter()
                .position(|n| e.message.contains(&format!("« {n} »")));
            let input = shared_input(&e.field);
            FieldError {
                field: match file {
                    Some(i) => format!("{input}.{i}"),
                    None => input.to_string(),
                },
                message: e.message.clone(),
            }
        })
        .collect()
}

/// The shared input an error of core's belongs to.
fn shared_input(field: &str) -> &'static str {
    match field {
        "media.credit" => "credit",
        "media.caption" => "caption",
        "media.alt" => "alt",
        _ => "fichier",
    }
}

/// A refused upload, said in French.
struct UploadError(StatusCode, String);

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        let message = ErrorMessage {
            message: self.1,
            fields: Vec::new(),
        };
        let mut response = (self.0, message.message.clone()).into_response();
        response.extensions_mut().insert(message);
        response
    }
}

/// The files (name, bytes) in the order sent, and the text fields.
async fn read_upload(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(Vec<(String, Vec<u8>)>, FormData), UploadError> {
    let too_large = || {
        UploadError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Envoi trop volumineux : {} au plus par envoi. Envoyez les fichiers en plusieurs fois.",
                fr::size(MAX_UPLOAD_BYTES as u64)
            ),
        )
    };
    let unreadable = || {
        UploadError(
            StatusCode::BAD_REQUEST,
            "Le formulaire envoyé n'a pas pu être lu (envoi interrompu ?). Réessayez.".into(),
        )
    };
    let mut multipart = multipart.map_err(|_| unreadable())?;
    let mut files = Vec::new();
    let mut form = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
            Err(_) => return Err(unreadable()),
        };
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(str::to_string) {
            Some(file_name) => {
                let bytes = field.bytes().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        too_large()
                    } else {
                        unreadable()
                    }
                })?;
                // An empty file input still sends one part, nameless and empty.
                if file_name.is_empty() && bytes.is_empty() {
                    continue;
                }
                files.push((file_name, bytes.to_vec()));
            }
            None => {
                let text = field.text().await.map_err(|_| unreadable())?;
                if text.len() > MAX_UPLOAD_TEXT_BYTES {
                    return Err(UploadError(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("Le champ « {name} » est trop long."),
                    ));
                }
                form.push((name, text));
            }
        }
    }
    Ok((files, FormData(form)))
}
