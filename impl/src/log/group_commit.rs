//! Group commit: one flusher thread makes the appends of every partition durable in
//! rounds. Each round takes every request queued so far and syncs each distinct log
//! once, so N producers that append while one fdatasync is running share the next
//! one instead of queueing N of them (R-LOG-4).
//!
//! A request is acknowledged (its completion called) only after the sync of its log
//! that started after the request was queued has succeeded; since an append writes
//! its bytes before it queues its request, that sync covers them.

use super::{complete_round, distinct_targets, CommitQueue, CommitRequest, CommitSink};
use super::{LogError, SyncTarget};
use crate::sync::{lock, thread, Condvar, Mutex};
use std::sync::Arc;

#[derive(Default)]
struct Queue {
    requests: Vec<CommitRequest>,
    shutdown: bool,
    rounds: u64,
    syncs: u64,
    acknowledged: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Owns the flusher thread; dropping it drains the queue and stops the thread.
pub struct GroupCommitter {
    shared: Arc<Shared>,
    flusher: Option<thread::JoinHandle<()>>,
}

/// Counters for benches and tests: how well requests were grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    pub rounds: u64,
    pub syncs: u64,
    pub acknowledged: u64,
}

impl GroupCommitter {
    pub fn start() -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let flusher = thread::spawn(move || run_flusher(&for_thread));
        GroupCommitter {
            shared,
            flusher: Some(flusher),
        }
    }

    pub fn queue(&self) -> CommitQueue {
        CommitQueue::new(Arc::new(FlusherSink(Arc::clone(&self.shared))))
    }

    pub fn stats(&self) -> CommitStats {
        let q = lock(&self.shared.queue);
        CommitStats {
            rounds: q.rounds,
            syncs: q.syncs,
            acknowledged: q.acknowledged,
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        lock(&self.shared.queue).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            if flusher.join().is_err() {
                tracing::error!("group commit flusher panicked");
            }
        }
    }
}

/// The flusher's end of a [`CommitQueue`].
struct FlusherSink(Arc<Shared>);

impl CommitSink for FlusherSink {
    fn submit(&self, request: CommitRequest) {
        let mut q = lock(&self.0.queue);
        if q.shutdown {
            drop(q);
            (request.done)(Err(LogError::ShuttingDown));
            return;
        }
        q.requests.push(request);
        drop(q);
        self.0.wake.notify_one();
    }
}

fn run_flusher(shared: &Shared) {
    loop {
        let round = {
            let mut q = lock(&shared.queue);
            loop {
                if !q.requests.is_empty() {
                    break std::mem::take(&mut q.requests);
                }
                if q.shutdown {
                    return;
                }
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        commit_round(shared, round);
    }
}

/// Syncs every log named in `round` and completes its requests.
fn commit_round(shared: &Shared, round: Vec<CommitRequest>) {
    let targets = distinct_targets(&round);
    let outcomes = sync_in_parallel(&targets);
    {
        let mut q = lock(&shared.queue);
        q.rounds += 1;
        q.syncs += targets.len() as u64;
        q.acknowledged += round.len() as u64;
    }
    complete_round(round, &targets, &outcomes);
}

/// Different logs are different files, and this kind of disk completes concurrent
/// fdatasyncs far faster than the same number in sequence, so they run in parallel.
fn sync_in_parallel(targets: &[Arc<dyn SyncTarget>]) -> Vec<Result<(), LogError>> {
    if let [only] = targets {
        return vec![only.sync()];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| scope.spawn(move || t.sync()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(LogError::ShuttingDown)))
            .collect()
    })
}
