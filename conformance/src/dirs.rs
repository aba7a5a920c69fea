//! The directories model (model/src/dirs) as the oracle of the real start-up check
//! and partition-directory code (spec/conformance.md, C-7): one broker on a `MemDisk`,
//! its metadata in a real Raft WAL (`RaftWal`), recovered and replayed at each start by
//! the real `MetadataNode`, its image a real `MetadataState`, its directories decided by
//! the real `Partitions::reconcile_in_start` (`claim_dir`, stray removal) and
//! `refuse_partition_data_without_metadata`, its records written and read through the
//! real `PartitionLog`.
//!
//! The cluster a member learns from is a list of committed commands: how entries reach
//! a member is the metadata model's business (C-1); here the member's Raft log holds
//! what the model says it holds, durably, with the commit index the model says it
//! synced, and everything else is the real code's.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chronik::consensus::{
    refuse_partition_data_without_metadata, MetadataNode, NodeConfig, OrphanedData, RaftWal,
};
use chronik::disk::{Disk, MemDisk, Tear};
use chronik::log::batch::{build_batch, Record};
use chronik::log::{LogConfig, ManualCommitter, PartitionLog};
use chronik::metadata::{CommandEnvelope, MetadataCommand, MetadataState};
use chronik_core::replication::{read_stamp, NoEvents, Partitions, ReplicationBugs, Stamp};
use chronik_model::dirs::{live_topic, DCmd, DPhase, DState, DirAction, DirModel, TopicId};
use raft::eraftpb::{Entry, HardState};
use raft::Storage;
use stateright::Model;

use crate::harness::{read_records, HarnessError, TIMESTAMP_BASE};
use crate::replay::{successors, Rng};

const ME: u64 = 1;
/// The other voter of a cluster member's group; it never runs.
const PEER: u64 = 2;
const TOPIC: &str = "t";

fn fail(what: impl Into<String>) -> HarnessError {
    HarnessError(what.into())
}

fn metadata_dir() -> PathBuf {
    PathBuf::from("/data/metadata")
}

fn logs_dir() -> PathBuf {
    PathBuf::from("/data/logs")
}

fn partition_dir() -> PathBuf {
    logs_dir().join(format!("{TOPIC}-0"))
}

fn real_topic_id(id: TopicId) -> String {
    format!("id-{id}")
}

fn model_topic_id(real: &str) -> Result<TopicId, HarnessError> {
    real.strip_prefix("id-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| fail(format!("topic id {real:?} is not one the oracle wrote")))
}

fn command(cmd: DCmd) -> MetadataCommand {
    match cmd {
        DCmd::Create(id) => MetadataCommand::CreateTopic {
            name: TOPIC.into(),
            topic_id: real_topic_id(id),
            partitions: vec![vec![ME as i32]],
            configs: Default::default(),
        },
        DCmd::Delete(_) => MetadataCommand::DeleteTopic { name: TOPIC.into() },
        DCmd::Register(start) => MetadataCommand::RegisterBroker {
            broker_id: ME as i32,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            incarnation: u64::from(start),
            listeners: Vec::new(),
            acks_before_fsync: false,
            short_copies: Vec::new(),
        },
    }
}

fn envelope(index: u64, cmd: DCmd) -> CommandEnvelope {
    CommandEnvelope::new(index, command(cmd))
}

/// The running process: what a crash takes.
struct Process {
    wal: RaftWal,
    /// Entries in the WAL.
    wal_entries: u64,
    image: MetadataState,
    applied: u64,
    partitions: Partitions,
}

/// One broker's disk and process, driven by the model's actions.
pub struct DirHarness {
    sole_voter: bool,
    bugs: ReplicationBugs,
    disk: MemDisk,
    committer: ManualCommitter,
    /// The committed metadata log, as the model's (a sole voter's is its own).
    cluster: Vec<DCmd>,
    phase: DPhase,
    starts: u8,
    /// Topics created so far: ids are never reused, lost metadata or not.
    created: TopicId,
    process: Option<Process>,
    acked: Vec<TopicId>,
    foreign_read: bool,
}

impl DirHarness {
    pub fn new(model: &DirModel, bugs: ReplicationBugs) -> Self {
        DirHarness {
            sole_voter: model.sole_voter,
            bugs,
            disk: MemDisk::new(),
            committer: ManualCommitter::new(),
            cluster: Vec::new(),
            phase: DPhase::Down,
            starts: 0,
            created: 0,
            process: None,
            acked: Vec::new(),
            foreign_read: false,
        }
    }

    fn voters(&self) -> Vec<u64> {
        if self.sole_voter {
            vec![ME]
        } else {
            vec![ME, PEER]
        }
    }

    fn running(&mut self) -> Result<&mut Process, HarnessError> {
        self.process
            .as_mut()
            .ok_or_else(|| fail("the model runs a broker the harness has down"))
    }

    pub fn apply(&mut self, action: DirAction) -> Result<(), HarnessError> {
        match action {
            DirAction::Restart => self.restart()?,
            DirAction::CreateTopic => {
                self.created += 1;
                self.write(DCmd::Create(self.created))?;
            }
            DirAction::DeleteTopic => {
                let id = live_topic(&self.cluster).ok_or_else(|| fail("no topic to delete"))?;
                self.write(DCmd::Delete(id))?;
            }
            DirAction::Register => self.cluster.push(DCmd::Register(self.starts)),
            DirAction::Learn => self.learn()?,
            DirAction::PersistCommit => {
                let p = self.running()?;
                let hs = hard_state(p.applied);
                p.wal.write_hard_state(&hs)?;
                p.wal.sync()?;
            }
            DirAction::Reconcile => self.reconcile()?,
            DirAction::Produce => self.produce()?,
            DirAction::Fetch => self.fetch()?,
            DirAction::Crash => {
                self.process = None;
                self.committer.abandon();
                self.disk.crash(Tear::None);
                self.phase = DPhase::Down;
            }
            DirAction::LoseMetadata => {
                self.remove(&metadata_dir())?;
                if self.sole_voter {
                    self.cluster.clear();
                }
            }
            DirAction::MoveLogsAside => {
                self.remove(&logs_dir())?;
                self.phase = DPhase::Down;
            }
        }
        Ok(())
    }

    /// The operator's removal (or a lost disk): durable, as after `rm -r` and `sync`.
    fn remove(&self, dir: &std::path::Path) -> Result<(), HarnessError> {
        if self.disk.is_dir(dir) {
            self.disk
                .remove_dir_all(dir)
                .map_err(|e| fail(format!("remove {}: {e}", dir.display())))?;
            if let Some(parent) = dir.parent() {
                self.disk
                    .sync_dir(parent)
                    .map_err(|e| fail(format!("sync {}: {e}", parent.display())))?;
            }
        }
        Ok(())
    }

    /// `RunningBroker::start`: the R-RECOVER-7 check, recovery and replay by the real
    /// node, a sole voter's registration, then `reconcile_in_start`.
    fn restart(&mut self) -> Result<(), HarnessError> {
        match refuse_partition_data_without_metadata(&self.disk, &metadata_dir(), &logs_dir()) {
            Ok(()) => {}
            Err(OrphanedData::MetadataMissing { .. }) => {
                self.phase = DPhase::Refused;
                return Ok(());
            }
            Err(e) => return Err(fail(format!("the start-up check failed: {e}"))),
        }
        self.starts += 1;
        let disk: Arc<dyn Disk> = Arc::new(self.disk.clone());
        let config = NodeConfig {
            voters: self.voters(),
            ..NodeConfig::single(ME)
        };
        let mut node = MetadataNode::open(Arc::clone(&disk), &metadata_dir(), config)?;
        node.replay_committed()?;
        let image = node.state().clone();
        let applied = node.commit_index();
        drop(node);
        let (wal, store) = RaftWal::open(Arc::clone(&disk), &metadata_dir(), &self.voters())?;
        let wal_entries = store
            .mem()
            .last_index()
            .map_err(|e| fail(format!("last index: {e}")))?;
        let partitions = Partitions::new(
            disk,
            logs_dir(),
            LogConfig::default(),
            Arc::new(NoEvents),
            self.committer.queue(),
        )
        .with_bugs(self.bugs);
        self.process = Some(Process {
            wal,
            wal_entries,
            image,
            applied,
            partitions,
        });
        self.phase = DPhase::Running;
        if self.sole_voter {
            // The driver's first step: a one-voter group registers at once.
            self.write(DCmd::Register(self.starts))?;
        }
        self.reconcile()
    }

    /// A committed metadata write. A sole voter's is durable, committed (its commit
    /// index synced) and applied in one Ready.
    fn write(&mut self, cmd: DCmd) -> Result<(), HarnessError> {
        self.cluster.push(cmd);
        if self.sole_voter {
            self.learn()?;
            let p = self.running()?;
            p.wal.write_hard_state(&hard_state(p.applied))?;
            p.wal.sync()?;
        }
        Ok(())
    }

    /// The next committed entry: appended durably unless the log holds it, then
    /// applied by the real state machine.
    fn learn(&mut self) -> Result<(), HarnessError> {
        let cluster = self.cluster.clone();
        let p = self.running()?;
        let index = p.applied + 1;
        let cmd = *cluster
            .get(p.applied as usize)
            .ok_or_else(|| fail("nothing committed to learn"))?;
        let envelope = envelope(index, cmd);
        if p.wal_entries < index {
            let data = envelope.encode().map_err(fail)?;
            let entry = Entry {
                term: 1,
                index,
                data: data.into(),
                ..Default::default()
            };
            p.wal.append_entries(&[entry])?;
            p.wal.sync()?;
            p.wal_entries = index;
        }
        let _outcome = p.image.apply(index, &envelope);
        p.applied = index;
        Ok(())
    }

    fn reconcile(&mut self) -> Result<(), HarnessError> {
        let starts = u64::from(self.starts);
        let p = self.running()?;
        p.partitions
            .reconcile_in_start(&p.image, ME as i32, starts)
            .map_err(|e| fail(format!("reconcile: {e}")))
    }

    /// The log the Produce and Fetch handlers find for `t`: the open log of the
    /// topic id the metadata names.
    fn served_log(&mut self) -> Result<(TopicId, Arc<PartitionLog>), HarnessError> {
        let p = self.running()?;
        let id = p
            .image
            .topics
            .get(TOPIC)
            .map(|t| t.topic_id.clone())
            .ok_or_else(|| fail("the metadata names no topic t"))?;
        let log = p
            .partitions
            .get_of(TOPIC, 0, &id)
            .ok_or_else(|| fail(format!("no open log of t-0 for {id}")))?;
        Ok((model_topic_id(&id)?, log))
    }

    /// An acks=all produce of one record tagged with the topic id it went to.
    fn produce(&mut self) -> Result<(), HarnessError> {
        let (id, log) = self.served_log()?;
        let batch = build_batch(
            &[Record {
                key: None,
                value: Some(vec![id]),
                timestamp_delta: 0,
            }],
            TIMESTAMP_BASE + i64::from(id),
        );
        let done = Arc::new(Mutex::new(false));
        let acked = Arc::clone(&done);
        log.append_then(&batch, 0, 0, move |result| {
            *acked.lock().unwrap_or_else(|p| p.into_inner()) = result.is_ok();
        });
        self.committer.run_round();
        log.advance_single_replica_high_watermark();
        if !*done.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(fail("a produce was not acknowledged after its sync"));
        }
        self.acked.push(id);
        Ok(())
    }

    fn fetch(&mut self) -> Result<(), HarnessError> {
        let (id, log) = self.served_log()?;
        let records = read_records(&log, log.high_watermark())?;
        self.foreign_read |= records.iter().any(|(_, tag)| *tag != id);
        Ok(())
    }

    pub fn view(&self) -> Result<DirView, HarnessError> {
        let copy = self.disk.durable_copy();
        let (wal, commit) = durable_metadata(&copy, &self.voters())?;
        let running = match &self.process {
            None => None,
            Some(p) => {
                let image_topic = match p.image.topics.get(TOPIC) {
                    Some(t) => Some(model_topic_id(&t.topic_id)?),
                    None => None,
                };
                let open = (1..=self.created)
                    .find(|id| p.partitions.get_of(TOPIC, 0, &real_topic_id(*id)).is_some());
                Some(RunView {
                    applied: small(p.applied)?,
                    image_topic,
                    registered: p
                        .image
                        .brokers
                        .get(&(ME as i32))
                        .is_some_and(|b| b.incarnation == u64::from(self.starts)),
                    open,
                })
            }
        };
        Ok(DirView {
            phase: self.phase,
            wal,
            commit,
            running,
            dir: durable_dir(&copy)?,
            foreign_read: self.foreign_read,
            acked: self.acked.clone(),
        })
    }
}

fn hard_state(commit: u64) -> HardState {
    HardState {
        term: 1,
        vote: ME,
        commit,
        ..Default::default()
    }
}

fn small(n: u64) -> Result<u8, HarnessError> {
    u8::try_from(n).map_err(|_| fail(format!("{n} does not fit the model")))
}

/// Entries in the durable Raft log and the durable commit index, as a restart would
/// recover them.
fn durable_metadata(copy: &MemDisk, voters: &[u64]) -> Result<(u8, u8), HarnessError> {
    if !copy.is_dir(&metadata_dir()) {
        return Ok((0, 0));
    }
    let (_wal, store) = RaftWal::open(Arc::new(copy.clone()), &metadata_dir(), voters)?;
    let storage = store.mem();
    let last = storage
        .last_index()
        .map_err(|e| fail(format!("last index: {e}")))?;
    let state = storage
        .initial_state()
        .map_err(|e| fail(format!("durable raft state: {e}")))?;
    Ok((small(last)?, small(state.hard_state.commit)?))
}

/// The durable partition directory of `t`-0: its stamp and each record's tag.
fn durable_dir(copy: &MemDisk) -> Result<Option<(TopicId, Vec<TopicId>)>, HarnessError> {
    let dir = partition_dir();
    if !copy.is_dir(&dir) {
        return Ok(None);
    }
    let stamp =
        read_stamp(copy, &dir).map_err(|e| fail(format!("the stamp of {}: {e}", dir.display())))?;
    let stamp = stamp.as_ref().and_then(Stamp::id).ok_or_else(|| {
        fail(format!(
            "the stamp of {} is missing or damaged",
            dir.display()
        ))
    })?;
    let stamp = model_topic_id(stamp)?;
    let log = PartitionLog::open(Arc::new(copy.clone()), &dir, LogConfig::default(), None)?;
    let records = read_records(&log, log.log_end_offset())?
        .into_iter()
        .map(|(_, tag)| tag)
        .collect();
    Ok(Some((stamp, records)))
}

/// What a running broker holds in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    pub applied: u8,
    pub image_topic: Option<TopicId>,
    pub registered: bool,
    pub open: Option<TopicId>,
}

/// Both sides reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirView {
    pub phase: DPhase,
    /// Entries in the durable Raft log, and the durable commit index.
    pub wal: u8,
    pub commit: u8,
    pub running: Option<RunView>,
    /// The durable directory of `t`-0: stamp and record tags.
    pub dir: Option<(TopicId, Vec<TopicId>)>,
    pub foreign_read: bool,
    pub acked: Vec<TopicId>,
}

pub fn of_model(s: &DState) -> DirView {
    DirView {
        phase: s.phase,
        wal: s.wal,
        commit: s.commit,
        running: (s.phase == DPhase::Running).then(|| RunView {
            applied: s.applied,
            image_topic: s.image_topic(),
            registered: s.registered(),
            open: s.open,
        }),
        dir: s.dir.as_ref().map(|d| (d.stamp, d.records.clone())),
        foreign_read: s.ghost.foreign_read,
        acked: s.ghost.acked.clone(),
    }
}

/// The first step at which the real code and the model disagree.
#[derive(Debug)]
pub struct DirDivergence {
    pub path: Vec<DirAction>,
    pub model: DirView,
    pub real: Option<DirView>,
    pub why: String,
    pub seed: u64,
}

impl std::fmt::Display for DirDivergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "DIVERGENCE after step {} ({})",
            self.path.len(),
            self.why
        )?;
        writeln!(f, "  seed: {}", self.seed)?;
        for (i, a) in self.path.iter().enumerate() {
            writeln!(f, "    {:>3}. {a}", i + 1)?;
        }
        writeln!(f, "  model: {:?}", self.model)?;
        match &self.real {
            Some(real) => writeln!(f, "  real:  {real:?}"),
            None => writeln!(f, "  real:  (no view: the real code failed)"),
        }
    }
}

/// What the walks covered.
#[derive(Debug, Default)]
pub struct DirStats {
    pub walks: usize,
    pub steps: usize,
    /// Walks that reached each model example (by the ghost flag that shows it).
    pub refused: usize,
    pub strays_removed: usize,
    pub deferred: usize,
    pub kinds: BTreeSet<String>,
}

struct Walk {
    state: DState,
    real: DirHarness,
    path: Vec<DirAction>,
    seed: u64,
}

impl Walk {
    fn start(model: &DirModel, bugs: ReplicationBugs, seed: u64) -> Self {
        Walk {
            state: DState::default(),
            real: DirHarness::new(model, bugs),
            path: Vec::new(),
            seed,
        }
    }

    fn advance(&mut self, action: DirAction, next: DState) -> Result<(), Box<DirDivergence>> {
        self.path.push(action);
        self.state = next;
        let model = of_model(&self.state);
        let diverged = |why: String, real: Option<DirView>| {
            Box::new(DirDivergence {
                path: self.path.clone(),
                model: model.clone(),
                real,
                why,
                seed: self.seed,
            })
        };
        if let Err(e) = self.real.apply(action) {
            return Err(diverged(format!("the real code failed: {}", e.0), None));
        }
        match self.real.view() {
            Ok(real) if real == model => Ok(()),
            Ok(real) => Err(diverged("the views differ".into(), Some(real))),
            Err(e) => Err(diverged(format!("no real view: {}", e.0), None)),
        }
    }
}

/// Replays one model path on the real code, comparing after every step.
pub fn replay_dirs_path(
    model: &DirModel,
    bugs: ReplicationBugs,
    path: &[DirAction],
) -> Result<(), Box<DirDivergence>> {
    let mut walk = Walk::start(model, bugs, 0);
    for action in path {
        let Some(next) = model.next_state(&walk.state, *action) else {
            break;
        };
        walk.advance(*action, next)?;
    }
    Ok(())
}

/// What an exhaustive replay covered.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Model states reached on the real code and compared there.
    pub states: usize,
    /// Paths replayed: one to each leaf of the breadth-first tree.
    pub paths: usize,
    pub steps: usize,
}

/// Every state of the model within `max_depth` steps (`None`: every reachable state),
/// each reached on the real code along its breadth-first path and compared there: the
/// paths to the leaves of the breadth-first tree pass through every state of it.
pub fn dirs_every_state(
    model: &DirModel,
    bugs: ReplicationBugs,
    max_depth: Option<usize>,
) -> Result<Coverage, Box<DirDivergence>> {
    let (parents, leaves) = breadth_first_tree(model, max_depth);
    let mut coverage = Coverage {
        states: parents.len(),
        ..Coverage::default()
    };
    for leaf in leaves {
        let mut path = Vec::new();
        let mut at = leaf;
        while let Some((parent, action)) = parents[at] {
            path.push(action);
            at = parent;
        }
        path.reverse();
        coverage.paths += 1;
        coverage.steps += path.len();
        replay_dirs_path(model, bugs, &path)?;
    }
    Ok(coverage)
}

/// Each state's parent and the action from it (`None` for the initial state), and
/// the states with no child in the tree.
type Tree = (Vec<Option<(usize, DirAction)>>, Vec<usize>);

fn breadth_first_tree(model: &DirModel, max_depth: Option<usize>) -> Tree {
    let mut seen = std::collections::HashMap::from([(DState::default(), 0usize)]);
    let mut states = vec![DState::default()];
    let mut parents: Vec<Option<(usize, DirAction)>> = vec![None];
    let mut depths = vec![0usize];
    let mut has_child = vec![false];
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        if max_depth.is_some_and(|d| depths[i] >= d) {
            continue;
        }
        for (action, next) in successors(model, &states[i]) {
            if seen.contains_key(&next) {
                continue;
            }
            let j = states.len();
            seen.insert(next.clone(), j);
            states.push(next);
            parents.push(Some((i, action)));
            depths.push(depths[i] + 1);
            has_child.push(false);
            has_child[i] = true;
            queue.push_back(j);
        }
    }
    let leaves = (0..states.len()).filter(|i| !has_child[*i]).collect();
    (parents, leaves)
}

/// `walks` random walks of at most `depth` steps through the model within its
/// bounds, each on a fresh broker; the first divergence, if any.
pub fn dirs_walks(
    model: &DirModel,
    bugs: ReplicationBugs,
    walks: usize,
    depth: usize,
    seed: u64,
) -> Result<DirStats, Box<DirDivergence>> {
    let mut rng = Rng::new(seed);
    let mut stats = DirStats::default();
    for i in 0..walks {
        let walk_seed = rng.next_u64() ^ i as u64;
        let mut walk = Walk::start(model, bugs, walk_seed);
        let mut choose = Rng::new(walk_seed);
        for _ in 0..depth {
            let next = successors(model, &walk.state);
            if next.is_empty() {
                break;
            }
            let (action, state) = next[choose.below(next.len())].clone();
            walk.advance(action, state)?;
            stats.kinds.insert(format!("{action}"));
        }
        let ghost = &walk.state.ghost;
        stats.walks += 1;
        stats.steps += walk.path.len();
        stats.refused += usize::from(ghost.refused);
        stats.strays_removed += usize::from(ghost.stray_removed);
        stats.deferred += usize::from(ghost.deferred);
    }
    Ok(stats)
}
