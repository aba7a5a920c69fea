//! Helpers shared by the integration tests: the log's, and an in-process broker.
#![allow(dead_code)]

use chronik::disk::{Disk, MemDisk, RealDisk};
use chronik::log::batch::{self, Record};
use chronik::log::{FsyncPolicy, LogConfig, PartitionLog};
use std::path::Path;
use std::sync::Arc;

/// A batch whose content is determined by (partition, sequence), so any reader can
/// tell exactly which append it is looking at.
pub fn batch_for(partition: u32, seq: u64, records: usize, value_len: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..records)
        .map(|i| {
            let tag = format!("p{partition}-s{seq}-r{i}-");
            let value: Vec<u8> = tag.bytes().cycle().take(value_len.max(tag.len())).collect();
            Record {
                key: Some(seq.to_be_bytes().to_vec()),
                value: Some(value),
                timestamp_delta: i as i64,
            }
        })
        .collect();
    batch::build_batch(&records, 1_000_000 + seq as i64)
}

/// The bytes the log stores for `batch` appended at `base_offset` under `epoch`.
pub fn stored(batch: &[u8], base_offset: u64, epoch: i32) -> Vec<u8> {
    let mut b = batch.to_vec();
    batch::set_base_offset(&mut b, base_offset);
    batch::set_partition_leader_epoch(&mut b, epoch);
    b
}

pub fn small_segments(fsync: FsyncPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        fsync,
        ..LogConfig::default()
    }
}

pub fn mem() -> (MemDisk, Arc<dyn Disk>) {
    let disk = MemDisk::new();
    let shared: Arc<dyn Disk> = Arc::new(disk.clone());
    (disk, shared)
}

pub fn real() -> Arc<dyn Disk> {
    Arc::new(RealDisk)
}

/// Every batch in the log from its start, split into (base offset, bytes).
pub fn read_all(log: &PartitionLog) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = match log.read(offset, 64 * 1024, u64::MAX) {
            Ok(r) => r,
            Err(e) => panic!("read at {offset} failed: {e}"),
        };
        assert!(
            r.batch_count > 0,
            "read at {offset} below log end {end} returned nothing"
        );
        out.extend(split_batches(&r.records));
        offset = r.next_offset;
    }
    out
}

pub fn split_batches(mut records: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !records.is_empty() {
        let len =
            i32::from_be_bytes([records[8], records[9], records[10], records[11]]) as usize + 12;
        let base = u64::from_be_bytes(records[..8].try_into().unwrap_or([0; 8]));
        out.push((base, records[..len].to_vec()));
        records = &records[len..];
    }
    out
}

pub fn open(disk: &Arc<dyn Disk>, dir: &Path, config: LogConfig) -> PartitionLog {
    match PartitionLog::open(Arc::clone(disk), dir, config, None) {
        Ok(log) => log,
        Err(e) => panic!("open {} failed: {e}", dir.display()),
    }
}

/// Marks a batch as sent by an idempotent producer, fixing its CRC-32C.
pub fn with_producer(
    mut batch: Vec<u8>,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    batch::set_producer(&mut batch, producer_id, epoch, base_sequence);
    batch
}

/// Starts a broker in-process with `config` and waits until it has registered
/// itself (so Metadata lists it and it leads what it is given).
pub async fn start_broker(
    config: chronik::broker::BrokerConfig,
) -> Result<chronik::broker::RunningBroker, Box<dyn std::error::Error>> {
    let broker = chronik::broker::RunningBroker::start(config).await?;
    let handle = broker.broker.consensus.clone();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !handle.view().state.brokers.contains_key(&1) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await?;
    Ok(broker)
}
