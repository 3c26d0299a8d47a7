//! A replica's working-together operations: groups and their plan de charge, threads
//! (discussion and review), « À relire », « Pour vous » and « Quoi de neuf », over the
//! documents of `crate::work` and the work index (`keys::WORK`) the listing indexer keeps.

use automerge::AutoCommit;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ListingEntry, Replica, ReplicaError};
use crate::document::Edit;
use crate::ids::DocumentId;
use crate::store::keys::{self, META_NEWS_READ};
use crate::work::group::{self, Group, GroupEdit, NewGroup, Task, TaskStatus};
use crate::work::news::{self, DocKind, NewsItem};
use crate::work::thread::{self, Comment, NewComment, ReviewEvent, ReviewKind, Subject, Thread};
use crate::work::{new_key, WorkCard, WorkError};

/// How far back « Quoi de neuf » looks for an office that never marked it read.
pub const NEWS_FIRST_VISIT_MS: i64 = 30 * 86_400_000;

/// A group as lists show it, from the work index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub id: DocumentId,
    pub name: String,
    pub members: Vec<String>,
    pub updated_at: i64,
}

/// A resource waiting for this office's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToReview {
    pub resource: ListingEntry,
    pub asked: ReviewEvent,
}

/// A comment that mentions this office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mention {
    pub subject: Subject,
    /// The resource's or task's title.
    pub title: String,
    pub comment: Comment,
}

/// A task this office is in charge of, not done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedTask {
    pub group: DocumentId,
    pub group_name: String,
    pub task: Task,
    pub late: bool,
}

/// « Pour vous »: what asks this office for something.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForYou {
    pub reviews: Vec<ToReview>,
    pub mentions: Vec<Mention>,
    pub tasks: Vec<AssignedTask>,
}

impl ForYou {
    pub fn len(&self) -> usize {
        self.reviews.len() + self.mentions.len() + self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Replica {
    /// Every group, by name.
    pub fn groups(&self) -> Result<Vec<GroupSummary>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[keys::WORK], &mut |key, v| {
            if let (
                Some(id),
                Ok(WorkCard::Group {
                    name,
                    members,
                    updated_at,
                }),
            ) = (
                keys::document_of(key),
                serde_json::from_slice::<WorkCard>(v),
            ) {
                out.push(GroupSummary {
                    id,
                    name,
                    members,
                    updated_at,
                });
            }
            true
        })?;
        out.sort_by_cached_key(|g| crate::fr::sort_key(&g.name));
        Ok(out)
    }

    /// One group.
    pub fn group(&self, id: &DocumentId) -> Result<Group, ReplicaError> {
        Ok(group::read(&self.load(id)?)?)
    }

    /// The group a user named: its id or URL, or its name (accents and case ignored), or the
    /// start of exactly one group's name.
    pub fn resolve_group(&self, text: &str) -> Result<DocumentId, ReplicaError> {
        let groups = self.groups()?;
        if let Ok(id) = text.parse::<DocumentId>() {
            if groups.iter().any(|g| g.id == id) {
                return Ok(id);
            }
        }
        let wanted = crate::fr::fold(text.trim());
        if let Some(g) = groups.iter().find(|g| crate::fr::fold(&g.name) == wanted) {
            return Ok(g.id);
        }
        let starting: Vec<_> = groups
            .iter()
            .filter(|g| crate::fr::fold(&g.name).starts_with(&wanted))
            .collect();
        match starting[..] {
            [g] => Ok(g.id),
            _ => Err(WorkError::NotFound(format!("groupe « {} »", text.trim())).into()),
        }
    }

    /// Creates a group, this office its first member.
    pub fn create_group(
        &self,
        new: &NewGroup,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<DocumentId, ReplicaError> {
        let id = DocumentId::random(rng);
        let office = self.office.to_string();
        self.store.update(&id, |doc, _| {
            group::create(doc, new, &office, now_ms).map_err(ReplicaError::from)
        })?;
        self.store.flush()?;
        Ok(id)
    }

    /// Edits a group, all or nothing; refused unless this office is a member.
    pub fn edit_group(
        &self,
        id: &DocumentId,
        edits: &[GroupEdit],
        now_ms: i64,
    ) -> Result<Vec<String>, ReplicaError> {
        self.group(id)?;
        let office = self.office.to_string();
        let (fields, _) = self.store.update(id, |doc, _| {
            group::apply(doc, edits, &office, now_ms).map_err(ReplicaError::from)
        })?;
        self.store.flush()?;
        Ok(fields)
    }

    /// The resources of a group (added by hand, or written by a member office), by title.
    pub fn group_resources(&self, g: &Group) -> Result<Vec<ListingEntry>, ReplicaError> {
        Ok(self
            .list(&super::ListFilter::default())?
            .into_iter()
            .filter(|e| g.has_resource(e))
            .collect())
    }

    /// The groups a resource belongs to.
    pub fn groups_of(
        &self,
        entry: &ListingEntry,
    ) -> Result<Vec<(DocumentId, Group)>, ReplicaError> {
        let mut out = Vec::new();
        for summary in self.groups()? {
            let g = self.group(&summary.id)?;
            if g.has_resource(entry) {
                out.push((summary.id, g));
            }
        }
        Ok(out)
    }

    /// A subject's thread, if anybody wrote in it.
    pub fn thread(&self, subject: &Subject) -> Result<Option<Thread>, ReplicaError> {
        match self.store.load(&subject.thread_id())? {
            Some(doc) => Ok(Some(thread::read(&doc)?)),
            None => Ok(None),
        }
    }

    /// The title of what a thread is about: the resource's, or the task's (with its group).
    pub fn subject_title(&self, subject: &Subject) -> Result<String, ReplicaError> {
        match subject {
            Subject::Resource(id) => Ok(self
                .listing(id)?
                .map(|e| e.title)
                .ok_or_else(|| ReplicaError::NotFound(id.to_string()))?),
            Subject::Task { group, task } => {
                let g = self.group(group)?;
                let t = g
                    .task(task)
                    .ok_or_else(|| WorkError::NotFound(format!("tâche « {task} »")))?;
                Ok(format!("{} ({})", t.title, g.name))
            }
        }
    }

    /// Adds a comment to a resource's or task's thread; returns its id.
    pub fn comment(
        &self,
        subject: &Subject,
        new: &NewComment,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<String, ReplicaError> {
        self.subject_title(subject)?;
        let id = new_key(rng);
        let office = self.office.to_string();
        self.write_thread(subject, |doc| {
            thread::add_comment(doc, subject, &id, new, &office, now_ms).map(|_| ())
        })?;
        Ok(id)
    }

    /// Changes this office's comment; the earlier text stays in the thread.
    pub fn edit_comment(
        &self,
        subject: &Subject,
        id: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        let office = self.office.to_string();
        self.write_thread(subject, |doc| {
            thread::edit_comment(doc, id, text, &office, now_ms).map(|_| ())
        })
    }

    /// Deletes this office's comment (kept in the thread's history).
    pub fn delete_comment(
        &self,
        subject: &Subject,
        id: &str,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        let office = self.office.to_string();
        self.write_thread(subject, |doc| {
            thread::delete_comment(doc, id, &office, now_ms)
        })
    }

    fn write_thread(
        &self,
        subject: &Subject,
        f: impl FnOnce(&mut AutoCommit) -> Result<(), WorkError>,
    ) -> Result<(), ReplicaError> {
        let id = subject.thread_id();
        if !self.store.contains(&id)? && self.thread(subject).is_err() {
            return Err(WorkError::NotFound("fil de discussion".into()).into());
        }
        self.store
            .update(&id, |doc, _| f(doc).map_err(ReplicaError::from))?;
        self.store.flush()?;
        Ok(())
    }

    /// Asks office `to` to review a resource: the resource goes « À relire ».
    pub fn request_review(
        &self,
        resource: &DocumentId,
        to: &str,
        author: &str,
        comment: &str,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        let to = crate::work::office(to, "to", "Bureau relecteur")?.to_string();
        if to == self.office.as_str() {
            return Err(WorkError::invalid(
                "to",
                "Bureau relecteur",
                "demandez la relecture à un autre bureau que le vôtre",
            )
            .into());
        }
        self.review_step(
            resource,
            ReviewKind::Demande,
            Some(to),
            author,
            comment,
            rng,
            now_ms,
        )?;
        self.set_status(resource, "a_relire", now_ms)
    }

    /// Approves a resource this office was asked to review: it is published.
    pub fn approve(
        &self,
        resource: &DocumentId,
        author: &str,
        comment: &str,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        self.asked_of_me(resource)?;
        self.review_step(
            resource,
            ReviewKind::Approbation,
            None,
            author,
            comment,
            rng,
            now_ms,
        )?;
        self.set_status(resource, "publie", now_ms)
    }

    /// Sends a resource this office was asked to review back to its author, with a comment.
    pub fn send_back(
        &self,
        resource: &DocumentId,
        author: &str,
        comment: &str,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        self.asked_of_me(resource)?;
        if comment.trim().is_empty() {
            return Err(WorkError::invalid(
                "comment",
                "Commentaire",
                "dites ce qui est à reprendre",
            )
            .into());
        }
        self.review_step(
            resource,
            ReviewKind::Renvoi,
            None,
            author,
            comment,
            rng,
            now_ms,
        )?;
        self.set_status(resource, "brouillon", now_ms)
    }

    /// Publishes a resource: allowed when none of its groups asks for an approval, or when
    /// another office approved it.
    pub fn publish(
        &self,
        resource: &DocumentId,
        author: &str,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        self.check_publishable(resource)?;
        self.review_step(
            resource,
            ReviewKind::Publication,
            None,
            author,
            "",
            rng,
            now_ms,
        )?;
        self.set_status(resource, "publie", now_ms)
    }

    /// Refuses to publish a resource of a group asking for an approval by another office when
    /// there is none (`Replica::edit` calls it when the status becomes « publié »).
    pub fn check_publishable(&self, resource: &DocumentId) -> Result<(), ReplicaError> {
        let entry = self
            .listing(resource)?
            .ok_or_else(|| ReplicaError::NotFound(resource.to_string()))?;
        let strict: Vec<String> = self
            .groups_of(&entry)?
            .into_iter()
            .filter(|(_, g)| g.approval_required)
            .map(|(_, g)| g.name)
            .collect();
        if strict.is_empty() {
            return Ok(());
        }
        let approved = self
            .thread(&Subject::Resource(*resource))?
            .and_then(|t| t.review().approved)
            .is_some_and(|a| a.office != entry.office);
        if approved {
            return Ok(());
        }
        Err(WorkError::invalid(
            "status",
            "État de la fiche",
            format!(
                "le groupe « {} » demande l'approbation d'un autre bureau avant publication : demandez une relecture",
                strict.join(" », « ")
            ),
        )
        .into())
    }

    fn asked_of_me(&self, resource: &DocumentId) -> Result<(), ReplicaError> {
        let asked = self
            .thread(&Subject::Resource(*resource))?
            .and_then(|t| t.review().asked_to().map(str::to_string));
        if asked.as_deref() == Some(self.office.as_str()) {
            Ok(())
        } else {
            Err(WorkError::Forbidden(format!(
                "cette fiche n'attend pas de relecture du bureau {}",
                self.office
            ))
            .into())
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn review_step(
        &self,
        resource: &DocumentId,
        kind: ReviewKind,
        to: Option<String>,
        author: &str,
        comment: &str,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        let subject = Subject::Resource(*resource);
        self.subject_title(&subject)?;
        let event = ReviewEvent {
            id: new_key(rng),
            kind,
            office: self.office.to_string(),
            author: author.to_string(),
            to,
            comment: comment.to_string(),
            at: now_ms,
        };
        self.store.update(&subject.thread_id(), |doc, _| {
            thread::add_review(doc, &subject, &event.id, &event, now_ms).map_err(ReplicaError::from)
        })?;
        Ok(())
    }

    fn set_status(
        &self,
        resource: &DocumentId,
        status: &str,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        let edit = Edit::Set {
            field: "status".into(),
            value: json!(status),
        };
        self.edit(resource, &[edit], now_ms).map(|_| ())
    }

    /// Resources waiting for this office's review, oldest request first.
    pub fn to_review(&self) -> Result<Vec<ToReview>, ReplicaError> {
        let me = self.office.to_string();
        let mut out = Vec::new();
        for (_, card) in self.work_cards()? {
            let WorkCard::Thread {
                subject,
                review_asked: Some(asked),
                ..
            } = card
            else {
                continue;
            };
            let Some(Subject::Resource(id)) = Subject::parse(&subject) else {
                continue;
            };
            if asked != me {
                continue;
            }
            let (Some(resource), Some(t)) =
                (self.listing(&id)?, self.thread(&Subject::Resource(id))?)
            else {
                continue;
            };
            if let Some(asked) = t.review().asked {
                out.push(ToReview { resource, asked });
            }
        }
        out.sort_by_key(|r| r.asked.at);
        Ok(out)
    }

    /// « Pour vous »: reviews asked of this office, comments mentioning it, its open tasks.
    pub fn for_you(&self, today: &str) -> Result<ForYou, ReplicaError> {
        let me = self.office.to_string();
        let mut mentions = Vec::new();
        for (_, card) in self.work_cards()? {
            let WorkCard::Thread {
                subject,
                mentions: offices,
                ..
            } = card
            else {
                continue;
            };
            if !offices.contains(&me) {
                continue;
            }
            let Some(subject) = Subject::parse(&subject) else {
                continue;
            };
            let (Some(t), Ok(title)) = (self.thread(&subject)?, self.subject_title(&subject))
            else {
                continue;
            };
            for c in t.comments {
                if c.deleted_at.is_none() && c.mentions.contains(&me) {
                    mentions.push(Mention {
                        subject: subject.clone(),
                        title: title.clone(),
                        comment: c,
                    });
                }
            }
        }
        mentions.sort_by_key(|m| std::cmp::Reverse(m.comment.created_at));
        let mut tasks = Vec::new();
        for summary in self.groups()? {
            let g = self.group(&summary.id)?;
            for t in &g.tasks {
                if t.office.as_deref() == Some(me.as_str()) && t.status != TaskStatus::Fait {
                    tasks.push(AssignedTask {
                        group: summary.id,
                        group_name: g.name.clone(),
                        late: t.is_late(today),
                        task: t.clone(),
                    });
                }
            }
        }
        Ok(ForYou {
            reviews: self.to_review()?,
            mentions,
            tasks,
        })
    }

    fn work_cards(&self) -> Result<Vec<(DocumentId, WorkCard)>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[keys::WORK], &mut |key, v| {
            if let (Some(id), Ok(card)) = (keys::document_of(key), serde_json::from_slice(v)) {
                out.push((id, card));
            }
            true
        })?;
        Ok(out)
    }

    /// What other offices changed at or after `since_ms`: resources, groups and their plans,
    /// discussions and reviews, read from the documents' history; newest day first.
    pub fn news(&self, since_ms: i64) -> Result<Vec<NewsItem>, ReplicaError> {
        let me = self.office.to_string();
        let floor = since_ms.div_euclid(1000) * 1000;
        let mut items = Vec::new();
        let since_s = since_ms.div_euclid(1000);
        // Unchanged since, or changed by no other office since: nothing to show, no need to
        // load it (nor, with the listing in memory, to copy its entry).
        let others_since = |(office, at): &(String, i64)| *office != me && *at >= since_s;
        let changed = self.list_where(&super::ListFilter::default(), |entry| {
            entry.updated_at >= floor
                && (entry.changed_by.is_empty() || entry.changed_by.iter().any(others_since))
        })?;
        for entry in changed {
            let mut doc = self.load(&entry.id)?;
            for mut item in news::of_document(&entry.id, &mut doc, DocKind::Resource, since_ms, &me)
            {
                item.subject = Some(Subject::Resource(entry.id));
                item.title = entry.title.clone();
                items.push(item);
            }
        }
        for (id, card) in self.work_cards()? {
            if card.updated_at() < floor {
                continue;
            }
            let mut doc = self.load(&id)?;
            let (kind, subject, title) = match &card {
                WorkCard::Group { name, .. } => (DocKind::Group, None, name.clone()),
                WorkCard::Thread { subject, .. } => {
                    let subject = Subject::parse(subject);
                    let title = match &subject {
                        Some(s) => self.subject_title(s).unwrap_or_default(),
                        None => String::new(),
                    };
                    (DocKind::Thread, subject, title)
                }
                // A publication's changes show through its resource of kind `publication`.
                WorkCard::Publication { .. } => continue,
            };
            for mut item in news::of_document(&id, &mut doc, kind, since_ms, &me) {
                item.subject = subject.clone();
                item.title = title.clone();
                items.push(item);
            }
        }
        news::sort(&mut items);
        Ok(items)
    }

    /// When this office last marked « Quoi de neuf » as read (ms), if ever.
    pub fn news_read_at(&self) -> Result<Option<i64>, ReplicaError> {
        Ok(self
            .kv
            .get(META_NEWS_READ)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes))
    }

    /// Where « Quoi de neuf » starts: the last « marquer comme lu », or
    /// [`NEWS_FIRST_VISIT_MS`] ago.
    pub fn news_since(&self, now_ms: i64) -> Result<i64, ReplicaError> {
        Ok(self.news_read_at()?.unwrap_or(now_ms - NEWS_FIRST_VISIT_MS))
    }

    /// « Marquer comme lu »: local to this replica, never synced.
    pub fn mark_news_read(&self, now_ms: i64) -> Result<(), ReplicaError> {
        let mut batch = crate::store::Batch::default();
        batch.put(META_NEWS_READ.to_vec(), now_ms.to_be_bytes().to_vec());
        self.kv.apply(batch)?;
        self.store.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OfficeId;
    use crate::resource::Resource;
    use crate::store::Batch;
    use rand::{rngs::StdRng, SeedableRng};

    const NOW: i64 = 1_780_000_000_000;

    fn replica(office: &str) -> Replica {
        Replica::in_memory(office.parse::<OfficeId>().unwrap())
    }

    fn resource(r: &Replica, rng: &mut StdRng, title: &str) -> DocumentId {
        let res = Resource::from_json(&json!({
            "kind": "realisation", "title": title, "office": r.office().to_string(),
            "summary": "Résumé.", "sectors": ["terre"]
        }))
        .unwrap();
        r.create(&res, rng, NOW).unwrap()
    }

    /// Copies every document of `from` into `to`, as a sync would.
    fn sync(from: &Replica, to: &Replica) {
        let mut ids = Vec::new();
        from.store()
            .for_each_heads(&mut |id, _| {
                ids.push(id);
                true
            })
            .unwrap();
        for id in ids {
            let bytes = from.store().saved(&id).unwrap().unwrap();
            to.store().apply_bytes(&id, &bytes).unwrap();
        }
    }

    #[test]
    fn review_round_trip_and_publication_rule() {
        let mut rng = StdRng::seed_from_u64(1);
        let (a, b) = (replica("caue-63"), replica("caue-15"));
        let g = a
            .create_group(
                &NewGroup {
                    name: "Massif central".into(),
                    members: vec!["caue-15".into()],
                    approval_required: true,
                    ..NewGroup::default()
                },
                &mut rng,
                NOW,
            )
            .unwrap();
        let r = resource(&a, &mut rng, "Maison en pisé");
        let refused = a.publish(&r, "Marie", &mut rng, NOW).unwrap_err();
        assert!(refused.to_string().contains("approbation"), "{refused}");
        a.request_review(&r, "caue-15", "Marie", "", &mut rng, NOW + 1000)
            .unwrap();
        assert_eq!(a.listing(&r).unwrap().unwrap().status, "a_relire");
        sync(&a, &b);
        let waiting = b.to_review().unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].asked.office, "caue-63");
        assert!(
            a.approve(&r, "", "", &mut rng, NOW).is_err(),
            "only the office asked approves"
        );
        b.approve(&r, "Paul", "Très bien", &mut rng, NOW + 2000)
            .unwrap();
        sync(&b, &a);
        assert_eq!(a.listing(&r).unwrap().unwrap().status, "publie");
        let state = a.thread(&Subject::Resource(r)).unwrap().unwrap().review();
        assert_eq!(state.approved.unwrap().author, "Paul");
        assert_eq!(a.groups().unwrap()[0].id, g);
    }

    #[test]
    fn mentions_reach_pour_vous_and_news_lists_the_other_offices_changes() {
        let mut rng = StdRng::seed_from_u64(2);
        let (a, b) = (replica("caue-63"), replica("caue-15"));
        let r = resource(&a, &mut rng, "Halle en bois");
        sync(&a, &b);
        b.mark_news_read(NOW + 1000).unwrap();
        let say = NewComment {
            parent: None,
            author: "Léa".into(),
            text: "Vu, @caue-15 ?".into(),
        };
        let subject = Subject::Resource(r);
        a.comment(&subject, &say, &mut rng, NOW + 1000).unwrap();
        let edit = Edit::Set {
            field: "title".into(),
            value: json!("Halle en bois local"),
        };
        a.edit(&r, &[edit], NOW + 2000).unwrap();
        sync(&a, &b);
        let for_b = b.for_you("2027-01-01").unwrap();
        assert_eq!(for_b.mentions.len(), 1);
        assert_eq!(for_b.mentions[0].title, "Halle en bois local");
        let news = b.news(b.news_since(NOW + 3000).unwrap()).unwrap();
        let kinds: Vec<_> = news
            .iter()
            .map(|n| (n.kind, n.office.as_str(), n.details.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (news::NewsKind::Edited, "caue-63", vec!["title".to_string()]),
                (
                    news::NewsKind::Comment,
                    "caue-63",
                    vec![news[1].details[0].clone()]
                ),
            ]
        );
        assert!(
            a.news(NOW).unwrap().is_empty(),
            "one's own changes are not news"
        );
    }

    #[test]
    fn news_does_not_load_a_document_no_other_office_changed_since() {
        let mut rng = StdRng::seed_from_u64(3);
        let (a, b) = (replica("caue-63"), replica("caue-15"));
        let mine = resource(&a, &mut rng, "À nous");
        let theirs = resource(&b, &mut rng, "À eux");
        sync(&b, &a);
        let changed_by = |id| a.listing(&id).unwrap().unwrap().changed_by;
        let s = NOW / 1000;
        assert_eq!(changed_by(mine), [("caue-63".to_string(), s)]);
        assert_eq!(changed_by(theirs), [("caue-15".to_string(), s)]);
        // Its chunks gone, `mine` cannot be loaded: news must not try.
        let saved = a.store().saved(&mine).unwrap().unwrap();
        let mut batch = Batch::default();
        batch.remove(crate::store::keys::chunk_key(&mine, 0));
        a.kv.apply(batch).unwrap();
        let news = a.news(NOW - 1000).unwrap();
        assert_eq!(
            news.iter().map(|n| n.doc).collect::<Vec<_>>(),
            [theirs],
            "only the other office's resource is news"
        );

        // Once another office changes it, it is loaded and shown.
        b.store().apply_bytes(&mine, &saved).unwrap();
        let edit = Edit::Set {
            field: "title".into(),
            value: json!("À nous, relu"),
        };
        b.edit(&mine, &[edit], NOW + 5000).unwrap();
        let mut batch = Batch::default();
        batch.put(crate::store::keys::chunk_key(&mine, 0), saved);
        a.kv.apply(batch).unwrap();
        sync(&b, &a);
        assert_eq!(
            changed_by(mine),
            [("caue-15".to_string(), s + 5), ("caue-63".to_string(), s)]
        );
        let news = a.news(NOW + 4000).unwrap();
        assert_eq!(
            news.iter()
                .map(|n| (n.doc, n.office.as_str()))
                .collect::<Vec<_>>(),
            [(mine, "caue-15")]
        );
    }
}
