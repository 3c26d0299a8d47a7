//! The `atelier-sync/1` wire messages and their framing-independent encoding (postcard).

use serde::{Deserialize, Serialize};

use super::SyncError;

/// Largest encoded message, and so the largest frame of the relay's transport (which re-exports
/// it as `atelier_relay::framing::MAX_FRAME_SIZE` and checks its length prefix against it
/// before allocating). It must exceed `store::MAX_DOCUMENT_BYTES` so that any storable document
/// fits in one `Docs` frame on its own. Sixteen MiB holds a batch of many saved documents (a
/// typical saved resource is well under 1 KB, a large one with history a few MB) while keeping
/// the worst case a single peer can make the relay buffer small next to its memory; the sync
/// engine splits larger transfers into several frames.
pub const MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// A document id on the wire (16 raw bytes).
pub type WireId = [u8; 16];

/// One message of the protocol. The initiator drives rounds (`Summary` → `Entries` → transfer →
/// `Summary` …); everything else is answered by whichever side receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Digests of every bucket of `(document id, heads hash)` pairs.
    Summary { round: u32, digests: Vec<[u8; 16]> },
    /// The responder's entries for the buckets whose digests differ; empty means "in sync".
    Entries {
        round: u32,
        buckets: Vec<BucketEntries>,
    },
    /// Whole documents the initiator lacks, by id.
    Want { ids: Vec<WireId> },
    /// Saved documents or incremental changes (both load with `load_incremental`), and the
    /// cards of whole documents sent by a responder (`card::encode_batch`; empty if none).
    Docs {
        docs: Vec<DocBytes>,
        #[serde(with = "serde_bytes")]
        cards: Vec<u8>,
    },
    /// Automerge sync messages of many documents; an empty `message` means "nothing to send".
    Sync { msgs: Vec<DocBytes> },
    /// From a live responder that missed some of its own change notices (more arrived at once
    /// than it buffers): the initiator runs a reconciliation round to pick up what was missed.
    Resync,
}

/// One bucket's `(id, heads hash)` pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketEntries {
    pub bucket: u16,
    pub entries: Vec<(WireId, [u8; 32])>,
}

/// Bytes about one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocBytes {
    pub id: WireId,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain structs into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes one frame, refusing an oversized one before looking inside.
    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        if bytes.len() > MAX_FRAME_SIZE {
            return Err(SyncError::FrameTooLarge(bytes.len()));
        }
        postcard::from_bytes(bytes).map_err(|e| SyncError::Malformed(e.to_string()))
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Summary { .. } => "summary",
            Message::Entries { .. } => "entries",
            Message::Want { .. } => "want",
            Message::Docs { .. } => "docs",
            Message::Sync { .. } => "sync",
            Message::Resync => "resync",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let m = Message::Docs {
            docs: vec![DocBytes {
                id: [7; 16],
                bytes: vec![1, 2, 3],
            }],
            cards: vec![4, 5],
        };
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        assert!(Message::decode(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(matches!(
            Message::decode(&vec![0; MAX_FRAME_SIZE + 1]),
            Err(SyncError::FrameTooLarge(_))
        ));
    }

    #[test]
    fn an_in_sync_summary_is_small() {
        let m = Message::Summary {
            round: 1,
            digests: vec![[0xab; 16]; crate::store::BUCKETS],
        };
        assert!(m.encode().len() < 4200, "{}", m.encode().len());
    }

    proptest::proptest! {
        /// Fuzz campaign, in the test suite: any bytes from a peer decode to a message or to an
        /// error, never a panic; what decodes encodes back to the same bytes' meaning.
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(m) = Message::decode(&bytes) {
                proptest::prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
            }
        }
    }
}
