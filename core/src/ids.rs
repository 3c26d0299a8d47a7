//! Newtype identifiers: automerge-repo document ids, CAUE office ids, and the heads hash that
//! identifies one state of a document.

use std::fmt;
use std::str::FromStr;

use automerge::ChangeHash;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::vocab;

/// Errors parsing an identifier.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    /// The text is not `automerge:<base58check>` of 16 bytes, nor the bare base58check part.
    #[error("« {0} » n'est pas un identifiant de document (automerge:…)")]
    BadDocumentId(String),
    /// The text is not `caue-<département code>` for a known département.
    #[error(
        "« {0} » n'est pas un identifiant d'office (caue-<code département>, ex. caue-63, caue-2A)"
    )]
    BadOfficeId(String),
}

/// An automerge-repo document id: 16 random bytes, written as base58check.
///
/// Every resource, and every catalog shard, is one Automerge document with such an id, so
/// automerge-repo clients (JS, samod) address our documents with their own URLs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    /// The URL prefix used by automerge-repo.
    pub const URL_PREFIX: &'static str = "automerge:";

    /// A fresh random id (UUID v4 layout, as automerge-repo makes them).
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    /// A deterministic id derived from a name, for well-known documents (the catalog) that
    /// every replica must agree on without talking to each other first.
    pub fn derived(name: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(name.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The bare base58check form, as used in automerge-repo messages (`documentId`).
    pub fn to_base58(&self) -> String {
        bs58::encode(self.0).with_check().into_string()
    }

    /// The `automerge:<base58check>` URL.
    pub fn url(&self) -> String {
        format!("{}{}", Self::URL_PREFIX, self.to_base58())
    }

    /// Which of `n` buckets this id falls in (the first two bytes are uniformly random).
    pub fn bucket(&self, n: usize) -> usize {
        (u16::from_be_bytes([self.0[0], self.0[1]]) as usize) % n
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({})", self.to_base58())
    }
}

impl FromStr for DocumentId {
    type Err = IdError;

    /// Accepts `automerge:<b58>` or the bare `<b58>` form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.trim().strip_prefix(Self::URL_PREFIX).unwrap_or(s.trim());
        let bad = || IdError::BadDocumentId(s.to_string());
        let bytes = bs58::decode(bare)
            .with_check(None)
            .into_vec()
            .map_err(|_| bad())?;
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
        Ok(Self(bytes))
    }
}

impl Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.url())
    }
}

impl<'de> Deserialize<'de> for DocumentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A CAUE office: `caue-` followed by a département code (`caue-63`, `caue-2A`, `caue-974`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OfficeId(String);

impl OfficeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The département code of this office (`63`, `2A`).
    pub fn departement(&self) -> &str {
        &self.0["caue-".len()..]
    }
}

impl fmt::Display for OfficeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OfficeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s
            .strip_prefix("caue-")
            .ok_or_else(|| IdError::BadOfficeId(s.to_string()))?;
        // Accept a lowercase Corsican code but store the canonical one.
        let code = code.to_ascii_uppercase();
        if vocab::departement(&code).is_none() {
            return Err(IdError::BadOfficeId(s.to_string()));
        }
        Ok(Self(format!("caue-{code}")))
    }
}

impl TryFrom<String> for OfficeId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<OfficeId> for String {
    fn from(o: OfficeId) -> String {
        o.0
    }
}

/// SHA-256 of a document's sorted heads: equal iff two replicas hold the same document state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct HeadsHash(pub [u8; 32]);

impl serde::Serialize for HeadsHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for HeadsHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0; 32];
        hex::decode_to_slice(hex.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(Self(out))
    }
}

impl HeadsHash {
    pub fn of(heads: &[ChangeHash]) -> Self {
        use sha2::{Digest, Sha256};
        let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
        sorted.sort();
        let mut h = Sha256::new();
        for head in sorted {
            h.update(head.0);
        }
        Self(h.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn document_id_round_trips_through_url_and_bare_form() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let id = DocumentId::random(&mut rng);
        assert!(id.to_string().starts_with("automerge:"));
        assert_eq!(id.to_string().parse::<DocumentId>().unwrap(), id);
        assert_eq!(id.to_base58().parse::<DocumentId>().unwrap(), id);
    }

    #[test]
    fn document_id_rejects_bad_checksum() {
        let id = DocumentId::derived("x").to_base58();
        let mut broken = id.clone().into_bytes();
        let last = broken.len() - 1;
        broken[last] = if broken[last] == b'2' { b'3' } else { b'2' };
        let broken = String::from_utf8(broken).unwrap();
        assert!(broken.parse::<DocumentId>().is_err());
        assert!("automerge:".parse::<DocumentId>().is_err());
    }

    #[test]
    fn office_ids_follow_departements() {
        assert_eq!("caue-63".parse::<OfficeId>().unwrap().departement(), "63");
        assert_eq!("caue-2a".parse::<OfficeId>().unwrap().as_str(), "caue-2A");
        assert!("caue-974".parse::<OfficeId>().is_ok());
        assert!("caue-99".parse::<OfficeId>().is_err());
        assert!("63".parse::<OfficeId>().is_err());
    }
}
