//! A replica's médiathèque: adding and removing a resource's photos and documents, the policy
//! of which blobs to keep, and what media sync has to fetch and to send.
//!
//! Blobs live in `<dir>/media` ([`MediaStore`]). Adding a file writes its blobs (original and
//! renditions) and their outbox entries before the document names them, so a document never
//! refers to a blob this replica lacks and a crash can at worst send a blob twice. What to fetch
//! is derived from the listing (every entry carries its blobs), so knowing what is missing costs
//! no network round trip; what to send is the outbox, emptied as the relay confirms.

use serde::{Deserialize, Serialize};

use super::{ListFilter, Replica, ReplicaError};
use crate::document::{DocumentError, Edit};
use crate::ids::DocumentId;
use crate::media::rendition::{self, Prepared};
use crate::media::store::{MediaError, MediaStore};
use crate::media::{BlobHash, BlobRef, Media, MediaPolicy, Rendition, Tier};
use crate::resource::{FieldError, ValidationErrors};
use crate::store::keys::{outbox_key, MEDIA_OUTBOX, META_MEDIA_POLICY};
use crate::store::Batch;

/// Most files prepared at once (each decoded image can take a few hundred MB).
pub const MAX_PREPARE_THREADS: usize = 2;

/// A file to add to a resource, with what staff said of it.
#[derive(Debug, Clone, Default)]
pub struct NewMedia {
    /// The file name as added (`facade.jpg`).
    pub name: String,
    pub bytes: Vec<u8>,
    /// An image that is a plan rather than a photo.
    pub plan: bool,
    pub credit: Option<String>,
    pub caption: Option<String>,
    pub alt: Option<String>,
    /// Publish the photo's EXIF position on the entry, and as the resource's location when it
    /// has none. Off by default: a photo's GPS is private until someone decides otherwise.
    pub use_gps: bool,
}

/// What was added, with what the files offered and was not used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    pub media: Media,
    /// The EXIF position, when the photo had one and `use_gps` was off.
    pub gps_offered: Option<(f64, f64)>,
}

/// Blobs still to receive and to send, for `atelier status` and the web indicator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaStatus {
    pub to_receive: u64,
    pub to_receive_bytes: u64,
    pub to_send: u64,
    pub to_send_bytes: u64,
}

impl Replica {
    /// The replica's blobs.
    pub fn media_store(&self) -> &MediaStore {
        &self.media
    }

    /// Adds files to a resource: every file is checked and rendered before anything is
    /// written, so one bad file adds nothing; then blobs, then the document.
    pub fn add_media(
        &self,
        id: &DocumentId,
        files: Vec<NewMedia>,
        now_ms: i64,
    ) -> Result<Vec<Added>, ReplicaError> {
        if !self.store.contains(id)? {
            return Err(ReplicaError::NotFound(id.to_string()));
        }
        let threads = crate::par::threads_for(files.len(), MAX_PREPARE_THREADS, 1);
        let prepared = crate::par::map(
            &files,
            threads,
            |f| rendition::prepare(&f.bytes, &f.name, f.plan),
            |_| true,
        );
        let mut errors = Vec::new();
        let mut ready = Vec::new();
        for (i, (file, p)) in files.iter().zip(prepared).enumerate() {
            match p {
                Some(Ok(p)) => {
                    let (media, gps) = entry(file, &p, now_ms + i as i64);
                    let before = errors.len();
                    media.check(&mut errors);
                    if errors.len() == before {
                        ready.push((media, gps, p));
                    }
                }
                Some(Err(e)) => errors.push(FieldError {
                    field: "media".into(),
                    message: e.to_string(),
                }),
                None => {}
            }
        }
        if !errors.is_empty() {
            return Err(DocumentError::Invalid(ValidationErrors(errors)).into());
        }
        let mut outbox = Batch::default();
        for ((media, _, p), file) in ready.iter().zip(&files) {
            let blobs = [
                Some(file.bytes.as_slice()),
                p.thumb.as_ref().map(|t| t.bytes.as_slice()),
                p.display.as_ref().map(|d| d.bytes.as_slice()),
            ];
            for bytes in blobs.into_iter().flatten() {
                let hash = self.media.put(bytes)?;
                outbox.put(
                    outbox_key(&hash),
                    (bytes.len() as u64).to_be_bytes().to_vec(),
                );
            }
            debug_assert_eq!(BlobHash::of(&file.bytes), media.hash);
        }
        self.kv.apply(outbox)?;
        let mut edits: Vec<Edit> = ready
            .iter()
            .map(|(m, _, _)| Edit::AddMedia(Box::new(m.clone())))
            .collect();
        if let Some((lat, lon)) = ready
            .iter()
            .zip(&files)
            .find(|(_, f)| f.use_gps)
            .and_then(|((m, _, _), _)| m.lat.zip(m.lon))
        {
            let current = self.get(id)?.resource;
            if current.location.as_ref().is_none_or(|l| l.lat.is_none()) {
                edits.push(Edit::Set {
                    field: "location.lat".into(),
                    value: lat.into(),
                });
                edits.push(Edit::Set {
                    field: "location.lon".into(),
                    value: lon.into(),
                });
            }
        }
        self.edit(id, &edits, now_ms)?;
        Ok(ready
            .into_iter()
            .map(|(media, gps_offered, _)| Added { media, gps_offered })
            .collect())
    }

    /// Removes a media entry from a resource (history keeps it; its blobs stay).
    pub fn remove_media(
        &self,
        id: &DocumentId,
        hash: &BlobHash,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        self.edit(id, &[Edit::RemoveMedia(*hash)], now_ms)
            .map(|_| ())
    }

    /// Stores a blob received from elsewhere (an import's media folder): verified against its
    /// announced hash, and queued for the relay.
    pub fn import_blob(&self, hash: &BlobHash, bytes: &[u8]) -> Result<(), ReplicaError> {
        self.media.put_verified(hash, bytes)?;
        let mut b = Batch::default();
        b.put(
            outbox_key(hash),
            (bytes.len() as u64).to_be_bytes().to_vec(),
        );
        self.kv.apply(b)?;
        self.kv.flush()?;
        Ok(())
    }

    /// Which blobs this replica keeps.
    pub fn media_policy(&self) -> Result<MediaPolicy, ReplicaError> {
        Ok(self
            .kv
            .get(META_MEDIA_POLICY)?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default())
    }

    pub fn set_media_policy(&self, policy: &MediaPolicy) -> Result<(), ReplicaError> {
        let mut b = Batch::default();
        b.put(
            META_MEDIA_POLICY.to_vec(),
            serde_json::to_vec(policy).unwrap_or_default(),
        );
        self.kv.apply(b)?;
        self.kv.flush()?;
        Ok(())
    }

    /// The blobs the policy wants that are not here yet, every thumbnail first, then display
    /// sizes, then originals (each tier in listing order), each blob once.
    pub fn media_missing(&self, policy: &MediaPolicy) -> Result<Vec<BlobRef>, ReplicaError> {
        let mut seen = std::collections::HashSet::new();
        let mut wanted: Vec<BlobRef> = Vec::new();
        for e in self.list(&ListFilter::default())? {
            if e.deleted {
                continue;
            }
            for b in &e.media {
                if policy.wants(b, e.departement.as_deref()) && seen.insert(b.hash) {
                    wanted.push(*b);
                }
            }
        }
        wanted.retain(|b| !self.media.contains(&b.hash));
        wanted.sort_by_key(|b| b.tier);
        Ok(wanted)
    }

    /// Blobs made here that the relay has not confirmed, with their sizes.
    pub fn media_outbox(&self) -> Result<Vec<(BlobHash, u64)>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[MEDIA_OUTBOX], &mut |k, v| {
            if let (Some(h), Some(len)) = (
                k.get(1..33).and_then(|h| <[u8; 32]>::try_from(h).ok()),
                v.try_into().ok().map(u64::from_be_bytes),
            ) {
                out.push((BlobHash::from_bytes(h), len));
            }
            true
        })?;
        Ok(out)
    }

    /// Puts into the outbox the blobs among `hashes` held here: a relay lost them, or they came
    /// from a peer and the relay may not have them.
    pub fn media_requeue(&self, hashes: &[BlobHash]) -> Result<usize, ReplicaError> {
        let mut b = Batch::default();
        let mut n = 0;
        for h in hashes {
            if let Some(len) = self.media.len(h) {
                b.put(outbox_key(h), len.to_be_bytes().to_vec());
                n += 1;
            }
        }
        self.kv.apply(b)?;
        self.kv.flush()?;
        Ok(n)
    }

    /// The relay holds these blobs now: they leave the outbox.
    pub fn media_sent(&self, hashes: &[BlobHash]) -> Result<(), ReplicaError> {
        let mut b = Batch::default();
        for h in hashes {
            b.remove(outbox_key(h));
        }
        self.kv.apply(b)?;
        self.kv.flush()?;
        Ok(())
    }

    /// Blobs still to receive (per the policy) and to send.
    pub fn media_status(&self) -> Result<MediaStatus, ReplicaError> {
        let missing = self.media_missing(&self.media_policy()?)?;
        let outbox = self.media_outbox()?;
        Ok(MediaStatus {
            to_receive: missing.len() as u64,
            to_receive_bytes: missing.iter().map(|b| b.bytes).sum(),
            to_send: outbox.len() as u64,
            to_send_bytes: outbox.iter().map(|(_, n)| n).sum(),
        })
    }

    /// The blob to show for `tier` of a resource's media entry, if it is here.
    pub fn media_blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, ReplicaError> {
        match self.media.read(hash) {
            Ok(b) => Ok(b),
            // Discarded by `read`: media sync fetches it again.
            Err(MediaError::Corrupt { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The media entry of a prepared file, and the GPS position it offers but does not publish.
fn entry(file: &NewMedia, p: &Prepared, added_at: i64) -> (Media, Option<(f64, f64)>) {
    let rendition = |r: &Option<rendition::Rendered>| {
        r.as_ref().map(|r| Rendition {
            hash: BlobHash::of(&r.bytes),
            width: r.width,
            height: r.height,
            bytes: r.bytes.len() as u64,
        })
    };
    let (lat, lon, offered) = match (p.gps, file.use_gps) {
        (Some((lat, lon)), true) => (Some(lat), Some(lon), None),
        (gps, _) => (None, None, gps),
    };
    let trimmed = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let media = Media {
        hash: BlobHash::of(&file.bytes),
        kind: p.kind,
        name: file.name.clone(),
        mime: p.mime.into(),
        bytes: file.bytes.len() as u64,
        width: p.width,
        height: p.height,
        credit: trimmed(&file.credit),
        caption: trimmed(&file.caption),
        alt: trimmed(&file.alt),
        taken_at: p.taken_at.clone(),
        lat,
        lon,
        thumb: rendition(&p.thumb),
        display: rendition(&p.display),
        added_at,
    };
    (media, offered)
}

/// Which tier a blob of a resource is, for placeholders (« vignette en cours de réception »).
pub fn tier_of(media: &Media, hash: &BlobHash) -> Option<Tier> {
    media
        .blobs()
        .into_iter()
        .find(|b| b.hash == *hash)
        .map(|b| b.tier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OfficeId;
    use crate::media::rendition::tests::jpeg;
    use crate::media::MediaKind;
    use crate::replica::tests::resource;
    use serde_json::json;

    fn photo(name: &str, w: u32) -> NewMedia {
        NewMedia {
            name: name.into(),
            bytes: jpeg(w, w / 2),
            credit: Some("© CAUE 63".into()),
            alt: Some("Façade en pisé".into()),
            ..Default::default()
        }
    }

    #[test]
    fn added_photos_are_listed_with_their_blobs_and_queued_for_the_relay() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::init(dir.path(), "caue-63".parse::<OfficeId>().unwrap()).unwrap();
        let id = r
            .create(
                &resource(json!({"kind":"realisation","title":"École","office":"caue-63"})),
                &mut rand::thread_rng(),
                1,
            )
            .unwrap();
        let added = r
            .add_media(&id, vec![photo("a.jpg", 800), photo("b.jpg", 400)], 10)
            .unwrap();
        assert_eq!(added.len(), 2);
        let stored = r.get(&id).unwrap().resource;
        assert_eq!(stored.media.len(), 2);
        assert_eq!(stored.media[0].name, "a.jpg");
        let listing = r.listing(&id).unwrap().unwrap();
        assert_eq!(listing.cover, stored.media[0].thumb.map(|t| t.hash));
        assert_eq!(listing.media.len(), 6);
        for b in &listing.media {
            assert!(r.media_store().contains(&b.hash));
        }
        assert_eq!(r.media_outbox().unwrap().len(), 6);
        assert!(r.media_missing(&MediaPolicy::Tout).unwrap().is_empty());
        let status = r.media_status().unwrap();
        assert_eq!(status.to_send, 6);
        r.media_sent(&listing.media.iter().map(|b| b.hash).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(r.media_status().unwrap().to_send, 0);

        // Removing keeps the entry in history.
        let first = stored.media[0].hash;
        r.remove_media(&id, &first, 20).unwrap();
        assert_eq!(r.get(&id).unwrap().resource.media.len(), 1);
        let history = r.history(&id).unwrap();
        let before = &history[history.len() - 2].hash;
        let then = r.get_at(&id, std::slice::from_ref(before)).unwrap();
        assert!(then.resource.media.iter().any(|m| m.hash == first));
        // Restoring that version (as the history page does, field by field) brings it back.
        let media = then.resource.to_json()["media"].clone();
        r.edit(
            &id,
            &[Edit::Set {
                field: "media".into(),
                value: media,
            }],
            30,
        )
        .unwrap();
        let restored = r.get(&id).unwrap().resource.media;
        assert_eq!(restored, then.resource.media);
    }

    #[test]
    fn one_bad_file_adds_nothing_and_every_problem_is_named() {
        let r = Replica::in_memory("caue-15".parse::<OfficeId>().unwrap());
        let id = r
            .create(
                &resource(json!({"kind":"outil","title":"Guide","office":"caue-15"})),
                &mut rand::thread_rng(),
                1,
            )
            .unwrap();
        let mut no_credit = photo("sans-credit.jpg", 100);
        no_credit.credit = None;
        let corrupt = NewMedia {
            name: "coupee.jpg".into(),
            bytes: jpeg(100, 50)[..300].to_vec(),
            ..photo("x", 10)
        };
        let e = r
            .add_media(&id, vec![photo("ok.jpg", 100), no_credit, corrupt], 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sans-credit.jpg") && e.contains("crédit"), "{e}");
        assert!(e.contains("coupee.jpg"), "{e}");
        assert!(r.get(&id).unwrap().resource.media.is_empty());
        assert!(r.media_outbox().unwrap().is_empty());
    }

    #[test]
    fn missing_blobs_come_thumbnails_first_and_follow_the_policy() {
        let a = Replica::in_memory("caue-63".parse::<OfficeId>().unwrap());
        let id = a
            .create(
                &resource(json!({"kind":"realisation","title":"École","office":"caue-63","location":{"departement":"63"}})),
                &mut rand::thread_rng(),
                1,
            )
            .unwrap();
        a.add_media(&id, vec![photo("a.jpg", 600)], 10).unwrap();
        let m = a.get(&id).unwrap().resource.media[0].clone();
        let b = Replica::in_memory("caue-15".parse::<OfficeId>().unwrap());
        b.store()
            .apply_bytes(&id, &a.store().saved(&id).unwrap().unwrap())
            .unwrap();
        let missing = b.media_missing(&MediaPolicy::Tout).unwrap();
        let tiers: Vec<Tier> = missing.iter().map(|x| x.tier).collect();
        assert_eq!(tiers, [Tier::Thumb, Tier::Display, Tier::Original]);
        assert_eq!(b.media_missing(&MediaPolicy::Vignettes).unwrap().len(), 2);
        let elsewhere = MediaPolicy::Selection {
            departements: vec!["15".into()],
            kinds: vec![MediaKind::Photo],
        };
        assert_eq!(b.media_missing(&elsewhere).unwrap().len(), 2);
        let thumb = m.thumb.unwrap().hash;
        b.media_store()
            .put_verified(&thumb, &a.media_blob(&thumb).unwrap().unwrap())
            .unwrap();
        assert_eq!(
            b.media_missing(&MediaPolicy::Tout).unwrap()[0].tier,
            Tier::Display
        );
    }
}
