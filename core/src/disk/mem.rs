//! A simulated disk for crash testing.
//!
//! Every file keeps its current bytes (what a reader sees, like the page cache) apart
//! from its durable bytes (what survives a crash). `sync_data` makes the current bytes
//! durable; `sync_dir` makes the directory's names durable. [`MemDisk::crash`] throws
//! away everything not durable, and can let a prefix of the last unsynced append
//! survive, which is what a torn write looks like after power loss. A directory's
//! entry is data of its parent: one created, or removed with everything in it, is
//! undone by a crash until its parent is synced (top-level directories, which stand
//! for the mount point or the operator's data directory, are created and removed
//! durably at once).

use super::{Disk, DiskFile, OpenMode};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

type InodeId = u64;

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// The lowest byte position changed since the last sync; None when clean.
    dirty_from: Option<usize>,
}

impl Inode {
    fn mark_dirty(&mut self, pos: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(pos, |d| d.min(pos)));
    }

    fn sync(&mut self) {
        if let Some(from) = self.dirty_from.take() {
            // Bytes below `from` are unchanged since the last sync, so only the
            // rest needs copying: durable = durable[..from] ++ data[from..].
            let keep = from.min(self.durable.len()).min(self.data.len());
            self.durable.truncate(keep);
            self.durable.extend_from_slice(&self.data[keep..]);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    /// Directories whose own entry is durable: synced in their parent, or at the top
    /// level (`/x`, which stands for the mount point or the operator's data directory).
    durable_dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, InodeId>,
    durable_names: BTreeMap<PathBuf, InodeId>,
    /// Directories removed since their parent was last synced, each with the durable
    /// subtree a crash now would bring back (its directories and names).
    unsynced_removals: BTreeMap<PathBuf, DurableTree>,
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    last_written: Option<InodeId>,
    /// Bumped by every crash; handles opened before it stop working.
    generation: u64,
    capacity: Option<u64>,
    failing_syncs: u32,
    /// The file each injected sync failure hit (`None`: a file with no name left), so
    /// that a test can tell which part of the node's storage took it.
    failed_syncs: Vec<Option<PathBuf>>,
    syncs: u64,
    bytes_read: u64,
}

/// The durable directories and names at and under one directory.
#[derive(Debug, Default, Clone)]
struct DurableTree {
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, InodeId>,
}

impl State {
    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.data.len() as u64).sum()
    }

    /// The durable directories and names as a crash now leaves them: removals whose
    /// parent was not synced since are undone, the durable tree they removed coming
    /// back in place of anything synced under the same path since (that belonged to
    /// a new directory whose own entry is not durable yet); then whatever lies under
    /// a directory whose entry is not durable is gone.
    fn durable_tree(&self) -> DurableTree {
        let mut tree = DurableTree {
            dirs: self.durable_dirs.clone(),
            names: self.durable_names.clone(),
        };
        // Outermost first, so that a removal inside a removed directory comes back too.
        for (removed, undone) in &self.unsynced_removals {
            tree.dirs.retain(|d| !d.starts_with(removed));
            tree.names.retain(|p, _| !p.starts_with(removed));
            tree.dirs.extend(undone.dirs.iter().cloned());
            tree.names
                .extend(undone.names.iter().map(|(p, id)| (p.clone(), *id)));
        }
        let dirs = tree.dirs.clone();
        tree.dirs.retain(|d| survives(&dirs, d));
        tree.names
            .retain(|p, _| p.parent().is_some_and(|d| survives(&dirs, d)));
        tree
    }
}

/// What of the last unsynced write survives a [`MemDisk::crash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Nothing unsynced survives.
    None,
    /// Up to this many bytes of the unsynced tail of the file written last survive.
    KeepTail(usize),
    /// Up to `keep` bytes of the unsynced tail of every file whose name ends in
    /// `suffix` survive: a test that tears a partition log whatever it wrote last.
    KeepTailOfEach { suffix: &'static str, keep: usize },
}

/// The in-memory disk. Clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct MemFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    generation: u64,
}

/// Whether directory `dir` is still there after a power loss: its entry and every
/// ancestor's is durable (the root always is).
fn survives(durable_dirs: &BTreeSet<PathBuf>, dir: &Path) -> bool {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty() && a.parent().is_some())
        .all(|a| durable_dirs.contains(a))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl MemDisk {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulates power loss: unsynced data and unsynced directory entries vanish, and
    /// every open handle becomes invalid (the process that held it is gone).
    pub fn crash(&self, tear: Tear) {
        let mut st = self.lock();
        st.generation += 1;
        let tree = st.durable_tree();
        st.unsynced_removals.clear();
        st.dirs = tree.dirs.clone();
        st.durable_dirs = tree.dirs;
        st.durable_names = tree.names;
        st.names = st.durable_names.clone();
        let (torn, keep): (BTreeSet<InodeId>, usize) = match tear {
            Tear::KeepTail(n) => (st.last_written.into_iter().collect(), n),
            Tear::KeepTailOfEach { suffix, keep } => {
                let named = st.names.iter().filter(|(path, _)| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy().ends_with(suffix))
                });
                (named.map(|(_, id)| *id).collect(), keep)
            }
            Tear::None => (BTreeSet::new(), 0),
        };
        let live: BTreeSet<InodeId> = st.names.values().copied().collect();
        st.inodes.retain(|id, _| live.contains(id));
        for (id, inode) in st.inodes.iter_mut() {
            let mut recovered = inode.durable.clone();
            if torn.contains(id) {
                let appended_only = inode.dirty_from.is_none_or(|d| d >= inode.durable.len());
                if appended_only && inode.data.len() > recovered.len() {
                    let end = (recovered.len() + keep).min(inode.data.len());
                    recovered.extend_from_slice(&inode.data[inode.durable.len()..end]);
                }
            }
            inode.durable = recovered.clone();
            inode.data = recovered;
            inode.dirty_from = None;
        }
        st.last_written = None;
    }

    /// A separate disk holding what a crash now would leave (nothing torn): the
    /// conformance oracle opens it to see what is durable without disturbing this one.
    pub fn durable_copy(&self) -> MemDisk {
        let st = self.lock();
        let tree = st.durable_tree();
        let durable_names = tree.names;
        let live: BTreeSet<InodeId> = durable_names.values().copied().collect();
        let inodes = st
            .inodes
            .iter()
            .filter(|(id, _)| live.contains(id))
            .map(|(id, inode)| {
                let copy = Inode {
                    data: inode.durable.clone(),
                    durable: inode.durable.clone(),
                    dirty_from: None,
                };
                (*id, copy)
            })
            .collect();
        let copy = State {
            dirs: tree.dirs.clone(),
            durable_dirs: tree.dirs,
            names: durable_names.clone(),
            durable_names,
            inodes,
            next_inode: st.next_inode,
            ..State::default()
        };
        MemDisk {
            state: Arc::new(Mutex::new(copy)),
        }
    }

    /// The bytes all files hold, synced or not.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Limits the total size of all files; writes beyond it fail with StorageFull.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// The next `n` calls of `sync_data` fail with an I/O error.
    pub fn fail_next_syncs(&self, n: u32) {
        self.lock().failing_syncs = n;
    }

    /// How many of the failures `fail_next_syncs` asked for are still to come.
    pub fn sync_failures_pending(&self) -> u32 {
        self.lock().failing_syncs
    }

    /// The files the injected sync failures hit since the last call, in order.
    pub fn take_failed_syncs(&self) -> Vec<Option<PathBuf>> {
        std::mem::take(&mut self.lock().failed_syncs)
    }

    /// How many `sync_data` calls succeeded so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// How many bytes were read from files so far.
    pub fn bytes_read(&self) -> u64 {
        self.lock().bytes_read
    }

    /// Overwrites bytes of a file as they are now, durably, as disk corruption would.
    pub fn corrupt(&self, path: &Path, pos: usize, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let inode = st.inodes.get_mut(&id).ok_or_else(|| not_found(path))?;
        for (i, b) in bytes.iter().enumerate() {
            for buf in [&mut inode.data, &mut inode.durable] {
                if pos + i < buf.len() {
                    buf[pos + i] = *b;
                } else {
                    buf.push(*b);
                }
            }
        }
        Ok(())
    }
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Disk for MemDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                st.dirs.insert(ancestor.to_path_buf());
                if ancestor.parent().is_none_or(|p| p.parent().is_none()) {
                    st.durable_dirs.insert(ancestor.to_path_buf());
                }
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = st.names.keys();
        let dirs = st.dirs.iter();
        let mut names: Vec<String> = files
            .chain(dirs)
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lock().dirs.contains(path)
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.dirs.contains(path) || st.names.contains_key(path)
    }

    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut st = self.lock();
        if !st.dirs.contains(&parent_of(path)) {
            return Err(not_found(&parent_of(path)));
        }
        let inode = match (st.names.get(path).copied(), mode) {
            (Some(_), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ))
            }
            (Some(id), _) => id,
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, _) => {
                let id = st.next_inode;
                st.next_inode += 1;
                st.inodes.insert(id, Inode::default());
                st.names.insert(path.to_path_buf(), id);
                id
            }
        };
        Ok(Arc::new(MemFile {
            state: Arc::clone(&self.state),
            inode,
            generation: st.generation,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        st.names.retain(|p, _| !p.starts_with(dir));
        st.dirs.retain(|p| !p.starts_with(dir));
        let undone = DurableTree {
            dirs: st
                .durable_dirs
                .iter()
                .filter(|p| p.starts_with(dir))
                .cloned()
                .collect(),
            names: st
                .durable_names
                .iter()
                .filter(|(p, _)| p.starts_with(dir))
                .map(|(p, id)| (p.clone(), *id))
                .collect(),
        };
        st.durable_names.retain(|p, _| !p.starts_with(dir));
        st.durable_dirs.retain(|p| !p.starts_with(dir));
        let top_level = dir.parent().is_none_or(|p| p.parent().is_none());
        // A removal already pending for this path keeps the older state, the one a
        // crash would bring back; those pending inside it stay, to come back with it.
        if !top_level && !st.unsynced_removals.contains_key(dir) {
            st.unsynced_removals.insert(dir.to_path_buf(), undone);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let id = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable_names.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, InodeId)> = st
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        st.durable_names.extend(entries);
        let subdirs: Vec<PathBuf> = st.dirs.iter().filter(|p| in_dir(p)).cloned().collect();
        st.durable_dirs.retain(|p| !in_dir(p));
        st.durable_dirs.extend(subdirs);
        // These removals are durable now, and so are those inside the directories
        // they removed.
        let durable: Vec<PathBuf> = st
            .unsynced_removals
            .keys()
            .filter(|p| in_dir(p))
            .cloned()
            .collect();
        st.unsynced_removals
            .retain(|p, _| !durable.iter().any(|d| p.starts_with(d)));
        Ok(())
    }
}

impl MemFile {
    fn with_inode<R>(&self, f: impl FnOnce(&mut State, InodeId) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.generation != self.generation || !st.inodes.contains_key(&self.inode) {
            return Err(io::Error::other(
                "file handle from before a simulated crash",
            ));
        }
        f(&mut st, self.inode)
    }
}

fn inode_mut(st: &mut State, id: InodeId) -> io::Result<&mut Inode> {
    st.inodes
        .get_mut(&id)
        .ok_or_else(|| io::Error::other("inode vanished"))
}

impl DiskFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.with_inode(|st, id| Ok(inode_mut(st, id)?.data.len() as u64))
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.with_inode(|st, id| {
            let data = &inode_mut(st, id)?.data;
            let start = usize::try_from(pos).unwrap_or(usize::MAX).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            st.bytes_read += n as u64;
            Ok(n)
        })
    }

    fn write_at(&self, data: &[u8], pos: u64) -> io::Result<()> {
        self.with_inode(|st, id| {
            let pos = usize::try_from(pos).map_err(io::Error::other)?;
            let end = pos + data.len();
            let current = inode_mut(st, id)?.data.len();
            if let Some(cap) = st.capacity {
                let growth = end.saturating_sub(current) as u64;
                if st.used_bytes() + growth > cap {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "no space left on simulated device",
                    ));
                }
            }
            st.last_written = Some(id);
            let inode = inode_mut(st, id)?;
            if inode.data.len() < end {
                inode.data.resize(end, 0);
            }
            inode.data[pos..end].copy_from_slice(data);
            inode.mark_dirty(pos.min(current));
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_inode(|st, id| {
            let len = usize::try_from(len).map_err(io::Error::other)?;
            let inode = inode_mut(st, id)?;
            let old = inode.data.len();
            inode.data.resize(len, 0);
            inode.mark_dirty(len.min(old));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_inode(|st, id| {
            if st.failing_syncs > 0 {
                st.failing_syncs -= 1;
                let name = st.names.iter().find(|(_, inode)| **inode == id);
                let name = name.map(|(path, _)| path.clone());
                st.failed_syncs.push(name);
                return Err(io::Error::other("simulated I/O error on fsync"));
            }
            st.syncs += 1;
            inode_mut(st, id)?.sync();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory's entry is data of its parent: a synced file in a directory whose
    /// entry was never synced vanishes with it, as on a real file system after a power
    /// loss; `create_dir_durably` syncs each new directory into its parent.
    #[test]
    fn a_directory_never_synced_into_its_parent_vanishes_on_crash() -> io::Result<()> {
        let disk = MemDisk::new();
        for durably in [false, true] {
            let dir = PathBuf::from(format!("/data/logs{durably}/t-0"));
            if durably {
                crate::disk::create_dir_durably(&disk, &dir)?;
            } else {
                disk.create_dir_all(&dir)?;
            }
            let file = disk.open_file(&dir.join("seg"), OpenMode::CreateNew)?;
            file.write_at(b"acknowledged", 0)?;
            file.sync_data()?;
            disk.sync_dir(&dir)?;
            let copy = disk.durable_copy();
            disk.crash(Tear::None);
            assert_eq!(disk.exists(&dir.join("seg")), durably, "{}", dir.display());
            assert_eq!(copy.exists(&dir.join("seg")), durably, "{}", dir.display());
        }
        assert!(
            disk.is_dir(Path::new("/data")),
            "the top level stands for the mount"
        );
        Ok(())
    }

    fn write_synced(disk: &MemDisk, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let file = disk.open_file(path, OpenMode::Create)?;
        file.set_len(0)?;
        file.write_at(bytes, 0)?;
        file.sync_data()?;
        disk.sync_dir(&parent_of(path))
    }

    fn read(disk: &MemDisk, path: &Path) -> io::Result<Vec<u8>> {
        crate::disk::read_all(disk, path)
    }

    /// A removed directory comes back whole after a power loss until its parent is
    /// synced: a directory re-created at the same path in between (with files synced
    /// in it) is the one lost, the old one and its durable files return.
    #[test]
    fn a_directory_removal_is_undone_by_a_crash_until_its_parent_is_synced() -> io::Result<()> {
        let disk = MemDisk::new();
        let dir = Path::new("/data/logs/t-0");
        crate::disk::create_dir_durably(&disk, dir)?;
        write_synced(&disk, &dir.join("topic_id"), b"old")?;
        disk.remove_dir_all(dir)?;
        disk.create_dir_all(dir)?;
        write_synced(&disk, &dir.join("topic_id"), b"new")?;
        assert_eq!(read(&disk.durable_copy(), &dir.join("topic_id"))?, b"old");
        disk.crash(Tear::None);
        assert_eq!(
            read(&disk, &dir.join("topic_id"))?,
            b"old",
            "the removal was undone"
        );

        disk.remove_dir_all(dir)?;
        disk.sync_dir(Path::new("/data/logs"))?;
        disk.crash(Tear::None);
        assert!(
            !disk.exists(dir),
            "a removal synced in its parent is durable"
        );
        assert!(
            disk.remove_dir_all(dir).is_err(),
            "removing what is not there fails, as remove_dir_all(2) does"
        );
        Ok(())
    }

    /// A removal inside a removed directory comes back with it, and is made durable
    /// with it.
    #[test]
    fn removals_inside_a_removed_directory_follow_it() -> io::Result<()> {
        let disk = MemDisk::new();
        let inner = Path::new("/data/a/b");
        crate::disk::create_dir_durably(&disk, inner)?;
        write_synced(&disk, &inner.join("f"), b"x")?;
        disk.remove_dir_all(inner)?;
        disk.remove_dir_all(Path::new("/data/a"))?;
        disk.crash(Tear::None);
        assert_eq!(read(&disk, &inner.join("f"))?, b"x");

        disk.remove_dir_all(inner)?;
        disk.remove_dir_all(Path::new("/data/a"))?;
        disk.sync_dir(Path::new("/data"))?;
        crate::disk::create_dir_durably(&disk, inner)?;
        disk.crash(Tear::None);
        assert!(disk.is_dir(inner), "the new directory is durable");
        assert!(
            !disk.exists(&inner.join("f")),
            "the old one's files are not"
        );
        Ok(())
    }

    #[test]
    fn unsynced_bytes_and_names_vanish_on_crash() -> io::Result<()> {
        let disk = MemDisk::new();
        let dir = Path::new("/d");
        disk.create_dir_all(dir)?;
        let synced = disk.open_file(&dir.join("a"), OpenMode::CreateNew)?;
        synced.write_at(b"durable", 0)?;
        synced.sync_data()?;
        disk.sync_dir(dir)?;
        synced.write_at(b"+lost", 7)?;
        let unnamed = disk.open_file(&dir.join("b"), OpenMode::CreateNew)?;
        unnamed.write_at(b"x", 0)?;
        unnamed.sync_data()?;
        disk.crash(Tear::None);
        assert!(synced.len().is_err(), "old handles die with the process");
        let reopened = disk.open_file(&dir.join("a"), OpenMode::Existing)?;
        let mut buf = vec![0; 32];
        let n = reopened.read_full_at(&mut buf, 0)?;
        assert_eq!(&buf[..n], b"durable");
        assert!(
            !disk.exists(&dir.join("b")),
            "a name never dir-synced is lost"
        );
        Ok(())
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_the_last_append() -> io::Result<()> {
        let disk = MemDisk::new();
        let dir = Path::new("/d");
        disk.create_dir_all(dir)?;
        let f = disk.open_file(&dir.join("a"), OpenMode::CreateNew)?;
        disk.sync_dir(dir)?;
        f.write_at(b"abc", 0)?;
        f.sync_data()?;
        f.write_at(b"defgh", 3)?;
        disk.crash(Tear::KeepTail(2));
        let f = disk.open_file(&dir.join("a"), OpenMode::Existing)?;
        let mut buf = vec![0; 16];
        let n = f.read_full_at(&mut buf, 0)?;
        assert_eq!(&buf[..n], b"abcde");
        Ok(())
    }

    #[test]
    fn writes_beyond_capacity_fail_and_change_nothing() -> io::Result<()> {
        let disk = MemDisk::new();
        let dir = Path::new("/d");
        disk.create_dir_all(dir)?;
        disk.set_capacity(Some(4));
        let f = disk.open_file(&dir.join("a"), OpenMode::CreateNew)?;
        f.write_at(b"abcd", 0)?;
        let err = f.write_at(b"e", 4).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::StorageFull));
        assert_eq!(f.len()?, 4);
        Ok(())
    }
}
