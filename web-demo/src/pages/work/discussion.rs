//! The discussion of a resource or a task (comments with replies, « modifié » with the earlier
//! texts, « commentaire supprimé », mentions highlighted, one's own comments edited or
//! deleted), the review panel of a resource (asked of whom, approved or sent back, published)
//! and « Ajouter à un groupe »; the forms post here and come back to the subject's page.

use atelier_core::card::ListingEntry;
use atelier_core::clock::now_ms;
use atelier_core::replica::{GroupSummary, Replica, ReplicaError};
use atelier_core::resource::FieldError;
use atelier_core::work::group::{Group, GroupEdit};
use atelier_core::work::thread::{Comment, NewComment, ReviewKind, Subject, Thread};
use atelier_core::DocumentId;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};

use super::{
    author_cookie, author_of, checked, comment_text, error_summary, field, group_path,
    subject_path, Failed, Input,
};
use crate::error::WebError;
use crate::form::FormData;
use crate::glossary;
use crate::layout;
use crate::pages::form_data;
use crate::AppState;

/// Replies nest this deep on the page; deeper ones line up at this depth (a phone's width
/// would otherwise be eaten by indentation).
pub const MAX_REPLY_DEPTH: usize = 4;

/// The discussion of `subject`: the thread (live) and the form for a new comment. `base` is
/// the subject's page; forms post to `{base}/commentaires`.
pub fn thread_section(
    subject: &Subject,
    base: &str,
    thread: Option<&Thread>,
    me: &str,
    author: &str,
    failed: Option<&Failed>,
) -> Markup {
    let action = format!("{base}/commentaires");
    let comments: &[Comment] = thread.map(|t| t.comments.as_slice()).unwrap_or_default();
    let roots: Vec<&Comment> = comments
        .iter()
        .filter(|c| {
            c.parent
                .as_ref()
                .is_none_or(|p| !comments.iter().any(|x| &x.id == p))
        })
        .collect();
    let f = "commentaire";
    let (data, errors) = Failed::of(failed, f);
    let ours = failed.is_some_and(|x| x.form == f);
    let author_value = if ours {
        data.get("author").unwrap_or_default().to_string()
    } else {
        author.to_string()
    };
    html! {
        section.discussion #discussion aria-labelledby="discussion-titre" {
            h2 #discussion-titre { "Discussion" }
            div #fil data-live-block="" data-watch=(subject.thread_id().to_base58()) {
                @if comments.is_empty() {
                    p.empty { "Pas encore de commentaire." }
                } @else {
                    p.meta { (atelier_core::fr::count(comments.len() as u64, "commentaire")) }
                    ol.thread {
                        @for c in &roots { (comment(c, comments, 0, &action, me, author, failed)) }
                    }
                }
            }
            form.comment-form method="post" action=(action) novalidate {
                input type="hidden" name="action" value="ajouter";
                h3 { "Ajouter un commentaire" }
                (error_summary(f, &errors))
                (field(f, "author", Input::Text { value: &author_value, required: false }, &errors))
                (field(f, "text", Input::Area { value: data.get("text").unwrap_or_default(), rows: 4 }, &errors))
                div.form-actions { button.primary type="submit" { "Publier le commentaire" } }
            }
        }
    }
}

fn comment(
    c: &Comment,
    all: &[Comment],
    depth: usize,
    action: &str,
    me: &str,
    author: &str,
    failed: Option<&Failed>,
) -> Markup {
    let replies: Vec<&Comment> = all
        .iter()
        .filter(|x| x.parent.as_deref() == Some(c.id.as_str()))
        .collect();
    let reply_form = format!("reponse-{}", c.id);
    let edit_form = format!("modifier-{}", c.id);
    let (reply_data, reply_errors) = Failed::of(failed, &reply_form);
    let (edit_data, edit_errors) = Failed::of(failed, &edit_form);
    let editing = failed.is_some_and(|f| f.form == edit_form);
    let own = c.office == me && c.deleted_at.is_none();
    html! {
        li.comment id={ "commentaire-" (c.id) } {
            article {
                header.comment-head {
                    strong { (glossary::office_name(&c.office)) }
                    @if !c.author.is_empty() { " — " (c.author) }
                    " · " (layout::time(c.created_at / 1000))
                    @if c.edited() && c.deleted_at.is_none() { " · " span.badge.edited { "modifié" } }
                }
                @if let Some(at) = c.deleted_at {
                    p.deleted { "commentaire supprimé" " (" (layout::time(at / 1000)) ")" }
                } @else {
                    p.comment-text { (comment_text(&c.text)) }
                }
                @if c.versions.len() > 1 || (c.deleted_at.is_some() && !c.versions.is_empty()) {
                    @let earlier = if c.deleted_at.is_some() { &c.versions[..] } else { &c.versions[..c.versions.len() - 1] };
                    details.versions {
                        summary { "Versions précédentes (" (earlier.len()) ")" }
                        ol {
                            @for (text, at) in earlier {
                                li { (layout::time(at / 1000)) " : " span.comment-text { (comment_text(text)) } }
                            }
                        }
                    }
                }
                div.comment-actions {
                    details.reply open[!reply_errors.is_empty()] {
                        summary { "Répondre" span.visually-hidden { " à " (glossary::office_name(&c.office)) } }
                        form method="post" action=(action) novalidate {
                            input type="hidden" name="action" value="ajouter";
                            input type="hidden" name="parent" value=(c.id);
                            (error_summary(&reply_form, &reply_errors))
                            (field(&reply_form, "author", Input::Text { value: if reply_errors.is_empty() { author } else { reply_data.get("author").unwrap_or_default() }, required: false }, &reply_errors))
                            (field(&reply_form, "text", Input::Area { value: reply_data.get("text").unwrap_or_default(), rows: 3 }, &reply_errors))
                            button.primary type="submit" { "Répondre" }
                        }
                    }
                    @if own {
                        details.edit open[editing] {
                            summary { "Modifier" span.visually-hidden { " ce commentaire" } }
                            form method="post" action=(action) novalidate {
                                input type="hidden" name="action" value="modifier";
                                input type="hidden" name="comment" value=(c.id);
                                (error_summary(&edit_form, &edit_errors))
                                (field(&edit_form, "text", Input::Area { value: if editing { edit_data.get("text").unwrap_or_default() } else { &c.text }, rows: 3 }, &edit_errors))
                                p.help { "Le texte d'avant reste visible dans « Versions précédentes »." }
                                button.primary type="submit" { "Enregistrer" }
                            }
                        }
                        form.inline method="post" action=(action) {
                            input type="hidden" name="action" value="supprimer";
                            input type="hidden" name="comment" value=(c.id);
                            button.link type="submit" { "Supprimer" span.visually-hidden { " ce commentaire" } }
                        }
                    }
                }
            }
            @if !replies.is_empty() {
                ol.thread.replies.flat[depth + 1 >= MAX_REPLY_DEPTH] {
                    @for r in &replies { (comment(r, all, (depth + 1).min(MAX_REPLY_DEPTH), action, me, author, failed)) }
                }
            }
        }
    }
}

/// What a comment form asks: done (the comment's anchor) or refused (which form, messages).
fn apply_comment(
    r: &Replica,
    subject: &Subject,
    data: &FormData,
) -> Result<Result<String, (String, Vec<FieldError>)>, WebError> {
    let text = data.get("text").unwrap_or_default().replace("\r\n", "\n");
    let target = data.get("comment").unwrap_or_default().to_string();
    match data.get("action").unwrap_or("ajouter") {
        "ajouter" => {
            let parent = data
                .get("parent")
                .filter(|p| !p.is_empty())
                .map(str::to_string);
            let form = match &parent {
                Some(p) => format!("reponse-{p}"),
                None => "commentaire".to_string(),
            };
            let new = NewComment {
                parent,
                author: data.get("author").unwrap_or_default().to_string(),
                text,
            };
            Ok(
                checked(r.comment(subject, &new, &mut rand::rngs::OsRng, now_ms()))?
                    .map_err(|e| (form, e)),
            )
        }
        "modifier" => Ok(checked(r.edit_comment(subject, &target, &text, now_ms()))?
            .map(|_| target.clone())
            .map_err(|e| (format!("modifier-{target}"), e))),
        "supprimer" => {
            r.delete_comment(subject, &target, now_ms())?;
            Ok(Ok(target))
        }
        other => Err(WebError::BadRequest(format!(
            "action de commentaire inconnue : « {other} »"
        ))),
    }
}

/// After a comment: back to the subject, at the comment; « Votre nom » remembered.
fn commented(subject: &Subject, anchor: &str, data: &FormData) -> Response {
    let to = format!(
        "{}?commentaire=1#commentaire-{anchor}",
        subject_path(subject)
    );
    let mut response = Redirect::to(&to).into_response();
    if let Some(name) = data.get("author").filter(|a| !a.trim().is_empty()) {
        if let Some((k, v)) = author_cookie(name) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

pub async fn resource_comment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let submitted = data.clone();
    let (rid, outcome) = state
        .on_resource(id, move |r, id| {
            apply_comment(r, &Subject::Resource(*id), &data)
        })
        .await?;
    match outcome {
        Ok(anchor) => Ok(commented(&Subject::Resource(rid), &anchor, &submitted)),
        Err((form, errors)) => {
            let failed = Failed {
                form,
                data: submitted,
                errors,
            };
            crate::pages::show::render(&state, rid, None, author_of(&headers), Some(failed)).await
        }
    }
}

pub async fn task_comment(
    State(state): State<AppState>,
    Path((id, task)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let submitted = data.clone();
    let (gid_text, t) = (id.clone(), task.clone());
    let (subject, outcome) = state
        .blocking(move |r| {
            let group = r.resolve_group(&id)?;
            let subject = Subject::Task { group, task: t };
            let outcome = apply_comment(r, &subject, &data)?;
            Ok((subject, outcome))
        })
        .await?;
    match outcome {
        Ok(anchor) => Ok(commented(&subject, &anchor, &submitted)),
        Err((form, errors)) => {
            let failed = Failed {
                form,
                data: submitted,
                errors,
            };
            super::plan::render_task_failed(&state, gid_text, task, author_of(&headers), failed)
                .await
        }
    }
}

/// What the resource page shows of the resource's place in working together.
pub struct ResourceWork {
    pub entry: ListingEntry,
    pub thread: Option<Thread>,
    /// The groups the resource belongs to.
    pub groups: Vec<(DocumentId, Group)>,
    /// Groups this office is a member of that the resource is not in (« Ajouter à un groupe »).
    pub addable: Vec<GroupSummary>,
}

impl ResourceWork {
    pub fn load(r: &Replica, id: &DocumentId) -> Result<Option<Self>, ReplicaError> {
        let Some(entry) = r.listing(id)? else {
            return Ok(None);
        };
        let thread = r.thread(&Subject::Resource(*id))?;
        let groups = r.groups_of(&entry)?;
        let me = r.office().to_string();
        let addable = r
            .groups()?
            .into_iter()
            .filter(|g| g.members.contains(&me) && !groups.iter().any(|(id, _)| *id == g.id))
            .collect();
        Ok(Some(Self {
            entry,
            thread,
            groups,
            addable,
        }))
    }
}

/// The review panel, the resource's groups, and its discussion.
pub fn resource_sections(
    id: &DocumentId,
    w: &ResourceWork,
    me: &str,
    author: &str,
    failed: Option<&Failed>,
) -> Markup {
    let base = crate::pages::resource_path(id);
    let subject = Subject::Resource(*id);
    html! {
        div.work-sections {
            (review_panel(id, w, me, author, failed))
            (groups_panel(id, w, failed))
        }
        (thread_section(&subject, &base, w.thread.as_ref(), me, author, failed))
    }
}

fn who(office: &str, author: &str) -> Markup {
    html! {
        (glossary::office_name(office))
        @if !author.is_empty() { " (" (author) ")" }
    }
}

fn review_panel(
    id: &DocumentId,
    w: &ResourceWork,
    me: &str,
    author: &str,
    failed: Option<&Failed>,
) -> Markup {
    let action = format!("{}/relecture", crate::pages::resource_path(id));
    let state = w.thread.as_ref().map(|t| t.review()).unwrap_or_default();
    let events = w
        .thread
        .as_ref()
        .map(|t| t.reviews.as_slice())
        .unwrap_or_default();
    let asked_me = state.asked_to() == Some(me);
    let strict: Vec<&str> = w
        .groups
        .iter()
        .filter(|(_, g)| g.approval_required)
        .map(|(_, g)| g.name.as_str())
        .collect();
    // Offices to suggest for a review: the other members of the resource's groups.
    let mut suggested: Vec<String> = w
        .groups
        .iter()
        .flat_map(|(_, g)| g.members.iter().cloned())
        .filter(|m| m != me)
        .collect();
    suggested.sort();
    suggested.dedup();
    let (ask_data, ask_errors) = Failed::of(failed, "relecture-demande");
    let (decide_data, decide_errors) = Failed::of(failed, "relecture-decision");
    let (_, publish_errors) = Failed::of(failed, "publication");
    let name_or = |data: &FormData, errors: &[FieldError]| {
        if errors.is_empty() {
            author.to_string()
        } else {
            data.get("author").unwrap_or_default().to_string()
        }
    };
    html! {
        section.review #relecture aria-labelledby="relecture-titre" data-live-block=""
            data-watch={ (id.to_base58()) " " (Subject::Resource(*id).thread_id().to_base58()) } {
            h2 #relecture-titre { "Relecture" }
            p.review-state {
                "État de la fiche : " (crate::pages::status_badge(&w.entry.status))
            }
            @if let Some(a) = &state.asked {
                p.notice {
                    "Relecture demandée à " strong { (a.to.as_deref().map(glossary::office_name).unwrap_or_default()) }
                    " par " (who(&a.office, &a.author)) " le " (layout::time(a.at / 1000)) "."
                    @if !a.comment.is_empty() { br; "« " (a.comment) " »" }
                }
            }
            @if let Some(a) = &state.approved {
                p.notice.ok { "Approuvée par " (who(&a.office, &a.author)) " le " (layout::time(a.at / 1000)) "." @if !a.comment.is_empty() { br; "« " (a.comment) " »" } }
            }
            @if let Some(a) = &state.returned {
                p.notice.warn { "Renvoyée par " (who(&a.office, &a.author)) " le " (layout::time(a.at / 1000)) " : « " (a.comment) " »" }
            }
            @if let Some(a) = &state.published {
                p.meta { "Publiée par " (who(&a.office, &a.author)) " le " (layout::time(a.at / 1000)) "." }
            }
            @if !strict.is_empty() {
                p.help { "Le groupe « " (strict.join(" », « ")) " » demande l'approbation d'un autre office avant publication." }
            }
            @if asked_me {
                form.review-decision method="post" action=(action) novalidate {
                    h3 { "Votre relecture" }
                    (error_summary("relecture-decision", &decide_errors))
                    (field("relecture-decision", "author", Input::Text { value: &name_or(&decide_data, &decide_errors), required: false }, &decide_errors))
                    (field("relecture-decision", "comment", Input::Area { value: decide_data.get("comment").unwrap_or_default(), rows: 3 }, &decide_errors))
                    div.form-actions {
                        button.primary type="submit" name="decision" value="approuver" { "Approuver" }
                        button type="submit" name="decision" value="renvoyer" { "Renvoyer avec un commentaire" }
                    }
                }
            }
            details.review-ask open[!ask_errors.is_empty()] {
                summary { "Demander une relecture" }
                form method="post" action=(action) novalidate {
                    input type="hidden" name="decision" value="demander";
                    (error_summary("relecture-demande", &ask_errors))
                    (field("relecture-demande", "to", Input::Text { value: ask_data.get("to").unwrap_or_default(), required: true }, &ask_errors))
                    @if !suggested.is_empty() {
                        p.help { "Offices des groupes de la fiche : " (suggested.join(", ")) "." }
                    }
                    (field("relecture-demande", "author", Input::Text { value: &name_or(&ask_data, &ask_errors), required: false }, &ask_errors))
                    (field("relecture-demande", "comment", Input::Area { value: ask_data.get("comment").unwrap_or_default(), rows: 2 }, &ask_errors))
                    button.primary type="submit" { "Demander une relecture" }
                }
            }
            @if w.entry.status != "publie" {
                form.publish method="post" action=(action) {
                    input type="hidden" name="decision" value="publier";
                    input type="hidden" name="author" value=(author);
                    @for e in &publish_errors { p.error id="publication-erreur" role="alert" { (super::capitalise(&e.message)) } }
                    button type="submit" aria-describedby=[(!publish_errors.is_empty()).then_some("publication-erreur")] { "Publier" }
                }
            }
            @if !events.is_empty() {
                details.review-history {
                    summary { "Historique de la relecture (" (events.len()) ")" }
                    ol {
                        @for e in events {
                            li {
                                (layout::time(e.at / 1000)) " — " (who(&e.office, &e.author)) " : " (e.kind.label())
                                @if e.kind == ReviewKind::Demande { @if let Some(to) = &e.to { " à " (glossary::office_name(to)) } }
                                @if !e.comment.is_empty() { " — « " (e.comment) " »" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn groups_panel(id: &DocumentId, w: &ResourceWork, failed: Option<&Failed>) -> Markup {
    let (_, errors) = Failed::of(failed, "groupe");
    html! {
        section.resource-groups #groupes aria-labelledby="groupes-titre" {
            h2 #groupes-titre { "Groupes de travail" }
            @if w.groups.is_empty() {
                p.empty { "La fiche n'est dans aucun groupe." }
            } @else {
                ul.plain {
                    @for (gid, g) in &w.groups {
                        li { a href=(group_path(gid)) { (g.name) } }
                    }
                }
            }
            @if !w.addable.is_empty() {
                form method="post" action={ (crate::pages::resource_path(id)) "/groupes" } {
                    @let (label, help) = glossary::work_field("group");
                    div.field {
                        label for="groupe-group" { (label) }
                        p.help id="groupe-group-aide" { (help) }
                        @for e in &errors { p.error { (super::capitalise(&e.message)) } }
                        select #groupe-group name="group" aria-describedby="groupe-group-aide" {
                            @for g in &w.addable { option value=(g.id.to_base58()) { (g.name) } }
                        }
                    }
                    button type="submit" { "Ajouter à un groupe" }
                }
            }
        }
    }
}

pub async fn review(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let submitted = data.clone();
    let (rid, outcome) = state
        .on_resource(id, move |r, id| {
            let author = data.get("author").unwrap_or_default().to_string();
            let comment = data
                .get("comment")
                .unwrap_or_default()
                .replace("\r\n", "\n");
            let rng = &mut rand::rngs::OsRng;
            let (form, result) = match data.get("decision").unwrap_or_default() {
                "demander" => (
                    "relecture-demande",
                    r.request_review(
                        id,
                        data.get("to").unwrap_or_default(),
                        &author,
                        &comment,
                        rng,
                        now_ms(),
                    ),
                ),
                "approuver" => (
                    "relecture-decision",
                    r.approve(id, &author, &comment, rng, now_ms()),
                ),
                "renvoyer" => (
                    "relecture-decision",
                    r.send_back(id, &author, &comment, rng, now_ms()),
                ),
                "publier" => ("publication", r.publish(id, &author, rng, now_ms())),
                other => {
                    return Err(WebError::BadRequest(format!(
                        "étape de relecture inconnue : « {other} »"
                    )))
                }
            };
            Ok(checked(result)?.map_err(|e| (form.to_string(), e)))
        })
        .await?;
    match outcome {
        Ok(()) => {
            let mut response = Redirect::to(&format!(
                "{}?relecture=1#relecture",
                crate::pages::resource_path(&rid)
            ))
            .into_response();
            if let Some(name) = submitted.get("author").filter(|a| !a.trim().is_empty()) {
                if let Some((k, v)) = author_cookie(name) {
                    response.headers_mut().append(k, v);
                }
            }
            Ok(response)
        }
        Err((form, errors)) => {
            let failed = Failed {
                form,
                data: submitted,
                errors,
            };
            crate::pages::show::render(&state, rid, None, author_of(&headers), Some(failed)).await
        }
    }
}

pub async fn add_to_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let (rid, _) = state
        .on_resource(id, move |r, id| {
            let gid = r.resolve_group(data.get("group").unwrap_or_default())?;
            r.edit_group(&gid, &[GroupEdit::AddResource(*id)], now_ms())?;
            Ok(())
        })
        .await?;
    Ok(Redirect::to(&format!(
        "{}?groupe=1#groupes",
        crate::pages::resource_path(&rid)
    ))
    .into_response())
}
