//! Kafka error codes, typed, and the mapping of log errors onto them.

use crate::log::LogError;
use serde::{Deserialize, Serialize};

/// A Kafka error code (the protocol's INT16 `error_code`). Typed so that it cannot be
/// mixed up with the other INT16s of a request (acks, API versions, producer
/// epochs); it becomes a bare `i16` only where a message is encoded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ErrorCode(i16);

impl ErrorCode {
    /// The code a message carries.
    pub const fn from_wire(code: i16) -> ErrorCode {
        ErrorCode(code)
    }

    /// The code to put in a message.
    pub const fn code(self) -> i16 {
        self.0
    }

    pub const fn is_error(self) -> bool {
        self.0 != 0
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub const UNKNOWN_SERVER_ERROR: ErrorCode = ErrorCode(-1);
pub const NONE: ErrorCode = ErrorCode(0);
pub const OFFSET_OUT_OF_RANGE: ErrorCode = ErrorCode(1);
pub const CORRUPT_MESSAGE: ErrorCode = ErrorCode(2);
pub const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = ErrorCode(3);
pub const LEADER_NOT_AVAILABLE: ErrorCode = ErrorCode(5);
pub const NOT_LEADER_OR_FOLLOWER: ErrorCode = ErrorCode(6);
pub const REQUEST_TIMED_OUT: ErrorCode = ErrorCode(7);
pub const MESSAGE_TOO_LARGE: ErrorCode = ErrorCode(10);
pub const OFFSET_METADATA_TOO_LARGE: ErrorCode = ErrorCode(12);
pub const COORDINATOR_NOT_AVAILABLE: ErrorCode = ErrorCode(15);
pub const NOT_COORDINATOR: ErrorCode = ErrorCode(16);
pub const INVALID_TOPIC_EXCEPTION: ErrorCode = ErrorCode(17);
pub const RECORD_LIST_TOO_LARGE: ErrorCode = ErrorCode(18);
pub const NOT_ENOUGH_REPLICAS: ErrorCode = ErrorCode(19);
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode = ErrorCode(20);
pub const INVALID_REQUIRED_ACKS: ErrorCode = ErrorCode(21);
pub const ILLEGAL_GENERATION: ErrorCode = ErrorCode(22);
pub const INCONSISTENT_GROUP_PROTOCOL: ErrorCode = ErrorCode(23);
pub const INVALID_GROUP_ID: ErrorCode = ErrorCode(24);
pub const UNKNOWN_MEMBER_ID: ErrorCode = ErrorCode(25);
pub const INVALID_SESSION_TIMEOUT: ErrorCode = ErrorCode(26);
pub const REBALANCE_IN_PROGRESS: ErrorCode = ErrorCode(27);
pub const TOPIC_AUTHORIZATION_FAILED: ErrorCode = ErrorCode(29);
pub const GROUP_AUTHORIZATION_FAILED: ErrorCode = ErrorCode(30);
pub const CLUSTER_AUTHORIZATION_FAILED: ErrorCode = ErrorCode(31);
pub const INVALID_TIMESTAMP: ErrorCode = ErrorCode(32);
pub const UNSUPPORTED_SASL_MECHANISM: ErrorCode = ErrorCode(33);
pub const ILLEGAL_SASL_STATE: ErrorCode = ErrorCode(34);
pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(35);
pub const TOPIC_ALREADY_EXISTS: ErrorCode = ErrorCode(36);
pub const INVALID_PARTITIONS: ErrorCode = ErrorCode(37);
pub const INVALID_REPLICATION_FACTOR: ErrorCode = ErrorCode(38);
pub const INVALID_REPLICA_ASSIGNMENT: ErrorCode = ErrorCode(39);
pub const INVALID_CONFIG: ErrorCode = ErrorCode(40);
pub const NOT_CONTROLLER: ErrorCode = ErrorCode(41);
pub const INVALID_REQUEST: ErrorCode = ErrorCode(42);
pub const POLICY_VIOLATION: ErrorCode = ErrorCode(44);
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: ErrorCode = ErrorCode(45);
pub const INVALID_PRODUCER_EPOCH: ErrorCode = ErrorCode(47);
pub const INVALID_TXN_STATE: ErrorCode = ErrorCode(48);
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: ErrorCode = ErrorCode(53);
pub const SECURITY_DISABLED: ErrorCode = ErrorCode(54);
pub const KAFKA_STORAGE_ERROR: ErrorCode = ErrorCode(56);
pub const SASL_AUTHENTICATION_FAILED: ErrorCode = ErrorCode(58);
pub const NON_EMPTY_GROUP: ErrorCode = ErrorCode(68);
pub const GROUP_ID_NOT_FOUND: ErrorCode = ErrorCode(69);
pub const FENCED_LEADER_EPOCH: ErrorCode = ErrorCode(74);
pub const UNKNOWN_LEADER_EPOCH: ErrorCode = ErrorCode(75);
pub const UNSUPPORTED_COMPRESSION_TYPE: ErrorCode = ErrorCode(76);
pub const STALE_BROKER_EPOCH: ErrorCode = ErrorCode(77);
pub const OFFSET_NOT_AVAILABLE: ErrorCode = ErrorCode(78);
pub const MEMBER_ID_REQUIRED: ErrorCode = ErrorCode(79);
pub const PREFERRED_LEADER_NOT_AVAILABLE: ErrorCode = ErrorCode(80);
pub const GROUP_MAX_SIZE_REACHED: ErrorCode = ErrorCode(81);
pub const FENCED_INSTANCE_ID: ErrorCode = ErrorCode(82);
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: ErrorCode = ErrorCode(83);
pub const ELECTION_NOT_NEEDED: ErrorCode = ErrorCode(84);
pub const GROUP_SUBSCRIBED_TO_TOPIC: ErrorCode = ErrorCode(86);
pub const INVALID_RECORD: ErrorCode = ErrorCode(87);
pub const RESOURCE_NOT_FOUND: ErrorCode = ErrorCode(91);
pub const DUPLICATE_RESOURCE: ErrorCode = ErrorCode(92);
pub const UNACCEPTABLE_CREDENTIAL: ErrorCode = ErrorCode(93);
pub const INVALID_UPDATE_VERSION: ErrorCode = ErrorCode(95);
pub const UNKNOWN_TOPIC_ID: ErrorCode = ErrorCode(100);
pub const FENCED_MEMBER_EPOCH: ErrorCode = ErrorCode(110);
pub const UNRELEASED_INSTANCE_ID: ErrorCode = ErrorCode(111);
pub const UNSUPPORTED_ASSIGNOR: ErrorCode = ErrorCode(112);
pub const STALE_MEMBER_EPOCH: ErrorCode = ErrorCode(113);

/// The error code a client gets for a failed append or read.
pub fn from_log_error(error: &LogError) -> ErrorCode {
    match error {
        LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        LogError::InvalidBatch(_) => CORRUPT_MESSAGE,
        LogError::InvalidRecord(_) => INVALID_RECORD,
        LogError::BatchTooLarge { .. } => MESSAGE_TOO_LARGE,
        LogError::ShuttingDown => REQUEST_TIMED_OUT,
        LogError::DuplicateSequence { .. } => NONE,
        LogError::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
        LogError::Config(_) => INVALID_CONFIG,
        LogError::Io { .. }
        | LogError::Corrupt { .. }
        | LogError::Damaged { .. }
        | LogError::CorruptCheckpoint { .. }
        | LogError::Offline { .. } => KAFKA_STORAGE_ERROR,
    }
}
