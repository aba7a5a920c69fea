//! Per-log group commit for callers that block: no hand-off to another thread.
//!
//! The first caller that finds no sync running becomes the syncer and fdatasyncs on
//! its own thread; callers arriving meanwhile wait, and the sync after the running
//! one covers all of them at once. A caller returns only when its own condition
//! ("my bytes are durable") holds, which only a sync that started after its write can
//! make true (R-LOG-4).

use super::error::LogError;
use crate::sync::{lock, Condvar, Mutex};

#[derive(Default)]
pub struct SyncCoalescer {
    syncing: Mutex<bool>,
    finished: Condvar,
}

impl SyncCoalescer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns once `is_durable` says so, running `sync` whenever no other caller is.
    /// `is_durable` returns an error when the write can no longer become durable
    /// (the log failed since it was written).
    pub fn wait_durable(
        &self,
        is_durable: impl Fn() -> Result<bool, LogError>,
        sync: impl Fn() -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut syncing = lock(&self.syncing);
        loop {
            if is_durable()? {
                return Ok(());
            }
            if !*syncing {
                *syncing = true;
                drop(syncing);
                let outcome = sync();
                syncing = lock(&self.syncing);
                *syncing = false;
                self.finished.notify_all();
                outcome?;
                continue;
            }
            syncing = self
                .finished
                .wait(syncing)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}
