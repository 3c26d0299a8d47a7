//! A filesystem that can lose power: FUSE, in memory, keeping apart what was written and what
//! was made durable, so a test can cut the power and look at what a disk would have kept.
//!
//! The model is POSIX's promise, strictly (what LazyFS simulates, which Debian does not ship):
//! - a file's contents and size become durable at `fsync`/`fdatasync` of that file, whole;
//!   `sync_file_range` has no FUSE request and counts for nothing;
//! - a directory's entries (creations, renames, removals) become durable at `fsync` of that
//!   directory, never as a side effect of fsyncing a file in it;
//! - [`PowerCutFs::cut_power`] keeps exactly the durable state: a file never fsynced is empty,
//!   an entry never fsynced is gone, every write since the last fsync is lost.
//!
//! It is kinder than a real disk in one way: un-fsynced writes are lost whole, never partly
//! written in any order (torn pages), so it proves that what was acknowledged was fsynced, not
//! that a store recovers from every reordering.
//!
//! Mounting needs `/dev/fuse` and root (fuser mounts with `mount(2)`; no `fusermount` helper).
//! Files are opened in direct I/O, and every lookup and attribute is given a zero lifetime, so
//! the kernel caches nothing a cut would have to forget; a cut also unmounts and mounts again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

/// Lifetime the kernel may cache a lookup or attributes for: none, so that every call reaches
/// the model.
const TTL: Duration = Duration::ZERO;
/// Block size reported to `stat` and `statfs`.
const BLOCK: u32 = 4096;
/// Capacity reported by `statfs`, in blocks (16 GiB): the model itself only holds what the
/// tests write, in memory.
const REPORTED_BLOCKS: u64 = 4 * 1024 * 1024;

/// A mounted power-cut filesystem; unmounted when dropped.
pub struct PowerCutFs {
    mountpoint: PathBuf,
    shared: Arc<Shared>,
    session: Option<BackgroundSession>,
}

/// The state, and a signal for each write request (what [`PowerCutFs::wait_for_writes`] waits on).
struct Shared {
    state: Mutex<State>,
    wrote: Condvar,
}

/// The disk as a power cut at one instant left it, to be mounted once the writers are dead.
pub struct Cut {
    durable: State,
    /// What the cut dropped.
    pub report: CutReport,
}

/// What a cut dropped, for the test to report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose contents differed from their last fsync (those writes were dropped).
    pub files_rolled_back: usize,
    /// Directory entries created, renamed or removed since their directory's last fsync.
    pub entries_rolled_back: usize,
}

impl PowerCutFs {
    /// Mounts an empty filesystem on `mountpoint` (an existing empty directory).
    pub fn mount(mountpoint: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(mountpoint)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(meta.uid(), meta.gid())),
            wrote: Condvar::new(),
        });
        let mut fs = Self {
            mountpoint: mountpoint.to_path_buf(),
            shared,
            session: None,
        };
        fs.attach()?;
        Ok(fs)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Makes everything durable, as a machine left idle long enough would: the state a test
    /// sets up before the writes it cuts.
    pub fn settle(&self) {
        lock(&self.shared.state).settle();
    }

    /// Write requests served so far.
    pub fn writes(&self) -> u64 {
        lock(&self.shared.state).writes
    }

    /// Waits until `writes()` reaches `count`, at most `timeout`; says whether it did.
    pub fn wait_for_writes(&self, count: u64, timeout: Duration) -> bool {
        let state = lock(&self.shared.state);
        let (state, _) = self
            .shared
            .wrote
            .wait_timeout_while(state, timeout, |s| s.writes < count)
            .unwrap_or_else(|e| e.into_inner());
        state.writes >= count
    }

    /// Cuts the power now: what the disk holds at this instant, while writers may still be
    /// running. Anything they write or fsync afterwards is lost with them.
    pub fn cut(&self) -> Cut {
        let (durable, report) = lock(&self.shared.state).durable();
        Cut { durable, report }
    }

    /// Turns the power back on after `cut`: unmounts (every process that was writing must be
    /// dead, or the mount is busy), and mounts what the disk held at the cut.
    pub fn power_on(&mut self, cut: Cut) -> io::Result<CutReport> {
        self.detach()?;
        *lock(&self.shared.state) = cut.durable;
        self.attach()?;
        Ok(cut.report)
    }

    /// [`Self::cut`] then [`Self::power_on`], for a disk nobody is writing to.
    pub fn cut_power(&mut self) -> io::Result<CutReport> {
        let cut = self.cut();
        self.power_on(cut)
    }

    fn attach(&mut self) -> io::Result<()> {
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("atelier-powercut".into()),
            MountOption::RW,
        ];
        let fs = MemFs {
            shared: self.shared.clone(),
        };
        self.session = Some(fuser::spawn_mount(fs, &self.mountpoint, &config)?);
        Ok(())
    }

    fn detach(&mut self) -> io::Result<()> {
        match self.session.take() {
            Some(session) => session.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// One file or directory: what processes see, and what was last made durable.
#[derive(Clone)]
struct Node {
    dir: bool,
    perm: u16,
    data: Vec<u8>,
    /// The contents at the last fsync; `None`: never fsynced (empty after a cut).
    durable_data: Option<Vec<u8>>,
    children: BTreeMap<OsString, u64>,
    /// The entries at the last fsync of this directory; `None`: never fsynced.
    durable_children: Option<BTreeMap<OsString, u64>>,
    mtime: SystemTime,
}

impl Node {
    fn new(dir: bool, perm: u16) -> Self {
        Self {
            dir,
            perm,
            data: Vec::new(),
            durable_data: None,
            children: BTreeMap::new(),
            durable_children: None,
            mtime: SystemTime::now(),
        }
    }
}

/// The whole filesystem. Nodes are never freed before a cut: an unlinked file may still be named
/// by a durable entry.
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Write requests served (durable or not).
    writes: u64,
    uid: u32,
    gid: u32,
}

impl State {
    fn new(uid: u32, gid: u32) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(INodeNo::ROOT.0, Node::new(true, 0o755));
        Self {
            nodes,
            next_ino: INodeNo::ROOT.0 + 1,
            writes: 0,
            uid,
            gid,
        }
    }

    fn settle(&mut self) {
        for node in self.nodes.values_mut() {
            node.durable_data = Some(node.data.clone());
            node.durable_children = Some(node.children.clone());
        }
    }

    /// The state a power cut leaves: the durable tree from the root, itself wholly durable.
    fn durable(&self) -> (State, CutReport) {
        let mut report = CutReport::default();
        let mut nodes = HashMap::new();
        let mut seen = HashSet::new();
        let mut todo = vec![INodeNo::ROOT.0];
        while let Some(ino) = todo.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            let data = node.durable_data.clone().unwrap_or_default();
            let children = node.durable_children.clone().unwrap_or_default();
            if !node.dir && data != node.data {
                report.files_rolled_back += 1;
            }
            if node.dir {
                report.entries_rolled_back += node
                    .children
                    .iter()
                    .filter(|(name, ino)| children.get(*name) != Some(ino))
                    .count();
                report.entries_rolled_back += children
                    .keys()
                    .filter(|name| !node.children.contains_key(*name))
                    .count();
            }
            todo.extend(children.values().copied());
            nodes.insert(
                ino,
                Node {
                    durable_data: Some(data.clone()),
                    data,
                    durable_children: Some(children.clone()),
                    children,
                    ..node.clone()
                },
            );
        }
        let state = State {
            nodes,
            next_ino: self.next_ino,
            writes: self.writes,
            uid: self.uid,
            gid: self.gid,
        };
        (state, report)
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let size = if node.dir { 0 } else { node.data.len() as u64 };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind: if node.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: node.perm,
            nlink: if node.dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK,
            flags: 0,
        })
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(node) if node.dir => Ok(node),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        match self.nodes.get(&parent) {
            Some(node) if node.dir => node.children.get(name).copied().ok_or(Errno::ENOENT),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// Creates `name` in `parent`; an existing entry is `EEXIST`.
    fn make(&mut self, parent: u64, name: &OsStr, dir: bool, mode: u32) -> Result<u64, Errno> {
        if self.dir_mut(parent)?.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes
            .insert(ino, Node::new(dir, (mode & 0o7777) as u16));
        let parent = self.dir_mut(parent)?;
        parent.children.insert(name.to_os_string(), ino);
        parent.mtime = SystemTime::now();
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        let node = &self.nodes[&ino];
        match (dir, node.dir) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !node.children.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)?.children.remove(name);
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        if let Ok(target) = self.child(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(Errno::EEXIST);
            }
            let (moving_dir, target) = (self.nodes[&ino].dir, &self.nodes[&target]);
            match (moving_dir, target.dir) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if !target.children.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        self.dir_mut(parent)?.children.remove(name);
        self.dir_mut(new_parent)?
            .children
            .insert(new_name.to_os_string(), ino);
        Ok(())
    }
}

/// The FUSE side: every request is one step on the shared [`State`].
struct MemFs {
    shared: Arc<Shared>,
}

impl MemFs {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    fn reply_entry(&self, result: Result<u64, Errno>, reply: ReplyEntry) {
        let state = self.state();
        match result.and_then(|ino| state.attr(ino).ok_or(Errno::ENOENT)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

fn empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for MemFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.state().child(parent.0, name);
        self.reply_entry(found, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        let Some(node) = state.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(mode) = mode {
            node.perm = (mode & 0o7777) as u16;
        }
        if let Some(size) = size {
            if node.dir {
                return reply.error(Errno::EISDIR);
            }
            node.data.resize(size as usize, 0);
            node.mtime = SystemTime::now();
        }
        match state.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & S_IFMT != S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let made = self.state().make(parent.0, name, false, mode & !umask);
        self.reply_entry(made, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let made = self.state().make(parent.0, name, true, mode & !umask);
        self.reply_entry(made, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.state().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.state().remove(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        empty(
            self.state()
                .rename(parent.0, name, newparent.0, newname, no_replace),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if !self.state().nodes.contains_key(&ino.0) {
            return reply.error(Errno::ENOENT);
        }
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let ino = match state.child(parent.0, name) {
            Ok(_) if flags & O_EXCL != 0 => return reply.error(Errno::EEXIST),
            Ok(ino) => {
                if flags & O_TRUNC != 0 {
                    if let Some(node) = state.nodes.get_mut(&ino) {
                        node.data.clear();
                    }
                }
                ino
            }
            Err(_) => match state.make(parent.0, name, false, mode & !umask) {
                Ok(ino) => ino,
                Err(e) => return reply.error(e),
            },
        };
        match state.attr(ino) {
            Some(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.state();
        let Some(node) = state.nodes.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let start = (offset as usize).min(node.data.len());
        let end = start.saturating_add(size as usize).min(node.data.len());
        reply.data(&node.data[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        let Some(node) = state.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let start = offset as usize;
        let end = start + data.len();
        if node.data.len() < end {
            node.data.resize(end, 0);
        }
        node.data[start..end].copy_from_slice(data);
        node.mtime = SystemTime::now();
        state.writes += 1;
        drop(state);
        self.shared.wrote.notify_all();
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        let Some(node) = state.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        node.durable_data = Some(node.data.clone());
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = self.state();
        let Some(node) = state.nodes.get(&ino.0).filter(|n| n.dir) else {
            return reply.error(Errno::ENOTDIR);
        };
        let dots = [
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        let children = node.children.iter().map(|(name, &child)| {
            let kind = match state.nodes.get(&child) {
                Some(n) if n.dir => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (child, kind, name.clone())
        });
        for (i, (child, kind, name)) in dots
            .into_iter()
            .chain(children)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.state().dir_mut(ino.0) {
            Ok(node) => {
                node.durable_children = Some(node.children.clone());
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            REPORTED_BLOCKS,
            REPORTED_BLOCKS,
            REPORTED_BLOCKS,
            1 << 20,
            1 << 20,
            BLOCK,
            255,
            BLOCK,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

/// `open(2)` flags and file type bits, Linux's values (this crate has no libc bindings).
const O_EXCL: i32 = 0o200;
const O_TRUNC: i32 = 0o1000;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

#[cfg(test)]
mod tests {
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;

    use super::*;

    fn mounted() -> (tempfile::TempDir, PowerCutFs) {
        let dir = tempfile::tempdir().unwrap();
        let fs = PowerCutFs::mount(dir.path())
            .expect("mount the power-cut filesystem (root and /dev/fuse)");
        (dir, fs)
    }

    #[test]
    fn a_cut_keeps_what_was_fsynced_and_drops_the_rest() {
        let (_dir, mut fs) = mounted();
        let root = fs.path().to_path_buf();
        fs::create_dir(root.join("d")).unwrap();
        File::open(&root).unwrap().sync_all().unwrap();
        let mut synced = File::create(root.join("d/synced")).unwrap();
        synced.write_all(b"one").unwrap();
        synced.sync_all().unwrap();
        synced.write_all(b" two").unwrap();
        drop(synced);
        let mut unsynced = File::create(root.join("d/unsynced")).unwrap();
        unsynced.write_all(b"lost").unwrap();
        drop(unsynced);
        File::open(root.join("d")).unwrap().sync_all().unwrap();
        // Created after the directory's fsync: its entry is not durable, whatever its data.
        let mut late = File::create(root.join("d/late")).unwrap();
        late.write_all(b"late").unwrap();
        late.sync_all().unwrap();
        drop(late);

        let report = fs.cut_power().unwrap();

        assert_eq!(fs::read(root.join("d/synced")).unwrap(), b"one");
        assert_eq!(fs::read(root.join("d/unsynced")).unwrap(), b"");
        assert!(!root.join("d/late").exists());
        assert_eq!(report.files_rolled_back, 2);
        assert_eq!(report.entries_rolled_back, 1);
    }

    #[test]
    fn a_rename_survives_only_once_its_directory_is_fsynced() {
        let (_dir, mut fs) = mounted();
        let root = fs.path().to_path_buf();
        fs::write(root.join("old"), b"v1").unwrap();
        File::open(root.join("old")).unwrap().sync_all().unwrap();
        fs.settle();
        fs::write(root.join("tmp"), b"v2").unwrap();
        File::open(root.join("tmp")).unwrap().sync_all().unwrap();
        fs::rename(root.join("tmp"), root.join("old")).unwrap();
        fs.cut_power().unwrap();
        assert_eq!(fs::read(root.join("old")).unwrap(), b"v1");

        atelier_core::fs::write_atomic(&root.join("old"), b"v3", None).unwrap();
        fs.cut_power().unwrap();
        assert_eq!(fs::read(root.join("old")).unwrap(), b"v3");
    }

    #[test]
    fn writes_without_fsync_are_lost_even_if_the_file_was_synced_before() {
        let (_dir, mut fs) = mounted();
        let root = fs.path().to_path_buf();
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(root.join("log"))
            .unwrap();
        f.write_all(&[1; 8192]).unwrap();
        f.sync_data().unwrap();
        File::open(&root).unwrap().sync_all().unwrap();
        // A log that grows (sled's): the new tail and the new size are both lost.
        f.write_all(&[2; 8192]).unwrap();
        drop(f);
        fs.cut_power().unwrap();
        assert_eq!(fs::read(root.join("log")).unwrap(), vec![1; 8192]);
    }
}
