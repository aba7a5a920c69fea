//! The simulator in CI (spec/conformance.md, "The simulator"): hundreds of seeds of
//! three real metadata node cores under swarm faults hold every checked rule; a seed
//! always gives the same run; and each injected bug class is found within a small
//! seed budget, by the rule it breaks.

use chronik_core::consensus::DriverBugs;
use chronik_sim::{run, Options, Outcome};

fn report(outcome: &Outcome) -> String {
    format!(
        "seed {} ({:?}) broke:\n  {}\nlast events:\n  {}\nreproduce: cargo run --release -p chronik-sim -- --seed {}",
        outcome.seed,
        outcome.faults,
        outcome.violations.join("\n  "),
        outcome.trace.join("\n  "),
        outcome.seed
    )
}

fn assert_seeds_hold(first: u64, count: u64, nodes: usize) {
    for seed in first..first + count {
        let outcome = run(Options {
            nodes,
            ..Options::new(seed)
        });
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
        assert!(
            outcome.stats.acknowledged > 0,
            "seed {seed} acknowledged nothing: {:?}",
            outcome.stats
        );
    }
}

/// I-1, I-4, I-5, R-PERSIST-1, R-RECOVER-1, R-RECOVER-2, R-START-3, R-PROPOSE-2 on
/// three nodes, 300 seeds (seed 12 of this set first found a follower stalled for
/// good by a lost snapshot message).
#[test]
fn three_nodes_hold_every_rule_over_300_seeds() {
    assert_seeds_hold(0, 300, 3);
}

#[test]
fn five_nodes_hold_every_rule_over_60_seeds() {
    assert_seeds_hold(10_000, 60, 5);
}

#[test]
fn a_seed_always_gives_the_same_run() {
    let first = run(Options::new(7));
    let again = run(Options::new(7));
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first.stats, again.stats);
    assert_eq!(first.trace, again.trace);
    assert_ne!(first.trace_hash, run(Options::new(8)).trace_hash);
}

/// The first seed (of `budget`) on which `bugs` break `rule`.
fn finds(bugs: DriverBugs, rule: &str, budget: u64) -> u64 {
    for seed in 0..budget {
        let outcome = run(Options {
            bugs,
            ..Options::new(seed)
        });
        if outcome.violations.iter().any(|v| v.contains(rule)) {
            return seed;
        }
    }
    panic!("{bugs:?}: no seed of {budget} broke {rule}");
}

#[test]
fn finds_an_acknowledgement_before_commit() {
    let bugs = DriverBugs {
        ack_before_commit: true,
        ..DriverBugs::default()
    };
    finds(bugs, "R-PERSIST-1", 20);
}

#[test]
fn finds_registration_deferred_until_this_node_leads() {
    let bugs = DriverBugs {
        register_only_as_leader: true,
        ..DriverBugs::default()
    };
    finds(bugs, "R-START-3", 20);
}

#[test]
fn finds_a_view_served_before_replay() {
    let bugs = DriverBugs {
        skip_replay: true,
        ..DriverBugs::default()
    };
    finds(bugs, "R-RECOVER-2", 50);
}

/// Advance before persist: the Raft log's fsync does nothing, so a crash forgets
/// votes and entries the node had already acted on.
#[test]
fn finds_raft_advancing_before_its_writes_are_durable() {
    let bugs = DriverBugs {
        skip_raft_fsync: true,
        ..DriverBugs::default()
    };
    finds(bugs, "I-1", 50);
    finds(bugs, "R-PERSIST-1 acknowledged topic", 100);
}
