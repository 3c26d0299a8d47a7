//! The local API of working together (groups, plan de charge, review, discussion, « Pour vous »,
//! « Quoi de neuf »), and the views both it and the CLI's local backend build from a replica,
//! so `atelier` gives the same answers whether it holds the replica or this server does.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /api/groups` | | `[GroupSummary]` |
//! | `POST /api/groups` | `NewGroup` | 201 `{"id": URL}` |
//! | `GET /api/groups/{g}` | | [`GroupView`] |
//! | `POST /api/groups/{g}/edits` | `{"edits":[GroupEdit…]}` | `{"id": URL, "fields":[…]}` |
//! | `GET /api/tasks?group=&office=` | | `[`[`GroupPlan`]`]` |
//! | `GET /api/tasks/{task}?group=` | | [`TaskView`] (a unique start of the id is enough) |
//! | `POST /api/resources/{id}/review` | [`ReviewRequest`] | `{"status": …}` |
//! | `GET /api/discussion?resource=&group=&task=` | | [`Discussion`] |
//! | `POST /api/comments` | [`CommentRequest`] | `{"id": …}` |
//! | `GET /api/to-review` | | `[ToReview]` |
//! | `GET /api/for-you` | | `ForYou` |
//! | `GET /api/news?since=MS` | | [`News`] (default: since the last « marquer comme lu ») |
//! | `POST /api/news/read` | | `{"read_at": MS}` |
//!
//! `{g}` is a group's URL, id or name. Refused edits answer 400 with the core's French message.

use atelier_core::clock::now_ms;
use atelier_core::replica::{GroupSummary, ListingEntry, Replica, ReplicaError};
use atelier_core::work::group::{Group, GroupEdit, NewGroup, Share, Task, Theme};
use atelier_core::work::news::{day_of, NewsItem};
use atelier_core::work::thread::{NewComment, ReviewState, Subject, Thread};
use atelier_core::work::WorkError;
use atelier_core::DocumentId;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::parse_json;
use crate::error::WebError;
use crate::AppState;

/// A group as `atelier groupe voir` and its page show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub id: DocumentId,
    /// The group as stored (its `themes` without counts: see [`GroupView::themes`]).
    pub group: Group,
    /// Resources of the group (added by hand or written by a member office).
    pub resource_count: usize,
    pub themes: Vec<ThemeView>,
    /// Share of the plan done, per cent.
    pub progress: u32,
    pub shares: Vec<Share>,
    /// The day late tasks are reckoned on (`YYYY-MM-DD`, UTC).
    pub today: String,
}

/// A theme with how many of the group's resources it gathers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThemeView {
    #[serde(flatten)]
    pub theme: Theme,
    pub resource_count: usize,
}

/// A task with its group and whether it is late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    pub group: DocumentId,
    pub group_name: String,
    #[serde(flatten)]
    pub task: Task,
    pub late: bool,
}

/// One group's plan de charge: each office's share and the tasks asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPlan {
    pub group: DocumentId,
    pub name: String,
    pub shares: Vec<Share>,
    /// By due date, then title.
    pub tasks: Vec<TaskView>,
    pub today: String,
}

/// Body of `POST /api/resources/{id}/review`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRequest {
    pub action: ReviewAction,
    /// The office asked to review (`demande` only).
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub comment: String,
}

/// A step of a review, as the CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    Demande,
    Approbation,
    Renvoi,
    Publication,
}

/// What a discussion is about, as typed: a resource, or a task of a group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubjectQuery {
    /// A resource's URL, id or ref.
    #[serde(default)]
    pub resource: Option<String>,
    /// A group's URL, id or name (with `task`; optional when the task id is unique).
    #[serde(default)]
    pub group: Option<String>,
    /// A task's id, or a unique start of it.
    #[serde(default)]
    pub task: Option<String>,
}

/// Body of `POST /api/comments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentRequest {
    #[serde(flatten)]
    pub subject: SubjectQuery,
    /// `parent` may be a unique start of the comment's id.
    pub comment: NewComment,
}

/// A resource's or task's discussion and, for a resource, its review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discussion {
    pub subject: Subject,
    pub title: String,
    /// `None` when nobody wrote yet.
    pub thread: Option<Thread>,
    pub review: ReviewState,
    /// The resource's status (`brouillon`, `a_relire`, `publie`); empty for a task.
    pub status: String,
}

/// « Quoi de neuf » since a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct News {
    /// ms.
    pub since: i64,
    /// When this office last marked it read, ms.
    pub read_at: Option<i64>,
    /// Newest day first, then by office.
    pub items: Vec<NewsItem>,
}

// The views, shared with the CLI's local backend.

/// A group with its themes' resource counts, progress and shares.
pub fn group_view(r: &Replica, group: &str, now_ms: i64) -> Result<GroupView, ReplicaError> {
    let id = r.resolve_group(group)?;
    let g = r.group(&id)?;
    let resources: Vec<ListingEntry> = r.group_resources(&g)?;
    let themes = g
        .themes
        .iter()
        .map(|t| ThemeView {
            resource_count: resources
                .iter()
                .filter(|e| Group::theme_matches(t, e))
                .count(),
            theme: t.clone(),
        })
        .collect();
    let today = day_of(now_ms);
    Ok(GroupView {
        id,
        resource_count: resources.len(),
        themes,
        progress: g.progress(),
        shares: g.shares(&today),
        group: g,
        today,
    })
}

/// The plans de charge of one group or all, keeping only `office`'s tasks when given.
pub fn plans(
    r: &Replica,
    group: Option<&str>,
    office: Option<&str>,
    now_ms: i64,
) -> Result<Vec<GroupPlan>, ReplicaError> {
    let ids: Vec<DocumentId> = match group {
        Some(g) => vec![r.resolve_group(g)?],
        None => r
            .groups()?
            .into_iter()
            .map(|g: GroupSummary| g.id)
            .collect(),
    };
    let office = match office {
        Some(o) => Some(
            o.trim()
                .parse::<atelier_core::OfficeId>()
                .map_err(|_| {
                    WorkError::NotFound(format!("bureau « {} » (attendu : caue-XX)", o.trim()))
                })?
                .to_string(),
        ),
        None => None,
    };
    let today = day_of(now_ms);
    let mut out = Vec::new();
    for id in ids {
        let g = r.group(&id)?;
        let tasks = g
            .tasks
            .iter()
            .filter(|t| office.is_none() || t.office == office)
            .map(|t| task_view(id, &g, t, &today))
            .collect();
        let shares = g
            .shares(&today)
            .into_iter()
            .filter(|s| office.is_none() || s.office == office)
            .collect();
        out.push(GroupPlan {
            group: id,
            name: g.name.clone(),
            shares,
            tasks,
            today: today.clone(),
        });
    }
    Ok(out)
}

/// The task whose id starts with `task`, in `group` or in any group.
pub fn find_task(
    r: &Replica,
    group: Option<&str>,
    task: &str,
    now_ms: i64,
) -> Result<TaskView, ReplicaError> {
    let task = task.trim();
    let ids: Vec<DocumentId> = match group {
        Some(g) => vec![r.resolve_group(g)?],
        None => r.groups()?.into_iter().map(|g| g.id).collect(),
    };
    let today = day_of(now_ms);
    let mut found = Vec::new();
    for id in ids {
        let g = r.group(&id)?;
        for t in &g.tasks {
            if t.id == task {
                return Ok(task_view(id, &g, t, &today));
            }
            if !task.is_empty() && t.id.starts_with(task) {
                found.push(task_view(id, &g, t, &today));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(WorkError::NotFound(format!("tâche « {task} »")).into()),
        n => Err(invalid(
            "task",
            "Tâche",
            format!("« {task} » désigne {n} tâches : donnez plus de caractères de l'identifiant ou --groupe"),
        )
        .into()),
    }
}

fn task_view(group: DocumentId, g: &Group, t: &Task, today: &str) -> TaskView {
    TaskView {
        group,
        group_name: g.name.clone(),
        late: t.is_late(today),
        task: t.clone(),
    }
}

/// The subject a user named.
pub fn subject(r: &Replica, q: &SubjectQuery, now_ms: i64) -> Result<Subject, ReplicaError> {
    match (&q.resource, &q.task) {
        (Some(resource), None) => Ok(Subject::Resource(r.resolve(resource)?)),
        (None, Some(task)) => {
            let t = find_task(r, q.group.as_deref(), task, now_ms)?;
            Ok(Subject::Task {
                group: t.group,
                task: t.task.id,
            })
        }
        _ => Err(invalid(
            "subject",
            "Sujet",
            "nommez une ressource, ou une tâche (et son groupe)",
        )
        .into()),
    }
}

/// A subject's discussion and review.
pub fn discussion(r: &Replica, q: &SubjectQuery, now_ms: i64) -> Result<Discussion, ReplicaError> {
    let subject = subject(r, q, now_ms)?;
    let title = r.subject_title(&subject)?;
    let thread = r.thread(&subject)?;
    let status = match &subject {
        Subject::Resource(id) => r.listing(id)?.map(|e| e.status).unwrap_or_default(),
        Subject::Task { .. } => String::new(),
    };
    Ok(Discussion {
        review: thread.as_ref().map(Thread::review).unwrap_or_default(),
        subject,
        title,
        thread,
        status,
    })
}

/// Adds a comment; `parent` may be a unique start of a comment's id. Returns the new id.
pub fn comment(
    r: &Replica,
    req: &CommentRequest,
    rng: &mut impl rand::RngCore,
    now_ms: i64,
) -> Result<String, ReplicaError> {
    let subject = subject(r, &req.subject, now_ms)?;
    let mut new = req.comment.clone();
    if let Some(parent) = new.parent.as_deref().map(str::trim) {
        let thread = r.thread(&subject)?;
        let ids: Vec<&str> = thread
            .iter()
            .flat_map(|t| t.comments.iter())
            .map(|c| c.id.as_str())
            .filter(|id| *id == parent || (!parent.is_empty() && id.starts_with(parent)))
            .collect();
        match ids[..] {
            [one] => new.parent = Some(one.to_string()),
            _ if ids.contains(&parent) => new.parent = Some(parent.to_string()),
            [] => return Err(WorkError::NotFound(format!("commentaire « {parent} »")).into()),
            _ => {
                return Err(invalid(
                    "parent",
                    "Réponse à",
                    format!(
                        "« {parent} » désigne plusieurs commentaires : donnez plus de caractères"
                    ),
                )
                .into())
            }
        }
    }
    r.comment(&subject, &new, rng, now_ms)
}

/// Runs a review step on a resource; returns its status afterwards.
pub fn review(
    r: &Replica,
    resource: &str,
    req: &ReviewRequest,
    rng: &mut impl rand::RngCore,
    now_ms: i64,
) -> Result<String, ReplicaError> {
    let id = r.resolve(resource)?;
    match req.action {
        ReviewAction::Demande => {
            let to = req.to.as_deref().unwrap_or_default();
            r.request_review(&id, to, &req.author, &req.comment, rng, now_ms)?
        }
        ReviewAction::Approbation => r.approve(&id, &req.author, &req.comment, rng, now_ms)?,
        ReviewAction::Renvoi => r.send_back(&id, &req.author, &req.comment, rng, now_ms)?,
        ReviewAction::Publication => r.publish(&id, &req.author, rng, now_ms)?,
    }
    Ok(r.listing(&id)?.map(|e| e.status).unwrap_or_default())
}

/// « Quoi de neuf » since `since` (ms), or since the last « marquer comme lu ».
pub fn news(r: &Replica, since: Option<i64>, now_ms: i64) -> Result<News, ReplicaError> {
    let since = match since {
        Some(s) => s,
        None => r.news_since(now_ms)?,
    };
    Ok(News {
        since,
        read_at: r.news_read_at()?,
        items: r.news(since)?,
    })
}

/// The French message of a refused working-together request: what staff typed is named.
/// The API's answer to a refused request: a work refusal is a 400 whose message names the
/// field (the CLI shows it as it is); pages place field errors themselves (`WebError::from`).
fn api_error(e: ReplicaError) -> WebError {
    match e {
        ReplicaError::Work(w) => work_error(w),
        other => WebError::from(other),
    }
}

pub(crate) fn work_error(e: WorkError) -> WebError {
    match e {
        WorkError::Malformed(_) => WebError::internal(e),
        other => WebError::BadRequest(other.to_string()),
    }
}

fn invalid(field: &'static str, label: &'static str, message: impl Into<String>) -> WorkError {
    WorkError::Invalid {
        field,
        label,
        message: message.into(),
    }
}

// The routes.

/// The routes of the table above, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/groups", get(groups).post(create_group))
        .route("/groups/{g}", get(group))
        .route("/groups/{g}/edits", post(edit_group))
        .route("/tasks", get(tasks))
        .route("/tasks/{task}", get(task))
        .route("/resources/{id}/review", post(review_step))
        .route("/discussion", get(discussion_of))
        .route("/comments", post(add_comment))
        .route("/to-review", get(to_review))
        .route("/for-you", get(for_you))
        .route("/news", get(news_list))
        .route("/news/read", post(news_read))
}

pub async fn groups(State(state): State<AppState>) -> Result<Response, WebError> {
    let groups = state.blocking(|r| r.groups().map_err(api_error)).await?;
    Ok(Json(groups).into_response())
}

pub async fn create_group(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let new: NewGroup = parse_json(body)?;
    let id = state
        .blocking(move |r| {
            r.create_group(&new, &mut rand::rngs::OsRng, now_ms())
                .map_err(api_error)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id.url() }))).into_response())
}

pub async fn group(
    State(state): State<AppState>,
    Path(g): Path<String>,
) -> Result<Response, WebError> {
    let view = state
        .blocking(move |r| group_view(r, &g, now_ms()).map_err(api_error))
        .await?;
    Ok(Json(view).into_response())
}

/// Body of `POST /api/groups/{g}/edits`.
#[derive(Debug, Deserialize)]
pub struct GroupEditsBody {
    pub edits: Vec<GroupEdit>,
}

pub async fn edit_group(
    State(state): State<AppState>,
    Path(g): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let body: GroupEditsBody = parse_json(body)?;
    let (id, fields) = state
        .blocking(move |r| {
            let id = r.resolve_group(&g).map_err(api_error)?;
            let fields = r
                .edit_group(&id, &body.edits, now_ms())
                .map_err(api_error)?;
            Ok((id, fields))
        })
        .await?;
    Ok(Json(json!({ "id": id.url(), "fields": fields })).into_response())
}

/// Query of the task routes.
#[derive(Debug, Default, Deserialize)]
pub struct TaskQuery {
    pub group: Option<String>,
    pub office: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

pub async fn tasks(
    State(state): State<AppState>,
    Query(q): Query<TaskQuery>,
) -> Result<Response, WebError> {
    let (group, office) = (non_empty(q.group), non_empty(q.office));
    let plans = state
        .blocking(move |r| {
            plans(r, group.as_deref(), office.as_deref(), now_ms()).map_err(api_error)
        })
        .await?;
    Ok(Json(plans).into_response())
}

pub async fn task(
    State(state): State<AppState>,
    Path(task): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Result<Response, WebError> {
    let group = non_empty(q.group);
    let view = state
        .blocking(move |r| find_task(r, group.as_deref(), &task, now_ms()).map_err(api_error))
        .await?;
    Ok(Json(view).into_response())
}

pub async fn review_step(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let req: ReviewRequest = parse_json(body)?;
    let status = state
        .blocking(move |r| {
            review(r, &id, &req, &mut rand::rngs::OsRng, now_ms()).map_err(api_error)
        })
        .await?;
    Ok(Json(json!({ "status": status })).into_response())
}

pub async fn discussion_of(
    State(state): State<AppState>,
    Query(q): Query<SubjectQuery>,
) -> Result<Response, WebError> {
    let view = state
        .blocking(move |r| discussion(r, &q, now_ms()).map_err(api_error))
        .await?;
    Ok(Json(view).into_response())
}

pub async fn add_comment(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let req: CommentRequest = parse_json(body)?;
    let id = state
        .blocking(move |r| comment(r, &req, &mut rand::rngs::OsRng, now_ms()).map_err(api_error))
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

pub async fn to_review(State(state): State<AppState>) -> Result<Response, WebError> {
    let list = state.blocking(|r| r.to_review().map_err(api_error)).await?;
    Ok(Json(list).into_response())
}

pub async fn for_you(State(state): State<AppState>) -> Result<Response, WebError> {
    let view = state
        .blocking(|r| r.for_you(&day_of(now_ms())).map_err(api_error))
        .await?;
    Ok(Json(view).into_response())
}

/// Query of `GET /api/news`.
#[derive(Debug, Default, Deserialize)]
pub struct NewsQuery {
    /// ms; absent: since the last « marquer comme lu ».
    pub since: Option<i64>,
}

pub async fn news_list(
    State(state): State<AppState>,
    Query(q): Query<NewsQuery>,
) -> Result<Response, WebError> {
    let view = state
        .blocking(move |r| news(r, q.since, now_ms()).map_err(api_error))
        .await?;
    Ok(Json(view).into_response())
}

pub async fn news_read(State(state): State<AppState>) -> Result<Response, WebError> {
    let now = now_ms();
    state
        .blocking(move |r| r.mark_news_read(now).map_err(api_error))
        .await?;
    Ok(Json(json!({ "read_at": now })).into_response())
}
