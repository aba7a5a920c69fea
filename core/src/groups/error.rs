//! The Kafka error codes a group coordinator answers with, as a type, so a decision
//! cannot return a code that means something else.

use crate::errors::{self, ErrorCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    CoordinatorNotAvailable,
    NotCoordinator,
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
    pub fn code(self) -> ErrorCode {
        match self {
            GroupError::CoordinatorNotAvailable => errors::COORDINATOR_NOT_AVAILABLE,
            GroupError::NotCoordinator => errors::NOT_COORDINATOR,
            GroupError::IllegalGeneration => errors::ILLEGAL_GENERATION,
            GroupError::InconsistentGroupProtocol => errors::INCONSISTENT_GROUP_PROTOCOL,
            GroupError::InvalidGroupId => errors::INVALID_GROUP_ID,
            GroupError::UnknownMemberId => errors::UNKNOWN_MEMBER_ID,
            GroupError::InvalidSessionTimeout => errors::INVALID_SESSION_TIMEOUT,
            GroupError::RebalanceInProgress => errors::REBALANCE_IN_PROGRESS,
            GroupError::NonEmptyGroup => errors::NON_EMPTY_GROUP,
            GroupError::GroupIdNotFound => errors::GROUP_ID_NOT_FOUND,
            GroupError::MemberIdRequired => errors::MEMBER_ID_REQUIRED,
            GroupError::FencedInstanceId => errors::FENCED_INSTANCE_ID,
            GroupError::GroupMaxSizeReached => errors::GROUP_MAX_SIZE_REACHED,
            GroupError::GroupSubscribedToTopic => errors::GROUP_SUBSCRIBED_TO_TOPIC,
        }
    }
}

/// `Ok` as 0, an error as its code.
pub fn code_of<T>(result: &Result<T, GroupError>) -> ErrorCode {
    result.as_ref().err().map_or(errors::NONE, |e| e.code())
}
