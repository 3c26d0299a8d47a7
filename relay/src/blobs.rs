//! The relay's blobs (photos, plans, documents of the médiathèque): what the media streams
//! store and serve, and what `GET /media/{hash}` reads.
//!
//! Blobs live in an [`ObjectStore`]: files under `<data_dir>/media` by default, or any
//! S3-compatible bucket when `relay.toml`'s `[media]` table names one. Both use the same keys,
//! `ab/abcdef…` (the hash's first two hex digits, then the hash), the layout of core's
//! [`MediaStore`], so a relay that kept its blobs in `media/` finds them again.
//!
//! A blob is received resumably into a partial file on local disk (`<data_dir>/media-partial`,
//! core's [`MediaStore`]: a cut transfer resumes from what arrived), verified there, then put
//! into the object store — in parts for large blobs, so memory stays bounded — and made
//! durable (the local backend fsyncs file and directories) before [`RelayBlobs::store`]
//! returns: only then may the relay confirm the blob to its sender. The local copy is then
//! removed.
//!
//! Served blobs are verified too: the first read of a blob in a relay run hashes the whole
//! object; later reads trust it while the object's e-tag is unchanged. A blob that fails is
//! deleted and reported absent (the office that has it sends it again).
//!
//! Each office may store at most its quota ([`DEFAULT_OFFICE_MEDIA_QUOTA`], or the
//! configuration's `quota_per_office`), counted from the blobs it was first to send. Usage is
//! kept in `<data_dir>/media-usage.json`, written atomically; a blob is charged before it is
//! uploaded and uncharged if the upload fails, so a crash can only over-count. Two offices
//! sending the same blob at the same moment may both be charged for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use atelier_core::fr;
use atelier_core::media::store::{MediaError, MediaStore, Receiving, IO_CHUNK};
use atelier_core::media::{rendition, BlobHash, MAX_BLOB_BYTES};
use atelier_core::mutex::lock;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::config::MediaConfig;

/// Bytes of blobs one office may keep on the relay unless `relay.toml` says otherwise: 20 GB
/// is some 2,000 photos at their original size with their renditions, years of a CAUE's
/// fiches, and a small part of a relay's disk.
pub const DEFAULT_OFFICE_MEDIA_QUOTA: u64 = 20_000_000_000;

/// Blobs larger than this are uploaded in parts of this size (S3 wants parts of at least 5 MiB;
/// a blob of [`MAX_BLOB_BYTES`] takes 7). Smaller blobs are one `PUT` read whole into memory.
pub const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one blob uploaded at once: an upload holds at most this many parts plus the one
/// being filled, 24 MiB.
pub const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// Leading bytes kept to recognise a blob's content type (core's `sniff` reads 12).
const SNIFF_BYTES: usize = 16;

/// Where blobs live with the local backend, under the data directory.
pub const MEDIA_DIR: &str = "media";
/// Receives in progress, under the data directory (both backends).
pub const PARTIAL_DIR: &str = "media-partial";
/// Bytes stored per office, under the data directory.
pub const USAGE_FILE: &str = "media-usage.json";
/// The blobs the relay lost and wants back (JSON list of hashes), in the data directory.
pub const WANTED_FILE: &str = "media-wanted.json";

/// Errors of the relay's blob store. Logged in English; an office is shown
/// [`BlobError::Quota`] and core's [`MediaError`]s, which are French.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Receiving or verifying on local disk failed (core's French message).
    #[error("{0}")]
    Store(#[from] MediaError),
    /// The object store (local directory or S3) failed.
    #[error("object store: {0}")]
    Objects(#[from] object_store::Error),
    /// Reading or writing a local file (the usage file, fsync of a stored blob) failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The usage file is not what this relay writes.
    #[error("{path}: unreadable media usage: {message}")]
    Usage { path: PathBuf, message: String },
    /// The `[media]` configuration cannot make an object store.
    #[error("media storage configuration: {0}")]
    Config(String),
    /// The office has stored its whole quota: the office prints this sentence as it is.
    #[error(
        "quota de médias de l'office {office} atteint ({} sur {} ; ce fichier : {})",
        fr::size(*.used), fr::size(*.quota), fr::size(*.bytes)
    )]
    Quota {
        office: String,
        used: u64,
        quota: u64,
        bytes: u64,
    },
    #[error("blob store task failed: {0}")]
    Task(String),
    #[error("range {start}..{end} outside a blob of {len} bytes")]
    Range { start: u64, end: u64, len: u64 },
}

/// What a verified blob is: its size, its object's version, its content type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub len: u64,
    /// The object's e-tag: reads of ranges ask for this version, so bytes served after a
    /// verification come from the verified object.
    pub e_tag: Option<String>,
    /// Sniffed from the first bytes (core's `rendition::sniff`), else
    /// `application/octet-stream`.
    pub content_type: &'static str,
}

/// The relay's blob store. Cloning shares it; open it once per relay.
#[derive(Clone)]
pub struct RelayBlobs {
    inner: Arc<Inner>,
}

struct Inner {
    objects: Arc<dyn ObjectStore>,
    /// The local backend's directory, which is fsynced after each store; `None` for S3.
    local_root: Option<PathBuf>,
    /// Receives in progress and verified blobs waiting to be uploaded.
    partial: MediaStore,
    /// Blobs verified since the relay started, with the e-tag they were verified at.
    verified: Mutex<HashMap<BlobHash, BlobInfo>>,
    quota: u64,
    usage_path: PathBuf,
    usage: Mutex<BTreeMap<String, u64>>,
    /// Blobs deleted because they failed verification: offices that hold them are asked to
    /// send them again (`wanted`). Kept in [`WANTED_FILE`] so a restart does not forget them.
    wanted_path: PathBuf,
    wanted: Mutex<BTreeSet<BlobHash>>,
}

impl RelayBlobs {
    /// Blobs in `<data_dir>/media`, with the default quota.
    pub fn open(data_dir: &Path) -> Result<Self, BlobError> {
        Self::open_with(data_dir, &MediaConfig::default())
    }

    /// Blobs where `config` says (`<data_dir>/media`, or its S3 bucket), with its quota.
    pub fn open_with(data_dir: &Path, config: &MediaConfig) -> Result<Self, BlobError> {
        let (objects, local_root): (Arc<dyn ObjectStore>, _) = match &config.s3_bucket {
            Some(bucket) => (Arc::new(s3(bucket, config)?), None),
            None => {
                let root = data_dir.join(MEDIA_DIR);
                std::fs::create_dir_all(&root).map_err(|e| io_error(&root, e))?;
                (
                    Arc::new(LocalFileSystem::new_with_prefix(&root)?),
                    Some(root),
                )
            }
        };
        let partial = MediaStore::new(data_dir.join(PARTIAL_DIR));
        // Blobs verified but not uploaded when the relay stopped: their senders were never told
        // they were stored, so they send them again.
        for hash in partial.list() {
            partial.discard(&hash);
        }
        let usage_path = data_dir.join(USAGE_FILE);
        let usage = read_usage(&usage_path)?;
        let wanted_path = data_dir.join(WANTED_FILE);
        let wanted = read_wanted(&wanted_path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                objects,
                local_root,
                partial,
                verified: Mutex::default(),
                quota: config.quota_per_office,
                usage_path,
                usage: Mutex::new(usage),
                wanted_path,
                wanted: Mutex::new(wanted),
            }),
        })
    }

    /// Checks that the object store answers (the bucket exists, the keys are accepted), so a
    /// misconfigured relay fails when it starts rather than at its first blob.
    pub async fn check(&self) -> Result<(), BlobError> {
        let probe = ObjectPath::from("00");
        match self.inner.objects.list(Some(&probe)).next().await {
            Some(Err(e)) => Err(e.into()),
            Some(Ok(_)) | None => Ok(()),
        }
    }

    /// The blob's size, if the relay has it (not verified).
    pub async fn len(&self, hash: &BlobHash) -> Result<Option<u64>, BlobError> {
        match self.inner.objects.head(&key(hash)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts or resumes receiving a blob of `len` bytes sent by `office`: the returned receiver
    /// says from which offset the sender must start. Write with [`Receiving::write`], then
    /// [`Self::store`]. Refuses a blob larger than core's [`MAX_BLOB_BYTES`] and a new blob
    /// that would take the office past its quota.
    pub async fn receive(
        &self,
        hash: &BlobHash,
        len: u64,
        office: &str,
    ) -> Result<Receiving, BlobError> {
        if len > MAX_BLOB_BYTES {
            return Err(MediaError::TooLarge { bytes: len }.into());
        }
        if self.len(hash).await?.is_none() {
            self.check_quota(office, len)?;
        }
        let partial = self.inner.partial.clone();
        let hash = *hash;
        blocking(move || Ok(partial.receive(&hash, len)?)).await
    }

    /// Verifies a complete receive and stores the blob durably; only then may it be confirmed
    /// to the sender. The office is charged for the blob unless the relay already had it.
    pub async fn store(&self, receiving: Receiving, office: &str) -> Result<(), BlobError> {
        let hash = *receiving.hash();
        let len = receiving.len();
        blocking(move || Ok(receiving.finish()?)).await?;
        let result = self.upload_staged(&hash, len, office).await;
        self.inner.partial.discard(&hash);
        if result.is_ok() {
            self.set_wanted(&hash, false)?;
        }
        result
    }

    /// Stores bytes held in memory, sent by `office` (tests, small imports): the same path as a
    /// received blob, resuming whatever an earlier receive kept.
    pub async fn put(&self, data: &[u8], office: &str) -> Result<BlobHash, BlobError> {
        let hash = BlobHash::of(data);
        let mut r = self.receive(&hash, data.len() as u64, office).await?;
        let from = r.offset() as usize;
        r.write(&data[from..])?;
        self.store(r, office).await?;
        Ok(hash)
    }

    /// Blobs this relay lost (deleted as corrupt) and asks offices to send again, at most
    /// `max`.
    pub fn wanted(&self, max: usize) -> Vec<BlobHash> {
        lock(&self.inner.wanted).iter().take(max).copied().collect()
    }

    fn set_wanted(&self, hash: &BlobHash, wanted: bool) -> Result<(), BlobError> {
        let mut set = lock(&self.inner.wanted);
        let changed = if wanted {
            set.insert(*hash)
        } else {
            set.remove(hash)
        };
        if changed {
            let json = serde_json::to_vec(&*set).unwrap_or_default();
            atelier_core::fs::write_atomic(&self.inner.wanted_path, &json, None)
                .map_err(|e| io_error(&self.inner.wanted_path, e))?;
        }
        Ok(())
    }

    /// Bytes `range` of a blob, after verifying the whole blob; `None` if the relay does not
    /// have it (or had it corrupt: it is then deleted).
    pub async fn read_range(
        &self,
        hash: &BlobHash,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(info) = self.verified(hash).await? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut chunks = self.stream_range(hash, &info, range).await?;
        while let Some(chunk) = chunks.try_next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }

    /// The blob's size, version and content type after verifying it (hashing the whole object
    /// the first time in this run, or when it changed since); `None` if absent or corrupt (a
    /// corrupt object is deleted).
    pub async fn verified(&self, hash: &BlobHash) -> Result<Option<BlobInfo>, BlobError> {
        let key = key(hash);
        let meta = match self.inner.objects.head(&key).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                lock(&self.inner.verified).remove(hash);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(info) = lock(&self.inner.verified).get(hash) {
            if info.e_tag.is_some() && info.e_tag == meta.e_tag && info.len == meta.size {
                return Ok(Some(info.clone()));
            }
        }
        let got = match self.inner.objects.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let e_tag = got.meta.e_tag.clone();
        let mut chunks = got.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut len = 0u64;
        while let Some(chunk) = chunks.try_next().await? {
            let want = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..want]);
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        if BlobHash::from(hasher.finalize()) != *hash {
            tracing::warn!(blob = %hash.to_hex(), "stored blob fails verification, deleted");
            lock(&self.inner.verified).remove(hash);
            match self.inner.objects.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            self.set_wanted(hash, true)?;
            return Ok(None);
        }
        let info = BlobInfo {
            len,
            e_tag,
            content_type: rendition::sniff(&head).unwrap_or("application/octet-stream"),
        };
        lock(&self.inner.verified).insert(*hash, info.clone());
        Ok(Some(info))
    }

    /// Bytes `range` of a blob verified as `info`, as a stream of chunks (memory stays at one
    /// chunk). The object must still be the verified version.
    pub async fn stream_range(
        &self,
        hash: &BlobHash,
        info: &BlobInfo,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        if range.start > range.end || range.end > info.len {
            return Err(BlobError::Range {
                start: range.start,
                end: range.end,
                len: info.len,
            });
        }
        if range.is_empty() {
            // Object stores refuse an empty range; there is nothing to read anyway.
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: info.e_tag.clone(),
            ..GetOptions::default()
        };
        let got = self.inner.objects.get_opts(&key(hash), options).await?;
        Ok(got.into_stream().map_err(BlobError::from).boxed())
    }

    /// Bytes of blobs `office` has stored.
    pub fn usage(&self, office: &str) -> u64 {
        lock(&self.inner.usage).get(office).copied().unwrap_or(0)
    }

    /// Most bytes of blobs one office may store.
    pub fn quota(&self) -> u64 {
        self.inner.quota
    }

    fn check_quota(&self, office: &str, bytes: u64) -> Result<(), BlobError> {
        let used = self.usage(office);
        if used.saturating_add(bytes) > self.inner.quota {
            return Err(BlobError::Quota {
                office: office.to_owned(),
                used,
                quota: self.inner.quota,
                bytes,
            });
        }
        Ok(())
    }

    /// Puts a verified blob from the partial store into the object store, charging `office`.
    async fn upload_staged(
        &self,
        hash: &BlobHash,
        len: u64,
        office: &str,
    ) -> Result<(), BlobError> {
        if self.len(hash).await? == Some(len) {
            // Another office stored it meanwhile (or this one, before a lost confirmation).
            return Ok(());
        }
        self.charge(office, len, true).await?;
        let uploaded = self.upload(hash, len).await;
        if uploaded.is_err() {
            if let Err(e) = self.charge(office, len, false).await {
                tracing::warn!(error = %e, %office, "media usage not given back after a failed upload");
            }
        }
        uploaded
    }

    async fn upload(&self, hash: &BlobHash, len: u64) -> Result<(), BlobError> {
        let staged = self.inner.partial.path(hash);
        let key = key(hash);
        let mut file = tokio::fs::File::open(&staged)
            .await
            .map_err(|e| io_error(&staged, e))?;
        if len <= UPLOAD_PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes)
                .await
                .map_err(|e| io_error(&staged, e))?;
            self.inner
                .objects
                .put(&key, PutPayload::from(bytes))
                .await?;
        } else {
            let upload = self.inner.objects.put_multipart(&key).await?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_BYTES);
            let mut buf = vec![0u8; IO_CHUNK];
            let written = loop {
                if let Err(e) = parts.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await {
                    break Err(e.into());
                }
                match file.read(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => parts.write(&buf[..n]),
                    Err(e) => break Err(io_error(&staged, e)),
                }
            };
            if let Err(e) = written {
                if let Err(abort) = parts.abort().await {
                    tracing::warn!(error = %abort, "aborting a multipart upload");
                }
                return Err(e);
            }
            parts.finish().await?;
        }
        if let Some(root) = &self.inner.local_root {
            let hex = hash.to_hex();
            let dir = root.join(&hex[..2]);
            let path = dir.join(&hex);
            blocking(move || {
                // The object store renames its file into place without flushing anything:
                // flush the file, its folder (the rename) and the media folder (a new folder).
                for p in [&path, &dir, &root_of(&dir)] {
                    File::open(p)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| io_error(p, e))?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Adds (or gives back) `bytes` to `office`'s usage and writes the usage file.
    async fn charge(&self, office: &str, bytes: u64, add: bool) -> Result<(), BlobError> {
        let inner = self.inner.clone();
        let office = office.to_owned();
        blocking(move || {
            let mut usage = lock(&inner.usage);
            // Read again: the file is the truth (an operator may have reset an office, another
            // handle may have written), the map only its last reading.
            *usage = read_usage(&inner.usage_path)?;
            let used = usage.get(&office).copied().unwrap_or(0);
            let next = if add {
                // Checked again here: receives of one office run side by side.
                if used.saturating_add(bytes) > inner.quota {
                    return Err(BlobError::Quota {
                        office,
                        used,
                        quota: inner.quota,
                        bytes,
                    });
                }
                used + bytes
            } else {
                used.saturating_sub(bytes)
            };
            let mut updated = usage.clone();
            updated.insert(office, next);
            write_usage(&inner.usage_path, &updated)?;
            *usage = updated;
            Ok(())
        })
        .await
    }
}

/// The object key of a blob: `ab/abcdef…`, as core's `MediaStore` lays out its files.
fn key(hash: &BlobHash) -> ObjectPath {
    let hex = hash.to_hex();
    ObjectPath::from(format!("{}/{hex}", &hex[..2]))
}

fn root_of(dir: &Path) -> PathBuf {
    dir.parent().unwrap_or(dir).to_path_buf()
}

fn s3(bucket: &str, config: &MediaConfig) -> Result<object_store::aws::AmazonS3, BlobError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &config.s3_endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &config.s3_region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &config.s3_access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &config.s3_secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if config.s3_allow_http {
        builder = builder.with_allow_http(true);
    }
    builder
        .build()
        .map_err(|e| BlobError::Config(e.to_string()))
}

fn read_usage(path: &Path) -> Result<BTreeMap<String, u64>, BlobError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BlobError::Usage {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(io_error(path, e)),
    }
}

fn read_wanted(path: &Path) -> Result<BTreeSet<BlobHash>, BlobError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BlobError::Usage {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(io_error(path, e)),
    }
}

fn write_usage(path: &Path, usage: &BTreeMap<String, u64>) -> Result<(), BlobError> {
    let json = serde_json::to_vec_pretty(usage).expect("a map of numbers serialises");
    atelier_core::fs::write_atomic(path, &json, Some(0o644)).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: std::io::Error) -> BlobError {
    BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    async fn send(blobs: &RelayBlobs, data: &[u8], office: &str) -> Result<BlobHash, BlobError> {
        blobs.put(data, office).await
    }

    fn object_file(dir: &Path, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        dir.join(MEDIA_DIR).join(&hex[..2]).join(hex)
    }

    #[tokio::test]
    async fn stored_blobs_are_served_in_ranges_and_the_local_copy_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = RelayBlobs::open(dir.path()).unwrap();
        let small = bytes(100_000, 1);
        let h = send(&blobs, &small, "caue-15").await.unwrap();
        assert_eq!(blobs.len(&h).await.unwrap(), Some(100_000));
        assert_eq!(std::fs::read(object_file(dir.path(), &h)).unwrap(), small);
        assert!(
            !blobs.inner.partial.contains(&h),
            "the local copy is removed"
        );
        assert_eq!(
            blobs.read_range(&h, 10..20).await.unwrap().unwrap(),
            &small[10..20]
        );
        assert_eq!(blobs.read_range(&h, 5..5).await.unwrap().unwrap(), b"");
        assert!(matches!(
            blobs.read_range(&h, 0..100_001).await,
            Err(BlobError::Range { .. })
        ));
        assert_eq!(blobs.usage("caue-15"), 100_000);

        // Larger than a part: uploaded in parts, byte for byte.
        let big = bytes(UPLOAD_PART_BYTES * 2 + 12_345, 2);
        let hb = send(&blobs, &big, "caue-15").await.unwrap();
        let back = blobs.read_range(&hb, 0..big.len() as u64).await.unwrap();
        assert!(back.unwrap() == big);
        let info = blobs.verified(&hb).await.unwrap().unwrap();
        assert_eq!(info.len, big.len() as u64);
        assert_eq!(info.content_type, "application/octet-stream");

        // The same blob from another office is stored once and charged to nobody else.
        send(&blobs, &small, "caue-63").await.unwrap();
        assert_eq!(blobs.usage("caue-63"), 0);
        // Usage survives a restart.
        let again = RelayBlobs::open(dir.path()).unwrap();
        assert_eq!(again.usage("caue-15"), 100_000 + big.len() as u64);
        let unknown = BlobHash::of(b"never sent");
        assert_eq!(again.len(&unknown).await.unwrap(), None);
        assert_eq!(again.read_range(&unknown, 0..1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_cut_receive_resumes_and_wrong_bytes_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = RelayBlobs::open(dir.path()).unwrap();
        let data = bytes(300_000, 3);
        let h = BlobHash::of(&data);
        let mut r = blobs
            .receive(&h, data.len() as u64, "caue-15")
            .await
            .unwrap();
        r.write(&data[..120_000]).unwrap();
        drop(r); // the link is cut
        assert_eq!(blobs.len(&h).await.unwrap(), None);
        let mut r = blobs
            .receive(&h, data.len() as u64, "caue-15")
            .await
            .unwrap();
        assert_eq!(r.offset(), 120_000);
        r.write(&data[120_000..]).unwrap();
        blobs.store(r, "caue-15").await.unwrap();
        assert_eq!(
            blobs.read_range(&h, 0..300_000).await.unwrap().unwrap(),
            data
        );

        let liar = BlobHash::of(b"the real bytes");
        let mut r = blobs.receive(&liar, 5, "caue-15").await.unwrap();
        r.write(b"lies!").unwrap();
        assert!(matches!(
            blobs.store(r, "caue-15").await,
            Err(BlobError::Store(MediaError::Corrupt { .. }))
        ));
        assert_eq!(blobs.len(&liar).await.unwrap(), None);
        assert_eq!(blobs.usage("caue-15"), 300_000, "nothing charged for it");
        assert!(matches!(
            blobs.receive(&liar, MAX_BLOB_BYTES + 1, "caue-15").await,
            Err(BlobError::Store(MediaError::TooLarge { .. }))
        ));
    }

    #[tokio::test]
    async fn a_corrupt_object_is_deleted_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = RelayBlobs::open(dir.path()).unwrap();
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.extend(bytes(50_000, 4));
        let h = send(&blobs, &jpeg, "caue-15").await.unwrap();
        let info = blobs.verified(&h).await.unwrap().unwrap();
        assert_eq!(info.content_type, "image/jpeg");
        // Altered on disk after it was verified (same size): the new version is checked again.
        let mut altered = jpeg.clone();
        altered[1000] ^= 1;
        let path = object_file(dir.path(), &h);
        std::fs::write(&path, &altered).unwrap();
        let now = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(now)
            .unwrap();
        assert_eq!(blobs.read_range(&h, 0..10).await.unwrap(), None);
        assert!(!path.exists(), "a corrupt blob is deleted");
        assert_eq!(blobs.len(&h).await.unwrap(), None);
        // A fresh relay run verifies before serving too.
        let h2 = send(&blobs, &bytes(1000, 5), "caue-15").await.unwrap();
        std::fs::write(object_file(dir.path(), &h2), bytes(1000, 6)).unwrap();
        let again = RelayBlobs::open(dir.path()).unwrap();
        assert_eq!(again.verified(&h2).await.unwrap(), None);
        assert_eq!(again.len(&h2).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_office_past_its_quota_is_refused_in_french() {
        let dir = tempfile::tempdir().unwrap();
        let config = MediaConfig {
            quota_per_office: 250_000,
            ..MediaConfig::default()
        };
        let blobs = RelayBlobs::open_with(dir.path(), &config).unwrap();
        let first = bytes(200_000, 7);
        send(&blobs, &first, "caue-15").await.unwrap();
        let err = send(&blobs, &bytes(100_000, 8), "caue-15")
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Quota { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "quota de médias de l'office caue-15 atteint (200,0 ko sur 250,0 ko ; ce fichier : 100,0 ko)"
        );
        // Other offices have their own quota; a blob the relay has costs nothing.
        send(&blobs, &bytes(100_000, 8), "caue-63").await.unwrap();
        send(&blobs, &bytes(100_000, 8), "caue-15").await.unwrap();
        assert_eq!(blobs.usage("caue-15"), 200_000);

        // Two receives of one office side by side: the second store is refused and not kept.
        let (a, b) = (bytes(30_000, 9), bytes(30_000, 10));
        let (ha, hb) = (BlobHash::of(&a), BlobHash::of(&b));
        let mut ra = blobs.receive(&ha, 30_000, "caue-15").await.unwrap();
        let mut rb = blobs.receive(&hb, 30_000, "caue-15").await.unwrap();
        ra.write(&a).unwrap();
        rb.write(&b).unwrap();
        blobs.store(ra, "caue-15").await.unwrap();
        assert!(matches!(
            blobs.store(rb, "caue-15").await,
            Err(BlobError::Quota { .. })
        ));
        assert_eq!(blobs.len(&hb).await.unwrap(), None);
        assert!(!blobs.inner.partial.contains(&hb));
        assert_eq!(blobs.usage("caue-15"), 230_000);
    }
}
