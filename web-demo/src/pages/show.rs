//! `GET /ressources/{id}`: one resource, readable: every field with French labels, a map, the
//! last change, and the actions (modifier, historique, supprimer). Refreshed live by the script.

use atelier_core::DocumentId;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::error::WebError;
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::gallery::{gallery, media_page_path, viewer, Presence};
use crate::pages::work::discussion::{resource_sections, ResourceWork};
use crate::pages::work::{author_of, Failed};
use crate::pages::{article, kind_badge, resource_path, status_badge};
use crate::AppState;

/// Notices after a form: `?enregistre=1`, `?cree=1`, `?restauree=1`, `?version_reprise=1`,
/// `?medias_ajoutes=N` (with `&gps=N`: photos whose position was not published).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Notice {
    enregistre: Option<String>,
    cree: Option<String>,
    restauree: Option<String>,
    version_reprise: Option<String>,
    medias_ajoutes: Option<usize>,
    gps: Option<usize>,
    commentaire: Option<String>,
    relecture: Option<String>,
    groupe: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let id = state.blocking(move |r| Ok(r.resolve(&id)?)).await?;
    render(&state, id, Some(notice), author_of(&headers), None).await
}

/// The resource page; with `failed`, a refused review or discussion form drawn again (422).
pub async fn render(
    state: &AppState,
    id: DocumentId,
    notice: Option<Notice>,
    author: String,
    failed: Option<Failed>,
) -> Result<Response, WebError> {
    let notice = notice.unwrap_or_default();
    let (stored, last, present, work) = state
        .blocking(move |r| {
            let stored = r.get(&id)?;
            let last = r.history(&id)?.pop();
            let present = Presence::of(r, &stored.resource.media);
            let work = ResourceWork::load(r, &id)?;
            Ok((stored, last, present, work))
        })
        .await?;
    let me = state.replica().office().to_string();
    let r = &stored.resource;
    let path = resource_path(&id);
    let added = notice.medias_ajoutes.map(|n| match n {
        1 => "1 fichier ajouté à la fiche.".to_string(),
        n => format!("{n} fichiers ajoutés à la fiche."),
    });
    let gps_kept_private = notice.gps.filter(|n| *n > 0).map(|n| {
        let which = if n == 1 { "Une photo contenait" } else { "Des photos contenaient" };
        format!(
            "{which} une position GPS : elle est restée privée. Pour situer la fiche avec, ajoutez la photo en cochant « Utiliser la position GPS de la photo »."
        )
    });
    let message = if let Some(a) = &added {
        Some(a.as_str())
    } else if notice.cree.is_some() {
        Some("La fiche a été créée.")
    } else if notice.enregistre.is_some() {
        Some("Modifications enregistrées.")
    } else if notice.version_reprise.is_some() {
        Some("La fiche a repris les valeurs de l'ancienne version. L'historique garde tout.")
    } else if notice.restauree.is_some() {
        Some("La fiche a été restaurée.")
    } else if notice.commentaire.is_some() {
        Some("Commentaire enregistré.")
    } else if notice.relecture.is_some() {
        Some("Relecture enregistrée.")
    } else if notice.groupe.is_some() {
        Some("La fiche a été ajoutée au groupe.")
    } else {
        None
    };
    let content = html! {
        p.crumbs { a href="/" { "← Toutes les fiches" } }
        @if let Some(m) = message { div.notice.ok role="status" { (m) } }
        @if let Some(m) = &gps_kept_private { div.notice role="status" { (m) } }
        article #fiche {
            @if stored.deleted {
                div.notice.warn role="status" {
                    "Cette fiche a été supprimée : elle n'apparaît plus dans la liste. "
                    form.inline method="post" action={ (path) "/restaurer" } { button type="submit" { "Restaurer la fiche" } }
                }
            }
            header.resource-head {
                div.badges { (kind_badge(&r.kind)) (status_badge(&r.status)) }
                h1 { (r.title) }
                p.meta {
                    (glossary::office_name(&r.office))
                    @if let Some(entry) = &last {
                        " · Dernière modification "
                        (layout::time(entry.time))
                        @if let Some(o) = &entry.office { " par " (glossary::office_name(o)) }
                    }
                }
                div.actions {
                    @if !stored.deleted { a.button.primary href={ (path) "/modifier" } { "Modifier" } }
                    @if !stored.deleted { a.button href=(media_page_path(&id)) { "Photos et documents" } }
                    a.button href={ (path) "/historique" } { "Historique des modifications" }
                    @if !stored.deleted { a.button.danger href={ (path) "/supprimer" } { "Supprimer" } }
                }
            }
            @if let Some(pid) = r.extra.get(atelier_core::replica::PUBLICATION_FIELD).and_then(|v| v.as_str()).and_then(|u| u.parse::<DocumentId>().ok()) {
                @let ppath = crate::pages::work::publications::publication_path(&pid);
                section.notice.publication-link aria-label="Publication assemblée" {
                    "Cette fiche est une publication assemblée dans Atelier. "
                    a href=(ppath) { "Ouvrir l'éditeur" } " · "
                    a href={ (ppath) "/apercu" } { "Aperçu" } " · "
                    a href={ (ppath) "/regenerer" } { "Exporter ou régénérer" }
                }
            }
            (gallery(&id, &r.media, &present, !stored.deleted))
            (article(r))
        }
        @if let Some(w) = &work {
            @if !stored.deleted { (resource_sections(&id, w, &me, &author, failed.as_ref())) }
        }
        (viewer())
    };
    let status = if failed.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        layout::page(
            state,
            PageMeta {
                title: &r.title,
                page: "resource",
                doc: Some(id.to_base58()),
                nav: Nav::None,
            },
            content,
        ),
    )
        .into_response())
}
