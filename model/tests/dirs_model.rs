//! The partition-directories model in CI (spec/recover.md R-RECOVER-7, R-RECOVER-8):
//! with every rule on, every property holds at the bounds of model/src/ci.rs, as a sole
//! voter and as a cluster member; each bug switch breaks the property it is checked
//! against, where it can show.

use chronik_model::check::{assert_all_hold, format_path, run, shortest};
use chronik_model::ci;
use chronik_model::dirs::{DirBug, DirModel};

fn holds(test: &str) {
    let (m, how) = ci::dirs_check(test);
    let o = run(m, &how);
    assert_all_hold(test, &o);
    ci::assert_documented(include_str!("../README.md"), test, o.unique);
}

#[test]
fn r_recover_7_a_sole_voters_directories_follow_its_metadata() {
    holds("r_recover_7_a_sole_voters_directories_follow_its_metadata");
}

#[test]
fn r_recover_8_a_cluster_members_directories_follow_its_metadata() {
    holds("r_recover_8_a_cluster_members_directories_follow_its_metadata");
}

fn counterexample(bug: DirBug, sole_voter: bool, max_actions: usize) {
    let m = DirModel::new(sole_voter).with_bug(bug);
    let property = bug.expected_property();
    let path = shortest(&m, property, max_actions)
        .unwrap_or_else(|| panic!("{}: no counterexample for {property}", bug.name()));
    eprintln!(
        "{} breaks {property}:\n{}",
        bug.name(),
        format_path(&m, &path)
    );
}

#[test]
fn every_switch_breaks_its_property_where_it_can_show() {
    for bug in DirBug::ALL {
        counterexample(bug, bug.shows_as_sole_voter(), 16);
    }
}

/// A sole voter registers in its start's first step, so the directories of deleted
/// topics are gone before `claim_dir` or a late stray removal could see them: the two
/// R-RECOVER-8 switches change nothing there (the checks are defence in depth).
#[test]
fn r_recover_8_switches_cannot_show_in_a_sole_voter() {
    for bug in DirBug::ALL.into_iter().filter(|b| !b.shows_as_sole_voter()) {
        let (_, how) = ci::dirs_check("r_recover_7_a_sole_voters_directories_follow_its_metadata");
        let o = run(DirModel::new(true).with_bug(bug), &how);
        assert!(o.violated.is_empty(), "{}: {:?}", bug.name(), o.violated);
    }
}
