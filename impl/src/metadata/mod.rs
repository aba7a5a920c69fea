//! The replicated metadata lives in the core (`chronik_core::metadata`).

pub use chronik_core::metadata::*;
