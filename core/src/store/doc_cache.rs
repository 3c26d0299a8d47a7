//! The documents a store wrote last, kept loaded: a live document edited again (a description
//! typed into, a remote splice arriving through sync) is not decoded from its saved bytes at
//! every write.
//!
//! Decoding is what a write of a long `Text` costs most: a 6,000-character description takes
//! ~8 ms to load against ~1.5 ms to apply a one-character change (`atelier-bench splice`). An
//! entry is valid only for the exact bytes it was taken from: the store hashes the saved bytes
//! it reads anyway and takes the entry out only if the hash matches, so a write that bypasses
//! the store, or a restore, can never be hidden by a stale entry. A writer takes the entry out
//! (under the document's lock stripe) and puts it back only after its write committed: a
//! failed write drops it, and the next write decodes the stored bytes again.

use std::collections::HashMap;

use automerge::AutoCommit;

use crate::card::CardMemo;
use crate::ids::DocumentId;

/// Documents kept loaded. A replica edits a handful at once and a relay forwards live edits of
/// a few hundred sessions' open documents; past this the least recently written goes.
pub const DOC_CACHE_ENTRIES: usize = 64;
/// Saved bytes of the documents kept loaded, summed: a loaded document takes a few times its
/// saved size in memory, so this bounds the cache to tens of MB whatever the documents.
pub const DOC_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The saved bytes' identity: BLAKE3 of everything stored for the document, in order.
pub type Fingerprint = [u8; 32];

struct Entry {
    fingerprint: Fingerprint,
    doc: AutoCommit,
    /// What its card last read (`card::CardMemo`), current for `doc`.
    memo: CardMemo,
    /// What it counts against [`DOC_CACHE_BYTES`]: its saved size and its memo.
    cost: usize,
    used: u64,
}

/// Loaded documents by id, bounded by [`DOC_CACHE_ENTRIES`] and [`DOC_CACHE_BYTES`].
#[derive(Default)]
pub struct DocCache {
    entries: HashMap<DocumentId, Entry>,
    bytes: usize,
    clock: u64,
}

impl DocCache {
    /// Takes out the document loaded from exactly the bytes of `fingerprint`, if kept, with its
    /// card's memo.
    pub fn take(
        &mut self,
        id: &DocumentId,
        fingerprint: &Fingerprint,
    ) -> Option<(AutoCommit, CardMemo)> {
        let entry = self.entries.remove(id)?;
        self.bytes -= entry.cost;
        (entry.fingerprint == *fingerprint).then_some((entry.doc, entry.memo))
    }

    /// Forgets a document (its stored bytes changed some other way).
    pub fn forget(&mut self, id: &DocumentId) {
        if let Some(e) = self.entries.remove(id) {
            self.bytes -= e.cost;
        }
    }

    /// Keeps `doc`, loaded state of stored bytes `fingerprint` (`saved_len` long), and its
    /// card's memo; the least recently kept entries go to make room. A document larger than
    /// an eighth of the budget is not kept: it would push out many small live ones.
    pub fn keep(
        &mut self,
        id: DocumentId,
        fingerprint: Fingerprint,
        saved_len: usize,
        mut doc: AutoCommit,
        memo: CardMemo,
    ) {
        self.forget(&id);
        if saved_len > DOC_CACHE_BYTES / 8 || !doc.get_missing_deps(&[]).is_empty() {
            // A document waiting for missing changes holds them queued in memory, which its
            // stored bytes do not: it is decoded from those bytes next time.
            return;
        }
        let cost = saved_len + memo.bytes();
        while self.entries.len() >= DOC_CACHE_ENTRIES || self.bytes + cost > DOC_CACHE_BYTES {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.forget(&oldest);
        }
        self.clock += 1;
        self.bytes += cost;
        self.entries.insert(
            id,
            Entry {
                fingerprint,
                doc,
                memo,
                cost,
                used: self.clock,
            },
        );
    }

    /// Documents kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no document is kept.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> DocumentId {
        DocumentId::from_bytes([n; 16])
    }

    #[test]
    fn an_entry_is_given_back_only_for_the_bytes_it_was_loaded_from() {
        let mut c = DocCache::default();
        c.keep(id(1), [1; 32], 10, AutoCommit::new(), CardMemo::default());
        assert!(c.take(&id(1), &[2; 32]).is_none(), "other bytes");
        assert!(c.is_empty(), "a mismatch drops the entry");
        c.keep(id(1), [1; 32], 10, AutoCommit::new(), CardMemo::default());
        assert!(c.take(&id(1), &[1; 32]).is_some());
        assert!(c.take(&id(1), &[1; 32]).is_none(), "taken out, not copied");
    }

    #[test]
    fn the_least_recently_kept_go_first_and_the_budget_holds() {
        let mut c = DocCache::default();
        for n in 0..(DOC_CACHE_ENTRIES + 3) {
            c.keep(
                id(n as u8),
                [n as u8; 32],
                100,
                AutoCommit::new(),
                CardMemo::default(),
            );
        }
        assert_eq!(c.len(), DOC_CACHE_ENTRIES);
        assert!(c.take(&id(0), &[0; 32]).is_none(), "the oldest went");
        let last = (DOC_CACHE_ENTRIES + 2) as u8;
        assert!(c.take(&id(last), &[last; 32]).is_some());
        let mut c = DocCache::default();
        let big = DOC_CACHE_BYTES / 8;
        for n in 0..9 {
            c.keep(id(n), [n; 32], big, AutoCommit::new(), CardMemo::default());
        }
        assert!(c.bytes <= DOC_CACHE_BYTES);
        c.keep(
            id(99),
            [9; 32],
            big + 1,
            AutoCommit::new(),
            CardMemo::default(),
        );
        assert!(c.take(&id(99), &[9; 32]).is_none(), "too large to keep");
    }
}
