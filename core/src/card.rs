//! A document's card: its heads hash, what a replica lists of it and what search indexes of it,
//! sent with saved documents so that a replica receiving thousands of documents stores, lists,
//! reconciles and indexes them without loading each one.
//!
//! Loading an Automerge document with collaborative `Text` costs about half a millisecond
//! (`atelier-bench doc-cost`); a fresh replica pulling 10,000 resources would spend most of its
//! time there. The peer that sends a document derived its card when it stored it, from the
//! loaded document, with this same code, and keeps it in its indexes (the heads index, and the
//! listing on a replica or `store::CardIndexer`'s entries on a relay). Cards are trusted only from
//! the peer a replica initiated the sync with (its pinned relay, or a pinned peer), which it
//! already trusts with the documents' content; the first write of a document reloads it and
//! derives its card again.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use automerge::{AutoCommit, ChangeHash};
use flate2::{read::DeflateDecoder, write::DeflateEncoder, Compression};
use serde::{Deserialize, Serialize};

use crate::document::text_memo::TextMemo;
use crate::document::{self, Stored};
use crate::ids::{DocumentId, HeadsHash};
use crate::media::{BlobHash, BlobRef, Media, MediaKind, Tier};
use crate::resource::Resource;
use crate::work::WorkCard;

/// Most bytes the cards of one `Docs` frame may inflate to: a frame holds at most
/// `sync::BATCH_BYTES` of documents plus their cards, a few hundred bytes each.
pub const MAX_CARDS_INFLATED: usize = 16 * 1024 * 1024;

/// What a store derives from a document whenever it writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// The document's heads hash.
    pub heads: HeadsHash,
    /// `None` for a document that is not a resource (a catalog shard, a group, a thread, a
    /// foreign document).
    #[serde(default)]
    pub resource: Option<ResourceCard>,
    /// What lists of groups, « À relire » and « Pour vous » need of a working-together document
    /// (`crate::work`). Such cards are never sent with documents: their indexers answer `None`
    /// to `resource_card_json`, so the receiver loads the document and derives the card itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<WorkCard>,
}

/// What a replica's listing, import and search need of a resource document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceCard {
    pub listing: ListingEntry,
    /// [`content_hash`] of the resource, hex.
    pub content: String,
    /// What search reads beyond the listing, so that a fresh replica indexes what it pulled
    /// without loading each document; absent from cards written before it existed and for
    /// resources whose text passes [`MAX_SEARCH_CARD_BYTES`] (their receiver loads them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchCard>,
}

impl ResourceCard {
    fn of(
        id: &DocumentId,
        stored: &Stored,
        updated_at: i64,
        changed_by: Vec<(String, i64)>,
    ) -> Self {
        let mut listing = ListingEntry::of(id, stored);
        listing.updated_at = updated_at;
        listing.changed_by = changed_by;
        Self {
            content: hex::encode(content_hash(&stored.resource)),
            search: SearchCard::of(&stored.resource),
            listing,
        }
    }
}

/// Most bytes of text a card's [`SearchCard`] may carry. Cards of one frame inflate to at most
/// [`MAX_CARDS_INFLATED`]; a description past this (a few pages of prose; the generated
/// corpus's longest is 20 KB) travels without it, and its receiver loads that one document to
/// index it.
pub const MAX_SEARCH_CARD_BYTES: usize = 64 * 1024;

/// The fields of a resource that search indexes and its listing entry lacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SearchCard {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub materials: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Designers' names (search reads no roles).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub designers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervention: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
}

impl SearchCard {
    /// What search needs of `r` beyond its listing; `None` past [`MAX_SEARCH_CARD_BYTES`].
    pub fn of(r: &Resource) -> Option<Self> {
        let strings = |v: &[String]| v.iter().map(String::len).sum::<usize>();
        let text = r.description.len()
            + strings(&r.materials)
            + strings(&r.audiences)
            + strings(&r.keywords)
            + r.client.as_ref().map_or(0, String::len)
            + r.designers.iter().map(|d| d.name.len()).sum::<usize>();
        if text > MAX_SEARCH_CARD_BYTES {
            return None;
        }
        let location = r.location.as_ref();
        Some(Self {
            description: r.description.clone(),
            materials: r.materials.clone(),
            audiences: r.audiences.clone(),
            keywords: r.keywords.clone(),
            client: r.client.clone(),
            designers: r.designers.iter().map(|d| d.name.clone()).collect(),
            intervention: r.intervention.clone(),
            building_type: r.building_type.clone(),
            tool_type: r.tool_type.clone(),
            action_type: r.action_type.clone(),
            lat: location.and_then(|l| l.lat),
            lon: location.and_then(|l| l.lon),
        })
    }

    /// The resource as search sees it, from its listing entry and this card: every field search
    /// reads is filled in, the others (links, media, costs, roles) are left empty.
    pub fn resource(&self, listing: &ListingEntry) -> Resource {
        let location = (listing.commune.is_some()
            || listing.departement.is_some()
            || self.lat.is_some()
            || self.lon.is_some())
        .then(|| crate::resource::Location {
            commune: listing.commune.clone(),
            departement: listing.departement.clone(),
            lat: self.lat,
            lon: self.lon,
            ..Default::default()
        });
        Resource {
            ref_: listing.ref_.clone(),
            kind: listing.kind.clone(),
            title: listing.title.clone(),
            summary: listing.summary.clone(),
            description: self.description.clone(),
            office: listing.office.clone(),
            status: listing.status.clone(),
            axes: listing.axes.clone(),
            themes: listing.themes.clone(),
            sectors: listing.sectors.clone(),
            materials: self.materials.clone(),
            audiences: self.audiences.clone(),
            keywords: self.keywords.clone(),
            location,
            year: listing.year,
            client: self.client.clone(),
            designers: self
                .designers
                .iter()
                .map(|name| crate::resource::Designer {
                    role: String::new(),
                    name: name.clone(),
                })
                .collect(),
            intervention: self.intervention.clone(),
            building_type: self.building_type.clone(),
            tool_type: self.tool_type.clone(),
            action_type: self.action_type.clone(),
            ..Default::default()
        }
    }
}

/// What lists and filters read: derived from each resource document with its card (a card
/// carries it, so it is defined here; `replica` re-exports it with the listing it fills).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListingEntry {
    pub id: DocumentId,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    pub kind: String,
    pub office: String,
    pub title: String,
    pub summary: String,
    pub status: String,
    pub commune: Option<String>,
    pub departement: Option<String>,
    pub axes: Vec<String>,
    pub themes: Vec<String>,
    pub sectors: Vec<String>,
    pub year: Option<i64>,
    pub created_at: i64,
    /// When the document last changed (its newest head's change time, ms; 0 in entries written
    /// before this existed): « Quoi de neuf » reads only documents changed since a visit.
    #[serde(default)]
    pub updated_at: i64,
    pub deleted: bool,
    /// The thumbnail lists show: the first photo's (or plan's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<BlobHash>,
    /// Every blob the resource refers to, so media sync knows what the corpus needs without
    /// loading documents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<BlobRef>,
    /// Each office whose changes name it (their commit message), with the time of its newest
    /// change (seconds, as Automerge keeps them): « Quoi de neuf » skips, without loading it, a
    /// document no other office changed since a visit (an office's own import of 100,000
    /// resources would otherwise be loaded whole for the header's count). Empty in entries
    /// written before this existed and for documents no note names: those are loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_by: Vec<(String, i64)>,
}

impl ListingEntry {
    /// What the listing shows of a resource document.
    pub fn of(id: &DocumentId, stored: &Stored) -> Self {
        let r = &stored.resource;
        Self {
            id: *id,
            ref_: r.ref_.clone(),
            kind: r.kind.clone(),
            office: r.office.clone(),
            title: r.title.clone(),
            summary: r.summary.clone(),
            status: r.status.clone(),
            commune: r.commune().map(str::to_string),
            departement: r.departement().map(str::to_string),
            axes: r.axes.clone(),
            themes: r.themes.clone(),
            sectors: r.sectors.clone(),
            year: r.year,
            created_at: stored.created_at,
            updated_at: 0,
            deleted: stored.deleted,
            cover: r
                .media
                .iter()
                .find(|m| m.kind != MediaKind::Document)
                .and_then(|m| m.image_at(Tier::Thumb)),
            media: r.media.iter().flat_map(Media::blobs).collect(),
            changed_by: Vec::new(),
        }
    }
}

/// [`ListingEntry::changed_by`] of a loaded document: its changes' metadata only (each change's
/// office, read from the `office` key of its message, and its time).
pub fn changed_by(doc: &mut AutoCommit) -> Vec<(String, i64)> {
    let mut newest = BTreeMap::new();
    add_changes(&mut newest, doc, &[]);
    newest.into_iter().collect()
}

/// Adds the offices and times of `doc`'s changes since `before` to `newest`.
fn add_changes(newest: &mut BTreeMap<String, i64>, doc: &mut AutoCommit, before: &[ChangeHash]) {
    for change in doc.get_changes_meta(before) {
        let Some(office) = document::recorded_office(change.message.as_deref()) else {
            continue;
        };
        let at = newest.entry(office).or_insert(change.timestamp);
        *at = (*at).max(change.timestamp);
    }
}

/// What deriving a card read from a loaded document and can read again from here: its texts
/// (`document::text_memo`) and who changed it when. The store keeps one beside each document
/// it keeps loaded, and brings it up to every change it applies ([`CardMemo::follow`]), so a
/// device applying someone's one-field edit re-reads neither the long description nor the
/// whole history.
#[derive(Default)]
pub struct CardMemo {
    texts: TextMemo,
    changed_by: Option<BTreeMap<String, i64>>,
}

impl CardMemo {
    /// Brings the memo up to the changes applied to `doc` since `before`: the texts they touch
    /// are forgotten, their offices and times added.
    pub fn follow(&mut self, doc: &mut AutoCommit, before: &[ChangeHash]) {
        self.texts.forget_touched(doc, before);
        if let Some(newest) = &mut self.changed_by {
            add_changes(newest, doc, before);
        }
    }

    /// Bytes the memo holds, roughly.
    pub fn bytes(&self) -> usize {
        self.texts.bytes() + self.changed_by.as_ref().map_or(0, |m| m.len() * 32)
    }

    fn changed_by(&mut self, doc: &mut AutoCommit) -> Vec<(String, i64)> {
        let newest = self.changed_by.get_or_insert_with(|| {
            let mut newest = BTreeMap::new();
            add_changes(&mut newest, doc, &[]);
            newest
        });
        newest.iter().map(|(o, t)| (o.clone(), *t)).collect()
    }
}

/// Why the cards of a frame were refused (a peer's error, logged and sent back to it).
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("unreadable cards: {0}")]
    Malformed(String),
    #[error("cards inflate beyond {MAX_CARDS_INFLATED} bytes")]
    TooLarge,
    #[error("{cards} cards for {docs} documents")]
    Count { cards: usize, docs: usize },
}

impl Card {
    /// The card of a loaded document whose heads hash is `heads`.
    pub fn of(id: &DocumentId, doc: &mut AutoCommit, heads: HeadsHash) -> Self {
        Self::of_memoized(id, doc, heads, &mut CardMemo::default())
    }

    /// [`Card::of`], reading what `memo` remembers of the document rather than the document.
    pub fn of_memoized(
        id: &DocumentId,
        doc: &mut AutoCommit,
        heads: HeadsHash,
        memo: &mut CardMemo,
    ) -> Self {
        let updated_at = updated_ms(doc);
        let resource = document::read_memoized(doc, &mut memo.texts)
            .ok()
            .map(|stored| ResourceCard::of(id, &stored, updated_at, memo.changed_by(doc)));
        let work = match resource {
            Some(_) => None,
            None => WorkCard::of(doc, updated_at),
        };
        Self {
            heads,
            resource,
            work,
        }
    }

    /// The card of a new document holding one change by `office` at `time` (seconds), that
    /// reads back as `stored` (`document::create_encoded`): what [`Card::of`] derives from it,
    /// without loading it.
    pub fn of_created(
        id: &DocumentId,
        stored: &Stored,
        office: &str,
        time: i64,
        heads: HeadsHash,
    ) -> Self {
        let changed_by = vec![(office.to_string(), time)];
        Self {
            heads,
            resource: Some(ResourceCard::of(
                id,
                stored,
                time.saturating_mul(1000),
                changed_by,
            )),
            work: None,
        }
    }

    /// Whether a card received with document `id` can stand for it: a resource card lists that
    /// very document, with a well-formed content hash.
    pub fn fits(&self, id: &DocumentId) -> bool {
        self.resource.as_ref().is_none_or(|r| {
            r.listing.id == *id && hex::decode(&r.content).is_ok_and(|h| h.len() == 32)
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Plain structs of strings and numbers: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// When a document last changed: its newest head's change time (Automerge keeps seconds), in ms.
/// Read from the change's metadata: building the whole change (`get_change_by_hash`) encodes
/// its operations, which cost a fifth of an import.
pub fn updated_ms(doc: &mut AutoCommit) -> i64 {
    let heads = doc.get_heads();
    heads
        .iter()
        .filter_map(|h| doc.get_change_meta_by_hash(h).map(|c| c.timestamp))
        .max()
        .unwrap_or(0)
        .saturating_mul(1000)
}

/// A JSON object of `fields`, whose values are JSON already (as stored by `serde_json`): cards
/// are assembled from stored index entries this way, without parsing them.
pub(crate) fn splice_object(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut json = Vec::with_capacity(fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
    json.push(b'{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.push(b'"');
        json.extend_from_slice(name.as_bytes());
        json.extend_from_slice(b"\":");
        json.extend_from_slice(value);
    }
    json.push(b'}');
    json
}

/// A hash as a JSON string of its hex digits.
pub(crate) fn hex_json(bytes: &[u8]) -> Vec<u8> {
    format!("\"{}\"", hex::encode(bytes)).into_bytes()
}

/// Equal for two resources exactly when `document::changed_fields` finds no difference: both
/// compare the FORMAT.md JSON, which `to_json` writes in a fixed key order.
pub fn content_hash(r: &Resource) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut json = Vec::with_capacity(4096);
    r.write_json(&mut json);
    Sha256::digest(&json).to_vec()
}

/// The cards of one frame's documents, in order, as one deflated JSON array (`null` where a
/// document has no card). Cards of one batch repeat field names and vocabulary codes, so
/// together they compress several times better than one by one. Empty when no card is known.
pub fn encode_batch(cards: &[Option<Vec<u8>>]) -> Vec<u8> {
    if cards.iter().all(Option::is_none) {
        return Vec::new();
    }
    let mut json = Vec::with_capacity(cards.iter().flatten().map(Vec::len).sum::<usize>() + 2);
    json.push(b'[');
    for (i, card) in cards.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(card.as_deref().unwrap_or(b"null"));
    }
    json.push(b']');
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(&json);
    encoder.finish().unwrap_or_default()
}

/// Reads what [`encode_batch`] wrote for a frame of `docs` documents; empty input means no
/// cards. Inflating stops past [`MAX_CARDS_INFLATED`] bytes, so a deflate bomb costs at most
/// that much memory.
pub fn decode_batch(bytes: &[u8], docs: usize) -> Result<Vec<Option<Card>>, CardError> {
    if bytes.is_empty() {
        return Ok(vec![None; docs]);
    }
    let mut json = Vec::new();
    DeflateDecoder::new(bytes)
        .take(MAX_CARDS_INFLATED as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| CardError::Malformed(e.to_string()))?;
    if json.len() > MAX_CARDS_INFLATED {
        return Err(CardError::TooLarge);
    }
    let cards: Vec<Option<Card>> =
        serde_json::from_slice(&json).map_err(|e| CardError::Malformed(e.to_string()))?;
    if cards.len() != docs {
        return Err(CardError::Count {
            cards: cards.len(),
            docs,
        });
    }
    Ok(cards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource_doc() -> (DocumentId, AutoCommit) {
        let r = Resource::from_json(&json!({
            "kind": "realisation", "title": "Maison en paille", "office": "caue-63",
            "summary": "Une maison.", "location": {"commune": "Thiers", "departement": "63"}
        }))
        .unwrap();
        let mut doc = AutoCommit::new();
        document::create(&mut doc, &r, "caue-63", 1_750_000_000_000).unwrap();
        (DocumentId::derived("maison"), doc)
    }

    fn card_of(id: &DocumentId, doc: &AutoCommit) -> Card {
        let mut doc = doc.clone();
        let heads = HeadsHash::of(&doc.get_heads());
        Card::of(id, &mut doc, heads)
    }

    #[test]
    fn a_resource_card_lists_the_document_and_survives_a_batch() {
        let (id, doc) = resource_doc();
        let card = card_of(&id, &doc);
        let listing = &card.resource.as_ref().unwrap().listing;
        assert_eq!(
            (listing.title.as_str(), listing.commune.as_deref()),
            ("Maison en paille", Some("Thiers"))
        );
        assert!(card.fits(&id));
        assert!(
            !card.fits(&DocumentId::derived("another")),
            "a card names its document"
        );
        let other = card_of(&DocumentId::derived("empty"), &AutoCommit::new());
        assert!(other.resource.is_none() && other.fits(&DocumentId::derived("empty")));

        let batch = encode_batch(&[Some(card.to_json()), None]);
        let decoded = decode_batch(&batch, 2).unwrap();
        assert_eq!(decoded, vec![Some(card), None]);
        assert_eq!(decode_batch(&[], 3).unwrap(), vec![None, None, None]);
        assert!(encode_batch(&[None, None]).is_empty());
    }

    #[test]
    fn bad_batches_are_refused_with_the_reason() {
        let (id, doc) = resource_doc();
        let batch = encode_batch(&[Some(card_of(&id, &doc).to_json())]);
        assert!(matches!(
            decode_batch(&batch, 2),
            Err(CardError::Count { cards: 1, docs: 2 })
        ));
        assert!(matches!(
            decode_batch(b"\x01garbage", 1),
            Err(CardError::Malformed(_))
        ));
        let bomb = {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
            e.write_all(&vec![b' '; MAX_CARDS_INFLATED + 10]).unwrap();
            e.finish().unwrap()
        };
        assert!(bomb.len() < 100_000);
        assert!(matches!(decode_batch(&bomb, 1), Err(CardError::TooLarge)));
    }

    proptest::proptest! {
        /// Fuzz campaign, in the test suite: any card batch from a peer, raw or deflated
        /// (so that the JSON parse is reached), decodes or fails without panicking.
        #[test]
        fn any_card_batch_decodes_or_fails_without_panicking(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            docs in 0usize..8,
        ) {
            let _ = decode_batch(&bytes, docs);
            let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut deflated, &bytes).unwrap();
            let _ = decode_batch(&deflated.finish().unwrap(), docs);
        }

        #[test]
        fn any_json_card_batch_decodes_or_fails_without_panicking(
            json in "\\[(null|\\{\"heads\":\"[0-9a-f]{0,64}\",\"resource\":(null|\\{[ -~]{0,60}\\})\\}|,){0,6}\\]",
            docs in 0usize..8,
        ) {
            let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut deflated, json.as_bytes()).unwrap();
            let _ = decode_batch(&deflated.finish().unwrap(), docs);
        }
    }
}
