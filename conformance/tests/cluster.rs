//! C-11, the oracle on the cluster (spec/conformance.md): metadata model paths of two
//! and three nodes replayed on as many real metadata nodes (raft-rs), message by
//! message, through the oracle's network; the seed classes that need a second node
//! replayed from the model checker's own counterexamples.

use chronik_conformance::{random_walks, replay_path, Divergence, Injected, Stats};
use chronik_model::check::shortest;
use chronik_model::ci::{as_the_broker, metadata};
use chronik_model::model::{Action, Bug};
use chronik_model::property_names as names;
use chronik_model::state::{Msg, NodeId, Role, State};
use chronik_model::ChronikModel;

/// Start-up from power-on, crashes (torn writes among them), a metadata write at
/// any node (forwarded from a follower), a bad sector in a Raft log; elections with
/// pre-vote and check-quorum, as the broker runs them.
fn cluster(nodes: usize) -> ChronikModel {
    let mut m = ChronikModel::new(nodes);
    m.max_term = 3;
    m.max_crashes = 3;
    m.max_proposals = 2;
    m.max_produce = 0;
    m.max_damage = 1;
    as_the_broker(m)
}

fn must_conform(result: Result<Stats, Box<Divergence>>) -> Stats {
    match result {
        Ok(stats) => stats,
        Err(d) => panic!("{d}"),
    }
}

/// Every walk ran to its end with every model message found among raft-rs's, and
/// the walks reached the cluster: peer messages, forwarded writes, registrations
/// of other nodes applied.
fn assert_reached(stats: &Stats, delivered: u64, cluster_paths: u64) {
    eprintln!("{stats:?}");
    assert!(stats.unmapped.is_empty(), "{stats:?}");
    assert!(stats.delivered >= delivered, "{stats:?}");
    assert!(stats.cluster_paths >= cluster_paths, "{stats:?}");
}

/// C-11 (R-START-*, R-PROPOSE-*, R-PERSIST-*, R-RECOVER-*, I-1..I-4): two nodes.
#[test]
fn c11_two_real_nodes_follow_the_model_message_by_message() {
    let stats = must_conform(random_walks(&cluster(2), 3_000, 150, 21, None));
    assert_reached(&stats, 15_000, 500);
}

/// C-11: three nodes, where a vote, a commit and a repair need a majority of two.
#[test]
fn c11_three_real_nodes_follow_the_model_message_by_message() {
    let stats = must_conform(random_walks(&cluster(3), 2_000, 150, 23, None));
    assert_reached(&stats, 30_000, 800);
}

/// C-11 (R-RECOVER-9): a node whose damaged Raft log was cut grants no vote while it
/// repairs. Every vote or pre-vote raft-rs grants must stand for a model answer in
/// flight (checked after every step of every C-11 path); the injected
/// `vote-while-repairing` (a repairing node votes as if the damage were a torn tail)
/// is reported where its grant leaves the node, after the Ready that recorded the vote.
/// Random walks reach a repairing node asked for its vote too rarely (none in 2,000
/// walks at three nodes), so the path is scripted.
#[test]
fn c11_a_repairing_node_grants_no_vote() {
    use Action::*;
    let mut s = Script::new(cluster(3));
    s.power_on(&[0, 1, 2])
        .elect(0, 1)
        .replicate(0, 1)
        .replicate(0, 2)
        // A write, so that node 2's log holds a record after its first.
        .act(ClientCreateTopic(0))
        .ready(0)
        .deliver(0, 2, append_with_entries)
        .ready(2)
        .deliver(0, 1, append_with_entries)
        .ready(1)
        .act(Crash(2))
        .then("a bad sector in node 2's Raft log", |a| {
            matches!(a, DamageRaftLog(2, _))
        })
        .act(Restart(2))
        .act(StartLoop(2))
        // The leader restarts: node 1 wins its pre-vote round with node 0's grant and
        // asks node 2 for its vote, which node 2 records and must not give.
        .act(Crash(0))
        .act(Restart(0))
        .act(StartLoop(0))
        .act(Timeout(1))
        .ready(1)
        .deliver(1, 0, pre_vote)
        .ready(0)
        .deliver(0, 1, pre_vote_resp)
        .ready(1)
        .deliver(1, 2, vote)
        .ready(2);
    assert!(s.state.nodes[2].repairing, "{:?}", s.state.nodes[2]);
    if let Err(d) = replay_path(&s.model, &s.path, None) {
        panic!("{d}");
    }
    let Err(d) = replay_path(&s.model, &s.path, Some(Injected::VoteWhileRepairing)) else {
        panic!("vote-while-repairing not reported: {:?}", s.path);
    };
    // Where the grant leaves the node: the end of the Ready that recorded the vote.
    assert_eq!(d.step, Some(s.path.len() - 1), "{d}");
    assert!(
        d.why
            .iter()
            .any(|w| w.contains("that the model's node did not")),
        "{d}"
    );
}

/// C-11 (R-RECOVER-2): the leader snapshots its metadata and compacts its Raft log
/// every two entries while followers catch up from its entries.
#[test]
fn c11_compacted_raft_logs_conform_at_two_nodes() {
    let mut m = cluster(2);
    m.snapshot_interval = 2;
    let stats = must_conform(random_walks(&m, 2_000, 150, 29, None));
    assert_reached(&stats, 10_000, 300);
    assert!(stats.compacted >= 300, "{stats:?}");
}

/// C-11: a Raft WAL that acknowledges writes it never synced is reported at two and
/// at three nodes, at the step where the loss first shows.
#[test]
fn c11_a_raft_log_that_skips_its_fsync_is_reported_in_the_cluster() {
    for nodes in [2, 3] {
        let result = random_walks(
            &cluster(nodes),
            1_000,
            150,
            7,
            Some(Injected::SkipRaftFsync),
        );
        let Err(d) = result else {
            panic!("{nodes} nodes: skip-raft-fsync not reported");
        };
        let action = d.path[d.step.expect("after a step")].to_string();
        assert!(
            action.starts_with("Fsync") || action.starts_with("Crash"),
            "{d}"
        );
    }
}

/// C-11 (R-PERSIST-1, R-PERSIST-2): the model checker's shortest counterexamples of
/// the two seed classes that need a second node, replayed on the real nodes, which
/// do not follow them: raft-rs holds back a follower's answer until its Ready is
/// durable, and Chronik advances only after the fsync.
#[test]
fn c11_counterexamples_that_need_two_nodes_do_not_replay_on_raft_rs() {
    // Where each shows: a candidate's vote request delivered before its Ready's
    // write (its vote) is durable, which raft-rs had not released; an advance
    // before the fsync, which the real node refuses.
    for (bug, property, at, why) in [
        (
            Bug::SendBeforeFsync,
            names::PERSIST_1,
            "Deliver",
            "raft-rs sent no",
        ),
        (
            Bug::AdvanceBeforePersist,
            names::PERSIST_2,
            "Advance",
            "advanced before its writes were durable",
        ),
    ] {
        // The model checker's own bounds for these switches (model/tests), with
        // raft-rs's flow control, which the real nodes run.
        let mut m = metadata(2, 1, 0, 0, 0).with_bug(bug);
        m.raft_rs_flow_control = true;
        let path = shortest(&m, property, 40)
            .unwrap_or_else(|| panic!("{}: the model checker found no counterexample", bug.name()));
        let actions: Vec<Action> = path.into_actions();
        let Err(d) = replay_path(&m, &actions, None) else {
            panic!(
                "{}: the real nodes followed the bug's counterexample",
                bug.name()
            );
        };
        eprintln!("{}: {d}", bug.name());
        // The correct path agrees up to the step the bug changes.
        let step = d.step.expect("after a step");
        assert!(d.path[step].to_string().starts_with(at), "{d}");
        assert!(d.why.iter().any(|w| w.contains(why)), "{d}");
    }
}

/// A path built by naming each step: the first action the model enables that
/// matches. Fails with what the model enables when none does.
struct Script {
    model: ChronikModel,
    state: State,
    path: Vec<Action>,
}

impl Script {
    fn new(model: ChronikModel) -> Self {
        let state = model.init_state();
        Script {
            model,
            state,
            path: Vec::new(),
        }
    }

    fn then(&mut self, what: &str, pick: impl Fn(&Action) -> bool) -> &mut Self {
        let mut enabled = Vec::new();
        self.model.enabled(&self.state, &mut enabled);
        let Some(action) = enabled.into_iter().find(|a| pick(a)) else {
            let mut enabled = Vec::new();
            self.model.enabled(&self.state, &mut enabled);
            panic!("no {what} after {:?}; enabled: {enabled:?}", self.path);
        };
        self.state = self
            .model
            .step(&self.state, action.clone())
            .unwrap_or_else(|| panic!("{action} changes nothing after {:?}", self.path));
        self.path.push(action);
        self
    }

    fn act(&mut self, action: Action) -> &mut Self {
        let wanted = action.clone();
        self.then(&wanted.to_string(), move |a| *a == action)
    }

    /// A whole Ready of node `n`: taken, made durable (if it wrote anything: a
    /// pre-candidate's does not), advanced.
    fn ready(&mut self, n: NodeId) -> &mut Self {
        self.act(Action::Ready(n));
        if !self.state.nodes[usize::from(n)].disk.synced() {
            self.act(Action::Fsync(n));
        }
        self.act(Action::Advance(n))
    }

    fn deliver(&mut self, src: NodeId, dst: NodeId, kind: fn(&Msg) -> bool) -> &mut Self {
        self.then(&format!("message {src} -> {dst}"), move |a| {
            matches!(a, Action::Deliver(e) if e.src == src && e.dst == dst && kind(&e.msg))
        })
    }
}

fn vote(m: &Msg) -> bool {
    matches!(m, Msg::Vote { pre: false, .. })
}

fn vote_resp(m: &Msg) -> bool {
    matches!(m, Msg::VoteResp { pre: false, .. })
}

fn pre_vote(m: &Msg) -> bool {
    matches!(m, Msg::Vote { pre: true, .. })
}

fn pre_vote_resp(m: &Msg) -> bool {
    matches!(m, Msg::VoteResp { pre: true, .. })
}

fn append(m: &Msg) -> bool {
    matches!(m, Msg::Append { .. })
}

fn append_with_entries(m: &Msg) -> bool {
    matches!(m, Msg::Append { entries, .. } if !entries.is_empty())
}

fn append_accepted(m: &Msg) -> bool {
    matches!(m, Msg::AppendResp { ok: true, .. })
}

fn forward(m: &Msg) -> bool {
    matches!(m, Msg::Forward { .. })
}

/// Two nodes from power-on: node 0 is elected in term 1 and commits its first entry,
/// and node 1 learns it leads.
fn node_0_leads_two() -> Script {
    let mut s = Script::undamaged(2);
    s.power_on(&[0, 1]).elect(0, 1).replicate(0, 1);
    s
}

impl Script {
    /// The C-11 cluster of `nodes`, without bad sectors.
    fn undamaged(nodes: usize) -> Self {
        let mut m = cluster(nodes);
        m.max_damage = 0;
        Script::new(m)
    }

    /// Every node starts and runs its loop; the `listening` ones open their listeners
    /// (and so ask to register) while no leader is known.
    fn power_on(&mut self, listening: &[NodeId]) -> &mut Self {
        let nodes = 0..self.model.nodes as NodeId;
        for n in nodes.clone() {
            self.act(Action::Restart(n));
        }
        for n in nodes {
            self.act(Action::StartLoop(n));
        }
        for &n in listening {
            self.act(Action::ListenerUp(n));
        }
        self
    }

    /// The leader's append reaches `follower`, which makes it durable and answers;
    /// the leader takes the answer in its next Ready.
    fn replicate(&mut self, leader: NodeId, follower: NodeId) -> &mut Self {
        self.deliver(leader, follower, append)
            .ready(follower)
            .deliver(follower, leader, append_accepted)
            .ready(leader)
    }

    /// Node `n` times out and wins the next term with `voter`'s vote (after its
    /// pre-vote, where the model runs the round); its first append is queued.
    fn elect(&mut self, n: NodeId, voter: NodeId) -> &mut Self {
        self.act(Action::Timeout(n));
        if self.model.pre_vote {
            self.ready(n)
                .deliver(n, voter, pre_vote)
                .ready(voter)
                .deliver(voter, n, pre_vote_resp);
        }
        self.ready(n)
            .deliver(n, voter, vote)
            .ready(voter)
            .deliver(voter, n, vote_resp)
            .ready(n)
    }

    /// Node 1 campaigns in term 2, node 0 votes for it, and node 1 commits its term's
    /// first entry and with it everything before.
    fn node_1_takes_over(&mut self) -> &mut Self {
        self.elect(1, 0).replicate(1, 0)
    }

    /// The path replays on the real nodes, the write is applied at `node`, and
    /// neither side told its client success.
    fn assert_applied_unanswered(&self, node: usize) {
        let applied = self.state.nodes[node].applied;
        assert!(applied >= 3, "the write is not applied: {:?}", self.path);
        if let Err(d) = replay_path(&self.model, &self.path, None) {
            panic!("{d}");
        }
        assert!(
            self.state.ghost.answered.is_empty(),
            "{:?}",
            self.state.ghost
        );
    }
}

/// C-11 (R-PROPOSE-1): a leader that steps down fails the writes it proposed and has
/// not applied (its clients hear NOT_CONTROLLER and retry); when the next leader
/// commits one of them after all, its client is still not told success. The driver
/// decides this (`lost_leadership`); the model follows it. Node 0 leads term 1 and
/// takes a write, node 1 copies it, restarts, and wins term 2 with it.
#[test]
fn c11_a_write_whose_leader_stepped_down_is_not_answered_success_when_it_commits_later() {
    use Action::*;
    let mut s = node_0_leads_two();
    // Node 1 holds the write durably; its answer never reaches node 0.
    s.act(ClientCreateTopic(0))
        .ready(0)
        .deliver(0, 1, append_with_entries)
        .ready(1)
        .act(Crash(1))
        .act(Restart(1))
        .act(StartLoop(1))
        .node_1_takes_over()
        .deliver(1, 0, append)
        .ready(0);
    s.assert_applied_unanswered(0);
}

/// C-11 (R-PROPOSE-1, R-PROPOSE-2): a write forwarded to a leader that crashes before
/// applying it is never answered success by its origin, even when the next leader
/// commits it: the origin hears only the leader's answer (the real one times out).
/// Node 1 forwards to node 0, which hands it on to node 1 and crashes; node 1 wins
/// term 2 and commits it.
#[test]
fn c11_a_forward_whose_leader_crashed_is_not_answered_success_when_it_commits_later() {
    use Action::*;
    let mut s = node_0_leads_two();
    s.act(ClientCreateTopic(1))
        .deliver(1, 0, forward)
        .ready(0)
        .deliver(0, 1, append_with_entries)
        .ready(1)
        .act(Crash(0))
        .act(Restart(0))
        .act(StartLoop(0))
        .node_1_takes_over();
    s.assert_applied_unanswered(1);
}

/// C-11 (R-PROPOSE-1; raft-rs's check-quorum): a leader that heard from no quorum
/// for an election timeout steps down, and the write it proposed and had not
/// applied is failed (NOT_CONTROLLER); when the next leader commits it, its client is
/// still not told success. The real leader steps down through raft-rs's own
/// check-quorum and the driver fails the write; the model says the same.
#[test]
fn c11_a_leader_that_hears_from_no_quorum_steps_down_and_fails_its_unapplied_write() {
    use Action::*;
    let mut s = node_0_leads_two();
    s.act(ClientCreateTopic(0))
        .ready(0)
        .act(CheckQuorum(0))
        .deliver(0, 1, append_with_entries)
        .ready(1)
        .node_1_takes_over()
        .deliver(1, 0, append)
        .ready(0);
    assert_eq!(s.state.nodes[0].role, Role::Follower);
    s.assert_applied_unanswered(0);
}

/// C-11 (raft-rs's pre-vote): a node whose log is shorter asks for a pre-vote and is
/// refused, and no term moves anywhere: without the round, its campaign would have
/// raised both nodes' terms. The node with the longer log then wins the next term.
#[test]
fn c11_a_refused_pre_vote_raises_no_term() {
    use Action::*;
    let mut s = node_0_leads_two();
    // Node 0 holds a write node 1 lacks, and leads no more.
    s.act(ClientCreateTopic(0)).ready(0).act(CheckQuorum(0));
    // The refusal is not sent in the model (raft-rs's stays undelivered).
    s.act(Timeout(1)).ready(1).deliver(1, 0, pre_vote);
    assert_eq!(s.state.nodes[1].role, Role::PreCandidate);
    assert!(
        s.state.nodes.iter().all(|n| n.term == 1),
        "{:?}",
        s.state.nodes
    );
    if let Err(d) = replay_path(&s.model, &s.path, None) {
        panic!("{d}");
    }
    s.elect(0, 1);
    assert_eq!(s.state.nodes[0].role, Role::Leader);
    assert_eq!(s.state.nodes[0].term, 2);
    if let Err(d) = replay_path(&s.model, &s.path, None) {
        panic!("{d}");
    }
}

/// C-11 (R-PROPOSE-1): a write forwarded to the leader and committed there together
/// with a later entry is answered by its origin once the origin has applied the
/// write's own entry. The origin's durable log holds the write but not yet the next
/// entry when it learns that both are committed, so it applies the one and not the
/// other. Before 3053898 the leader's answer named its applied index after the whole
/// Ready, and the origin waited for an entry that had nothing to do with its client's
/// write (found by random walks at three nodes, seed 101, which no longer reach it
/// since the walks run pre-vote). The injected `forward-answer-names-applied-index`
/// brings that back, and the oracle reports it at the origin's Ready.
#[test]
fn c11_a_forwarded_write_is_answered_once_its_own_entry_is_applied() {
    use Action::*;
    let mut s = Script::undamaged(3);
    s.power_on(&[0, 2])
        .elect(0, 1)
        // The term's first entry is committed with node 2; node 1's copy stays on its
        // way, so the leader sends node 1 nothing more until it answers.
        .replicate(0, 2)
        // Node 2 forwards its client's write; it makes the entry durable, and its
        // answer stays on its way.
        .act(ClientCreateTopic(2))
        .deliver(2, 0, forward)
        .ready(0)
        .deliver(0, 2, append_with_entries)
        .ready(2)
        // A second write at the leader; node 1 answers at last and is sent both
        // entries, and its answer commits them together.
        .act(ClientCreateTopic(0))
        .ready(0)
        .replicate(0, 1)
        .replicate(0, 1)
        // Node 2's answer arrives; the leader sends it the second entry and the
        // commit index, and node 2 applies the first only.
        .deliver(2, 0, append_accepted)
        .ready(0)
        .deliver(0, 2, append_with_entries)
        .act(Ready(2));
    let origin = &s.state.nodes[2];
    assert!(
        origin.applied < origin.commit,
        "the origin applied everything committed: {origin:?}"
    );
    assert!(!s.state.ghost.answered.is_empty(), "{:?}", s.state.ghost);
    if let Err(d) = replay_path(&s.model, &s.path, None) {
        panic!("{d}");
    }
    let Err(d) = replay_path(
        &s.model,
        &s.path,
        Some(Injected::ForwardAnswerNamesAppliedIndex),
    ) else {
        panic!(
            "forward-answer-names-applied-index not reported: {:?}",
            s.path
        );
    };
    assert_eq!(d.step, Some(s.path.len() - 1), "{d}");
    assert!(
        d.why.iter().any(|w| w.contains("metadata writes answered")),
        "{d}"
    );
}

/// C-11 (R-PROPOSE-1, seed 003): a follower's client write travels in the broker's
/// own forward and is answered once applied. The injected `propose-on-follower`
/// hands it to raft-rs, which sends it on as its own `MsgPropose` (dropped by a
/// leader that no longer leads, or on the way), and answers the client success at
/// once: the oracle reports that answer at the write's step.
#[test]
fn c11_a_follower_answers_a_forwarded_write_only_once_applied() {
    let mut s = node_0_leads_two();
    s.act(Action::ClientCreateTopic(1));
    if let Err(d) = replay_path(&s.model, &s.path, None) {
        panic!("{d}");
    }
    let Err(d) = replay_path(&s.model, &s.path, Some(Injected::ProposeOnFollower)) else {
        panic!("propose-on-follower not reported: {:?}", s.path);
    };
    assert_eq!(d.step, Some(s.path.len() - 1), "{d}");
    assert!(
        d.why.iter().any(|w| w.contains("metadata writes answered")),
        "{d}"
    );
}

/// C-11 (R-START-1, seed 001): a node that knows no leader runs its consensus loop
/// and campaigns when its election timer fires. The injected `init-waits-election`
/// holds the loop back until a leader is known, which only the loop could learn:
/// the oracle reports the campaign that never came, at the timeout.
#[test]
fn c11_a_node_that_knows_no_leader_campaigns() {
    let mut s = Script::undamaged(3);
    s.power_on(&[0, 1, 2]).elect(0, 1);
    if let Err(d) = replay_path(&s.model, &s.path, None) {
        panic!("{d}");
    }
    let timeout = s
        .path
        .iter()
        .position(|a| *a == Action::Timeout(0))
        .expect("node 0 timed out");
    let Err(d) = replay_path(&s.model, &s.path, Some(Injected::InitWaitsElection)) else {
        panic!("init-waits-election not reported: {:?}", s.path);
    };
    assert_eq!(d.step, Some(timeout), "{d}");
}

/// C-11 (R-START-3, seed 000): a follower registers through the leader as soon as
/// it knows one. The injected `register-only-as-leader` (a registration deferred
/// until this node leads, which a follower never does) is reported where the
/// model's forward of the registration is delivered and the real follower sent none.
#[test]
fn c11_a_follower_registers_through_the_leader() {
    let mut s = node_0_leads_two();
    s.act(Action::RegisterRetry(1)).deliver(1, 0, forward);
    if let Err(d) = replay_path(&s.model, &s.path, None) {
        panic!("{d}");
    }
    let Err(d) = replay_path(&s.model, &s.path, Some(Injected::RegisterOnlyAsLeader)) else {
        panic!("register-only-as-leader not reported: {:?}", s.path);
    };
    assert_eq!(d.step, Some(s.path.len() - 1), "{d}");
}
