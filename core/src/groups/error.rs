//! The Kafka error codes a group coordinator answers with, as a type, so a decision
//! cannot return a code that means something else.

use crate::errors;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    CoordinatorNotAvailable,
    IllegalGeneration,
    InconsistentGroupProtocol,
    InvalidGroupId,
    UnknownMemberId,
    InvalidSessionTimeout,
    RebalanceInProgress,
    NonEmptyGroup,
    GroupIdNotFound,
    MemberIdRequired,
    FencedInstanceId,
    GroupMaxSizeReached,
    GroupSubscribedToTopic,
}

impl GroupError {
    /// The code on the wire (Kafka's `Errors` enum).
    pub fn code(self) -> i16 {
        match self {
            GroupError::CoordinatorNotAvailable => errors::COORDINATOR_NOT_AVAILABLE,
            GroupError::IllegalGeneration => errors::ILLEGAL_GENERATION,
            GroupError::InconsistentGroupProtocol => 23,
            GroupError::InvalidGroupId => 24,
            GroupError::UnknownMemberId => errors::UNKNOWN_MEMBER_ID,
            GroupError::InvalidSessionTimeout => 26,
            GroupError::RebalanceInProgress => errors::REBALANCE_IN_PROGRESS,
            GroupError::NonEmptyGroup => 68,
            GroupError::GroupIdNotFound => 69,
            GroupError::MemberIdRequired => 79,
            GroupError::FencedInstanceId => 82,
            GroupError::GroupMaxSizeReached => 81,
            GroupError::GroupSubscribedToTopic => 86,
        }
    }
}

/// `Ok` as 0, an error as its code.
pub fn code_of<T>(result: &Result<T, GroupError>) -> i16 {
    result.as_ref().err().map_or(0, |e| e.code())
}
