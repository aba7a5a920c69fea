//! Trace validation of the replication model (issue 11): what a real run shows of one
//! partition's three copies after each of its events (each broker's applied metadata,
//! log, durable end, high watermark, the epoch it follows, and as leader its
//! followers' ends and maximal ISR; the clients' acknowledgements) is checked against
//! the model, the way CCF and etcd's raft check their traces: every change must be
//! reachable by a few model actions from a state consistent with the trace so far.
//! A change no candidate state can reach is rejected with what was observed.
//!
//! The real shell runs the model's actions at other moments than the model does, and
//! a trace shows states, not actions. So:
//! - one observed change may take several actions (a tick fsyncs and proposes),
//!   found by a breadth-first search over the actions that touch what differs; the
//!   shortest explanations are kept;
//! - fetches are taken where the run reports them (`FetchHint`), since a served
//!   fetch may show nothing at the moment and still bring news later;
//! - a run that reports each commit where a broker first applies it
//!   (`FetchHint::Committed`, the simulator's) has metadata committed only there;
//!   proposals arrive and refused or lost ones go on the way to it. Without such
//!   hints a `Commit`, `Fence`, `Rejoin` or `ProposalArrives` is taken lazily, only
//!   when a broker's applied metadata shows a change the model's committed history
//!   does not hold yet;
//! - the model moves a leader's high watermark, and acknowledges, at the first moment
//!   the rules allow; the real broker does so on its next upkeep or produce wake-up.
//!   An observed high watermark may therefore lag the model's, never pass it, and
//!   every real acknowledgement must be one the model has made.

use super::*;
use std::collections::{BTreeSet, HashSet};

/// What a leading copy shows of its followers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaderObs {
    /// Each follower's log end reported in the current leader epoch.
    pub follower_end: [Option<u8>; REPLICAS],
    /// The applied ISR plus the members of its proposals that may still be applied.
    pub maximal_isr: Set,
}

/// One broker's copy, in the model's terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplicaObs {
    pub up: bool,
    pub incarnation: u8,
    /// The broker has applied the partition's creation: before it, `view` says
    /// nothing (the trace may start from several pasts of the registrations).
    pub created: bool,
    pub view: Meta,
    /// The log start, below which records are deleted (R-WIRE-5).
    pub log_start: u8,
    /// The records from the log start on.
    pub log: Vec<Rec>,
    pub durable: u8,
    pub hw: u8,
    pub gate: Option<u8>,
    /// `Some` exactly while the broker leads the partition.
    pub leader: Option<LeaderObs>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplObservation {
    pub replicas: Vec<ReplicaObs>,
    /// (offset, value) of every produce a client saw acknowledged.
    pub acked: BTreeSet<(u8, u8)>,
    /// Per broker: its disk has little room left (ENOSPC for a write that does not
    /// fit). The model's copy may be full (`DiskFull`) only while it does: a small
    /// write may still fit where a larger one failed, so it may be full or not.
    pub disks_limited: [bool; REPLICAS],
    /// The highest offset an acknowledged DeleteRecords deleted below (R-WIRE-5).
    pub deleted: u8,
}

#[derive(Clone, Debug)]
pub struct ReplTraceRejection {
    pub step: usize,
    pub observed: ReplObservation,
    /// What the candidate states before the step showed.
    pub before: Vec<ReplObservation>,
    /// The fetches in flight in the first candidates.
    pub in_flight: Vec<String>,
    pub why: String,
}

impl fmt::Display for ReplTraceRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "step {} is not a step the replication model allows: {}",
            self.step, self.why
        )?;
        for (n, r) in self.observed.replicas.iter().enumerate() {
            writeln!(f, "  observed broker {}: {}", n + 1, r)?;
        }
        writeln!(f, "  observed acknowledged: {:?}", self.observed.acked)?;
        if self.observed.deleted > 0 {
            writeln!(
                f,
                "  observed a deletion below {} acknowledged",
                self.observed.deleted
            )?;
        }
        // Each candidate only where it differs from what was observed.
        for (k, o) in self.before.iter().take(4).enumerate() {
            for (n, (r, seen)) in o.replicas.iter().zip(&self.observed.replicas).enumerate() {
                if r != seen {
                    writeln!(f, "  candidate {k} broker {}: {}", n + 1, r)?;
                }
            }
            let missing: Vec<_> = self.observed.acked.difference(&o.acked).collect();
            if !missing.is_empty() {
                writeln!(f, "  candidate {k} has not acknowledged {missing:?}")?;
            }
            if self.observed.deleted > o.deleted {
                writeln!(
                    f,
                    "  candidate {k} has acknowledged deletions only below {}",
                    o.deleted
                )?;
            }
            if let Some(flight) = self.in_flight.get(k) {
                writeln!(f, "  candidate {k} in flight: {flight}")?;
            }
        }
        if self.before.is_empty() {
            for (k, flight) in self.in_flight.iter().enumerate() {
                writeln!(f, "  candidate {k} after the step, in flight: {flight}")?;
            }
        }
        Ok(())
    }
}

/// The committed metadata a candidate followed, oldest first, with the position
/// each broker has learnt: where a rejection turns on the order of two commits.
fn history_line(s: &RState) -> String {
    let learned: Vec<u8> = s.replicas.iter().map(|r| r.learned).collect();
    let metas: Vec<String> = s
        .history
        .iter()
        .map(|m| {
            format!(
                "v{} isr {:03b} fenced {:03b} inc {:?}",
                m.version, m.isr, m.fenced, m.incarnation
            )
        })
        .collect();
    format!(
        "[{}], learnt {learned:?}, queued {:?}, in flight {:?}",
        metas.join("; "),
        s.inbox,
        s.in_flight
    )
}

/// Each copy's damage or marked tail and how far its repair is: what decides
/// whether a short copy may cut, fetch or lead.
fn short_copies_line(s: &RState) -> String {
    let copies: Vec<String> = s
        .replicas
        .iter()
        .map(|r| format!("damaged {:?} repair {:?}", r.damaged, r.repair))
        .collect();
    format!("copies [{}]", copies.join(", "))
}

/// A copy in one line: the log as epoch/value pairs.
impl fmt::Display for ReplicaObs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        let log: Vec<String> = r
            .log
            .iter()
            .map(|x| format!("{}/{}", x.epoch, x.value))
            .collect();
        let m = &r.view;
        write!(
            f,
            "up {} inc {} view[leader {:?} epoch {} version {} isr {:03b} fenced {:03b} inc {:?}] \
             start {} log [{}] durable {} hw {} gate {:?} leader {:?}",
            r.up,
            r.incarnation,
            m.leader,
            m.epoch,
            m.version,
            m.isr,
            m.fenced,
            m.incarnation,
            r.log_start,
            log.join(" "),
            r.durable,
            r.hw,
            r.gate,
            r.leader
        )
    }
}

/// A fetch step the run reports, since a fetch the leader serves may change nothing
/// it shows (the follower's end and the high watermark stay) and still bring the
/// follower news later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchHint {
    /// `follower` sent a Fetch from `offset` to the leader it knows.
    Asked { follower: NodeId, offset: u8 },
    /// The leader served (or refused) a Fetch of `follower` from `offset`.
    Served { follower: NodeId, offset: u8 },
    /// A Fetch of `follower` from `offset` was lost.
    Lost { follower: NodeId, offset: u8 },
    /// `leader` appended one produced record (a batch of several is one hint per
    /// record, in order): the model's `Produce`, or a `Retry` that appends again.
    /// Reported where the append happens, since a batch's records all appear in one
    /// observation, and a search among every order of their produces and the
    /// copies' other steps runs out of states at a few dozen records.
    Produced { leader: NodeId },
    /// A Fetch of `follower` from `offset` got no answer: the Fetch was lost, or an
    /// answer to it (a real fetcher whose call failed cannot tell which).
    Unanswered { follower: NodeId, offset: u8 },
    /// The network dropped an answer (with records, not a refusal) to `follower`.
    AnswerLost {
        follower: NodeId,
        answer: AnswerShape,
    },
    /// `follower` handled a Fetch answer.
    Answered {
        follower: NodeId,
        answer: AnswerShape,
    },
    /// The leader answered an OffsetForLeaderEpoch of `follower`.
    EpochServed { follower: NodeId },
    /// `follower` handled an OffsetForLeaderEpoch answer it asked under `epoch`.
    EpochAnswered { follower: NodeId, epoch: u8 },
    /// The network dropped an OffsetForLeaderEpoch answer to `follower`.
    EpochAnswerLost { follower: NodeId, epoch: u8 },
    /// `leader` proposed this ISR. Reported where it happens, since nothing shows a
    /// proposal until it is committed, and by then its order against the others
    /// is decided; the proposal is then in flight to the controller.
    IsrProposed { leader: NodeId, isr: Set },
    /// The first broker to apply a command shows this committed metadata, changed
    /// by it. Reported where it happens, since a broker that applies several
    /// commands at once shows only the last.
    Committed { meta: Meta },
    /// `leader` took a DeleteRecords below `offset` (R-WIRE-5): its log start moved
    /// there, unless it was already past it, and the answer waits.
    Deleted { leader: NodeId, offset: u8 },
    /// The run damaged `node`'s copy in the batch that begins at `offset`, among
    /// records that another durable record follows (R-LOG-13): the model's
    /// `Damage`, whose first damaged offset it is.
    Damaged { node: NodeId, offset: u8 },
    /// `node` proposed the repair of its damaged copy (`RepairReplica`) under this
    /// leader epoch and partition version. Reported where it happens, as an ISR
    /// proposal is: nothing shows it until it is committed.
    RepairProposed {
        node: NodeId,
        epoch: u8,
        version: u8,
    },
}

/// What the run shows of a Fetch answer, enough to tell which of the answers in
/// flight to a follower it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerShape {
    /// The leader epoch the follower fetched under.
    pub epoch: u8,
    /// The offset of its first record, if it has any.
    pub first: Option<u8>,
    pub count: u8,
    /// OFFSET_OUT_OF_RANGE from below the leader's log start, which it names.
    pub refused_at: Option<u8>,
}

impl AnswerShape {
    fn is(&self, resp: &FetchResp) -> bool {
        if let Some(start) = self.refused_at {
            return resp.refused() && resp.epoch == self.epoch && resp.log_start == start;
        }
        !resp.refused()
            && resp.epoch == self.epoch
            && resp.records.len() == usize::from(self.count)
            && self.first.is_none_or(|first| first == resp.base)
    }
}

/// Candidate states beyond this mean the trace is too ambiguous to follow.
const MAX_CANDIDATES: usize = 1_024;
/// Actions one observed change may take, besides one per record appended.
const MAX_STEPS: usize = 9;
/// Actions beyond the shortest explanation whose states are kept too.
const SLACK: usize = 3;
/// States the search past the nearest explanation may visit (drift seed 14, run as
/// found, needs more than 5,000 since registrations are in flight).
const SLACK_VISITS: usize = 15_000;
/// States each candidate's first search may visit.
const FIRST_VISITS: usize = 20_000;
/// States one observed change may visit in its search.
const MAX_VISITED: usize = 200_000;

/// How one observed change is searched for.
#[derive(Clone, Copy)]
struct Search {
    visits: usize,
    /// No log step of a broker (`is_log_step`) while the step the run reports next
    /// is a commit. A commit changes the controller's metadata and a log step one
    /// copy's log under the view it already holds, so either order reaches the
    /// same state, and the search need not try them all: with nine proposals in
    /// flight and a leader about to crash it runs out of states (swarm 1286). It
    /// misses a path where a log step must come before a crash that a reported
    /// commit needs; so it is tried last, and what it misses can only reject a
    /// trace, never let one through.
    commits_first: bool,
}

impl Search {
    fn every_order(visits: usize) -> Self {
        Search {
            visits,
            commits_first: false,
        }
    }

    fn commits_first() -> Self {
        Search {
            visits: MAX_VISITED,
            commits_first: true,
        }
    }
}

pub struct ReplTrace {
    model: ReplicationModel,
    candidates: Vec<RState>,
    steps: usize,
    /// The run reports every commit (`FetchHint::Committed`): the metadata is
    /// committed only there, never lazily.
    commits_hinted: bool,
    /// The run reports every record appended by a produce (`FetchHint::Produced`).
    produces_hinted: bool,
    /// Every metadata the trace started from or the run reported committed.
    committed: HashSet<Meta>,
}

impl ReplTrace {
    /// A partition's trace from its creation: replicas [0, 1, 2], every broker in
    /// its first registered start, `min_isr` its `min.insync.replicas`.
    pub fn new(min_isr: u8) -> Self {
        Self::starting(min_isr, 0, 0)
    }

    /// A trace from a creation applied before the brokers in `unregistered` had
    /// registered: their registration (of the start the run shows first) is proposed.
    /// The brokers in `maybe` registered before the creation or after it (no
    /// broker has shown which yet): a start for each.
    pub fn starting(min_isr: u8, unregistered: Set, maybe: Set) -> Self {
        let model = ReplicationModel::for_traces(min_isr);
        let candidates: Vec<RState> = (0..=maybe)
            .filter(|later| later & !maybe == 0)
            .map(|later| {
                let unregistered = unregistered | later;
                let mut start = model.init_state();
                start.meta = created_before(unregistered);
                for r in &mut start.replicas {
                    r.view = start.meta;
                }
                start.history = vec![start.meta];
                start.inbox = members(unregistered)
                    .map(|n| MetaCmd::Register(n, 1, false))
                    .collect();
                start
            })
            .collect();
        let committed = candidates.iter().map(|s| s.meta).collect();
        ReplTrace {
            model,
            candidates,
            steps: 0,
            commits_hinted: false,
            produces_hinted: false,
            committed,
        }
    }

    /// The run reports each produced record where its leader appends it
    /// (`FetchHint::Produced`): a `Produce` is taken only there.
    pub fn with_produce_hints(mut self) -> Self {
        self.produces_hinted = true;
        self
    }

    /// The run reports each commit that changes the partition's metadata, in order
    /// (`FetchHint::Committed`).
    pub fn with_commit_hints(mut self) -> Self {
        self.commits_hinted = true;
        self
    }

    /// Brokers that started again (`restarts[n]` times) after the start the
    /// creation's metadata registers, while their copies were still empty: the model
    /// crashes and restarts each that often before the trace's first step, so each
    /// runs a later start whose registration is on its way. The trace starts in a
    /// state the model reaches, never in one made up for it.
    pub fn with_restarts(mut self, restarts: [u8; REPLICAS]) -> Self {
        let model = &self.model;
        self.candidates = std::mem::take(&mut self.candidates)
            .into_iter()
            .filter_map(|mut start| {
                for (n, times) in restarts.iter().enumerate() {
                    for _ in 0..*times {
                        start = model.step(&start, RAction::Crash(n as NodeId))?;
                        start = model.step(&start, RAction::Restart(n as NodeId))?;
                    }
                }
                Some(start)
            })
            .collect();
        self
    }

    /// Brokers in `fenced` were fenced before the partition was created, so the
    /// controller created it without them (R-REPL-2: an ISR of the replicas not
    /// fenced, led by the first). The model fences each right after the creation,
    /// before any record, which leaves the same partition up to the numbering of
    /// epochs: its epochs only ever compare with one another, so the run's are
    /// shifted onto the model's (`start_meta`). The trace starts in a state the
    /// model reaches.
    pub fn with_fenced_at_creation(mut self, fenced: Set) -> Self {
        let model = &self.model;
        self.candidates = std::mem::take(&mut self.candidates)
            .into_iter()
            .filter_map(|mut start| {
                for n in members(fenced) {
                    start = model.step(&start, RAction::Fence(n))?;
                }
                Some(start)
            })
            .collect();
        self.committed
            .extend(self.candidates.iter().map(|s| s.meta));
        self
    }

    /// The committed metadata the trace starts from (the same partition in every
    /// candidate; they differ only in which brokers registered), `None` if no
    /// candidate is left.
    pub fn start_meta(&self) -> Option<Meta> {
        self.candidates.first().map(|s| s.meta)
    }

    /// The run's brokers acknowledge before they sync (`--fsync-interval-ms`,
    /// R-REPL-5): so does the model it is validated against.
    pub fn acking_before_fsync(mut self) -> Self {
        self.model.acks_before_fsync = true;
        self
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    /// Follows one observed change; `fetches` are the follower fetches served and
    /// answers handled in the event that made it, in order.
    pub fn observe(
        &mut self,
        observed: &ReplObservation,
        fetches: &[FetchHint],
    ) -> Result<(), Box<ReplTraceRejection>> {
        self.steps += 1;
        for hint in fetches {
            if let FetchHint::Committed { meta } = hint {
                self.committed.insert(*meta);
            }
        }
        let mut next: HashSet<RState> = HashSet::new();
        let mut why = String::new();
        // A candidate with no explanation costs its whole search: first every
        // candidate gets a short one, the full one only if none is explained, and
        // only then one that takes the reported commits first.
        let searches = [
            Search::every_order(FIRST_VISITS),
            Search::every_order(MAX_VISITED),
            Search::commits_first(),
        ];
        for search in searches {
            for s in &self.candidates {
                match self.explain(s, observed, fetches, search) {
                    Ok(found) => next.extend(found),
                    Err(e) => why = e,
                }
            }
            if !next.is_empty() {
                break;
            }
        }
        if next.is_empty() {
            return Err(Box::new(ReplTraceRejection {
                step: self.steps,
                observed: observed.clone(),
                before: self
                    .candidates
                    .iter()
                    .map(|s| self.shown(s))
                    .collect::<Vec<_>>(),
                in_flight: self
                    .candidates
                    .iter()
                    .take(4)
                    .map(|s| {
                        format!(
                            "requests {:?} answers {:?}; committed metadata {}; {}",
                            s.requests,
                            s.net,
                            history_line(s),
                            short_copies_line(s)
                        )
                    })
                    .collect(),
                why,
            }));
        }
        let next = self.with_unseen_cuts(next, observed);
        let next: HashSet<RState> = next.into_iter().map(forget_counts).collect();
        if next.len() > MAX_CANDIDATES {
            return Err(Box::new(ReplTraceRejection {
                step: self.steps,
                observed: observed.clone(),
                before: Vec::new(),
                in_flight: next
                    .iter()
                    .take(4)
                    .map(|s| format!("requests {:?} answers {:?}", s.requests, s.net))
                    .collect(),
                why: format!(
                    "{} candidate states: too ambiguous to follow; they differ in {}",
                    next.len(),
                    ambiguity(&next)
                ),
            }));
        }
        self.candidates = next.into_iter().collect();
        Ok(())
    }

    /// `states`, and each with a repair's cut at a marked tail's log end taken: the
    /// cut changes nothing a trace shows, and the run may take it at any moment
    /// before the broker's next fetch or crash (a start that registers its copy
    /// whole shows it was taken; interval seed 15).
    fn with_unseen_cuts(
        &self,
        states: HashSet<RState>,
        observed: &ReplObservation,
    ) -> HashSet<RState> {
        let mut cut = Vec::new();
        for s in &states {
            let mut enabled = Vec::new();
            self.model.enabled(s, &mut enabled);
            for a in enabled {
                let RAction::CutDamage(n) = a else { continue };
                if !s.replicas[usize::from(n)].lost_tail() {
                    continue;
                }
                cut.extend(self.model.step(s, a).filter(|t| self.agrees(t, observed)));
            }
        }
        let mut states = states;
        states.extend(cut);
        states
    }

    /// The states nearest to `from` that show `observed`, having taken the fetch
    /// steps `fetches` names, in order, and, where a broker shows metadata not yet
    /// committed, those up to `SLACK` actions farther: a
    /// broker that applied several commands at once shows only the last, and the
    /// shortest way there may skip a command (a shrink before a fence that also takes
    /// the broker out of the ISR) that a broker learning stepwise later shows.
    fn explain(
        &self,
        from: &RState,
        observed: &ReplObservation,
        fetches: &[FetchHint],
        search: Search,
    ) -> Result<Vec<RState>, String> {
        let max_visited = search.visits;
        let max_steps = action_bound(from, observed, fetches);
        let mut frontier = vec![(from.clone(), 0usize)];
        let mut seen: HashSet<(RState, usize)> = HashSet::new();
        let mut found: Vec<RState> = Vec::new();
        let mut last_depth = max_steps;
        let mut nearest_count = 0;
        let mut slack_budget = max_visited;
        for depth in 0..=max_steps {
            let found_before = found.len();
            found.extend(
                frontier
                    .iter()
                    .filter(|(s, used)| *used == fetches.len() && self.agrees(s, observed))
                    .map(|(s, _)| s.clone()),
            );
            if found_before == 0 && !found.is_empty() {
                let slack = if !self.commits_hinted && self.uncommitted(from, observed) {
                    SLACK
                } else {
                    0
                };
                last_depth = (depth + slack).min(max_steps);
                slack_budget = seen.len() + SLACK_VISITS;
            } else if found_before > 0 {
                // Only another past of a nearest state: what it shows and has in
                // flight now is the same, only its committed history differs.
                let farther = found.split_off(found_before);
                let nearest = &found[..nearest_count];
                let kept: Vec<RState> = farther
                    .into_iter()
                    .filter(|f| nearest.iter().any(|n| same_but_history(n, f)))
                    .collect();
                found.extend(kept);
            }
            if nearest_count == 0 {
                nearest_count = found.len();
            }
            if depth == last_depth {
                break;
            }
            let mut next = Vec::new();
            for (s, used) in &frontier {
                let next_hint = fetches.get(*used).copied();
                let hinted = next_hint.map(|h| self.hinted(s, h));
                // Past the nearest explanation only other pasts of the metadata are
                // looked for.
                let slack = !found.is_empty();
                let defer_log_steps =
                    search.commits_first && matches!(next_hint, Some(FetchHint::Committed { .. }));
                let actions = hinted
                    .into_iter()
                    .flatten()
                    .map(|a| (a, used + 1, true))
                    .chain(
                        self.relevant(s, observed, next_hint)
                            .into_iter()
                            .filter(|a| !slack || is_metadata_step(a))
                            .filter(|a| !defer_log_steps || !is_log_step(a))
                            .map(|a| (Some(a), *used, false)),
                    );
                for (a, used, is_hinted) in actions {
                    for t in self.successors(s, a, observed) {
                        // Where the run reports commits, one it did not report is
                        // no step of this trace.
                        if self.commits_hinted && !is_hinted && t.meta != s.meta {
                            continue;
                        }
                        if slack && seen.len() >= slack_budget.min(max_visited) {
                            return Ok(found);
                        }
                        if seen.len() >= max_visited {
                            return Err(format!(
                                "no explanation within {max_visited} states (fetch steps \
                                 {fetches:?})"
                            ));
                        }
                        if seen.insert((t.clone(), used)) {
                            next.push((t, used));
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        if !found.is_empty() {
            return Ok(found);
        }
        Err(format!(
            "no sequence of at most {max_steps} model actions leads to what was observed \
             (fetch steps {fetches:?})"
        ))
    }

    /// The states `a` leads to from `s` (`None`: a step that changes nothing). What a
    /// broker did just before a crash may show only after it, so a crash is also
    /// taken right after each of these (`before_crash`).
    fn successors(
        &self,
        s: &RState,
        a: Option<RAction>,
        observed: &ReplObservation,
    ) -> Vec<RState> {
        let Some(a) = a else {
            return vec![s.clone()];
        };
        if let (true, RAction::Fsync(n)) = (self.produces_hinted, &a) {
            return self.syncs(s, *n, observed);
        }
        let (RAction::Crash(n) | RAction::CrashTorn(n, _) | RAction::CrashKeeping(n, _)) = a else {
            return self.model.step(s, a).into_iter().collect();
        };
        self.before_crash(s, n)
            .iter()
            .filter_map(|b| self.model.step(b, a.clone()))
            .collect()
    }

    /// A real broker's sync: of everything written, or (its group commit round having
    /// begun before the last appends) of what the broker shows durable now.
    fn syncs(&self, s: &RState, n: NodeId, observed: &ReplObservation) -> Vec<RState> {
        let r = &s.replicas[usize::from(n)];
        let shown = observed.replicas[usize::from(n)].durable;
        let mut out: Vec<RState> = self.model.step(s, RAction::Fsync(n)).into_iter().collect();
        if r.durable < shown && shown < r.len() {
            out.push(self.model.sync_prefix(s, n, shown));
        }
        out
    }

    /// `s`, and the state a broker about to crash may have left behind unseen: the
    /// run does not show when it writes its high-watermark checkpoint, only a
    /// restart reads it, so also the newest one it may have written (a restart from
    /// an older one shows a lower high watermark, which `agrees` allows). A copy the
    /// model holds full may have written it too: a limited disk is full only for
    /// writes that do not fit, and the model takes it full only where a fetch answer
    /// shows it cut short.
    fn before_crash(&self, s: &RState, n: NodeId) -> Vec<RState> {
        let mut out = vec![s.clone()];
        out.extend(self.answered_unseen(s, n));
        let mut checkpointed = Vec::new();
        for b in &out {
            let r = &b.replicas[usize::from(n)];
            if r.hw_checkpoint != r.hw {
                let mut room = b.clone();
                room.replicas[usize::from(n)].full = false;
                checkpointed.extend(self.model.step(&room, RAction::Checkpoint(n)).map(|mut t| {
                    t.replicas[usize::from(n)].full = r.full;
                    t
                }));
            }
        }
        out.extend(checkpointed);
        // Nor when it asks to be let back in: its `UnfenceBroker` (or registration
        // retried) shows only once committed, perhaps after the crash (swarm 1267).
        let mut rejoined = Vec::new();
        for b in &out {
            let mut enabled = Vec::new();
            self.model.enabled(b, &mut enabled);
            if enabled.contains(&RAction::Rejoin(n)) {
                rejoined.extend(self.model.step(b, RAction::Rejoin(n)));
            }
        }
        out.extend(rejoined);
        out
    }

    /// Each answer in flight to `n` applied: a Fetch answer's records appended and
    /// synced, or an OffsetForLeaderEpoch answer's cut. A broker killed between
    /// that and its trace line shows the change only when it starts again (the e2e
    /// nemesis run's seed 11 in CI; the simulator's `unreported-crashes`).
    fn answered_unseen(&self, s: &RState, n: NodeId) -> Vec<RState> {
        let mut enabled = Vec::new();
        self.model.enabled(s, &mut enabled);
        enabled
            .into_iter()
            .filter(|a| {
                matches!(a,
                    RAction::FetchResponse(f)
                    | RAction::FetchResponseNth(f, _)
                    | RAction::EpochAnswered(f, _) if *f == n)
            })
            .filter_map(|a| self.model.step(s, a))
            .filter(|t| t.replicas[usize::from(n)].log != s.replicas[usize::from(n)].log)
            .collect()
    }

    /// The model actions a fetch step of the run may be; `None` for an answer that
    /// changes nothing (one to a refused or stale request is not in the model's
    /// flight: the real follower drops it as the model would).
    fn hinted(&self, s: &RState, hint: FetchHint) -> Vec<Option<RAction>> {
        let mut enabled = Vec::new();
        self.model.enabled(s, &mut enabled);
        let steps: Vec<Option<RAction>> = enabled
            .into_iter()
            .filter(|a| match (hint, a) {
                (FetchHint::Asked { follower, offset }, RAction::FetchSend(f)) => {
                    *f == follower && s.replicas[usize::from(follower)].len() == offset
                }
                (FetchHint::Served { follower, offset }, RAction::FetchServe(f, k))
                | (FetchHint::Lost { follower, offset }, RAction::FetchLost(f, k))
                | (FetchHint::Unanswered { follower, offset }, RAction::FetchLost(f, k)) => {
                    *f == follower
                        && s.requests
                            .iter()
                            .filter(|q| q.from == follower)
                            .nth(usize::from(*k))
                            .is_some_and(|q| q.offset == offset)
                }
                (FetchHint::AnswerLost { follower, answer }, RAction::FetchAnswerLost(f, k))
                | (FetchHint::Answered { follower, answer }, RAction::FetchResponseNth(f, k))
                | (
                    FetchHint::Answered { follower, answer },
                    RAction::FetchResponseSyncFails(f, k),
                ) => {
                    *f == follower
                        && answer_in_flight(s, follower, *k).is_some_and(|r| answer.is(r))
                }
                (FetchHint::Unanswered { follower, .. }, RAction::FetchAnswerLost(f, _)) => {
                    *f == follower
                }
                (FetchHint::Produced { leader }, RAction::Produce(n)) => *n == leader,
                // Only a retry whose original is gone appends again.
                (FetchHint::Produced { leader }, RAction::Retry(n, _)) => {
                    let len = |s: &RState| s.replicas[usize::from(leader)].len();
                    *n == leader
                        && self
                            .model
                            .step(s, a.clone())
                            .is_some_and(|t| len(&t) > len(s))
                }
                (FetchHint::EpochServed { follower }, RAction::EpochAsk(f)) => *f == follower,
                (FetchHint::Deleted { leader, offset }, RAction::DeleteRecords(l, o))
                | (
                    FetchHint::Damaged {
                        node: leader,
                        offset,
                    },
                    RAction::Damage(l, o),
                ) => *l == leader && *o == offset,
                (
                    FetchHint::RepairProposed {
                        node,
                        epoch,
                        version,
                    },
                    RAction::ProposeRepair(n),
                ) => {
                    let view = s.replicas[usize::from(node)].view;
                    *n == node && view.epoch == epoch && view.version == version
                }
                (FetchHint::IsrProposed { leader, isr }, RAction::ShrinkIsr(l, f)) => {
                    *l == leader && s.replicas[usize::from(leader)].view.isr & !bit(*f) == isr
                }
                (FetchHint::IsrProposed { leader, isr }, RAction::ExpandIsr(l, f)) => {
                    *l == leader && s.replicas[usize::from(leader)].view.isr | bit(*f) == isr
                }
                (FetchHint::IsrProposed { leader, isr }, RAction::ProposeIsr(l, proposed)) => {
                    *l == leader && *proposed == isr
                }
                (FetchHint::Committed { meta }, RAction::Commit | RAction::Fence(_)) => self
                    .model
                    .step(s, a.clone())
                    .is_some_and(|t| t.meta == meta && t.meta != s.meta),
                (FetchHint::EpochAnswered { follower, epoch }, RAction::EpochAnswered(f, k))
                | (
                    FetchHint::EpochAnswerLost { follower, epoch },
                    RAction::EpochAnswerLost(f, k),
                ) => {
                    *f == follower
                        && s.epoch_answers
                            .iter()
                            .filter(|a| a.to == follower)
                            .nth(usize::from(*k))
                            .is_some_and(|a| a.epoch == epoch)
                }
                (
                    FetchHint::Answered { follower, answer },
                    RAction::FetchResponse(f) | RAction::FetchResponseCut(f, _),
                ) => {
                    *f == follower && answer_in_flight(s, follower, 0).is_some_and(|r| answer.is(r))
                }
                _ => false,
            })
            .map(Some)
            .collect();
        // A call that failed with nothing of it in flight (its answer was one the
        // model makes none of, a refusal) loses nothing.
        let nothing_lost = matches!(hint, FetchHint::Unanswered { .. });
        if steps.is_empty()
            && (nothing_lost
                || self.epoch_step_changes_nothing(s, hint)
                || self.proposed_again(s, hint)
                || refusal_changes_nothing(s, hint)
                || stale_repair(s, hint))
        {
            return vec![None];
        }
        steps
    }

    /// An OffsetForLeaderEpoch step the model has no action for, because the real
    /// follower acts on it as on nothing: a question asked again before the follower
    /// cut for the first answer and served after (the model asks only a follower
    /// that has not cut), one served after its asker crashed or was elected, and its
    /// answer, stale on arrival.
    fn epoch_step_changes_nothing(&self, s: &RState, hint: FetchHint) -> bool {
        let stale = |f: NodeId, epoch: Option<u8>| {
            let r = &s.replicas[usize::from(f)];
            let epoch = epoch.unwrap_or(r.view.epoch);
            r.gate.is_some_and(|g| g >= epoch) || r.view.epoch != epoch
        };
        match hint {
            // Asked before its crash, the answer has no connection to go back on;
            // asked before it was elected, it is no follower's question any more.
            FetchHint::EpochServed { follower }
                if !s.replicas[usize::from(follower)].up || self.model.leading(s, follower) =>
            {
                true
            }
            FetchHint::EpochServed { follower } => stale(follower, None),
            FetchHint::EpochAnswered { follower, epoch }
            | FetchHint::EpochAnswerLost { follower, epoch } => stale(follower, Some(epoch)),
            _ => false,
        }
    }

    /// An ISR or repair proposal already on its way or waiting at the controller:
    /// the real broker sends it again once a second while it waits, the model keeps
    /// one.
    fn proposed_again(&self, s: &RState, hint: FetchHint) -> bool {
        let cmd = match hint {
            FetchHint::IsrProposed { leader, isr } => {
                let view = s.replicas[usize::from(leader)].view;
                MetaCmd::AlterIsr {
                    epoch: view.epoch,
                    version: view.version,
                    isr,
                }
            }
            // The real broker asks again after a second unanswered; the model's
            // proposal is still on its way.
            FetchHint::RepairProposed {
                node,
                epoch,
                version,
            } => MetaCmd::Repair {
                node,
                epoch,
                version,
                incarnation: s.replicas[usize::from(node)].incarnation,
            },
            _ => return false,
        };
        super::step::proposed(s, cmd)
    }

    /// The actions besides fetches that can bring `s` closer to `observed`: those
    /// of brokers whose copy differs, and the metadata steps on the way to the next
    /// reported commit (without commit hints: when a broker applied metadata the
    /// model has not committed).
    fn relevant(
        &self,
        s: &RState,
        observed: &ReplObservation,
        next_hint: Option<FetchHint>,
    ) -> Vec<RAction> {
        let differs: Vec<bool> = ReplicationModel::ids()
            .map(|n| {
                let o = &observed.replicas[usize::from(n)];
                !self.copy_agrees(s, n, o) || o.hw > self.shown_copy(s, n).hw
            })
            .collect();
        let differ = |n: NodeId| differs[usize::from(n)];
        // Appends, syncs and cuts change a copy's log, never its view: where only the
        // view differs, learning is all that is left (groups 143 and 234 ran out of
        // states interleaving produces and retries with a leader's three commits).
        let log_differs: Vec<bool> = ReplicationModel::ids()
            .map(|n| {
                let o = &observed.replicas[usize::from(n)];
                let shown = self.shown_copy(s, n);
                if !shown.up || !o.up {
                    return differ(n);
                }
                shown.log != o.log
                    || shown.log_start != o.log_start
                    || shown.durable != o.durable
                    || shown.gate != o.gate
                    || o.hw > shown.hw
            })
            .collect();
        let log_differs = |n: NodeId| log_differs[usize::from(n)];
        let answered_next = |n: NodeId| matches!(next_hint, Some(FetchHint::Answered { follower, .. }) if follower == n);
        // Where the run reports commits, what one needs (its proposal's arrival, the
        // commands rejected or lost before it) is taken on the way to it.
        // So is what a repair proposed again needs: the earlier one decided (refused
        // as stale, which commits no change) or lost.
        let metadata_moves = if self.commits_hinted {
            matches!(
                next_hint,
                Some(FetchHint::Committed { .. } | FetchHint::RepairProposed { .. })
            )
        } else {
            self.uncommitted(s, observed)
        };
        let unacknowledged = !observed.acked.is_subset(&s.ghost.acked);
        let mut enabled = Vec::new();
        self.model.enabled(s, &mut enabled);
        enabled
            .into_iter()
            .filter(|a| match *a {
                // A retry may show only as its acknowledgement (the leader held it);
                // where the run reports appends, one that appends is reported.
                RAction::Retry(_, _) if self.produces_hinted => unacknowledged,
                RAction::Retry(n, _) => log_differs(n) || unacknowledged,
                // A real run that reports its appends injects no failed fsync.
                RAction::Produce(_) | RAction::FsyncFail(_) if self.produces_hinted => false,
                RAction::Produce(n)
                | RAction::Fsync(n)
                | RAction::FsyncFail(n)
                | RAction::Resync(n)
                | RAction::Truncate(n) => log_differs(n),
                RAction::Learn(n) => differ(n),
                // A repair's cut at a marked tail's log end changes nothing a trace
                // shows, but only after it does the copy fetch again.
                RAction::CutDamage(_) => true,
                RAction::ProposalArrives(k) if self.commits_hinted => {
                    self.arrival_fits(s, k, next_hint)
                }
                RAction::Commit
                | RAction::Fence(_)
                | RAction::Rejoin(_)
                | RAction::ProposalArrives(_)
                | RAction::ControllerFailover(_)
                | RAction::ProposalLost(_)
                | RAction::RepairUnanswered(_) => metadata_moves,
                // The late answer to an applied repair shows only as the cut it
                // allows, which is taken where it shows.
                RAction::RepairAnswered(_) => true,
                // A start that fails before it shows anything (on a full disk) is a
                // restart and a crash in one step: only its count shows.
                RAction::Crash(n)
                | RAction::CrashTorn(n, _)
                | RAction::CrashKeeping(n, _)
                | RAction::Restart(n) => {
                    let (r, o) = (
                        &s.replicas[usize::from(n)],
                        &observed.replicas[usize::from(n)],
                    );
                    r.up != o.up || r.incarnation != o.incarnation
                }

                // Fetches, ISR and repair proposals are taken where the run says one happened
                // (`hinted`).
                RAction::ShrinkIsr(..)
                | RAction::ExpandIsr(..)
                | RAction::ProposeIsr(..)
                | RAction::ProposeRepair(_)
                | RAction::FetchRequest(_)
                | RAction::FetchSend(_)
                | RAction::FetchServe(..)
                | RAction::FetchLost(..)
                | RAction::FetchAnswerLost(..)
                | RAction::FetchResponse(_)
                | RAction::FetchResponseNth(..)
                | RAction::FetchResponseCut(..)
                | RAction::FetchResponseSyncFails(..)
                | RAction::EpochAsk(_)
                | RAction::EpochAnswered(..)
                | RAction::EpochAnswerLost(..)
                | RAction::Consume(_)
                | RAction::Checkpoint(_)
                | RAction::Damage(..)
                // A deletion is taken where the run reports it (`hinted`).
                | RAction::DeleteRecords(..) => false,
                // A limited disk is full where a follower's answer shows cut short;
                // it is freed where space returns, or where a write fits again.
                RAction::DiskFull(n) => observed.disks_limited[usize::from(n)] && answered_next(n),
                RAction::DiskFreed(n) => {
                    !observed.disks_limited[usize::from(n)] || log_differs(n) || answered_next(n)
                }
            })
            .collect()
    }

    /// Where the run reports commits, a proposal arrives at the controller only
    /// when nothing waits there before it, and only one whose commit is the one
    /// reported next or changes nothing: commits follow arrivals in order, so any
    /// other order of arrivals ends in a commit the run did not report (9 proposals
    /// in flight cost more than 200,000 states otherwise; swarm seed 1165).
    fn arrival_fits(&self, s: &RState, k: u8, next_hint: Option<FetchHint>) -> bool {
        if !s.inbox.is_empty() {
            return false;
        }
        let committed = self
            .model
            .step(s, RAction::ProposalArrives(k))
            .and_then(|t| self.model.step(&t, RAction::Commit));
        match next_hint {
            Some(FetchHint::Committed { meta }) => {
                committed.is_some_and(|u| u.meta == meta || u.meta == s.meta)
            }
            // A repair proposed again: the earlier one was decided first, refused
            // as stale, which changes nothing the run reports.
            Some(FetchHint::RepairProposed { .. }) => committed.is_some_and(|u| u.meta == s.meta),
            _ => false,
        }
    }

    /// A broker shows metadata it has not learnt and the model has not committed
    /// since (the same metadata may have been committed before: a fence lifted by a
    /// registration of the same start).
    fn uncommitted(&self, s: &RState, observed: &ReplObservation) -> bool {
        ReplicationModel::ids().any(|n| {
            let (r, o) = (
                &s.replicas[usize::from(n)],
                &observed.replicas[usize::from(n)],
            );
            let ahead = s.history.get(usize::from(r.learned) + 1..).unwrap_or(&[]);
            o.up && o.created && r.up && o.view != r.view && !ahead.contains(&o.view)
        })
    }

    fn agrees(&self, s: &RState, observed: &ReplObservation) -> bool {
        ReplicationModel::ids().all(|n| {
            let o = &observed.replicas[usize::from(n)];
            // A down broker's disk may be freed; the model frees it once it runs.
            let r = &s.replicas[usize::from(n)];
            let full = r.full && r.up;
            self.copy_agrees(s, n, o)
                && o.hw <= self.shown_copy(s, n).hw
                && (!full || observed.disks_limited[usize::from(n)])
        }) && observed.acked.is_subset(&s.ghost.acked)
            && observed.deleted <= s.ghost.deleted
    }

    /// Everything of the copy but the high watermark agrees.
    fn copy_agrees(&self, s: &RState, n: NodeId, o: &ReplicaObs) -> bool {
        let shown = self.shown_copy(s, n);
        if !shown.up || !o.up {
            return shown.up == o.up && shown.incarnation == o.incarnation;
        }
        // A view from before the creation matches the model's first one, but its
        // log is closed (swarm 1064).
        let behind = !o.created || self.replayed_older(s, n, o);
        if o.view.incarnation[usize::from(n)] != o.incarnation && behind {
            return self.behind_its_start_agrees(&shown, o);
        }
        // Before it applies the creation a broker leads nothing, while the model's
        // first leader leads from the creation on: the rest of its copy (empty, as
        // it never opened) must still agree.
        let (view, leader) = if o.created {
            (shown.view, shown.leader.clone())
        } else {
            (o.view, o.leader.clone())
        };
        ReplicaObs {
            hw: o.hw,
            created: o.created,
            view,
            leader,
            ..shown
        } == *o
    }

    /// The broker shows metadata older than the model's copy has learnt: neither
    /// that nor any it may learn next (which it must learn, since its proposals
    /// are made from what it holds).
    fn replayed_older(&self, s: &RState, n: NodeId, o: &ReplicaObs) -> bool {
        let r = &s.replicas[usize::from(n)];
        let learnable = s.history.get(usize::from(r.learned)..).unwrap_or(&[]);
        o.view != r.view && !learnable.contains(&o.view)
    }

    /// A broker whose metadata does not hold this start's registration leads and
    /// follows nothing (the real `followed_leader` and `leads`). Its view may be
    /// older than what it applied before its crash: a damaged Raft log is cut and
    /// replayed only to before the damage, the rest learnt again from its peers
    /// (R-RECOVER-9; swarm 1003, 1018, 1082, 1192). The model's restart comes back
    /// where it was, so the view is held only to be metadata the run committed; a
    /// view from before the partition's creation has its log closed, unseen.
    fn behind_its_start_agrees(&self, shown: &ReplicaObs, o: &ReplicaObs) -> bool {
        if !o.created {
            return shown.incarnation == o.incarnation;
        }
        let committed = !self.commits_hinted || self.committed.contains(&o.view);
        committed
            && ReplicaObs {
                hw: o.hw,
                view: o.view,
                ..shown.clone()
            } == *o
    }

    fn shown(&self, s: &RState) -> ReplObservation {
        ReplObservation {
            replicas: ReplicationModel::ids()
                .map(|n| self.shown_copy(s, n))
                .collect(),
            acked: s.ghost.acked.clone(),
            disks_limited: std::array::from_fn(|n| s.replicas[n].full),
            deleted: s.ghost.deleted,
        }
    }

    /// What the model's state shows of broker `n`'s copy.
    pub fn shown_copy(&self, s: &RState, n: NodeId) -> ReplicaObs {
        let r = &s.replicas[usize::from(n)];
        let leader = self.model.leading(s, n).then(|| {
            let current = r.tracker_epoch == r.view.epoch;
            let mut follower_end = [None; REPLICAS];
            for f in ReplicationModel::ids().filter(|f| *f != n) {
                follower_end[usize::from(f)] = r.follower_end[usize::from(f)].filter(|_| current);
            }
            LeaderObs {
                follower_end,
                maximal_isr: self.model.maximal_isr(r),
            }
        });
        ReplicaObs {
            up: r.up,
            incarnation: r.incarnation,
            created: true,
            view: r.view,
            log_start: r.log_start,
            log: r
                .log
                .get(usize::from(r.log_start)..)
                .unwrap_or_default()
                .to_vec(),
            durable: r.durable,
            hw: r.hw,
            gate: r.gate,
            leader,
        }
    }
}

/// Which parts of the candidate states differ, with how many distinct values each
/// takes: where a trace is too ambiguous, what the run would have to report.
fn ambiguity(candidates: &HashSet<RState>) -> String {
    let mut parts: Vec<(String, usize)> = Vec::new();
    let mut count = |name: String, values: Vec<String>| {
        let distinct: HashSet<String> = values.into_iter().collect();
        if distinct.len() > 1 {
            parts.push((name, distinct.len()));
        }
    };
    let all = || candidates.iter();
    count(
        "committed metadata".into(),
        all().map(|s| format!("{:?}", s.meta)).collect(),
    );
    count(
        "proposals".into(),
        all().map(|s| format!("{:?}", s.inbox)).collect(),
    );
    count(
        "answers in flight".into(),
        all().map(|s| format!("{:?}", s.net)).collect(),
    );
    count(
        "requests in flight".into(),
        all().map(|s| format!("{:?}", s.requests)).collect(),
    );
    count(
        "epoch answers in flight".into(),
        all().map(|s| format!("{:?}", s.epoch_answers)).collect(),
    );
    count(
        "acknowledged".into(),
        all().map(|s| format!("{:?}", s.ghost.acked)).collect(),
    );
    count(
        "ghost".into(),
        all().map(|s| format!("{:?}", s.ghost)).collect(),
    );
    count(
        "history".into(),
        all().map(|s| format!("{:?}", s.history)).collect(),
    );
    for n in 0..REPLICAS {
        let of = |f: &dyn Fn(&Replica) -> String| -> Vec<String> {
            all().map(|s| f(&s.replicas[n])).collect()
        };
        count(format!("node {n} hw"), of(&|r| r.hw.to_string()));
        count(format!("node {n} log"), of(&|r| format!("{:?}", r.log)));
        count(format!("node {n} durable"), of(&|r| r.durable.to_string()));
        count(format!("node {n} view"), of(&|r| format!("{:?}", r.view)));
        count(
            format!("node {n} follower ends"),
            of(&|r| format!("{:?}", r.follower_end)),
        );
        count(format!("node {n} fresh"), of(&|r| r.fresh.to_string()));
        count(
            format!("node {n} pending ISR"),
            of(&|r| format!("{:?}", r.pending_isr)),
        );
        count(
            format!("node {n} waiting"),
            of(&|r| format!("{:?}", r.waiting)),
        );
        count(
            format!("node {n} checkpoint"),
            of(&|r| r.hw_checkpoint.to_string()),
        );
        count(format!("node {n} learned"), of(&|r| r.learned.to_string()));
        count(format!("node {n} other"), of(&|r| format!("{:?}", r)));
    }
    parts
        .iter()
        .map(|(name, k)| format!("{name} ({k})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The partition as CreateTopics leaves it when the brokers in `unregistered` have
/// not registered yet.
pub fn created_before(unregistered: Set) -> Meta {
    let mut meta = CREATED;
    for n in members(unregistered) {
        meta.incarnation[usize::from(n)] = 0;
    }
    meta
}

/// A repair proposed from metadata older than the committed (a broker that
/// replayed its log only so far, swarm 1119): the controller refuses it as stale,
/// and the broker proposes again once it has learnt more. It changes nothing.
fn stale_repair(s: &RState, hint: FetchHint) -> bool {
    matches!(hint, FetchHint::RepairProposed { version, .. } if version < s.meta.version)
}

/// The most model actions one observed step may take: a few, and one for each
/// record appended, each fetch step the run reports, each command a broker learns on
/// the way to what it shows (it shows only the last of several applied at once),
/// and for each reported commit its proposal's arrival and a step of each broker.
fn action_bound(from: &RState, observed: &ReplObservation, fetches: &[FetchHint]) -> usize {
    let copies = || from.replicas.iter().zip(&observed.replicas);
    let appended: usize = copies()
        .map(|(r, o)| (usize::from(o.log_start) + o.log.len()).saturating_sub(r.log.len()))
        .sum();
    let learnt: usize = copies()
        .filter(|(r, o)| r.view != o.view)
        .map(|(r, _)| {
            from.history
                .len()
                .saturating_sub(usize::from(r.learned) + 1)
        })
        .sum();
    let commits = fetches
        .iter()
        .filter(|h| matches!(h, FetchHint::Committed { .. }))
        .count();
    MAX_STEPS + appended + learnt + fetches.len() + commits * (1 + REPLICAS)
}

/// A step that changes one copy's log and nothing of the metadata.
fn is_log_step(a: &RAction) -> bool {
    matches!(
        a,
        RAction::Produce(_)
            | RAction::Retry(..)
            | RAction::Fsync(_)
            | RAction::FsyncFail(_)
            | RAction::Resync(_)
            | RAction::Truncate(_)
    )
}

/// A step of the metadata: a proposal, its commit, or a broker learning it.
fn is_metadata_step(a: &RAction) -> bool {
    matches!(
        a,
        RAction::ShrinkIsr(..)
            | RAction::ExpandIsr(..)
            | RAction::ProposeIsr(..)
            | RAction::ProposeRepair(_)
            | RAction::RepairUnanswered(_)
            | RAction::RepairAnswered(_)
            | RAction::Rejoin(_)
            | RAction::ProposalArrives(_)
            | RAction::Fence(_)
            | RAction::Commit
            | RAction::ProposalLost(_)
            | RAction::ControllerFailover(_)
            | RAction::Learn(_)
    )
}

/// The ghost's counts and flags only bound a model check and feed its properties;
/// a trace's model is unbounded and checks no property, so states that differ only
/// in how many shrinks or crashes led there act alike.
fn forget_counts(mut s: RState) -> RState {
    let g = &mut s.ghost;
    (g.crashes, g.fences, g.shrinks, g.damages) = (0, 0, 0, 0);
    (g.retries, g.failovers, g.sync_failures, g.fulls) = (0, 0, 0, 0);
    (g.truncated, g.expanded, g.cut_short, g.repaired) = (false, false, false, false);
    g.leaders.clear();
    s
}

/// The two states differ only in the metadata committed before and in what the
/// brokers learned of it, not in anything in flight, proposed, shown or stored.
fn same_but_history(a: &RState, b: &RState) -> bool {
    a.meta == b.meta
        && a.inbox == b.inbox
        && a.net == b.net
        && a.requests == b.requests
        && a.epoch_answers == b.epoch_answers
        && a.replicas.len() == b.replicas.len()
        && a.replicas.iter().zip(&b.replicas).all(|(x, y)| {
            let mut y = y.clone();
            y.learned = x.learned;
            *x == y
        })
}

/// The `k`th (from 0) answer in flight to `follower`.
/// An OFFSET_OUT_OF_RANGE answer the model has none of (a fetch past the leader's
/// log end, which the model answers with nothing): a follower whose log reaches the
/// start it names does nothing on it (the real `fetch_refused`).
fn refusal_changes_nothing(s: &RState, hint: FetchHint) -> bool {
    match hint {
        FetchHint::Answered { follower, answer } | FetchHint::AnswerLost { follower, answer } => {
            answer
                .refused_at
                .is_some_and(|start| s.replicas[usize::from(follower)].len() >= start)
        }
        _ => false,
    }
}

fn answer_in_flight(s: &RState, follower: NodeId, k: u8) -> Option<&FetchResp> {
    s.net
        .iter()
        .filter(|m| m.to == follower)
        .nth(usize::from(k))
}
