//! Deletion with confirmation, and restoring. A deleted resource is a tombstone that syncs: it
//! leaves every office's list, keeps its history, and can be restored.

use atelier_core::document::Edit;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::api::delete_resource;
use crate::error::WebError;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{load, resource_path};
use crate::AppState;
use atelier_core::clock::now_ms;

pub async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (id, stored) = load(&state, id).await?;
    let path = resource_path(&id);
    let title = format!("Supprimer — {}", stored.resource.title);
    let content = html! {
        p.crumbs { a href=(path) { "← Revenir à la fiche" } }
        section.confirm {
            h1 { "Supprimer la fiche « " (stored.resource.title) " » ?" }
            p { "Elle disparaîtra de la liste, ici et dans les autres offices après synchronisation." }
            p { "Rien n'est perdu : son historique est gardé et vous pourrez la restaurer depuis « Voir les fiches supprimées », en bas de la liste." }
            form method="post" action={ (path) "/supprimer" } {
                button.danger type="submit" { "Oui, supprimer cette fiche" }
                " "
                a.button href=(path) { "Non, garder la fiche" }
            }
        }
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: &title,
            page: "delete",
            doc: Some(id.to_base58()),
            nav: Nav::None,
        },
        content,
    )
    .into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = delete_resource(&state, id).await?;
    Ok(Redirect::to(&format!("/?supprimee={}", id.to_base58())).into_response())
}

pub async fn restore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (id, _) = state
        .on_resource(id, |r, id| {
            Ok(r.edit(id, &[Edit::SetDeleted(false)], now_ms())?)
        })
        .await?;
    Ok(Redirect::to(&format!("{}?restauree=1", resource_path(&id))).into_response())
}
