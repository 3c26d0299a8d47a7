//! What makes a sled flush survive a power cut: fsyncs of sled's log, blob files and directories.
//!
//! sled 0.34's `flush` writes its log with `sync_file_range`, which starts and waits for the
//! writeback of the data pages only: it neither persists the file's size (a log that grew is cut
//! back to its old length by a power cut) nor flushes the drive's volatile cache. sled calls
//! `fsync` only from a background thread every 500 ms. Values too large for a log buffer
//! (nodes over a quarter of a 512 KiB segment) go to their own files in `<db>/blobs`, written
//! with no fsync at all, nor of their directory. The snapshot file is fsynced but its rename is
//! not, and `conf` is never fsynced.
//!
//! So after sled's flush, [`SledFiles::sync`] fsyncs, in this order: every blob file it has not
//! fsynced yet and then the blobs directory, the log file (`fdatasync`: data and size), and the
//! database directory when its entries changed (a snapshot renamed). [`SledFiles::open`] fsyncs
//! everything present once, since a process killed before its fsync leaves pages that a later
//! flush's log would point to.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fs::sync_dir;
use crate::mutex::lock;

/// sled's files in its database directory (names fixed by sled 0.34's `Config`).
const LOG_FILE: &str = "db";
const BLOBS_DIR: &str = "blobs";

/// How long dropping a database waits for sled's background writes to let go of its lock.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Waits, when dropped, until sled's lock on its log is released.
///
/// sled 0.34 hands log writes and file truncations to its own thread pool, and each task holds
/// the database's configuration, hence the locked log file. Such a task can outlive the `Db`,
/// so an open of the same directory right after the drop (the next command in the same
/// process, a test reopening a replica) would see the database still in use. Declared after the
/// `Db` in `SledKv`, this guard is dropped after it and waits for those tasks to end.
pub(super) struct ReleaseOnDrop {
    dir: PathBuf,
    log: PathBuf,
    /// Set by `SledKv` when it wrote enough that the next open would replay for long: the
    /// database is then opened once more after its release, which takes sled's snapshot
    /// (`SNAPSHOT_AFTER_BYTES`).
    pub(super) reopen: bool,
}

impl ReleaseOnDrop {
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            log: dir.join(LOG_FILE),
            reopen: false,
        }
    }

    /// Waits, at most [`RELEASE_WAIT`], until the log's lock can be taken.
    fn wait_released(&self) {
        let Ok(file) = File::open(&self.log) else {
            return;
        };
        let start = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            match file.try_lock() {
                Ok(()) => return, // the lock goes with `file`
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < RELEASE_WAIT => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Err(e) => {
                    tracing::warn!(log = %self.log.display(), "sled database not released: {e}");
                    return;
                }
            }
        }
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.wait_released();
        if self.reopen {
            let started = Instant::now();
            match super::sled_config(&self.dir).open() {
                Ok(db) => {
                    drop(db);
                    self.wait_released();
                    tracing::debug!(elapsed = ?started.elapsed(), "sled snapshot taken at close");
                }
                // Nothing lost: the next open replays the log, as it would have.
                Err(e) => tracing::warn!(dir = %self.dir.display(), "sled snapshot not taken: {e}"),
            }
        }
    }
}

/// sled's files, held to make its flushes durable.
pub(super) struct SledFiles {
    dir: PathBuf,
    /// sled's log, held open so that every flush can `fdatasync` it.
    log: File,
    /// What has been made durable, under one lock: concurrent flushes fsync one after another,
    /// and the second usually finds nothing left to do.
    state: Mutex<Synced>,
}

#[derive(Default)]
struct Synced {
    /// Blob files already fsynced (sled names them after an LSN and never rewrites one).
    blobs: HashSet<OsString>,
    /// The database directory's entries as last fsynced.
    entries: Vec<OsString>,
}

impl SledFiles {
    /// Takes hold of the files of the sled database in `dir` (already opened by sled) and makes
    /// everything in it durable: its files, its directories, and its entry in its parent.
    pub(super) fn open(dir: &Path) -> io::Result<Self> {
        let log = File::open(dir.join(LOG_FILE))?;
        let files = Self {
            dir: dir.to_path_buf(),
            log,
            state: Mutex::new(Synced::default()),
        };
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_all()?,
                    // An old snapshot sled's background thread has just replaced.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        {
            let mut state = lock(&files.state);
            files.sync_blobs(&mut state, files.blob_names()?)?;
            sync_dir(&dir.join(BLOBS_DIR))?;
            state.entries = files.entries()?;
            sync_dir(dir)?;
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(files)
    }

    /// The database directory.
    pub(super) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The blob files present now: call before sled's flush, then pass them to [`Self::sync`].
    /// A blob listed before the flush is complete once the flush returns (sled writes it while
    /// reserving its log entry, and the flush waits for every reservation made before it);
    /// one created during the flush may still be half written, and belongs to a later flush.
    pub(super) fn blob_names(&self) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(self.dir.join(BLOBS_DIR))?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    /// Makes durable what sled's flush wrote, with `blobs` as listed before that flush.
    pub(super) fn sync(&self, blobs: Vec<OsString>) -> io::Result<()> {
        let mut state = lock(&self.state);
        if self.sync_blobs(&mut state, blobs)? {
            sync_dir(&self.dir.join(BLOBS_DIR))?;
        }
        self.log.sync_data()?;
        let entries = self.entries()?;
        if entries != state.entries {
            sync_dir(&self.dir)?;
            state.entries = entries;
        }
        Ok(())
    }

    /// Fsyncs the blobs not fsynced yet; says whether there were any. A blob removed meanwhile
    /// (sled frees a blob once its page is rewritten elsewhere) needs nothing.
    /// The names of blobs gone from the listing are forgotten, so the set stays the size of the
    /// directory.
    fn sync_blobs(&self, state: &mut Synced, names: Vec<OsString>) -> io::Result<bool> {
        let mut any = false;
        for name in &names {
            if state.blobs.contains(name) {
                continue;
            }
            match File::open(self.dir.join(BLOBS_DIR).join(name)) {
                Ok(file) => file.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            state.blobs.insert(name.clone());
            any = true;
        }
        if state.blobs.len() > names.len() {
            let listed: HashSet<&OsString> = names.iter().collect();
            state.blobs.retain(|n| listed.contains(n));
        }
        Ok(any)
    }

    /// The database directory's entries, sorted.
    fn entries(&self) -> io::Result<Vec<OsString>> {
        let mut names = std::fs::read_dir(&self.dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }
}
