//! The parts of the log format the core's own storage (the metadata Raft log) shares
//! with the partition log in the shell: the checksummed frame, the frame reader that
//! tells a torn tail from damage, and the storage error type.

pub mod error;
pub mod frame;
pub mod frame_reader;

pub use error::{LogError, Result};
