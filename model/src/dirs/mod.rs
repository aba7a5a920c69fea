//! The partition-directories model (spec/recover.md R-RECOVER-7, R-RECOVER-8): one
//! broker's partition directory of topic name `t` against the metadata it has applied,
//! across topic deletion and re-creation under the same name, crashes, and the loss of
//! its metadata directory.
//!
//! Two ways to be a broker, because the rules matter in different ones:
//! - a sole voter (`sole_voter`): its Raft log is the only copy of the metadata, each
//!   write is durable, committed and applied in one step (its commit index is synced
//!   before it applies), and a start registers in the driver's first step, so the
//!   directories of deleted topics go at once (R-RECOVER-8). Losing its metadata loses
//!   the topics for good: it must refuse to start (R-RECOVER-7);
//! - a cluster member: the cluster's log is elsewhere; the broker appends what it learns,
//!   applies it, and syncs its commit index later, so a restart replays less than it had
//!   applied; its registration is applied only once it has caught up.
//!
//! Each directory operation (`claim_dir`, a log's deletion, the removal of strays) is one
//! step, atomic under a crash: their crash-safety inside is the partition log's business
//! (spec/log.md). Records are durable when acknowledged (a sync per produce).

mod properties;
mod state;
mod step;
pub mod trace;

pub use properties::names;
pub use state::*;

use std::fmt;

use stateright::{Model, Property};

/// Each switch re-introduces a way of serving a deleted topic's records or losing a
/// live topic's, or of losing every topic without a word (issue 12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirBug {
    /// The start-up check is gone: a broker whose metadata is missing starts with none.
    StartWithoutMetadata,
    /// A directory stamped with another topic id is adopted as the new topic's.
    AdoptForeignDir,
    /// Directories of topics the replayed metadata lacks are removed before this
    /// start's registration is applied (from metadata that stops at the durable commit).
    StraysBeforeRegistered,
    /// `claim_dir` replaces a directory stamped with another topic id whatever the
    /// metadata it judges from: a member catching up applies an older prefix, where the
    /// name still belongs to the deleted topic, and removes the newer topic's records
    /// (found by this model in the code of issue 12's fix).
    ClaimFromStaleView,
}

impl DirBug {
    pub const ALL: [DirBug; 4] = [
        DirBug::StartWithoutMetadata,
        DirBug::AdoptForeignDir,
        DirBug::StraysBeforeRegistered,
        DirBug::ClaimFromStaleView,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DirBug::StartWithoutMetadata => "start-without-metadata",
            DirBug::AdoptForeignDir => "adopt-foreign-dir",
            DirBug::StraysBeforeRegistered => "strays-before-registered",
            DirBug::ClaimFromStaleView => "claim-from-stale-view",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The property each switch is checked against.
    pub fn expected_property(self) -> &'static str {
        match self {
            DirBug::StartWithoutMetadata
            | DirBug::StraysBeforeRegistered
            | DirBug::ClaimFromStaleView => names::KEPT,
            DirBug::AdoptForeignDir => names::OWN,
        }
    }

    /// Whether the bug can show in this kind of broker: a cluster member's metadata is
    /// on its peers too, and a sole voter's registration precedes every directory
    /// decision of its start.
    pub fn shows_as_sole_voter(self) -> bool {
        matches!(self, DirBug::StartWithoutMetadata)
    }
}

#[derive(Clone, Debug)]
pub struct DirModel {
    pub sole_voter: bool,
    /// Topic creations and deletions.
    pub max_writes: u8,
    pub max_produce: u8,
    pub max_crashes: u8,
    /// Losses of the metadata directory.
    pub max_losses: u8,
    pub bug: Option<DirBug>,
}

impl DirModel {
    pub fn new(sole_voter: bool) -> Self {
        DirModel {
            sole_voter,
            max_writes: 3,
            max_produce: 2,
            max_crashes: 2,
            max_losses: 1,
            bug: None,
        }
    }

    pub fn with_bug(mut self, bug: DirBug) -> Self {
        self.bug = Some(bug);
        self
    }

    pub fn bug(&self, bug: DirBug) -> bool {
        self.bug == Some(bug)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirAction {
    /// The broker process starts: the R-RECOVER-7 check, replay to the durable commit
    /// index, (a sole voter: its registration), and `reconcile_in_start`.
    Restart,
    /// A client's CreateTopics of `t` is committed (a sole voter: by this broker).
    CreateTopic,
    /// A client's DeleteTopics of `t` is committed.
    DeleteTopic,
    /// A cluster member's registration of this start is committed.
    Register,
    /// A cluster member appends the next committed entry durably and applies it.
    Learn,
    /// A cluster member syncs its commit index (a later Ready's HardState).
    PersistCommit,
    /// The applied metadata reaches the partitions (`reconcile_in_start`).
    Reconcile,
    /// An acknowledged produce to `t`.
    Produce,
    /// A consumer reads all of `t`.
    Fetch,
    Crash,
    /// The metadata directory of a down broker is gone (deleted, emptied, a wrong path).
    LoseMetadata,
    /// The operator moves the logs of a refused broker aside.
    MoveLogsAside,
}

impl fmt::Display for DirAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Model for DirModel {
    type State = DState;
    type Action = DirAction;

    fn init_states(&self) -> Vec<DState> {
        vec![DState::default()]
    }

    fn actions(&self, state: &DState, actions: &mut Vec<DirAction>) {
        self.enabled(state, actions);
    }

    fn next_state(&self, last: &DState, action: DirAction) -> Option<DState> {
        self.step(last, action)
    }

    fn format_action(&self, action: &DirAction) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::properties(self)
    }

    fn within_boundary(&self, s: &DState) -> bool {
        s.ghost.writes <= self.max_writes
            && len8(&s.ghost.acked) <= self.max_produce
            && s.ghost.crashes <= self.max_crashes
            && s.ghost.losses <= self.max_losses
    }
}
