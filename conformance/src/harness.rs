//! The simulation shell: the real node code (the metadata driver and its Raft node,
//! the partition log, the group-commit round logic) on simulated disks, one model
//! action at a time. The metadata side is the broker's own `Driver`, paced stepwise:
//! the model's `Ready`, `Fsync` and `Advance` are its Ready stages, `Timeout` its
//! election timer, and the driver's clock moves only at `RegisterRetry` (its
//! registration timer). Forwarding, answering proposers, registration and repair
//! are the driver's decisions, not copies of them.
//!
//! The partition side runs the broker's own partition code too: a node's start opens
//! its logs with `Partitions::reconcile_in_start` as `broker::start` does, a produce
//! is admitted by `LocalView::admit_produce` and waits in a `ProduceWait` (what the
//! Produce handler's `produce_finish` runs), a consumer's fetch passes the same gate
//! and reads up to the high watermark. The partition's metadata is fixed: the
//! model's partition is led by node 0 alone (`PARTITION_LEADER`), so each node's
//! partition code sees one topic with the single replica on node 0, registered by
//! its current start. Where the broker does something on its own schedule (the
//! flusher thread) the model's action says when.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chronik::consensus::{
    Driver, DriverBugs, DriverConfig, Effect, Input, MetadataNode, NodeConfig, NodeError, Pacing,
    PeerMessage, RaftWal, Registration, KIND_ENTRY,
};
use chronik::disk::{Disk, MemDisk, Tear};
use chronik::log::batch::{build_batch, BatchHeader, Record};
use chronik::log::frame::FRAME_HEADER_LEN;
use chronik::log::{LogConfig, LogError, ManualCommitter, PartitionLog};
use chronik::metadata::{CommandEnvelope, MetadataCommand, MetadataState, COMMAND_VERSION};
use chronik_core::replication::{
    AppendResult, LocalView, NoEvents, Partitions, ProduceWait, ReplicationBugs,
};
use chronik_model::model::{Action, PARTITION_LEADER};
use chronik_model::state::{Envelope, NodeId, Phase};
use chronik_model::ChronikModel;
use raft::eraftpb::MessageType;

use crate::network::{Carried, Network};

/// Test-only faults switched on in the real code (see `inject-bugs` in impl/).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// The Raft WAL's fsync does nothing, so a Ready is acknowledged before it is
    /// durable.
    SkipRaftFsync,
    /// The partition log takes what it wrote for durable before any fsync.
    AckProduceBeforeFsync,
    /// Recovery cuts a damaged Raft log at the damage as if it were a torn tail and
    /// starts (issue 12).
    CutRaftDamage,
    /// A forwarded write's answer names the leader's applied index after its Ready,
    /// not the write's own entry (`DriverBugs::forward_answer_names_applied_index`).
    ForwardAnswerNamesAppliedIndex,
    /// Recovery opens the partition log without its high watermark (seed 002,
    /// `ReplicationBugs::no_hw_restore`).
    NoHwRestore,
    /// Replay skips a committed entry it cannot decode (seed 000,
    /// `DriverBugs::skip_undecodable`).
    SkipUndecodable,
    /// A follower's client write goes to raft-rs, which forwards it as its own
    /// `MsgPropose`, and is answered success at once (seed 003,
    /// `DriverBugs::propose_on_follower`).
    ProposeOnFollower,
    /// The driver takes nothing from Raft before it knows a leader (seed 001,
    /// `DriverBugs::init_waits_election`).
    InitWaitsElection,
    /// A write is answered success once the leader appended it, before it commits
    /// (`DriverBugs::ack_before_commit`).
    AckBeforeCommit,
    /// The recovered view is served without replaying the committed metadata
    /// (seed 000, `DriverBugs::skip_replay`).
    SkipReplay,
    /// A broker registers only once it leads (seed 000,
    /// `DriverBugs::register_only_as_leader`).
    RegisterOnlyAsLeader,
    /// A node whose damaged Raft log was cut votes while it repairs, as if the damage
    /// were a torn tail (R-RECOVER-9, `DriverBugs::vote_while_repairing`).
    VoteWhileRepairing,
}

impl Injected {
    pub const ALL: [Injected; 12] = [
        Injected::SkipRaftFsync,
        Injected::AckProduceBeforeFsync,
        Injected::CutRaftDamage,
        Injected::ForwardAnswerNamesAppliedIndex,
        Injected::NoHwRestore,
        Injected::SkipUndecodable,
        Injected::ProposeOnFollower,
        Injected::InitWaitsElection,
        Injected::AckBeforeCommit,
        Injected::SkipReplay,
        Injected::RegisterOnlyAsLeader,
        Injected::VoteWhileRepairing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Injected::SkipRaftFsync => "skip-raft-fsync",
            Injected::AckProduceBeforeFsync => "ack-produce-before-fsync",
            Injected::CutRaftDamage => "cut-raft-damage",
            Injected::ForwardAnswerNamesAppliedIndex => "forward-answer-names-applied-index",
            Injected::NoHwRestore => "no-hw-restore",
            Injected::SkipUndecodable => "skip-undecodable",
            Injected::ProposeOnFollower => "propose-on-follower",
            Injected::InitWaitsElection => "init-waits-election",
            Injected::AckBeforeCommit => "ack-before-commit",
            Injected::SkipReplay => "skip-replay",
            Injected::RegisterOnlyAsLeader => "register-only-as-leader",
            Injected::VoteWhileRepairing => "vote-while-repairing",
        }
    }

    pub fn from_name(s: &str) -> Option<Injected> {
        Injected::ALL.into_iter().find(|b| b.name() == s)
    }
}

/// `json` (an envelope of the current version) as one of the next version, the same
/// length: where the version takes a digit more (9 to 10), the proposer's id gives
/// one up, which no node reads from a record it refuses for its version.
fn with_next_version(json: &str) -> Option<String> {
    let current = format!("\"version\":{COMMAND_VERSION},\"id\":");
    let newer = format!("\"version\":{},\"id\":", COMMAND_VERSION + 1);
    let at = json.find(&current)?;
    let id_start = at + current.len();
    let id_digits = json[id_start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    let longer = newer.len().checked_sub(current.len())?;
    if id_digits <= longer {
        return None;
    }
    let id_kept = &json[id_start..id_start + id_digits - longer];
    let rest = &json[id_start + id_digits..];
    Some(format!("{}{newer}{id_kept}{rest}", &json[..at]))
}

/// The WAL record at `at`, rewritten as a command of the next version, if it holds
/// a topic creation: same length, its checksum computed again.
fn newer_version_topic_record(bytes: &[u8], at: usize) -> Result<Option<Vec<u8>>, HarnessError> {
    use protobuf::Message as _;
    let chronik::log::frame::Decoded::Frame { start, end } = chronik::log::frame::decode(bytes, at)
    else {
        return Err(HarnessError(format!("no whole record at {at}")));
    };
    let payload = &bytes[start..end];
    // An entry record is its tag then the protobuf entry.
    let Some((&KIND_ENTRY, entry)) = payload.split_first() else {
        return Ok(None);
    };
    let mut entry = raft::eraftpb::Entry::parse_from_bytes(entry)
        .map_err(|e| HarnessError(format!("entry record at {at}: {e}")))?;
    let Ok(envelope) = CommandEnvelope::decode(&entry.data) else {
        return Ok(None);
    };
    if !matches!(envelope.command, MetadataCommand::CreateTopic { .. }) {
        return Ok(None);
    }
    let json = String::from_utf8_lossy(&entry.data).into_owned();
    let Some(newer) = with_next_version(&json) else {
        return Err(HarnessError(format!(
            "cannot make a newer version of {json}"
        )));
    };
    entry.data = newer.into_bytes().into();
    let mut rewritten = vec![KIND_ENTRY];
    rewritten.extend(
        entry
            .write_to_bytes()
            .map_err(|e| HarnessError(format!("entry record at {at}: {e}")))?,
    );
    if rewritten.len() != payload.len() {
        return Err(HarnessError(format!("entry record at {at} changed length")));
    }
    let mut frame = vec![0u8; FRAME_HEADER_LEN];
    chronik::log::frame::write_header(&mut frame, &rewritten);
    frame.extend(rewritten);
    Ok(Some(frame))
}

/// The real code failed where the model has no failure: always a divergence.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<NodeError> for HarnessError {
    fn from(e: NodeError) -> Self {
        HarnessError(format!("metadata node: {e}"))
    }
}

impl From<LogError> for HarnessError {
    fn from(e: LogError) -> Self {
        HarnessError(format!("partition log: {e}"))
    }
}

/// Bytes a torn write leaves: fewer than a frame header, so the frame cannot check
/// (the model's torn frame).
const TORN_BYTES: usize = 5;

/// Produce timestamps start here; a record's id is its timestamp minus this.
pub(crate) const TIMESTAMP_BASE: i64 = 1_000_000;

pub(crate) fn metadata_dir() -> PathBuf {
    PathBuf::from("/data/metadata")
}

/// Where `Partitions` keeps partition directories.
fn partitions_root() -> PathBuf {
    PathBuf::from("/data/partitions")
}

/// The model's one partition.
const TOPIC: &str = "p";

/// The directory `Partitions` opens the model's partition in.
pub(crate) fn partition_dir() -> PathBuf {
    partitions_root().join(format!("{TOPIC}-0"))
}

/// The partition's metadata as a node's partition code sees it in its start
/// `incarnation`: the model's partition with its single replica on node 0, and node
/// 0 registered by that start (the other nodes host nothing, so the start it names
/// does not matter to them).
fn partition_metadata(incarnation: u64) -> MetadataState {
    let leader = real_id(PARTITION_LEADER) as i32;
    let commands = [
        MetadataCommand::RegisterBroker {
            broker_id: leader,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            incarnation,
            listeners: Vec::new(),
            acks_before_fsync: false,
            short_copies: Vec::new(),
        },
        MetadataCommand::CreateTopic {
            name: TOPIC.into(),
            topic_id: "partition-id".into(),
            partitions: vec![vec![leader]],
            configs: Default::default(),
        },
    ];
    let mut state = MetadataState::default();
    for (index, command) in (1..).zip(commands) {
        // Both apply to an empty state; a refusal would show as a refused produce.
        let _ = state.apply(index, &CommandEnvelope::new(index, command));
    }
    state
}

pub use crate::ids::real_id;

/// The driver's timers in the oracle: it ticks on every move of its clock, which
/// moves only at `RegisterRetry`; a client's forward or a session never times out
/// (the model has no such timeout).
const NEVER_MS: u64 = u64::MAX / 4;

pub struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) disk: MemDisk,
    pub(crate) phase: Phase,
    pub(crate) driver: Option<Driver>,
    /// The driver's clock (ms), kept across restarts.
    now_ms: u64,
    /// The node's partition code and the metadata it sees (`partition_metadata`).
    pub(crate) partitions: Option<(Partitions, MetadataState)>,
    committer: ManualCommitter,
    /// This start of the process; the model's incarnation (1 for the first).
    pub(crate) incarnation: u64,
    boots: u64,
    /// A bad sector was put in its Raft log (the fault injector's own record).
    pub(crate) damaged: bool,
}

impl SimNode {
    pub(crate) fn meta(&self) -> Option<&MetadataNode> {
        self.driver.as_ref().map(Driver::node)
    }

    /// The node's partition code over what it sees, while it runs.
    fn local(&self) -> Option<LocalView<'_>> {
        self.partitions
            .as_ref()
            .map(|(partitions, state)| LocalView {
                state,
                partitions,
                me: real_id(self.id) as i32,
                incarnation: self.incarnation,
            })
    }

    /// The model's partition's log, if this node hosts it and runs.
    pub(crate) fn partition_log(&self) -> Option<Arc<PartitionLog>> {
        self.partitions.as_ref()?.0.get(TOPIC, 0)
    }
}

/// The outcomes the group commit handed back: (record id, outcome).
type Outcomes = Arc<Mutex<Vec<(u8, AppendResult)>>>;

pub struct Harness {
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) voters: Vec<u64>,
    /// The produces the real Produce path answered success: (offset, record id).
    acked: Vec<(u64, u8)>,
    outcomes: Outcomes,
    /// Produces appended and not answered yet: (record id, its wait).
    waiting: Vec<(u8, ProduceWait)>,
    pub(crate) read: Vec<u8>,
    produced: u8,
    topics_proposed: u32,
    /// Request numbers of the writes the drivers answered success (R-PROPOSE-1).
    pub(crate) answered: Vec<u8>,
    snapshot_interval: u64,
    /// raft-rs's pre-vote round, as the model runs it.
    pre_vote: bool,
    /// The model's format defect: committed topic creations do not decode on replay.
    undecodable: bool,
    injected: Option<Injected>,
    /// Messages between the nodes, delivered as the model delivers its own.
    net: Network,
    /// The last step could not be replayed: the model delivered a message raft-rs
    /// never sent in that form (its kind). The walk ends there.
    unmapped: Option<String>,
}

fn lock(outcomes: &Outcomes) -> MutexGuard<'_, Vec<(u8, AppendResult)>> {
    outcomes.lock().unwrap_or_else(|p| p.into_inner())
}

impl Harness {
    /// The model's cluster: its nodes, its snapshot interval (0 never snapshots) and
    /// its pre-vote round.
    pub fn new(model: &ChronikModel, injected: Option<Injected>) -> Self {
        let nodes = model.nodes;
        let voters = (0..nodes).map(|n| real_id(n as NodeId)).collect();
        Harness {
            nodes: (0..nodes)
                .map(|n| SimNode {
                    id: n as NodeId,
                    disk: MemDisk::new(),
                    phase: Phase::Down,
                    driver: None,
                    now_ms: 0,
                    partitions: None,
                    committer: ManualCommitter::new(),
                    incarnation: 0,
                    boots: 0,
                    damaged: false,
                })
                .collect(),
            voters,
            acked: Vec::new(),
            outcomes: Arc::default(),
            waiting: Vec::new(),
            read: Vec::new(),
            produced: 0,
            topics_proposed: 0,
            answered: Vec::new(),
            snapshot_interval: match model.snapshot_interval {
                0 => NodeConfig::single(0).snapshot_interval,
                every => u64::from(every),
            },
            pre_vote: model.pre_vote,
            undecodable: model.undecodable,
            injected,
            net: Network::default(),
            unmapped: None,
        }
    }

    /// See [`Network::unmatched_sends`].
    pub fn unmatched_sends(&self, model: &BTreeSet<Envelope>) -> Vec<String> {
        self.net.unmatched_sends(model)
    }

    /// Why the last step could not be replayed, if it could not; cleared.
    pub fn take_unmapped(&mut self) -> Option<String> {
        self.unmapped.take()
    }

    /// Leader `l`'s heartbeat, for the followers the model's heartbeat reaches:
    /// each is sent what it lacks from the leader's last known match (the append a
    /// heartbeat's answer draws from raft-rs).
    pub fn heartbeat(&mut self, l: NodeId, followers: &[NodeId]) {
        if let Some(driver) = self.node(l).driver.as_mut() {
            for p in followers {
                driver.node_mut().resend_append(real_id(*p));
            }
        }
    }

    pub(crate) fn acked(&self) -> Vec<(u64, u8)> {
        self.acked.clone()
    }

    /// Applies one model action to the real code.
    pub fn apply(&mut self, action: &Action) -> Result<(), HarnessError> {
        match action {
            Action::Restart(n) => self.restart(*n)?,
            Action::StartLoop(n) => self.node(*n).phase = Phase::LoopRunning,
            Action::ListenerUp(n) => {
                self.node(*n).phase = Phase::Listening;
                let registration = self.registration(*n);
                self.step(*n, Input::Register(registration))?;
            }
            Action::RegisterRetry(n) => {
                self.node(*n).now_ms += 1;
                self.step(*n, Input::Tick)?;
            }
            Action::ClientCreateTopic(n) => {
                self.topics_proposed += 1;
                let req = u8::try_from(self.topics_proposed)
                    .map_err(|_| HarnessError("too many metadata writes".into()))?;
                let command = MetadataCommand::CreateTopic {
                    name: format!("t{req}"),
                    topic_id: format!("id-{req}"),
                    partitions: vec![vec![real_id(*n) as i32]],
                    configs: Default::default(),
                };
                let token = u64::from(req);
                self.step(*n, Input::Propose { token, command })?;
            }
            Action::Produce => self.produce()?,
            Action::Fetch => self.fetch()?,
            Action::Timeout(n) => self.step(*n, Input::ElectionTimeout)?,
            // Two checks with nothing heard in between: whatever raft-rs heard before
            // the first, the second finds no quorum.
            Action::CheckQuorum(n) => {
                self.step(*n, Input::QuorumCheck)?;
                self.step(*n, Input::QuorumCheck)?;
            }
            Action::Ready(n) => self.step(*n, Input::BeginReady)?,
            Action::Fsync(n) => self.fsync(*n)?,
            Action::Advance(n) => self.step(*n, Input::FinishReady)?,
            Action::Crash(n) => self.crash(*n, Tear::None),
            Action::CrashTorn(n) => self.crash(*n, Tear::KeepTail(TORN_BYTES)),
            Action::DamageRaftLog(n, at) => self.damage_raft_log(*n, *at)?,
            Action::Deliver(e) => self.deliver(e)?,
            Action::Heartbeat(_) | Action::ReplicaFetch(_) => {
                return Err(HarnessError(format!(
                    "{action}: the lockstep maps heartbeats itself; replica fetches \
                     belong to the replication oracle (C-5, C-6)"
                )))
            }
        }
        self.note_registration();
        self.answer_produces();
        Ok(())
    }

    /// One step of node `n`'s driver at its clock, and what it says to do: messages
    /// go into the network, answers to the clients are noted. A forward's answer is
    /// delivered at once (the model has no such message: it fails the request where
    /// the leader gives up on it).
    fn step(&mut self, n: NodeId, input: Input) -> Result<(), HarnessError> {
        let node = self.node(n);
        let now = node.now_ms;
        let Some(driver) = node.driver.as_mut() else {
            return Ok(());
        };
        for effect in driver.step(now, input)? {
            match effect {
                Effect::Send { to, message } => self.send(n, to, message)?,
                Effect::Answer {
                    token,
                    result: Ok(_),
                } => self.answered.push(request_number(token)?),
                Effect::Answer { result: Err(_), .. } | Effect::PublishView => {}
            }
        }
        Ok(())
    }

    fn send(&mut self, n: NodeId, to: u64, message: PeerMessage) -> Result<(), HarnessError> {
        if self.nodes.len() == 1 {
            return Err(HarnessError(format!(
                "a one-voter group sent a message: {message:?}"
            )));
        }
        let dst = NodeId::try_from(to.wrapping_sub(1))
            .ok()
            .filter(|d| usize::from(*d) < self.nodes.len())
            .ok_or_else(|| HarnessError(format!("message to unknown node {to}")))?;
        match message {
            PeerMessage::Raft(m) => self.net.send(n, dst, Carried::Raft(m)),
            PeerMessage::Forward {
                request_id,
                command,
            } => self.net.send(
                n,
                dst,
                Carried::Forward(CommandEnvelope::new(request_id, command)),
            ),
            reply @ PeerMessage::ForwardReply { .. } => {
                let from = real_id(n);
                self.step(
                    dst,
                    Input::Peer {
                        from,
                        message: reply,
                    },
                )?;
            }
        }
        Ok(())
    }

    fn node(&mut self, n: NodeId) -> &mut SimNode {
        &mut self.nodes[usize::from(n)]
    }

    /// Storage recovery, then the driver, which replays the committed metadata and
    /// lets a one-voter group elect itself, as `broker::start` does before the
    /// consensus loop starts (R-START-1, R-START-4, R-RECOVER-1, R-RECOVER-2).
    fn restart(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let voters = self.voters.clone();
        let snapshot_interval = self.snapshot_interval;
        let injected = self.injected;
        let pre_vote = self.pre_vote || voters.len() == 1;
        if self.undecodable {
            self.make_committed_topics_undecodable(n)?;
        }
        let node = self.node(n);
        node.boots += 1;
        node.incarnation = node.boots;
        let disk: Arc<dyn Disk> = Arc::new(node.disk.clone());
        // The model keeps one append in flight per follower (spec/conformance.md,
        // "Scope today"); a single voter's pre-vote round changes nothing.
        let config = NodeConfig {
            pre_vote,
            max_inflight_appends: if voters.len() == 1 { 256 } else { 1 },
            max_append_bytes: u64::MAX,
            voters,
            snapshot_interval,
            ..NodeConfig::single(real_id(n))
        };
        let opened = match injected {
            Some(Injected::CutRaftDamage) => {
                MetadataNode::open_cutting_damage(Arc::clone(&disk), &metadata_dir(), config)
            }
            _ => MetadataNode::open(Arc::clone(&disk), &metadata_dir(), config),
        };
        let driver_config = DriverConfig {
            tick_ms: 1,
            session_timeout_ms: NEVER_MS,
            forward_timeout_ms: NEVER_MS,
            registration_retry_ms: 1,
            id_base: node.incarnation << 32,
            pacing: Pacing::Stepwise,
            // The model's client is answered NOT_CONTROLLER where no leader is known.
            await_leader: false,
        };
        let bugs = DriverBugs {
            skip_raft_fsync: injected == Some(Injected::SkipRaftFsync),
            forward_answer_names_applied_index: injected
                == Some(Injected::ForwardAnswerNamesAppliedIndex),
            skip_undecodable: injected == Some(Injected::SkipUndecodable),
            propose_on_follower: injected == Some(Injected::ProposeOnFollower),
            init_waits_election: injected == Some(Injected::InitWaitsElection),
            ack_before_commit: injected == Some(Injected::AckBeforeCommit),
            skip_replay: injected == Some(Injected::SkipReplay),
            register_only_as_leader: injected == Some(Injected::RegisterOnlyAsLeader),
            vote_while_repairing: injected == Some(Injected::VoteWhileRepairing),
            ..DriverBugs::default()
        };
        let driver = opened.and_then(|meta| Driver::with_bugs(meta, driver_config, bugs));
        let driver = match driver {
            Ok(driver) => driver,
            // The broker exits with the error: a refusal to start (R-RECOVER-3,
            // R-RECOVER-6). Whether the model refuses here too is the view's business.
            Err(NodeError::Undecodable { .. } | NodeError::Storage(LogError::Corrupt { .. })) => {
                node.phase = Phase::Failed;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let partitions = Partitions::new(
            disk,
            partitions_root(),
            LogConfig::default(),
            Arc::new(NoEvents),
            node.committer.queue(),
        )
        .with_bugs(ReplicationBugs {
            no_hw_restore: injected == Some(Injected::NoHwRestore),
            ..ReplicationBugs::default()
        });
        let state = partition_metadata(node.incarnation);
        partitions.reconcile_in_start(&state, real_id(node.id) as i32, node.incarnation)?;
        if let Some(log) = partitions.get(TOPIC, 0) {
            if injected == Some(Injected::AckProduceBeforeFsync) {
                log.inject_ack_before_fsync();
            }
        }
        node.driver = Some(driver);
        node.partitions = Some((partitions, state));
        node.phase = Phase::Recovered;
        Ok(())
    }

    /// kill -9: the process's memory is gone, queued fsync requests are never
    /// answered with success, and the disk keeps only what was synced.
    fn crash(&mut self, n: NodeId, tear: Tear) {
        // Its clients' connections are gone with its driver: nobody is answered.
        self.net.drop_to(n);
        let node = self.node(n);
        node.driver = None;
        node.partitions = None;
        node.committer.abandon();
        node.disk.crash(tear);
        node.phase = Phase::Down;
        if n == PARTITION_LEADER {
            self.waiting.clear();
            lock(&self.outcomes).clear();
        }
    }

    /// A bad sector in the record of entry `at + 1` (the model's 0-based position) of
    /// a down node's Raft log: one flipped byte inside the record's payload, so its
    /// checksum fails while the records after it still check.
    fn damage_raft_log(&mut self, n: NodeId, at: u8) -> Result<(), HarnessError> {
        self.node(n).damaged = true;
        let disk = self.node(n).disk.clone();
        let records = RaftWal::entry_records(&disk, &metadata_dir())?;
        let wal = records.path;
        let index = u64::from(at) + 1;
        let record = records.positions.get(&index).copied().ok_or_else(|| {
            HarnessError(format!(
                "no record of entry {index} in the Raft log to damage"
            ))
        })?;
        let byte_at = usize::try_from(record)
            .map_err(|_| HarnessError("record position".into()))?
            + FRAME_HEADER_LEN
            + 1;
        let bytes = chronik::disk::read_all(&disk, &wal)
            .map_err(|e| HarnessError(format!("read {}: {e}", wal.display())))?;
        let byte = bytes
            .get(byte_at)
            .ok_or_else(|| HarnessError("the record ends before its payload".into()))?;
        disk.corrupt(&wal, byte_at, &[byte ^ 0x40])
            .map_err(|e| HarnessError(format!("damage {}: {e}", wal.display())))
    }

    /// The model's `undecodable` format defect on a down node's disk: every committed
    /// topic creation in its Raft log becomes a command of a newer version than this
    /// broker decodes (what a downgrade leaves), in a record whose checksum holds. The
    /// live apply read them; only a replay meets them, as in the model.
    fn make_committed_topics_undecodable(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let disk = self.node(n).disk.clone();
        // No metadata directory yet: the node never started.
        if !disk.exists(&metadata_dir()) {
            return Ok(());
        }
        let records = RaftWal::entry_records(&disk, &metadata_dir())?;
        let bytes = chronik::disk::read_all(&disk, &records.path)
            .map_err(|e| HarnessError(format!("read {}: {e}", records.path.display())))?;
        for (&index, &at) in records.positions.range(..=records.commit) {
            let at = usize::try_from(at).map_err(|_| HarnessError("record position".into()))?;
            if let Some(frame) = newer_version_topic_record(&bytes, at)? {
                disk.corrupt(&records.path, at, &frame).map_err(|e| {
                    HarnessError(format!(
                        "rewrite entry {index} of {}: {e}",
                        records.path.display()
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// What `broker::start` registers once its listeners are bound.
    fn registration(&mut self, n: NodeId) -> Registration {
        Registration {
            broker_id: real_id(n) as i32,
            host: "127.0.0.1".into(),
            port: 9092 + i32::from(n),
            rack: None,
            incarnation: self.node(n).incarnation,
            listeners: Vec::new(),
            acks_before_fsync: false,
            short_copies: Vec::new(),
        }
    }

    /// The model delivers a peer message: the real one standing for it is stepped
    /// into its destination's driver.
    fn deliver(&mut self, e: &Envelope) -> Result<(), HarnessError> {
        let carried = match self.net.take(e) {
            Ok(carried) => carried,
            Err(kind) => {
                self.unmapped = Some(kind);
                return Ok(());
            }
        };
        let Some(driver) = self.node(e.dst).driver.as_mut() else {
            return Err(HarnessError(format!(
                "a message delivered to node {} that is not running",
                e.dst
            )));
        };
        let message = match carried {
            Carried::Raft(m) => {
                if matches!(
                    m.get_msg_type(),
                    MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
                ) {
                    driver.node_mut().let_leader_lease_lapse();
                }
                PeerMessage::Raft(m)
            }
            Carried::Forward(envelope) => PeerMessage::Forward {
                request_id: envelope.id,
                command: envelope.command,
            },
        };
        let from = real_id(e.src);
        self.step(e.dst, Input::Peer { from, message })
    }

    /// The broker's registration task sees its incarnation in the metadata.
    fn note_registration(&mut self) {
        for node in &mut self.nodes {
            if node.phase != Phase::Listening {
                continue;
            }
            let mine = node.meta().is_some_and(|meta| {
                meta.state()
                    .brokers
                    .get(&(real_id(node.id) as i32))
                    .is_some_and(|b| b.incarnation == node.incarnation)
            });
            if mine {
                node.phase = Phase::Registered;
            }
        }
    }

    /// One fdatasync round: the Raft WAL, and the partition's group-commit round,
    /// whose outcomes go to the produces waiting on them.
    fn fsync(&mut self, n: NodeId) -> Result<(), HarnessError> {
        self.step(n, Input::PersistReady)?;
        self.node(n).committer.run_round();
        self.settle_appends();
        Ok(())
    }

    /// acks=all produce of one record to the partition leader, admitted and waited
    /// for as the Produce handler does.
    fn produce(&mut self) -> Result<(), HarnessError> {
        let id = self.produced;
        self.produced += 1;
        let local = self.nodes[usize::from(PARTITION_LEADER)]
            .local()
            .ok_or_else(|| HarnessError("produce to a partition leader that is down".into()))?;
        let (log, info) = local.admit_produce(TOPIC, 0, -1).map_err(|code| {
            HarnessError(format!("the real broker refused the produce: error {code}"))
        })?;
        let batch = build_batch(
            &[Record {
                key: None,
                value: Some(vec![id]),
                timestamp_delta: 0,
            }],
            TIMESTAMP_BASE + i64::from(id),
        );
        let outcomes = Arc::clone(&self.outcomes);
        let key = (TOPIC.to_string(), 0);
        let wait = ProduceWait::append(key, log, info.leader_epoch, -1, &batch, 0, move |r| {
            lock(&outcomes).push((id, r));
        });
        self.waiting.push((id, wait));
        self.settle_appends();
        Ok(())
    }

    /// Each outcome the group commit handed back goes to its produce, which moves the
    /// high watermark (`produce_finish`).
    fn settle_appends(&mut self) {
        let outcomes = std::mem::take(&mut *lock(&self.outcomes));
        let Some(local) = self.nodes[usize::from(PARTITION_LEADER)].local() else {
            return;
        };
        for (id, outcome) in &outcomes {
            for (_, wait) in self.waiting.iter_mut().filter(|(w, _)| w == id) {
                wait.on_outcome(&local, outcome, 0);
            }
        }
    }

    /// Every produce whose answer is due gets it; success is an acknowledgement.
    fn answer_produces(&mut self) {
        let Some(local) = self.nodes[usize::from(PARTITION_LEADER)].local() else {
            return;
        };
        let mut answered = Vec::new();
        self.waiting
            .retain(|(id, wait)| match wait.answer(&local, false) {
                Some(answer) => {
                    answered.push((*id, answer));
                    false
                }
                None => true,
            });
        for (id, answer) in answered {
            if let Ok(base_offset) = answer {
                self.acked.push((base_offset, id));
            }
        }
    }

    /// A consumer reads everything below the high watermark of the log the Fetch
    /// handler's gate gives it.
    fn fetch(&mut self) -> Result<(), HarnessError> {
        let local = self.nodes[usize::from(PARTITION_LEADER)]
            .local()
            .ok_or_else(|| HarnessError("fetch from a partition leader that is down".into()))?;
        let (log, _) = local.gate(TOPIC, 0, -1).map_err(|code| {
            HarnessError(format!("the real broker refused the fetch: error {code}"))
        })?;
        let records = read_ids(&log, log.high_watermark())?;
        if records.len() > self.read.len() {
            self.read = records;
        }
        Ok(())
    }
}

/// The record ids stored below `upper_bound`, in offset order.
pub(crate) fn read_ids(log: &PartitionLog, upper_bound: u64) -> Result<Vec<u8>, HarnessError> {
    Ok(read_records(log, upper_bound)?
        .into_iter()
        .map(|(_, id)| id)
        .collect())
}

/// A client write's request number, the token its proposal carried.
fn request_number(token: u64) -> Result<u8, HarnessError> {
    u8::try_from(token).map_err(|_| HarnessError(format!("answer to unknown token {token}")))
}

/// (leader epoch, record id) of each record stored below `upper_bound`, in offset
/// order; every batch the oracle writes holds one record.
pub(crate) fn read_records(
    log: &PartitionLog,
    upper_bound: u64,
) -> Result<Vec<(i32, u8)>, HarnessError> {
    read_records_around_damage(log, upper_bound)?
        .into_iter()
        .enumerate()
        .map(|(at, record)| record.ok_or_else(|| HarnessError(format!("offset {at} is damaged"))))
        .collect()
}

/// Every record below `upper_bound` as (leader epoch, id), `None` for each offset of a
/// damaged range (R-LOG-13: the read that starts inside it fails, the records around
/// it stay readable).
pub(crate) fn read_records_around_damage(
    log: &PartitionLog,
    upper_bound: u64,
) -> Result<Vec<Option<(i32, u8)>>, HarnessError> {
    let mut records = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < upper_bound {
        let result = match log.read(offset, 1 << 20, upper_bound) {
            Ok(result) => result,
            Err(LogError::Damaged { end_offset, .. }) => {
                let end = end_offset.clamp(offset + 1, upper_bound);
                records.extend((offset..end).map(|_| None));
                offset = end;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if result.batch_count == 0 {
            break;
        }
        for (_, epoch, id) in parse_batches(&result.records)? {
            records.push(Some((epoch, id)));
        }
        offset = result.next_offset;
    }
    Ok(records)
}

/// The harness's one-record batches in `records` as stored: (base offset, leader
/// epoch, record id) each.
pub(crate) fn parse_batches(records: &[u8]) -> Result<Vec<(i64, i32, u8)>, HarnessError> {
    let mut batches = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let length = records
            .get(at + 8..at + 12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_be_bytes)
            .ok_or_else(|| HarnessError("short batch".into()))?;
        let end =
            at + 12 + usize::try_from(length).map_err(|_| HarnessError("batch length".into()))?;
        let batch = records
            .get(at..end)
            .ok_or_else(|| HarnessError("short batch".into()))?;
        let header = BatchHeader::parse(batch).map_err(HarnessError)?;
        let id = header.base_timestamp - TIMESTAMP_BASE;
        let id = u8::try_from(id).map_err(|_| HarnessError(format!("record id {id}")))?;
        batches.push((header.base_offset, header.partition_leader_epoch, id));
        at = end;
    }
    Ok(batches)
}
