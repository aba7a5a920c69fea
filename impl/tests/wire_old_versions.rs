//! R-WIRE-13: the request versions Kafka 3.9 serves below Kafka 4's floor, each
//! built and read with kafka-protocol 0.15 (Kafka 3.9's schemas) at that version,
//! and message formats v0/v1 both ways. The broker runs in-process on a free port.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chronik::broker::{BrokerConfig, RunningBroker};
use chronik::log::batch::{self, Record};
use chronik::log::compression;
use kafka_protocol_39::messages::*;
use kafka_protocol_39::protocol::{Decodable, Encodable, StrBytes};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static ALLOCATOR: chronik::alloc_guard::GuardedAlloc = chronik::alloc_guard::GuardedAlloc;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Res<T> = Result<T, Box<dyn std::error::Error>>;

const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_RECORD: i16 = 87;

async fn start(
    adjust: impl FnOnce(&mut BrokerConfig),
) -> Res<(RunningBroker, tempfile::TempDir, Client)> {
    let dir = tempfile::tempdir()?;
    let mut config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        tick_ms: 10,
        ..BrokerConfig::default()
    };
    adjust(&mut config);
    let broker = common::start_broker(config).await?;
    let client = Client::connect(broker.local_addr()).await?;
    Ok((broker, dir, client))
}

/// A broker with a one-partition topic of `configs`, and a client.
async fn start_with_topic(
    topic: &str,
    configs: &[(&str, &str)],
) -> Res<(RunningBroker, tempfile::TempDir, Client)> {
    let (broker, dir, client) = start(|_| {}).await?;
    create_topic(&broker, topic, configs).await?;
    Ok((broker, dir, client))
}

/// A raw connection speaking Kafka 3.9's schemas at any version.
struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Res<Self> {
        Ok(Client {
            stream: TcpStream::connect(addr).await?,
            correlation: 0,
        })
    }

    async fn call(&mut self, version: i16, body: RequestKind) -> Res<ResponseKind> {
        let api = api_key_of(&body);
        self.correlation += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("old")))
            .encode(&mut buf, api.request_header_version(version))?;
        body.encode(&mut buf, version)?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).await?;
        let size = tokio::time::timeout(Duration::from_secs(10), self.stream.read_i32()).await??;
        let mut frame = vec![0u8; size as usize];
        self.stream.read_exact(&mut frame).await?;
        let mut bytes = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut bytes, api.response_header_version(version))?;
        assert_eq!(header.correlation_id, self.correlation);
        let response = ResponseKind::decode(api, &mut bytes, version)?;
        assert!(
            !bytes.has_remaining(),
            "{api:?} v{version}: bytes left over"
        );
        Ok(response)
    }
}

fn api_key_of(body: &RequestKind) -> ApiKey {
    match body {
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
        RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        RequestKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
        RequestKind::OffsetForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
        RequestKind::DescribeAcls(_) => ApiKey::DescribeAcls,
        RequestKind::CreateAcls(_) => ApiKey::CreateAcls,
        RequestKind::DeleteAcls(_) => ApiKey::DeleteAcls,
        RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::ConsumerGroupHeartbeat(_) => ApiKey::ConsumerGroupHeartbeat,
        RequestKind::ListGroups(_) => ApiKey::ListGroups,
        RequestKind::FindCoordinator(_) => ApiKey::FindCoordinator,
        RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
        RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
        RequestKind::DescribeLogDirs(_) => ApiKey::DescribeLogDirs,
        _ => ApiKey::ApiVersions,
    }
}

fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

async fn create_topic(broker: &RunningBroker, topic: &str, configs: &[(&str, &str)]) -> TestResult {
    broker
        .broker
        .consensus
        .propose(
            chronik::metadata::MetadataCommand::CreateTopic {
                name: topic.into(),
                topic_id: format!("{topic}-id"),
                partitions: vec![vec![1]],
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    broker.broker.reconcile_partitions();
    Ok(())
}

/// One message of magic 0 or 1 (a test's own encoder, so the broker's is checked
/// against something else).
fn message(
    offset: i64,
    magic: u8,
    attributes: u8,
    ts: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![magic, attributes];
    if magic == 1 {
        body.extend_from_slice(&ts.to_be_bytes());
    }
    for f in [key, value] {
        match f {
            Some(b) => {
                body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                body.extend_from_slice(b);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A compressed wrapper around `inner` (a message set), as old producers send it.
fn wrapper(magic: u8, codec: i16, ts: i64, last_offset: i64, inner: &[u8]) -> Res<Vec<u8>> {
    let packed = compression::compress(codec, inner)?;
    Ok(message(
        last_offset,
        magic,
        codec as u8,
        ts,
        None,
        Some(&packed),
    ))
}

/// A read message: (offset, magic, attributes, timestamp, key, value).
type Read = (i64, u8, u8, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Parses a v0/v1 message set, checking every CRC and unpacking compressed
/// wrappers (inner offsets made absolute as Kafka's clients do).
fn read_messages(mut bytes: &[u8]) -> Res<Vec<Read>> {
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let offset = i64::from_be_bytes(bytes[..8].try_into()?);
        let size = i32::from_be_bytes(bytes[8..12].try_into()?) as usize;
        let body = bytes.get(12..12 + size).ok_or("partial message")?;
        bytes = &bytes[12 + size..];
        let crc = u32::from_be_bytes(body[..4].try_into()?);
        assert_eq!(crc, crc32fast::hash(&body[4..]), "message CRC at {offset}");
        let (magic, attributes) = (body[4], body[5]);
        let mut p = 6;
        let ts = if magic == 1 {
            p = 14;
            i64::from_be_bytes(body[6..14].try_into()?)
        } else {
            -1
        };
        let mut field = || -> Res<Option<Vec<u8>>> {
            let len = i32::from_be_bytes(body[p..p + 4].try_into()?);
            p += 4;
            if len < 0 {
                return Ok(None);
            }
            let v = body[p..p + len as usize].to_vec();
            p += len as usize;
            Ok(Some(v))
        };
        let (key, value) = (field()?, field()?);
        assert_eq!(p, body.len());
        let codec = i16::from(attributes & 7);
        if codec == 0 {
            out.push((offset, magic, attributes, ts, key, value));
            continue;
        }
        let inner = compression::decompress(codec, &value.ok_or("no value")?, 1 << 24)?;
        let inner = read_messages(&inner)?;
        let last = inner.last().map_or(0, |m| m.0);
        for m in inner {
            let absolute = if magic == 1 { offset - last + m.0 } else { m.0 };
            assert_eq!(m.2 & 8, attributes & 8, "inner timestamp type");
            out.push((absolute, m.1, m.2, m.3, m.4, m.5));
        }
    }
    assert!(bytes.is_empty(), "whole messages only");
    Ok(out)
}

/// A stored record: (offset, timestamp, key, value).
type Stored = (u64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Records of the v2 batches of `bytes`, read by kafka-protocol's own decoder (which
/// checks each batch's CRC-32C): (offset, timestamp, key, value).
fn read_batches(bytes: &[u8]) -> Res<Vec<Stored>> {
    use kafka_protocol::records::RecordBatchDecoder;
    let mut buf = Bytes::copy_from_slice(bytes);
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf)? {
        assert_eq!(set.version, 2, "stored as RecordBatch v2");
        for r in set.records {
            let (key, value) = (r.key.map(|k| k.to_vec()), r.value.map(|v| v.to_vec()));
            out.push((r.offset as u64, r.timestamp, key, value));
        }
    }
    Ok(out)
}

fn produce_request(topic: &'static str, records: Vec<u8>) -> RequestKind {
    use produce_request::{PartitionProduceData, TopicProduceData};
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(records)))])]),
    )
}

/// Produces at `version`: (error code, base offset).
async fn produce(
    c: &mut Client,
    version: i16,
    topic: &'static str,
    records: Vec<u8>,
) -> Res<(i16, i64)> {
    let ResponseKind::Produce(r) = c.call(version, produce_request(topic, records)).await? else {
        return Err("not a Produce response".into());
    };
    let p = &r.responses[0].partition_responses[0];
    if version >= 2 {
        assert_eq!(p.log_append_time_ms, -1, "CreateTime topic");
    }
    Ok((p.error_code, p.base_offset))
}

/// Fetches partition 0 from `offset` at `version`: (error, high watermark, records).
async fn fetch(
    c: &mut Client,
    version: i16,
    topic: &'static str,
    offset: i64,
    max: i32,
) -> Res<(i16, i64, Bytes)> {
    use fetch_request::{FetchPartition, FetchTopic};
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max)])]);
    let ResponseKind::Fetch(r) = c.call(version, RequestKind::Fetch(request)).await? else {
        return Err("not a Fetch response".into());
    };
    let p = &r.responses[0].partitions[0];
    Ok((
        p.error_code,
        p.high_watermark,
        p.records.clone().unwrap_or_default(),
    ))
}

/// The broker's ApiVersions answer at `version`.
async fn advertised(c: &mut Client, version: i16) -> Res<ApiVersionsResponse> {
    match c
        .call(
            version,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )
        .await?
    {
        ResponseKind::ApiVersions(r) => Ok(r),
        _ => Err("not ApiVersions".into()),
    }
}

#[tokio::test]
async fn r_wire_13_every_api_serves_kafka_3_9s_lowest_version() -> TestResult {
    let (broker, _dir, mut c) = start(|_| {}).await?;
    let r = advertised(&mut c, 0).await?;
    for (key, floor) in [
        (ApiKey::Produce, 0),
        (ApiKey::Fetch, 0),
        (ApiKey::ListOffsets, 0),
        (ApiKey::CreateTopics, 0),
        (ApiKey::DeleteTopics, 0),
        (ApiKey::OffsetCommit, 0),
        (ApiKey::OffsetFetch, 0),
        (ApiKey::DescribeConfigs, 0),
        (ApiKey::OffsetForLeaderEpoch, 0),
        (ApiKey::DescribeAcls, 0),
        (ApiKey::CreateAcls, 0),
        (ApiKey::DeleteAcls, 0),
    ] {
        let listed = r.api_keys.iter().find(|k| k.api_key == key as i16);
        assert_eq!(listed.map(|k| k.min_version), Some(floor), "{key:?}");
    }
    broker.shutdown().await;
    Ok(())
}

/// Produce v0 (magic 0) and v1/v2 (magic 1) are stored as RecordBatch v2 with
/// Kafka's offsets, keys, values and timestamps (none for magic 0), read back by
/// Fetch v11.
#[tokio::test]
async fn r_wire_13_produced_message_sets_are_stored_as_record_batches() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("old", &[]).await?;
    let now = chrono_ms();
    let v0: Vec<u8> = [
        message(0, 0, 0, 0, Some(b"k0"), Some(b"zero")),
        message(1, 0, 0, 0, None, Some(b"one")),
    ]
    .concat();
    assert_eq!(produce(&mut c, 0, "old", v0).await?, (0, 0));
    let v1 = [
        message(0, 1, 0, now, Some(b"k2"), Some(b"two")),
        message(0, 1, 0, now + 5, None, None),
    ]
    .concat();
    assert_eq!(produce(&mut c, 1, "old", v1.clone()).await?, (0, 2));
    assert_eq!(produce(&mut c, 2, "old", v1).await?, (0, 4));
    let (error, hw, records) = fetch(&mut c, 11, "old", 0, 1 << 20).await?;
    assert_eq!((error, hw), (0, 6));
    let got = read_batches(&records)?;
    let want = vec![
        (0, -1, Some(b"k0".to_vec()), Some(b"zero".to_vec())),
        (1, -1, None, Some(b"one".to_vec())),
        (2, now, Some(b"k2".to_vec()), Some(b"two".to_vec())),
        (3, now + 5, None, None),
        (4, now, Some(b"k2".to_vec()), Some(b"two".to_vec())),
        (5, now + 5, None, None),
    ];
    assert_eq!(got, want);
    broker.shutdown().await;
    Ok(())
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Compressed wrappers (gzip, snappy, lz4 in magic 1; gzip and snappy in magic 0)
/// are unpacked into one batch in the producer's codec, every record kept.
#[tokio::test]
async fn r_wire_13_compressed_old_messages_are_unpacked() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("packed", &[]).await?;
    let now = chrono_ms();
    let mut next = 0;
    for (magic, codec) in [
        (1u8, compression::GZIP),
        (1, compression::SNAPPY),
        (1, compression::LZ4),
        (0, compression::GZIP),
        (0, compression::SNAPPY),
    ] {
        let inner: Vec<u8> = (0..3)
            .flat_map(|i| {
                message(
                    i,
                    magic,
                    0,
                    now + i,
                    Some(format!("k{i}").as_bytes()),
                    Some(b"v"),
                )
            })
            .collect();
        let set = wrapper(magic, codec, now, 2, &inner)?;
        assert_eq!(
            produce(&mut c, 2, "packed", set).await?,
            (0, next),
            "magic {magic} codec {codec}"
        );
        let (_, _, records) = fetch(&mut c, 11, "packed", next, 1 << 20).await?;
        let header = batch::BatchHeader::parse(&records)?;
        assert_eq!(
            header.compression(),
            codec,
            "stored in the producer's codec"
        );
        let got = read_batches(&records)?;
        assert_eq!(got.len(), 3);
        for (i, r) in got.iter().enumerate() {
            let ts = if magic == 1 { now + i as i64 } else { -1 };
            assert_eq!(
                r,
                &(
                    next as u64 + i as u64,
                    ts,
                    Some(format!("k{i}").into_bytes()),
                    Some(b"v".to_vec())
                )
            );
        }
        next += 3;
    }
    broker.shutdown().await;
    Ok(())
}

/// A damaged message is refused as Kafka refuses it and nothing is appended: a bad
/// CRC (outer or inner) is CORRUPT_MESSAGE; mixed magics, a compressed message with
/// others, or a compressed inner message are INVALID_RECORD; Produce v3 may carry
/// only v2 batches.
#[tokio::test]
async fn r_wire_13_damaged_old_messages_are_refused() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("bad", &[]).await?;
    let good = message(0, 1, 0, chrono_ms(), None, Some(b"value"));
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let inner = [good.clone(), flipped.clone()].concat();
    let gz = wrapper(1, compression::GZIP, 0, 1, &inner)?;
    let nested = wrapper(
        1,
        compression::GZIP,
        0,
        0,
        &wrapper(1, compression::GZIP, 0, 0, &good)?,
    )?;
    let two_wrappers = [
        wrapper(1, compression::GZIP, 0, 0, &good)?,
        wrapper(1, compression::GZIP, 0, 0, &good)?,
    ]
    .concat();
    let mixed = [good.clone(), message(1, 0, 0, 0, None, Some(b"v0"))].concat();
    for (what, version, records, code) in [
        ("flipped CRC", 2, flipped, CORRUPT_MESSAGE),
        ("flipped inner CRC", 2, gz, CORRUPT_MESSAGE),
        ("nested compression", 2, nested, INVALID_RECORD),
        ("two wrappers", 2, two_wrappers, INVALID_RECORD),
        ("mixed magics", 1, mixed, INVALID_RECORD),
        ("magic 1 in Produce v3", 3, good.clone(), INVALID_RECORD),
    ] {
        assert_eq!(
            produce(&mut c, version, "bad", records).await?.0,
            code,
            "{what}"
        );
    }
    let (_, hw, _) = fetch(&mut c, 11, "bad", 0, 1 << 20).await?;
    assert_eq!(hw, 0, "nothing appended");
    assert_eq!(produce(&mut c, 2, "bad", good).await?, (0, 0));
    broker.shutdown().await;
    Ok(())
}

/// Batches produced with v10 come back from Fetch v0-3 as messages of magic 0 (v0-1)
/// or 1 (v2-3) with valid CRCs, headers dropped, compressed batches as one wrapper
/// in their codec; from the middle of a batch only later records; and never more
/// than max_bytes beyond the first message.
#[tokio::test]
async fn r_wire_13_fetch_v0_to_v3_converts_batches_down() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("down", &[]).await?;
    let now = chrono_ms();
    let records: Vec<Record> = (0..4)
        .map(|i| Record {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(vec![b'x'; 100]),
            timestamp_delta: i,
        })
        .collect();
    let plain = batch::build_batch(&records, now);
    let gzip = batch::build_compressed_batch(&records, now, compression::GZIP)?;
    assert_eq!(produce(&mut c, 10, "down", plain).await?.0, 0);
    assert_eq!(produce(&mut c, 10, "down", gzip).await?.0, 0);
    for version in 0..=3i16 {
        let magic = if version <= 1 { 0 } else { 1 };
        let (error, hw, bytes) = fetch(&mut c, version, "down", 0, 1 << 20).await?;
        assert_eq!((error, hw), (0, 8));
        let got = read_messages(&bytes)?;
        assert_eq!(got.len(), 8, "v{version}");
        for (i, m) in got.iter().enumerate() {
            let ts = if magic == 1 { now + (i as i64 % 4) } else { -1 };
            let want = (
                i as i64,
                magic,
                m.2 & 7,
                ts,
                Some(format!("k{}", i % 4).into_bytes()),
                Some(vec![b'x'; 100]),
            );
            assert_eq!(m, &want, "v{version} message {i}");
        }
        // From offset 5, inside the compressed batch.
        let (_, _, bytes) = fetch(&mut c, version, "down", 5, 1 << 20).await?;
        let offsets: Vec<i64> = read_messages(&bytes)?.iter().map(|m| m.0).collect();
        assert_eq!(offsets, vec![5, 6, 7], "v{version}");
        // A limit smaller than one message still returns the first whole; a limit
        // of two and a half messages returns two.
        let (_, _, bytes) = fetch(&mut c, version, "down", 0, 10).await?;
        assert_eq!(read_messages(&bytes)?.len(), 1);
        let one = bytes.len() as i32;
        let (_, _, bytes) = fetch(&mut c, version, "down", 0, one * 5 / 2).await?;
        assert_eq!(read_messages(&bytes)?.len(), 2);
        assert!(bytes.len() as i32 <= one * 5 / 2);
    }
    broker.shutdown().await;
    Ok(())
}

/// Produce v2 (magic 1) to Fetch v11 and back to Fetch v2 keeps every record.
#[tokio::test]
async fn r_wire_13_magic_1_round_trips_through_the_v2_log() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("round", &[]).await?;
    let now = chrono_ms();
    let sent: Vec<u8> = (0..10)
        .flat_map(|i| {
            message(
                i,
                1,
                0,
                now + i,
                Some(format!("key{i}").as_bytes()),
                Some(format!("value{i}").as_bytes()),
            )
        })
        .collect();
    assert_eq!(produce(&mut c, 2, "round", sent.clone()).await?, (0, 0));
    let (_, _, v11) = fetch(&mut c, 11, "round", 0, 1 << 20).await?;
    assert_eq!(read_batches(&v11)?.len(), 10);
    let (_, _, v2) = fetch(&mut c, 2, "round", 0, 1 << 20).await?;
    assert_eq!(read_messages(&v2)?, read_messages(&sent)?);
    broker.shutdown().await;
    Ok(())
}

/// A topic whose compression.type is zstd cannot be read below Fetch v10
/// (UNSUPPORTED_COMPRESSION_TYPE), and one with message.downconversion.enable=false
/// not below v4 (UNSUPPORTED_VERSION), as Kafka answers.
#[tokio::test]
async fn r_wire_13_fetch_refusals_of_old_versions_follow_topic_configs() -> TestResult {
    let (broker, _dir, mut c) = start(|_| {}).await?;
    create_topic(&broker, "zstd", &[("compression.type", "zstd")]).await?;
    create_topic(
        &broker,
        "nodown",
        &[("message.downconversion.enable", "false")],
    )
    .await?;
    assert_eq!(fetch(&mut c, 9, "zstd", 0, 1000).await?.0, 76);
    assert_eq!(fetch(&mut c, 10, "zstd", 0, 1000).await?.0, 0);
    assert_eq!(
        fetch(&mut c, 3, "nodown", 0, 1000).await?.0,
        UNSUPPORTED_VERSION
    );
    assert_eq!(fetch(&mut c, 4, "nodown", 0, 1000).await?.0, 0);
    broker.shutdown().await;
    Ok(())
}

/// ListOffsets v0: old-style offset lists, largest first, at most max_num_offsets.
#[tokio::test]
async fn r_wire_13_list_offsets_v0_answers_offset_lists() -> TestResult {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let (broker, _dir, mut c) = start_with_topic("lo", &[]).await?;
    let set: Vec<u8> = (0..3)
        .flat_map(|i| message(i, 0, 0, 0, None, Some(b"v")))
        .collect();
    assert_eq!(produce(&mut c, 0, "lo", set).await?, (0, 0));
    for (timestamp, max, want, error) in [
        (-1i64, 1, vec![3i64], 0),
        (-2, 1, vec![0], 0),
        (-1, 10, vec![3, 0], 0),
        (-3, 1, vec![], UNSUPPORTED_VERSION),
    ] {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("lo"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)
                    .with_max_num_offsets(max)])]);
        let ResponseKind::ListOffsets(r) = c.call(0, RequestKind::ListOffsets(request)).await?
        else {
            return Err("not ListOffsets".into());
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, &p.old_style_offsets),
            (error, &want),
            "{timestamp} x{max}"
        );
    }
    broker.shutdown().await;
    Ok(())
}

fn commit(version: i16, topic: &'static str, partition: i32, offset: i64, ts: i64) -> RequestKind {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let mut p = OffsetCommitRequestPartition::default()
        .with_partition_index(partition)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(StrBytes::from_static_str("m")));
    if version == 1 {
        p.commit_timestamp = ts;
    }
    let mut r = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![p])]);
    if version >= 1 {
        r.generation_id_or_member_epoch = -1;
    }
    RequestKind::OffsetCommit(r)
}

async fn committed(c: &mut Client, version: i16) -> Res<(i16, i64)> {
    use offset_fetch_request::OffsetFetchRequestTopic;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name("offs"))
            .with_partition_indexes(vec![0])]));
    let ResponseKind::OffsetFetch(r) = c.call(version, RequestKind::OffsetFetch(request)).await?
    else {
        return Err("not OffsetFetch".into());
    };
    let p = &r.topics[0].partitions[0];
    Ok((p.error_code, p.committed_offset))
}

/// OffsetCommit v0 and OffsetFetch v0 (ZooKeeper offsets) are UNSUPPORTED_VERSION
/// per partition as on a KRaft Kafka 3.9, unknown partitions keep their own error;
/// OffsetCommit v1 commits (its commit timestamp kept) and OffsetFetch v1 reads it.
#[tokio::test]
async fn r_wire_13_offset_commit_v0_v1_and_offset_fetch_v0() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("offs", &[]).await?;
    let code = |r: ResponseKind| match r {
        ResponseKind::OffsetCommit(r) => r.topics[0].partitions[0].error_code,
        _ => -100,
    };
    assert_eq!(
        code(c.call(0, commit(0, "offs", 0, 7, -1)).await?),
        UNSUPPORTED_VERSION
    );
    assert_eq!(code(c.call(0, commit(0, "nope", 0, 7, -1)).await?), 3);
    assert_eq!(code(c.call(1, commit(1, "offs", 0, 7, 1234)).await?), 0);
    assert_eq!(committed(&mut c, 1).await?, (0, 7));
    assert_eq!(committed(&mut c, 0).await?, (UNSUPPORTED_VERSION, -1));
    let view = broker.broker.consensus.view();
    let stored = view
        .state
        .offsets
        .get("g")
        .and_then(|g| g.get("offs"))
        .and_then(|p| p.get(&0))
        .map(|o| o.commit_time_ms);
    assert_eq!(stored, Some(1234), "v1's commit timestamp kept");
    broker.shutdown().await;
    Ok(())
}

/// CreateTopics v0/v1, DeleteTopics v0, DescribeConfigs v0 (is_default) and
/// OffsetForLeaderEpoch v0/v1 answer in their own formats.
#[tokio::test]
async fn r_wire_13_admin_apis_at_their_lowest_versions() -> TestResult {
    use create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use describe_configs_request::DescribeConfigsResource;
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let (broker, _dir, mut c) = start(|_| {}).await?;
    let topic = |n: &'static str| {
        CreatableTopic::default()
            .with_name(name(n))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("1000")))])
    };
    let create = |n, validate| {
        RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_topics(vec![topic(n)])
                .with_timeout_ms(5000)
                .with_validate_only(validate),
        )
    };
    let ResponseKind::CreateTopics(r) = c.call(0, create("ct0", false)).await? else {
        return Err("CreateTopics".into());
    };
    assert_eq!(
        (r.topics[0].name.0.as_str(), r.topics[0].error_code),
        ("ct0", 0)
    );
    let ResponseKind::CreateTopics(r) = c.call(1, create("ct0", false)).await? else {
        return Err("CreateTopics".into());
    };
    assert_eq!(r.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
    assert!(r.topics[0].error_message.is_some());
    let ResponseKind::CreateTopics(r) = c.call(1, create("ct1", true)).await? else {
        return Err("CreateTopics".into());
    };
    assert_eq!(r.topics[0].error_code, 0);
    assert!(
        !broker
            .broker
            .consensus
            .view()
            .state
            .topics
            .contains_key("ct1"),
        "validate only"
    );

    let describe = RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(
        vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("ct0"))
            .with_configuration_keys(Some(vec![
                StrBytes::from_static_str("retention.ms"),
                StrBytes::from_static_str("segment.ms"),
            ]))],
    ));
    let ResponseKind::DescribeConfigs(r) = c.call(0, describe).await? else {
        return Err("DescribeConfigs".into());
    };
    let configs: Vec<(&str, Option<&str>, bool)> = r.results[0]
        .configs
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref(), e.is_default))
        .collect();
    assert_eq!(
        configs,
        vec![
            ("retention.ms", Some("1000"), false),
            ("segment.ms", Some("604800000"), true)
        ]
    );

    let one = message(0, 1, 0, chrono_ms(), None, Some(b"v"));
    assert_eq!(produce(&mut c, 2, "ct0", one).await?, (0, 0));
    for version in [0i16, 1] {
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name("ct0"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_leader_epoch(0)]),
        ]);
        let ResponseKind::OffsetForLeaderEpoch(r) = c
            .call(version, RequestKind::OffsetForLeaderEpoch(request))
            .await?
        else {
            return Err("OffsetForLeaderEpoch".into());
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.end_offset), (0, 1), "v{version}");
        assert_eq!(
            p.leader_epoch,
            if version == 0 { -1 } else { 0 },
            "v{version}"
        );
    }

    let delete = RequestKind::DeleteTopics(
        DeleteTopicsRequest::default()
            .with_topic_names(vec![name("ct0"), name("none")])
            .with_timeout_ms(5000),
    );
    let ResponseKind::DeleteTopics(r) = c.call(0, delete).await? else {
        return Err("DeleteTopics".into());
    };
    let codes: Vec<i16> = r.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, 3]);
    broker.shutdown().await;
    Ok(())
}

/// The ACL APIs' v0 know only LITERAL patterns (Kafka's default for the missing
/// field): created literal, a PREFIXED binding is invisible to v0.
#[tokio::test]
async fn r_wire_13_acl_apis_v0_are_literal_only() -> TestResult {
    use create_acls_request::AclCreation;
    use delete_acls_request::DeleteAclsFilter;
    let (broker, _dir, mut c) = start(|config| {
        config.authorizer_enabled = true;
        config.super_users = vec!["User:ANONYMOUS".into()];
    })
    .await?;
    let creation = |pattern: i8| {
        AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_resource_pattern_type(pattern)
            .with_principal(StrBytes::from_static_str("User:bob"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(3)
            .with_permission_type(3)
    };
    let ResponseKind::CreateAcls(r) = c
        .call(
            0,
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![creation(3)])),
        )
        .await?
    else {
        return Err("CreateAcls".into());
    };
    assert_eq!(r.results[0].error_code, 0);
    let ResponseKind::CreateAcls(r) = c
        .call(
            1,
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![creation(4)])),
        )
        .await?
    else {
        return Err("CreateAcls".into());
    };
    assert_eq!(r.results[0].error_code, 0);
    let filter = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let ResponseKind::DescribeAcls(r) =
        c.call(0, RequestKind::DescribeAcls(filter.clone())).await?
    else {
        return Err("DescribeAcls".into());
    };
    assert_eq!((r.error_code, r.resources.len()), (0, 1));
    assert_eq!(r.resources[0].acls.len(), 1);
    let ResponseKind::DescribeAcls(r) = c
        .call(
            1,
            RequestKind::DescribeAcls(filter.with_pattern_type_filter(1)),
        )
        .await?
    else {
        return Err("DescribeAcls".into());
    };
    assert_eq!(r.resources.len(), 2, "v1 sees both patterns");
    let delete = DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let ResponseKind::DeleteAcls(r) = c
        .call(
            0,
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![delete])),
        )
        .await?
    else {
        return Err("DeleteAcls".into());
    };
    assert_eq!(
        (
            r.filter_results[0].error_code,
            r.filter_results[0].matching_acls.len()
        ),
        (0, 1)
    );
    broker.shutdown().await;
    Ok(())
}

/// Kafka 3.9's highest version of each API this broker implements (its message
/// schemas' `validVersions`, none of them unstable there).
const KAFKA_3_9_HIGHEST: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 11),
    (ApiKey::Fetch, 17),
    (ApiKey::ListOffsets, 9),
    (ApiKey::Metadata, 12),
    (ApiKey::OffsetCommit, 9),
    (ApiKey::OffsetFetch, 9),
    (ApiKey::FindCoordinator, 6),
    (ApiKey::JoinGroup, 9),
    (ApiKey::Heartbeat, 4),
    (ApiKey::LeaveGroup, 5),
    (ApiKey::SyncGroup, 5),
    (ApiKey::DescribeGroups, 5),
    (ApiKey::ListGroups, 5),
    (ApiKey::SaslHandshake, 1),
    (ApiKey::ApiVersions, 4),
    (ApiKey::CreateTopics, 7),
    (ApiKey::DeleteTopics, 6),
    (ApiKey::DeleteRecords, 2),
    (ApiKey::InitProducerId, 5),
    (ApiKey::ElectLeaders, 2),
    (ApiKey::DescribeLogDirs, 4),
    (ApiKey::OffsetForLeaderEpoch, 4),
    (ApiKey::DescribeAcls, 3),
    (ApiKey::CreateAcls, 3),
    (ApiKey::DeleteAcls, 3),
    (ApiKey::DescribeConfigs, 4),
    (ApiKey::AlterConfigs, 2),
    (ApiKey::SaslAuthenticate, 2),
    (ApiKey::CreatePartitions, 3),
    (ApiKey::DeleteGroups, 2),
    (ApiKey::IncrementalAlterConfigs, 1),
    (ApiKey::OffsetDelete, 0),
    (ApiKey::DescribeUserScramCredentials, 0),
    (ApiKey::AlterUserScramCredentials, 0),
    (ApiKey::DescribeCluster, 1),
    (ApiKey::DescribeTopicPartitions, 0),
];

/// R-WIRE-19: DescribeLogDirs in its oldest and newest version, the partition logs
/// held and asked for; the file system's bytes from v4 only.
#[tokio::test]
async fn r_wire_19_describe_log_dirs_from_v0_to_v4() -> TestResult {
    use create_topics_request::CreatableTopic;
    use describe_log_dirs_request::DescribableLogDirTopic;
    let (broker, _dir, mut c) = start(|_| {}).await?;
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("dirs"))
            .with_num_partitions(2)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    c.call(4, RequestKind::CreateTopics(create)).await?;
    for version in [0, 4] {
        let every = DescribeLogDirsRequest::default().with_topics(None);
        let ResponseKind::DescribeLogDirs(r) =
            c.call(version, RequestKind::DescribeLogDirs(every)).await?
        else {
            return Err("DescribeLogDirs".into());
        };
        assert_eq!(r.results.len(), 1, "one log directory");
        let dir = &r.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(dir.log_dir.ends_with("/logs"), "{:?}", dir.log_dir);
        let partitions: Vec<i32> = dir.topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(
            (dir.topics[0].name.0.as_str(), partitions),
            ("dirs", vec![0, 1])
        );
        assert_eq!(dir.total_bytes > 0, version >= 4, "v{version}: {dir:?}");
        let one = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(name("dirs"))
                .with_partitions(vec![1, 7]),
        ]));
        let ResponseKind::DescribeLogDirs(r) =
            c.call(version, RequestKind::DescribeLogDirs(one)).await?
        else {
            return Err("DescribeLogDirs".into());
        };
        let partitions: Vec<i32> = r.results[0].topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(partitions, [1], "only what was asked and is held");
    }
    broker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn r_wire_13_every_api_serves_kafka_3_9s_highest_version() -> TestResult {
    let (broker, _dir, mut c) = start(|_| {}).await?;
    let r = advertised(&mut c, 3).await?;
    for (api, highest) in KAFKA_3_9_HIGHEST {
        let served = r.api_keys.iter().find(|k| k.api_key == *api as i16);
        assert!(
            served.is_some_and(|k| k.max_version >= *highest),
            "{api:?}: {:?}, Kafka 3.9 serves up to v{highest}",
            served.map(|k| k.max_version)
        );
    }
    broker.shutdown().await;
    Ok(())
}

fn group(id: &'static str) -> GroupId {
    GroupId(StrBytes::from_static_str(id))
}

/// A KIP-848 member's first heartbeat in `group`, subscribed to `topic`: its id and
/// epoch.
async fn consumer_member(
    c: &mut Client,
    group_id: &'static str,
    topic: &'static str,
) -> Res<(StrBytes, i32)> {
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(5_000)
        .with_subscribed_topic_names(Some(vec![name(topic)]))
        .with_topic_partitions(Some(vec![]));
    let ResponseKind::ConsumerGroupHeartbeat(r) =
        c.call(0, RequestKind::ConsumerGroupHeartbeat(join)).await?
    else {
        return Err("not ConsumerGroupHeartbeat".into());
    };
    assert_eq!(r.error_code, 0, "{r:?}");
    Ok((r.member_id.ok_or("no member id")?, r.member_epoch))
}

/// OffsetFetch v8 asks for several groups in one request, each answered on its own;
/// v9 checks a KIP-848 member's id and epoch (UNKNOWN_MEMBER_ID 25,
/// STALE_MEMBER_EPOCH 113) and lets a caller naming no member read, as Kafka 3.9.
#[tokio::test]
async fn r_wire_13_offset_fetch_v8_and_v9_answer_groups_by_their_own_rules() -> TestResult {
    use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
    let (broker, _dir, mut c) = start_with_topic("offs", &[]).await?;
    c.call(1, commit(1, "offs", 0, 7, -1)).await?;
    assert_eq!(committed(&mut c, 7).await?, (0, 7));
    let (member, epoch) = consumer_member(&mut c, "cg", "offs").await?;
    let ask = |id: &'static str, member: Option<StrBytes>, epoch: i32, all: bool| {
        let topics = (!all).then(|| {
            vec![OffsetFetchRequestTopics::default()
                .with_name(name("offs"))
                .with_partition_indexes(vec![0])]
        });
        OffsetFetchRequestGroup::default()
            .with_group_id(group(id))
            .with_member_id(member)
            .with_member_epoch(epoch)
            .with_topics(topics)
    };
    let groups = vec![
        ask("g", None, -1, true),
        ask("nobody", None, -1, false),
        ask("cg", Some(member.clone()), epoch, false),
        ask("cg", Some(member.clone()), epoch + 1, false),
        ask(
            "cg",
            Some(StrBytes::from_static_str("stranger")),
            epoch,
            false,
        ),
        ask("cg", None, -1, false),
        ask(
            "g",
            Some(StrBytes::from_static_str("classic ignores it")),
            5,
            false,
        ),
    ];
    let request = RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(groups));
    let ResponseKind::OffsetFetch(r) = c.call(9, request).await? else {
        return Err("not OffsetFetch".into());
    };
    let answers: Vec<(&str, i16, Vec<i64>)> = r
        .groups
        .iter()
        .map(|g| {
            let offsets = g
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.committed_offset);
            (g.group_id.0.as_str(), g.error_code, offsets.collect())
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            ("g", 0, vec![7]),
            ("nobody", 0, vec![-1]),
            ("cg", 0, vec![-1]),
            ("cg", 113, vec![]),
            ("cg", 25, vec![]),
            ("cg", 0, vec![-1]),
            ("g", 0, vec![7]),
        ]
    );
    broker.shutdown().await;
    Ok(())
}

/// ListGroups v5 (KIP-848) names each group's type and filters by it, case aside; a
/// group that only has committed offsets is an Empty classic group.
#[tokio::test]
async fn r_wire_13_list_groups_v5_filters_by_group_type() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("offs", &[]).await?;
    c.call(1, commit(1, "offs", 0, 7, -1)).await?;
    consumer_member(&mut c, "cg", "offs").await?;
    let both = vec![
        ("cg".to_string(), "consumer".to_string()),
        ("g".to_string(), "classic".to_string()),
    ];
    assert_eq!(groups_of_types(&mut c, &[]).await?, both);
    assert_eq!(groups_of_types(&mut c, &["Consumer"]).await?, both[..1]);
    assert_eq!(groups_of_types(&mut c, &["classic"]).await?, both[1..]);
    assert_eq!(groups_of_types(&mut c, &["share"]).await?, Vec::new());
    broker.shutdown().await;
    Ok(())
}

/// ListGroups v5 with `types`: (group id, group type) of each group listed.
async fn groups_of_types(c: &mut Client, types: &[&'static str]) -> Res<Vec<(String, String)>> {
    let types = types.iter().map(|t| StrBytes::from_static_str(t)).collect();
    let request = ListGroupsRequest::default().with_types_filter(types);
    let ResponseKind::ListGroups(r) = c.call(5, RequestKind::ListGroups(request)).await? else {
        return Err("not ListGroups".into());
    };
    Ok(r.groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_type.to_string()))
        .collect())
}

/// FindCoordinator v`version` for group "g" with `key_type`: the key's error code.
async fn coordinator_error(c: &mut Client, version: i16, key_type: i8) -> Res<i16> {
    let request = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
    match c
        .call(version, RequestKind::FindCoordinator(request))
        .await?
    {
        ResponseKind::FindCoordinator(r) => Ok(r.coordinators.first().map_or(-1, |k| k.error_code)),
        _ => Err("not FindCoordinator".into()),
    }
}

/// FindCoordinator v6 may ask for a share group's coordinator (KIP-932): there is
/// none (COORDINATOR_NOT_AVAILABLE 15), as in Kafka 3.9; v5 may not ask
/// (INVALID_REQUEST 42), and neither may any version for an unknown key type.
#[tokio::test]
async fn r_wire_13_find_coordinator_v6_knows_share_groups_have_none() -> TestResult {
    let (broker, _dir, mut c) = start(|_| {}).await?;
    assert_eq!(coordinator_error(&mut c, 6, 0).await?, 0);
    assert_eq!(coordinator_error(&mut c, 6, 2).await?, 15);
    assert_eq!(coordinator_error(&mut c, 5, 2).await?, 42);
    assert_eq!(coordinator_error(&mut c, 6, 3).await?, 42);
    broker.shutdown().await;
    Ok(())
}

/// JoinGroup v9 (KIP-814): a static leader restarting in a Stable group learns it
/// leads, with the members, and is told to skip the assignment; v8 names the old
/// leader id instead so the member does not assign.
#[tokio::test]
async fn r_wire_13_join_group_v9_tells_a_restarted_static_leader_to_skip_assigning() -> TestResult {
    use join_group_request::JoinGroupRequestProtocol;
    use sync_group_request::SyncGroupRequestAssignment;
    let (broker, _dir, mut c) = start(|config| config.group_initial_rebalance_delay_ms = 0).await?;
    let join = |version: i16| {
        let request = JoinGroupRequest::default()
            .with_group_id(group("static"))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_group_instance_id(Some(StrBytes::from_static_str("i-1")))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"m"))])
            .with_reason(Some(StrBytes::from_static_str("a test")));
        (version, RequestKind::JoinGroup(request))
    };
    let joined = |r: ResponseKind| match r {
        ResponseKind::JoinGroup(r) => Ok(r),
        _ => Err("not JoinGroup"),
    };
    let (v, request) = join(9);
    let first = joined(c.call(v, request).await?)?;
    assert_eq!(
        (first.error_code, first.leader.clone()),
        (0, first.member_id.clone())
    );
    assert!(!first.skip_assignment, "a new generation is assigned");
    let sync = SyncGroupRequest::default()
        .with_group_id(group("static"))
        .with_generation_id(first.generation_id)
        .with_member_id(first.member_id.clone())
        .with_group_instance_id(Some(StrBytes::from_static_str("i-1")))
        .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
        .with_protocol_name(Some(StrBytes::from_static_str("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(first.member_id.clone())
            .with_assignment(Bytes::from_static(b"a"))]);
    let ResponseKind::SyncGroup(synced) = c.call(5, RequestKind::SyncGroup(sync)).await? else {
        return Err("not SyncGroup".into());
    };
    assert_eq!(synced.error_code, 0);

    let (v, request) = join(8);
    let restarted = joined(c.call(v, request).await?)?;
    assert_eq!(restarted.generation_id, first.generation_id, "no rebalance");
    assert_eq!(restarted.leader, first.member_id, "v8: the old leader id");
    assert!(restarted.members.is_empty());

    let (v, request) = join(9);
    let again = joined(c.call(v, request).await?)?;
    assert_eq!(again.generation_id, first.generation_id, "no rebalance");
    assert_eq!(again.leader, again.member_id, "v9: it leads");
    assert_eq!(again.members.len(), 1, "v9: with the members");
    assert!(again.skip_assignment, "v9: and must not assign");
    broker.shutdown().await;
    Ok(())
}

/// ListOffsets v`version` of partition 0 of "lo" at `timestamp`: (error code,
/// offset, leader epoch).
async fn offset_listed(c: &mut Client, version: i16, timestamp: i64) -> Res<(i16, i64, i32)> {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("lo"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let ResponseKind::ListOffsets(r) = c.call(version, RequestKind::ListOffsets(request)).await?
    else {
        return Err("not ListOffsets".into());
    };
    let p = &r.topics[0].partitions[0];
    Ok((p.error_code, p.offset, p.leader_epoch))
}

/// ListOffsets v8 asks for the local log start (-4: the log start without tiered
/// storage) and v9 for the last tiered offset (-5: none); each special timestamp
/// before its version, and any other negative one, is UNSUPPORTED_VERSION.
#[tokio::test]
async fn r_wire_13_list_offsets_v8_and_v9_know_the_tiered_storage_timestamps() -> TestResult {
    let (broker, _dir, mut c) = start_with_topic("lo", &[]).await?;
    assert_eq!(
        offset_listed(&mut c, 8, -4).await?,
        (0, 0, -1),
        "an empty log has no epoch yet"
    );
    assert_eq!(offset_listed(&mut c, 9, -5).await?, (0, -1, -1));
    assert_eq!(offset_listed(&mut c, 7, -4).await?.0, UNSUPPORTED_VERSION);
    assert_eq!(offset_listed(&mut c, 8, -5).await?.0, UNSUPPORTED_VERSION);
    assert_eq!(offset_listed(&mut c, 6, -3).await?.0, UNSUPPORTED_VERSION);
    assert_eq!(offset_listed(&mut c, 9, -6).await?.0, UNSUPPORTED_VERSION);
    let (code, offset, epoch) = offset_listed(&mut c, 9, -1).await?;
    assert_eq!((code, offset), (0, 0));
    assert!(epoch >= 0, "latest names the leader epoch");
    broker.shutdown().await;
    Ok(())
}
