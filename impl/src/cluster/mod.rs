//! What makes several nodes one cluster: the peer transport (Raft messages and
//! forwarded proposals), the controller's liveness tracking, and partition
//! replication between brokers.

pub mod transport;

pub use transport::{ForwardOutcome, Inbound, PeerMessage, PeerSecurity, Transport};
pub mod client;
