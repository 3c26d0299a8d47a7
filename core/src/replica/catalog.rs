//! The catalog: documents that list every resource for automerge-repo clients (JavaScript,
//! samod), which know documents only by URL. A root document names 64 shards; each shard maps
//! the URL of every resource it holds to its kind, office, title, creation date and tombstone.

use automerge::{AutoCommit, ReadDoc};

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
        for (shard, metas) in by_shard {
            self.store.update(&shard, |doc, _| {
                if doc.get(automerge::ROOT, "@type").ok().flatten().is_none() {
                    doc.put(automerge::ROOT, "@type", CATALOG_SHARD_TYPE)?;
                }
                for (id, s) in &metas {
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
            })?;
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
