//! The abstraction function: both the model's state and the real code's state are
//! reduced to the same observable view, which the oracle compares after every step.
//! What is durable on the real side is read back from a copy of the simulated disk
//! (what a crash now would leave), by the same recovery code a restart runs, never
//! from the node's own bookkeeping.

use std::sync::Arc;

use chronik::consensus::RaftWal;
use chronik::disk::Disk;
use chronik::log::{LogConfig, PartitionLog};
use chronik::metadata::{CommandEnvelope, MetadataCommand};
use chronik_model::state::{Cmd, Entry, NodeId, Phase, Role, State, MAX_NODES};
use raft::eraftpb::Entry as RaftEntry;
use raft::{GetEntriesContext, StateRole, Storage};

use crate::harness::{metadata_dir, partition_dir, read_ids, real_id, Harness, HarnessError};

/// One node as the model and the oracle see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub phase: Phase,
    // In memory; reset to the defaults while the process is not running.
    pub term: u8,
    pub vote: Option<NodeId>,
    pub role: Role,
    pub leader: Option<NodeId>,
    /// The metadata snapshot the log was compacted to: (index, term), (0, 0) for none.
    pub snapshot: (u8, u8),
    /// The entries after the snapshot.
    pub log: Vec<(u8, Cmd)>,
    pub stable: u8,
    pub commit: u8,
    pub applied: u8,
    pub brokers: [u8; MAX_NODES],
    pub topics: u8,
    pub ready_pending: bool,
    /// Partition records written (ids by offset); the durable ones when not running.
    pub plog: Vec<u8>,
    pub hw: u8,
    // On disk: what a crash now would leave, as far as it reads back (up to any
    // damage: R-RECOVER-6).
    pub durable_snapshot: (u8, u8),
    pub durable_log: Vec<(u8, Cmd)>,
    pub durable_hs: (u8, Option<NodeId>, u8),
    /// The Raft log is damaged, or cut at damage and under repair (R-RECOVER-9).
    pub raft_damaged: bool,
    pub plog_durable: Vec<u8>,
}

impl NodeView {
    /// A node with only its disk: the in-memory fields at their defaults, which the
    /// caller overwrites while the process runs.
    fn at_rest(
        phase: Phase,
        durable_snapshot: (u8, u8),
        durable_log: Vec<(u8, Cmd)>,
        durable_hs: (u8, Option<NodeId>, u8),
        raft_damaged: bool,
        plog_durable: Vec<u8>,
    ) -> Self {
        NodeView {
            phase,
            term: 0,
            vote: None,
            role: Role::Follower,
            leader: None,
            snapshot: (0, 0),
            log: Vec::new(),
            stable: 0,
            commit: 0,
            applied: 0,
            brokers: [0; MAX_NODES],
            topics: 0,
            ready_pending: false,
            plog: plog_durable.clone(),
            hw: 0,
            durable_snapshot,
            durable_log,
            durable_hs,
            raft_damaged,
            plog_durable,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemView {
    pub nodes: Vec<NodeView>,
    /// Produce acknowledgements released to clients: (offset, record id).
    pub acked: Vec<(u8, u8)>,
    /// What consumers have read, by offset.
    pub read: Vec<u8>,
    /// Clients' metadata writes answered success, by request number (R-PROPOSE-1).
    pub answered: Vec<u8>,
}

impl SystemView {
    /// Field-by-field differences, for the divergence report.
    pub fn diff(&self, other: &SystemView) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (a, b)) in self.nodes.iter().zip(&other.nodes).enumerate() {
            if a != b {
                out.push(format!("node {i}:\n      model {a:?}\n      real  {b:?}"));
            }
        }
        if self.acked != other.acked {
            out.push(format!(
                "acked: model {:?} real {:?}",
                self.acked, other.acked
            ));
        }
        if self.read != other.read {
            out.push(format!("read: model {:?} real {:?}", self.read, other.read));
        }
        if self.answered != other.answered {
            out.push(format!(
                "metadata writes answered: model {:?} real {:?}",
                self.answered, other.answered
            ));
        }
        out
    }
}

/// A voter that exists only so that the copy of a disk opens as a cluster member's
/// and reads up to damage instead of refusing it.
const READING_PEER: u64 = 1 << 40;

/// The durable term, vote and commit index. Past damage the commit index is left out:
/// it is whatever the last HardState record before the damage said, and the model does
/// not order HardState records among entry records (term and vote are kept whole by the
/// vote file; a repair learns the commit index from the leader again).
fn durable_hard_state(
    term: u8,
    vote: Option<NodeId>,
    commit: u8,
    damaged: bool,
) -> (u8, Option<NodeId>, u8) {
    (term, vote, if damaged { 0 } else { commit })
}

/// (index, term) of the snapshot at `at` of a model log that keeps compacted entries.
fn snapshot_of(log: &[Entry], at: u8) -> (u8, u8) {
    let term = usize::from(at)
        .checked_sub(1)
        .and_then(|i| log.get(i))
        .map_or(0, |e| e.term);
    (at, term)
}

fn entries(log: &[Entry]) -> Vec<(u8, Cmd)> {
    log.iter().map(|e| (e.term, e.cmd)).collect()
}

fn live(phase: Phase) -> bool {
    !matches!(phase, Phase::Down | Phase::Failed)
}

pub fn of_model(s: &State) -> SystemView {
    let nodes = s
        .nodes
        .iter()
        .map(|n| {
            let durable = usize::from(n.disk.plog_durable).min(n.disk.plog.len());
            let plog_durable = n.disk.plog[..durable].to_vec();
            let hs = n.disk.durable_hs;
            let readable = n.disk.damaged.map_or(n.disk.durable_log.len(), usize::from);
            let damaged = n.disk.damaged.is_some() || n.disk.repair_marker;
            let snap = usize::from(n.disk.snap_idx);
            let mut v = NodeView::at_rest(
                n.phase,
                snapshot_of(&n.disk.durable_log, n.disk.snap_idx),
                entries(&n.disk.durable_log[snap..readable]),
                durable_hard_state(hs.term, hs.vote, hs.commit, damaged),
                damaged,
                plog_durable,
            );
            if live(n.phase) {
                v.term = n.term;
                v.vote = n.vote;
                v.role = n.role;
                v.leader = n.leader;
                v.snapshot = snapshot_of(&n.log, n.snap_idx);
                v.log = entries(&n.log[usize::from(n.snap_idx)..]);
                v.stable = n.stable;
                v.commit = n.commit;
                v.applied = n.applied;
                v.brokers = n.image.brokers;
                v.topics = n.image.topics;
                v.ready_pending = n.ready.is_some();
                v.plog = n.disk.plog.clone();
                v.hw = n.hw;
            }
            v
        })
        .collect();
    SystemView {
        nodes,
        acked: s.ghost.acked.clone(),
        read: s.ghost.read.clone(),
        answered: s.ghost.answered.clone(),
    }
}

fn small(what: &str, x: u64) -> Result<u8, HarnessError> {
    u8::try_from(x).map_err(|_| HarnessError(format!("{what} {x} is beyond the model's range")))
}

fn model_id(real: u64) -> Result<Option<NodeId>, HarnessError> {
    match real {
        0 => Ok(None),
        id => small("node id", id - 1).map(Some),
    }
}

fn command(entry: &RaftEntry) -> Result<(u8, Cmd), HarnessError> {
    let term = small("term", entry.term)?;
    if entry.data.is_empty() {
        return Ok((term, Cmd::Noop));
    }
    // Read whatever its version: the model's undecodable records are of a newer
    // version only for the broker (`Harness::make_committed_topics_undecodable`).
    let envelope: CommandEnvelope = serde_json::from_slice(&entry.data)
        .map_err(|e| HarnessError(format!("entry {} does not decode: {e}", entry.index)))?;
    let cmd = match envelope.command {
        MetadataCommand::RegisterBroker {
            broker_id,
            incarnation,
            ..
        } => Cmd::Register(
            small("broker id", broker_id as u64 - 1)?,
            small("incarnation", incarnation)?,
        ),
        MetadataCommand::CreateTopic { .. } => Cmd::CreateTopic,
        other => {
            return Err(HarnessError(format!(
                "command outside the model: {other:?}"
            )))
        }
    };
    Ok((term, cmd))
}

fn role(r: StateRole) -> Role {
    match r {
        StateRole::Follower => Role::Follower,
        StateRole::Candidate => Role::Candidate,
        StateRole::Leader => Role::Leader,
        StateRole::PreCandidate => Role::PreCandidate,
    }
}

pub fn of_real(h: &Harness) -> Result<SystemView, HarnessError> {
    let mut nodes = Vec::with_capacity(h.nodes.len());
    for node in &h.nodes {
        // Durable state: recover a copy of the disk as a restart would, as a member of
        // a cluster, which reads up to any damage where a single node refuses to.
        let copy: Arc<dyn Disk> = Arc::new(node.disk.durable_copy());
        let readers = [real_id(node.id), READING_PEER];
        let (wal, store) = RaftWal::open(Arc::clone(&copy), &metadata_dir(), &readers)?;
        let storage = store.mem();
        let state = storage
            .initial_state()
            .map_err(|e| HarnessError(format!("durable raft state: {e}")))?;
        let first = storage
            .first_index()
            .map_err(|e| HarnessError(e.to_string()))?;
        let last = storage
            .last_index()
            .map_err(|e| HarnessError(e.to_string()))?;
        let snapshot = store.last_snapshot();
        let durable_snapshot = (
            small("snapshot index", snapshot.get_metadata().index)?,
            small("snapshot term", snapshot.get_metadata().term)?,
        );
        let durable_entries = if last >= first {
            storage
                .entries(first, last + 1, None, GetEntriesContext::empty(false))
                .map_err(|e| HarnessError(format!("durable entries: {e}")))?
        } else {
            Vec::new()
        };
        let durable_log = durable_entries
            .iter()
            .map(command)
            .collect::<Result<Vec<_>, _>>()?;
        let hs = &state.hard_state;
        let durable_hs = durable_hard_state(
            small("term", hs.term)?,
            model_id(hs.vote)?,
            small("commit", hs.commit)?,
            wal.is_repairing(),
        );
        let durable_partition =
            PartitionLog::open(copy, &partition_dir(), LogConfig::default(), None)?;
        let plog_durable = read_ids(&durable_partition, durable_partition.log_end_offset())?;

        let mut v = NodeView::at_rest(
            node.phase,
            durable_snapshot,
            durable_log,
            durable_hs,
            wal.is_repairing(),
            plog_durable,
        );
        if live(node.phase) {
            let (Some(meta), Some(_)) = (node.meta(), node.partitions.as_ref()) else {
                return Err(HarnessError("a running node without its state".into()));
            };
            let o = meta.observe();
            v.term = small("term", o.term)?;
            v.vote = model_id(o.vote)?;
            v.role = role(o.role);
            v.leader = o.leader.map(model_id).transpose()?.flatten();
            v.snapshot = (
                small("snapshot index", o.snapshot_index)?,
                small("snapshot term", o.snapshot_term)?,
            );
            // After a compaction raft-rs's storage may still hold the snapshot's last
            // entry; the view starts after the snapshot either way.
            v.log = o
                .entries
                .iter()
                .filter(|e| e.index > o.snapshot_index)
                .map(command)
                .collect::<Result<_, _>>()?;
            v.stable = small("persisted", o.persisted)?;
            v.commit = small("commit", o.committed)?;
            v.applied = small("applied", o.applied)?;
            let state = meta.state();
            for (id, broker) in &state.brokers {
                let b = usize::from(small("broker id", *id as u64 - 1)?);
                if b < MAX_NODES {
                    v.brokers[b] = small("incarnation", broker.incarnation)?;
                }
            }
            v.topics = small("topics", state.topics.len() as u64)?;
            v.ready_pending = o.ready_pending;
            // Only the partition's one replica hosts it; elsewhere it is empty.
            if let Some(partition) = node.partition_log() {
                v.plog = read_ids(&partition, partition.log_end_offset())?;
                v.hw = small("high watermark", partition.high_watermark())?;
            }
        }
        nodes.push(v);
    }
    let acked = h
        .acked()
        .into_iter()
        .map(|(offset, id)| Ok((small("offset", offset)?, id)))
        .collect::<Result<_, HarnessError>>()?;
    Ok(SystemView {
        nodes,
        acked,
        read: h.read.clone(),
        answered: h.answered.clone(),
    })
}

/// The id a real node would have: for reports.
pub fn describe_ids(nodes: usize) -> String {
    (0..nodes)
        .map(|n| format!("model n{n} = raft/broker id {}", real_id(n as NodeId)))
        .collect::<Vec<_>>()
        .join(", ")
}
