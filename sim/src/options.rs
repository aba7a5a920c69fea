//! What one simulated run does: its size, its faults and the bugs switched on.

use chronik_core::consensus::DriverBugs;
use chronik_core::groups::GroupBug;
use chronik_core::replication::ReplicationBugs;
use rand::seq::SliceRandom;
use rand::Rng;

/// The faults of one run. Rates are per mille; intervals are means in simulated ms,
/// 0 meaning never.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    pub crash_every_ms: u64,
    pub partition_every_ms: u64,
    /// A crash keeps up to this many unsynced bytes of the last write (a torn write).
    pub max_torn_bytes: usize,
    /// Crash only while a majority stays up; otherwise any node, even all of them.
    pub keep_majority: bool,
    /// Mean ms between failed fsyncs on a random node's disk (0: none). The node
    /// must stop rather than go on as if the write were durable; it is restarted.
    pub fsync_failure_every_ms: u64,
    /// Mean ms between process pauses (a stalled VM, a long GC) of a random node,
    /// which then neither ticks nor reads its messages for up to two seconds.
    pub pause_every_ms: u64,
    /// Mean ms between two looks of a node's waiting produce requests at the view
    /// (0: on every partition tick). The broker's waiters look only when woken, and
    /// a starved task looks late: whatever happened in between, it sees only the
    /// outcome.
    pub waiter_look_every_ms: u64,
    /// Mean ms between stalls of a random node's produce waiters (0: none): for 2 to
    /// 8 s they do not look at the view although the node runs on, as a task that is
    /// woken but not scheduled; when they look again they see only the outcome. A
    /// leader deposed and elected again within a stall must still not answer a batch
    /// appended in its earlier epoch (R-REPL-1).
    pub waiter_stall_every_ms: u64,
    /// Per mille of crashes after which one byte of the node's Raft log is damaged
    /// while it is down, inside a record that another record follows (so recovery can
    /// tell it from a torn tail): the node must repair its log from its peers and
    /// lose nothing committed (R-RECOVER-9). Only while no other node repairs: a
    /// majority that lost entries cannot safely elect anyone.
    pub damage_metadata_per_mille: u32,
    /// Mean ms between disks filling up (0: never): a random live node's disk takes
    /// no more bytes for up to 2.5 s. A partition append is refused (the producer
    /// retries) and cut back (R-LOG-9); a failed Raft log write stops the node, which
    /// starts again once it can (R-PERSIST-1).
    pub disk_full_every_ms: u64,
    /// Each node's clock starts at its own value (up to 1000 s in) and runs up to this
    /// many parts per million fast or slow (0: every clock is the simulator's). The
    /// node core reads only its own clock: sessions, timeouts and ticks are its.
    pub clock_drift_ppm: u32,
    /// Per mille of crashes after which one byte of a replicated partition's segment
    /// on the crashed node is damaged while it is down, inside a batch that another
    /// follows: the copy must leave the ISR before it cuts and fetches the records
    /// back (R-REPL-4), losing nothing acknowledged. Only while no other copy is
    /// damaged: with every copy damaged nothing can be repaired.
    pub damage_partition_per_mille: u32,
    /// The damage hits a segment's last batch instead (one no frame follows): past
    /// the durable point the checkpoint records, recovery cannot tell it from a torn
    /// write and cuts it, and the cut must be marked so that the copy is not counted
    /// on for what it held until its repair (R-REPL-4).
    pub damage_last_frames: bool,
    /// Mean ms between DeleteRecords of what every consumer has read (0: none),
    /// sent while clients run (R-WIRE-5).
    pub trim_every_ms: u64,
    /// The partition logs' fsync policy: 0 syncs every acknowledged batch (the
    /// default); N > 0 acknowledges at once and syncs every N ms (the broker's
    /// `--fsync-interval-ms`), so a crash cuts acknowledged records and a restarted
    /// broker must hand over (R-REPL-5).
    pub fsync_interval_ms: u64,
    /// Admin clients create topics again under deleted topics' names (with new topic
    /// ids), so that a directory's name can belong to two topic ids over a run
    /// (R-RECOVER-8).
    pub recreate_deleted_names: bool,
    /// Once the settled cluster has served for a settle phase, kill -9 every node at
    /// once, start them all again and settle once more before the checks: a whole
    /// cluster restarted after its clients stopped, which no later write brings up
    /// to date, must serve every record it served before (R-RECOVER-4).
    pub power_cycle_when_calm: bool,
    /// Per mille of traced Fetch (and OffsetForLeaderEpoch) answers after which the
    /// follower that applied one (appended and synced, or cut) is killed before the
    /// run observes that step: a `kill -9` between a real broker's change and its
    /// replication trace line (the e2e nemesis run's seed 11 in CI, 2026-12-07). The
    /// restart shows a log no line showed; C-9 must take it as the answer that was
    /// in flight.
    pub crash_before_report_per_mille: u32,
}

impl Faults {
    pub fn none() -> Self {
        Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            min_latency_ms: 1,
            max_latency_ms: 3,
            crash_every_ms: 0,
            partition_every_ms: 0,
            max_torn_bytes: 0,
            keep_majority: true,
            fsync_failure_every_ms: 0,
            pause_every_ms: 0,
            waiter_look_every_ms: 0,
            waiter_stall_every_ms: 0,
            damage_metadata_per_mille: 0,
            disk_full_every_ms: 0,
            clock_drift_ppm: 0,
            damage_partition_per_mille: 0,
            damage_last_frames: false,
            trim_every_ms: 0,
            fsync_interval_ms: 0,
            recreate_deleted_names: false,
            power_cycle_when_calm: false,
            crash_before_report_per_mille: 0,
        }
    }

    /// The interval fsync policy, with crashes that come back fast (often within a
    /// session) and partitions: leaders lose acknowledged records they had not
    /// synced, which their followers hold (R-REPL-5).
    pub fn interval_fsync() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_every_ms: 700,
            partition_every_ms: 1_500,
            max_torn_bytes: 64,
            fsync_interval_ms: 400,
            ..Faults::none()
        }
    }

    /// DeleteRecords of consumed records, often, with crashes and partitions that
    /// move partition leadership right after a deletion (R-WIRE-5).
    pub fn trim_storm() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_every_ms: 900,
            partition_every_ms: 1_200,
            max_torn_bytes: 64,
            trim_every_ms: 150,
            ..Faults::none()
        }
    }

    /// Full disks, with crashes and partitions: nodes stop on their Raft log's
    /// failed writes and come back, partition appends are refused and retried.
    pub fn full_disk_storm() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_every_ms: 2_000,
            partition_every_ms: 1_500,
            max_torn_bytes: 64,
            disk_full_every_ms: 600,
            ..Faults::none()
        }
    }

    /// Failed fsyncs, often, with crashes and partitions: a partition log whose sync
    /// failed goes offline and cuts its unsynced records before it takes or reports
    /// anything (R-LOG-9), a leader's waiting produces fail and are retried, a node
    /// whose Raft log took the failure stops and comes back: the full-disk storm's
    /// crashes and partitions, with failed fsyncs in place of full disks.
    pub fn fsync_storm() -> Self {
        Faults {
            disk_full_every_ms: 0,
            fsync_failure_every_ms: 300,
            ..Faults::full_disk_storm()
        }
    }

    /// Clocks 5% apart and started at different values, with crashes and partitions:
    /// sessions, fencing, timeouts and elections each judged on one node's own clock.
    pub fn drifting_clocks() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_every_ms: 1_500,
            partition_every_ms: 1_000,
            max_torn_bytes: 64,
            clock_drift_ppm: 50_000,
            ..Faults::none()
        }
    }

    /// Crashes, each of which damages a copy of a replicated partition (R-REPL-4),
    /// and partitions, so that the damaged copy may lead or be needed by the ISR.
    pub fn damaged_copies() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_every_ms: 900,
            partition_every_ms: 1_200,
            max_torn_bytes: 64,
            damage_partition_per_mille: 1000,
            ..Faults::none()
        }
    }

    /// [`Faults::damaged_copies`] with the damage in a segment's last batch, which a
    /// restart may cut as a torn write (R-REPL-4).
    pub fn damaged_last_frames() -> Self {
        Faults {
            damage_last_frames: true,
            ..Faults::damaged_copies()
        }
    }

    /// Crashes, each of which damages the crashed node's Raft log (R-RECOVER-9), and
    /// partitions, so that a follower lags while a commit counts the damaged node.
    pub fn damage_storm() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_every_ms: 700,
            partition_every_ms: 800,
            max_torn_bytes: 64,
            damage_metadata_per_mille: 1000,
            ..Faults::none()
        }
    }

    /// Process pauses and nothing else: a paused partition leader is fenced and
    /// replaced while its requests and answers wait, then answers them late, and may
    /// lead again later. The interleavings of a deposed leader's late acts.
    pub fn pause_storm() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            pause_every_ms: 600,
            ..Faults::none()
        }
    }

    /// Partitions and nothing else, often: a leader cut off from the controller is
    /// fenced and replaced while it still reaches its followers and clients.
    pub fn partition_storm() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            partition_every_ms: 400,
            ..Faults::none()
        }
    }

    /// Pauses and partitions, with produce waiters that look at the view about
    /// once a second: a deposed leader may lead again before its waiter looks.
    pub fn starved_waiters() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            pause_every_ms: 800,
            partition_every_ms: 800,
            waiter_look_every_ms: 2_000,
            ..Faults::none()
        }
    }

    /// Pauses and partitions that depose partition leaders and elect them again,
    /// with produce waiters stalled for seconds at a time: a leader's waiter may
    /// sleep through its deposal, its truncation and its return (R-REPL-1).
    /// Topics deleted and created again under the same names, with crashes that
    /// often restart a node whose durable commit index lags what it applied: its
    /// start replays an older prefix, in which a name may still be a deleted topic's
    /// (R-RECOVER-8).
    pub fn names_storm() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_every_ms: 500,
            partition_every_ms: 1_500,
            recreate_deleted_names: true,
            ..Faults::none()
        }
    }

    pub fn deposal_storm() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            pause_every_ms: 800,
            partition_every_ms: 400,
            waiter_stall_every_ms: 1_000,
            ..Faults::none()
        }
    }

    /// What moves a consumer group's commits out of decision order: slow and lossy
    /// links (a commit's proposal forwarded late, or answered "timed out" and
    /// applied anyway), pauses, partitions that fence a coordinator and move its
    /// groups, and crashes that restart one (R-GROUP-10).
    pub fn group_storm() -> Self {
        Faults {
            drop_per_mille: 50,
            min_latency_ms: 1,
            max_latency_ms: 120,
            crash_every_ms: 1_500,
            keep_majority: true,
            partition_every_ms: 1_000,
            pause_every_ms: 800,
            ..Faults::none()
        }
    }

    /// Crashes (torn writes too) and pauses while the clients run, then a power
    /// cycle of the whole cluster once it has settled (R-RECOVER-4). At one node
    /// too: nothing here needs a peer to repair from.
    pub fn power_cycle() -> Self {
        Faults {
            crash_every_ms: 1_200,
            max_torn_bytes: 4096,
            keep_majority: false,
            pause_every_ms: 1_500,
            power_cycle_when_calm: true,
            ..Faults::none()
        }
    }

    /// Swarm testing: every seed draws its own mix, so that some runs are calm
    /// enough for rare interleavings and others are storms.
    pub fn swarm(rng: &mut impl Rng) -> Self {
        let pick = |rng: &mut dyn rand::RngCore, choices: &[u64]| {
            choices.choose(rng).copied().unwrap_or_default()
        };
        let min_latency_ms = rng.gen_range(1..=5);
        Faults {
            drop_per_mille: pick(rng, &[0, 10, 50, 200]) as u32,
            duplicate_per_mille: pick(rng, &[0, 0, 20]) as u32,
            min_latency_ms,
            max_latency_ms: min_latency_ms + pick(rng, &[2, 20, 80]),
            crash_every_ms: pick(rng, &[0, 700, 1500, 4000]),
            partition_every_ms: pick(rng, &[0, 1000, 3000]),
            max_torn_bytes: pick(rng, &[0, 64, 4096]) as usize,
            keep_majority: rng.gen_bool(0.7),
            fsync_failure_every_ms: pick(rng, &[0, 0, 2000]),
            pause_every_ms: pick(rng, &[0, 0, 1500]),
            waiter_look_every_ms: pick(rng, &[0, 0, 0, 500]),
            waiter_stall_every_ms: 0,
            // Drawn by the caller from sources of their own, so that adding these
            // faults left every earlier seed's run as it was.
            damage_metadata_per_mille: 0,
            disk_full_every_ms: 0,
            clock_drift_ppm: 0,
            damage_partition_per_mille: 0,
            damage_last_frames: false,
            trim_every_ms: 0,
            fsync_interval_ms: 0,
            recreate_deleted_names: false,
            power_cycle_when_calm: false,
            crash_before_report_per_mille: 0,
        }
    }

    /// Followers killed right after they applied a Fetch answer, before the run
    /// observes it (`crash_before_report_per_mille`), besides pauses: what the e2e
    /// nemesis does to a traced cluster.
    pub fn unreported_crashes() -> Self {
        Faults {
            min_latency_ms: 1,
            max_latency_ms: 20,
            crash_before_report_per_mille: 20,
            pause_every_ms: 2_000,
            ..Faults::none()
        }
    }
}

/// Which consumer group protocol the simulated members speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup, SyncGroup, Heartbeat: the members assign partitions themselves.
    #[default]
    Classic,
    /// ConsumerGroupHeartbeat (KIP-848): the coordinator assigns and revokes.
    Consumer,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub nodes: usize,
    /// Simulated time with faults and clients.
    pub duration_ms: u64,
    /// Then: every fault healed, every node up, no clients; the run must converge.
    pub settle_ms: u64,
    /// Mean time between client proposals.
    pub client_every_ms: u64,
    /// None: swarm (drawn from the seed).
    pub faults: Option<Faults>,
    pub bugs: DriverBugs,
    /// Test-only faults in the replication steps.
    pub replication_bugs: ReplicationBugs,
    /// A test-only fault in the group coordinator core.
    pub group_bug: Option<GroupBug>,
    /// The protocol the consumer group's members speak.
    pub group_protocol: GroupProtocol,
    /// Keep every notable event, not only the last ones.
    pub full_trace: bool,
    /// Check what the nodes show of the workload's partition 0 against the
    /// replication model after every event (`repl_traces.rs`).
    pub validate_replication: bool,
    /// With `validate_replication`: note every step checked in the run's trace.
    pub show_replication_steps: bool,
    /// An acks=1 idempotent producer per partition besides the acks=all ones.
    pub leader_acks: bool,
    /// The drivers hold a client's write that finds no leader until one is known
    /// (`DriverConfig::await_leader`), as the broker runs them. Off in the tests whose
    /// seeds were found before 2026-12-04 (`as_found` in tests/sim.rs).
    pub await_leader: bool,
    /// The admin client's requests are checked by the core's admin decisions on the
    /// asked node's view before they are proposed, as the Kafka handlers do. Off
    /// with `await_leader` in those tests.
    pub admin_admission: bool,
}

impl Options {
    pub fn new(seed: u64) -> Self {
        Options {
            seed,
            nodes: 3,
            duration_ms: 8_000,
            settle_ms: 6_000,
            client_every_ms: 40,
            faults: None,
            bugs: DriverBugs::default(),
            replication_bugs: ReplicationBugs::default(),
            group_bug: None,
            group_protocol: GroupProtocol::Classic,
            full_trace: false,
            validate_replication: false,
            show_replication_steps: false,
            leader_acks: false,
            await_leader: true,
            admin_admission: true,
        }
    }
}
