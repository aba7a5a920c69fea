//! The storage faults of issue 12 against a whole broker (in-process, real files):
//! acknowledged records, a clean shutdown, one flipped byte on disk, a restart, and
//! what a consumer can read afterwards (R-RECOVER-5, R-LOG-13).

use bytes::Bytes;
use chronik::broker::{BrokerConfig, RunningBroker};
use chronik::cluster::client::KafkaConnection;
use chronik::log::batch::{build_simple_batch, BatchHeader};
use chronik::metadata::MetadataCommand;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: chronik::alloc_guard::GuardedAlloc = chronik::alloc_guard::GuardedAlloc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(10);
const KAFKA_STORAGE_ERROR: i16 = 56;

async fn start(dir: &Path) -> Result<RunningBroker, Box<dyn std::error::Error>> {
    let config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        tick_ms: 10,
        ..BrokerConfig::default()
    };
    let broker = RunningBroker::start(config).await?;
    let handle = broker.broker.consensus.clone();
    tokio::time::timeout(TIMEOUT, async {
        while !handle.view().state.brokers.contains_key(&1) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    Ok(broker)
}

async fn connect(broker: &RunningBroker) -> Result<KafkaConnection, Box<dyn std::error::Error>> {
    Ok(
        KafkaConnection::connect(&broker.local_addr().to_string(), "faults".into(), TIMEOUT)
            .await?,
    )
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("c"))
}

async fn produce(
    conn: &mut KafkaConnection,
    records: Vec<u8>,
) -> Result<i64, Box<dyn std::error::Error>> {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let ResponseKind::Produce(r) = conn
        .call(ApiKey::Produce, 9, &RequestKind::Produce(request), TIMEOUT)
        .await?
    else {
        return Err("not a Produce response".into());
    };
    let p = &r.responses[0].partition_responses[0];
    if p.error_code != 0 {
        return Err(format!("produce failed with {}", p.error_code).into());
    }
    Ok(p.base_offset)
}

/// (error code, high watermark, records: (base offset, record count) per batch).
type Fetched = (i16, i64, Vec<(u64, u64)>);

async fn fetch(
    conn: &mut KafkaConnection,
    offset: i64,
) -> Result<Fetched, Box<dyn std::error::Error>> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(64 * 1024)])]);
    let ResponseKind::Fetch(r) = conn
        .call(ApiKey::Fetch, 12, &RequestKind::Fetch(request), TIMEOUT)
        .await?
    else {
        return Err("not a Fetch response".into());
    };
    let p = &r.responses[0].partitions[0];
    let mut batches = Vec::new();
    let mut rest: &[u8] = p.records.as_deref().unwrap_or(&[]);
    while rest.len() >= 12 {
        let len = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize + 12;
        let header = BatchHeader::parse(&rest[..len.min(rest.len())])?;
        batches.push((header.base_offset as u64, header.record_count as u64));
        rest = &rest[len.min(rest.len())..];
    }
    Ok((p.error_code, p.high_watermark, batches))
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "log")
                && path.parent().is_some_and(|p| p.ends_with("c-0"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Issue 12's first case: 5,000 acknowledged records, a clean shutdown, one flipped
/// byte in an early batch of the active segment. After a restart every record but
/// the damaged batch's is readable, the damaged offsets answer KAFKA_STORAGE_ERROR,
/// and the high watermark stays at 5,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_recover_5_a_flipped_byte_after_a_clean_shutdown_loses_only_its_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    produce_5000(dir.path(), Default::default()).await?;
    let segments = segment_files(dir.path());
    assert_eq!(segments.len(), 1, "{segments:?}");
    // Frames are equal in size here: byte 40 of the 51st frame holds offsets 500..510.
    flip(&segments[0], 500, 50)?;
    assert_reads_all_but(dir.path(), 500).await
}

/// Issue 12's second case: one flipped byte in a sealed segment. Reads before and
/// after the damaged batch, in that segment and the others, still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_recover_5_a_flipped_byte_in_a_sealed_segment_loses_only_its_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let configs = [("segment.bytes".to_string(), "16384".to_string())].into();
    produce_5000(dir.path(), configs).await?;
    let segments = segment_files(dir.path());
    assert!(segments.len() > 3, "{segments:?}");
    let base = |p: &Path| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .ok_or("segment name")?)
    };
    // The middle batch of the second (sealed) segment; its batches are 10 offsets.
    let batches = (base(&segments[2])? - base(&segments[1])?) / 10;
    flip(&segments[1], batches, batches / 2)?;
    assert_reads_all_but(dir.path(), (base(&segments[1])? + batches / 2 * 10) as i64).await
}

/// Flips byte 40 of frame `frame` of a segment made of `frames` equal frames.
fn flip(segment: &Path, frames: usize, frame: usize) -> TestResult {
    let mut bytes = std::fs::read(segment)?;
    let frame_len = bytes.len() / frames;
    assert_eq!(
        frame_len * frames,
        bytes.len(),
        "frames are not all the same size"
    );
    bytes[frame * frame_len + 40] ^= 0x01;
    std::fs::write(segment, &bytes)?;
    Ok(())
}

/// A broker in `dir` with topic c (one partition) and 5,000 acknowledged records in
/// 500 batches of 10, cleanly shut down.
async fn produce_5000(
    dir: &Path,
    configs: std::collections::BTreeMap<String, String>,
) -> TestResult {
    let broker = start(dir).await?;
    broker
        .broker
        .consensus
        .propose(
            MetadataCommand::CreateTopic {
                name: "c".into(),
                topic_id: "c-id".into(),
                partitions: vec![vec![1]],
                configs,
            },
            TIMEOUT,
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    broker.broker.reconcile_partitions();
    let mut conn = connect(&broker).await?;
    for i in 0..500 {
        // Timestamps of now, or retention by time would delete the old segments.
        let now = chronik::broker::now_ms() as i64;
        let base = produce(&mut conn, build_simple_batch(10, 20, b'a', now)).await?;
        assert_eq!(base, i * 10);
    }
    drop(conn);
    broker.shutdown().await;
    Ok(())
}

/// Restarts the broker in `dir` and reads topic c from 0 to 5,000 as a consumer
/// would: every batch but the one at `damaged` reads back, that one answers
/// KAFKA_STORAGE_ERROR, and the high watermark stays 5,000.
async fn assert_reads_all_but(dir: &Path, damaged: i64) -> TestResult {
    let broker = start(dir).await?;
    broker.broker.reconcile_partitions();
    let mut conn = connect(&broker).await?;
    // The restarted node serves once its partitions are reconciled with the metadata.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let (code, hw, _) = fetch(&mut conn, 0).await?;
        if code == 0 && hw == 5000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not serving: code {code}, hw {hw}"
        );
        broker.broker.reconcile_partitions();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut readable = 0u64;
    let mut offset = 0i64;
    let mut errors = Vec::new();
    while offset < 5000 {
        let (code, hw, batches) = fetch(&mut conn, offset).await?;
        assert_eq!(hw, 5000, "high watermark at offset {offset}");
        if code == KAFKA_STORAGE_ERROR {
            errors.push(offset);
            // A consumer's way past the damage: seek to the next batch.
            offset += 10;
            continue;
        }
        assert_eq!(code, 0, "fetch at {offset}");
        assert!(!batches.is_empty(), "empty fetch at {offset}");
        for (base, count) in batches {
            assert_eq!(base, offset as u64);
            readable += count;
            offset += count as i64;
        }
    }
    assert_eq!(errors, vec![damaged]);
    assert_eq!(readable, 4990);
    drop(conn);
    broker.shutdown().await;
    Ok(())
}
