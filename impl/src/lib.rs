//! Chronik: a Kafka-compatible broker.
//!
//! The partition log ([`log`]) sits on the storage seam ([`disk`]) so the same code
//! runs on real files and on the simulated disk the crash tests use.

pub mod alloc_guard;
pub mod broker;
pub mod consensus;
pub mod disk;
pub mod groups;
pub mod kafka;
pub mod log;
pub mod metadata;
pub(crate) mod sync;
