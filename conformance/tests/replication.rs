//! The replication oracle in CI (spec/conformance.md, C-5 and C-6): the real replication
//! code of three brokers and their controller follows the replication model
//! (R-REPL-1..3) step by step along random walks and along the model's own example
//! paths, and follows none of the counterexamples the model finds with a bug switched
//! on.

use chronik_conformance::replication::{
    replay_replication_path, replay_replication_path_with_faults, replication_walks,
    ReplDivergence, ReplStats,
};
use chronik_core::replication::ReplicationBugs;
use chronik_model::check::{counterexample_search, run, Run};
use chronik_model::replication::{names, RAction, ReplBug, ReplicationModel};

fn must_conform(result: Result<ReplStats, Box<ReplDivergence>>) -> ReplStats {
    match result {
        Ok(stats) => stats,
        Err(d) => panic!("{d}"),
    }
}

/// `walks` random walks of up to 80 steps from `seed` conform, every one runs, and
/// each action kind in `kinds` is taken along them.
fn walks_conform_taking(
    model: &ReplicationModel,
    walks: usize,
    seed: u64,
    kinds: &[&str],
) -> ReplStats {
    let stats = must_conform(replication_walks(model, walks, 80, seed));
    eprintln!("{stats:?}");
    assert_eq!(stats.walks, walks);
    for kind in kinds {
        assert!(stats.kinds.contains(*kind), "no {kind} taken: {stats:?}");
    }
    stats
}

/// C-5: random walks with produces, crashes, fences and ISR shrinks: after every step
/// the real controller, leader and followers hold what the model's do (logs, durable
/// ends, high watermarks, epochs, ISR, acknowledgements, reads).
#[test]
fn c5_replication_walks_conform() {
    let model = ReplicationModel::bounded(3, 1, 2, 1);
    let stats = walks_conform_taking(&model, 5_000, 5, &[]);
    assert!(
        stats.kinds.len() >= 15,
        "every kind of action is taken: {stats:?}"
    );
}

/// C-5: more crashes and shrinks, fewer produces: restarts, recovery from the
/// checkpoint, re-registration and ISR changes dominate.
#[test]
fn c5_replication_walks_with_two_crashes_conform() {
    let model = ReplicationModel::bounded(2, 2, 2, 2);
    walks_conform_taking(&model, 3_000, 13, &[]);
}

/// C-5 under the interval fsync policy (R-REPL-5): leaders acknowledge what they
/// wrote before syncing it, crashes cut it, and a restarted broker's registration
/// takes it out of the ISR and hands its leadership over; the real state machine,
/// logs and replication steps do what the model does at every step.
#[test]
fn c5_replication_walks_under_the_interval_policy_conform() {
    let model = ReplicationModel::bounded(2, 2, 1, 1).with_acks_before_fsync();
    walks_conform_taking(&model, 3_000, 19, &["Crash", "Restart", "Rejoin", "Fsync"]);
}

/// C-5: idempotent retries (the same producer and sequence again, also at a new
/// leader), controller failovers that lose uncommitted ISR changes and registrations,
/// and a failed fsync that cuts a leader's unsynced records or leaves a follower's
/// appended answer unsynced and its log offline: the real producer state dedupes
/// exactly where the model does, a retry's answer waits for its original, a produce
/// cut by the failed sync is never acknowledged, and the offline follower cuts what
/// the sync covered before it reports, appends or truncates (R-REPL-3, R-LOG-9, I-6;
/// the last found a real truncation that kept the unsynced records as synced).
#[test]
fn c5_replication_walks_with_retries_and_controller_failovers_conform() {
    let model = ReplicationModel::bounded(2, 1, 1, 1)
        .with_retries(2)
        .with_failovers(1)
        .with_sync_failures(1);
    walks_conform_taking(
        &model,
        3_000,
        17,
        &[
            "Retry",
            "ControllerFailover",
            "Rejoin",
            "FsyncFail",
            "FetchResponseSyncFails",
            "Resync",
        ],
    );
}

/// C-5 with full disks (R-LOG-9, R-REPL-1): a full leader takes no produce, a full
/// follower's disk has room for only part of a fetch answer, a full broker writes no
/// checkpoint, and space returns; the real replica fetcher appends exactly the part
/// the model does, syncs it although the next append failed, and reports it.
#[test]
fn c5_replication_walks_with_full_disks_conform() {
    let model = ReplicationModel::bounded(3, 1, 1, 1).with_full_disks(2);
    walks_conform_taking(
        &model,
        3_000,
        23,
        &["DiskFull", "DiskFreed", "FetchResponseCut", "Crash"],
    );
}

/// C-5 with DeleteRecords (R-WIRE-5): a leader moves its log start to its high
/// watermark and answers once every live replica's log start is there (the real
/// `delete_records` and `deletion_outcome`); followers delete from the log start each
/// fetch answer carries and report theirs; a follower whose log ends below its
/// leader's start is refused OFFSET_OUT_OF_RANGE and starts afresh there
/// (`fetch_refused`); consumers read from the log start; a restart keeps the start
/// the checkpoint recorded. Also under the interval policy and with full disks.
#[test]
fn c5_replication_walks_with_deletions_conform() {
    for (model, seed) in [
        (ReplicationModel::bounded(3, 1, 2, 2).with_deletes(2), 37),
        (
            ReplicationModel::bounded(3, 2, 1, 1)
                .with_deletes(2)
                .with_acks_before_fsync(),
            41,
        ),
        (
            ReplicationModel::bounded(3, 1, 1, 1)
                .with_deletes(2)
                .with_full_disks(1),
            43,
        ),
    ] {
        walks_conform_taking(
            &model,
            2_000,
            seed,
            &[
                "DeleteRecords",
                "DeletionAcknowledged",
                "StartedAfresh",
                "Consume",
            ],
        );
    }
}

/// C-5 with torn crashes (R-REPL-4, R-LOG-13): a crash leaves one byte of the
/// unsynced append in the partition log, the real recovery cuts the torn frame and
/// marks the cut, the restart's registration names the copy short, and the real
/// repair takes it out of the ISR, cuts nothing more and lets it fetch back in, where
/// and as the model does; under both fsync policies.
#[test]
fn c5_replication_walks_with_torn_crashes_conform() {
    for (model, seed) in [
        (
            ReplicationModel::bounded(2, 2, 1, 1).with_torn_crashes(),
            29,
        ),
        (
            ReplicationModel::bounded(2, 2, 1, 1)
                .with_torn_crashes()
                .with_acks_before_fsync(),
            31,
        ),
    ] {
        walks_conform_taking(
            &model,
            2_000,
            seed,
            &["CrashTorn", "CrashKeeping", "ProposeRepair", "CutDamage"],
        );
    }
}

/// C-5: the model's examples (an acknowledged record read after a failover, a
/// returning replica truncated to its new leader, a follower let back into the ISR)
/// happen on the real code along the same paths.
#[test]
fn c5_model_examples_replay_on_the_real_code() {
    for (example, model) in [
        (names::EX_FAILOVER, ReplicationModel::bounded(1, 0, 1, 0)),
        (names::EX_TRUNCATED, ReplicationModel::bounded(2, 0, 1, 0)),
        (names::EX_EXPANDED, ReplicationModel::bounded(1, 0, 1, 0)),
        (
            names::EX_CUT_SHORT,
            ReplicationModel::bounded(2, 0, 0, 0).with_full_disks(1),
        ),
        (
            names::EX_TORN_REPAIRED,
            ReplicationModel::bounded(1, 1, 0, 0).with_torn_crashes(),
        ),
    ] {
        let outcome = run(model.clone(), &Run::bfs_until(example));
        let path = outcome
            .discoveries
            .get(example)
            .unwrap_or_else(|| panic!("the model found no example of {example}"))
            .clone()
            .into_actions();
        let stats = must_conform(replay_replication_path(&model, &path));
        assert_eq!(
            stats.steps,
            path.len(),
            "{example}: the whole path replayed"
        );
        eprintln!("{example}: {} steps replayed", path.len());
    }
}

/// The model the switch's search ran and the counterexample it found to the rule the
/// switch breaks.
fn switch_counterexample(bug: ReplBug) -> (ReplicationModel, Vec<RAction>) {
    let expected = bug.expected_property();
    let (model, search) = counterexample_search(bug);
    let outcome = run(model, &search);
    let path = outcome
        .discoveries
        .get(expected)
        .unwrap_or_else(|| panic!("{}: no counterexample for {expected}", bug.name()))
        .clone()
        .into_actions();
    (outcome.model.clone(), path)
}

/// C-6: the oracle has teeth, and the real code has none of the bugs: every
/// counterexample the model finds with a bug switched on diverges from the real code
/// when replayed, before or at the step that breaks the rule.
///
/// The stale epoch answer is left out: its path has answers in flight, which this
/// harness does not drive (the real guard is checked by
/// `r_repl_3_a_second_answer_for_the_followed_epoch_cuts_nothing` and the simulator's
/// `c_9_a_late_second_epoch_answer_cuts_nothing`). The two damage switches are in
/// since the harness drives damage and the real repair.
#[test]
fn c6_model_bug_counterexamples_diverge_on_the_real_code() {
    let driven = ReplBug::ALL
        .into_iter()
        .filter(|b| *b != ReplBug::TruncateOnStaleAnswer);
    for bug in driven {
        let expected = bug.expected_property();
        let (model, path) = switch_counterexample(bug);
        match replay_replication_path(&model, &path) {
            Ok(_) => panic!(
                "{}: the real code followed the counterexample to {expected}:\n{path:#?}",
                bug.name()
            ),
            Err(d) => {
                // A windowed model's path starts where its path from creation ends.
                let steps = model.from_creation().1.len() + path.len();
                assert!(d.path.len() <= steps);
                eprintln!(
                    "{}: diverges at step {} of {steps}",
                    bug.name(),
                    d.path.len(),
                );
            }
        }
    }
}

/// The real code's injected fault for a model switch, where the code has the same one.
///
/// Three faults the real code can inject are not their switches' twins, and are left
/// out: along the switch's counterexample, `ack_after_deposed` does not acknowledge
/// the deposed leader's produce whose offset the next leader reused (the model's
/// switch does), `retry_acked_at_once` does not acknowledge the retry the switch
/// acknowledges, and `cut_damage_in_isr` lives in the repair's cut, which the real
/// repair step of the harness never reaches where the switch cuts. Each real fault is
/// found by the simulator (sim/tests/sim.rs), not by this oracle.
fn injected(bug: ReplBug) -> Option<ReplicationBugs> {
    let mut faults = ReplicationBugs::default();
    match bug {
        ReplBug::DeleteAckedAtOnce => faults.delete_acked_at_once = true,
        ReplBug::NoEpochGate => faults.append_late_fetch = true,
        ReplBug::HwBelowMinIsr => faults.hw_below_min_isr = true,
        ReplBug::ForgetTornTail => faults.forget_torn_tail = true,
        ReplBug::RegisterWithoutShortCopies => faults.register_without_short_copies = true,
        _ => return None,
    }
    Some(faults)
}

/// C-6 the other way round: where the real code has the fault a switch puts in the
/// model, the faulty real code follows the faulty model along the switch's
/// counterexample, step by step to the broken rule: the switch and the fault are one
/// bug, so what the model shows of the switch is what the fault does.
#[test]
fn c6_injected_faults_follow_their_switches_counterexamples() {
    for bug in ReplBug::ALL {
        let Some(faults) = injected(bug) else {
            continue;
        };
        let (model, path) = switch_counterexample(bug);
        match replay_replication_path_with_faults(&model, faults, &path) {
            Ok(stats) => eprintln!("{}: {} steps followed", bug.name(), stats.steps),
            Err(d) => panic!("{}: the injected fault is another bug:\n{d}", bug.name()),
        }
    }
}

/// C-5 with a damaged copy (R-REPL-4, R-RECOVER-5): a byte flips in a stored record of
/// one broker's copy, running or stopped; its scrub or its start finds it, and the real
/// repair (`Repairs::next_step` and its outcomes) proposes `RepairReplica` where the
/// model proposes, the controller hands leadership over and takes the copy out of the
/// ISR as the model's does, the copy cuts below the damage only then and fetches the
/// records back; a damaged leader takes no produce while another ISR member holds its
/// records, and nobody is served a damaged record.
///
/// Also with two crashes and two shrinks, with a retry and a controller failover, under
/// the interval policy with a disk filling up, and with damage to a last durable record,
/// which a restart's recovery cuts as a torn write unless the checkpoint's durable point
/// covers it (the model's `torn_last_frame`, R-REPL-4's open gap: the real recovery
/// does what the model says it does).
#[test]
fn c5_replication_walks_with_a_damaged_copy_conform() {
    for (model, seed) in [
        (ReplicationModel::bounded(2, 1, 1, 1).with_damage(1), 23),
        (ReplicationModel::bounded(2, 2, 1, 2).with_damage(1), 29),
        (
            ReplicationModel::bounded(2, 1, 1, 1)
                .with_damage(1)
                .with_retries(1)
                .with_failovers(1),
            31,
        ),
        (
            ReplicationModel::bounded(2, 1, 1, 1)
                .with_damage(1)
                .with_acks_before_fsync()
                .with_full_disks(1),
            37,
        ),
        (
            ReplicationModel::bounded(2, 2, 1, 1)
                .with_damage(1)
                .with_torn_last_frame(),
            41,
        ),
    ] {
        walks_conform_taking(
            &model,
            3_000,
            seed,
            &["Damage", "ProposeRepair", "CutDamage"],
        );
    }
}
