//! Chronik: a Kafka-compatible broker.
//!
//! The partition log ([`log`]) sits on the storage seam ([`disk`]) so the same code
//! runs on real files and on the simulated disk the crash tests use.

pub mod alloc_guard;
// tokio compiles out its networking under loom, and loom checks only the log.
#[cfg(not(loom))]
pub mod broker;
#[cfg(not(loom))]
pub mod check_data;
#[cfg(not(loom))]
pub mod cluster;
pub mod consensus;
pub mod disk;
#[cfg(not(loom))]
pub mod groups;
#[cfg(not(loom))]
pub mod kafka;
pub mod log;
pub mod metadata;
pub(crate) mod sync;
