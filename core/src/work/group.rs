//! A working group's document: name, slogan, action name, editorial line, member offices,
//! target publics, the group's own themes mapped to the corpus vocabularies, the resources it
//! works on, its settings, and its plan de charge (tasks).

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ROOT};
use serde::{Deserialize, Serialize};

use super::{
    bool_at, commit, ensure_map, i64_at, keys_of, line, map_at, office, put_text, str_at,
    WorkError, GROUP_TYPE, MAX_NAME_CHARS, MAX_TEXT_CHARS,
};
use crate::card::ListingEntry;
use crate::ids::DocumentId;
use crate::vocab;

/// Document schema of groups written by this version.
pub const SCHEMA: i64 = 1;

/// The vocabularies a group theme maps to: those every listing entry carries.
pub const THEME_VOCABULARIES: [&str; 3] = [vocab::AXES, vocab::THEMES, vocab::SECTORS];

/// A group as read from its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub slogan: String,
    /// The name of the group's action (« Habiter le Massif central »).
    pub action: String,
    /// The editorial line, as text.
    pub line: String,
    /// Member offices, sorted: only they edit the group.
    pub members: Vec<String>,
    /// Target publics: audience codes of the vocabulary, or the group's own words.
    pub publics: Vec<String>,
    /// The group's own themes, in creation order.
    pub themes: Vec<Theme>,
    /// Resources added to the group by hand (a member office's resources belong to it anyway).
    pub resources: Vec<DocumentId>,
    /// Publishing a resource of the group needs an approval from another office.
    pub approval_required: bool,
    /// The plan de charge, by due date then title.
    pub tasks: Vec<Task>,
    pub created_at: i64,
    pub created_by: String,
}

/// A theme in plain words, mapped to vocabulary values (`sectors:terre`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Theme {
    pub id: String,
    pub label: String,
    /// One sentence saying what the theme covers.
    pub explanation: String,
    /// `vocabulary:code` values; a resource with any of them is under the theme.
    pub values: Vec<String>,
    #[serde(default)]
    pub created_at: i64,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    AFaire,
    EnCours,
    ARelire,
    Fait,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [Self::AFaire, Self::EnCours, Self::ARelire, Self::Fait];

    pub fn code(self) -> &'static str {
        match self {
            Self::AFaire => "a_faire",
            Self::EnCours => "en_cours",
            Self::ARelire => "a_relire",
            Self::Fait => "fait",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::AFaire => "À faire",
            Self::EnCours => "En cours",
            Self::ARelire => "À relire",
            Self::Fait => "Fait",
        }
    }

    /// Parses a code or a label (`en_cours`, « En cours », `en-cours`).
    pub fn parse(value: &str) -> Result<Self, WorkError> {
        let folded = crate::fr::fold(value.trim()).replace([' ', '-'], "_");
        Self::ALL
            .into_iter()
            .find(|s| s.code() == folded)
            .ok_or_else(|| {
                WorkError::invalid(
                    "status",
                    "État",
                    format!(
                        "« {} » n'est pas un état de tâche (à faire, en cours, à relire, fait)",
                        value.trim()
                    ),
                )
            })
    }
}

/// One task of the plan de charge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    /// The office in charge (a member), if any yet.
    pub office: Option<String>,
    /// The person in charge, free text, may be empty.
    pub person: String,
    /// Due date, `YYYY-MM-DD`.
    pub due: Option<String>,
    pub status: TaskStatus,
    pub resources: Vec<DocumentId>,
    pub created_at: i64,
    pub created_by: String,
}

impl Task {
    /// Late on `today` (`YYYY-MM-DD`): due before it and not done.
    pub fn is_late(&self, today: &str) -> bool {
        self.status != TaskStatus::Fait && self.due.as_deref().is_some_and(|d| d < today)
    }
}

/// What a new group starts with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub slogan: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub line: String,
    /// Other member offices (the creating office is always one).
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub publics: Vec<String>,
    #[serde(default = "yes")]
    pub approval_required: bool,
}

fn yes() -> bool {
    true
}

/// A new task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub title: String,
    #[serde(default)]
    pub office: Option<String>,
    #[serde(default)]
    pub person: String,
    #[serde(default)]
    pub due: Option<String>,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default)]
    pub resources: Vec<DocumentId>,
}

/// One change of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskChange {
    Title(String),
    /// The office in charge; empty for none.
    Office(String),
    Person(String),
    /// `YYYY-MM-DD`, or empty for none.
    Due(String),
    Status(TaskStatus),
    Link(DocumentId),
    Unlink(DocumentId),
}

/// One edit of a group, as the CLI, the web app and the local API send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupEdit {
    /// `name`, `slogan`, `action` or `line`.
    Set {
        field: String,
        value: String,
    },
    AddMember(String),
    RemoveMember(String),
    AddPublic(String),
    RemovePublic(String),
    ApprovalRequired(bool),
    /// Creates or replaces a theme (`id` from `work::new_key`).
    PutTheme(Theme),
    RemoveTheme(String),
    AddResource(DocumentId),
    RemoveResource(DocumentId),
    /// Adds a task under `id` (from `work::new_key`).
    AddTask {
        id: String,
        task: NewTask,
    },
    SetTask {
        id: String,
        change: TaskChange,
    },
    RemoveTask(String),
}

/// Writes a new group document, `office` its first member.
pub fn create(
    doc: &mut AutoCommit,
    new: &NewGroup,
    office: &str,
    now_ms: i64,
) -> Result<(), WorkError> {
    let name = line(&new.name, "name", "Nom du groupe", true, MAX_NAME_CHARS)?;
    let slogan = line(&new.slogan, "slogan", "Slogan", false, MAX_NAME_CHARS)?;
    let action = line(
        &new.action,
        "action",
        "Nom de l'action",
        false,
        MAX_NAME_CHARS,
    )?;
    let text = check_text(&new.line, "line", "Ligne éditoriale")?;
    let mut members = vec![office.to_string()];
    for m in &new.members {
        members.push(self::office(m, "members", "Bureaux membres")?.to_string());
    }
    let publics = new
        .publics
        .iter()
        .map(|p| public(p))
        .collect::<Result<Vec<_>, _>>()?;
    doc.put(ROOT, "@type", GROUP_TYPE)?;
    doc.put(ROOT, "schema", SCHEMA)?;
    doc.put(ROOT, "name", name)?;
    doc.put(ROOT, "slogan", slogan)?;
    doc.put(ROOT, "action", action)?;
    put_text(doc, &ROOT, "line", &text)?;
    doc.put(ROOT, "created_at", now_ms)?;
    doc.put(ROOT, "created_by", office)?;
    doc.put(ROOT, "approval_required", new.approval_required)?;
    let m = doc.put_object(ROOT, "members", ObjType::Map)?;
    for member in members {
        doc.put(&m, member, true)?;
    }
    let p = doc.put_object(ROOT, "publics", ObjType::Map)?;
    for public in publics {
        doc.put(&p, public, true)?;
    }
    for key in ["themes", "resources", "tasks"] {
        doc.put_object(ROOT, key, ObjType::Map)?;
    }
    commit(doc, office, vec!["group:created".into()], now_ms);
    Ok(())
}

/// Applies edits by `office`, all or nothing; returns the note's fields. Refused unless
/// `office` is a member.
pub fn apply(
    doc: &mut AutoCommit,
    edits: &[GroupEdit],
    office: &str,
    now_ms: i64,
) -> Result<Vec<String>, WorkError> {
    let before = read(doc)?;
    if !before.members.iter().any(|m| m == office) {
        return Err(WorkError::NotAMember {
            office: office.to_string(),
            group: before.name,
        });
    }
    let mut fields = Vec::new();
    for edit in edits {
        if let Err(e) = apply_one(doc, &before, edit, office, now_ms, &mut fields) {
            doc.rollback();
            return Err(e);
        }
    }
    // The last member cannot leave: a group nobody may edit is lost.
    if read(doc)?.members.is_empty() {
        doc.rollback();
        return Err(WorkError::invalid(
            "members",
            "Bureaux membres",
            "un groupe garde au moins un bureau membre",
        ));
    }
    if !fields.is_empty() {
        commit(doc, office, fields.clone(), now_ms);
    }
    Ok(fields)
}

fn apply_one(
    doc: &mut AutoCommit,
    group: &Group,
    edit: &GroupEdit,
    by: &str,
    now_ms: i64,
    fields: &mut Vec<String>,
) -> Result<(), WorkError> {
    match edit {
        GroupEdit::Set { field, value } => {
            let (key, label) = match field.as_str() {
                "name" => ("name", "Nom du groupe"),
                "slogan" => ("slogan", "Slogan"),
                "action" => ("action", "Nom de l'action"),
                "line" => ("line", "Ligne éditoriale"),
                other => {
                    return Err(WorkError::invalid(
                        "field",
                        "Champ",
                        format!("« {other} » n'est pas un champ du groupe"),
                    ))
                }
            };
            if key == "line" {
                put_text(doc, &ROOT, key, &check_text(value, key, label)?)?;
            } else {
                let value = line(value, key, label, key == "name", MAX_NAME_CHARS)?;
                doc.put(ROOT, key, value)?;
            }
            fields.push(format!("group:{key}"));
        }
        GroupEdit::AddMember(m) | GroupEdit::RemoveMember(m) => {
            let m = office(m, "members", "Bureaux membres")?.to_string();
            let members = ensure_map(doc, &ROOT, "members")?;
            if matches!(edit, GroupEdit::AddMember(_)) {
                doc.put(&members, &m, true)?;
            } else {
                doc.delete(&members, &m)?;
            }
            fields.push("group:members".into());
        }
        GroupEdit::AddPublic(p) | GroupEdit::RemovePublic(p) => {
            let p = public(p)?;
            let publics = ensure_map(doc, &ROOT, "publics")?;
            if matches!(edit, GroupEdit::AddPublic(_)) {
                doc.put(&publics, &p, true)?;
            } else {
                doc.delete(&publics, &p)?;
            }
            fields.push("group:publics".into());
        }
        GroupEdit::ApprovalRequired(on) => {
            doc.put(ROOT, "approval_required", *on)?;
            fields.push("group:approval_required".into());
        }
        GroupEdit::PutTheme(theme) => {
            let label = line(&theme.label, "theme_label", "Thème", true, MAX_NAME_CHARS)?;
            let explanation = line(
                &theme.explanation,
                "theme_explanation",
                "Explication du thème",
                true,
                MAX_NAME_CHARS * 2,
            )?;
            for value in &theme.values {
                check_theme_value(value)?;
            }
            let themes = ensure_map(doc, &ROOT, "themes")?;
            let t = match map_at(doc, &themes, &theme.id) {
                Some(t) => t,
                None => {
                    let t = doc.put_object(&themes, &theme.id, ObjType::Map)?;
                    doc.put(&t, "created_at", now_ms)?;
                    t
                }
            };
            doc.put(&t, "label", label)?;
            doc.put(&t, "explanation", explanation)?;
            let values = doc.put_object(&t, "values", ObjType::Map)?;
            for value in &theme.values {
                doc.put(&values, value.as_str(), true)?;
            }
            fields.push(format!("theme:{}", theme.id));
        }
        GroupEdit::RemoveTheme(id) => {
            let themes = ensure_map(doc, &ROOT, "themes")?;
            if map_at(doc, &themes, id).is_none() {
                return Err(WorkError::NotFound(format!("thème « {id} »")));
            }
            doc.delete(&themes, id.as_str())?;
            fields.push(format!("theme:{id}"));
        }
        GroupEdit::AddResource(id) | GroupEdit::RemoveResource(id) => {
            let resources = ensure_map(doc, &ROOT, "resources")?;
            if matches!(edit, GroupEdit::AddResource(_)) {
                doc.put(&resources, id.url(), true)?;
            } else {
                doc.delete(&resources, id.url())?;
            }
            fields.push("group:resources".into());
        }
        GroupEdit::AddTask { id, task } => {
            let title = line(&task.title, "title", "Intitulé", true, MAX_NAME_CHARS)?;
            let in_charge = task_office(group, task.office.as_deref().unwrap_or(""))?;
            let person = line(&task.person, "person", "Personne", false, MAX_NAME_CHARS)?;
            let due = due_date(task.due.as_deref().unwrap_or(""))?;
            let tasks = ensure_map(doc, &ROOT, "tasks")?;
            if map_at(doc, &tasks, id).is_some() {
                return Err(WorkError::invalid(
                    "id",
                    "Tâche",
                    format!("la tâche « {id} » existe déjà"),
                ));
            }
            let t = doc.put_object(&tasks, id.as_str(), ObjType::Map)?;
            doc.put(&t, "title", title)?;
            doc.put(&t, "office", in_charge.unwrap_or_default())?;
            doc.put(&t, "person", person)?;
            doc.put(&t, "due", due.unwrap_or_default())?;
            doc.put(
                &t,
                "status",
                task.status.unwrap_or(TaskStatus::AFaire).code(),
            )?;
            doc.put(&t, "created_at", now_ms)?;
            doc.put(&t, "created_by", by)?;
            let r = doc.put_object(&t, "resources", ObjType::Map)?;
            for resource in &task.resources {
                doc.put(&r, resource.url(), true)?;
            }
            fields.push(format!("task:{id}:created"));
        }
        GroupEdit::SetTask { id, change } => {
            let tasks = ensure_map(doc, &ROOT, "tasks")?;
            let t = map_at(doc, &tasks, id)
                .ok_or_else(|| WorkError::NotFound(format!("tâche « {id} »")))?;
            let field = match change {
                TaskChange::Title(title) => {
                    doc.put(
                        &t,
                        "title",
                        line(title, "title", "Intitulé", true, MAX_NAME_CHARS)?,
                    )?;
                    "title"
                }
                TaskChange::Office(o) => {
                    doc.put(&t, "office", task_office(group, o)?.unwrap_or_default())?;
                    "office"
                }
                TaskChange::Person(p) => {
                    doc.put(
                        &t,
                        "person",
                        line(p, "person", "Personne", false, MAX_NAME_CHARS)?,
                    )?;
                    "person"
                }
                TaskChange::Due(d) => {
                    doc.put(&t, "due", due_date(d)?.unwrap_or_default())?;
                    "due"
                }
                TaskChange::Status(s) => {
                    doc.put(&t, "status", s.code())?;
                    "status"
                }
                TaskChange::Link(r) | TaskChange::Unlink(r) => {
                    let resources = ensure_map(doc, &t, "resources")?;
                    if matches!(change, TaskChange::Link(_)) {
                        doc.put(&resources, r.url(), true)?;
                    } else {
                        doc.delete(&resources, r.url())?;
                    }
                    "resources"
                }
            };
            fields.push(format!("task:{id}:{field}"));
        }
        GroupEdit::RemoveTask(id) => {
            let tasks = ensure_map(doc, &ROOT, "tasks")?;
            if map_at(doc, &tasks, id).is_none() {
                return Err(WorkError::NotFound(format!("tâche « {id} »")));
            }
            doc.delete(&tasks, id.as_str())?;
            fields.push(format!("task:{id}:removed"));
        }
    }
    Ok(())
}

/// Reads a group document.
pub fn read(doc: &AutoCommit) -> Result<Group, WorkError> {
    if str_at(doc, &ROOT, "@type").as_deref() != Some(GROUP_TYPE) {
        return Err(WorkError::Malformed("ce n'est pas un groupe".into()));
    }
    let schema = i64_at(doc, &ROOT, "schema").unwrap_or(SCHEMA);
    if schema > SCHEMA {
        return Err(WorkError::Malformed(format!(
            "groupe au schéma {schema}, plus récent que celui de cette version ({SCHEMA})"
        )));
    }
    let mut members = keys_of(doc, &ROOT, "members");
    members.sort();
    let mut publics = keys_of(doc, &ROOT, "publics");
    publics.sort();
    let mut themes = Vec::new();
    if let Some(map) = map_at(doc, &ROOT, "themes") {
        for id in doc.keys(&map).collect::<Vec<_>>() {
            let Some(t) = map_at(doc, &map, &id) else {
                continue;
            };
            let mut values = keys_of(doc, &t, "values");
            values.sort();
            themes.push(Theme {
                label: str_at(doc, &t, "label").unwrap_or_default(),
                explanation: str_at(doc, &t, "explanation").unwrap_or_default(),
                values,
                created_at: i64_at(doc, &t, "created_at").unwrap_or(0),
                id,
            });
        }
    }
    themes.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut tasks = Vec::new();
    if let Some(map) = map_at(doc, &ROOT, "tasks") {
        for id in doc.keys(&map).collect::<Vec<_>>() {
            let Some(t) = map_at(doc, &map, &id) else {
                continue;
            };
            let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
            tasks.push(Task {
                title: str_at(doc, &t, "title").unwrap_or_default(),
                office: nonempty(str_at(doc, &t, "office")),
                person: str_at(doc, &t, "person").unwrap_or_default(),
                due: nonempty(str_at(doc, &t, "due")),
                status: str_at(doc, &t, "status")
                    .and_then(|s| TaskStatus::parse(&s).ok())
                    .unwrap_or(TaskStatus::AFaire),
                resources: ids(keys_of(doc, &t, "resources")),
                created_at: i64_at(doc, &t, "created_at").unwrap_or(0),
                created_by: str_at(doc, &t, "created_by").unwrap_or_default(),
                id,
            });
        }
    }
    tasks.sort_by(|a, b| {
        (
            a.due.is_none(),
            &a.due,
            crate::fr::sort_key(&a.title),
            &a.id,
        )
            .cmp(&(
                b.due.is_none(),
                &b.due,
                crate::fr::sort_key(&b.title),
                &b.id,
            ))
    });
    Ok(Group {
        name: str_at(doc, &ROOT, "name").unwrap_or_default(),
        slogan: str_at(doc, &ROOT, "slogan").unwrap_or_default(),
        action: str_at(doc, &ROOT, "action").unwrap_or_default(),
        line: str_at(doc, &ROOT, "line").unwrap_or_default(),
        members,
        publics,
        themes,
        resources: ids(keys_of(doc, &ROOT, "resources")),
        approval_required: bool_at(doc, &ROOT, "approval_required").unwrap_or(true),
        tasks,
        created_at: i64_at(doc, &ROOT, "created_at").unwrap_or(0),
        created_by: str_at(doc, &ROOT, "created_by").unwrap_or_default(),
    })
}

fn ids(keys: Vec<String>) -> Vec<DocumentId> {
    let mut ids: Vec<DocumentId> = keys.iter().filter_map(|k| k.parse().ok()).collect();
    ids.sort();
    ids
}

impl Group {
    pub fn is_member(&self, office: &str) -> bool {
        self.members.iter().any(|m| m == office)
    }

    /// Whether a resource belongs to the group: added by hand, or written by a member office.
    pub fn has_resource(&self, entry: &ListingEntry) -> bool {
        !entry.deleted && (self.resources.contains(&entry.id) || self.is_member(&entry.office))
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Share of the plan de charge done, per cent (0 with no task).
    pub fn progress(&self) -> u32 {
        let done = self
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Fait)
            .count();
        (done * 100).checked_div(self.tasks.len()).unwrap_or(0) as u32
    }

    /// Each office's share of the plan: (office, tasks, done, late), members first then others
    /// in charge of a task, then the tasks nobody took (`None`).
    pub fn shares(&self, today: &str) -> Vec<Share> {
        let mut by: BTreeMap<Option<String>, Share> = BTreeMap::new();
        for m in &self.members {
            by.insert(Some(m.clone()), Share::new(Some(m.clone())));
        }
        for t in &self.tasks {
            let s = by
                .entry(t.office.clone())
                .or_insert_with(|| Share::new(t.office.clone()));
            s.tasks += 1;
            s.done += usize::from(t.status == TaskStatus::Fait);
            s.late += usize::from(t.is_late(today));
        }
        let mut shares: Vec<Share> = by.into_values().collect();
        shares.sort_by_key(|s| s.office.is_none());
        shares
    }

    /// Tasks grouped by due month (`YYYY-MM`; `None` for no due date, last).
    pub fn by_month(&self) -> Vec<(Option<String>, Vec<&Task>)> {
        let mut months: BTreeMap<(bool, Option<String>), Vec<&Task>> = BTreeMap::new();
        for t in &self.tasks {
            let month = t.due.as_ref().map(|d| d[..7.min(d.len())].to_string());
            months.entry((month.is_none(), month)).or_default().push(t);
        }
        months.into_iter().map(|((_, m), ts)| (m, ts)).collect()
    }

    /// Whether a resource is under a theme: it has one of the theme's vocabulary values.
    pub fn theme_matches(theme: &Theme, entry: &ListingEntry) -> bool {
        theme.values.iter().any(|v| {
            let Some((vocabulary, code)) = v.split_once(':') else {
                return false;
            };
            let values = match vocabulary {
                vocab::AXES => &entry.axes,
                vocab::THEMES => &entry.themes,
                vocab::SECTORS => &entry.sectors,
                _ => return false,
            };
            values.iter().any(|x| x == code)
        })
    }
}

/// One office's part of a plan de charge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// `None`: tasks no office took yet.
    pub office: Option<String>,
    pub tasks: usize,
    pub done: usize,
    pub late: usize,
}

impl Share {
    fn new(office: Option<String>) -> Self {
        Self {
            office,
            tasks: 0,
            done: 0,
            late: 0,
        }
    }
}

fn check_text(value: &str, field: &'static str, label: &'static str) -> Result<String, WorkError> {
    let chars = value.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(WorkError::invalid(
            field,
            label,
            format!("{chars} caractères, au plus {MAX_TEXT_CHARS}"),
        ));
    }
    Ok(value.trim().to_string())
}

/// A public: an audience code, or the group's own words.
fn public(value: &str) -> Result<String, WorkError> {
    line(value, "publics", "Publics visés", true, MAX_NAME_CHARS)
}

fn check_theme_value(value: &str) -> Result<(), WorkError> {
    let known = value.split_once(':').is_some_and(|(vocabulary, code)| {
        THEME_VOCABULARIES.contains(&vocabulary) && vocab::label(vocabulary, code).is_some()
    });
    if known {
        Ok(())
    } else {
        Err(WorkError::invalid(
            "theme_values",
            "Valeurs du vocabulaire",
            format!("« {value} » n'est pas une valeur des vocabulaires axes, thèmes ou filières (attendu : themes:habitat, sectors:terre…)"),
        ))
    }
}

/// The office in charge of a task: a member of the group, or none (empty).
fn task_office(group: &Group, value: &str) -> Result<Option<String>, WorkError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let o = office(value, "office", "Bureau responsable")?.to_string();
    if !group.is_member(&o) {
        return Err(WorkError::invalid(
            "office",
            "Bureau responsable",
            format!(
                "{o} n'est pas membre du groupe « {} » (membres : {})",
                group.name,
                group.members.join(", ")
            ),
        ));
    }
    Ok(Some(o))
}

/// A due date: `YYYY-MM-DD` (or `JJ/MM/AAAA`), a real calendar day; empty for none.
pub fn due_date(value: &str) -> Result<Option<String>, WorkError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let iso = match value.split('/').collect::<Vec<_>>()[..] {
        [d, m, y] => format!("{y}-{m:0>2}-{d:0>2}"),
        _ => value.to_string(),
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(&iso, &format)
        .map(|d| Some(d.format(&format).unwrap_or(iso.clone())))
        .map_err(|_| {
            WorkError::invalid(
                "due",
                "Échéance",
                format!("« {value} » n'est pas une date (attendu : 2027-03-31 ou 31/03/2027)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn group(members: &[&str]) -> AutoCommit {
        let mut doc = AutoCommit::new();
        let new = NewGroup {
            name: "Massif central".into(),
            slogan: "Bâtir avec le territoire".into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            approval_required: true,
            ..NewGroup::default()
        };
        create(&mut doc, &new, "caue-63", NOW).unwrap();
        doc
    }

    fn add_task(doc: &mut AutoCommit, id: &str, office: &str) {
        let task = NewTask {
            title: format!("Tâche {id}"),
            office: Some(office.into()),
            person: String::new(),
            due: Some("2027-03-31".into()),
            status: None,
            resources: vec![],
        };
        apply(
            doc,
            &[GroupEdit::AddTask {
                id: id.into(),
                task,
            }],
            "caue-63",
            NOW,
        )
        .unwrap();
    }

    #[test]
    fn a_new_group_reads_back_with_its_founder_as_member() {
        let doc = group(&["caue-15"]);
        let g = read(&doc).unwrap();
        assert_eq!(g.members, ["caue-15", "caue-63"]);
        assert_eq!(
            (g.name.as_str(), g.approval_required),
            ("Massif central", true)
        );
    }

    #[test]
    fn bad_tasks_are_refused_with_nothing_saved() {
        let mut doc = group(&["caue-15"]);
        let heads = doc.get_heads();
        let bad = |office: &str, due: &str| GroupEdit::AddTask {
            id: "t1".into(),
            task: NewTask {
                title: "Écrire la fiche".into(),
                office: Some(office.into()),
                person: String::new(),
                due: Some(due.into()),
                status: None,
                resources: vec![],
            },
        };
        let outside = apply(&mut doc, &[bad("caue-07", "2027-01-01")], "caue-63", NOW).unwrap_err();
        assert_eq!(outside.field(), Some("office"));
        assert!(
            outside.to_string().contains("n'est pas membre"),
            "{outside}"
        );
        let not_a_date =
            apply(&mut doc, &[bad("caue-15", "31 février")], "caue-63", NOW).unwrap_err();
        assert_eq!(not_a_date.field(), Some("due"));
        let no_day = apply(&mut doc, &[bad("caue-15", "2027-02-30")], "caue-63", NOW).unwrap_err();
        assert_eq!(no_day.field(), Some("due"));
        assert_eq!(doc.get_heads(), heads, "nothing was committed");
        assert!(read(&doc).unwrap().tasks.is_empty());
    }

    #[test]
    fn a_non_member_cannot_edit_the_group() {
        let mut doc = group(&["caue-15"]);
        let e = apply(
            &mut doc,
            &[GroupEdit::ApprovalRequired(false)],
            "caue-07",
            NOW,
        )
        .unwrap_err();
        assert!(matches!(e, WorkError::NotAMember { .. }), "{e}");
    }

    #[test]
    fn concurrent_task_edits_merge() {
        let mut a = group(&["caue-15"]);
        add_task(&mut a, "t1", "caue-63");
        add_task(&mut a, "t2", "caue-63");
        let mut b = a.fork().with_actor(automerge::ActorId::random());
        // One office renames t1 while the other changes its status; both take a task at once.
        let set = |id: &str, change| GroupEdit::SetTask {
            id: id.into(),
            change,
        };
        apply(
            &mut a,
            &[set("t1", TaskChange::Title("Rédiger la fiche".into()))],
            "caue-63",
            NOW,
        )
        .unwrap();
        apply(
            &mut b,
            &[set("t1", TaskChange::Status(TaskStatus::EnCours))],
            "caue-15",
            NOW,
        )
        .unwrap();
        apply(
            &mut a,
            &[set("t2", TaskChange::Office("caue-63".into()))],
            "caue-63",
            NOW,
        )
        .unwrap();
        add_task(&mut b, "t3", "caue-15");
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        let (ga, gb) = (read(&a).unwrap(), read(&b).unwrap());
        assert_eq!(ga, gb);
        let t1 = ga.task("t1").unwrap();
        assert_eq!(
            (t1.title.as_str(), t1.status),
            ("Rédiger la fiche", TaskStatus::EnCours)
        );
        assert_eq!(ga.tasks.len(), 3);
    }

    #[test]
    fn shares_count_late_tasks_per_office() {
        let mut doc = group(&["caue-15"]);
        add_task(&mut doc, "t1", "caue-15");
        add_task(&mut doc, "t2", "caue-63");
        let done = GroupEdit::SetTask {
            id: "t2".into(),
            change: TaskChange::Status(TaskStatus::Fait),
        };
        apply(&mut doc, &[done], "caue-63", NOW).unwrap();
        let g = read(&doc).unwrap();
        let shares = g.shares("2027-04-01");
        let of = |o: &str| {
            shares
                .iter()
                .find(|s| s.office.as_deref() == Some(o))
                .unwrap()
                .clone()
        };
        assert_eq!((of("caue-15").tasks, of("caue-15").late), (1, 1));
        assert_eq!((of("caue-63").done, of("caue-63").late), (1, 0));
        assert_eq!(g.progress(), 50);
        assert_eq!(g.by_month()[0].0.as_deref(), Some("2027-03"));
    }

    #[test]
    fn due_dates_accept_french_order_and_refuse_non_dates() {
        assert_eq!(
            due_date("31/03/2027").unwrap().as_deref(),
            Some("2027-03-31")
        );
        assert_eq!(due_date("").unwrap(), None);
        assert!(due_date("demain").is_err());
    }
}
