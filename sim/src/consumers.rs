//! Simulated consumers of the replicated topic: one per partition, fetching from the
//! leader its metadata names, from the offset after the last record it read. What
//! they read is checked as it arrives (offsets increase within an answer; an offset
//! read twice holds the same record) and at the end (every record a consumer read is still in
//! the leader's log at that offset: a record visible below the high watermark is
//! never taken back, whatever crashed or moved in between; R-REPL-1, R-RECOVER-3).

use crate::host::Message;
use crate::records::{fetched_records, PARTITIONS, TOPIC};
use chronik_core::errors::{self, ErrorCode};
use chronik_core::replication::PartitionKey;
use std::collections::BTreeMap;

/// A fetch not answered by then is taken as lost.
const ANSWER_TIMEOUT_MS: u64 = 1_000;
const POLL_MS: u64 = 20;

#[derive(Default)]
struct Consumer {
    position: u64,
    /// (request, sent at) of the fetch in flight.
    in_flight: Option<(u64, u64)>,
    next_poll: u64,
    /// Every record read, by offset.
    read: BTreeMap<u64, Vec<u8>>,
}

#[derive(Default)]
pub struct Consumers {
    by_partition: BTreeMap<i32, Consumer>,
    next_request: u64,
    pub records_read: u64,
    /// Broken rules seen as records arrived.
    pub violations: Vec<String>,
}

impl Consumers {
    pub fn new() -> Self {
        Consumers {
            by_partition: (0..PARTITIONS).map(|p| (p, Consumer::default())).collect(),
            ..Consumers::default()
        }
    }

    /// The fetches to send now, each to where `leader_of` says the leader is.
    pub fn tick(
        &mut self,
        now: u64,
        leader_of: impl Fn(&PartitionKey) -> Option<u64>,
    ) -> Vec<(u64, Message)> {
        let mut out = Vec::new();
        for (&partition, consumer) in &mut self.by_partition {
            let waiting = consumer
                .in_flight
                .is_some_and(|(_, at)| now < at + ANSWER_TIMEOUT_MS);
            if waiting || now < consumer.next_poll {
                continue;
            }
            let key = (TOPIC.to_string(), partition);
            let Some(leader) = leader_of(&key) else {
                continue;
            };
            self.next_request += 1;
            consumer.in_flight = Some((self.next_request, now));
            let request = self.next_request;
            let offset = consumer.position;
            out.push((
                leader,
                Message::ConsumerFetch {
                    request,
                    key,
                    offset,
                },
            ));
        }
        out
    }

    /// Every record the consumer of `partition` read, by offset.
    pub fn reads(&self, partition: i32) -> Option<&BTreeMap<u64, Vec<u8>>> {
        self.by_partition.get(&partition).map(|c| &c.read)
    }

    /// Where the consumer of `partition` will fetch next: it has read everything
    /// below.
    pub fn position(&self, partition: i32) -> u64 {
        self.by_partition.get(&partition).map_or(0, |c| c.position)
    }

    /// A fetch answer: the records (whole batches) from the asked offset. Refused
    /// below the log start, the consumer goes on from there (auto.offset.reset
    /// "earliest").
    pub fn answered(
        &mut self,
        now: u64,
        request: u64,
        answer: Result<Vec<u8>, ErrorCode>,
        log_start: u64,
    ) {
        let Some((&partition, consumer)) = self
            .by_partition
            .iter_mut()
            .find(|(_, c)| c.in_flight.is_some_and(|(r, _)| r == request))
        else {
            return;
        };
        consumer.in_flight = None;
        consumer.next_poll = now + POLL_MS;
        let records = match answer {
            Ok(records) => records,
            Err(errors::OFFSET_OUT_OF_RANGE) => {
                consumer.position = consumer.position.max(log_start);
                return;
            }
            Err(_) => return,
        };
        let seen = match fetched_records(partition, &records) {
            Ok(seen) => seen,
            Err(broken) => return self.violations.push(broken),
        };
        let mut last = None;
        for (offset, value) in seen {
            // A batch read again from its start (the asked offset lies inside it)
            // shows records read before: they must be the same records.
            if let Some(before) = consumer.read.get(&offset).filter(|v| **v != value) {
                self.violations.push(format!(
                    "I-6 p{partition}: offset {offset} read as {} and later as {}",
                    String::from_utf8_lossy(before),
                    String::from_utf8_lossy(&value)
                ));
            }
            if last.is_some_and(|l| offset <= l) {
                self.violations.push(format!(
                    "I-6 p{partition}: offset {offset} read after offset {last:?} in one answer"
                ));
            }
            last = Some(offset);
            if offset >= consumer.position {
                consumer.read.insert(offset, value);
                consumer.position = offset + 1;
                self.records_read += 1;
            }
        }
    }

    /// Every record read from `partition` against the leader's records below its
    /// high watermark at the end, from its log start (`deleted_below`) on.
    pub fn check(
        &self,
        partition: i32,
        held: &BTreeMap<u64, Vec<u8>>,
        deleted_below: u64,
    ) -> Vec<String> {
        let Some(consumer) = self.by_partition.get(&partition) else {
            return Vec::new();
        };
        consumer
            .read
            .iter()
            .filter(|(offset, _)| **offset >= deleted_below)
            .filter(|(offset, value)| held.get(offset) != Some(value))
            .take(3)
            .map(|(offset, value)| {
                format!(
                    "R-REPL-1 p{partition}: {} was read at offset {offset}, which the leader no \
                     longer holds (it holds {:?})",
                    String::from_utf8_lossy(value),
                    held.get(offset)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                )
            })
            .collect()
    }
}
