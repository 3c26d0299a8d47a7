//! A content-addressed blob store on disk: one file per blob, named by its BLAKE3 hash, written
//! atomically and verified whenever it is read.
//!
//! Layout under the store's directory: `ab/abcdef…` (the first two hex digits as a folder, so no
//! folder holds more than a few thousand files), and `.partial/abcdef…` for blobs being
//! received: a receive that is cut keeps its bytes there and resumes from their length; only a
//! blob whose hash checks is renamed into place, so the store never holds a half-written or
//! wrong blob. A blob that fails verification when read is removed (the caller fetches it again).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{BlobHash, MAX_BLOB_BYTES};
use crate::fr;

/// Buffer size of streamed reads and hashing: memory per blob in flight stays this small.
pub const IO_CHUNK: usize = 64 * 1024;
const PARTIAL_DIR: &str = ".partial";

/// Errors of the blob store, in French: staff read them (disk full, corrupt file).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("fichier {path} : {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The disk is full: nothing half-written was kept in the store.
    #[error("disque plein en écrivant {path} : libérez de la place puis recommencez (rien n'a été enregistré à moitié)")]
    DiskFull { path: PathBuf },
    /// The bytes do not have the hash they were announced with: discarded.
    #[error("fichier {hash} altéré (empreinte différente) : écarté, il sera demandé à nouveau")]
    Corrupt { hash: BlobHash },
    #[error("fichier trop lourd ({} ; {} au plus)", fr::size(*.bytes), fr::size(MAX_BLOB_BYTES))]
    TooLarge { bytes: u64 },
    /// A received blob has more bytes than announced.
    #[error("fichier {hash} : plus d'octets que les {expected} annoncés")]
    Overrun { hash: BlobHash, expected: u64 },
    /// The file cannot be used as a photo, plan or document (the reason is said).
    #[error("{0}")]
    Unsupported(String),
}

impl MediaError {
    fn io(path: &Path, source: io::Error) -> Self {
        // ENOSPC (28) and EDQUOT (122) on Linux: say it plainly.
        if source.kind() == io::ErrorKind::StorageFull
            || matches!(source.raw_os_error(), Some(28 | 122))
        {
            Self::DiskFull { path: path.into() }
        } else {
            Self::Io {
                path: path.into(),
                source,
            }
        }
    }
}

/// The blobs of one replica (or of a relay kept on a local disk).
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
}

impl MediaStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob lives (whether or not it is there yet).
    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    fn partial_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(PARTIAL_DIR).join(hash.to_hex())
    }

    /// Whether the blob is in the store (not verified: reads verify).
    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_file()
    }

    /// The blob's size, if present.
    pub fn len(&self, hash: &BlobHash) -> Option<u64> {
        fs::metadata(self.path(hash)).ok().map(|m| m.len())
    }

    /// Stores `bytes` and returns their hash; a blob already there is not written again.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobHash, MediaError> {
        if bytes.len() as u64 > MAX_BLOB_BYTES {
            return Err(MediaError::TooLarge {
                bytes: bytes.len() as u64,
            });
        }
        let hash = BlobHash::of(bytes);
        if self.contains(&hash) {
            return Ok(hash);
        }
        let path = self.path(&hash);
        let parent = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent).map_err(|e| MediaError::io(parent, e))?;
        crate::fs::write_atomic(&path, bytes, Some(0o644)).map_err(|e| MediaError::io(&path, e))?;
        Ok(hash)
    }

    /// Stores bytes announced as `hash`, refusing them if they do not match.
    pub fn put_verified(&self, hash: &BlobHash, bytes: &[u8]) -> Result<(), MediaError> {
        if BlobHash::of(bytes) != *hash {
            return Err(MediaError::Corrupt { hash: *hash });
        }
        self.put(bytes).map(|_| ())
    }

    /// The blob's bytes, verified; `None` if absent. A blob that fails verification is removed
    /// and reported as `Corrupt`.
    pub fn read(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, MediaError> {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MediaError::io(&path, e)),
        };
        if BlobHash::of(&bytes) != *hash {
            self.discard(hash);
            return Err(MediaError::Corrupt { hash: *hash });
        }
        Ok(Some(bytes))
    }

    /// The blob opened for streaming, after checking its hash in one streamed pass (memory stays
    /// at [`IO_CHUNK`]); `None` if absent. A blob that fails is removed and reported `Corrupt`.
    pub fn open_verified(&self, hash: &BlobHash) -> Result<Option<(File, u64)>, MediaError> {
        let path = self.path(hash);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MediaError::io(&path, e)),
        };
        let mut hasher = blake3::Hasher::new();
        let len = hash_reader(&mut file, &mut hasher).map_err(|e| MediaError::io(&path, e))?;
        if BlobHash::from(hasher.finalize()) != *hash {
            self.discard(hash);
            return Err(MediaError::Corrupt { hash: *hash });
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| MediaError::io(&path, e))?;
        Ok(Some((file, len)))
    }

    /// Removes a blob (a corrupt one, or on a user's request).
    pub fn discard(&self, hash: &BlobHash) {
        let _ = fs::remove_file(self.path(hash));
    }

    /// Starts or resumes receiving a blob of `len` bytes announced as `hash`: the receiver says
    /// from which offset to send (what an earlier, cut receive kept).
    pub fn receive(&self, hash: &BlobHash, len: u64) -> Result<Receiving, MediaError> {
        if len > MAX_BLOB_BYTES {
            return Err(MediaError::TooLarge { bytes: len });
        }
        let path = self.partial_path(hash);
        let parent = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent).map_err(|e| MediaError::io(parent, e))?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| MediaError::io(&path, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut offset =
            hash_reader(&mut file, &mut hasher).map_err(|e| MediaError::io(&path, e))?;
        if offset > len {
            // Kept from a blob announced differently: start again.
            file.set_len(0).map_err(|e| MediaError::io(&path, e))?;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| MediaError::io(&path, e))?;
            hasher.reset();
            offset = 0;
        }
        Ok(Receiving {
            store: self.clone(),
            hash: *hash,
            len,
            offset,
            file,
            hasher,
            path,
        })
    }

    /// Every blob in the store (for export and audits), in no particular order.
    pub fn list(&self) -> Vec<BlobHash> {
        let Ok(dirs) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for d in dirs.flatten() {
            if d.file_name().len() != 2 {
                continue;
            }
            for f in fs::read_dir(d.path()).into_iter().flatten().flatten() {
                if let Some(h) = f.file_name().to_str().and_then(|s| s.parse().ok()) {
                    out.push(h);
                }
            }
        }
        out
    }
}

/// A blob being received: bytes are appended to its partial file and hashed as they come.
pub struct Receiving {
    store: MediaStore,
    hash: BlobHash,
    len: u64,
    offset: u64,
    file: File,
    hasher: blake3::Hasher,
    path: PathBuf,
}

impl Receiving {
    /// How many bytes are already here: the sender starts from this offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The hash the bytes must have.
    pub fn hash(&self) -> &BlobHash {
        &self.hash
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the next bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), MediaError> {
        if self.offset + bytes.len() as u64 > self.len {
            let _ = fs::remove_file(&self.path);
            return Err(MediaError::Overrun {
                hash: self.hash,
                expected: self.len,
            });
        }
        self.file
            .write_all(bytes)
            .map_err(|e| MediaError::io(&self.path, e))?;
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Whether every announced byte has arrived.
    pub fn complete(&self) -> bool {
        self.offset == self.len
    }

    /// Checks the hash and moves the blob into the store, durably. A mismatch discards the
    /// partial file (the next receive starts from zero).
    pub fn finish(mut self) -> Result<(), MediaError> {
        if BlobHash::from(self.hasher.finalize()) != self.hash || !self.complete() {
            let _ = fs::remove_file(&self.path);
            return Err(MediaError::Corrupt { hash: self.hash });
        }
        self.file
            .flush()
            .and_then(|_| self.file.sync_all())
            .map_err(|e| MediaError::io(&self.path, e))?;
        let target = self.store.path(&self.hash);
        let parent = target.parent().unwrap_or(self.store.dir()).to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| MediaError::io(&parent, e))?;
        fs::rename(&self.path, &target).map_err(|e| MediaError::io(&target, e))?;
        File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| MediaError::io(&parent, e))?;
        Ok(())
    }
}

fn hash_reader(r: &mut impl Read, hasher: &mut blake3::Hasher) -> io::Result<u64> {
    let mut buf = vec![0u8; IO_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_and_a_corrupted_blob_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path());
        let h = store.put(b"photo").unwrap();
        assert_eq!(store.read(&h).unwrap().unwrap(), b"photo");
        assert_eq!(store.put(b"photo").unwrap(), h);
        fs::write(store.path(&h), b"phot0").unwrap();
        assert!(matches!(store.read(&h), Err(MediaError::Corrupt { .. })));
        assert!(!store.contains(&h), "a corrupt blob is never kept");
        assert!(store.read(&h).unwrap().is_none());
        assert_eq!(store.list(), Vec::<BlobHash>::new());
    }

    #[test]
    fn a_cut_receive_resumes_where_it_stopped_and_a_wrong_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path());
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let h = BlobHash::of(&bytes);
        let mut r = store.receive(&h, bytes.len() as u64).unwrap();
        r.write(&bytes[..70_000]).unwrap();
        drop(r); // the link is cut
        assert!(!store.contains(&h));
        let mut r = store.receive(&h, bytes.len() as u64).unwrap();
        assert_eq!(r.offset(), 70_000);
        r.write(&bytes[70_000..]).unwrap();
        r.finish().unwrap();
        assert_eq!(store.read(&h).unwrap().unwrap(), bytes);
        assert_eq!(store.list(), vec![h]);

        let other = BlobHash::of(b"something else");
        let mut r = store.receive(&other, 5).unwrap();
        r.write(b"lies!").unwrap();
        assert!(matches!(r.finish(), Err(MediaError::Corrupt { .. })));
        assert!(!store.contains(&other));
        assert_eq!(store.receive(&other, 5).unwrap().offset(), 0);
        let mut r = store.receive(&other, 3).unwrap();
        assert!(matches!(r.write(b"four"), Err(MediaError::Overrun { .. })));
    }

    #[test]
    fn open_verified_streams_a_good_blob_and_refuses_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path());
        let h = store.put(&[7u8; 300_000]).unwrap();
        let (mut f, len) = store.open_verified(&h).unwrap().unwrap();
        assert_eq!(len, 300_000);
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 300_000);
        fs::write(store.path(&h), [7u8; 10]).unwrap();
        assert!(store.open_verified(&h).is_err());
        assert!(store.open_verified(&h).unwrap().is_none());
        assert!(matches!(
            store.receive(&h, MAX_BLOB_BYTES + 1),
            Err(MediaError::TooLarge { .. })
        ));
    }
}
