//! Trace validation (issue 11): what a real run shows of one broker's partition
//! directory of one topic name, step by step, checked against the directories model
//! the way CCF and etcd's raft check their traces: every recorded step must be one the
//! model allows. The run reports three events (a start, a published metadata view, a
//! crash) with what it observes after each; the validator keeps every model state
//! consistent with the trace so far and, for each event, follows the model actions that
//! event stands for. A step no candidate state can take is rejected with what was
//! observed and what the model allowed.
//!
//! The model's hidden variables (the durable commit index, what the Raft log holds)
//! are why there is a set of candidates: a state is kept for each value they may have.
//! The cluster's commits are not guessed: the run passes the committed commands of this
//! name and this broker's registrations, and the validator appends them with the
//! model's own `CreateTopic`, `DeleteTopic` and `Register`. One environment step is not
//! a model action: a registration of an earlier start committed late (its forward was
//! in flight when the broker died); it cannot change what a later start decides.

use super::*;
use std::collections::HashSet;

/// What the run shows after an event, in the model's terms (topic ids numbered by
/// the order their creations were committed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirObservation {
    pub running: bool,
    /// Commands of `committed` (this name's and this broker's) the broker's applied
    /// metadata holds.
    pub applied: u8,
    /// The topic id the applied metadata names for the name.
    pub live: Option<TopicId>,
    /// The topic id whose partition log is open.
    pub open: Option<TopicId>,
    /// The topic id stamped in the partition directory on disk.
    pub dir: Option<TopicId>,
    /// At a start, the commands its durable commit index covers (what replay
    /// applies); not observed at other events.
    pub durable: Option<u8>,
}

impl DirObservation {
    pub fn of(s: &DState) -> Self {
        DirObservation {
            running: s.phase == DPhase::Running,
            applied: s.applied,
            live: s.image_topic(),
            open: s.open,
            dir: s.dir.as_ref().map(|d| d.stamp),
            durable: None,
        }
    }

    fn matches(&self, observed: &DirObservation) -> bool {
        DirObservation {
            durable: observed.durable,
            ..self.clone()
        } == *observed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirEvent {
    /// The broker started: recovery, replay, `reconcile_in_start`.
    Start,
    /// The broker applied committed metadata and reconciled its partitions.
    View,
    /// kill -9.
    Crash,
}

#[derive(Clone, Debug)]
pub struct DirTraceRejection {
    pub step: usize,
    pub event: DirEvent,
    pub observed: DirObservation,
    /// What the candidate states before the step could show after it.
    pub allowed: Vec<DirObservation>,
    pub why: String,
}

impl fmt::Display for DirTraceRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} ({:?}) is not a step the directories model allows: {}; observed {:?}; \
             the model allows {:?}",
            self.step, self.event, self.why, self.observed, self.allowed
        )
    }
}

/// Candidate states beyond this mean the trace is too ambiguous to follow.
const MAX_CANDIDATES: usize = 4_096;

pub struct DirTrace {
    model: DirModel,
    candidates: Vec<DState>,
    steps: usize,
}

impl DirTrace {
    /// A cluster member's trace, from before its first start.
    pub fn new() -> Self {
        DirTrace {
            model: DirModel::new(false),
            candidates: vec![DState::default()],
            steps: 0,
        }
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Follows one event: `committed` is every command of this name and this broker's
    /// registrations committed so far, in commit order.
    pub fn observe(
        &mut self,
        event: DirEvent,
        committed: &[DCmd],
        observed: &DirObservation,
    ) -> Result<(), DirTraceRejection> {
        self.steps += 1;
        let mut next = HashSet::new();
        let mut allowed = HashSet::new();
        let mut why = String::new();
        for s in &self.candidates {
            match self.follow(s, event, committed, observed.durable) {
                Ok(reached) => {
                    for t in reached {
                        let shown = DirObservation::of(&t);
                        if shown.matches(observed) {
                            next.insert(t);
                        } else {
                            allowed.insert(shown);
                        }
                    }
                }
                Err(e) => why = e,
            }
        }
        if next.is_empty() {
            if !allowed.is_empty() {
                why = format!(
                    "none of the {} states the trace may be in shows this after {event:?}",
                    self.candidates.len()
                );
            }
            let mut allowed: Vec<DirObservation> = allowed.into_iter().collect();
            allowed.sort_by_key(|o| (o.applied, o.live, o.open, o.dir));
            return Err(DirTraceRejection {
                step: self.steps,
                event,
                observed: observed.clone(),
                allowed,
                why,
            });
        }
        self.candidates = next.into_iter().take(MAX_CANDIDATES).collect();
        Ok(())
    }

    /// Every state `s` may reach by the model actions `event` stands for.
    fn follow(
        &self,
        s: &DState,
        event: DirEvent,
        committed: &[DCmd],
        durable: Option<u8>,
    ) -> Result<Vec<DState>, String> {
        match event {
            DirEvent::Crash => {
                // It may have applied (and synced the commit index of) entries whose
                // view it died before reconciling to (the broker reconciles after it
                // publishes a view), or reconciled to views the run did not follow.
                let caught_up = self.commit_cluster(s, committed)?;
                self.learned(caught_up)
                    .iter()
                    .map(|t| self.act(t, DirAction::Crash))
                    .collect()
            }
            DirEvent::Start => {
                // Restart reads only the durable commit and the applied prefix, so it
                // commutes with the commits of others; this start's registration
                // needs it first.
                let started = self.act(s, DirAction::Restart)?;
                if durable.is_some_and(|d| d != started.commit) {
                    return Err(format!(
                        "the model's durable commit covers {} commands, the run's {durable:?}",
                        started.commit
                    ));
                }
                let caught_up = self.commit_cluster(&started, committed)?;
                Ok(self.learn_and_reconcile(caught_up))
            }
            DirEvent::View => {
                let caught_up = self.commit_cluster(s, committed)?;
                Ok(self.learn_and_reconcile(caught_up))
            }
        }
    }

    /// An enabled model action's successor (or `s` itself where it changes nothing).
    fn act(&self, s: &DState, action: DirAction) -> Result<DState, String> {
        let mut enabled = Vec::new();
        self.model.enabled(s, &mut enabled);
        if !enabled.contains(&action) {
            return Err(format!("{action:?} is not enabled"));
        }
        Ok(self.model.step(s, action).unwrap_or_else(|| s.clone()))
    }

    /// Appends the commands committed since `s` with the model's own actions.
    fn commit_cluster(&self, s: &DState, committed: &[DCmd]) -> Result<DState, String> {
        if !committed.starts_with(&s.cluster) {
            return Err(format!(
                "the committed log {committed:?} does not extend the model's {:?}",
                s.cluster
            ));
        }
        let mut t = s.clone();
        for cmd in &committed[s.cluster.len()..] {
            t = match *cmd {
                DCmd::Create(_) => self.act(&t, DirAction::CreateTopic)?,
                DCmd::Delete(_) => self.act(&t, DirAction::DeleteTopic)?,
                DCmd::Register(start) if start == t.starts && t.phase == DPhase::Running => {
                    self.act(&t, DirAction::Register)?
                }
                DCmd::Register(start)
                    if start < t.starts || (start == t.starts && t.phase != DPhase::Running) =>
                {
                    // Environment: a registration committed after its start ended (its
                    // forward was in flight when the broker died).
                    let mut late = t.clone();
                    late.cluster.push(*cmd);
                    late.ghost.history.push(*cmd);
                    late
                }
                DCmd::Register(start) => {
                    return Err(format!("a registration of start {start}, not yet begun"))
                }
            };
            if t.cluster.last() != Some(cmd) {
                return Err(format!(
                    "the model committed {:?}, the run {cmd:?}",
                    t.cluster.last()
                ));
            }
        }
        Ok(t)
    }

    /// Every state reached by `learned`, then the view's `Reconcile`.
    fn learn_and_reconcile(&self, s: DState) -> Vec<DState> {
        self.learned(s).iter().map(|t| self.reconcile(t)).collect()
    }

    /// `Learn` as often as the cluster allows, with `PersistCommit` and `Reconcile`
    /// (the views the run did not follow) at any point between: every state reached
    /// (the observation picks).
    fn learned(&self, s: DState) -> Vec<DState> {
        let mut seen = HashSet::from([s.clone()]);
        let mut frontier = vec![s];
        while let Some(t) = frontier.pop() {
            if t.phase != DPhase::Running {
                continue;
            }
            for action in [
                DirAction::Learn,
                DirAction::PersistCommit,
                DirAction::Reconcile,
            ] {
                if let Ok(next) = self.act(&t, action) {
                    if seen.insert(next.clone()) {
                        frontier.push(next);
                    }
                }
            }
        }
        seen.into_iter().collect()
    }

    fn reconcile(&self, s: &DState) -> DState {
        self.act(s, DirAction::Reconcile)
            .unwrap_or_else(|_| s.clone())
    }
}

impl Default for DirTrace {
    fn default() -> Self {
        Self::new()
    }
}
