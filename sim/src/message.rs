//! What the partition side of the simulation says: requests and answers between
//! nodes, and between clients and nodes (which `wire.rs` carries as Kafka frames).

use bytes::Bytes;
use chronik_core::errors::ErrorCode;
use chronik_core::replication::{Fetched, PartitionKey};
use kafka_protocol::messages::ApiKey;

/// A partition request or answer between nodes, or between a client and a node.
#[derive(Debug, Clone)]
pub enum Message {
    Produce {
        request: u64,
        key: PartitionKey,
        /// -1 (all) or 1 (the leader).
        acks: i16,
        /// The partition's records as a Produce request carries them.
        records: Vec<u8>,
    },
    ProduceAnswer {
        request: u64,
        result: Result<u64, ErrorCode>,
    },
    EpochQuery {
        key: PartitionKey,
        current_epoch: i32,
        asked: i32,
    },
    EpochAnswer {
        key: PartitionKey,
        current_epoch: i32,
        answer: Result<(i32, u64), ErrorCode>,
    },
    Fetch {
        key: PartitionKey,
        epoch: i32,
        offset: u64,
        log_start: u64,
    },
    FetchAnswer {
        key: PartitionKey,
        epoch: i32,
        answer: Result<Fetched, ErrorCode>,
        /// The leader's log start, also when the fetch is refused.
        leader_start: u64,
    },
    ConsumerFetch {
        request: u64,
        key: PartitionKey,
        offset: u64,
    },
    ConsumerFetchAnswer {
        request: u64,
        answer: Result<Vec<u8>, ErrorCode>,
        /// The leader's log start: where a consumer refused OFFSET_OUT_OF_RANGE
        /// below it resets to (a Kafka consumer's ListOffsets for "earliest",
        /// folded into the answer).
        log_start: u64,
    },
    /// DeleteRecords of the records below `offset` (-1: the high watermark).
    DeleteRecords {
        request: u64,
        key: PartitionKey,
        offset: i64,
    },
    /// The low watermark, or the error code.
    DeleteRecordsAnswer {
        request: u64,
        result: Result<u64, ErrorCode>,
    },
    /// A client's request as a Kafka request frame (`wire.rs`).
    KafkaRequest { request: u64, frame: Bytes },
    /// The node's answer as a Kafka response frame, with what the client's
    /// connection remembers of the request.
    KafkaAnswer {
        request: u64,
        asked: Asked,
        frame: Bytes,
    },
}

/// What a connection remembers of a request in flight: the API and version its
/// answer is encoded in, the partition it was about, and for a replica's Fetch or
/// OffsetForLeaderEpoch the leader epoch it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub key: PartitionKey,
    pub replica_epoch: Option<i32>,
}
