//! C-11, the oracle on the cluster (spec/conformance.md): metadata model paths of two
//! and three nodes replayed on as many real metadata nodes (raft-rs), message by
//! message, through the oracle's network; the seed classes that need a second node
//! replayed from the model checker's own counterexamples.

use chronik_conformance::{random_walks, replay_path, Divergence, Injected, Stats};
use chronik_model::check::shortest;
use chronik_model::ci::metadata;
use chronik_model::model::{Action, Bug};
use chronik_model::property_names as names;
use chronik_model::ChronikModel;

/// Start-up from power-on, crashes (torn writes among them), a metadata write at
/// any node (forwarded from a follower), a bad sector in a Raft log.
fn cluster(nodes: usize) -> ChronikModel {
    let mut m = ChronikModel::new(nodes);
    m.max_term = 3;
    m.max_crashes = 3;
    m.max_proposals = 2;
    m.max_produce = 0;
    m.max_damage = 1;
    m.raft_rs_flow_control = true;
    m
}

fn must_conform(result: Result<Stats, Box<Divergence>>) -> Stats {
    match result {
        Ok(stats) => stats,
        Err(d) => panic!("{d}"),
    }
}

/// Every walk ran to its end with every model message found among raft-rs's, and
/// the walks reached the cluster: peer messages, forwarded writes, registrations
/// of other nodes applied.
fn assert_reached(stats: &Stats, delivered: u64, cluster_paths: u64) {
    eprintln!("{stats:?}");
    assert!(stats.unmapped.is_empty(), "{stats:?}");
    assert!(stats.delivered >= delivered, "{stats:?}");
    assert!(stats.cluster_paths >= cluster_paths, "{stats:?}");
}

/// C-11 (R-START-*, R-PROPOSE-*, R-PERSIST-*, R-RECOVER-*, I-1..I-4): two nodes.
#[test]
fn c11_two_real_nodes_follow_the_model_message_by_message() {
    let stats = must_conform(random_walks(&cluster(2), 3_000, 150, 21, None));
    assert_reached(&stats, 15_000, 500);
}

/// C-11: three nodes, where a vote, a commit and a repair need a majority of two.
#[test]
fn c11_three_real_nodes_follow_the_model_message_by_message() {
    let stats = must_conform(random_walks(&cluster(3), 2_000, 150, 23, None));
    assert_reached(&stats, 30_000, 800);
}

/// C-11 (R-RECOVER-2): the leader snapshots its metadata and compacts its Raft log
/// every two entries while followers catch up from its entries.
#[test]
fn c11_compacted_raft_logs_conform_at_two_nodes() {
    let mut m = cluster(2);
    m.snapshot_interval = 2;
    let stats = must_conform(random_walks(&m, 2_000, 150, 29, None));
    assert_reached(&stats, 10_000, 300);
    assert!(stats.compacted >= 300, "{stats:?}");
}

/// C-11: a Raft WAL that acknowledges writes it never synced is reported at two and
/// at three nodes, at the step where the loss first shows.
#[test]
fn c11_a_raft_log_that_skips_its_fsync_is_reported_in_the_cluster() {
    for nodes in [2, 3] {
        let result = random_walks(
            &cluster(nodes),
            1_000,
            150,
            7,
            Some(Injected::SkipRaftFsync),
        );
        let Err(d) = result else {
            panic!("{nodes} nodes: skip-raft-fsync not reported");
        };
        let action = d.path[d.step.expect("after a step")].to_string();
        assert!(
            action.starts_with("Fsync") || action.starts_with("Crash"),
            "{d}"
        );
    }
}

/// C-11 (R-PERSIST-1, R-PERSIST-2): the model checker's shortest counterexamples of
/// the two seed classes that need a second node, replayed on the real nodes, which
/// do not follow them: raft-rs holds back a follower's answer until its Ready is
/// durable, and Chronik advances only after the fsync.
#[test]
fn c11_counterexamples_that_need_two_nodes_do_not_replay_on_raft_rs() {
    // Where each shows: a candidate's vote request delivered before its Ready's
    // write (its vote) is durable, which raft-rs had not released; an advance
    // before the fsync, which the real node refuses.
    for (bug, property, at, why) in [
        (
            Bug::SendBeforeFsync,
            names::PERSIST_1,
            "Deliver",
            "raft-rs sent no",
        ),
        (
            Bug::AdvanceBeforePersist,
            names::PERSIST_2,
            "Advance",
            "advanced before its writes were durable",
        ),
    ] {
        // The model checker's own bounds for these switches (model/tests), with
        // raft-rs's flow control, which the real nodes run.
        let mut m = metadata(2, 1, 0, 0, 0).with_bug(bug);
        m.raft_rs_flow_control = true;
        let path = shortest(&m, property, 40)
            .unwrap_or_else(|| panic!("{}: the model checker found no counterexample", bug.name()));
        let actions: Vec<Action> = path.into_actions();
        let Err(d) = replay_path(&m, &actions, None) else {
            panic!(
                "{}: the real nodes followed the bug's counterexample",
                bug.name()
            );
        };
        eprintln!("{}: {d}", bug.name());
        // The correct path agrees up to the step the bug changes.
        let step = d.step.expect("after a step");
        assert!(d.path[step].to_string().starts_with(at), "{d}");
        assert!(d.why.iter().any(|w| w.contains(why)), "{d}");
    }
}
