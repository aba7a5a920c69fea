//! The Kafka wire between the simulated clients and the nodes: what a client asks
//! (Produce, Fetch, DeleteRecords) travels as a Kafka request frame, which the node
//! decodes with the broker's own codec (`chronik_protocol::codec`); what it answers
//! is encoded by that codec and decoded by the client with kafka-protocol, as a
//! Kafka client library would. So every record a simulated producer writes and a
//! consumer reads has gone through the real framing, headers and message schemas.

pub use crate::message::{Asked, Message};
use bytes::{Buf, Bytes, BytesMut};
use chronik_core::errors;
use chronik_core::replication::PartitionKey;
use chronik_protocol::codec::{self, Decoded};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, FetchResponse,
    ProduceRequest, ProduceResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The versions the simulated clients speak: the newest that name topics by name.
pub const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const DELETE_RECORDS_VERSION: i16 = 2;
/// What a client waits for at most, as its request says.
const CLIENT_TIMEOUT_MS: i32 = 30_000;
const CLIENT_ID: &str = "chronik-sim";

/// The frame a client sends for `message` (a Produce, a consumer's Fetch or a
/// DeleteRecords), or `None` for anything else, which does not come from clients.
pub fn encode_request(message: &Message) -> Option<Result<Message, String>> {
    let (request, api, version, body) = match message {
        Message::Produce {
            request,
            key,
            records,
        } => (
            *request,
            ApiKey::Produce,
            PRODUCE_VERSION,
            RequestKind::Produce(produce_request(key, records)),
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

fn produce_request(key: &PartitionKey, records: &[u8]) -> ProduceRequest {
    let partition = PartitionProduceData::default()
        .with_index(key.1)
        .with_records(Some(Bytes::copy_from_slice(records)));
    let topic = TopicProduceData::default()
        .with_name(topic_name(key))
        .with_partition_data(vec![partition]);
    ProduceRequest::default()
        .with_acks(-1)
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
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
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
            let message = Message::ConsumerFetch {
                request,
                key: key.clone(),
                offset,
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
    };
    Ok((message, asked))
}

/// The node's answer to a client, encoded by the broker's codec as `asked` calls for.
pub fn encode_answer(answer: &Message, asked: &Asked) -> Result<Message, String> {
    let name = topic_name(&asked.key);
    let partition = asked.key.1;
    let (request, body) = match answer {
        Message::ProduceAnswer { request, result } => {
            let (error_code, base_offset) = split(result);
            let answered = PartitionProduceResponse::default()
                .with_index(partition)
                .with_error_code(error_code)
                .with_base_offset(base_offset);
            let topic = TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(vec![answered]);
            let body = ProduceResponse::default().with_responses(vec![topic]);
            (*request, ResponseKind::Produce(body))
        }
        Message::ConsumerFetchAnswer {
            request,
            answer,
            log_start,
        } => {
            let (error_code, records) = match answer {
                Ok(records) => (errors::NONE, Some(Bytes::copy_from_slice(records))),
                Err(code) => (*code, None),
            };
            let answered = PartitionData::default()
                .with_partition_index(partition)
                .with_error_code(error_code)
                .with_log_start_offset(*log_start as i64)
                .with_records(records);
            let topic = FetchableTopicResponse::default()
                .with_topic(name)
                .with_partitions(vec![answered]);
            let body = FetchResponse::default().with_responses(vec![topic]);
            (*request, ResponseKind::Fetch(body))
        }
        Message::DeleteRecordsAnswer { request, result } => {
            let (error_code, low_watermark) = split(result);
            let answered = DeleteRecordsPartitionResult::default()
                .with_partition_index(partition)
                .with_error_code(error_code)
                .with_low_watermark(low_watermark);
            let topic = DeleteRecordsTopicResult::default()
                .with_name(name)
                .with_partitions(vec![answered]);
            let body = DeleteRecordsResponse::default().with_topics(vec![topic]);
            (*request, ResponseKind::DeleteRecords(body))
        }
        other => return Err(format!("{other:?} is not an answer to a client")),
    };
    let frame = codec::encode_response(asked.api, asked.version, asked.correlation_id, &body)?;
    Ok(Message::KafkaAnswer {
        request,
        asked: asked.clone(),
        frame,
    })
}

/// Kafka's shape of a result: the error code, and the offset or -1.
fn split(result: &Result<u64, i16>) -> (i16, i64) {
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
            let answer = match p.error_code {
                errors::NONE => Ok(p.records.as_deref().unwrap_or_default().to_vec()),
                code => Err(code),
            };
            Message::ConsumerFetchAnswer {
                request,
                answer,
                log_start: u64::try_from(p.log_start_offset).map_err(|e| e.to_string())?,
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

fn joined(error_code: i16, offset: i64) -> Result<Result<u64, i16>, String> {
    if error_code != errors::NONE {
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

    /// A client's request decoded by the broker's codec into what it sent, and the
    /// node's answer encoded by that codec decoded by the client into what it said.
    fn round_trip(sent: Message, answer: impl Fn(u64) -> Message) {
        let framed = encode_request(&sent)
            .expect("a client request")
            .expect("encoded");
        let Message::KafkaRequest { request, frame } = framed else {
            panic!("not a frame: {framed:?}");
        };
        let (decoded, asked) = decode_request(request, frame).expect("decoded");
        assert_eq!(format!("{decoded:?}"), format!("{sent:?}"));
        assert_eq!(asked.key, key());
        let answered = answer(request);
        let encoded = encode_answer(&answered, &asked).expect("encoded answer");
        let Message::KafkaAnswer { frame, .. } = encoded else {
            panic!("not an answer frame: {encoded:?}");
        };
        let back = decode_answer(request, &asked, &frame).expect("decoded answer");
        assert_eq!(format!("{back:?}"), format!("{answered:?}"));
    }

    #[test]
    fn requests_and_answers_survive_the_brokers_codec() {
        let request = (7u64 << 40) + 3;
        round_trip(
            Message::Produce {
                request,
                key: key(),
                records: vec![1, 2, 3],
            },
            |request| Message::ProduceAnswer {
                request,
                result: Ok(41),
            },
        );
        round_trip(
            Message::ConsumerFetch {
                request,
                key: key(),
                offset: 12,
            },
            |request| Message::ConsumerFetchAnswer {
                request,
                answer: Err(errors::OFFSET_OUT_OF_RANGE),
                log_start: 20,
            },
        );
        round_trip(
            Message::DeleteRecords {
                request,
                key: key(),
                offset: -1,
            },
            |request| Message::DeleteRecordsAnswer {
                request,
                result: Err(errors::REQUEST_TIMED_OUT),
            },
        );
    }

    #[test]
    fn a_frame_the_codec_refuses_is_an_error_not_a_panic() {
        let refused = decode_request(1, Bytes::from_static(&[0, 0, 0]));
        assert!(refused.is_err());
        let asked = Asked {
            api: ApiKey::Produce,
            version: PRODUCE_VERSION,
            correlation_id: 1,
            key: key(),
        };
        let lying_size = Bytes::from_static(&[0, 0, 0, 9, 0, 0, 0, 1]);
        assert!(decode_answer(1, &asked, &lying_size).is_err());
    }
}
