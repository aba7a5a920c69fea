//! The consensus loop: a thread that owns the metadata node core and drives it with
//! a real clock. It starts before anything awaits a proposal, and nothing in
//! start-up waits for it to elect a leader (R-START-1, R-START-2).

use crate::consensus::{MetadataNode, NodeError, ProposeError};
use crate::metadata::{ApplyOutcome, CommandEnvelope, MetadataCommand, MetadataState};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};

/// What the rest of the broker sees of the metadata: the applied state and who leads.
#[derive(Debug, Clone, Default)]
pub struct MetadataView {
    pub state: Arc<MetadataState>,
    pub leader_id: Option<u64>,
    pub is_leader: bool,
    pub term: u64,
    pub commit_index: u64,
    /// Set when the node stopped on an error it cannot continue from.
    pub failed: Option<String>,
}

/// Why a proposal did not produce an outcome. All are retriable for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalFailure {
    NotLeader { leader: Option<u64> },
    Dropped(String),
    TimedOut,
    Stopped,
}

enum Input {
    Propose {
        command: MetadataCommand,
        reply: oneshot::Sender<Result<ApplyOutcome, ProposalFailure>>,
    },
    Shutdown,
}

/// A cheap handle to the consensus loop.
#[derive(Clone)]
pub struct ConsensusHandle {
    inputs: mpsc::Sender<Input>,
    view: watch::Receiver<MetadataView>,
}

pub struct ConsensusLoop {
    handle: ConsensusHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConsensusLoop {
    /// Replays the committed metadata the node recovered, then starts the loop thread.
    /// The replay is local recovery (no peer, no election): it finishes before the
    /// broker serves anything, so no request ever sees a pre-replay view
    /// (R-RECOVER-2).
    pub fn start(mut node: MetadataNode, tick: Duration) -> Result<Self, NodeError> {
        node.replay_committed()?;
        let (inputs, rx) = mpsc::channel();
        let (view_tx, view) = watch::channel(MetadataView::default());
        publish(&node, &view_tx, None);
        let thread = std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || run(node, tick, rx, view_tx))
            .map_err(|e| NodeError::Raft(format!("cannot start the consensus thread: {e}")))?;
        Ok(ConsensusLoop {
            handle: ConsensusHandle { inputs, view },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> ConsensusHandle {
        self.handle.clone()
    }

    pub fn stop(&mut self) {
        let _ = self.handle.inputs.send(Input::Shutdown);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("consensus loop panicked");
            }
        }
    }
}

impl Drop for ConsensusLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ConsensusHandle {
    pub fn view(&self) -> MetadataView {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<MetadataView> {
        self.view.clone()
    }

    /// Proposes a command and waits, at most `timeout`, for its outcome.
    pub async fn propose(
        &self,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<ApplyOutcome, ProposalFailure> {
        let (reply, outcome) = oneshot::channel();
        self.inputs
            .send(Input::Propose { command, reply })
            .map_err(|_| ProposalFailure::Stopped)?;
        match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposalFailure::Stopped),
            Err(_) => Err(ProposalFailure::TimedOut),
        }
    }
}

type Reply = oneshot::Sender<Result<ApplyOutcome, ProposalFailure>>;

fn run(
    mut node: MetadataNode,
    tick: Duration,
    rx: mpsc::Receiver<Input>,
    view: watch::Sender<MetadataView>,
) {
    // Ids only need to be unique among this process's pending proposals and unlike
    // those of earlier runs still in the log: start from the clock.
    let mut next_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
        << 16;
    let mut pending: BTreeMap<u64, Reply> = BTreeMap::new();
    let mut next_tick = Instant::now() + tick;
    let mut published = (None, 0u64, 0u64);
    publish(&node, &view, None);
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Input::Propose { command, reply }) => {
                next_id += 1;
                match node.propose(&CommandEnvelope::new(next_id, command)) {
                    Ok(()) => {
                        pending.insert(next_id, reply);
                    }
                    Err(ProposeError::NotLeader { leader }) => {
                        let _ = reply.send(Err(ProposalFailure::NotLeader { leader }));
                    }
                    Err(ProposeError::Dropped(why)) => {
                        let _ = reply.send(Err(ProposalFailure::Dropped(why)));
                    }
                }
            }
            Ok(Input::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= next_tick {
            node.tick();
            next_tick += tick;
        }
        let mut changed = false;
        let mut answers = Vec::new();
        while node.has_ready() {
            match node.process_ready() {
                Ok(out) => {
                    changed |= out.state_changed;
                    for (id, outcome) in out.applied {
                        if let Some(reply) = pending.remove(&id) {
                            answers.push((reply, outcome));
                        }
                    }
                    // Peer messages: the cluster transport delivers them (issue 5);
                    // a one-voter group has none.
                }
                Err(e) => return fail(&node, &view, e),
            }
        }
        if !node.is_leader() && !pending.is_empty() {
            // Leadership lost: what was proposed may never commit here.
            for (_, reply) in std::mem::take(&mut pending) {
                let _ = reply.send(Err(ProposalFailure::NotLeader {
                    leader: node.leader_id(),
                }));
            }
        }
        let now = (node.leader_id(), node.term(), node.commit_index());
        if changed || now != published {
            published = now;
            publish(&node, &view, None);
        }
        // Only after the view shows them: a client told "done" can read it back.
        for (reply, outcome) in answers {
            let _ = reply.send(Ok(outcome));
        }
    }
}

fn publish(node: &MetadataNode, view: &watch::Sender<MetadataView>, failed: Option<String>) {
    view.send_replace(MetadataView {
        state: Arc::new(node.state().clone()),
        leader_id: node.leader_id(),
        is_leader: node.is_leader(),
        term: node.term(),
        commit_index: node.commit_index(),
        failed,
    });
}

fn fail(node: &MetadataNode, view: &watch::Sender<MetadataView>, error: NodeError) {
    tracing::error!(%error, "metadata node stopped: it cannot continue safely");
    publish(node, view, Some(error.to_string()));
}
