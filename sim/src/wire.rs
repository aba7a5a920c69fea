//! The Kafka wire between the simulated clients and the nodes, and between
//! replicas: what a client asks (Produce, Fetch, DeleteRecords) and what a follower
//! asks its leader (Fetch, OffsetForLeaderEpoch) travels as a Kafka request frame,
//! which the node decodes with the broker's own codec (`chronik_protocol::codec`);
//! what it answers is encoded by that codec and decoded by the asker with
//! kafka-protocol, as a Kafka client library (or the broker's replica fetcher) would.
//! So every record a simulated producer writes, a follower copies and a consumer reads
//! has gone through the real framing, headers and message schemas.

pub use crate::message::{Asked, Message};
use bytes::{Buf, Bytes, BytesMut};
use chronik_core::errors::{self, ErrorCode};
use chronik_core::replication::{Fetched, PartitionKey};
use chronik_protocol::codec::{self, Decoded};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, FetchResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    RequestHeader, RequestKind, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The versions the simulated clients speak: the newest that name topics by name.
pub const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const DELETE_RECORDS_VERSION: i16 = 2;
/// The replica fetcher's version towards a leader that names topics by name.
const REPLICA_FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// What a follower asks for per fetch.
const REPLICA_FETCH_MAX_BYTES: i32 = 64 << 10;
/// What a client waits for at most, as its request says.
const CLIENT_TIMEOUT_MS: i32 = 30_000;
const CLIENT_ID: &str = "chronik-sim";

/// The frame `replica` (-1: a client) sends for `message`, numbered `number` unless
/// the message carries its client's request number; `None` for an answer.
pub fn encode_request(
    message: &Message,
    number: u64,
    replica: i32,
) -> Option<Result<Message, String>> {
    let (request, api, version, body) = match message {
        Message::Fetch {
            key,
            epoch,
            offset,
            log_start,
        } => (
            number,
            ApiKey::Fetch,
            REPLICA_FETCH_VERSION,
            RequestKind::Fetch(replica_fetch_request(
                replica, key, *epoch, *offset, *log_start,
            )),
        ),
        Message::EpochQuery {
            key,
            current_epoch,
            asked,
        } => (
            number,
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            RequestKind::OffsetForLeaderEpoch(epoch_request(replica, key, *current_epoch, *asked)),
        ),
        Message::Produce {
            request,
            key,
            acks,
            records,
        } => (
            *request,
            ApiKey::Produce,
            PRODUCE_VERSION,
            RequestKind::Produce(produce_request(key, *acks, records)),
        ),
        Message::ConsumerFetch {
            request,
            key,
            offset,
        } => (
            *request,
            ApiKey::Fetch,
            FETCH_VERSION,
            RequestKind::Fetch(fetch_request(key, *offset)),
        ),
        Message::DeleteRecords {
            request,
            key,
            offset,
        } => (
            *request,
            ApiKey::DeleteRecords,
            DELETE_RECORDS_VERSION,
            RequestKind::DeleteRecords(delete_records_request(key, *offset)),
        ),
        _ => return None,
    };
    let correlation_id = correlation_of(request);
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = BytesMut::new();
    let encoded = header
        .encode(&mut frame, api.request_header_version(version))
        .and_then(|()| body.encode(&mut frame, version));
    Some(
        encoded
            .map(|()| Message::KafkaRequest {
                request,
                frame: frame.freeze(),
            })
            .map_err(|e| format!("encode {api:?} v{version}: {e}")),
    )
}

/// A Kafka connection numbers its requests with an i32; the simulator's request
/// numbers are wider, and only need to differ between requests in flight.
fn correlation_of(request: u64) -> i32 {
    (request % i32::MAX as u64) as i32
}

fn topic_name(key: &PartitionKey) -> TopicName {
    TopicName(StrBytes::from_string(key.0.clone()))
}

fn produce_request(key: &PartitionKey, acks: i16, records: &[u8]) -> ProduceRequest {
    let partition = PartitionProduceData::default()
        .with_index(key.1)
        .with_records(Some(Bytes::copy_from_slice(records)));
    let topic = TopicProduceData::default()
        .with_name(topic_name(key))
        .with_partition_data(vec![partition]);
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(CLIENT_TIMEOUT_MS)
        .with_topic_data(vec![topic])
}

fn fetch_request(key: &PartitionKey, offset: u64) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(key.1)
        .with_fetch_offset(offset as i64)
        .with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default()
        .with_topic(topic_name(key))
        .with_partitions(vec![partition]);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![topic])
}

/// As the broker's replica fetcher asks (`broker/replica_fetcher.rs`).
fn replica_fetch_request(
    replica: i32,
    key: &PartitionKey,
    epoch: i32,
    offset: u64,
    log_start: u64,
) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(key.1)
        .with_current_leader_epoch(epoch)
        .with_fetch_offset(offset as i64)
        .with_log_start_offset(log_start as i64)
        .with_partition_max_bytes(REPLICA_FETCH_MAX_BYTES);
    let topic = FetchTopic::default()
        .with_topic(topic_name(key))
        .with_partitions(vec![partition]);
    FetchRequest::default()
        .with_replica_id(BrokerId(replica))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(REPLICA_FETCH_MAX_BYTES)
        .with_session_epoch(-1)
        .with_topics(vec![topic])
}

fn epoch_request(
    replica: i32,
    key: &PartitionKey,
    current_epoch: i32,
    asked: i32,
) -> OffsetForLeaderEpochRequest {
    let partition = OffsetForLeaderPartition::default()
        .with_partition(key.1)
        .with_current_leader_epoch(current_epoch)
        .with_leader_epoch(asked);
    let topic = OffsetForLeaderTopic::default()
        .with_topic(topic_name(key))
        .with_partitions(vec![partition]);
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(replica))
        .with_topics(vec![topic])
}

fn delete_records_request(key: &PartitionKey, offset: i64) -> DeleteRecordsRequest {
    let partition = DeleteRecordsPartition::default()
        .with_partition_index(key.1)
        .with_offset(offset);
    let topic = DeleteRecordsTopic::default()
        .with_name(topic_name(key))
        .with_partitions(vec![partition]);
    DeleteRecordsRequest::default()
        .with_timeout_ms(CLIENT_TIMEOUT_MS)
        .with_topics(vec![topic])
}

/// The node's side: the frame decoded by the broker's codec into the request it
/// carries, and what the answer must be encoded as. A frame the codec refuses, or a
/// request about other than one partition, is an error: the broker would close the
/// connection.
pub fn decode_request(request: u64, frame: Bytes) -> Result<(Message, Asked), String> {
    let decoded = match codec::decode_request(frame).map_err(|e| e.to_string())? {
        Decoded::Request(decoded) => decoded,
        Decoded::Answer(_) => return Err("answered by the codec alone".into()),
    };
    let (api, version) = (decoded.api_key, decoded.version);
    let correlation_id = decoded.header.correlation_id;
    let one = |topics: usize, partitions: usize| {
        (topics == 1 && partitions == 1)
            .then_some(())
            .ok_or_else(|| format!("{api:?} for {topics} topics, {partitions} partitions"))
    };
    let mut replica_epoch = None;
    let (message, key) = match decoded.body {
        RequestKind::Produce(body) => {
            let topic = body.topic_data.first();
            let partitions = topic.map_or(0, |t| t.partition_data.len());
            one(body.topic_data.len(), partitions)?;
            let (topic, partition) = topic
                .and_then(|t| Some((t, t.partition_data.first()?)))
                .ok_or("empty Produce")?;
            let key = (topic.name.0.to_string(), partition.index);
            let records = partition.records.as_deref().unwrap_or_default().to_vec();
            let message = Message::Produce {
                request,
                key: key.clone(),
                acks: body.acks,
                records,
            };
            (message, key)
        }
        RequestKind::Fetch(body) => {
            let topic = body.topics.first();
            one(body.topics.len(), topic.map_or(0, |t| t.partitions.len()))?;
            let (topic, partition) = topic
                .and_then(|t| Some((t, t.partitions.first()?)))
                .ok_or("empty Fetch")?;
            let key = (topic.topic.0.to_string(), partition.partition);
            let offset = u64::try_from(partition.fetch_offset).map_err(|e| e.to_string())?;
            let message = if body.replica_id.0 >= 0 {
                let epoch = partition.current_leader_epoch;
                replica_epoch = Some(epoch);
                Message::Fetch {
                    key: key.clone(),
                    epoch,
                    offset,
                    log_start: u64::try_from(partition.log_start_offset)
                        .map_err(|e| e.to_string())?,
                }
            } else {
                Message::ConsumerFetch {
                    request,
                    key: key.clone(),
                    offset,
                }
            };
            (message, key)
        }
        RequestKind::OffsetForLeaderEpoch(body) => {
            let topic = body.topics.first();
            one(body.topics.len(), topic.map_or(0, |t| t.partitions.len()))?;
            let (topic, partition) = topic
                .and_then(|t| Some((t, t.partitions.first()?)))
                .ok_or("empty OffsetForLeaderEpoch")?;
            let key = (topic.topic.0.to_string(), partition.partition);
            replica_epoch = Some(partition.current_leader_epoch);
            let message = Message::EpochQuery {
                key: key.clone(),
                current_epoch: partition.current_leader_epoch,
                asked: partition.leader_epoch,
            };
            (message, key)
        }
        RequestKind::DeleteRecords(body) => {
            let topic = body.topics.first();
            one(body.topics.len(), topic.map_or(0, |t| t.partitions.len()))?;
            let (topic, partition) = topic
                .and_then(|t| Some((t, t.partitions.first()?)))
                .ok_or("empty DeleteRecords")?;
            let key = (topic.name.0.to_string(), partition.partition_index);
            let message = Message::DeleteRecords {
                request,
                key: key.clone(),
                offset: partition.offset,
            };
            (message, key)
        }
        other => {
            return Err(format!(
                "{:?} does not come from the simulated clients",
                other
            ))
        }
    };
    let asked = Asked {
        api,
        version,
        correlation_id,
        key,
        replica_epoch,
    };
    Ok((message, asked))
}

/// The node's answer to request `request`, encoded by the broker's codec as `asked`
/// calls for.
pub fn encode_answer(request: u64, answer: &Message, asked: &Asked) -> Result<Message, String> {
    let name = topic_name(&asked.key);
    let partition = asked.key.1;
    let body = match answer {
        Message::FetchAnswer {
            answer,
            leader_start,
            ..
        } => {
            let answered = PartitionData::default()
                .with_partition_index(partition)
                .with_log_start_offset(*leader_start as i64);
            let answered = match answer {
                Ok(fetched) => answered
                    .with_high_watermark(fetched.high_watermark)
                    .with_records(fetched.records.clone()),
                Err(code) => answered
                    .with_error_code(code.code())
                    .with_high_watermark(-1),
            };
            let topic = FetchableTopicResponse::default()
                .with_topic(name)
                .with_partitions(vec![answered]);
            ResponseKind::Fetch(FetchResponse::default().with_responses(vec![topic]))
        }
        Message::EpochAnswer { answer, .. } => {
            let (error_code, leader_epoch, end_offset) = match answer {
                Ok((epoch, end)) => (errors::NONE, *epoch, *end as i64),
                Err(code) => (*code, -1, -1),
            };
            let answered = EpochEndOffset::default()
                .with_partition(partition)
                .with_error_code(error_code.code())
                .with_leader_epoch(leader_epoch)
                .with_end_offset(end_offset);
            let topic = OffsetForLeaderTopicResult::default()
                .with_topic(name)
                .with_partitions(vec![answered]);
            let body = OffsetForLeaderEpochResponse::default().with_topics(vec![topic]);
            ResponseKind::OffsetForLeaderEpoch(body)
        }
        Message::ProduceAnswer { result, .. } => {
            let (error_code, base_offset) = split(result);
            let answered = PartitionProduceResponse::default()
                .with_index(partition)
                .with_error_code(error_code.code())
                .with_base_offset(base_offset);
            let topic = TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(vec![answered]);
            let body = ProduceResponse::default().with_responses(vec![topic]);
            ResponseKind::Produce(body)
        }
        Message::ConsumerFetchAnswer {
            answer, log_start, ..
        } => {
            let (error_code, records) = match answer {
                Ok(records) => (errors::NONE, Some(Bytes::copy_from_slice(records))),
                Err(code) => (*code, None),
            };
            let answered = PartitionData::default()
                .with_partition_index(partition)
                .with_error_code(error_code.code())
                .with_log_start_offset(*log_start as i64)
                .with_records(records);
            let topic = FetchableTopicResponse::default()
                .with_topic(name)
                .with_partitions(vec![answered]);
            let body = FetchResponse::default().with_responses(vec![topic]);
            ResponseKind::Fetch(body)
        }
        Message::DeleteRecordsAnswer { result, .. } => {
            let (error_code, low_watermark) = split(result);
            let answered = DeleteRecordsPartitionResult::default()
                .with_partition_index(partition)
                .with_error_code(error_code.code())
                .with_low_watermark(low_watermark);
            let topic = DeleteRecordsTopicResult::default()
                .with_name(name)
                .with_partitions(vec![answered]);
            let body = DeleteRecordsResponse::default().with_topics(vec![topic]);
            ResponseKind::DeleteRecords(body)
        }
        other => return Err(format!("{other:?} is not an answer")),
    };
    let frame = codec::encode_response(asked.api, asked.version, asked.correlation_id, &body)?;
    Ok(Message::KafkaAnswer {
        request,
        asked: asked.clone(),
        frame,
    })
}

/// Kafka's shape of a result: the error code, and the offset or -1.
fn split(result: &Result<u64, ErrorCode>) -> (ErrorCode, i64) {
    match result {
        Ok(offset) => (errors::NONE, *offset as i64),
        Err(code) => (*code, -1),
    }
}

/// The client's side: the answer frame (size prefix included) decoded as a Kafka
/// client library decodes it, back into the answer it carries.
pub fn decode_answer(request: u64, asked: &Asked, frame: &Bytes) -> Result<Message, String> {
    let mut buf = frame.clone();
    if buf.len() < 4 {
        return Err("frame without its size".into());
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    buf.advance(4);
    if size as usize != buf.len() {
        return Err(format!("size {size} for {} bytes", buf.len()));
    }
    let (api, version) = (asked.api, asked.version);
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
        .map_err(|e| format!("{api:?} v{version} header: {e}"))?;
    if header.correlation_id != asked.correlation_id {
        return Err(format!(
            "correlation id {} answers {}",
            header.correlation_id, asked.correlation_id
        ));
    }
    let body = ResponseKind::decode(api, &mut buf, version)
        .map_err(|e| format!("{api:?} v{version}: {e}"))?;
    let answer = match body {
        ResponseKind::Produce(body) => {
            let p = body
                .responses
                .first()
                .and_then(|t| t.partition_responses.first())
                .ok_or("Produce answer without its partition")?;
            Message::ProduceAnswer {
                request,
                result: joined(p.error_code, p.base_offset)?,
            }
        }
        ResponseKind::Fetch(body) => {
            let p = body
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or("Fetch answer without its partition")?;
            let log_start = u64::try_from(p.log_start_offset).map_err(|e| e.to_string())?;
            match asked.replica_epoch {
                Some(epoch) => Message::FetchAnswer {
                    key: asked.key.clone(),
                    epoch,
                    answer: match ErrorCode::from_wire(p.error_code) {
                        errors::NONE => Ok(Fetched {
                            records: p.records.clone(),
                            high_watermark: p.high_watermark,
                            log_start_offset: p.log_start_offset,
                        }),
                        code => Err(code),
                    },
                    leader_start: log_start,
                },
                None => Message::ConsumerFetchAnswer {
                    request,
                    answer: match ErrorCode::from_wire(p.error_code) {
                        errors::NONE => Ok(p.records.as_deref().unwrap_or_default().to_vec()),
                        code => Err(code),
                    },
                    log_start,
                },
            }
        }
        ResponseKind::OffsetForLeaderEpoch(body) => {
            let p = body
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or("OffsetForLeaderEpoch answer without its partition")?;
            let answer = match ErrorCode::from_wire(p.error_code) {
                errors::NONE => {
                    let end = u64::try_from(p.end_offset).map_err(|e| e.to_string())?;
                    Ok((p.leader_epoch, end))
                }
                code => Err(code),
            };
            Message::EpochAnswer {
                key: asked.key.clone(),
                current_epoch: asked.replica_epoch.ok_or("an epoch answer nobody asked")?,
                answer,
            }
        }
        ResponseKind::DeleteRecords(body) => {
            let p = body
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or("DeleteRecords answer without its partition")?;
            Message::DeleteRecordsAnswer {
                request,
                result: joined(p.error_code, p.low_watermark)?,
            }
        }
        other => return Err(format!("unexpected answer {other:?}")),
    };
    Ok(answer)
}

fn joined(error_code: i16, offset: i64) -> Result<Result<u64, ErrorCode>, String> {
    let error_code = ErrorCode::from_wire(error_code);
    if error_code.is_error() {
        return Ok(Err(error_code));
    }
    u64::try_from(offset)
        .map(Ok)
        .map_err(|_| format!("offset {offset} with no error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PartitionKey {
        ("orders".to_string(), 1)
    }

    /// A request decoded by the broker's codec into what `replica` (-1: a client)
    /// sent, and the node's answer encoded by that codec decoded by the asker into
    /// what it said.
    fn round_trip(replica: i32, sent: Message, answer: Message) {
        let framed = encode_request(&sent, 5, replica)
            .expect("a request")
            .expect("encoded");
        let Message::KafkaRequest { request, frame } = framed else {
            panic!("not a frame: {framed:?}");
        };
        let (decoded, asked) = decode_request(request, frame).expect("decoded");
        assert_eq!(format!("{decoded:?}"), format!("{sent:?}"));
        assert_eq!(asked.key, key());
        let encoded = encode_answer(request, &answer, &asked).expect("encoded answer");
        let Message::KafkaAnswer { frame, .. } = encoded else {
            panic!("not an answer frame: {encoded:?}");
        };
        let back = decode_answer(request, &asked, &frame).expect("decoded answer");
        assert_eq!(format!("{back:?}"), format!("{answer:?}"));
    }

    #[test]
    fn r_wire_13_requests_and_answers_survive_the_brokers_codec() {
        let request = (7u64 << 40) + 3;
        round_trip(
            -1,
            Message::Produce {
                request,
                key: key(),
                acks: 1,
                records: vec![1, 2, 3],
            },
            Message::ProduceAnswer {
                request,
                result: Ok(41),
            },
        );
        round_trip(
            -1,
            Message::ConsumerFetch {
                request,
                key: key(),
                offset: 12,
            },
            Message::ConsumerFetchAnswer {
                request,
                answer: Err(errors::OFFSET_OUT_OF_RANGE),
                log_start: 20,
            },
        );
        round_trip(
            -1,
            Message::DeleteRecords {
                request,
                key: key(),
                offset: -1,
            },
            Message::DeleteRecordsAnswer {
                request,
                result: Err(errors::REQUEST_TIMED_OUT),
            },
        );
    }

    #[test]
    fn r_wire_13_a_replicas_questions_and_their_answers_survive_the_brokers_codec() {
        let fetched = Fetched {
            records: Some(Bytes::from_static(&[9, 8, 7])),
            high_watermark: 30,
            log_start_offset: 4,
        };
        let (epoch, offset, log_start) = (6, 25, 4);
        let fetch = Message::Fetch {
            key: key(),
            epoch,
            offset,
            log_start,
        };
        let answer = |answer| Message::FetchAnswer {
            key: key(),
            epoch,
            answer,
            leader_start: log_start,
        };
        round_trip(2, fetch.clone(), answer(Ok(fetched)));
        round_trip(2, fetch, answer(Err(errors::FENCED_LEADER_EPOCH)));
        let query = Message::EpochQuery {
            key: key(),
            current_epoch: epoch,
            asked: 4,
        };
        let answer = |answer| Message::EpochAnswer {
            key: key(),
            current_epoch: epoch,
            answer,
        };
        round_trip(3, query.clone(), answer(Ok((4, 19))));
        round_trip(3, query, answer(Err(errors::NOT_LEADER_OR_FOLLOWER)));
    }

    #[test]
    fn r_wire_13_a_frame_the_codec_refuses_is_an_error_not_a_panic() {
        let refused = decode_request(1, Bytes::from_static(&[0, 0, 0]));
        assert!(refused.is_err());
        let asked = Asked {
            api: ApiKey::Produce,
            version: PRODUCE_VERSION,
            correlation_id: 1,
            key: key(),
            replica_epoch: None,
        };
        let lying_size = Bytes::from_static(&[0, 0, 0, 9, 0, 0, 0, 1]);
        assert!(decode_answer(1, &asked, &lying_size).is_err());
    }
}
