//! The steps of the replica fetch protocol a broker takes on one partition, and the
//! lines of a replication trace (C-9, spec/conformance.md): the simulator's hosts
//! report the steps after every event, and a broker started with
//! `--replication-trace` writes them with what it shows of the partition after each
//! change, one JSON line each, stamped with CLOCK_MONOTONIC so that the traces of
//! several processes merge in the order their steps happened. Pure: the types and
//! their encoding only.

use super::shown::{for_each_batch, PartitionMeta, PartitionShown};
use super::steps::PartitionKey;
use crate::log::batch::visit_records;
use serde::{Deserialize, Serialize};

/// What tells one Fetch answer's records from another's: where they start and how
/// many there are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecords {
    pub first: Option<u64>,
    pub count: u64,
}

impl AnswerRecords {
    /// The records of concatenated batches; an answer without records has none.
    pub fn of(records: Option<&[u8]>) -> Result<Self, String> {
        let mut first = None;
        let mut count = 0;
        for_each_batch(records.unwrap_or_default(), &mut |batch| {
            visit_records(batch, 1 << 20, &mut |r| {
                first.get_or_insert(r.offset);
                count += 1;
            })
            .map(|_| ())
        })?;
        Ok(AnswerRecords { first, count })
    }
}

/// A step of the replica fetch protocol (and the ISR, deletion and repair steps
/// that like a fetch show nothing at the moment and decide what happens later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchStep {
    /// This broker, following, sent its leader a Fetch from `offset`.
    Asked { key: PartitionKey, offset: u64 },
    /// This broker, leading, served or refused a follower's Fetch from `offset`.
    Served {
        key: PartitionKey,
        follower: i32,
        offset: u64,
    },
    /// A follower's Fetch from `offset` reached this broker before it knew the
    /// partition (UNKNOWN_TOPIC_OR_PARTITION): as if lost.
    Unknown {
        key: PartitionKey,
        follower: i32,
        offset: u64,
    },
    /// This broker handled a Fetch answer from its leader: the epoch it fetched
    /// under and the records it carried, or the leader's log start where the answer
    /// was OFFSET_OUT_OF_RANGE.
    Answered {
        key: PartitionKey,
        epoch: i32,
        records: Result<AnswerRecords, String>,
        refused_at: Option<u64>,
    },
    /// The network dropped this broker's Fetch from `offset` (the simulator's, which
    /// knows).
    Dropped { key: PartitionKey, offset: u64 },
    /// This broker's Fetch from `offset` got no answer: the request or its answer
    /// was lost (a real fetcher's call failed, and it cannot tell which).
    Unanswered { key: PartitionKey, offset: u64 },
    /// An answer with records (or OFFSET_OUT_OF_RANGE, naming the leader's log
    /// start) to this broker's Fetch was lost on its way.
    AnswerDropped {
        key: PartitionKey,
        epoch: i32,
        records: Result<AnswerRecords, String>,
        refused_at: Option<u64>,
    },
    /// This broker, leading, answered a follower's OffsetForLeaderEpoch (not with
    /// an error).
    EpochServed { key: PartitionKey, follower: i32 },
    /// This broker handled an OffsetForLeaderEpoch answer (not an error) it asked
    /// under `epoch`.
    EpochAnswered { key: PartitionKey, epoch: i32 },
    /// An OffsetForLeaderEpoch answer (not an error) to this broker was lost.
    EpochAnswerDropped { key: PartitionKey, epoch: i32 },
    /// This broker, leading, appended `count` records of a produce (a real broker's
    /// batch; the simulator's producers send one record at a time and leave it
    /// unreported).
    Appended { key: PartitionKey, count: u64 },
    /// This broker, leading, proposed this ISR (an AlterPartition).
    IsrProposed { key: PartitionKey, isr: Vec<i32> },
    /// This broker, leading, took a DeleteRecords below `offset`; its answer waits
    /// for the low watermark.
    Deleted { key: PartitionKey, offset: u64 },
    /// This broker's copy was damaged in the batch from `offset`, among records
    /// another durable record follows (the simulator injects it).
    Damaged { key: PartitionKey, offset: u64 },
    /// This broker proposed its damaged copy's repair (a `RepairReplica`) under
    /// this leader epoch and partition epoch.
    RepairProposed {
        key: PartitionKey,
        leader_epoch: i32,
        partition_epoch: u64,
    },
}

impl FetchStep {
    pub fn key(&self) -> &PartitionKey {
        match self {
            FetchStep::Asked { key, .. }
            | FetchStep::Served { key, .. }
            | FetchStep::Unknown { key, .. }
            | FetchStep::Answered { key, .. }
            | FetchStep::Dropped { key, .. }
            | FetchStep::Unanswered { key, .. }
            | FetchStep::AnswerDropped { key, .. }
            | FetchStep::EpochServed { key, .. }
            | FetchStep::EpochAnswered { key, .. }
            | FetchStep::EpochAnswerDropped { key, .. }
            | FetchStep::IsrProposed { key, .. }
            | FetchStep::Appended { key, .. }
            | FetchStep::Deleted { key, .. }
            | FetchStep::Damaged { key, .. }
            | FetchStep::RepairProposed { key, .. } => key,
        }
    }
}

/// What a replication trace line says happened at one broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicationEvent {
    /// The process started: every earlier state of the broker is gone but its disk.
    Start,
    /// What the broker shows of the partition after a change, with the steps it took
    /// since its last line.
    Shown {
        shown: PartitionShown,
        steps: Vec<FetchStep>,
    },
    /// The broker applied the metadata command at this Raft index: what it left of
    /// the partition and the registrations.
    Applied { index: u64, meta: PartitionMeta },
    /// The broker, leading, answered a produce as written: the digests of the values
    /// from `offset` on.
    Acknowledged { offset: u64, values: Vec<u64> },
    /// The broker, leading, answered a DeleteRecords as done below `offset`.
    DeletionAcknowledged { offset: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationTraceLine {
    pub at_ns: u64,
    pub broker: i32,
    pub incarnation: u64,
    pub event: ReplicationEvent,
}

impl ReplicationTraceLine {
    pub fn encode(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| format!("{e} in {line:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::shown::{LeaderShown, LogShown, Registration};
    use std::sync::Arc;

    #[test]
    fn c_9_a_replication_trace_line_reads_back_as_written() {
        let key = ("orders".to_string(), 0);
        let meta = PartitionMeta {
            partition: None,
            brokers: [(
                2,
                Registration {
                    incarnation: 3,
                    fenced: true,
                    fenced_at: 17,
                },
            )]
            .into(),
            min_isr: Some(2),
        };
        let shown = PartitionShown {
            meta: meta.clone(),
            log: Some(LogShown {
                start: 1,
                end: 4,
                cut_count: 2,
                durable: 3,
                hw: 2,
                records: Arc::new(vec![Some((0, 7)), None, Some((1, u64::MAX))]),
            }),
            gate: Some(1),
            leader: Some(LeaderShown {
                follower_end: [(2, 3)].into(),
                maximal_isr: vec![1, 2],
            }),
        };
        let steps = vec![
            FetchStep::Asked {
                key: key.clone(),
                offset: 4,
            },
            FetchStep::Answered {
                key: key.clone(),
                epoch: 1,
                records: Ok(AnswerRecords {
                    first: Some(4),
                    count: 2,
                }),
                refused_at: None,
            },
            FetchStep::AnswerDropped {
                key,
                epoch: 1,
                records: Err("short batch".into()),
                refused_at: Some(1),
            },
        ];
        for event in [
            ReplicationEvent::Start,
            ReplicationEvent::Shown { shown, steps },
            ReplicationEvent::Applied { index: 9, meta },
            ReplicationEvent::Acknowledged {
                offset: 3,
                values: vec![1, 2],
            },
            ReplicationEvent::DeletionAcknowledged { offset: 2 },
        ] {
            let line = ReplicationTraceLine {
                at_ns: 42,
                broker: 1,
                incarnation: 5,
                event,
            };
            let encoded = line.encode();
            assert_eq!(ReplicationTraceLine::parse(&encoded), Ok(line));
            // A killed process tears at most its last line, which reads as torn.
            assert!(ReplicationTraceLine::parse(&encoded[..encoded.len() - 2]).is_err());
        }
    }

    #[test]
    fn c_9_an_answer_without_records_has_none() {
        assert_eq!(
            AnswerRecords::of(None),
            Ok(AnswerRecords {
                first: None,
                count: 0
            })
        );
        assert!(AnswerRecords::of(Some(&[0; 5])).is_err());
    }
}
