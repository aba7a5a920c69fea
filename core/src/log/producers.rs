//! Idempotent producer state of one partition (R-LOG-11): per producer id, its
//! epoch and its last few batches' sequence ranges. Checked and updated inside the
//! log's critical section, so the check and the offset assignment are one step.

use super::batch::BatchHeader;
use super::error::LogError;
use std::collections::{BTreeMap, VecDeque};

/// How many recent batches per producer a retry can match (Kafka keeps 5, the
/// largest max.in.flight an idempotent producer may use).
const RECENT: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    /// (first sequence, last sequence, base offset), oldest first.
    recent: VecDeque<(i32, i32, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<i64, Entry>,
}

fn last_sequence(h: &BatchHeader) -> i32 {
    // Sequences wrap from i32::MAX to 0.
    ((i64::from(h.base_sequence) + i64::from(h.last_offset_delta)) % (i64::from(i32::MAX) + 1))
        as i32
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Checks a batch before it is appended. `Err(DuplicateSequence)` carries the
    /// offset the original was written at.
    pub fn check(&self, h: &BatchHeader) -> Result<(), LogError> {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return Ok(());
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state aged out with its segments):
            // accept whatever it starts with.
            return Ok(());
        };
        if h.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                Ok(())
            } else {
                Err(LogError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                })
            };
        }
        let last = last_sequence(h);
        if let Some(&(_, _, base_offset)) = entry
            .recent
            .iter()
            .find(|(first, l, _)| *first == h.base_sequence && *l == last)
        {
            // The log that asked fills in its failure epoch.
            return Err(LogError::DuplicateSequence {
                base_offset,
                written_in: 0,
            });
        }
        let expected = entry
            .recent
            .back()
            .map_or(h.base_sequence, |(_, l, _)| next_sequence(*l));
        if h.base_sequence != expected {
            return Err(LogError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            });
        }
        Ok(())
    }

    /// Records a batch that was appended at `base_offset`.
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.recent.clear();
        }
        entry
            .recent
            .push_back((h.base_sequence, last_sequence(h), base_offset));
        while entry.recent.len() > RECENT {
            entry.recent.pop_front();
        }
    }

    /// Forgets the batches at or after `end` (the log was cut there).
    pub fn forget_from(&mut self, end: u64) {
        for entry in self.producers.values_mut() {
            entry.recent.retain(|(_, _, base)| *base < end);
        }
        self.producers.retain(|_, e| !e.recent.is_empty());
    }

    pub fn merge(&mut self, other: &ProducerStates) {
        for (pid, entry) in &other.producers {
            self.producers.insert(*pid, entry.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{build_simple_batch, BatchHeader};

    fn header(pid: i64, epoch: i16, seq: i32, records: usize) -> BatchHeader {
        let mut h = BatchHeader::parse(&build_simple_batch(records, 1, b'x', 0))
            .unwrap_or_else(|e| panic!("{e}"));
        h.producer_id = pid;
        h.producer_epoch = epoch;
        h.base_sequence = seq;
        h
    }

    #[test]
    fn r_log_11_duplicates_gaps_and_fenced_epochs() {
        let mut s = ProducerStates::default();
        let first = header(7, 0, 0, 3);
        assert!(s.check(&first).is_ok());
        s.record(&first, 100);
        assert!(matches!(
            s.check(&first),
            Err(LogError::DuplicateSequence {
                base_offset: 100,
                ..
            })
        ));
        assert!(matches!(
            s.check(&header(7, 0, 5, 1)),
            Err(LogError::OutOfOrderSequence { expected: 3, .. })
        ));
        let next = header(7, 0, 3, 2);
        assert!(s.check(&next).is_ok());
        s.record(&next, 103);
        assert!(matches!(
            s.check(&header(7, 0, 3, 2)),
            Err(LogError::DuplicateSequence {
                base_offset: 103,
                ..
            })
        ));
        let bumped = header(7, 1, 0, 1);
        assert!(s.check(&bumped).is_ok());
        s.record(&bumped, 105);
        assert!(matches!(
            s.check(&header(7, 0, 5, 1)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert!(
            s.check(&header(8, 0, 42, 1)).is_ok(),
            "unknown producers are accepted"
        );
        assert!(
            s.check(&header(-1, -1, -1, 1)).is_ok(),
            "non-idempotent batches pass"
        );
    }
}
