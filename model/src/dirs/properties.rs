//! Properties of the directories model, each named after its rule in spec/recover.md.

use stateright::Property;

use super::*;

pub mod names {
    pub const INTACT: &str = "R-RECOVER-7 a broker whose metadata is intact is never refused";
    pub const OWN: &str = "R-RECOVER-8 a topic serves only the records produced to it";
    /// Live in what was acknowledged, whatever the broker's metadata still holds.
    pub const KEPT: &str =
        "R-RECOVER-7 R-RECOVER-8 every acknowledged record of a live topic is kept";

    pub const EX_REFUSED: &str = "example: a broker whose metadata is lost refuses to start";
    pub const EX_SET_ASIDE: &str = "example: a refused broker starts once its logs are moved aside";
    pub const EX_STRAY: &str = "example: a start removes the directory of a deleted topic";
    pub const EX_DEFERRED: &str =
        "example: a catching-up start leaves a directory of a topic it does not know yet";
}
use names::*;

pub fn properties(m: &DirModel) -> Vec<Property<DirModel>> {
    let mut all = vec![
        Property::always(INTACT, |_, s: &DState| {
            s.phase != DPhase::Refused || s.ghost.metadata_lost
        }),
        Property::always(OWN, |_, s: &DState| !s.ghost.foreign_read),
        Property::always(KEPT, |_, s: &DState| {
            let Some(id) = live_topic(&s.ghost.history) else {
                return true;
            };
            let acked = s.acked_of(id);
            s.ghost.logs_set_aside
                || acked == 0
                || s.dir.as_ref().is_some_and(|d| {
                    d.stamp == id && d.records.iter().filter(|r| **r == id).count() == acked
                })
        }),
        Property::sometimes(EX_REFUSED, |_, s: &DState| s.ghost.refused),
        Property::sometimes(EX_SET_ASIDE, |_, s: &DState| {
            s.phase == DPhase::Running && s.ghost.logs_set_aside
        }),
        Property::sometimes(EX_STRAY, |_, s: &DState| s.ghost.stray_removed),
    ];
    // A sole voter is registered before its first directory decision of a start.
    if !m.sole_voter {
        all.push(Property::sometimes(EX_DEFERRED, |_, s: &DState| {
            s.ghost.deferred
        }));
    }
    all
}
