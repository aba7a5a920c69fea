//! A simulated admin client that deletes consumed records (DeleteRecords), as an
//! operator's "delete what every consumer has read" job does: now and then it asks a
//! partition's leader to delete below the offset both the partition's consumer and
//! the group have read up to. Checked at the end: once a deletion is acknowledged,
//! the records below it stay deleted on whichever replica leads, whatever crashed
//! or moved in between (R-WIRE-5). Records below any offset it asked for (answered
//! or not) may be gone, so the other checks excuse them (`deleted_below`).

use crate::host::Message;
use crate::records::{PARTITIONS, TOPIC};
use chronik_core::errors::ErrorCode;
use chronik_core::replication::PartitionKey;
use rand::Rng;
use std::collections::BTreeMap;

/// A DeleteRecords not answered by then is taken as lost (the admin client's
/// request timeout), and another may be sent.
const ANSWER_TIMEOUT_MS: u64 = 6_000;

#[derive(Default)]
pub struct Trimmer {
    next_request: u64,
    /// (request, sent at) of the deletion in flight.
    in_flight: Option<(u64, u64)>,
    /// Every deletion sent, by request: (partition, offset). An answer that comes
    /// after the client stopped waiting still tells what the cluster acknowledged.
    sent: BTreeMap<u64, (i32, u64)>,
    next_at: u64,
    /// The largest offset ever asked for, per partition.
    asked: BTreeMap<i32, u64>,
    /// The largest offset whose deletion was acknowledged, per partition, and when.
    acknowledged: BTreeMap<i32, (u64, u64)>,
    pub deletions_acknowledged: u64,
}

impl Trimmer {
    /// The deletion to send now, if one is due: to the leader `leader_of` names,
    /// below `read_by_all(partition)`, the offset every reader has read up to.
    pub fn tick(
        &mut self,
        now: u64,
        every_ms: u64,
        rng: &mut impl Rng,
        leader_of: impl Fn(&PartitionKey) -> Option<u64>,
        read_by_all: impl Fn(i32) -> u64,
    ) -> Option<(u64, Message)> {
        let waiting = self
            .in_flight
            .is_some_and(|(_, at)| now < at + ANSWER_TIMEOUT_MS);
        if every_ms == 0 || waiting || now < self.next_at {
            return None;
        }
        self.next_at = now + rng.gen_range(every_ms / 2..=every_ms + every_ms / 2);
        let partition = rng.gen_range(0..PARTITIONS);
        let offset = read_by_all(partition);
        let asked = self.asked.get(&partition).copied().unwrap_or(0);
        if offset <= asked {
            return None;
        }
        let key = (TOPIC.to_string(), partition);
        let leader = leader_of(&key)?;
        self.next_request += 1;
        let request = self.next_request;
        self.in_flight = Some((request, now));
        self.sent.insert(request, (partition, offset));
        self.asked.insert(partition, offset);
        let message = Message::DeleteRecords {
            request,
            key,
            offset: offset as i64,
        };
        Some((leader, message))
    }

    /// An answer: the low watermark, or an error. Returns a line for the trace.
    pub fn answered(
        &mut self,
        now: u64,
        request: u64,
        result: Result<u64, ErrorCode>,
    ) -> Option<String> {
        let (partition, offset) = self.sent.remove(&request)?;
        if self.in_flight.is_some_and(|(r, _)| r == request) {
            self.in_flight = None;
        }
        if let Ok(low) = result {
            if low >= offset {
                self.deletions_acknowledged += 1;
                let before = self.acknowledged.get(&partition).map_or(0, |(o, _)| *o);
                if offset > before {
                    self.acknowledged.insert(partition, (offset, now));
                }
            }
        }
        Some(format!(
            "trimmer: deletion {request} of p{partition} below {offset} answered {result:?}"
        ))
    }

    /// The highest offset an acknowledged deletion of `partition` deleted below.
    pub fn acknowledged_below(&self, partition: i32) -> u64 {
        self.acknowledged
            .get(&partition)
            .map_or(0, |(offset, _)| *offset)
    }

    /// Below this offset of `partition` records may have been deleted.
    pub fn deleted_below(&self, partition: i32) -> u64 {
        self.asked.get(&partition).copied().unwrap_or(0)
    }

    /// After settling: the leader of `partition` starts its log at `leader_start`,
    /// which must not be below an acknowledged deletion.
    pub fn check(&self, partition: i32, leader_start: u64) -> Option<String> {
        let (offset, at) = self.acknowledged.get(&partition)?;
        (leader_start < *offset).then(|| {
            format!(
                "R-WIRE-5 p{partition}: records below {offset} were deleted (acknowledged at \
                 {at} ms), but the leader's log starts at {leader_start} after settling"
            )
        })
    }
}
