//! What one broker shows of one partition at a moment, for trace validation of
//! replication (C-9, spec/conformance.md): its applied metadata of the partition and
//! of the brokers' registrations, its log (start, end, durable end, high watermark,
//! and each record's leader epoch and a digest of its value), the leader epoch it
//! follows, and, leading, what it holds of its followers. The simulator takes one
//! from each node after every event; a broker started with `--replication-trace`
//! writes one per change of the partition, so that a multi-process run is checked
//! against the same model. Pure: reads of the core's state, and serde.

use super::partitions::Partitions;
use super::steps::LocalView;
use crate::consensus::entry_digest;
use crate::log::batch::visit_records;
use crate::log::{LogError, PartitionLog};
use crate::metadata::{BrokerInfo, MetadataState, PartitionInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A broker's registration as the metadata holds it: which start of the broker
/// process, and whether and at which Raft index it was last fenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub incarnation: u64,
    pub fenced: bool,
    pub fenced_at: u64,
}

impl From<&BrokerInfo> for Registration {
    fn from(b: &BrokerInfo) -> Self {
        Registration {
            incarnation: b.incarnation,
            fenced: b.fenced,
            fenced_at: b.fenced_at,
        }
    }
}

/// The metadata of one partition as some applied state holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// `None` before the partition's creation is applied.
    pub partition: Option<PartitionInfo>,
    /// Every registered broker.
    pub brokers: BTreeMap<i32, Registration>,
    /// The topic's `min.insync.replicas`, if set and a number.
    pub min_isr: Option<u8>,
}

impl PartitionMeta {
    pub fn of(state: &MetadataState, topic: &str, partition: i32) -> Self {
        PartitionMeta {
            partition: state.partition(topic, partition).cloned(),
            brokers: state
                .brokers
                .iter()
                .map(|(id, b)| (*id, Registration::from(b)))
                .collect(),
            min_isr: state
                .topics
                .get(topic)
                .and_then(|t| t.configs.get("min.insync.replicas"))
                .and_then(|v| v.parse().ok()),
        }
    }
}

/// One record of a log: the leader epoch of its batch and the digest of its value
/// (FNV-1a, as Raft entries are compared); `None` where the copy is damaged and
/// the bytes cannot be read (R-LOG-13).
pub type RecordShown = Option<(i32, u64)>;

/// A log's end, its cut count (`PartitionLog::cut_count`) and its start: records
/// read at the same three are the records there now.
pub type ReadAt = (u64, u64, u64);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogShown {
    pub start: u64,
    pub end: u64,
    pub cut_count: u64,
    pub durable: u64,
    pub hw: u64,
    /// From `start` to `end`.
    pub records: Arc<Vec<RecordShown>>,
}

impl LogShown {
    pub fn read_at(&self) -> ReadAt {
        (self.end, self.cut_count, self.start)
    }
}

/// What a leading broker holds of its followers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderShown {
    /// Each follower's log end reported in the current leader epoch.
    pub follower_end: BTreeMap<i32, u64>,
    /// The applied ISR plus the members of its proposals that may still be applied.
    pub maximal_isr: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionShown {
    pub meta: PartitionMeta,
    /// `None` while no log of the partition is open here.
    pub log: Option<LogShown>,
    /// The leader epoch the log was last truncated for, following.
    pub gate: Option<i32>,
    /// `Some` exactly while this broker leads the partition.
    pub leader: Option<LeaderShown>,
}

/// The records last read of one log, read again only when its end, cuts or start
/// moved.
#[derive(Default)]
pub struct LogReads {
    last: Option<(ReadAt, Arc<Vec<RecordShown>>)>,
}

impl PartitionShown {
    /// What broker `view.me` shows of `topic`/`partition` now. Fails only where its
    /// log cannot be read (other than damage) or holds a batch that does not parse.
    pub fn of(
        view: &LocalView,
        (topic, partition): (&str, i32),
        reads: &mut LogReads,
    ) -> Result<Self, String> {
        let meta = PartitionMeta::of(view.state, topic, partition);
        let Some(log) = view.partitions.get(topic, partition) else {
            return Ok(PartitionShown {
                meta,
                log: None,
                gate: None,
                leader: None,
            });
        };
        let key = (topic.to_string(), partition);
        let leader = match view.led_log(topic, partition) {
            Ok((_, info)) => Some(leader_shown(view.partitions, &key, info)),
            Err(_) => None,
        };
        Ok(PartitionShown {
            meta,
            log: Some(reads.shown(&log)?),
            gate: view.partitions.follower_epoch(&key),
            leader,
        })
    }
}

fn leader_shown(partitions: &Partitions, key: &(String, i32), info: &PartitionInfo) -> LeaderShown {
    let follower_end = info
        .replicas
        .iter()
        .filter(|r| info.leader != Some(**r))
        .filter_map(|r| Some((*r, partitions.follower_end(key, info.leader_epoch, *r)?)))
        .collect();
    LeaderShown {
        follower_end,
        maximal_isr: partitions.maximal_isr(key, info),
    }
}

impl LogReads {
    fn shown(&mut self, log: &PartitionLog) -> Result<LogShown, String> {
        let at = log.positions();
        let read_at = (at.end, at.cut_count, at.start);
        let records = match &self.last {
            Some((last_at, records)) if *last_at == read_at => Arc::clone(records),
            _ => {
                let records = Arc::new(read_records(log, at.start, at.end)?);
                self.last = Some((read_at, Arc::clone(&records)));
                records
            }
        };
        Ok(LogShown {
            start: at.start,
            end: at.end,
            cut_count: at.cut_count,
            durable: at.durable,
            hw: at.high_watermark,
            records,
        })
    }
}

/// The records of `[start, end)`, a damaged range as `None`s.
fn read_records(log: &PartitionLog, start: u64, end: u64) -> Result<Vec<RecordShown>, String> {
    let mut records = Vec::new();
    let mut offset = start;
    while offset < end {
        let read = match log.read(offset, 1 << 20, end) {
            Ok(read) => read,
            // The broker serves around a damaged range (R-LOG-13).
            Err(LogError::Damaged {
                first_offset,
                end_offset,
                ..
            }) if first_offset <= offset && offset < end_offset => {
                let damaged = end_offset.min(end) - offset;
                records.extend((0..damaged).map(|_| None));
                offset = end_offset;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if read.batch_count == 0 {
            break;
        }
        visit_batches(&read.records, &mut |epoch, at, value| {
            // A batch the start lies inside keeps its deleted records.
            if at >= start && at < end {
                records.push(Some((epoch, value)));
            }
        })?;
        offset = read.next_offset;
    }
    Ok(records)
}

/// The digests of the record values in concatenated batches, in order: how a trace
/// names what a produce wrote.
pub fn value_digests(batches: &[u8]) -> Result<Vec<u64>, String> {
    let mut digests = Vec::new();
    visit_batches(batches, &mut |_, _, digest| digests.push(digest))?;
    Ok(digests)
}

/// Calls `visit` with the leader epoch, offset and value digest of every record in
/// concatenated batches.
fn visit_batches(bytes: &[u8], visit: &mut dyn FnMut(i32, u64, u64)) -> Result<(), String> {
    for_each_batch(bytes, &mut |batch| {
        let mut digests = Vec::new();
        let header = visit_records(batch, 1 << 20, &mut |r| {
            digests.push((r.offset, entry_digest(r.value.unwrap_or_default())));
        })?;
        for (offset, digest) in digests {
            visit(header.partition_leader_epoch, offset, digest);
        }
        Ok(())
    })
}

/// Calls `visit` with each batch of concatenated RecordBatch bytes, by their length
/// fields; a length past the bytes is an error.
pub(super) fn for_each_batch(
    bytes: &[u8],
    visit: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut at = 0;
    while at < bytes.len() {
        let length = bytes
            .get(at + 8..at + 12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_be_bytes)
            .ok_or("short batch")?;
        let end = at + 12 + usize::try_from(length).map_err(|_| "negative batch length")?;
        visit(bytes.get(at..end).ok_or("batch past the bytes")?)?;
        at = end;
    }
    Ok(())
}
