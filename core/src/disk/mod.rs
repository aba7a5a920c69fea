//! The seam between the broker and its storage.
//!
//! Everything the log writes goes through [`Disk`] and [`DiskFile`], so the same code
//! runs on real files (the shell's `RealDisk`) and on a simulated disk ([`MemDisk`]) that keeps
//! written-but-unsynced bytes apart from durable ones and can lose or tear them in a
//! simulated crash.

mod mem;

pub use mem::{MemDisk, Tear};

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How [`Disk::open_file`] treats an existing or missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must not exist yet.
    CreateNew,
    /// Open the file, creating it empty if it does not exist.
    Create,
    /// The file must exist.
    Existing,
}

/// A file system as the log needs it. Names become durable only after
/// [`Disk::sync_dir`] of their directory; data only after [`DiskFile::sync_data`].
pub trait Disk: Send + Sync + Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries (files and directories) directly inside `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn is_dir(&self, path: &Path) -> bool;
    fn exists(&self, path: &Path) -> bool;
    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file. Positional reads and writes, so one handle serves many readers.
#[allow(clippy::len_without_is_empty)] // files, not collections
pub trait DiskFile: Send + Sync + Debug {
    fn len(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `pos`; fewer only at the end of the file.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `data` at `pos`.
    fn write_at(&self, data: &[u8], pos: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: every byte written before this call is durable when it returns Ok.
    fn sync_data(&self) -> io::Result<()>;

    /// Reads as much of `buf` as the file holds at `pos`, returning how many bytes.
    fn read_full_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read_at(&mut buf[filled..], pos + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }
}

/// Creates `dir` and its missing ancestors, and makes each new one's entry durable
/// in its parent: a directory's entry is data of its parent, so files synced inside a
/// directory whose own entry is not can vanish with it at a power loss.
pub fn create_dir_durably(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !disk.is_dir(a))
        .collect();
    disk.create_dir_all(dir)?;
    for created in missing.into_iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Reads a whole (small) file.
pub fn read_all(disk: &dyn Disk, path: &Path) -> io::Result<Vec<u8>> {
    let file = disk.open_file(path, OpenMode::Existing)?;
    let len = usize::try_from(file.len()?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to read whole"))?;
    let mut bytes = vec![0; len];
    let n = file.read_full_at(&mut bytes, 0)?;
    bytes.truncate(n);
    Ok(bytes)
}

/// Writes `contents` to `path` so that after a crash the file holds either the old
/// contents or the new ones, never a mix: temp file, fsync, rename, fsync directory.
pub fn write_atomically(disk: &dyn Disk, path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let file = disk.open_file(&tmp, OpenMode::Create)?;
    file.set_len(0)?;
    file.write_at(contents, 0)?;
    file.sync_data()?;
    disk.rename(&tmp, path)?;
    disk.sync_dir(dir)
}
