//! The consumer group model (spec/groups.md): the real coordinator core
//! (`chronik_core::groups::Coordinator`) inside a stateright model, with consumers that
//! follow the eager classic protocol as Kafka clients do (join, sync, consume, commit,
//! heartbeat, commit on revoke, leave, crash), time in fixed steps, and coordinator
//! restarts that resume groups from their stored records.
//!
//! Unlike the metadata and replication models, this one does not describe the code: it
//! runs it. Every coordinator decision in a path is the broker's own; the model plays
//! the clients, the clock, the metadata store and the network (requests that die with a
//! restarted coordinator fail, and the client retries).

mod properties;
mod state;
mod step;

pub use properties::names;
pub use state::*;

use std::fmt;

use stateright::{Model, Property};

/// Each switch re-introduces a way of repeating or losing consumed records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupModelBug {
    /// The coordinator refuses a member's commit while the group prepares a rebalance.
    CommitRefusedWhilePreparing,
    /// The coordinator accepts a commit whatever member and generation it names.
    CommitsFromNonMembers,
    /// A restarted coordinator forgets its groups (membership in memory only).
    ForgetMembershipOnRestart,
}

impl GroupModelBug {
    pub const ALL: [GroupModelBug; 3] = [
        GroupModelBug::CommitRefusedWhilePreparing,
        GroupModelBug::CommitsFromNonMembers,
        GroupModelBug::ForgetMembershipOnRestart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupModelBug::CommitRefusedWhilePreparing => "commit-refused-while-preparing",
            GroupModelBug::CommitsFromNonMembers => "commits-from-non-members",
            GroupModelBug::ForgetMembershipOnRestart => "forget-membership-on-restart",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[derive(Clone, Debug)]
pub struct GroupModel {
    pub consumers: usize,
    /// Records per partition (every partition holds this many from the start).
    pub records: u8,
    pub max_ticks: u8,
    pub max_joins: u8,
    pub max_crashes: u8,
    pub max_restarts: u8,
    pub bug: Option<GroupModelBug>,
}

impl GroupModel {
    pub fn new(consumers: usize) -> Self {
        GroupModel {
            consumers,
            records: 2,
            max_ticks: 3,
            max_joins: 4,
            max_crashes: 1,
            max_restarts: 1,
            bug: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupAction {
    Join(usize),
    Sync(usize),
    Consume(usize, u8),
    Commit(usize),
    Heartbeat(usize),
    Leave(usize),
    Crash(usize),
    Tick,
    RestartCoordinator,
}

impl fmt::Display for GroupAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupAction::Join(c) => write!(f, "c{c} JoinGroup"),
            GroupAction::Sync(c) => write!(f, "c{c} SyncGroup"),
            GroupAction::Consume(c, p) => write!(f, "c{c} consumes the next record of p{p}"),
            GroupAction::Commit(c) => write!(f, "c{c} OffsetCommit"),
            GroupAction::Heartbeat(c) => write!(f, "c{c} Heartbeat"),
            GroupAction::Leave(c) => write!(f, "c{c} commits and leaves"),
            GroupAction::Crash(c) => write!(f, "c{c} crashes"),
            GroupAction::Tick => write!(f, "time passes ({TICK_MS} ms)"),
            GroupAction::RestartCoordinator => write!(f, "the coordinator restarts"),
        }
    }
}

impl Model for GroupModel {
    type State = GState;
    type Action = GroupAction;

    fn init_states(&self) -> Vec<GState> {
        vec![self.init_state()]
    }

    fn actions(&self, state: &GState, actions: &mut Vec<GroupAction>) {
        self.enabled(state, actions);
    }

    fn next_state(&self, last: &GState, action: GroupAction) -> Option<GState> {
        Some(self.step(last, action))
    }

    fn format_action(&self, action: &GroupAction) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::properties()
    }

    fn within_boundary(&self, s: &GState) -> bool {
        s.ghost.ticks <= self.max_ticks
            && s.ghost.joins <= self.max_joins
            && s.ghost.crashes <= self.max_crashes
            && s.ghost.restarts <= self.max_restarts
    }
}
