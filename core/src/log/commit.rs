//! The seam between a partition log and whoever runs its fsyncs. An append that must
//! be durable before it is answered queues a request on a [`CommitQueue`]; the request
//! is completed only after a sync of its log that started after the request was
//! queued has finished, and since an append writes its bytes before it queues its
//! request, that sync covers them (R-LOG-4).
//!
//! Who runs the rounds is the shell's choice: the broker's flusher thread
//! (`chronik::log::GroupCommitter`) or, where fsyncs must happen exactly where a
//! schedule puts them, a [`ManualCommitter`] (the simulator, the conformance runner).
//! Both complete a round through [`complete_round`].

use super::error::LogError;
use crate::sync::{lock, Condvar, Mutex};
use std::sync::Arc;

/// Something whose written bytes can be made durable: a partition log.
pub trait SyncTarget: Send + Sync {
    fn sync(&self) -> Result<(), LogError>;
}

/// Called once with the outcome of the sync that covers a request.
pub type Completion = Box<dyn FnOnce(Result<(), LogError>) + Send>;

/// One queued request: the log to sync and what to call once it is.
pub struct CommitRequest {
    pub target: Arc<dyn SyncTarget>,
    pub done: Completion,
}

/// Where requests go: a flusher's queue or a manual committer.
pub trait CommitSink: Send + Sync {
    fn submit(&self, request: CommitRequest);
}

/// A handle to submit requests to whoever runs the rounds; cheap to clone.
#[derive(Clone)]
pub struct CommitQueue {
    sink: Arc<dyn CommitSink>,
}

impl CommitQueue {
    pub fn new(sink: Arc<dyn CommitSink>) -> Self {
        CommitQueue { sink }
    }

    /// Queues a request; `done` runs where the round runs, after the covering sync.
    pub fn submit(&self, target: Arc<dyn SyncTarget>, done: Completion) {
        self.sink.submit(CommitRequest { target, done });
    }

    /// Queues a request and blocks until it is durable or has failed. Only for a
    /// queue whose rounds run on another thread.
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

/// The distinct logs a round must sync, each once, in first-queued order.
pub fn distinct_targets(round: &[CommitRequest]) -> Vec<Arc<dyn SyncTarget>> {
    let mut targets: Vec<Arc<dyn SyncTarget>> = Vec::new();
    for request in round {
        if !targets.iter().any(|t| same_target(t, &request.target)) {
            targets.push(Arc::clone(&request.target));
        }
    }
    targets
}

fn same_target(a: &Arc<dyn SyncTarget>, b: &Arc<dyn SyncTarget>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Completes every request of a round with the outcome of its log's sync;
/// `outcomes` pairs with [`distinct_targets`] of the same round.
pub fn complete_round(
    round: Vec<CommitRequest>,
    targets: &[Arc<dyn SyncTarget>],
    outcomes: &[Result<(), LogError>],
) {
    for request in round {
        let outcome = targets
            .iter()
            .position(|t| same_target(t, &request.target))
            .and_then(|i| outcomes.get(i).cloned())
            .unwrap_or(Err(LogError::ShuttingDown));
        (request.done)(outcome);
    }
}

/// A commit queue without a flusher thread: its owner runs the rounds, one sync per
/// distinct log in sequence, so fsyncs happen exactly where its schedule puts them.
#[derive(Clone, Default)]
pub struct ManualCommitter {
    requests: Arc<Mutex<Vec<CommitRequest>>>,
}

impl CommitSink for ManualCommitter {
    fn submit(&self, request: CommitRequest) {
        lock(&self.requests).push(request);
    }
}

impl ManualCommitter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn queue(&self) -> CommitQueue {
        CommitQueue::new(Arc::new(self.clone()))
    }

    /// How many requests wait for the next round.
    pub fn pending(&self) -> usize {
        lock(&self.requests).len()
    }

    /// Runs one round over everything queued so far; returns how many requests it
    /// completed.
    pub fn run_round(&self) -> usize {
        let round = std::mem::take(&mut *lock(&self.requests));
        let n = round.len();
        let targets = distinct_targets(&round);
        let outcomes: Vec<_> = targets.iter().map(|t| t.sync()).collect();
        complete_round(round, &targets, &outcomes);
        n
    }

    /// Fails every queued request, as a crash of the process would leave them.
    pub fn abandon(&self) {
        let round = std::mem::take(&mut *lock(&self.requests));
        for request in round {
            (request.done)(Err(LogError::ShuttingDown));
        }
    }
}
