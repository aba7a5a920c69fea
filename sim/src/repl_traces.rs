//! Trace validation of replication (issue 11): what the three nodes show of the
//! workload's partition 0 (replicas 1, 2, 3) after every event of the run is checked
//! against the replication model (`chronik_model::replication::trace`): each change
//! must be one a few model actions make. The end-of-run checks see only lost or
//! forked data; this sees a wrong step (a high watermark ahead of its followers, an
//! acknowledgement the rules do not allow yet) even where it happened to lose nothing.
//!
//! Broker `n + 1` is model node `n`; records become the model's values in the order
//! they first appear in a log, incarnations count from each broker's start when the
//! topic was created. Fetches are reported by the hosts that send, serve and
//! answer them, and by the network that drops them; each metadata command by the
//! first node that applies it (`CommitTap`); a crashed broker shows only that it is
//! down, and what it recovers when it starts again. A run leaves what the mapping
//! covers (a damaged copy or a failed checkpoint sync on a replica, more records than
//! the model's u8 offsets) and the trace ends there: counted with its reason, never
//! silent. DeleteRecords, failed segment syncs, full disks and duplicated packets are
//! mapped.

use crate::records::TOPIC;
use chronik_core::consensus::ApplyTap;
use chronik_core::metadata::{MetadataState, PartitionInfo};
use chronik_core::replication::{
    AnswerRecords, FetchStep, LeaderShown, LocalView, LogReads, LogShown, PartitionKey,
    PartitionMeta, PartitionShown, Partitions, ReadAt, Registration,
};
use chronik_model::replication::trace::{
    AnswerShape, FetchHint, LeaderObs, ReplObservation, ReplTrace, ReplicaObs,
};
use chronik_model::replication::{Meta, Rec, Set, ALL, CREATED, REPLICAS};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

const PARTITION: i32 = 0;

/// Offsets and values stay below this: the model counts them in u8.
const MODEL_RANGE: usize = 250;

/// What a committed command left of the partition and of its brokers' registrations
/// (incarnation, fenced, the Raft index of the latest fence): taken in the node as it
/// applies, before the trace knows which start of each broker is its first.
#[derive(Clone, Debug)]
pub struct CommittedPartition {
    partition: PartitionInfo,
    brokers: [Option<Registration>; REPLICAS],
}

impl CommittedPartition {
    /// `None` before the partition's creation is applied.
    pub fn of(meta: &PartitionMeta) -> Option<Self> {
        let partition = meta.partition.clone()?;
        let mut brokers = [None; REPLICAS];
        for (n, broker) in brokers.iter_mut().enumerate() {
            *broker = meta.brokers.get(&(n as i32 + 1)).copied();
        }
        Some(CommittedPartition { partition, brokers })
    }
}

/// A command's Raft index and what it left of the partition (nothing before its
/// creation).
type Applied = (u64, PartitionMeta);

/// The commands in Raft order, each taken from the first node that applies it:
/// every node's applies are tapped, and an index counts once.
#[derive(Default)]
struct CommitTap {
    applied: Arc<Mutex<Vec<Applied>>>,
    first_applied_up_to: u64,
}

impl CommitTap {
    fn tap(&self) -> ApplyTap {
        let applied = Arc::clone(&self.applied);
        Box::new(move |index, state| {
            // A poisoned lock only means a panicking node: the run reports that.
            let mut applied = applied.lock().unwrap_or_else(|e| e.into_inner());
            applied.push((index, PartitionMeta::of(state, TOPIC, PARTITION)));
        })
    }

    fn push(&self, index: u64, meta: PartitionMeta) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.push((index, meta));
    }

    /// What each command first applied since the last call left of the partition,
    /// in Raft order (commands before its creation leave nothing).
    fn take_first_applied(&mut self) -> Vec<CommittedPartition> {
        let mut taken =
            std::mem::take(&mut *self.applied.lock().unwrap_or_else(|e| e.into_inner()));
        taken.sort_by_key(|(index, _)| *index);
        let mut first = Vec::new();
        for (index, committed) in taken {
            if index > self.first_applied_up_to {
                self.first_applied_up_to = index;
                first.extend(CommittedPartition::of(&committed));
            }
        }
        first
    }
}

/// What one node shows: nothing while it is down.
pub struct NodeShown<'a> {
    pub incarnation: u64,
    pub running: Option<&'a PartitionShown>,
    /// Its disk has little room left (`World::fill_a_disk`), until freed.
    pub disk_limited: bool,
}

pub struct ReplTraces {
    trace: Option<ReplTrace>,
    /// Each broker's incarnation when the topic was created.
    base: [u64; REPLICAS],
    /// Each broker's latest fence (a Raft index) when the trace started, and the
    /// fences since, in order: the model counts them.
    fence_base: [u64; REPLICAS],
    fences: [Vec<u64>; REPLICAS],
    /// Each record value's digest as the model's value.
    values: BTreeMap<u64, u8>,
    /// Fetch steps before the trace started (in the event that first applied the
    /// creation): the first observation follows them too. Kept as the run reported
    /// them, since the start decides how their epochs map.
    early: Vec<(usize, FetchStep)>,
    /// What the run's epochs are to the model's: zero, unless brokers were fenced
    /// before the creation (`ReplTrace::with_fenced_at_creation`).
    shift: EpochShift,
    /// Commits from the partition's creation until the trace started.
    early_commits: Vec<CommittedPartition>,
    /// The metadata last committed, in the model's terms: a commit is reported to
    /// the trace when it changes what the model holds.
    committed: Option<Meta>,
    commits: CommitTap,
    last: Option<ReplObservation>,
    /// The acknowledged records as model (offset, value) pairs, with how many
    /// acknowledgements they were made of: a producer's acknowledgements only grow, so
    /// the set is made again only when their count changes, not at every step.
    acked: (usize, BTreeSet<(u8, u8)>),
    /// Per node: the records last read, and where the log was when they were.
    logs: [Option<(ReadAt, Vec<Rec>)>; REPLICAS],
    /// Per node: its log start and records when last read, kept while it is down:
    /// what a damaged range held (the run damages only records a copy held
    /// durably, so its last look while up read them).
    last_read: [(u64, Vec<Rec>); REPLICAS],
    pub steps_validated: u64,
    /// DeleteRecords taken by a leader, and fetches refused OFFSET_OUT_OF_RANGE
    /// below a leader's log start, in steps the model allowed (R-WIRE-5).
    pub deletions_validated: u64,
    pub refusals_validated: u64,
    /// Damaged copies of partition 0 (R-LOG-13) whose damage, repair proposals and
    /// cut were model steps (R-REPL-4), counted where the damage landed.
    pub damages_validated: u64,
    /// Brokers whose trace began in a later start than their registration (the
    /// model crashed and restarted them first).
    pub restarts_before_trace: u64,
    /// Why the trace ended before the run did (none: it ran to the end).
    pub ended: Option<String>,
    pub rejection: Option<String>,
    /// Validate against the interval fsync policy's model (R-REPL-5).
    acks_before_fsync: bool,
    /// Each broker's starts after the partition's creation was first applied and
    /// before the trace began (broker 1 applies it late): the first step takes them.
    starts_while_waiting: [u64; REPLICAS],
    /// Describe every step checked (`--show-replication-steps`), for `take_shown`:
    /// a rejection names only its own step, and reading why takes the steps before.
    showing_steps: bool,
    shown: Vec<String>,
    /// Per node: the records of its log last read (`PartitionShown::of`).
    reads: [LogReads; REPLICAS],
    /// The partition whose fetch steps count: the workload's partition 0, or the one
    /// real brokers traced.
    traced: PartitionKey,
    /// The run reports each produce's append (`with_produce_hints`).
    produces_hinted: bool,
}

fn node_of(broker: i32) -> Option<u8> {
    u8::try_from(broker - 1)
        .ok()
        .filter(|n| usize::from(*n) < REPLICAS)
}

fn set_of(brokers: &[i32]) -> Set {
    brokers
        .iter()
        .filter_map(|b| node_of(*b))
        .fold(0, |s, n| s | (1 << n))
}

/// Added to the run's leader epochs and partition epochs to give the model's. A
/// partition created without a fenced broker is, to the model, the one it creates
/// with every replica and then fences: the same partition with epochs numbered on.
#[derive(Clone, Copy, Debug, Default)]
struct EpochShift {
    leader: u64,
    partition: u64,
}

impl EpochShift {
    fn leader_epoch(self, epoch: i64) -> Result<u8, String> {
        let epoch = u64::try_from(epoch).map_err(|_| "a negative leader epoch")?;
        small(epoch + self.leader)
    }

    fn partition_epoch(self, epoch: u64) -> Result<u8, String> {
        small(epoch + self.partition)
    }
}

fn small(x: u64) -> Result<u8, String> {
    u8::try_from(x)
        .ok()
        .filter(|x| usize::from(*x) < MODEL_RANGE)
        .ok_or_else(|| format!("offset or epoch {x} beyond the model's range"))
}

impl Default for ReplTraces {
    fn default() -> Self {
        ReplTraces {
            trace: None,
            base: [0; REPLICAS],
            fence_base: [0; REPLICAS],
            fences: Default::default(),
            values: BTreeMap::new(),
            early: Vec::new(),
            shift: EpochShift::default(),
            early_commits: Vec::new(),
            committed: None,
            commits: CommitTap::default(),
            last: None,
            acked: (0, BTreeSet::new()),
            logs: Default::default(),
            last_read: Default::default(),
            steps_validated: 0,
            deletions_validated: 0,
            refusals_validated: 0,
            damages_validated: 0,
            restarts_before_trace: 0,
            ended: None,
            rejection: None,
            acks_before_fsync: false,
            starts_while_waiting: [0; REPLICAS],
            showing_steps: false,
            shown: Vec::new(),
            reads: Default::default(),
            traced: (TOPIC.to_string(), PARTITION),
            produces_hinted: false,
        }
    }
}

impl ReplTraces {
    pub fn new() -> Self {
        Self::default()
    }

    /// The brokers run the interval fsync policy (R-REPL-5).
    pub fn acking_before_fsync(mut self) -> Self {
        self.acks_before_fsync = true;
        self
    }

    /// The run reports each produce's append (`FetchStep::Appended`, a real broker's
    /// trace): the model produces only there.
    pub fn with_produce_hints(mut self) -> Self {
        self.produces_hinted = true;
        self
    }

    /// The fetch steps of `key` count, not the workload's partition 0's.
    pub fn of_partition(mut self, key: PartitionKey) -> Self {
        self.traced = key;
        self
    }

    /// Describe every step checked, for `take_shown`.
    pub fn showing_steps(mut self) -> Self {
        self.showing_steps = true;
        self
    }

    /// The steps described since the last call.
    pub fn take_shown(&mut self) -> Vec<String> {
        std::mem::take(&mut self.shown)
    }

    /// A tap for a starting node's metadata (installed before its replay: a
    /// command committed but applied nowhere before a crash is first applied there).
    pub fn tap(&self) -> ApplyTap {
        self.commits.tap()
    }

    /// A node applied the command at Raft `index`, which left `meta` of the partition
    /// (a real broker's trace line; the simulator's nodes report through `tap`).
    pub fn applied(&mut self, index: u64, meta: PartitionMeta) {
        self.commits.push(index, meta);
    }

    /// Broker `id` starts.
    pub fn started(&mut self, id: u64) {
        let waiting = self.trace.is_none() && !self.early_commits.is_empty();
        if let Some(n) = i32::try_from(id).ok().and_then(node_of) {
            if waiting {
                self.starts_while_waiting[usize::from(n)] += 1;
            }
        }
    }

    /// What node `n` (broker `n + 1`), running start `incarnation`, shows of
    /// partition 0; `None` while it is down (its log is read afresh once it has
    /// recovered).
    pub fn shown(
        &mut self,
        n: usize,
        running: Option<(&MetadataState, &Partitions)>,
        incarnation: u64,
    ) -> Result<Option<PartitionShown>, String> {
        let mut spare = LogReads::default();
        let reads = self.reads.get_mut(n).unwrap_or(&mut spare);
        let Some((state, partitions)) = running else {
            *reads = LogReads::default();
            return Ok(None);
        };
        let view = LocalView {
            state,
            partitions,
            me: n as i32 + 1,
            incarnation,
        };
        PartitionShown::of(&view, (TOPIC, PARTITION), reads).map(Some)
    }

    /// The trace has ended: what the taps saw since goes nowhere.
    pub fn forget_commits(&mut self) {
        self.commits.take_first_applied();
    }

    pub fn active(&self) -> bool {
        self.ended.is_none() && self.rejection.is_none()
    }

    /// A fault the mapping does not cover touched partition 0: the trace ends here,
    /// having checked every step before it.
    pub fn unmapped(&mut self, fault: impl Into<String>) {
        let fault = fault.into();
        self.end(format!("{fault}, which the mapping does not cover"));
    }

    /// The run left what the mapping covers: the trace ends here.
    pub fn end(&mut self, why: impl Into<String>) {
        if self.active() {
            self.ended = Some(why.into());
        }
    }

    /// What the nodes show now (with what each command first applied since left of
    /// the partition, from the taps), and the (offset, value) of every acknowledged
    /// produce to the partition (`acked`: how many there are, and a way to list them).
    /// `deleted`: the highest offset an acknowledged DeleteRecords of partition 0
    /// deleted below.
    pub fn observe(
        &mut self,
        nodes: &[NodeShown],
        acked: (usize, impl FnOnce() -> Vec<(u64, u64)>),
        deleted: u64,
        fetches: &[(usize, FetchStep)],
    ) {
        let commits = self.commits.take_first_applied();
        if !self.active() {
            return;
        }
        let mut commits = commits;
        let early;
        let mut fetches = fetches;
        if self.trace.is_none() {
            self.early.extend_from_slice(fetches);
            self.early_commits.append(&mut commits);
            if !self.start(nodes) {
                return;
            }
            early = std::mem::take(&mut self.early);
            fetches = &early;
            commits = std::mem::take(&mut self.early_commits);
        }
        let mut fetch_hints = match fetch_hints(fetches, &self.traced, self.shift) {
            Ok(hints) => hints,
            Err(why) => return self.end(why),
        };
        // A command is applied before any host acts on it in the same event.
        let mut hints = match self.commit_hints(&commits) {
            Ok(hints) => hints,
            Err(why) => return self.end(why),
        };
        hints.append(&mut fetch_hints);
        let observed = match self.observation(nodes, acked, deleted) {
            Ok(observed) => observed,
            Err(why) => return self.end(why),
        };
        if self.last.as_ref() == Some(&observed) && hints.is_empty() {
            return;
        }
        let Some(trace) = &mut self.trace else {
            return;
        };
        if self.showing_steps {
            let step = trace.steps() + 1;
            self.shown
                .push(describe_step(step, &hints, self.last.as_ref(), &observed));
        }
        match trace.observe(&observed, &hints) {
            Ok(()) => {
                self.steps_validated += 1;
                for hint in &hints {
                    match hint {
                        FetchHint::Deleted { .. } => self.deletions_validated += 1,
                        FetchHint::Damaged { .. } => self.damages_validated += 1,
                        FetchHint::Answered { answer, .. } if answer.refused_at.is_some() => {
                            self.refusals_validated += 1
                        }
                        _ => {}
                    }
                }
            }
            Err(rejection) => self.rejection = Some(rejection.to_string()),
        }
        self.last = Some(observed);
    }

    /// The trace starts once some broker has applied the partition's creation, if
    /// the partition is where the model starts. Until stop 57 it waited for broker
    /// 1, the first leader: where broker 1 crashed before applying it, everything
    /// the others did meanwhile (a fence, a new leader, records) fell into one step
    /// whose search ran out of states, so such traces ended at their start (swarm
    /// 1100, 1286, 1296; 21 of swarm 1400 to 1999). A broker that has not applied
    /// the creation leads nothing, whatever the model's first leader does
    /// (`ReplTrace::copy_agrees`).
    fn start(&mut self, nodes: &[NodeShown]) -> bool {
        match self.try_start(nodes) {
            Ok(started) => started,
            Err(why) => {
                self.end(why);
                false
            }
        }
    }

    /// `Ok(false)` while no broker shows the creation; `Err` says why the model
    /// cannot start where the run did.
    fn try_start(&mut self, nodes: &[NodeShown]) -> Result<bool, String> {
        let first_created = nodes
            .iter()
            .filter_map(|n| n.running)
            .find_map(|shown| Some((&shown.meta, shown.meta.partition.as_ref()?)));
        let Some((meta, info)) = first_created else {
            return Ok(false);
        };
        // The creation as committed: the node may show commands applied with it in
        // one batch too (a new leader epoch, swarm 1035), which the first step takes
        // as reported commits.
        let creation = self.early_commits.first().cloned();
        let info = creation.as_ref().map_or(info, |c| &c.partition);
        let fenced = fenced_at_creation(creation.as_ref(), meta);
        if !as_created(nodes, info, fenced) {
            return Err(format!(
                "the topic was created where the model does not start: {info:?}"
            ));
        }
        let at_start = self.place_brokers(nodes, meta, creation.as_ref(), fenced)?;
        let trace = self.starting_trace(meta.min_isr.unwrap_or(1), fenced, &at_start);
        match trace.start_meta() {
            Some(start) if fenced != 0 => {
                self.shift = shift_onto(start, info).ok_or_else(|| {
                    format!(
                        "the topic was created without fenced brokers where the model \
                         does not start: {info:?}, the model's {start:?}"
                    )
                })?;
            }
            Some(_) => {}
            None => return Err("no start of the model is the run's creation".to_string()),
        }
        self.trace = Some(trace);
        Ok(true)
    }

    /// The model starts every broker in the start it registered, or not registered
    /// yet (its registration on the way), or crashed and restarted since; one
    /// fenced is elsewhere. Sets each broker's base incarnation and fence.
    fn place_brokers(
        &mut self,
        nodes: &[NodeShown],
        meta: &PartitionMeta,
        creation: Option<&CommittedPartition>,
        fenced: Set,
    ) -> Result<BrokersAtStart, String> {
        let mut at_start = BrokersAtStart::default();
        for (n, node) in nodes.iter().enumerate() {
            let broker = n as i32 + 1;
            let shown = meta.brokers.get(&broker).copied();
            // Each broker's registration as the creation's own commit left it (the
            // node may show registrations applied with it in one batch, which the
            // first step takes as reported commits: swarm 1035, 1158); without
            // that commit, as the nodes show it.
            let registration = match creation {
                Some(creation) => creation.brokers[n].or_else(|| {
                    at_start.unregistered |= 1 << n;
                    shown
                }),
                None => {
                    if registered_after_creation(nodes, broker) {
                        at_start.unregistered |= 1 << n;
                    }
                    shown
                }
            };
            let restarted = match registration {
                None => {
                    at_start.unregistered |= 1 << n;
                    None
                }
                Some(b)
                    if has_set(at_start.unregistered, n) && b.incarnation == node.incarnation =>
                {
                    None
                }
                Some(b) => {
                    let restarted = self.restarted_before_trace(
                        n,
                        node,
                        b,
                        creation,
                        fenced,
                        at_start.unregistered,
                    )?;
                    // Registered before the creation, or after it and applied at
                    // once with it by every broker that shows the creation.
                    if restarted.is_none() && creation.is_none() {
                        at_start.maybe |= 1 << n;
                    }
                    restarted
                }
            };
            match restarted {
                Some(r) => {
                    at_start.restarts[n] = r.times;
                    self.restarts_before_trace += u64::from(r.times);
                    self.base[n] = r.base;
                    self.fence_base[n] = r.fence_base;
                }
                None => {
                    self.base[n] = node.incarnation;
                    self.fence_base[n] = registration.map_or(0, |b| b.fenced_at);
                }
            }
        }
        Ok(at_start)
    }

    /// A broker registered as `b` that runs a later start than the model's first:
    /// how often the model crashes and restarts it before the trace. `None`: it
    /// runs the start it registered.
    fn restarted_before_trace(
        &self,
        n: usize,
        node: &NodeShown,
        b: Registration,
        creation: Option<&CommittedPartition>,
        fenced: Set,
        unregistered: Set,
    ) -> Result<Option<Restarted>, String> {
        // A start after some node applied the creation, in the same event as the
        // first observation, is in an order the run does not show.
        let late = self.starts_while_waiting[n];
        let in_range = |times: u64| {
            u8::try_from(times)
                .ok()
                .filter(|t| late == 0 && usize::from(*t) < MODEL_RANGE)
        };
        // Fenced before the creation: the model fences it right after the creation
        // (its first fence), and crashes and restarts it as often as it started
        // again since (its copy still empty), each start's registration on its way.
        if has_set(fenced, n) && b.incarnation <= node.incarnation {
            let times = in_range(node.incarnation - b.incarnation).ok_or_else(|| {
                format!(
                    "broker {} was fenced before the trace began and started again \
                     {late} times after some node applied the creation",
                    n + 1
                )
            })?;
            let fence_base = b.fenced_at.saturating_sub(1);
            return Ok(Some(Restarted {
                times,
                base: b.incarnation,
                fence_base,
            }));
        }
        if b.fenced {
            return Err(format!(
                "broker {} was fenced before the trace began (runs start {}, registered \
                 start {}, fenced at the creation: {})",
                n + 1,
                node.incarnation,
                b.incarnation,
                has_set(fenced, n)
            ));
        }
        // Started again, before any node applied the creation (its copy still
        // empty), since the start the metadata registers: the model crashes and
        // restarts it as often.
        if b.incarnation < node.incarnation && !has_set(unregistered, n) {
            // The creation itself must register that start: one registered after
            // it (group storm seed 2, as found) is not where the model starts.
            let at_creation = creation
                .and_then(|creation| creation.brokers[n])
                .map(|r| r.incarnation);
            let times = in_range(node.incarnation - b.incarnation)
                .filter(|_| at_creation == Some(b.incarnation))
                .ok_or_else(|| {
                    format!(
                        "broker {} started again before the trace began (start {}, \
                         registered {} after the creation's {at_creation:?}, {late} \
                         starts after some node applied the creation)",
                        n + 1,
                        node.incarnation,
                        b.incarnation,
                    )
                })?;
            let fence_base = b.fenced_at;
            return Ok(Some(Restarted {
                times,
                base: b.incarnation,
                fence_base,
            }));
        }
        if b.incarnation != node.incarnation {
            return Err(format!(
                "broker {} started again before the trace began (runs start {}, start {} \
                 registered after the creation)",
                n + 1,
                node.incarnation,
                b.incarnation
            ));
        }
        Ok(None)
    }

    fn starting_trace(&self, min_isr: u8, fenced: Set, at_start: &BrokersAtStart) -> ReplTrace {
        let mut trace = ReplTrace::starting(min_isr, at_start.unregistered, at_start.maybe);
        // The policy first: the model's fence of a broker before the trace depends
        // on it (a fenced leader's copy is unverified under the interval policy).
        if self.acks_before_fsync {
            trace = trace.acking_before_fsync();
        }
        if self.produces_hinted {
            trace = trace.with_produce_hints();
        }
        // In the run's order: a broker fenced before the creation started again
        // after its fence.
        trace
            .with_fenced_at_creation(fenced)
            .with_restarts(at_start.restarts)
            .with_commit_hints()
    }

    /// The commits that change the partition as the model sees it; the first one
    /// the trace meets is its creation, where the model starts.
    fn commit_hints(&mut self, commits: &[CommittedPartition]) -> Result<Vec<FetchHint>, String> {
        let mut hints = Vec::new();
        for commit in commits {
            let meta = self.meta_of(commit)?;
            if self.committed.is_some_and(|before| before != meta) {
                hints.push(FetchHint::Committed { meta });
            }
            self.committed = Some(meta);
        }
        Ok(hints)
    }

    fn incarnation(&self, n: usize, real: u64) -> Result<u8, String> {
        let base = self.base[n];
        real.checked_sub(base)
            .and_then(|d| u8::try_from(d + 1).ok())
            .ok_or_else(|| format!("broker {} incarnation {real} before the trace", n + 1))
    }

    fn observation(
        &mut self,
        nodes: &[NodeShown],
        (acked_count, acked): (usize, impl FnOnce() -> Vec<(u64, u64)>),
        deleted: u64,
    ) -> Result<ReplObservation, String> {
        let mut replicas = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            let incarnation = self.incarnation(n, node.incarnation)?;
            let Some(shown) = node.running else {
                // Its log is read afresh once it has recovered.
                self.logs[n] = None;
                replicas.push(ReplicaObs {
                    up: false,
                    incarnation,
                    created: false,
                    view: CREATED,
                    log_start: 0,
                    log: Vec::new(),
                    durable: 0,
                    hw: 0,
                    gate: None,
                    leader: None,
                });
                continue;
            };
            replicas.push(self.copy(n, incarnation, shown)?);
        }
        if self.acked.0 != acked_count {
            self.acked = (acked_count, self.model_pairs(&acked())?);
        }
        Ok(ReplObservation {
            replicas,
            acked: self.acked.1.clone(),
            disks_limited: std::array::from_fn(|n| nodes.get(n).is_some_and(|s| s.disk_limited)),
            deleted: small(deleted)?,
        })
    }

    fn model_pairs(&self, acked: &[(u64, u64)]) -> Result<BTreeSet<(u8, u8)>, String> {
        let mut pairs = BTreeSet::new();
        for (offset, value) in acked {
            let value = self
                .values
                .get(value)
                .copied()
                .ok_or("a value acknowledged that no log showed")?;
            pairs.insert((small(*offset)?, value));
        }
        Ok(pairs)
    }

    fn meta(&mut self, meta: &PartitionMeta) -> Result<Meta, String> {
        match CommittedPartition::of(meta) {
            Some(committed) => self.meta_of(&committed),
            // Not applied the creation yet: the view says nothing (`created`).
            None => Ok(CREATED),
        }
    }

    fn meta_of(&mut self, committed: &CommittedPartition) -> Result<Meta, String> {
        let mut incarnation = [0; REPLICAS];
        let mut fenced = 0;
        let mut fences = [0; REPLICAS];
        for (n, broker) in committed.brokers.iter().enumerate() {
            // Not registered yet: incarnation 0.
            let Some(broker) = broker else {
                continue;
            };
            incarnation[n] = self.incarnation(n, broker.incarnation)?;
            if broker.fenced {
                fenced |= 1 << n;
            }
            fences[n] = self.fence_count(n, broker.fenced_at)?;
        }
        let p = &committed.partition;
        if p.replicas != [1, 2, 3] {
            return Err("the partition's replicas changed".into());
        }
        Ok(Meta {
            leader: p.leader.and_then(node_of),
            epoch: self.shift.leader_epoch(i64::from(p.leader_epoch))?,
            version: self.shift.partition_epoch(p.partition_epoch)?,
            isr: set_of(&p.isr),
            elr: set_of(&p.elr),
            unverified: set_of(&p.unverified),
            fenced,
            fences,
            incarnation,
        })
    }

    /// The model's count of broker `n`'s fences at the one applied at `fenced_at`.
    fn fence_count(&mut self, n: usize, fenced_at: u64) -> Result<u8, String> {
        if fenced_at <= self.fence_base[n] {
            return Ok(0);
        }
        let fences = &mut self.fences[n];
        let position = match fences.binary_search(&fenced_at) {
            Ok(p) => p,
            Err(p) => {
                fences.insert(p, fenced_at);
                p
            }
        };
        small(position as u64 + 1)
    }

    fn copy(
        &mut self,
        n: usize,
        incarnation: u8,
        shown: &PartitionShown,
    ) -> Result<ReplicaObs, String> {
        let view = self.meta(&shown.meta)?;
        // A real broker applies the creation and opens the log after it: until then
        // it knows the partition no more than before the creation.
        let created = shown.meta.partition.is_some() && shown.log.is_some();
        let Some(log) = &shown.log else {
            return Ok(ReplicaObs {
                up: true,
                incarnation,
                created,
                view,
                log_start: 0,
                log: Vec::new(),
                durable: 0,
                hw: 0,
                gate: None,
                leader: None,
            });
        };
        Ok(ReplicaObs {
            up: true,
            incarnation,
            created,
            view,
            log_start: small(log.start)?,
            log: self.records(n, log)?,
            durable: small(log.durable)?,
            hw: small(log.hw)?,
            gate: shown
                .gate
                .map(|e| self.shift.leader_epoch(i64::from(e)))
                .transpose()?,
            leader: shown.leader.as_ref().map(leader_obs).transpose()?,
        })
    }

    /// The log's records from its start as the model's, mapped again only when its
    /// end, cuts or start moved.
    fn records(&mut self, n: usize, log: &LogShown) -> Result<Vec<Rec>, String> {
        let read_at = log.read_at();
        if let Some((at, records)) = &self.logs[n] {
            if *at == read_at {
                return Ok(records.clone());
            }
        }
        let mut records = Vec::new();
        for (offset, record) in (log.start..).zip(log.records.iter()) {
            // The broker serves around a damaged range (R-LOG-13) and the model keeps
            // its records until the repair's cut: they are the ones this copy held
            // before the damage.
            let Some((epoch, digest)) = record else {
                records.push(self.read_before(n, offset)?);
                continue;
            };
            let epoch = self.shift.leader_epoch(i64::from(*epoch))?;
            let next = self.values.len();
            let value = *self
                .values
                .entry(*digest)
                .or_insert_with(|| u8::try_from(next).unwrap_or(u8::MAX));
            if usize::from(value) >= MODEL_RANGE {
                return Err("more records than the model's range".into());
            }
            records.push(Rec { epoch, value });
        }
        if log.start as usize + records.len() >= MODEL_RANGE {
            return Err("more records than the model's range".into());
        }
        self.logs[n] = Some((read_at, records.clone()));
        self.last_read[n] = (log.start, records.clone());
        Ok(records)
    }

    /// Node `n`'s record at `offset` when its log was last read.
    fn read_before(&self, n: usize, offset: u64) -> Result<Rec, String> {
        let (start, records) = &self.last_read[n];
        offset
            .checked_sub(*start)
            .and_then(|i| records.get(usize::try_from(i).ok()?))
            .copied()
            .ok_or_else(|| format!("damaged offset {offset} of node {} never read", n + 1))
    }
}

/// A leader's followers as the model's.
fn leader_obs(leader: &LeaderShown) -> Result<LeaderObs, String> {
    let mut follower_end = [None; REPLICAS];
    for (broker, end) in &leader.follower_end {
        let n = node_of(*broker).ok_or("a follower that is no replica")?;
        follower_end[usize::from(n)] = Some(small(*end)?);
    }
    Ok(LeaderObs {
        follower_end,
        maximal_isr: set_of(&leader.maximal_isr),
    })
}

/// One checked step in a few lines: what the run reported, and each copy and the
/// acknowledgements where they changed since the last step.
fn describe_step(
    step: usize,
    hints: &[FetchHint],
    last: Option<&ReplObservation>,
    observed: &ReplObservation,
) -> String {
    let mut text = format!("C-9 step {step}: reported {hints:?}");
    for (n, copy) in observed.replicas.iter().enumerate() {
        if last.and_then(|l| l.replicas.get(n)) != Some(copy) {
            text.push_str(&format!("\n      broker {}: {copy}", n + 1));
        }
    }
    if last.map(|l| &l.acked) != Some(&observed.acked) {
        text.push_str(&format!("\n      acknowledged {:?}", observed.acked));
    }
    text
}

/// Broker `id` holds a replica of partition 0.
pub fn replica(id: u64) -> bool {
    i32::try_from(id).ok().and_then(node_of).is_some()
}

/// The key is partition 0's.
pub fn traced_key(key: &(String, i32)) -> bool {
    key.0 == TOPIC && key.1 == PARTITION
}

/// The fetch steps of partition 0, node index `i` being broker `i + 1`.
fn fetch_hints(
    fetches: &[(usize, FetchStep)],
    traced: &PartitionKey,
    shift: EpochShift,
) -> Result<Vec<FetchHint>, String> {
    let ours = |key: &PartitionKey| key == traced;
    let mut hints = Vec::new();
    for (i, step) in fetches {
        match step {
            FetchStep::Served {
                key,
                follower,
                offset,
            } if ours(key) => hints.push(FetchHint::Served {
                follower: node_of(*follower).ok_or("a fetch from no replica")?,
                offset: small(*offset)?,
            }),
            FetchStep::Asked { key, offset } if ours(key) => hints.push(FetchHint::Asked {
                follower: u8::try_from(*i).map_err(|_| "node index")?,
                offset: small(*offset)?,
            }),
            FetchStep::Unknown {
                key,
                follower,
                offset,
            } if ours(key) => hints.push(FetchHint::Lost {
                follower: node_of(*follower).ok_or("a fetch from no replica")?,
                offset: small(*offset)?,
            }),
            FetchStep::Answered {
                key,
                epoch,
                records,
                refused_at,
            } if ours(key) => hints.push(FetchHint::Answered {
                follower: u8::try_from(*i).map_err(|_| "node index")?,
                answer: answer_shape(*epoch, records, *refused_at, shift)?,
            }),
            FetchStep::Dropped { key, offset } if ours(key) => hints.push(FetchHint::Lost {
                follower: u8::try_from(*i).map_err(|_| "node index")?,
                offset: small(*offset)?,
            }),
            FetchStep::Appended { key, count } if ours(key) => {
                let leader = u8::try_from(*i).map_err(|_| "node index")?;
                let count = usize::try_from(*count).map_err(|_| "a batch beyond the range")?;
                hints.extend(std::iter::repeat_n(FetchHint::Produced { leader }, count));
            }
            FetchStep::Unanswered { key, offset } if ours(key) => {
                hints.push(FetchHint::Unanswered {
                    follower: u8::try_from(*i).map_err(|_| "node index")?,
                    offset: small(*offset)?,
                })
            }
            FetchStep::AnswerDropped {
                key,
                epoch,
                records,
                refused_at,
            } if ours(key) => hints.push(FetchHint::AnswerLost {
                follower: u8::try_from(*i).map_err(|_| "node index")?,
                answer: answer_shape(*epoch, records, *refused_at, shift)?,
            }),
            FetchStep::Deleted { key, offset } if ours(key) => hints.push(FetchHint::Deleted {
                leader: u8::try_from(*i).map_err(|_| "node index")?,
                offset: small(*offset)?,
            }),
            FetchStep::Damaged { key, offset } if ours(key) => hints.push(FetchHint::Damaged {
                node: u8::try_from(*i).map_err(|_| "node index")?,
                offset: small(*offset)?,
            }),
            FetchStep::RepairProposed {
                key,
                leader_epoch,
                partition_epoch,
            } if ours(key) => hints.push(FetchHint::RepairProposed {
                node: u8::try_from(*i).map_err(|_| "node index")?,
                epoch: shift.leader_epoch(i64::from(*leader_epoch))?,
                version: shift.partition_epoch(*partition_epoch)?,
            }),
            FetchStep::EpochServed { key, follower } if ours(key) => {
                hints.push(FetchHint::EpochServed {
                    follower: node_of(*follower).ok_or("an epoch query from no replica")?,
                })
            }
            FetchStep::EpochAnswered { key, epoch } if ours(key) => {
                hints.push(FetchHint::EpochAnswered {
                    follower: u8::try_from(*i).map_err(|_| "node index")?,
                    epoch: shift.leader_epoch(i64::from(*epoch))?,
                })
            }
            FetchStep::IsrProposed { key, isr } if ours(key) => {
                hints.push(FetchHint::IsrProposed {
                    leader: u8::try_from(*i).map_err(|_| "node index")?,
                    isr: set_of(isr),
                })
            }
            FetchStep::EpochAnswerDropped { key, epoch } if ours(key) => {
                hints.push(FetchHint::EpochAnswerLost {
                    follower: u8::try_from(*i).map_err(|_| "node index")?,
                    epoch: shift.leader_epoch(i64::from(*epoch))?,
                })
            }
            _ => {}
        }
    }
    Ok(hints)
}

/// What tells one answer in flight from another: the epoch it was fetched under,
/// where its records start and how many there are, or the log start a refusal
/// names.
fn answer_shape(
    epoch: i32,
    records: &Result<AnswerRecords, String>,
    refused_at: Option<u64>,
    shift: EpochShift,
) -> Result<AnswerShape, String> {
    let records = records.as_ref().map_err(Clone::clone)?;
    let count = u8::try_from(records.count).map_err(|_| "an answer beyond the model's range")?;
    Ok(AnswerShape {
        epoch: shift.leader_epoch(i64::from(epoch))?,
        first: records.first.map(small).transpose()?,
        count,
        refused_at: refused_at.map(small).transpose()?,
    })
}

/// The brokers the creation's commit shows fenced (as the first node to apply it
/// shows them, without that commit).
fn fenced_at_creation(creation: Option<&CommittedPartition>, meta: &PartitionMeta) -> Set {
    (0..REPLICAS)
        .filter(|n| {
            let registration = match creation {
                Some(creation) => creation.brokers[*n],
                None => meta.brokers.get(&(*n as i32 + 1)).copied(),
            };
            registration.is_some_and(|b| b.fenced)
        })
        .fold(0, |set, n| set | (1 << n))
}

/// The shift that makes the run's creation (epochs 0) the model's start after its
/// fences, if the two are the same partition otherwise.
fn shift_onto(start: Meta, info: &PartitionInfo) -> Option<EpochShift> {
    let same = start.leader == info.leader.and_then(node_of)
        && start.isr == set_of(&info.isr)
        && start.elr == set_of(&info.elr)
        && start.unverified == set_of(&info.unverified);
    same.then_some(EpochShift {
        leader: u64::from(start.epoch),
        partition: u64::from(start.version),
    })
}

/// Some broker shows the partition's creation without `broker`'s registration, even
/// if broker 1 applied both at once.
fn registered_after_creation(nodes: &[NodeShown], broker: i32) -> bool {
    nodes
        .iter()
        .filter_map(|node| node.running)
        .any(|shown| shown.meta.partition.is_some() && !shown.meta.brokers.contains_key(&broker))
}

/// Where the model starts the brokers: those whose registration is on its way, those
/// that may be (registered before the creation or applied at once with it), and how
/// often each crashed and restarted before the trace.
#[derive(Default)]
struct BrokersAtStart {
    unregistered: Set,
    maybe: Set,
    restarts: [u8; REPLICAS],
}

/// A broker the model crashes and restarts `times` before the trace: its registered
/// start and the fence before the model's first.
struct Restarted {
    times: u8,
    base: u64,
    fence_base: u64,
}

/// The partition is created as the model creates it: replicas 1, 2, 3, epochs 0,
/// and (unless brokers were fenced at the creation) broker 1 leading all three.
fn as_created(nodes: &[NodeShown], info: &PartitionInfo, fenced: Set) -> bool {
    nodes.len() == REPLICAS
        && info.replicas == [1, 2, 3]
        && info.leader_epoch == 0
        && info.partition_epoch == 0
        && (fenced != 0 || (info.leader == Some(1) && set_of(&info.isr) == ALL))
}

fn has_set(set: Set, n: usize) -> bool {
    set & (1 << n) != 0
}
