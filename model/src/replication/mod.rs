//! The replication model: one partition with three replicas, its leader, ISR and leader
//! epochs kept by the controller, followers that fetch, truncate by leader epoch and
//! report their log ends, the high watermark and acks=all, crashes that keep only
//! durable data, fencing and re-registration. Spec: spec/cluster.md (R-REPL-*).
//!
//! Metadata is one committed partition entry (`RState::meta`) plus the commands
//! proposed and not yet committed: the metadata model (`crate::model`) checks that the
//! Raft group applies one command sequence everywhere (I-4), so here a command is
//! committed in one step and each broker learns the committed entry at its own pace
//! (`Learn`), which is where deposed leaders and stale followers come from.
//!
//! Each action is one call of the real replication code (conformance/src/replication.rs
//! drives it), so that a path maps one to one onto harness commands.

mod eligible;
mod properties;
pub mod state;
mod step;
pub mod trace;

pub use properties::names;
pub use state::*;

use std::fmt;
use std::sync::Arc;

use stateright::{Model, Property};

use crate::state::NodeId;

/// Each switch re-introduces one way of losing or forking acknowledged data; the first
/// three are what the fault run (e2e/test_jepsen.py) found in the real broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReplBug {
    /// A produce is acknowledged once the high watermark passes it, even if its leader
    /// was deposed and re-elected since (its offsets may have been reused).
    AckWhenDeposed,
    /// A fetch response is appended even if the follower has truncated for a newer
    /// leader since it fetched.
    NoEpochGate,
    /// The high watermark counts only the applied ISR, not an expansion in flight.
    HwOverAppliedIsr,
    /// The leader remembers only its latest ISR proposal and the controller applies
    /// an ISR change whatever version it was computed from (found by this model).
    IsrLastProposalOnly,
    /// A restarted leader serves before its new registration is applied (found by
    /// this model).
    LeadBeforeRegistered,
    /// A follower joins the ISR once it reaches the leader's high watermark, even if
    /// that lags what the leader had when its epoch began (found by this model).
    ExpandBelowEpochStart,
    /// The high watermark is the leader's own durable end (acks=all before replication).
    HwLeaderOnly,
    /// A fenced leader's partition moves to any live replica, not only an ISR member.
    UncleanElection,
    /// A follower of a new leader epoch fetches on without truncating first.
    NoTruncation,
    /// A follower truncates to the leader's end offset only, even when the leader
    /// answered for an older epoch than asked (found by this model).
    TruncateToLeaderEndOnly,
    /// A damaged copy cuts its log below the damage at once, still in the ISR (what
    /// recovery did before issue 12: a torn write and corruption treated alike).
    CutDamageInIsr,
    /// The leader lets a follower into the ISR on the strength of a fetch served
    /// before the partition version moved on, e.g. before that follower left the ISR
    /// to cut its damage (R-REPL-4).
    ExpandOnStaleFetch,
    /// The leader's high watermark is recomputed from its followers' ends as they are
    /// now, without keeping what it was: a new leader that has not heard from its
    /// followers yet answers consumers with less than they have read.
    HwMayRegress,
    /// An idempotent retry of a batch the leader already holds is acknowledged at once,
    /// before the high watermark passes the original (what the fault run found, fixed
    /// in commit e9b9b57; `retry_acked_at_once` in the real code).
    RetryAckedAtOnce,
    /// Produces whose records a failed fsync cut off stay waiting, and are answered
    /// once the high watermark passes their offsets, which new records now hold (what
    /// the simulator found before R-LOG-9's failure epoch).
    AckCutAppends,
    /// Under the interval fsync policy, a leader that restarts keeps leading (with a
    /// new leader epoch) although the crash may have cut records it acknowledged
    /// before syncing them; its followers then truncate them away (what Chronik did
    /// before this switch existed; Kafka's KIP-966 unclean-shutdown handling).
    UncleanRestartKeepsLeading,
    /// A follower whose full disk cut a fetch answer short, or whose fsync after an
    /// append failed, leaves what it appended unsynced, and fetches from its log end
    /// without syncing or cutting first: the leader counts records a crash of the
    /// follower, or the cut of its offline log, loses (what the simulator's full-disk
    /// storm found, seed 1196, before `follower_fetch_offset`).
    FetchFromUnsyncedEnd,
    /// A follower acts on every OffsetForLeaderEpoch answer, even a late copy for
    /// the epoch it already follows or one from a leader it no longer follows: it
    /// cuts records it has since fetched, below the high watermark (what trace
    /// validation found, C-9; `truncate_on_stale_answer` in the real code). Needs
    /// reordered fetches, where an answer is in flight.
    TruncateOnStaleAnswer,
    /// The high watermark advances while the ISR is below `min.insync.replicas`
    /// (before KIP-966): an eligible replica elected later lacks records consumers
    /// read (`hw_below_min_isr` in the real code).
    HwBelowMinIsr,
    /// Nobody is eligible to lead outside the ISR: the last ISR member keeps
    /// leading after an unclean restart although the follower that left holds what
    /// its crash cut (what Chronik did before R-REPL-6; the simulator's
    /// `--faults interval` seed 50210).
    NoEligibleLeaders,
    /// Recovery cuts a bad last frame past the checkpoint's durable point as a torn
    /// write and marks nothing: the copy stays counted in the ISR and may lead again,
    /// and its followers truncate the acknowledged record it held (what Chronik did
    /// before the mark; needs `torn_last_frame`).
    ForgetTornTail,
    /// A start's registration names no copy as short of records: only the copy's
    /// `Repair`, proposed later, takes it out of the ISR and the eligible set, and an
    /// ISR change applied in between makes a marked follower eligible without the
    /// records (what Chronik did before registrations named short copies; needs
    /// damage and `torn_last_frame`).
    RegisterWithoutShortCopies,
    /// The rules before stop 48: a fenced leader is never eligible, whatever its fsync
    /// policy (nor are the ISR members an eligible replica displaces), and a short
    /// leader's step-aside is refused when no eligible replica is live. With ISR {1}
    /// below the minimum, a follower whose restart cut the committed tail, elected in
    /// its place, keeps leading, and the fenced leader's return truncates the records
    /// (R-REPL-6; needs damage and `torn_last_frame`).
    FencedLeaderNeverEligible,
    /// Under the interval policy, an unclean restart of a partition's last ISR member
    /// waits offline for any eligible replica, also a leader fenced while it may have
    /// been crashing: that one's own restart, the last copy, is then elected without
    /// what its crash cut (what a first rule of stop 49 did; the simulator's
    /// `--faults interval` seed 54).
    UncleanRestartAwaitsUnverified,
    /// DeleteRecords is answered once the leader has deleted, without waiting for its
    /// followers' log starts: a follower elected next serves the deleted records
    /// again (what the e2e test `test_r_wire_5_deleted_records_stay_deleted_when_the_leader_dies_at_once`
    /// found; `delete_acked_at_once` in the real code).
    DeleteAckedAtOnce,
}

impl ReplBug {
    pub const ALL: [ReplBug; 25] = [
        ReplBug::AckWhenDeposed,
        ReplBug::NoEpochGate,
        ReplBug::HwOverAppliedIsr,
        ReplBug::IsrLastProposalOnly,
        ReplBug::LeadBeforeRegistered,
        ReplBug::ExpandBelowEpochStart,
        ReplBug::HwLeaderOnly,
        ReplBug::UncleanElection,
        ReplBug::NoTruncation,
        ReplBug::TruncateToLeaderEndOnly,
        ReplBug::CutDamageInIsr,
        ReplBug::ExpandOnStaleFetch,
        ReplBug::HwMayRegress,
        ReplBug::RetryAckedAtOnce,
        ReplBug::AckCutAppends,
        ReplBug::UncleanRestartKeepsLeading,
        ReplBug::FetchFromUnsyncedEnd,
        ReplBug::TruncateOnStaleAnswer,
        ReplBug::HwBelowMinIsr,
        ReplBug::NoEligibleLeaders,
        ReplBug::ForgetTornTail,
        ReplBug::RegisterWithoutShortCopies,
        ReplBug::FencedLeaderNeverEligible,
        ReplBug::UncleanRestartAwaitsUnverified,
        ReplBug::DeleteAckedAtOnce,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReplBug::AckWhenDeposed => "ack-when-deposed",
            ReplBug::NoEpochGate => "no-epoch-gate",
            ReplBug::HwOverAppliedIsr => "hw-over-applied-isr",
            ReplBug::IsrLastProposalOnly => "isr-last-proposal-only",
            ReplBug::LeadBeforeRegistered => "lead-before-registered",
            ReplBug::ExpandBelowEpochStart => "expand-below-epoch-start",
            ReplBug::HwLeaderOnly => "hw-leader-only",
            ReplBug::UncleanElection => "unclean-election",
            ReplBug::NoTruncation => "no-truncation",
            ReplBug::TruncateToLeaderEndOnly => "truncate-to-leader-end-only",
            ReplBug::CutDamageInIsr => "cut-damage-in-isr",
            ReplBug::ExpandOnStaleFetch => "expand-on-stale-fetch",
            ReplBug::HwMayRegress => "hw-may-regress",
            ReplBug::RetryAckedAtOnce => "retry-acked-at-once",
            ReplBug::AckCutAppends => "ack-cut-appends",
            ReplBug::UncleanRestartKeepsLeading => "unclean-restart-keeps-leading",
            ReplBug::FetchFromUnsyncedEnd => "fetch-from-unsynced-end",
            ReplBug::TruncateOnStaleAnswer => "truncate-on-stale-answer",
            ReplBug::HwBelowMinIsr => "hw-below-min-isr",
            ReplBug::NoEligibleLeaders => "no-eligible-leaders",
            ReplBug::ForgetTornTail => "forget-torn-tail",
            ReplBug::RegisterWithoutShortCopies => "register-without-short-copies",
            ReplBug::FencedLeaderNeverEligible => "fenced-leader-never-eligible",
            ReplBug::UncleanRestartAwaitsUnverified => "unclean-restart-awaits-unverified",
            ReplBug::DeleteAckedAtOnce => "delete-acked-at-once",
        }
    }

    pub fn from_name(s: &str) -> Option<ReplBug> {
        ReplBug::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The property whose counterexample the switch is expected to produce.
    pub fn expected_property(self) -> &'static str {
        match self {
            ReplBug::AckWhenDeposed => names::ONE_VALUE,
            ReplBug::TruncateToLeaderEndOnly => names::READ_ON_ISR,
            ReplBug::HwMayRegress | ReplBug::FencedLeaderNeverEligible => names::HW_MONOTONIC,
            ReplBug::HwBelowMinIsr | ReplBug::RegisterWithoutShortCopies => {
                names::ELIGIBLE_COMPLETE
            }
            ReplBug::DeleteAckedAtOnce => names::DELETED_STAY_DELETED,
            _ => names::ACKED_ON_ISR,
        }
    }

    /// Found by a single-threaded depth-first search at `bounds()` in about a second,
    /// where a breadth-first one takes some 20 s to reach its 17-19 steps; the path is
    /// longer than the shortest (30 and 36 steps; the CLI's `--shortest` prints that one).
    /// For the others depth-first is the slower (it wanders for minutes).
    pub fn found_by_dfs(self) -> bool {
        matches!(
            self,
            ReplBug::LeadBeforeRegistered | ReplBug::ExpandBelowEpochStart
        )
    }

    /// Too deep for a breadth-first search in CI time: random walks over
    /// `walk_bounds` find it in seconds.
    pub fn found_by_walks(self) -> bool {
        matches!(
            self,
            ReplBug::NoEpochGate
                | ReplBug::TruncateToLeaderEndOnly
                | ReplBug::RegisterWithoutShortCopies
        )
    }

    /// Where the random walks of a switch `found_by_walks` run: the model, the seed
    /// and how deep each walk goes.
    pub fn walk_bounds(self) -> (ReplicationModel, u64, usize) {
        if self == ReplBug::RegisterWithoutShortCopies {
            // A marked follower, two ISR changes and a fence, some 30 steps: walks of
            // 40 steps, about one in 40,000 gets there (seed 1: walk 37,000 or so).
            let model = ReplicationModel::bounded(2, 1, 1, 2)
                .with_damage(1)
                .with_torn_last_frame()
                .with_bug(self);
            return (model, 1, 40);
        }

        (ReplicationModel::bounded(3, 1, 2, 1).with_bug(self), 2, 400)
    }

    /// The smallest bounds at which the switch shows (BFS finds it in seconds).
    pub fn bounds(self) -> ReplicationModel {
        if let ReplBug::CutDamageInIsr | ReplBug::ExpandOnStaleFetch = self {
            // Two produces: damage hits a record that another durable one follows.
            let shrinks = u8::from(self == ReplBug::ExpandOnStaleFetch);
            return ReplicationModel::bounded(2, 0, 0, shrinks)
                .with_damage(1)
                .with_bug(self);
        }
        if self == ReplBug::AckCutAppends {
            return ReplicationModel::bounded(2, 0, 0, 0)
                .with_sync_failures(1)
                .with_bug(self);
        }
        if self == ReplBug::UncleanRestartKeepsLeading {
            return ReplicationModel::bounded(1, 1, 0, 0)
                .with_acks_before_fsync()
                .with_bug(self);
        }
        if self == ReplBug::FetchFromUnsyncedEnd {
            return ReplicationModel::bounded(2, 1, 0, 0)
                .with_full_disks(1)
                .with_bug(self);
        }
        if self == ReplBug::TruncateOnStaleAnswer {
            return ReplicationModel::bounded(2, 0, 1, 0)
                .with_trace_options(2)
                .with_bug(self);
        }
        if let ReplBug::HwBelowMinIsr | ReplBug::NoEligibleLeaders = self {
            // The copy the lone leader loses is unsynced: the interval policy shows it.
            return ReplicationModel::bounded(1, 1, 1, 1)
                .with_acks_before_fsync()
                .with_bug(self);
        }
        if self == ReplBug::ForgetTornTail {
            return ReplicationModel::bounded(1, 1, 0, 0)
                .with_damage(1)
                .with_torn_last_frame()
                .with_bug(self);
        }
        if self == ReplBug::FencedLeaderNeverEligible {
            // Three faults in one window, 26 steps from the created partition:
            // searched from where the window opens.
            return ReplicationModel::fenced_leader_window(Some(self));
        }
        if self == ReplBug::UncleanRestartAwaitsUnverified {
            return ReplicationModel::interval_fenced_leader_window(Some(self));
        }
        if self == ReplBug::DeleteAckedAtOnce {
            // A record, its deletion, the leader fenced: the follower elected serves it.
            return ReplicationModel::bounded(1, 0, 1, 0)
                .with_deletes(1)
                .with_bug(self);
        }
        if self == ReplBug::RetryAckedAtOnce {
            return ReplicationModel::bounded(1, 0, 0, 0)
                .with_retries(1)
                .with_bug(self);
        }
        let (produce, crashes, fences, shrinks) = match self {
            ReplBug::AckWhenDeposed | ReplBug::NoTruncation | ReplBug::NoEpochGate => (2, 0, 1, 0),
            ReplBug::HwLeaderOnly => (1, 0, 0, 0),
            ReplBug::HwOverAppliedIsr | ReplBug::HwMayRegress => (1, 0, 1, 0),
            ReplBug::UncleanElection | ReplBug::IsrLastProposalOnly => (1, 0, 1, 1),
            ReplBug::LeadBeforeRegistered | ReplBug::ExpandBelowEpochStart => (1, 1, 1, 0),
            ReplBug::TruncateToLeaderEndOnly => (2, 0, 2, 0),
            ReplBug::CutDamageInIsr
            | ReplBug::ExpandOnStaleFetch
            | ReplBug::RetryAckedAtOnce
            | ReplBug::AckCutAppends
            | ReplBug::UncleanRestartKeepsLeading
            | ReplBug::FetchFromUnsyncedEnd
            | ReplBug::TruncateOnStaleAnswer
            | ReplBug::HwBelowMinIsr
            | ReplBug::NoEligibleLeaders
            | ReplBug::ForgetTornTail
            | ReplBug::RegisterWithoutShortCopies
            | ReplBug::FencedLeaderNeverEligible
            | ReplBug::UncleanRestartAwaitsUnverified
            | ReplBug::DeleteAckedAtOnce => (1, 0, 0, 0),
        };
        ReplicationModel::bounded(produce, crashes, fences, shrinks).with_bug(self)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Options: bounds that keep the space finite, `min.insync.replicas`, bug switches.
#[derive(Clone, Debug)]
pub struct ReplicationModel {
    pub min_isr: u8,
    pub max_produce: u8,
    pub max_crashes: u8,
    /// Session lapses the controller acts on (a dead, stopped or slow broker).
    pub max_fences: u8,
    /// Followers the leader drops from the ISR for lagging (time is not modelled, so a
    /// shrink may happen at any moment).
    pub max_shrinks: u8,
    pub max_epoch: u8,
    /// Copies whose stored bytes get damaged (a flipped byte below the durable point,
    /// R-LOG-13), repaired from the others (R-REPL-4). 0 unless asked for.
    pub max_damage: u8,
    /// Idempotent retries of an unacknowledged produce (same producer, same
    /// sequence) at a broker that leads. 0 unless asked for.
    pub max_retries: u8,
    /// Controller failovers: the metadata leader changes and the commands proposed
    /// to the old one and not yet committed are lost. 0 unless asked for.
    pub max_failovers: u8,
    /// Failed fsyncs of a partition log: the sync returns an error, the log goes
    /// offline and cuts its unsynced tail (R-LOG-9). 0 unless asked for.
    pub max_sync_failures: u8,
    /// The interval fsync policy (`--fsync-interval-ms`): a leader counts, serves and
    /// acknowledges what it has written before syncing it, so a crash may cut
    /// records it acknowledged; its followers still sync every fetch, as the real
    /// ones do. Properties then judge the copies of running brokers (R-REPL-5).
    pub acks_before_fsync: bool,
    /// Disks that fill up (ENOSPC) for a while: a full leader refuses produces, a
    /// full follower appends part of a fetch answer, a full broker writes no
    /// checkpoint (R-LOG-12). 0 unless asked for.
    pub max_full: u8,
    /// A broker applies the committed metadata one committed change at a time, as a
    /// real broker applies the committed entries a Ready hands it, instead of jumping
    /// to the newest: a broker may learn a version another has already left behind.
    /// Off in the exhaustive checks (it only adds interleavings of `Learn`); on for
    /// trace validation, where real brokers apply at their own pace.
    pub stepwise_learning: bool,
    /// The network reorders a follower's Fetch requests and their answers: up to two
    /// answers are in flight to a follower, in any order, and a request sent earlier
    /// may be served after a later one. Off in most exhaustive checks; on for trace
    /// validation (the simulator's network reorders packets).
    pub reordered_fetches: bool,
    /// With reordered fetches: requests and answers in flight for one follower (each
    /// beyond the first is a retry after a timeout).
    pub max_fetches_in_flight: u8,
    /// A leader's ISR proposal may drop and add several followers at once.
    pub combined_isr_changes: bool,
    /// A controller failover may lose any one proposal, not only all past the first
    /// few (a forward dropped on its way to the leader, or held by one that lost it,
    /// while a later proposal reaches the next leader); and a restarted broker's
    /// proposal is in flight until `ProposalArrives` takes it to the controller.
    pub lossy_proposals: bool,
    /// Damage may hit a copy's last durable record too, and a restart's recovery then
    /// cuts it as a torn write unless the checkpoint's durable point covers it, as the
    /// real recovery does (R-LOG-13): the gap spec/cluster.md R-REPL-4 names.
    pub torn_last_frame: bool,
    /// A crash may keep part of the unsynced tail: whole records
    /// (`RAction::CrashKeeping`), or whole records and a torn frame after them
    /// (`RAction::CrashTorn`). A torn copy restarts marked short although nothing
    /// durable was lost, as the real recovery marks every tail it cuts. Off unless
    /// asked for; on for trace validation.
    pub torn_crashes: bool,
    /// DeleteRecords requests an admin client sends to a leader: each deletes below
    /// an offset up to the high watermark and is answered once every live replica's
    /// log start is there (R-WIRE-5). 0 unless asked for.
    pub max_deletes: u8,
    /// Damage may also land on the copy of a broker that is down, as bit rot or the
    /// simulator's injected damage does (trace validation only). A checked
    /// configuration damages a live copy, which a crash right after leaves the same
    /// disk as this does.
    pub damage_while_down: bool,
    /// Where checks start instead of the created partition (`after`), and the path
    /// from the created partition that leads there.
    start: Option<Arc<RState>>,
    start_path: Vec<RAction>,
    bugs: u32,
}

impl Default for ReplicationModel {
    fn default() -> Self {
        ReplicationModel {
            min_isr: 2,
            max_produce: 2,
            max_crashes: 1,
            max_fences: 1,
            max_shrinks: 1,
            max_epoch: 3,
            max_damage: 0,
            max_retries: 0,
            max_failovers: 0,
            max_sync_failures: 0,
            acks_before_fsync: false,
            max_full: 0,
            stepwise_learning: false,
            reordered_fetches: false,
            max_fetches_in_flight: 2,
            combined_isr_changes: false,
            lossy_proposals: false,
            torn_last_frame: false,
            torn_crashes: false,
            max_deletes: 0,
            damage_while_down: false,
            start: None,
            start_path: Vec::new(),
            bugs: 0,
        }
    }
}

/// The partition as CreateTopics leaves it, where the model starts: replicas
/// [0, 1, 2], the first leads, epoch 0, every broker in its first start.
pub const CREATED: Meta = Meta {
    leader: Some(0),
    epoch: 0,
    version: 0,
    isr: ALL,
    elr: 0,
    unverified: 0,
    fenced: 0,
    fences: [0; REPLICAS],
    incarnation: [1; REPLICAS],
};

impl ReplicationModel {
    /// Produces, crashes, fences and ISR shrinks allowed; other options default.
    pub fn bounded(produce: u8, crashes: u8, fences: u8, shrinks: u8) -> Self {
        ReplicationModel {
            max_produce: produce,
            max_crashes: crashes,
            max_fences: fences,
            max_shrinks: shrinks,
            ..ReplicationModel::default()
        }
    }

    pub fn with_damage(mut self, damage: u8) -> Self {
        self.max_damage = damage;
        self
    }

    /// See `torn_last_frame`.
    pub fn with_torn_last_frame(mut self) -> Self {
        self.torn_last_frame = true;
        self
    }

    /// See `torn_crashes`.
    pub fn with_torn_crashes(mut self) -> Self {
        self.torn_crashes = true;
        self
    }

    pub fn with_retries(mut self, retries: u8) -> Self {
        self.max_retries = retries;
        self
    }

    pub fn with_failovers(mut self, failovers: u8) -> Self {
        self.max_failovers = failovers;
        self
    }

    pub fn with_sync_failures(mut self, failures: u8) -> Self {
        self.max_sync_failures = failures;
        self
    }

    pub fn with_deletes(mut self, deletes: u8) -> Self {
        self.max_deletes = deletes;
        self
    }

    pub fn with_full_disks(mut self, full: u8) -> Self {
        self.max_full = full;
        self
    }

    pub fn with_acks_before_fsync(mut self) -> Self {
        self.acks_before_fsync = true;
        self
    }

    pub fn with_reordered_fetches(mut self) -> Self {
        self.reordered_fetches = true;
        self
    }

    pub fn with_combined_isr_changes(mut self) -> Self {
        self.combined_isr_changes = true;
        self
    }

    pub fn with_stepwise_learning(mut self) -> Self {
        self.stepwise_learning = true;
        self
    }

    /// The options trace validation turns on (stepwise learning, reordered fetches
    /// with this many in flight, combined ISR changes), for checking them at small
    /// bounds: the validator follows this model, so its properties must hold with them.
    pub fn with_trace_options(mut self, fetches_in_flight: u8) -> Self {
        self.stepwise_learning = true;
        self.reordered_fetches = true;
        self.max_fetches_in_flight = fetches_in_flight;
        self.combined_isr_changes = true;
        self.lossy_proposals = true;
        self.torn_crashes = true;
        self
    }

    /// The model real runs are validated against (`trace`): no bound on faults,
    /// produces or epochs (they come from the run), brokers learning stepwise.
    pub fn for_traces(min_isr: u8) -> Self {
        ReplicationModel {
            min_isr,
            max_produce: u8::MAX,
            max_crashes: u8::MAX,
            max_fences: u8::MAX,
            max_shrinks: u8::MAX,
            max_epoch: u8::MAX,
            max_damage: u8::MAX,
            torn_last_frame: false,
            torn_crashes: true,
            max_retries: u8::MAX,
            max_failovers: u8::MAX,
            max_sync_failures: u8::MAX,
            acks_before_fsync: false,
            max_full: u8::MAX,
            stepwise_learning: true,
            reordered_fetches: true,
            max_fetches_in_flight: u8::MAX,
            combined_isr_changes: true,
            lossy_proposals: true,
            max_deletes: u8::MAX,
            damage_while_down: true,
            start: None,
            start_path: Vec::new(),
            bugs: 0,
        }
    }

    pub fn with_bug(mut self, bug: ReplBug) -> Self {
        self.bugs |= bug.bit();
        self
    }

    /// The same bounds with every switch off.
    pub fn without_bugs(mut self) -> Self {
        self.bugs = 0;
        self
    }

    /// The `min.insync.replicas` below which members leaving the ISR stay eligible
    /// (R-REPL-6); none ever are with `no-eligible-leaders`.
    pub fn eligible_min_isr(&self) -> u8 {
        if self.bug(ReplBug::NoEligibleLeaders) {
            0
        } else {
            self.min_isr
        }
    }

    pub fn bug(&self, bug: ReplBug) -> bool {
        self.bugs & bug.bit() != 0
    }

    pub fn bugs(&self) -> Vec<ReplBug> {
        ReplBug::ALL.into_iter().filter(|b| self.bug(*b)).collect()
    }

    pub fn ids() -> impl Iterator<Item = NodeId> {
        0..REPLICAS as NodeId
    }

    /// R-REPL-6's fenced-leader window, searched from where it opens
    /// (`ALONE_BELOW_MIN_ISR`) with a crash, a fence and damage to a last frame left
    /// to happen, and `bug` if any (the start runs under it too).
    pub fn fenced_leader_window(bug: Option<ReplBug>) -> Self {
        ReplicationModel::bounded(1, 1, 1, 2)
            .with_damage(1)
            .with_torn_last_frame()
            .in_window(bug, true)
    }

    /// The same window under the interval policy, the leader's record unsynced, with
    /// two crashes and a fence to come (`bug` if any): a fenced leader stays eligible
    /// but unverified, and an unclean restart does not wait for it (R-REPL-6).
    pub fn interval_fenced_leader_window(bug: Option<ReplBug>) -> Self {
        ReplicationModel::bounded(1, 2, 1, 2)
            .with_acks_before_fsync()
            .in_window(bug, false)
    }

    /// These options with `bug` if any, started where `ALONE_BELOW_MIN_ISR` leads
    /// (the start runs under the bug too).
    pub fn in_window(self, bug: Option<ReplBug>, leader_synced: bool) -> Self {
        let model = match bug {
            Some(b) => self.with_bug(b),
            None => self,
        };
        // A constant path the tests walk: a step it lacks is a change to the model.
        model
            .after_alone_below_min_isr(leader_synced)
            .unwrap_or_else(|e| panic!("ALONE_BELOW_MIN_ISR no longer walks: {e}"))
    }

    /// Starts where `ALONE_BELOW_MIN_ISR` leads. Without `leader_synced` (the interval
    /// policy) the leader skips its fsync: it acknowledged before syncing, so a crash
    /// of it can cut the record (it may still sync later in the search).
    pub fn after_alone_below_min_isr(self, leader_synced: bool) -> Result<Self, String> {
        let skip_sync = !leader_synced;
        let path: Vec<RAction> = ALONE_BELOW_MIN_ISR
            .into_iter()
            .filter(|a| !(skip_sync && *a == RAction::Fsync(0)))
            .collect();
        self.after(&path)
    }

    /// Checks start where `path` leads from the created partition: a window found
    /// by reading, searched exhaustively from where it opens when the whole space to
    /// its depth is too large (R-REPL-6's fenced leader). Each step must be enabled
    /// and change the state; call it after every other option, which it runs under.
    pub fn after(mut self, path: &[RAction]) -> Result<Self, String> {
        self.start = None;
        self.start_path.clear();
        let mut state = self.init_state();
        for action in path {
            let mut enabled = Vec::new();
            self.enabled(&state, &mut enabled);
            let next = enabled
                .contains(action)
                .then(|| self.step(&state, action.clone()))
                .flatten();
            state = next.ok_or_else(|| format!("{action} is not a step from {state:?}"))?;
        }
        self.start = Some(Arc::new(state));
        self.start_path = path.to_vec();
        Ok(self)
    }

    /// The same model started from the created partition, and the path `after` took
    /// from there (empty if none): what a replay on real brokers, which start from
    /// the created partition, walks first.
    pub fn from_creation(&self) -> (Self, Vec<RAction>) {
        let mut model = self.clone();
        model.start = None;
        let path = std::mem::take(&mut model.start_path);
        (model, path)
    }

    pub fn init_state(&self) -> RState {
        if let Some(start) = &self.start {
            return RState::clone(start);
        }
        let meta = CREATED;
        let mut ghost = Ghost::default();
        ghost.leaders.insert((0, 0));
        RState {
            meta,
            inbox: Vec::new(),
            replicas: Self::ids().map(|_| Replica::new(meta).into()).collect(),
            net: Default::default(),
            requests: Default::default(),
            epoch_answers: Default::default(),
            ghost,
            history: if self.stepwise_learning {
                vec![meta]
            } else {
                Vec::new()
            },
            in_flight: Vec::new(),
        }
    }
}

/// A record produced, synced and fetched by both followers, then both shrunk out:
/// the ISR is {0}, below the minimum of 2, and 1 is eligible (R-REPL-6). A window
/// opens here: a bad last frame on 1 that its restart cuts, and 0 fenced before
/// that start's registration, elect 1 without the record.
pub const ALONE_BELOW_MIN_ISR: [RAction; 18] = [
    RAction::Truncate(1),
    RAction::Truncate(2),
    RAction::Produce(0),
    RAction::Fsync(0),
    RAction::FetchRequest(1),
    RAction::FetchResponse(1),
    RAction::FetchRequest(2),
    RAction::FetchResponse(2),
    RAction::FetchRequest(1),
    RAction::FetchResponse(1),
    RAction::FetchRequest(2),
    RAction::FetchResponse(2),
    RAction::ShrinkIsr(0, 2),
    RAction::Commit,
    RAction::Learn(0),
    RAction::ShrinkIsr(0, 1),
    RAction::Commit,
    RAction::Learn(0),
];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RAction {
    /// A client's produce (acks=all) of a new value to a broker that leads.
    Produce(NodeId),
    /// The client of this unacknowledged value sends it again (its request timed out
    /// or its leader moved): an idempotent producer's retry, same sequence.
    Retry(NodeId, u8),
    /// The metadata Raft group elects a new leader (a controller failover); the
    /// commands proposed and not yet committed beyond the first this many are lost.
    ControllerFailover(u8),
    /// With lossy proposals: a controller failover loses the `k`th (from 0) command
    /// proposed and not yet committed, and no other.
    ProposalLost(u8),
    /// The group commit fsyncs the broker's partition log.
    Fsync(NodeId),
    /// The group commit's fsync fails: the produces it covered are answered with an
    /// error, and the log cuts what was not synced before it takes anything new.
    FsyncFail(NodeId),
    /// The follower's replica fetcher sends a Fetch to the leader it knows; the leader
    /// serves it at once (records its fetch offset, moves the high watermark, answers).
    FetchRequest(NodeId),
    /// With reordered fetches: the follower's replica fetcher syncs its log and sends
    /// a Fetch from its log end to the leader it knows.
    FetchSend(NodeId),
    /// With reordered fetches: the leader the `k`th (from 0) of the follower's Fetch
    /// requests in flight went to serves it, or refuses it if it no longer leads in
    /// the request's epoch (a request may be served after a later one).
    FetchServe(NodeId, u8),
    /// With reordered fetches: the `k`th of the follower's Fetch requests in flight
    /// is lost (the network dropped it, or it reached a broker that had not yet
    /// applied the partition's creation and answered UNKNOWN_TOPIC_OR_PARTITION).
    FetchLost(NodeId, u8),
    /// With reordered fetches: the network drops the `k`th (from 0) of the answers
    /// in flight to the follower, which asks again.
    FetchAnswerLost(NodeId, u8),
    /// The follower handles the Fetch response in flight to it.
    FetchResponse(NodeId),
    /// The follower handles the `k`th (from 0) of the answers in flight to it.
    FetchResponseNth(NodeId, u8),
    /// The follower's full disk takes only this many of the records the response in
    /// flight to it would append; it syncs those and leaves its high watermark. All
    /// of them: they fit, the high watermark moves, and the checkpoint of the
    /// leader's log start is refused, so the copy's log start stays (the real
    /// `delete_records_before` after the append; C-9, swarm seed 1473).
    FetchResponseCut(NodeId, u8),
    /// The follower appends what the `k`th (from 0) answer in flight to it brings,
    /// and the fsync after it fails: the records stay unsynced, the log goes
    /// offline and the high watermark stays (R-LOG-9).
    FetchResponseSyncFails(NodeId, u8),
    /// A log a failed fsync took offline cuts its unsynced records and comes back
    /// (R-LOG-9; the real log does so at its next append, fetch offset or
    /// OffsetForLeaderEpoch answer, which cut first if this has not happened yet).
    Resync(NodeId),
    /// The broker's disk fills up.
    DiskFull(NodeId),
    /// Space is freed on the broker's full disk.
    DiskFreed(NodeId),
    /// The follower asks its new leader where its last epoch ends and truncates there
    /// (with reordered fetches: only a follower with an empty log, which has nothing
    /// to ask and follows the epoch at once).
    Truncate(NodeId),
    /// With reordered fetches: the follower's leader answers its OffsetForLeaderEpoch
    /// (the answer is in flight).
    EpochAsk(NodeId),
    /// With reordered fetches: the follower handles the `k`th (from 0) answer in
    /// flight to it: it cuts and follows the epoch, unless the answer is stale (it
    /// no longer follows that epoch's leader, or already follows that epoch).
    EpochAnswered(NodeId, u8),
    /// With reordered fetches: the network drops the `k`th answer in flight to it.
    EpochAnswerLost(NodeId, u8),
    /// The broker applies the committed metadata.
    Learn(NodeId),
    /// The Raft group commits the oldest proposed command.
    Commit,
    /// The controller fences a broker whose session lapsed.
    Fence(NodeId),
    /// A running broker that sees itself fenced registers again.
    Rejoin(NodeId),
    /// With lossy proposals: the `k`th proposal in flight reaches the controller,
    /// after every one that reached it before.
    ProposalArrives(u8),
    /// The leader proposes the ISR without this lagging follower.
    ShrinkIsr(NodeId, NodeId),
    /// The leader proposes the ISR with this caught-up follower.
    ExpandIsr(NodeId, NodeId),
    /// With combined ISR changes: the leader proposes, in one command, this ISR,
    /// which drops and adds two or more followers (each added one caught up), as the
    /// real `wanted_isr` does when several changes fall in one upkeep round.
    ProposeIsr(NodeId, Set),
    /// Housekeeping writes the high watermark checkpoint.
    Checkpoint(NodeId),
    /// A consumer reads up to the high watermark from a broker that leads.
    Consume(NodeId),
    /// kill -9.
    Crash(NodeId),
    /// Power fails mid-write (with `torn_crashes`): the first `k` unsynced records
    /// survive whole and the next one's frame only in part, torn. The restart's
    /// recovery keeps the whole ones and cuts the torn frame and, unable to tell it
    /// from a bad sector in a record the checkpoint does not yet call durable, marks
    /// the cut as a lost tail (R-REPL-4).
    CrashTorn(NodeId, u8),
    /// Power fails between writes (with `torn_crashes`): the first `k` (at least
    /// one) unsynced records survive whole, as the page cache happened to write them
    /// back, and the restart's recovery keeps them: whole, checksummed frames.
    CrashKeeping(NodeId, u8),
    /// The broker starts again: recovery, a new incarnation, registration.
    Restart(NodeId),
    /// An admin client's DeleteRecords below this offset (at most the high
    /// watermark) reaches a broker that leads: it moves its log start there and waits
    /// for the low watermark.
    DeleteRecords(NodeId, u8),
    /// A byte of this copy's durable record at this offset flips on disk, and the
    /// broker finds it (its scrub or a read, R-LOG-16).
    Damage(NodeId, u8),
    /// The damaged copy proposes to leave the ISR (and leadership) for repair.
    ProposeRepair(NodeId),
    /// With lossy proposals: the answer to broker `n`'s applied `Repair` never
    /// reaches it (its forward timed out), so it proposes the repair again instead
    /// of cutting (the real `Repairs` retries after `RETRY_MS`); a controller-side
    /// loss, counted with the failovers.
    RepairUnanswered(NodeId),
    /// The late answer to broker `n`'s applied `Repair` comes (`RepairUnanswered`
    /// took it for unanswered): the repair is applied, so the copy cuts, also with
    /// the repair it proposed again still on its way.
    RepairAnswered(NodeId),
    /// Out of the ISR by its own `Repair`, the copy cuts its log below the damage and
    /// fetches from there.
    CutDamage(NodeId),
}

impl fmt::Display for RAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl Model for ReplicationModel {
    type State = RState;
    type Action = RAction;

    fn init_states(&self) -> Vec<RState> {
        vec![self.init_state()]
    }

    fn actions(&self, state: &RState, actions: &mut Vec<RAction>) {
        self.enabled(state, actions);
    }

    fn next_state(&self, last: &RState, action: RAction) -> Option<RState> {
        self.step(last, action)
    }

    fn format_action(&self, action: &RAction) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::properties(self)
    }

    fn within_boundary(&self, s: &RState) -> bool {
        let g = &s.ghost;
        g.produced <= self.max_produce
            && g.crashes <= self.max_crashes
            && g.fences <= self.max_fences
            && g.shrinks <= self.max_shrinks
            && g.damages <= self.max_damage
            && g.retries <= self.max_retries
            && g.failovers <= self.max_failovers
            && g.sync_failures <= self.max_sync_failures
            && g.fulls <= self.max_full
            && g.deletes <= self.max_deletes
            && s.meta.epoch <= self.max_epoch
    }
}
