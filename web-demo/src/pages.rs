//! The HTML pages, in plain French. Each page module renders one screen; this module holds what
//! several share: how a resource's fields read, badges. Numbers and dates are written by
//! `atelier_core::fr`, field labels come from `atelier_core::fields`.

pub mod atlas;
pub mod delete;
pub mod edit;
pub mod export;
pub mod gallery;
pub mod history;
pub mod import;
pub mod lexicon;
pub mod list;
pub mod media;
pub mod show;
pub mod work;

use atelier_core::document::Stored;
use atelier_core::resource::Resource;
use atelier_core::{fields, fr, vocab, DocumentId};
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};

use crate::error::WebError;
use crate::form::FormData;
use crate::glossary;
use crate::AppState;

/// The page path of a resource.
pub fn resource_path(id: &DocumentId) -> String {
    format!("/ressources/{}", id.to_base58())
}

/// A query-string value, percent-encoded (spaces as `+`).
pub fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Fallback for unknown page addresses.
pub async fn not_found(State(state): State<AppState>) -> Response {
    let page = crate::layout::error_page(
        &state,
        StatusCode::NOT_FOUND,
        "Cette page n'existe pas. Elle a peut-être été déplacée.",
    );
    (StatusCode::NOT_FOUND, page).into_response()
}

/// A submitted form, or a French error (too large, unreadable).
pub fn form_data(
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<FormData, WebError> {
    match form {
        Ok(Form(pairs)) => Ok(FormData(pairs)),
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(WebError::TooLarge),
        Err(_) => Err(WebError::BadRequest(
            "Le formulaire envoyé n'a pas pu être lu.".into(),
        )),
    }
}

/// Resolves what is in the address and reads the resource.
pub async fn load(state: &AppState, id: String) -> Result<(DocumentId, Stored), WebError> {
    state.on_resource(id, |r, id| Ok(r.get(id)?)).await
}

pub fn kind_badge(kind: &str) -> Markup {
    let help = glossary::kind(kind)
        .map(|k| k.explanation)
        .unwrap_or_default();
    html! { span.badge.kind data-kind=(kind) title=(help) { (glossary::kind_name(kind)) } }
}

pub fn status_badge(status: &str) -> Markup {
    html! { span.badge.status data-status=(status) { (vocab::label_or_code(vocab::STATUSES, status)) } }
}

/// The description: paragraphs split on blank lines, line breaks kept. Markdown marks are shown
/// as typed (no HTML is ever made from the text).
pub fn paragraphs(text: &str) -> Markup {
    html! {
        @for p in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
            p { (p) }
        }
    }
}

fn labels(vocabulary: &str, codes: &[String]) -> Vec<String> {
    codes
        .iter()
        .map(|c| vocab::label_or_code(vocabulary, c).to_string())
        .collect()
}

/// Every filled field but title, summary and description, as a definition list.
pub fn details(r: &Resource) -> Markup {
    let label = |name: &'static str| fields::field(name).map_or(name, |f| f.label);
    let opt_label = |vocabulary: &str, v: &Option<String>| {
        v.as_deref()
            .map(|c| vocab::label_or_code(vocabulary, c).to_string())
    };
    let amount = |name: &str, x: Option<f64>| fields::field(name).and_then(|f| Some(f.amount(x?)));
    let loc = r.location.clone().unwrap_or_default();
    let lieu = match (&loc.commune, &loc.departement) {
        (Some(c), Some(d)) => Some(format!("{c}, {}", fr::departement_name(d))),
        (Some(c), None) => Some(c.clone()),
        (None, Some(d)) => Some(fr::departement_name(d)),
        (None, None) => None,
    };
    let dates = r
        .dates
        .as_ref()
        .map(|d| fr::date_range(d.start.as_deref(), d.end.as_deref()))
        .filter(|d| !d.is_empty());
    let list_rows: Vec<(&str, Vec<String>)> = vec![
        (label("axes"), labels(vocab::AXES, &r.axes)),
        (label("themes"), labels(vocab::THEMES, &r.themes)),
        (label("sectors"), labels(vocab::SECTORS, &r.sectors)),
        (label("materials"), r.materials.clone()),
        (label("audiences"), labels(vocab::AUDIENCES, &r.audiences)),
        (label("keywords"), r.keywords.clone()),
    ];
    let rows: Vec<(&str, Option<String>)> = vec![
        (
            label("action_type"),
            opt_label(vocab::ACTION_TYPES, &r.action_type),
        ),
        (
            label("tool_type"),
            opt_label(vocab::TOOL_TYPES, &r.tool_type),
        ),
        (label("dates"), dates),
        (label("location"), lieu),
        (label("location.insee"), loc.insee.clone()),
        (fields::year_label(&r.kind), r.year.map(|y| y.to_string())),
        (
            label("intervention"),
            opt_label(vocab::INTERVENTIONS, &r.intervention),
        ),
        (
            label("building_type"),
            opt_label(vocab::BUILDING_TYPES, &r.building_type),
        ),
        (label("client"), r.client.clone()),
        (label("cost_eur_ht"), amount("cost_eur_ht", r.cost_eur_ht)),
        (
            label("floor_area_m2"),
            amount("floor_area_m2", r.floor_area_m2),
        ),
    ];
    html! {
        dl.details {
            dt { (label("kind")) }
            dd { (glossary::kind_name(&r.kind)) br; small { (glossary::kind(&r.kind).map(|k| k.explanation).unwrap_or_default()) } }
            dt { (label("office")) }
            dd { (glossary::office_name(&r.office)) }
            dt { (label("status")) }
            dd { (vocab::label_or_code(vocab::STATUSES, &r.status)) }
            @for (label, value) in &rows {
                @if let Some(v) = value { dt { (label) } dd { (v) } }
            }
            @if !r.designers.is_empty() {
                dt { (label("designers")) }
                dd { ul.plain { @for d in &r.designers { li { (d.name) " — " (vocab::label_or_code(vocab::DESIGNER_ROLES, &d.role)) } } } }
            }
            @for (label, values) in &list_rows {
                @if !values.is_empty() {
                    dt { (label) }
                    dd { ul.tags { @for v in values { li { (v) } } } }
                }
            }
            @if !r.links.is_empty() {
                dt { (label("links")) }
                dd { ul.plain { @for l in &r.links { li { a href=(l.url) rel="noopener noreferrer" { (l.label.as_deref().unwrap_or(&l.url)) } } } } }
            }
            @if let Some(reference) = &r.ref_ {
                dt { (label("ref")) }
                dd { code { (reference) } }
            }
            // A publication's resource names its document: the page links to it instead.
            @for (k, v) in r.extra.iter().filter(|(k, _)| k.as_str() != atelier_core::replica::PUBLICATION_FIELD) {
                dt { (k) }
                dd { (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())) }
            }
        }
    }
}

/// The article of a resource (shared by the resource page and earlier versions).
pub fn article(r: &Resource) -> Markup {
    let loc = r.location.clone().unwrap_or_default();
    let point = loc.lat.zip(loc.lon).map(|(lat, lon)| (lon, lat));
    html! {
        div.article {
            div.text {
                @if !r.summary.is_empty() { p.lead { (r.summary) } }
                @if r.description.is_empty() {
                    p.empty { "Pas encore de description." }
                } @else {
                    section.description { h2 { "Description" } (paragraphs(&r.description)) }
                }
            }
            aside {
                @if let Some(map) = crate::map::render(loc.departement.as_deref(), point) { (map) }
                h2 { "En bref" }
                (details(r))
            }
        }
    }
}
