//! The group model in CI (spec/groups.md): with every rule on, every property holds over
//! every interleaving at the bounds below, running the real coordinator core; with each
//! bug switch, the property of the rule it breaks has a counterexample. Bounds, state
//! counts and times: model/README.md.

use chronik_model::check::{assert_all_hold, format_path, run, shortest};
use chronik_model::ci;
use chronik_model::groups::{names, GroupModel, GroupModelBug};

/// As the CLI (model/src/main.rs): a fifth off each check's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[test]
fn two_consumers_every_group_property_holds() {
    let test = "two_consumers_every_group_property_holds";
    let (m, how) = ci::group_check(test);
    let o = run(m, &how);
    assert_all_hold("2 consumers", &o);
    ci::assert_documented(include_str!("../README.md"), test, o.unique);
}

fn counterexample(bug: GroupModelBug, property: &'static str, max_actions: usize) {
    let mut m = GroupModel::new(2);
    m.bug = Some(bug);
    let path = shortest(&m, property, max_actions)
        .unwrap_or_else(|| panic!("{}: no counterexample for {property}", bug.name()));
    eprintln!(
        "{} breaks {property}:\n{}",
        bug.name(),
        format_path(&m, &path)
    );
}

#[test]
fn commit_refused_while_preparing_delivers_records_twice() {
    counterexample(GroupModelBug::CommitRefusedWhilePreparing, names::ONCE, 12);
}

#[test]
fn commits_from_non_members_move_committed_offsets_back() {
    counterexample(GroupModelBug::CommitsFromNonMembers, names::FORWARD, 14);
}

#[test]
fn forgetting_membership_on_restart_delivers_records_twice() {
    counterexample(GroupModelBug::ForgetMembershipOnRestart, names::ONCE, 12);
}
