//! The simulator in CI (spec/conformance.md, "The simulator"): hundreds of seeds of
//! three real node cores (metadata and partition replication, with idempotent acks=all
//! producers, and acks=1 ones beside them) under swarm faults hold every checked rule; a seed
//! always gives the same run; and each injected bug class is found within a small
//! seed budget, by the rule it breaks.

use chronik_core::consensus::DriverBugs;
use chronik_core::groups::GroupBug;
use chronik_core::replication::ReplicationBugs;
use chronik_sim::{run, Faults, GroupProtocol, Options, Outcome, Stats};

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

/// Every seed holds every rule; and the runs do work: a storm may leave a seed
/// with nothing acknowledged (20% loss, latency to 84 ms, a crash every 0.7 s and a
/// partition every second, on five nodes), but not one seed in ten, and the
/// producers' records are acknowledged and read.
fn assert_seeds_hold(first: u64, count: u64, nodes: usize) {
    let (mut idle, mut records, mut consumed, mut raft_changes) = (Vec::new(), 0, 0, 0);
    for seed in first..first + count {
        let outcome = run(Options {
            nodes,
            ..Options::new(seed)
        });
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
        if outcome.stats.acknowledged == 0 {
            idle.push((seed, outcome.faults.clone()));
        }
        records += outcome.stats.records_acknowledged;
        consumed += outcome.stats.records_consumed;
        raft_changes += outcome.stats.raft_changes_validated;
    }
    assert!(
        idle.len() as u64 <= count / 10,
        "seeds that acknowledged nothing: {idle:?}"
    );
    assert!(records >= count * 10, "only {records} records acknowledged");
    assert!(consumed >= count * 10, "only {consumed} records consumed");
    // C-10: every Raft step was checked, and there were many (near 900 a seed).
    assert!(
        raft_changes >= count * 500,
        "only {raft_changes} Raft state changes validated"
    );
}

/// I-1..I-5, R-PERSIST-1, R-RECOVER-1, R-RECOVER-2, R-START-3, R-PROPOSE-2 on
/// three nodes, 300 seeds, with every Raft step trace-validated (C-10) (seed 12 of this set first found a follower stalled for
/// good by a lost snapshot message).
#[test]
fn three_nodes_hold_every_rule_over_300_seeds() {
    assert_seeds_hold(0, 300, 3);
}

/// R-LOG-4 beside I-6: with an acks=1 idempotent producer per partition besides the
/// acks=all ones, every seed holds every rule (no acks=all record is lost, whatever
/// becomes of the acks=1 records beside them), and every acks=1 record acknowledged
/// in the leader epoch that still leads at the end is at its offset.
#[test]
fn r_log_4_acks_1_producers_beside_acks_all_hold_every_rule() {
    let mut checked = 0;
    for seed in 0..100 {
        let outcome = run(Options {
            leader_acks: true,
            ..Options::new(seed)
        });
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
        checked += outcome.stats.leader_acks_checked;
    }
    assert!(checked >= 100, "only {checked} acks=1 records checked");
}

/// R-PROPOSE-2 and R-WIRE-11 with the admin front door as the broker runs it (the
/// default): the drivers hold a client's write until a leader is known, and each
/// admin request is checked by the core's admin decisions before it is proposed.
/// Every seed holds every rule; writes asked of a node that knew no leader are
/// acknowledged (without the wait none is), and requests the broker would refuse are
/// refused.
#[test]
fn r_propose_2_admin_requests_admitted_as_the_broker_does_hold_every_rule() {
    let (mut waited, mut refused, mut unwaited) = (0, 0, 0);
    for seed in 0..60 {
        let outcome = run(Options::new(seed));
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
        waited += outcome.stats.leaderless_acknowledged;
        refused += outcome.stats.admin_refused;
        if seed < 10 {
            let answered_at_once = run(Options {
                await_leader: false,
                ..Options::new(seed)
            });
            unwaited += answered_at_once.stats.leaderless_acknowledged;
        }
    }
    assert!(waited >= 20, "only {waited} leaderless writes acknowledged");
    assert!(refused >= 20, "only {refused} admin requests refused");
    assert_eq!(unwaited, 0, "acknowledged without waiting");
    // Names storm seed 7 found the directories validator following a crash before
    // the crashed leader's synced commits were known: three held creations placed
    // when it was elected, committed and synced, and nobody reported them before it
    // died. A crash is now followed at the node's next start.
    for seed in 0..20 {
        let outcome = run(Options {
            faults: Some(Faults::names_storm()),
            ..Options::new(seed)
        });
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
    }
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

/// The first seed (of `budget`) whose run, with the options `with(seed)` gives,
/// breaks `rule`; the test fails if none does.
fn first_seed_breaking(rule: &str, budget: u64, with: impl Fn(u64) -> Options) -> u64 {
    let switched = with(0);
    let bugs = (switched.bugs, switched.replication_bugs, switched.group_bug);
    (0..budget)
        .find(|&seed| run(with(seed)).violations.iter().any(|v| v.contains(rule)))
        .unwrap_or_else(|| panic!("{bugs:?}: no seed of {budget} broke {rule}"))
}

/// The simulator as it ran before 2026-12-04, when the seeds and totals of the tests
/// that use it were found: its drivers answered a write that found no leader at
/// once, and its admin clients proposed without the handlers' checks. Under the
/// broker's configuration (the default since) those seeds no longer reach their bug
/// (spec/conformance.md, "The simulator").
fn as_found(seed: u64) -> Options {
    Options {
        await_leader: false,
        admin_admission: false,
        ..Options::new(seed)
    }
}

/// The first seed (of `budget`) on which `bugs` break `rule`.
fn finds(bugs: DriverBugs, rule: &str, budget: u64) -> u64 {
    first_seed_breaking(rule, budget, |seed| Options {
        bugs,
        ..Options::new(seed)
    })
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

/// Seed 001 (R-START-1): a start-up that awaits a leader before its consensus loop
/// runs. Every node of a cluster started cold waits for an election that only the
/// loops it holds back could hold: no leader after settling (I-5), and no broker
/// registered (R-START-3).
#[test]
fn finds_a_start_up_that_awaits_a_leader_before_its_loop_runs() {
    let bugs = DriverBugs {
        init_waits_election: true,
        ..DriverBugs::default()
    };
    finds(bugs, "I-5 after settling, leaders are []", 3);
    finds(bugs, "R-START-3", 3);
}

/// Seed 003 (R-PROPOSE-1), as raft-rs 0.7 behaves: a follower hands its client's
/// write to raft-rs, which forwards it as its own `MsgPropose`, and answers success
/// once `propose` returns Ok. A leader that no longer leads, or a lost message, drops
/// it unseen, so the settled cluster lacks writes its clients were told were done.
/// The test looks for that loss, not for the early answer (which the simulator also
/// reports, as R-PERSIST-1 "before its view shows it").
#[test]
fn finds_a_follower_proposing_through_raft_and_answering_at_once() {
    let bugs = DriverBugs {
        propose_on_follower: true,
        ..DriverBugs::default()
    };
    finds(bugs, "is lost", 5);
}

/// Advance before persist: the Raft log's fsync does nothing, so a crash forgets
/// votes and entries the node had already acted on: committed entries change (I-4;
/// two leaders in one term, I-1, shows up too but more rarely since the partition
/// traffic shares the seed's random draws) and acknowledged topics are lost.
#[test]
fn finds_raft_advancing_before_its_writes_are_durable() {
    let bugs = DriverBugs {
        skip_raft_fsync: true,
        ..DriverBugs::default()
    };
    finds(bugs, "I-4", 50);
    finds(bugs, "R-PERSIST-1 acknowledged", 100);
    // C-10 sees the step itself: a node came back without entries raft-rs had been
    // told were durable (first at seed 1), whatever came of it.
    finds(bugs, "of its persisted log", 5);
}

/// The retried batch acknowledged before replication (commit e9b9b57's bug): an
/// idempotent retry of a batch already written is answered at once, and the
/// record is lost when the leader then fails before its followers have it.
#[test]
fn finds_a_retry_acknowledged_before_it_is_replicated() {
    let replication_bugs = ReplicationBugs {
        retry_acked_at_once: true,
        ..ReplicationBugs::default()
    };
    first_seed_breaking("I-6", 100, |seed| Options {
        replication_bugs,
        ..Options::new(seed)
    });
}

/// A late fetch answer appended after a truncation (R-REPL-3): a paused leader,
/// replaced while paused, answers the fetches queued meanwhile; the follower appends
/// records of the deposed leader after truncating for its successor, and parts from
/// the new leader below the high watermark (R-REPL-1).
#[test]
fn finds_a_late_fetch_answer_appended_after_truncation() {
    let replication_bugs = ReplicationBugs {
        append_late_fetch: true,
        ..ReplicationBugs::default()
    };
    first_seed_breaking("R-REPL-1", 100, |seed| Options {
        replication_bugs,
        faults: Some(Faults::pause_storm()),
        ..Options::new(seed)
    });
}

/// An acknowledgement that ignores a change of leader epoch since the append
/// (`ReplicationBugs::ack_after_deposed`, the broker before the fault run's fix): a
/// leader whose produce waiter sleeps through its deposal, its truncation and its
/// election in a later epoch answers the batch its successor's records replaced.
/// The deposal storm stalls waiters for seconds while leaders come and go; in its
/// 30-second runs under the broker's configuration the switch broke I-6 in 5 of 200
/// seeds (54, 81, 109, 161, 174; as the simulator ran before 2026-12-04, 131, 141,
/// 147 and 169); command format 10 (one byte longer) moved the runs, and of the first
/// 175 it breaks 81 and 82. The test pins the first, and checks that the same seed
/// holds without the switch.
#[test]
fn finds_an_acknowledgement_after_the_leader_was_deposed() {
    let with = |ack_after_deposed| Options {
        replication_bugs: ReplicationBugs {
            ack_after_deposed,
            ..ReplicationBugs::default()
        },
        faults: Some(Faults::deposal_storm()),
        duration_ms: 30_000,
        ..Options::new(81)
    };
    let outcome = run(with(true));
    let found = outcome.violations.iter().any(|v| v.contains("I-6"));
    assert!(found, "the switch broke nothing: {:?}", outcome.violations);
    let fixed = run(with(false));
    assert!(fixed.violations.is_empty(), "{}", report(&fixed));
}

/// Storms of one fault each hold every rule: process pauses (a paused partition
/// leader is fenced and replaced while its requests and answers wait, then answers
/// them late), network partitions (a leader cut off from the controller is replaced
/// while it still reaches its followers and clients), and both with starved produce
/// waiters. Pause-storm seed 185 and starved seed 173 lost acknowledged records to a
/// stale OffsetForLeaderEpoch answer until R-REPL-3 refused it.
#[test]
fn pause_and_partition_storms_hold_every_rule() {
    let storms = [
        (Faults::pause_storm(), 200),
        (Faults::partition_storm(), 100),
        (Faults::starved_waiters(), 200),
    ];
    for (faults, seeds) in storms {
        storm_holds(faults, 0..seeds);
    }
}

/// The deposal storm (leaders deposed and elected again while their produce waiters
/// sleep) holds every rule in 30-second runs. Seed 181 is the checker's own false
/// alarm: a coordinator woke from a pause with an abandoned commit of 50 queued
/// behind the member's later commit of 52, decided both in that order and one step
/// applied both, so the history never held 52 and judged the OffsetFetch answering
/// 50 as losing an acknowledged commit (R-GROUP-2); a commit is now judged by how
/// its coordinator decided it.
#[test]
fn the_deposal_storm_holds_every_rule() {
    for seed in (0..30).chain([181]) {
        let outcome = run(Options {
            faults: Some(Faults::deposal_storm()),
            duration_ms: 30_000,
            ..Options::new(seed)
        });
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
    }
}

/// Runs `seeds` under `faults`, fails on any broken rule, and returns each run's
/// stats.
fn storm_holds(faults: Faults, seeds: impl IntoIterator<Item = u64>) -> Vec<Stats> {
    storm_holds_from(faults, seeds, Options::new)
}

/// `storm_holds` from `options` other than the default.
fn storm_holds_from(
    faults: Faults,
    seeds: impl IntoIterator<Item = u64>,
    options: fn(u64) -> Options,
) -> Vec<Stats> {
    seeds
        .into_iter()
        .map(|seed| {
            let outcome = run(Options {
                faults: Some(faults.clone()),
                ..options(seed)
            });
            assert!(outcome.violations.is_empty(), "{}", report(&outcome));
            outcome.stats
        })
        .collect()
}

fn total(stats: &[Stats], of: impl Fn(&Stats) -> u64) -> u64 {
    stats.iter().map(of).sum()
}

/// R-RECOVER-9: every crash damages one byte of the crashed node's Raft log, inside a
/// record that another follows, while no other node repairs; partitions make
/// followers lag. The node cuts its log at the damage, neither votes nor campaigns
/// until its registration of this start is applied, and every rule holds: no
/// committed entry changes (I-4), no acknowledged topic is lost, every repair ends
/// once the faults heal. Its first run found that raft-rs panics when a heartbeat
/// commits past the cut log (the leader's match predates the damage): a repairing
/// node takes no commit index from heartbeats, and its leader probes it afresh.
#[test]
fn damaged_raft_logs_are_repaired_from_the_peers_and_lose_nothing() {
    let stats = storm_holds(Faults::damage_storm(), 0..100);
    let damaged = total(&stats, |s| s.metadata_damaged);
    let repaired = total(&stats, |s| s.metadata_repaired);
    assert!(damaged >= 100, "only {damaged} Raft logs damaged");
    assert_eq!(repaired, damaged, "every damaged log is repaired");
}

/// Disks that fill up for a while, with crashes and partitions: a node whose Raft log
/// write fails stops and starts again once it can (as the broker exits on a failed
/// metadata node), a partition append that finds no room is refused
/// (KAFKA_STORAGE_ERROR) and cut back, and its producer's retry lands once there is
/// room (R-LOG-9); every rule holds and nothing acknowledged is lost.
#[test]
fn full_disks_stop_nodes_or_refuse_writes_and_lose_nothing() {
    let stats = storm_holds(Faults::full_disk_storm(), 0..100);
    let filled = total(&stats, |s| s.disks_filled);
    let acknowledged = total(&stats, |s| s.records_acknowledged);
    assert!(filled >= 500, "only {filled} disks filled");
    assert!(
        acknowledged >= 1_000,
        "only {acknowledged} records acknowledged"
    );
}

/// Every node's clock starts at its own value and runs up to 5% fast or slow, with
/// crashes and partitions: each node judges sessions, timeouts and elections on its
/// own clock only, and every rule holds.
#[test]
fn drifting_clocks_hold_every_rule() {
    storm_holds(Faults::drifting_clocks(), 0..100);
}

/// Crashes that each damage a batch of the crashed node's copy of a replicated
/// partition (one that another replica holds), with partitions: the copy leaves the
/// ISR (a leader hands leadership over) before it cuts below the damage and fetches
/// the records back, and a damaged leader takes no writes meanwhile (R-REPL-4). Seed
/// 323 is the run in which a damaged leader still took writes: its producer state
/// lacked the damaged batch, and a producer's retry of it was appended again.
#[test]
fn damaged_copies_are_repaired_from_their_replicas_and_lose_nothing() {
    let stats = storm_holds(Faults::damaged_copies(), (0..100).chain([323]));
    let damaged = total(&stats, |s| s.copies_damaged);
    let repaired = total(&stats, |s| s.copies_repaired);
    assert!(damaged >= 100, "only {damaged} copies damaged");
    assert_eq!(repaired, damaged, "every damaged copy is repaired");
}

/// The same storm with a damaged follower cutting below its damage at once, still in
/// the ISR, as recovery did before issue 12: it becomes leader without records the
/// high watermark counted on it for, and acknowledged records are lost (I-6).
#[test]
fn finds_a_damaged_follower_cutting_while_in_the_isr() {
    // Since a start's registration names its short copies, a copy whose damage its
    // recovery found leaves the ISR before it could cut: no seed of 400 breaks I-6
    // with this switch alone. The switch shows where the copy is still in the ISR
    // when it finds the damage, which the registration's naming switched off brings
    // back (in the broker: damage the scrub finds after the start).
    let replication_bugs = ReplicationBugs {
        cut_damage_in_isr: true,
        register_without_short_copies: true,
        ..ReplicationBugs::default()
    };
    first_seed_breaking("I-6", 60, |seed| Options {
        replication_bugs,
        faults: Some(Faults::damaged_copies()),
        ..Options::new(seed)
    });
}

/// R-REPL-4, a bad last frame: the damage hits a segment's last batch, which a
/// restart cuts as a torn write when it lies past the durable point the checkpoint
/// records. The cut is marked, the copy leaves the ISR (a leader hands over) and
/// fetches the records back: every damaged copy is repaired and nothing
/// acknowledged is lost.
#[test]
fn r_repl_4_bad_last_frames_are_repaired_and_lose_nothing() {
    // Seed 282: a marked follower whose leader was out of reach never proposed its
    // repair (the fetcher proposed it), and was elected when the leader was fenced.
    let stats = storm_holds(Faults::damaged_last_frames(), (0..100).chain([282]));
    let damaged = total(&stats, |s| s.copies_damaged);
    let repaired = total(&stats, |s| s.copies_repaired);
    let marked = total(&stats, |s| s.tails_marked);
    assert!(damaged >= 100, "only {damaged} copies damaged");
    assert!(marked >= 20, "only {marked} of {damaged} cut and marked");
    assert_eq!(repaired, damaged, "every damaged copy is repaired");
}

/// The same storm with the cut forgotten at once, as before the lost-tail mark: the
/// restarted copy stays counted in the ISR without the record it lost, leads again,
/// and its followers truncate an acknowledged record (I-6).
#[test]
fn finds_a_cut_tail_forgotten_at_a_restart() {
    let replication_bugs = ReplicationBugs {
        forget_torn_tail: true,
        ..ReplicationBugs::default()
    };
    first_seed_breaking("I-6", 100, |seed| Options {
        replication_bugs,
        faults: Some(Faults::damaged_last_frames()),
        ..Options::new(seed)
    });
}

/// R-REPL-5: under the interval fsync policy leaders acknowledge before syncing, and
/// crashes (every 700 ms, often back within the session timeout) cut what they had
/// not synced; each restarted broker leaves the ISR and hands its leaderships to a
/// follower that holds the records, so nothing acknowledged is lost.
#[test]
fn under_the_interval_policy_restarts_lose_no_acknowledged_record() {
    let stats = storm_holds(Faults::interval_fsync(), 0..60);
    let crashes = total(&stats, |s| s.crashes);
    assert!(crashes >= 300, "only {crashes} crashes");
}

/// C-9 under the interval policy (R-REPL-5, R-REPL-6): the run's brokers acknowledge
/// before they sync, and so does the model each step is checked against; crashes
/// that come back fast, torn unsynced tails that recovery marks (`CrashTorn`),
/// unclean registrations that hand leadership over. Until stop 50 the mapping ended
/// these traces at once. Seeds 0 to 14 run to the end; outside them the validator
/// still keeps a fence in place of a committed ISR change now and then
/// (spec/conformance.md C-9, known gaps).
#[test]
fn c_9_replication_traces_under_the_interval_policy_are_model_steps() {
    let (mut finished, mut steps) = (0, 0);
    for seed in 0..15 {
        let outcome = validated_run(seed, Faults::interval_fsync());
        finished += u64::from(outcome.stats.repl_trace_ended.is_none());
        steps += outcome.stats.repl_steps_validated;
    }
    assert_eq!(finished, 15, "only {finished} of 15 traces ran to the end");
    assert!(steps >= 60_000, "only {steps} steps validated");
}

/// R-RECOVER-4: crashes (torn writes too) and pauses while the clients run; then the
/// settled cluster loses power at once and starts again, with no write after it to
/// move anything on. Every record a consumer read is still below the leader's high
/// watermark and every acknowledged record is there (the final checks), at one node
/// (a single-replica topic) and at three.
#[test]
fn r_recover_4_a_cluster_power_cycled_after_its_clients_stopped_serves_what_it_served() {
    fn one_node(seed: u64) -> Options {
        Options {
            nodes: 1,
            ..Options::new(seed)
        }
    }
    for (options, nodes) in [(one_node as fn(u64) -> Options, 1), (Options::new, 3)] {
        let stats = storm_holds_from(Faults::power_cycle(), 0..60, options);
        let consumed = total(&stats, |s| s.records_consumed);
        let crashes = total(&stats, |s| s.crashes);
        assert!(
            consumed >= 60 * 10,
            "{nodes} nodes: only {consumed} records consumed"
        );
        assert!(
            crashes >= 60 * nodes,
            "{nodes} nodes: only {crashes} crashes"
        );
    }
}

/// R-REPL-6: the order a longer sweep found (seed 50210): a leader acknowledges
/// records with ISR {1, 2} before syncing them and loses them in a crash; the
/// follower that synced them crashes before the leader's unclean registration can hand
/// over, and is fenced, leaving the ISR below min.insync.replicas; the follower stays
/// eligible, so the restarted leader does not lead alone on its shorter log, and the
/// follower's return brings the records back. It lost offsets 62 to 64 of p0 before.
#[test]
fn r_repl_6_a_fenced_follower_holding_what_the_leader_lost_stays_eligible() {
    storm_holds(Faults::interval_fsync(), [50210]);
}

/// R-REPL-3: a restarted broker follows partitions only once its registration of
/// this start is applied. Swarm seed 109739 (1 of 10,000 seeds): node 2 led p0 in
/// epoch 1 and crashed with a damaged Raft log, was cut back to an older view
/// (leader 1, epoch 0) and fetched from node 1, which had been deposed while cut
/// off; node 1 counted that fetch, whose offset covered node 2's own epoch-1
/// records, and acknowledged another value at offset 19 (I-6). With
/// `follow_before_registered` the loss comes back.
#[test]
fn a_restarted_broker_follows_no_older_metadata_than_its_registration() {
    let seed = 109_739;
    let outcome = run(as_found(seed));
    assert!(outcome.violations.is_empty(), "{}", report(&outcome));
    let replication_bugs = ReplicationBugs {
        follow_before_registered: true,
        ..ReplicationBugs::default()
    };
    let broken = run(Options {
        replication_bugs,
        ..as_found(seed)
    });
    assert!(
        broken.violations.iter().any(|v| v.contains("I-6")),
        "{}",
        report(&broken)
    );
}

/// A high watermark that advances while the ISR is below min.insync.replicas
/// (`hw_below_min_isr`, before R-REPL-6): an eligible replica elected later lacks
/// records consumers read, and those offsets take other values (swarm seed 227, 1 of
/// the first 400 under the broker's configuration; seed 133 `as_found`; none of 300
/// interval-storm seeds).
#[test]
fn finds_a_high_watermark_advancing_below_the_minimum() {
    let replication_bugs = ReplicationBugs {
        hw_below_min_isr: true,
        ..ReplicationBugs::default()
    };
    first_seed_breaking("which the leader no longer holds", 240, |seed| Options {
        replication_bugs,
        ..Options::new(seed)
    });
}

/// The same storm with registrations that do not say the broker acknowledges before
/// fsync, as before R-REPL-5: a restarted leader keeps leading with the shorter log
/// its crash left, its followers truncate to it, and acknowledged records are lost
/// (I-6; 163 of 200 seeds).
#[test]
fn finds_a_restarted_leader_that_kept_leading_after_its_crash_cut_acknowledged_records() {
    let bugs = DriverBugs {
        unclean_restart_keeps_leading: true,
        ..DriverBugs::default()
    };
    first_seed_breaking("I-6", 20, |seed| Options {
        bugs,
        faults: Some(Faults::interval_fsync()),
        ..Options::new(seed)
    });
}

/// The same storm with the repairing node voting and campaigning (as if the damage
/// were a torn tail): it votes with a log that lost entries it acknowledged, elects a
/// leader without them, and committed entries change (first at seed 16); trace
/// validation (C-10) sees the vote counted at once.
#[test]
fn finds_a_damaged_node_voting_before_its_repair() {
    let bugs = DriverBugs {
        vote_while_repairing: true,
        ..DriverBugs::default()
    };
    first_seed_breaking("I-4", 60, |seed| Options {
        bugs,
        faults: Some(Faults::damage_storm()),
        ..Options::new(seed)
    });
    // C-10 sees the election itself: a leader counted a repairing node's vote, which
    // R-RECOVER-9 withholds (first at seed 0).
    first_seed_breaking("votes; a quorum is", 3, |seed| Options {
        bugs,
        faults: Some(Faults::damage_storm()),
        ..Options::new(seed)
    });
}

/// R-GROUP-10, R-GROUP-2, R-GROUP-1: a consumer group of three members under slow,
/// lossy links, pauses, partitions and crashes (the group storm) rebalances again and
/// again, and still no committed offset goes back, no OffsetFetch answers below an
/// acknowledged commit, and every record is read once the faults heal. The swarm
/// seeds that found the ways to move a committed offset back (932: a commit answered
/// "timed out" applied after the next generation's record; 470 and 637: a restarted
/// coordinator answering from its replayed view; 160 and 472: a coordinator cut off
/// from the metadata leader answering OffsetFetch from a view that lags; 644: a late
/// copy of a commit request) hold too, and so does 1196 (R-REPL-1: a follower whose
/// disk filled part way through a fetch answer reported the unsynced batch, which
/// was acknowledged and then lost when that follower was elected).
#[test]
fn a_consumer_group_commits_in_decision_order_through_the_group_storm() {
    // Measured: 440 generations with partitions assigned and 314 acknowledged commits
    // over these 100 seeds.
    let stats = storm_holds_from(Faults::group_storm(), 0..100, as_found);
    assert!(total(&stats, |s| s.group_generations) >= 300);
    assert!(total(&stats, |s| s.group_commits) >= 200);
    for seed in [160, 470, 472, 637, 644, 932, 1196] {
        let outcome = run(Options::new(seed));
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
    }
}

/// Full-disk storm seed 300541: a group record failed to store, a member left, and
/// the retry stored the old generation with the next one's members and no
/// assignments; the restarted coordinator resumed it as Stable and nobody owned
/// partition 0 (R-GROUP-1). A group mid-rebalance now has no record (R-GROUP-8).
#[test]
fn a_group_resumed_after_a_failed_store_owns_every_partition() {
    let outcome = run(Options {
        faults: Some(Faults::full_disk_storm()),
        ..Options::new(300_541)
    });
    assert!(outcome.violations.is_empty(), "{}", report(&outcome));
}

/// DeleteRecords of consumed records every 150 ms through crashes and partitions:
/// no deletion acknowledged is undone by a failover (R-WIRE-5), and nothing the
/// other checks see is lost beyond what was asked to be deleted.
#[test]
fn deleted_records_stay_deleted_through_the_trim_storm() {
    // Measured: 236 deletions acknowledged over these 60 seeds.
    let stats = storm_holds(Faults::trim_storm(), 0..60);
    assert!(total(&stats, |s| s.deletions_acknowledged) >= 150);
}

/// DeleteRecords answered once the leader deleted, before its followers did
/// (`ReplicationBugs::delete_acked_at_once`, the broker before this rule): a leader
/// crashed right after the answer leaves a successor that serves the records again.
/// The trim storm finds it in 7 of 200 seeds (first at seed 27).
#[test]
fn finds_deletions_acknowledged_before_the_followers_deleted() {
    let replication_bugs = ReplicationBugs {
        delete_acked_at_once: true,
        ..ReplicationBugs::default()
    };
    first_seed_breaking("R-WIRE-5", 100, |seed| Options {
        replication_bugs,
        faults: Some(Faults::trim_storm()),
        ..Options::new(seed)
    });
}

/// Commits and OffsetFetch's read barriers proposed without their fence
/// (`GroupBug::UnfencedCommits`): the swarm finds it rarely (3 of 3,000 seeds; the
/// group storm in none of 1,500). It was seed 73, where node 2 proposed a member's
/// commit of 64 and then a late commit of 62 for the same partition, which landed
/// after it (R-GROUP-10), and an OffsetFetch then answered 62 (R-GROUP-2). R-REPL-6
/// changed the runs: seeds 1379, 1454 and 2311 of the first 3,000 (1379: a commit
/// of 47 overtaken by one of 46, and an OffsetFetch answering 46). Under the broker's
/// configuration (writes wait for a leader, admin requests admitted as the handlers
/// do) it broke R-GROUP-10 first at seeds 32 and 74; with command format 10 (one
/// byte longer, which moves the runs) at 74 and 119 of the first 300. With the
/// fence, the same seed holds.
#[test]
fn finds_commits_applied_out_of_decision_order() {
    let seed = 74;
    let outcome = run(Options {
        group_bug: Some(GroupBug::UnfencedCommits),
        ..Options::new(seed)
    });
    let found = outcome.violations.iter().any(|v| v.contains("R-GROUP-10"));
    assert!(
        found,
        "unfenced commits broke nothing: {:?}",
        outcome.violations
    );
    assert!(run(Options::new(seed)).violations.is_empty());
}

/// R-RECOVER-8: a restarted node replays its metadata only to its durable commit
/// index, and had applied more before it stopped. Removing the directories of topics
/// that metadata lacks at start-up, as the broker did, removed those of live topics
/// created after that index (41 of 300 swarm seeds; single-replica topics lost their
/// records). Now they go once the metadata holds this start's registration.
#[test]
fn finds_directories_of_live_topics_removed_at_start() {
    let replication_bugs = ReplicationBugs {
        strays_before_registered: true,
        ..ReplicationBugs::default()
    };
    first_seed_breaking("R-RECOVER-8", 40, |seed| Options {
        replication_bugs,
        ..Options::new(seed)
    });
}

/// R-RECOVER-8 with names that come back: admin clients create topics again under
/// deleted topics' names (new topic ids, on the node that held the old one), a node
/// that learns a deletion of a topic it hosts dies before removing it now and then,
/// and no start or view removes a directory of a topic id the settled metadata still
/// has. Every hosted name's directory is trace-validated against the directories model
/// at each start, view and crash (`dir_traces.rs`): every step is one the model allows.
#[test]
fn topics_created_again_under_deleted_names_hold_every_rule() {
    let stats = storm_holds_from(Faults::names_storm(), 0..20, as_found);
    assert!(total(&stats, |s| s.crashes) >= 40, "too few crashes");
    assert!(
        total(&stats, |s| s.names_reused) >= 40,
        "too few names reused"
    );
    let validated = total(&stats, |s| s.dir_steps_validated);
    let traces = total(&stats, |s| s.dir_traces);
    let abandoned = total(&stats, |s| s.dir_traces_abandoned);
    assert!(validated >= 50_000, "{validated} directory steps validated");
    assert!(
        abandoned * 5 <= traces,
        "{abandoned} of {traces} directory traces abandoned"
    );
}

/// Trace validation catches each R-RECOVER-8 fault in the real code, and the seed bug
/// class "metadata not replayed", in runs whose other checks see no harm: the step the
/// model does not allow is rejected where it happens (the first two need a restart
/// whose durable commit lags across a deletion and a re-creation, which the names
/// storm's crashes before reconciling reach).
#[test]
fn trace_validation_finds_each_directory_fault() {
    let names = |replication_bugs: ReplicationBugs, bugs: DriverBugs| {
        move |seed| Options {
            faults: Some(Faults::names_storm()),
            replication_bugs,
            bugs,
            ..Options::new(seed)
        }
    };
    let none = DriverBugs::default();
    let r = ReplicationBugs::default;
    let faults = [
        (
            ReplicationBugs {
                claim_from_stale_view: true,
                ..r()
            },
            none,
            20,
        ),
        (
            ReplicationBugs {
                adopt_foreign_dirs: true,
                ..r()
            },
            none,
            20,
        ),
        (
            ReplicationBugs {
                strays_before_registered: true,
                ..r()
            },
            none,
            5,
        ),
        (
            r(),
            DriverBugs {
                skip_replay: true,
                ..none
            },
            5,
        ),
    ];
    for (replication_bugs, bugs, budget) in faults {
        first_seed_breaking(
            "R-RECOVER-8 trace validation",
            budget,
            names(replication_bugs, bugs),
        );
    }
}

fn kip848(seed: u64) -> Options {
    Options {
        group_protocol: GroupProtocol::Consumer,
        ..Options::new(seed)
    }
}

/// R-GROUP-9 through faults: the members speak ConsumerGroupHeartbeat (KIP-848),
/// the coordinator assigns, revokes before it reassigns, and stores each change
/// before it answers; members commit what they read before they report a
/// partition gone. Through the swarm and the group storm no stored record gives a
/// partition to two members (R-GROUP-9), a committed offset never goes back
/// (R-GROUP-10), an OffsetFetch answers every commit acknowledged before it
/// (R-GROUP-2), and once faults heal every record is read (R-GROUP-1).
#[test]
fn r_group_9_kip848_members_hold_every_rule_through_the_swarm_and_the_group_storm() {
    let mut stats = Vec::new();
    for seed in (0..60).chain(1000..1030) {
        let faults = (seed >= 1000).then(Faults::group_storm);
        let outcome = run(Options {
            faults,
            ..kip848(seed)
        });
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
        stats.push(outcome.stats);
    }
    // Measured: 271 epochs joined, 213 commits acknowledged over these 90 seeds.
    assert!(total(&stats, |s| s.group_generations) >= 180);
    assert!(total(&stats, |s| s.group_commits) >= 140);
}

/// A partition given to its new owner before its old owner reported it gone
/// (`GroupBug::AssignBeforeRevoked`): the stored record names both, and both
/// consume it (R-GROUP-9). Found in the first seeds.
#[test]
fn finds_a_partition_given_before_its_owner_gave_it_up() {
    first_seed_breaking("R-GROUP-9", 5, |seed| Options {
        group_bug: Some(GroupBug::AssignBeforeRevoked),
        ..kip848(seed)
    });
}

/// A broker that keeps the groups it no longer coordinates
/// (`GroupBug::KeepUncoordinatedGroups`, the broker before this rule): a deposed
/// coordinator's timers lapse its members, it proposes the record at every tick
/// and each is refused NOT_COORDINATOR, so the metadata never settles (I-5). The
/// KIP-848 group storm's seed 18 was the first found; the runs have changed since
/// (the replica fetcher's own-start answers, R-REPL-6), and 8 of the first 200 seeds
/// show it now (first 39), so the test looks for the first rather than naming one.
#[test]
fn finds_a_deposed_coordinator_proposing_its_groups_forever() {
    let with = |bug, seed| Options {
        group_bug: bug,
        faults: Some(Faults::group_storm()),
        ..kip848(seed)
    };
    let seed = first_seed_breaking("I-5", 120, |seed| {
        with(Some(GroupBug::KeepUncoordinatedGroups), seed)
    });
    let fixed = run(with(None, seed));
    assert!(fixed.violations.is_empty(), "{}", report(&fixed));
}

/// C-9: under pauses (leaders fenced and replaced, fetches retried and reordered),
/// every step of the workload's partition 0 is one the replication model allows.
#[test]
fn c_9_replication_traces_of_paused_runs_are_model_steps() {
    let (mut finished, mut steps) = (0, 0);
    for seed in 0..20 {
        let outcome = run(Options {
            faults: Some(Faults::pause_storm()),
            validate_replication: true,
            ..Options::new(seed)
        });
        assert!(outcome.violations.is_empty(), "{}", report(&outcome));
        finished += u64::from(outcome.stats.repl_trace_ended.is_none());
        steps += outcome.stats.repl_steps_validated;
    }
    assert!(
        finished >= 14,
        "only {finished} of 20 traces ran to the end"
    );
    assert!(steps >= 80_000, "only {steps} steps validated");
}

/// A run whose partition 0 is validated against the replication model (C-9), which
/// must break no rule.
fn validated_run(seed: u64, faults: Faults) -> Outcome {
    validated(Options::new(seed), faults)
}

fn validated(options: Options, faults: Faults) -> Outcome {
    validated_under(options, Some(faults))
}

/// As `validated`; `None` runs the seed's own swarm mix.
fn validated_under(options: Options, faults: Option<Faults>) -> Outcome {
    let outcome = run(Options {
        faults,
        validate_replication: true,
        ..options
    });
    assert!(outcome.violations.is_empty(), "{}", report(&outcome));
    outcome
}

/// A swarm seed's replication trace, checked to the end of the run in more than
/// `steps` steps.
fn swarm_traced_to_the_end(seed: u64, steps: u64) -> Outcome {
    let outcome = validated_under(Options::new(seed), None);
    assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
    assert!(
        outcome.stats.repl_steps_validated > steps,
        "{}",
        report(&outcome)
    );
    outcome
}

/// C-9 through lost packets and crashes: the network reports each Fetch and each
/// answer with records it drops, a crashed broker shows that it is down and then
/// what it recovers (its durable log, its high-watermark checkpoint, the metadata it
/// replays), and a request it sent before it died may still be served. Partition
/// storms and drifting clocks with crashes, every step checked. Drift seed 2 was
/// rejected once: a broker that started while cut off registered after an ISR
/// shrink proposed meanwhile, where the model had queued a registration at the
/// start itself, ahead of every later proposal; now every proposal is in flight
/// until it arrives (`ProposalArrives`), which may be after its sender crashed
/// (drift seed 1) or started again (seed 9), and an ISR change is proposed where
/// the leader reports it (drift seed 3: a forwarded change appended after a
/// registration sent later).
#[test]
fn c_9_replication_traces_through_lost_packets_and_crashes_are_model_steps() {
    let (mut finished, mut steps, mut across_crashes) = (0, 0, 0);
    let runs = (1..=10)
        .map(|seed| (seed, Faults::partition_storm()))
        .chain((1..=9).map(|seed| (seed, Faults::drifting_clocks())));
    for (seed, faults) in runs {
        let outcome = validated_run(seed, faults);
        let complete = outcome.stats.repl_trace_ended.is_none();
        finished += u64::from(complete);
        across_crashes += u64::from(complete && outcome.stats.crashes > 0);
        steps += outcome.stats.repl_steps_validated;
    }
    assert_eq!(finished, 19, "only {finished} of 19 traces ran to the end");
    assert!(
        across_crashes >= 9,
        "only {across_crashes} complete traces crossed a crash"
    );
    assert!(steps >= 120_000, "only {steps} steps validated");
}

/// C-9 found it (R-REPL-3): a follower that asked its leader twice where its last
/// epoch ends acted on one answer, fetched the leader's records of the new epoch, and
/// cut them again on the late second answer: an ISR member below the high watermark,
/// acknowledged records one election from loss. The end-of-run checks saw nothing,
/// since the follower fetched them again. (`core/tests/replication_steps.rs`
/// `r_repl_3_a_second_answer_for_the_followed_epoch_cuts_nothing`.)
#[test]
fn c_9_a_late_second_epoch_answer_cuts_nothing() {
    let outcome = run(Options {
        faults: Some(Faults::starved_waiters()),
        validate_replication: true,
        ..Options::new(15)
    });
    assert!(outcome.violations.is_empty(), "{}", report(&outcome));
    assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
}

/// The validator's own gaps, each once a rejected trace: the nearest past of an
/// observation skipped a shrink that a broker replaying its log showed later (drift
/// seed 14); a follower cut on an OffsetForLeaderEpoch answer its leader gave before
/// it crashed, when the model asked and cut in one step (groups seed 10); a
/// restarted broker's registration lost while the next start's was committed, when
/// the model lost only the newest proposals (groups seed 3); a restarted follower
/// taking an answer to its previous start's Fetch, which no TCP connection delivers
/// (groups seed 8, a fault of the simulator's replica fetcher); and a topic created
/// before every broker registered, which ended the trace at once (partitions seed 4).
/// A broker started again before the trace began is an early end with its reason
/// (groups seeds 2 and 16), not a rejection. These seeds were found with the
/// simulator as it ran then (`as_found`); group storm seeds 12, 16, 17 and 18 under the
/// broker's configuration, and the drift seeds of the test above, hold the next gaps.
#[test]
fn c_9_traces_once_rejected_by_the_validator_are_model_steps() {
    let runs = [
        (14, Faults::drifting_clocks()),
        (10, Faults::group_storm()),
        (3, Faults::group_storm()),
        (8, Faults::group_storm()),
        (4, Faults::partition_storm()),
    ];
    for (seed, faults) in runs {
        let outcome = validated(as_found(seed), faults);
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
    }
    // Under the broker's configuration: a proposal of a leader that crashed before
    // anything showed it (18); a follower added again in a combined change while its
    // single expansion waited (17); an acknowledgement its client read after the
    // leader that sent it crashed (12: acknowledgements are now observed where the
    // leader sends them); a leader, woken from a pause, serving the Fetch of a
    // follower that crashed meanwhile, whose answer the network then dropped (16:
    // the model makes no answer to a dead connection, so none is lost).
    for seed in [12, 16, 17, 18] {
        let outcome = validated_run(seed, Faults::group_storm());
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
    }
    for seed in [2, 16] {
        let outcome = validated(as_found(seed), Faults::group_storm());
        let ended = outcome.stats.repl_trace_ended.clone().unwrap_or_default();
        assert!(
            ended.contains("started again before the trace began"),
            "seed {seed}: {ended:?}"
        );
    }
}

/// C-9 over a run whose followers are killed right after they applied a Fetch
/// answer, before the run observed it: a real broker killed between its append (and
/// sync) and its trace line, which failed the e2e nemesis run's seed 11 in CI on
/// 2026-12-07. The restart shows records no observation showed arriving; the
/// validator takes them as the answer that was in flight when the broker died
/// (`ReplTrace::before_crash`). Before, every one of these seeds was rejected.
#[test]
fn c_9_a_follower_killed_before_its_answer_is_observed_takes_only_model_steps() {
    let mut unreported = 0;
    // Seed 47 also had a follower append an old leader's late answers between its
    // OffsetForLeaderEpoch question and its answer, which cut them (R-REPL-3: such
    // answers are now dropped).
    for seed in (0..12).chain([47]) {
        let outcome = validated_run(seed, Faults::unreported_crashes());
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
        unreported += outcome.stats.crashes_before_report;
    }
    assert!(
        unreported >= 12,
        "only {unreported} unreported crashes in 12 seeds"
    );
}

/// The validator's gaps stop 49 left outside CI's seed sets, each a step the broker
/// takes that the trace model lacked: a crash that tears an unsynced frame, whose
/// cut recovery marks (drift 30 and 47: a start named its copy short with no damage
/// injected; `CrashTorn`); a repair's cut at a marked tail, which shows nothing but
/// comes before the next fetch, and a repair no longer waiting for a Fetch an earlier
/// start sent (drift 47); the answer to an applied repair lost, so the broker proposes
/// it again (drift 78; `RepairUnanswered`); an OffsetForLeaderEpoch served after its
/// asker crashed (drift 91) or was elected (deposals 542), answered to nobody.
#[test]
fn c_9_traces_rejected_at_stop_49_are_model_steps() {
    let runs = [30, 47, 78, 91]
        .map(|seed| (seed, Faults::drifting_clocks()))
        .into_iter()
        .chain([(542, Faults::deposal_storm())]);
    for (seed, faults) in runs {
        let outcome = validated_run(seed, faults);
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
        assert!(
            outcome.stats.repl_steps_validated > 5_000,
            "{}",
            report(&outcome)
        );
    }
}

/// The validator's gaps stop 50 left, closed by the run reporting each commit where
/// the first broker applies it (`FetchHint::Committed`) and the trace committing
/// metadata only there: a shrink and a registration committed together, which the
/// nearest past replaced with a fence one step shorter, so that a broker applying
/// them one at a time later showed a shrink the kept past lacked (drift 243 and 359,
/// swarm 1164, interval 23 and 45); a repair's cut at a marked tail, unseen until a
/// later start registered its copy whole (interval 15); and nine registrations in
/// flight, whose orders of arrival ran the search out of states (swarm 1165,
/// interval 66).
#[test]
fn c_9_traces_rejected_at_stop_50_are_model_steps() {
    let drift = || Some(Faults::drifting_clocks());
    let interval = || Some(Faults::interval_fsync());
    let runs = [
        (243, drift()),
        (359, drift()),
        (1164, None),
        (1165, None),
        (15, interval()),
        (23, interval()),
        (45, interval()),
        (66, interval()),
    ];
    for (seed, faults) in runs {
        let outcome = validated_under(Options::new(seed), faults);
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
    }
}

/// The C-9 rejections stop 51 left outside CI's seed sets, each closed where it
/// arose:
/// - A power loss kept whole frames of a leader's unsynced tail, which recovery
///   rightly keeps (power-cycle 4, 8, 12, 23, 31, 33, 47, 57): the model's crash now
///   keeps any prefix of the unsynced records, with or without a torn frame after it
///   (`CrashKeeping`, `CrashTorn(n, k)`; R-REPL-4).
/// - A retry of a broker's registration, proposed before its fence and committed
///   after it while the broker was dead, lifted the fence (groups 37): the state
///   machine now refuses it, and only the start's `UnfenceBroker` naming that fence
///   lets it back (R-CLUSTER-2). Groups 21 and 45 were rejected at stop 50.
/// - Found by a sweep at stop 52, groups 143 and 234 ran out of states: with seven
///   proposals in flight and three commits in one step, produces and retries were
///   taken wherever a leader's view differed; they are now taken only where its log
///   does (`ReplTrace::relevant`).
#[test]
fn c_9_traces_rejected_at_stop_51_are_model_steps() {
    let power = || Some(Faults::power_cycle());
    let groups = || Some(Faults::group_storm());
    let runs = [4, 8, 12, 23, 31, 33, 47, 57]
        .map(|seed| (seed, power()))
        .into_iter()
        .chain([21, 37, 45, 143, 234].map(|seed| (seed, groups())));
    for (seed, faults) in runs {
        let outcome = validated_under(Options::new(seed), faults);
        assert!(
            outcome.stats.repl_steps_validated > 1_000,
            "{}",
            report(&outcome)
        );
    }
}

/// Found by a sweep of swarm seeds 1400 to 1699 and read at stop 57: each trace was
/// rejected where every end-of-run check held, and none was a fault of the broker.
/// - 1598: a repair cut a copy damaged at its log start; the real log starts afresh
///   there with no epoch left to ask about and follows its leader at once, while the
///   replication model's kept the epochs below its start (`Replica::cut_at`).
/// - 1473: a full disk took a whole answer and the high watermark, but not the
///   checkpoint of the leader's newer log start (`FetchResponseCut` of every record).
/// - 1417: a copy the network made of a Fetch answer was reported as the lost second
///   answer of a Fetch sent twice, one of whose answers the network had dropped.
#[test]
fn c_9_traces_rejected_at_stop_56_are_model_steps() {
    swarm_traced_to_the_end(1417, 5_000);
    let full = swarm_traced_to_the_end(1473, 5_000);
    let damaged = swarm_traced_to_the_end(1598, 5_000);
    assert!(
        full.stats.repl_full_disks_validated > 0,
        "{}",
        report(&full)
    );
    assert_eq!(
        damaged.stats.repl_damages_validated,
        1,
        "{}",
        report(&damaged)
    );
}

/// Found by a sweep of swarm seeds 2300 to 2599 at stop 60, a gap of the simulator's
/// mapping: the network sent a follower's Fetch twice and then copied the leader's
/// answer to the first copy before the leader had served the second. The copy was
/// taken for the second answer, lost, which no model step had served yet. The
/// simulator now counts the answers the leader sent to a Fetch sent twice, and an
/// answer beyond them is the network's copy.
#[test]
fn c_9_a_copied_answer_to_a_fetch_sent_twice_is_not_its_second_answer() {
    swarm_traced_to_the_end(2397, 5_000);
}

/// Found by a sweep of swarm seeds 1700 to 1999 at stop 57, a gap of the broker:
/// seed 1921's broker 1 crashed leading with a torn tail and started three times
/// with a durable commit index before the partition's creation, so its start opened
/// no log for it and its registration named the copy whole; the controller kept it
/// leading in the ISR until its repair proposal, once it learnt the metadata again.
/// The registration now names copies on disk its replayed metadata does not assign
/// (R-REPL-4, `Partitions::short_copies`), as the model's does.
#[test]
fn c_9_a_start_replaying_to_before_the_creation_registers_its_short_copy() {
    swarm_traced_to_the_end(1921, 5_000);
}

/// C-9 from the first broker that applies the partition's creation (stop 57): until
/// then the trace began where broker 1 applied it, and where broker 1 had crashed
/// before that, everything the others did meanwhile (a fence, a new leader,
/// records) was one step whose search ran out of states, so these traces ended at
/// their start. A broker that has not applied the creation leads nothing, whatever
/// the model's first leader does.
#[test]
fn c_9_traces_start_where_the_first_broker_applies_the_creation() {
    for seed in [1100, 1296, 1409, 1493] {
        swarm_traced_to_the_end(seed, 4_000);
    }
}

/// C-9 where one event applies several reported commits while the leader crashes
/// (stop 58, swarm 1286: four commits with nine proposals in flight, and the
/// leader's produces, retries and syncs interleaved with them exhausted the
/// search): a last search takes the reported commits first. And the first step's
/// registrations read from the creation's own commit, not from a node that
/// applied later registrations with it in one batch (swarm 1035: start 4
/// registered with the creation's; 1158: an incarnation below the trace's base).
#[test]
fn c_9_a_search_takes_reported_commits_first_and_the_start_reads_the_creation() {
    for seed in [1286, 1035, 1158] {
        swarm_traced_to_the_end(seed, 4_000);
    }
}

/// C-9 from a partition created without a fenced broker (R-REPL-2): the controller
/// leaves a broker fenced before the creation out of the new partition's ISR and
/// leadership, which the model reaches by fencing it right after its own creation,
/// at epochs one on (the run's epochs are shifted onto the model's). Until stop 59
/// such traces ended at their start, "created where the model does not start"
/// (group storm 112, 151, 214, 260, 272 and 298 of 0 to 299). 112 fenced broker 1,
/// the first leader, which had started again three times since; 214 a follower.
#[test]
fn c_9_a_partition_created_without_a_fenced_broker_is_traced_from_its_creation() {
    for seed in [112, 214] {
        let outcome = validated_under(Options::new(seed), Some(Faults::group_storm()));
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
        assert!(
            outcome.stats.repl_steps_validated > 4_000,
            "{}",
            report(&outcome)
        );
    }
}

/// C-9 through failed fsyncs (R-LOG-9): a failed fsync of a replica's segment of
/// partition 0 is a model step. The leader's group commit fails, its waiting produces
/// fail and are retried, and its log cuts the unsynced records before it takes the
/// next (`FsyncFail`); a follower's sync after an append fails, its log stays offline
/// with the records unsynced until its next fetch cuts them (`FetchResponseSyncFails`,
/// `Resync`); a node whose Raft log took the failure stops (a crash). Until stop 53 a
/// failed fsync anywhere on a replica ended the trace. Mapping them found two faults
/// of the validator, not of the broker: its reader of a log cached records by log
/// end, which a cut and a retry between two looks leave where it was (seed 10), and
/// its bound on a step's actions counted a reported commit once, not with its
/// proposal's arrival (seeds 4, 8, 20: restarts after failed Raft log syncs put
/// six registrations in one step). Seeds 0 to 39: 34 traces to the end, 10 failed
/// syncs of a segment validated.
#[test]
fn c_9_replication_traces_through_failed_fsyncs_are_model_steps() {
    let (mut complete, mut failed_syncs) = (0, 0);
    for seed in 0..40 {
        let outcome = validated_under(Options::new(seed), Some(Faults::fsync_storm()));
        complete += u64::from(outcome.stats.repl_trace_ended.is_none());
        failed_syncs += outcome.stats.repl_failed_syncs_validated;
    }
    assert!(
        complete >= 30,
        "only {complete} of 40 traces ran to the end"
    );
    assert!(
        failed_syncs >= 8,
        "only {failed_syncs} failed fsyncs of partition 0 validated"
    );
}

/// C-9 through full disks (R-LOG-9, R-REPL-1): while a replica's disk has little
/// room left, the model's copy may be full (`DiskFull`) or not, since a write that
/// fits still succeeds: it is taken full where a follower's answer shows cut short
/// (`FetchResponseCut`), and freed where space returns or a write fits again. A start
/// that fails on the full disk before it shows anything is a restart and a crash in
/// one step. Until stop 53 a full disk on a replica ended the trace. Mapping them
/// found only faults of the validator: a failed start's count went unexplained, a
/// copy held full could not have written the checkpoint its restart reads, a down
/// broker's disk could not be freed, and a step's action bound did not count the
/// commands a broker learns at once (seeds 3, 4, 7, 29, 53, 72, 76, 86 of 28 rejected
/// in the first 100).
#[test]
fn c_9_replication_traces_through_full_disks_are_model_steps() {
    let (mut complete, mut fills) = (0, 0);
    for seed in (0..40).chain([53, 72, 76, 86]) {
        let outcome = validated_under(Options::new(seed), Some(Faults::full_disk_storm()));
        complete += u64::from(outcome.stats.repl_trace_ended.is_none());
        fills += outcome.stats.repl_full_disks_validated;
    }
    assert!(
        complete >= 40,
        "only {complete} of 44 traces ran to the end"
    );
    assert!(
        fills >= 100,
        "only {fills} full disks of replicas validated"
    );
}

/// C-9 through DeleteRecords (R-WIRE-5): a leader's deletion is the model's
/// `DeleteRecords` where the run reports it, the observed copies show their log
/// starts and records from there, an acknowledged deletion must be one the model
/// acknowledged (once every live replica's start reached it), and a follower refused
/// OFFSET_OUT_OF_RANGE below its leader's start starts afresh as the model's does.
/// Until stop 54 a deletion ended the trace (23 of 200 swarm traces). Trim storm seeds
/// 0 to 19: all 20 run to the end, with 45 deletions and 7 refusals validated.
#[test]
fn c_9_replication_traces_through_deletions_are_model_steps() {
    let (mut complete, mut deletions, mut refusals) = (0, 0, 0);
    for seed in 0..20 {
        let outcome = validated_under(Options::new(seed), Some(Faults::trim_storm()));
        complete += u64::from(outcome.stats.repl_trace_ended.is_none());
        deletions += outcome.stats.repl_deletions_validated;
        refusals += outcome.stats.repl_refusals_validated;
    }
    assert_eq!(complete, 20, "only {complete} of 20 traces ran to the end");
    assert!(deletions >= 40, "only {deletions} deletions validated");
    assert!(refusals >= 5, "only {refusals} refusals validated");
}

/// C-9 through duplicated OffsetForLeaderEpoch questions: the follower asking twice,
/// the leader answering both copies (an `EpochAsk` each, or nothing once the follower
/// has cut), and the follower dropping the answer to the second as answered, which
/// the run reports lost. No model change was needed; until stop 54 such a copy ended
/// the trace (14 of 400 swarm traces). Swarm seeds with copies of the partition's
/// questions while traced (as the runs go from command format 10).
#[test]
fn c_9_replication_traces_through_duplicated_epoch_questions_are_model_steps() {
    let mut copies = 0;
    for seed in [1000, 1021, 1051, 1196, 1205, 1206, 1279, 1301] {
        let outcome = validated_under(Options::new(seed), None);
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
        copies += outcome.stats.repl_epoch_copies;
    }
    assert!(copies >= 10, "only {copies} questions sent twice");
}

/// C-9 from brokers that started again before the partition was created: the
/// metadata that creates it registers an earlier start of theirs, and the run shows
/// the later one, its registration on the way. The trace begins after the model has
/// crashed and restarted each such broker as often (`ReplTrace::with_restarts`), a
/// state the model reaches. Until stop 55 such a trace ended at its start (18 of 400
/// swarm traces); one whose broker started again only after some node applied the
/// creation still ends there, its start unordered among the first step's events.
/// Swarm seeds whose traces began so, 14 restarts among them.
#[test]
fn c_9_replication_traces_from_brokers_started_again_before_the_creation_are_model_steps() {
    let mut restarts = 0;
    for seed in [1107, 1175, 1199, 1228, 1276, 1358] {
        let outcome = validated_under(Options::new(seed), None);
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
        restarts += outcome.stats.repl_restarts_before_trace;
    }
    assert!(
        restarts >= 12,
        "only {restarts} restarts before the traces began"
    );
}

/// With DeleteRecords answered once the leader deleted
/// (`ReplicationBugs::delete_acked_at_once`), trace validation rejects the step where
/// the answer comes before the model's low watermark allows it: on 9 of the first 10
/// trim storm seeds, where the end-of-run check (a successor serving deleted records,
/// R-WIRE-5) needs a failover at the wrong moment and finds it in 7 of 200.
#[test]
fn c_9_trace_validation_sees_a_deletion_acknowledged_before_the_followers_deleted() {
    let bugs = ReplicationBugs {
        delete_acked_at_once: true,
        ..ReplicationBugs::default()
    };
    let by_trace = rejected_by_trace_validation(Faults::trim_storm(), bugs, 10);
    assert!(
        by_trace >= 8,
        "trace validation caught it on {by_trace} of 10 seeds"
    );
}

/// How many of the first `seeds` seeds under `faults` trace validation rejects with
/// the real-code faults `bugs` injected.
fn rejected_by_trace_validation(faults: Faults, bugs: ReplicationBugs, seeds: u64) -> u64 {
    (0..seeds)
        .filter(|seed| {
            let outcome = run(Options {
                faults: Some(faults.clone()),
                validate_replication: true,
                replication_bugs: bugs,
                ..Options::new(*seed)
            });
            outcome.violations.iter().any(|v| v.contains("C-9"))
        })
        .count() as u64
}

/// With a damaged copy cut at once, before its repair is applied
/// (`ReplicationBugs::cut_damage_in_isr`), trace validation rejects the step where
/// the cut shows: on 8 of the first 10 seeds of the copies mix, where the end-of-run
/// checks find the fault on none of 400 (its registration names the short copy, so
/// it has left the ISR before it cuts: `finds_a_damaged_follower_cutting_while_in_the_isr`
/// needs a second switch). The cut is still the wrong step: R-REPL-4 cuts only once
/// the copy's `RepairReplica` is applied.
#[test]
fn c_9_trace_validation_sees_a_damaged_copy_cut_before_its_repair() {
    let bugs = ReplicationBugs {
        cut_damage_in_isr: true,
        ..ReplicationBugs::default()
    };
    let by_trace = rejected_by_trace_validation(Faults::damaged_copies(), bugs, 10);
    assert!(
        by_trace >= 7,
        "trace validation caught it on {by_trace} of 10 seeds"
    );
}

/// R-RECOVER-9 under C-9: a broker whose Raft log was damaged replays only to
/// before the damage and comes back with metadata older than it had applied, even
/// from before the partition's creation; it leads and follows nothing until its
/// metadata holds this start's registration, and the validator holds such a view
/// only to be metadata the run committed (swarm seeds with damaged Raft logs, each
/// rejected at stop 50 or ended at once for its disk faults).
#[test]
fn c_9_a_broker_replaying_a_damaged_raft_log_shows_older_committed_metadata() {
    let mut damaged = 0;
    for seed in [1003, 1082, 1096, 1192, 1197] {
        let outcome = validated_under(Options::new(seed), None);
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
        damaged += outcome.stats.metadata_damaged;
    }
    assert!(damaged >= 5, "only {damaged} Raft logs damaged");
}

/// C-9 under faults it does not map: the trace ends where a damaged last batch (which
/// a restart may cut as a torn write) first touches a replica of partition 0, with
/// that reason; every step before it is checked (until
/// stop 51 such a fault mix ended the trace at once). A produce, a Fetch or an
/// OffsetForLeaderEpoch question the network sends twice is mapped: a retry, and a
/// follower asking twice whose second answer it drops as answered; so are failed
/// fsyncs of a segment and full disks (stop 53), DeleteRecords (stop 54), damaged
/// copies and failed fsyncs of the checkpoints (stop 55). Swarm seeds 1000 to 1029: 26 traces run to the end (19 at stop
/// 53, 13 before); damaged last batches, seeds 0 to 9: 8 end at the damage, after
/// 1,811 steps.
#[test]
fn c_9_traces_end_where_an_unmapped_fault_first_touches_the_partition() {
    let complete = (1000..1030)
        .filter(|seed| {
            let outcome = validated_under(Options::new(*seed), None);
            outcome.stats.repl_trace_ended.is_none()
        })
        .count();
    assert!(complete >= 20, "only {complete} traces ran to the end");
    let (mut ended_by_fault, mut steps) = (0, 0);
    for seed in 0..10 {
        let outcome = validated_under(Options::new(seed), Some(Faults::damaged_last_frames()));
        let ended = outcome.stats.repl_trace_ended.clone();
        if ended.is_some_and(|e| e.contains("which the mapping does not cover")) {
            ended_by_fault += 1;
            steps += outcome.stats.repl_steps_validated;
        }
    }
    assert!(
        ended_by_fault >= 6,
        "only {ended_by_fault} traces ended by a fault"
    );
    assert!(
        steps >= 1_500,
        "only {steps} steps validated before the faults"
    );
}

/// C-9 through damaged copies (R-LOG-13, R-REPL-4): the damage the run injects in a
/// down broker's copy is the model's `Damage` at the damaged batch's first offset,
/// the restart registers the copy short, its repair proposals are taken where the run
/// reports them and its cut where the log shows it; the observer reads around the
/// damaged range as the broker serves and takes its records from the copy's last
/// read. Until stop 55 the damage ended the trace (36 of 400 swarm traces, every
/// trace of the copies mix). Copies seeds 0 to 19 run to the end with 24 damages, and
/// the seeds whose traces the first mapping rejected hold: a repair proposed again
/// before the first was decided (copies 10), one proposed from metadata older than
/// the committed (swarm 1119), damage below the log start, which lost nothing (swarm
/// 1020), an `UnfenceBroker` its broker proposed just before it crashed (swarm 1267).
#[test]
fn c_9_replication_traces_through_damaged_copies_are_model_steps() {
    let mut damages = 0;
    for seed in 0..20 {
        let outcome = validated_under(Options::new(seed), Some(Faults::damaged_copies()));
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
        damages += outcome.stats.repl_damages_validated;
    }
    assert!(damages >= 20, "only {damages} damaged copies validated");
    for seed in [1020, 1119, 1267] {
        let outcome = validated_under(Options::new(seed), None);
        assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
    }
}

/// C-9 through a repair's answer that comes late (stop 58, copies 345): a restarted
/// broker proposed its repair, which was applied a second later while the answer
/// was still on its way; its retry timer proposed the repair again, and the late
/// answer then came, so it cut while the second proposal was still in flight. The
/// model took the answer as heard at the commit; now `RepairUnanswered` leaves it
/// late, not lost, and `RepairAnswered` brings it.
#[test]
fn c_9_a_repair_answered_after_it_was_proposed_again_is_a_model_step() {
    let outcome = validated_under(Options::new(345), Some(Faults::damaged_copies()));
    assert_eq!(outcome.stats.repl_trace_ended, None, "{}", report(&outcome));
    assert!(
        outcome.stats.repl_steps_validated > 5_000,
        "{}",
        report(&outcome)
    );
}

/// With the real follower acting on a stale OffsetForLeaderEpoch answer
/// (`truncate_on_stale_answer`), a seed that shows it (11, the first of 40 under the
/// broker's configuration; 15 as the simulator ran before 2026-12-04) is rejected
/// where the follower cuts: the model's answers are in flight, and it cuts only on a
/// current one.
#[test]
fn c_9_trace_validation_sees_a_stale_epoch_answer_acted_on() {
    let outcome = run(Options {
        faults: Some(Faults::starved_waiters()),
        validate_replication: true,
        replication_bugs: ReplicationBugs {
            truncate_on_stale_answer: true,
            ..ReplicationBugs::default()
        },
        ..Options::new(11)
    });
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.contains("C-9") && v.contains("EpochAnswered")),
        "{}",
        report(&outcome)
    );
}

/// C-9 sees a wrong acknowledgement where no record is lost: an idempotent retry
/// acknowledged before the high watermark passes the original is caught by trace
/// validation on more seeds than the end-of-run checks (I-6) catch it.
#[test]
fn c_9_trace_validation_sees_a_retry_acknowledged_at_once() {
    let (mut by_trace, mut only_by_trace) = (0, 0);
    for seed in 0..10 {
        let outcome = run(Options {
            faults: Some(Faults::pause_storm()),
            validate_replication: true,
            replication_bugs: ReplicationBugs {
                retry_acked_at_once: true,
                ..ReplicationBugs::default()
            },
            ..Options::new(seed)
        });
        let broke = |rule: &str| outcome.violations.iter().any(|v| v.contains(rule));
        if broke("C-9") {
            by_trace += 1;
            only_by_trace += u64::from(!broke("I-6"));
        }
    }
    assert!(
        by_trace >= 5,
        "trace validation caught it on {by_trace} of 10 seeds"
    );
    assert!(
        only_by_trace >= 3,
        "caught only by trace validation on {only_by_trace}"
    );
}
