//! The metadata Raft group lives in the core (`chronik_core::consensus`).

pub use chronik_core::consensus::*;
