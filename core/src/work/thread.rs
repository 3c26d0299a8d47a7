//! A thread: the discussion of one resource or task (comments with replies, edits and deletions
//! kept, mentions of offices) and a resource's review (asked of an office, approved or sent
//! back, published), in a document of its own so the resource's document does not grow with it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ROOT};
use serde::{Deserialize, Serialize};

use super::{
    commit, i64_at, line, map_at, office, str_at, WorkError, MAX_COMMENT_CHARS, MAX_NAME_CHARS,
    THREAD_TYPE,
};
use crate::ids::{DocumentId, OfficeId};

/// Root keys of comments start with this, review events with [`REVIEW_PREFIX`]: both live at
/// the root, so two offices starting the same thread offline never write the same container.
const COMMENT_PREFIX: &str = "c:";
const REVIEW_PREFIX: &str = "r:";

/// What a thread is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Resource(DocumentId),
    Task { group: DocumentId, task: String },
}

impl Subject {
    /// The subject as one string, stored in the thread and in its card.
    pub fn key(&self) -> String {
        match self {
            Self::Resource(id) => format!("ressource:{}", id.url()),
            Self::Task { group, task } => format!("tache:{}/{task}", group.url()),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        if let Some(url) = key.strip_prefix("ressource:") {
            return url.parse().ok().map(Self::Resource);
        }
        let (group, task) = key.strip_prefix("tache:")?.rsplit_once('/')?;
        Some(Self::Task {
            group: group.parse().ok()?,
            task: task.to_string(),
        })
    }

    /// The thread's document id, the same on every replica.
    pub fn thread_id(&self) -> DocumentId {
        DocumentId::derived(&format!("atelier/fil/{}", self.key()))
    }
}

/// A thread as read from its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub subject: String,
    /// Oldest first; replies name their parent.
    pub comments: Vec<Comment>,
    /// Oldest first.
    pub reviews: Vec<ReviewEvent>,
}

/// One comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub parent: Option<String>,
    pub office: String,
    /// The person's name, as they gave it (may be empty).
    pub author: String,
    /// The current text (empty once deleted).
    pub text: String,
    /// Every text it had, oldest first, with when (ms): edits keep the earlier ones.
    pub versions: Vec<(String, i64)>,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
    /// Offices mentioned (« @caue-15 »).
    pub mentions: Vec<String>,
}

impl Comment {
    pub fn edited(&self) -> bool {
        self.versions.len() > 1
    }
}

/// A step of a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// Review asked of an office (`to`).
    Demande,
    Approbation,
    /// Sent back to the author with a comment.
    Renvoi,
    /// Published (after an approval when a group asks for one).
    Publication,
}

impl ReviewKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Demande => "demande",
            Self::Approbation => "approbation",
            Self::Renvoi => "renvoi",
            Self::Publication => "publication",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [
            Self::Demande,
            Self::Approbation,
            Self::Renvoi,
            Self::Publication,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }

    /// What the history line says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Demande => "relecture demandée",
            Self::Approbation => "approuvée",
            Self::Renvoi => "renvoyée avec un commentaire",
            Self::Publication => "publiée",
        }
    }
}

/// One review event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewEvent {
    pub id: String,
    pub kind: ReviewKind,
    pub office: String,
    pub author: String,
    /// The office asked (a `Demande`).
    pub to: Option<String>,
    pub comment: String,
    pub at: i64,
}

/// Where a review stands, from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewState {
    /// The open request, if the last step is a request.
    pub asked: Option<ReviewEvent>,
    /// The last approval since the last request.
    pub approved: Option<ReviewEvent>,
    /// The last sending back since the last request.
    pub returned: Option<ReviewEvent>,
    pub published: Option<ReviewEvent>,
}

impl ReviewState {
    pub fn asked_to(&self) -> Option<&str> {
        self.asked.as_ref().and_then(|e| e.to.as_deref())
    }
}

impl Thread {
    pub fn comment(&self, id: &str) -> Option<&Comment> {
        self.comments.iter().find(|c| c.id == id)
    }

    /// The review's state: events replayed in order.
    pub fn review(&self) -> ReviewState {
        let mut state = ReviewState::default();
        for e in &self.reviews {
            match e.kind {
                ReviewKind::Demande => {
                    state = ReviewState {
                        asked: Some(e.clone()),
                        ..ReviewState::default()
                    }
                }
                ReviewKind::Approbation => {
                    state.asked = None;
                    state.approved = Some(e.clone());
                }
                ReviewKind::Renvoi => {
                    state.asked = None;
                    state.approved = None;
                    state.returned = Some(e.clone());
                }
                ReviewKind::Publication => state.published = Some(e.clone()),
            }
        }
        state
    }
}

/// A new comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewComment {
    /// The comment replied to.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub author: String,
    pub text: String,
}

/// Sets the thread's type and subject if missing (the same values on every replica).
fn ensure(doc: &mut AutoCommit, subject: &Subject) -> Result<(), WorkError> {
    if str_at(doc, &ROOT, "@type").is_none() {
        doc.put(ROOT, "@type", THREAD_TYPE)?;
        doc.put(ROOT, "subject", subject.key())?;
    }
    Ok(())
}

/// Offices a text mentions (« @caue-15 »), each a real office; an unknown one is an error.
pub fn mentions(text: &str) -> Result<Vec<String>, WorkError> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices('@') {
        let word: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if word.is_empty() {
            continue;
        }
        let office = word.parse::<OfficeId>().map_err(|_| {
            WorkError::invalid(
                "text",
                "Commentaire",
                format!("« @{word} » ne désigne aucun bureau (attendu : @caue-XX, XX le numéro du département)"),
            )
        })?;
        found.push(office.to_string());
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn comment_text(text: &str) -> Result<String, WorkError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(WorkError::invalid(
            "text",
            "Commentaire",
            "le commentaire est vide",
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(WorkError::invalid(
            "text",
            "Commentaire",
            format!("{chars} caractères, au plus {MAX_COMMENT_CHARS} : découpez-le ou joignez un document"),
        ));
    }
    Ok(text.to_string())
}

/// Adds a comment under `id`; returns its mentions.
pub fn add_comment(
    doc: &mut AutoCommit,
    subject: &Subject,
    id: &str,
    new: &NewComment,
    by: &str,
    now_ms: i64,
) -> Result<Vec<String>, WorkError> {
    let text = comment_text(&new.text)?;
    let author = line(&new.author, "author", "Votre nom", false, MAX_NAME_CHARS)?;
    let mentioned = mentions(&text)?;
    if let Some(parent) = &new.parent {
        if map_at(doc, &ROOT, &format!("{COMMENT_PREFIX}{parent}")).is_none() {
            return Err(WorkError::NotFound(format!("commentaire « {parent} »")));
        }
    }
    ensure(doc, subject)?;
    let c = doc.put_object(ROOT, format!("{COMMENT_PREFIX}{id}"), ObjType::Map)?;
    doc.put(&c, "parent", new.parent.clone().unwrap_or_default())?;
    doc.put(&c, "office", by)?;
    doc.put(&c, "author", author)?;
    doc.put(&c, "created_at", now_ms)?;
    let versions = doc.put_object(&c, "versions", ObjType::List)?;
    push_version(doc, &versions, &text, now_ms)?;
    commit(doc, by, vec![format!("comment:{id}")], now_ms);
    Ok(mentioned)
}

fn push_version(
    doc: &mut AutoCommit,
    versions: &automerge::ObjId,
    text: &str,
    now_ms: i64,
) -> Result<(), WorkError> {
    let len = doc.length(versions);
    let v = doc.insert_object(versions, len, ObjType::Map)?;
    doc.put(&v, "text", text)?;
    doc.put(&v, "at", now_ms)?;
    Ok(())
}

/// Changes a comment's text (its earlier texts stay); only its office may.
pub fn edit_comment(
    doc: &mut AutoCommit,
    id: &str,
    text: &str,
    by: &str,
    now_ms: i64,
) -> Result<Vec<String>, WorkError> {
    let text = comment_text(text)?;
    let mentioned = mentions(&text)?;
    let c = own_comment(doc, id, by)?;
    let versions = match doc.get(&c, "versions")? {
        Some((automerge::Value::Object(ObjType::List), v)) => v,
        _ => {
            return Err(WorkError::Malformed(format!(
                "commentaire « {id} » sans texte"
            )))
        }
    };
    push_version(doc, &versions, &text, now_ms)?;
    commit(doc, by, vec![format!("comment:{id}:edited")], now_ms);
    Ok(mentioned)
}

/// Deletes a comment (its texts stay in the document's history); only its office may.
pub fn delete_comment(
    doc: &mut AutoCommit,
    id: &str,
    by: &str,
    now_ms: i64,
) -> Result<(), WorkError> {
    let c = own_comment(doc, id, by)?;
    doc.put(&c, "deleted_at", now_ms)?;
    commit(doc, by, vec![format!("comment:{id}:deleted")], now_ms);
    Ok(())
}

fn own_comment(doc: &AutoCommit, id: &str, by: &str) -> Result<automerge::ObjId, WorkError> {
    let c = map_at(doc, &ROOT, &format!("{COMMENT_PREFIX}{id}"))
        .ok_or_else(|| WorkError::NotFound(format!("commentaire « {id} »")))?;
    let author = str_at(doc, &c, "office").unwrap_or_default();
    if author != by {
        return Err(WorkError::Forbidden(format!(
            "seul le bureau {author} peut modifier ou supprimer ce commentaire"
        )));
    }
    Ok(c)
}

/// Records a review step under `id`.
pub fn add_review(
    doc: &mut AutoCommit,
    subject: &Subject,
    id: &str,
    event: &ReviewEvent,
    now_ms: i64,
) -> Result<(), WorkError> {
    let author = line(&event.author, "author", "Votre nom", false, MAX_NAME_CHARS)?;
    let comment = if event.comment.trim().is_empty() {
        String::new()
    } else {
        comment_text(&event.comment)?
    };
    let to = match &event.to {
        Some(to) => office(to, "to", "Bureau relecteur")?.to_string(),
        None => String::new(),
    };
    ensure(doc, subject)?;
    let e = doc.put_object(ROOT, format!("{REVIEW_PREFIX}{id}"), ObjType::Map)?;
    doc.put(&e, "kind", event.kind.code())?;
    doc.put(&e, "office", event.office.as_str())?;
    doc.put(&e, "author", author)?;
    doc.put(&e, "to", to)?;
    doc.put(&e, "comment", comment)?;
    doc.put(&e, "at", now_ms)?;
    commit(
        doc,
        &event.office,
        vec![format!("review:{}", event.kind.code())],
        now_ms,
    );
    Ok(())
}

/// Reads a thread document.
pub fn read(doc: &AutoCommit) -> Result<Thread, WorkError> {
    if str_at(doc, &ROOT, "@type").as_deref() != Some(THREAD_TYPE) {
        return Err(WorkError::Malformed(
            "ce n'est pas un fil de discussion".into(),
        ));
    }
    let mut comments = Vec::new();
    let mut reviews = Vec::new();
    for key in doc.keys(ROOT).collect::<Vec<_>>() {
        let Some(obj) = map_at(doc, &ROOT, &key) else {
            continue;
        };
        if let Some(id) = key.strip_prefix(COMMENT_PREFIX) {
            let mut versions = Vec::new();
            if let Ok(Some((automerge::Value::Object(ObjType::List), list))) =
                doc.get(&obj, "versions")
            {
                for i in 0..doc.length(&list) {
                    if let Ok(Some((_, v))) = doc.get(&list, i) {
                        versions.push((
                            str_at(doc, &v, "text").unwrap_or_default(),
                            i64_at(doc, &v, "at").unwrap_or(0),
                        ));
                    }
                }
            }
            let deleted_at = i64_at(doc, &obj, "deleted_at");
            let text = match deleted_at {
                Some(_) => String::new(),
                None => versions.last().map(|(t, _)| t.clone()).unwrap_or_default(),
            };
            comments.push(Comment {
                id: id.to_string(),
                parent: str_at(doc, &obj, "parent").filter(|p| !p.is_empty()),
                office: str_at(doc, &obj, "office").unwrap_or_default(),
                author: str_at(doc, &obj, "author").unwrap_or_default(),
                mentions: mentions(&text).unwrap_or_default(),
                text,
                versions,
                created_at: i64_at(doc, &obj, "created_at").unwrap_or(0),
                deleted_at,
            });
        } else if let Some(id) = key.strip_prefix(REVIEW_PREFIX) {
            let Some(kind) = str_at(doc, &obj, "kind").and_then(|k| ReviewKind::parse(&k)) else {
                continue;
            };
            reviews.push(ReviewEvent {
                id: id.to_string(),
                kind,
                office: str_at(doc, &obj, "office").unwrap_or_default(),
                author: str_at(doc, &obj, "author").unwrap_or_default(),
                to: str_at(doc, &obj, "to").filter(|t| !t.is_empty()),
                comment: str_at(doc, &obj, "comment").unwrap_or_default(),
                at: i64_at(doc, &obj, "at").unwrap_or(0),
            });
        }
    }
    comments.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    reviews.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    Ok(Thread {
        subject: str_at(doc, &ROOT, "subject").unwrap_or_default(),
        comments,
        reviews,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn subject() -> Subject {
        Subject::Resource(DocumentId::derived("maison"))
    }

    fn say(text: &str) -> NewComment {
        NewComment {
            parent: None,
            author: "Marie".into(),
            text: text.into(),
        }
    }

    #[test]
    fn two_offices_starting_the_same_thread_offline_keep_both_comments() {
        let mut a = AutoCommit::new();
        let mut b = AutoCommit::new();
        add_comment(
            &mut a,
            &subject(),
            "c1",
            &say("Belle fiche"),
            "caue-63",
            NOW,
        )
        .unwrap();
        add_comment(
            &mut b,
            &subject(),
            "c2",
            &say("À compléter @caue-63"),
            "caue-15",
            NOW + 1,
        )
        .unwrap();
        a.merge(&mut b).unwrap();
        let t = read(&a).unwrap();
        assert_eq!(t.comments.len(), 2);
        assert_eq!(t.subject, subject().key());
        assert_eq!(t.comments[1].mentions, ["caue-63"]);
        assert_eq!(Subject::parse(&t.subject), Some(subject()));
    }

    #[test]
    fn edits_and_deletions_keep_earlier_texts() {
        let mut doc = AutoCommit::new();
        add_comment(
            &mut doc,
            &subject(),
            "c1",
            &say("Premier jet"),
            "caue-63",
            NOW,
        )
        .unwrap();
        let reply = NewComment {
            parent: Some("c1".into()),
            ..say("Réponse")
        };
        add_comment(&mut doc, &subject(), "c2", &reply, "caue-15", NOW + 1).unwrap();
        edit_comment(&mut doc, "c1", "Second jet", "caue-63", NOW + 2).unwrap();
        let refused = edit_comment(&mut doc, "c1", "Pirate", "caue-15", NOW + 3).unwrap_err();
        assert!(matches!(refused, WorkError::Forbidden(_)));
        delete_comment(&mut doc, "c2", "caue-15", NOW + 4).unwrap();
        let t = read(&doc).unwrap();
        let c1 = t.comment("c1").unwrap();
        assert_eq!((c1.text.as_str(), c1.edited()), ("Second jet", true));
        assert_eq!(c1.versions[0].0, "Premier jet");
        let c2 = t.comment("c2").unwrap();
        assert_eq!((c2.text.as_str(), c2.deleted_at), ("", Some(NOW + 4)));
        assert_eq!(c2.versions[0].0, "Réponse");
        assert_eq!(c2.parent.as_deref(), Some("c1"));
    }

    #[test]
    fn bad_comments_are_refused_with_nothing_saved() {
        let mut doc = AutoCommit::new();
        let long = "a".repeat(MAX_COMMENT_CHARS + 1);
        for bad in [say(""), say(&long), say("Voir @caue-999 et @caue-15")] {
            let e = add_comment(&mut doc, &subject(), "c1", &bad, "caue-63", NOW).unwrap_err();
            assert_eq!(e.field(), Some("text"), "{e}");
        }
        assert!(doc.get_heads().is_empty());
    }

    #[test]
    fn a_review_request_then_approval_is_replayed_in_order() {
        let mut doc = AutoCommit::new();
        let event = |kind, office: &str, to: Option<&str>| ReviewEvent {
            id: String::new(),
            kind,
            office: office.into(),
            author: String::new(),
            to: to.map(str::to_string),
            comment: String::new(),
            at: 0,
        };
        add_review(
            &mut doc,
            &subject(),
            "r1",
            &event(ReviewKind::Demande, "caue-63", Some("caue-15")),
            NOW,
        )
        .unwrap();
        let t = read(&doc).unwrap();
        assert_eq!(t.review().asked_to(), Some("caue-15"));
        add_review(
            &mut doc,
            &subject(),
            "r2",
            &event(ReviewKind::Approbation, "caue-15", None),
            NOW + 1,
        )
        .unwrap();
        let state = read(&doc).unwrap().review();
        assert_eq!(state.asked_to(), None);
        assert_eq!(state.approved.unwrap().office, "caue-15");
    }
}
