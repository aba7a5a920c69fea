//! The metadata Raft group: durable Raft storage and the deterministic node core
//! that owns the `raft::RawNode`. One node is a one-voter group on this same path.

mod driver;
mod node;
mod peer;
mod raft_trace;
mod vote;
mod wal;

pub use driver::{
    elect_sole_voter, Driver, DriverBugs, DriverConfig, Effect, Input, MetadataView, Pacing,
    ProposalFailure, Registration,
};
pub use node::{
    ApplyTap, MetadataNode, NodeConfig, NodeError, ProposeError, RaftObservation, RaftPosition,
    ReadyOutput,
};
pub use peer::{ForwardOutcome, PeerMessage};
pub use raft_trace::{entry_digest, Mark, RaftSeen, RaftTraceEvent, RaftTraceLine};
pub use wal::{
    refuse_partition_data_without_metadata, EntryRecords, OrphanedData, RaftStore, RaftWal,
    KIND_ENTRY,
};
