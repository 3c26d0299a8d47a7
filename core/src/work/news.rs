//! « Quoi de neuf » : what other offices changed since a visit, read from the documents' own
//! change history (each change's time and [`ChangeNote`]), so there is no second log to keep in
//! step with the documents.

use std::collections::BTreeMap;

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};

use crate::document::ChangeNote;
use crate::ids::DocumentId;

/// What kind of document an item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocKind {
    Resource,
    Group,
    Thread,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewsKind {
    /// A resource created.
    Created,
    /// A resource edited (`details`: the fields).
    Edited,
    /// Comments added, edited or deleted.
    Comment,
    /// Review steps (`details`: their kinds).
    Review,
    /// Tasks of a plan de charge (`details`: the task ids).
    Task,
    /// The group itself (line, themes, members…).
    Group,
}

impl NewsKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Created => "nouvelle fiche",
            Self::Edited => "fiche modifiée",
            Self::Comment => "discussion",
            Self::Review => "relecture",
            Self::Task => "plan de charge",
            Self::Group => "groupe de travail",
        }
    }
}

/// One line of « Quoi de neuf »: one office's changes of one kind to one document on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewsItem {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub office: String,
    pub kind: NewsKind,
    pub doc: DocumentId,
    /// The newest change's time, ms.
    pub at: i64,
    /// Fields edited, comment or task ids, review steps; sorted, without repeats.
    pub details: Vec<String>,
    pub changes: usize,
    /// What the item links to: the resource, or the resource or task a thread is about (`None`
    /// for a group: `doc` is the group). Filled by the replica.
    #[serde(default)]
    pub subject: Option<crate::work::thread::Subject>,
    /// The resource's title, the group's name, or the thread subject's title.
    #[serde(default)]
    pub title: String,
}

/// The changes of `doc` made at or after `since_ms` by offices other than `own`, as items.
/// Automerge keeps change times in seconds: the comparison is on whole seconds, so a change in
/// the same second as the visit is shown again rather than missed.
pub fn of_document(
    id: &DocumentId,
    doc: &mut AutoCommit,
    kind: DocKind,
    since_ms: i64,
    own: &str,
) -> Vec<NewsItem> {
    let since_s = since_ms.div_euclid(1000);
    let mut items: BTreeMap<(String, String, NewsKind), NewsItem> = BTreeMap::new();
    // Metadata only: building whole changes would encode every operation of the document.
    for change in doc.get_changes_meta(&[]) {
        if change.timestamp < since_s {
            continue;
        }
        let Some(note) = change
            .message
            .as_deref()
            .and_then(|m| serde_json::from_str::<ChangeNote>(m).ok())
        else {
            continue;
        };
        if note.office == own {
            continue;
        }
        let first = change.deps.is_empty();
        for (news, detail) in classify(kind, first, &note.fields) {
            let at = change.timestamp.saturating_mul(1000);
            let day = day_of(at);
            let item = items
                .entry((day.clone(), note.office.clone(), news))
                .or_insert_with(|| NewsItem {
                    day,
                    office: note.office.clone(),
                    kind: news,
                    doc: *id,
                    at,
                    details: Vec::new(),
                    changes: 0,
                    subject: None,
                    title: String::new(),
                });
            item.at = item.at.max(at);
            item.changes += 1;
            if let Some(detail) = detail {
                if !item.details.contains(&detail) {
                    item.details.push(detail);
                }
            }
        }
    }
    // A resource created and then edited the same day by the same office is one new resource.
    let created: Vec<(String, String)> = items
        .keys()
        .filter(|(_, _, k)| *k == NewsKind::Created)
        .map(|(d, o, _)| (d.clone(), o.clone()))
        .collect();
    for (day, office) in created {
        if let Some(edited) = items.remove(&(day.clone(), office.clone(), NewsKind::Edited)) {
            if let Some(c) = items.get_mut(&(day, office, NewsKind::Created)) {
                c.at = c.at.max(edited.at);
                c.changes += edited.changes;
            }
        }
    }
    items
        .into_values()
        .map(|mut i| {
            i.details.sort();
            i
        })
        .collect()
}

/// What one change's note says happened: (kind, detail) pairs.
fn classify(kind: DocKind, first: bool, fields: &[String]) -> Vec<(NewsKind, Option<String>)> {
    match kind {
        DocKind::Resource if first => vec![(NewsKind::Created, None)],
        DocKind::Resource => fields
            .iter()
            .map(|f| (NewsKind::Edited, Some(f.clone())))
            .collect(),
        DocKind::Group | DocKind::Thread => fields
            .iter()
            .map(|f| {
                let mut parts = f.splitn(3, ':');
                let (head, id) = (parts.next().unwrap_or(""), parts.next());
                match head {
                    "comment" => (NewsKind::Comment, id.map(str::to_string)),
                    "review" => (NewsKind::Review, id.map(str::to_string)),
                    "task" => (NewsKind::Task, id.map(str::to_string)),
                    _ => (NewsKind::Group, id.map(str::to_string)),
                }
            })
            .collect(),
    }
}

/// The UTC day of a time in ms, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Items sorted for reading: newest day first, then by office, then newest first.
pub fn sort(items: &mut [NewsItem]) {
    items.sort_by(|a, b| {
        b.day
            .cmp(&a.day)
            .then_with(|| a.office.cmp(&b.office))
            .then_with(|| b.at.cmp(&a.at))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::thread::{add_comment, NewComment, Subject};

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_780_000_000_000;

    #[test]
    fn only_other_offices_changes_since_the_visit_are_listed() {
        let subject = Subject::Resource(DocumentId::derived("r"));
        let mut doc = AutoCommit::new();
        let say = |text: &str| NewComment {
            parent: None,
            author: String::new(),
            text: text.into(),
        };
        add_comment(
            &mut doc,
            &subject,
            "old",
            &say("Ancien"),
            "caue-15",
            NOW - DAY,
        )
        .unwrap();
        add_comment(
            &mut doc,
            &subject,
            "mine",
            &say("À moi"),
            "caue-63",
            NOW + 1000,
        )
        .unwrap();
        add_comment(
            &mut doc,
            &subject,
            "new",
            &say("Nouveau"),
            "caue-15",
            NOW + 2000,
        )
        .unwrap();
        let items = of_document(
            &subject.thread_id(),
            &mut doc,
            DocKind::Thread,
            NOW,
            "caue-63",
        );
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].office.as_str(), items[0].kind),
            ("caue-15", NewsKind::Comment)
        );
        assert_eq!(items[0].details, ["new"]);
        assert_eq!(items[0].day, day_of(NOW + 2000));
    }
}
