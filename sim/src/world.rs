//! One simulated run: the nodes, the network, the clients, the faults, and the
//! checks at the end. Everything random comes from one ChaCha8 source seeded by the
//! run's seed, every collection is ordered, and time is a number: the same seed gives
//! the same run (a test asserts the trace hash).

use crate::admission;
use crate::check::Checker;
use crate::consumers::Consumers;
use crate::dir_traces::{DirTraces, Shown};
use crate::group_host::{self, GroupHost, GroupMessage, GroupOut};
use crate::group_members::{GroupMembers, FETCH_REQUEST_BASE, MEMBERS};
use crate::host::{self, Host, Out};
use crate::net::{self, Fate, Network, Packet, Payload, CLIENTS};
use crate::options::{Faults, Options};
use crate::producers::Producers;
use crate::records::{self, read_values};
use crate::repl_traces::{self, NodeShown, ReplTraces};
use crate::trace::Trace;
use crate::trimmer::Trimmer;
use crate::wire;
use chronik_core::consensus::{entry_digest, RaftSeen};
use chronik_core::consensus::{
    refuse_partition_data_without_metadata, Driver, DriverConfig, Effect, Input, MetadataNode,
    NodeConfig, Pacing, ProposalFailure, Registration,
};
use chronik_core::disk::{Disk, MemDisk, OpenMode, Tear};
use chronik_core::errors;
use chronik_core::log::{frame, FsyncPolicy};
use chronik_core::metadata::{broker_to_wire, ApplyOutcome, MetadataCommand, MetadataState};
use chronik_core::replication::{AnswerRecords, FetchStep, PartitionKey};
use chronik_model::dirs::trace::DirEvent;
use chronik_model::raft_rules::RaftHistory;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TICK_MS: u64 = 10;
/// How often each node's partition work (commit rounds, replica fetches, ISR
/// upkeep, answers) and the producers run.
const PARTITION_TICK_MS: u64 = 5;
const METADATA_DIR: &str = "/metadata";
/// Under the names storm, how often a node that learns the deletion of a topic it
/// hosts dies before its partitions follow the view.
const CRASH_BEFORE_RECONCILE: f64 = 0.25;

/// What a run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub faults: Faults,
    pub trace_hash: u64,
    pub violations: Vec<String>,
    /// The notable events (the last few hundred unless the full trace was asked for).
    pub trace: Vec<String>,
    pub stats: Stats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: u64,
    pub delivered: u64,
    pub lost: u64,
    pub crashes: u64,
    /// Of them, followers killed after they applied a Fetch answer, before the run
    /// observed it (`crash_before_report_per_mille`).
    pub crashes_before_report: u64,
    pub partitions: u64,
    pub proposals: u64,
    pub acknowledged: u64,
    /// Admin requests the core's admin decisions refused before proposing them
    /// (only with `admin_admission`).
    pub admin_refused: u64,
    /// Admin writes asked of a node that knew no leader then, and answered done
    /// (only with `await_leader`: without it they are refused at once).
    pub leaderless_acknowledged: u64,
    pub leader_changes: u64,
    pub fsync_failures: u64,
    pub pauses: u64,
    /// Records acknowledged to the producers.
    pub records_acknowledged: u64,
    pub produce_retries: u64,
    /// acks=1 records acknowledged in the leader epoch that leads at the end, which
    /// the end's check holds to R-LOG-4.
    pub leader_acks_checked: u64,
    pub records_consumed: u64,
    /// Raft logs damaged while their node was down (R-RECOVER-9).
    pub metadata_damaged: u64,
    /// Of those, repairs seen to end.
    pub metadata_repaired: u64,
    /// Disks that filled up for a while.
    pub disks_filled: u64,
    /// Copies of a replicated partition damaged while their node was down (R-REPL-4).
    pub copies_damaged: u64,
    /// Of those, repairs seen to end.
    pub copies_repaired: u64,
    /// Of the damaged copies, those whose restart cut the damage as a torn tail and
    /// marked the cut (R-REPL-4).
    pub tails_marked: u64,
    /// Generations the group members were assigned partitions in.
    pub group_generations: u64,
    pub group_commits: u64,
    /// Records a group member read that another (or it) had read before.
    pub group_redeliveries: u64,
    pub member_restarts: u64,
    /// DeleteRecords acknowledged (every live replica's log start passed the offset).
    pub deletions_acknowledged: u64,
    /// Topics created under the name of a topic deleted before.
    pub names_reused: u64,
    /// Steps of partition directories checked against the directories model (names
    /// storm only, `dir_traces.rs`).
    pub dir_steps_validated: u64,
    /// Directory traces followed (one per hosted topic name), and those given up:
    /// the reference missed entries compacted unseen.
    pub dir_traces: u64,
    pub dir_traces_abandoned: u64,
    /// Steps of the workload's partition 0 checked against the replication model
    /// (`--validate-replication`, `repl_traces.rs`), and why its trace ended early.
    pub repl_steps_validated: u64,
    pub repl_trace_ended: Option<String>,
    /// Failed fsyncs of a replica's partition 0 segment, and disks of replicas that
    /// filled up, while the trace was checked.
    pub repl_failed_syncs_validated: u64,
    pub repl_full_disks_validated: u64,
    /// DeleteRecords of partition 0, and fetches refused below a leader's log start,
    /// in validated steps (R-WIRE-5).
    pub repl_deletions_validated: u64,
    pub repl_refusals_validated: u64,
    /// Damage to a replica's copy of partition 0 taken as a model step (R-REPL-4).
    pub repl_damages_validated: u64,
    /// Starts of replicas since their registered one when the trace began (the
    /// model's crashes and restarts before its first step).
    pub repl_restarts_before_trace: u64,
    /// OffsetForLeaderEpoch questions of partition 0 the network sent twice while the
    /// trace was checked.
    pub repl_epoch_copies: u64,
    /// Steps that changed a node's Raft state, each checked against Raft's rules
    /// (`chronik_model::raft_rules`, C-10).
    pub raft_changes_validated: u64,
}

/// A client proposal and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Pending,
    Done,
    /// Answered with a refusal or a retriable failure: may or may not have happened.
    Failed(String),
    /// The node it was sent to crashed before answering.
    Lost,
}

#[derive(Debug, Clone)]
struct ClientOp {
    node: usize,
    topic: String,
    admin: Admin,
    status: Status,
    /// The node knew no leader when it was asked.
    leaderless: bool,
}

/// The leader's answers to a Fetch the network sent twice: how many it sent, and
/// how many of those arrived or were dropped.
#[derive(Debug, Clone, Copy, Default)]
struct AnswersOfTwice {
    sent: u8,
    accounted: u8,
}

/// What an admin client asked of the metadata (CreateTopics, DeleteTopics,
/// CreatePartitions, as their handlers propose them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admin {
    Create,
    Delete,
    /// The topic should then have this many partitions.
    AddPartition(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Client,
    Crash,
    Restart(usize),
    Partition,
    Heal,
    FsyncFailure,
    DiskFull,
    DiskFreed(usize),
    Pause,
    WaiterStall,
    Partitions,
    MemberRestart,
}

/// A node's monotonic clock: where it stood when the simulation began, and how fast
/// it runs against simulated time. It keeps going across the node's restarts, as a
/// machine's clock does across its broker's.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start_ms: u64,
    drift_ppm: i64,
}

impl Clock {
    fn drawn(rng: &mut impl Rng, max_drift_ppm: u32) -> Clock {
        if max_drift_ppm == 0 {
            return Clock {
                start_ms: 0,
                drift_ppm: 0,
            };
        }
        let max = i64::from(max_drift_ppm);
        Clock {
            start_ms: rng.gen_range(0..1_000_000),
            drift_ppm: rng.gen_range(-max..=max),
        }
    }

    /// The node's reading at simulated time `now`.
    fn local(&self, now: u64) -> u64 {
        let elapsed = i128::from(now) * i128::from(1_000_000 + self.drift_ppm) / 1_000_000;
        self.start_ms + elapsed as u64
    }

    /// The first simulated time at which the node reads `local` or later.
    fn simulated(&self, local: u64) -> u64 {
        let elapsed = i128::from(local.saturating_sub(self.start_ms));
        let rate = i128::from(1_000_000 + self.drift_ppm);
        let mut now = (elapsed * 1_000_000 / rate) as u64;
        while self.local(now) < local {
            now += 1;
        }
        now
    }
}

struct SimNode {
    id: u64,
    clock: Clock,
    disk: MemDisk,
    driver: Option<Driver>,
    /// The partition logs and their replication, while the process runs.
    host: Option<Host>,
    /// The group coordinator, while the process runs.
    groups: Option<GroupHost>,
    incarnation: u64,
    /// Client tokens this incarnation has not answered, by op index.
    pending: BTreeMap<u64, usize>,
    last_leader: Option<u64>,
    /// The replicated topic's partitions as this node last saw them, for the trace.
    seen_partitions: Vec<(i32, i32, Vec<i32>)>,
    /// The index of the last broker change this node saw, for the trace.
    seen_brokers_change: u64,
    /// The next fsync of this node's disk fails: the node is expected to stop.
    sync_will_fail: bool,
    /// Its disk takes no more bytes: a failed write may stop the node.
    disk_full: bool,
    /// Paused (neither ticking nor reading) until this time.
    paused_until: u64,
    /// Its produce waiters do not look at the view until this time.
    waiters_stalled_until: u64,
    /// Its Raft log was damaged and its repair is not known to be over.
    metadata_damaged: bool,
    /// A copy of a replicated partition was damaged and its repair is not known to
    /// be over.
    copy_damaged: bool,
    /// That copy's damage was cut as a torn tail and marked (counted once).
    copy_tail_marked: bool,
}

struct Sim {
    opts: Options,
    faults: Faults,
    rng: ChaCha8Rng,
    damage_rng: ChaCha8Rng,
    copy_rng: ChaCha8Rng,
    /// `RepairReplica` proposals in flight: (node, its start, partition) by token.
    repair_waits: BTreeMap<u64, (usize, u64, PartitionKey)>,
    /// Group coordinators' proposals in flight: (node, its start, its wait) by token.
    group_waits: BTreeMap<u64, (usize, u64, u64)>,
    group_rng: ChaCha8Rng,
    trim_rng: ChaCha8Rng,
    /// Partition directories a start or a new view removed: (node, dir, topic id).
    removed_dirs: Vec<(u64, String, String)>,
    /// Trace validation of partition directories, under `recreate_deleted_names`.
    dir_traces: Option<DirTraces>,
    repl_traces: Option<ReplTraces>,
    /// Fetch steps the network made since the last observation (a Fetch or an
    /// answer dropped), by the follower's node index (only while traces are
    /// validated).
    network_fetch_steps: Vec<(usize, FetchStep)>,
    /// Fetches of partition 0 the network sent twice, by follower id, request and
    /// the follower's start: the second answer to arrive comes to a request already
    /// answered, and the follower drops it. A copy of an answer the network made
    /// itself is neither of the leader's two answers, and may arrive before the
    /// leader served the second copy of the request (swarm seed 2397).
    fetches_sent_twice: BTreeMap<(u64, u64, u64), AnswersOfTwice>,
    now: u64,
    nodes: Vec<SimNode>,
    net: Network,
    timers: BTreeMap<(u64, u64), Timer>,
    timer_seq: u64,
    ops: Vec<ClientOp>,
    next_token: u64,
    checker: Checker,
    /// Every Raft step of every node checked against Raft's rules (C-10).
    raft_history: RaftHistory,
    producers: Producers,
    consumers: Consumers,
    group_members: GroupMembers,
    trimmer: Trimmer,
    trace: Trace,
    stats: Stats,
    /// Faults and clients stop here; then the run settles.
    calm_from: u64,
}

/// Runs one seed to the end and checks it.
pub fn run(opts: Options) -> Outcome {
    let group_protocol = opts.group_protocol;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // Decisions of faults added after the first swarm come from a source of their
    // own, so that each seed's earlier faults stay as they were.
    let mut damage_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6461_6d61_6765);
    let mut full_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6675_6c6c);
    let mut clock_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x0063_6c6f_636b);
    let mut copy_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x636f_7079);
    let group_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x0067_726f_7570);
    let mut trim_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x7472_696d);
    let faults = opts.faults.clone().unwrap_or_else(|| Faults {
        trim_every_ms: [0, 0, 700][trim_rng.gen_range(0..3)],
        damage_metadata_per_mille: [0, 0, 300][damage_rng.gen_range(0..3)],
        disk_full_every_ms: [0, 0, 0, 2_500][full_rng.gen_range(0..4)],
        clock_drift_ppm: [0, 0, 200, 50_000][clock_rng.gen_range(0..4)],
        damage_partition_per_mille: [0, 0, 300][copy_rng.gen_range(0..3)],
        ..Faults::swarm(&mut rng)
    });
    let validate_dirs = faults.recreate_deleted_names;
    let clocks: Vec<Clock> = (0..opts.nodes)
        .map(|_| Clock::drawn(&mut clock_rng, faults.clock_drift_ppm))
        .collect();
    let nodes: Vec<SimNode> = (1..=opts.nodes as u64)
        .zip(clocks)
        .map(|(id, clock)| SimNode {
            id,
            clock,
            disk: MemDisk::new(),
            driver: None,
            host: None,
            groups: None,
            incarnation: 0,
            pending: BTreeMap::new(),
            last_leader: None,
            seen_partitions: Vec::new(),
            seen_brokers_change: 0,
            sync_will_fail: false,
            disk_full: false,
            paused_until: 0,
            waiters_stalled_until: 0,
            metadata_damaged: false,
            copy_damaged: false,
            copy_tail_marked: false,
        })
        .collect();
    let voters = nodes.len();
    let leader_acks = opts.leader_acks;
    let mut sim = Sim {
        calm_from: opts.duration_ms,
        trace: Trace::new(opts.full_trace),
        opts,
        faults,
        rng,
        damage_rng,
        copy_rng,
        repair_waits: BTreeMap::new(),
        group_waits: BTreeMap::new(),
        group_rng,
        trim_rng,
        removed_dirs: Vec::new(),
        dir_traces: validate_dirs.then(DirTraces::new),
        repl_traces: None,
        network_fetch_steps: Vec::new(),
        fetches_sent_twice: BTreeMap::new(),
        now: 0,
        nodes,
        net: Network::default(),
        timers: BTreeMap::new(),
        timer_seq: 0,
        ops: Vec::new(),
        next_token: 0,
        checker: Checker::default(),
        raft_history: RaftHistory::new(voters),
        producers: Producers::new(leader_acks),
        consumers: Consumers::new(),
        group_members: GroupMembers::new(group_protocol),
        trimmer: Trimmer::default(),
        stats: Stats::default(),
    };
    sim.trace.note(0, format!("faults {:?}", sim.faults));
    if sim.opts.validate_replication {
        let f = &sim.faults;
        let mut traces = ReplTraces::new();
        if f.fsync_interval_ms > 0 {
            traces = traces.acking_before_fsync();
        }
        if sim.opts.show_replication_steps {
            traces = traces.showing_steps();
        }
        // Disk faults and duplicated replication packets end the trace where they
        // first touch partition 0 (`ReplTraces::unmapped`), not at once: what came
        // before them is checked.
        sim.repl_traces = Some(traces);
    }
    // raft-rs asserts its own invariants by panicking (a commit index beyond the
    // log, say): that is a finding like any other, reported with the trace.
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sim.run_phases();
    }));
    if let Err(panic) = finished {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        sim.violation(format!(
            "a node panicked (a Raft invariant broke): {message}"
        ));
    }
    sim.stats.records_acknowledged = sim.producers.acknowledged;
    sim.stats.produce_retries = sim.producers.retries;
    sim.stats.records_consumed = sim.consumers.records_read;
    sim.stats.group_generations = sim.group_members.generations_joined;
    sim.stats.group_commits = sim.group_members.commits_acknowledged;
    sim.stats.group_redeliveries = sim.group_members.redeliveries;
    sim.stats.member_restarts = sim.group_members.restarts;
    sim.stats.deletions_acknowledged = sim.trimmer.deletions_acknowledged;
    Outcome {
        seed: sim.opts.seed,
        faults: sim.faults.clone(),
        trace_hash: sim.trace.hash(),
        violations: sim.checker.violations.clone(),
        trace: sim.trace.lines(),
        stats: sim.stats.clone(),
    }
}

impl Sim {
    fn run_phases(&mut self) {
        for i in 0..self.nodes.len() {
            self.boot(i);
        }
        self.schedule_first_timers();
        self.run_until(self.calm_from);
        self.calm_down();
        let mut end = self.calm_from + self.opts.settle_ms;
        self.run_until(end);
        if self.faults.power_cycle_when_calm {
            self.power_cycle();
            end += self.opts.settle_ms;
            self.run_until(end);
        }
        self.final_checks();
    }

    /// Every node killed at once and started again a moment later: what each
    /// serves then comes from its disk alone, with no client write to move it on.
    fn power_cycle(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].driver.is_some() {
                self.stats.crashes += 1;
                self.take_down(i, Tear::None, "loses power with the whole cluster", 300);
            }
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn after(&mut self, delay: u64, timer: Timer) {
        self.timer_seq += 1;
        self.timers
            .insert((self.now + delay, self.timer_seq), timer);
    }

    /// A delay around `mean` (half to one and a half times it).
    fn around(&mut self, mean: u64) -> u64 {
        self.rng.gen_range(mean / 2..=mean + mean / 2).max(1)
    }

    fn schedule_first_timers(&mut self) {
        let client = self.around(self.opts.client_every_ms);
        self.after(client, Timer::Client);
        self.after(PARTITION_TICK_MS, Timer::Partitions);
        let restart = self.group_rng.gen_range(500..2_500);
        self.after(restart, Timer::MemberRestart);
        if self.faults.crash_every_ms > 0 {
            let at = self.around(self.faults.crash_every_ms);
            self.after(at, Timer::Crash);
        }
        if self.faults.partition_every_ms > 0 {
            let at = self.around(self.faults.partition_every_ms);
            self.after(at, Timer::Partition);
        }
        if self.faults.fsync_failure_every_ms > 0 {
            let at = self.around(self.faults.fsync_failure_every_ms);
            self.after(at, Timer::FsyncFailure);
        }
        if self.faults.pause_every_ms > 0 {
            let at = self.around(self.faults.pause_every_ms);
            self.after(at, Timer::Pause);
        }
        if self.faults.waiter_stall_every_ms > 0 {
            let at = self.around(self.faults.waiter_stall_every_ms);
            self.after(at, Timer::WaiterStall);
        }
        if self.faults.disk_full_every_ms > 0 {
            let at = self.around(self.faults.disk_full_every_ms);
            self.after(at, Timer::DiskFull);
        }
    }

    fn run_until(&mut self, end: u64) {
        while let Some(at) = self.next_event_at() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.next_event();
            self.maybe_crash_before_report();
            self.observe_replication();
        }
        self.now = end;
    }

    fn next_event_at(&self) -> Option<u64> {
        let timer = self.timers.keys().next().map(|(at, _)| *at);
        let packet = self.net.next_delivery();
        let wake = self
            .nodes
            .iter()
            .filter_map(|n| {
                let local = n.driver.as_ref()?.next_tick_ms(n.clock.local(self.now));
                Some(n.clock.simulated(local).max(n.paused_until))
            })
            .min();
        [timer, packet, wake].into_iter().flatten().min()
    }

    /// Timers first, then packets, then ticks, each in a fixed order at equal times.
    fn next_event(&mut self) {
        if let Some((&key, &timer)) = self.timers.iter().next() {
            if key.0 <= self.now {
                self.timers.remove(&key);
                return self.timer(timer);
            }
        }
        if let Some(packet) = self.net.pop_due(self.now) {
            return self.deliver(packet);
        }
        let due = (0..self.nodes.len()).find(|&i| {
            let node = &self.nodes[i];
            node.paused_until <= self.now
                && node.driver.as_ref().is_some_and(|d| {
                    let local = node.clock.local(self.now);
                    d.next_tick_ms(local) <= local
                })
        });
        if let Some(i) = due {
            self.step(i, Input::Tick);
        }
    }

    fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Client => self.client(),
            Timer::Crash => self.crash(),
            Timer::Restart(i) => self.boot(i),
            Timer::Partition => self.partition(),
            Timer::Heal => {
                self.net.heal();
                self.trace.note(self.now, "network healed".into());
            }
            Timer::FsyncFailure => self.fail_an_fsync(),
            Timer::DiskFull => self.fill_a_disk(),
            Timer::DiskFreed(i) => self.free_disk(i),
            Timer::Pause => self.pause(),
            Timer::WaiterStall => self.stall_waiters(),
            Timer::Partitions => self.partitions_tick(),
            Timer::MemberRestart => self.restart_a_member(),
        }
    }

    /// The settle phase: every fault healed, every node up, no clients.
    fn calm_down(&mut self) {
        let restarts: Vec<usize> = self
            .timers
            .values()
            .filter_map(|t| match t {
                Timer::Restart(i) => Some(*i),
                _ => None,
            })
            .collect();
        self.timers.clear();
        self.after(PARTITION_TICK_MS, Timer::Partitions);
        self.net.heal();
        for node in &mut self.nodes {
            node.paused_until = node.paused_until.min(self.now);
            node.waiters_stalled_until = 0;
            node.sync_will_fail = false;
            node.disk.fail_next_syncs(0);
            node.disk_full = false;
            node.disk.set_capacity(None);
        }
        self.faults.drop_per_mille = 0;
        self.faults.waiter_look_every_ms = 0;
        self.faults.duplicate_per_mille = 0;
        // Slow links are a fault too: latency above the election timeout (100 ms at
        // least) makes a follower campaign now and then however calm the rest is.
        let calm = Faults::none();
        self.faults.min_latency_ms = calm.min_latency_ms;
        self.faults.max_latency_ms = calm.max_latency_ms;
        self.trace
            .note(self.now, "calm: faults healed, clients stopped".into());
        for i in restarts {
            self.boot(i);
        }
    }

    /// Starts (or restarts) node `i` from its disk, as the broker's start-up does:
    /// recover, build the driver (which replays), publish, take the first step.
    fn boot(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.pending.clear();
        let election_seed = self.rng.gen();
        let id = node.id;
        let voters = (1..=self.opts.nodes as u64).collect();
        // raft-rs's range, as the broker runs it; the seed draws each timeout.
        let config = NodeConfig {
            voters,
            election_seed: Some(election_seed),
            snapshot_interval: 100,
            ..NodeConfig::single(id)
        };
        let disk: Arc<dyn Disk> = Arc::new(node.disk.clone());
        // The broker's first start-up check, before the Raft storage is opened
        // (R-RECOVER-7): a refusal here, with the metadata intact, would be a finding.
        let orphaned = refuse_partition_data_without_metadata(
            disk.as_ref(),
            Path::new(METADATA_DIR),
            Path::new(host::LOGS_DIR),
        );
        if let Err(e) = orphaned {
            let incarnation = node.incarnation;
            self.failed_start(
                i,
                format!("R-RECOVER-7 node {id} (start {incarnation}) refuses to start: {e}"),
            );
            return;
        }
        let opened = MetadataNode::open(disk, Path::new(METADATA_DIR), config);
        let mut raft = match opened {
            Ok(raft) => raft,
            Err(e) => {
                let incarnation = node.incarnation;
                self.failed_start(
                    i,
                    format!(
                        "R-RECOVER-1 node {id} (start {incarnation}) cannot recover its storage: {e}"
                    ),
                );
                return;
            }
        };
        let durable_commit = raft.commit_index();
        if let Some(traces) = &self.repl_traces {
            raft.tap_applies(traces.tap());
        }
        let driver_config = DriverConfig {
            tick_ms: TICK_MS,
            session_timeout_ms: 1_000,
            forward_timeout_ms: 2_000,
            registration_retry_ms: 200,
            id_base: node.incarnation << 32,
            pacing: Pacing::Whole,
            await_leader: self.opts.await_leader,
        };
        let mut registration = Registration {
            broker_id: id as i32,
            host: format!("node-{id}"),
            port: 9092,
            rack: None,
            incarnation: node.incarnation,
            listeners: Vec::new(),
            acks_before_fsync: FsyncPolicy::every_ms(self.faults.fsync_interval_ms)
                .acks_before_fsync(),
            short_copies: Vec::new(),
        };
        let driver = match Driver::with_bugs(raft, driver_config, self.opts.bugs) {
            Ok(driver) => driver,
            Err(e) => {
                self.failed_start(i, format!("R-RECOVER-2 node {id} cannot replay: {e}"));
                return;
            }
        };
        // What the shell publishes before it serves anything (R-RECOVER-2).
        let applied = driver.view().state.applied_index;
        if applied < durable_commit {
            self.violation(format!(
                "R-RECOVER-2 node {id} serves a view at index {applied} before replaying to its \
                 durable commit index {durable_commit}"
            ));
        }
        let incarnation = self.nodes[i].incarnation;
        let disk: Arc<dyn Disk> = Arc::new(self.nodes[i].disk.clone());
        let bugs = self.opts.replication_bugs;
        let before = stamped_dirs(&self.nodes[i].disk);
        let fsync = FsyncPolicy::every_ms(self.faults.fsync_interval_ms);
        let opened = Host::open(
            disk,
            (id as i32, incarnation),
            &driver.view().state,
            bugs,
            fsync,
        );
        // As the broker: the logs are open before it registers, and the registration
        // names the copies their recovery found short (R-REPL-4).
        let opened = opened.and_then(|host| Ok((host.partitions.short_copies()?, host)));
        match opened {
            Ok((short_copies, host)) => {
                registration.short_copies = short_copies;
                let after = stamped_dirs(&self.nodes[i].disk);
                let removed = before
                    .into_iter()
                    .filter(|(dir, _)| !after.contains_key(dir));
                self.removed_dirs
                    .extend(removed.map(|(dir, stamp)| (id, dir, stamp)));
                let mut host = host;
                if let Some(traces) = &mut self.repl_traces {
                    host.keep_fetch_steps();
                    traces.started(id);
                }
                self.nodes[i].host = Some(host);
                if let Some(traces) = &mut self.dir_traces {
                    traces.started(id, incarnation);
                    let node = &self.nodes[i];
                    traces.observe(&Shown {
                        node: id,
                        event: DirEvent::Start,
                        state: Some(&driver.view().state),
                        partitions: node.host.as_ref().map(|h| h.partitions.as_ref()),
                        disk: &node.disk,
                        logs_dir: Path::new(host::LOGS_DIR),
                        durable_commit: Some(durable_commit),
                    });
                }
                let config = group_host::config(self.opts.group_bug);
                self.nodes[i].groups = Some(GroupHost::new(id as i32, incarnation, config));
            }
            Err(e) => {
                self.failed_start(
                    i,
                    format!(
                        "R-RECOVER-1 node {id} (start {incarnation}) cannot open its partition \
                         logs: {e}"
                    ),
                );
                return;
            }
        }
        self.nodes[i].driver = Some(driver);
        self.checker.restarted(id);
        // The copies the registration names short: C-9 rejections that follow a start
        // are read from here (the trace model cannot mark a tail without damage).
        let short: Vec<String> = registration
            .short_copies
            .iter()
            .map(|c| format!("{}-{}", c.topic, c.partition))
            .collect();
        self.trace.note(
            self.now,
            format!(
                "node {id} starts (start {incarnation}, durable commit {durable_commit}, \
                 short copies {short:?})"
            ),
        );
        self.step(i, Input::Register(registration));
    }

    fn crash(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].driver.is_some())
            .collect();
        // Some seeds keep a majority up (progress under crashes), others crash any
        // node (recovery of the whole group).
        let down = self.nodes.len() - up.len();
        let allowed =
            !up.is_empty() && (!self.faults.keep_majority || down < (self.nodes.len() - 1) / 2);
        if allowed {
            let i = up[self.rng.gen_range(0..up.len())];
            let tear = match self.faults.max_torn_bytes {
                0 => Tear::None,
                max => Tear::KeepTail(self.rng.gen_range(0..=max)),
            };
            self.stats.crashes += 1;
            self.take_down(i, tear, &format!("crashes ({tear:?})"), 1_500);
            self.maybe_damage_metadata(i);
            self.maybe_damage_copy(i);
        }
        let next = self.around(self.faults.crash_every_ms);
        self.after(next, Timer::Crash);
    }

    /// With `crash_before_report_per_mille`: kills a node that applied a Fetch (or
    /// OffsetForLeaderEpoch) answer in the event just handled, before the run observes the step, so its restart
    /// shows records no observation showed arriving. The disk keeps what was synced.
    fn maybe_crash_before_report(&mut self) {
        let rate = self.faults.crash_before_report_per_mille;
        if rate == 0 || self.now >= self.calm_from {
            return;
        }
        let answered: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i]
                    .host
                    .as_ref()
                    .is_some_and(|h| h.unreported_fetch_steps().iter().any(answered_traced))
            })
            .collect();
        for i in answered {
            let up = self.nodes.iter().filter(|n| n.driver.is_some()).count();
            let majority_stays = self.nodes.len() - up < (self.nodes.len() - 1) / 2;
            if majority_stays && self.rng.gen_range(0..1000) < rate {
                self.stats.crashes += 1;
                self.stats.crashes_before_report += 1;
                self.take_down(i, Tear::None, "crashes before its step is observed", 1_500);
            }
        }
    }

    /// Flips one byte of down node `i`'s Raft log, inside a record another record
    /// follows, when the seed's rate says so and no other node is still repairing.
    fn maybe_damage_metadata(&mut self, i: usize) {
        let rate = self.faults.damage_metadata_per_mille;
        if rate == 0
            || self.damage_rng.gen_range(0..1000) >= rate
            || self.nodes.iter().any(|n| n.metadata_damaged)
        {
            return;
        }
        let wal = Path::new(METADATA_DIR).join("wal.log");
        let Some(last_record) = last_record_start(&self.nodes[i].disk, &wal) else {
            return;
        };
        if last_record == 0 {
            return;
        }
        let at = self.damage_rng.gen_range(0..last_record);
        let flip = 1u8 << self.damage_rng.gen_range(0..8);
        if !flip_bits(&self.nodes[i].disk, &wal, at, flip) {
            return;
        }
        let node = &mut self.nodes[i];
        node.metadata_damaged = true;
        self.stats.metadata_damaged += 1;
        let id = node.id;
        self.trace.note(
            self.now,
            format!("node {id}: byte {at} of its Raft log damaged"),
        );
    }

    /// One byte of a batch of node `i`'s copy of a replicated partition, inside a
    /// batch that another follows (or, with `damage_last_frames`, a last one), while no other copy is damaged and another
    /// replica holds that batch durably: one fault, which R-REPL-4 must repair. (With
    /// no intact copy anywhere the records are gone, and a sole damaged copy only
    /// serves around them, as R-REPL-4 says.)
    fn maybe_damage_copy(&mut self, i: usize) {
        let rate = self.faults.damage_partition_per_mille;
        if rate == 0
            || self.copy_rng.gen_range(0..1000) >= rate
            || self.nodes.iter().any(|n| n.copy_damaged)
        {
            return;
        }
        let disk = self.nodes[i].disk.clone();
        let last_frames = self.faults.damage_last_frames;
        let elsewhere: Vec<MemDisk> = (0..self.nodes.len())
            .filter(|&j| j != i)
            .map(|j| self.nodes[j].disk.durable_copy())
            .collect();
        let candidates: Vec<(i32, PathBuf, Batch)> = (0..records::PARTITIONS)
            .flat_map(|p| {
                let held: Vec<(u64, u32)> = elsewhere
                    .iter()
                    .flat_map(|d| segment_batches(d, p))
                    .map(|(_, b)| (b.end_offset, b.crc))
                    .collect();
                segment_batches(&disk, p)
                    .into_iter()
                    .filter(move |(_, batch)| {
                        batch.followed != last_frames
                            && held.contains(&(batch.end_offset, batch.crc))
                    })
                    .map(move |(path, batch)| (p, path, batch))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (partition, path, batch) = &candidates[self.copy_rng.gen_range(0..candidates.len())];
        let at = self.copy_rng.gen_range(batch.bytes.clone());
        let flip = 1u8 << self.copy_rng.gen_range(0..8);
        if !flip_bits(&disk, path, at, flip) {
            return;
        }
        if *partition == 0 && last_frames {
            // The trace model takes no last frame for damage (a restart may cut it
            // as a torn write).
            self.disk_fault_on(i, "a damaged last batch of partition 0");
        } else if *partition == 0 && self.repl_traces.is_some() {
            let key = (records::TOPIC.to_string(), 0);
            self.network_fetch_steps.push((
                i,
                FetchStep::Damaged {
                    key,
                    offset: batch.first_offset,
                },
            ));
        }
        let node = &mut self.nodes[i];
        node.copy_damaged = true;
        self.stats.copies_damaged += 1;
        let id = node.id;
        self.trace.note(
            self.now,
            format!(
                "node {id}: byte {at} of {} damaged (offsets to {})",
                path.display(),
                batch.end_offset
            ),
        );
    }

    /// A damaged copy's repair ends once the node's logs have lost no offset.
    fn observe_copy_repair(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let healthy = match &node.host {
            Some(host) => host.damaged().is_none(),
            None => false,
        };
        let marked = node.host.as_ref().is_some_and(|h| h.marks_a_lost_tail());
        if node.copy_damaged && marked && !node.copy_tail_marked {
            node.copy_tail_marked = true;
            self.stats.tails_marked += 1;
        }
        if !node.copy_damaged || !healthy {
            return;
        }
        node.copy_damaged = false;
        node.copy_tail_marked = false;
        self.stats.copies_repaired += 1;
        let id = node.id;
        self.trace
            .note(self.now, format!("node {id}: its damaged copy is repaired"));
    }

    /// A node that `eligible` picks out, drawn at random; None if there is none.
    /// Trace validation of replication: what the nodes show now.
    fn observe_replication(&mut self) {
        self.locate_failed_syncs();
        let Some(traces) = &mut self.repl_traces else {
            return;
        };
        let mut fetches = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(host) = &mut node.host else {
                continue;
            };
            fetches.extend(host.take_fetch_steps().into_iter().map(|step| (i, step)));
        }
        // Dropped after the steps of the event that sent them.
        fetches.append(&mut self.network_fetch_steps);
        if !traces.active() {
            traces.forget_commits();
            return;
        }
        let mut shown = Vec::new();
        for (n, node) in self.nodes.iter().enumerate() {
            let running = match (&node.driver, &node.host) {
                (Some(driver), Some(host)) => Some((driver.node().state(), &*host.partitions)),
                _ => None,
            };
            match traces.shown(n, running, node.incarnation) {
                Ok(copy) => shown.push(copy),
                Err(why) => {
                    traces.end(why);
                    traces.forget_commits();
                    return;
                }
            }
        }
        let nodes: Vec<NodeShown> = self
            .nodes
            .iter()
            .zip(&shown)
            .map(|(n, shown)| NodeShown {
                incarnation: n.incarnation,
                disk_limited: n.disk_full,
                running: shown.as_ref(),
            })
            .collect();
        let acked = (self.producers.sent_ack_count(0), || {
            let acks = self.producers.sent_acks(0).into_iter();
            acks.map(|(offset, value)| (offset, entry_digest(&value)))
                .collect()
        });
        let deleted = self.trimmer.acknowledged_below(0);
        traces.observe(&nodes, acked, deleted, &fetches);
        for step in traces.take_shown() {
            self.trace.note(self.now, step);
        }
        if let Some(rejection) = traces.rejection.take() {
            traces.ended = Some("rejected".into());
            self.violation(format!(
                "C-9 replication trace validation (partition 0): {rejection}"
            ));
        }
    }

    fn random_node(&mut self, eligible: impl Fn(&SimNode) -> bool) -> Option<usize> {
        let picked: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| eligible(&self.nodes[i]))
            .collect();
        (!picked.is_empty()).then(|| picked[self.rng.gen_range(0..picked.len())])
    }

    /// The next fsync of a random live node fails, as a disk error would.
    fn fail_an_fsync(&mut self) {
        if let Some(i) = self.random_node(|n| n.driver.is_some()) {
            self.nodes[i].disk.fail_next_syncs(1);
            self.nodes[i].sync_will_fail = true;
            self.stats.fsync_failures += 1;
            let id = self.nodes[i].id;
            self.trace
                .note(self.now, format!("node {id}: its next fsync will fail"));
        }
        let next = self.around(self.faults.fsync_failure_every_ms);
        self.after(next, Timer::FsyncFailure);
    }

    /// Where each injected fsync failure landed, named in the trace. Trace validation
    /// maps one that hit a segment of partition 0 (the log goes offline and cuts its
    /// unsynced tail before it takes the next record, the model's `FsyncFail`,
    /// R-LOG-9) and one outside the partition (another log's, or the Raft log's, on
    /// which the node stops: a crash). One that hit partition 0's checkpoint or
    /// leader-epoch file is no step of its own (since stop 55): the write it belonged
    /// to fails and the files keep what they held, which shows only at a restart as
    /// an older high watermark (which the search allows) or log start. One that hit
    /// another file of partition 0 (an index) is not mapped yet and ends the trace.
    fn locate_failed_syncs(&mut self) {
        for i in 0..self.nodes.len() {
            for path in self.nodes[i].disk.take_failed_syncs() {
                let id = self.nodes[i].id;
                let hit = path
                    .as_ref()
                    .map_or("a file since removed".into(), |p| p.display().to_string());
                self.trace
                    .note(self.now, format!("node {id}: the failed fsync hit {hit}"));
                if failed_sync_unmapped(path.as_deref()) {
                    self.disk_fault_on(i, &format!("a failed fsync of {hit}"));
                } else if path.is_some_and(|p| p.starts_with(partition_dir(0)))
                    && repl_traces::replica(id)
                    && self.repl_traces.as_ref().is_some_and(|t| t.active())
                {
                    self.stats.repl_failed_syncs_validated += 1;
                }
            }
        }
    }

    /// Trace validation of replication sees partition 0's repair proposals where
    /// they are made, with the metadata they were made from.
    fn report_repair_proposal(&mut self, i: usize, key: &PartitionKey, command: &MetadataCommand) {
        let MetadataCommand::RepairReplica {
            leader_epoch,
            partition_epoch,
            ..
        } = command
        else {
            return;
        };
        if self.repl_traces.is_some() && repl_traces::traced_key(key) {
            self.network_fetch_steps.push((
                i,
                FetchStep::RepairProposed {
                    key: key.clone(),
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                },
            ));
        }
    }

    /// Trace validation of partition 0 ends at a disk fault of one of its replicas
    /// that the mapping does not cover.
    fn disk_fault_on(&mut self, i: usize, fault: &str) {
        let id = self.nodes[i].id;
        if let Some(traces) = &mut self.repl_traces {
            if repl_traces::replica(id) {
                traces.unmapped(format!("{fault} on node {id}"));
            }
        }
    }

    /// A random live node's disk fills up: it takes a few more bytes at most, until
    /// it is freed again.
    fn fill_a_disk(&mut self) {
        if let Some(i) = self.random_node(|n| n.driver.is_some() && !n.disk_full) {
            let node = &mut self.nodes[i];
            let room = self.rng.gen_range(0..2_048);
            node.disk.set_capacity(Some(node.disk.used_bytes() + room));
            node.disk_full = true;
            self.stats.disks_filled += 1;
            let id = node.id;
            let traced = self.repl_traces.as_ref().is_some_and(|t| t.active());
            if traced && repl_traces::replica(id) {
                self.stats.repl_full_disks_validated += 1;
            }
            self.trace.note(
                self.now,
                format!("node {id}: disk full ({room} bytes left)"),
            );
            let freed = self.rng.gen_range(100..2_500);
            self.after(freed, Timer::DiskFreed(i));
        }
        let next = self.around(self.faults.disk_full_every_ms);
        self.after(next, Timer::DiskFull);
    }

    fn free_disk(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.disk.set_capacity(None);
        node.disk_full = false;
        let id = node.id;
        self.trace.note(self.now, format!("node {id}: disk freed"));
    }

    /// A random live node stops running for a while; its packets wait.
    fn pause(&mut self) {
        let i = self.rng.gen_range(0..self.nodes.len());
        let until = self.now + self.rng.gen_range(100..2_000);
        self.nodes[i].paused_until = until;
        self.stats.pauses += 1;
        let id = self.nodes[i].id;
        self.trace
            .note(self.now, format!("node {id} paused until {until} ms"));
        let next = self.around(self.faults.pause_every_ms);
        self.after(next, Timer::Pause);
    }

    /// A random node's produce waiters stop looking for a while; the node runs on.
    fn stall_waiters(&mut self) {
        let i = self.rng.gen_range(0..self.nodes.len());
        let until = self.now + self.rng.gen_range(2_000..8_000);
        self.nodes[i].waiters_stalled_until = until;
        let id = self.nodes[i].id;
        self.trace.note(
            self.now,
            format!("node {id}'s waiters stalled until {until} ms"),
        );
        let next = self.around(self.faults.waiter_stall_every_ms);
        self.after(next, Timer::WaiterStall);
    }

    /// A start that failed: on a full disk the broker exits and is started again
    /// (its disk may have room by then); otherwise recovery is broken.
    fn failed_start(&mut self, i: usize, what: String) {
        if !self.nodes[i].disk_full {
            self.violation(what);
            return;
        }
        self.nodes[i].disk.crash(Tear::None);
        self.trace
            .note(self.now, format!("{what}; starts again later"));
        let back = self.rng.gen_range(100..1_000);
        self.after(back, Timer::Restart(i));
    }

    /// The node stopped on its storage error, as it must after a failed fsync or
    /// write: the process exits (unsynced bytes are lost) and is started again later.
    fn stopped_on_disk_error(&mut self, i: usize) {
        let why = if self.nodes[i].disk_full {
            "stopped on its full disk"
        } else {
            "stopped on its failed fsync"
        };
        self.take_down(i, Tear::None, why, 1_000);
    }

    /// The process of node `i` is gone: its memory, its unanswered clients and its
    /// unsynced bytes (but `tear`); it starts again within `max_down_ms`.
    fn take_down(&mut self, i: usize, tear: Tear, why: &str, max_down_ms: u64) {
        let node = &mut self.nodes[i];
        node.driver = None;
        node.host = None;
        node.groups = None;
        self.net.lose_to(node.id);
        // A pause was the dead process's; the next one starts running.
        node.paused_until = 0;
        node.waiters_stalled_until = 0;
        node.sync_will_fail = false;
        node.disk.fail_next_syncs(0);
        node.disk.crash(tear);
        self.raft_history.crashed(node.id);
        for (_, op) in std::mem::take(&mut node.pending) {
            self.ops[op].status = Status::Lost;
        }
        if let Some(traces) = &mut self.dir_traces {
            traces.observe(&Shown {
                node: node.id,
                event: DirEvent::Crash,
                state: None,
                partitions: None,
                disk: &node.disk,
                logs_dir: Path::new(host::LOGS_DIR),
                durable_commit: None,
            });
        }
        let id = node.id;
        self.trace.note(self.now, format!("node {id} {why}"));
        let back = self.rng.gen_range(50..max_down_ms);
        self.after(back, Timer::Restart(i));
    }

    fn partition(&mut self) {
        let ids = self.ids();
        let a = ids[self.rng.gen_range(0..ids.len())];
        if self.rng.gen_bool(0.5) {
            self.net.isolate(a, &ids);
            self.trace.note(self.now, format!("node {a} isolated"));
        } else {
            let b = ids[self.rng.gen_range(0..ids.len())];
            if a != b {
                self.net.block_one_way(a, b);
                self.trace
                    .note(self.now, format!("packets from {a} to {b} lost"));
            }
        }
        self.stats.partitions += 1;
        let heal = self.rng.gen_range(200..3_000);
        self.after(heal, Timer::Heal);
        let next = self.around(self.faults.partition_every_ms);
        self.after(next, Timer::Partition);
    }

    /// An admin client creates a topic through a random live node, as the
    /// CreateTopics handler does through the consensus handle; once the replicated
    /// topic exists, now and then it deletes a single-replica topic or adds a
    /// partition to one instead.
    fn client(&mut self) {
        // A paused process accepts nothing; the client picks a running node.
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].driver.is_some() && self.nodes[i].paused_until <= self.now)
            .collect();
        if !up.is_empty() {
            let i = up[self.rng.gen_range(0..up.len())];
            self.ask(i);
        }
        let next = self.around(self.opts.client_every_ms);
        self.after(next, Timer::Client);
    }

    /// An admin request to node `i`: with `admin_admission` checked first by the
    /// core's admin decisions on its view (refused there, it is never proposed), then
    /// proposed as the handler does.
    fn ask(&mut self, i: usize) {
        let (command, topic, admin) = self.admin_command(i);
        let reused = admin == Admin::Create
            && self
                .ops
                .iter()
                .any(|op| op.admin == Admin::Delete && op.topic == topic);
        self.stats.names_reused += u64::from(reused);
        let id = self.nodes[i].id;
        let Some(driver) = self.nodes[i].driver.as_ref() else {
            return;
        };
        let leaderless = driver.node().leader_id().is_none();
        let admitted = match self.opts.admin_admission {
            true => admission::admit(driver.node().state(), id as i32, &command),
            false => Ok(()),
        };
        let status = match &admitted {
            Ok(()) => Status::Pending,
            Err((code, message)) => Status::Failed(format!("refused {code:?}: {message}")),
        };
        let refusal = match &status {
            Status::Failed(why) => format!(", {why}"),
            _ => String::new(),
        };
        self.trace.note(
            self.now,
            format!("client asks node {id}: {admin:?} {topic}{refusal}"),
        );
        self.ops.push(ClientOp {
            node: i,
            topic,
            admin,
            status,
            leaderless,
        });
        if admitted.is_err() {
            self.stats.admin_refused += 1;
            return;
        }
        self.next_token += 1;
        let token = self.next_token;
        self.nodes[i].pending.insert(token, self.ops.len() - 1);
        self.stats.proposals += 1;
        self.step(i, Input::Propose { token, command });
    }

    /// One in ten proposals deletes a single-replica topic node `i` sees, one in ten
    /// adds a partition (on node `i`) to one; the rest create topics.
    fn admin_command(&mut self, i: usize) -> (MetadataCommand, String, Admin) {
        let create = |sim: &Self| {
            let command = sim.topic_to_create(i);
            let topic = match &command {
                MetadataCommand::CreateTopic { name, .. } => name.clone(),
                _ => String::new(),
            };
            (command, topic, Admin::Create)
        };
        let draw = self.rng.gen_range(0..10);
        let Some(driver) = self.nodes[i].driver.as_ref() else {
            return create(self);
        };
        let state = driver.node().state();
        let singles: Vec<(&String, usize)> = state
            .topics
            .iter()
            .filter(|(name, _)| name.as_str() != records::TOPIC)
            .map(|(name, t)| (name, t.partitions.len()))
            .collect();
        if singles.is_empty() || draw >= 2 {
            return create(self);
        }
        let (topic, partitions) = singles[self.rng.gen_range(0..singles.len())];
        let topic = topic.clone();
        if draw == 0 {
            let command = MetadataCommand::DeleteTopic {
                name: topic.clone(),
            };
            return (command, topic, Admin::Delete);
        }
        let command = MetadataCommand::CreatePartitions {
            topic: topic.clone(),
            new_partitions: vec![vec![self.nodes[i].id as i32]],
        };
        (command, topic, Admin::AddPartition(partitions + 1))
    }

    /// The replicated topic the producers write to, until some node's view has it;
    /// then a single-replica topic per proposal.
    fn topic_to_create(&self, i: usize) -> MetadataCommand {
        let view = self.nodes[i].driver.as_ref().map(|d| d.node().state());
        let exists = view.is_some_and(|state| state.topics.contains_key(records::TOPIC));
        if exists {
            let (topic, topic_id) = match self.deleted_name_to_reuse(i, view) {
                // Ids are never reused: a name created again gets a new one.
                Some(name) => {
                    let id = topic_uuid(&format!("{name}/{}", self.ops.len()));
                    (name, id)
                }
                None => {
                    let name = format!("t{}", self.ops.len());
                    let id = topic_uuid(&name);
                    (name, id)
                }
            };
            return MetadataCommand::CreateTopic {
                topic_id,
                name: topic,
                partitions: vec![vec![self.nodes[i].id as i32]],
                configs: Default::default(),
            };
        }
        let n = self.nodes.len();
        let factor = n.min(3);
        let partitions = (0..records::PARTITIONS as usize)
            .map(|p| (0..factor).map(|r| ((p + r) % n) as i32 + 1).collect())
            .collect();
        let min_insync = if factor >= 3 { "2" } else { "1" };
        MetadataCommand::CreateTopic {
            name: records::TOPIC.to_string(),
            topic_id: topic_uuid(records::TOPIC),
            partitions,
            configs: [("min.insync.replicas".to_string(), min_insync.to_string())].into(),
        }
    }

    /// Under `recreate_deleted_names`: a deleted topic's name that `view` does not
    /// show, or none. Draws no randomness otherwise, so other runs stay as they were.
    /// Only names node `i` created: the new topic's partition lands on `i`, where
    /// the deleted one's directory was.
    fn deleted_name_to_reuse(&self, i: usize, view: Option<&MetadataState>) -> Option<String> {
        if !self.faults.recreate_deleted_names {
            return None;
        }
        let created_here = |name: &str| {
            self.ops
                .iter()
                .any(|op| op.admin == Admin::Create && op.node == i && op.topic == name)
        };
        self.ops
            .iter()
            .filter(|op| op.admin == Admin::Delete && op.status == Status::Done)
            .map(|op| &op.topic)
            .filter(|name| created_here(name))
            .find(|name| !view.is_some_and(|state| state.topics.contains_key(name.as_str())))
            .cloned()
    }

    /// Every running node's partition work, then the producers'.
    fn partitions_tick(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused_until > self.now {
                continue;
            }
            let look_every = self.faults.waiter_look_every_ms;
            let stalled = self.nodes[i].waiters_stalled_until > self.now;
            let waiters_look = !stalled
                && (look_every == 0 || self.rng.gen_range(0..look_every) < PARTITION_TICK_MS);
            let node = &mut self.nodes[i];
            let (Some(driver), Some(host)) = (&node.driver, &mut node.host) else {
                continue;
            };
            let local = node.clock.local(self.now);
            let outs = host.tick(local, driver.node().state(), waiters_look);
            let state = driver.node().state();
            let group_outs = node.groups.as_mut().map(|g| g.tick(local, state));
            self.carry_out(i, outs);
            self.carry_out_group(i, group_outs.unwrap_or_default());
            self.observe_copy_repair(i);
            self.observe_replication();
        }
        let writing = self.now < self.calm_from;
        let (leaders, coordinator) = self.client_metadata();
        let requests = self
            .producers
            .tick(self.now, writing, |key| leaders.get(key).copied());
        let fetches = self
            .consumers
            .tick(self.now, |key| leaders.get(key).copied());
        let deletion = self.next_deletion(writing, &leaders);
        for (to, message) in requests.into_iter().chain(fetches).chain(deletion) {
            self.send_partition(CLIENTS, to, message);
        }
        let leader_of = |p: i32| leaders.get(&(records::TOPIC.to_string(), p)).copied();
        let group_requests = self.group_members.tick(self.now, coordinator, leader_of);
        for (to, payload) in group_requests {
            self.send(CLIENTS, to, payload);
        }
        for found in std::mem::take(&mut self.consumers.violations) {
            self.violation(found);
        }
        self.group_violations();
        self.after(PARTITION_TICK_MS, Timer::Partitions);
    }

    /// The trimmer's next DeleteRecords, below what the partition's consumer and
    /// the group have both read, while clients run.
    fn next_deletion(
        &mut self,
        writing: bool,
        leaders: &BTreeMap<PartitionKey, u64>,
    ) -> Option<(u64, host::Message)> {
        let every_ms = if writing {
            self.faults.trim_every_ms
        } else {
            0
        };
        let (consumers, members) = (&self.consumers, &self.group_members);
        let read_by_all = |p: i32| consumers.position(p).min(members.acknowledged_commit(p));
        self.trimmer.tick(
            self.now,
            every_ms,
            &mut self.trim_rng,
            |key| leaders.get(key).copied(),
            read_by_all,
        )
    }

    /// Where the clients believe each partition's leader and the group's
    /// coordinator are: what a random running node's metadata says (a client's
    /// Metadata and FindCoordinator requests).
    fn client_metadata(&mut self) -> (BTreeMap<(String, i32), u64>, Option<u64>) {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].driver.is_some())
            .collect();
        if up.is_empty() {
            return (BTreeMap::new(), None);
        }
        let i = up[self.rng.gen_range(0..up.len())];
        let Some(driver) = &self.nodes[i].driver else {
            return (BTreeMap::new(), None);
        };
        let state = driver.node().state();
        let leaders = (0..records::PARTITIONS)
            .filter_map(|p| {
                let info = state.partition(records::TOPIC, p)?;
                let leader = u64::try_from(info.leader?).ok()?;
                Some(((records::TOPIC.to_string(), p), leader))
            })
            .collect();
        let coordinator = state
            .coordinator_for(group_host::GROUP)
            .and_then(|b| u64::try_from(b.broker_id).ok());
        (leaders, coordinator)
    }

    /// A client's request goes as a Kafka frame (`wire.rs`).
    fn send_partition(&mut self, from: u64, to: u64, message: host::Message) {
        if to == CLIENTS && self.repl_traces.is_some() {
            self.note_produce_answer(&message);
        }
        let message = match wire::encode_request(&message, 0, -1) {
            Some(Ok(framed)) if from == CLIENTS => framed,
            Some(Err(e)) if from == CLIENTS => {
                return self.violation(format!("R-WIRE-13 a client cannot encode: {e}"));
            }
            _ => message,
        };
        self.send(from, to, Payload::Partition(message));
    }

    /// A leader's answer to a Produce as it leaves the leader: trace validation
    /// compares acknowledgements there, where the model's leader makes them.
    fn note_produce_answer(&mut self, message: &host::Message) {
        let decoded;
        let answer = match message {
            host::Message::KafkaAnswer {
                request,
                asked,
                frame,
            } => match wire::decode_answer(*request, asked, frame) {
                Ok(answer) => {
                    decoded = answer;
                    &decoded
                }
                // The client reports it when it arrives (R-WIRE-13).
                Err(_) => return,
            },
            other => other,
        };
        if let host::Message::ProduceAnswer { request, result } = answer {
            self.producers.answer_sent(*request, result);
        }
    }

    fn send(&mut self, from: u64, to: u64, payload: Payload) {
        let packet = Packet { from, to, payload };
        let traced = self.traced_message(&packet);
        let request = match &packet.payload {
            Payload::Partition(host::Message::KafkaRequest { request, .. }) => Some(*request),
            _ => None,
        };
        let answered = match &packet.payload {
            Payload::Partition(host::Message::KafkaAnswer { request, .. }) => Some(*request),
            _ => None,
        };
        // Counted whether or not the receiver still awaits it: the second answer
        // comes to a request already answered.
        if let Some(request) = answered {
            self.count_answer_sent(packet.to, request);
        }
        let fate = self.net.send(&mut self.rng, &self.faults, self.now, packet);
        let Some((message, sender, receiver)) = traced else {
            if matches!(fate, Fate::Dropped | Fate::Blocked) {
                self.stats.lost += 1;
            }
            return;
        };
        match fate {
            Fate::Dropped | Fate::Blocked => {
                self.stats.lost += 1;
                if let (Some(request), Some(receiver)) = (answered, receiver) {
                    let node = &self.nodes[receiver];
                    self.answer_of_fetch_sent_twice((node.id, request, node.incarnation));
                }
                let step = self.fetch_step_if_dropped(message, sender, receiver);
                self.network_fetch_steps.extend(step);
            }
            Fate::Duplicated => self.sent_twice(message, sender, request),
            Fate::Queued => {}
        }
    }

    /// What trace validation is told of a traced message the network sent twice.
    /// A produce is a retry, which the trace takes where the leader shows it
    /// (`Retry`); a copy of an answer comes to a request already answered, and its
    /// receiver drops it. A Fetch is the follower asking twice (`FetchSend`): the
    /// leader serves both, and the answer to the second copy is dropped by the
    /// follower as answered (`partition_message` reports it lost). So is an
    /// OffsetForLeaderEpoch question (since stop 54).
    fn sent_twice(&mut self, message: host::Message, sender: Option<usize>, request: Option<u64>) {
        match message {
            host::Message::Fetch { key, offset, .. } if repl_traces::traced_key(&key) => {
                if let Some(sender) = self.asked_twice(sender, request) {
                    self.network_fetch_steps
                        .push((sender, FetchStep::Asked { key, offset }));
                }
            }
            // The follower asking twice: the leader answers both copies (each an
            // `EpochAsk`, or nothing once the follower has cut), and the follower
            // drops the answer to the second as answered, reported lost.
            host::Message::EpochQuery { key, .. } if repl_traces::traced_key(&key) => {
                let copied = self.asked_twice(sender, request).is_some();
                let traced = self.repl_traces.as_ref().is_some_and(|t| t.active());
                self.stats.repl_epoch_copies += u64::from(copied && traced);
            }
            _ => {}
        }
    }

    /// An answer to `request` leaves for node `to`: one of the leader's answers if
    /// the network sent that Fetch twice.
    fn count_answer_sent(&mut self, to: u64, request: u64) {
        // Every answer of the run passes here; almost never is one of those.
        if self.fetches_sent_twice.is_empty() {
            return;
        }
        let Some(node) = self.nodes.iter().find(|n| n.id == to) else {
            return;
        };
        if let Some(answers) =
            self.fetches_sent_twice
                .get_mut(&(node.id, request, node.incarnation))
        {
            answers.sent = answers.sent.saturating_add(1);
        }
    }

    /// Notes that `sender`'s `request` went out twice, so that the answer to the
    /// second copy is reported lost (`note_second_answer`); the sender, if known.
    fn asked_twice(&mut self, sender: Option<usize>, request: Option<u64>) -> Option<usize> {
        let (sender, request) = (sender?, request?);
        let node = self.nodes.get(sender)?;
        self.fetches_sent_twice.insert(
            (node.id, request, node.incarnation),
            AnswersOfTwice::default(),
        );
        Some(sender)
    }

    /// The answer to a Fetch the network sent twice, come to a request already
    /// answered: the follower drops it, which trace validation is told as a lost
    /// answer (the model's leader answered both copies).
    fn note_second_answer(&mut self, i: usize, from: u64, message: &host::Message) {
        let host::Message::KafkaAnswer {
            request,
            asked,
            frame,
        } = message
        else {
            return;
        };
        let node = &self.nodes[i];
        let awaited = node
            .host
            .as_ref()
            .is_some_and(|h| h.awaits_answer(*request, from));
        let pending = self.answer_of_fetch_sent_twice((node.id, *request, node.incarnation));
        if awaited || !pending {
            return;
        }
        let Ok(answer) = wire::decode_answer(*request, asked, frame) else {
            return;
        };
        let step = self.fetch_step_if_dropped(answer, None, Some(i));
        self.network_fetch_steps.extend(step);
    }

    /// One of the two answers to a Fetch the network sent twice has arrived or was
    /// dropped; false if it was not such a Fetch, or every answer the leader has
    /// sent to it is already accounted for (this one is a copy the network made of
    /// an answer: swarm seeds 1417 and 2397 reported it as a second answer lost,
    /// which no model step had served).
    fn answer_of_fetch_sent_twice(&mut self, request: (u64, u64, u64)) -> bool {
        let Some(answers) = self.fetches_sent_twice.get_mut(&request) else {
            return false;
        };
        // More answers than the leader sent: a copy the network made.
        if answers.accounted >= answers.sent {
            return false;
        }
        answers.accounted += 1;
        if answers.accounted == 2 {
            self.fetches_sent_twice.remove(&request);
        }
        true
    }

    /// A partition message as trace validation reads it (only while traces are
    /// validated), with its sender's and receiver's node indexes.
    fn traced_message(
        &self,
        packet: &Packet,
    ) -> Option<(host::Message, Option<usize>, Option<usize>)> {
        self.repl_traces.as_ref()?;
        let index = |id: u64| self.nodes.iter().position(|n| n.id == id);
        // Between nodes and clients, requests and answers travel as Kafka frames.
        let message = match &packet.payload {
            Payload::Partition(host::Message::KafkaRequest { request, frame }) => {
                wire::decode_request(*request, frame.clone()).ok()?.0
            }
            Payload::Partition(host::Message::KafkaAnswer {
                request,
                asked,
                frame,
            }) => {
                // An answer to a request the receiver's current start is not waiting
                // for goes to a connection that died with its sender: the model makes
                // no answer then, so there is none to lose.
                let receiver = self.nodes.iter().find(|n| n.id == packet.to)?;
                if !receiver.host.as_ref()?.awaits_answer(*request, packet.from) {
                    return None;
                }
                wire::decode_answer(*request, asked, frame).ok()?
            }
            Payload::Partition(message) => message.clone(),
            _ => return None,
        };
        Some((message, index(packet.from), index(packet.to)))
    }

    /// What trace validation is told if the network drops `message` from node index
    /// `from` to `to` (`None`: a client): a follower's Fetch, or an answer with
    /// records or an epoch's end to one.
    fn fetch_step_if_dropped(
        &self,
        message: host::Message,
        from: Option<usize>,
        to: Option<usize>,
    ) -> Option<(usize, FetchStep)> {
        match message {
            host::Message::Fetch { key, offset, .. } => {
                Some((from?, FetchStep::Dropped { key, offset }))
            }
            host::Message::FetchAnswer {
                key,
                epoch,
                answer: Ok(fetched),
                ..
            } => Some((
                to?,
                FetchStep::AnswerDropped {
                    key,
                    epoch,
                    records: AnswerRecords::of(fetched.records.as_deref()),
                    refused_at: None,
                },
            )),
            host::Message::FetchAnswer {
                key,
                epoch,
                answer: Err(errors::OFFSET_OUT_OF_RANGE),
                leader_start,
            } => Some((
                to?,
                FetchStep::AnswerDropped {
                    key,
                    epoch,
                    records: AnswerRecords::of(None),
                    refused_at: Some(leader_start),
                },
            )),
            host::Message::EpochAnswer {
                key,
                current_epoch,
                answer: Ok(_),
            } => Some((
                to?,
                FetchStep::EpochAnswerDropped {
                    key,
                    epoch: current_epoch,
                },
            )),
            _ => None,
        }
    }

    fn partition_message(&mut self, i: usize, from: u64, message: host::Message) {
        if self.nodes[i].id == CLIENTS {
            return;
        }
        if self.repl_traces.is_some() {
            self.note_second_answer(i, from, &message);
        }
        let node = &mut self.nodes[i];
        let (Some(driver), Some(host)) = (&node.driver, &mut node.host) else {
            return;
        };
        let local = node.clock.local(self.now);
        let outs = host.handle(local, driver.node().state(), from, message);
        self.carry_out(i, outs);
    }

    fn group_message(&mut self, i: usize, message: GroupMessage) {
        let node = &mut self.nodes[i];
        let (Some(driver), Some(groups)) = (&node.driver, &mut node.groups) else {
            return;
        };
        let local = node.clock.local(self.now);
        let state = driver.node().state();
        let line = matches!(message, GroupMessage::OffsetFetch { .. }).then(|| {
            let committed = state.offsets.get(group_host::GROUP);
            let applied = state.applied_index;
            format!(
                "node {} (applied {applied}) reads offsets {committed:?}",
                node.id
            )
        });
        let outs = groups.handle(local, state, message);
        if let Some(line) = line {
            self.trace.note(self.now, line);
        }
        self.carry_out_group(i, outs);
    }

    /// A coordinator's answers go to the members; its proposals go through its
    /// node's driver, their outcomes back to it (`answered`).
    fn carry_out_group(&mut self, i: usize, outs: Vec<GroupOut>) {
        let from = self.nodes[i].id;
        for out in outs {
            match out {
                GroupOut::Answer(message) => self.send(from, CLIENTS, Payload::Group(message)),
                GroupOut::Propose(wait, command) => {
                    if let MetadataCommand::CommitOffsets { offsets, fence, .. } = &command {
                        for commit in offsets {
                            if let Some(committed) = group_host::Committed::proposed(commit, fence)
                            {
                                self.group_members.proposed(commit.partition, committed);
                            }
                        }
                        let offsets: Vec<(i32, i64)> =
                            offsets.iter().map(|o| (o.partition, o.offset)).collect();
                        let line = format!("node {from} proposes commit {offsets:?} {fence:?}");
                        self.trace.note(self.now, line);
                    }
                    if let MetadataCommand::StoreConsumerGroup { record, .. } = &command {
                        let members: Vec<(&str, i32)> = record
                            .members
                            .iter()
                            .map(|m| (m.member_id.as_str(), m.epoch))
                            .collect();
                        let line = format!(
                            "node {from} stores the group at epoch {}, members {members:?}",
                            record.group_epoch
                        );
                        self.trace.note(self.now, line);
                    }
                    self.next_token += 1;
                    let token = self.next_token;
                    let incarnation = self.nodes[i].incarnation;
                    self.group_waits.insert(token, (i, incarnation, wait));
                    self.step(i, Input::Propose { token, command });
                }
            }
        }
    }

    fn group_violations(&mut self) {
        for found in std::mem::take(&mut self.group_members.violations) {
            self.violation(found);
        }
    }

    /// A group member's process restarts (while clients run).
    fn restart_a_member(&mut self) {
        if self.now >= self.calm_from {
            return;
        }
        let m = self.group_rng.gen_range(0..MEMBERS);
        let gracefully = self.group_rng.gen_bool(0.5);
        let leave = self.group_members.restart(m, self.now, gracefully);
        let how = if gracefully {
            "leaves and restarts"
        } else {
            "restarts"
        };
        self.trace.note(self.now, format!("group member {m} {how}"));
        let (_, coordinator) = self.client_metadata();
        if let (Some(leave), Some(to)) = (leave, coordinator) {
            self.send(CLIENTS, to, Payload::Group(leave));
        }
        let next = self.group_rng.gen_range(500..2_500);
        self.after(next, Timer::MemberRestart);
    }

    fn carry_out(&mut self, i: usize, outs: Vec<Out>) {
        let from = self.nodes[i].id;
        // The injected fsync failure is the disk's, and a partition log may take it:
        // that log goes offline and cuts its tail (R-LOG-9) while the node runs on,
        // so a later metadata error is no longer excused by it.
        let node = &mut self.nodes[i];
        if node.sync_will_fail && node.disk.sync_failures_pending() == 0 {
            node.sync_will_fail = false;
        }
        for out in outs {
            match out {
                Out::Send(to, message) => self.send_partition(from, to, message),
                Out::Propose(command) => {
                    // The answer goes to no client: the next view shows the outcome.
                    self.next_token += 1;
                    let token = self.next_token;
                    self.step(i, Input::Propose { token, command });
                }
                Out::ProposeRepair(key, command) => {
                    self.report_repair_proposal(i, &key, &command);
                    self.next_token += 1;
                    let token = self.next_token;
                    let incarnation = self.nodes[i].incarnation;
                    self.repair_waits.insert(token, (i, incarnation, key));
                    self.step(i, Input::Propose { token, command });
                }
                Out::Note(line) => self.trace.note(self.now, line),
                Out::Broken(line) => self.violation(line),
            }
        }
    }

    fn deliver(&mut self, mut packet: Packet) {
        if packet.to == CLIENTS {
            if let Payload::Partition(host::Message::KafkaAnswer {
                request,
                asked,
                frame,
            }) = &packet.payload
            {
                match wire::decode_answer(*request, asked, frame) {
                    Ok(answer) => packet.payload = Payload::Partition(answer),
                    Err(e) => {
                        let line = format!("R-WIRE-13 a client cannot decode an answer: {e}");
                        return self.violation(line);
                    }
                }
            }
            match packet.payload {
                Payload::Partition(host::Message::ProduceAnswer { request, result }) => {
                    let answering = self.nodes.iter().find(|n| n.id == packet.from);
                    let held_at = |partition: i32, offset: u64| {
                        let host = answering?.host.as_ref()?;
                        let log = host.partitions.get(records::TOPIC, partition)?;
                        let value = records::value_at(&log, offset)?;
                        Some((value, log.leader_epoch_at(offset)))
                    };
                    let answer = (request, result);
                    if let Some(line) = self.producers.answered(self.now, answer, held_at) {
                        self.trace.note(self.now, line);
                    }
                }
                Payload::Partition(host::Message::ConsumerFetchAnswer {
                    request,
                    answer,
                    log_start,
                }) if request > FETCH_REQUEST_BASE => {
                    self.group_members.fetched(request, answer, log_start);
                    self.group_violations();
                }
                Payload::Partition(host::Message::ConsumerFetchAnswer {
                    request,
                    answer,
                    log_start,
                }) => {
                    self.consumers
                        .answered(self.now, request, answer, log_start);
                }
                Payload::Partition(host::Message::DeleteRecordsAnswer { request, result }) => {
                    if let Some(line) = self.trimmer.answered(self.now, request, result) {
                        self.trace.note(self.now, line);
                    }
                }
                Payload::Group(message) => {
                    if let Some(line) = self.group_members.answered(self.now, message) {
                        self.trace.note(self.now, line);
                    }
                    self.group_violations();
                }
                _ => {}
            }
            return;
        }
        let Some(i) = self.nodes.iter().position(|n| n.id == packet.to) else {
            return;
        };
        if self.nodes[i].driver.is_none() {
            self.stats.lost += 1;
            return;
        }
        if self.nodes[i].paused_until > self.now {
            let until = self.nodes[i].paused_until;
            self.net.requeue(until, packet);
            return;
        }
        let bytes = match packet.payload {
            Payload::Raft(bytes) => bytes,
            Payload::Partition(message) => return self.partition_message(i, packet.from, message),
            Payload::Group(message) => return self.group_message(i, message),
        };
        match net::decode(&bytes) {
            Ok((from, message)) if from == packet.from => {
                self.stats.delivered += 1;
                self.trace
                    .hash_only(self.now, &format!("{}>{}", packet.from, packet.to));
                self.step(i, Input::Peer { from, message });
            }
            Ok((from, _)) => self.violation(format!(
                "R-CLUSTER-1 packet from {} decodes as sent by {from}",
                packet.from
            )),
            Err(e) => self.violation(format!("R-CLUSTER-1 a peer message does not decode: {e}")),
        }
    }

    fn step(&mut self, i: usize, input: Input) {
        let now = self.nodes[i].clock.local(self.now);
        let (id, damaged) = (self.nodes[i].id, self.nodes[i].metadata_damaged);
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return;
        };
        self.stats.steps += 1;
        let result = driver.step(now, input);
        // Checked before the effects (publishing a view may take the node down). A
        // failed step is not checked but kept: raft-rs may have cut its log in
        // memory, lowering its persisted index, before the write that failed.
        let node = driver.node();
        let position = node.position();
        if result.is_err() {
            let seen = RaftSeen::of(&node.observe(), position.leader);
            self.raft_history.failed(id, seen);
        } else if self.raft_history.moved(id, position) {
            let seen = RaftSeen::of(&node.observe(), position.leader);
            self.raft_history.observe(id, seen, damaged);
        }
        for what in std::mem::take(&mut self.raft_history.violations) {
            self.violation(what);
        }
        let effects = match result {
            Ok(effects) => effects,
            Err(e) if self.nodes[i].sync_will_fail || self.nodes[i].disk_full => {
                let _ = e;
                self.stopped_on_disk_error(i);
                return;
            }
            Err(e) => {
                let id = self.nodes[i].id;
                self.violation(format!("node {id} stopped on an error: {e}"));
                self.nodes[i].driver = None;
                return;
            }
        };
        for effect in effects {
            self.effect(i, effect);
        }
        self.observe_leadership(i);
        self.observe_repair(i);
    }

    /// A damaged node's repair ends once its registration of this start is applied
    /// (R-RECOVER-9).
    fn observe_repair(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let repaired = node
            .driver
            .as_ref()
            .is_some_and(|d| !d.node().is_repairing());
        if node.metadata_damaged && repaired {
            node.metadata_damaged = false;
            self.stats.metadata_repaired += 1;
            let id = node.id;
            self.trace
                .note(self.now, format!("node {id}: its Raft log is repaired"));
        }
    }

    fn effect(&mut self, i: usize, effect: Effect) {
        let from = self.nodes[i].id;
        match effect {
            Effect::Send { to, message } => match message.encode(from) {
                Ok(bytes) => {
                    let fate = self.net.send(
                        &mut self.rng,
                        &self.faults,
                        self.now,
                        Packet {
                            from,
                            to,
                            payload: Payload::Raft(bytes),
                        },
                    );
                    if matches!(fate, Fate::Dropped | Fate::Blocked) {
                        self.stats.lost += 1;
                    }
                }
                Err(e) => self.violation(format!("R-CLUSTER-1 node {from} cannot encode: {e}")),
            },
            Effect::PublishView => self.published(i),
            Effect::Answer { token, result } => self.answered(i, token, result),
        }
    }

    /// Node `i` published a new view: the checker records what it committed, its
    /// partition logs follow the assignment, and the trace notes leadership changes
    /// of the replicated topic.
    fn published(&mut self, i: usize) {
        let from = self.nodes[i].id;
        let node = &mut self.nodes[i];
        let Some(driver) = &node.driver else {
            return;
        };
        let observed = driver.node().observe();
        self.checker.committed(from, &observed);
        if let Some(traces) = &mut self.dir_traces {
            traces.committed(&observed);
        }
        let state = driver.node().state();
        let committed = state
            .offsets
            .get(group_host::GROUP)
            .and_then(|topics| topics.get(records::TOPIC))
            .into_iter()
            .flatten()
            .filter_map(|(p, o)| Some((*p, group_host::Committed::of(o)?)));
        self.group_members.applied(state.applied_index, committed);
        if let Some(record) = state.consumer_groups.get(group_host::GROUP) {
            self.group_members
                .stored_assignment(state.applied_index, record);
        }
        // The broker reconciles its partitions after it publishes a view, not in the
        // same step: under the names storm a node that learns a deletion of a topic it
        // hosts dies before removing it now and then, so a start meets the deleted
        // topic's directory (R-RECOVER-8's strays).
        let drops_hosted = self.faults.recreate_deleted_names
            && node.host.as_ref().is_some_and(|h| {
                h.partitions
                    .all()
                    .iter()
                    .any(|((topic, _), _)| !state.topics.contains_key(topic))
            });
        if drops_hosted && self.rng.gen_bool(CRASH_BEFORE_RECONCILE) {
            self.take_down(
                i,
                Tear::None,
                "crashes before removing a deleted topic",
                1_500,
            );
            return;
        }
        // Only where names come back: listing every stamp at every view costs a
        // fifth of the simulator's speed, and without a name created again a view
        // removes only deleted topics' directories.
        let watch = self.faults.recreate_deleted_names && node.host.is_some();
        let before = watch.then(|| stamped_dirs(&node.disk));
        if let Some(Err(e)) = node.host.as_ref().map(|h| h.on_view(state)) {
            self.trace
                .note(self.now, format!("node {from} cannot open a log: {e}"));
        }
        if let Some(before) = before {
            let after = stamped_dirs(&node.disk);
            let removed = before
                .into_iter()
                .filter(|(dir, _)| !after.contains_key(dir));
            self.removed_dirs
                .extend(removed.map(|(dir, stamp)| (from, dir, stamp)));
        }
        if let Some(traces) = &mut self.dir_traces {
            traces.observe(&Shown {
                node: from,
                event: DirEvent::View,
                state: Some(state),
                partitions: node.host.as_ref().map(|h| h.partitions.as_ref()),
                disk: &node.disk,
                logs_dir: Path::new(host::LOGS_DIR),
                durable_commit: None,
            });
        }
        let seen: Vec<(i32, i32, Vec<i32>)> = (0..records::PARTITIONS)
            .filter_map(|p| state.partition(records::TOPIC, p))
            .map(|p| (broker_to_wire(p.leader), p.leader_epoch, p.isr.clone()))
            .collect();
        if state.brokers_changed_at != node.seen_brokers_change {
            node.seen_brokers_change = state.brokers_changed_at;
            let fenced: Vec<i32> = state
                .brokers
                .values()
                .filter(|b| b.fenced)
                .map(|b| b.broker_id)
                .collect();
            let line = format!(
                "node {from} sees the brokers change at index {} (fenced: {fenced:?}, \
                 {} coordinates {})",
                state.brokers_changed_at,
                state
                    .coordinator_for(group_host::GROUP)
                    .map_or(-1, |b| b.broker_id),
                group_host::GROUP
            );
            self.trace.note(self.now, line);
        }
        if seen != node.seen_partitions {
            let line = format!(
                "node {from} sees {} as (leader, epoch, ISR) {seen:?}",
                records::TOPIC
            );
            node.seen_partitions = seen;
            self.trace.note(self.now, line);
        }
        self.group_violations();
    }

    /// A proposer's answer. "Done" must already be visible in the answering node's
    /// view (the shell answers only after publishing it: R-PERSIST-1).
    fn answered(&mut self, i: usize, token: u64, result: Result<ApplyOutcome, ProposalFailure>) {
        if let Some((node, incarnation, wait)) = self.group_waits.remove(&token) {
            let n = &mut self.nodes[node];
            let same_start = n.incarnation == incarnation && node == i;
            let outs = match (&mut n.groups, &n.driver) {
                (Some(groups), Some(driver)) if same_start => {
                    groups.stored(wait, result, driver.node().state())
                }
                _ => Vec::new(),
            };
            self.carry_out_group(node, outs);
            return;
        }
        if let Some((node, incarnation, key)) = self.repair_waits.remove(&token) {
            let refused = match result {
                Ok(ApplyOutcome::Rejected { code, .. }) => Some(Some(code)),
                Ok(_) => None,
                Err(_) => Some(None),
            };
            let n = &self.nodes[node];
            if let (Some(host), true) = (&n.host, n.incarnation == incarnation && node == i) {
                host.repair_answered(&key, refused, n.clock.local(self.now));
            }
            return;
        }
        let Some(op) = self.nodes[i].pending.remove(&token) else {
            return;
        };
        let topic = self.ops[op].topic.clone();
        let admin = self.ops[op].admin;
        let id = self.nodes[i].id;
        let status = match &result {
            Ok(ApplyOutcome::Done) => Status::Done,
            Ok(other) => Status::Failed(format!("{other:?}")),
            Err(failure) => Status::Failed(format!("{failure:?}")),
        };
        if status == Status::Done {
            self.stats.acknowledged += 1;
            self.stats.leaderless_acknowledged += u64::from(self.ops[op].leaderless);
            let visible = self.nodes[i]
                .driver
                .as_ref()
                .is_some_and(|d| shows(d.node().state(), &topic, admin));
            // The view may already hold a later deletion of the topic, or a later
            // creation of a deleted name.
            let undone_later = match admin {
                Admin::Delete => self.ops[op + 1..]
                    .iter()
                    .any(|o| o.admin == Admin::Create && o.topic == topic),
                _ => self
                    .ops
                    .iter()
                    .any(|o| o.admin == Admin::Delete && o.topic == topic),
            };
            if !visible && !undone_later {
                self.violation(format!(
                    "R-PERSIST-1 node {id} acknowledged {admin:?} {topic} before its view \
                     shows it"
                ));
            }
        }
        self.trace
            .note(self.now, format!("node {id} answers {topic}: {status:?}"));
        self.ops[op].status = status;
    }

    fn observe_leadership(&mut self, i: usize) {
        let Some(driver) = &self.nodes[i].driver else {
            return;
        };
        let node = driver.node();
        let (id, leader, term) = (node.id(), node.leader_id(), node.term());
        if self.nodes[i].last_leader != leader {
            self.nodes[i].last_leader = leader;
            self.stats.leader_changes += 1;
            self.trace.note(
                self.now,
                format!("node {id} sees leader {leader:?} in term {term}"),
            );
        }
    }

    /// The producers' history against the settled cluster, and liveness: every
    /// partition led by an ISR member, every produce a node took answered.
    fn check_partitions(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for node in &self.nodes {
            if let Some(host) = node
                .host
                .as_ref()
                .filter(|h| h.overdue_requests(node.clock.local(self.now)) > 0)
            {
                problems.push(format!(
                    "R-PROPOSE-2 node {} has {} produce or DeleteRecords requests unanswered \
                     past their timeout",
                    node.id,
                    host.overdue_requests(node.clock.local(self.now))
                ));
            }
        }
        let Some(state) = self
            .nodes
            .iter()
            .find_map(|n| n.driver.as_ref().map(|d| d.node().state()))
        else {
            return problems;
        };
        if !state.topics.contains_key(records::TOPIC) {
            return problems;
        }
        let log_of = |id: i32, p: i32| {
            self.nodes
                .iter()
                .find(|n| n.id as i32 == id)
                .and_then(|n| n.host.as_ref())
                .and_then(|h| h.partitions.get(records::TOPIC, p))
        };
        for p in 0..records::PARTITIONS {
            let Some(info) = state.partition(records::TOPIC, p) else {
                continue;
            };
            let Some(leader_id) = info.leader.filter(|l| info.isr.contains(l)) else {
                problems.push(format!(
                    "I-5 after settling, {}-{p} has leader {:?} outside its ISR {:?}",
                    records::TOPIC,
                    info.leader,
                    info.isr
                ));
                continue;
            };
            let Some(leader) = log_of(leader_id, p) else {
                problems.push(format!(
                    "I-5 the leader of {}-{p} has no log",
                    records::TOPIC
                ));
                continue;
            };
            let followers: Vec<_> = info
                .isr
                .iter()
                .filter(|r| **r != leader_id)
                .filter_map(|r| log_of(*r, p).map(|log| (*r as u64, log)))
                .collect();
            let replicas: Vec<(u64, &chronik_core::log::PartitionLog)> = followers
                .iter()
                .map(|(id, log)| (*id, log.as_ref()))
                .collect();
            let hw = leader.high_watermark();
            let leader_start = leader.log_start_offset();
            problems.extend(self.trimmer.check(p, leader_start));
            let asked_below = self.trimmer.deleted_below(p);
            let empty = BTreeMap::new();
            let read = self.consumers.reads(p).unwrap_or(&empty);
            match read_values(&leader, hw) {
                Ok(held) => {
                    let history = (&held, hw, info.leader_epoch);
                    let deleted = (asked_below, leader_start, read);
                    problems.extend(self.producers.check(p, history, &replicas, deleted));
                    self.stats.leader_acks_checked +=
                        self.producers.leader_acks_in_epoch(p, info.leader_epoch);
                    problems.extend(self.consumers.check(p, &held, leader_start));
                    let committed = state
                        .offsets
                        .get(group_host::GROUP)
                        .and_then(|topics| topics.get(records::TOPIC))
                        .and_then(|c| c.get(&p))
                        .and_then(|o| u64::try_from(o.offset).ok());
                    problems.extend(self.group_members.check(p, &held, committed));
                }
                Err(e) => problems.push(format!("R-REPL-1 p{p}: the leader's log: {e}")),
            }
        }
        problems
    }

    /// Every acknowledged admin operation holds in the settled metadata (a topic
    /// deleted later is excused for its creation and growth), no node removed a
    /// directory of a topic id the metadata still has, and no node keeps a directory
    /// of a deleted topic once it runs (R-RECOVER-8).
    fn check_admin(&self, state: &MetadataState) -> Vec<String> {
        let deleted: BTreeSet<&str> = self
            .ops
            .iter()
            .filter(|op| op.admin == Admin::Delete)
            .map(|op| op.topic.as_str())
            .collect();
        let mut problems = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            if op.status != Status::Done {
                continue;
            }
            // A deletion is undone by a creation of the same name after it (issued
            // once the deletion applied where it is issued; it may time out and
            // apply anyway).
            let recreated = || {
                self.ops[i + 1..]
                    .iter()
                    .any(|later| later.topic == op.topic && later.admin == Admin::Create)
            };
            let excused = match op.admin {
                Admin::Delete => recreated(),
                _ => deleted.contains(op.topic.as_str()),
            };
            if !excused && !shows(state, &op.topic, op.admin) {
                problems.push(format!(
                    "R-PERSIST-1 acknowledged {:?} of topic {} is lost",
                    op.admin, op.topic
                ));
            }
        }
        for (node, dir, stamp) in &self.removed_dirs {
            if state.topics.values().any(|t| &t.topic_id == stamp) {
                problems.push(format!(
                    "R-RECOVER-8 node {node} removed {dir}, a directory of topic id {stamp}, \
                     which the metadata still has"
                ));
            }
        }
        for node in self.nodes.iter().filter(|n| n.host.is_some()) {
            let dirs = node
                .disk
                .list_dir(Path::new(host::LOGS_DIR))
                .unwrap_or_default();
            let stray: Vec<&String> = dirs
                .iter()
                .filter(|dir| {
                    let topic = dir.rsplit_once('-').map_or(dir.as_str(), |(t, _)| t);
                    !state.topics.contains_key(topic) && deleted.contains(topic)
                })
                .collect();
            if !stray.is_empty() {
                problems.push(format!(
                    "R-RECOVER-8 node {} keeps directories of deleted topics: {stray:?}",
                    node.id
                ));
            }
        }
        problems
    }

    fn violation(&mut self, what: String) {
        self.trace.note(self.now, format!("VIOLATION {what}"));
        self.checker.violations.push(what);
    }

    /// After the settle phase: I-5 (converged, one leader, everyone registered),
    /// every question answered, and no acknowledged proposal lost.
    fn final_checks(&mut self) {
        let mut problems = Vec::new();
        let drivers: Vec<(u64, u64, &Driver)> = self
            .nodes
            .iter()
            .filter_map(|n| n.driver.as_ref().map(|d| (n.id, n.incarnation, d)))
            .collect();
        if drivers.len() != self.nodes.len() {
            problems.push("I-5 not every node is up after the settle phase".to_string());
        }
        let leaders: Vec<u64> = drivers
            .iter()
            .filter(|(_, _, d)| d.node().is_leader())
            .map(|(id, _, _)| *id)
            .collect();
        if leaders.len() != 1 {
            problems.push(format!("I-5 after settling, leaders are {leaders:?}"));
        }
        if let Some((first_id, _, first)) = drivers.first() {
            let reference = first.node().state();
            for (id, _, d) in &drivers {
                if d.node().state() != reference {
                    problems.push(format!(
                        "I-5 metadata of node {id} (applied {}) differs from node {first_id} \
                         (applied {})",
                        d.node().state().applied_index,
                        reference.applied_index
                    ));
                }
                if leaders.len() == 1 && d.node().leader_id() != Some(leaders[0]) {
                    problems.push(format!(
                        "I-5 node {id} sees leader {:?}, not {}",
                        d.node().leader_id(),
                        leaders[0]
                    ));
                }
            }
            for (id, _, d) in &drivers {
                if d.node().is_repairing() {
                    problems.push(format!(
                        "R-RECOVER-9 node {id} still repairs its Raft log after settling"
                    ));
                }
            }
            for node in &self.nodes {
                if let Some(lost_from) = node.host.as_ref().and_then(|h| h.damaged()) {
                    problems.push(format!(
                        "R-REPL-4 node {} still holds a damaged copy (lost from offset \
                         {lost_from}) after settling",
                        node.id
                    ));
                }
            }
            for (id, incarnation, _) in &drivers {
                let registered = reference
                    .brokers
                    .get(&(*id as i32))
                    .is_some_and(|b| b.incarnation == *incarnation && !b.fenced);
                if !registered {
                    problems.push(format!(
                        "R-START-3 node {id} (start {incarnation}) is not registered after settling"
                    ));
                }
            }
            problems.extend(self.check_admin(reference));
        }
        problems.extend(self.check_partitions());
        problems.extend(self.group_members.history_violations());
        for op in self.ops.iter().filter(|op| op.status == Status::Pending) {
            problems.push(format!(
                "R-PROPOSE-2 the proposal of {} at node {} was never answered",
                op.topic, self.nodes[op.node].id
            ));
        }
        if let Some(traces) = &mut self.dir_traces {
            self.stats.dir_steps_validated = traces.steps_validated;
            self.stats.dir_traces = traces.started;
            self.stats.dir_traces_abandoned = traces.abandoned;
            problems.extend(
                std::mem::take(&mut traces.rejections)
                    .into_iter()
                    .map(|r| format!("R-RECOVER-8 trace validation: {r}")),
            );
        }
        self.stats.raft_changes_validated = self.raft_history.changes;
        if let Some(traces) = &self.repl_traces {
            self.stats.repl_steps_validated = traces.steps_validated;
            self.stats.repl_deletions_validated = traces.deletions_validated;
            self.stats.repl_refusals_validated = traces.refusals_validated;
            self.stats.repl_damages_validated = traces.damages_validated;
            self.stats.repl_restarts_before_trace = traces.restarts_before_trace;
            self.stats.repl_trace_ended = traces.ended.clone();
        }
        for problem in problems {
            self.violation(problem);
        }
    }
}

/// The partition directories on `disk` with their topic id stamps.
fn stamped_dirs(disk: &MemDisk) -> BTreeMap<String, String> {
    let root = Path::new(host::LOGS_DIR);
    let names = disk.list_dir(root).unwrap_or_default();
    names
        .into_iter()
        .filter_map(|name| {
            let stamp = chronik_core::replication::read_stamp(disk, &root.join(&name)).ok()??;
            Some((name, stamp.id()?.to_string()))
        })
        .collect()
}

/// `state` shows what `admin` did to `topic`: it exists, it is gone, or it has the
/// partitions asked for.
fn shows(state: &MetadataState, topic: &str, admin: Admin) -> bool {
    let partitions = state.topics.get(topic).map(|t| t.partitions.len());
    match admin {
        Admin::Create => partitions.is_some(),
        Admin::Delete => partitions.is_none(),
        Admin::AddPartition(wanted) => partitions.is_some_and(|n| n >= wanted),
    }
}

/// Where the last whole record of the file at `path` starts: bytes before it lie in
/// records that another record follows.
/// Flips the bits `mask` of byte `at` of `path`, as a bad sector would; false if the
/// byte cannot be read or written.
fn flip_bits(disk: &MemDisk, path: &Path, at: u64, mask: u8) -> bool {
    let mut byte = [0u8; 1];
    let read = disk
        .open_file(path, OpenMode::Existing)
        .and_then(|f| f.read_full_at(&mut byte, at));
    read.is_ok() && disk.corrupt(path, at as usize, &[byte[0] ^ mask]).is_ok()
}

/// A stored batch of a partition segment: its bytes in the file, the offset after
/// its last record, and whether another frame follows it in the file.
struct Batch {
    bytes: std::ops::Range<u64>,
    first_offset: u64,
    end_offset: u64,
    /// The frame's checksum, which covers the whole batch as stored.
    crc: u32,
    followed: bool,
}

/// The batches of every segment of the replicated topic's partition `partition`.
fn partition_dir(partition: i32) -> PathBuf {
    Path::new(host::LOGS_DIR).join(format!("{}-{partition}", records::TOPIC))
}

/// A failed fsync of a file of partition 0 other than a segment, its checkpoint or
/// its leader-epoch file, or of a file whose name is gone: trace validation does not
/// map it.
fn failed_sync_unmapped(path: Option<&Path>) -> bool {
    let Some(path) = path else {
        return true;
    };
    let segment = path.extension().is_some_and(|e| e == "log");
    let checkpoint = path
        .file_name()
        .is_some_and(|f| f == "checkpoint.json.tmp" || f == "leader-epoch-checkpoint.tmp");
    path.starts_with(partition_dir(0)) && !segment && !checkpoint
}

fn segment_batches(disk: &MemDisk, partition: i32) -> Vec<(PathBuf, Batch)> {
    let dir = partition_dir(partition);
    let files = disk.list_dir(&dir).unwrap_or_default();
    let mut found = Vec::new();
    for file in files.into_iter().filter(|f| f.ends_with(".log")) {
        let path = dir.join(file);
        let Ok(bytes) = chronik_core::disk::read_all(disk, &path) else {
            continue;
        };
        let mut pos = 0;
        let mut batches: Vec<Batch> = Vec::new();
        while let frame::Decoded::Frame { start, end } = frame::decode(&bytes, pos) {
            if let Some(last) = batches.last_mut() {
                last.followed = true;
            }
            if let Some((first_offset, end_offset)) = batch_offsets(&bytes[start..end]) {
                batches.push(Batch {
                    bytes: pos as u64..end as u64,
                    first_offset,
                    end_offset,
                    crc: frame::checksum(&bytes[start..end]),
                    followed: false,
                });
            }
            pos = end;
        }
        found.extend(batches.into_iter().map(|b| (path.clone(), b)));
    }
    found
}

/// A stored RecordBatch's base offset, and the offset after its last record (base
/// offset plus last offset delta, plus one).
fn batch_offsets(batch: &[u8]) -> Option<(u64, u64)> {
    let base = i64::from_be_bytes(batch.get(0..8)?.try_into().ok()?);
    let delta = i32::from_be_bytes(batch.get(23..27)?.try_into().ok()?);
    Some((
        u64::try_from(base).ok()?,
        u64::try_from(base + i64::from(delta) + 1).ok()?,
    ))
}

fn last_record_start(disk: &MemDisk, path: &Path) -> Option<u64> {
    let bytes = chronik_core::disk::read_all(disk, path).ok()?;
    let mut pos = 0;
    let mut last = None;
    while let frame::Decoded::Frame { end, .. } = frame::decode(&bytes, pos) {
        last = Some(pos as u64);
        pos = end;
    }
    last
}

/// A topic id as the broker writes one (a UUID's text), made from the name so runs
/// repeat: the name's first 16 bytes, zero-padded.
fn topic_uuid(name: &str) -> String {
    let mut bytes = [0u8; 16];
    for (b, n) in bytes.iter_mut().zip(name.bytes()) {
        *b = n;
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A Fetch or OffsetForLeaderEpoch answer of the traced partition applied.
fn answered_traced(step: &FetchStep) -> bool {
    matches!(step,
        FetchStep::Answered { key, .. } | FetchStep::EpochAnswered { key, .. }
            if repl_traces::traced_key(key))
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn a_drifting_clock_only_moves_forward_and_is_read_back_at_its_first_moment() {
        for drift_ppm in [-50_000, -1, 0, 200, 50_000] {
            let clock = Clock {
                start_ms: 123_456,
                drift_ppm,
            };
            let mut last = 0;
            for now in 0..5_000 {
                let local = clock.local(now);
                assert!(local >= last, "{drift_ppm} ppm at {now}");
                last = local;
                let first = clock.simulated(local);
                assert!(clock.local(first) >= local);
                assert!(first == 0 || clock.local(first - 1) < local);
            }
        }
    }
}
