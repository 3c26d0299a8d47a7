//! The automerge-repo wire protocol: the CBOR messages JS automerge-repo 2.x and samod exchange
//! over a WebSocket (`join`, `peer`, `request`, `sync`, `doc-unavailable`, `ephemeral`, …).
//!
//! Every message is one CBOR map with a `type` key. The field names and shapes follow the JS
//! sources (`automerge-repo/dist/network/messages.d.ts`, `automerge-repo-network-websocket/dist/
//! messages.d.ts`) and samod-core's `network/wire_protocol.rs`, including their quirks: cbor-x
//! writes `undefined` for absent optional values and may write integers as floats, and
//! `documentId` may be a string or 16 raw bytes. Decoding is defensive: the size is capped, the
//! number of CBOR items is counted before any value is built (a 32 MB array of one-byte items
//! would otherwise become a 1.5 GB `Vec<Value>`), nesting is limited, and an unknown `type` is
//! reported as [`WireError::UnknownType`] rather than guessed at.

use std::collections::BTreeMap;
use std::fmt;

use ciborium::Value;
use thiserror::Error;

use crate::ids::DocumentId;
use crate::sync_guard::MAX_SYNC_MESSAGE_BYTES;

/// Largest wire message accepted: a sync message plus 64 KiB for the envelope (type, peer and
/// document ids, a few metadata fields; well under 1 KiB in practice).
pub const MAX_WIRE_MESSAGE_BYTES: usize = MAX_SYNC_MESSAGE_BYTES + 64 * 1024;
/// Most CBOR items (map keys, values, array elements) in one message. The largest legitimate
/// message, `remote-heads-changed`, lists a few heads for a few storage ids; 4,096 items bound
/// the decoded values to a few hundred KB whatever the peer sends.
pub const MAX_CBOR_ITEMS: usize = 4096;
/// Deepest CBOR nesting accepted. Messages nest at most four levels (`newHeads` → storage id →
/// `heads` → head); the limit keeps the recursive decoder's stack small.
pub const MAX_CBOR_DEPTH: usize = 16;
/// Longest peer id accepted. automerge-repo ids are short (`peer-<random>`, a UUID, or our
/// `<office>/<device>`); 256 bytes leaves room and bounds what we log and echo back.
pub const MAX_PEER_ID_BYTES: usize = 256;
/// The only automerge-repo protocol version, spoken by JS automerge-repo 2.x and samod.
pub const PROTOCOL_V1: &str = "1";

/// Why a wire message could not be decoded.
#[derive(Debug, Error, PartialEq)]
pub enum WireError {
    /// The message exceeds [`MAX_WIRE_MESSAGE_BYTES`].
    #[error("message too large ({size} bytes, at most {MAX_WIRE_MESSAGE_BYTES})")]
    TooLarge { size: usize },
    /// The bytes are not one well-formed CBOR value.
    #[error("invalid cbor: {0}")]
    Cbor(String),
    /// More than [`MAX_CBOR_ITEMS`] items or deeper than [`MAX_CBOR_DEPTH`].
    #[error("message too complex")]
    TooComplex,
    /// The message is not a CBOR map with a text `type`.
    #[error("message is not a map with a type")]
    NotAMessage,
    /// The `type` is not one this module knows.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A required field is absent.
    #[error("{message_type} message without {field}")]
    MissingField {
        message_type: &'static str,
        field: &'static str,
    },
    /// A field has the wrong CBOR type or an invalid value.
    #[error("{message_type} message with an invalid {field}")]
    BadField {
        message_type: &'static str,
        field: &'static str,
    },
}

/// An automerge-repo peer id (`senderId`, `targetId`): free text chosen by each peer.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerId(String);

impl PeerId {
    /// A peer id, or `None` if empty or longer than [`MAX_PEER_ID_BYTES`].
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        (!id.is_empty() && id.len() <= MAX_PEER_ID_BYTES).then_some(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a peer says about itself in `join` and `peer`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PeerMetadata {
    /// The id of the peer's storage, if it has one (JS sends `undefined` when it has none).
    pub storage_id: Option<String>,
    /// Whether the peer will forget everything when it disconnects.
    pub is_ephemeral: bool,
}

/// Heads of a document in one storage, as gossiped by `remote-heads-changed`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HeadsInfo {
    /// Base58 change hashes.
    pub heads: Vec<String>,
    /// Milliseconds since the Unix epoch, on the peer that saw these heads.
    pub timestamp: u64,
}

/// One automerge-repo wire message.
#[derive(Clone, PartialEq, Debug)]
pub enum RepoMessage {
    /// First message of a client: who it is and which protocol versions it speaks.
    Join {
        sender_id: PeerId,
        supported_protocol_versions: Vec<String>,
        peer_metadata: Option<PeerMetadata>,
    },
    /// The server's answer to `join`.
    Peer {
        sender_id: PeerId,
        target_id: PeerId,
        selected_protocol_version: String,
        peer_metadata: Option<PeerMetadata>,
    },
    /// Advisory goodbye (samod).
    Leave { sender_id: PeerId },
    /// A protocol error; the sender closes the connection after it. samod omits the ids.
    Error {
        sender_id: Option<PeerId>,
        target_id: Option<PeerId>,
        message: String,
    },
    /// First sync message for a document the sender does not have yet.
    Request {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    /// An Automerge sync message for a document.
    Sync {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    /// The sender does not have the document (answer to `request`).
    DocUnavailable {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
    },
    /// Application data about a document that is not stored (cursors, presence).
    Ephemeral {
        sender_id: PeerId,
        target_id: PeerId,
        count: u64,
        session_id: String,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    /// Changes the set of storage ids whose heads the sender wants gossiped.
    RemoteSubscriptionChange {
        sender_id: PeerId,
        target_id: PeerId,
        add: Option<Vec<String>>,
        remove: Vec<String>,
    },
    /// Heads of a document in other storages.
    RemoteHeadsChanged {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        new_heads: BTreeMap<String, HeadsInfo>,
    },
}

impl RepoMessage {
    /// The wire `type` of this message.
    pub fn message_type(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Peer { .. } => "peer",
            Self::Leave { .. } => "leave",
            Self::Error { .. } => "error",
            Self::Request { .. } => "request",
            Self::Sync { .. } => "sync",
            Self::DocUnavailable { .. } => "doc-unavailable",
            Self::Ephemeral { .. } => "ephemeral",
            Self::RemoteSubscriptionChange { .. } => "remote-subscription-change",
            Self::RemoteHeadsChanged { .. } => "remote-heads-changed",
        }
    }

    /// The `senderId`, when the message carries one.
    pub fn sender_id(&self) -> Option<&PeerId> {
        match self {
            Self::Join { sender_id, .. }
            | Self::Peer { sender_id, .. }
            | Self::Leave { sender_id }
            | Self::Request { sender_id, .. }
            | Self::Sync { sender_id, .. }
            | Self::DocUnavailable { sender_id, .. }
            | Self::Ephemeral { sender_id, .. }
            | Self::RemoteSubscriptionChange { sender_id, .. }
            | Self::RemoteHeadsChanged { sender_id, .. } => Some(sender_id),
            Self::Error { sender_id, .. } => sender_id.as_ref(),
        }
    }

    /// Decodes one message. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_WIRE_MESSAGE_BYTES {
            return Err(WireError::TooLarge { size: bytes.len() });
        }
        check_items(bytes)?;
        let mut rest = bytes;
        let value: Value =
            ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_CBOR_DEPTH).map_err(
                |e| match e {
                    ciborium::de::Error::RecursionLimitExceeded => WireError::TooComplex,
                    e => WireError::Cbor(e.to_string()),
                },
            )?;
        if !rest.is_empty() {
            return Err(WireError::Cbor("trailing bytes".to_string()));
        }
        let Value::Map(entries) = value else {
            return Err(WireError::NotAMessage);
        };
        Fields::new(entries)?.into_message()
    }

    /// Encodes the message as the JS client does (a CBOR map, `data` as a byte string, document
    /// ids as bare base58check text).
    pub fn encode(&self) -> Vec<u8> {
        let mut map = vec![text_entry("type", self.message_type())];
        let mut put = |key: &str, value: Value| map.push((Value::Text(key.to_string()), value));
        match self {
            Self::Join {
                sender_id,
                supported_protocol_versions,
                peer_metadata,
            } => {
                put("senderId", peer_value(sender_id));
                put(
                    "supportedProtocolVersions",
                    Value::Array(
                        supported_protocol_versions
                            .iter()
                            .cloned()
                            .map(Value::Text)
                            .collect(),
                    ),
                );
                if let Some(m) = peer_metadata {
                    put("peerMetadata", metadata_value(m));
                }
            }
            Self::Peer {
                sender_id,
                target_id,
                selected_protocol_version,
                peer_metadata,
            } => {
                put("senderId", peer_value(sender_id));
                put("targetId", peer_value(target_id));
                put(
                    "selectedProtocolVersion",
                    Value::Text(selected_protocol_version.clone()),
                );
                if let Some(m) = peer_metadata {
                    put("peerMetadata", metadata_value(m));
                }
            }
            Self::Leave { sender_id } => put("senderId", peer_value(sender_id)),
            Self::Error {
                sender_id,
                target_id,
                message,
            } => {
                if let Some(s) = sender_id {
                    put("senderId", peer_value(s));
                }
                if let Some(t) = target_id {
                    put("targetId", peer_value(t));
                }
                put("message", Value::Text(message.clone()));
            }
            Self::Request {
                sender_id,
                target_id,
                document_id,
                data,
            }
            | Self::Sync {
                sender_id,
                target_id,
                document_id,
                data,
            } => {
                put("senderId", peer_value(sender_id));
                put("targetId", peer_value(target_id));
                put("documentId", Value::Text(document_id.to_base58()));
                put("data", Value::Bytes(data.clone()));
            }
            Self::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            } => {
                put("senderId", peer_value(sender_id));
                put("targetId", peer_value(target_id));
                put("documentId", Value::Text(document_id.to_base58()));
            }
            Self::Ephemeral {
                sender_id,
                target_id,
                count,
                session_id,
                document_id,
                data,
            } => {
                put("senderId", peer_value(sender_id));
                put("targetId", peer_value(target_id));
                put("count", Value::Integer((*count).into()));
                put("sessionId", Value::Text(session_id.clone()));
                put("documentId", Value::Text(document_id.to_base58()));
                put("data", Value::Bytes(data.clone()));
            }
            Self::RemoteSubscriptionChange {
                sender_id,
                target_id,
                add,
                remove,
            } => {
                put("senderId", peer_value(sender_id));
                put("targetId", peer_value(target_id));
                if let Some(add) = add {
                    put("add", text_array(add));
                }
                put("remove", text_array(remove));
            }
            Self::RemoteHeadsChanged {
                sender_id,
                target_id,
                document_id,
                new_heads,
            } => {
                put("senderId", peer_value(sender_id));
                put("targetId", peer_value(target_id));
                put("documentId", Value::Text(document_id.to_base58()));
                let heads = new_heads
                    .iter()
                    .map(|(storage, info)| {
                        let entry = Value::Map(vec![
                            (Value::Text("heads".into()), text_array(&info.heads)),
                            (
                                Value::Text("timestamp".into()),
                                Value::Integer(info.timestamp.into()),
                            ),
                        ]);
                        (Value::Text(storage.clone()), entry)
                    })
                    .collect();
                put("newHeads", Value::Map(heads));
            }
        }
        let mut out = Vec::new();
        // Writing a `Value` to a `Vec` cannot fail: no I/O, and every value here is encodable.
        if let Err(e) = ciborium::into_writer(&Value::Map(map), &mut out) {
            tracing::error!(error = %e, "encoding a wire message failed");
        }
        out
    }
}

/// Counts the CBOR items of `bytes` without building them, refusing more than
/// [`MAX_CBOR_ITEMS`]. Only heads are read; string and byte payloads are skipped.
fn check_items(bytes: &[u8]) -> Result<(), WireError> {
    let truncated = || WireError::Cbor("truncated".to_string());
    let mut pos = 0usize;
    let mut items = 0usize;
    while pos < bytes.len() {
        items += 1;
        if items > MAX_CBOR_ITEMS {
            return Err(WireError::TooComplex);
        }
        let initial = bytes[pos];
        pos += 1;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let argument = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let n = 1usize << (info - 24);
                let raw = bytes.get(pos..pos + n).ok_or_else(truncated)?;
                pos += n;
                raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
            }
            31 => 0, // indefinite length or break: no payload of its own
            _ => {
                return Err(WireError::Cbor(
                    "reserved additional information".to_string(),
                ))
            }
        };
        // Byte and text strings of definite length carry a payload to skip.
        if (major == 2 || major == 3) && info != 31 {
            let len = usize::try_from(argument).map_err(|_| truncated())?;
            pos = pos
                .checked_add(len)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(truncated)?;
        }
    }
    Ok(())
}

/// The fields of a decoded map, taken out one by one as the message type asks for them.
struct Fields {
    message_type: &'static str,
    entries: Vec<(String, Value)>,
}

impl Fields {
    fn new(entries: Vec<(Value, Value)>) -> Result<Self, WireError> {
        let mut texts = Vec::with_capacity(entries.len());
        let mut message_type = None;
        for (k, v) in entries {
            // Non-text keys are nobody's field: skip them, as the JS decoder would ignore them.
            let Value::Text(k) = k else { continue };
            if k == "type" {
                match v {
                    Value::Text(t) => message_type = Some(t),
                    _ => return Err(WireError::NotAMessage),
                }
            } else {
                texts.push((k, v));
            }
        }
        let message_type = message_type.ok_or(WireError::NotAMessage)?;
        let known = [
            "join",
            "peer",
            "leave",
            "error",
            "request",
            "sync",
            "doc-unavailable",
            "ephemeral",
            "remote-subscription-change",
            "remote-heads-changed",
        ];
        let message_type = known
            .into_iter()
            .find(|k| *k == message_type)
            .ok_or(WireError::UnknownType(message_type))?;
        Ok(Self {
            message_type,
            entries: texts,
        })
    }

    fn into_message(mut self) -> Result<RepoMessage, WireError> {
        Ok(match self.message_type {
            "join" => RepoMessage::Join {
                sender_id: self.peer("senderId")?,
                supported_protocol_versions: self.texts("supportedProtocolVersions")?,
                peer_metadata: self.metadata("peerMetadata")?,
            },
            "peer" => RepoMessage::Peer {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                selected_protocol_version: self.text("selectedProtocolVersion")?,
                peer_metadata: self.metadata("peerMetadata")?,
            },
            "leave" => RepoMessage::Leave {
                sender_id: self.peer("senderId")?,
            },
            "error" => RepoMessage::Error {
                sender_id: self.optional_peer("senderId")?,
                target_id: self.optional_peer("targetId")?,
                message: self.text("message")?,
            },
            "request" => RepoMessage::Request {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document("documentId")?,
                data: self.bytes("data")?,
            },
            "sync" => RepoMessage::Sync {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document("documentId")?,
                data: self.bytes("data")?,
            },
            "doc-unavailable" => RepoMessage::DocUnavailable {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document("documentId")?,
            },
            "ephemeral" => RepoMessage::Ephemeral {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                count: self.uint("count")?,
                session_id: self.text("sessionId")?,
                document_id: self.document("documentId")?,
                data: self.bytes("data")?,
            },
            "remote-subscription-change" => RepoMessage::RemoteSubscriptionChange {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                add: self.optional_texts("add")?,
                remove: self.optional_texts("remove")?.unwrap_or_default(),
            },
            "remote-heads-changed" => RepoMessage::RemoteHeadsChanged {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document("documentId")?,
                new_heads: self.new_heads("newHeads")?,
            },
            other => return Err(WireError::UnknownType(other.to_string())),
        })
    }

    /// Takes a field out; JS `undefined` and `null` count as absent.
    fn take(&mut self, field: &'static str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == field)?;
        match self.entries.swap_remove(i).1 {
            Value::Null => None,
            v => Some(v),
        }
    }

    fn missing(&self, field: &'static str) -> WireError {
        WireError::MissingField {
            message_type: self.message_type,
            field,
        }
    }

    fn bad(&self, field: &'static str) -> WireError {
        WireError::BadField {
            message_type: self.message_type,
            field,
        }
    }

    fn text(&mut self, field: &'static str) -> Result<String, WireError> {
        match self.take(field) {
            Some(Value::Text(t)) => Ok(t),
            Some(_) => Err(self.bad(field)),
            None => Err(self.missing(field)),
        }
    }

    fn peer(&mut self, field: &'static str) -> Result<PeerId, WireError> {
        let text = self.text(field)?;
        PeerId::new(text).ok_or_else(|| self.bad(field))
    }

    fn optional_peer(&mut self, field: &'static str) -> Result<Option<PeerId>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Text(t)) => PeerId::new(t).map(Some).ok_or_else(|| self.bad(field)),
            Some(_) => Err(self.bad(field)),
        }
    }

    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, WireError> {
        match self.take(field) {
            Some(Value::Bytes(b)) => Ok(b),
            Some(_) => Err(self.bad(field)),
            None => Err(self.missing(field)),
        }
    }

    /// A document id as bare base58check text (JS), an `automerge:` URL, or 16 raw bytes.
    fn document(&mut self, field: &'static str) -> Result<DocumentId, WireError> {
        match self.take(field) {
            Some(Value::Text(t)) => t.parse().map_err(|_| self.bad(field)),
            Some(Value::Bytes(b)) => {
                let bytes: [u8; 16] = b.try_into().map_err(|_| self.bad(field))?;
                Ok(DocumentId::from_bytes(bytes))
            }
            Some(_) => Err(self.bad(field)),
            None => Err(self.missing(field)),
        }
    }

    fn uint(&mut self, field: &'static str) -> Result<u64, WireError> {
        match self.take(field) {
            Some(v) => value_to_u64(&v).ok_or_else(|| self.bad(field)),
            None => Err(self.missing(field)),
        }
    }

    fn texts(&mut self, field: &'static str) -> Result<Vec<String>, WireError> {
        self.optional_texts(field)?
            .ok_or_else(|| self.missing(field))
    }

    fn optional_texts(&mut self, field: &'static str) -> Result<Option<Vec<String>>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(v) => texts_of(v).map(Some).ok_or_else(|| self.bad(field)),
        }
    }

    fn metadata(&mut self, field: &'static str) -> Result<Option<PeerMetadata>, WireError> {
        let Some(value) = self.take(field) else {
            return Ok(None);
        };
        let Value::Map(entries) = value else {
            return Err(self.bad(field));
        };
        let mut metadata = PeerMetadata::default();
        for (k, v) in entries {
            match (k.as_text(), v) {
                (Some("storageId"), Value::Text(s)) => metadata.storage_id = Some(s),
                (Some("storageId"), Value::Null) => {}
                (Some("isEphemeral"), Value::Bool(b)) => metadata.is_ephemeral = b,
                (Some("storageId" | "isEphemeral"), _) => return Err(self.bad(field)),
                _ => {} // other metadata is the peer's business
            }
        }
        Ok(Some(metadata))
    }

    fn new_heads(&mut self, field: &'static str) -> Result<BTreeMap<String, HeadsInfo>, WireError> {
        let Some(Value::Map(entries)) = self.take(field) else {
            return Err(self.bad(field));
        };
        let mut out = BTreeMap::new();
        for (storage, info) in entries {
            let (Value::Text(storage), Value::Map(info)) = (storage, info) else {
                return Err(self.bad(field));
            };
            let mut heads = Vec::new();
            let mut timestamp = 0;
            for (k, v) in info {
                match k.as_text() {
                    Some("heads") => heads = texts_of(v).ok_or_else(|| self.bad(field))?,
                    Some("timestamp") => {
                        timestamp = value_to_u64(&v).ok_or_else(|| self.bad(field))?
                    }
                    _ => {}
                }
            }
            out.insert(storage, HeadsInfo { heads, timestamp });
        }
        Ok(out)
    }
}

/// cbor-x writes integral numbers beyond 32 bits (timestamps, counters) as floats.
fn value_to_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        Value::Float(f) if f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 2f64.powi(64) => {
            Some(*f as u64)
        }
        _ => None,
    }
}

fn texts_of(value: Value) -> Option<Vec<String>> {
    let Value::Array(items) = value else {
        return None;
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::Text(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn text_entry(key: &str, value: &str) -> (Value, Value) {
    (Value::Text(key.to_string()), Value::Text(value.to_string()))
}

fn peer_value(peer: &PeerId) -> Value {
    Value::Text(peer.0.clone())
}

fn text_array(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::Text).collect())
}

fn metadata_value(m: &PeerMetadata) -> Value {
    let mut entries = Vec::new();
    if let Some(s) = &m.storage_id {
        entries.push(text_entry("storageId", s));
    }
    entries.push((
        Value::Text("isEphemeral".into()),
        Value::Bool(m.is_ephemeral),
    ));
    Value::Map(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> PeerId {
        PeerId::new(s).unwrap()
    }

    fn doc() -> DocumentId {
        DocumentId::derived("repo-wire")
    }

    fn all_messages() -> Vec<RepoMessage> {
        let (a, b) = (peer("caue-63/portable"), peer("atelier-relay"));
        vec![
            RepoMessage::Join {
                sender_id: a.clone(),
                supported_protocol_versions: vec![PROTOCOL_V1.into()],
                peer_metadata: Some(PeerMetadata {
                    storage_id: Some("storage-1".into()),
                    is_ephemeral: false,
                }),
            },
            RepoMessage::Peer {
                sender_id: b.clone(),
                target_id: a.clone(),
                selected_protocol_version: PROTOCOL_V1.into(),
                peer_metadata: Some(PeerMetadata::default()),
            },
            RepoMessage::Leave {
                sender_id: a.clone(),
            },
            RepoMessage::Error {
                sender_id: Some(b.clone()),
                target_id: Some(a.clone()),
                message: "refusé".into(),
            },
            RepoMessage::Error {
                sender_id: None,
                target_id: None,
                message: "samod".into(),
            },
            RepoMessage::Request {
                sender_id: a.clone(),
                target_id: b.clone(),
                document_id: doc(),
                data: vec![0x42, 0, 0, 0, 0],
            },
            RepoMessage::Sync {
                sender_id: b.clone(),
                target_id: a.clone(),
                document_id: doc(),
                data: vec![0x42, 1, 2],
            },
            RepoMessage::DocUnavailable {
                sender_id: b.clone(),
                target_id: a.clone(),
                document_id: doc(),
            },
            RepoMessage::Ephemeral {
                sender_id: a.clone(),
                target_id: b.clone(),
                count: 1 << 40,
                session_id: "s1".into(),
                document_id: doc(),
                data: vec![0xa0],
            },
            RepoMessage::RemoteSubscriptionChange {
                sender_id: a.clone(),
                target_id: b.clone(),
                add: Some(vec!["storage-1".into()]),
                remove: vec![],
            },
            RepoMessage::RemoteHeadsChanged {
                sender_id: b,
                target_id: a,
                document_id: doc(),
                new_heads: BTreeMap::from([(
                    "storage-1".to_string(),
                    HeadsInfo {
                        heads: vec!["3xyz".into()],
                        timestamp: 1_732_000_000_000,
                    },
                )]),
            },
        ]
    }

    #[test]
    fn every_message_type_round_trips() {
        for msg in all_messages() {
            let decoded = RepoMessage::decode(&msg.encode()).unwrap();
            assert_eq!(decoded, msg);
        }
    }

    /// Bytes written by the stock JS client (`tests/js/capture-fixtures.mjs`).
    #[test]
    fn decodes_messages_captured_from_the_js_client() {
        let join = RepoMessage::decode(include_bytes!("../fixtures/repo_wire/join.cbor")).unwrap();
        let RepoMessage::Join {
            sender_id,
            supported_protocol_versions,
            peer_metadata,
        } = join
        else {
            panic!("not a join: {join:?}");
        };
        assert_eq!(sender_id.as_str(), "caue-63/fixture");
        assert_eq!(supported_protocol_versions, vec![PROTOCOL_V1.to_string()]);
        // JS writes `storageId: undefined` for a repo without storage.
        assert_eq!(
            peer_metadata,
            Some(PeerMetadata {
                storage_id: None,
                is_ephemeral: true
            })
        );

        let sync = RepoMessage::decode(include_bytes!("../fixtures/repo_wire/sync.cbor")).unwrap();
        let RepoMessage::Sync {
            target_id, data, ..
        } = &sync
        else {
            panic!("{sync:?}")
        };
        assert_eq!(target_id.as_str(), "atelier-relay");
        crate::sync_guard::decode_sync_message(data).unwrap();

        let request = include_bytes!("../fixtures/repo_wire/request.cbor");
        let RepoMessage::Request { document_id, .. } = RepoMessage::decode(request).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(document_id.to_base58(), "4NMNnkMhL8jXrdJ9jamS58PAVdXu");

        let ephemeral = include_bytes!("../fixtures/repo_wire/ephemeral.cbor");
        let RepoMessage::Ephemeral {
            count, session_id, ..
        } = RepoMessage::decode(ephemeral).unwrap()
        else {
            panic!("not ephemeral")
        };
        assert_eq!(count, 1);
        assert!(!session_id.is_empty());
    }

    #[test]
    fn unknown_types_and_garbage_are_errors() {
        let unknown = Value::Map(vec![
            text_entry("type", "teleport"),
            text_entry("senderId", "x"),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&unknown, &mut bytes).unwrap();
        assert_eq!(
            RepoMessage::decode(&bytes),
            Err(WireError::UnknownType("teleport".into()))
        );

        assert!(matches!(
            RepoMessage::decode(b"\xff\x00"),
            Err(WireError::Cbor(_))
        ));
        assert!(matches!(
            RepoMessage::decode(&[0x82, 0x01, 0x02]),
            Err(WireError::NotAMessage)
        ));
        assert!(RepoMessage::decode(&[]).is_err());
        let mut good = all_messages()[0].encode();
        good.push(0x00);
        assert!(matches!(
            RepoMessage::decode(&good),
            Err(WireError::Cbor(_))
        ));
        for msg in all_messages() {
            let bytes = msg.encode();
            for cut in 0..bytes.len() {
                assert!(
                    RepoMessage::decode(&bytes[..cut]).is_err(),
                    "{msg:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let value = Value::Map(vec![
            text_entry("type", "sync"),
            text_entry("senderId", "a"),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&value, &mut bytes).unwrap();
        assert_eq!(
            RepoMessage::decode(&bytes),
            Err(WireError::MissingField {
                message_type: "sync",
                field: "targetId"
            })
        );
        let value = Value::Map(vec![
            text_entry("type", "doc-unavailable"),
            text_entry("senderId", "a"),
            text_entry("targetId", "b"),
            text_entry("documentId", "not-an-id"),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&value, &mut bytes).unwrap();
        assert_eq!(
            RepoMessage::decode(&bytes),
            Err(WireError::BadField {
                message_type: "doc-unavailable",
                field: "documentId"
            })
        );
    }

    #[test]
    fn hostile_shapes_are_refused_before_building_values() {
        // A map holding an array of a million one-byte items.
        let mut bytes = vec![0xa2, 0x64];
        bytes.extend(b"type");
        bytes.push(0x64);
        bytes.extend(b"join");
        bytes.push(0x61);
        bytes.push(b'x');
        bytes.extend([0x9a, 0x00, 0x0f, 0x42, 0x40]);
        bytes.extend(std::iter::repeat_n(0u8, 1_000_000));
        assert_eq!(RepoMessage::decode(&bytes), Err(WireError::TooComplex));

        let deep: Vec<u8> = std::iter::repeat_n(0x81u8, 100).chain([0x00]).collect();
        assert_eq!(RepoMessage::decode(&deep), Err(WireError::TooComplex));

        // A byte string claiming 2^62 bytes.
        let huge = [0xbb, 0x40, 0, 0, 0, 0, 0, 0, 0];
        assert!(RepoMessage::decode(&huge).is_err());

        let big = vec![0u8; MAX_WIRE_MESSAGE_BYTES + 1];
        assert!(matches!(
            RepoMessage::decode(&big),
            Err(WireError::TooLarge { .. })
        ));

        let long_peer = "p".repeat(MAX_PEER_ID_BYTES + 1);
        assert!(PeerId::new(long_peer).is_none());
        assert!(PeerId::new("").is_none());
    }

    #[test]
    fn js_quirks_are_accepted() {
        // Float counters and timestamps (cbor-x), bytes document ids, null removes (samod).
        let value = Value::Map(vec![
            text_entry("type", "ephemeral"),
            text_entry("senderId", "a"),
            text_entry("targetId", "b"),
            (Value::Text("count".into()), Value::Float(5_000_000_000.0)),
            text_entry("sessionId", "s"),
            (
                Value::Text("documentId".into()),
                Value::Bytes(doc().as_bytes().to_vec()),
            ),
            (Value::Text("data".into()), Value::Bytes(vec![1])),
            (Value::Text("extra".into()), Value::Bool(true)),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&value, &mut bytes).unwrap();
        let RepoMessage::Ephemeral {
            count, document_id, ..
        } = RepoMessage::decode(&bytes).unwrap()
        else {
            panic!("not ephemeral")
        };
        assert_eq!((count, document_id), (5_000_000_000, doc()));
    }

    proptest::proptest! {
        /// Fuzz campaign, in the test suite: any bytes from a WebSocket peer decode to a
        /// message or to an error, never a panic.
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = RepoMessage::decode(&bytes);
        }

        /// The same from a CBOR map header on, so that the walk goes past the first byte.
        #[test]
        fn any_map_decodes_or_fails_without_panicking(entries in 0u8..24, bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut input = vec![0xa0 | entries];
            input.extend(bytes);
            let _ = RepoMessage::decode(&input);
        }
    }
}
