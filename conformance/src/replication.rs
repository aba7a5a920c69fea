//! The replication model (model/src/replication) as the oracle of the real replication
//! code: three simulated brokers, each with its own disk (MemDisk), its own partition
//! logs (`Partitions`, with the real group commit run by hand), and its own applied
//! metadata image; the controller's committed image is a real `MetadataState`. Every
//! model action is carried out by the functions the broker's async edges call
//! (`chronik_core::replication`: `LocalView`, `Partitions`, `truncation_point`,
//! `MetadataState::apply`), and after every step both sides are reduced to a
//! `ReplView` and compared (spec/conformance.md, C-5).
//!
//! The clock is logical and constant: time is not modelled, so an ISR shrink is the
//! model's choice (the real trigger is a lag timer) and an expansion is checked
//! against what the real `wanted_isr` would propose.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chronik::disk::{Disk, MemDisk, Tear};
use chronik::log::batch::{build_batch, set_producer, BatchHeader, Record};
use chronik::log::{FsyncPolicy, LogConfig, LogError, ManualCommitter, PartitionLog};
use chronik::metadata::{ApplyOutcome, CommandEnvelope, CopyRef, MetadataCommand, MetadataState};
use chronik_core::consensus::Registration;
use chronik_core::log::frame::{self, FRAME_HEADER_LEN};
use chronik_core::replication::{
    follower_fetch_offset, holds_isr, truncation_point, AppendResult, DeletionStarted, Fetched,
    FollowerFetch, LocalView, NoEvents, Partitions, ProduceWait, RepairStep, Repairs,
    ReplicationBugs, ReplicationError,
};
use chronik_model::replication::{
    has, members, FetchResp, MetaCmd, RAction, RState, ReplicationModel, Set, ALL, REPLICAS,
};
use chronik_model::state::NodeId;

use crate::harness::{parse_batches, read_records_around_damage, HarnessError, TIMESTAMP_BASE};
use crate::replay::{successors, Rng};

const TOPIC: &str = "replicated";
/// The logical clock: constant, so no follower ever lags by time.
const NOW_MS: u64 = 1_000;
/// Large enough that the real ISR logic never drops a follower for lag on its own.
const LAG_MAX_MS: u64 = 1 << 40;
/// Longer than any rest the real repair takes before it proposes again (a refused
/// sole copy's 10 s): the model proposes a repair again only once its last proposal
/// is lost or refused, which is when the real one's retry timer has fired.
const REPAIR_RETRY_MS: u64 = 10_001;

fn key() -> (String, i32) {
    (TOPIC.to_string(), 0)
}

/// Broker ids start at 1, model node ids at 0.
fn broker_id(n: NodeId) -> i32 {
    i32::from(n) + 1
}

fn node_of(id: i32) -> Option<NodeId> {
    NodeId::try_from(id - 1)
        .ok()
        .filter(|n| usize::from(*n) < REPLICAS)
}

fn set_of(ids: &[i32]) -> Set {
    ids.iter()
        .filter_map(|id| node_of(*id))
        .fold(0, |s, n| s | (1 << n))
}

/// The outcomes the group commit handed back: (the append's number, its outcome).
type Outcomes = Arc<Mutex<Vec<(u64, AppendResult)>>>;

struct SimBroker {
    disk: MemDisk,
    incarnation: u64,
    /// The metadata this broker has applied.
    view: MetadataState,
    committer: ManualCommitter,
    /// `None` while the process is down.
    partitions: Option<Partitions>,
    /// Filled by the group commit's callbacks.
    outcomes: Outcomes,
    /// The produces appended here and not answered yet: (the append's number, its
    /// wait, its value).
    waiting: Vec<(u64, ProduceWait, u8)>,
    /// The model filled this broker's disk: no write may grow it.
    full: bool,
    /// The repairs of damaged copies under way (memory only, as in the broker).
    repairs: Repairs,
    /// DeleteRecords this broker took as leader and has not answered (memory only).
    deletions: Vec<DeletionStarted>,
}

fn lock(v: &Outcomes) -> MutexGuard<'_, Vec<(u64, AppendResult)>> {
    v.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimBroker {
    fn local(&self, n: NodeId) -> Option<LocalView<'_>> {
        self.partitions.as_ref().map(|partitions| LocalView {
            state: &self.view,
            partitions,
            me: broker_id(n),
            incarnation: self.incarnation,
        })
    }

    fn log(&self) -> Option<Arc<PartitionLog>> {
        self.partitions.as_ref()?.get(TOPIC, 0)
    }

    /// Each outcome the group commit handed back goes to its produce, which moves
    /// the high watermark as `produce_finish` does.
    fn settle(&mut self, n: NodeId) {
        let outcomes = std::mem::take(&mut *lock(&self.outcomes));
        let mut waiting = std::mem::take(&mut self.waiting);
        if let Some(local) = self.local(n) {
            for (number, outcome) in &outcomes {
                for (_, wait, _) in waiting.iter_mut().filter(|(w, ..)| w == number) {
                    wait.on_outcome(&local, outcome, NOW_MS);
                }
            }
        }
        self.waiting = waiting;
    }
}

/// The real replication code of three brokers and their controller.
pub struct ReplicationHarness {
    controller: MetadataState,
    applied_index: u64,
    /// Every fence the controller applied: (broker, Raft index).
    fences: Vec<(i32, u64)>,
    /// Proposed metadata commands, in the order the Raft log will hold them.
    inbox: Vec<Proposal>,
    brokers: Vec<SimBroker>,
    /// Fetch responses in flight: (to, leader epoch fetched under, the partition's answer).
    net: Vec<(NodeId, i32, Answer)>,
    acked: BTreeSet<(u8, u8)>,
    /// The highest offset an acknowledged DeleteRecords deleted below.
    deleted: u8,
    read: BTreeSet<(u8, u8)>,
    produced: u8,
    /// Appends issued, retries included: each one's number.
    appends: u64,
    /// The model's interval fsync policy: leaders acknowledge before syncing, and
    /// their registrations say so (R-REPL-5).
    acks_before_fsync: bool,
    /// The repairs' clock: only the time between a repair's proposals matters.
    repair_clock_ms: u64,
    /// Test-only faults every broker's replication steps run with.
    faults: ReplicationBugs,
}

/// A leader's answer to a follower's Fetch.
#[derive(Debug, Clone)]
enum Answer {
    Served(Fetched),
    /// OFFSET_OUT_OF_RANGE from below the leader's log start, which it names.
    OutOfRange {
        log_start: u64,
        high_watermark: u64,
    },
}

/// A metadata command on its way to the controller, and who waits for its outcome.
struct Proposal {
    command: MetadataCommand,
    /// A `RepairReplica`'s proposer: (broker, the incarnation that proposed it). Only
    /// that start of the broker hears the outcome.
    repair_by: Option<(NodeId, u64)>,
}

impl Proposal {
    fn of(command: MetadataCommand) -> Self {
        Proposal {
            command,
            repair_by: None,
        }
    }
}

fn fail(what: impl Into<String>) -> HarnessError {
    HarnessError(what.into())
}

fn root() -> PathBuf {
    PathBuf::from("/data")
}

/// The bytes the first `k` batches of `records` that start at or past `end` take
/// on disk: each is one frame (header and batch) in the segment.
fn frames_len(records: &[u8], end: u64, k: usize) -> u64 {
    let mut at = 0usize;
    let (mut taken, mut bytes) = (0usize, 0u64);
    while at + 12 <= records.len() && taken < k {
        let base = records[at..at + 8]
            .try_into()
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let len = records[at + 8..at + 12]
            .try_into()
            .map(u32::from_be_bytes)
            .unwrap_or(0) as usize;
        let batch = 12 + len;
        if base >= end {
            taken += 1;
            bytes += (FRAME_HEADER_LEN + batch) as u64;
        }
        at += batch;
    }
    bytes
}

/// The real repair decision for broker `n`'s copy now: `Repairs::next_step` with its
/// applied partition entry and the first offset its log lost to damage.
fn repair_step(b: &SimBroker, n: NodeId, now_ms: u64) -> Result<RepairStep, HarnessError> {
    let log = b.log().ok_or_else(|| fail("the broker is down"))?;
    let info = b
        .view
        .partition(TOPIC, 0)
        .ok_or_else(|| fail("the broker knows no partition"))?;
    Ok(b.repairs
        .next_step(&key(), info, broker_id(n), log.first_lost_offset(), now_ms))
}

/// One batch's frame in a segment file, as written (synced or not).
struct StoredBatch {
    path: PathBuf,
    base_offset: u64,
    /// Where its frame header starts in the file.
    frame_start: usize,
    /// Where the frame ends (its batch's last byte is just before).
    frame_end: usize,
    last_byte: u8,
}

/// Every batch frame the segments of `dir` hold, in file order.
fn stored_batches(disk: &MemDisk, dir: &Path) -> Result<Vec<StoredBatch>, HarnessError> {
    let files = disk
        .list_dir(dir)
        .map_err(|e| fail(format!("listing {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for file in files.into_iter().filter(|f| f.ends_with(".log")) {
        let path = dir.join(file);
        let bytes = chronik_core::disk::read_all(disk, &path)
            .map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
        let mut pos = 0;
        while let frame::Decoded::Frame { start, end } = frame::decode(&bytes, pos) {
            let header = BatchHeader::parse(&bytes[start..end]).map_err(fail)?;
            out.push(StoredBatch {
                path: path.clone(),
                base_offset: u64::try_from(header.base_offset)
                    .map_err(|_| fail("a batch with a negative base offset"))?,
                frame_start: pos,
                frame_end: end,
                last_byte: bytes[end - 1],
            });
            pos = end;
        }
    }
    Ok(out)
}

/// The last byte of the batch whose base offset is `offset` in a segment of `dir`,
/// inside the record it holds: (the segment file, its position, its value).
fn batch_last_byte(
    disk: &MemDisk,
    dir: &Path,
    offset: u64,
) -> Result<(PathBuf, u64, u8), HarnessError> {
    stored_batches(disk, dir)?
        .into_iter()
        .find(|b| b.base_offset == offset)
        .map(|b| (b.path, b.frame_end as u64 - 1, b.last_byte))
        .ok_or_else(|| fail(format!("no batch at offset {offset} to damage")))
}

/// The bytes past the durable end of `dir`'s segment that hold the `kept` batches
/// from offset `durable` on, and with `torn` one byte of the next one's frame: what
/// a power loss that keeps that much of the unsynced tail leaves behind.
fn unsynced_bytes_kept(
    disk: &MemDisk,
    dir: &Path,
    durable: u64,
    kept: u8,
    torn: bool,
) -> Result<usize, HarnessError> {
    let batches = stored_batches(disk, dir)?;
    let start_of = |offset: u64| batches.iter().find(|b| b.base_offset == offset);
    let Some(first) = start_of(durable) else {
        return Err(fail(format!("no unsynced batch at offset {durable}")));
    };
    let last_kept = durable + u64::from(kept);
    let end = match start_of(last_kept) {
        Some(next) if next.path == first.path => next.frame_start + usize::from(torn),
        Some(_) => return Err(fail("the unsynced tail spans segments")),
        None if !torn => batches
            .iter()
            .filter(|b| b.base_offset < last_kept && b.path == first.path)
            .map(|b| b.frame_end)
            .max()
            .unwrap_or(first.frame_start),
        None => return Err(fail(format!("no batch at offset {last_kept} to tear"))),
    };
    Ok(end - first.frame_start)
}

/// Broker `n`'s start `incarnation` as the real driver registers it.
fn registration(
    n: NodeId,
    incarnation: u64,
    acks_before_fsync: bool,
    short_copies: Vec<CopyRef>,
) -> Registration {
    Registration {
        broker_id: broker_id(n),
        host: "127.0.0.1".into(),
        port: 9092 + i32::from(n),
        rack: None,
        incarnation,
        listeners: Vec::new(),
        acks_before_fsync,
        short_copies,
    }
}

impl ReplicationHarness {
    /// As the model's initial state: three brokers registered by their first start, one
    /// topic with replicas [1, 2, 3] (broker 1 leads, epoch 0) and the model's
    /// `min.insync.replicas`.
    pub fn new(model: &ReplicationModel) -> Result<Self, HarnessError> {
        Self::with_faults(model, ReplicationBugs::default())
    }

    /// Brokers whose replication steps run with `faults` injected.
    pub fn with_faults(
        model: &ReplicationModel,
        faults: ReplicationBugs,
    ) -> Result<Self, HarnessError> {
        let mut h = ReplicationHarness {
            controller: MetadataState::default(),
            fences: Vec::new(),
            applied_index: 0,
            inbox: Vec::new(),
            brokers: Vec::new(),
            net: Vec::new(),
            acked: BTreeSet::new(),
            deleted: 0,
            read: BTreeSet::new(),
            produced: 0,
            appends: 0,
            acks_before_fsync: model.acks_before_fsync,
            repair_clock_ms: NOW_MS,
            faults,
        };
        for n in ReplicationModel::ids() {
            let first = registration(n, 1, model.acks_before_fsync, Vec::new());
            h.commit(first.command_in(&MetadataState::default()));
        }
        h.commit(MetadataCommand::CreateTopic {
            name: TOPIC.into(),
            topic_id: "replicated-id".into(),
            partitions: vec![(1..=REPLICAS as i32).collect()],
            configs: [("min.insync.replicas".to_string(), model.min_isr.to_string())]
                .into_iter()
                .collect(),
        });
        for _ in ReplicationModel::ids() {
            h.brokers.push(SimBroker {
                disk: MemDisk::new(),
                incarnation: 1,
                view: MetadataState::default(),
                committer: ManualCommitter::new(),
                partitions: None,
                outcomes: Arc::default(),
                waiting: Vec::new(),
                full: false,
                repairs: Repairs::default(),
                deletions: Vec::new(),
            });
        }
        for n in ReplicationModel::ids() {
            h.open(n)?;
        }
        Ok(h)
    }

    /// A rejected command (a stale registration, a fenced ISR change) is a decision
    /// of the real state machine, compared through the views.
    fn commit(&mut self, command: MetadataCommand) -> ApplyOutcome {
        self.applied_index += 1;
        let envelope = CommandEnvelope::new(self.applied_index, command);
        let outcome = self.controller.apply(self.applied_index, &envelope);
        if let MetadataCommand::FenceBroker { broker_id } = envelope.command {
            let fenced_now = self.controller.brokers.get(&broker_id);
            if fenced_now.is_some_and(|b| b.fenced_at == self.applied_index) {
                self.fences.push((broker_id, self.applied_index));
            }
        }
        outcome
    }

    /// The next proposal reaches the controller; a repair's proposer hears what
    /// became of it, as `propose_repair` reports it.
    fn commit_next(&mut self) -> Result<(), HarnessError> {
        if self.inbox.is_empty() {
            return Err(fail("commit with nothing proposed"));
        }
        let proposal = self.inbox.remove(0);
        let outcome = self.commit(proposal.command);
        let Some((n, incarnation)) = proposal.repair_by else {
            return Ok(());
        };
        let clock = self.repair_clock_ms;
        let b = self.broker(n);
        if b.partitions.is_some() && b.incarnation == incarnation {
            let refused = match outcome {
                ApplyOutcome::Rejected { code, .. } => Some(Some(code)),
                _ => None,
            };
            b.repairs.outcome(&key(), refused, clock);
        }
        Ok(())
    }

    fn broker(&mut self, n: NodeId) -> &mut SimBroker {
        &mut self.brokers[usize::from(n)]
    }

    /// A start of broker `n`: its partition logs opened (and recovered) from its disk
    /// as the current metadata assigns them.
    fn open(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let view = self.controller.clone();
        let config = LogConfig {
            // Synced only when the model's `Fsync` says (the interval timer).
            fsync: if self.acks_before_fsync {
                FsyncPolicy::Interval { ms: u64::MAX }
            } else {
                FsyncPolicy::Always
            },
            ..LogConfig::default()
        };
        let faults = self.faults;
        let b = self.broker(n);
        b.view = view;
        b.committer = ManualCommitter::new();
        b.repairs = Repairs::default();
        let disk: Arc<dyn Disk> = Arc::new(b.disk.clone());
        let partitions = Partitions::new(
            disk,
            root(),
            config,
            Arc::new(NoEvents),
            b.committer.queue(),
        )
        .with_bugs(faults);
        partitions
            .reconcile(&b.view, broker_id(n))
            .map_err(|e| fail(format!("opening broker {}'s logs: {e}", broker_id(n))))?;
        b.partitions = Some(partitions);
        self.scrub(n)
    }

    /// What broker `n`'s registration names as short of records, as the broker's
    /// start computes it once its logs are open (R-REPL-4).
    fn short_copies(&mut self, n: NodeId) -> Result<Vec<CopyRef>, HarnessError> {
        match &self.broker(n).partitions {
            Some(partitions) => Ok(partitions.short_copies()?),
            None => Ok(Vec::new()),
        }
    }

    /// The broker's background scrub, which also runs at every start, reads the whole
    /// log and so finds every damaged record: the model knows of damage at once.
    fn scrub(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let Some(log) = self.broker(n).log() else {
            return Ok(());
        };
        let mut from = Some(0);
        while let Some(at) = from {
            from = log.scrub(at, 1 << 20)?.0;
        }
        Ok(())
    }

    /// Applies one model action to the real code.
    pub fn apply(&mut self, action: &RAction) -> Result<(), HarnessError> {
        match *action {
            RAction::Produce(n) => {
                let value = self.produced;
                self.produced += 1;
                self.produce(n, value)?;
            }
            RAction::Retry(n, value) => self.produce(n, value)?,
            RAction::ControllerFailover(kept) => self.inbox.truncate(usize::from(kept)),
            RAction::ProposalLost(k) => {
                if usize::from(k) < self.inbox.len() {
                    self.inbox.remove(usize::from(k));
                }
            }
            RAction::Fsync(n) => self.fsync(n)?,
            RAction::FsyncFail(n) => self.failed_fsync(n)?,
            RAction::FetchRequest(f) => self.fetch_request(f)?,
            RAction::FetchResponse(f) => self.fetch_response(f, None)?,
            RAction::FetchResponseCut(f, k) => self.fetch_response(f, Some(k))?,
            RAction::FetchResponseSyncFails(f, 0) => self.fetch_response_sync_fails(f)?,
            RAction::Resync(n) => {
                let log = self
                    .broker(n)
                    .log()
                    .ok_or_else(|| fail("resync of a down broker"))?;
                log.resync_if_offline()?;
            }
            RAction::FetchSend(_)
            | RAction::ProposeIsr(..)
            | RAction::FetchServe(..)
            | RAction::FetchLost(..)
            | RAction::FetchAnswerLost(..)
            | RAction::EpochAsk(_)
            | RAction::EpochAnswered(..)
            | RAction::EpochAnswerLost(..)
            | RAction::FetchResponseNth(..)
            | RAction::FetchResponseSyncFails(..)
            | RAction::RepairUnanswered(_)
            | RAction::RepairAnswered(_)
            | RAction::ProposalArrives(_) => {
                return Err(fail(format!(
                    "{action:?}: reordered fetches and lossy proposals are not driven by the \
                     replication harness"
                )));
            }
            RAction::DiskFull(n) => {
                let b = self.broker(n);
                b.full = true;
                b.disk.set_capacity(Some(b.disk.used_bytes()));
            }
            RAction::DiskFreed(n) => {
                let b = self.broker(n);
                b.full = false;
                b.disk.set_capacity(None);
            }
            RAction::Truncate(f) => self.truncate(f)?,
            RAction::Learn(n) => self.learn(n)?,
            RAction::Commit => self.commit_next()?,
            RAction::Fence(b) => {
                self.commit(MetadataCommand::FenceBroker {
                    broker_id: broker_id(b),
                });
            }
            // What the real driver proposes for a start that sees itself fenced.
            RAction::Rejoin(b) => self.propose_registration(b)?,
            RAction::ShrinkIsr(l, f) => self.change_isr(l, f, false)?,
            RAction::ExpandIsr(l, f) => self.change_isr(l, f, true)?,
            RAction::Checkpoint(n) => {
                let log = self.broker(n).log().ok_or_else(|| fail("no log"))?;
                log.checkpoint()?;
            }
            RAction::Consume(n) => self.consume(n)?,
            RAction::Crash(n) => self.crash(n, Tear::None),
            // The kept batches whole and, torn, one byte of the next: less than a
            // frame header, so the partition log ends in a torn frame.
            RAction::CrashTorn(n, kept) => self.crash_keeping(n, kept, true)?,
            RAction::CrashKeeping(n, kept) => self.crash_keeping(n, kept, false)?,
            RAction::Restart(n) => {
                self.broker(n).incarnation += 1;
                self.open(n)?;
                // The crash dropped unsynced bytes: full is full again at what is left.
                let b = self.broker(n);
                if b.full {
                    b.disk.set_capacity(Some(b.disk.used_bytes()));
                }
                self.propose_registration(n)?;
            }
            RAction::Damage(n, offset) => self.damage(n, offset)?,
            RAction::ProposeRepair(n) => self.propose_repair(n)?,
            RAction::CutDamage(n) => self.cut_damage(n)?,
            RAction::DeleteRecords(n, offset) => self.delete_records(n, offset)?,
        }
        self.resolve_acks()?;
        self.resolve_deletions()
    }

    /// A produce of `value`, or its retry: each value is its own idempotent producer
    /// (id value + 1, sequence 0), so a retry is the same batch again and the real
    /// producer state decides whether it is a duplicate.
    fn produce(&mut self, n: NodeId, value: u8) -> Result<(), HarnessError> {
        let b = &self.brokers[usize::from(n)];
        let local = b
            .local(n)
            .ok_or_else(|| fail("produce to a broker that is down"))?;
        let (log, info) = local
            .admit_produce(TOPIC, 0, -1)
            .map_err(|code| fail(format!("the real broker refused the produce: error {code}")))?;
        let epoch = info.leader_epoch;
        let mut batch = build_batch(
            &[Record {
                key: None,
                value: Some(vec![value]),
                timestamp_delta: 0,
            }],
            TIMESTAMP_BASE + i64::from(value),
        );
        set_producer(&mut batch, i64::from(value) + 1, 0, 0);
        self.appends += 1;
        let number = self.appends;
        let outcomes = Arc::clone(&b.outcomes);
        // A new batch is answered by the group commit's round (the interval policy:
        // at once); a duplicate of one already synced at once, else by the next round
        // (R-LOG-9). Either way it then waits for the high watermark.
        let wait = ProduceWait::append(key(), log, epoch, -1, &batch, NOW_MS, move |r| {
            lock(&outcomes).push((number, r));
        });
        let b = &mut self.brokers[usize::from(n)];
        b.waiting.push((number, wait, value));
        b.settle(n);
        Ok(())
    }

    /// A group commit round; each produce it answers moves the high watermark and
    /// then waits for its acknowledgement, as `produce_finish` does.
    fn fsync(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let acks_before_fsync = self.acks_before_fsync;
        let b = &mut self.brokers[usize::from(n)];
        if acks_before_fsync {
            // The interval policy's timer: a plain sync; nothing waits on it.
            let log = b
                .log()
                .ok_or_else(|| fail("fsync of a broker that is down"))?;
            log.sync()?;
        }
        b.committer.run_round();
        b.settle(n);
        Ok(())
    }

    /// A group commit round whose fsync fails: its produces are answered with an
    /// error, and the log cuts its unsynced tail before anything else touches it, as
    /// the next append or OffsetForLeaderEpoch answer would (R-LOG-9).
    fn failed_fsync(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let b = &mut self.brokers[usize::from(n)];
        b.disk.fail_next_syncs(1);
        b.committer.run_round();
        if b.disk.sync_failures_pending() > 0 {
            // Disarmed, so that it cannot fail some later, unrelated sync.
            b.disk.fail_next_syncs(0);
            return Err(fail("the failed fsync found nothing to sync"));
        }
        if lock(&b.outcomes).iter().any(|(_, outcome)| outcome.is_ok()) {
            return Err(fail("a produce was made durable by a failed fsync"));
        }
        b.settle(n);
        let log = b
            .log()
            .ok_or_else(|| fail("fsync failure of a broker that is down"))?;
        log.resync_if_offline()?;
        Ok(())
    }

    /// The follower's fetch, served by the leader it knows (the Fetch handler's
    /// checks, then `serve_follower_fetch` and a read up to what it returns).
    fn fetch_request(&mut self, f: NodeId) -> Result<(), HarnessError> {
        let step = repair_step(&self.brokers[usize::from(f)], f, self.repair_clock_ms)?;
        if step != RepairStep::Healthy {
            return Err(fail(format!(
                "the real replica fetcher takes its repair step {step:?} instead of fetching"
            )));
        }
        let (leader, epoch, fetch_offset, log_start) = {
            let b = &self.brokers[usize::from(f)];
            let info = b
                .view
                .partition(TOPIC, 0)
                .ok_or_else(|| fail("the follower knows no partition"))?;
            let log = b.log().ok_or_else(|| fail("the follower has no log"))?;
            // As the replica fetcher asks: a tail not yet synced is synced first.
            let ends = (follower_fetch_offset(&log), log.log_start_offset());
            (info.leader, info.leader_epoch, ends.0, ends.1)
        };
        let l = leader
            .and_then(node_of)
            .ok_or_else(|| fail("fetch with no leader"))?;
        let lb = &self.brokers[usize::from(l)];
        let local = lb.local(l).ok_or_else(|| fail("the leader is down"))?;
        let (log, info) = local
            .led_log(TOPIC, 0)
            .map_err(|code| fail(format!("the leader refused the fetch: error {code}")))?;
        if info.leader_epoch != epoch {
            return Err(fail(format!(
                "the leader is in epoch {}, the follower fetched in {epoch}",
                info.leader_epoch
            )));
        }
        let fetch = FollowerFetch {
            follower: broker_id(f),
            fetch_offset,
            log_start,
        };
        let upper = local
            .serve_follower_fetch(&key(), &log, info, fetch, NOW_MS)
            .upper;
        if fetch_offset < log.log_start_offset() {
            let refusal = Answer::OutOfRange {
                log_start: log.log_start_offset(),
                high_watermark: log.high_watermark(),
            };
            self.net.push((f, epoch, refusal));
            return Ok(());
        }
        // Past the leader's log end the read fails (OFFSET_OUT_OF_RANGE), and the
        // follower applies nothing of the answer.
        match log.read(fetch_offset, 1 << 20, upper) {
            Ok(read) => {
                let fetched = Fetched {
                    records: Some(Bytes::from(read.records)),
                    high_watermark: log.high_watermark() as i64,
                    log_start_offset: log.log_start_offset() as i64,
                };
                self.net.push((f, epoch, Answer::Served(fetched)));
                Ok(())
            }
            // A fetch from inside a damaged range is answered KAFKA_STORAGE_ERROR: the
            // follower takes nothing from it.
            Err(LogError::OffsetOutOfRange { .. } | LogError::Damaged { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The first fetch answer in flight to `f`, under the epoch it was asked in.
    fn take_answer(&mut self, f: NodeId) -> Result<(i32, Answer), HarnessError> {
        let at = self
            .net
            .iter()
            .position(|(to, ..)| *to == f)
            .ok_or_else(|| fail("no fetch response in flight"))?;
        let (_, epoch, answer) = self.net.remove(at);
        Ok((epoch, answer))
    }

    /// The first answer in flight to `f`, which must have served records.
    fn take_served(&mut self, f: NodeId) -> Result<(i32, Fetched), HarnessError> {
        match self.take_answer(f)? {
            (epoch, Answer::Served(fetched)) => Ok((epoch, fetched)),
            (_, refusal) => Err(fail(format!("the answer in flight is {refusal:?}"))),
        }
    }

    /// The replica fetcher's handling of OFFSET_OUT_OF_RANGE: a log ending below its
    /// leader's log start starts afresh there (`LocalView::fetch_refused`).
    fn fetch_refused(&mut self, f: NodeId, epoch: i32, log_start: u64) -> Result<(), HarnessError> {
        let b = &self.brokers[usize::from(f)];
        let (Some(local), Some(log)) = (b.local(f), b.log()) else {
            return Err(fail("a refusal to a broker that is down"));
        };
        let refusal = (chronik_core::errors::OFFSET_OUT_OF_RANGE, log_start);
        match local.fetch_refused(&key(), epoch, &log, refusal) {
            Ok(_) => Ok(()),
            // The new start's checkpoint does not fit: the fetcher asks again.
            Err(ReplicationError::Log(e)) if e.is_disk_full() && b.full => Ok(()),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// DeleteRecords below `offset`, as the handler runs it; the answer waits for
    /// `deletion_outcome`.
    fn delete_records(&mut self, n: NodeId, offset: u8) -> Result<(), HarnessError> {
        let b = &self.brokers[usize::from(n)];
        let local = b
            .local(n)
            .ok_or_else(|| fail("DeleteRecords to a broker that is down"))?;
        let started = local
            .delete_records(TOPIC, 0, i64::from(offset))
            .map_err(|code| {
                fail(format!(
                    "the real broker refused DeleteRecords: error {code}"
                ))
            })?;
        self.broker(n).deletions.push(started);
        Ok(())
    }

    /// Every DeleteRecords whose fate is decided is answered.
    fn resolve_deletions(&mut self) -> Result<(), HarnessError> {
        for n in ReplicationModel::ids() {
            let b = &mut self.brokers[usize::from(n)];
            let mut deletions = std::mem::take(&mut b.deletions);
            let mut answered = Vec::new();
            if let Some(local) = b.local(n) {
                deletions.retain(|d| match local.deletion_outcome(&key(), d, NOW_MS) {
                    Some(Ok(_)) => {
                        answered.push(d.target);
                        false
                    }
                    Some(Err(_)) => false,
                    None => true,
                });
            }
            b.deletions = deletions;
            for target in answered {
                self.deleted = self.deleted.max(offset_u8(target)?);
            }
        }
        Ok(())
    }

    /// The replica fetcher's handling of the answer in flight. With `cut`, the
    /// follower's full disk has room for exactly that many of the batches it would
    /// append: the append of the next one fails with ENOSPC, as the model says.
    fn fetch_response(&mut self, f: NodeId, cut: Option<u8>) -> Result<(), HarnessError> {
        let (epoch, fetched) = match self.take_answer(f)? {
            (epoch, Answer::Served(fetched)) => (epoch, fetched),
            (epoch, Answer::OutOfRange { log_start, .. }) if cut.is_none() => {
                return self.fetch_refused(f, epoch, log_start);
            }
            (_, refusal) => return Err(fail(format!("a full disk takes part of {refusal:?}"))),
        };
        let b = &self.brokers[usize::from(f)];
        let (Some(local), Some(log)) = (b.local(f), b.log()) else {
            return Err(fail("a response to a broker that is down"));
        };
        let records = fetched.records.as_deref().unwrap_or_default();
        let room = cut.map(|k| frames_len(records, log.log_end_offset(), usize::from(k)));
        // Room for every record: only the checkpoint of a new log start is refused.
        let all_fit = room == Some(frames_len(records, log.log_end_offset(), usize::MAX));
        if let Some(room) = room {
            b.disk.set_capacity(Some(b.disk.used_bytes() + room));
        }
        let applied = local.apply_fetched(&key(), epoch, &log, &fetched, NOW_MS);
        if room.is_some() {
            b.disk.set_capacity(Some(b.disk.used_bytes()));
        }
        match (applied, cut) {
            (Ok(_), None) => Ok(()),
            (Err(e), None) => Err(fail(e.to_string())),
            (Err(ReplicationError::Log(e)), Some(_)) if e.is_disk_full() => Ok(()),
            (Ok(_), Some(_)) if all_fit => Ok(()),
            (other, Some(k)) => Err(fail(format!(
                "a full disk with room for {k} batches: the append ended {other:?}"
            ))),
        }
    }

    /// The follower applies the answer in flight and the fsync after the append
    /// fails: the answer is refused with a storage error and the log is offline.
    fn fetch_response_sync_fails(&mut self, f: NodeId) -> Result<(), HarnessError> {
        let (epoch, fetched) = self.take_served(f)?;
        let b = &self.brokers[usize::from(f)];
        let (Some(local), Some(log)) = (b.local(f), b.log()) else {
            return Err(fail("a response to a broker that is down"));
        };
        b.disk.fail_next_syncs(1);
        let applied = local.apply_fetched(&key(), epoch, &log, &fetched, NOW_MS);
        let unspent = b.disk.sync_failures_pending() > 0;
        b.disk.fail_next_syncs(0);
        match applied {
            Err(ReplicationError::Log(e)) if e.is_storage_error() && !unspent => Ok(()),
            other => Err(fail(format!(
                "a follower's fsync was to fail after its append: the answer ended {other:?}"
            ))),
        }
    }

    /// OffsetForLeaderEpoch on the leader for the follower's last epoch, then the
    /// replica fetcher's truncation.
    fn truncate(&mut self, f: NodeId) -> Result<(), HarnessError> {
        let b = &self.brokers[usize::from(f)];
        let info = b
            .view
            .partition(TOPIC, 0)
            .ok_or_else(|| fail("the follower knows no partition"))?;
        let (leader, epoch) = (info.leader, info.leader_epoch);
        let log = b.log().ok_or_else(|| fail("the follower has no log"))?;
        let end = match log.last_leader_epoch() {
            None => None,
            Some(last) => {
                let l = leader
                    .and_then(node_of)
                    .ok_or_else(|| fail("truncation with no leader"))?;
                let lb = &self.brokers[usize::from(l)];
                let local = lb.local(l).ok_or_else(|| fail("the leader is down"))?;
                // The handler's own answer, refusals included (a marked lost tail,
                // R-REPL-4); (-1, log start) when it holds no such epoch, which the
                // fetcher reads as "no answer".
                let answer = local
                    .epoch_end(TOPIC, 0, epoch, last)
                    .map_err(|code| fail(format!("the leader refused: error {code}")))?;
                let answer = Some(answer).filter(|(e, _)| *e >= 0);
                Some(truncation_point(&log, answer))
            }
        };
        let local = b.local(f).ok_or_else(|| fail("down"))?;
        local
            .truncate_for_leader(&key(), epoch, &log, end)
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// The broker applies the committed metadata: its logs follow it
    /// (`follow_metadata`) and, leading, its high watermark (`maintain_isr`).
    fn learn(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let view = self.controller.clone();
        let b = self.broker(n);
        b.view = view;
        let partitions = b.partitions.as_ref().ok_or_else(|| fail("down"))?;
        partitions.reconcile(&b.view, broker_id(n))?;
        if let (Some(local), Some(log)) = (b.local(n), b.log()) {
            local.advance_high_watermark(&key(), &log, NOW_MS);
        }
        Ok(())
    }

    fn change_isr(&mut self, l: NodeId, f: NodeId, expand: bool) -> Result<(), HarnessError> {
        let b = &self.brokers[usize::from(l)];
        let local = b.local(l).ok_or_else(|| fail("down"))?;
        let (log, info) = local
            .led_log(TOPIC, 0)
            .map_err(|code| fail(format!("an ISR change from a non-leader: error {code}")))?;
        let mut isr: Vec<i32> = info
            .isr
            .iter()
            .copied()
            .filter(|r| *r != broker_id(f))
            .collect();
        if !expand && holds_isr(log.first_lost_offset(), info, broker_id(l)) {
            return Err(fail(format!(
                "the real leader, its copy short of records, would not drop broker {}",
                broker_id(f)
            )));
        }
        if expand {
            let wanted = b
                .partitions
                .as_ref()
                .and_then(|p| {
                    p.wanted_isr(
                        &key(),
                        &log,
                        info,
                        &b.view.live_brokers(),
                        broker_id(l),
                        NOW_MS,
                        LAG_MAX_MS,
                    )
                })
                .unwrap_or_default();
            if !wanted.contains(&broker_id(f)) {
                return Err(fail(format!(
                    "the real leader would not let broker {} into the ISR",
                    broker_id(f)
                )));
            }
            isr.push(broker_id(f));
        }
        // In the order of the replica assignment, as the real `wanted_isr` proposes
        // it: a leader's successor is the first live member in ISR order.
        isr.sort_by_key(|r| info.replicas.iter().position(|a| a == r));
        let command = local.isr_change(&key(), info, isr);
        self.inbox.push(Proposal::of(command));
        Ok(())
    }

    /// A bad sector in the record at `offset` of broker `n`'s copy: one byte of its
    /// batch flips, durably. A running broker's scrub finds it; a stopped one's
    /// start does.
    fn damage(&mut self, n: NodeId, offset: u8) -> Result<(), HarnessError> {
        let dir = root().join(format!("{TOPIC}-0"));
        let b = self.broker(n);
        let (path, at, byte) = batch_last_byte(&b.disk, &dir, u64::from(offset))?;
        b.disk
            .corrupt(&path, at as usize, &[byte ^ 0x10])
            .map_err(|e| fail(format!("damaging the record: {e}")))?;
        if b.partitions.is_some() {
            self.scrub(n)?;
        }
        Ok(())
    }

    /// The repair step of broker `n`'s damaged copy, taken once its retry timer
    /// allows, must propose what the model proposes.
    fn propose_repair(&mut self, n: NodeId) -> Result<(), HarnessError> {
        self.repair_clock_ms += REPAIR_RETRY_MS;
        let clock = self.repair_clock_ms;
        let b = &self.brokers[usize::from(n)];
        match repair_step(b, n, clock)? {
            RepairStep::Propose(command) => {
                let incarnation = b.incarnation;
                self.inbox.push(Proposal {
                    command,
                    repair_by: Some((n, incarnation)),
                });
                Ok(())
            }
            other => Err(fail(format!(
                "the real repair does not propose here: its step is {other:?}"
            ))),
        }
    }

    /// Out of the ISR with its repair applied, the copy cuts below its damage, as
    /// the replica fetcher does before it fetches (`repair_before_fetch`).
    fn cut_damage(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let clock = self.repair_clock_ms;
        let b = &self.brokers[usize::from(n)];
        let RepairStep::Cut(from) = repair_step(b, n, clock)? else {
            return Err(fail("the real repair does not cut here"));
        };
        let (Some(partitions), Some(log)) = (b.partitions.as_ref(), b.log()) else {
            return Err(fail("a cut on a broker that is down"));
        };
        partitions.cut_for_repair(|| log.truncate_to(from))?;
        b.repairs.cut_done(&key());
        Ok(())
    }

    /// A consumer reads everything below the leader's high watermark.
    fn consume(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let b = &self.brokers[usize::from(n)];
        let local = b.local(n).ok_or_else(|| fail("down"))?;
        let (log, _) = local
            .led_log(TOPIC, 0)
            .map_err(|code| fail(format!("the leader refused a consumer: error {code}")))?;
        // A consumer's read stops at a damaged record (KAFKA_STORAGE_ERROR).
        let read = read_records_around_damage(&log, log.high_watermark())?;
        let start = log.log_start_offset();
        for (i, record) in read.into_iter().map_while(|r| r).enumerate() {
            self.read.insert((offset_u8(start + i as u64)?, record.1));
        }
        Ok(())
    }

    /// kill -9: what was not fsynced is gone, and so is everything in memory.
    /// What broker `n`'s driver proposes for its start now: its registration, or
    /// seeing itself fenced, the request to lift the fence.
    fn propose_registration(&mut self, n: NodeId) -> Result<(), HarnessError> {
        let short = self.short_copies(n)?;
        let acks_before_fsync = self.acks_before_fsync;
        let b = self.broker(n);
        let start = registration(n, b.incarnation, acks_before_fsync, short);
        let command = start.command_in(&b.view);
        self.inbox.push(Proposal::of(command));
        Ok(())
    }

    /// A power loss that keeps `kept` whole batches of broker `n`'s unsynced
    /// partition log, and with `torn` part of the next one.
    fn crash_keeping(&mut self, n: NodeId, kept: u8, torn: bool) -> Result<(), HarnessError> {
        let b = self.broker(n);
        let log = b
            .log()
            .ok_or_else(|| fail("a crash of a broker that is down"))?;
        let dir = root().join(format!("{TOPIC}-0"));
        let keep = unsynced_bytes_kept(&b.disk, &dir, log.durable_end_offset(), kept, torn)?;
        self.crash(
            n,
            Tear::KeepTailOfEach {
                suffix: ".log",
                keep,
            },
        );
        Ok(())
    }

    fn crash(&mut self, n: NodeId, tear: Tear) {
        let b = self.broker(n);
        b.disk.crash(tear);
        b.committer.abandon();
        b.partitions = None;
        lock(&b.outcomes).clear();
        b.waiting.clear();
        b.deletions.clear();
        self.net.retain(|(to, ..)| *to != n);
    }

    /// Every waiting produce whose fate is decided is answered (`wait_acknowledgeable`).
    fn resolve_acks(&mut self) -> Result<(), HarnessError> {
        for n in ReplicationModel::ids() {
            let b = &mut self.brokers[usize::from(n)];
            let mut waiting = std::mem::take(&mut b.waiting);
            let mut answered = Vec::new();
            if let Some(local) = b.local(n) {
                waiting.retain(|(_, wait, value)| match wait.answer(&local, false) {
                    Some(Ok(base_offset)) => {
                        answered.push((base_offset, *value));
                        false
                    }
                    Some(Err(_)) => false,
                    None => true,
                });
            }
            b.waiting = waiting;
            for (base_offset, value) in answered {
                self.acked.insert((offset_u8(base_offset)?, value));
            }
        }
        Ok(())
    }

    /// The real side reduced to what is compared.
    pub fn view(&self) -> Result<ReplView, HarnessError> {
        let mut replicas = Vec::new();
        for n in ReplicationModel::ids() {
            let b = &self.brokers[usize::from(n)];
            let (Some(local), Some(log)) = (b.local(n), b.log()) else {
                replicas.push(ReplicaView::down(b.incarnation));
                continue;
            };
            let info = b
                .view
                .partition(TOPIC, 0)
                .ok_or_else(|| fail("no partition"))?;
            let leading = local.led_log(TOPIC, 0).is_ok();
            let log_records = read_records_around_damage(&log, log.log_end_offset())?
                .into_iter()
                .map(|record| {
                    record
                        .map(|(epoch, value)| {
                            Ok((u8::try_from(epoch).map_err(|_| fail("epoch"))?, value))
                        })
                        .transpose()
                })
                .collect::<Result<Vec<_>, HarnessError>>()?;
            let mut r = ReplicaView {
                up: true,
                incarnation: b.incarnation,
                meta: meta_of_real(&b.view)?,
                log: log_records,
                lost: log.first_lost_offset().map(offset_u8).transpose()?,
                log_start: offset_u8(log.log_start_offset())?,
                durable: offset_u8(log.durable_end_offset())?,
                hw: offset_u8(log.high_watermark())?,
                gate: local
                    .partitions
                    .follower_epoch(&key())
                    .map(|e| u8::try_from(e).map_err(|_| fail("epoch")))
                    .transpose()?,
                leading,
                admits_produce: local.admit_produce(TOPIC, 0, -1).is_ok(),
                leader: None,
            };
            if leading {
                let mut follower_ends = [None; REPLICAS];
                for f in ReplicationModel::ids().filter(|f| *f != n) {
                    follower_ends[usize::from(f)] = local
                        .partitions
                        .follower_end(&key(), info.leader_epoch, broker_id(f))
                        .map(offset_u8)
                        .transpose()?;
                }
                let wanted = local
                    .partitions
                    .wanted_isr(
                        &key(),
                        &log,
                        info,
                        &b.view.live_brokers(),
                        broker_id(n),
                        NOW_MS,
                        LAG_MAX_MS,
                    )
                    .map_or(0, |w| set_of(&w));
                r.leader = Some(LeaderView {
                    follower_ends,
                    maximal_isr: set_of(&local.partitions.maximal_isr(&key(), info)),
                    expandable: wanted & !set_of(&info.isr),
                });
            }
            replicas.push(r);
        }
        let proposals = self
            .inbox
            .iter()
            .map(|p| proposal_view(p, &self.fences))
            .collect::<Result<_, _>>()?;
        let mut answers = self
            .net
            .iter()
            .map(|(to, epoch, answer)| answer_view(*to, *epoch, answer))
            .collect::<Result<Vec<_>, _>>()?;
        answers.sort();
        Ok(ReplView {
            meta: meta_of_real(&self.controller)?,
            replicas,
            acked: self.acked.clone(),
            deleted: self.deleted,
            read: self.read.clone(),
            proposals,
            answers,
        })
    }
}

fn small(what: &str, n: impl TryInto<u8>) -> Result<u8, HarnessError> {
    n.try_into()
        .map_err(|_| fail(format!("{what} beyond the model's range")))
}

fn node(broker: i32) -> Result<NodeId, HarnessError> {
    node_of(broker).ok_or_else(|| fail(format!("broker {broker} is not the model's")))
}

/// A proposed command as the model's `MetaCmd`; `fences`: every fence applied, by
/// broker and Raft index (the model counts each broker's fences).
fn proposal_view(p: &Proposal, fences: &[(i32, u64)]) -> Result<MetaCmd, HarnessError> {
    match &p.command {
        MetadataCommand::RegisterBroker {
            broker_id,
            incarnation,
            short_copies,
            ..
        } => Ok(MetaCmd::Register(
            node(*broker_id)?,
            small("incarnation", *incarnation)?,
            !short_copies.is_empty(),
        )),
        MetadataCommand::UnfenceBroker {
            broker_id,
            incarnation,
            fenced_at,
        } => Ok(MetaCmd::Unfence(
            node(*broker_id)?,
            small("incarnation", *incarnation)?,
            small(
                "fence",
                fences
                    .iter()
                    .filter(|(b, at)| b == broker_id && at <= fenced_at)
                    .count(),
            )?,
        )),
        MetadataCommand::AlterIsr {
            leader_epoch,
            isr,
            partition_epoch,
            ..
        } => Ok(MetaCmd::AlterIsr {
            epoch: small("leader epoch", *leader_epoch)?,
            version: small("partition epoch", partition_epoch.unwrap_or(u64::MAX))?,
            isr: set_of(isr),
        }),
        MetadataCommand::RepairReplica {
            broker_id,
            leader_epoch,
            partition_epoch,
            ..
        } => Ok(MetaCmd::Repair {
            node: node(*broker_id)?,
            epoch: small("leader epoch", *leader_epoch)?,
            version: small("partition epoch", *partition_epoch)?,
            incarnation: small(
                "incarnation",
                p.repair_by.map_or(u64::MAX, |(_, incarnation)| incarnation),
            )?,
        }),
        other => Err(fail(format!(
            "a proposal the model has no kind of: {other:?}"
        ))),
    }
}

/// A fetch answer in flight, as the model's.
fn answer_view(to: NodeId, epoch: i32, answer: &Answer) -> Result<AnswerView, HarnessError> {
    let epoch = small("leader epoch", epoch)?;
    let fetched = match answer {
        Answer::Served(fetched) => fetched,
        Answer::OutOfRange {
            log_start,
            high_watermark,
        } => {
            return Ok(AnswerView {
                to,
                epoch,
                first: None,
                records: Vec::new(),
                hw: offset_u8(*high_watermark)?,
                log_start: offset_u8(*log_start)?,
                refused: true,
            })
        }
    };
    let batches = parse_batches(fetched.records.as_deref().unwrap_or_default())?;
    let first = batches
        .first()
        .map(|(base, ..)| small("offset", *base))
        .transpose()?;
    let records = batches
        .into_iter()
        .map(|(_, epoch, id)| Ok((small("leader epoch", epoch)?, id)))
        .collect::<Result<_, HarnessError>>()?;
    Ok(AnswerView {
        to,
        epoch,
        first,
        records,
        hw: small("high watermark", fetched.high_watermark)?,
        log_start: small("log start", fetched.log_start_offset)?,
        refused: false,
    })
}

fn offset_u8(offset: u64) -> Result<u8, HarnessError> {
    u8::try_from(offset).map_err(|_| fail(format!("offset {offset} beyond the model's range")))
}

/// The partition entry and broker registrations, as the model holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaView {
    pub leader: Option<NodeId>,
    pub epoch: u8,
    pub version: u8,
    pub isr: Set,
    pub elr: Set,
    pub unverified: Set,
    pub fenced: Set,
    pub incarnation: [u64; REPLICAS],
}

fn meta_of_real(state: &MetadataState) -> Result<MetaView, HarnessError> {
    let p = state
        .partition(TOPIC, 0)
        .ok_or_else(|| fail("no partition"))?;
    let mut incarnation = [0; REPLICAS];
    let mut fenced = 0;
    for n in ReplicationModel::ids() {
        if let Some(b) = state.brokers.get(&broker_id(n)) {
            incarnation[usize::from(n)] = b.incarnation;
            if b.fenced {
                fenced |= 1 << n;
            }
        }
    }
    Ok(MetaView {
        leader: p.leader.and_then(node_of),
        epoch: u8::try_from(p.leader_epoch).map_err(|_| fail("epoch"))?,
        version: u8::try_from(p.partition_epoch).map_err(|_| fail("partition epoch"))?,
        isr: set_of(&p.isr),
        elr: set_of(&p.elr),
        unverified: set_of(&p.unverified),
        fenced,
        incarnation,
    })
}

fn meta_of_model(m: &chronik_model::replication::Meta) -> MetaView {
    MetaView {
        leader: m.leader,
        epoch: m.epoch,
        version: m.version,
        isr: m.isr,
        elr: m.elr,
        unverified: m.unverified,
        fenced: m.fenced,
        incarnation: m.incarnation.map(u64::from),
    }
}

/// What a leading replica knows of its followers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    /// Each follower's log end reported in the current leader epoch.
    pub follower_ends: [Option<u8>; REPLICAS],
    /// The applied ISR plus the members of proposals that may still be applied.
    pub maximal_isr: Set,
    /// Followers it would let into the ISR now.
    pub expandable: Set,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    pub up: bool,
    pub incarnation: u64,
    pub meta: MetaView,
    /// (leader epoch, value) of every record in the log, durable or not; `None` for
    /// one whose stored bytes are damaged.
    pub log: Vec<Option<(u8, u8)>>,
    /// The first offset lost to damage.
    pub lost: Option<u8>,
    pub log_start: u8,
    pub durable: u8,
    pub hw: u8,
    pub gate: Option<u8>,
    pub leading: bool,
    pub admits_produce: bool,
    pub leader: Option<LeaderView>,
}

impl ReplicaView {
    fn down(incarnation: u64) -> Self {
        ReplicaView {
            up: false,
            incarnation,
            meta: MetaView {
                leader: None,
                epoch: 0,
                version: 0,
                isr: 0,
                elr: 0,
                unverified: 0,
                fenced: 0,
                incarnation: [0; REPLICAS],
            },
            log: Vec::new(),
            lost: None,
            log_start: 0,
            durable: 0,
            hw: 0,
            gate: None,
            leading: false,
            admits_produce: false,
            leader: None,
        }
    }
}

/// A leader's fetch answer on its way to a follower: what it served.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnswerView {
    pub to: NodeId,
    /// The leader epoch the follower fetched under.
    pub epoch: u8,
    /// The offset of the first record served, if any.
    pub first: Option<u8>,
    /// (leader epoch, value) of each record served.
    pub records: Vec<(u8, u8)>,
    pub hw: u8,
    pub log_start: u8,
    /// OFFSET_OUT_OF_RANGE: the fetch was from below the leader's log start.
    pub refused: bool,
}

impl AnswerView {
    fn of_model(resp: &FetchResp) -> Self {
        // A refusal carries the leader's deleted records only for the model's
        // bookkeeping (offsets are positions there).
        let served = if resp.refused() {
            &[][..]
        } else {
            &resp.records[..]
        };
        AnswerView {
            to: resp.to,
            epoch: resp.epoch,
            first: (!served.is_empty()).then_some(resp.base),
            records: served.iter().map(|r| (r.epoch, r.value)).collect(),
            hw: resp.hw,
            log_start: resp.log_start,
            refused: resp.refused(),
        }
    }
}

/// Both sides reduced to what they must agree on: the state, and what is on its way
/// (the proposals to the controller, the answers to followers), so that a message
/// the real code sends and the model does not is seen when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplView {
    pub meta: MetaView,
    pub replicas: Vec<ReplicaView>,
    pub acked: BTreeSet<(u8, u8)>,
    /// The highest offset an acknowledged DeleteRecords deleted below.
    pub deleted: u8,
    pub read: BTreeSet<(u8, u8)>,
    pub proposals: Vec<MetaCmd>,
    pub answers: Vec<AnswerView>,
}

impl ReplView {
    /// Where two views differ, one line per field.
    pub fn differences(&self, real: &ReplView) -> Vec<String> {
        let mut out = Vec::new();
        if self.meta != real.meta {
            out.push(format!(
                "controller: model {:?}, real {:?}",
                self.meta, real.meta
            ));
        }
        for (i, (m, r)) in self.replicas.iter().zip(&real.replicas).enumerate() {
            if m != r {
                out.push(format!(
                    "broker {}: model {m:?}\n            real  {r:?}",
                    i + 1
                ));
            }
        }
        if self.acked != real.acked {
            out.push(format!(
                "acknowledged: model {:?}, real {:?}",
                self.acked, real.acked
            ));
        }
        if self.deleted != real.deleted {
            out.push(format!(
                "acknowledged deletions below: model {}, real {}",
                self.deleted, real.deleted
            ));
        }
        if self.read != real.read {
            out.push(format!("read: model {:?}, real {:?}", self.read, real.read));
        }
        if self.proposals != real.proposals {
            out.push(format!(
                "proposed: model {:?}, real {:?}",
                self.proposals, real.proposals
            ));
        }
        if self.answers != real.answers {
            out.push(format!(
                "fetch answers in flight: model {:?}, real {:?}",
                self.answers, real.answers
            ));
        }
        out
    }
}

/// The model side reduced to what is compared.
pub fn of_model(model: &ReplicationModel, s: &RState) -> ReplView {
    let replicas = ReplicationModel::ids()
        .map(|n| {
            let r = &s.replicas[usize::from(n)];
            if !r.up {
                return ReplicaView::down(u64::from(r.incarnation));
            }
            let leading = model.leading(s, n);
            let leader = leading.then(|| {
                let current = r.tracker_epoch == r.view.epoch;
                let mut follower_ends = [None; REPLICAS];
                for f in ReplicationModel::ids().filter(|f| *f != n) {
                    follower_ends[usize::from(f)] =
                        r.follower_end[usize::from(f)].filter(|_| current);
                }
                let pending = r
                    .pending_isr
                    .filter(|(version, _)| *version == r.view.version)
                    .map_or(0, |(_, members)| members);
                let needed = r.hw.max(r.epoch_start(r.view.epoch));
                let expandable = members(ALL & !r.view.isr)
                    .filter(|f| {
                        current
                            && !has(r.view.fenced, *f)
                            && has(r.fresh, *f)
                            && r.follower_end[usize::from(*f)].is_some_and(|e| e >= needed)
                    })
                    .fold(0, |s, f| s | (1 << f));
                LeaderView {
                    follower_ends,
                    maximal_isr: r.view.isr | pending,
                    expandable,
                }
            });
            ReplicaView {
                up: true,
                incarnation: u64::from(r.incarnation),
                meta: meta_of_model(&r.view),
                log: r
                    .log
                    .iter()
                    .enumerate()
                    .skip(usize::from(r.log_start))
                    .map(|(o, rec)| (r.damaged != Some(o as u8)).then_some((rec.epoch, rec.value)))
                    .collect(),
                lost: r.damaged,
                log_start: r.log_start,
                durable: r.durable,
                hw: r.hw,
                gate: r.gate,
                leading,
                admits_produce: model.admits_produce(s, n),
                leader,
            }
        })
        .collect();
    let mut answers: Vec<AnswerView> = s.net.iter().map(AnswerView::of_model).collect();
    answers.sort();
    ReplView {
        meta: meta_of_model(&s.meta),
        replicas,
        acked: s.ghost.acked.clone(),
        deleted: s.ghost.deleted,
        read: s.ghost.read.clone(),
        proposals: s.inbox.clone(),
        answers,
    }
}

/// The first step at which the real code and the replication model disagree.
#[derive(Debug)]
pub struct ReplDivergence {
    pub path: Vec<RAction>,
    pub seed: u64,
    pub why: Vec<String>,
}

impl std::fmt::Display for ReplDivergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "DIVERGENCE (replication) after {} steps, seed {}",
            self.path.len(),
            self.seed
        )?;
        writeln!(f, "  broker n+1 is model node n")?;
        for (i, a) in self.path.iter().enumerate() {
            writeln!(f, "    {:>3}. {a}", i + 1)?;
        }
        for why in &self.why {
            writeln!(f, "  {why}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
pub struct ReplStats {
    pub walks: usize,
    pub steps: usize,
    pub max_depth: usize,
    /// Distinct actions kinds taken, by name.
    pub kinds: BTreeSet<String>,
}

/// Replays one model path on the real code, comparing after every step.
pub fn replay_replication_path(
    model: &ReplicationModel,
    path: &[RAction],
) -> Result<ReplStats, Box<ReplDivergence>> {
    replay_replication_path_with_faults(model, ReplicationBugs::default(), path)
}

/// The same on real brokers whose replication steps run with `faults` injected.
pub fn replay_replication_path_with_faults(
    model: &ReplicationModel,
    faults: ReplicationBugs,
    path: &[RAction],
) -> Result<ReplStats, Box<ReplDivergence>> {
    // Real brokers start from the created partition, where a windowed model's path
    // to its start begins.
    let (model, to_start) = model.from_creation();
    let mut walk = Walk::start(&model, faults, 0)?;
    for action in to_start.iter().chain(path) {
        let Some(next) = walk.model.step(&walk.state, action.clone()) else {
            break;
        };
        walk.advance(action.clone(), next)?;
    }
    Ok(walk.stats())
}

/// `walks` random walks of at most `depth` steps through the model within its
/// bounds, each replayed on a fresh real cluster; the first divergence, if any.
pub fn replication_walks(
    model: &ReplicationModel,
    walks: usize,
    depth: usize,
    seed: u64,
) -> Result<ReplStats, Box<ReplDivergence>> {
    let mut rng = Rng::new(seed);
    let mut stats = ReplStats::default();
    for i in 0..walks {
        let walk_seed = rng.next_u64() ^ i as u64;
        let mut walk = Walk::start(model, ReplicationBugs::default(), walk_seed)?;
        let mut choose = Rng::new(walk_seed);
        for _ in 0..depth {
            let next = walk.successors();
            if next.is_empty() {
                break;
            }
            let (action, state) = next[choose.below(next.len())].clone();
            walk.advance(action, state)?;
        }
        let s = walk.stats();
        stats.walks += 1;
        stats.steps += s.steps;
        stats.max_depth = stats.max_depth.max(s.steps);
        stats.kinds.extend(s.kinds);
    }
    Ok(stats)
}

struct Walk<'a> {
    model: &'a ReplicationModel,
    state: RState,
    real: ReplicationHarness,
    path: Vec<RAction>,
    seed: u64,
    /// Outcomes along the walk that no action names (counted with the kinds).
    outcomes: BTreeSet<String>,
}

impl<'a> Walk<'a> {
    fn start(
        model: &'a ReplicationModel,
        faults: ReplicationBugs,
        seed: u64,
    ) -> Result<Self, Box<ReplDivergence>> {
        let real = ReplicationHarness::with_faults(model, faults).map_err(|e| {
            Box::new(ReplDivergence {
                path: Vec::new(),
                seed,
                why: vec![format!("the real cluster did not start: {e}")],
            })
        })?;
        let walk = Walk {
            model,
            state: model.init_state(),
            real,
            path: Vec::new(),
            seed,
            outcomes: BTreeSet::new(),
        };
        walk.compare()?;
        Ok(walk)
    }

    fn successors(&self) -> Vec<(RAction, RState)> {
        successors(self.model, &self.state)
    }

    fn advance(&mut self, action: RAction, next: RState) -> Result<(), Box<ReplDivergence>> {
        self.path.push(action.clone());
        if next.ghost.deleted > self.state.ghost.deleted {
            self.outcomes.insert("DeletionAcknowledged".into());
        }
        if next.ghost.started_afresh && !self.state.ghost.started_afresh {
            self.outcomes.insert("StartedAfresh".into());
        }
        self.state = next;
        if let Err(e) = self.real.apply(&action) {
            return Err(self.divergence(vec![format!("the real code failed: {e}")]));
        }
        self.compare()
    }

    fn compare(&self) -> Result<(), Box<ReplDivergence>> {
        let expected = of_model(self.model, &self.state);
        match self.real.view() {
            Err(e) => Err(self.divergence(vec![format!("no real view: {e}")])),
            Ok(real) => {
                let why = expected.differences(&real);
                if why.is_empty() {
                    Ok(())
                } else {
                    Err(self.divergence(why))
                }
            }
        }
    }

    fn divergence(&self, why: Vec<String>) -> Box<ReplDivergence> {
        Box::new(ReplDivergence {
            path: self.path.clone(),
            seed: self.seed,
            why,
        })
    }

    fn stats(&self) -> ReplStats {
        ReplStats {
            walks: 1,
            steps: self.path.len(),
            max_depth: self.path.len(),
            kinds: self
                .path
                .iter()
                .map(|a| format!("{a:?}").split('(').next().unwrap_or("").to_string())
                .chain(self.outcomes.iter().cloned())
                .collect(),
        }
    }
}
