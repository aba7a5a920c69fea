//! One partition's part of a Produce, from its append to its answer: the decisions
//! every shell takes in the same order (the Produce handler's `produce_finish`, the
//! simulator's node, both conformance oracles). A shell only carries the append's
//! outcome from the group commit to [`ProduceWait::on_outcome`] and asks
//! [`ProduceWait::answer`] again whenever the high watermark or the metadata moved,
//! until it answers or the request's deadline passes.

use std::sync::Arc;

use super::bugs::ReplicationBugs;
use super::steps::{LocalView, PartitionKey};
use crate::errors::{self, ErrorCode};
use crate::log::batch::BatchHeader;
use crate::log::{AppendInfo, LogError, PartitionLog};

pub type AppendResult = Result<AppendInfo, LogError>;

/// How waiting for a produce's acknowledgement ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckWait {
    Acknowledgeable,
    TimedOut,
    /// The high watermark passed the batch after the ISR shrank below
    /// `min.insync.replicas`: fewer copies hold it than acks=all promised.
    NotEnoughReplicas,
    /// This broker no longer leads the partition in the epoch the batch was appended
    /// under: the batch may have been truncated away, and its offsets reused.
    Deposed,
}

/// What a produce's append came to, for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Answer with `base_offset` once the records up to `end` may be acknowledged
    /// (`LocalView::ack_outcome`).
    WaitFor { base_offset: u64, end: u64 },
    /// Answer at once with this code.
    Refused(ErrorCode),
}

/// A batch appended to a partition this broker leads, waiting for its answer.
pub struct ProduceWait {
    key: PartitionKey,
    log: Arc<PartitionLog>,
    leader_epoch: i32,
    acks: i16,
    offset_count: u64,
    appended: Option<Appended>,
}

impl ProduceWait {
    /// Appends a prepared `batch` to `log`, admitted by `LocalView::admit_produce`
    /// under `leader_epoch`. `done` gets the append's outcome (from the group commit,
    /// or at once), which the caller hands to [`ProduceWait::on_outcome`].
    pub fn append(
        key: PartitionKey,
        log: Arc<PartitionLog>,
        leader_epoch: i32,
        acks: i16,
        batch: &[u8],
        now_ms: u64,
        done: impl FnOnce(AppendResult) + Send + 'static,
    ) -> Self {
        let offset_count = BatchHeader::parse(batch).map_or(1, |h| h.offset_count());
        log.append_then(batch, now_ms, leader_epoch, done);
        ProduceWait {
            key,
            log,
            leader_epoch,
            acks,
            offset_count,
            appended: None,
        }
    }

    pub fn key(&self) -> &PartitionKey {
        &self.key
    }

    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// The append's outcome arrived. A durable batch moves the high watermark
    /// (R-REPL-1); true if it moved, so that the caller wakes whoever waits on it.
    pub fn on_outcome(&mut self, local: &LocalView, outcome: &AppendResult, now_ms: u64) -> bool {
        self.appended = Some(appended(
            outcome,
            self.offset_count,
            local.partitions.bugs(),
        ));
        outcome.is_ok() && local.advance_high_watermark(&self.key, &self.log, now_ms)
    }

    /// The offset the answer names once the outcome came, even if it then fails: the
    /// batch's own, or for an idempotent retry its original's.
    pub fn base_offset(&self) -> Option<u64> {
        match self.appended? {
            Appended::WaitFor { base_offset, .. } => Some(base_offset),
            Appended::Refused(_) => None,
        }
    }

    /// The refusal the append itself came to, if it did (not a wait that failed).
    pub fn refused(&self) -> Option<ErrorCode> {
        match self.appended? {
            Appended::Refused(code) => Some(code),
            Appended::WaitFor { .. } => None,
        }
    }

    /// The answer once it is due: the base offset, or the error code. `None` while
    /// the outcome has not come, or the acknowledgement is not decided and the
    /// request's deadline has not passed (`timed_out`: it has, and an undecided wait
    /// is answered REQUEST_TIMED_OUT).
    pub fn answer(&self, local: &LocalView, timed_out: bool) -> Option<Result<u64, ErrorCode>> {
        let (base_offset, end) = match self.appended? {
            Appended::Refused(code) => return Some(Err(code)),
            Appended::WaitFor { base_offset, end } => (base_offset, end),
        };
        let waited = local.ack_outcome(&self.key, self.leader_epoch, self.acks, end, &self.log);
        let waited = match waited {
            Some(waited) => waited,
            None if timed_out => AckWait::TimedOut,
            None => return None,
        };
        Some(ack_error(waited).map_or(Ok(base_offset), Err))
    }
}

impl LocalView<'_> {
    /// Whether records up to `end`, appended under leader `epoch`, can be answered yet:
    /// acks=all waits for the high watermark (every ISR member has them durably,
    /// R-REPL-1), acks=1 for this log's durable end (R-LOG-4). Either way this broker
    /// must still lead the partition in that epoch: a leader deposed and re-elected
    /// may have truncated the batch and reused its offsets, and a high watermark past
    /// them says nothing about it (found by the fault run: two acknowledged values at
    /// one offset). An acks=all batch the high watermark passed while the maximal ISR
    /// is below `min.insync.replicas` fails NOT_ENOUGH_REPLICAS_AFTER_APPEND, as
    /// Kafka's `checkEnoughReplicasReachOffset` answers: admission checked the ISR,
    /// but it may have shrunk since. (The high watermark stands still below the
    /// minimum, R-REPL-6, so this is the second line.) `None`: not decided yet.
    pub fn ack_outcome(
        &self,
        key: &PartitionKey,
        epoch: i32,
        acks: i16,
        end: u64,
        log: &PartitionLog,
    ) -> Option<AckWait> {
        if acks == 0 {
            return Some(AckWait::Acknowledgeable);
        }
        let still_leading = self.state.partition(&key.0, key.1).is_some_and(|p| {
            self.state.leads(p, self.me, self.incarnation)
                && (p.leader_epoch == epoch || self.partitions.bugs().ack_after_deposed)
        });
        let reached = if acks == -1 {
            log.high_watermark() >= end
        } else {
            log.committable_end() >= end
        };
        if !still_leading {
            Some(AckWait::Deposed)
        } else if !reached {
            None
        } else if acks == -1 && self.below_min_isr(key) {
            Some(AckWait::NotEnoughReplicas)
        } else {
            Some(AckWait::Acknowledgeable)
        }
    }
}

/// Where a produce's acknowledgement must wait up to: the batch's own end, or, for
/// an idempotent retry of a batch already written, the original's, answered as the
/// original would be and no sooner. Acknowledging such a retry at once lost
/// acknowledged writes when the leader then died (found by the fault run, I-6).
fn appended(outcome: &AppendResult, offset_count: u64, bugs: ReplicationBugs) -> Appended {
    match outcome {
        Ok(info) => Appended::WaitFor {
            base_offset: info.base_offset,
            end: info.last_offset + 1,
        },
        Err(LogError::DuplicateSequence { base_offset, .. }) if bugs.retry_acked_at_once => {
            Appended::WaitFor {
                base_offset: *base_offset,
                end: 0,
            }
        }
        Err(LogError::DuplicateSequence { base_offset, .. }) => Appended::WaitFor {
            base_offset: *base_offset,
            end: base_offset + offset_count,
        },
        Err(e) => Appended::Refused(errors::from_log_error(e)),
    }
}

/// The code a produce is answered with once waiting for it ended.
fn ack_error(waited: AckWait) -> Option<ErrorCode> {
    match waited {
        AckWait::Acknowledgeable => None,
        AckWait::TimedOut => Some(errors::REQUEST_TIMED_OUT),
        AckWait::NotEnoughReplicas => Some(errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND),
        AckWait::Deposed => Some(errors::NOT_LEADER_OR_FOLLOWER),
    }
}
