use super::error::{LogError, Result};
use serde::{Deserialize, Serialize};

/// When appended bytes are forced to disk (R-LOG-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// An append completes only once its bytes are fdatasync'ed; concurrent appends
    /// share flushes (group commit). The default.
    Always,
    /// Appends complete at once; a background flusher syncs every `ms` milliseconds.
    /// A crash can lose up to that much acknowledged data: weaker, opt-in.
    Interval { ms: u64 },
    /// Never synced except when a segment is sealed. For tests and benches only.
    Never,
}

impl FsyncPolicy {
    /// The broker's `--fsync-interval-ms`: 0 syncs every acknowledged append.
    pub fn every_ms(ms: u64) -> Self {
        match ms {
            0 => FsyncPolicy::Always,
            ms => FsyncPolicy::Interval { ms },
        }
    }

    /// Appends are acknowledged, counted and served before they are durable, so a
    /// crash can cut acknowledged records (R-LOG-4, R-REPL-5).
    pub fn acks_before_fsync(self) -> bool {
        self != FsyncPolicy::Always
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is sealed and a new one started when the next frame would pass this.
    pub segment_bytes: u64,
    /// ... or when the active segment's first append is this old.
    pub segment_ms: u64,
    /// Bytes of log between two entries of the sparse offset index.
    pub index_interval_bytes: u64,
    /// The largest batch one append accepts (Kafka's max.message.bytes).
    pub max_batch_bytes: usize,
    /// Segments whose newest timestamp is older than this are deleted.
    pub retention_ms: Option<u64>,
    /// Old segments are deleted while the log is larger than this.
    pub retention_bytes: Option<u64>,
    pub fsync: FsyncPolicy,
    /// `cleanup.policy` includes `compact`: the cleaner keeps the last record of
    /// every key (R-LOG-18).
    pub compaction: Option<Compaction>,
}

/// A compacted topic's cleaner settings, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// `min.cleanable.dirty.ratio`, in millionths: a pass starts once this share
    /// of the cleanable bytes has not been cleaned yet.
    pub min_dirty_ppm: u32,
    /// `min.compaction.lag.ms`: a segment whose newest record is younger is left.
    pub min_lag_ms: u64,
    /// `max.compaction.lag.ms`: a dirty segment this old is cleaned whatever the ratio.
    pub max_lag_ms: u64,
    /// `delete.retention.ms`: how long a tombstone outlives its first cleaning.
    pub delete_retention_ms: u64,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            min_dirty_ppm: 500_000,
            min_lag_ms: 0,
            max_lag_ms: i64::MAX as u64,
            delete_retention_ms: 24 * 60 * 60 * 1000,
        }
    }
}

pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;
const WEEK_MS: u64 = 7 * 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: WEEK_MS,
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            retention_ms: Some(WEEK_MS),
            retention_bytes: None,
            fsync: FsyncPolicy::Always,
            compaction: None,
        }
    }
}

/// How many times `max_batch_bytes` a batch's records may decompress to. Kafka has
/// no such bound; without one, kilobytes of compressed zeros make the broker
/// allocate gigabytes. Producers' batches are rarely compressed more than tenfold.
const DECOMPRESSION_FACTOR: usize = 16;

impl LogConfig {
    /// The most a batch's records may decompress to (16 MiB by default).
    pub fn max_records_bytes(&self) -> usize {
        self.max_batch_bytes.saturating_mul(DECOMPRESSION_FACTOR)
    }

    pub fn validate(&self) -> Result<()> {
        // Index entries store positions as u32.
        if self.segment_bytes < 1024 || self.segment_bytes > u64::from(u32::MAX) {
            return Err(LogError::Config(format!(
                "segment_bytes {} must be between 1 KiB and 4 GiB",
                self.segment_bytes
            )));
        }
        if self.index_interval_bytes == 0 {
            return Err(LogError::Config(
                "index_interval_bytes must be positive".into(),
            ));
        }
        if self.max_batch_bytes > super::frame::MAX_FRAME_PAYLOAD {
            return Err(LogError::Config(format!(
                "max_batch_bytes {} is over {}",
                self.max_batch_bytes,
                super::frame::MAX_FRAME_PAYLOAD
            )));
        }
        if let FsyncPolicy::Interval { ms: 0 } = self.fsync {
            return Err(LogError::Config("fsync interval must be positive".into()));
        }
        Ok(())
    }
}
