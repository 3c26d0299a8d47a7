//! The médiathèque's model: blobs named by their BLAKE3 hash, the media entries a resource lists,
//! their renditions, and the media policy that says which blobs a replica keeps.
//!
//! Why BLAKE3 rather than SHA-256: photos are hashed on every add, receive and serve, and BLAKE3
//! runs several times faster than SHA-256 on CPUs without SHA extensions (field laptops), with
//! the same 256-bit strength; its tree structure also allows verifying a blob piece by piece
//! (iroh-blobs' verified streaming) should a future protocol need it. Documents keep SHA-256
//! for their heads hash: that is Automerge's own choice and unrelated to blobs.
//!
//! A resource document holds its media as a map keyed by the original's hash, so that two offices
//! adding photos at once both keep theirs and the same photo added twice is one entry; the list
//! a user sees is that map ordered by `added_at`, then hash. Blobs themselves never enter a
//! document: they live in the content-addressed [`store::MediaStore`] of each replica and relay.

pub mod rendition;
pub mod sample;
pub mod store;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::resource::FieldError;

/// Largest blob accepted anywhere (an original photo, plan or PDF): what one added file may
/// weigh, what a relay accepts in one upload, and what a receiver allocates nothing beyond.
pub const MAX_BLOB_BYTES: u64 = 50 * 1024 * 1024;
/// Most media one resource may list: a fiche shows a gallery, not an archive.
pub const MAX_MEDIA_PER_RESOURCE: usize = 200;
/// Longest `name`, `credit`, `caption` or `alt`, in characters.
pub const MAX_MEDIA_TEXT_CHARS: usize = 1000;

/// A blob's name: the BLAKE3 hash of its bytes, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<blake3::Hash> for BlobHash {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", &self.to_hex()[..12])
    }
}

/// Why a text is not a blob hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("« {0} » n'est pas une empreinte de fichier (64 caractères hexadécimaux)")]
pub struct BadHash(pub String);

impl FromStr for BlobHash {
    type Err = BadHash;

    fn from_str(s: &str) -> Result<Self, BadHash> {
        let bad = || BadHash(s.chars().take(80).collect());
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let bytes = hex::decode(s).map_err(|_| bad())?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
    }
}

impl Serialize for BlobHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a media file is to the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Photo,
    Plan,
    Document,
}

impl MediaKind {
    pub const ALL: [MediaKind; 3] = [MediaKind::Photo, MediaKind::Plan, MediaKind::Document];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Plan => "plan",
            Self::Document => "document",
        }
    }

    /// The French word shown to staff.
    pub fn label(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Plan => "plan",
            Self::Document => "document",
        }
    }

    /// Whether a credit (« © … ») is required.
    pub fn needs_credit(self) -> bool {
        matches!(self, Self::Photo | Self::Plan)
    }
}

impl FromStr for MediaKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("« {s} » inconnu ; valeurs possibles : photo, plan, document"))
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of a media entry's blobs: the small image lists show, the size a page shows, or the
/// file as added. Media sync fetches them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Thumb,
    Display,
    Original,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thumb => "thumb",
            Self::Display => "display",
            Self::Original => "original",
        }
    }

    /// The French word shown to staff.
    pub fn label(self) -> &'static str {
        match self {
            Self::Thumb => "vignette",
            Self::Display => "image d'affichage",
            Self::Original => "original",
        }
    }
}

/// A rendition of a photo or plan: a JPEG made locally when it was added, without metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    pub hash: BlobHash,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// One photo, plan or document of a resource (FORMAT.md's `media` entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// The original file's hash: the entry's identity.
    pub hash: BlobHash,
    pub kind: MediaKind,
    /// The file name as added, for downloads (`facade-sud.jpg`).
    pub name: String,
    pub mime: String,
    /// The original's size.
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Who holds the rights (« © J. Martin / CAUE 63 »): required for photos and plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// A short description for people who cannot see the image: required for photos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
    /// When the photo was taken (`2024-05-01T10:12:00`, local time as the camera recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<String>,
    /// Where the photo was taken, only when someone chose to publish it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb: Option<Rendition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<Rendition>,
    /// Milliseconds since the epoch when it was added: the gallery's order.
    #[serde(default)]
    pub added_at: i64,
}

/// One blob a resource refers to, as listings carry them (so media sync knows every blob the
/// corpus needs without loading documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub hash: BlobHash,
    pub tier: Tier,
    pub kind: MediaKind,
    pub bytes: u64,
}

impl Media {
    /// The entry's blobs: thumbnail, display size, original (those it has).
    pub fn blobs(&self) -> Vec<BlobRef> {
        let r = |tier, x: &Option<Rendition>| {
            x.map(|x| BlobRef {
                hash: x.hash,
                tier,
                kind: self.kind,
                bytes: x.bytes,
            })
        };
        [r(Tier::Thumb, &self.thumb), r(Tier::Display, &self.display)]
            .into_iter()
            .flatten()
            .chain([BlobRef {
                hash: self.hash,
                tier: Tier::Original,
                kind: self.kind,
                bytes: self.bytes,
            }])
            .collect()
    }

    /// The blob to show at `tier`: the rendition if there is one, else the original for images
    /// (a small PNG needs no rendition), `None` for a document.
    pub fn image_at(&self, tier: Tier) -> Option<BlobHash> {
        let rendition = match tier {
            Tier::Thumb => self.thumb.or(self.display),
            Tier::Display => self.display.or(self.thumb),
            Tier::Original => None,
        };
        rendition
            .map(|r| r.hash)
            .or_else(|| self.mime.starts_with("image/").then_some(self.hash))
    }

    /// Checks the entry as a whole: every problem, named with its field.
    pub fn check(&self, errors: &mut Vec<FieldError>) {
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                field: format!("media.{field}"),
                message: format!("{} « {} » : {message}", self.kind.label(), self.name),
            })
        };
        if self.kind.needs_credit() && blank(&self.credit) {
            err(
                "credit",
                "le crédit (« © auteur ») est obligatoire pour une photo ou un plan".into(),
            );
        }
        if self.kind == MediaKind::Photo && blank(&self.alt) {
            err(
                "alt",
                "une courte description (texte alternatif) est obligatoire pour une photo".into(),
            );
        }
        if self.bytes > MAX_BLOB_BYTES {
            err(
                "bytes",
                format!(
                    "fichier trop lourd ({} ; {} au plus)",
                    crate::fr::size(self.bytes),
                    crate::fr::size(MAX_BLOB_BYTES)
                ),
            );
        }
        for (field, text) in [
            ("name", Some(&self.name)),
            ("credit", self.credit.as_ref()),
            ("caption", self.caption.as_ref()),
            ("alt", self.alt.as_ref()),
        ] {
            if text.is_some_and(|t| t.chars().count() > MAX_MEDIA_TEXT_CHARS) {
                err(field, format!("{MAX_MEDIA_TEXT_CHARS} caractères au plus"));
            }
        }
        if self.lat.is_some_and(|x| !(-90.0..=90.0).contains(&x)) {
            err("lat", "latitude entre -90 et 90 attendue".into());
        }
        if self.lon.is_some_and(|x| !(-180.0..=180.0).contains(&x)) {
            err("lon", "longitude entre -180 et 180 attendue".into());
        }
    }

    /// Parses one FORMAT.md media entry, reporting problems with the `media.` field names.
    pub fn from_json(v: &Value, errors: &mut Vec<FieldError>) -> Option<Media> {
        let mut fail = |m: String| {
            errors.push(FieldError {
                field: "media".into(),
                message: m,
            });
            None
        };
        let Some(o) = v.as_object() else {
            return fail("chaque média est un objet {hash, kind, name, …}".into());
        };
        let mut o: Map<String, Value> = o.clone();
        // Blank optional texts are absent, as for the resource's own fields.
        o.retain(|_, v| {
            !matches!(v, Value::Null) && v.as_str().is_none_or(|s| !s.trim().is_empty())
        });
        match serde_json::from_value::<Media>(Value::Object(o)) {
            Ok(m) => {
                let before = errors.len();
                m.check(errors);
                (errors.len() == before).then_some(m)
            }
            Err(e) => fail(format!("média illisible : {e}")),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// The gallery order: by time added, then hash (the same on every replica).
pub fn sort(media: &mut [Media]) {
    media.sort_by_key(|m| (m.added_at, m.hash));
}

/// Which blobs a replica fetches: every thumbnail and display size always (what pages show),
/// and originals according to the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum MediaPolicy {
    /// Every original too.
    #[default]
    Tout,
    /// Thumbnails and display sizes only: originals stay on the relay.
    Vignettes,
    /// Originals of resources in these départements and/or of these kinds (an empty list
    /// means any).
    Selection {
        #[serde(default)]
        departements: Vec<String>,
        #[serde(default)]
        kinds: Vec<MediaKind>,
    },
}

impl MediaPolicy {
    /// Whether the replica keeps this blob of a resource located in `departement`.
    pub fn wants(&self, blob: &BlobRef, departement: Option<&str>) -> bool {
        if blob.tier != Tier::Original {
            return true;
        }
        match self {
            Self::Tout => true,
            Self::Vignettes => false,
            Self::Selection {
                departements,
                kinds,
            } => {
                (departements.is_empty()
                    || departement.is_some_and(|d| departements.iter().any(|x| x == d)))
                    && (kinds.is_empty() || kinds.contains(&blob.kind))
            }
        }
    }

    /// How staff read it (`atelier media policy`).
    pub fn describe(&self) -> String {
        match self {
            Self::Tout => "tout : vignettes, images d'affichage et originaux".into(),
            Self::Vignettes => {
                "vignettes : vignettes et images d'affichage ; les originaux restent sur le relais (règle « tout » pour les recevoir)".into()
            }
            Self::Selection {
                departements,
                kinds,
            } => {
                let d = if departements.is_empty() {
                    "tous départements".to_string()
                } else {
                    format!("départements {}", departements.join(", "))
                };
                let k = if kinds.is_empty() {
                    "toutes sortes".to_string()
                } else {
                    kinds
                        .iter()
                        .map(|k| k.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("sélection : originaux des {d}, {k} ; vignettes partout")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn photo() -> Value {
        json!({"hash": BlobHash::of(b"x").to_hex(), "kind": "photo", "name": "a.jpg",
               "mime": "image/jpeg", "bytes": 1, "credit": "© A", "alt": "Façade"})
    }

    #[test]
    fn hashes_round_trip_and_bad_ones_are_named() {
        let h = BlobHash::of(b"hello");
        assert_eq!(h.to_hex().parse::<BlobHash>().unwrap(), h);
        let e = "xyz".parse::<BlobHash>().unwrap_err();
        assert!(e.to_string().contains("xyz"));
        assert!(h.to_hex().to_uppercase().parse::<BlobHash>().is_err());
    }

    #[test]
    fn photos_need_a_credit_and_an_alt_text_documents_do_not() {
        let mut errors = Vec::new();
        assert!(Media::from_json(&photo(), &mut errors).is_some());
        let mut p = photo();
        p["credit"] = json!(" ");
        p.as_object_mut().unwrap().remove("alt");
        assert!(Media::from_json(&p, &mut errors).is_none());
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["media.credit", "media.alt"]);
        let mut d = photo();
        d["kind"] = json!("document");
        d.as_object_mut().unwrap().remove("credit");
        d.as_object_mut().unwrap().remove("alt");
        let mut errors = Vec::new();
        assert!(Media::from_json(&d, &mut errors).is_some(), "{errors:?}");
    }

    #[test]
    fn policy_keeps_every_rendition_and_chooses_originals() {
        let original = |kind| BlobRef {
            hash: BlobHash::of(b"o"),
            tier: Tier::Original,
            kind,
            bytes: 9,
        };
        let thumb = BlobRef {
            tier: Tier::Thumb,
            ..original(MediaKind::Photo)
        };
        assert!(MediaPolicy::Vignettes.wants(&thumb, None));
        assert!(!MediaPolicy::Vignettes.wants(&original(MediaKind::Photo), None));
        let sel = MediaPolicy::Selection {
            departements: vec!["63".into()],
            kinds: vec![MediaKind::Plan],
        };
        assert!(sel.wants(&original(MediaKind::Plan), Some("63")));
        assert!(!sel.wants(&original(MediaKind::Photo), Some("63")));
        assert!(!sel.wants(&original(MediaKind::Plan), Some("15")));
        let json = serde_json::to_string(&sel).unwrap();
        assert_eq!(serde_json::from_str::<MediaPolicy>(&json).unwrap(), sel);
    }
}
