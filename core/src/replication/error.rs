//! What can go wrong in a follower's replication step: its log refused a write, or
//! the leader's answer was not what a Fetch answer can be. Callers tell them apart:
//! a storage error takes the partition offline, a malformed answer is retried.

use crate::errors::{self, ErrorCode};
use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("malformed fetch answer: {0}")]
    MalformedAnswer(&'static str),
}

impl ReplicationError {
    /// The Kafka error code a client would get for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReplicationError::Log(e) => errors::from_log_error(e),
            ReplicationError::MalformedAnswer(_) => errors::CORRUPT_MESSAGE,
        }
    }
}
