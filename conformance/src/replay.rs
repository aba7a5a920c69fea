//! The oracle: model paths replayed against the real code, comparing the two views
//! after every step (model → real), and random runs of the real code checked to be
//! behaviours of the model (real → model).

use std::fmt::Write as _;

use chronik_model::model::Action;
use chronik_model::state::{Phase, State};
use chronik_model::ChronikModel;
use stateright::Model;

use chronik::consensus::RaftWal;

use crate::harness::{metadata_dir, Harness, Injected, SimNode};
use crate::view::{describe_ids, of_model, of_real, SystemView};

/// The first step at which the real code and the model disagree.
#[derive(Debug)]
pub struct Divergence {
    pub path: Vec<Action>,
    /// Index in `path` of the step after which the views differ; `None`: the initial states.
    pub step: Option<usize>,
    pub model: SystemView,
    pub real: Option<SystemView>,
    pub why: Vec<String>,
    pub seed: Option<u64>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.step.map_or("the initial state".to_string(), |i| {
            format!("step {} ({})", i + 1, self.path[i])
        });
        writeln!(f, "DIVERGENCE after {at}")?;
        if let Some(seed) = self.seed {
            writeln!(f, "  seed: {seed}")?;
        }
        writeln!(f, "  ids: {}", describe_ids(self.model.nodes.len()))?;
        writeln!(f, "  path:")?;
        let shown = self.step.map_or(0, |i| i + 1);
        for (i, a) in self.path.iter().take(shown).enumerate() {
            writeln!(f, "    {:>3}. {a}", i + 1)?;
        }
        for why in &self.why {
            writeln!(f, "  {why}")?;
        }
        writeln!(f, "  model: {:?}", self.model)?;
        match &self.real {
            Some(real) => writeln!(f, "  real:  {real:?}"),
            None => writeln!(f, "  real:  (no view: the real code failed)"),
        }
    }
}

/// Splitmix64: a tiny PRNG whose sequence never changes between crate versions, so
/// a reported seed reproduces its run forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A model's successors of `state` within its bounds, in the model's action order.
pub fn successors<M>(model: &M, state: &M::State) -> Vec<(M::Action, M::State)>
where
    M: Model,
    M::Action: Clone,
{
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions
        .into_iter()
        .filter_map(|a| {
            let next = model.next_state(state, a.clone())?;
            model.within_boundary(&next).then_some((a, next))
        })
        .collect()
}

/// One model step and the same step on the real code, then the comparison.
struct Lockstep<'a> {
    model: &'a ChronikModel,
    state: State,
    real: Harness,
    path: Vec<Action>,
    seed: Option<u64>,
}

impl<'a> Lockstep<'a> {
    fn start(
        model: &'a ChronikModel,
        injected: Option<Injected>,
        seed: Option<u64>,
    ) -> Result<Self, Box<Divergence>> {
        if model.nodes > 1 && !model.raft_rs_flow_control {
            return Err(Box::new(Divergence {
                path: Vec::new(),
                step: None,
                model: of_model(&model.init_state()),
                real: None,
                why: vec![
                    "the real nodes run raft-rs's flow control: set the model's \
                     raft_rs_flow_control (C-11)"
                        .into(),
                ],
                seed,
            }));
        }
        let l = Lockstep {
            model,
            state: model.init_state(),
            real: Harness::new(model, injected),
            path: Vec::new(),
            seed,
        };
        l.compare(None)?;
        Ok(l)
    }

    /// The model's successors within its bounds. With more than one node the
    /// partition's replication is left to the replication oracle (C-5, C-6): its
    /// produce, fetch and replica fetch steps are not taken here.
    fn successors(&self) -> Vec<(Action, State)> {
        let mut succ = successors(self.model, &self.state);
        if self.model.nodes > 1 {
            succ.retain(|(a, _)| {
                !matches!(a, Action::Produce | Action::Fetch | Action::ReplicaFetch(_))
            });
        }
        succ
    }

    /// One step on both sides, then the comparison. `Ok(Some(kind))`: the model
    /// delivered a message raft-rs sent in no such form, so the step could not be
    /// replayed and nothing was compared.
    fn advance(&mut self, action: Action, next: State) -> Result<Option<String>, Box<Divergence>> {
        self.path.push(action.clone());
        let before = std::mem::replace(&mut self.state, next);
        let step = Some(self.path.len() - 1);
        let applied = match &action {
            Action::Heartbeat(l) => {
                let followers = self.model.heartbeat_targets(&before, *l);
                self.real.heartbeat(*l, &followers);
                Ok(())
            }
            _ => self.real.apply(&action),
        };
        if let Err(e) = applied {
            return Err(self.divergence(step, None, vec![format!("the real code failed: {e}")]));
        }
        if let Some(kind) = self.real.take_unmapped() {
            if std::env::var_os("CHRONIK_ORACLE_DEBUG").is_some() {
                for (i, a) in self.path.iter().enumerate() {
                    eprintln!("  {:>3}. {a}", i + 1);
                }
            }
            return Ok(Some(kind));
        }
        self.compare(step).map(|()| None)
    }

    fn compare(&self, step: Option<usize>) -> Result<(), Box<Divergence>> {
        let model = of_model(&self.state);
        match of_real(&self.real) {
            Ok(real) if real == model => {
                let why = self.real.unmatched_sends(&self.state.net);
                if why.is_empty() {
                    Ok(())
                } else {
                    Err(self.divergence(step, Some(real), why))
                }
            }
            Ok(real) => {
                let why = model.diff(&real);
                Err(self.divergence(step, Some(real), why))
            }
            Err(e) => Err(self.divergence(
                step,
                None,
                vec![format!("observing the real code failed: {e}")],
            )),
        }
    }

    fn divergence(
        &self,
        step: Option<usize>,
        real: Option<SystemView>,
        why: Vec<String>,
    ) -> Box<Divergence> {
        Box::new(Divergence {
            path: self.path.clone(),
            step,
            model: of_model(&self.state),
            real,
            why,
            seed: self.seed,
        })
    }
}

/// Replays one model path from the initial state.
pub fn replay_path(
    model: &ChronikModel,
    path: &[Action],
    injected: Option<Injected>,
) -> Result<(), Box<Divergence>> {
    let mut l = Lockstep::start(model, injected, None)?;
    for action in path {
        let next = model.step(&l.state, action.clone()).ok_or_else(|| {
            l.divergence(
                Some(l.path.len()),
                None,
                vec![format!("{action} is not a model step here")],
            )
        })?;
        if let Some(kind) = l.advance(action.clone(), next)? {
            return Err(l.divergence(
                Some(l.path.len() - 1),
                None,
                vec![format!(
                    "raft-rs sent no {kind} like the model's: not replayable"
                )],
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Complete paths replayed (each maximal: depth reached or nothing enabled).
    pub paths: u64,
    /// Steps executed on both sides and compared.
    pub steps: u64,
    pub max_depth: usize,
    /// Paths that ended with a start the real code refused (R-RECOVER-3, R-RECOVER-6),
    /// so that a test can tell the refusals were reached, not only allowed.
    pub refused_starts: u64,
    /// Paths that ended with a running node whose Raft log was compacted to a
    /// metadata snapshot.
    pub compacted: u64,
    /// Peer messages delivered on both sides and compared after.
    pub delivered: u64,
    /// Paths that ended early at a model message raft-rs sent in no such form, by
    /// the kind of message.
    pub unmapped: std::collections::BTreeMap<String, u64>,
    /// Paths in which some node applied another node's registration, or a write
    /// forwarded from a follower: the cluster behaviour, not one node's.
    pub cluster_paths: u64,
}

impl Stats {
    fn count_unmapped(&mut self, kind: String) {
        *self.unmapped.entry(kind).or_default() += 1;
    }

    fn count_path(&mut self, depth: usize, real: &Harness) {
        self.paths += 1;
        if real.nodes.len() > 1
            && crate::view::of_real(real).is_ok_and(|v| {
                v.nodes
                    .iter()
                    .any(|n| n.brokers.iter().filter(|b| **b != 0).count() > 1)
            })
        {
            self.cluster_paths += 1;
        }
        self.steps += depth as u64;
        self.max_depth = self.max_depth.max(depth);
        if real.nodes.iter().any(|n| n.phase == Phase::Failed) {
            self.refused_starts += 1;
        }
        let compacted = |n: &SimNode| {
            n.meta()
                .is_some_and(|meta| meta.observe().snapshot_index > 0)
        };
        if real.nodes.iter().any(compacted) {
            self.compacted += 1;
        }
    }
}

/// Every model path up to `depth` steps (within the model's bounds), each replayed
/// from the start on a fresh real system; stops at the first divergence or once
/// `max_paths` paths are done.
pub fn replay_all(
    model: &ChronikModel,
    depth: usize,
    max_paths: u64,
    injected: Option<Injected>,
) -> Result<Stats, Box<Divergence>> {
    let mut stats = Stats::default();
    // Depth-first over action indices; each leaf is one path.
    let mut choice: Vec<usize> = Vec::new();
    loop {
        // Build and check the path the choice vector names, extending it to a leaf.
        let mut l = Lockstep::start(model, injected, None)?;
        let mut widths = Vec::new();
        let mut d = 0;
        loop {
            let succ = l.successors();
            if d == depth || succ.is_empty() {
                break;
            }
            if d == choice.len() {
                choice.push(0);
            }
            widths.push(succ.len());
            let (a, next) = succ.into_iter().nth(choice[d]).ok_or_else(|| {
                l.divergence(None, None, vec!["the model is not deterministic".into()])
            })?;
            let delivery = matches!(a, Action::Deliver(_));
            d += 1;
            if let Some(kind) = l.advance(a, next)? {
                // That last step was not compared.
                d -= 1;
                stats.count_unmapped(kind);
                break;
            }
            stats.delivered += u64::from(delivery);
        }
        stats.count_path(d, &l.real);
        if stats.paths >= max_paths {
            return Ok(stats);
        }
        // Next leaf: bump the deepest choice that has a sibling left.
        choice.truncate(d);
        loop {
            let Some(last) = choice.last_mut() else {
                return Ok(stats);
            };
            *last += 1;
            if *last < widths[choice.len() - 1] {
                break;
            }
            choice.pop();
        }
    }
}

/// Random walks through the model (uniform over the enabled actions within the
/// bounds), each replayed in lockstep on the real code.
pub fn random_walks(
    model: &ChronikModel,
    walks: u64,
    max_steps: usize,
    seed: u64,
    injected: Option<Injected>,
) -> Result<Stats, Box<Divergence>> {
    let mut stats = Stats::default();
    for walk in 0..walks {
        let walk_seed = seed.wrapping_mul(1_000_003).wrapping_add(walk);
        let mut rng = Rng::new(walk_seed);
        let mut l = Lockstep::start(model, injected, Some(walk_seed))?;
        let mut d = 0;
        while d < max_steps {
            let mut succ = l.successors();
            if succ.is_empty() {
                break;
            }
            let (a, next) = succ.swap_remove(pick(&mut rng, &succ));
            let delivery = matches!(a, Action::Deliver(_));
            d += 1;
            if let Some(kind) = l.advance(a, next)? {
                // That last step was not compared.
                d -= 1;
                stats.count_unmapped(kind);
                break;
            }
            stats.delivered += u64::from(delivery);
        }
        stats.count_path(d, &l.real);
    }
    Ok(stats)
}

/// A walk's next step: uniform, except that a timer (an election timeout, a
/// check-quorum step-down) is drawn again, twice at most, as a real node's timers
/// fire far less often than its messages arrive. Drawn uniformly, a pre-candidate's
/// next timeout or a step-down would cut nearly every election short: with pre-vote
/// and check-quorum, 1 in 60 two-node walks of C-11's bounds then registered both
/// brokers, against 1 in 3 drawn this way.
fn pick(rng: &mut Rng, succ: &[(Action, State)]) -> usize {
    let mut at = rng.below(succ.len());
    for _ in 0..2 {
        if !matches!(succ[at].0, Action::Timeout(_) | Action::CheckQuorum(_)) {
            break;
        }
        at = rng.below(succ.len());
    }
    at
}

/// Real → model: random runs that pick among the commands the real shell could
/// issue (its own guards, not the model's), under crashes and torn writes. Each
/// step must be a model step leading to the same view, or change nothing on
/// either side.
pub fn real_runs(
    model: &ChronikModel,
    runs: u64,
    max_steps: usize,
    seed: u64,
    injected: Option<Injected>,
) -> Result<Stats, Box<Divergence>> {
    let mut stats = Stats::default();
    for run in 0..runs {
        let run_seed = seed.wrapping_mul(999_983).wrapping_add(run);
        let mut rng = Rng::new(run_seed);
        let mut l = Lockstep::start(model, injected, Some(run_seed))?;
        let mut d = 0;
        while d < max_steps {
            let commands = real_commands(&l.real);
            if commands.is_empty() {
                break;
            }
            let action = commands[rng.below(commands.len())].clone();
            match model.step(&l.state, action.clone()) {
                Some(next) if model.within_boundary(&next) => {
                    if let Some(kind) = l.advance(action, next)? {
                        stats.count_unmapped(kind);
                        break;
                    }
                }
                // Outside the model's bounds (too many crashes, terms or requests):
                // skipped, as the model checker does.
                Some(_) => {}
                None => {
                    // Not a model transition: the real code must not change either.
                    l.path.push(action.clone());
                    let step = Some(l.path.len() - 1);
                    if let Err(e) = l.real.apply(&action) {
                        return Err(l.divergence(
                            step,
                            None,
                            vec![format!("the real code failed: {e}")],
                        ));
                    }
                    l.compare(step)?;
                }
            }
            d += 1;
        }
        stats.count_path(d, &l.real);
    }
    Ok(stats)
}

/// What the real shell could do next, by its own state: the broker's start order,
/// its loop (tick → campaign, Ready, fsync, advance), clients, and kill -9.
fn real_commands(h: &Harness) -> Vec<Action> {
    let mut out = Vec::new();
    for node in &h.nodes {
        let n = node.id;
        match node.phase {
            Phase::Down => {
                out.push(Action::Restart(n));
                out.extend(damage_commands(node));
            }
            Phase::Recovered => out.push(Action::StartLoop(n)),
            Phase::LoopRunning => out.push(Action::ListenerUp(n)),
            Phase::Listening => out.push(Action::RegisterRetry(n)),
            Phase::Registered | Phase::Failed => {}
        }
        let Some(meta) = node.meta() else {
            continue;
        };
        let running = matches!(
            node.phase,
            Phase::LoopRunning | Phase::Listening | Phase::Registered
        );
        let listening = matches!(node.phase, Phase::Listening | Phase::Registered);
        if running && !meta.ready_pending() {
            if !meta.is_leader() {
                out.push(Action::Timeout(n));
            }
            if meta.has_ready() {
                out.push(Action::Ready(n));
            }
            if listening {
                out.push(Action::ClientCreateTopic(n));
            }
        }
        out.push(Action::Fsync(n));
        // The loop finishes a Ready only after its fsync (`process_ready`).
        if meta.ready_pending() && meta.ready_persisted() {
            out.push(Action::Advance(n));
        }
        out.push(Action::Crash(n));
        out.push(Action::CrashTorn(n));
        if n == chronik_model::PARTITION_LEADER && listening {
            out.push(Action::Produce);
            out.push(Action::Fetch);
        }
    }
    out
}

/// A bad sector in any entry record of a down node's Raft log that another record
/// follows, once per node (the model bounds how many).
fn damage_commands(node: &SimNode) -> Vec<Action> {
    if node.damaged {
        return Vec::new();
    }
    let Ok(records) = RaftWal::entry_records(&node.disk, &metadata_dir()) else {
        return Vec::new();
    };
    let last = records.positions.keys().next_back().copied().unwrap_or(0);
    records
        .positions
        .keys()
        .filter(|index| **index < last)
        .filter_map(|index| u8::try_from(index - 1).ok())
        .map(|at| Action::DamageRaftLog(node.id, at))
        .collect()
}

/// A one-line summary for the CLI and tests.
pub fn summary(what: &str, stats: &Stats, secs: f64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{what}: {} paths, {} steps compared, max depth {}, {:.1}s, 0 divergences",
        stats.paths, stats.steps, stats.max_depth, secs
    );
    if stats.delivered > 0 || !stats.unmapped.is_empty() {
        let cut: Vec<String> = stats
            .unmapped
            .iter()
            .map(|(kind, n)| format!("{n} at a {kind}"))
            .collect();
        let _ = write!(
            s,
            "; {} peer messages delivered, {} paths with another node's registration \
             applied; paths cut where raft-rs sent no such message: {}",
            stats.delivered,
            stats.cluster_paths,
            if cut.is_empty() {
                "none".into()
            } else {
                cut.join(", ")
            }
        );
    }
    s
}
