//! Simulated idempotent producers at acks=all, two per partition of the replicated
//! topic (so that an offset given to one is another's record if it is ever reused),
//! each with one request in flight, retrying a batch (same producer id, epoch
//! and sequence) until it is answered with success; and the history their answers
//! make, checked at the end against what the cluster holds, in the manner of
//! Jepsen's Kafka workload: no acknowledged record lost, no record twice, one value
//! per offset, replicas agreeing below the high watermark (R-REPL-1, I-6).

use crate::host::Message;
use crate::records::{read_values, PARTITIONS, TOPIC};
use chronik_core::errors::ErrorCode;
use chronik_core::log::batch::{build_batch, set_producer, Record};
use chronik_core::log::PartitionLog;
use chronik_core::replication::PartitionKey;
use std::collections::BTreeMap;

/// The producer ids writing to each partition.
const PRODUCER_IDS: [i64; 2] = [1, 2];
/// An answer not back by then is taken as lost, and the batch is sent again.
const ANSWER_TIMEOUT_MS: u64 = 1_000;
const RETRY_BACKOFF_MS: u64 = 50;

struct InFlight {
    request: u64,
    value: u64,
    sequence: i32,
    sent_at: u64,
}

#[derive(Default)]
struct Producer {
    next_value: u64,
    sequence: i32,
    in_flight: Option<InFlight>,
    retry_at: u64,
    /// Acknowledged values and the offsets they were acknowledged at.
    acked: Vec<(u64, u64)>,
    /// Every request sent, by id, with its value: an earlier attempt's success
    /// may arrive after the producer moved on to a retry, and it counts too.
    attempts: BTreeMap<u64, u64>,
}

#[derive(Default)]
pub struct Producers {
    by_partition: BTreeMap<(i32, i64), Producer>,
    next_request: u64,
    pub acknowledged: u64,
    pub retries: u64,
}

fn value_bytes((partition, producer): (i32, i64), value: u64) -> Vec<u8> {
    format!("p{partition}-w{producer}-v{value}").into_bytes()
}

fn batch(writer: (i32, i64), value: u64, sequence: i32) -> Vec<u8> {
    let record = Record {
        key: None,
        value: Some(value_bytes(writer, value)),
        timestamp_delta: 0,
    };
    let mut batch = build_batch(&[record], 1_000);
    set_producer(&mut batch, writer.1, 0, sequence);
    batch
}

impl Producers {
    pub fn new() -> Self {
        Producers {
            by_partition: (0..PARTITIONS)
                .flat_map(|p| PRODUCER_IDS.map(|id| ((p, id), Producer::default())))
                .collect(),
            ..Producers::default()
        }
    }

    /// The requests to send now: a new value where nothing is in flight (while
    /// `writing`), the same batch again where an answer is overdue or refused.
    /// `leader_of` is the client's metadata: where it believes the leader is.
    pub fn tick(
        &mut self,
        now: u64,
        writing: bool,
        leader_of: impl Fn(&PartitionKey) -> Option<u64>,
    ) -> Vec<(u64, Message)> {
        let mut out = Vec::new();
        for (&writer, producer) in &mut self.by_partition {
            let partition = writer.0;
            let overdue = producer
                .in_flight
                .as_ref()
                .is_some_and(|f| now >= f.sent_at + ANSWER_TIMEOUT_MS);
            let idle = producer.in_flight.is_none() && now >= producer.retry_at;
            let (value, sequence) = match (&producer.in_flight, idle, overdue) {
                (Some(f), _, true) => (f.value, f.sequence),
                (None, true, _) if writing || producer.retry_at > 0 => {
                    let value = producer.next_value;
                    (value, producer.sequence)
                }
                _ => continue,
            };
            let key = (TOPIC.to_string(), partition);
            let Some(leader) = leader_of(&key) else {
                continue;
            };
            if producer.retry_at > 0 || overdue {
                self.retries += 1;
            }
            self.next_request += 1;
            producer.attempts.insert(self.next_request, value);
            producer.in_flight = Some(InFlight {
                request: self.next_request,
                value,
                sequence,
                sent_at: now,
            });
            producer.retry_at = 0;
            let message = Message::Produce {
                request: self.next_request,
                key,
                records: batch(writer, value, sequence),
            };
            out.push((leader, message));
        }
        out
    }

    /// How many records of `partition` were acknowledged: it changes exactly when
    /// `acked_records` does, and costs no copy.
    pub fn acked_count(&self, partition: i32) -> usize {
        self.by_partition
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .map(|(_, producer)| producer.acked.len())
            .sum()
    }

    /// (offset, value) of every acknowledged record of `partition`.
    pub fn acked_records(&self, partition: i32) -> Vec<(u64, Vec<u8>)> {
        self.by_partition
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .flat_map(|(&writer, producer)| {
                producer
                    .acked
                    .iter()
                    .map(move |(value, offset)| (*offset, value_bytes(writer, *value)))
            })
            .collect()
    }

    /// An answer: success moves the producer on; a refusal sends the batch again.
    /// A success for an earlier attempt of a value is recorded as well. Returns a
    /// line for the trace.
    pub fn answered(
        &mut self,
        now: u64,
        request: u64,
        result: Result<u64, ErrorCode>,
    ) -> Option<String> {
        let (&(partition, producer_id), producer) = self
            .by_partition
            .iter_mut()
            .find(|(_, p)| p.attempts.contains_key(&request))?;
        let value = producer.attempts.remove(&request)?;
        let current = producer
            .in_flight
            .as_ref()
            .is_some_and(|f| f.request == request);
        match result {
            Ok(offset) => {
                if !producer.acked.contains(&(value, offset)) {
                    producer.acked.push((value, offset));
                    self.acknowledged += 1;
                }
                if current {
                    producer.in_flight = None;
                    producer.next_value += 1;
                    producer.sequence += 1;
                    producer.retry_at = 0;
                }
                Some(format!(
                    "client: p{partition} w{producer_id} v{value} acknowledged at offset {offset}"
                ))
            }
            Err(code) if current => {
                // Sent again, as the same batch.
                producer.in_flight = None;
                producer.next_value = value;
                producer.retry_at = now + RETRY_BACKOFF_MS;
                Some(format!(
                    "client: p{partition} w{producer_id} v{value} refused with {code}"
                ))
            }
            Err(_) => None,
        }
    }

    /// Checks the history against the partition after the run settled: `held` is
    /// what the leader's log holds below its high watermark `hw`, `replicas` the
    /// logs of the other ISR members. Records below `asked_below` (the largest
    /// DeleteRecords offset asked for) may be gone, on some replicas sooner than on
    /// others; one acknowledged below the leader's log start `leader_start` must
    /// have been read at its offset (`read`, the partition consumer's reads:
    /// deletions go only below what it read).
    pub fn check(
        &self,
        partition: i32,
        (held, hw): (&BTreeMap<u64, Vec<u8>>, u64),
        replicas: &[(u64, &PartitionLog)],
        (asked_below, leader_start, read): (u64, u64, &BTreeMap<u64, Vec<u8>>),
    ) -> Vec<String> {
        let deleted_below = asked_below.min(leader_start);
        let mut problems = Vec::new();
        let acked = self
            .by_partition
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .flat_map(|(writer, producer)| producer.acked.iter().map(move |a| (*writer, *a)));
        for (writer, (value, offset)) in acked {
            let expected = value_bytes(writer, value);
            match held.get(&offset) {
                Some(v) if *v == expected => {}
                Some(v) => problems.push(format!(
                    "I-6 p{partition}: w{} v{value} was acknowledged at offset {offset}, which \
                     now holds {}",
                    writer.1,
                    String::from_utf8_lossy(v)
                )),
                None if offset < deleted_below && read.get(&offset) == Some(&expected) => {}
                None if offset < deleted_below => problems.push(format!(
                    "I-6 p{partition}: w{} v{value} acknowledged at offset {offset} was deleted \
                     but read there as {:?}",
                    writer.1,
                    read.get(&offset)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                )),
                None => problems.push(format!(
                    "I-6 p{partition}: w{} v{value} acknowledged at offset {offset} is lost \
                     (high watermark {hw})",
                    writer.1
                )),
            }
        }
        let mut seen: BTreeMap<&[u8], u64> = BTreeMap::new();
        for (offset, v) in held {
            if let Some(first) = seen.insert(v, *offset) {
                problems.push(format!(
                    "I-6 p{partition}: {} is at offsets {first} and {offset} (a duplicate from an \
                     idempotent producer)",
                    String::from_utf8_lossy(v)
                ));
            }
        }
        let kept = |values: &BTreeMap<u64, Vec<u8>>| -> BTreeMap<u64, Vec<u8>> {
            let range = values.range(asked_below..);
            range.map(|(o, v)| (*o, v.clone())).collect()
        };
        let held_kept = kept(held);
        for (id, log) in replicas {
            match read_values(log, hw) {
                Ok(theirs) if kept(&theirs) == held_kept => {}
                Ok(_) => problems.push(format!(
                    "R-REPL-1 p{partition}: ISR member {id} differs from the leader below the \
                     high watermark {hw}"
                )),
                Err(e) => problems.push(format!("R-REPL-1 p{partition}: node {id}'s log: {e}")),
            }
        }
        problems
    }
}
