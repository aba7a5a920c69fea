//! The metadata node's driver: every decision between the Raft core and the world,
//! as a step function. An input (a proposal, a peer message, the passing of time)
//! and the current time in milliseconds go in; what the shell must do comes out:
//! messages to send, the view to publish, proposers to answer. The tokio shell
//! (`chronik::broker::consensus_loop`) and the simulator (`chronik-sim`) run this
//! same code; neither decides anything itself.
//!
//! Decisions kept here: proposing only as leader and forwarding otherwise
//! (R-PROPOSE-1, R-PROPOSE-2), answering a proposer only once its outcome is applied
//! and visible in the view, failing proposals when leadership is lost, timing out
//! forwards, the broker's own registration and its retries (R-START-3), a one-voter
//! group electing itself at once (R-START-4), and the controller's fencing of brokers
//! whose session lapsed (R-CLUSTER-2).
//!
//! The conformance oracle runs this same driver with [`Pacing::Stepwise`]: the model
//! says when each stage of a Ready happens and when an election timer fires, and the
//! driver decides everything else exactly as in the broker.

use super::node::{MetadataNode, NodeError, ProposeError, ReadyOutput};
use super::peer::{ForwardOutcome, PeerMessage};
use crate::metadata::{
    ApplyOutcome, CommandEnvelope, CopyRef, Endpoint, MetadataCommand, MetadataState,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Ticks a leader waits for a follower to acknowledge a snapshot before sending it
/// again (a snapshot is at most a few megabytes of metadata).
const SNAPSHOT_PATIENCE_TICKS: u64 = 40;

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

/// This broker's own registration, proposed until the metadata shows it (R-START-3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub broker_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Larger at every start (the shell keeps it on disk), so a late registration
    /// from an earlier life never replaces this one.
    pub incarnation: u64,
    /// Every named Kafka listener with its advertised address.
    pub listeners: Vec<Endpoint>,
    /// This broker acknowledges produces before they are durable (the interval
    /// fsync policy): its restarts hand over what it leads (R-REPL-5).
    pub acks_before_fsync: bool,
    /// The copies this start's recovery found short of records (R-REPL-4): known
    /// before the registration is built, since the partition logs are opened first.
    pub short_copies: Vec<CopyRef>,
}

impl Registration {
    fn command(&self) -> MetadataCommand {
        MetadataCommand::RegisterBroker {
            broker_id: self.broker_id,
            host: self.host.clone(),
            port: self.port,
            rack: self.rack.clone(),
            incarnation: self.incarnation,
            listeners: self.listeners.clone(),
            acks_before_fsync: self.acks_before_fsync,
            short_copies: self.short_copies.clone(),
        }
    }

    /// What to propose for this start in `state`: its registration, or once that is
    /// applied and then fenced, the request to lift that fence (a registration of
    /// the same start would be refused, R-CLUSTER-2).
    pub fn command_in(&self, state: &MetadataState) -> MetadataCommand {
        match state.brokers.get(&self.broker_id) {
            Some(b) if b.incarnation == self.incarnation && b.fenced => {
                MetadataCommand::UnfenceBroker {
                    broker_id: self.broker_id,
                    incarnation: self.incarnation,
                    fenced_at: b.fenced_at,
                }
            }
            _ => self.command(),
        }
    }

    fn is_applied(&self, state: &MetadataState) -> bool {
        state
            .brokers
            .get(&self.broker_id)
            .is_some_and(|b| b.incarnation == self.incarnation && !b.fenced)
    }
}

/// Who decides when raft-rs's Readys are handled and its timers fire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pacing {
    /// The broker and the simulator: raft-rs ticks with the clock, and every Ready is
    /// written, made durable and advanced within the step that produced it.
    #[default]
    Whole,
    /// The conformance oracle: the shell takes, persists and finishes each Ready
    /// ([`Input::BeginReady`], [`Input::PersistReady`], [`Input::FinishReady`]) and
    /// fires the election timer ([`Input::ElectionTimeout`]), as the model's actions
    /// say; raft-rs is never ticked. A loop in the middle of a Ready proposes no
    /// registration (it cannot take a request then; the retry timer brings it back).
    Stepwise,
}

#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub tick_ms: u64,
    /// The controller fences a broker it has not heard from for this long.
    pub session_timeout_ms: u64,
    /// How long a forwarded proposal may wait for the leader's answer, and how long a
    /// client's proposal may wait for a leader to take it.
    pub forward_timeout_ms: u64,
    /// A client's proposal that finds no leader, or whose forward the node it was
    /// sent to refused (it no longer led), waits for a leader and is placed again,
    /// within `forward_timeout_ms`, as Kafka's forwarding to its controller does
    /// (`NodeToControllerRequestThread` requeues on NOT_CONTROLLER). Either way it was
    /// appended nowhere, so placing it again cannot apply it twice. Off: it is
    /// answered `NotLeader` at once, as the conformance model's client is.
    pub await_leader: bool,
    /// How often an unapplied registration is proposed at most; with stepwise pacing
    /// also how long a forwarded one waits for the leader's answer before it is
    /// proposed again (the broker gives it `forward_timeout_ms`).
    pub registration_retry_ms: u64,
    /// Where proposal ids start. They must differ from those of earlier runs of this
    /// node still in the log (the shell derives this from its incarnation); the node
    /// id is folded in by the driver so that nodes never share ids.
    pub id_base: u64,
    pub pacing: Pacing,
}

/// One input to [`Driver::step`].
#[derive(Debug, Clone)]
pub enum Input {
    /// A proposal from this broker; `token` comes back in its [`Effect::Answer`].
    Propose {
        token: u64,
        command: MetadataCommand,
    },
    Peer {
        from: u64,
        message: PeerMessage,
    },
    /// The listeners are bound: register this broker, and again on the retry timer
    /// until the metadata shows it (R-START-3).
    Register(Registration),
    /// Only time passed.
    Tick,
    /// [`Pacing::Stepwise`]: the election timer fired.
    ElectionTimeout,
    /// [`Pacing::Stepwise`]: a leader's check-quorum timer fired (it steps down if it
    /// heard from no quorum since the last check).
    QuorumCheck,
    /// [`Pacing::Stepwise`]: take a Ready (its writes are not yet durable).
    BeginReady,
    /// [`Pacing::Stepwise`]: fdatasync what the taken Ready wrote.
    PersistReady,
    /// [`Pacing::Stepwise`]: advance past the taken Ready, once it is durable.
    FinishReady,
}

/// What the shell must do, in this order.
#[derive(Debug, Clone)]
pub enum Effect {
    Send {
        to: u64,
        message: PeerMessage,
    },
    /// The view changed: publish [`Driver::view`] (before the answers that follow).
    PublishView,
    Answer {
        token: u64,
        result: Result<ApplyOutcome, ProposalFailure>,
    },
}

/// Who waits for a proposal's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    Client(u64),
    Registration,
}

/// A proposal sent on to the leader: kept whole, so that a refusal can place it again.
#[derive(Debug, Clone)]
struct Pending {
    command: MetadataCommand,
    waiter: Waiter,
    deadline: u64,
}

/// A client's proposal appended nowhere yet, waiting for a leader to take it.
#[derive(Debug, Clone)]
struct Unplaced {
    pending: Pending,
    /// The node that refused its forward and the term this node was in then: it is
    /// not sent there again until this node learns of another leader or term.
    refused_by: Option<(u64, u64)>,
}

pub struct Driver {
    node: MetadataNode,
    config: DriverConfig,
    next_id: u64,
    next_tick_ms: Option<u64>,
    /// Proposed here, by this broker: answered when applied.
    local: BTreeMap<u64, Waiter>,
    /// Proposed here for another node: (origin, its request id).
    forwarded_in: BTreeMap<u64, (u64, u64)>,
    /// Forwarded to the leader, waiting for its answer until the deadline.
    forwarded_out: BTreeMap<u64, Pending>,
    /// Clients' proposals that no leader has taken yet (see
    /// [`DriverConfig::await_leader`]).
    unplaced: Vec<Unplaced>,
    /// The leader applied them at this index; answered once this node has applied
    /// that far too, or dropped at the deadline.
    awaiting_apply: Vec<(u64, ApplyOutcome, Waiter, u64)>,
    /// Applied and waiting until the view that shows them is published.
    answers_due: Vec<(Waiter, ApplyOutcome)>,
    /// When each peer was last heard from (any message).
    last_heard: BTreeMap<u64, u64>,
    leader_since: Option<u64>,
    /// Fences proposed and not yet applied, to propose each once per session timeout.
    fencing: BTreeMap<i32, u64>,
    /// When the leader was first seen waiting on a snapshot to each peer.
    snapshot_waits: BTreeMap<u64, u64>,
    published: Option<(Option<u64>, u64, u64)>,
    view_changed: bool,
    registration: Option<Registration>,
    registration_due_ms: u64,
    registration_in_flight: bool,
    registered: bool,
    failed: Option<String>,
    effects: Vec<Effect>,
    /// [`DriverBugs::init_waits_election`] holds the loop back: nothing reaches raft-rs.
    loop_held_back: bool,
    bugs: DriverBugs,
}

/// A one-voter group campaigns as soon as its storage is recovered and replayed: no
/// other vote can ever come, so an election timeout would only keep its clients
/// waiting (R-START-4). Local work, like the replay; raft-rs makes it leader at once.
pub fn elect_sole_voter(node: &mut MetadataNode) -> Result<(), NodeError> {
    if node.voters() == [node.id()] && !node.is_leader() {
        node.campaign()?;
    }
    Ok(())
}

/// Test-only faults (feature `inject-bugs`), each the bug class of a seed or of the
/// cluster work, for the simulator to prove it finds them. All off unless a test
/// sets them through [`Driver::with_bugs`], which exists only with the feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverBugs {
    /// Answer a proposal as soon as the leader appended it, before it commits.
    pub ack_before_commit: bool,
    /// Register only once this node leads (seed 000, bug 2): followers never do.
    pub register_only_as_leader: bool,
    /// Serve the recovered view before replaying the committed metadata (seed 000).
    pub skip_replay: bool,
    /// Advance Raft before its writes are durable: the Raft log's fsync does nothing.
    pub skip_raft_fsync: bool,
    /// A node whose Raft log was damaged and cut votes and campaigns while it
    /// repairs, as if the cut had been a torn tail (R-RECOVER-9).
    pub vote_while_repairing: bool,
    /// The registration does not say that this broker acknowledges before fsync, as
    /// before R-REPL-5: a restarted leader keeps leading after its crash cut records
    /// it acknowledged, and its followers truncate them away.
    pub unclean_restart_keeps_leading: bool,
    /// A forwarded write's answer names the leader's applied index after its whole
    /// Ready, not the write's own entry (before 3053898): the origin then waits for
    /// entries that have nothing to do with its client's write.
    pub forward_answer_names_applied_index: bool,
    /// The consensus loop starts only once a leader is known (seed 001: a start-up
    /// that awaited a leader before the loop that elects one ran): a driver that
    /// starts knowing no leader takes no tick, timer or peer message, the only
    /// inputs that could tell it one.
    pub init_waits_election: bool,
    /// A follower hands its proposals to raft-rs (seed 003, as raft-rs 0.7 behaves:
    /// forwarded as its own `MsgPropose`, dropped by a leader that no longer leads or
    /// by a lost message) and takes `propose` returning Ok for success at once.
    pub propose_on_follower: bool,
    /// Replay and apply skip a committed entry that does not decode (seed 000)
    /// instead of stopping the node (R-RECOVER-3).
    pub skip_undecodable: bool,
}

impl Driver {
    /// Replays the committed metadata the node recovered (local work, no peer and no
    /// election: R-RECOVER-2); a one-voter group then campaigns at once, since no
    /// other vote can ever come (R-START-4). The first [`step`](Self::step) elects it
    /// and proposes the registration.
    pub fn new(node: MetadataNode, config: DriverConfig) -> Result<Self, NodeError> {
        Self::build(node, config, DriverBugs::default())
    }

    /// A driver with test-only faults switched on.
    #[cfg(feature = "inject-bugs")]
    pub fn with_bugs(
        node: MetadataNode,
        config: DriverConfig,
        bugs: DriverBugs,
    ) -> Result<Self, NodeError> {
        Self::build(node, config, bugs)
    }

    fn build(
        mut node: MetadataNode,
        config: DriverConfig,
        bugs: DriverBugs,
    ) -> Result<Self, NodeError> {
        #[cfg(feature = "inject-bugs")]
        if bugs.skip_raft_fsync {
            node.inject_skip_fsync();
        }
        #[cfg(feature = "inject-bugs")]
        if bugs.skip_undecodable {
            node.inject_skip_undecodable();
        }
        if !bugs.skip_replay {
            node.replay_committed()?;
        }
        #[cfg(feature = "inject-bugs")]
        if bugs.vote_while_repairing {
            node.inject_vote_while_repairing();
        }
        elect_sole_voter(&mut node)?;
        let next_id = (node.id() << 56) | (config.id_base & ((1 << 56) - 1));
        let loop_held_back = bugs.init_waits_election && node.leader_id().is_none();
        Ok(Driver {
            node,
            config,
            next_id,
            next_tick_ms: None,
            local: BTreeMap::new(),
            forwarded_in: BTreeMap::new(),
            forwarded_out: BTreeMap::new(),
            unplaced: Vec::new(),
            awaiting_apply: Vec::new(),
            answers_due: Vec::new(),
            last_heard: BTreeMap::new(),
            leader_since: None,
            fencing: BTreeMap::new(),
            snapshot_waits: BTreeMap::new(),
            published: None,
            view_changed: false,
            registration: None,
            registration_due_ms: 0,
            registration_in_flight: false,
            registered: false,
            failed: None,
            effects: Vec::new(),
            loop_held_back,
            bugs,
        })
    }

    pub fn node(&self) -> &MetadataNode {
        &self.node
    }

    /// The node, for the conformance oracle's test-only levers on raft-rs (a lease
    /// that lapsed, a heartbeat's round trip), which the model takes as one step.
    #[cfg(feature = "inject-bugs")]
    pub fn node_mut(&mut self) -> &mut MetadataNode {
        &mut self.node
    }

    pub fn view(&self) -> MetadataView {
        MetadataView {
            state: Arc::new(self.node.state().clone()),
            leader_id: self.node.leader_id(),
            is_leader: self.node.is_leader(),
            term: self.node.term(),
            commit_index: self.node.commit_index(),
            failed: self.failed.clone(),
        }
    }

    /// When the next tick is due; the shell steps with [`Input::Tick`] by then.
    pub fn next_tick_ms(&self, now_ms: u64) -> u64 {
        self.next_tick_ms.unwrap_or(now_ms)
    }

    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Handles one input at `now_ms` (a monotonic clock the shell reads) and returns
    /// what to do. After an error the node has stopped: the error is returned once,
    /// and every later proposal is answered `Stopped`.
    pub fn step(&mut self, now_ms: u64, input: Input) -> Result<Vec<Effect>, NodeError> {
        if self.failed.is_some() {
            if let Input::Propose { token, .. } = input {
                self.answer(Waiter::Client(token), Err(ProposalFailure::Stopped));
            }
            return Ok(std::mem::take(&mut self.effects));
        }
        if let Err(error) = self.handle(now_ms, input) {
            tracing::error!(%error, "metadata node stopped: it cannot continue safely");
            self.failed = Some(error.to_string());
            self.effects.push(Effect::PublishView);
            return Err(error);
        }
        Ok(std::mem::take(&mut self.effects))
    }

    fn handle(&mut self, now: u64, input: Input) -> Result<(), NodeError> {
        if self.loop_awaits_a_leader() {
            self.held_back(now, input);
            return Ok(());
        }
        match input {
            Input::Propose { token, command } => {
                let deadline = now.saturating_add(self.config.forward_timeout_ms);
                self.propose(
                    now,
                    Pending {
                        command,
                        waiter: Waiter::Client(token),
                        deadline,
                    },
                )
            }
            Input::Peer { from, message } => self.peer(now, from, message)?,
            Input::Register(registration) => {
                self.registration = Some(registration);
                self.registration_due_ms = now;
            }
            Input::Tick => {}
            Input::ElectionTimeout => self.stepwise()?.campaign()?,
            Input::QuorumCheck => self.stepwise()?.check_quorum()?,
            Input::BeginReady => {
                if let Some(out) = self.stepwise()?.begin_ready()? {
                    self.take_output(out);
                }
            }
            Input::PersistReady => self.stepwise()?.persist()?,
            Input::FinishReady => {
                let out = self.stepwise()?.finish_ready()?;
                self.take_output(out);
            }
        }
        if now >= self.next_tick_ms.unwrap_or(0) {
            if self.next_tick_ms.is_some() && self.config.pacing == Pacing::Whole {
                self.node.tick();
            }
            let next = self.next_tick_ms.unwrap_or(now) + self.config.tick_ms;
            // After a pause, tick again one interval from now rather than in a burst.
            self.next_tick_ms = Some(if next <= now {
                now + self.config.tick_ms
            } else {
                next
            });
            self.controller_duties(now);
            self.retry_lost_snapshots(now);
            self.expire(now);
        }
        self.drive(now)?;
        if self.register(now) | self.place_unplaced(now) {
            self.drive(now)?;
        }
        Ok(())
    }

    /// With [`DriverBugs::init_waits_election`]: the loop has not started and no
    /// leader is known, which only the loop could learn.
    fn loop_awaits_a_leader(&mut self) -> bool {
        if self.node.leader_id().is_some() {
            self.loop_held_back = false;
        }
        self.loop_held_back
    }

    /// A start-up held back until a leader is known: it polls on the tick timer,
    /// what reaches the broker is kept or waits, nothing reaches raft-rs.
    fn held_back(&mut self, now: u64, input: Input) {
        self.next_tick_ms = Some(now + self.config.tick_ms);
        match input {
            Input::Propose { token, command } => {
                let pending = Pending {
                    command,
                    waiter: Waiter::Client(token),
                    deadline: now.saturating_add(self.config.forward_timeout_ms),
                };
                self.await_leader(now, pending, None, None);
            }
            Input::Register(registration) => self.registration = Some(registration),
            _ => {}
        }
    }

    /// The node, for an input only [`Pacing::Stepwise`] takes.
    fn stepwise(&mut self) -> Result<&mut MetadataNode, NodeError> {
        if self.config.pacing != Pacing::Stepwise {
            return Err(NodeError::Raft(
                "a Ready stage or election timer from the shell, but the driver paces itself"
                    .into(),
            ));
        }
        Ok(&mut self.node)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&mut self, to: u64, message: PeerMessage) {
        self.effects.push(Effect::Send { to, message });
    }

    fn answer(&mut self, waiter: Waiter, result: Result<ApplyOutcome, ProposalFailure>) {
        match waiter {
            Waiter::Client(token) => self.effects.push(Effect::Answer { token, result }),
            Waiter::Registration => {
                self.registration_in_flight = false;
                if result.is_err() {
                    // Not applied: the retry timer proposes it again (R-START-3).
                    tracing::debug!(?result, "registration not applied yet; retrying");
                }
            }
        }
    }

    /// Proposes as leader, forwards to the known leader, or (a client's, with
    /// [`DriverConfig::await_leader`]) waits for one.
    fn propose(&mut self, now: u64, pending: Pending) {
        let id = self.fresh_id();
        let envelope = CommandEnvelope::new(id, pending.command.clone());
        match self.node.propose(&envelope) {
            Ok(()) if self.bugs.ack_before_commit => {
                self.answer(pending.waiter, Ok(ApplyOutcome::Done))
            }
            Ok(()) => {
                self.local.insert(id, pending.waiter);
            }
            #[cfg(feature = "inject-bugs")]
            Err(ProposeError::NotLeader {
                leader: Some(leader),
            }) if self.bugs.propose_on_follower && leader != self.node.id() => {
                let result = match self.node.propose_through_raft(&envelope) {
                    Ok(()) => Ok(ApplyOutcome::Done),
                    Err(ProposeError::Dropped(why)) => Err(ProposalFailure::Dropped(why)),
                    Err(ProposeError::NotLeader { leader }) => {
                        Err(ProposalFailure::NotLeader { leader })
                    }
                };
                self.answer(pending.waiter, result)
            }
            Err(ProposeError::NotLeader {
                leader: Some(leader),
            }) if leader != self.node.id() && self.node.voters().len() > 1 => {
                self.send(
                    leader,
                    PeerMessage::Forward {
                        request_id: id,
                        command: pending.command.clone(),
                    },
                );
                let patience = match (pending.waiter, self.config.pacing) {
                    (Waiter::Registration, Pacing::Stepwise) => self.config.registration_retry_ms,
                    _ => self.config.forward_timeout_ms,
                };
                let deadline = pending.deadline.min(now.saturating_add(patience));
                self.forwarded_out.insert(
                    id,
                    Pending {
                        deadline,
                        ..pending
                    },
                );
            }
            Err(ProposeError::NotLeader { leader }) => {
                self.await_leader(now, pending, None, leader)
            }
            Err(ProposeError::Dropped(why)) => {
                self.answer(pending.waiter, Err(ProposalFailure::Dropped(why)))
            }
        }
    }

    /// A proposal appended nowhere: a client's waits for a leader (if configured and
    /// before its deadline); any other is answered `NotLeader`.
    fn await_leader(
        &mut self,
        now: u64,
        pending: Pending,
        refused_by: Option<u64>,
        leader: Option<u64>,
    ) {
        let waits = self.config.await_leader
            && matches!(pending.waiter, Waiter::Client(_))
            && now < pending.deadline;
        if waits {
            let refused_by = refused_by.map(|node| (node, self.node.term()));
            self.unplaced.push(Unplaced {
                pending,
                refused_by,
            });
        } else {
            self.answer(pending.waiter, Err(ProposalFailure::NotLeader { leader }));
        }
    }

    /// Places again every waiting proposal for which a leader is now known (one that
    /// did not refuse it, or did so in an earlier term). Returns true if it placed any.
    fn place_unplaced(&mut self, now: u64) -> bool {
        let Some(leader) = self.node.leader_id() else {
            return false;
        };
        if self.node.ready_pending() {
            return false;
        }
        let term = self.node.term();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unplaced)
            .into_iter()
            .partition(|u| u.refused_by.is_none_or(|refused| refused != (leader, term)));
        self.unplaced = waiting;
        let placed = !ready.is_empty();
        for unplaced in ready {
            self.propose(now, unplaced.pending);
        }
        placed
    }

    fn peer(&mut self, now: u64, from: u64, message: PeerMessage) -> Result<(), NodeError> {
        self.last_heard.insert(from, now);
        match message {
            PeerMessage::Raft(m) => self.node.step(m)?,
            PeerMessage::Forward {
                request_id,
                command,
            } => self.forwarded(from, request_id, command),
            PeerMessage::ForwardReply {
                request_id,
                outcome,
            } => {
                if let Some(pending) = self.forwarded_out.remove(&request_id) {
                    self.forward_answered(now, from, pending, outcome);
                }
            }
        }
        Ok(())
    }

    fn forward_answered(&mut self, now: u64, from: u64, pending: Pending, outcome: ForwardOutcome) {
        match outcome {
            ForwardOutcome::Applied { index, outcome } => {
                self.awaiting_apply
                    .push((index, outcome, pending.waiter, pending.deadline))
            }
            ForwardOutcome::Refused { leader } => {
                self.await_leader(now, pending, Some(from), leader)
            }
            // Appended by a leader that lost leadership: it may still commit, so
            // placing it again could apply it twice; the client decides.
            ForwardOutcome::NotLeader { leader } => {
                self.answer(pending.waiter, Err(ProposalFailure::NotLeader { leader }))
            }
            ForwardOutcome::Dropped(why) => {
                self.answer(pending.waiter, Err(ProposalFailure::Dropped(why)))
            }
        }
    }

    /// A proposal another node forwarded here: proposed if this node leads, answered
    /// with who leads otherwise (never forwarded on: no loops).
    fn forwarded(&mut self, origin: u64, request_id: u64, command: MetadataCommand) {
        let id = self.fresh_id();
        let outcome = match self.node.propose(&CommandEnvelope::new(id, command)) {
            Ok(()) => {
                self.forwarded_in.insert(id, (origin, request_id));
                return;
            }
            Err(ProposeError::NotLeader { leader }) => ForwardOutcome::Refused { leader },
            Err(ProposeError::Dropped(why)) => ForwardOutcome::Dropped(why),
        };
        self.send(
            origin,
            PeerMessage::ForwardReply {
                request_id,
                outcome,
            },
        );
    }

    /// Handles every Ready ([`Pacing::Whole`]), then settles: publishes the view and
    /// answers the proposers whose outcome it now shows.
    fn drive(&mut self, now: u64) -> Result<(), NodeError> {
        if self.config.pacing == Pacing::Whole {
            while self.node.has_ready() {
                let out = self.node.process_ready()?;
                self.take_output(out);
            }
        }
        self.settle(now)
    }

    /// Sends a Ready's messages and notes the outcomes of what it applied.
    fn take_output(&mut self, out: ReadyOutput) {
        self.view_changed |= out.state_changed;
        for m in out.messages {
            self.send(m.to, PeerMessage::Raft(m));
        }
        let applied_after_ready = self.node.state().applied_index;
        for (id, index, outcome) in out.applied {
            let index = if self.bugs.forward_answer_names_applied_index {
                applied_after_ready
            } else {
                index
            };
            if let Some(waiter) = self.local.remove(&id) {
                self.answers_due.push((waiter, outcome));
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

    fn settle(&mut self, now: u64) -> Result<(), NodeError> {
        if self.node.is_leader() {
            self.leader_since.get_or_insert(now);
        } else {
            self.leader_since = None;
            self.fencing.clear();
            self.lost_leadership();
        }
        let summary = (
            self.node.leader_id(),
            self.node.term(),
            self.node.commit_index(),
        );
        if std::mem::take(&mut self.view_changed) || self.published != Some(summary) {
            self.published = Some(summary);
            self.effects.push(Effect::PublishView);
        }
        // Only after the view shows them: a client told "done" can read it back.
        for (waiter, outcome) in std::mem::take(&mut self.answers_due) {
            self.answer(waiter, Ok(outcome));
        }
        let applied = self.node.state().applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_apply)
            .into_iter()
            .partition(|(index, ..)| *index <= applied);
        self.awaiting_apply = waiting;
        for (_, outcome, waiter, _) in ready {
            self.answer(waiter, Ok(outcome));
        }
        self.note_registration()?;
        Ok(())
    }

    /// What was proposed here may never commit now: tell the proposers to retry.
    fn lost_leadership(&mut self) {
        let leader = self.node.leader_id();
        for (_, waiter) in std::mem::take(&mut self.local) {
            self.answer(waiter, Err(ProposalFailure::NotLeader { leader }));
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

    fn expire(&mut self, now: u64) {
        let (expired, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.forwarded_out)
                .into_iter()
                .partition(|(_, pending)| pending.deadline <= now);
        self.forwarded_out = kept;
        let (gave_up, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unplaced)
            .into_iter()
            .partition(|u| u.pending.deadline <= now);
        self.unplaced = still;
        let leader = self.node.leader_id();
        for unplaced in gave_up {
            let failure = ProposalFailure::NotLeader { leader };
            self.answer(unplaced.pending.waiter, Err(failure));
        }
        let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_apply)
            .into_iter()
            .partition(|(.., deadline)| *deadline <= now);
        self.awaiting_apply = waiting;
        let expired = expired.into_values().map(|pending| pending.waiter);
        for waiter in expired.chain(late.into_iter().map(|(_, _, waiter, _)| waiter)) {
            self.answer(waiter, Err(ProposalFailure::TimedOut));
        }
    }

    /// Proposes this broker's registration if it is not applied, none is in flight,
    /// a leader is known and the loop is not in the middle of a Ready, at most once
    /// per retry interval (R-START-3). Returns true if it proposed.
    ///
    /// The broker tries at every step, so it proposes as soon as it learns a leader.
    /// Stepwise pacing puts the registration on its timer alone, as the model's
    /// `RegisterRetry` is: an attempt that cannot propose waits for the next
    /// interval, and a forwarded one is given up after an interval.
    fn register(&mut self, now: u64) -> bool {
        let Some(registration) = &self.registration else {
            return false;
        };
        if now < self.registration_due_ms || registration.is_applied(self.node.state()) {
            return false;
        }
        if self.config.pacing == Pacing::Stepwise {
            self.registration_due_ms = now + self.config.registration_retry_ms;
        }
        if self.registration_in_flight
            || self.node.leader_id().is_none()
            || self.node.ready_pending()
            || (self.bugs.register_only_as_leader && !self.node.is_leader())
        {
            return false;
        }
        self.registration_due_ms = now + self.config.registration_retry_ms;
        let mut command = registration.command_in(self.node.state());
        if self.bugs.unclean_restart_keeps_leading {
            if let MetadataCommand::RegisterBroker {
                acks_before_fsync, ..
            } = &mut command
            {
                *acks_before_fsync = false;
            }
        }
        self.registration_in_flight = true;
        let deadline = now.saturating_add(self.config.forward_timeout_ms);
        self.propose(
            now,
            Pending {
                command,
                waiter: Waiter::Registration,
                deadline,
            },
        );
        true
    }

    /// Notes this start's registration once applied. The leader appended it after
    /// this start, so a node repairing a damaged Raft log now holds every entry it
    /// acknowledged before, and may vote again (R-RECOVER-9).
    fn note_registration(&mut self) -> Result<(), NodeError> {
        let Some(registration) = &self.registration else {
            return Ok(());
        };
        let registered = registration.is_applied(self.node.state());
        if registered && !self.registered {
            tracing::info!(broker_id = registration.broker_id, "broker registered");
            self.node.finish_repair()?;
        }
        self.registered = registered;
        Ok(())
    }

    /// The transport does not report deliveries, so a snapshot still unacknowledged
    /// after a while is reported lost and raft-rs sends another (found by the
    /// simulator: a lost snapshot message stalled its follower for good).
    fn retry_lost_snapshots(&mut self, now: u64) {
        let waiting = self.node.peers_awaiting_snapshot();
        self.snapshot_waits.retain(|peer, _| waiting.contains(peer));
        let patience = SNAPSHOT_PATIENCE_TICKS * self.config.tick_ms;
        for peer in waiting {
            let since = *self.snapshot_waits.entry(peer).or_insert(now);
            if now.saturating_sub(since) >= patience {
                tracing::info!(peer, "snapshot unacknowledged; sending it again");
                self.node.report_snapshot_lost(peer);
                self.snapshot_waits.remove(&peer);
            }
        }
    }

    /// The controller's duty: fence every broker whose session lapsed (R-CLUSTER-2).
    fn controller_duties(&mut self, now: u64) {
        let Some(since) = self.leader_since else {
            return;
        };
        let me = self.node.id();
        let timeout = self.config.session_timeout_ms;
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
                now.saturating_sub(heard) > timeout
            })
            .map(|b| b.broker_id)
            .collect();
        self.fencing
            .retain(|id, at| lapsed.contains(id) && now.saturating_sub(*at) < timeout);
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
}
