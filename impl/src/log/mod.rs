//! The partition log lives in the core (`chronik_core::log`); the shell adds the
//! flusher thread that runs its group commit rounds.

pub use chronik_core::log::*;
mod group_commit;

pub use group_commit::{CommitStats, GroupCommitter};
