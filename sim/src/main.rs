//! `chronik-sim --seed N`: one simulated run of a Chronik cluster, or
//! `--seeds COUNT` runs from N on. Prints each failing seed's broken rules and its
//! trace; exits non-zero if any seed broke a rule.

use chronik_core::consensus::DriverBugs;
use chronik_core::consensus::RaftTraceLine;
use chronik_core::groups::GroupBug;
use chronik_core::replication::ReplicationBugs;
use chronik_model::raft_rules::RaftHistory;
use chronik_sim::{run, Faults, GroupProtocol, Options};
use clap::Parser;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Runs Chronik's metadata node cores under a seeded simulated network and disk")]
struct Args {
    /// The (first) seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many seeds to run, from --seed on.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Simulated milliseconds with faults and clients.
    #[arg(long, default_value_t = 8_000)]
    duration_ms: u64,
    /// Simulated milliseconds of calm at the end, before the convergence checks.
    #[arg(long, default_value_t = 6_000)]
    settle_ms: u64,
    /// Switch on a test-only bug: ack-before-commit, register-only-as-leader,
    /// skip-replay, skip-raft-fsync, retry-acked-at-once, ack-after-deposed,
    /// append-late-fetch, truncate-on-stale-answer, vote-while-repairing,
    /// cut-damage-in-isr, unfenced-commits, assign-before-revoked (with
    /// --group-protocol consumer), keep-uncoordinated-groups, strays-before-registered,
    /// delete-acked-at-once, hw-below-min-isr, follow-before-registered, unclean-restart-keeps-leading, adopt-foreign-dirs,
    /// claim-from-stale-view, forget-torn-tail, no-hw-restore,
    /// register-without-short-copies (repeatable).
    #[arg(long = "bug")]
    bugs: Vec<String>,
    /// The fault mix: `swarm` (each seed draws its own), `pauses` (process pauses
    /// only), `partitions` (network partitions only), `starved` (both, and produce
    /// waiters that look at the view about once a second), `damage` (crashes that
    /// each damage the crashed node's Raft log, R-RECOVER-9), `full` (disks that
    /// fill up for a while, with crashes and partitions), `fsyncs` (failed fsyncs
    /// every ~300 ms, with crashes and partitions, R-LOG-9), `drift` (clocks up to 5%
    /// fast or slow, with crashes and partitions) or `copies` (crashes that each
    /// damage a copy of a replicated partition, R-REPL-4, and partitions) or
    /// `last-frames` (the same, in a segment's last batch, which a restart may cut as
    /// a torn write and must mark, R-REPL-4) or `groups` (slow, lossy links, pauses, partitions and crashes: what moves a
    /// consumer group's commits out of decision order, R-GROUP-10) or `trims`
    /// (DeleteRecords of consumed records, often, with crashes and partitions,
    /// R-WIRE-5) or `deposals` (pauses and partitions that move partition leaders
    /// away and back, with produce waiters stalled for seconds, R-REPL-1) or
    /// `interval` (the interval fsync policy with fast-returning crashes, R-REPL-5) or
    /// `names` (topics deleted and created again under the same names, with crashes
    /// and partitions; every view's directory removals are watched, R-RECOVER-8) or
    /// `power-cycle` (crashes and pauses, then the whole settled cluster killed and
    /// started again, with no write after it; also at `--nodes 1`, R-RECOVER-4) or
    /// `unreported-crashes` (followers killed after they applied a Fetch answer,
    /// before the run observes the step, with pauses: C-9 over kill -9).
    #[arg(long, default_value = "swarm")]
    faults: String,
    /// The consumer group's protocol: `classic` (JoinGroup, SyncGroup) or `consumer`
    /// (ConsumerGroupHeartbeat, KIP-848, R-GROUP-9).
    #[arg(long, default_value = "classic")]
    group_protocol: String,
    /// Check the Raft traces real brokers wrote (`chronik --raft-trace FILE`, one
    /// file per node) against Raft's rules (C-10) instead of simulating; `--nodes`
    /// is the number of voters.
    #[arg(long = "check-raft-trace", num_args = 1..)]
    raft_traces: Vec<std::path::PathBuf>,
    /// Check the replication traces real brokers 1, 2 and 3 wrote (`chronik
    /// --replication-trace FILE`, one file per broker) against the replication model
    /// (C-9) instead of simulating; with `--show-replication-steps`, print every
    /// step checked.
    #[arg(long = "check-replication-trace", num_args = 1..)]
    replication_traces: Vec<std::path::PathBuf>,
    /// Print every notable event of each run, not only of failing ones.
    #[arg(long)]
    trace: bool,
    /// Check every step of the workload's partition 0 against the replication model
    /// (trace validation, R-REPL-*); a step it does not allow breaks the run.
    #[arg(long)]
    validate_replication: bool,
    /// With `--validate-replication` or `--check-replication-trace`: print every step checked (what the run
    /// reported, and each copy where it changed), to read why a step was rejected.
    #[arg(long)]
    show_replication_steps: bool,
    /// Add an acks=1 idempotent producer per partition (R-LOG-4: its records are
    /// kept while the leader epoch that acknowledged them lasts).
    #[arg(long)]
    leader_acks: bool,
    /// Answer a client's metadata write that finds no leader at once, rather than
    /// hold it until one is known as the broker does (R-PROPOSE-2): the simulator
    /// before 2026-12-04, which the seeds found then need.
    #[arg(long)]
    no_await_leader: bool,
    /// Propose admin requests without the core's admin decisions that the Kafka
    /// handlers make first: the simulator before 2026-12-04.
    #[arg(long)]
    no_admin_admission: bool,
}

type Bugs = (DriverBugs, ReplicationBugs, Option<GroupBug>);

fn bugs(names: &[String]) -> Result<Bugs, String> {
    let mut bugs = DriverBugs::default();
    let mut replication = ReplicationBugs::default();
    let mut group = None;
    for name in names {
        match name.as_str() {
            "ack-before-commit" => bugs.ack_before_commit = true,
            "register-only-as-leader" => bugs.register_only_as_leader = true,
            "skip-replay" => bugs.skip_replay = true,
            "skip-raft-fsync" => bugs.skip_raft_fsync = true,
            "vote-while-repairing" => bugs.vote_while_repairing = true,
            "unclean-restart-keeps-leading" => bugs.unclean_restart_keeps_leading = true,
            "retry-acked-at-once" => replication.retry_acked_at_once = true,
            "cut-damage-in-isr" => replication.cut_damage_in_isr = true,
            "ack-after-deposed" => replication.ack_after_deposed = true,
            "append-late-fetch" => replication.append_late_fetch = true,
            "truncate-on-stale-answer" => replication.truncate_on_stale_answer = true,
            "unfenced-commits" => group = Some(GroupBug::UnfencedCommits),
            "assign-before-revoked" => group = Some(GroupBug::AssignBeforeRevoked),
            "keep-uncoordinated-groups" => group = Some(GroupBug::KeepUncoordinatedGroups),
            "strays-before-registered" => replication.strays_before_registered = true,
            "adopt-foreign-dirs" => replication.adopt_foreign_dirs = true,
            "claim-from-stale-view" => replication.claim_from_stale_view = true,
            "delete-acked-at-once" => replication.delete_acked_at_once = true,
            "hw-below-min-isr" => replication.hw_below_min_isr = true,
            "follow-before-registered" => replication.follow_before_registered = true,
            "forget-torn-tail" => replication.forget_torn_tail = true,
            "no-hw-restore" => replication.no_hw_restore = true,
            "register-without-short-copies" => replication.register_without_short_copies = true,
            other => return Err(format!("unknown bug {other:?}")),
        }
    }
    Ok((bugs, replication, group))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.raft_traces.is_empty() {
        return check_raft_traces(&args.raft_traces, args.nodes);
    }
    if !args.replication_traces.is_empty() {
        return check_replication_traces(&args.replication_traces, args.show_replication_steps);
    }
    if args.show_replication_steps && !args.validate_replication {
        eprintln!(
            "--show-replication-steps needs --validate-replication or --check-replication-trace"
        );
        return ExitCode::from(2);
    }
    let (bugs, replication_bugs, group_bug) = match bugs(&args.bugs) {
        Ok(bugs) => bugs,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let faults = match args.faults.as_str() {
        "swarm" => None,
        "pauses" => Some(Faults::pause_storm()),
        "partitions" => Some(Faults::partition_storm()),
        "starved" => Some(Faults::starved_waiters()),
        "damage" => Some(Faults::damage_storm()),
        "full" => Some(Faults::full_disk_storm()),
        "fsyncs" => Some(Faults::fsync_storm()),
        "drift" => Some(Faults::drifting_clocks()),
        "copies" => Some(Faults::damaged_copies()),
        "last-frames" => Some(Faults::damaged_last_frames()),
        "groups" => Some(Faults::group_storm()),
        "trims" => Some(Faults::trim_storm()),
        "deposals" => Some(Faults::deposal_storm()),
        "names" => Some(Faults::names_storm()),
        "interval" => Some(Faults::interval_fsync()),
        "power-cycle" => Some(Faults::power_cycle()),
        "unreported-crashes" => Some(Faults::unreported_crashes()),
        other => {
            eprintln!("unknown fault mix {other:?}");
            return ExitCode::from(2);
        }
    };
    let group_protocol = match args.group_protocol.as_str() {
        "classic" => GroupProtocol::Classic,
        "consumer" => GroupProtocol::Consumer,
        other => {
            eprintln!("unknown group protocol {other:?}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let (mut failed, mut steps) = (0u64, 0u64);
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let outcome = run(Options {
            nodes: args.nodes,
            duration_ms: args.duration_ms,
            settle_ms: args.settle_ms,
            bugs,
            replication_bugs,
            group_bug,
            group_protocol,
            faults: faults.clone(),
            full_trace: args.trace || args.show_replication_steps,
            validate_replication: args.validate_replication,
            show_replication_steps: args.show_replication_steps,
            leader_acks: args.leader_acks,
            await_leader: !args.no_await_leader,
            admin_admission: !args.no_admin_admission,
            ..Options::new(seed)
        });
        steps += outcome.stats.steps;
        let broken = !outcome.violations.is_empty();
        if broken || args.trace || args.show_replication_steps {
            for line in &outcome.trace {
                println!("  {line}");
            }
        }
        println!(
            "seed {seed}: {} trace {:016x} {:?}",
            if broken { "FAIL" } else { "ok" },
            outcome.trace_hash,
            outcome.stats
        );
        for violation in &outcome.violations {
            println!("  broken: {violation}");
        }
        failed += u64::from(broken);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds, {failed} failing, {steps} node steps in {secs:.1} s ({:.0} steps/s, {:.0} seeds/min)",
        args.seeds,
        steps as f64 / secs.max(1e-9),
        args.seeds as f64 * 60.0 / secs.max(1e-9)
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// C-9 over a real run: fails on a step the replication model does not allow, and
/// on a trace that validated nothing (the partition never created as the model
/// starts it, or ended at once).
fn check_replication_traces(paths: &[std::path::PathBuf], showing_steps: bool) -> ExitCode {
    let checked = match chronik_sim::repl_trace_files::check(paths, showing_steps) {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for step in &checked.shown {
        println!("{step}");
    }
    println!(
        "{} trace lines, {} steps validated, ended early: {}",
        checked.lines,
        checked.steps_validated,
        checked.ended.as_deref().unwrap_or("no")
    );
    if let Some(rejection) = &checked.rejection {
        println!("C-9 replication trace validation: {rejection}");
        return ExitCode::FAILURE;
    }
    if checked.steps_validated == 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// C-10 over a real run: every node's trace, merged by time, checked step by step.
/// A killed broker may leave its last line torn; any other unreadable line fails.
fn check_raft_traces(paths: &[std::path::PathBuf], voters: usize) -> ExitCode {
    let mut lines = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let count = text.lines().count();
        for (n, line) in text.lines().enumerate() {
            match RaftTraceLine::parse(line) {
                Ok(line) => lines.push(line),
                Err(e) if n + 1 == count => eprintln!("{}: last line torn: {e}", path.display()),
                Err(e) => {
                    eprintln!("{}:{}: {e}", path.display(), n + 1);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let mut history = RaftHistory::for_processes(voters);
    history.check_lines(lines);
    println!(
        "{} traced steps, {} state changes checked, {} violations",
        history.steps,
        history.changes,
        history.violations.len()
    );
    for violation in &history.violations {
        println!("  broken: {violation}");
    }
    if history.violations.is_empty() && history.changes > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
