//! Writes the generated part of the seed corpus (`cargo test -p chronik-fuzz
//! --release --test seeds -- --ignored`): a request of every advertised API version
//! built with kafka-protocol, batches of every codec, framed segments, peer
//! messages, metadata commands and snapshots, and whole SASL exchanges. The
//! captured client traffic comes from `scripts/capture.py`; what the fuzzers found
//! is added by hand (fuzz/README.md).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::BytesMut;
use chronik::kafka::versions;
use chronik::log::batch::{self, Record};
use chronik::log::compression;
use chronik_core::consensus::{ForwardOutcome, PeerMessage};
use chronik_core::log::frame;
use chronik_core::metadata::{
    ApplyOutcome, CommandEnvelope, MetadataCommand, MetadataState, Snapshot,
};
use chronik_core::security::scram::{ClientExchange, Mechanism};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Encodable;
use std::collections::BTreeMap;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus folder");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("corpus file");
}

#[test]
#[ignore = "writes the seed corpus"]
fn write_seed_corpus() {
    kafka_requests();
    record_batches();
    frames();
    raft_wal();
    peer_messages();
    metadata();
    sasl();
}

fn kafka_requests() {
    for (api, lo, hi) in versions::all() {
        for version in lo..=hi {
            let mut buf = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(api as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some("fuzz".into()))
                .encode(&mut buf, api.request_header_version(version))
                .expect("header");
            if default_body(api).encode(&mut buf, version).is_ok() {
                write("kafka_request", &format!("{}-v{version}", api as i16), &buf);
            }
        }
    }
}

fn default_body(api: ApiKey) -> RequestKind {
    use kafka_protocol::messages as m;
    match api {
        ApiKey::Produce => RequestKind::Produce(m::ProduceRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(m::FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(m::ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(m::MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(m::ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(m::CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(m::DeleteTopicsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(m::InitProducerIdRequest::default()),
        ApiKey::FindCoordinator => {
            RequestKind::FindCoordinator(m::FindCoordinatorRequest::default())
        }
        ApiKey::JoinGroup => RequestKind::JoinGroup(m::JoinGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(m::SyncGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(m::HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(m::LeaveGroupRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(m::OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(m::OffsetFetchRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(m::ListGroupsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(m::DescribeGroupsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(m::DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(m::OffsetDeleteRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(m::CreatePartitionsRequest::default())
        }
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(m::DescribeConfigsRequest::default())
        }
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(m::AlterConfigsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(m::IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(m::DeleteRecordsRequest::default()),
        ApiKey::DescribeCluster => {
            RequestKind::DescribeCluster(m::DescribeClusterRequest::default())
        }
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(m::OffsetForLeaderEpochRequest::default())
        }
        ApiKey::ConsumerGroupHeartbeat => {
            RequestKind::ConsumerGroupHeartbeat(m::ConsumerGroupHeartbeatRequest::default())
        }
        ApiKey::ConsumerGroupDescribe => {
            RequestKind::ConsumerGroupDescribe(m::ConsumerGroupDescribeRequest::default())
        }
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(m::SaslHandshakeRequest::default()),
        ApiKey::SaslAuthenticate => {
            RequestKind::SaslAuthenticate(m::SaslAuthenticateRequest::default())
        }
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
            m::DescribeUserScramCredentialsRequest::default(),
        ),
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(m::AlterUserScramCredentialsRequest::default())
        }
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(m::DescribeAclsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(m::CreateAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(m::DeleteAclsRequest::default()),
        other => panic!("{other:?} is advertised but has no seed"),
    }
}

fn sample_records() -> Vec<Record> {
    vec![
        Record {
            key: Some(b"key".to_vec()),
            value: Some(b"value one".to_vec()),
            timestamp_delta: 0,
        },
        Record {
            key: None,
            value: Some(b"value two".to_vec()),
            timestamp_delta: 7,
        },
    ]
}

fn record_batches() {
    for codec in 0..=compression::ZSTD {
        let b = batch::build_compressed_batch(&sample_records(), 1_700_000_000_000, codec)
            .expect("batch");
        // Switches: store as the batch's own codec; then recompressed to zstd.
        write(
            "record_batch",
            &format!("codec{codec}"),
            &[&[0x07][..], &b].concat(),
        );
        write(
            "record_batch",
            &format!("codec{codec}-to-zstd"),
            &[&[0x04][..], &b].concat(),
        );
        let plain = batch::build_batch(&sample_records(), 1_700_000_000_000);
        let wrapped = [&[0x17, codec as u8, 2][..], &plain[batch::HEADER_LEN..]].concat();
        write("record_batch", &format!("wrapped{codec}"), &wrapped);
    }
    let sarama = batch::build_sarama_batch(1000, &[0, 40], compression::GZIP).expect("batch");
    write(
        "record_batch",
        "sarama-log-append",
        &[&[0x0f][..], &sarama].concat(),
    );
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; frame::FRAME_HEADER_LEN];
    frame::write_header(&mut out, payload);
    out.extend_from_slice(payload);
    out
}

fn frames() {
    let mut segment = Vec::new();
    for codec in [compression::NONE, compression::LZ4] {
        let b = batch::build_compressed_batch(&sample_records(), 0, codec).expect("batch");
        segment.extend(framed(&b));
    }
    write(
        "frame_reader",
        "two-frames",
        &[&[0, 31][..], &segment].concat(),
    );
    let torn = &segment[..segment.len() - 5];
    write("frame_reader", "torn-tail", &[&[0, 0][..], torn].concat());
    let mut flipped = segment.clone();
    flipped[20] ^= 0x10;
    write(
        "frame_reader",
        "flipped-byte",
        &[&[1, 0][..], &flipped].concat(),
    );
}

/// `[kind][length u16][body]`, the record form the `raft_wal` target frames.
fn wal_record(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).expect("short body");
    [&[kind][..], &len.to_be_bytes(), body].concat()
}

fn raft_entry(index: u64, term: u64) -> Vec<u8> {
    use protobuf::Message as _;
    let mut entry = raft::eraftpb::Entry::default();
    entry.set_index(index);
    entry.set_term(term);
    entry.set_data(
        CommandEnvelope::new(index, MetadataCommand::AllocateProducerId)
            .encode()
            .expect("envelope")
            .into(),
    );
    entry.write_to_bytes().expect("entry")
}

fn raft_wal() {
    use protobuf::Message as _;
    let mut hard_state = raft::eraftpb::HardState::default();
    hard_state.set_term(1);
    hard_state.set_vote(1);
    hard_state.set_commit(2);
    let hard_state = hard_state.write_to_bytes().expect("hard state");
    let mut log: Vec<u8> = vec![0];
    for index in 1..=3 {
        log.extend(wal_record(1, &raft_entry(index, 1)));
    }
    log.extend(wal_record(2, &hard_state));
    write("raft_wal", "entries-and-hard-state", &log);
    log.extend_from_slice(&[0, 0, 0, 9, 1, 2]);
    write("raft_wal", "torn-tail", &log);
    let mut snapshot = raft::eraftpb::Snapshot::default();
    snapshot.mut_metadata().set_index(2);
    snapshot.mut_metadata().set_term(1);
    snapshot
        .mut_metadata()
        .set_conf_state(raft::eraftpb::ConfState::from((vec![1], vec![])));
    snapshot.set_data(
        Snapshot::encode(&MetadataState::default())
            .expect("state")
            .into(),
    );
    let mut after: Vec<u8> = vec![1];
    after.extend(wal_record(0, &snapshot.write_to_bytes().expect("snapshot")));
    after.extend(wal_record(1, &raft_entry(3, 1)));
    after.extend(wal_record(2, &hard_state));
    write("raft_wal", "snapshot-then-entries", &after);
}

fn peer_messages() {
    let mut entry = raft::eraftpb::Entry::default();
    entry.set_term(3);
    entry.set_index(9);
    entry.set_data(
        CommandEnvelope::new(1, MetadataCommand::AllocateProducerId)
            .encode()
            .expect("envelope")
            .into(),
    );
    let mut raft = raft::eraftpb::Message::default();
    raft.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
    raft.set_to(2);
    raft.set_term(3);
    raft.set_log_term(2);
    raft.set_index(8);
    raft.set_commit(7);
    raft.set_entries(vec![entry].into());
    let messages = [
        ("raft-append", PeerMessage::Raft(raft)),
        (
            "forward",
            PeerMessage::Forward {
                request_id: 5,
                command: MetadataCommand::DeleteTopic { name: "t".into() },
            },
        ),
        (
            "forward-reply",
            PeerMessage::ForwardReply {
                request_id: 5,
                outcome: ForwardOutcome::Applied {
                    index: 12,
                    outcome: ApplyOutcome::ProducerId(4),
                },
            },
        ),
    ];
    for (name, message) in messages {
        let bytes = message.encode(1).expect("peer message");
        write("peer_message", name, &bytes[frame::FRAME_HEADER_LEN..]);
    }
}

fn metadata() {
    let commands = vec![
        MetadataCommand::RegisterBroker {
            broker_id: 4,
            host: "h".into(),
            port: 1,
            rack: Some("r".into()),
            incarnation: 2,
            listeners: Vec::new(),
            acks_before_fsync: false,
            short_copies: Vec::new(),
        },
        MetadataCommand::CreateTopic {
            name: "u".into(),
            topic_id: "BBBBBBBBBBBBBBBBBBBBBB".into(),
            partitions: vec![vec![1, 2]],
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        },
        MetadataCommand::CreatePartitions {
            topic: "t".into(),
            new_partitions: vec![vec![3, 1]],
        },
        MetadataCommand::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader_epoch: 0,
            isr: vec![1, 2],
            partition_epoch: Some(0),
        },
        MetadataCommand::UpdatePartition {
            topic: "t".into(),
            partition: 1,
            leader: Some(3),
            leader_epoch: 1,
            isr: vec![3],
        },
        MetadataCommand::FenceBroker { broker_id: 2 },
        MetadataCommand::AllocateProducerId,
        MetadataCommand::DeleteGroupOffsets {
            group: "g".into(),
            partitions: Some(vec![("t".into(), 0)]),
        },
        MetadataCommand::DeleteTopic { name: "t".into() },
    ];
    let lines: Vec<Vec<u8>> = commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            CommandEnvelope::new(i as u64, c)
                .encode()
                .expect("envelope")
        })
        .collect();
    let snapshot = Snapshot::encode(&MetadataState::default()).expect("snapshot");
    write(
        "metadata",
        "commands",
        &[b"-".to_vec(), lines.join(&b'\n')].join(&b'\n'),
    );
    write(
        "metadata",
        "snapshot-then-commands",
        &[snapshot, lines.join(&b'\n')].join(&b'\n'),
    );
}

fn sasl() {
    use chronik_fuzz::{ITERATIONS, SALT, SERVER_NONCE};
    write("sasl", "plain", b"\x00\x00alice\x00alice-secret");
    write("sasl", "plain-wrong", b"\x00alice\x00alice\x00nope");
    for (switch, mechanism) in [(1u8, Mechanism::Sha256), (2, Mechanism::Sha512)] {
        let mut client = ClientExchange::new(mechanism, "alice", "alice-secret", "clientnonce");
        let first = client.client_first();
        let server_first = format!(
            "r=clientnonce{SERVER_NONCE},s={},i={ITERATIONS}",
            BASE64.encode(SALT)
        );
        let last = client
            .client_final(server_first.as_bytes())
            .expect("client final");
        let input = [&[switch][..], &first, &[0xfe], &last].concat();
        write("sasl", &format!("scram-{}", mechanism.name()), &input);
    }
}
