//! The HTML pages, in plain French. Each page module renders one screen; this module holds what
//! several share: how a resource's fields read, badges, number and date formats.

pub mod delete;
pub mod edit;
pub mod history;
pub mod lexicon;
pub mod list;
pub mod show;

use atelier_core::document::Stored;
use atelier_core::resource::Resource;
use atelier_core::{vocab, DocumentId};
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
    state
        .blocking(move |r| {
            let id = r.resolve(&id)?;
            Ok((id, r.get(&id)?))
        })
        .await
}

pub fn kind_badge(kind: &str) -> Markup {
    let help = glossary::kind(kind)
        .map(|k| k.explanation)
        .unwrap_or_default();
    html! { span.badge.kind data-kind=(kind) title=(help) { (glossary::kind_name(kind)) } }
}

pub fn status_badge(status: &str) -> Markup {
    html! { span.badge.status data-status=(status) { (glossary::code_label(vocab::STATUSES, status)) } }
}

/// « 2 600 000 », « 12,5 »: French digit grouping and decimal comma.
pub fn fr_number(x: f64) -> String {
    let negative = x < 0.0;
    let whole = x.abs().trunc() as u64;
    let frac = x.abs().fract();
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('\u{202f}');
        }
        grouped.push(c);
    }
    if frac > 0.0 {
        let f = format!("{:.2}", frac);
        grouped.push(',');
        grouped.push_str(f.trim_start_matches("0.").trim_end_matches('0'));
    }
    if negative {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// « 01/05/2024 » from « 2024-05-01 ».
pub fn fr_date(iso: &str) -> String {
    let p: Vec<&str> = iso.split('-').collect();
    match p.as_slice() {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
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
        .map(|c| glossary::code_label(vocabulary, c).to_string())
        .collect()
}

/// Every filled field but title, summary and description, as a definition list.
pub fn details(r: &Resource) -> Markup {
    let year_label = match r.kind.as_str() {
        "realisation" => "Année de livraison",
        "outil" => "Année d'édition",
        "action" => "Année de l'action",
        _ => "Année",
    };
    let opt_label = |vocabulary: &str, v: &Option<String>| {
        v.as_deref()
            .map(|c| glossary::code_label(vocabulary, c).to_string())
    };
    let loc = r.location.clone().unwrap_or_default();
    let lieu = match (&loc.commune, &loc.departement) {
        (Some(c), Some(d)) => Some(format!("{c}, {}", glossary::departement_name(d))),
        (Some(c), None) => Some(c.clone()),
        (None, Some(d)) => Some(glossary::departement_name(d)),
        (None, None) => None,
    };
    let dates = r.dates.as_ref().and_then(|d| match (&d.start, &d.end) {
        (Some(s), Some(e)) if s != e => Some(format!("du {} au {}", fr_date(s), fr_date(e))),
        (Some(s), _) => Some(format!("le {}", fr_date(s))),
        (None, Some(e)) => Some(format!("jusqu'au {}", fr_date(e))),
        _ => None,
    });
    let list_rows: Vec<(&str, Vec<String>)> = vec![
        ("Axes du programme", labels(vocab::AXES, &r.axes)),
        ("Thèmes", labels(vocab::THEMES, &r.themes)),
        (
            "Filières de construction",
            labels(vocab::SECTORS, &r.sectors),
        ),
        ("Matériaux", r.materials.clone()),
        ("Publics", labels(vocab::AUDIENCES, &r.audiences)),
        ("Mots-clés", r.keywords.clone()),
    ];
    let rows: Vec<(&str, Option<String>)> = vec![
        (
            "Type d'action",
            opt_label(vocab::ACTION_TYPES, &r.action_type),
        ),
        ("Type d'outil", opt_label(vocab::TOOL_TYPES, &r.tool_type)),
        ("Dates", dates),
        ("Lieu", lieu),
        ("Code commune INSEE", loc.insee.clone()),
        (year_label, r.year.map(|y| y.to_string())),
        (
            "Nature des travaux",
            opt_label(vocab::INTERVENTIONS, &r.intervention),
        ),
        (
            "Type de bâtiment ou d'espace",
            opt_label(vocab::BUILDING_TYPES, &r.building_type),
        ),
        ("Maître d'ouvrage", r.client.clone()),
        (
            "Coût des travaux",
            r.cost_eur_ht.map(|c| format!("{} € HT", fr_number(c))),
        ),
        (
            "Surface de plancher",
            r.floor_area_m2.map(|a| format!("{} m²", fr_number(a))),
        ),
    ];
    html! {
        dl.details {
            dt { "Type de fiche" }
            dd { (glossary::kind_name(&r.kind)) br; small { (glossary::kind(&r.kind).map(|k| k.explanation).unwrap_or_default()) } }
            dt { "Office" }
            dd { (glossary::office_name(&r.office)) }
            dt { "État" }
            dd { (glossary::code_label(vocab::STATUSES, &r.status)) }
            @for (label, value) in &rows {
                @if let Some(v) = value { dt { (label) } dd { (v) } }
            }
            @if !r.designers.is_empty() {
                dt { "Concepteurs" }
                dd { ul.plain { @for d in &r.designers { li { (d.name) " — " (glossary::code_label(vocab::DESIGNER_ROLES, &d.role)) } } } }
            }
            @for (label, values) in &list_rows {
                @if !values.is_empty() {
                    dt { (label) }
                    dd { ul.tags { @for v in values { li { (v) } } } }
                }
            }
            @if !r.links.is_empty() {
                dt { "Liens" }
                dd { ul.plain { @for l in &r.links { li { a href=(l.url) rel="noopener noreferrer" { (l.label.as_deref().unwrap_or(&l.url)) } } } } }
            }
            @if let Some(reference) = &r.ref_ {
                dt { "Référence externe" }
                dd { code { (reference) } }
            }
            @for (k, v) in &r.extra {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_numbers_and_dates() {
        assert_eq!(fr_number(2_600_000.0), "2\u{202f}600\u{202f}000");
        assert_eq!(fr_number(940.0), "940");
        assert_eq!(fr_number(12.5), "12,5");
        assert_eq!(fr_date("2024-05-01"), "01/05/2024");
    }
}
