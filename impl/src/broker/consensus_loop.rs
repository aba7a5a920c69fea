//! The consensus loop: a thread that owns the metadata node core and drives it with
//! a real clock and the peer transport. It starts before anything awaits a proposal,
//! and nothing in start-up waits for it to elect a leader (R-START-1, R-START-2).
//!
//! Proposals from this broker go to the node if it leads, are forwarded to the leader
//! it knows otherwise (R-PROPOSE-2), and fail with a retriable error when it knows
//! none. On the leader the loop also does the controller's duty: it fences brokers
//! whose session lapsed.

use crate::cluster::{ForwardOutcome, Inbound, PeerMessage, Transport};
use crate::consensus::{MetadataNode, NodeError, ProposeError, ReadyOutput};
use crate::metadata::{ApplyOutcome, CommandEnvelope, MetadataCommand, MetadataState};
use std::collections::{BTreeMap, HashMap};
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

type Reply = oneshot::Sender<Result<ApplyOutcome, ProposalFailure>>;

enum Input {
    Propose {
        command: MetadataCommand,
        reply: Reply,
    },
    Peer {
        from: u64,
        message: PeerMessage,
    },
    Shutdown,
}

/// The loop's input queue, created before the transport (which feeds it) and the
/// loop (which drains it).
pub struct Inputs {
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
}

impl Default for Inputs {
    fn default() -> Self {
        Self::new()
    }
}

impl Inputs {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Inputs { tx, rx }
    }

    /// Where the peer transport delivers what it receives.
    pub fn inbound(&self) -> Inbound {
        let tx = self.tx.clone();
        Arc::new(move |from, message| {
            let _ = tx.send(Input::Peer { from, message });
        })
    }
}

#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub tick: Duration,
    /// The controller fences a broker it has not heard from for this long.
    pub session_timeout: Duration,
    /// How long a forwarded proposal may wait for the leader's answer.
    pub forward_timeout: Duration,
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
    pub fn start(
        mut node: MetadataNode,
        config: LoopConfig,
        inputs: Inputs,
        transport: Option<Transport>,
    ) -> Result<Self, NodeError> {
        node.replay_committed()?;
        let (view_tx, view) = watch::channel(MetadataView::default());
        publish(&node, &view_tx, None);
        let Inputs { tx, rx } = inputs;
        let thread = std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || Loop::new(node, config, transport, view_tx).run(rx))
            .map_err(|e| NodeError::Raft(format!("cannot start the consensus thread: {e}")))?;
        Ok(ConsensusLoop {
            handle: ConsensusHandle { inputs: tx, view },
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

    /// Proposes a command (forwarded to the leader if this node does not lead) and
    /// waits, at most `timeout`, for its outcome. When this returns `Ok`, this
    /// node's view already shows the change.
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

struct Loop {
    node: MetadataNode,
    config: LoopConfig,
    transport: Option<Transport>,
    view: watch::Sender<MetadataView>,
    next_id: u64,
    /// Proposed here, by this broker: answered when applied.
    local: BTreeMap<u64, Reply>,
    /// Proposed here for another node: (origin, its request id).
    forwarded_in: BTreeMap<u64, (u64, u64)>,
    /// Forwarded to the leader, waiting for its answer.
    forwarded_out: BTreeMap<u64, (Reply, Instant)>,
    /// The leader applied them; answered once this node has applied that far too.
    awaiting_apply: Vec<(u64, ApplyOutcome, Reply)>,
    /// When each peer was last heard from (any message).
    last_heard: HashMap<u64, Instant>,
    leader_since: Option<Instant>,
    /// Fences proposed and not yet applied, to propose each once per session timeout.
    fencing: HashMap<i32, Instant>,
    published: (Option<u64>, u64, u64),
}

impl Loop {
    fn new(
        node: MetadataNode,
        config: LoopConfig,
        transport: Option<Transport>,
        view: watch::Sender<MetadataView>,
    ) -> Self {
        // Ids only need to be unique among this process's pending proposals and unlike
        // those of earlier runs still in the log: start from the clock.
        let next_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64)
            << 16;
        Loop {
            node,
            config,
            transport,
            view,
            next_id,
            local: BTreeMap::new(),
            forwarded_in: BTreeMap::new(),
            forwarded_out: BTreeMap::new(),
            awaiting_apply: Vec::new(),
            last_heard: HashMap::new(),
            leader_since: None,
            fencing: HashMap::new(),
            published: (None, 0, 0),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Input>) {
        let mut next_tick = Instant::now() + self.config.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Input::Propose { command, reply }) => self.propose(command, reply),
                Ok(Input::Peer { from, message }) => {
                    if let Err(e) = self.peer(from, message) {
                        return self.fail(e);
                    }
                }
                Ok(Input::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                next_tick += self.config.tick;
                if next_tick < now {
                    next_tick = now + self.config.tick;
                }
                self.controller_duties(now);
                self.expire_forwards(now);
            }
            if let Err(e) = self.drive() {
                return self.fail(e);
            }
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&self, to: u64, message: PeerMessage) {
        if let Some(t) = &self.transport {
            t.send(to, &message);
        }
    }

    fn propose(&mut self, command: MetadataCommand, reply: Reply) {
        let id = self.fresh_id();
        match self
            .node
            .propose(&CommandEnvelope::new(id, command.clone()))
        {
            Ok(()) => {
                self.local.insert(id, reply);
            }
            Err(ProposeError::NotLeader {
                leader: Some(leader),
            }) if leader != self.node.id() && self.transport.is_some() => {
                self.send(
                    leader,
                    PeerMessage::Forward {
                        request_id: id,
                        command,
                    },
                );
                let deadline = Instant::now() + self.config.forward_timeout;
                self.forwarded_out.insert(id, (reply, deadline));
            }
            Err(ProposeError::NotLeader { leader }) => {
                let _ = reply.send(Err(ProposalFailure::NotLeader { leader }));
            }
            Err(ProposeError::Dropped(why)) => {
                let _ = reply.send(Err(ProposalFailure::Dropped(why)));
            }
        }
    }

    fn peer(&mut self, from: u64, message: PeerMessage) -> Result<(), NodeError> {
        self.last_heard.insert(from, Instant::now());
        match message {
            PeerMessage::Raft(m) => self.node.step(m)?,
            PeerMessage::Forward {
                request_id,
                command,
            } => {
                let id = self.fresh_id();
                match self.node.propose(&CommandEnvelope::new(id, command)) {
                    Ok(()) => {
                        self.forwarded_in.insert(id, (from, request_id));
                    }
                    Err(ProposeError::NotLeader { leader }) => self.send(
                        from,
                        PeerMessage::ForwardReply {
                            request_id,
                            outcome: ForwardOutcome::NotLeader { leader },
                        },
                    ),
                    Err(ProposeError::Dropped(why)) => self.send(
                        from,
                        PeerMessage::ForwardReply {
                            request_id,
                            outcome: ForwardOutcome::Dropped(why),
                        },
                    ),
                }
            }
            PeerMessage::ForwardReply {
                request_id,
                outcome,
            } => {
                if let Some((reply, _)) = self.forwarded_out.remove(&request_id) {
                    match outcome {
                        ForwardOutcome::Applied { index, outcome } => {
                            self.awaiting_apply.push((index, outcome, reply))
                        }
                        ForwardOutcome::NotLeader { leader } => {
                            let _ = reply.send(Err(ProposalFailure::NotLeader { leader }));
                        }
                        ForwardOutcome::Dropped(why) => {
                            let _ = reply.send(Err(ProposalFailure::Dropped(why)));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles every Ready, sends what it says, answers proposers, publishes the view.
    fn drive(&mut self) -> Result<(), NodeError> {
        let mut changed = false;
        let mut answers = Vec::new();
        while self.node.has_ready() {
            let out: ReadyOutput = self.node.process_ready()?;
            changed |= out.state_changed;
            for m in out.messages {
                self.send(m.to, PeerMessage::Raft(m));
            }
            let index = self.node.state().applied_index;
            for (id, outcome) in out.applied {
                if let Some(reply) = self.local.remove(&id) {
                    answers.push((reply, outcome));
                } else if let Some((origin, request_id)) = self.forwarded_in.remove(&id) {
                    self.send(
                        origin,
                        PeerMessage::ForwardReply {
                            request_id,
                            outcome: ForwardOutcome::Applied { index, outcome },
                        },
                    );
                }
            }
        }
        if self.node.is_leader() {
            if self.leader_since.is_none() {
                self.leader_since = Some(Instant::now());
            }
        } else {
            self.leader_since = None;
            self.fencing.clear();
            self.lost_leadership();
        }
        let now = (
            self.node.leader_id(),
            self.node.term(),
            self.node.commit_index(),
        );
        if changed || now != self.published {
            self.published = now;
            publish(&self.node, &self.view, None);
        }
        // Only after the view shows them: a client told "done" can read it back.
        for (reply, outcome) in answers {
            let _ = reply.send(Ok(outcome));
        }
        let applied = self.node.state().applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_apply)
            .into_iter()
            .partition(|(index, _, _)| *index <= applied);
        self.awaiting_apply = waiting;
        for (_, outcome, reply) in ready {
            let _ = reply.send(Ok(outcome));
        }
        Ok(())
    }

    /// What was proposed here may never commit now: tell the proposers to retry.
    fn lost_leadership(&mut self) {
        let leader = self.node.leader_id();
        for (_, reply) in std::mem::take(&mut self.local) {
            let _ = reply.send(Err(ProposalFailure::NotLeader { leader }));
        }
        for (_, (origin, request_id)) in std::mem::take(&mut self.forwarded_in) {
            self.send(
                origin,
                PeerMessage::ForwardReply {
                    request_id,
                    outcome: ForwardOutcome::NotLeader { leader },
                },
            );
        }
    }

    fn expire_forwards(&mut self, now: Instant) {
        self.forwarded_out
            .retain(|_, (reply, deadline)| !reply.is_closed() && *deadline > now);
        self.awaiting_apply
            .retain(|(_, _, reply)| !reply.is_closed());
    }

    /// The controller's duty: fence every broker whose session lapsed (R-CLUSTER-2).
    fn controller_duties(&mut self, now: Instant) {
        let Some(since) = self.leader_since else {
            return;
        };
        let me = self.node.id();
        let timeout = self.config.session_timeout;
        let lapsed: Vec<i32> = self
            .node
            .state()
            .brokers
            .values()
            .filter(|b| !b.fenced && b.broker_id as u64 != me)
            .filter(|b| {
                // A new controller gives every broker a full session first.
                let heard = self
                    .last_heard
                    .get(&(b.broker_id as u64))
                    .copied()
                    .unwrap_or(since)
                    .max(since);
                now.duration_since(heard) > timeout
            })
            .map(|b| b.broker_id)
            .collect();
        self.fencing
            .retain(|id, at| lapsed.contains(id) && now.duration_since(*at) < timeout);
        for broker_id in lapsed {
            if self.fencing.contains_key(&broker_id) {
                continue;
            }
            tracing::warn!(broker_id, "broker session lapsed; fencing it");
            let id = self.fresh_id();
            let command = MetadataCommand::FenceBroker { broker_id };
            if self
                .node
                .propose(&CommandEnvelope::new(id, command))
                .is_ok()
            {
                self.fencing.insert(broker_id, now);
            }
        }
    }

    fn fail(&self, error: NodeError) {
        tracing::error!(%error, "metadata node stopped: it cannot continue safely");
        publish(&self.node, &self.view, Some(error.to_string()));
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
