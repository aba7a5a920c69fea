//! Simulated idempotent producers at acks=all, two per partition of the replicated
//! topic (so that an offset given to one is another's record if it is ever reused),
//! and with `leader_acks` a third at acks=1, each with one request in flight,
//! retrying a batch (same producer id, epoch and sequence) until it is answered with
//! success; and the history their answers make, checked at the end against what the
//! cluster holds, in the manner of Jepsen's Kafka workload: no acknowledged acks=all
//! record lost, no record twice, one value per offset, replicas agreeing below the
//! high watermark (R-REPL-1, I-6). An acks=1 record is the leader's alone when it is
//! acknowledged, so a leader change may lose it, as in Kafka; while the leader epoch
//! it was acknowledged in lasts, it may not be lost (R-LOG-4).

use crate::host::Message;
use crate::records::{read_values, PARTITIONS, TOPIC};
use chronik_core::errors::ErrorCode;
use chronik_core::log::batch::{build_batch, set_producer, Record};
use chronik_core::log::PartitionLog;
use chronik_core::replication::PartitionKey;
use std::collections::BTreeMap;

/// The acks=all producer ids writing to each partition.
const PRODUCER_IDS: [i64; 2] = [1, 2];
/// The acks=1 producer's id, with `leader_acks`.
const LEADER_ACKS_PRODUCER_ID: i64 = 3;
/// An answer not back by then is taken as lost, and the batch is sent again.
const ANSWER_TIMEOUT_MS: u64 = 1_000;
const RETRY_BACKOFF_MS: u64 = 50;

struct InFlight {
    request: u64,
    value: u64,
    sequence: i32,
    sent_at: u64,
}

/// A record acknowledged to a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    value: u64,
    offset: u64,
    /// acks=1: the leader epoch of the record at `offset` in the answering node's log
    /// when the answer arrived, if that record was this one.
    epoch: Option<i32>,
}

struct Producer {
    /// -1 (all) or 1 (the leader).
    acks: i16,
    next_value: u64,
    sequence: i32,
    in_flight: Option<InFlight>,
    retry_at: u64,
    /// Acknowledged values and the offsets they were acknowledged at.
    acked: Vec<Ack>,
    /// (offset, value) of every success a leader sent, arrived or not: the model's
    /// leader acknowledges, and a client may read an answer after its sender crashed
    /// (trace validation compares these).
    sent_acks: Vec<(u64, u64)>,
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

impl Producer {
    fn new(acks: i16) -> Self {
        Producer {
            acks,
            next_value: 0,
            sequence: 0,
            in_flight: None,
            retry_at: 0,
            acked: Vec::new(),
            attempts: BTreeMap::new(),
            sent_acks: Vec::new(),
        }
    }
}

impl Producers {
    /// The acks=all producers, and with `leader_acks` an acks=1 one, per partition.
    pub fn new(leader_acks: bool) -> Self {
        let leader_acks = leader_acks.then_some((LEADER_ACKS_PRODUCER_ID, 1));
        let ids = PRODUCER_IDS
            .map(|id| (id, -1))
            .into_iter()
            .chain(leader_acks);
        Producers {
            by_partition: (0..PARTITIONS)
                .flat_map(|p| ids.clone().map(move |(id, acks)| ((p, id), acks)))
                .map(|(writer, acks)| (writer, Producer::new(acks)))
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
                acks: producer.acks,
                records: batch(writer, value, sequence),
            };
            out.push((leader, message));
        }
        out
    }

    /// The acks=all producers of `partition`.
    fn acks_all(&self, partition: i32) -> impl Iterator<Item = (&(i32, i64), &Producer)> {
        self.by_partition
            .iter()
            .filter(move |((p, _), producer)| *p == partition && producer.acks == -1)
    }

    /// A leader sends `request` its answer (whether or not it will arrive).
    pub fn answer_sent(&mut self, request: u64, result: &Result<u64, ErrorCode>) {
        let Ok(offset) = result else {
            return;
        };
        let Some((producer, value)) = self
            .by_partition
            .values_mut()
            .find_map(|p| p.attempts.get(&request).copied().map(|value| (p, value)))
        else {
            return;
        };
        if !producer.sent_acks.contains(&(*offset, value)) {
            producer.sent_acks.push((*offset, value));
        }
    }

    /// How many acks=all records of `partition` a leader acknowledged: it changes
    /// exactly when `sent_acks` does, and costs no copy.
    pub fn sent_ack_count(&self, partition: i32) -> usize {
        self.acks_all(partition)
            .map(|(_, producer)| producer.sent_acks.len())
            .sum()
    }

    /// (offset, value) of every acks=all record of `partition` a leader acknowledged.
    pub fn sent_acks(&self, partition: i32) -> Vec<(u64, Vec<u8>)> {
        self.acks_all(partition)
            .flat_map(|(&writer, producer)| {
                producer
                    .sent_acks
                    .iter()
                    .map(move |&(offset, value)| (offset, value_bytes(writer, value)))
            })
            .collect()
    }

    /// An answer: success moves the producer on; a refusal sends the batch again.
    /// A success for an earlier attempt of a value is recorded as well. `held_at`
    /// reads the answering node's log: (value, leader epoch) at an offset of a
    /// partition. Returns a line for the trace.
    pub fn answered(
        &mut self,
        now: u64,
        (request, result): (u64, Result<u64, ErrorCode>),
        held_at: impl FnOnce(i32, u64) -> Option<(Vec<u8>, i32)>,
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
                let epoch = (producer.acks == 1)
                    .then(|| held_at(partition, offset))
                    .flatten()
                    .filter(|(v, _)| *v == value_bytes((partition, producer_id), value))
                    .map(|(_, epoch)| epoch);
                let known = producer
                    .acked
                    .iter()
                    .any(|a| (a.value, a.offset) == (value, offset));
                if !known {
                    producer.acked.push(Ack {
                        value,
                        offset,
                        epoch,
                    });
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

    /// How many acks=1 records of `partition` were acknowledged in leader epoch
    /// `epoch`: those `check` holds to R-LOG-4.
    pub fn leader_acks_in_epoch(&self, partition: i32, epoch: i32) -> u64 {
        let producers = self.by_partition.iter();
        let leader_acks = producers.filter(|((p, _), pr)| *p == partition && pr.acks == 1);
        leader_acks
            .flat_map(|(_, producer)| &producer.acked)
            .filter(|a| a.epoch == Some(epoch))
            .count() as u64
    }

    /// Checks the history against the partition after the run settled: `held` is
    /// what the leader's log holds below its high watermark `hw`, in leader epoch
    /// `epoch`, `replicas` the logs of the other ISR members. An acks=1 record is
    /// checked only if it was acknowledged in `epoch`: the same leader has led since. Records below `asked_below` (the largest
    /// DeleteRecords offset asked for) may be gone, on some replicas sooner than on
    /// others; one acknowledged below the leader's log start `leader_start` must
    /// have been read at its offset (`read`, the partition consumer's reads:
    /// deletions go only below what it read).
    pub fn check(
        &self,
        partition: i32,
        (held, hw, epoch): (&BTreeMap<u64, Vec<u8>>, u64, i32),
        replicas: &[(u64, &PartitionLog)],
        (asked_below, leader_start, read): (u64, u64, &BTreeMap<u64, Vec<u8>>),
    ) -> Vec<String> {
        let deleted_below = asked_below.min(leader_start);
        let mut problems = Vec::new();
        let acked = self
            .by_partition
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .flat_map(|(writer, producer)| {
                let kept = move |a: &&Ack| producer.acks == -1 || a.epoch == Some(epoch);
                let rule = if producer.acks == -1 {
                    "I-6"
                } else {
                    "R-LOG-4"
                };
                let acked = producer.acked.iter().filter(kept);
                acked.map(move |a| (*writer, rule, *a))
            });
        for (writer, rule, Ack { value, offset, .. }) in acked {
            let expected = value_bytes(writer, value);
            match held.get(&offset) {
                Some(v) if *v == expected => {}
                Some(v) => problems.push(format!(
                    "{rule} p{partition}: w{} v{value} was acknowledged at offset {offset}, \
                     which now holds {}",
                    writer.1,
                    String::from_utf8_lossy(v)
                )),
                None if offset < deleted_below && read.get(&offset) == Some(&expected) => {}
                None if offset < deleted_below => problems.push(format!(
                    "{rule} p{partition}: w{} v{value} acknowledged at offset {offset} was \
                     deleted but read there as {:?}",
                    writer.1,
                    read.get(&offset)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                )),
                None => problems.push(format!(
                    "{rule} p{partition}: w{} v{value} acknowledged at offset {offset} is lost \
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The acks=1 producer's first request of partition 0, answered at `offset` by a
    /// node that holds the record there in leader epoch `epoch`.
    fn leader_ack_answered(offset: u64, epoch: i32) -> Producers {
        let mut producers = Producers::new(true);
        let sent = producers.tick(0, true, |_| Some(1));
        let request = sent
            .iter()
            .find_map(|(_, m)| match m {
                Message::Produce {
                    request, key, acks, ..
                } if key.1 == 0 && *acks == 1 => Some(*request),
                _ => None,
            })
            .expect("an acks=1 produce to partition 0");
        let value = value_bytes((0, LEADER_ACKS_PRODUCER_ID), 0);
        producers.answer_sent(request, &Ok(offset));
        producers.answered(0, (request, Ok(offset)), |_, _| Some((value, epoch)));
        producers
    }

    /// R-LOG-4: an acks=1 record missing at the end is a violation while the epoch
    /// that acknowledged it still leads, and not once a later leader may have cut it.
    #[test]
    fn r_log_4_an_acks_1_record_is_kept_while_its_epoch_leads() {
        let producers = leader_ack_answered(5, 3);
        assert_eq!(producers.leader_acks_in_epoch(0, 3), 1);
        let (held, read) = (BTreeMap::new(), BTreeMap::new());
        let lost = producers.check(0, (&held, 10, 3), &[], (0, 0, &read));
        assert!(lost.iter().any(|p| p.starts_with("R-LOG-4")), "{lost:?}");
        let later = producers.check(0, (&held, 10, 4), &[], (0, 0, &read));
        assert!(later.is_empty(), "{later:?}");
        // Not counted as acknowledged for the acks=all checks and the trace model.
        assert_eq!(producers.sent_ack_count(0), 0);
    }
}
