//! One process per data directory: `<data>/.lock`, held with an exclusive advisory
//! lock for as long as the broker runs (Kafka's `.lock` per log directory). Two
//! brokers on one directory would each believe they own every file; the offline
//! `chronik check-data --quarantine` rewriting segments under a running broker would
//! be as bad.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

const LOCK_FILE: &str = ".lock";

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock of `data_dir` (created if missing), or says who holds it.
pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "data directory {} is in use by another chronik process (it holds {}); stop it first",
            data_dir.display(),
            path.display()
        )),
        Err(TryLockError::Error(e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}
