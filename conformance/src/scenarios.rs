//! Process-level scenarios: the model picks where the crashes fall among produces,
//! fsyncs and reads; the e2e test replays the projection against the real binary,
//! where fsync timing is the broker's own, and checks what the model guarantees at
//! that level: every acknowledged record is read back at its offset after any number
//! of kill -9s, nothing is read that was not produced, nothing is read twice
//! (R-LOG-1, R-RECOVER-4, I-6).

use chronik_model::model::Action;
use chronik_model::ChronikModel;

use crate::replay::Rng;

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
        let mut s = m.init_state();
        let mut steps: Vec<Step> = Vec::new();
        for _ in 0..200 {
            let mut actions = Vec::new();
            m.enabled(&s, &mut actions);
            let succ: Vec<_> = actions
                .into_iter()
                .filter_map(|a| {
                    let next = m.step(&s, a.clone())?;
                    stateright::Model::within_boundary(&m, &next).then_some((a, next))
                })
                .collect();
            if succ.is_empty() {
                break;
            }
            let (a, next) = succ[rng.below(succ.len())].clone();
            if let Some(step) = project(&a) {
                // Consecutive syncs or fetches are one step at process level.
                let repeat =
                    matches!(step, Step::Sync | Step::Fetch) && steps.last() == Some(&step);
                if !repeat {
                    steps.push(step);
                }
            }
            s = next;
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
