//! `--replication-trace FILE --replication-trace-partition TOPIC:N`: the broker
//! writes a line each time it changes what it shows of that partition (its log,
//! durable end, high watermark, followed epoch, its followers' ends as leader) or
//! takes a step of the replica fetch protocol, each metadata command it applies, and
//! each produce and DeleteRecords it answers as done, so that a multi-process run is
//! checked against the replication model afterwards as the simulator checks its runs
//! (C-9: `chronik-sim --check-replication-trace`). A test aid: each line copies the
//! partition's state, so a production broker leaves it off.
//!
//! A line is written where its change was made, before any effect of it leaves the
//! process (an answer, a fetch), and stamped with CLOCK_MONOTONIC: the lines of
//! several brokers merge with cause before effect.

use super::raft_trace::monotonic_ns;
use crate::consensus::MetadataView;
use chronik_core::metadata::MetadataState;
use chronik_core::replication::{
    FetchStep, LocalView, LogReads, PartitionKey, PartitionMeta, PartitionShown, Partitions,
    ReplicationEvent, ReplicationTraceLine,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The broker's current metadata view, read under the trace's lock: a view taken
/// before it (a handler's, at its request's start) may be older than one an earlier
/// line showed, and the trace would show the broker's view going back.
pub type CurrentView<'a> = &'a dyn Fn() -> MetadataView;

pub struct ReplicationTrace {
    key: PartitionKey,
    broker: i32,
    incarnation: u64,
    partitions: Arc<Partitions>,
    state: Mutex<TraceState>,
}

struct TraceState {
    file: Option<File>,
    reads: LogReads,
    last: Option<PartitionShown>,
    steps: Vec<FetchStep>,
}

impl ReplicationTrace {
    /// Opens (appends to) the trace and notes this start.
    pub fn open(
        path: &Path,
        key: PartitionKey,
        (broker, incarnation): (i32, u64),
        partitions: Arc<Partitions>,
    ) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let trace = ReplicationTrace {
            key,
            broker,
            incarnation,
            partitions,
            state: Mutex::new(TraceState {
                file: Some(file),
                reads: LogReads::default(),
                last: None,
                steps: Vec::new(),
            }),
        };
        trace.write(&mut trace.lock(), ReplicationEvent::Start);
        Ok(trace)
    }

    pub fn traces(&self, key: &PartitionKey) -> bool {
        *key == self.key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TraceState> {
        // A poisoned lock only means a panicking writer; the trace goes on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a step of the fetch protocol on some partition: noted, with what the
    /// broker shows now, if it is the traced partition's.
    pub fn step(&self, current: CurrentView, step: FetchStep) {
        if !self.traces(step.key()) {
            return;
        }
        let mut state = self.lock();
        state.steps.push(step);
        self.show_locked(&mut state, current);
    }

    /// Runs `change` and notes the step it took (if any) with what the broker shows
    /// after it, under the lock that orders the lines: no other line can show the
    /// change before the step that made it (a leader's follower end moved by a fetch
    /// it has not reported serving yet is not a model step).
    pub fn around<R>(
        &self,
        current: CurrentView,
        change: impl FnOnce() -> R,
        step: impl FnOnce(&R) -> Option<FetchStep>,
    ) -> R {
        let mut state = self.lock();
        let out = change();
        if let Some(step) = step(&out) {
            state.steps.push(step);
        }
        self.show_locked(&mut state, current);
        out
    }

    /// After a change of the traced partition's state here: a line if what the
    /// broker shows moved.
    pub fn show(&self, current: CurrentView) {
        let mut state = self.lock();
        self.show_locked(&mut state, current);
    }

    fn show_locked(&self, state: &mut TraceState, current: CurrentView) {
        let view = current();
        let local = LocalView {
            state: &view.state,
            partitions: &self.partitions,
            me: self.broker,
            incarnation: self.incarnation,
        };
        let key = (self.key.0.as_str(), self.key.1);
        let shown = match PartitionShown::of(&local, key, &mut state.reads) {
            Ok(shown) => shown,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the traced partition; no longer tracing");
                state.file = None;
                return;
            }
        };
        if state.steps.is_empty() && state.last.as_ref() == Some(&shown) {
            return;
        }
        let steps = std::mem::take(&mut state.steps);
        state.last = Some(shown.clone());
        self.write(state, ReplicationEvent::Shown { shown, steps });
    }

    /// The metadata command at Raft `index` was applied: what it left of the traced
    /// partition.
    pub fn applied(&self, index: u64, metadata: &MetadataState) {
        let meta = PartitionMeta::of(metadata, &self.key.0, self.key.1);
        self.write(&mut self.lock(), ReplicationEvent::Applied { index, meta });
    }

    /// An acks=all produce to the traced partition is answered as written from
    /// `offset`, its values' digests `values`.
    pub fn acknowledged(&self, offset: u64, values: Vec<u64>) {
        self.write(
            &mut self.lock(),
            ReplicationEvent::Acknowledged { offset, values },
        );
    }

    /// A DeleteRecords of the traced partition is answered as done below `offset`.
    pub fn deletion_acknowledged(&self, offset: u64) {
        self.write(
            &mut self.lock(),
            ReplicationEvent::DeletionAcknowledged { offset },
        );
    }

    fn write(&self, state: &mut TraceState, event: ReplicationEvent) {
        let Some(file) = &mut state.file else {
            return;
        };
        let line = ReplicationTraceLine {
            at_ns: monotonic_ns(),
            broker: self.broker,
            incarnation: self.incarnation,
            event,
        };
        // One write per line, unbuffered, under the lock that orders the lines: a
        // killed process loses at most the line it was writing.
        if let Err(e) = file.write_all(format!("{}\n", line.encode()).as_bytes()) {
            tracing::warn!(error = %e, "cannot write the replication trace; no longer tracing");
            state.file = None;
        }
    }
}
