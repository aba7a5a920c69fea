//! The renamings `src/symmetry.rs` lets the checker fold together are symmetries of the
//! metadata model, checked on the states of random walks: renaming a state renames its
//! successors, and every property says the same of both. Without this, a symmetric
//! check could skip a state whose renamed twin behaves differently and call a space
//! exhaustive that it is not (model/README.md,
//! `three_nodes_from_power_on_all_properties_hold`).

use std::collections::HashSet;

use chronik_model::check::{self, Rng};
use chronik_model::ci::metadata;
use chronik_model::state::{NodeId, State};
use chronik_model::symmetry::{representative, representative_without_partition_data, rewrite};
use chronik_model::{Action, ChronikModel};
use stateright::Model;

/// As the CLI (model/src/main.rs): a fifth off each check's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WALKS: usize = 400;
const STEPS: usize = 120;

/// Every renaming of three nodes but the identity.
const RENAMINGS: [[NodeId; 3]; 5] = [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

/// The states the checker goes on from (a step out of the bounds is not taken).
fn successors(m: &ChronikModel, s: &State) -> Vec<State> {
    check::successors(m, s)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

fn renamed(s: &State, to: [NodeId; 3]) -> State {
    rewrite(s, &|n| to[usize::from(n)])
}

/// Where `to` is no symmetry at `s`, what differs.
fn asymmetry(m: &ChronikModel, s: &State, to: [NodeId; 3]) -> Option<String> {
    let twin = renamed(s, to);
    for p in m.properties() {
        if (p.condition)(m, s) != (p.condition)(m, &twin) {
            return Some(format!("{to:?} changes what \"{}\" says", p.name));
        }
    }
    let twin_steps = check::successors(m, &twin);
    let found: HashSet<&State> = twin_steps.iter().map(|(_, t)| t).collect();
    let renamed_steps: Vec<(Action, State)> = check::successors(m, s)
        .into_iter()
        .map(|(a, t)| (a, renamed(&t, to)))
        .collect();
    if let Some((a, _)) = renamed_steps.iter().find(|(_, t)| !found.contains(t)) {
        return Some(format!(
            "{to:?}: the renamed state has no twin of {a}'s step"
        ));
    }
    let expected: HashSet<&State> = renamed_steps.iter().map(|(_, t)| t).collect();
    let extra = twin_steps.iter().find(|(_, t)| !expected.contains(t));
    extra.map(|(a, _)| format!("{to:?}: the renamed state's {a} has no twin"))
}

/// Calls `visit` on every state of seeded random walks until it answers `false`.
/// Every other walk crashes no node in its first `CALM` steps: drawn uniformly, the
/// crashes come early, before any log is long enough to be damaged.
fn walk(m: &ChronikModel, seed: u64, mut visit: impl FnMut(usize, usize, &State) -> bool) {
    const CALM: usize = 40;
    let mut rng = Rng::seeded(seed);
    for walk in 0..WALKS {
        let mut s = m.init_state();
        for step in 0..STEPS {
            if !visit(walk, step, &s) {
                return;
            }
            let mut next = successors(m, &s);
            if walk % 2 == 1 && step < CALM && next.iter().any(|t| t.ghost.crashes == 0) {
                next.retain(|t| t.ghost.crashes == 0);
            }
            if next.is_empty() {
                break;
            }
            s = next[rng.below(next.len())].clone();
        }
    }
}

/// The first state, along seeded random walks, where one of `renamings` is no symmetry.
fn first_asymmetry(m: &ChronikModel, renamings: &[[NodeId; 3]], seed: u64) -> Option<String> {
    let mut found = None;
    walk(m, seed, |walk, step, s| {
        found = renamings
            .iter()
            .find_map(|to| asymmetry(m, s, *to))
            .map(|why| format!("walk {walk}, step {step}: {why}\n{s:?}"));
        found.is_none()
    });
    found
}

/// Models with every kind of step the symmetric checks fold: start-up from power-on,
/// elections over two terms, two crashes, a client's write and snapshots; and, started
/// (walks from there reach longer logs) without snapshots (which compact what damage
/// would hit), a damaged Raft log.
fn rich(produce: u8) -> [ChronikModel; 2] {
    let mut from_power_on = metadata(3, 2, 2, 1, produce);
    from_power_on.snapshot_interval = 2;
    let mut booted = metadata(3, 2, 2, 1, produce);
    booted.booted = true;
    booted.max_damage = 1;
    [from_power_on, booted]
}

#[test]
fn without_partition_data_every_renaming_of_three_nodes_is_a_symmetry() {
    let mut seen = [false; 5];
    for m in rich(0) {
        assert_eq!(first_asymmetry(&m, &RENAMINGS, 7), None);
        seen = reached(&m, seen);
    }
    assert_eq!(seen, [true; 5], "term 2, restart, write, damage, snapshot");
}

/// The walks reach what the claim is about: a second term, a crash and a restart, a
/// client's write, a damaged log and a snapshot.
fn reached(m: &ChronikModel, mut seen: [bool; 5]) -> [bool; 5] {
    walk(m, 7, |_, _, s| {
        let g = &s.ghost;
        for (i, reached) in [
            s.nodes.iter().any(|n| n.term == 2),
            g.restarted,
            g.proposals > 0,
            g.damages > 0,
            s.nodes.iter().any(|n| n.snap_idx > 0),
        ]
        .into_iter()
        .enumerate()
        {
            seen[i] |= reached;
        }
        true
    });
    seen
}

#[test]
fn with_partition_data_swapping_the_two_followers_is_a_symmetry() {
    for m in rich(1) {
        assert_eq!(first_asymmetry(&m, &[[0, 2, 1]], 7), None);
    }
}

/// The check has teeth: node 0 leads the partition, so once something is produced
/// renaming it is no symmetry, and the walks find a state that shows it.
#[test]
fn with_partition_data_renaming_the_partition_leader_is_no_symmetry() {
    let [m, _] = rich(1);
    let found = first_asymmetry(&m, &[[1, 0, 2]], 7);
    assert!(
        found.as_ref().is_some_and(|why| why.contains("Produce")),
        "node 0 renamed: {found:?}"
    );
}

/// Every member of a class picks the same representative, so the checker visits the
/// class once.
#[test]
fn every_renaming_of_a_state_has_the_same_representative() {
    let [m, _] = rich(0);
    walk(&m, 11, |_, _, s| {
        let one = representative_without_partition_data(s);
        let swapped = representative(s);
        for to in RENAMINGS {
            let twin = renamed(s, to);
            assert_eq!(representative_without_partition_data(&twin), one);
            if to == [0, 2, 1] {
                assert_eq!(representative(&twin), swapped);
            }
        }
        true
    });
}
