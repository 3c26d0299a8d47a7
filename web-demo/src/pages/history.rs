//! `GET /ressources/{id}/historique`: who changed what, when, from which office; and
//! `GET /ressources/{id}/version/{hash}`: the resource as it was just after one change.

use atelier_core::document::{changed_fields, Edit, HistoryEntry};
use atelier_core::DocumentId;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::error::WebError;
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{article, kind_badge, resource_path, status_badge};
use crate::AppState;
use atelier_core::clock::now_ms;

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
                    @for (i, g) in groups.iter().enumerate() {
                        @let e = g.newest;
                        tr {
                            td {
                                (layout::time(e.time))
                                @if g.count > 1 { br; small.n { "(" (g.count) " enregistrements)" } }
                            }
                            td {
                                @for (j, o) in g.offices.iter().enumerate() {
                                    @if j > 0 { br; }
                                    (o.as_deref().map(glossary::office_name).unwrap_or_else(|| "Application externe".into()))
                                }
                            }
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

/// Changes to the same fields within this many seconds of each other show as one line: typing
/// a paragraph makes one change per batch of keystrokes, from each office typing.
pub const HISTORY_GROUP_SECONDS: i64 = 300;

/// One line of the history page.
struct Group<'a> {
    /// The newest change of the group (its version is the one « Voir » shows).
    newest: &'a HistoryEntry,
    count: usize,
    /// Offices in the group, newest first, each once (`None`: a foreign client).
    offices: Vec<Option<String>>,
}

/// Consecutive entries (newest first) on the same fields merged into groups. Creation,
/// deletion and restoration always stand alone.
fn group(entries: &[HistoryEntry]) -> Vec<Group<'_>> {
    let mut out: Vec<(Group<'_>, i64)> = Vec::new();
    for e in entries {
        if let Some((g, oldest)) = out.last_mut() {
            if g.newest.fields == e.fields
                && !e.fields.iter().any(|f| f.starts_with('('))
                && (*oldest - e.time).abs() <= HISTORY_GROUP_SECONDS
            {
                g.count += 1;
                if !g.offices.contains(&e.office) {
                    g.offices.push(e.office.clone());
                }
                *oldest = e.time;
                continue;
            }
        }
        out.push((
            Group {
                newest: e,
                count: 1,
                offices: vec![e.office.clone()],
            },
            e.time,
        ));
    }
    out.into_iter().map(|(g, _)| g).collect()
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
            form.restore method="post" action={ (path) "/version/" (entry.hash) } {
                button type="submit" { "Revenir à cette version" }
                " "
                span.help { "Les champs reprennent ces valeurs ; l'historique garde tout, rien n'est perdu." }
            }
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

/// `POST /ressources/{id}/version/{hash}`: every field takes its value of that version again,
/// as one new change (the history keeps everything in between).
pub async fn restore_version(
    State(state): State<AppState>,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id = state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            if !r.history(&id)?.iter().any(|e| e.hash == hash) {
                return Err(WebError::NotFound(format!("{id}@{hash}")));
            }
            let old = r.get_at(&id, std::slice::from_ref(&hash))?.resource;
            let now = r.get(&id)?.resource;
            let values = old.to_json();
            let edits: Vec<Edit> = changed_fields(&now, &old)
                .into_iter()
                .filter(|f| atelier_core::resource::KNOWN_FIELDS.contains(&f.as_str()))
                .map(|f| Edit::Set {
                    value: values.get(&f).cloned().unwrap_or(serde_json::Value::Null),
                    field: f,
                })
                .collect();
            if !edits.is_empty() {
                r.edit(&id, &edits, now_ms())?;
            }
            Ok(id)
        })
        .await?;
    Ok(Redirect::to(&format!("{}?version_reprise=1", resource_path(&id))).into_response())
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
            e("caue-63", "description", 985),
            e("caue-15", "description", 980),
            e("caue-63", "title", 960),
            e("caue-63", "title", 100),
            e("caue-63", "(création)", 90),
        ];
        let g: Vec<(String, usize, usize)> = group(&entries)
            .into_iter()
            .map(|g| (g.newest.hash.clone(), g.count, g.offices.len()))
            .collect();
        assert_eq!(
            g,
            [
                ("caue-151000".into(), 4, 2),
                ("caue-63960".into(), 1, 1),
                ("caue-63100".into(), 1, 1),
                ("caue-6390".into(), 1, 1)
            ]
        );
    }
}
