//! Backups of a relay (`atelier-relay backup`/`restore`) and of an office replica (`atelier
//! backup`/`restore`): one gzip file, checked end to end, restored into a new directory.
//!
//! # The file
//!
//! Gzip of: the magic line [`MAGIC`], then records, each a one-byte tag and length-prefixed
//! fields (big-endian):
//!
//! * `H` header, JSON ([`Header`]): what was backed up, its store format, when, the relay's
//!   fingerprint;
//! * `F` file: a path relative to the data directory (`/`-separated, no `..`), its Unix mode,
//!   its bytes (identity, access registry, reset key, blobs, a replica's pinned relay…);
//! * `D` document: a 16-byte id and its saved Automerge bytes (relay backups);
//! * `K` store entry: key and value, written back as they are;
//! * `E` end: the number of records before it and the SHA-256 of every byte before it.
//!
//! A file without its `E` record, or whose digest differs, is refused before anything is
//! written: restore reads the whole file into a directory of its own next to the target and
//! renames it into place only once every record checked.
//!
//! # Consistency
//!
//! A replica is backed up while its process holds it (sled's lock): every entry of its store is
//! copied as it is. A relay is backed up while it runs and offices write: entries could not be
//! copied as they are without a point-in-time snapshot, which sled does not have, so its
//! documents are copied one by one as their saved bytes (snapshot and chunks, read in key
//! order: a chunk written meanwhile is seen or not, a compaction leaves the old or the new
//! snapshot, and either way the bytes load as a state the document really had), with the few
//! entries that are not derived from documents (quota usage, format). Restore writes every
//! document through [`DocStore::apply_bytes`], which derives heads, cards and digests again, so
//! the restored store is consistent by construction. Whatever an office wrote after a document
//! was copied, that office still holds and sends again at its next sync.

use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use atelier_core::store::keys::{self, META_QUOTA_BYTES, QUOTA_OWNER};
use atelier_core::store::{DocStore, Kv, SledKv, StoreError};
use atelier_core::DocumentId;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of every backup (once inflated).
pub const MAGIC: &[u8] = b"ATELIER-BACKUP\n";
/// The backup file's own layout; a newer one is refused.
pub const BACKUP_FORMAT: u32 = 1;
/// Longest path of a file record: any real path fits, a hostile length does not allocate.
const MAX_PATH_BYTES: usize = 4096;
/// Largest record (a file, a document or an entry) read back: a blob of the médiathèque
/// (originals are capped well below), a document at core's limit, with room. A corrupt length
/// field fails here instead of allocating.
pub const MAX_RECORD_BYTES: u64 = 1 << 30;
/// Files of a relay's data directory never copied: the store (copied as documents), receives
/// in progress, the admin token (each machine makes its own) and sled's lock of the registry.
const RELAY_SKIPPED: &[&str] = &[
    crate::relay::STORE_DIR,
    "media-partial",
    crate::admin::ADMIN_TOKEN_FILE,
    crate::access::LOCK_FILE,
];

/// Errors of backup and restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Not a backup, or a damaged one.
    #[error("not a valid backup: {0}")]
    Invalid(String),
    /// Written by a newer version.
    #[error("{0}")]
    Newer(String),
    /// The target directory already holds data.
    #[error("{0} is not empty: restore into a new directory")]
    NotEmpty(PathBuf),
}

/// What a backup holds, first record of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`BACKUP_FORMAT`] of the writer.
    pub format: u32,
    /// `relay` or `replica`.
    pub kind: String,
    /// The store format of what was backed up (relay's or replica's `FORMAT_VERSION`).
    pub store_format: u32,
    /// When it was taken, RFC 3339.
    pub created_at: String,
    /// The relay's fingerprint, for relay backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// What a backup or a restore counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: u64,
    pub documents: u64,
    pub entries: u64,
    /// Bytes of files, documents and entries (before compression).
    pub bytes: u64,
}

/// Writes records, hashing them; [`ArchiveWriter::finish`] adds the end record.
pub struct ArchiveWriter<W: Write> {
    out: GzEncoder<W>,
    hash: Sha256,
    records: u64,
    summary: Summary,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts a backup with its header.
    pub fn new(out: W, header: &Header) -> io::Result<Self> {
        let mut writer = Self {
            out: GzEncoder::new(out, flate2::Compression::fast()),
            hash: Sha256::new(),
            records: 0,
            summary: Summary::default(),
        };
        writer.put(MAGIC)?;
        let json = serde_json::to_vec(header).map_err(io::Error::other)?;
        writer.record(b'H', &[&json])?;
        Ok(writer)
    }

    /// A file, `path` relative to the backed-up directory.
    pub fn file(&mut self, path: &str, mode: u32, bytes: &[u8]) -> io::Result<()> {
        self.summary.files += 1;
        self.summary.bytes += bytes.len() as u64;
        self.record(b'F', &[path.as_bytes(), &mode.to_be_bytes(), bytes])
    }

    /// A document's saved bytes.
    pub fn document(&mut self, id: &DocumentId, bytes: &[u8]) -> io::Result<()> {
        self.summary.documents += 1;
        self.summary.bytes += bytes.len() as u64;
        self.record(b'D', &[id.as_bytes(), bytes])
    }

    /// A store entry.
    pub fn entry(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.summary.entries += 1;
        self.summary.bytes += (key.len() + value.len()) as u64;
        self.record(b'K', &[key, value])
    }

    /// Ends the file; returns what it holds and the writer.
    pub fn finish(mut self) -> io::Result<(Summary, W)> {
        let records = self.records;
        let digest = self.hash.clone().finalize();
        self.out.write_all(b"E")?;
        self.out.write_all(&records.to_be_bytes())?;
        self.out.write_all(&digest)?;
        let out = self.out.finish()?;
        Ok((self.summary, out))
    }

    fn record(&mut self, tag: u8, fields: &[&[u8]]) -> io::Result<()> {
        self.records += 1;
        self.put(&[tag])?;
        for field in fields {
            self.put(&(field.len() as u64).to_be_bytes())?;
            self.put(field)?;
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }
}

/// One record read back.
#[derive(Debug)]
pub enum Record {
    File {
        path: PathBuf,
        mode: u32,
        bytes: Vec<u8>,
    },
    Document {
        id: DocumentId,
        bytes: Vec<u8>,
    },
    Entry {
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

/// Reads records back, checking the end record.
pub struct ArchiveReader<R: Read> {
    input: GzDecoder<BufReader<R>>,
    hash: Sha256,
    records: u64,
    ended: bool,
}

impl<R: Read> ArchiveReader<R> {
    /// Opens a backup and reads its header; a newer backup format is refused.
    pub fn open(input: R) -> Result<(Header, Self), BackupError> {
        let mut reader = Self {
            input: GzDecoder::new(BufReader::new(input)),
            hash: Sha256::new(),
            records: 0,
            ended: false,
        };
        let mut magic = vec![0; MAGIC.len()];
        reader
            .take(&mut magic)
            .map_err(|_| invalid("not an Atelier backup"))?;
        if magic != MAGIC {
            return Err(invalid("not an Atelier backup"));
        }
        let json = match reader.next_raw()? {
            Some((b'H', mut fields)) if fields.len() == 1 => fields.remove(0),
            _ => return Err(invalid("missing header")),
        };
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| invalid(&format!("header: {e}")))?;
        if header.format > BACKUP_FORMAT {
            return Err(BackupError::Newer(format!(
                "backup format {} is newer than this version's {BACKUP_FORMAT}: update Atelier",
                header.format
            )));
        }
        Ok((header, reader))
    }

    /// The next record, `None` after a verified end record.
    pub fn next_record(&mut self) -> Result<Option<Record>, BackupError> {
        let Some((tag, mut fields)) = self.next_raw()? else {
            return Ok(None);
        };
        let bad = |what: &str| invalid(&format!("malformed {what} record"));
        let record = match (tag, fields.len()) {
            (b'F', 3) => {
                let bytes = fields.pop().unwrap_or_default();
                let mode = fields.pop().unwrap_or_default();
                let path = fields.pop().unwrap_or_default();
                let mode = u32::from_be_bytes(mode.try_into().map_err(|_| bad("file"))?);
                let path = String::from_utf8(path).map_err(|_| bad("file"))?;
                Record::File {
                    path: safe_relative(&path)?,
                    mode,
                    bytes,
                }
            }
            (b'D', 2) => {
                let bytes = fields.pop().unwrap_or_default();
                let id: [u8; 16] = fields
                    .pop()
                    .unwrap_or_default()
                    .try_into()
                    .map_err(|_| bad("document"))?;
                Record::Document {
                    id: DocumentId::from_bytes(id),
                    bytes,
                }
            }
            (b'K', 2) => {
                let value = fields.pop().unwrap_or_default();
                let key = fields.pop().unwrap_or_default();
                Record::Entry { key, value }
            }
            (tag, _) => return Err(invalid(&format!("unknown record {:?}", tag as char))),
        };
        Ok(Some(record))
    }

    fn next_raw(&mut self) -> Result<Option<RawRecord>, BackupError> {
        if self.ended {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.input
            .read_exact(&mut tag)
            .map_err(|_| invalid("truncated: the end record is missing"))?;
        if tag[0] == b'E' {
            let mut end = [0u8; 8 + 32];
            self.input
                .read_exact(&mut end)
                .map_err(|_| invalid("truncated end record"))?;
            let records = u64::from_be_bytes(end[..8].try_into().unwrap_or_default());
            let digest = self.hash.clone().finalize();
            if records != self.records || digest.as_slice() != &end[8..] {
                return Err(invalid("checksum mismatch: the file is damaged"));
            }
            if self.input.read(&mut [0u8; 1])? != 0 {
                return Err(invalid("bytes after the end record"));
            }
            self.ended = true;
            return Ok(None);
        }
        self.hash.update(tag);
        self.records += 1;
        let fields = match tag[0] {
            b'F' => 3,
            b'H' => 1,
            _ => 2,
        };
        let mut out = Vec::with_capacity(fields);
        for _ in 0..fields {
            let mut len = [0u8; 8];
            self.take(&mut len)
                .map_err(|_| invalid("truncated record"))?;
            let len = u64::from_be_bytes(len);
            if len > MAX_RECORD_BYTES {
                return Err(invalid(&format!("record of {len} bytes")));
            }
            let mut field = Vec::new();
            (&mut self.input)
                .take(len)
                .read_to_end(&mut field)
                .map_err(|_| invalid("truncated record"))?;
            if field.len() as u64 != len {
                return Err(invalid("truncated record"));
            }
            self.hash.update(&field);
            out.push(field);
        }
        Ok(Some((tag[0], out)))
    }

    fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf)?;
        self.hash.update(&*buf);
        Ok(())
    }
}

/// A record's tag and fields, before they are checked.
type RawRecord = (u8, Vec<Vec<u8>>);

fn invalid(what: &str) -> BackupError {
    BackupError::Invalid(what.to_owned())
}

/// `path` if it stays inside the directory it is restored to.
fn safe_relative(path: &str) -> Result<PathBuf, BackupError> {
    let p = Path::new(path);
    let ok = path.len() <= MAX_PATH_BYTES
        && !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(invalid(&format!("file path {path:?} leaves its directory")));
    }
    Ok(p.to_owned())
}

/// Adds every file under `dir` (recursively) except the top-level names in `skip`.
pub fn add_files<W: Write>(
    archive: &mut ArchiveWriter<W>,
    dir: &Path,
    skip: &[&str],
) -> io::Result<()> {
    fn walk<W: Write>(
        archive: &mut ArchiveWriter<W>,
        root: &Path,
        dir: &Path,
        skip: &[&str],
    ) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let relative = path.strip_prefix(root).map_err(io::Error::other)?;
            let name = relative.to_string_lossy().replace('\\', "/");
            if skip.contains(&name.as_str()) || name.ends_with(".tmp") {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(archive, root, &path, skip)?;
            } else if meta.is_file() {
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    // Removed since listed (a blob deleted as corrupt, a temporary file).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                archive.file(&name, mode_of(&meta), &bytes)?;
            }
        }
        Ok(())
    }
    walk(archive, dir, dir, skip)
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    0o600
}

/// Writes a running relay's backup to `out`: its files (identity, access registry, reset key,
/// local blobs), every document, and the store entries that are not derived from documents.
pub fn write_relay<W: Write>(
    store: &DocStore,
    data_dir: &Path,
    out: W,
) -> Result<(Summary, W), BackupError> {
    let identity = crate::identity::Identity::load(data_dir)
        .map_err(|e| BackupError::Io(io::Error::other(e.to_string())))?;
    let header = header(
        "relay",
        crate::relay::RELAY_FORMAT_VERSION,
        Some(identity.fingerprint().to_string()),
    );
    let mut archive = ArchiveWriter::new(out, &header)?;
    add_files(&mut archive, data_dir, RELAY_SKIPPED)?;
    let mut ids = Vec::new();
    store.for_each_heads(&mut |id, _| {
        ids.push(id);
        true
    })?;
    for id in &ids {
        if let Some(bytes) = store.saved(id)? {
            archive.document(id, &bytes)?;
        }
    }
    let kv = store.kv();
    let mut entries = Vec::new();
    for prefix in [
        &[QUOTA_OWNER][..],
        META_QUOTA_BYTES,
        keys::META_RELAY_FORMAT,
    ] {
        kv.for_each_prefix(prefix, &mut |k, v| {
            entries.push((k.to_vec(), v.to_vec()));
            true
        })?;
    }
    for (k, v) in entries {
        archive.entry(&k, &v)?;
    }
    Ok(archive.finish()?)
}

/// Writes a store held exclusively (an office replica's, opened by this process) and the files
/// of `dir` but `skip`: every entry as it is.
pub fn write_store_and_files<W: Write>(
    header: &Header,
    kv: &dyn Kv,
    dir: &Path,
    skip: &[&str],
    out: W,
) -> Result<(Summary, W), BackupError> {
    let mut archive = ArchiveWriter::new(out, header)?;
    add_files(&mut archive, dir, skip)?;
    let mut failed = None;
    kv.for_each_prefix(&[], &mut |k, v| match archive.entry(k, v) {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(archive.finish()?)
}

/// A header for a backup of `kind` taken now.
pub fn header(kind: &str, store_format: u32, fingerprint: Option<String>) -> Header {
    Header {
        format: BACKUP_FORMAT,
        kind: kind.to_owned(),
        store_format,
        created_at: now_rfc3339(),
        fingerprint,
    }
}

/// Reads a whole backup file, checking every record and its end; returns what it holds.
pub fn verify(input: impl Read) -> Result<(Header, Summary), BackupError> {
    let (header, mut reader) = ArchiveReader::open(input)?;
    let mut summary = Summary::default();
    while let Some(record) = reader.next_record()? {
        match record {
            Record::File { bytes, .. } => {
                summary.files += 1;
                summary.bytes += bytes.len() as u64;
            }
            Record::Document { bytes, .. } => {
                summary.documents += 1;
                summary.bytes += bytes.len() as u64;
            }
            Record::Entry { key, value } => {
                summary.entries += 1;
                summary.bytes += (key.len() + value.len()) as u64;
            }
        }
    }
    Ok((header, summary))
}

/// Downloads a running relay's backup from its admin listener at `admin` (`GET /backup` with
/// the admin token) into `out`, written atomically, then reads it back whole: a backup cut
/// short (the relay stopped, the disk filled) is an error, never a file that looks complete.
pub fn fetch(
    admin: std::net::SocketAddr,
    token: &str,
    out: &Path,
) -> Result<(Header, Summary), BackupError> {
    let url = format!("http://{admin}/backup");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| BackupError::Io(io::Error::other(format!("{url}: {e}"))))?;
    let status = response.status();
    let mut body = response.into_body();
    if status != 200 {
        let text = body.read_to_string().unwrap_or_default();
        return Err(BackupError::Io(io::Error::other(format!(
            "{url}: {status} {}",
            text.trim()
        ))));
    }
    let mut reader = body.as_reader();
    atelier_core::fs::write_atomic_with(out, Some(0o600), |file| {
        io::copy(&mut reader, file).map(|_| ())
    })?;
    verify(std::fs::File::open(out)?).inspect_err(|_| {
        let _ = std::fs::remove_file(out);
    })
}

/// A relay's backup as a byte stream (the admin listener's `GET /backup`), written on the
/// blocking pool as it is sent.
pub fn stream(
    store: Arc<DocStore>,
    data_dir: PathBuf,
) -> io::Result<impl futures::Stream<Item = io::Result<bytes::Bytes>>> {
    /// Chunks in flight between the writer and the HTTP response: the writer waits for a slow
    /// reader instead of holding the backup in memory.
    const STREAM_CHUNKS: usize = 8;
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(STREAM_CHUNKS);
    let writer = ChannelWriter { tx: tx.clone() };
    // The task ends when the backup is written or the client went away (the send fails).
    tokio::task::spawn_blocking(move || {
        let buffered = io::BufWriter::with_capacity(256 * 1024, writer);
        match write_relay(&store, &data_dir, buffered) {
            Ok((summary, mut out)) => {
                let _ = out.flush();
                tracing::info!(
                    documents = summary.documents,
                    files = summary.files,
                    bytes = summary.bytes,
                    "backup written"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "backup failed");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    Ok(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "backup reader went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Restores a backup into `target`, which must not exist or be empty: everything goes to a
/// directory next to it first, renamed into place only once the whole file checked.
/// `check` sees the header before anything is written (kind, store format).
pub fn restore(
    input: impl Read,
    target: &Path,
    check: impl FnOnce(&Header) -> Result<(), BackupError>,
    store_dir: &str,
) -> Result<(Header, Summary), BackupError> {
    if let Ok(mut entries) = std::fs::read_dir(target) {
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(target.to_owned()));
        }
    }
    let (header, mut reader) = ArchiveReader::open(input)?;
    check(&header)?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".atelier-restore.")
        .tempdir_in(&parent)?;
    let kv = SledKv::open(&staging.path().join(store_dir))?;
    let kv: Arc<dyn Kv> = Arc::new(kv);
    let store = DocStore::new(kv.clone());
    let mut summary = Summary::default();
    let mut batch = atelier_core::store::Batch::default();
    let mut batched = 0usize;
    while let Some(record) = reader.next_record()? {
        match record {
            Record::File { path, mode, bytes } => {
                let to = staging.path().join(&path);
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                atelier_core::fs::write_atomic(&to, &bytes, Some(mode & 0o777))?;
                summary.files += 1;
                summary.bytes += bytes.len() as u64;
            }
            Record::Document { id, bytes } => {
                store.apply_bytes(&id, &bytes)?;
                summary.documents += 1;
                summary.bytes += bytes.len() as u64;
            }
            Record::Entry { key, value } => {
                summary.bytes += (key.len() + value.len()) as u64;
                summary.entries += 1;
                batch.put(key, value);
                batched += 1;
                // Entries go in batches so a replica of 100,000 documents is not one batch.
                if batched >= 10_000 {
                    kv.apply(std::mem::take(&mut batch))?;
                    batched = 0;
                }
            }
        }
    }
    kv.apply(batch)?;
    kv.flush()?;
    drop(store);
    drop(kv);
    if target.exists() {
        std::fs::remove_dir(target)?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, target)?;
    atelier_core::fs::sync_dir(&parent)?;
    Ok((header, summary))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: BACKUP_FORMAT,
            kind: "replica".into(),
            store_format: 1,
            created_at: "2026-12-06T08:00:00Z".into(),
            fingerprint: None,
        }
    }

    fn archive() -> Vec<u8> {
        let mut a = ArchiveWriter::new(Vec::new(), &header()).unwrap();
        a.file("identity.key.der", 0o600, b"secret").unwrap();
        a.file("media/ab/cd", 0o644, b"blob").unwrap();
        a.entry(b"m/format", b"1").unwrap();
        a.finish().unwrap().1
    }

    #[test]
    fn records_come_back_and_the_checksum_holds() {
        let bytes = archive();
        let (h, mut r) = ArchiveReader::open(&bytes[..]).unwrap();
        assert_eq!(h, header());
        let mut n = 0;
        while let Some(_record) = r.next_record().unwrap() {
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn a_truncated_or_altered_backup_is_refused() {
        let bytes = archive();
        let mut inflated = Vec::new();
        GzDecoder::new(&bytes[..])
            .read_to_end(&mut inflated)
            .unwrap();
        let regzip = |raw: &[u8]| {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        };
        let read_all = |bytes: &[u8]| -> Result<(), BackupError> {
            let (_, mut r) = ArchiveReader::open(bytes)?;
            while r.next_record()?.is_some() {}
            Ok(())
        };
        let truncated = regzip(&inflated[..inflated.len() - 40]);
        assert!(read_all(&truncated).is_err());
        let mut altered = inflated.clone();
        let at = inflated.windows(6).position(|w| w == b"secret").unwrap();
        altered[at] = b'S';
        let err = read_all(&regzip(&altered)).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        assert!(read_all(b"not a backup").is_err());
    }

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert!(safe_relative("media/ab/cd").is_ok());
    }

    #[test]
    fn restore_refuses_a_directory_in_use_and_writes_nothing_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("restored");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"x").unwrap();
        let err = restore(&archive()[..], &target, |_| Ok(()), "db").unwrap_err();
        assert!(matches!(err, BackupError::NotEmpty(_)), "{err}");
        let fresh = dir.path().join("fresh");
        let bytes = archive();
        assert!(restore(&bytes[..bytes.len() - 10], &fresh, |_| Ok(()), "db").is_err());
        assert!(!fresh.exists());
        let (_, summary) = restore(&bytes[..], &fresh, |_| Ok(()), "db").unwrap();
        assert_eq!((summary.files, summary.entries), (2, 1));
        assert_eq!(std::fs::read(fresh.join("media/ab/cd")).unwrap(), b"blob");
        // Nothing left beside it.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2);
    }
}
