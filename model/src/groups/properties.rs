//! Properties of the group model, each named after its rule in spec/groups.md.

use stateright::Property;

use super::*;

pub mod names {
    pub const FORWARD: &str = "R-GROUP-4 a committed offset never moves backwards";
    pub const ONCE: &str =
        "R-GROUP-4 without a crash or a lapsed session every record is delivered at most once";
    pub const ONE_OWNER: &str =
        "R-GROUP-1 no partition is owned by two members of the current generation";
    pub const NO_STRAY: &str = "R-GROUP-1 every answer goes to a request that waits for it";

    pub const EX_ALL: &str = "example: every record consumed and committed";
    pub const EX_RESTART: &str =
        "example: every record consumed and committed across a coordinator restart";
}
use names::*;

fn all_committed(m: &GroupModel, s: &GState) -> bool {
    s.committed.iter().all(|c| *c == m.records)
}

pub fn properties() -> Vec<Property<GroupModel>> {
    vec![
        Property::always(FORWARD, |_, s: &GState| !s.ghost.committed_backwards),
        Property::always(ONCE, |_, s: &GState| {
            s.ghost.lossy || s.ghost.delivered.iter().all(|n| *n <= 1)
        }),
        Property::always(ONE_OWNER, |_, s: &GState| {
            let mut seen = [false; PARTITIONS as usize];
            s.consumers
                .iter()
                .filter(|c| s.is_current(c))
                .flat_map(|c| c.owned.iter().map(|(p, _)| usize::from(*p)))
                .all(|p| !std::mem::replace(&mut seen[p], true))
        }),
        Property::always(NO_STRAY, |_, s: &GState| !s.ghost.stray_reply),
        Property::sometimes(EX_ALL, all_committed),
        Property::sometimes(EX_RESTART, |m: &GroupModel, s: &GState| {
            s.ghost.restarts > 0 && all_committed(m, s)
        }),
    ]
}
