//! `GET /ressources/{id}/historique`: who changed what, when, from which office; and
//! `GET /ressources/{id}/version/{hash}`: the resource as it was just after one change.

use atelier_core::document::HistoryEntry;
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
    let groups = group(&entries);
    let path = resource_path(&id);
    let title = format!("Historique — {}", stored.resource.title);
    let content = html! {
        p.crumbs { a href=(path) { "← Revenir à la fiche" } }
        h1 { "Historique de « " (stored.resource.title) " »" }
        p.lead { "Le plus récent en haut. Les enregistrements faits à la suite par un même office sur les mêmes champs (la frappe d'un texte, par exemple) sont regroupés. Cliquez sur « Voir » pour afficher la fiche telle qu'elle était juste après." }
        div #historique {
            table.history {
                thead { tr { th scope="col" { "Date" } th scope="col" { "Office" } th scope="col" { "Ce qui a changé" } th scope="col" { span.visually-hidden { "Version" } } } }
                tbody {
                    @for (i, (e, count)) in groups.iter().enumerate() {
                        tr {
                            td {
                                (layout::time(e.time))
                                @if *count > 1 { br; small.n { "(" (count) " enregistrements)" } }
                            }
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

/// Changes within this many seconds of each other, by one office on the same fields, show as
/// one line: typing a paragraph makes one change per batch of keystrokes.
pub const HISTORY_GROUP_SECONDS: i64 = 300;

/// Consecutive entries (newest first) merged into (newest entry, how many).
fn group(entries: &[HistoryEntry]) -> Vec<(&HistoryEntry, usize)> {
    let mut out: Vec<(&HistoryEntry, usize, i64)> = Vec::new();
    for e in entries {
        match out.last_mut() {
            Some((first, count, oldest))
                if first.office == e.office
                    && first.fields == e.fields
                    && !e.fields.iter().any(|f| f.starts_with('('))
                    && (*oldest - e.time).abs() <= HISTORY_GROUP_SECONDS =>
            {
                *count += 1;
                *oldest = e.time;
            }
            _ => out.push((e, 1, e.time)),
        }
    }
    out.into_iter().map(|(e, n, _)| (e, n)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn e(office: &str, field: &str, time: i64) -> HistoryEntry {
        HistoryEntry {
            hash: format!("{office}{time}"),
            time,
            office: Some(office.into()),
            fields: vec![field.into()],
        }
    }

    #[test]
    fn typing_bursts_show_as_one_line() {
        let entries = [
            e("caue-15", "description", 1000),
            e("caue-15", "description", 990),
            e("caue-15", "description", 980),
            e("caue-63", "description", 970),
            e("caue-63", "title", 960),
            e("caue-63", "title", 100),
            e("caue-63", "(création)", 90),
        ];
        let g: Vec<(String, usize)> = group(&entries)
            .into_iter()
            .map(|(e, n)| (e.hash.clone(), n))
            .collect();
        assert_eq!(
            g,
            [
                ("caue-151000".into(), 3),
                ("caue-63970".into(), 1),
                ("caue-63960".into(), 1),
                ("caue-63100".into(), 1),
                ("caue-6390".into(), 1)
            ]
        );
    }
}
