//! Chronik: a Kafka-compatible broker.
//!
//! The partition log ([`log`]) sits on the storage seam ([`disk`]) so the same code
//! runs on real files and on the simulated disk the crash tests use.

pub mod alloc_guard;
// loom checks only the log; the network-facing modules stay out of its build.
#[cfg(not(feature = "loom"))]
pub mod broker;
#[cfg(not(feature = "loom"))]
pub mod check_data;
#[cfg(not(feature = "loom"))]
pub mod cluster;
pub mod consensus;
pub mod disk;
#[cfg(not(feature = "loom"))]
pub mod groups;
#[cfg(not(feature = "loom"))]
pub mod kafka;
pub mod log;
pub mod metadata;
pub(crate) mod sync;
