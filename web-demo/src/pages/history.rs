//! `GET /ressources/{id}/historique`: who changed what, when, from which office; and
//! `GET /ressources/{id}/version/{hash}`: the resource as it was just after one change.

use atelier_core::DocumentId;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::error::WebError;
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{article, kind_badge, resource_path, status_badge};
use crate::AppState;

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (id, stored, mut entries) = state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            Ok((id, r.get(&id)?, r.history(&id)?))
        })
        .await?;
    entries.reverse();
    let path = resource_path(&id);
    let title = format!("Historique — {}", stored.resource.title);
    let content = html! {
        p.crumbs { a href=(path) { "← Revenir à la fiche" } }
        h1 { "Historique de « " (stored.resource.title) " »" }
        p.lead { "Chaque ligne est un enregistrement, le plus récent en haut. Cliquez sur « Voir » pour afficher la fiche telle qu'elle était juste après." }
        div #historique {
            table.history {
                thead { tr { th scope="col" { "Date" } th scope="col" { "Office" } th scope="col" { "Ce qui a changé" } th scope="col" { span.visually-hidden { "Version" } } } }
                tbody {
                    @for (i, e) in entries.iter().enumerate() {
                        tr {
                            td { (layout::time(e.time)) }
                            td { (e.office.as_deref().map(glossary::office_name).unwrap_or_else(|| "Application externe".into())) }
                            td {
                                @if e.fields.is_empty() { "—" }
                                @else { (e.fields.iter().map(|f| glossary::field_label(f)).collect::<Vec<_>>().join(", ")) }
                            }
                            td {
                                @if i == 0 { span.current { "Version actuelle" } }
                                @else { a href={ (path) "/version/" (e.hash) } { "Voir" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: &title,
            page: "history",
            doc: Some(id.to_base58()),
            nav: Nav::None,
        },
        content,
    )
    .into_response())
}

pub async fn version(
    State(state): State<AppState>,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (id, stored, entry) = state
        .blocking(move |r| {
            let id: DocumentId = r.resolve(&id)?;
            let entry = r
                .history(&id)?
                .into_iter()
                .find(|e| e.hash == hash)
                .ok_or_else(|| WebError::NotFound(format!("{id}@{hash}")))?;
            Ok((id, r.get_at(&id, std::slice::from_ref(&entry.hash))?, entry))
        })
        .await?;
    let r = &stored.resource;
    let path = resource_path(&id);
    let title = format!("Ancienne version — {}", r.title);
    let content = html! {
        p.crumbs { a href={ (path) "/historique" } { "← Revenir à l'historique" } }
        div.notice.warn role="status" {
            "Vous regardez une ancienne version, enregistrée le " (layout::time(entry.time))
            @if let Some(o) = &entry.office { " par " (glossary::office_name(o)) }
            ". Ce n'est pas la version actuelle. "
            a href=(path) { "Voir la version actuelle" }
        }
        article.old-version {
            header.resource-head {
                div.badges { (kind_badge(&r.kind)) (status_badge(&r.status)) }
                h1 { (r.title) }
                p.meta { (glossary::office_name(&r.office)) }
            }
            (article(r))
        }
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: &title,
            page: "version",
            doc: Some(id.to_base58()),
            nav: Nav::None,
        },
        content,
    )
    .into_response())
}
