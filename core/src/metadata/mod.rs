//! The replicated metadata: the commands the Raft log carries and the state machine
//! they are applied to. Everything here is deterministic: the same commands in the
//! same order give the same state on every node and after every restart (R-RECOVER-2).

pub mod broker_configs;
mod broker_id;
mod command;
mod eligible;
pub mod preferred;
mod state;

pub use broker_id::{to_wire as broker_to_wire, BrokerId};
pub use command::{
    CommandEnvelope, ConsumerGroupRecord, CopyRef, Endpoint, GroupRecord, MemberRecord,
    MetadataCommand, OffsetCommit, COMMAND_VERSION,
};
pub use state::{
    collision, ApplyOutcome, BrokerInfo, CommittedOffset, MetadataState, PartitionInfo, Snapshot,
    TopicInfo, SNAPSHOT_VERSION,
};
