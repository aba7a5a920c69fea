//! Running the checker and printing what it found; shared by the CLI and the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use std::fmt::Debug;
use std::hash::Hash;

use stateright::{Checker, Expectation, HasDiscoveries, Model, Path, Property, UniformChooser};

use crate::model::ChronikModel;
use crate::replication::{members, RState, ReplBug, ReplicationModel};
use crate::state::{Phase, Role, State};

/// A model the runner can check and print: both the metadata model and the
/// replication model.
pub trait Checked:
    Model<State = Self::S, Action = Self::A> + Clone + Send + Sync + 'static
{
    type S: Clone + Debug + Hash + Eq + Send + Sync + 'static;
    type A: Clone + Debug + PartialEq + Send + Sync + 'static;
    /// One line per node of a state, for counterexamples.
    fn summary(&self, s: &Self::S) -> String;
    /// The representative of a state's symmetry class, where the model has one.
    fn representative(&self) -> Option<Representative<Self::S>> {
        None
    }
}

/// Maps a state to the one state of its symmetry class the checker visits.
pub type Representative<S> = fn(&S) -> S;

impl Checked for ChronikModel {
    type S = State;
    type A = crate::model::Action;
    fn summary(&self, s: &State) -> String {
        summary(s)
    }
    fn representative(&self) -> Option<Representative<State>> {
        Some(crate::symmetry::representative_for(self))
    }
}

impl Checked for crate::dirs::DirModel {
    type S = crate::dirs::DState;
    type A = crate::dirs::DirAction;
    fn summary(&self, s: &crate::dirs::DState) -> String {
        format!(
            "    {:?} start={} applied={} open={:?} dir={:?}; broker log={}/{} (commit {}), \
             committed={:?}\n",
            s.phase,
            s.starts,
            s.applied,
            s.open,
            s.dir,
            s.wal,
            s.cluster.len(),
            s.commit,
            s.cluster
        )
    }
}

impl Checked for crate::groups::GroupModel {
    type S = crate::groups::GState;
    type A = crate::groups::GroupAction;
    fn summary(&self, s: &crate::groups::GState) -> String {
        group_summary(s)
    }
}

/// One line per consumer, then the coordinator's view and the committed offsets.
pub fn group_summary(s: &crate::groups::GState) -> String {
    let mut out = String::new();
    for (i, c) in s.consumers.iter().enumerate() {
        let _ = writeln!(
            out,
            "    c{i}: {:?} member={} gen={} owns={:?}",
            c.phase,
            if c.member_id.is_empty() {
                "-"
            } else {
                c.member_id.as_str()
            },
            c.generation,
            c.owned
        );
    }
    let group = s.coordinator.describe(crate::groups::GROUP);
    let _ = writeln!(
        out,
        "    coordinator: {:?} gen={:?} members={:?}; committed={:?} delivered={:?} t={}",
        group.as_ref().map(|g| g.state),
        s.coordinator.generation(crate::groups::GROUP),
        group.map(|g| g
            .members
            .into_iter()
            .map(|m| m.member_id)
            .collect::<Vec<_>>()),
        s.committed,
        s.ghost.delivered,
        s.now
    );
    out
}

impl Checked for ReplicationModel {
    type S = RState;
    type A = crate::replication::RAction;
    fn summary(&self, s: &RState) -> String {
        replication_summary(s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Exhaustive, shortest counterexamples, memory-hungry.
    Bfs,
    /// Exhaustive, low memory.
    Dfs,
    /// stateright's simulation checker for this long, from this seed.
    Simulation { seconds: u64, seed: u64 },
    /// Our own random walks (see `walks`), from this seed.
    Walks { budget: WalkBudget, seed: u64 },
}

/// How many random walks to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkBudget {
    /// As many as fit in this many seconds (the CLI): a slower or busier machine
    /// explores less.
    Seconds(u64),
    /// This many walks, so a seed gives the same walks, the same states and the same
    /// findings on any machine under any load (the CI tests).
    Walks(usize),
}

pub struct Run {
    pub strategy: Strategy,
    pub threads: usize,
    pub max_depth: Option<usize>,
    /// Stop as soon as this property has a discovery.
    pub stop_on: Option<&'static str>,
    /// Stop after generating about this many states.
    pub max_states: Option<usize>,
    /// Print progress to stderr every few seconds.
    pub progress: bool,
    /// Visit one state per symmetry class (DFS and simulation only, in stateright).
    pub symmetry: bool,
}

impl Run {
    /// Exhaustive DFS on 2 threads, no bounds beyond the model's.
    pub fn dfs() -> Self {
        Run {
            strategy: Strategy::Dfs,
            threads: 2,
            max_depth: None,
            stop_on: None,
            max_states: None,
            progress: false,
            symmetry: false,
        }
    }

    /// Exhaustive DFS on 2 threads over one state per symmetry class.
    pub fn dfs_symmetric() -> Self {
        Run {
            symmetry: true,
            ..Run::dfs()
        }
    }

    /// Single-threaded BFS that stops once `property` has a discovery.
    pub fn bfs_until(property: &'static str) -> Self {
        Run {
            strategy: Strategy::Bfs,
            threads: 1,
            stop_on: Some(property),
            ..Run::dfs()
        }
    }

    /// Single-threaded DFS that stops once `property` has a discovery: one thread
    /// takes the actions in order, so a run finds the same path every time.
    pub fn dfs_until(property: &'static str) -> Self {
        Run {
            threads: 1,
            stop_on: Some(property),
            ..Run::dfs()
        }
    }

    /// Single-threaded BFS to `depth`: every state within `depth` steps of the start is
    /// checked. One thread takes states strictly in order of depth, so a state is first
    /// met at its least depth; with two, stateright's BFS may first meet it on a longer
    /// path, at the bound, and never expand it (the unique count then varied from run
    /// to run: 3,514,311 and 3,514,358 at 3 nodes, depth 22).
    pub fn bfs_to_depth(depth: usize) -> Self {
        Run {
            strategy: Strategy::Bfs,
            threads: 1,
            max_depth: Some(depth),
            ..Run::dfs()
        }
    }

    /// Random walks on 2 threads.
    pub fn simulation(seconds: u64, seed: u64) -> Self {
        Run {
            strategy: Strategy::Simulation { seconds, seed },
            ..Run::dfs()
        }
    }

    /// Our own random walks on one thread, for this many seconds.
    pub fn walks(seconds: u64, seed: u64) -> Self {
        Self::walks_within(WalkBudget::Seconds(seconds), seed)
    }

    /// Exactly this many random walks on one thread: the same outcome on every machine.
    pub fn walk_count(walks: usize, seed: u64) -> Self {
        Self::walks_within(WalkBudget::Walks(walks), seed)
    }

    fn walks_within(budget: WalkBudget, seed: u64) -> Self {
        Run {
            strategy: Strategy::Walks { budget, seed },
            threads: 1,
            ..Run::dfs()
        }
    }

    pub fn depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self
    }
}

/// The model and the search that find a replication bug switch's counterexample in
/// CI: BFS at the smallest bounds that show it, single-threaded DFS at those bounds
/// where that is much faster, or seeded random walks that stop at the first
/// counterexample (at most 200,000 walks: a count, not a time, so that a slower or
/// busier machine finds the same).
pub fn counterexample_search(bug: ReplBug) -> (ReplicationModel, Run) {
    let expected = bug.expected_property();
    if bug.found_by_walks() {
        let (model, seed, depth) = bug.walk_bounds();
        let walks = Run {
            stop_on: Some(expected),
            max_depth: Some(depth),
            ..Run::walk_count(200_000, seed)
        };
        (model, walks)
    } else if bug.found_by_dfs() {
        (bug.bounds(), Run::dfs_until(expected))
    } else {
        (bug.bounds(), Run::bfs_until(expected))
    }
}

pub struct Outcome<M: Checked> {
    /// The model checked (to print its paths).
    pub model: M,
    pub states: usize,
    pub unique: usize,
    pub depth: usize,
    pub elapsed: Duration,
    pub discoveries: BTreeMap<&'static str, Path<M::S, M::A>>,
    /// Always-properties with a counterexample.
    pub violated: Vec<&'static str>,
    /// Sometimes-properties without an example.
    pub missing_examples: Vec<&'static str>,
}

pub fn run<M: Checked>(model: M, run: &Run) -> Outcome<M> {
    if let Strategy::Walks { budget, seed } = run.strategy {
        let depth = run.max_depth.unwrap_or(400);
        return walks(&model, budget, seed, depth, run.stop_on);
    }
    let props = model.properties();
    let mut b = model.clone().checker().threads(run.threads.max(1));
    if let Some(d) = run.max_depth {
        b = b.target_max_depth(d);
    }
    if let Some(n) = run.max_states {
        b = b.target_state_count(n);
    }
    if let (true, Some(f)) = (run.symmetry, model.representative()) {
        b = b.symmetry_fn(f);
    }
    if let Some(p) = run.stop_on {
        b = b.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([p])));
    }
    let start = Instant::now();
    let (states, unique, depth, discoveries) = match run.strategy {
        Strategy::Bfs => collect(wait(b.spawn_bfs(), run.progress, start)),
        Strategy::Dfs => collect(wait(b.spawn_dfs(), run.progress, start)),
        Strategy::Simulation { seconds, seed } => collect(wait(
            b.timeout(Duration::from_secs(seconds))
                .spawn_simulation(seed, UniformChooser),
            run.progress,
            start,
        )),
        Strategy::Walks { .. } => unreachable!("handled above"),
    };
    outcome(
        &model,
        &props,
        states,
        unique,
        depth,
        start.elapsed(),
        discoveries,
    )
}

fn wait<M: Checked, C: Checker<M>>(c: C, progress: bool, start: Instant) -> C {
    if progress {
        let mut last = Instant::now();
        while !c.is_done() {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= Duration::from_secs(5) {
                last = Instant::now();
                eprintln!(
                    "  ... {:.0}s states={} unique={} depth={}",
                    start.elapsed().as_secs_f64(),
                    c.state_count(),
                    c.unique_state_count(),
                    c.max_depth()
                );
            }
        }
    }
    c.join()
}

/// Prints the path of every violated `always` property.
pub fn print_counterexamples<M: Checked>(o: &Outcome<M>) {
    for name in &o.violated {
        if let Some(path) = o.discoveries.get(name) {
            eprintln!(
                "counterexample for {name}:\n{}",
                format_path(&o.model, path)
            );
        }
    }
}

/// For the CI tests: prints the run's figures and every counterexample, then fails
/// unless every `always` property held, every `sometimes` one has an example, and the
/// run explored something.
pub fn assert_all_hold<M: Checked>(label: &str, o: &Outcome<M>) {
    eprintln!(
        "{label}: states={} unique={} depth={} time={:.1}s",
        o.states,
        o.unique,
        o.depth,
        o.elapsed.as_secs_f64()
    );
    print_counterexamples(o);
    assert!(o.violated.is_empty(), "{label}: violated {:?}", o.violated);
    assert!(
        o.missing_examples.is_empty(),
        "{label}: no example for {:?}",
        o.missing_examples
    );
    assert!(o.unique > 1, "{label}: nothing was explored");
}

/// The shortest counterexample (or example) for `property`, by iterative deepening: BFS
/// keeps the last discovery it meets, not the first, so one BFS run does not give the
/// shortest path. Each round is small for the bug configurations this is used on.
/// `max_depth` bounds the number of actions.
pub fn shortest<M: Checked>(
    model: &M,
    property: &'static str,
    max_depth: usize,
) -> Option<Path<M::S, M::A>> {
    // A state at checker depth d is reached by d - 1 actions, and states at the target
    // depth are neither checked nor expanded: paths of k actions need target k + 2.
    (1..=max_depth + 2).find_map(|d| {
        let (_, _, _, mut found) = collect(
            model
                .clone()
                .checker()
                .target_max_depth(d)
                .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])))
                .spawn_bfs()
                .join(),
        );
        found.remove(property)
    })
}

fn outcome<M: Checked>(
    model: &M,
    props: &[Property<M>],
    states: usize,
    unique: usize,
    depth: usize,
    elapsed: Duration,
    discoveries: BTreeMap<&'static str, Path<M::S, M::A>>,
) -> Outcome<M> {
    let discoveries: BTreeMap<&'static str, Path<M::S, M::A>> = discoveries
        .into_iter()
        .map(|(name, path)| match props.iter().find(|p| p.name == name) {
            Some(p) => (name, cut_at_first_hit(model, p, path)),
            None => (name, path),
        })
        .collect();
    let with = |e: Expectation, found: bool| -> Vec<&'static str> {
        props
            .iter()
            .filter(|p| p.expectation == e && discoveries.contains_key(p.name) == found)
            .map(|p| p.name)
            .collect()
    };
    Outcome {
        model: model.clone(),
        states,
        unique,
        depth,
        elapsed,
        violated: with(Expectation::Always, true),
        missing_examples: with(Expectation::Sometimes, false),
        discoveries,
    }
}

/// A discovery ends at the first state where it holds: stateright's DFS checks its
/// finish condition once per block of states and keeps the last discovery it met, so
/// its path may run on past the step that broke the rule.
fn cut_at_first_hit<M: Checked>(
    model: &M,
    p: &Property<M>,
    path: Path<M::S, M::A>,
) -> Path<M::S, M::A> {
    let steps = path.clone().into_vec();
    let holds = |s: &M::S| (p.condition)(model, s);
    let first = match p.expectation {
        Expectation::Always => steps.iter().position(|(s, _)| !holds(s)),
        Expectation::Sometimes => steps.iter().position(|(s, _)| holds(s)),
        // Its counterexample is a whole path on which the condition never held.
        Expectation::Eventually => None,
    };
    let Some(first) = first else {
        return path;
    };
    let actions: Vec<M::A> = steps[..first]
        .iter()
        .filter_map(|(_, a)| a.clone())
        .collect();
    Path::from_actions(model, steps[0].0.clone(), actions.iter()).unwrap_or(path)
}

/// xorshift64*: seeded walks are the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x % n.max(1) as u64) as usize
    }
}

/// Every action of `state` that changes it and stays within the bounds, with the state
/// it leads to: what a random walk picks from.
pub fn successors<M: Model>(model: &M, state: &M::State) -> Vec<(M::Action, M::State)>
where
    M::Action: Clone,
{
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions
        .into_iter()
        .filter_map(|a| model.next_state(state, a.clone()).map(|t| (a, t)))
        .filter(|(_, t)| model.within_boundary(t))
        .collect()
}

/// One successor of `state` drawn uniformly from `successors(model, state)`, computing
/// only the states it draws: actions are drawn without replacement until one changes
/// the state within the bounds. Cloning every successor to keep one was most of a
/// walk's time (a 3-node state is a few kilobytes, and a state has tens of actions).
pub fn random_successor<M: Model>(
    model: &M,
    state: &M::State,
    rng: &mut Rng,
) -> Option<(M::Action, M::State)>
where
    M::Action: Clone,
{
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    while !actions.is_empty() {
        let a = actions.swap_remove(rng.below(actions.len()));
        match model.next_state(state, a.clone()) {
            Some(t) if model.within_boundary(&t) => return Some((a, t)),
            _ => {}
        }
    }
    None
}

/// Random walks from the initial state, each step uniform over the actions that change the
/// state and stay within bounds, until no action is left or `max_depth` steps. Unlike
/// stateright's simulation checker, a walk does not stop at a state another walk visited,
/// so walks reach deep states (all brokers registered, crash and restart, acks).
/// Properties are checked on every state; the first discovery per property is kept.
/// Seeded random walks within `budget`, or until `stop_on` has a discovery.
fn walks<M: Checked>(
    model: &M,
    budget: WalkBudget,
    seed: u64,
    max_depth: usize,
    stop_on: Option<&'static str>,
) -> Outcome<M> {
    let props = model.properties();
    let start = Instant::now();
    let mut rng = Rng::seeded(seed);
    let mut found: BTreeMap<&'static str, Vec<M::A>> = BTreeMap::new();
    let (mut states, mut depth) = (0usize, 0usize);
    let Some(init) = model.init_states().into_iter().next() else {
        return outcome(model, &props, 0, 0, 0, start.elapsed(), BTreeMap::new());
    };
    let mut taken_walks = 0usize;
    let budget_left = |taken_walks: usize| match budget {
        WalkBudget::Seconds(s) => start.elapsed() < Duration::from_secs(s),
        WalkBudget::Walks(n) => taken_walks < n,
    };
    while budget_left(taken_walks) && stop_on.is_none_or(|p| !found.contains_key(p)) {
        taken_walks += 1;
        let mut s = init.clone();
        let mut taken: Vec<M::A> = Vec::new();
        loop {
            states += 1;
            for p in &props {
                let holds = (p.condition)(model, &s);
                let hit = match p.expectation {
                    Expectation::Sometimes => holds,
                    _ => !holds,
                };
                if hit && !found.contains_key(p.name) {
                    found.insert(p.name, taken.clone());
                }
            }
            if taken.len() >= max_depth {
                break;
            }
            let Some((a, t)) = random_successor(model, &s, &mut rng) else {
                break;
            };
            taken.push(a);
            s = t;
        }
        depth = depth.max(taken.len());
    }
    let discoveries: BTreeMap<&'static str, Path<M::S, M::A>> = found
        .into_iter()
        .filter_map(|(name, acts)| {
            Path::from_actions(model, init.clone(), acts.iter()).map(|p| (name, p))
        })
        .collect();
    outcome(
        model,
        &props,
        states,
        0,
        depth,
        start.elapsed(),
        discoveries,
    )
}

type Found<M> = (
    usize,
    usize,
    usize,
    BTreeMap<&'static str, Path<<M as Checked>::S, <M as Checked>::A>>,
);

fn collect<M: Checked, C: Checker<M>>(c: C) -> Found<M> {
    (
        c.state_count(),
        c.unique_state_count(),
        c.max_depth(),
        c.discoveries().into_iter().collect(),
    )
}

/// One line per node: phase, role, term, log, commit/applied, disk, partition.
pub fn summary(s: &State) -> String {
    let mut out = String::new();
    for (i, n) in s.nodes.iter().enumerate() {
        let role = match n.role {
            Role::Follower => "F",
            Role::Candidate => "C",
            Role::PreCandidate => "P",
            Role::Leader => "L",
        };
        let phase = match n.phase {
            Phase::Down => "down",
            Phase::Recovered => "recovered",
            Phase::LoopRunning => "loop",
            Phase::Listening => "reg-pending",
            Phase::Registered => "registered",
            Phase::Failed => "FAILED",
        };
        let log: Vec<String> = n
            .log
            .iter()
            .map(|e| format!("{}:{:?}", e.term, e.cmd))
            .collect();
        let _ = writeln!(
            out,
            "    n{i} {phase:<11} {role} t{} v{:?} log[{}] stable={} commit={} applied={} brokers={:?} topics={} | durable log={} hs=(t{} v{:?} c{}){} | plog={} durable={} hw={}{}",
            n.term,
            n.vote,
            log.join(","),
            n.stable,
            n.commit,
            n.applied,
            n.image.brokers,
            n.image.topics,
            n.disk.durable_log.len(),
            n.disk.durable_hs.term,
            n.disk.durable_hs.vote,
            n.disk.durable_hs.commit,
            if n.disk.torn { " TORN" } else { "" },
            n.disk.plog.len(),
            n.disk.plog_durable,
            n.hw,
            if n.ready.is_some() { " [in Ready]" } else { "" },
        );
    }
    let _ = writeln!(
        out,
        "    net={} msgs, acked={:?}, read={:?}, writes answered={:?}, crashes={}",
        s.net.len(),
        s.ghost.acked,
        s.ghost.read,
        s.ghost.answered,
        s.ghost.crashes
    );
    out
}

/// A counterexample or example, step by step.
pub fn format_path<M: Checked>(model: &M, path: &Path<M::S, M::A>) -> String {
    let mut out = String::new();
    let steps = path.clone().into_vec();
    for (i, (state, action)) in steps.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(out, "  initial state");
            out.push_str(&model.summary(state));
        }
        if let Some(a) = action {
            let _ = writeln!(out, "  step {}: {}", i + 1, model.format_action(a));
            if let Some((next, _)) = steps.get(i + 1) {
                out.push_str(&model.summary(next));
            }
        }
    }
    out
}

/// One line per replica: up, its metadata view, log (epoch:value), durable end, high
/// watermark, follower gate, leader-side follower ends and waiting produces.
pub fn replication_summary(s: &RState) -> String {
    let set = |x: u8| -> String { members(x).map(|m| m.to_string()).collect() };
    let mut out = String::new();
    let m = &s.meta;
    let _ = writeln!(
        out,
        "    meta: leader={:?} epoch={} v{} isr={{{}}} elr={{{}}} fenced={{{}}} inc={:?} | inbox={:?}",
        m.leader,
        m.epoch,
        m.version,
        set(m.isr),
        set(m.elr),
        set(m.fenced),
        m.incarnation,
        s.inbox
    );
    for (i, r) in s.replicas.iter().enumerate() {
        let log: Vec<String> = r
            .log
            .iter()
            .map(|x| format!("{}:{}", x.epoch, x.value))
            .collect();
        let _ = writeln!(
            out,
            "    r{i} {} inc={} view=(leader {:?} e{} isr {{{}}}) log[{}] durable={} hw={} ckpt={} gate={:?} ends={:?}@e{} pending={:?} waiting={:?} damaged={:?} repair={:?}{}",
            if r.up { "up  " } else { "DOWN" },
            r.incarnation,
            r.view.leader,
            r.view.epoch,
            set(r.view.isr),
            log.join(","),
            r.durable,
            r.hw,
            r.hw_checkpoint,
            r.gate,
            r.follower_end,
            r.tracker_epoch,
            r.pending_isr,
            r.waiting
                .iter()
                .map(|w| (w.offset, w.value))
                .collect::<Vec<_>>(),
            r.damaged,
            r.repair,
            deletion_shown(r),
        );
    }
    let _ = writeln!(
        out,
        "    in flight={:?} acked={:?} read={:?}",
        s.net
            .iter()
            .map(|m| (m.to, m.epoch, m.base, m.records.len(), m.hw))
            .collect::<Vec<_>>(),
        s.ghost.acked,
        s.ghost.read
    );
    if s.ghost.deletes > 0 {
        let _ = writeln!(out, "    deleted below {}", s.ghost.deleted);
    }
    out
}

/// The log start and what the leader side knows of deletions, where any moved.
fn deletion_shown(r: &crate::replication::Replica) -> String {
    if r.log_start == 0 && r.deletions.is_empty() && r.follower_start.iter().all(Option::is_none) {
        return String::new();
    }
    format!(
        " start={} starts={:?} deleting={:?}",
        r.log_start,
        r.follower_start,
        r.deletions.iter().map(|d| d.target).collect::<Vec<_>>()
    )
}
