//! What asks for this office's attention: `GET /a-relire` (reviews asked of it), `GET
//! /pour-vous` (reviews, mentions, its open tasks) and `GET /nouveautes` (« Quoi de neuf »:
//! what other offices changed since the last visit, by day then office, in words), with
//! `POST /nouveautes` for « Marquer comme lu ».

use atelier_core::clock::now_ms;
use atelier_core::replica::{ForYou, Replica, ReplicaError, ToReview};
use atelier_core::work::news::{NewsItem, NewsKind};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::{comment_text, group_path, task_path, today};
use crate::error::WebError;
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{kind_badge, resource_path};
use crate::AppState;

/// Characters of a comment shown in « Quoi de neuf » and « Pour vous »: enough to know what
/// it is about, the rest is one click away.
pub const EXCERPT_CHARS: usize = 160;

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

fn review_list(reviews: &[ToReview]) -> Markup {
    html! {
        @if reviews.is_empty() {
            p.empty { "Aucune relecture ne vous est demandée." }
        } @else {
            ul.work-list {
                @for t in reviews {
                    li {
                        (kind_badge(&t.resource.kind)) " "
                        a href={ (resource_path(&t.resource.id)) "#relecture" } { (t.resource.title) }
                        p.meta {
                            "Demandée par " (glossary::office_name(&t.asked.office))
                            @if !t.asked.author.is_empty() { " (" (t.asked.author) ")" }
                            " le " (layout::time(t.asked.at / 1000))
                        }
                        @if !t.asked.comment.is_empty() { p { "« " (t.asked.comment) " »" } }
                    }
                }
            }
        }
    }
}

pub async fn to_review(State(state): State<AppState>) -> Result<Response, WebError> {
    let reviews = state.blocking(|r| Ok(r.to_review()?)).await?;
    let content = html! {
        h1 { "À relire" }
        p.lead { (glossary::WORK_TERMS[5].explanation) }
        div #a-relire data-live-block="" data-watch="*" { (review_list(&reviews)) }
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: "À relire",
            page: "to-review",
            doc: None,
            nav: Nav::ForYou,
        },
        content,
    )
    .into_response())
}

pub async fn for_you(State(state): State<AppState>) -> Result<Response, WebError> {
    let today = today();
    let day = today.clone();
    let f: ForYou = state.blocking(move |r| Ok(r.for_you(&day)?)).await?;
    let content = html! {
        h1 { "Pour vous" }
        p.lead { (glossary::WORK_TERMS[7].explanation) }
        div #pour-vous data-live-block="" data-watch="*" {
            section aria-labelledby="pv-relectures" {
                h2 #pv-relectures { "Relectures demandées à votre office (" (f.reviews.len()) ")" }
                (review_list(&f.reviews))
            }
            section aria-labelledby="pv-mentions" {
                h2 #pv-mentions { "Commentaires qui mentionnent votre office (" (f.mentions.len()) ")" }
                @if f.mentions.is_empty() { p.empty { "Aucun commentaire ne mentionne votre office." } }
                @else {
                    ul.work-list {
                        @for m in &f.mentions {
                            li {
                                a href={ (super::subject_path(&m.subject)) "#commentaire-" (m.comment.id) } { (m.title) }
                                p.meta {
                                    (glossary::office_name(&m.comment.office))
                                    @if !m.comment.author.is_empty() { " (" (m.comment.author) ")" }
                                    " le " (layout::time(m.comment.created_at / 1000))
                                }
                                p.comment-text { (comment_text(&excerpt(&m.comment.text))) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="pv-taches" {
                h2 #pv-taches { "Tâches de votre office (" (f.tasks.len()) ")" }
                @if f.tasks.is_empty() { p.empty { "Aucune tâche en cours pour votre office." } }
                @else {
                    ul.work-list {
                        @for t in &f.tasks {
                            li {
                                a href=(task_path(&t.group, &t.task.id)) { (t.task.title) }
                                " " span.badge.task-status data-status=(t.task.status.code()) { (t.task.status.label()) }
                                @if t.late { " " span.badge.late { "en retard" } }
                                p.meta {
                                    "Groupe " a href=(group_path(&t.group)) { (t.group_name) }
                                    @if let Some(due) = &t.task.due { " · échéance le " (atelier_core::fr::date(due)) }
                                }
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
            title: "Pour vous",
            page: "for-you",
            doc: None,
            nav: Nav::ForYou,
        },
        content,
    )
    .into_response())
}

/// One line of « Quoi de neuf », in words.
struct Line {
    kind: NewsKind,
    title: String,
    href: String,
    /// What changed: field labels, comment excerpts, task titles, review steps.
    what: Vec<String>,
    at: i64,
    changes: usize,
}

/// One day of « Quoi de neuf »: the day, and each office's lines.
type Day = (String, Vec<(String, Vec<Line>)>);

/// What the page shows of one item: where it links, and its details in French.
fn describe(r: &Replica, item: &NewsItem) -> Result<Line, ReplicaError> {
    let (href, what) = match (&item.subject, item.kind) {
        (_, NewsKind::Created) => (resource_path(&item.doc), vec!["nouvelle fiche".to_string()]),
        (_, NewsKind::Edited) => (
            resource_path(&item.doc),
            item.details
                .iter()
                .map(|f| glossary::field_label(f))
                .collect(),
        ),
        (Some(subject), NewsKind::Comment) => {
            let thread = r.thread(subject)?;
            let what = item
                .details
                .iter()
                .map(|id| match thread.as_ref().and_then(|t| t.comment(id)) {
                    Some(c) if c.deleted_at.is_some() => "commentaire supprimé".to_string(),
                    Some(c) => format!("« {} »", excerpt(&c.text)),
                    None => "un commentaire".to_string(),
                })
                .collect();
            (super::subject_path(subject), what)
        }
        (Some(subject), NewsKind::Review) => (
            format!("{}#relecture", super::subject_path(subject)),
            item.details
                .iter()
                .map(|k| {
                    match k.as_str() {
                        "demande" => "relecture demandée",
                        "approbation" => "approuvée",
                        "renvoi" => "renvoyée avec un commentaire",
                        "publication" => "publiée",
                        other => other,
                    }
                    .to_string()
                })
                .collect(),
        ),
        (_, NewsKind::Task) => {
            let g = r.group(&item.doc).ok();
            let what = item
                .details
                .iter()
                .map(|id| match g.as_ref().and_then(|g| g.task(id)) {
                    Some(t) => format!(
                        "tâche « {} » ({})",
                        t.title,
                        t.status.label().to_lowercase()
                    ),
                    None => "une tâche retirée".to_string(),
                })
                .collect();
            (format!("{}/plan", group_path(&item.doc)), what)
        }
        (_, NewsKind::Group) | (None, _) => {
            let g = r.group(&item.doc).ok();
            let what = item
                .details
                .iter()
                .map(|d| match d.as_str() {
                    "created" => "groupe créé".to_string(),
                    "name" => "nom".to_string(),
                    "slogan" => "slogan".to_string(),
                    "action" => "nom de l'action".to_string(),
                    "line" => "ligne éditoriale".to_string(),
                    "members" => "offices membres".to_string(),
                    "publics" => "publics visés".to_string(),
                    "approval_required" => "approbation exigée".to_string(),
                    "resources" => "fiches du groupe".to_string(),
                    id => match g
                        .as_ref()
                        .and_then(|g| g.themes.iter().find(|t| t.id == id))
                    {
                        Some(t) => format!("thème « {} »", t.label),
                        None => "un thème".to_string(),
                    },
                })
                .collect();
            (group_path(&item.doc), what)
        }
    };
    Ok(Line {
        kind: item.kind,
        title: if item.title.is_empty() {
            "(sans titre)".to_string()
        } else {
            item.title.clone()
        },
        href,
        what,
        at: item.at,
        changes: item.changes,
    })
}

/// `?lu=1`: notice after « Marquer comme lu ».
#[derive(Debug, Default, serde::Deserialize)]
pub struct NewsQuery {
    lu: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<NewsQuery>,
) -> Result<Response, WebError> {
    let (since, read_at, days) = state
        .blocking(|r| {
            let now = now_ms();
            let since = r.news_since(now)?;
            let items = r.news(since)?;
            // Day, then office, then the lines: the items come sorted that way.
            let mut days: Vec<Day> = Vec::new();
            for item in &items {
                let line = describe(r, item)?;
                if days.last().is_none_or(|(d, _)| *d != item.day) {
                    days.push((item.day.clone(), Vec::new()));
                }
                let offices = &mut days.last_mut().expect("pushed above").1;
                if offices.last().is_none_or(|(o, _)| *o != item.office) {
                    offices.push((item.office.clone(), Vec::new()));
                }
                offices.last_mut().expect("pushed above").1.push(line);
            }
            Ok((since, r.news_read_at()?, days))
        })
        .await?;
    let total: usize = days
        .iter()
        .flat_map(|(_, o)| o.iter().map(|(_, l)| l.len()))
        .sum();
    let content = html! {
        h1 { "Quoi de neuf" }
        p.lead { (glossary::WORK_TERMS[8].explanation) }
        @if q.lu.is_some() { div.notice.ok role="status" { "Tout est marqué comme lu." } }
        p.meta {
            @match read_at {
                Some(_) => { "Depuis votre dernière visite marquée comme lue, le " (layout::time(since / 1000)) "." }
                None => { "Les 30 derniers jours (vous n'avez encore rien marqué comme lu)." }
            }
        }
        div #nouveautes data-live-block="" data-watch="*" {
            @if days.is_empty() {
                p.empty { "Rien de nouveau de la part des autres offices." }
            } @else {
                p { (atelier_core::fr::count(total as u64, "nouveauté")) }
                @for (day, offices) in &days {
                    section.news-day {
                        h2 { (capital(&super::day_name(day))) }
                        @for (office, lines) in offices {
                            h3 { (glossary::office_name(office)) }
                            ul.work-list.news {
                                @for l in lines {
                                    li {
                                        span.badge.news-kind { (l.kind.label()) } " "
                                        a href=(l.href) { (l.title) }
                                        " " span.meta { "· " (layout::time(l.at / 1000)) @if l.changes > 1 { " · " (l.changes) " enregistrements" } }
                                        @if !l.what.is_empty() {
                                            p.what { (l.what.join(", ")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/nouveautes" {
            button.primary type="submit" { "Marquer comme lu" }
            " "
            span.help { "Seulement sur cet ordinateur : les autres offices ne le voient pas." }
        }
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: "Quoi de neuf",
            page: "news",
            doc: None,
            nav: Nav::News,
        },
        content,
    )
    .into_response())
}

fn capital(s: &str) -> String {
    super::capitalise(s)
}

pub async fn mark_read(State(state): State<AppState>) -> Result<Response, WebError> {
    state.blocking(|r| Ok(r.mark_news_read(now_ms())?)).await?;
    state.counts().news_read();
    Ok(Redirect::to("/nouveautes?lu=1").into_response())
}
