//! Process-level scenarios: the model picks where the crashes fall among produces,
//! fsyncs and reads; the e2e test replays the projection against the real binary,
//! where fsync timing is the broker's own, and checks what the model guarantees at
//! that level: every acknowledged record is read back at its offset after any number
//! of kill -9s, nothing is read that was not produced, nothing is read twice
//! (R-LOG-1, R-RECOVER-4, I-6). The cluster scenarios do the same with the
//! replication model's walks against three processes (R-REPL-1..3).

use chronik_model::model::Action;
use chronik_model::replication::{RAction, RState, ReplicationModel};
use chronik_model::state::NodeId;
use chronik_model::ChronikModel;

use crate::replay::{successors, Rng};

/// A seeded random walk of at most `max_steps` through a model within its bounds:
/// each action with the state it was taken in.
fn walk<M>(model: &M, init: M::State, max_steps: usize, rng: &mut Rng) -> Vec<(M::Action, M::State)>
where
    M: stateright::Model,
    M::Action: Clone,
{
    let mut state = init;
    let mut taken = Vec::new();
    for _ in 0..max_steps {
        let mut next = successors(model, &state);
        if next.is_empty() {
            break;
        }
        let (action, after) = next.swap_remove(rng.below(next.len()));
        taken.push((action, std::mem::replace(&mut state, after)));
    }
    taken
}

/// A step the e2e test can take against the `chronik` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Start,
    /// Send one record with acks=all, without waiting for its acknowledgement.
    Produce,
    /// Wait for the acknowledgements of what was sent (the model's fsync).
    Sync,
    Kill,
    Fetch,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Start => "start",
            Step::Produce => "produce",
            Step::Sync => "sync",
            Step::Kill => "kill",
            Step::Fetch => "fetch",
        })
    }
}

fn project(action: &Action) -> Option<Step> {
    match action {
        Action::Restart(_) => Some(Step::Start),
        Action::Produce => Some(Step::Produce),
        Action::Fsync(_) => Some(Step::Sync),
        Action::Crash(_) | Action::CrashTorn(_) => Some(Step::Kill),
        Action::Fetch => Some(Step::Fetch),
        _ => None,
    }
}

/// `count` scenarios from seeded model walks; each has a produce before a crash.
pub fn generate(count: usize, seed: u64) -> Vec<Vec<Step>> {
    let mut m = ChronikModel::new(1);
    m.max_term = 3;
    m.max_crashes = 2;
    m.max_proposals = 0;
    m.max_produce = 4;
    let mut out = Vec::new();
    let mut rng = Rng::new(seed);
    let mut attempts = 0;
    while out.len() < count && attempts < 10_000 {
        attempts += 1;
        let mut steps: Vec<Step> = Vec::new();
        for (a, _) in walk(&m, m.init_state(), 200, &mut rng) {
            if let Some(step) = project(&a) {
                // Consecutive syncs or fetches are one step at process level.
                let repeat =
                    matches!(step, Step::Sync | Step::Fetch) && steps.last() == Some(&step);
                if !repeat {
                    steps.push(step);
                }
            }
        }
        let produce_then_kill = steps
            .iter()
            .position(|x| *x == Step::Produce)
            .is_some_and(|p| steps[p..].contains(&Step::Kill));
        if produce_then_kill && !out.contains(&steps) {
            out.push(steps);
        }
    }
    out
}

/// A step the e2e test can take against three `chronik` processes (brokers 1..3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStep {
    /// Send one record with acks=all, without waiting for its acknowledgement.
    Produce,
    /// kill -9 of a broker.
    Kill(i32),
    Start(i32),
    /// SIGSTOP for longer than the session timeout, then SIGCONT: the controller fences
    /// a broker that is still alive (a deposed leader that does not know it yet).
    Pause(i32),
    /// Read everything below the high watermark.
    Read,
}

impl std::fmt::Display for ClusterStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterStep::Produce => f.write_str("produce"),
            ClusterStep::Kill(b) => write!(f, "kill:{b}"),
            ClusterStep::Start(b) => write!(f, "start:{b}"),
            ClusterStep::Pause(b) => write!(f, "pause:{b}"),
            ClusterStep::Read => f.write_str("read"),
        }
    }
}

/// What of a replication-model action a test can do to the processes; the rest
/// (fetches, fsyncs, metadata commits, ISR changes) the cluster does on its own.
fn project_cluster(action: &RAction, before: &RState) -> Option<ClusterStep> {
    let broker = |n: NodeId| i32::from(n) + 1;
    match *action {
        RAction::Produce(_) => Some(ClusterStep::Produce),
        RAction::Crash(n) | RAction::CrashTorn(n, _) | RAction::CrashKeeping(n, _) => {
            Some(ClusterStep::Kill(broker(n)))
        }
        RAction::Restart(n) => Some(ClusterStep::Start(broker(n))),
        // Fencing a crashed broker is the controller noticing the crash: the cluster
        // does that itself. Fencing a live one is a lapsed session.
        RAction::Fence(n) if before.replicas[usize::from(n)].up => {
            Some(ClusterStep::Pause(broker(n)))
        }
        RAction::Consume(_) => Some(ClusterStep::Read),
        _ => None,
    }
}

/// `count` scenarios for three processes from seeded walks of the replication model
/// (spec/conformance.md, C-4): each produces before a kill or a pause, so that an
/// acknowledged record has something to survive.
pub fn generate_cluster(count: usize, seed: u64) -> Vec<Vec<ClusterStep>> {
    let model = ReplicationModel::bounded(4, 2, 2, 0);
    let mut out = Vec::new();
    let mut rng = Rng::new(seed);
    let mut attempts = 0;
    while out.len() < count && attempts < 10_000 {
        attempts += 1;
        let mut steps: Vec<ClusterStep> = Vec::new();
        for (a, before) in walk(&model, model.init_state(), 150, &mut rng) {
            if let Some(step) = project_cluster(&a, &before) {
                if !(step == ClusterStep::Read && steps.last() == Some(&step)) {
                    steps.push(step);
                }
            }
        }
        let disruptive =
            |x: &ClusterStep| matches!(x, ClusterStep::Kill(_) | ClusterStep::Pause(_));
        let produce_then_fault = steps
            .iter()
            .position(|x| *x == ClusterStep::Produce)
            .is_some_and(|p| steps[p..].iter().any(disruptive));
        if produce_then_fault && !out.contains(&steps) {
            out.push(steps);
        }
    }
    out
}
