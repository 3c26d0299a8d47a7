//! Working together: a group's document (editorial line, themes, members, plan de charge),
//! the threads (discussion and review of a resource or a task) and the publications
//! numériques, Automerge documents synced like resources; `news` reads what changed from the documents' own change history.
//!
//! Every structure two offices may create at once is a map keyed by a fresh random id (tasks,
//! themes, comments, review events) or by a value (members, publics, linked resources), so
//! concurrent edits merge instead of one container replacing another. A thread's document id is
//! derived from its subject: the first comment on a resource, made offline in two offices,
//! lands in one document. Every change carries the office's [`ChangeNote`], whose `fields` name
//! what changed (`task:<id>:status`, `comment:<id>`, `review:demande`, …) for « Quoi de neuf ».

pub mod group;
pub mod news;
pub mod publication;
pub mod thread;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::document::ChangeNote;
use crate::ids::{DocumentId, OfficeId};

/// `@type` of a group's document.
pub const GROUP_TYPE: &str = "atelier/groupe";
/// `@type` of a thread's document.
pub const THREAD_TYPE: &str = "atelier/fil";
/// `@type` of a publication's document.
pub const PUBLICATION_TYPE: &str = "atelier/publication";

/// What indexes keep of a working-together document (see `card::Card::work`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkCard {
    Group {
        name: String,
        /// Member offices, sorted: the relay lets only them write the group.
        members: Vec<String>,
        updated_at: i64,
    },
    Thread {
        /// The subject's key (`thread::Subject::key`).
        subject: String,
        /// Offices mentioned in a comment that is not deleted.
        mentions: Vec<String>,
        /// The office asked to review, while the request is open.
        review_asked: Option<String>,
        updated_at: i64,
    },
    Publication {
        title: String,
        /// Its resource of kind `publication`.
        resource: Option<DocumentId>,
        sections: usize,
        updated_at: i64,
    },
}

impl WorkCard {
    /// The card of a group or thread document; `None` for any other document.
    pub fn of(doc: &AutoCommit, updated_at: i64) -> Option<Self> {
        match str_at(doc, &ROOT, "@type")?.as_str() {
            GROUP_TYPE => {
                let g = group::read(doc).ok()?;
                Some(Self::Group {
                    name: g.name,
                    members: g.members,
                    updated_at,
                })
            }
            THREAD_TYPE => {
                let t = thread::read(doc).ok()?;
                let mut mentions: Vec<String> = t
                    .comments
                    .iter()
                    .filter(|c| c.deleted_at.is_none())
                    .flat_map(|c| c.mentions.iter().cloned())
                    .collect();
                mentions.sort();
                mentions.dedup();
                Some(Self::Thread {
                    review_asked: t.review().asked_to().map(str::to_string),
                    subject: t.subject,
                    mentions,
                    updated_at,
                })
            }
            PUBLICATION_TYPE => {
                let p = publication::read(doc).ok()?;
                Some(Self::Publication {
                    title: p.title,
                    resource: p.resource,
                    sections: p.sections.len(),
                    updated_at,
                })
            }
            _ => None,
        }
    }

    pub fn updated_at(&self) -> i64 {
        match self {
            Self::Group { updated_at, .. }
            | Self::Thread { updated_at, .. }
            | Self::Publication { updated_at, .. } => *updated_at,
        }
    }
}

/// Longest name, slogan, action name, task title or person's name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest editorial line or theme explanation, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest comment, in characters: a discussion is not a document (a page of text is ~3,000).
pub const MAX_COMMENT_CHARS: usize = 5_000;

/// Why a working-together edit was refused, worded for office staff. Nothing is written.
#[derive(Debug, Error, PartialEq)]
pub enum WorkError {
    /// A field's value is not acceptable.
    #[error("{label} : {message}")]
    Invalid {
        /// The field's name in forms (`office`, `due`, `text`…), for placing the message.
        field: &'static str,
        label: &'static str,
        message: String,
    },
    /// The office is not a member of the group it tries to change.
    #[error("le bureau {office} n'est pas membre du groupe « {group} » : seuls ses membres peuvent le modifier (lecture seule pour les autres)")]
    NotAMember { office: String, group: String },
    /// No such group, task, comment…
    #[error("{0} introuvable")]
    NotFound(String),
    /// Only the office that did something may change it.
    #[error("{0}")]
    Forbidden(String),
    /// The document is not what it should be.
    #[error("document illisible : {0}")]
    Malformed(String),
}

impl WorkError {
    pub(crate) fn invalid(
        field: &'static str,
        label: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field,
            label,
            message: message.into(),
        }
    }

    /// The form field this error belongs next to, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<automerge::AutomergeError> for WorkError {
    fn from(e: automerge::AutomergeError) -> Self {
        Self::Malformed(e.to_string())
    }
}

/// A short random id for a task, theme, comment or review event (64 bits, hex): unique among
/// what offices create concurrently in one document.
pub fn new_key(rng: &mut impl rand::RngCore) -> String {
    format!("{:016x}", rng.next_u64())
}

/// Checks a one-line value: trimmed, not empty when `required`, at most `max` characters.
pub(crate) fn line(
    value: &str,
    field: &'static str,
    label: &'static str,
    required: bool,
    max: usize,
) -> Result<String, WorkError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(WorkError::invalid(field, label, "ce champ est obligatoire"));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(WorkError::invalid(
            field,
            label,
            format!("{chars} caractères, au plus {max}"),
        ));
    }
    Ok(value.to_string())
}

/// Parses an office code for a field, in French when it is wrong.
pub(crate) fn office(
    value: &str,
    field: &'static str,
    label: &'static str,
) -> Result<OfficeId, WorkError> {
    value.trim().parse::<OfficeId>().map_err(|_| {
        WorkError::invalid(
            field,
            label,
            format!(
                "« {} » n'est pas un bureau (attendu : caue-XX, XX le numéro du département)",
                value.trim()
            ),
        )
    })
}

/// Commits the pending operations with the office's note naming `fields`.
pub(crate) fn commit(doc: &mut AutoCommit, office: &str, fields: Vec<String>, now_ms: i64) {
    let note = ChangeNote {
        office: office.to_string(),
        fields,
    };
    let message = serde_json::to_string(&note).unwrap_or_default();
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(message)
            .with_time(now_ms / 1000),
    );
}

// Reading and writing raw Automerge values: these documents are maps of maps keyed by ids,
// which autosurgeon's struct mapping would replace wholesale on concurrent creation.

pub(crate) fn str_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_string),
        (Value::Object(ObjType::Text), text) => doc.text(&text).ok(),
        _ => None,
    }
}

pub(crate) fn i64_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            automerge::ScalarValue::Int(i) => Some(*i),
            automerge::ScalarValue::Uint(u) => i64::try_from(*u).ok(),
            automerge::ScalarValue::Timestamp(t) => Some(*t),
            automerge::ScalarValue::F64(f) => Some(*f as i64),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn bool_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<bool> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            automerge::ScalarValue::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn map_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok()?? {
        (Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

/// The keys of the map at `obj.key` (empty if there is none).
pub(crate) fn keys_of(doc: &AutoCommit, obj: &ObjId, key: &str) -> Vec<String> {
    map_at(doc, obj, key).map_or_else(Vec::new, |m| doc.keys(&m).collect())
}

/// The map at `obj.key`, created if missing.
pub(crate) fn ensure_map(doc: &mut AutoCommit, obj: &ObjId, key: &str) -> Result<ObjId, WorkError> {
    match map_at(doc, obj, key) {
        Some(m) => Ok(m),
        None => Ok(doc.put_object(obj, key, ObjType::Map)?),
    }
}

/// Puts a text value as Automerge `Text`, changed by a diff when it exists (concurrent edits
/// of an editorial line merge).
pub(crate) fn put_text(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &str,
) -> Result<(), WorkError> {
    let text = match doc.get(obj, key)? {
        Some((Value::Object(ObjType::Text), text)) => text,
        _ => doc.put_object(obj, key, ObjType::Text)?,
    };
    doc.update_text(&text, value)?;
    Ok(())
}
