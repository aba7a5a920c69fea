//! `chronik-model check|replication|table|explore`: run the model checker, measure the
//! CI configurations for model/README.md, or serve stateright's Explorer.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stateright::Model;

use chronik_model::check::{format_path, run, Checked, Run, Strategy, WalkBudget};
use chronik_model::ci;
use chronik_model::dirs::{DirBug, DirModel};
use chronik_model::replication::{ReplBug, ReplicationModel};
use chronik_model::{Bug, ChronikModel};

#[derive(Parser)]
#[command(name = "chronik-model", about = "Model checking Chronik's spec rules")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check every property; print counts, time and each discovery step by step.
    Check(CheckArgs),
    /// Check the replication model (one partition, three replicas, ISR, leader epochs).
    Replication(ReplicationArgs),
    /// Check the partition-directories model (R-RECOVER-7, R-RECOVER-8): one broker's
    /// directory of a topic deleted and re-created, crashes, lost metadata.
    Dirs(DirsArgs),
    /// Measure every configuration CI checks exhaustively (model/src/ci.rs) and every
    /// bug switch's shortest counterexample (model/src/bug_table.rs), and print
    /// model/README.md's tables of them; with --write, replace the tables there.
    Table {
        #[arg(long)]
        write: bool,
        /// Only the bug switches' table (under a minute).
        #[arg(long)]
        bugs: bool,
        /// Measure only this CI configuration (repeatable; by its test's name): the
        /// other rows stay as model/README.md has them, and the bug table is left.
        #[arg(long, conflicts_with = "bugs")]
        only: Vec<String>,
    },
    /// Serve stateright's Explorer on 127.0.0.1.
    Explore {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
}

#[derive(Args)]
struct ModelArgs {
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Re-introduce a seed bug (repeatable).
    #[arg(long = "bug", value_parser = parse_bug)]
    bugs: Vec<Bug>,
    #[arg(long, default_value_t = 2)]
    max_term: u8,
    #[arg(long, default_value_t = 1)]
    max_crashes: u8,
    #[arg(long, default_value_t = 1)]
    max_proposals: u8,
    #[arg(long, default_value_t = 1)]
    max_produce: u8,
    /// Committed CreateTopic records cannot be decoded on replay.
    #[arg(long)]
    undecodable: bool,
    /// Start with every node booted (listener up), skipping start-up interleavings.
    #[arg(long)]
    booted: bool,
    /// Raft logs damaged at rest (R-RECOVER-6, R-RECOVER-9).
    #[arg(long, default_value_t = 0)]
    max_damage: u8,
    /// Snapshot the metadata and compact the Raft log every this many applied
    /// entries (0: never).
    #[arg(long, default_value_t = 0)]
    snapshot_interval: u8,
    /// raft-rs's own flow control (what the conformance oracle replays, C-11)
    /// instead of the coarser one-message-per-link rule of the CI configurations.
    #[arg(long)]
    raft_rs_flow_control: bool,
    /// raft-rs's pre-vote round before each campaign, as the broker runs it.
    #[arg(long)]
    pre_vote: bool,
    /// raft-rs's check-quorum: a leader may step down for want of a quorum, as the
    /// broker's does, this many times in a path.
    #[arg(long, default_value_t = 0)]
    max_step_downs: u8,
    /// With --pre-vote: at most this many pre-vote rounds in a path (default: any).
    #[arg(long)]
    max_pre_votes: Option<u8>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args)]
struct ReplicationArgs {
    /// Re-introduce a replication bug (repeatable).
    #[arg(long = "bug", value_parser = parse_repl_bug)]
    bugs: Vec<ReplBug>,
    #[arg(long, default_value_t = 2)]
    min_isr: u8,
    #[arg(long, default_value_t = 2)]
    max_produce: u8,
    #[arg(long, default_value_t = 1)]
    max_crashes: u8,
    #[arg(long, default_value_t = 1)]
    max_fences: u8,
    #[arg(long, default_value_t = 1)]
    max_shrinks: u8,
    #[arg(long, default_value_t = 3)]
    max_epoch: u8,
    /// Copies whose durable bytes get damaged and are repaired (R-REPL-4).
    #[arg(long, default_value_t = 0)]
    max_damage: u8,
    /// Damage may hit a copy's last durable record, which a restart's recovery cuts
    /// as a torn write unless the checkpoint's durable point covers it (the open gap
    /// of spec/cluster.md R-REPL-4).
    #[arg(long)]
    torn_last_frame: bool,
    /// A crash may leave the unsynced tail torn, which the restart's recovery cuts and
    /// marks as a lost tail (R-REPL-4).
    #[arg(long)]
    torn_crashes: bool,
    /// Start where `ALONE_BELOW_MIN_ISR` leads (ISR {0} below the minimum, 1 eligible,
    /// every copy holding a record) instead of the created partition: R-REPL-6's
    /// fenced-leader window, searched from where it opens.
    #[arg(long)]
    after_alone_below_min_isr: bool,
    /// With `--after-alone-below-min-isr` under `--acks-before-fsync`: the leader did
    /// not sync the record it acknowledged, so its crash can cut it.
    #[arg(long)]
    leader_unsynced: bool,
    /// Idempotent retries of unacknowledged produces.
    #[arg(long, default_value_t = 0)]
    max_retries: u8,
    /// Controller failovers that lose the uncommitted metadata proposals.
    #[arg(long, default_value_t = 0)]
    max_failovers: u8,
    /// Failed fsyncs of a partition log (R-LOG-9).
    #[arg(long, default_value_t = 0)]
    max_sync_failures: u8,
    /// The interval fsync policy: leaders acknowledge what they wrote before
    /// syncing it (R-REPL-5).
    #[arg(long)]
    acks_before_fsync: bool,
    /// Disks that fill up for a while (ENOSPC, R-LOG-12).
    #[arg(long, default_value_t = 0)]
    max_full: u8,
    /// DeleteRecords requests to a leader, each up to its high watermark (R-WIRE-5).
    #[arg(long, default_value_t = 0)]
    max_deletes: u8,
    /// Brokers apply committed metadata one change at a time (as trace validation does).
    #[arg(long)]
    stepwise_learning: bool,
    /// Fetch requests and answers in flight, reordered, retried and lost (as trace
    /// validation does); at most this many per follower. 0: off.
    #[arg(long, default_value_t = 0)]
    reordered_fetches: u8,
    /// One ISR proposal may drop and add several followers (as trace validation does).
    #[arg(long)]
    combined_isr_changes: bool,
    /// A controller failover may lose any one proposal (as trace validation does).
    #[arg(long)]
    lossy_proposals: bool,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args)]
struct DirsArgs {
    /// A cluster member rather than a sole voter.
    #[arg(long)]
    cluster: bool,
    #[arg(long = "bug", value_parser = parse_dir_bug)]
    bug: Option<DirBug>,
    #[arg(long, default_value_t = 3)]
    max_writes: u8,
    #[arg(long, default_value_t = 2)]
    max_produce: u8,
    #[arg(long, default_value_t = 2)]
    max_crashes: u8,
    #[arg(long, default_value_t = 1)]
    max_losses: u8,
    #[command(flatten)]
    search: SearchArgs,
}

fn parse_dir_bug(s: &str) -> Result<DirBug, String> {
    DirBug::parse(s).ok_or_else(|| {
        let names: Vec<&str> = DirBug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug {s}; one of {}", names.join(", "))
    })
}

#[derive(Args)]
struct SearchArgs {
    /// Stop exploring paths deeper than this.
    #[arg(long)]
    depth: Option<usize>,
    /// Random walks for this many seconds instead of exhaustive search.
    #[arg(long)]
    sim: Option<u64>,
    /// With --sim: use stateright's simulation checker instead of our walks (it ends a
    /// walk at any state seen before, so its walks stay short on this model).
    #[arg(long)]
    stateright_sim: bool,
    /// Exactly this many random walks on one thread instead of exhaustive search: the
    /// same outcome on every machine, as CI's walks.
    #[arg(long, conflicts_with = "sim")]
    walks: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Search::Dfs)]
    search: Search,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Stop once this property has a discovery.
    #[arg(long)]
    stop_on: Option<String>,
    /// Stop after generating about this many states.
    #[arg(long)]
    max_states: Option<usize>,
    /// With --stop-on: print the shortest path to it (iterative deepening BFS).
    #[arg(long)]
    shortest: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// DFS over one state per symmetry class (metadata model at 3 nodes: nodes 1 and
    /// 2 are interchangeable, node 0 leads the partition; with --max-produce 0 every
    /// renaming of the nodes).
    #[arg(long)]
    symmetry: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Search {
    Bfs,
    Dfs,
}

fn parse_bug(s: &str) -> Result<Bug, String> {
    Bug::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug {s:?}; one of {}", names.join(", "))
    })
}

fn parse_repl_bug(s: &str) -> Result<ReplBug, String> {
    ReplBug::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = ReplBug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug {s:?}; one of {}", names.join(", "))
    })
}

fn build(a: &ModelArgs) -> ChronikModel {
    let mut m = ChronikModel::new(a.nodes);
    m.max_term = a.max_term;
    m.max_crashes = a.max_crashes;
    m.max_proposals = a.max_proposals;
    m.max_produce = a.max_produce;
    m.undecodable = a.undecodable;
    m.booted = a.booted;
    m.max_damage = a.max_damage;
    m.snapshot_interval = a.snapshot_interval;
    m.raft_rs_flow_control = a.raft_rs_flow_control;
    m.pre_vote = a.pre_vote;
    m.max_step_downs = a.max_step_downs;
    m.max_pre_votes = a.max_pre_votes;
    for b in &a.bugs {
        m = m.with_bug(*b);
    }
    m
}

/// The checker allocates and frees a state's parts for every successor it takes;
/// mimalloc takes a fifth off a check's time against the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Explore { model, port } => {
            let m = build(&model);
            let addr = format!("127.0.0.1:{port}");
            println!("Explorer on http://{addr}/ (Ctrl-C to stop)");
            // serve() blocks serving requests for as long as the process lives.
            let _checker = m.checker().serve(addr);
            ExitCode::SUCCESS
        }
        Cmd::Table { write, bugs, only } => table(write, bugs, &only),
        Cmd::Check(a) => {
            let m = build(&a.model);
            let bugs: Vec<&str> = m.bugs().iter().map(|b| b.name()).collect();
            println!(
                "model: nodes={} max_term={} max_crashes={} max_proposals={} max_produce={} undecodable={} booted={} max_damage={} snapshot_interval={} bugs=[{}]",
                m.nodes,
                m.max_term,
                m.max_crashes,
                m.max_proposals,
                m.max_produce,
                m.undecodable,
                m.booted,
                m.max_damage,
                m.snapshot_interval,
                bugs.join(", ")
            );
            check(m, &a.search)
        }
        Cmd::Replication(a) => {
            let mut m = ReplicationModel::default();
            m.min_isr = a.min_isr;
            m.max_produce = a.max_produce;
            m.max_crashes = a.max_crashes;
            m.max_fences = a.max_fences;
            m.max_shrinks = a.max_shrinks;
            m.max_epoch = a.max_epoch;
            m.max_damage = a.max_damage;
            m.max_retries = a.max_retries;
            m.max_failovers = a.max_failovers;
            m.max_sync_failures = a.max_sync_failures;
            m.acks_before_fsync = a.acks_before_fsync;
            m.max_full = a.max_full;
            m.max_deletes = a.max_deletes;
            m.stepwise_learning = a.stepwise_learning;
            m.reordered_fetches = a.reordered_fetches > 0;
            m.max_fetches_in_flight = a.reordered_fetches;
            m.combined_isr_changes = a.combined_isr_changes;
            m.lossy_proposals = a.lossy_proposals;
            m.torn_last_frame = a.torn_last_frame;
            m.torn_crashes = a.torn_crashes;
            for b in &a.bugs {
                m = m.with_bug(*b);
            }
            if a.after_alone_below_min_isr {
                m = match m.after_alone_below_min_isr(!a.leader_unsynced) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("ALONE_BELOW_MIN_ISR under these options: {e}");
                        return ExitCode::from(2);
                    }
                };
            }
            let bugs: Vec<&str> = m.bugs().iter().map(|b| b.name()).collect();
            println!(
                "replication model: replicas=3 min_isr={} max_produce={} max_crashes={} max_fences={} max_shrinks={} max_epoch={} max_damage={} max_retries={} max_failovers={} max_sync_failures={} max_full={} acks_before_fsync={} stepwise_learning={} reordered_fetches={} combined_isr_changes={} lossy_proposals={} bugs=[{}]",
                m.min_isr, m.max_produce, m.max_crashes, m.max_fences, m.max_shrinks,
                m.max_epoch, m.max_damage, m.max_retries, m.max_failovers, m.max_sync_failures, m.max_full, m.acks_before_fsync,
                m.stepwise_learning, a.reordered_fetches, m.combined_isr_changes, m.lossy_proposals, bugs.join(", ")
            );
            check(m, &a.search)
        }
        Cmd::Dirs(a) => {
            let m = DirModel {
                sole_voter: !a.cluster,
                max_writes: a.max_writes,
                max_produce: a.max_produce,
                max_crashes: a.max_crashes,
                max_losses: a.max_losses,
                bug: a.bug,
            };
            println!("{m:?}");
            check(m, &a.search)
        }
    }
}

fn table(write: bool, bugs_only: bool, only: &[String]) -> ExitCode {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let mut tables: Vec<(String, Replace)> = Vec::new();
    if !bugs_only {
        match ci_table(path, only) {
            Ok(table) => tables.push((table, ci::replace_table)),
            Err(why) => {
                eprintln!("{why}");
                return ExitCode::FAILURE;
            }
        }
    }
    if only.is_empty() {
        match chronik_model::bug_table::measure_bugs(|row| eprint!("{row}")) {
            Ok(table) => tables.push((table, chronik_model::bug_table::replace_bug_table)),
            Err(why) => {
                eprintln!("{why}; the tables are not written");
                return ExitCode::FAILURE;
            }
        }
    }
    if !write {
        for (table, _) in &tables {
            println!("{table}\n");
        }
        return ExitCode::SUCCESS;
    }
    let written = std::fs::read_to_string(path).and_then(|mut readme| {
        for (table, replace) in &tables {
            readme = replace(&readme, table)
                .ok_or_else(|| std::io::Error::other("model/README.md lacks a table's markers"))?;
        }
        std::fs::write(path, readme)
    });
    match written {
        Ok(()) => {
            eprintln!("wrote the tables to {path}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CI configurations' table, with only those in `only` measured again (all if
/// it is empty) and the other rows as the README at `path` has them.
fn ci_table(path: &str, only: &[String]) -> Result<String, String> {
    if let Some(unknown) = only
        .iter()
        .find(|t| !ci::CONFIGS.iter().any(|c| c.test == **t))
    {
        return Err(format!(
            "{unknown} is not a CI configuration (model/src/ci.rs)"
        ));
    }
    let readme = if only.is_empty() {
        String::new()
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?
    };
    let table = ci::measure_some(&readme, only, |row| eprint!("{row}"));
    if table.contains("(VIOLATED)") {
        return Err("a CI configuration violates a property; the table is not written".into());
    }
    Ok(table)
}

/// Replaces one generated table of model/README.md.
type Replace = fn(&str, &str) -> Option<String>;

fn check<M: Checked>(m: M, a: &SearchArgs) -> ExitCode {
    let stop_on = match &a.stop_on {
        None => None,
        Some(name) => match m.properties().into_iter().find(|p| p.name == name.as_str()) {
            Some(p) => Some(p.name),
            None => {
                eprintln!("unknown property {name:?}");
                return ExitCode::from(2);
            }
        },
    };
    let strategy = match (a.sim, a.search) {
        _ if a.walks.is_some() => Strategy::Walks {
            budget: WalkBudget::Walks(a.walks.unwrap_or_default()),
            seed: a.seed,
        },
        (Some(seconds), _) if a.stateright_sim => Strategy::Simulation {
            seconds,
            seed: a.seed,
        },
        (Some(seconds), _) => Strategy::Walks {
            budget: WalkBudget::Seconds(seconds),
            seed: a.seed,
        },
        (None, Search::Bfs) => Strategy::Bfs,
        (None, Search::Dfs) => Strategy::Dfs,
    };
    // A depth-bounded BFS covers every state within the bound on one thread only
    // (`Run::bfs_to_depth`).
    let threads = match (strategy, a.depth) {
        (Strategy::Bfs, Some(_)) | (Strategy::Walks { .. }, _) => 1,
        _ => a.threads,
    };
    println!(
        "search: {:?} threads={} depth limit={:?} symmetry={}",
        strategy, threads, a.depth, a.symmetry
    );
    let o = run(
        m.clone(),
        &Run {
            strategy,
            threads,
            max_depth: a.depth,
            stop_on,
            max_states: a.max_states,
            progress: !a.quiet,
            symmetry: a.symmetry,
        },
    );
    println!(
        "states explored={} unique={} max depth={} time={:.1}s",
        o.states,
        o.unique,
        o.depth,
        o.elapsed.as_secs_f64()
    );
    let mut discoveries = o.discoveries.clone();
    if let (true, Some(p)) = (a.shortest, stop_on) {
        let bound = discoveries
            .get(p)
            .map_or(0, |x| x.clone().into_actions().len());
        if let Some(short) = chronik_model::check::shortest(&m, p, bound) {
            discoveries.insert(p, short);
        }
    }
    for (name, path) in &discoveries {
        let kind = if o.violated.contains(name) {
            "COUNTEREXAMPLE"
        } else {
            "example"
        };
        let steps = path.clone().into_actions().len();
        println!("{kind} for \"{name}\" ({steps} steps):");
        if o.violated.contains(name) {
            print!("{}", format_path(&m, path));
        }
    }
    for name in &o.missing_examples {
        println!("no example found for \"{name}\"");
    }
    if o.violated.is_empty() {
        println!("all always-properties hold");
        ExitCode::SUCCESS
    } else {
        println!("violated: {}", o.violated.join("; "));
        ExitCode::FAILURE
    }
}
