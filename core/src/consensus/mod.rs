//! The metadata Raft group: durable Raft storage and the deterministic node core
//! that owns the `raft::RawNode`. One node is a one-voter group on this same path.

mod node;
mod wal;

pub use node::{MetadataNode, NodeConfig, NodeError, ProposeError, RaftObservation, ReadyOutput};
pub use wal::{RaftStore, RaftWal};
