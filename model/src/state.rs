//! The model's state: one struct per node (in-memory Raft at the level of a raft-rs
//! `RawNode`, the boot phase, the metadata image, one partition replica) plus its disk,
//! the network, and ghost variables that only properties read.
//!
//! Every collection is a `Vec` or a `BTree*` so that `Hash` is deterministic: stateright
//! deduplicates states by fingerprint.

use std::collections::BTreeSet;

use crate::shared::Shared;

/// Node ids are 0..nodes. Node 0 is also the leader of the one modelled partition.
pub type NodeId = u8;

/// Upper bound on nodes; fixed-size arrays keep per-peer leader state cheap to hash.
pub const MAX_NODES: usize = 3;

/// Boot phases, in the order a correct node passes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Not running (never started, or crashed).
    Down,
    /// Storage recovered (log, HardState, metadata replayed); start-up code is running but
    /// the consensus loop has not started.
    Recovered,
    /// The consensus loop runs: the node steps messages and handles Ready.
    LoopRunning,
    /// The Kafka listener is up and the broker's registration is pending.
    Listening,
    /// The node has applied its own registration.
    Registered,
    /// Recovery stopped loudly (an undecodable committed record); the process exited.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
    /// raft-rs's pre-vote round: asking whether a campaign could win, at its
    /// term, before it raises the term (`ChronikModel::pre_vote`).
    PreCandidate,
}

/// A replicated metadata command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cmd {
    /// The empty entry a new raft-rs leader appends in its term.
    Noop,
    /// Idempotent broker registration by one incarnation (start) of the broker.
    Register(NodeId, u8),
    /// A client's metadata write (CreateTopics).
    CreateTopic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    pub term: u8,
    pub cmd: Cmd,
    /// Ghost: the command reached the leader by forwarding from a follower.
    pub fwd: bool,
    /// Ghost: the client request this command came from (0: none, e.g. a registration).
    pub req: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HardState {
    pub term: u8,
    pub vote: Option<NodeId>,
    pub commit: u8,
}

/// Peer messages. Raft messages follow raft-rs; `Forward` is Chronik's own proposal
/// forwarding over the peer transport.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// A vote request; with `pre`, raft-rs's pre-vote request, whose term is the one
    /// the candidate would campaign in and which changes no receiver's term or vote.
    Vote {
        pre: bool,
        term: u8,
        last_idx: u8,
        last_term: u8,
        /// The candidate's commit index and its entry's term: raft-rs carries them
        /// so that a node refusing the vote may move its own commit index up.
        commit: u8,
        commit_term: u8,
    },
    VoteResp {
        pre: bool,
        term: u8,
        granted: bool,
    },
    Append {
        term: u8,
        prev_idx: u8,
        prev_term: u8,
        entries: Vec<Entry>,
        commit: u8,
    },
    AppendResp {
        term: u8,
        ok: bool,
        /// On success the index the sender now holds; on rejection its last index (hint).
        idx: u8,
        /// On rejection under raft-rs's flow control, the refused append's previous
        /// index (raft-rs's `index`), by which the leader tells a stale refusal; 0
        /// otherwise, so that the coarse model's states stay as they were.
        refused_at: u8,
    },
    Forward {
        cmd: Cmd,
        /// Ghost: the client request, so that the model can tell whose it is.
        req: u8,
    },
    /// raft-rs's `MsgSnapshot`: the leader's snapshot, sent when the entries a
    /// follower needs are compacted away. `entries` are the ones it covers (the model
    /// keeps compacted entries so that indexes stay positions); its image is their
    /// replay.
    Snapshot {
        term: u8,
        entries: Vec<Entry>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Envelope {
    pub src: NodeId,
    pub dst: NodeId,
    pub msg: Msg,
}

/// The metadata state machine: each broker's registered incarnation (0: never
/// registered) and the topics created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Image {
    pub brokers: [u8; MAX_NODES],
    pub topics: u8,
}

impl Image {
    pub fn apply(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Noop => {}
            // A registration from an earlier start can arrive late (a forward still
            // in flight when the broker died): it never replaces a later one.
            Cmd::Register(b, incarnation) => {
                let registered = &mut self.brokers[usize::from(b)];
                *registered = (*registered).max(incarnation);
            }
            Cmd::CreateTopic => self.topics = self.topics.saturating_add(1),
        }
    }

    pub fn has_broker(&self, b: NodeId) -> bool {
        self.brokers[usize::from(b)] != 0
    }
}

/// A Ready being handled: between `ready()` and `advance()`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadyRec {
    /// The last log index this Ready wrote; `advance` makes it raft's persisted index.
    pub last: u8,
    /// `persisted_messages()`: released only once the Ready's writes are durable.
    pub persisted_msgs: Vec<Envelope>,
}

/// One node's files. "Written" data sits in the page cache; `Fsync` makes it durable; a
/// crash keeps only what is durable (plus, optionally, a torn fragment of the next frame).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Disk {
    pub log: Vec<Entry>,
    pub hs: HardState,
    pub durable_log: Vec<Entry>,
    pub durable_hs: HardState,
    /// A torn, checksum-failing frame after the durable prefix (left by a crash).
    pub torn: bool,
    /// The partition replica's records (record ids, by offset), written.
    pub plog: Vec<u8>,
    pub plog_durable: u8,
    /// The partition leader's high-watermark checkpoint, written with each fsync.
    pub hw_checkpoint: u8,
    /// A durable Raft record was damaged while the node was down (a bad sector): the
    /// position of the first entry recovery cannot read, with another record after
    /// it, so it is not a torn tail (R-RECOVER-6, R-RECOVER-9).
    pub damaged: Option<u8>,
    /// The `repair` file: the log was cut at damage and is being repaired from the
    /// peers; written before the cut, removed once this start's registration is
    /// applied (R-RECOVER-9).
    pub repair_marker: bool,
    /// The metadata snapshot file (written atomically): the entries up to here are in
    /// it, no longer in the WAL. `log` and `durable_log` keep them all the same, so
    /// that indexes stay positions; the snapshot's image is their replay.
    pub snap_idx: u8,
}

impl Disk {
    pub fn raft_synced(&self) -> bool {
        self.log == self.durable_log && self.hs == self.durable_hs
    }

    pub fn synced(&self) -> bool {
        self.raft_synced() && self.plog.len() == usize::from(self.plog_durable)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    pub phase: Phase,
    // In-memory consensus state, as a raft-rs RawNode holds it.
    pub term: u8,
    pub vote: Option<NodeId>,
    pub role: Role,
    pub leader: Option<NodeId>,
    pub log: Vec<Entry>,
    /// raft-rs's persisted index: entries up to here were handed to a Ready and advanced.
    pub stable: u8,
    pub commit: u8,
    pub applied: u8,
    pub votes: u8,
    pub next: [u8; MAX_NODES],
    pub matched: [u8; MAX_NODES],
    /// Leader side, raft-rs's flow control with one append in flight: an append
    /// carrying entries (or a snapshot) went to this follower and no answer that
    /// moved its match came back, so nothing more is sent until one does or a
    /// heartbeat's answer resumes it. Appends without entries never pause.
    pub paused: [bool; MAX_NODES],
    /// The HardState handed to the last Ready (raft-rs `prev_hs`).
    pub hs_sent: HardState,
    /// Messages raft has queued; the next Ready hands them out.
    pub outbox: Vec<Envelope>,
    pub ready: Option<ReadyRec>,
    /// The metadata image (state machine).
    pub image: Image,
    /// This start of the process (1 for the first); a broker counts as registered only
    /// once the image holds its current incarnation.
    pub incarnation: u8,
    // The partition replica.
    pub hw: u8,
    /// Leader side: each follower's last reported durable log end.
    pub replica_leo: [u8; MAX_NODES],
    /// Leader side: produce requests waiting for the high watermark (offset, record id).
    pub pending_acks: Vec<(u8, u8)>,
    /// Client requests (metadata writes) this node answers with success once it has
    /// applied them; memory only.
    pub answering: Vec<u8>,
    /// Its log was cut at damage: it neither campaigns nor answers a vote until the
    /// repair ends (R-RECOVER-9).
    pub repairing: bool,
    /// raft-rs's storage holds no entries up to here (its snapshot covers them).
    pub snap_idx: u8,
    /// A snapshot received from the leader, to be installed by the next Ready.
    pub pending_snapshot: bool,
    pub disk: Disk,
}

impl Node {
    pub fn new() -> Self {
        Node {
            phase: Phase::Down,
            term: 0,
            vote: None,
            role: Role::Follower,
            leader: None,
            log: Vec::new(),
            stable: 0,
            commit: 0,
            applied: 0,
            votes: 0,
            next: [1; MAX_NODES],
            matched: [0; MAX_NODES],
            paused: [false; MAX_NODES],
            hs_sent: HardState::default(),
            outbox: Vec::new(),
            ready: None,
            image: Image::default(),
            incarnation: 0,
            hw: 0,
            replica_leo: [0; MAX_NODES],
            pending_acks: Vec::new(),
            answering: Vec::new(),
            repairing: false,
            snap_idx: 0,
            pending_snapshot: false,
            disk: Disk::default(),
        }
    }

    pub fn hs(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
        }
    }

    pub fn last_idx(&self) -> u8 {
        len8(&self.log)
    }

    pub fn last_term(&self) -> u8 {
        self.log.last().map_or(0, |e| e.term)
    }

    pub fn term_at(&self, idx: u8) -> Option<u8> {
        if idx == 0 {
            Some(0)
        } else {
            self.log.get(usize::from(idx) - 1).map(|e| e.term)
        }
    }

    /// The process is running (it may still be recovering or starting).
    pub fn live(&self) -> bool {
        !matches!(self.phase, Phase::Down | Phase::Failed)
    }

    pub fn loop_running(&self) -> bool {
        matches!(
            self.phase,
            Phase::LoopRunning | Phase::Listening | Phase::Registered
        )
    }

    pub fn listening(&self) -> bool {
        matches!(self.phase, Phase::Listening | Phase::Registered)
    }

    /// The consensus loop can take a new input: running and not in the middle of a Ready.
    pub fn can_step(&self) -> bool {
        self.loop_running() && self.ready.is_none()
    }
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

/// Variables no node can see; only properties read them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    pub crashes: u8,
    pub proposals: u8,
    pub produced: u8,
    /// Produce acknowledgements sent to clients: (offset, record id).
    pub acked: Vec<(u8, u8)>,
    /// Records returned to consumers, by offset.
    pub read: Vec<u8>,
    /// (term, node) for every leader ever elected.
    pub elected: BTreeSet<(u8, NodeId)>,
    /// The longest committed prefix any leader announced, with the term it was committed in.
    pub committed: Vec<(Entry, u8)>,
    /// A leader committed something that contradicts `committed`.
    pub committed_conflict: bool,
    /// Client requests (metadata writes) answered with success.
    pub answered: Vec<u8>,
    /// Some node restarted after a crash.
    pub restarted: bool,
    /// How many times each node was started.
    pub boots: [u8; MAX_NODES],
    /// Damage done to Raft logs at rest.
    pub damages: u8,
    /// Leaders that stepped down for want of a quorum (check-quorum).
    pub step_downs: u8,
    /// Pre-vote rounds started, counted only where `max_pre_votes` bounds them.
    pub pre_votes: u8,
    /// Nodes whose durable Raft log lost entries to damage (bit per node): what they
    /// acknowledged before is no longer on their disk, through no fault of theirs.
    pub damaged_nodes: u8,
    /// A node whose log was cut at damage finished its repair.
    pub repaired: bool,
    /// A follower installed a snapshot its leader sent.
    pub snapshot_installed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub nodes: Vec<Shared<Node>>,
    /// Unordered, non-duplicating; an identical message already in flight coalesces.
    pub net: BTreeSet<Envelope>,
    pub ghost: Ghost,
}

pub fn len8<T>(v: &[T]) -> u8 {
    u8::try_from(v.len()).unwrap_or(u8::MAX)
}
