//! The metadata node core: deterministic, no threads, no clock, no sockets. It takes
//! inputs (ticks, proposals, peer messages) and returns what the shell must do (send
//! messages, answer proposers). Its only I/O is through the `Disk` seam, so the
//! simulation shell can drive it with a simulated disk.

use super::wal::{RaftStore, RaftWal};
use crate::disk::Disk;
use crate::log::LogError;
use crate::metadata::{ApplyOutcome, CommandEnvelope, MetadataState, Snapshot};
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType};
use raft::{ProgressState, RawNode, SnapshotStatus, StateRole, Storage};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: u64,
    pub voters: Vec<u64>,
    /// Ticks without a leader before a follower campaigns.
    pub election_tick: usize,
    /// Each election timeout is drawn from `[min, max)` ticks at every reset (a new
    /// term or role); 0 means raft-rs's default `[election_tick, 2 * election_tick)`.
    pub min_election_tick: usize,
    pub max_election_tick: usize,
    /// `None`: raft-rs draws the timeouts from its own random source (the broker).
    /// `Some(seed)`: they are drawn from a sequence this seed decides, so that a seed
    /// alone decides a simulated run while every reset still draws afresh: a timeout
    /// pinned per node lets two nodes with the same one split every vote forever.
    pub election_seed: Option<u64>,
    pub heartbeat_tick: usize,
    /// Snapshot and compact the Raft log every this many applied entries.
    pub snapshot_interval: u64,
    /// raft-rs's pre-vote round before each election. The broker always runs it;
    /// the conformance oracle turns it off because the metadata model campaigns
    /// without it (spec/conformance.md, "Scope today").
    pub pre_vote: bool,
    /// Appends a leader keeps in flight to one follower (raft-rs
    /// `max_inflight_msgs`). The oracle uses 1, the model's flow control.
    pub max_inflight_appends: usize,
    /// Bytes of entries one append carries at most (raft-rs `max_size_per_msg`;
    /// 0, its default and the broker's: one entry per append, which the pipeline
    /// of in-flight appends makes up for). The oracle lifts it: the model's
    /// append carries every entry the follower lacks.
    pub max_append_bytes: u64,
}

impl NodeConfig {
    pub fn single(node_id: u64) -> Self {
        NodeConfig {
            node_id,
            voters: vec![node_id],
            election_tick: 10,
            min_election_tick: 0,
            max_election_tick: 0,
            election_seed: None,
            heartbeat_tick: 2,
            snapshot_interval: 1000,
            pre_vote: true,
            max_inflight_appends: raft::Config::default().max_inflight_msgs,
            max_append_bytes: raft::Config::default().max_size_per_msg,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed; the node must stop, since it can no longer keep its promises.
    #[error("metadata storage: {0}")]
    Storage(#[from] LogError),
    /// A committed entry could not be decoded: applying anything after it would fork
    /// this node's state, so the node stops (seed 000: never skip).
    #[error("committed metadata entry {index} cannot be decoded: {reason}")]
    Undecodable { index: u64, reason: String },
    #[error("raft: {0}")]
    Raft(String),
    /// `finish_ready` was called before the Ready's writes were fsynced: a bug in the
    /// caller, refused rather than breaking R-PERSIST-2.
    #[error("a Ready was advanced before its writes were durable")]
    NotPersisted,
}

/// See [`MetadataNode::observe`].
#[derive(Debug, Clone)]
pub struct RaftObservation {
    pub term: u64,
    /// 0 when the node voted for nobody in this term.
    pub vote: u64,
    pub role: StateRole,
    pub leader: Option<u64>,
    pub first_index: u64,
    /// Every entry in memory, stable or not, from `first_index`.
    pub entries: Vec<Entry>,
    /// raft-rs's persisted index.
    pub persisted: u64,
    pub committed: u64,
    pub applied: u64,
    pub ready_pending: bool,
    /// Repairing a damaged Raft log (R-RECOVER-9).
    pub repairing: bool,
    /// The metadata snapshot the Raft log was last compacted to (0: none), and the
    /// term of its last entry.
    pub snapshot_index: u64,
    pub snapshot_term: u64,
}

/// What [`MetadataNode::observe`] would show, without copying the log: equal
/// positions at two moments mean nothing of the Raft state changed in between, as
/// long as raft-rs keeps log matching (two logs with the same last index and term
/// hold the same entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftPosition {
    pub term: u64,
    pub vote: u64,
    pub leader: bool,
    pub first_index: u64,
    pub last_index: u64,
    pub last_term: u64,
    pub persisted: u64,
    pub committed: u64,
    pub applied: u64,
    pub repairing: bool,
    pub snapshot_index: u64,
}

/// Why a proposal was not accepted. Both are retriable by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader proposes (R-PROPOSE-1); this is who the leader is, if known.
    NotLeader { leader: Option<u64> },
    /// raft-rs dropped it (leadership transfer, uncommitted size limit).
    Dropped(String),
}

/// What the shell must do after a Ready was handled.
#[derive(Debug, Default)]
pub struct ReadyOutput {
    /// Messages to send to peers; every message here may be sent now (the ones that
    /// needed persistence were released only after the fsync).
    pub messages: Vec<Message>,
    /// Outcomes of applied commands: (the proposer's command id, the entry's Raft
    /// index, the outcome).
    pub applied: Vec<(u64, u64, ApplyOutcome)>,
    /// True when the metadata changed.
    pub state_changed: bool,
}

pub struct MetadataNode {
    raw: RawNode<RaftStore>,
    store: RaftStore,
    wal: RaftWal,
    state: MetadataState,
    config: NodeConfig,
    last_snapshot_index: u64,
    /// The term of the snapshot's last entry (what the oracle's view shows).
    last_snapshot_term: u64,
    /// The Ready between `begin_ready` and `finish_ready`.
    pending: Option<raft::Ready>,
    /// Test-only fault: see [`inject_vote_while_repairing`](Self::inject_vote_while_repairing).
    vote_while_repairing: bool,
    /// Test-only fault: see [`inject_skip_undecodable`](Self::inject_skip_undecodable).
    skip_undecodable: bool,
    /// The seeded election timeouts (`NodeConfig::election_seed`).
    election_draws: Option<ElectionDraws>,
    /// See [`tap_applies`](Self::tap_applies).
    apply_tap: Option<ApplyTap>,
}

/// Sees each command's Raft index and the metadata right after it is applied. A
/// batch applied in one Ready is published once, at its end; a trace validator that
/// must know the order of every commit reads them here.
pub type ApplyTap = Box<dyn FnMut(u64, &MetadataState) + Send>;

/// Election timeouts drawn from a seed: a new one whenever raft-rs reset its timer,
/// which it does on every change of term or role.
struct ElectionDraws {
    sequence: u64,
    range: (usize, usize),
    drawn_for: Option<(u64, StateRole)>,
}

impl ElectionDraws {
    fn new(seed: u64, config: &NodeConfig) -> Self {
        let min = match config.min_election_tick {
            0 => config.election_tick,
            min => min,
        };
        let max = match config.max_election_tick {
            0 => 2 * config.election_tick,
            max => max,
        };
        ElectionDraws {
            sequence: seed,
            range: (min, max.max(min + 1)),
            drawn_for: None,
        }
    }

    /// The timeout for a timer reset at `(term, role)`, or `None` if this reset
    /// was drawn for already.
    fn draw(&mut self, at: (u64, StateRole)) -> Option<usize> {
        if self.drawn_for == Some(at) {
            return None;
        }
        self.drawn_for = Some(at);
        // SplitMix64: a well-mixed sequence from any seed, in a few operations.
        self.sequence = self.sequence.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.sequence;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let (min, max) = self.range;
        Some(min + (z % (max - min) as u64) as usize)
    }
}

fn raft_logger() -> slog::Logger {
    // raft-rs logs through slog; our logs go through tracing. Its own logs add
    // nothing the node does not report itself.
    slog::Logger::root(slog::Discard, slog::o!())
}

impl MetadataNode {
    /// Recovers the Raft storage and the metadata snapshot; the committed entries
    /// after the snapshot are replayed by the first Readys (R-RECOVER-2).
    pub fn open(disk: Arc<dyn Disk>, dir: &Path, config: NodeConfig) -> Result<Self, NodeError> {
        let (wal, store) = RaftWal::open(disk, dir, &config.voters)?;
        Self::on_storage(wal, store, config)
    }

    /// Test-only fault for the conformance oracle: recovery cuts a damaged Raft log
    /// as if the damage were a torn tail (issue 12), see
    /// [`RaftWal::open_cutting_damage`].
    #[cfg(feature = "inject-bugs")]
    pub fn open_cutting_damage(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: NodeConfig,
    ) -> Result<Self, NodeError> {
        let (wal, store) = RaftWal::open_cutting_damage(disk, dir, &config.voters)?;
        Self::on_storage(wal, store, config)
    }

    fn on_storage(wal: RaftWal, store: RaftStore, config: NodeConfig) -> Result<Self, NodeError> {
        let snapshot = store.last_snapshot();
        let snapshot_index = snapshot.get_metadata().index;
        let state = if snapshot.get_data().is_empty() {
            MetadataState::default()
        } else {
            let mut state =
                Snapshot::decode(snapshot.get_data()).map_err(|reason| NodeError::Undecodable {
                    index: snapshot_index,
                    reason,
                })?;
            state.applied_index = snapshot_index;
            state
        };
        let raft_config = raft::Config {
            id: config.node_id,
            election_tick: config.election_tick,
            min_election_tick: config.min_election_tick,
            max_election_tick: config.max_election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied: snapshot_index,
            check_quorum: true,
            pre_vote: config.pre_vote,
            max_inflight_msgs: config.max_inflight_appends,
            max_size_per_msg: config.max_append_bytes,
            ..raft::Config::default()
        };
        raft_config
            .validate()
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let raw = RawNode::new(&raft_config, store.clone(), &raft_logger())
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let election_draws = config.election_seed.map(|s| ElectionDraws::new(s, &config));
        let mut node = MetadataNode {
            raw,
            store,
            wal,
            state,
            config,
            last_snapshot_index: snapshot_index,
            last_snapshot_term: snapshot.get_metadata().term,
            pending: None,
            vote_while_repairing: false,
            skip_undecodable: false,
            election_draws,
            apply_tap: None,
        };
        node.redraw_election_timeout();
        Ok(node)
    }

    /// With a seed, replaces the timeout raft-rs drew at its last reset with the
    /// seeded sequence's next one. Called after every call into raft-rs that can
    /// reset the timer (tick, campaign, step), before the next tick reads it.
    fn redraw_election_timeout(&mut self) {
        let at = (self.raw.raft.term, self.raw.raft.state);
        if let Some(timeout) = self.election_draws.as_mut().and_then(|d| d.draw(at)) {
            self.raw.raft.set_randomized_election_timeout(timeout);
        }
    }

    pub fn id(&self) -> u64 {
        self.config.node_id
    }

    pub fn voters(&self) -> &[u64] {
        &self.config.voters
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn role(&self) -> StateRole {
        self.raw.raft.state
    }

    pub fn leader_id(&self) -> Option<u64> {
        match self.raw.raft.leader_id {
            0 => None,
            id => Some(id),
        }
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    pub fn state(&self) -> &MetadataState {
        &self.state
    }

    pub fn wal_size_bytes(&self) -> u64 {
        self.wal.size_bytes()
    }

    /// Proposes a command, only as leader: raft-rs would forward a follower's
    /// proposal silently, or drop it, and the caller could not tell (R-PROPOSE-1).
    pub fn propose(&mut self, envelope: &CommandEnvelope) -> Result<(), ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader {
                leader: self.leader_id(),
            });
        }
        self.raw
            .propose(vec![], envelope.encode().map_err(ProposeError::Dropped)?)
            .map_err(|e| ProposeError::Dropped(e.to_string()))
    }

    /// One tick of logical time; returns true if there may be a Ready. A repairing
    /// node does not tick: a follower's ticks only lead to its own campaign.
    pub fn tick(&mut self) -> bool {
        let ready = !self.abstains() && self.raw.tick();
        self.redraw_election_timeout();
        ready
    }

    /// What raft-rs's tick does once an election timeout has passed on a leader:
    /// check-quorum, which steps it down if it heard from no quorum since the last
    /// check. For a shell that fires the timers itself ([`super::Pacing::Stepwise`]).
    pub fn check_quorum(&mut self) -> Result<(), NodeError> {
        let mut check = Message::default();
        check.set_msg_type(MessageType::MsgCheckQuorum);
        check.from = self.id();
        // A local message, which `RawNode::step` refuses: raft-rs steps it on its
        // inner `Raft`, as its own tick does.
        self.raw
            .raft
            .step(check)
            .map_err(|e| NodeError::Raft(e.to_string()))
    }

    /// Starts an election now instead of waiting for the election timeout; a
    /// repairing node does not (R-RECOVER-9).
    pub fn campaign(&mut self) -> Result<(), NodeError> {
        if self.abstains() {
            return Ok(());
        }
        let campaigned = self
            .raw
            .campaign()
            .map_err(|e| NodeError::Raft(e.to_string()));
        self.redraw_election_timeout();
        campaigned
    }

    /// The Raft log was damaged and cut, and the entries it lost are not yet
    /// fetched back from the leader: the node neither votes nor campaigns
    /// (R-RECOVER-9).
    pub fn is_repairing(&self) -> bool {
        self.wal.is_repairing()
    }

    /// Ends the repair once the log holds an entry the leader appended after this
    /// start (the driver's registration of this start, applied): the leader's log up
    /// to there holds every entry this node acknowledged before the damage, so it
    /// may vote again (R-RECOVER-9).
    pub fn finish_repair(&mut self) -> Result<(), NodeError> {
        if self.wal.is_repairing() {
            self.wal.finish_repair()?;
            tracing::info!(
                applied = self.state.applied_index,
                "the Raft log is repaired from the leader; voting again (R-RECOVER-9)"
            );
        }
        Ok(())
    }

    /// Peers this leader sent a snapshot to and still waits on. raft-rs waits for
    /// the shell to report the snapshot's fate; a lost snapshot message left
    /// unreported stalls that follower for as long as this node leads.
    pub fn peers_awaiting_snapshot(&self) -> Vec<u64> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.raw
            .raft
            .prs()
            .iter()
            .filter(|(_, p)| p.state == ProgressState::Snapshot)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The snapshot sent to `peer` may be lost: probe it again, which sends a new
    /// snapshot if it still needs one.
    pub fn report_snapshot_lost(&mut self, peer: u64) {
        self.raw.report_snapshot(peer, SnapshotStatus::Failure);
    }

    /// Feeds a message from a peer.
    pub fn step(&mut self, mut message: Message) -> Result<(), NodeError> {
        let mut probe_again = None;
        match message.get_msg_type() {
            // A leadership transfer would have it campaign at once (R-RECOVER-9).
            MessageType::MsgTimeoutNow if self.abstains() => return Ok(()),
            MessageType::MsgHeartbeat if self.wal.is_repairing() => {
                // The leader's idea of what this node holds predates the damage: a
                // heartbeat's commit index may name entries it lost (raft-rs panics)
                // or stale ones it kept. Only appends, checked against the leader's
                // entries, move its commit index while it repairs (R-RECOVER-9).
                message.commit = message.commit.min(self.raw.raft.raft_log.committed);
            }
            // A leader's heartbeat names a commit index past this log's end only when
            // this node lost entries it had acknowledged without knowing it: started
            // again on an emptied data directory under its old id. raft-rs panics on
            // it ("to_commit is out of range"; exploratory testing, 2026-12-07); the
            // appends that follow refill the log from the leader (its probe, R-RECOVER-9).
            MessageType::MsgHeartbeat if message.commit > self.raw.raft.raft_log.last_index() => {
                tracing::warn!(
                    leader = message.from,
                    commit = message.commit,
                    last_index = self.raw.raft.raft_log.last_index(),
                    "the leader took this node for holding Raft entries it lacks; it will send them again"
                );
                message.commit = self.raw.raft.raft_log.committed;
            }
            MessageType::MsgAppendResponse if message.reject => {
                probe_again = self.forget_lost_match(&message);
            }
            _ => {}
        }
        let stepped = match self.raw.step(message) {
            // Messages from unknown peers or stale terms are not this node's failure.
            Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => Ok(()),
            other => other.map_err(|e| NodeError::Raft(e.to_string())),
        };
        if let Some(peer) = probe_again {
            self.raw.raft.send_append(peer);
        }
        self.redraw_election_timeout();
        stepped
    }

    /// A follower that rejects an append with a last index below what this leader
    /// took as its match has lost entries it acknowledged: its log was damaged and
    /// cut (R-RECOVER-9). raft-rs never lowers a match, so it would take every later
    /// rejection for a stale one and never send the entries again; the follower is
    /// probed afresh from its hint instead. Lowering a match only delays commits.
    fn forget_lost_match(&mut self, m: &Message) -> Option<u64> {
        if !self.is_leader() || m.term != self.term() {
            return None;
        }
        let progress = self.raw.raft.mut_prs().get_mut(m.from)?;
        if m.reject_hint >= progress.matched || m.index < progress.matched {
            return None;
        }
        tracing::warn!(
            peer = m.from,
            matched = progress.matched,
            its_last = m.reject_hint,
            "a follower lost Raft entries it had acknowledged; probing it again (R-RECOVER-9)"
        );
        progress.matched = 0;
        progress.become_probe();
        progress.next_idx = m.reject_hint + 1;
        Some(m.from)
    }

    pub fn has_ready(&self) -> bool {
        self.pending.is_none() && self.raw.has_ready()
    }

    /// Handles one Ready following the raft-rs contract (R-PERSIST-1, R-PERSIST-2):
    /// [`begin_ready`](Self::begin_ready), [`persist`](Self::persist),
    /// [`finish_ready`](Self::finish_ready) in one go.
    pub fn process_ready(&mut self) -> Result<ReadyOutput, NodeError> {
        let Some(mut out) = self.begin_ready()? else {
            return Ok(ReadyOutput::default());
        };
        self.persist()?;
        let rest = self.finish_ready()?;
        out.messages.extend(rest.messages);
        out.applied.extend(rest.applied);
        out.state_changed |= rest.state_changed;
        Ok(out)
    }

    /// Takes a Ready: leader messages may go out at once; a snapshot is installed;
    /// committed entries are applied in order; entries and HardState are written but
    /// not yet durable. `None` if there is nothing to do or a Ready is already taken.
    /// The three stages are separate so that the simulation shell can crash the node
    /// between them, as the model does.
    pub fn begin_ready(&mut self) -> Result<Option<ReadyOutput>, NodeError> {
        if self.pending.is_some() || !self.raw.has_ready() {
            return Ok(None);
        }
        let mut out = ReadyOutput::default();
        let mut ready = self.raw.ready();
        out.messages.extend(ready.take_messages());
        self.withhold_votes(&mut out.messages);

        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let mut state =
                Snapshot::decode(snapshot.get_data()).map_err(|reason| NodeError::Undecodable {
                    index: snapshot.get_metadata().index,
                    reason,
                })?;
            state.applied_index = snapshot.get_metadata().index;
            self.store
                .mem()
                .wl()
                .apply_snapshot(snapshot.clone())
                .map_err(|e| NodeError::Raft(e.to_string()))?;
            self.wal.save_snapshot(&snapshot, &self.store)?;
            self.last_snapshot_index = snapshot.get_metadata().index;
            self.last_snapshot_term = snapshot.get_metadata().term;
            self.state = state;
            out.state_changed = true;
        }

        self.apply(ready.take_committed_entries(), &mut out)?;

        if !ready.entries().is_empty() {
            self.wal.append_entries(ready.entries())?;
            self.store
                .mem()
                .wl()
                .append(ready.entries())
                .map_err(|e| NodeError::Raft(e.to_string()))?;
        }
        if let Some(hs) = ready.hs() {
            self.wal.write_hard_state(hs)?;
            self.store.mem().wl().set_hardstate(hs.clone());
        }
        self.pending = Some(ready);
        Ok(Some(out))
    }

    /// fdatasyncs everything the taken Ready wrote.
    pub fn persist(&mut self) -> Result<(), NodeError> {
        self.wal.sync()?;
        Ok(())
    }

    /// Everything the taken Ready wrote is durable.
    pub fn ready_persisted(&self) -> bool {
        self.wal.is_synced()
    }

    /// A Ready is taken and not yet finished.
    pub fn ready_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Releases the persisted messages and advances raft-rs, only once the Ready's
    /// writes are durable (R-PERSIST-1, R-PERSIST-2); a commit index that moved in
    /// `advance` is made durable before the entries it commits are applied.
    pub fn finish_ready(&mut self) -> Result<ReadyOutput, NodeError> {
        let mut out = ReadyOutput::default();
        if !self.wal.is_synced() {
            return Err(NodeError::NotPersisted);
        }
        let Some(mut ready) = self.pending.take() else {
            return Ok(out);
        };
        out.messages.extend(ready.take_persisted_messages());
        self.withhold_votes(&mut out.messages);

        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            // Synced before the entries it commits are applied and acknowledged, so a
            // restart replays everything a proposer was told about at once, without
            // waiting for an election to re-learn the commit index.
            let mut hs = self.store.mem().rl().hard_state().clone();
            hs.commit = commit;
            self.wal.write_hard_state(&hs)?;
            self.wal.sync()?;
            self.store.mem().wl().set_hardstate(hs);
        }
        out.messages.extend(light.take_messages());
        self.withhold_votes(&mut out.messages);
        self.apply(light.take_committed_entries(), &mut out)?;
        self.raw.advance_apply();
        self.maybe_snapshot()?;
        Ok(out)
    }

    /// From now on `tap` sees every command this node applies, the replay of a
    /// restart's committed entries included.
    pub fn tap_applies(&mut self, tap: ApplyTap) {
        self.apply_tap = Some(tap);
    }

    /// Replays the committed entries recovered from storage (R-RECOVER-2): local
    /// work, no peer and no election involved.
    pub fn replay_committed(&mut self) -> Result<(), NodeError> {
        while self.raw.has_ready() {
            self.process_ready()?;
        }
        Ok(())
    }

    /// The node's Raft and metadata state as the conformance oracle's abstraction
    /// function reads it.
    pub fn observe(&self) -> RaftObservation {
        let log = &self.raw.raft.raft_log;
        RaftObservation {
            term: self.raw.raft.term,
            vote: self.raw.raft.vote,
            role: self.raw.raft.state,
            leader: self.leader_id(),
            first_index: log.first_index(),
            entries: log.all_entries(),
            persisted: log.persisted,
            committed: log.committed,
            applied: self.state.applied_index,
            ready_pending: self.pending.is_some(),
            repairing: self.wal.is_repairing(),
            snapshot_index: self.last_snapshot_index,
            snapshot_term: self.last_snapshot_term,
        }
    }

    /// See [`RaftPosition`].
    pub fn position(&self) -> RaftPosition {
        let log = &self.raw.raft.raft_log;
        RaftPosition {
            term: self.raw.raft.term,
            vote: self.raw.raft.vote,
            leader: self.is_leader(),
            first_index: log.first_index(),
            last_index: log.last_index(),
            last_term: log.last_term(),
            persisted: log.persisted,
            committed: log.committed,
            applied: self.state.applied_index,
            repairing: self.wal.is_repairing(),
            snapshot_index: self.last_snapshot_index,
        }
    }

    /// Repairing, so neither campaigning nor voting (R-RECOVER-9).
    fn abstains(&self) -> bool {
        self.wal.is_repairing() && !self.vote_while_repairing
    }

    /// Test-only fault (the simulator's teeth): a repairing node votes and
    /// campaigns, as if the damage had been a torn tail.
    #[cfg(feature = "inject-bugs")]
    pub fn inject_vote_while_repairing(&mut self) {
        self.vote_while_repairing = true;
    }

    /// A repairing node's log may lack entries it acknowledged, so its vote could
    /// elect a leader without them: no vote (or pre-vote) answer leaves it. Dropping
    /// one is what a lost message does; a vote recorded and never sent only keeps the
    /// node from voting again in that term.
    fn withhold_votes(&self, messages: &mut Vec<Message>) {
        if self.abstains() {
            messages.retain(|m| {
                !matches!(
                    m.get_msg_type(),
                    MessageType::MsgRequestVoteResponse | MessageType::MsgRequestPreVoteResponse
                )
            });
        }
    }

    /// Test-only fault (seed 000): a committed entry that does not decode is taken
    /// as applied and skipped, as the seed's replay skipped every event bincode could
    /// not read back, instead of stopping the node (R-RECOVER-3).
    #[cfg(feature = "inject-bugs")]
    pub fn inject_skip_undecodable(&mut self) {
        self.skip_undecodable = true;
    }

    /// Test-only fault (seed 003, as raft-rs 0.7 behaves): a proposal handed to
    /// raft-rs whatever this node's role. A follower that knows a leader sends it as
    /// raft-rs's own `MsgPropose`, which the leader drops if it no longer leads and
    /// a lost message drops on the way; nothing tells the proposer either way.
    #[cfg(feature = "inject-bugs")]
    pub fn propose_through_raft(&mut self, envelope: &CommandEnvelope) -> Result<(), ProposeError> {
        self.raw
            .propose(vec![], envelope.encode().map_err(ProposeError::Dropped)?)
            .map_err(|e| ProposeError::Dropped(e.to_string()))
    }

    /// Test-only fault for the conformance oracle: the Raft WAL's fsync does nothing.
    #[cfg(feature = "inject-bugs")]
    pub fn inject_skip_fsync(&mut self) {
        self.wal.inject_skip_fsync();
    }

    /// For the conformance oracle, whose clock is logical: an election timeout has
    /// passed since this node last heard a leader, so check-quorum's lease no longer
    /// makes it ignore a vote request. The model delivers a vote request to a node
    /// that knows a leader only where that leader is down or its heartbeats are late.
    #[cfg(feature = "inject-bugs")]
    pub fn let_leader_lease_lapse(&mut self) {
        self.raw.raft.election_elapsed = self.raw.raft.election_timeout();
    }

    /// For the conformance oracle: what a heartbeat's round trip does for a follower
    /// that lags, in one step. The leader stops waiting on appends the follower may
    /// never get (they went to a process that crashed) and sends what it lacks from
    /// its last known match, as it does after the rejection such an append draws.
    #[cfg(feature = "inject-bugs")]
    pub fn resend_append(&mut self, peer: u64) {
        if !self.is_leader() {
            return;
        }
        if let Some(progress) = self.raw.raft.mut_prs().get_mut(peer) {
            progress.become_probe();
        }
        self.raw.raft.send_append(peer);
    }

    fn apply(&mut self, entries: Vec<Entry>, out: &mut ReadyOutput) -> Result<(), NodeError> {
        for entry in entries {
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                // A new leader's empty entry, or a configuration change (the voter set
                // is fixed at start-up for now).
                self.state.mark_applied(entry.index);
                continue;
            }
            let envelope = match CommandEnvelope::decode(&entry.data) {
                Ok(envelope) => envelope,
                Err(_) if self.skip_undecodable => {
                    self.state.mark_applied(entry.index);
                    continue;
                }
                Err(reason) => {
                    return Err(NodeError::Undecodable {
                        index: entry.index,
                        reason,
                    })
                }
            };
            let outcome = self.state.apply(entry.index, &envelope);
            if let Some(tap) = &mut self.apply_tap {
                tap(entry.index, &self.state);
            }
            out.applied.push((envelope.id, entry.index, outcome));
            out.state_changed = true;
        }
        Ok(())
    }

    fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        let applied = self.state.applied_index;
        if applied < self.last_snapshot_index + self.config.snapshot_interval {
            return Ok(());
        }
        let term = self
            .store
            .mem()
            .term(applied)
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let mut snapshot = raft::eraftpb::Snapshot::default();
        let data = Snapshot::encode(&self.state).map_err(NodeError::Raft)?;
        snapshot.set_data(data.into());
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(self.conf_state());
        self.wal.save_snapshot(&snapshot, &self.store)?;
        self.last_snapshot_index = applied;
        self.last_snapshot_term = term;
        tracing::info!(
            index = applied,
            "metadata snapshot taken; raft log compacted"
        );
        Ok(())
    }

    fn conf_state(&self) -> ConfState {
        self.raw.raft.prs().conf().to_conf_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn draws(seed: u64) -> ElectionDraws {
        ElectionDraws::new(seed, &NodeConfig::single(1))
    }

    /// I-5: a seeded node draws a new election timeout at every reset, within
    /// raft-rs's range, so two nodes cannot stay in step and split every vote; the
    /// same seed draws the same timeouts, so a simulated run stays reproducible.
    #[test]
    fn seeded_election_timeouts_are_drawn_afresh_at_every_reset() {
        let (mut one, mut again) = (draws(7), draws(7));
        let mut seen = BTreeSet::new();
        for term in 1..200u64 {
            for role in [
                StateRole::PreCandidate,
                StateRole::Candidate,
                StateRole::Follower,
            ] {
                let drawn = one.draw((term, role)).expect("a new reset draws");
                assert_eq!(Some(drawn), again.draw((term, role)));
                assert!((10..20).contains(&drawn), "{drawn} outside raft-rs's range");
                assert_eq!(one.draw((term, role)), None, "one reset, one draw");
                seen.insert(drawn);
            }
        }
        assert_eq!(seen.len(), 10, "every timeout of the range is drawn");
        let sequence = |seed| {
            let mut d = draws(seed);
            (1..20)
                .map(|t| d.draw((t, StateRole::Follower)))
                .collect::<Vec<_>>()
        };
        assert_ne!(sequence(7), sequence(8), "another seed, other timeouts");
    }
}
