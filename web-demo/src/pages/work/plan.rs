//! `GET /groupes/{id}/plan`: the plan de charge, each office's share and the tasks by month,
//! late ones marked (today from the clock), with the add-task form and each task's status
//! changed in place; `GET /groupes/{id}/taches/{task}`: one task, its edit form and its
//! discussion.

use atelier_core::clock::now_ms;
use atelier_core::replica::{Replica, ReplicaError};
use atelier_core::resource::FieldError;
use atelier_core::work::group::{Group, GroupEdit, NewTask, Task, TaskChange, TaskStatus};
use atelier_core::work::thread::{Subject, Thread};
use atelier_core::work::{new_key, WorkError};
use atelier_core::DocumentId;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};

use super::discussion;
use super::groups::{group_head, read_only_notice, shares_table};
use super::{
    checked, error_summary, field, group_path, input_id, me, month_name, task_path, today, Failed,
    Input,
};
use crate::error::WebError;
use crate::form::FormData;
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{form_data, resource_path};
use crate::AppState;

/// The group's hand-added resources offered as checkboxes in a task's form; past this, the
/// « Autre fiche liée » field names one by its reference.
pub const MAX_LINKABLE_SHOWN: usize = 40;

/// `?bureau=caue-15`: only that office's tasks; `?enregistre=1`, `?ajoutee=1`: notices.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PlanQuery {
    bureau: Option<String>,
    enregistre: Option<String>,
    ajoutee: Option<String>,
}

/// What the plan's and the task's pages read.
struct Loaded {
    gid: DocumentId,
    group: Group,
    /// Titles of the resources the tasks link to, and of the group's hand-added ones.
    titles: Vec<(DocumentId, String)>,
}

fn load_sync(r: &Replica, id: &str) -> Result<Loaded, ReplicaError> {
    let gid = r.resolve_group(id)?;
    let group = r.group(&gid)?;
    let mut ids: Vec<DocumentId> = group
        .tasks
        .iter()
        .flat_map(|t| t.resources.iter().copied())
        .chain(group.resources.iter().copied())
        .collect();
    ids.sort();
    ids.dedup();
    let mut titles = Vec::new();
    for id in ids {
        if let Some(e) = r.listing(&id)? {
            if !e.deleted {
                titles.push((id, e.title));
            }
        }
    }
    titles.sort_by_cached_key(|(_, t)| atelier_core::fr::sort_key(t));
    Ok(Loaded { gid, group, titles })
}

fn title_of<'a>(titles: &'a [(DocumentId, String)], id: &DocumentId) -> Option<&'a str> {
    titles
        .iter()
        .find(|(i, _)| i == id)
        .map(|(_, t)| t.as_str())
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PlanQuery>,
) -> Result<Response, WebError> {
    let loaded = state.blocking(move |r| Ok(load_sync(r, &id)?)).await?;
    let notice = if q.ajoutee.is_some() {
        Some("La tâche a été ajoutée au plan de charge.")
    } else if q.enregistre.is_some() {
        Some("Modification enregistrée.")
    } else {
        None
    };
    Ok(plan_page(&state, &loaded, q.bureau.as_deref(), notice, None).into_response())
}

fn plan_page(
    state: &AppState,
    l: &Loaded,
    office: Option<&str>,
    notice: Option<&str>,
    failed: Option<&Failed>,
) -> Markup {
    let g = &l.group;
    let gid = &l.gid;
    let today = today();
    let member = g.is_member(&me(state));
    let path = group_path(gid);
    let months = g.by_month();
    let shown = |t: &Task| office.is_none_or(|o| t.office.as_deref() == Some(o));
    let content = html! {
        (group_head(gid, g, "plan"))
        @if let Some(m) = notice { div.notice.ok role="status" { (m) } }
        @if !member { (read_only_notice(state, g)) }
        p.lead { (glossary::WORK_TERMS[4].explanation) }
        div #plan data-live-block="" data-watch=(gid.to_base58()) {
            @if g.tasks.is_empty() {
                p.empty { "Pas encore de tâche." }
            } @else {
                p { (g.progress()) " % fait · " (atelier_core::fr::count(g.tasks.len() as u64, "tâche")) " · aujourd'hui : " (atelier_core::fr::date(&today)) }
                (shares_table(gid, &g.shares(&today), g.tasks.len()))
                @if let Some(o) = office {
                    p.notice role="status" {
                        "Seules les tâches de " (glossary::office_name(o)) " sont affichées. "
                        a href={ (path) "/plan" } { "Voir toutes les tâches" }
                    }
                }
                @for (month, tasks) in &months {
                    @let tasks: Vec<&&Task> = tasks.iter().filter(|t| shown(t)).collect();
                    @if !tasks.is_empty() {
                        @let heading = month.as_deref().map(month_name).unwrap_or_else(|| "Sans échéance".to_string());
                        @let caption_id = format!("mois-{}", month.as_deref().unwrap_or("sans"));
                        section.month {
                            div.table-scroll role="region" aria-labelledby=(caption_id) tabindex="0" {
                                table.data.tasks {
                                    caption id=(caption_id) { (heading) }
                                    thead { tr {
                                        th scope="col" { "Tâche" }
                                        th scope="col" { "Office" }
                                        th scope="col" { "Personne" }
                                        th scope="col" { "Échéance" }
                                        th scope="col" { "État" }
                                        th scope="col" { "Fiches" }
                                    } }
                                    tbody {
                                        @for t in tasks {
                                            (task_row(gid, t, &today, member, &l.titles))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if member {
            (add_task_form(gid, g, &l.titles, failed))
        }
    };
    let title = format!("Plan de charge — {}", g.name);
    layout::page(
        state,
        PageMeta {
            title: &title,
            page: "plan",
            doc: Some(gid.to_base58()),
            nav: Nav::Groups,
        },
        content,
    )
}

fn task_row(
    gid: &DocumentId,
    t: &Task,
    today: &str,
    member: bool,
    titles: &[(DocumentId, String)],
) -> Markup {
    let late = t.is_late(today);
    html! {
        tr id={ "tache-" (t.id) } .late[late] {
            th scope="row" data-label="Tâche" { a href=(task_path(gid, &t.id)) { (t.title) } }
            td data-label="Office" { (t.office.as_deref().map(glossary::office_name).unwrap_or_else(|| "—".into())) }
            td data-label="Personne" { @if t.person.is_empty() { "—" } @else { (t.person) } }
            td data-label="Échéance" {
                (t.due.as_deref().map(atelier_core::fr::date).unwrap_or_else(|| "—".into()))
                @if late { " " span.badge.late { "en retard" } }
            }
            td data-label="État" {
                @if member {
                    (status_form(gid, t, "plan"))
                } @else {
                    span.badge.task-status data-status=(t.status.code()) { (t.status.label()) }
                }
            }
            td data-label="Fiches" {
                @if t.resources.is_empty() { "—" }
                @else {
                    ul.plain {
                        @for id in &t.resources {
                            li { a href=(resource_path(id)) { (title_of(titles, id).unwrap_or("fiche absente")) } }
                        }
                    }
                }
            }
        }
    }
}

/// The status of a task, changed in place (a select and its button; no script needed).
fn status_form(gid: &DocumentId, t: &Task, back: &str) -> Markup {
    let id = format!("etat-{}-{back}", t.id);
    html! {
        form.status-form method="post" action={ (task_path(gid, &t.id)) "/etat" } {
            input type="hidden" name="retour" value=(back);
            label.visually-hidden for=(id) { "État de « " (t.title) " »" }
            select id=(id) name="status" {
                @for s in TaskStatus::ALL {
                    option value=(s.code()) selected[s == t.status] { (s.label()) }
                }
            }
            button type="submit" { "Changer" span.visually-hidden { " l'état de « " (t.title) " »" } }
        }
    }
}

/// The task form: adding (`task` is `None`) or editing.
fn task_form(
    gid: &DocumentId,
    g: &Group,
    titles: &[(DocumentId, String)],
    task: Option<&Task>,
    failed: Option<&Failed>,
) -> Markup {
    let f = if task.is_some() {
        "tache"
    } else {
        "nouvelle-tache"
    };
    let (data, errors) = Failed::of(failed, f);
    let ours = failed.is_some_and(|x| x.form == f);
    let value = |name: &str, now: &str| {
        if ours {
            data.get(name).unwrap_or_default().to_string()
        } else {
            now.to_string()
        }
    };
    let office_now = if ours {
        data.get("office").unwrap_or_default().to_string()
    } else {
        task.and_then(|t| t.office.clone()).unwrap_or_default()
    };
    let linked: Vec<String> = if ours {
        data.all("resources")
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        task.map(|t| t.resources.iter().map(|r| r.to_base58()).collect())
            .unwrap_or_default()
    };
    let (office_label, office_help) = glossary::work_field("office");
    let office_errors: Vec<&FieldError> = errors.iter().filter(|e| e.field == "office").collect();
    let office_id = input_id(f, "office");
    // The office typed may be one outside the group (refused): it stays selected.
    let mut choices: Vec<String> = g.members.clone();
    if !office_now.is_empty() && !choices.contains(&office_now) {
        choices.push(office_now.clone());
    }
    let action = match task {
        Some(t) => task_path(gid, &t.id),
        None => format!("{}/plan", group_path(gid)),
    };
    let (res_label, res_help) = glossary::work_field("resources");
    let offered: Vec<&(DocumentId, String)> = titles
        .iter()
        .filter(|(id, _)| {
            g.resources.contains(id) || task.is_some_and(|t| t.resources.contains(id))
        })
        .take(MAX_LINKABLE_SHOWN)
        .collect();
    html! {
        form.task-form method="post" action=(action) novalidate {
            (error_summary(f, &errors))
            (field(f, "title", Input::Text { value: &value("title", task.map(|t| t.title.as_str()).unwrap_or_default()), required: true }, &errors))
            div.row {
                div.field.invalid[!office_errors.is_empty()] {
                    label for=(office_id) { (office_label) }
                    p.help id={ (office_id) "-aide" } { (office_help) }
                    @for e in &office_errors { p.error id={ (office_id) "-erreur" } { (super::capitalise(&e.message)) } }
                    select id=(office_id) name="office" aria-invalid=[(!office_errors.is_empty()).then_some("true")]
                        aria-describedby={ (office_id) "-aide" @if !office_errors.is_empty() { " " (office_id) "-erreur" } } {
                        option value="" selected[office_now.is_empty()] { "— personne pour l'instant —" }
                        @for m in &choices {
                            option value=(m) selected[*m == office_now] { (glossary::office_name(m)) " (" (m) ")" }
                        }
                    }
                }
                (field(f, "person", Input::Text { value: &value("person", task.map(|t| t.person.as_str()).unwrap_or_default()), required: false }, &errors))
            }
            div.row {
                (field(f, "due", Input::Text { value: &value("due", task.and_then(|t| t.due.as_deref()).unwrap_or_default()), required: false }, &errors))
                @if task.is_some() {
                    @let current = if ours { data.get("status").unwrap_or_default().to_string() } else { task.map(|t| t.status.code().to_string()).unwrap_or_default() };
                    @let sid = input_id(f, "status");
                    div.field {
                        label for=(sid) { (glossary::work_field("status").0) }
                        p.help id={ (sid) "-aide" } { (glossary::work_field("status").1) }
                        select id=(sid) name="status" aria-describedby={ (sid) "-aide" } {
                            @for s in TaskStatus::ALL { option value=(s.code()) selected[s.code() == current] { (s.label()) } }
                        }
                    }
                }
            }
            fieldset.choices id=(input_id(f, "resources")) {
                legend { (res_label) }
                p.help { (res_help) " Pour en ajouter une au groupe, ouvrez sa page : « Ajouter à un groupe »." }
                @if offered.is_empty() { p.none { "Aucune fiche ajoutée au groupe pour l'instant." } }
                div.options {
                    @for (id, title) in &offered {
                        @let key = id.to_base58();
                        @let cid = format!("{}-{}", input_id(f, "resources"), key);
                        label.option for=(cid) {
                            input type="checkbox" id=(cid) name="resources" value=(key) checked[linked.contains(&key)];
                            " " (title)
                        }
                    }
                }
            }
            (field(f, "resource_ref", Input::Text { value: data.get("resource_ref").unwrap_or_default(), required: false }, &errors))
            div.form-actions {
                button.primary type="submit" { @if task.is_some() { "Enregistrer la tâche" } @else { "Ajouter la tâche" } }
            }
        }
    }
}

fn add_task_form(
    gid: &DocumentId,
    g: &Group,
    titles: &[(DocumentId, String)],
    failed: Option<&Failed>,
) -> Markup {
    html! {
        section.work-form #ajouter aria-labelledby="ajouter-titre" {
            h2 #ajouter-titre { "Ajouter une tâche" }
            (task_form(gid, g, titles, None, failed))
        }
    }
}

/// The resources a task form names: the boxes ticked and « Autre fiche liée ».
fn linked_resources(r: &Replica, data: &FormData) -> Result<Vec<DocumentId>, WorkError> {
    let mut out = Vec::new();
    for key in data.all("resources") {
        if let Ok(id) = key.parse::<DocumentId>() {
            out.push(id);
        }
    }
    let other = data.get("resource_ref").unwrap_or_default().trim();
    if !other.is_empty() {
        let found = r
            .resolve(other)
            .ok()
            .filter(|id| r.listing(id).ok().flatten().is_some());
        match found {
            Some(id) => out.push(id),
            None => {
                return Err(WorkError::Invalid {
                    field: "resource_ref",
                    label: "Autre fiche liée",
                    message: format!(
                    "aucune fiche « {other} » (attendu : sa référence ou son adresse automerge:…)"
                ),
                })
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub async fn add_task(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let submitted = data.clone();
    let (loaded, outcome) = state
        .blocking(move |r| {
            let loaded = load_sync(r, &id)?;
            let outcome = match linked_resources(r, &data) {
                Err(e) => checked(Err(e.into()))?,
                Ok(resources) => {
                    let task = NewTask {
                        title: data.get("title").unwrap_or_default().to_string(),
                        office: data.get("office").map(str::to_string),
                        person: data.get("person").unwrap_or_default().to_string(),
                        due: data.get("due").map(str::to_string),
                        status: None,
                        resources,
                    };
                    let edit = GroupEdit::AddTask {
                        id: new_key(&mut rand::rngs::OsRng),
                        task,
                    };
                    checked(r.edit_group(&loaded.gid, &[edit], now_ms()))?
                }
            };
            Ok((loaded, outcome))
        })
        .await?;
    match outcome {
        Ok(_) => Ok(
            Redirect::to(&format!("{}/plan?ajoutee=1#plan", group_path(&loaded.gid)))
                .into_response(),
        ),
        Err(errors) => {
            let failed = Failed {
                form: "nouvelle-tache".into(),
                data: submitted,
                errors,
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                plan_page(&state, &loaded, None, None, Some(&failed)),
            )
                .into_response())
        }
    }
}

pub async fn set_status(
    State(state): State<AppState>,
    Path((id, task)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let status = TaskStatus::parse(data.get("status").unwrap_or_default())
        .map_err(|e| WebError::BadRequest(super::capitalise(&e.to_string())))?;
    let back = data.get("retour").unwrap_or_default().to_string();
    let t = task.clone();
    let gid = state
        .blocking(move |r| {
            let gid = r.resolve_group(&id)?;
            let edit = GroupEdit::SetTask {
                id: t,
                change: TaskChange::Status(status),
            };
            r.edit_group(&gid, &[edit], now_ms())?;
            Ok(gid)
        })
        .await?;
    let to = if back == "tache" {
        format!("{}?enregistre=1", task_path(&gid, &task))
    } else {
        format!("{}/plan?enregistre=1#tache-{task}", group_path(&gid))
    };
    Ok(Redirect::to(&to).into_response())
}

/// Notices of the task page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct TaskNotice {
    enregistre: Option<String>,
    commentaire: Option<String>,
}

pub async fn task_page(
    State(state): State<AppState>,
    Path((id, task)): Path<(String, String)>,
    Query(n): Query<TaskNotice>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (loaded, thread) = load_task(&state, id, task.clone()).await?;
    let notice = if n.enregistre.is_some() {
        Some("Modification enregistrée.")
    } else if n.commentaire.is_some() {
        Some("Commentaire enregistré.")
    } else {
        None
    };
    Ok(render_task(
        &state,
        &loaded,
        &task,
        thread.as_ref(),
        &super::author_of(&headers),
        notice,
        None,
    )?
    .into_response())
}

async fn load_task(
    state: &AppState,
    id: String,
    task: String,
) -> Result<(Loaded, Option<Thread>), WebError> {
    state
        .blocking(move |r| {
            let loaded = load_sync(r, &id)?;
            if loaded.group.task(&task).is_none() {
                return Err(WebError::Missing(format!("Tâche « {task} » introuvable.")));
            }
            let thread = r.thread(&Subject::Task {
                group: loaded.gid,
                task,
            })?;
            Ok((loaded, thread))
        })
        .await
}

/// The task page, with a refused form (task edit or comment) drawn again when there is one.
pub(super) async fn render_task_failed(
    state: &AppState,
    gid_text: String,
    task: String,
    author: String,
    failed: Failed,
) -> Result<Response, WebError> {
    let (loaded, thread) = load_task(state, gid_text, task.clone()).await?;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        render_task(
            state,
            &loaded,
            &task,
            thread.as_ref(),
            &author,
            None,
            Some(&failed),
        )?,
    )
        .into_response())
}

fn render_task(
    state: &AppState,
    l: &Loaded,
    task: &str,
    thread: Option<&Thread>,
    author: &str,
    notice: Option<&str>,
    failed: Option<&Failed>,
) -> Result<Markup, WebError> {
    let g = &l.group;
    let gid = &l.gid;
    let t = g
        .task(task)
        .ok_or_else(|| WebError::Missing(format!("Tâche « {task} » introuvable.")))?;
    let member = g.is_member(&me(state));
    let today = today();
    let subject = Subject::Task {
        group: *gid,
        task: t.id.clone(),
    };
    let content = html! {
        p.crumbs { a href={ (group_path(gid)) "/plan" } { "← Plan de charge de « " (g.name) " »" } }
        @if let Some(m) = notice { div.notice.ok role="status" { (m) } }
        @if !member { (read_only_notice(state, g)) }
        div #tache data-live-block="" data-watch={ (gid.to_base58()) " " (subject.thread_id().to_base58()) } {
            header.resource-head {
                div.badges {
                    span.badge.task-status data-status=(t.status.code()) { (t.status.label()) }
                    @if t.is_late(&today) { span.badge.late { "en retard" } }
                }
                h1 { (t.title) }
                dl.details.task-details {
                    dt { "Office responsable" } dd { (t.office.as_deref().map(glossary::office_name).unwrap_or_else(|| "Personne pour l'instant".into())) }
                    dt { "Personne" } dd { @if t.person.is_empty() { "—" } @else { (t.person) } }
                    dt { "Échéance" } dd { (t.due.as_deref().map(atelier_core::fr::date).unwrap_or_else(|| "Aucune".into())) }
                    dt { "Fiches liées" } dd {
                        @if t.resources.is_empty() { "Aucune" }
                        @else { ul.plain { @for id in &t.resources { li { a href=(resource_path(id)) { (title_of(&l.titles, id).unwrap_or("fiche absente")) } } } } }
                    }
                    dt { "Ajoutée par" } dd { (glossary::office_name(&t.created_by)) }
                }
                @if member { (status_form(gid, t, "tache")) }
            }
        }
        @if member {
            details.task-edit open[failed.is_some_and(|f| f.form == "tache")] {
                summary { "Modifier la tâche" }
                (task_form(gid, g, &l.titles, Some(t), failed))
            }
        }
        (discussion::thread_section(&subject, &task_path(gid, &t.id), thread, &me(state), author, failed))
    };
    Ok(layout::page(
        state,
        PageMeta {
            title: &t.title,
            page: "task",
            doc: Some(gid.to_base58()),
            nav: Nav::Groups,
        },
        content,
    ))
}

pub async fn edit_task(
    State(state): State<AppState>,
    Path((id, task)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let submitted = data.clone();
    let (gid_text, t) = (id.clone(), task.clone());
    let outcome = state
        .blocking(move |r| {
            let gid = r.resolve_group(&id)?;
            let g = r.group(&gid)?;
            let now = g
                .task(&t)
                .ok_or_else(|| WebError::Missing(format!("Tâche « {t} » introuvable.")))?
                .clone();
            let resources = match linked_resources(r, &data) {
                Ok(x) => x,
                Err(e) => return Ok((gid, checked(Err::<(), _>(e.into()))?)),
            };
            let changes = match task_changes(&now, &data, &resources) {
                Ok(changes) => changes,
                Err(WebError::Invalid(errors)) => return Ok((gid, Err(errors))),
                Err(other) => return Err(other),
            };
            if changes.is_empty() {
                return Ok((gid, Ok(())));
            }
            let edits: Vec<GroupEdit> = changes
                .into_iter()
                .map(|change| GroupEdit::SetTask {
                    id: t.clone(),
                    change,
                })
                .collect();
            Ok((
                gid,
                checked(r.edit_group(&gid, &edits, now_ms()).map(|_| ()))?,
            ))
        })
        .await?;
    match outcome {
        (gid, Ok(())) => {
            Ok(Redirect::to(&format!("{}?enregistre=1", task_path(&gid, &task))).into_response())
        }
        (_, Err(errors)) => {
            let failed = Failed {
                form: "tache".into(),
                data: submitted,
                errors,
            };
            render_task_failed(&state, gid_text, task, super::author_of(&headers), failed).await
        }
    }
}

/// The changes a task form asks for, compared with the task as it is.
fn task_changes(
    t: &Task,
    data: &FormData,
    resources: &[DocumentId],
) -> Result<Vec<TaskChange>, WebError> {
    let text = |name: &str| data.get(name).unwrap_or_default().trim().to_string();
    let mut changes = Vec::new();
    if text("title") != t.title {
        changes.push(TaskChange::Title(text("title")));
    }
    if text("office") != t.office.clone().unwrap_or_default() {
        changes.push(TaskChange::Office(text("office")));
    }
    if text("person") != t.person {
        changes.push(TaskChange::Person(text("person")));
    }
    if text("due") != t.due.clone().unwrap_or_default() {
        changes.push(TaskChange::Due(text("due")));
    }
    if let Some(s) = data.get("status") {
        let s = TaskStatus::parse(s).map_err(WebError::from)?;
        if s != t.status {
            changes.push(TaskChange::Status(s));
        }
    }
    for id in resources {
        if !t.resources.contains(id) {
            changes.push(TaskChange::Link(*id));
        }
    }
    // The form offers every linked resource as a ticked box: one unticked is unlinked.
    for id in &t.resources {
        if !resources.contains(id) {
            changes.push(TaskChange::Unlink(*id));
        }
    }
    Ok(changes)
}
