//! A bound on the files that sealed segments keep open (R-LOG-19), shared by every
//! partition log of a broker. A sealed segment's file is opened when it is read and
//! may be closed again whenever more than `limit` are open; the active segment of
//! every log keeps its file, and a handle a reader already holds stays valid until
//! that reader drops it (closing only happens when the last holder lets go).
//!
//! Eviction is the CLOCK approximation of least-recently-used: a read only sets its
//! slot's `referenced` bit, so the hot path takes no shared lock; an open that passes
//! the limit sweeps the ring, sparing and clearing referenced slots once.

use crate::disk::DiskFile;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The file of one segment: open, or closed until the next read opens it again.
#[derive(Debug, Default)]
pub struct FileSlot {
    handle: Mutex<Option<Arc<dyn DiskFile>>>,
    referenced: AtomicBool,
}

impl FileSlot {
    pub fn open(file: Arc<dyn DiskFile>) -> Arc<Self> {
        Arc::new(FileSlot {
            handle: Mutex::new(Some(file)),
            referenced: AtomicBool::new(true),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<dyn DiskFile>>> {
        self.handle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open handle, if the slot has one; marks the slot recently used.
    pub fn get(&self) -> Option<Arc<dyn DiskFile>> {
        self.referenced.store(true, Ordering::Relaxed);
        self.lock().clone()
    }

    /// Puts a freshly opened handle in, unless another reader was quicker: the
    /// handle to use either way, and whether this call filled the slot.
    pub fn fill(&self, file: Arc<dyn DiskFile>) -> (Arc<dyn DiskFile>, bool) {
        self.referenced.store(true, Ordering::Relaxed);
        let mut handle = self.lock();
        match handle.as_ref() {
            Some(existing) => (Arc::clone(existing), false),
            None => {
                *handle = Some(Arc::clone(&file));
                (file, true)
            }
        }
    }

    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    fn close(&self) -> bool {
        self.lock().take().is_some()
    }
}

/// The broker-wide bound.
#[derive(Debug)]
pub struct OpenFiles {
    limit: usize,
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    slots: Vec<Weak<FileSlot>>,
    hand: usize,
}

impl OpenFiles {
    /// At most `limit` sealed segment files open at once (at least one).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(OpenFiles {
            limit: limit.max(1),
            ring: Mutex::new(Ring::default()),
        })
    }

    /// No bound: every sealed segment keeps its file, as Kafka does.
    pub fn unbounded() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many sealed segment files are open now.
    pub fn open_count(&self) -> usize {
        self.lock()
            .slots
            .iter()
            .filter(|w| w.upgrade().is_some_and(|s| s.is_open()))
            .count()
    }

    /// Counts `slot`'s file among the open ones (it was just opened, or its segment
    /// was just sealed), closing others' while more than the limit are open.
    pub fn opened(&self, slot: &Arc<FileSlot>) {
        let victims = {
            let mut ring = self.lock();
            ring.slots
                .retain(|w| w.upgrade().is_some_and(|s| s.is_open()));
            if !ring.slots.iter().any(|w| w.as_ptr() == Arc::as_ptr(slot)) {
                ring.slots.push(Arc::downgrade(slot));
            }
            ring.sweep(self.limit, slot)
        };
        // Closed outside the ring's lock: a slot's lock is never held with it.
        for victim in victims {
            victim.close();
        }
    }
}

impl Ring {
    /// The slots to close so that at most `limit` stay open, `keep` not among them.
    fn sweep(&mut self, limit: usize, keep: &Arc<FileSlot>) -> Vec<Arc<FileSlot>> {
        let mut victims = Vec::new();
        // Two turns of the hand clear every referenced bit, so this ends.
        let mut budget = 2 * self.slots.len();
        while self.slots.len() > limit && budget > 0 {
            budget -= 1;
            self.hand %= self.slots.len();
            let Some(slot) = self.slots[self.hand].upgrade() else {
                self.slots.swap_remove(self.hand);
                continue;
            };
            let spared = Arc::ptr_eq(&slot, keep) || slot.referenced.swap(false, Ordering::Relaxed);
            if spared {
                self.hand += 1;
                continue;
            }
            self.slots.swap_remove(self.hand);
            victims.push(slot);
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{Disk, MemDisk, OpenMode};
    use std::path::Path;

    fn file(disk: &MemDisk, name: &str) -> Arc<dyn DiskFile> {
        disk.create_dir_all(Path::new("/d")).expect("a directory");
        disk.open_file(
            &Path::new("/d").join(name.trim_start_matches('/')),
            OpenMode::Create,
        )
        .expect("an in-memory file")
    }

    #[test]
    fn r_log_19_no_more_than_the_limit_stay_open_and_the_newest_is_kept() {
        let disk = MemDisk::new();
        let files = OpenFiles::new(3);
        let slots: Vec<Arc<FileSlot>> = (0..10)
            .map(|i| {
                let slot = FileSlot::open(file(&disk, &format!("/f{i}")));
                files.opened(&slot);
                assert!(slot.is_open(), "the file just opened stays open");
                slot
            })
            .collect();
        assert_eq!(files.open_count(), 3);
        assert_eq!(slots.iter().filter(|s| s.is_open()).count(), 3);
    }

    #[test]
    fn r_log_19_a_closed_file_reopens_and_a_held_handle_outlives_its_closing() {
        let disk = MemDisk::new();
        let files = OpenFiles::new(1);
        let first = FileSlot::open(file(&disk, "/a"));
        files.opened(&first);
        let held = first.get().expect("open");
        held.write_at(b"kept", 0).expect("write");
        let second = FileSlot::open(file(&disk, "/b"));
        files.opened(&second);
        assert!(!first.is_open() && second.is_open());
        let mut buf = [0u8; 4];
        held.read_at(&mut buf, 0)
            .expect("a held handle still reads");
        assert_eq!(&buf, b"kept");
        let (_, filled) = first.fill(file(&disk, "/a"));
        assert!(filled);
        files.opened(&first);
        assert!(first.is_open() && !second.is_open());
    }

    #[test]
    fn r_log_19_recently_read_files_are_spared_once() {
        let disk = MemDisk::new();
        let files = OpenFiles::new(2);
        let a = FileSlot::open(file(&disk, "/a"));
        let b = FileSlot::open(file(&disk, "/b"));
        files.opened(&a);
        files.opened(&b);
        // Both carry the bit from opening; a sweep clears it before it closes anything.
        a.referenced.store(false, Ordering::Relaxed);
        b.get();
        let c = FileSlot::open(file(&disk, "/c"));
        files.opened(&c);
        assert!(!a.is_open() && b.is_open() && c.is_open());
    }

    #[test]
    fn r_log_19_logs_sharing_a_bound_of_one_file_read_every_segment() -> crate::log::Result<()> {
        use crate::log::batch::build_simple_batch;
        use crate::log::{LogConfig, PartitionLog};
        let disk = MemDisk::new();
        let files = OpenFiles::new(1);
        let config = LogConfig {
            segment_bytes: 1024,
            ..LogConfig::default()
        };
        let logs: Vec<PartitionLog> = (0..2)
            .map(|i| {
                let dir = Path::new("/logs").join(format!("t-{i}"));
                PartitionLog::open_sharing(
                    Arc::new(disk.clone()),
                    &dir,
                    config.clone(),
                    None,
                    Arc::clone(&files),
                )
            })
            .collect::<crate::log::Result<_>>()?;
        for round in 0..60u8 {
            for log in &logs {
                log.append(&build_simple_batch(1, 300, round, 0), 0, 0)?;
            }
        }
        assert!(logs.iter().all(|l| l.segment_count() > 10));
        for _ in 0..2 {
            for log in &logs {
                for offset in 0..60u64 {
                    let read = log.read(offset, 1, u64::MAX)?;
                    assert_eq!((read.batch_count, read.next_offset), (1, offset + 1));
                    // The last value byte (a record ends with its header count).
                    assert_eq!(read.records.iter().rev().nth(1), Some(&(offset as u8)));
                }
            }
            assert_eq!(files.open_count(), 1);
        }
        Ok(())
    }

    #[test]
    fn r_log_19_dropped_slots_leave_the_ring() {
        let disk = MemDisk::new();
        let files = OpenFiles::new(2);
        for i in 0..5 {
            let slot = FileSlot::open(file(&disk, &format!("/f{i}")));
            files.opened(&slot);
        }
        assert_eq!(files.open_count(), 0, "deleted segments hold nothing open");
    }
}
