//! The replication model's state: the controller's committed partition entry (what
//! every broker's metadata image converges to), the metadata commands proposed and not
//! yet committed, three replicas of one partition with their disks and leader-side
//! bookkeeping, the fetch responses in flight, and ghost variables.

use std::collections::BTreeSet;

use crate::shared::Shared;
use crate::state::NodeId;

/// Replicas of the one modelled partition; broker `n` hosts replica `n`.
pub const REPLICAS: usize = 3;

/// A set of brokers, as bits.
pub type Set = u8;

pub fn bit(n: NodeId) -> Set {
    1 << n
}

pub fn has(set: Set, n: NodeId) -> bool {
    set & bit(n) != 0
}

pub fn members(set: Set) -> impl Iterator<Item = NodeId> {
    (0..REPLICAS as NodeId).filter(move |n| has(set, *n))
}

pub const ALL: Set = (1 << REPLICAS) - 1;

/// The metadata of the partition and its brokers, as the state machine holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Meta {
    pub leader: Option<NodeId>,
    pub epoch: u8,
    /// Bumped by every change of the partition's leader or ISR (Kafka's partition
    /// epoch): an ISR change applies only to the version it was computed from.
    pub version: u8,
    pub isr: Set,
    /// Eligible leader replicas (R-REPL-6): members that left the ISR while it was
    /// below `min.insync.replicas`.
    pub elr: Set,
    /// Eligible replicas whose copy is unverified: leaders that left under the
    /// interval policy, fenced or displaced while not live. A fence cuts nothing, but
    /// the lapse may have been a crash that cut what they acknowledged before syncing
    /// it, and a return in the same start does not sync it. A new start takes them
    /// out unless nothing else could lead. Only a copy known to be short waits for
    /// them while they are not live (R-REPL-6).
    pub unverified: Set,
    pub fenced: Set,
    /// Each broker's latest fence, counted (the real `BrokerInfo::fenced_at`, a Raft
    /// index): an `Unfence` lifts only the fence it names.
    pub fences: [u8; REPLICAS],
    /// Each broker's registered incarnation (0: not registered yet, a trace that
    /// starts with a topic created before every broker registered).
    pub incarnation: [u8; REPLICAS],
}

impl Meta {
    /// Brokers not live (the real `live_brokers`): fenced, or not registered.
    pub fn not_live(&self) -> Set {
        let unregistered = (0..REPLICAS as NodeId)
            .filter(|n| self.incarnation[usize::from(*n)] == 0)
            .fold(0, |set, n| set | (1 << n));
        self.fenced | unregistered
    }

    pub fn leads(&self, n: NodeId) -> bool {
        self.leader == Some(n)
    }

    /// The partition entry proper, whose every change bumps `version`.
    pub fn partition(&self) -> (Option<NodeId>, u8, Set, Set, Set) {
        (self.leader, self.epoch, self.isr, self.elr, self.unverified)
    }
}

/// Metadata commands the replication path proposes (the controller's own `Fence` is
/// applied where it is decided).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetaCmd {
    /// A broker's registration by one incarnation (a start), and whether it names the
    /// broker's copy as short of records (R-REPL-4).
    Register(NodeId, u8, bool),
    /// A live broker that sees this incarnation fenced by this fence asks to be let
    /// back (the metadata's `UnfenceBroker`; a registration of the same start would be
    /// refused).
    Unfence(NodeId, u8, u8),
    /// A leader's ISR change, fenced by its leader epoch and the partition version.
    AlterIsr { epoch: u8, version: u8, isr: Set },
    /// A broker with a damaged copy leaves the ISR (and hands leadership to another
    /// live ISR member) before it cuts the damage (R-REPL-4), fenced like `AlterIsr`.
    Repair {
        node: NodeId,
        epoch: u8,
        version: u8,
        /// The start of `node` that proposed it: only that one hears the outcome.
        incarnation: u8,
    },
}

/// Where a damaged copy's repair is (memory only: a crash forgets it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepairProgress {
    #[default]
    None,
    Proposed,
    /// Its `Repair` was applied: it left the ISR and leadership.
    Applied,
}

/// One record: the leader epoch it was appended in and its unique value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rec {
    pub epoch: u8,
    pub value: u8,
}

/// A produce waiting for its acknowledgement on the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Waiting {
    pub offset: u8,
    pub epoch: u8,
    pub value: u8,
}

/// A Fetch on its way from a follower to the leader it follows, sent when its log
/// ended at `offset` (only when the network reorders fetches). It outlives its
/// sender's crash (what a process wrote to a socket before it died still reaches
/// the peer), but its answer goes to that start of the sender only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchReq {
    pub from: NodeId,
    pub to: NodeId,
    pub epoch: u8,
    pub offset: u8,
    /// The sender's incarnation when it sent the request.
    pub incarnation: u8,
    /// The sender's log start (Kafka's Fetch `log_start_offset`), which the leader's
    /// low watermark waits for (R-WIRE-5).
    pub log_start: u8,
}

/// A Fetch response on its way to a follower.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchResp {
    pub to: NodeId,
    /// The leader epoch the follower fetched under.
    pub epoch: u8,
    pub base: u8,
    pub records: Vec<Rec>,
    pub hw: u8,
    /// The leader's log start: the follower deletes below it too (R-WIRE-5). A fetch
    /// from below it is refused OFFSET_OUT_OF_RANGE; the refusal (`base` below
    /// `log_start`) carries the leader's deleted records from offset 0 (the model
    /// keeps deleted records so that offsets stay positions), which the follower
    /// keeps as deleted when it starts afresh there.
    pub log_start: u8,
}

impl FetchResp {
    /// OFFSET_OUT_OF_RANGE: the fetch asked for records the leader deleted.
    pub fn refused(&self) -> bool {
        self.base < self.log_start
    }
}

/// A DeleteRecords waiting on its leader for the low watermark (R-WIRE-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Deletion {
    pub epoch: u8,
    pub target: u8,
}

/// With reordered fetches: a leader's OffsetForLeaderEpoch answer on its way to a
/// follower (the leader may crash or be deposed before it arrives).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EpochAnswer {
    pub to: NodeId,
    /// The leader epoch the follower asked under (its `current_leader_epoch`).
    pub epoch: u8,
    /// The leader's answer: the epoch at or below the asked one and where it ends.
    pub answer: Option<(u8, u8)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    pub up: bool,
    pub incarnation: u8,
    /// The metadata this broker has applied.
    pub view: Meta,
    /// The partition log as written; `durable` of it survive a crash. Records below
    /// `log_start` are deleted (kept here so that offsets stay positions).
    pub log: Vec<Rec>,
    pub durable: u8,
    /// The log start offset: checkpointed before anything is deleted, so a crash
    /// keeps it (R-LOG-6).
    pub log_start: u8,
    /// The log started afresh at its leader's log start and holds no record since:
    /// its leader epoch file is empty, so it has no epoch to ask about (a log whose
    /// records were all deleted keeps theirs). On disk: a crash keeps it.
    pub epochless: bool,
    pub hw: u8,
    /// The high watermark in the partition's checkpoint file.
    pub hw_checkpoint: u8,
    /// With `torn_last_frame`: the durable point the checkpoint file records, below
    /// which recovery takes a bad frame for damage, never for a torn write (0 with the
    /// option off, so that it splits no state).
    pub durable_mark: u8,
    /// Follower side: the leader epoch the log was last truncated for.
    pub gate: Option<u8>,
    /// Leader side: the epoch the follower ends below belong to, and each follower's
    /// last reported log end.
    pub tracker_epoch: u8,
    pub follower_end: [Option<u8>; REPLICAS],
    /// Leader side: each follower's last reported log start in `tracker_epoch` (only
    /// with DeleteRecords, so that other checked spaces stay as they were).
    pub follower_start: [Option<u8>; REPLICAS],
    /// Leader side: DeleteRecords waiting for the low watermark (memory only).
    pub deletions: Vec<Deletion>,
    /// Leader side: the followers whose last fetch it served at the partition version
    /// it knows now (the real tracker's partition-epoch tag, R-REPL-4).
    pub fresh: Set,
    /// The first offset of this copy whose bytes are damaged on disk (R-LOG-13): still
    /// in the log, never served.
    pub damaged: Option<u8>,
    pub repair: RepairProgress,
    /// The answer to its applied `Repair` is late, not lost (`RepairUnanswered`):
    /// it may still come after the broker proposed again (`RepairAnswered`), and the
    /// last outcome heard decides (copies seed 345).
    pub repair_answer_late: bool,
    /// Leader side: the partition version its ISR proposals were computed from, and
    /// every member they name; any of them may still be applied.
    pub pending_isr: Option<(u8, Set)>,
    pub waiting: Vec<Waiting>,
    /// The broker's disk is full (ENOSPC): appends and checkpoint writes fail, syncs
    /// of what is written succeed (R-LOG-12).
    pub full: bool,
    /// A failed fsync took the log offline (R-LOG-9): nothing syncs its unsynced
    /// records any more; the next append, fetch offset or OffsetForLeaderEpoch
    /// answer cuts them first.
    pub offline: bool,
    /// With stepwise learning: the position in `RState::history` of `view` (the
    /// history starts at the oldest position any broker is at).
    pub learned: u8,
}

impl Replica {
    pub fn new(meta: Meta) -> Self {
        Replica {
            up: true,
            incarnation: 1,
            view: meta,
            log: Vec::new(),
            durable: 0,
            log_start: 0,
            epochless: false,
            hw: 0,
            hw_checkpoint: 0,
            durable_mark: 0,
            gate: None,
            tracker_epoch: meta.epoch,
            follower_end: [None; REPLICAS],
            follower_start: [None; REPLICAS],
            deletions: Vec::new(),
            fresh: 0,
            damaged: None,
            repair: RepairProgress::None,
            repair_answer_late: false,
            pending_isr: None,
            waiting: Vec::new(),
            full: false,
            offline: false,
            learned: 0,
        }
    }

    /// Its recovery cut a bad last frame it could not tell from a torn write, and
    /// the cut is marked (R-REPL-4): records from its log end on may have been
    /// acknowledged. Kept as damage at the log end: until its repair's cut, the copy
    /// takes no write and answers no OffsetForLeaderEpoch while another ISR member
    /// may hold them.
    pub fn lost_tail(&self) -> bool {
        self.damaged == Some(self.len())
    }

    /// A leader's write (admitted only as the sole ISR member while marked) makes its
    /// log the partition's: the mark is dropped with it.
    pub fn write_over_lost_tail(&mut self) {
        if self.lost_tail() {
            self.damaged = None;
        }
    }

    pub fn len(&self) -> u8 {
        u8::try_from(self.log.len()).unwrap_or(u8::MAX)
    }

    /// Nothing to ask OffsetForLeaderEpoch about: no record, or a log started afresh
    /// that has taken none since (a log whose every record was deleted still knows
    /// their epochs).
    pub fn is_empty(&self) -> bool {
        self.log.is_empty() || (self.epochless && self.log.len() <= usize::from(self.log_start))
    }

    /// The last record whose epoch the log knows.
    pub fn last_record(&self) -> Option<Rec> {
        if self.is_empty() {
            None
        } else {
            self.log.last().copied()
        }
    }

    /// The log cut to end at `end`. A cut at or below the log start keeps no
    /// record: the real log starts afresh there, its epoch file empty (Kafka's
    /// `truncateFullyAndStartAt`), so it has no epoch left to ask its leader about
    /// (C-9, swarm seed 1598: a repair cut a copy damaged at its log start, which
    /// then followed its leader's epoch without a query).
    pub fn cut_at(&mut self, end: u8) {
        // A log cut to nothing is empty anyway: the flag is left alone there, so
        // that it splits no states the real log does not tell apart.
        if usize::from(end) < self.log.len() && 0 < end && end <= self.log_start {
            self.epochless = true;
        }
        self.log.truncate(usize::from(end));
    }

    /// A record appended: its epoch is in the log's epoch file.
    pub fn push(&mut self, rec: Rec) {
        self.log.push(rec);
        self.epochless = false;
    }

    /// This broker leads the partition, as far as it knows: the metadata names it
    /// leader and holds this start's registration. A restarted leader waits for its
    /// registration, which starts a new leader epoch: proposals of its previous life
    /// it cannot remember are fenced by that epoch.
    pub fn holds_value(&self, value: u8) -> Option<u8> {
        self.log
            .iter()
            .position(|r| r.value == value)
            .and_then(|o| u8::try_from(o).ok())
    }

    pub fn leading(&self, me: NodeId) -> bool {
        self.up && self.view.leads(me) && self.view.incarnation[usize::from(me)] == self.incarnation
    }

    /// Where this broker's log ended when it began leading in `epoch`: the first
    /// record of that epoch, or the log end if it has appended none. A new leader's
    /// high watermark can lag the committed records (it is restored from a checkpoint,
    /// or learnt late from the previous leader): a follower joins the ISR only once it
    /// has everything up to here too.
    pub fn epoch_start(&self, epoch: u8) -> u8 {
        self.log
            .iter()
            .position(|r| r.epoch >= epoch)
            .map_or(self.len(), |p| p as u8)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` in this log, and
    /// where it ends (the next epoch's first offset, or the log end).
    pub fn end_offset_for_epoch(&self, epoch: u8) -> Option<(u8, u8)> {
        let i = self.log.iter().rposition(|r| r.epoch <= epoch)?;
        let e = self.log[i].epoch;
        Some((
            e,
            self.log
                .iter()
                .position(|r| r.epoch > e)
                .map_or(self.len(), |p| p as u8),
        ))
    }

    /// Where a follower cuts its log after its leader answered OffsetForLeaderEpoch
    /// with `answer`: at the leader's end for that epoch, and, when the leader's epoch
    /// is older than the one asked about, also where that epoch ends here (records
    /// of later epochs here are not the leader's even below its end).
    pub fn truncation_point(&self, answer: Option<(u8, u8)>) -> u8 {
        match answer {
            None => 0,
            Some((epoch, end)) => {
                let own = self.end_offset_for_epoch(epoch).map_or(0, |(_, e)| e);
                end.min(own)
            }
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    pub produced: u8,
    pub crashes: u8,
    pub fences: u8,
    pub shrinks: u8,
    /// Acknowledged produces: (offset, value).
    pub acked: BTreeSet<(u8, u8)>,
    /// Records consumers read: (offset, value).
    pub read: BTreeSet<(u8, u8)>,
    /// The leader each epoch was given to (the controller's choices).
    pub leaders: BTreeSet<(u8, NodeId)>,
    /// A follower cut records from its log to match a new leader.
    pub truncated: bool,
    /// An ISR expansion was committed.
    pub expanded: bool,
    /// Copies whose bytes were damaged.
    pub damages: u8,
    pub retries: u8,
    pub failovers: u8,
    pub sync_failures: u8,
    /// Disks that filled up.
    pub fulls: u8,
    /// A follower's fetch answer was cut short by its full disk.
    pub cut_short: bool,
    /// A damaged copy was cut below its damage after leaving the ISR.
    pub repaired: bool,
    /// DeleteRecords requests taken by a leader.
    pub deletes: u8,
    /// The highest offset an acknowledged DeleteRecords deleted below.
    pub deleted: u8,
    /// A consumer read a record below an acknowledged deletion (R-WIRE-5).
    pub read_deleted: bool,
    /// A follower started afresh at its leader's log start.
    pub started_afresh: bool,
    /// The records below the highest high watermark any leader has had (the true
    /// high watermark of the TLA+ specifications of Kafka's replication): committed,
    /// whether or not their acknowledgement reached a client.
    pub committed: Vec<Rec>,
    /// Two leaders' high watermarks covered different records at one offset.
    pub committed_conflict: bool,
    /// Per running broker: (incarnation, the highest high watermark it has had since
    /// it started or last cut its own damaged copy). A property compares it with the
    /// current one; `None` while the broker is down.
    pub hw_mark: [Option<(u8, u8)>; REPLICAS],
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RState {
    pub meta: Meta,
    /// Proposed metadata commands, in the order the Raft log will hold them.
    pub inbox: Vec<MetaCmd>,
    pub replicas: Vec<Shared<Replica>>,
    /// Sorted: with reordered fetches, a retry's answer may be a second copy.
    pub net: Vec<FetchResp>,
    /// Fetch requests in flight (only when the network reorders fetches; otherwise a
    /// request is served the moment it is sent), sorted: a retry of the same request
    /// is a second copy.
    pub requests: Vec<FetchReq>,
    /// OffsetForLeaderEpoch answers in flight, sorted (only with reordered fetches;
    /// otherwise a follower's question and its cut are one step).
    pub epoch_answers: Vec<EpochAnswer>,
    pub ghost: Ghost,
    /// With stepwise learning: every committed `meta` in commit order from the oldest
    /// one a broker is at, the last being `meta` (empty otherwise, so that the
    /// checked state spaces stay as they were).
    pub history: Vec<Meta>,
    /// With lossy proposals: the proposals sent and not yet at the controller (a
    /// start's registration, an ISR change, a repair), sorted. One reaches it at a
    /// moment of its own, after proposals sent later, and may do so after its sender
    /// crashed or started again; one the controller would refuse as stale is dropped.
    pub in_flight: Vec<MetaCmd>,
}
