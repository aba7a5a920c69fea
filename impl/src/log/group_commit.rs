//! Group commit: one flusher thread makes the appends of every partition durable in
//! rounds. Each round takes every request queued so far and syncs each distinct log
//! once, so N producers that append while one fdatasync is running share the next
//! one instead of queueing N of them (R-LOG-4).
//!
//! A request is acknowledged (its completion called) only after the sync of its log
//! that started after the request was queued has succeeded; since an append writes
//! its bytes before it queues its request, that sync covers them.

use super::error::LogError;
use crate::sync::{lock, thread, Condvar, Mutex};
use std::sync::Arc;

/// Something whose written bytes can be made durable: a partition log.
pub trait SyncTarget: Send + Sync {
    fn sync(&self) -> Result<(), LogError>;
}

/// Called once with the outcome of the sync that covers a request.
pub type Completion = Box<dyn FnOnce(Result<(), LogError>) + Send>;

struct Request {
    target: Arc<dyn SyncTarget>,
    done: Completion,
}

#[derive(Default)]
struct Queue {
    requests: Vec<Request>,
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

/// A handle to submit requests to a [`GroupCommitter`]; cheap to clone.
#[derive(Clone)]
pub struct CommitQueue {
    shared: Arc<Shared>,
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
        CommitQueue {
            shared: Arc::clone(&self.shared),
        }
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

impl CommitQueue {
    /// Queues a request; `done` runs on the flusher thread after the covering sync.
    pub fn submit(&self, target: Arc<dyn SyncTarget>, done: Completion) {
        let mut q = lock(&self.shared.queue);
        if q.shutdown {
            drop(q);
            done(Err(LogError::ShuttingDown));
            return;
        }
        q.requests.push(Request { target, done });
        drop(q);
        self.shared.wake.notify_one();
    }

    /// Queues a request and blocks until it is durable or has failed.
    pub fn sync(&self, target: Arc<dyn SyncTarget>) -> Result<(), LogError> {
        let slot = Arc::new((Mutex::new(None), Condvar::new()));
        let for_done = Arc::clone(&slot);
        self.submit(
            target,
            Box::new(move |result| {
                *lock(&for_done.0) = Some(result);
                for_done.1.notify_one();
            }),
        );
        let mut outcome = lock(&slot.0);
        loop {
            if let Some(result) = outcome.take() {
                return result;
            }
            outcome = slot.1.wait(outcome).unwrap_or_else(|p| p.into_inner());
        }
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
fn commit_round(shared: &Shared, round: Vec<Request>) {
    let outcomes = sync_distinct_targets(&round);
    {
        let mut q = lock(&shared.queue);
        q.rounds += 1;
        q.syncs += outcomes.len() as u64;
        q.acknowledged += round.len() as u64;
    }
    for request in round {
        let key = Arc::as_ptr(&request.target) as *const ();
        let outcome = outcomes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r.clone())
            .unwrap_or(Err(LogError::ShuttingDown));
        (request.done)(outcome);
    }
}

/// A commit queue without a flusher thread: its owner runs the rounds. The
/// simulation shell uses it so that fsyncs happen exactly where its schedule puts
/// them, through the same round logic as the broker's flusher.
pub struct ManualCommitter {
    shared: Arc<Shared>,
}

impl Default for ManualCommitter {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualCommitter {
    pub fn new() -> Self {
        ManualCommitter {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
            }),
        }
    }

    pub fn queue(&self) -> CommitQueue {
        CommitQueue {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Runs one round over everything queued so far; returns how many requests it
    /// completed.
    pub fn run_round(&self) -> usize {
        let round = std::mem::take(&mut lock(&self.shared.queue).requests);
        let n = round.len();
        if n > 0 {
            commit_round(&self.shared, round);
        }
        n
    }

    /// Fails every queued request, as a crash of the process would leave them.
    pub fn abandon(&self) {
        let round = std::mem::take(&mut lock(&self.shared.queue).requests);
        for request in round {
            (request.done)(Err(LogError::ShuttingDown));
        }
    }
}

/// Syncs each distinct target of a round once. Different logs are different files,
/// and this kind of disk completes concurrent fdatasyncs far faster than the same
/// number in sequence, so they run in parallel.
fn sync_distinct_targets(round: &[Request]) -> Vec<(*const (), Result<(), LogError>)> {
    let mut targets: Vec<(*const (), &Arc<dyn SyncTarget>)> = Vec::new();
    for request in round {
        let key = Arc::as_ptr(&request.target) as *const ();
        if !targets.iter().any(|(k, _)| *k == key) {
            targets.push((key, &request.target));
        }
    }
    if targets.len() == 1 {
        return targets.into_iter().map(|(k, t)| (k, t.sync())).collect();
    }
    let results: Vec<Result<(), LogError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|(_, t)| scope.spawn(move || t.sync()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(LogError::ShuttingDown)))
            .collect()
    });
    targets.into_iter().map(|(k, _)| k).zip(results).collect()
}
