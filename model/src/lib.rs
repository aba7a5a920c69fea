//! chronik-model: a stateright model of Chronik's start-up, Raft Ready handling, crash
//! recovery and one partition's data path, at the granularity of the node core so that
//! each action maps onto one harness command. spec/README.md traces every property to its
//! rule.

pub mod bug_table;
pub mod check;
pub mod ci;
pub mod dirs;
pub mod groups;
pub mod model;
pub mod properties;
pub mod property_names;
pub mod raft_rules;
pub mod replication;
pub mod shared;
pub mod state;
pub mod symmetry;

pub use model::{Action, Bug, ChronikModel, PARTITION_LEADER};
pub use state::State;

use stateright::{Model, Property};

impl Model for ChronikModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.init_state()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.enabled(state, actions);
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        self.step(last, action)
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::properties(self)
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.ghost.crashes <= self.max_crashes
            && s.ghost.proposals <= self.max_proposals
            && s.ghost.produced <= self.max_produce
            && s.ghost.damages <= self.max_damage
            && s.nodes.iter().all(|n| n.term <= self.max_term)
            && self
                .max_pre_votes
                .is_none_or(|max| s.ghost.pre_votes <= max)
    }
}
