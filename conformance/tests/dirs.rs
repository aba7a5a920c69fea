//! C-7 (spec/conformance.md): the directories model (R-RECOVER-7, R-RECOVER-8) as the
//! oracle of the real start-up check, metadata recovery and partition-directory code.

use chronik_conformance::dirs::{dirs_every_state, dirs_walks, replay_dirs_path, DirStats};
use chronik_core::replication::ReplicationBugs;
use chronik_model::check::shortest;
use chronik_model::dirs::{DirBug, DirModel};

fn walks(model: &DirModel, bugs: ReplicationBugs, n: usize, seed: u64) -> DirStats {
    let stats = dirs_walks(model, bugs, n, 60, seed).unwrap_or_else(|d| panic!("{d}"));
    eprintln!(
        "sole voter {}: {} walks, {} steps, refused {}, strays removed {}, deferred {}, {} action kinds",
        model.sole_voter,
        stats.walks,
        stats.steps,
        stats.refused,
        stats.strays_removed,
        stats.deferred,
        stats.kinds.len()
    );
    stats
}

#[test]
fn c7_a_sole_voters_directories_conform() {
    let stats = walks(&DirModel::new(true), ReplicationBugs::default(), 3_000, 7);
    assert!(
        stats.refused >= 50,
        "too few refused starts: {}",
        stats.refused
    );
    assert!(
        stats.strays_removed >= 50,
        "too few stray removals: {}",
        stats.strays_removed
    );
}

#[test]
fn c7_a_cluster_members_directories_conform() {
    let stats = walks(&DirModel::new(false), ReplicationBugs::default(), 3_000, 8);
    assert!(
        stats.refused >= 50,
        "too few refused starts: {}",
        stats.refused
    );
    assert!(
        stats.strays_removed >= 50,
        "too few stray removals: {}",
        stats.strays_removed
    );
    assert!(
        stats.deferred >= 20,
        "too few deferred claims: {}",
        stats.deferred
    );
}

/// Every reachable state of a sole voter (the whole space CI checks), each reached
/// on the real code and compared there.
#[test]
fn c7_every_state_of_a_sole_voter_conforms() {
    let model = DirModel::new(true);
    let coverage = dirs_every_state(&model, ReplicationBugs::default(), None)
        .unwrap_or_else(|d| panic!("{d}"));
    eprintln!("sole voter: {coverage:?}");
    assert_eq!(
        coverage.states, 1_213,
        "the space CI checks (model/README.md)"
    );
}

/// Every reachable state of a cluster member (the whole space CI checks), each
/// reached on the real code and compared there.
#[test]
fn c7_every_state_of_a_cluster_member_conforms() {
    let model = DirModel::new(false);
    let coverage = dirs_every_state(&model, ReplicationBugs::default(), None)
        .unwrap_or_else(|d| panic!("{d}"));
    eprintln!("cluster member: {coverage:?}");
    assert_eq!(
        coverage.states, 328_915,
        "the space CI checks (model/README.md)"
    );
}

/// The real code for each switch's injected fault, where the code has one.
fn injected(bug: DirBug) -> Option<ReplicationBugs> {
    let mut bugs = ReplicationBugs::default();
    match bug {
        DirBug::StartWithoutMetadata => return None,
        DirBug::AdoptForeignDir => bugs.adopt_foreign_dirs = true,
        DirBug::StraysBeforeRegistered => bugs.strays_before_registered = true,
        DirBug::ClaimFromStaleView => bugs.claim_from_stale_view = true,
    }
    Some(bugs)
}

/// Each switch's shortest counterexample diverges on the real code (which has none of
/// the four bugs), and, where the real code has the same fault to inject, the faulty
/// code follows the faulty model along it: the switch and the fault are one bug.
#[test]
fn c7_each_switchs_counterexample_diverges_and_its_injected_fault_agrees() {
    for bug in DirBug::ALL {
        let model = DirModel::new(bug.shows_as_sole_voter()).with_bug(bug);
        let path = shortest(&model, bug.expected_property(), 16)
            .unwrap_or_else(|| panic!("{}: no counterexample", bug.name()))
            .into_actions();
        let correct = replay_dirs_path(&model, ReplicationBugs::default(), &path);
        assert!(
            correct.is_err(),
            "{}: the real code followed the bug",
            bug.name()
        );
        if let Some(faults) = injected(bug) {
            if let Err(d) = replay_dirs_path(&model, faults, &path) {
                panic!("{}: the injected fault is another bug:\n{d}", bug.name());
            }
        }
    }
}

/// The correct model finds each injected fault in random walks.
#[test]
fn c7_injected_faults_are_reported() {
    for bug in DirBug::ALL {
        let Some(faults) = injected(bug) else {
            continue;
        };
        let model = DirModel::new(false);
        let found = dirs_walks(&model, faults, 3_000, 60, 11);
        assert!(
            found.is_err(),
            "{}: 3,000 walks did not notice it",
            bug.name()
        );
    }
}
