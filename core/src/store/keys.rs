//! Every key a store writes, in one place: the one-byte prefixes that split sled's single tree
//! into tables, and the builders and parsers of their keys.
//!
//! One tree holds everything so that one atomic batch covers a document's chunks, its heads hash
//! and every index entry derived from it. A table is a prefix byte followed, for per-document
//! tables, by the document's 16-byte id; metadata keys start with `m/`. Prefixes must stay
//! distinct (a test checks it) and must never be reused for something else: replicas on disk
//! hold them.

use crate::ids::DocumentId;
use crate::media::BlobHash;

/// Document chunks: `c` + id + chunk sequence number (u32, big-endian) → saved bytes.
pub const CHUNK: u8 = b'c';
/// Heads index: `h` + id → the document's heads hash (32 bytes).
pub const HEADS: u8 = b'h';
/// A relay's cards (`CardIndexer`): `k` + id → the resource part of the card, JSON.
pub const RESOURCE_CARD: u8 = b'k';
/// A replica's listing index: `l` + id → the `ListingEntry`, JSON.
pub const LISTING: u8 = b'l';
/// A replica's ref index: `r` + the ref's UTF-8 text → the document id.
pub const REFS: u8 = b'r';
/// The search index's to-do list: `p` + id → the heads hash the document had when marked
/// (empty for marks written before the hash was kept).
pub const PENDING: u8 = b'p';
/// SHA-256 of each resource document's FORMAT.md JSON: `x` + id → 32 bytes (see
/// `card::content_hash`).
pub const CONTENT: u8 = b'x';
/// A replica's search cards: `t` + id → the `card::SearchCard` of a resource, JSON (what search
/// indexes beyond the listing entry).
pub const SEARCH_CARD: u8 = b't';
/// The relay record: `s` + id → the heads hash the relay held at the last sync.
pub const SYNCED: u8 = b's';

/// A relay's quota book (`atelier_relay::quota`): `q` + id → the office that created the
/// document (UTF-8), counted against that office's document quota.
pub const QUOTA_OWNER: u8 = b'q';

/// The media outbox: `o` + blob hash (32 bytes) → its size (u64, big-endian): blobs made on
/// this replica that the relay has not confirmed yet.
pub const MEDIA_OUTBOX: u8 = b'o';

/// Working-together documents (`crate::work`): `w` + id → the `WorkCard`, JSON (groups with
/// their members, threads with their mentions and open review). Written by a replica's listing
/// indexer and by a relay's `CardIndexer` (whose gate reads a group's members there).
pub const WORK: u8 = b'w';

/// The replica's on-disk format version.
pub const META_FORMAT: &[u8] = b"m/format";
/// The office the replica belongs to.
pub const META_OFFICE: &[u8] = b"m/office";
/// The replica's Automerge actor id.
pub const META_ACTOR: &[u8] = b"m/actor";
/// The replica's bucket digests (`BUCKETS` × 16 bytes) when the relay record was last written.
pub const META_SYNCED_DIGESTS: &[u8] = b"m/synced-digests";
/// The sync bookkeeping (`SyncRecord`, JSON): last sync with the relay, last direct sync with a
/// peer, a running `sync --watch`.
pub const META_SYNC_RECORD: &[u8] = b"m/sync-record";
/// A relay's quota book: `m/quota-bytes/` + office → the bytes of documents and changes that
/// office has had stored (u64, big-endian).
pub const META_QUOTA_BYTES: &[u8] = b"m/quota-bytes/";
/// A relay store's format version (the relay's `RELAY_FORMAT_VERSION`); a replica's is
/// [`META_FORMAT`].
pub const META_RELAY_FORMAT: &[u8] = b"m/relay-format";
/// Which blobs this replica keeps (`media::MediaPolicy`, JSON).
pub const META_MEDIA_POLICY: &[u8] = b"m/media-policy";
/// An import in progress: its time (i64, big-endian) then the 16-byte id of every document it
/// writes. Written before the first document, removed once the catalog lists them all; found
/// at open, it means the import was cut short (see `Replica::import`).
pub const META_IMPORT_JOURNAL: &[u8] = b"m/import-journal";

/// When this replica's office last marked « Quoi de neuf » as read (i64 ms, big-endian). Local
/// to the replica: never synced.
pub const META_NEWS_READ: &[u8] = b"m/news-read";

/// The key of a per-document table entry: `prefix` + id.
pub fn of_document(prefix: u8, id: &DocumentId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(prefix);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The document id of a per-document table key (`None` for a key too short to hold one).
pub fn document_of(key: &[u8]) -> Option<DocumentId> {
    let id: [u8; 16] = key.get(1..17)?.try_into().ok()?;
    Some(DocumentId::from_bytes(id))
}

/// The prefix of every chunk of one document.
pub fn chunk_prefix(id: &DocumentId) -> Vec<u8> {
    of_document(CHUNK, id)
}

pub fn chunk_key(id: &DocumentId, seq: u32) -> Vec<u8> {
    let mut k = chunk_prefix(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number of a chunk key (0 for a malformed key).
pub fn chunk_seq(key: &[u8]) -> u32 {
    key.get(17..21)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0)
}

pub fn heads_key(id: &DocumentId) -> Vec<u8> {
    of_document(HEADS, id)
}

pub fn resource_card_key(id: &DocumentId) -> Vec<u8> {
    of_document(RESOURCE_CARD, id)
}

pub fn work_key(id: &DocumentId) -> Vec<u8> {
    of_document(WORK, id)
}

pub fn listing_key(id: &DocumentId) -> Vec<u8> {
    of_document(LISTING, id)
}

pub fn ref_key(reference: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + reference.len());
    k.push(REFS);
    k.extend_from_slice(reference.as_bytes());
    k
}

pub fn pending_key(id: &DocumentId) -> Vec<u8> {
    of_document(PENDING, id)
}

pub fn content_key(id: &DocumentId) -> Vec<u8> {
    of_document(CONTENT, id)
}

pub fn search_card_key(id: &DocumentId) -> Vec<u8> {
    of_document(SEARCH_CARD, id)
}

pub fn synced_key(id: &DocumentId) -> Vec<u8> {
    of_document(SYNCED, id)
}

pub fn outbox_key(hash: &BlobHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(MEDIA_OUTBOX);
    k.extend_from_slice(hash.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_do_not_overlap() {
        let prefixes = [
            CHUNK,
            HEADS,
            RESOURCE_CARD,
            LISTING,
            REFS,
            PENDING,
            CONTENT,
            SEARCH_CARD,
            SYNCED,
            MEDIA_OUTBOX,
            QUOTA_OWNER,
            WORK,
            META_FORMAT[0],
        ];
        let distinct: std::collections::BTreeSet<u8> = prefixes.iter().copied().collect();
        assert_eq!(distinct.len(), prefixes.len(), "a prefix is used twice");
        let id = DocumentId::derived("a");
        assert_eq!(document_of(&listing_key(&id)), Some(id));
        assert_eq!(chunk_seq(&chunk_key(&id, 7)), 7);
        assert!(chunk_key(&id, 7).starts_with(&chunk_prefix(&id)));
    }
}
