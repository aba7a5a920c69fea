//! The logs of the core: the checksummed frame, the frame reader that tells a torn
//! tail from damage, and the storage error type, which the metadata Raft log shares;
//! and the partition log, the source of truth for every partition's records (rules
//! R-LOG-* in spec/log.md). Files are reached only through the `Disk` seam; fsyncs of
//! appends go through the commit queue whose rounds the shell runs.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
mod coalesce;
pub mod commit;
pub mod compression;
mod config;
pub mod damage;
pub mod error;
pub mod frame;
pub mod frame_reader;
pub mod index;
pub mod message_format;
pub mod open_files;
mod partition;
pub mod produced;
pub mod producers;
pub mod quarantine;
pub mod segment;
pub mod validation;

pub use coalesce::SyncCoalescer;
pub use commit::{
    complete_round, distinct_targets, CommitQueue, CommitRequest, CommitSink, Completion,
    ManualCommitter, SyncTarget,
};
pub use config::{Compaction, FsyncPolicy, LogConfig, DEFAULT_SEGMENT_BYTES};
pub use error::{LogError, Result};
pub use partition::{
    AppendInfo, CleanOutcome, LogPositions, PartitionLog, ReadLimits, ReadResult, SyncObserver,
};
