//! The relay's blobs (photos, plans, documents of the médiathèque): what the media streams
//! store and serve, and what `GET /media/{hash}` reads.
//!
//! Every blob is received resumably into a partial file and verified before it is stored;
//! a stored blob is verified again before it is served, and a blob that fails is deleted (the
//! office that has it sends it again). The relay keeps every blob it is sent.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use atelier_core::media::store::{MediaError, MediaStore, Receiving};
use atelier_core::media::BlobHash;

/// Errors of the relay's blob store (logged in English; offices get a short reason).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store: {0}")]
    Store(#[from] MediaError),
    #[error("blob store task failed: {0}")]
    Task(String),
    #[error("range {start}..{end} outside a blob of {len} bytes")]
    Range { start: u64, end: u64, len: u64 },
}

/// The relay's blob store.
#[derive(Clone)]
pub struct RelayBlobs {
    local: Arc<MediaStore>,
    /// Blobs verified since the relay started: a blob served in many ranges is hashed once.
    verified: Arc<std::sync::Mutex<std::collections::HashSet<BlobHash>>>,
}

impl RelayBlobs {
    /// Blobs in `<data_dir>/media`.
    pub fn open(data_dir: &Path) -> Result<Self, BlobError> {
        Ok(Self {
            local: Arc::new(MediaStore::new(data_dir.join("media"))),
            verified: Default::default(),
        })
    }

    /// The blob's size, if the relay has it (not verified).
    pub async fn len(&self, hash: &BlobHash) -> Result<Option<u64>, BlobError> {
        let local = self.local.clone();
        let hash = *hash;
        blocking(move || Ok(local.len(&hash))).await
    }

    /// Starts or resumes receiving a blob of `len` bytes sent by `office`: the returned receiver
    /// says from which offset the sender must start. Write with [`Receiving::write`], then
    /// [`Self::store`]. (Per-office quotas are checked here.)
    pub async fn receive(
        &self,
        hash: &BlobHash,
        len: u64,
        _office: &str,
    ) -> Result<Receiving, BlobError> {
        let local = self.local.clone();
        let hash = *hash;
        blocking(move || Ok(local.receive(&hash, len)?)).await
    }

    /// Verifies a complete receive and stores the blob durably; only then may it be confirmed
    /// to the sender.
    pub async fn store(&self, receiving: Receiving, _office: &str) -> Result<(), BlobError> {
        blocking(move || Ok(receiving.finish()?)).await
    }

    /// Bytes `range` of a blob, after verifying the whole blob; `None` if the relay does not
    /// have it (or had it corrupt: it is then deleted).
    pub async fn read_range(
        &self,
        hash: &BlobHash,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>, BlobError> {
        let local = self.local.clone();
        let verified = self.verified.clone();
        let hash = *hash;
        blocking(move || {
            let known = atelier_core::mutex::lock(&verified).contains(&hash);
            let (mut file, len) = if known {
                match std::fs::File::open(local.path(&hash)) {
                    Ok(f) => {
                        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                        (f, len)
                    }
                    Err(_) => return Ok(None),
                }
            } else {
                match local.open_verified(&hash) {
                    Ok(Some(f)) => {
                        atelier_core::mutex::lock(&verified).insert(hash);
                        f
                    }
                    Ok(None) | Err(MediaError::Corrupt { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            };
            if range.start > range.end || range.end > len {
                return Err(BlobError::Range {
                    start: range.start,
                    end: range.end,
                    len,
                });
            }
            let io = |e| BlobError::Store(MediaError::Unsupported(format!("{e}")));
            file.seek(SeekFrom::Start(range.start)).map_err(io)?;
            let mut out = vec![0u8; (range.end - range.start) as usize];
            file.read_exact(&mut out).map_err(io)?;
            Ok(Some(out))
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Task(e.to_string()))?
}
