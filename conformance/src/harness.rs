//! The simulation shell: the real node code (the metadata driver and its Raft node,
//! the partition log, the group-commit round logic) on simulated disks, one model
//! action at a time. The metadata side is the broker's own `Driver`, paced stepwise:
//! the model's `Ready`, `Fsync` and `Advance` are its Ready stages, `Timeout` its
//! election timer, and the driver's clock moves only at `RegisterRetry` (its
//! registration timer). Forwarding, answering proposers, registration and repair
//! are the driver's decisions, not copies of them.
//!
//! The partition side is applied the way the broker's shell applies the same event
//! (`broker::start`, the Produce handler); where the broker does something on its
//! own schedule (the flusher thread) the model's action says when.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chronik::consensus::{
    Driver, DriverBugs, DriverConfig, Effect, Input, MetadataNode, NodeConfig, NodeError, Pacing,
    PeerMessage, RaftWal, Registration,
};
use chronik::disk::{Disk, MemDisk, Tear};
use chronik::log::batch::{build_batch, BatchHeader, Record};
use chronik::log::frame::FRAME_HEADER_LEN;
use chronik::log::{LogConfig, LogError, ManualCommitter, PartitionLog};
use chronik::metadata::{CommandEnvelope, MetadataCommand};
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
    /// The partition log acknowledges a produce as soon as it is written.
    AckProduceBeforeFsync,
    /// Recovery cuts a damaged Raft log at the damage as if it were a torn tail and
    /// starts (issue 12).
    CutRaftDamage,
}

impl Injected {
    pub const ALL: [Injected; 3] = [
        Injected::SkipRaftFsync,
        Injected::AckProduceBeforeFsync,
        Injected::CutRaftDamage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Injected::SkipRaftFsync => "skip-raft-fsync",
            Injected::AckProduceBeforeFsync => "ack-produce-before-fsync",
            Injected::CutRaftDamage => "cut-raft-damage",
        }
    }

    pub fn from_name(s: &str) -> Option<Injected> {
        Injected::ALL.into_iter().find(|b| b.name() == s)
    }
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

pub(crate) fn partition_dir() -> PathBuf {
    PathBuf::from("/data/p-0")
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
    pub(crate) partition: Option<PartitionLog>,
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
}

/// Acknowledgements the real produce path released: (offset, record id).
type Acks = Arc<Mutex<Vec<(u64, u8)>>>;

pub struct Harness {
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) voters: Vec<u64>,
    acked: Acks,
    pub(crate) read: Vec<u8>,
    produced: u8,
    topics_proposed: u32,
    /// Request numbers of the writes the drivers answered success (R-PROPOSE-1).
    pub(crate) answered: Vec<u8>,
    snapshot_interval: u64,
    /// raft-rs's pre-vote round, as the model runs it.
    pre_vote: bool,
    injected: Option<Injected>,
    /// Messages between the nodes, delivered as the model delivers its own.
    net: Network,
    /// The last step could not be replayed: the model delivered a message raft-rs
    /// never sent in that form (its kind). The walk ends there.
    unmapped: Option<String>,
}

fn lock(acks: &Acks) -> MutexGuard<'_, Vec<(u64, u8)>> {
    acks.lock().unwrap_or_else(|p| p.into_inner())
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
                    partition: None,
                    committer: ManualCommitter::new(),
                    incarnation: 0,
                    boots: 0,
                    damaged: false,
                })
                .collect(),
            voters,
            acked: Arc::default(),
            read: Vec::new(),
            produced: 0,
            topics_proposed: 0,
            answered: Vec::new(),
            snapshot_interval: match model.snapshot_interval {
                0 => NodeConfig::single(0).snapshot_interval,
                every => u64::from(every),
            },
            pre_vote: model.pre_vote,
            injected,
            net: Network::default(),
            unmapped: None,
        }
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
        lock(&self.acked).clone()
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
        };
        let bugs = DriverBugs {
            skip_raft_fsync: injected == Some(Injected::SkipRaftFsync),
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
        let partition = PartitionLog::open(
            disk,
            &partition_dir(),
            LogConfig::default(),
            Some(node.committer.queue()),
        )?;
        // What `Partitions::reconcile` does for a single-replica partition.
        partition.advance_single_replica_high_watermark();
        if injected == Some(Injected::AckProduceBeforeFsync) {
            partition.inject_ack_before_fsync();
        }
        node.driver = Some(driver);
        node.partition = Some(partition);
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
        node.partition = None;
        node.committer.abandon();
        node.disk.crash(tear);
        node.phase = Phase::Down;
    }

    /// A bad sector in the record of entry `at + 1` (the model's 0-based position) of
    /// a down node's Raft log: one flipped byte inside the record's payload, so its
    /// checksum fails while the records after it still check.
    fn damage_raft_log(&mut self, n: NodeId, at: u8) -> Result<(), HarnessError> {
        self.node(n).damaged = true;
        let disk = self.node(n).disk.clone();
        let (wal, records) = RaftWal::entry_records(&disk, &metadata_dir())?;
        let index = u64::from(at) + 1;
        let record = records.get(&index).copied().ok_or_else(|| {
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
    /// whose completions acknowledge produces as the Produce handler does.
    fn fsync(&mut self, n: NodeId) -> Result<(), HarnessError> {
        self.step(n, Input::PersistReady)?;
        let node = self.node(n);
        node.committer.run_round();
        if let Some(partition) = node.partition.as_ref() {
            partition.advance_single_replica_high_watermark();
        }
        Ok(())
    }

    /// acks=all produce of one record to the partition leader.
    fn produce(&mut self) -> Result<(), HarnessError> {
        let id = self.produced;
        self.produced += 1;
        let acked = Arc::clone(&self.acked);
        let Some(partition) = self.node(PARTITION_LEADER).partition.as_ref() else {
            return Err(HarnessError(
                "produce to a partition leader that is down".into(),
            ));
        };
        let batch = build_batch(
            &[Record {
                key: None,
                value: Some(vec![id]),
                timestamp_delta: 0,
            }],
            TIMESTAMP_BASE + i64::from(id),
        );
        partition.append_then(&batch, 0, 0, move |result| {
            if let Ok(info) = result {
                lock(&acked).push((info.base_offset, id));
            }
        });
        // The Produce handler moves the high watermark after each acknowledgement.
        partition.advance_single_replica_high_watermark();
        Ok(())
    }

    /// A consumer reads everything below the high watermark.
    fn fetch(&mut self) -> Result<(), HarnessError> {
        let Some(partition) = self.node(PARTITION_LEADER).partition.as_ref() else {
            return Err(HarnessError(
                "fetch from a partition leader that is down".into(),
            ));
        };
        let records = read_ids(partition, partition.high_watermark())?;
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
    let mut records = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < upper_bound {
        let result = log.read(offset, 1 << 20, upper_bound)?;
        if result.batch_count == 0 {
            break;
        }
        let mut at = 0usize;
        while at < result.records.len() {
            let length = result
                .records
                .get(at + 8..at + 12)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(i32::from_be_bytes)
                .ok_or_else(|| HarnessError("short batch".into()))?;
            let end = at
                + 12
                + usize::try_from(length).map_err(|_| HarnessError("batch length".into()))?;
            let batch = result
                .records
                .get(at..end)
                .ok_or_else(|| HarnessError("short batch".into()))?;
            let header = BatchHeader::parse(batch).map_err(HarnessError)?;
            let id = header.base_timestamp - TIMESTAMP_BASE;
            let id = u8::try_from(id).map_err(|_| HarnessError(format!("record id {id}")))?;
            records.push((header.partition_leader_epoch, id));
            at = end;
        }
        offset = result.next_offset;
    }
    Ok(records)
}
