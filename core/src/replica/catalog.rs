//! The catalog: documents that list every resource for automerge-repo clients (JavaScript,
//! samod), which know documents only by URL. A root document names 64 shards; each shard maps
//! the URL of every resource it holds to its kind, office, title, creation date and tombstone.

use automerge::{AutoCommit, ObjType, ReadDoc, ScalarValue, Value};

use crate::document::{self, Stored};
use crate::ids::DocumentId;
use crate::resource::Resource;

use super::{Replica, ReplicaError};

/// Catalog shards: 64 keeps each shard document near 1,600 entries at 100,000 resources, so a
/// shard loads in milliseconds and an automerge-repo client fetches only the shards it needs.
pub const CATALOG_SHARDS: usize = 64;
/// Name from which every replica derives the catalog's root document id.
pub const CATALOG_ROOT_NAME: &str = "atelier/catalog/v1";
pub const CATALOG_TYPE: &str = "atelier.catalog";
pub const CATALOG_SHARD_TYPE: &str = "atelier.catalog-shard";
/// Most threads writing catalog shards at once.
const CATALOG_THREADS: usize = 4;

impl Replica {
    /// The catalog's root document id (the URL an automerge-repo client starts from).
    pub fn catalog_root() -> DocumentId {
        DocumentId::derived(CATALOG_ROOT_NAME)
    }

    /// The catalog shard holding `id`.
    pub fn catalog_shard(id: &DocumentId) -> DocumentId {
        DocumentId::derived(&format!(
            "{CATALOG_ROOT_NAME}/shard/{:02x}",
            id.bucket(CATALOG_SHARDS)
        ))
    }

    /// Adds catalog entries for documents already stored, reading what the catalog shows of them.
    pub(super) fn catalog_add_loaded(
        &self,
        ids: &[DocumentId],
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        let entries: Vec<(DocumentId, CatalogEntry)> = ids
            .iter()
            .filter_map(|id| self.get(id).ok().map(|s| (*id, CatalogEntry::of(&s))))
            .collect();
        self.catalog_add(&entries, now_ms)
    }

    /// Adds catalog entries, one write per shard touched, and makes sure the root lists shards.
    pub(super) fn catalog_add(
        &self,
        entries: &[(DocumentId, CatalogEntry)],
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        if entries.is_empty() {
            return Ok(());
        }
        use automerge::transaction::Transactable;
        let root = Self::catalog_root();
        let office = self.office.to_string();
        self.store.update(&root, |doc, _| {
            if doc.get(automerge::ROOT, "@type").ok().flatten().is_none() {
                doc.put(automerge::ROOT, "@type", CATALOG_TYPE)?;
                for shard in 0..CATALOG_SHARDS {
                    let shard_id =
                        DocumentId::derived(&format!("{CATALOG_ROOT_NAME}/shard/{shard:02x}"));
                    doc.put(
                        automerge::ROOT,
                        format!("shard-{shard:02x}"),
                        shard_id.url(),
                    )?;
                }
                commit_note(doc, &office, "catalogue", now_ms);
            }
            Ok::<_, ReplicaError>(())
        })?;
        let mut by_shard: std::collections::BTreeMap<DocumentId, Vec<&(DocumentId, CatalogEntry)>> =
            Default::default();
        for entry in entries {
            by_shard
                .entry(Self::catalog_shard(&entry.0))
                .or_default()
                .push(entry);
        }
        // Shards are independent documents: an import touching many writes them on several
        // threads.
        let shards: Vec<_> = by_shard.into_iter().collect();
        let threads = crate::par::threads_for(shards.len(), CATALOG_THREADS, 1);
        let written = crate::par::map(
            &shards,
            threads,
            |(shard, metas)| {
                self.store.update(shard, |doc, _| {
                    if doc.get(automerge::ROOT, "@type").ok().flatten().is_none() {
                        doc.put(automerge::ROOT, "@type", CATALOG_SHARD_TYPE)?;
                    }
                    for (id, s) in metas {
                        let key = id.url();
                        if doc
                            .get(automerge::ROOT, key.as_str())
                            .ok()
                            .flatten()
                            .is_some()
                        {
                            continue;
                        }
                        let entry =
                            doc.put_object(automerge::ROOT, key.as_str(), automerge::ObjType::Map)?;
                        doc.put(&entry, "kind", s.kind.as_str())?;
                        doc.put(&entry, "office", s.office.as_str())?;
                        doc.put(&entry, "title", s.title.as_str())?;
                        doc.put(&entry, "created", s.created)?;
                        doc.put(&entry, "deleted", s.deleted)?;
                    }
                    commit_note(doc, &office, "catalogue", now_ms);
                    Ok::<_, ReplicaError>(())
                })
            },
            // The first failure stops the others.
            |result| result.is_ok(),
        );
        for result in written.into_iter().flatten() {
            result?;
        }
        Ok(())
    }

    /// Follows a deletion or restoration: `entry` is what the catalog shows of the document now
    /// (the caller read it while the document was loaded for the edit).
    pub(super) fn catalog_set_deleted(
        &self,
        id: &DocumentId,
        entry: CatalogEntry,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        use automerge::transaction::Transactable;
        let deleted = entry.deleted;
        let office = self.office.to_string();
        self.catalog_add(&[(*id, entry)], now_ms)?;
        self.store.update(&Self::catalog_shard(id), |doc, _| {
            if let Some((_, entry)) = doc.get(automerge::ROOT, id.url().as_str())? {
                doc.put(&entry, "deleted", deleted)?;
                commit_note(doc, &office, "catalogue", now_ms);
            }
            Ok::<_, ReplicaError>(())
        })?;
        Ok(())
    }
}

/// The fields of a catalog shard's entry, each written once when the entry is added; only
/// `deleted` changes afterwards.
const ENTRY_FIELDS: [&str; 5] = ["kind", "office", "title", "created", "deleted"];

/// Whether `id` is the catalog's root or one of its shards: documents every replica writes
/// under a well-known id, so a relay checks what is written there ([`check_catalog_write`]).
pub fn is_catalog(id: &DocumentId) -> bool {
    *id == Replica::catalog_root() || shard_number(id).is_some()
}

/// Checks that a change took a catalog document (`before`, empty if new) to `after` the way a
/// replica writes it: the root names the 64 shards and nothing else, once; a shard holds only
/// its type and complete entries for resources that belong to it; an entry, once written, keeps
/// its kind, office, title and creation date (only `deleted` changes) and is never removed. Any
/// other write would hide or falsify resources for every automerge-repo client. Other ids pass.
pub fn check_catalog_write(
    id: &DocumentId,
    before: &AutoCommit,
    after: &AutoCommit,
) -> Result<(), String> {
    if *id == Replica::catalog_root() {
        let expected = expected_root();
        let keys: Vec<String> = after.keys(automerge::ROOT).collect();
        for key in &keys {
            let value = string_at(after, &automerge::ROOT, key);
            match expected.iter().find(|(k, _)| k == key) {
                Some((_, want)) if value.as_deref() == Some(want.as_str()) => {}
                _ => return Err(format!("catalog root: unexpected value at {key:?}")),
            }
        }
        let had = before.keys(automerge::ROOT).count();
        if keys.len() < had {
            return Err("catalog root: keys removed".into());
        }
        return Ok(());
    }
    let Some(shard) = shard_number(id) else {
        return Ok(());
    };
    for key in after.keys(automerge::ROOT) {
        if key == "@type" {
            if string_at(after, &automerge::ROOT, &key).as_deref() != Some(CATALOG_SHARD_TYPE) {
                return Err("catalog shard: wrong @type".into());
            }
            continue;
        }
        let belongs = key
            .parse::<DocumentId>()
            .is_ok_and(|doc| doc.url() == key && doc.bucket(CATALOG_SHARDS) == shard);
        if !belongs {
            return Err(format!(
                "catalog shard: {key:?} is not a resource of this shard"
            ));
        }
        check_entry(before, after, &key)?;
    }
    if before.keys(automerge::ROOT).any(|key| {
        after
            .get(automerge::ROOT, key.as_str())
            .ok()
            .flatten()
            .is_none()
    }) {
        return Err("catalog shard: entries removed".into());
    }
    Ok(())
}

/// The number of the catalog shard `id` is, if it is one.
fn shard_number(id: &DocumentId) -> Option<usize> {
    (0..CATALOG_SHARDS)
        .find(|n| *id == DocumentId::derived(&format!("{CATALOG_ROOT_NAME}/shard/{n:02x}")))
}

/// The root's keys and values, as `catalog_add` writes them.
fn expected_root() -> Vec<(String, String)> {
    let mut keys = vec![("@type".to_string(), CATALOG_TYPE.to_string())];
    for n in 0..CATALOG_SHARDS {
        let shard = DocumentId::derived(&format!("{CATALOG_ROOT_NAME}/shard/{n:02x}"));
        keys.push((format!("shard-{n:02x}"), shard.url()));
    }
    keys
}

fn string_at(doc: &AutoCommit, obj: &automerge::ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(text) => Some(text.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// One entry: a map of exactly the five fields, typed, with only `deleted` changed since
/// `before`.
fn check_entry(before: &AutoCommit, after: &AutoCommit, key: &str) -> Result<(), String> {
    let bad = || format!("catalog shard: malformed entry {key:?}");
    let Some((Value::Object(ObjType::Map), entry)) = after.get(automerge::ROOT, key).ok().flatten()
    else {
        return Err(bad());
    };
    let fields: Vec<String> = after.keys(&entry).collect();
    if fields.len() != ENTRY_FIELDS.len()
        || !fields.iter().all(|f| ENTRY_FIELDS.contains(&f.as_str()))
    {
        return Err(bad());
    }
    let scalar = |doc: &AutoCommit, obj: &automerge::ObjId, field: &str| -> Option<ScalarValue> {
        match doc.get(obj, field).ok().flatten()? {
            (Value::Scalar(s), _) => Some(s.into_owned()),
            _ => None,
        }
    };
    let typed = ENTRY_FIELDS.iter().all(|f| {
        matches!(
            (*f, scalar(after, &entry, f)),
            ("kind" | "office" | "title", Some(ScalarValue::Str(_)))
                | (
                    "created",
                    Some(ScalarValue::Int(_) | ScalarValue::Uint(_) | ScalarValue::Timestamp(_))
                )
                | ("deleted", Some(ScalarValue::Boolean(_)))
        )
    });
    if !typed {
        return Err(bad());
    }
    if let Some((Value::Object(ObjType::Map), old)) =
        before.get(automerge::ROOT, key).ok().flatten()
    {
        for field in ["kind", "office", "title", "created"] {
            if scalar(before, &old, field) != scalar(after, &entry, field) {
                return Err(format!("catalog shard: entry {key:?} changed its {field}"));
            }
        }
    }
    Ok(())
}

/// What a catalog shard lists of one resource.
pub(super) struct CatalogEntry {
    kind: String,
    office: String,
    title: String,
    created: i64,
    deleted: bool,
}

impl CatalogEntry {
    /// The entry of a document just created from `r` at `now_ms` (what `document::create` wrote).
    pub(super) fn created(r: &Resource, now_ms: i64) -> Self {
        Self {
            kind: r.kind.clone(),
            office: r.office.clone(),
            title: r.title.clone(),
            created: now_ms,
            deleted: false,
        }
    }

    /// What the listing index says of a resource (no document to load).
    pub(super) fn of_listing(e: &super::ListingEntry) -> Self {
        Self {
            kind: e.kind.clone(),
            office: e.office.clone(),
            title: e.title.clone(),
            created: e.created_at,
            deleted: e.deleted,
        }
    }

    pub(super) fn of(s: &Stored) -> Self {
        Self {
            kind: s.resource.kind.clone(),
            office: s.resource.office.clone(),
            title: s.resource.title.clone(),
            created: s.created_at,
            deleted: s.deleted,
        }
    }
}

fn commit_note(doc: &mut AutoCommit, office: &str, what: &str, now_ms: i64) {
    let note = document::ChangeNote {
        office: office.into(),
        fields: vec![what.into()],
    };
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(serde_json::to_string(&note).unwrap_or_default())
            .with_time(now_ms / 1000),
    );
}
