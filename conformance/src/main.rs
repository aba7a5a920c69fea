//! `chronik-conformance replay|real|replication|dirs|scenarios`: drives the real node code
//! from the models.

use std::process::ExitCode;
use std::time::Instant;

use chronik_conformance::dirs::dirs_walks;
use chronik_conformance::replay::summary;
use chronik_conformance::replication::replication_walks;
use chronik_conformance::{random_walks, real_runs, replay_all, Divergence, Injected, Stats};
use chronik_core::replication::ReplicationBugs;
use chronik_model::dirs::{DirBug, DirModel};
use chronik_model::replication::{ReplBug, ReplicationModel};
use chronik_model::ChronikModel;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Checks the real node code against the model, step by step")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Bounds {
    /// Nodes, 1 to 3. With more than one the peer messages go through the
    /// oracle's network and the partition's produces are left out (the replication
    /// oracle's); `real` runs one node only.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    #[arg(long, default_value_t = 3)]
    max_term: u8,
    #[arg(long, default_value_t = 2)]
    max_crashes: u8,
    #[arg(long, default_value_t = 2)]
    max_proposals: u8,
    #[arg(long, default_value_t = 2)]
    max_produce: u8,
    /// Bad sectors in a down node's Raft log (R-RECOVER-6).
    #[arg(long, default_value_t = 0)]
    max_damage: u8,
    /// Snapshot the metadata and compact the Raft log every this many applied
    /// entries, on both sides (0: never).
    #[arg(long, default_value_t = 0)]
    snapshot_interval: u8,
    /// Elections without raft-rs's pre-vote round and check-quorum step-downs, on
    /// both sides (the broker runs both; so do the model and the real nodes by
    /// default).
    #[arg(long)]
    plain_elections: bool,
    /// Leaders that step down for want of a quorum (check-quorum), at most.
    #[arg(long, default_value_t = 1)]
    max_step_downs: u8,
    /// Switch on a test-only fault in the real code: skip-raft-fsync,
    /// ack-produce-before-fsync, cut-raft-damage, forward-answer-names-applied-index.
    /// The run must then report a divergence.
    #[arg(long)]
    inject: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Model → real: every model path up to --depth, then --walks random walks.
    Replay {
        #[command(flatten)]
        bounds: Bounds,
        #[arg(long, default_value_t = 8)]
        depth: usize,
        /// Stop the exhaustive part after this many paths.
        #[arg(long, default_value_t = u64::MAX)]
        max_paths: u64,
        #[arg(long, default_value_t = 1000)]
        walks: u64,
        #[arg(long, default_value_t = 200)]
        walk_steps: usize,
    },
    /// Process-level scenarios for e2e/test_model_scenarios.py: model walks that
    /// produce and crash, projected onto what a test can do to the `chronik` binary
    /// (start, produce with acks=all, kill -9, fetch), one JSON array per line.
    Scenarios {
        #[arg(long, default_value_t = 6)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scenarios for three processes, from the replication model.
        #[arg(long)]
        cluster: bool,
    },
    /// Replication model → the real replication steps of three brokers: random walks
    /// (spec/conformance.md, C-5). With --bug, the model runs with that switch on and
    /// the walks should report a divergence.
    Replication {
        #[arg(long, default_value_t = 3)]
        max_produce: u8,
        #[arg(long, default_value_t = 1)]
        max_crashes: u8,
        #[arg(long, default_value_t = 2)]
        max_fences: u8,
        #[arg(long, default_value_t = 1)]
        max_shrinks: u8,
        #[arg(long, default_value_t = 5000)]
        walks: usize,
        #[arg(long, default_value_t = 80)]
        walk_steps: usize,
        #[arg(long)]
        bug: Option<String>,
        #[arg(long, default_value_t = 5)]
        seed: u64,
    },
    /// Directories model → the real start-up check, metadata recovery and directory
    /// code of one broker: random walks (spec/conformance.md, C-7). With --bug the
    /// model runs with that switch on; with --inject the real code runs with that
    /// fault (adopt-foreign-dirs, strays-before-registered, claim-from-stale-view);
    /// either should report a divergence.
    Dirs {
        /// A cluster member rather than a sole voter.
        #[arg(long)]
        cluster: bool,
        #[arg(long, default_value_t = 3000)]
        walks: usize,
        #[arg(long, default_value_t = 60)]
        walk_steps: usize,
        #[arg(long)]
        bug: Option<String>,
        #[arg(long)]
        inject: Option<String>,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Real → model: random runs of the real shell's own commands.
    Real {
        #[command(flatten)]
        bounds: Bounds,
        #[arg(long, default_value_t = 1000)]
        runs: u64,
        #[arg(long, default_value_t = 200)]
        steps: usize,
    },
}

fn setup(b: &Bounds) -> Result<(ChronikModel, Option<Injected>), String> {
    if !(1..=3).contains(&b.nodes) {
        return Err("--nodes is 1, 2 or 3".into());
    }
    let mut m = ChronikModel::new(b.nodes);
    m.max_term = b.max_term;
    m.max_crashes = b.max_crashes;
    m.max_proposals = b.max_proposals;
    m.max_produce = if b.nodes == 1 { b.max_produce } else { 0 };
    m.raft_rs_flow_control = true;
    m.pre_vote = !b.plain_elections;
    m.max_step_downs = if b.plain_elections {
        0
    } else {
        b.max_step_downs
    };
    m.max_damage = b.max_damage;
    m.snapshot_interval = b.snapshot_interval;
    let injected = match &b.inject {
        None => None,
        Some(name) => Some(Injected::from_name(name).ok_or_else(|| {
            let known: Vec<_> = Injected::ALL.iter().map(|i| i.name()).collect();
            format!("unknown fault {name:?}; known: {}", known.join(", "))
        })?),
    };
    println!(
        "model: {} node(s), max term {}, max crashes {}, max proposals {}, max produce {}, max damage {}, snapshot interval {}, pre-vote and check-quorum {}; injected fault: {}",
        m.nodes,
        m.max_term,
        m.max_crashes,
        m.max_proposals,
        m.max_produce,
        m.max_damage,
        m.snapshot_interval,
        if m.pre_vote { "on" } else { "off" },
        injected.map_or("none", |i| i.name())
    );
    Ok((m, injected))
}

fn setup_or_report(b: &Bounds) -> Option<(ChronikModel, Option<Injected>)> {
    setup(b).map_err(|e| eprintln!("{e}")).ok()
}

fn report(what: &str, started: Instant, result: Result<Stats, Box<Divergence>>) -> bool {
    match result {
        Ok(stats) => {
            println!("{}", summary(what, &stats, started.elapsed().as_secs_f64()));
            true
        }
        Err(d) => {
            println!("{what}: {d}");
            false
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command {
        Command::Replay {
            bounds,
            depth,
            max_paths,
            walks,
            walk_steps,
        } => {
            let Some((m, injected)) = setup_or_report(&bounds) else {
                return ExitCode::from(2);
            };
            {
                let t = Instant::now();
                let exhaustive = report(
                    &format!("every path to depth {depth}"),
                    t,
                    replay_all(&m, depth, max_paths, injected),
                );
                let t = Instant::now();
                let walked = report(
                    &format!("{walks} random walks of up to {walk_steps} steps"),
                    t,
                    random_walks(&m, walks, walk_steps, bounds.seed, injected),
                );
                exhaustive && walked
            }
        }
        Command::Scenarios {
            count,
            seed,
            cluster,
        } => {
            let lines: Vec<Vec<String>> = if cluster {
                chronik_conformance::scenarios::generate_cluster(count, seed)
                    .iter()
                    .map(|s| s.iter().map(ToString::to_string).collect())
                    .collect()
            } else {
                chronik_conformance::scenarios::generate(count, seed)
                    .iter()
                    .map(|s| s.iter().map(ToString::to_string).collect())
                    .collect()
            };
            for steps in lines {
                let quoted: Vec<String> = steps.iter().map(|s| format!("\"{s}\"")).collect();
                println!("[{}]", quoted.join(","));
            }
            true
        }
        Command::Replication {
            max_produce,
            max_crashes,
            max_fences,
            max_shrinks,
            walks,
            walk_steps,
            bug,
            seed,
        } => {
            let mut model =
                ReplicationModel::bounded(max_produce, max_crashes, max_fences, max_shrinks);
            if let Some(name) = bug {
                let Some(bug) = ReplBug::from_name(&name) else {
                    let known: Vec<_> = ReplBug::ALL.iter().map(|b| b.name()).collect();
                    eprintln!("unknown bug {name:?}; known: {}", known.join(", "));
                    return ExitCode::from(2);
                };
                model = model.with_bug(bug);
            }
            let started = Instant::now();
            match replication_walks(&model, walks, walk_steps, seed) {
                Ok(stats) => {
                    println!(
                        "{} walks, {} steps (longest {}) conform in {:.1} s; actions taken: {}",
                        stats.walks,
                        stats.steps,
                        stats.max_depth,
                        started.elapsed().as_secs_f64(),
                        stats.kinds.into_iter().collect::<Vec<_>>().join(", ")
                    );
                    true
                }
                Err(d) => {
                    println!("{d}");
                    false
                }
            }
        }
        Command::Dirs {
            cluster,
            walks,
            walk_steps,
            bug,
            inject,
            seed,
        } => {
            let mut model = DirModel::new(!cluster);
            if let Some(name) = bug {
                let Some(bug) = DirBug::parse(&name) else {
                    let known: Vec<_> = DirBug::ALL.iter().map(|b| b.name()).collect();
                    eprintln!("unknown bug {name:?}; known: {}", known.join(", "));
                    return ExitCode::from(2);
                };
                model = model.with_bug(bug);
            }
            let mut faults = ReplicationBugs::default();
            match inject.as_deref() {
                None => {}
                Some("adopt-foreign-dirs") => faults.adopt_foreign_dirs = true,
                Some("strays-before-registered") => faults.strays_before_registered = true,
                Some("claim-from-stale-view") => faults.claim_from_stale_view = true,
                Some(other) => {
                    eprintln!("unknown fault {other:?}");
                    return ExitCode::from(2);
                }
            }
            let started = Instant::now();
            match dirs_walks(&model, faults, walks, walk_steps, seed) {
                Ok(stats) => {
                    println!(
                        "{} walks, {} steps conform in {:.1} s: {} refused starts, {} stray \
                         removals, {} deferred claims",
                        stats.walks,
                        stats.steps,
                        started.elapsed().as_secs_f64(),
                        stats.refused,
                        stats.strays_removed,
                        stats.deferred
                    );
                    true
                }
                Err(d) => {
                    println!("{d}");
                    false
                }
            }
        }
        Command::Real {
            bounds,
            runs,
            steps,
        } => {
            if bounds.nodes != 1 {
                eprintln!("real runs drive one node; use replay for 2 and 3");
                return ExitCode::from(2);
            }
            let Some((m, injected)) = setup_or_report(&bounds) else {
                return ExitCode::from(2);
            };
            report(
                &format!("{runs} real runs of up to {steps} steps"),
                Instant::now(),
                real_runs(&m, runs, steps, bounds.seed, injected),
            )
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
