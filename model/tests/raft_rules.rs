//! C-10's Raft rules (`chronik_model::raft_rules`), which check every step of the
//! simulator's real nodes and the fault run's brokers, against the metadata model's
//! own paths: every path of the correct model passes them (they are no stricter than
//! the model), and the model's durability bugs fail them (they are not blind).

use chronik_model::check::{random_successor, Rng};
use chronik_model::ci::metadata;
use chronik_model::model::{Bug, ChronikModel};
use chronik_model::raft_rules::{of_model, RaftHistory};
use stateright::Model;

/// What the walks showed: how many states they fed the rules, and the first walk
/// the rules refused (its actions and the violations).
struct Walked {
    states: usize,
    changes: u64,
    refused: Option<(Vec<String>, Vec<String>)>,
}

/// `walks` seeded random walks of up to `max_depth` actions, each through a fresh
/// checker, until one is refused.
fn walk(model: &ChronikModel, walks: usize, seed: u64, max_depth: usize) -> Walked {
    let mut rng = Rng::seeded(seed);
    let mut walked = Walked {
        states: 0,
        changes: 0,
        refused: None,
    };
    let init = model.init_states().remove(0);
    for _ in 0..walks {
        let mut history = RaftHistory::new(model.nodes);
        let mut state = init.clone();
        let mut taken = Vec::new();
        of_model::observe(&mut history, &state);
        while taken.len() < max_depth && history.violations.is_empty() {
            let Some((action, after)) = random_successor(model, &state, &mut rng) else {
                break;
            };
            taken.push(format!("{action:?}"));
            state = after;
            walked.states += 1;
            of_model::observe(&mut history, &state);
        }
        walked.changes += history.changes;
        if !history.violations.is_empty() {
            walked.refused = Some((taken, history.violations));
            return walked;
        }
    }
    walked
}

fn assert_passes(name: &str, model: &ChronikModel, walks: usize, seed: u64) {
    let walked = walk(model, walks, seed, 400);
    if let Some((path, violations)) = &walked.refused {
        panic!(
            "{name}: the Raft rules refuse a model path:\n  {}\nafter:\n  {}",
            violations.join("\n  "),
            path.join("\n  ")
        );
    }
    eprintln!(
        "{name}: {walks} walks, {} states, {} Raft changes checked",
        walked.states, walked.changes
    );
    assert!(
        walked.changes > walks as u64 * 10,
        "{name}: too few Raft changes"
    );
}

#[test]
fn c_10_every_path_of_the_metadata_model_follows_the_raft_rules() {
    assert_passes("2 nodes", &metadata(2, 3, 2, 1, 1), 5_000, 1);
    assert_passes("3 nodes", &metadata(3, 3, 2, 1, 1), 3_000, 2);
    let mut snapshots = metadata(3, 2, 1, 1, 1);
    snapshots.snapshot_interval = 2;
    assert_passes("3 nodes with snapshots", &snapshots, 2_000, 3);
    let mut damaged = metadata(3, 2, 1, 0, 0);
    damaged.max_damage = 1;
    assert_passes("3 nodes with a damaged Raft log", &damaged, 2_000, 4);
}

/// The first walk (of `walks`) the rules refuse under `bug`, and the violation.
fn refused(bug: Bug, model: ChronikModel, walks: usize) -> String {
    let walked = walk(&model.with_bug(bug), walks, 5, 400);
    let (_, violations) = walked
        .refused
        .unwrap_or_else(|| panic!("{bug:?}: no walk of {walks} broke the Raft rules"));
    eprintln!("{bug:?}: {}", violations[0]);
    violations[0].clone()
}

#[test]
fn c_10_the_raft_rules_refuse_the_models_durability_bugs() {
    let sent_early = refused(Bug::SendBeforeFsync, metadata(2, 2, 1, 0, 0), 2_000);
    assert!(
        sent_early.contains("R-PERSIST-1") || sent_early.contains("I-1"),
        "{sent_early}"
    );
    let advanced_early = refused(Bug::AdvanceBeforePersist, metadata(2, 2, 1, 0, 0), 2_000);
    assert!(advanced_early.contains("R-PERSIST"), "{advanced_early}");
}
