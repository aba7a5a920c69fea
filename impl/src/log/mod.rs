//! The partition log: the source of truth for every partition's records.
//! Rules R-LOG-* in spec/log.md.

pub mod batch;
pub mod checkpoint;
mod coalesce;
pub mod compression;
mod config;
pub mod damage;
pub use chronik_core::log::{error, frame, frame_reader};
mod group_commit;
pub mod index;
mod partition;
pub mod producers;
pub mod quarantine;
pub mod segment;

pub use coalesce::SyncCoalescer;
pub use config::{FsyncPolicy, LogConfig, DEFAULT_SEGMENT_BYTES};
pub use error::{LogError, Result};
pub use group_commit::{
    CommitQueue, CommitStats, Completion, GroupCommitter, ManualCommitter, SyncTarget,
};
pub use partition::{AppendInfo, PartitionLog, ReadLimits, ReadResult, SyncObserver};
