//! Partition replication, as deterministic steps over one broker's applied metadata,
//! its partition logs and a clock value passed in (spec/cluster.md, R-REPL-*): the
//! hosted logs and their per-partition replication state (`partitions`), the
//! leader's view of its followers (`tracker`), and the steps the Kafka handlers, the
//! replica fetcher, the ISR upkeep, the conformance runner and the simulator all call
//! (`steps`; a produce from its append to its answer, `produce`). Waiting and I/O are the callers'.

mod bugs;
mod error;
mod failure_states;
mod list_offsets;
mod partitions;
mod produce;
mod repair;
mod shown;
mod stamp;
mod steps;
mod trace;
mod tracker;

pub use bugs::ReplicationBugs;
pub use error::ReplicationError;
pub use failure_states::{Change, FailureStates};
pub use list_offsets::{list_offset, ListedOffset};
pub use partitions::{log_config, NoEvents, PartitionEvents, Partitions, TopicPartition};
pub use produce::{AckWait, AppendResult, Appended, ProduceWait};
pub use repair::{holds_isr, others_may_hold, RepairStep, Repairs};
pub use shown::{
    value_digests, LeaderShown, LogReads, LogShown, PartitionMeta, PartitionShown, ReadAt,
    RecordShown, Registration,
};
pub use stamp::{read_stamp, stamp_bytes, write_stamp, Stamp, TOPIC_ID_FILE};
pub use steps::{
    follower_fetch_offset, leader_epoch_error, min_insync_replicas, truncate_for_leader,
    DeletionStarted, Fetched, FollowerServed, LocalView, PartitionKey,
};
pub use trace::{AnswerRecords, FetchStep, ReplicationEvent, ReplicationTraceLine};
pub use tracker::{truncation_point, truncation_point_for_answer, FollowerFetch, FollowerTracker};
