//! Space set aside on the data disk so that a broker stopped on a full disk can start
//! again. A start writes before it serves (its incarnation, its Raft log, its
//! registration), so on a full disk it failed, and with it the DeleteTopics and
//! DeleteRecords that would have freed space: the operator had to delete files by
//! hand (exploratory testing, 2026-12-07). The reserve is a file of zeros, allocated
//! while there is room; a start that finds the disk short of room releases it first.
//! It is the configured size or 1% of the file system, whichever is less (as
//! CockroachDB sizes its ballast), so that a small disk keeps one too.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The reserve's name in the data directory.
const RESERVE_FILE: &str = "disk-reserve";

/// The reserve of `data_dir`, `bytes` long (0: none is kept).
pub struct DiskReserve {
    path: PathBuf,
    dir: PathBuf,
    bytes: u64,
}

impl DiskReserve {
    pub fn new(data_dir: &Path, bytes: u64) -> DiskReserve {
        DiskReserve {
            path: data_dir.join(RESERVE_FILE),
            dir: data_dir.to_path_buf(),
            bytes,
        }
    }

    /// At start, before anything is written: if the disk has less room than the
    /// reserve, the reserve is given up for this start (and logged), so the start's
    /// own writes, and the deletions that free space, have room.
    pub fn release_if_short(&self) -> io::Result<()> {
        let Some(held) = self.held()? else {
            return Ok(());
        };
        let (free, total) = space(&self.dir)?;
        if free >= target(self.bytes, total).max(1) {
            return Ok(());
        }
        fs::remove_file(&self.path)?;
        File::open(&self.dir)?.sync_all()?;
        tracing::error!(dir = %self.dir.display(), free, released = held,
            "the data disk is short of room: released the disk reserve so this start can \
             write; free space (DeleteRecords, DeleteTopics, retention) and the reserve is \
             set aside again once there is room for it twice over");
        Ok(())
    }

    /// Sets the reserve aside where it is missing and the disk has room for it twice
    /// over (so that setting it aside never fills the disk). Called at start and
    /// periodically.
    pub fn keep(&self) -> io::Result<()> {
        let held = self.held()?;
        let (free, total) = space(&self.dir)?;
        let bytes = target(self.bytes, total);
        if bytes == 0 && held.is_some() {
            // Turned off: what was set aside is given back.
            return fs::remove_file(&self.path);
        }
        if bytes == 0 || held.is_some_and(|held| held >= bytes) || free < bytes.saturating_mul(2) {
            return Ok(());
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&self.path)?;
        allocate(&file, bytes)?;
        file.sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        tracing::info!(path = %self.path.display(), bytes, "disk reserve set aside");
        Ok(())
    }

    /// The reserve's size on disk, if it exists.
    fn held(&self) -> io::Result<Option<u64>> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The reserve's size: `configured`, at most 1% of a file system of `total` bytes.
fn target(configured: u64, total: u64) -> u64 {
    configured.min(total / 100)
}

/// (bytes an unprivileged writer may still use, bytes in all) of the file system of
/// `dir`.
pub(crate) fn space(dir: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` is written whole by a
    // successful call, which is the only case read.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        stats.assume_init()
    };
    let block = stats.f_frsize as u64;
    Ok((
        (stats.f_bavail as u64).saturating_mul(block),
        (stats.f_blocks as u64).saturating_mul(block),
    ))
}

/// Gives `file` `bytes` of real blocks (a sparse file would hold no room).
fn allocate(file: &File, bytes: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let len = libc::off_t::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "reserve too large"))?;
    // SAFETY: the descriptor is open for writing for the duration of the call.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_ops_4_a_reserve_is_at_most_a_hundredth_of_the_disk() {
        assert_eq!(target(64 << 20, 8 << 20), (8 << 20) / 100);
        assert_eq!(target(64 << 20, 1 << 40), 64 << 20);
        assert_eq!(target(0, 1 << 40), 0);
    }

    #[test]
    fn r_ops_4_the_reserve_is_set_aside_once_and_kept_on_a_roomy_disk() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (_, total) = space(dir.path())?;
        let reserve = DiskReserve::new(dir.path(), 1 << 20);
        reserve.keep()?;
        assert_eq!(reserve.held()?, Some(target(1 << 20, total)));
        reserve.keep()?;
        reserve.release_if_short()?;
        assert_eq!(
            reserve.held()?,
            Some(target(1 << 20, total)),
            "released on a disk with room"
        );
        DiskReserve::new(dir.path(), 0).keep()?;
        assert_eq!(reserve.held()?, None, "kept after it was turned off");
        Ok(())
    }
}
