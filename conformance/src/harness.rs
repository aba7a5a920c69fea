//! The simulation shell: the real node code from impl/ (the metadata node core, the
//! partition log, the group-commit round logic) on simulated disks, one model action
//! at a time. The clock is logical: an election timeout is the `Timeout` action, not
//! the passing of time; fsyncs happen exactly at `Fsync` actions.
//!
//! Each action is applied the way the broker's shell applies the same event
//! (`broker::start`, `consensus_loop`, the Produce handler); where the broker does
//! something on its own schedule (the registration task, the flusher thread) the
//! model's action says when.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chronik::consensus::{
    elect_sole_voter, MetadataNode, NodeConfig, NodeError, ProposeError, RaftWal, ReadyOutput,
};
use chronik::disk::{Disk, MemDisk, Tear};
use chronik::log::batch::{build_batch, BatchHeader, Record};
use chronik::log::frame::FRAME_HEADER_LEN;
use chronik::log::{LogConfig, LogError, ManualCommitter, PartitionLog};
use chronik::metadata::{CommandEnvelope, MetadataCommand};
use chronik_model::model::{Action, PARTITION_LEADER};
use chronik_model::state::{Envelope, NodeId, Phase};
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

pub struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) disk: MemDisk,
    pub(crate) phase: Phase,
    pub(crate) meta: Option<MetadataNode>,
    pub(crate) partition: Option<PartitionLog>,
    committer: ManualCommitter,
    /// This start of the process; the model's incarnation (1 for the first).
    pub(crate) incarnation: u64,
    boots: u64,
    /// A bad sector was put in its Raft log (the fault injector's own record).
    pub(crate) damaged: bool,
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
    next_command_id: u64,
    /// Clients' metadata writes proposed and not yet answered: command id to
    /// (the node that answers, request number).
    waiting_writes: BTreeMap<u64, (NodeId, u8)>,
    /// Request numbers of the writes answered success, as the driver answers them:
    /// once the proposing node has applied the command (R-PROPOSE-1).
    pub(crate) answered: Vec<u8>,
    snapshot_interval: u64,
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
    /// `snapshot_interval` as the model's: 0 never snapshots.
    pub fn new(nodes: usize, snapshot_interval: u8, injected: Option<Injected>) -> Self {
        let voters = (0..nodes).map(|n| real_id(n as NodeId)).collect();
        Harness {
            nodes: (0..nodes)
                .map(|n| SimNode {
                    id: n as NodeId,
                    disk: MemDisk::new(),
                    phase: Phase::Down,
                    meta: None,
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
            next_command_id: 1,
            waiting_writes: BTreeMap::new(),
            answered: Vec::new(),
            snapshot_interval: match snapshot_interval {
                0 => NodeConfig::single(0).snapshot_interval,
                every => u64::from(every),
            },
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
    pub fn heartbeat(&mut self, l: NodeId, followers: &[NodeId]) -> Result<(), HarnessError> {
        if let Some(meta) = self.node(l).meta.as_mut() {
            for p in followers {
                meta.resend_append(real_id(*p));
            }
        }
        Ok(())
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
                self.submit_registration(*n)?;
            }
            Action::RegisterRetry(n) => self.submit_registration(*n)?,
            Action::ClientCreateTopic(n) => {
                self.topics_proposed += 1;
                let command = MetadataCommand::CreateTopic {
                    name: format!("t{}", self.topics_proposed),
                    topic_id: format!("id-{}", self.topics_proposed),
                    partitions: vec![vec![real_id(*n) as i32]],
                    configs: Default::default(),
                };
                if let Some(id) = self.submit(*n, command)? {
                    let req = u8::try_from(self.topics_proposed)
                        .map_err(|_| HarnessError("too many metadata writes".into()))?;
                    self.waiting_writes.insert(id, (*n, req));
                }
            }
            Action::Produce => self.produce()?,
            Action::Fetch => self.fetch()?,
            Action::Timeout(n) => {
                if let Some(meta) = self.node(*n).meta.as_mut() {
                    meta.campaign()?;
                }
            }
            Action::Ready(n) => {
                let out = match self.node(*n).meta.as_mut() {
                    Some(meta) => meta.begin_ready()?,
                    None => None,
                };
                if let Some(out) = out {
                    self.handle_output(*n, out)?;
                }
            }
            Action::Fsync(n) => self.fsync(*n)?,
            Action::Advance(n) => {
                let out = match self.node(*n).meta.as_mut() {
                    Some(meta) => meta.finish_ready()?,
                    None => return Ok(()),
                };
                self.handle_output(*n, out)?;
            }
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

    fn node(&mut self, n: NodeId) -> &mut SimNode {
        &mut self.nodes[usize::from(n)]
    }

    /// Storage recovery and metadata replay, as `broker::start` does before the
    /// consensus loop starts (R-START-1, R-RECOVER-1, R-RECOVER-2).
    fn restart(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let voters = self.voters.clone();
        let snapshot_interval = self.snapshot_interval;
        let injected = self.injected;
        let node = self.node(n);
        node.boots += 1;
        node.incarnation = node.boots;
        let disk: Arc<dyn Disk> = Arc::new(node.disk.clone());
        // The model campaigns without raft-rs's pre-vote round and keeps one
        // append in flight per follower (spec/conformance.md, "Scope today").
        let config = NodeConfig {
            pre_vote: voters.len() == 1,
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
        // What `Driver::new` does: replay, then a one-voter group elects itself
        // (R-START-4).
        let opened = opened.and_then(|mut meta| {
            meta.replay_committed()?;
            elect_sole_voter(&mut meta)?;
            Ok(meta)
        });
        let mut meta = match opened {
            Ok(meta) => meta,
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
        match injected {
            Some(Injected::SkipRaftFsync) => meta.inject_skip_fsync(),
            Some(Injected::AckProduceBeforeFsync) => partition.inject_ack_before_fsync(),
            Some(Injected::CutRaftDamage) | None => {}
        }
        node.meta = Some(meta);
        node.partition = Some(partition);
        node.phase = Phase::Recovered;
        Ok(())
    }

    /// kill -9: the process's memory is gone, queued fsync requests are never
    /// answered with success, and the disk keeps only what was synced.
    fn crash(&mut self, n: NodeId, tear: Tear) {
        // Its clients' connections are gone: nobody is answered.
        self.waiting_writes.retain(|_, (origin, _)| *origin != n);
        self.net.drop_to(n);
        let node = self.node(n);
        node.meta = None;
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

    /// The broker's registration task: propose this incarnation's registration.
    fn submit_registration(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let incarnation = self.node(n).incarnation;
        let command = MetadataCommand::RegisterBroker {
            broker_id: real_id(n) as i32,
            host: "127.0.0.1".into(),
            port: 9092 + i32::from(n),
            rack: None,
            incarnation,
            listeners: Vec::new(),
            acks_before_fsync: false,
        };
        self.submit(n, command).map(|_| ())
    }

    /// What the consensus loop does with a proposal: propose as leader; otherwise
    /// the proposer gets NOT_CONTROLLER and retries (R-PROPOSE-1). A loop in the
    /// middle of a Ready takes the request later; the model leaves it to a retry.
    /// Returns the command's id if it was proposed.
    fn submit(&mut self, n: NodeId, command: MetadataCommand) -> Result<Option<u64>, HarnessError> {
        let id = self.next_command_id;
        self.next_command_id += 1;
        let Some(meta) = self.node(n).meta.as_mut() else {
            return Ok(None);
        };
        if meta.ready_pending() {
            return Ok(None);
        }
        match meta.propose(&CommandEnvelope::new(id, command.clone())) {
            Ok(()) => Ok(Some(id)),
            Err(ProposeError::NotLeader { leader: None }) => Ok(None),
            Err(ProposeError::NotLeader { leader: Some(l) }) if l == real_id(n) => Ok(None),
            Err(ProposeError::NotLeader { leader: Some(l) }) => {
                // The driver forwards it to the leader it knows (R-PROPOSE-2) and
                // answers its client once it has applied it itself.
                let leader =
                    NodeId::try_from(l - 1).map_err(|_| HarnessError(format!("leader id {l}")))?;
                self.net.send(
                    n,
                    leader,
                    Carried::Forward(CommandEnvelope::new(id, command)),
                );
                Ok(Some(id))
            }
            Err(ProposeError::Dropped(why)) => Err(HarnessError(format!(
                "raft-rs dropped a proposal on the leader: {why}"
            ))),
        }
    }

    fn handle_output(&mut self, n: NodeId, out: ReadyOutput) -> Result<(), HarnessError> {
        for (id, _) in &out.applied {
            // Only the proposer answers, once it has applied the write itself.
            if self
                .waiting_writes
                .get(id)
                .is_some_and(|(origin, _)| *origin == n)
            {
                if let Some((_, req)) = self.waiting_writes.remove(id) {
                    self.answered.push(req);
                }
            }
        }
        for m in out.messages {
            if self.nodes.len() == 1 {
                return Err(HarnessError(format!(
                    "a one-voter group sent a message: {m:?}"
                )));
            }
            let to = NodeId::try_from(m.to.wrapping_sub(1))
                .map_err(|_| HarnessError(format!("message to unknown node {}", m.to)))?;
            self.net.send(n, to, Carried::Raft(m));
        }
        Ok(())
    }

    /// The model delivers a peer message: the real one standing for it is stepped
    /// into its destination as the driver steps it.
    fn deliver(&mut self, e: &Envelope) -> Result<(), HarnessError> {
        let carried = match self.net.take(e) {
            Ok(carried) => carried,
            Err(kind) => {
                self.unmapped = Some(kind);
                return Ok(());
            }
        };
        let Some(meta) = self.node(e.dst).meta.as_mut() else {
            return Err(HarnessError(format!(
                "a message delivered to node {} that is not running",
                e.dst
            )));
        };
        match carried {
            Carried::Raft(m) => {
                if m.get_msg_type() == MessageType::MsgRequestVote {
                    meta.let_leader_lease_lapse();
                }
                meta.step(m)?;
            }
            // Proposed if this node leads; otherwise the origin retries on its own
            // (the driver answers NOT_CONTROLLER, never forwards on).
            Carried::Forward(envelope) => match meta.propose(&envelope) {
                Ok(()) | Err(ProposeError::NotLeader { .. }) => {}
                Err(ProposeError::Dropped(why)) => {
                    return Err(HarnessError(format!(
                        "raft-rs dropped a forwarded proposal on the leader: {why}"
                    )))
                }
            },
        }
        Ok(())
    }

    /// The broker's registration task sees its incarnation in the metadata.
    fn note_registration(&mut self) {
        for node in &mut self.nodes {
            if node.phase != Phase::Listening {
                continue;
            }
            let mine = node.meta.as_ref().is_some_and(|meta| {
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
        let node = self.node(n);
        if let Some(meta) = node.meta.as_mut() {
            meta.persist()?;
        }
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
