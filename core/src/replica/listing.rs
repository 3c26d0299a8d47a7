//! The listing and ref indexes: what lists, filters and `resolve` read without loading a
//! document, kept in step with every write of a resource document by [`ListingIndexer`].

pub use crate::card::ListingEntry;
use crate::card::{self, Card};
use crate::ids::DocumentId;
use crate::resource::Resource;
use crate::store::keys::{self, content_key, listing_key, ref_key, search_card_key, work_key};
use crate::store::{Batch, Indexer, Kv, StoreError};

use super::{pending, Replica, ReplicaError};

/// Filters of `list`; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub kind: Option<String>,
    pub office: Option<String>,
    pub departement: Option<String>,
    pub theme: Option<String>,
    pub sector: Option<String>,
    pub status: Option<String>,
    pub include_deleted: bool,
}

impl ListFilter {
    fn matches(&self, e: &ListingEntry) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let has = |want: &Option<String>, have: &[String]| {
            want.as_deref().is_none_or(|w| have.iter().any(|h| h == w))
        };
        (self.include_deleted || !e.deleted)
            && eq(&self.kind, &e.kind)
            && eq(&self.office, &e.office)
            && eq(&self.status, &e.status)
            && self
                .departement
                .as_deref()
                .is_none_or(|d| e.departement.as_deref() == Some(d))
            && has(&self.theme, &e.themes)
            && has(&self.sector, &e.sectors)
    }
}

impl Replica {
    /// Resolves what a user typed: a document URL, a bare id, or a `ref`.
    pub fn resolve(&self, text: &str) -> Result<DocumentId, ReplicaError> {
        if let Ok(id) = text.parse::<DocumentId>() {
            if self.store.contains(&id)? {
                return Ok(id);
            }
        }
        match self.kv.get(&ref_key(text))? {
            Some(v) => {
                let bytes: [u8; 16] = v
                    .try_into()
                    .map_err(|_| ReplicaError::NotFound(text.into()))?;
                Ok(DocumentId::from_bytes(bytes))
            }
            None => Err(ReplicaError::NotFound(text.into())),
        }
    }

    /// Listing entries matching `filter`, sorted by title, read from the listing index only
    /// (from the listing in memory, [`Replica::listed`], once a server asked for it).
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<ListingEntry>, ReplicaError> {
        self.list_where(filter, |_| true)
    }

    /// [`Self::list`], keeping only the entries `keep` accepts: with the listing kept in memory,
    /// the others are never copied (« Quoi de neuf » looks at every entry and keeps a few).
    pub fn list_where(
        &self,
        filter: &ListFilter,
        keep: impl Fn(&ListingEntry) -> bool,
    ) -> Result<Vec<ListingEntry>, ReplicaError> {
        if let Some(listed) = self.listed_if_kept()? {
            return Ok(listed
                .entries()
                .iter()
                .filter(|e| filter.matches(&e.entry) && keep(&e.entry))
                .map(|e| e.entry.clone())
                .collect());
        }
        let mut all = self.list_from_index(filter)?;
        all.retain(keep);
        Ok(all)
    }

    /// [`Self::list`], parsing the listing index.
    pub(super) fn list_from_index(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<ListingEntry>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[keys::LISTING], &mut |_, v| {
            if let Ok(e) = serde_json::from_slice::<ListingEntry>(v) {
                if filter.matches(&e) {
                    out.push(e);
                }
            }
            true
        })?;
        // One lowercase key per entry, rather than two allocations per comparison.
        out.sort_by_cached_key(|e| e.title.to_lowercase());
        Ok(out)
    }

    /// The listing entry of one document (`None` for a document that is not a resource).
    pub fn listing(&self, id: &DocumentId) -> Result<Option<ListingEntry>, ReplicaError> {
        Ok(self
            .kv
            .get(&listing_key(id))?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// A live resource as search indexes it (`None` for a deleted document or one that is not
    /// a resource): from its listing entry and search card when it has both, as a document
    /// received with its card does, else from the loaded document. A fresh replica indexes what
    /// it pulled this way without loading documents (half a millisecond each).
    pub fn searchable(&self, id: &DocumentId) -> Result<Option<Resource>, ReplicaError> {
        if let Some(entry) = self.listing(id)? {
            if entry.deleted {
                return Ok(None);
            }
            let search = self
                .kv
                .get(&search_card_key(id))?
                .and_then(|v| serde_json::from_slice::<card::SearchCard>(&v).ok());
            if let Some(search) = search {
                return Ok(Some(search.resource(&entry)));
            }
        }
        match self.get(id) {
            Ok(s) if !s.deleted => Ok(Some(s.resource)),
            Ok(_) | Err(ReplicaError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names the owner office of a document from the listing index, for the sync summary
    /// (documents received during the sync are indexed as they are written, so they count).
    pub fn office_lookup(&self) -> crate::sync::OfficeLookup {
        let kv = self.kv.clone();
        Box::new(move |id| {
            let entry = kv.get(&listing_key(id)).ok()??;
            serde_json::from_slice::<ListingEntry>(&entry)
                .ok()
                .map(|e| e.office)
        })
    }
}

/// Keeps the listing and ref indexes, the content hashes `import` compares with, and the search
/// to-do list, in step with resource documents, in the batch that writes the document.
pub(super) struct ListingIndexer;

impl Indexer for ListingIndexer {
    fn index(&self, id: &DocumentId, card: &Card, batch: &mut Batch) -> Result<(), StoreError> {
        let Some(resource) = &card.resource else {
            // Not a resource (a catalog shard, a group or thread, a foreign document): nothing
            // to list, and no content for an import to compare with.
            batch.remove(content_key(id));
            batch.remove(search_card_key(id));
            if let Some(work) = &card.work {
                batch.put(work_key(id), serde_json::to_vec(work).unwrap_or_default());
            }
            return Ok(());
        };
        // `Card::fits` checked the hex of cards from peers; ours are written by `Card::of`.
        batch.put(
            content_key(id),
            hex::decode(&resource.content).unwrap_or_default(),
        );
        let entry = &resource.listing;
        batch.put(
            listing_key(id),
            serde_json::to_vec(entry).unwrap_or_default(),
        );
        if let Some(reference) = &entry.ref_ {
            batch.put(ref_key(reference), id.as_bytes().to_vec());
        }
        match &resource.search {
            Some(search) => batch.put(
                search_card_key(id),
                serde_json::to_vec(search).unwrap_or_default(),
            ),
            None => batch.remove(search_card_key(id)),
        }
        pending::mark(id, card, batch);
        Ok(())
    }

    fn resource_card_json(
        &self,
        kv: &dyn Kv,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // A group or thread travels without a card: its receiver derives it (`Card::work`).
        if kv.get(&work_key(id))?.is_some() {
            return Ok(None);
        }
        // Every resource document is listed (since the first replica format); its content hash
        // came later, so a listed document without one cannot make a card.
        let Some(listing) = kv.get(&listing_key(id))? else {
            return Ok(Some(b"null".to_vec()));
        };
        let Some(content) = kv.get(&content_key(id))? else {
            return Ok(None);
        };
        // The entries are stored as `serde_json` wrote them: splice them in as they are.
        let content = card::hex_json(&content);
        let search = kv.get(&search_card_key(id))?;
        let mut fields: Vec<(&str, &[u8])> = vec![("listing", &listing), ("content", &content)];
        if let Some(search) = &search {
            fields.push(("search", search));
        }
        Ok(Some(card::splice_object(&fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::resource;
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn list_filters_and_tombstones() {
        let r = Replica::in_memory("caue-63".parse().unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let a = r.create(&resource(json!({"ref":"a","kind":"realisation","title":"A","office":"caue-63","themes":["habitat"],"location":{"departement":"63"}})), &mut rng, 0).unwrap();
        r.create(
            &resource(json!({"ref":"b","kind":"outil","title":"B","office":"caue-15"})),
            &mut rng,
            0,
        )
        .unwrap();
        let only = |f: ListFilter| {
            r.list(&f)
                .unwrap()
                .into_iter()
                .map(|e| e.title)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            only(ListFilter {
                kind: Some("outil".into()),
                ..Default::default()
            }),
            ["B"]
        );
        assert_eq!(
            only(ListFilter {
                theme: Some("habitat".into()),
                ..Default::default()
            }),
            ["A"]
        );
        assert_eq!(
            only(ListFilter {
                departement: Some("63".into()),
                ..Default::default()
            }),
            ["A"]
        );
        r.delete(&a, 5).unwrap();
        assert_eq!(only(ListFilter::default()), ["B"]);
        assert_eq!(
            only(ListFilter {
                include_deleted: true,
                ..Default::default()
            }),
            ["A", "B"]
        );
        assert_eq!(r.resolve("a").unwrap(), a);
        assert_eq!(r.resolve(&a.to_string()).unwrap(), a);
        assert!(r.resolve("zzz").is_err());
    }
}
