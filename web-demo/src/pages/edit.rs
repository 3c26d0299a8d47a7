//! Creating and editing resources.
//!
//! `GET /ressources/nouvelle` asks which kind, explained plainly; `?type=…` shows that kind's
//! form. Editing (`/ressources/{id}/modifier`) shows the same form with the current values; its
//! text fields are edited live by the script (splices, see `live`), and the other fields are
//! saved with the button as a three-way merge: only the fields the person changed since the form
//! was drawn (hidden `version`) are written, so a change made meanwhile by another office to
//! another field is kept.

use atelier_core::document::{changed_fields, Edit};
use atelier_core::resource::{FieldError, Resource};
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde_json::Value;

use crate::error::WebError;
use crate::form::{self, FormView};
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{form_data, resource_path};
use crate::{load_document, AppState};
use atelier_core::clock::now_ms;

#[derive(Debug, Default, serde::Deserialize)]
pub struct NewQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn new_form(State(state): State<AppState>, Query(q): Query<NewQuery>) -> Response {
    let Some(kind) = q.kind.as_deref().and_then(glossary::kind) else {
        return choose_kind(&state).into_response();
    };
    let values = serde_json::json!({
        "kind": kind.code,
        "office": state.replica().office().to_string(),
        "status": "brouillon",
    });
    new_page(&state, kind.code, &values, &[]).into_response()
}

pub async fn create(
    State(state): State<AppState>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let form = form_data(form)?;
    let kind = form
        .get("kind")
        .and_then(glossary::kind)
        .map(|k| k.code)
        .unwrap_or("realisation");
    let mut obj = form::to_json(&form, &form::fields_for(kind));
    obj.insert("kind".into(), Value::from(kind));
    let value = Value::Object(obj);
    let resource = match Resource::from_json(&value) {
        Ok(r) => r,
        Err(e) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                new_page(&state, kind, &value, &e.0),
            )
                .into_response())
        }
    };
    let id = state
        .blocking(move |r| Ok(r.create(&resource, &mut rand::rngs::OsRng, now_ms())?))
        .await?;
    Ok(Redirect::to(&format!("{}?cree=1", resource_path(&id))).into_response())
}

pub async fn edit_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (id, (heads, stored)) = state
        .on_resource(id, |r, id| {
            let mut doc = load_document(r, id)?;
            let heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
            Ok((heads, atelier_core::document::read(&doc)?))
        })
        .await?;
    let values = stored.resource.to_json();
    Ok(edit_page(
        &state,
        &id,
        &stored.resource.kind,
        &heads.join(","),
        &values,
        &[],
    )
    .into_response())
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let form = form_data(form)?;
    let outcome = state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            let version: Vec<String> = form
                .get("version")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            // The version the form was drawn from; the current one if that is unknown.
            let base = match r.get_at(&id, &version) {
                Ok(s) if !version.is_empty() => s,
                _ => r.get(&id)?,
            };
            let drawn_kind = form
                .get("formulaire")
                .and_then(glossary::kind)
                .map(|k| k.code)
                .unwrap_or(base.resource.kind.as_str())
                .to_string();
            let live_text = form.get("texte_en_direct") == Some("1");
            let mut covered = form::fields_for(&drawn_kind);
            covered.push("kind");
            if live_text {
                covered.retain(|f| !matches!(*f, "summary" | "description"));
            }
            let submitted = form::to_json(&form, &covered);
            let mut merged = base.resource.to_json();
            if let Some(obj) = merged.as_object_mut() {
                obj.extend(submitted);
            }
            let wanted = match Resource::from_json(&merged) {
                Ok(w) => w,
                Err(e) => return Ok(Err((id, version.join(","), merged, e.0))),
            };
            let edits: Vec<Edit> = changed_fields(&base.resource, &wanted)
                .into_iter()
                .filter(|f| covered.contains(&f.as_str()))
                .map(|f| Edit::Set {
                    value: merged.get(&f).cloned().unwrap_or(Value::Null),
                    field: f,
                })
                .collect();
            if !edits.is_empty() {
                if let Err(e) = r.edit(&id, &edits, now_ms()) {
                    return match WebError::from(e) {
                        WebError::Invalid(errors) => {
                            Ok(Err((id, version.join(","), merged, errors)))
                        }
                        other => Err(other),
                    };
                }
            }
            Ok(Ok(id))
        })
        .await?;
    match outcome {
        Ok(id) => Ok(Redirect::to(&format!("{}?enregistre=1", resource_path(&id))).into_response()),
        Err((id, version, values, errors)) => {
            let kind = values
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("realisation")
                .to_string();
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                edit_page(&state, &id, &kind, &version, &values, &errors),
            )
                .into_response())
        }
    }
}

fn choose_kind(state: &AppState) -> Markup {
    let content = html! {
        h1 { "Ajouter une fiche" }
        p.lead { "Que voulez-vous décrire ? Choisissez le type de fiche ; vous pourrez le changer ensuite." }
        ul.kinds {
            @for k in glossary::KINDS {
                li {
                    a.kind-choice href={ "/ressources/nouvelle?type=" (k.code) } data-kind=(k.code) {
                        strong { (k.name) }
                        span { (k.explanation) }
                    }
                }
            }
        }
        p { a href="/lexique" { "Un mot n'est pas clair ? Voir le lexique." } }
    };
    layout::page(
        state,
        PageMeta {
            title: "Ajouter une fiche",
            page: "choose",
            doc: None,
            nav: Nav::New,
        },
        content,
    )
}

fn new_page(state: &AppState, kind: &str, values: &Value, errors: &[FieldError]) -> Markup {
    let k = glossary::kind(kind);
    let title = format!("Nouvelle fiche : {}", k.map(|k| k.name).unwrap_or(kind));
    let content = html! {
        p.crumbs { a href="/ressources/nouvelle" { "← Choisir un autre type de fiche" } }
        h1 { (title) }
        @if let Some(k) = k { p.lead { (k.explanation) } }
        p.help { "Seul le titre est obligatoire. Vous pourrez compléter la fiche plus tard." }
        form.resource-form method="post" action="/ressources/nouvelle" novalidate {
            (form::render(&FormView { kind, values, errors, live: false }))
            div.form-actions {
                button.primary type="submit" { "Créer la fiche" }
                a href="/" { "Annuler" }
            }
        }
    };
    layout::page(
        state,
        PageMeta {
            title: &title,
            page: "new",
            doc: None,
            nav: Nav::New,
        },
        content,
    )
}

fn edit_page(
    state: &AppState,
    id: &atelier_core::DocumentId,
    kind: &str,
    version: &str,
    values: &Value,
    errors: &[FieldError],
) -> Markup {
    let path = resource_path(id);
    let name = values
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let title = format!("Modifier — {name}");
    let content = html! {
        p.crumbs { a href=(path) { "← Revenir à la fiche sans enregistrer les autres champs" } }
        h1 { "Modifier « " (name) " »" }
        p.lead {
            "Le résumé et la description s'enregistrent pendant que vous écrivez, et plusieurs personnes peuvent les écrire en même temps. "
            "Pour les autres champs, cliquez sur « Enregistrer » en bas de la page."
        }
        form.resource-form #formulaire method="post" action={ (path) "/modifier" } novalidate {
            input type="hidden" name="version" value=(version);
            input type="hidden" name="formulaire" value=(kind);
            input type="hidden" name="texte_en_direct" value="0";
            (form::render(&FormView { kind, values, errors, live: true }))
            div.form-actions {
                button.primary type="submit" { "Enregistrer" }
                a href=(path) { "Annuler" }
            }
        }
        section.media-link aria-labelledby="medias-titre" {
            h2 #medias-titre { "Photos et documents" }
            p {
                "Les photos, plans et documents PDF s'ajoutent, plusieurs à la fois, avec leur crédit et leur légende, sur une page à part. Enregistrez d'abord ce formulaire si vous y avez changé des champs."
            }
            p { a.button href=(crate::pages::gallery::media_page_path(id)) { "Ajouter ou modifier les photos et documents" } }
        }
    };
    layout::page(
        state,
        PageMeta {
            title: &title,
            page: "edit",
            doc: Some(id.to_base58()),
            nav: Nav::None,
        },
        content,
    )
}
