//! The key-value layer under the document store: sled on disk, a BTreeMap in memory.

mod sled_files;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::StoreError;
use sled_files::{ReleaseOnDrop, SledFiles};

/// Writes applied atomically together.
#[derive(Default, Debug)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn extend(&mut self, other: Batch) {
        self.ops.extend(other.ops);
    }

    /// The keys the batch writes or removes (for tests that fail chosen writes).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.ops.iter().map(|(k, _)| k.as_slice())
    }

    /// The writes in order, `None` for a removal: what a `Kv` applies.
    pub fn into_ops(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.ops
    }
}

/// An ordered key-value store with atomic batches.
pub trait Kv: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `f` on every entry whose key starts with `prefix`, in key order, until it returns false.
    fn for_each_prefix(
        &self,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// Applies every write of the batch, or none.
    fn apply(&self, batch: Batch) -> Result<(), StoreError>;
    /// Removes `key` if its value is `expected`, and says whether it did. Atomic with respect to
    /// batches: a batch that rewrites the key lands wholly before (the key stays) or after.
    fn remove_if(&self, key: &[u8], expected: &[u8]) -> Result<bool, StoreError>;
    /// Makes every applied batch durable: once it returns, the batches survive a crash of the
    /// process and a power cut (what acknowledging a write to a user or a peer relies on).
    fn flush(&self) -> Result<(), StoreError>;
    /// Whether every applied batch is already durable, so that [`Kv::flush`] would write
    /// nothing. A store that cannot tell says `false`.
    fn is_flushed(&self) -> bool {
        false
    }
}

/// sled, in one tree, so that one batch covers a document's chunks and its index entries.
///
/// `flush` is sled's flush followed by the fsyncs sled leaves out (`SledFiles`), so a flushed
/// batch survives a power cut, not only the death of the process.
pub struct SledKv {
    db: sled::Db,
    files: SledFiles,
    /// Writes applied so far, and how many of them a completed flush has made durable: a flush
    /// with nothing new since the last one costs no fsync (the sync responder flushes before
    /// every answer, mostly with nothing to write).
    applied: AtomicU64,
    durable: AtomicU64,
    /// Bytes applied since the open: past `snapshot_after` ([`SNAPSHOT_AFTER_BYTES`]), the
    /// drop leaves a snapshot.
    written: AtomicU64,
    snapshot_after: u64,
    /// Last field, so dropped last: waits until sled has let go of the database (and reopens it
    /// once when asked to, see [`SNAPSHOT_AFTER_BYTES`]).
    release: ReleaseOnDrop,
}

/// Bytes written in one opening of the database past which closing it reopens it once, so
/// that sled takes its snapshot then. sled 0.34 writes a snapshot only when it opens, after
/// replaying the whole log written since the last one: after an import or a pull of 100,000
/// resources that replay took 0.65 s, paid by whoever opened next (the web app, before its
/// first page). The process that wrote that much pays it instead, at its end; below this size
/// the next open replays in tens of milliseconds.
pub const SNAPSHOT_AFTER_BYTES: u64 = 64 << 20;

/// sled's configuration for the database in `path` (what every open of it uses).
fn sled_config(path: &Path) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(64 * 1024 * 1024)
}

impl Drop for SledKv {
    fn drop(&mut self) {
        // The fields drop after this: the `Db`, then `release`, which reopens if asked.
        self.release.reopen = *self.written.get_mut() >= self.snapshot_after;
    }
}

impl SledKv {
    /// Opens (or creates) the database; a database held by another process is `StoreError::InUse`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_snapshot_after(path, SNAPSHOT_AFTER_BYTES)
    }

    /// [`Self::open`], leaving a snapshot at the drop past `snapshot_after` bytes written
    /// (tests write a few MB, not [`SNAPSHOT_AFTER_BYTES`]).
    fn open_with_snapshot_after(path: &Path, snapshot_after: u64) -> Result<Self, StoreError> {
        let db = sled_config(path).open().map_err(|e| match e {
            sled::Error::Io(io) if is_lock_error(&io) => {
                StoreError::InUse(path.display().to_string())
            }
            other => StoreError::Db(other.to_string()),
        })?;
        let files = SledFiles::open(path).map_err(|e| io_err(path, e))?;
        Ok(Self {
            db,
            files,
            applied: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            written: AtomicU64::new(0),
            snapshot_after,
            release: ReleaseOnDrop::new(path),
        })
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.to_string().contains("lock")
        || e.raw_os_error() == Some(11)
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(db_err)?.map(|v| v.to_vec()))
    }

    fn for_each_prefix(
        &self,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for item in self.db.scan_prefix(prefix) {
            let (k, v) = item.map_err(db_err)?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        let mut bytes = 0;
        for (k, v) in batch.ops {
            bytes += k.len() + v.as_ref().map_or(0, Vec::len);
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.written.fetch_add(bytes as u64, Ordering::Relaxed);
        self.applied.fetch_add(1, Ordering::SeqCst);
        self.db.apply_batch(b).map_err(db_err)
    }

    fn remove_if(&self, key: &[u8], expected: &[u8]) -> Result<bool, StoreError> {
        // sled serialises a compare-and-swap with whole batches (`apply_batch` takes its
        // global write lock, single-key operations the read side).
        let swapped = self
            .db
            .compare_and_swap(key, Some(expected), None::<&[u8]>)
            .map_err(db_err)?;
        Ok(swapped.is_ok())
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Counted before anything is written: every write that completed before this call is
        // in sled's flush below, so once the fsyncs are done all of them are durable.
        let applied = self.applied.load(Ordering::SeqCst);
        if applied <= self.durable.load(Ordering::SeqCst) {
            return Ok(());
        }
        let blobs = self
            .files
            .blob_names()
            .map_err(|e| io_err(self.files.dir(), e))?;
        self.db.flush().map_err(db_err)?;
        self.files
            .sync(blobs)
            .map_err(|e| io_err(self.files.dir(), e))?;
        self.durable.fetch_max(applied, Ordering::SeqCst);
        Ok(())
    }

    fn is_flushed(&self) -> bool {
        self.applied.load(Ordering::SeqCst) <= self.durable.load(Ordering::SeqCst)
    }
}

fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Db(format!("{} : {e}", path.display()))
}

/// An in-memory store for tests and simulations.
#[derive(Default)]
pub struct MemKv {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Kv for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    fn for_each_prefix(
        &self,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // Copy the range out so `f` may call back into the store.
        let entries: Vec<(Vec<u8>, Vec<u8>)> = self
            .lock()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in entries {
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut map = self.lock();
        for (k, v) in batch.ops {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    fn remove_if(&self, key: &[u8], expected: &[u8]) -> Result<bool, StoreError> {
        let mut map = self.lock();
        let matches = map.get(key).is_some_and(|v| v == expected);
        if matches {
            map.remove(key);
        }
        Ok(matches)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn is_flushed(&self) -> bool {
        true
    }
}

impl MemKv {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        crate::mutex::lock(&self.map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_sled_dir_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledKv::open(dir.path()).unwrap();
        match SledKv::open(dir.path()) {
            Err(StoreError::InUse(_)) => {}
            Err(other) => panic!("expected InUse, got {other}"),
            Ok(_) => panic!("second open succeeded"),
        }
    }

    #[test]
    fn a_dropped_database_opens_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20u32 {
            let kv = SledKv::open(dir.path()).unwrap();
            let mut b = Batch::default();
            for i in 0..50u32 {
                b.put(format!("{round}/{i}").into_bytes(), vec![round as u8; 2048]);
            }
            kv.apply(b).unwrap();
            kv.flush().unwrap();
        }
        let kv = SledKv::open(dir.path()).unwrap();
        assert_eq!(kv.get(b"19/49").unwrap(), Some(vec![19; 2048]));
    }

    /// The names of sled's snapshot files (`snap.<lsn>`), the log position each covers.
    fn snapshots(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("snap."))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn closing_after_a_large_write_leaves_a_snapshot_for_the_next_open() {
        const SNAPSHOT_AFTER: u64 = 4 << 20;
        let dir = tempfile::tempdir().unwrap();
        let open = || SledKv::open_with_snapshot_after(dir.path(), SNAPSHOT_AFTER);
        let kv = open().unwrap();
        let opened = snapshots(dir.path());
        let mut b = Batch::default();
        b.put(b"small".to_vec(), vec![1; 1024]);
        kv.apply(b).unwrap();
        drop(kv);
        assert_eq!(
            snapshots(dir.path()),
            opened,
            "a small write leaves the replay to the next open"
        );

        let kv = open().unwrap();
        let value = vec![7u8; 16 * 1024];
        let mut written = 0;
        let mut i = 0u32;
        while written < SNAPSHOT_AFTER {
            let mut b = Batch::default();
            for _ in 0..64 {
                b.put(i.to_be_bytes().to_vec(), value.clone());
                written += (4 + value.len()) as u64;
                i += 1;
            }
            kv.apply(b).unwrap();
        }
        kv.flush().unwrap();
        let before_close = snapshots(dir.path());
        drop(kv);
        let after_close = snapshots(dir.path());
        assert_ne!(after_close, before_close, "the close took a new snapshot");
        let kv = open().unwrap();
        assert_eq!(kv.get(&(i - 1).to_be_bytes()).unwrap(), Some(value));
        assert_eq!(kv.get(b"small").unwrap(), Some(vec![1; 1024]));
    }
}
