//! Working together, in pages: groups (`groups`), their plan de charge and tasks (`plan`), the
//! review and discussion of a resource or a task (`discussion`), what asks for this
//! office's attention (`news`: « À relire », « Pour vous », « Quoi de neuf »), and the
//! publications numériques (`publications`).
//!
//! Everything is read and written through `Replica`'s working-together methods; core's
//! `WorkError::field` says which input a refusal belongs next to, and the form is drawn again
//! with what was typed (422), nothing saved. This module holds what the four share: addresses,
//! the form-field frame, the « Votre nom » cookie, mentions, French month and day names.

pub mod discussion;
pub mod groups;
pub mod news;
pub mod plan;
pub mod publications;

use atelier_core::ids::OfficeId;
use atelier_core::replica::ReplicaError;
use atelier_core::resource::FieldError;
use atelier_core::work::thread::Subject;
use atelier_core::DocumentId;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use crate::error::WebError;
use crate::glossary;
use crate::AppState;

/// The routes of the working-together pages (merged into the pages' router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/groupes", get(groups::list).post(groups::create))
        .route("/groupes/{id}", get(groups::home))
        .route(
            "/groupes/{id}/reglages",
            get(groups::settings).post(groups::save_settings),
        )
        .route("/groupes/{id}/plan", get(plan::page).post(plan::add_task))
        .route(
            "/groupes/{id}/taches/{task}",
            get(plan::task_page).post(plan::edit_task),
        )
        .route("/groupes/{id}/taches/{task}/etat", post(plan::set_status))
        .route(
            "/groupes/{id}/taches/{task}/commentaires",
            post(discussion::task_comment),
        )
        .route(
            "/ressources/{id}/commentaires",
            post(discussion::resource_comment),
        )
        .route("/ressources/{id}/relecture", post(discussion::review))
        .route("/ressources/{id}/groupes", post(discussion::add_to_group))
        .route("/a-relire", get(news::to_review))
        .route("/pour-vous", get(news::for_you))
        .route("/nouveautes", get(news::page).post(news::mark_read))
        .route(
            "/publications",
            get(publications::list).post(publications::create),
        )
        .route(
            "/publications/{id}",
            get(publications::editor).post(publications::save),
        )
        .route("/publications/{id}/sections", post(publications::add))
        .route(
            "/publications/{id}/sections/{section}/deplacer",
            post(publications::move_section),
        )
        .route(
            "/publications/{id}/sections/{section}/retirer",
            post(publications::remove_section),
        )
        .route(
            "/publications/{id}/sections/{section}/modifier",
            post(publications::set_section),
        )
        .route("/publications/{id}/apercu", get(publications::preview))
        .route(
            "/publications/{id}/exporter",
            post(publications::export_download),
        )
        .route(
            "/publications/{id}/regenerer",
            get(publications::regenerate),
        )
}

/// The page of a group.
pub fn group_path(id: &DocumentId) -> String {
    format!("/groupes/{}", id.to_base58())
}

/// The page of a task.
pub fn task_path(group: &DocumentId, task: &str) -> String {
    format!("{}/taches/{task}", group_path(group))
}

/// The page where a thread's subject is shown.
pub fn subject_path(subject: &Subject) -> String {
    match subject {
        Subject::Resource(id) => crate::pages::resource_path(id),
        Subject::Task { group, task } => task_path(group, task),
    }
}

/// A refused form: which form, what was typed, and the messages by field.
#[derive(Debug, Default, Clone)]
pub struct Failed {
    /// The form's name (its hidden `formulaire` value, or the route's own).
    pub form: String,
    pub data: crate::form::FormData,
    pub errors: Vec<FieldError>,
}

impl Failed {
    /// The values and errors for the form `form`, if it is the one that failed.
    pub fn of(failed: Option<&Failed>, form: &str) -> (crate::form::FormData, Vec<FieldError>) {
        match failed {
            Some(f) if f.form == form => (f.data.clone(), f.errors.clone()),
            _ => Default::default(),
        }
    }
}

/// An edit's outcome: done, or refused with messages for the form's fields. A refusal that
/// belongs to no field (a non-member, a missing group) stays an error page.
pub fn checked<T>(result: Result<T, ReplicaError>) -> Result<Result<T, Vec<FieldError>>, WebError> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) => match WebError::from(e) {
            WebError::Invalid(errors) => Ok(Err(errors)),
            other => Err(other),
        },
    }
}

/// This office, as stored.
pub fn me(state: &AppState) -> String {
    state.replica().office().to_string()
}

/// The `id` of an input of form `form`.
pub fn input_id(form: &str, name: &str) -> String {
    format!("{form}-{name}")
}

/// How an input is drawn.
pub enum Input<'a> {
    Text { value: &'a str, required: bool },
    Area { value: &'a str, rows: u32 },
}

/// Label, one-line help (from `glossary::work_field`), the error messages, and the input.
pub fn field(form: &str, name: &str, input: Input<'_>, errors: &[FieldError]) -> Markup {
    field_labelled(form, name, glossary::work_field(name).0, input, errors)
}

/// [`field`] with a label of its own.
pub fn field_labelled(
    form: &str,
    name: &str,
    label: &str,
    input: Input<'_>,
    errors: &[FieldError],
) -> Markup {
    let help = glossary::work_field(name).1;
    let id = input_id(form, name);
    let mine: Vec<&FieldError> = errors.iter().filter(|e| e.field == name).collect();
    let mut described = Vec::new();
    if !help.is_empty() {
        described.push(format!("{id}-aide"));
    }
    if !mine.is_empty() {
        described.push(format!("{id}-erreur"));
    }
    let described = described.join(" ");
    let invalid = (!mine.is_empty()).then_some("true");
    html! {
        div.field.invalid[!mine.is_empty()] {
            label for=(id) { (label) }
            @if !help.is_empty() { p.help id={ (id) "-aide" } { (help) } }
            @for e in &mine { p.error id={ (id) "-erreur" } { (capitalise(&e.message)) } }
            @match input {
                Input::Text { value, required } => {
                    input type="text" id=(id) name=(name) value=(value) required[required]
                        aria-invalid=[invalid] aria-describedby=(described);
                }
                Input::Area { value, rows } => {
                    textarea id=(id) name=(name) rows=(rows) aria-invalid=[invalid] aria-describedby=(described) { (value) }
                }
            }
        }
    }
}

/// « Rien n'a été enregistré » and the list of what to correct, at the top of a refused form.
pub fn error_summary(form: &str, errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" tabindex="-1" id={ (form) "-erreurs" } {
                h2 { "Rien n'a été enregistré : " @if errors.len() == 1 { "un point est à corriger." } @else { (errors.len()) " points sont à corriger." } }
                ul {
                    @for e in errors {
                        @let label = glossary::work_field(&e.field).0;
                        li {
                            a href={ "#" (input_id(form, &e.field)) } { (if label.is_empty() { e.field.as_str() } else { label }) }
                            " : " (capitalise(&e.message))
                        }
                    }
                }
            }
        }
    }
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Comma-, semicolon- or line-separated values, trimmed, empty ones left out.
pub fn split_list(s: &str) -> Vec<String> {
    s.split([',', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The cookie that remembers « Votre nom » on this computer (not the session: readable by
/// nobody but this server, kept a year).
pub const AUTHOR_COOKIE: &str = "nom_auteur";
/// How long the browser keeps « Votre nom »: a year, so staff type it once.
const AUTHOR_COOKIE_MAX_AGE_S: u32 = 365 * 86_400;

/// « Votre nom » as the browser remembers it.
pub fn author_of(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == AUTHOR_COOKIE)
        .map(|(_, value)| percent_decode(value))
        .unwrap_or_default()
}

/// The `Set-Cookie` header that remembers `name` (at most core's name length).
pub fn author_cookie(name: &str) -> Option<(header::HeaderName, HeaderValue)> {
    let name: String = name
        .trim()
        .chars()
        .take(atelier_core::work::MAX_NAME_CHARS)
        .collect();
    let value = format!(
        "{AUTHOR_COOKIE}={}; Path=/; Max-Age={AUTHOR_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict",
        crate::pages::encode_query(&name)
    );
    HeaderValue::from_str(&value)
        .ok()
        .map(|v| (header::SET_COOKIE, v))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A comment's text with its mentions of real offices (« @caue-15 ») highlighted; everything
/// else as typed (escaped by maud), line breaks kept by the style.
pub fn comment_text(text: &str) -> Markup {
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut rest = 0;
    for (i, _) in text.match_indices('@') {
        if i < rest {
            continue;
        }
        let word_len: usize = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .map(char::len_utf8)
            .sum();
        let word = &text[i + 1..i + 1 + word_len];
        if word_len == 0 || word.parse::<OfficeId>().is_err() {
            continue;
        }
        parts.push((false, &text[rest..i]));
        parts.push((true, &text[i..i + 1 + word_len]));
        rest = i + 1 + word_len;
    }
    parts.push((false, &text[rest..]));
    html! {
        @for (mention, part) in parts {
            @if mention {
                mark.mention title=(glossary::office_name(&part[1..])) { (part) }
            } @else {
                (part)
            }
        }
    }
}

use atelier_core::fr::MONTHS;
const WEEKDAYS: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];

/// « mars 2027 » for `2027-03`; the text itself if it is not a month.
pub fn month_name(ym: &str) -> String {
    atelier_core::fr::month(ym)
}

/// « dimanche 6 décembre 2026 » for `2026-12-06`; the text itself if it is not a date.
pub fn day_name(day: &str) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(day, &format) {
        Ok(d) => format!(
            "{} {} {} {}",
            WEEKDAYS[d.weekday().number_days_from_monday() as usize],
            d.day(),
            MONTHS[u8::from(d.month()) as usize - 1],
            d.year()
        ),
        Err(_) => day.to_string(),
    }
}

/// Today, `YYYY-MM-DD` (UTC), from the clock: what « en retard » compares with.
pub fn today() -> String {
    atelier_core::work::news::day_of(atelier_core::clock::now_ms())
}

/// The words of a public: the audience's label, or the group's own words as they are.
pub fn public_label(public: &str) -> String {
    atelier_core::vocab::label(atelier_core::vocab::AUDIENCES, public)
        .map(str::to_string)
        .unwrap_or_else(|| public.to_string())
}

/// A `vocabulary:code` theme value in words (« Filière : Terre crue »).
pub fn theme_value_label(value: &str) -> String {
    match value.split_once(':') {
        Some((vocabulary, code)) => {
            atelier_core::vocab::label_or_code(vocabulary, code).to_string()
        }
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_of_real_offices_are_marked_and_the_rest_escaped() {
        let html = comment_text("Vu <b>, @caue-15 et @personne, mail a@b").into_string();
        assert!(
            html.contains("<mark class=\"mention\" title=\"CAUE du Cantal\">@caue-15</mark>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;"), "{html}");
        assert!(!html.contains(">@personne<"), "{html}");
    }

    #[test]
    fn french_months_days_and_cookie_values() {
        assert_eq!(month_name("2027-03"), "mars 2027");
        assert_eq!(day_name("2026-12-06"), "dimanche 6 décembre 2026");
        assert_eq!(percent_decode("Marie+L%C3%A9a"), "Marie Léa");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
