//! The transition system. Each `Action` is one input to one node's deterministic core (or
//! one perturbation), so that a path maps one to one onto harness commands.

use std::fmt;

use crate::state::*;

/// One switch per bug class in ../shared/seeds/. Each re-introduces a seed bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// Start-up waits for a leader before it starts the consensus loop (seed 001, deadlock 1).
    InitWaitsElection,
    /// Registration happens only once this node sees itself leader-ready (seed 000, bug 2).
    DeferredRegistration,
    /// raw `propose` on a follower, its result taken as the outcome (seed 003, fix 1).
    ProposeOnFollower,
    /// Persisted messages and produce acks released before fsync (seed 003, fixes 3-4).
    SendBeforeFsync,
    /// `advance` before the Ready's entries and HardState are durable (seed 003, fixes 3-4).
    AdvanceBeforePersist,
    /// Restart without replaying committed metadata (seed 000, bug 1).
    NoReplay,
    /// Recovery skips a committed record it cannot decode (seed 000, bincode).
    SkipUndecodable,
    /// Recovery does not restore the high watermark from its checkpoint (seed 002).
    NoHwRestore,
    /// Recovery cuts a damaged Raft log at the damage as if it were a torn tail and
    /// starts (issue 12: committed topics vanished).
    CutRaftDamage,
    /// A node whose log was cut at damage votes and campaigns before its repair ends.
    VoteWhileRepairing,
    /// A one-voter group waits for an election timeout it can only win before it
    /// leads (issue 14: a new single node served ~0.8 s without a controller).
    SoleVoterWaitsTimeout,
    /// A follower installs a leader's snapshot without taking its metadata image.
    SnapshotKeepsImage,
}

impl Bug {
    pub const ALL: [Bug; 12] = [
        Bug::InitWaitsElection,
        Bug::DeferredRegistration,
        Bug::ProposeOnFollower,
        Bug::SendBeforeFsync,
        Bug::AdvanceBeforePersist,
        Bug::NoReplay,
        Bug::SkipUndecodable,
        Bug::NoHwRestore,
        Bug::CutRaftDamage,
        Bug::VoteWhileRepairing,
        Bug::SoleVoterWaitsTimeout,
        Bug::SnapshotKeepsImage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::InitWaitsElection => "init-waits-election",
            Bug::DeferredRegistration => "deferred-registration",
            Bug::ProposeOnFollower => "propose-on-follower",
            Bug::SendBeforeFsync => "send-before-fsync",
            Bug::AdvanceBeforePersist => "advance-before-persist",
            Bug::NoReplay => "no-replay",
            Bug::SkipUndecodable => "skip-undecodable",
            Bug::NoHwRestore => "no-hw-restore",
            Bug::CutRaftDamage => "cut-raft-damage",
            Bug::VoteWhileRepairing => "vote-while-repairing",
            Bug::SoleVoterWaitsTimeout => "sole-voter-waits-timeout",
            Bug::SnapshotKeepsImage => "snapshot-keeps-image",
        }
    }

    pub fn from_name(s: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The property whose counterexample this bug is expected to produce.
    pub fn expected_property(self) -> &'static str {
        use crate::property_names::*;
        match self {
            Bug::InitWaitsElection => START_1,
            Bug::DeferredRegistration => START_3,
            Bug::ProposeOnFollower => PROPOSE_1,
            Bug::SendBeforeFsync => PERSIST_1,
            Bug::AdvanceBeforePersist => PERSIST_2,
            Bug::NoReplay => RECOVER_2,
            Bug::SkipUndecodable => RECOVER_2,
            Bug::NoHwRestore => RECOVER_4,
            // The cut entries were committed: the next leader's log lacks them.
            Bug::CutRaftDamage | Bug::VoteWhileRepairing => I_3,
            Bug::SoleVoterWaitsTimeout => START_4,
            Bug::SnapshotKeepsImage => RECOVER_2,
        }
    }

    /// Fewest nodes at which the bug is observable: a follower needs a second node.
    pub fn min_nodes(self) -> usize {
        match self {
            // Only a follower forwards; a client's write is what is answered.
            Bug::DeferredRegistration | Bug::ProposeOnFollower => 2,
            // On a single node the commit index moves in `advance`, and its fsync
            // (see `advance`) covers the entries too: only a follower shows the bug.
            Bug::AdvanceBeforePersist => 2,
            // A repairing node's vote elects a leader without the entries it lost only
            // if a third node lacks them too.
            Bug::VoteWhileRepairing => 3,
            // Only a follower receives a snapshot.
            Bug::SnapshotKeepsImage => 2,
            _ => 1,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Model options: cluster size, the bounds that keep the space finite, and bug switches.
#[derive(Clone, Debug)]
pub struct ChronikModel {
    pub nodes: usize,
    pub max_term: u8,
    pub max_crashes: u8,
    /// Client metadata writes (CreateTopics) submitted, at any node.
    pub max_proposals: u8,
    /// Produce requests submitted to the partition leader.
    pub max_produce: u8,
    /// A committed CreateTopic record's bytes cannot be decoded on replay (the seed's
    /// format defect), so recovery meets an undecodable record.
    pub undecodable: bool,
    /// Start with every node's listener up (boot already done) instead of every node
    /// down: start-up ordering is then not explored, which keeps 3-node runs small.
    pub booted: bool,
    /// Raft logs damaged at rest (R-RECOVER-6, R-RECOVER-9).
    pub max_damage: u8,
    /// A node snapshots its metadata and compacts its Raft log every this many applied
    /// entries (`NodeConfig::snapshot_interval`); 0: never.
    pub snapshot_interval: u8,
    /// raft-rs's own flow control (one append carrying entries in flight per
    /// follower; appends without entries, and answers, never hold the next one
    /// back), as the conformance oracle runs the real nodes (spec/conformance.md
    /// C-11). Off, the model checker's coarser rule: at most one append or answer
    /// on a link at a time, a subset of raft-rs's interleavings that keeps the
    /// space a tenth the size (2 nodes with damage: 0.9 M states against 9 M).
    pub raft_rs_flow_control: bool,
    /// raft-rs's pre-vote round, as the broker runs it: an election timeout first
    /// asks the peers whether a campaign could win (`Role::PreCandidate`, a `Vote`
    /// with `pre`), which changes no term, and raises its term only once a quorum
    /// says yes. Off, a timeout campaigns at once, as CI's configurations check.
    pub pre_vote: bool,
    /// raft-rs's check-quorum, as the broker runs it: a leader that heard from no
    /// quorum within an election timeout steps down (`Action::CheckQuorum`), at most
    /// this many times in a path (0: never). The model has no clock and its
    /// network may hold any message back, so the step is enabled for every leader
    /// of a group of two or more; the bound keeps it from using up every term.
    pub max_step_downs: u8,
    /// Pre-vote rounds a path may start, over all nodes (None: any number). A
    /// failed round raises no term, so the term bound does not bound the rounds;
    /// this does, as `max_term` bounds real campaigns.
    pub max_pre_votes: Option<u8>,
    bugs: u16,
}

impl ChronikModel {
    pub fn new(nodes: usize) -> Self {
        ChronikModel {
            nodes: nodes.clamp(1, MAX_NODES),
            max_term: 2,
            max_crashes: 1,
            max_proposals: 1,
            max_produce: 1,
            undecodable: false,
            booted: false,
            max_damage: 0,
            snapshot_interval: 0,
            raft_rs_flow_control: false,
            pre_vote: false,
            max_step_downs: 0,
            max_pre_votes: None,
            bugs: 0,
        }
    }

    pub fn with_bug(mut self, bug: Bug) -> Self {
        self.bugs |= bug.bit();
        if bug == Bug::SkipUndecodable {
            // Skipping is only observable when an undecodable record exists.
            self.undecodable = true;
        }
        if matches!(bug, Bug::CutRaftDamage | Bug::VoteWhileRepairing) {
            self.max_damage = self.max_damage.max(1);
        }
        if bug == Bug::SnapshotKeepsImage {
            // At 2 nodes a follower lacks compacted entries only after damage cut them.
            self.max_damage = self.max_damage.max(1);
            if self.snapshot_interval == 0 {
                self.snapshot_interval = 2;
            }
        }
        self
    }

    pub fn bug(&self, bug: Bug) -> bool {
        self.bugs & bug.bit() != 0
    }

    pub fn bugs(&self) -> Vec<Bug> {
        Bug::ALL.into_iter().filter(|b| self.bug(*b)).collect()
    }

    pub fn quorum(&self) -> usize {
        self.nodes / 2 + 1
    }

    fn ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes).map(|i| i as NodeId)
    }

    fn peers(&self, n: NodeId) -> impl Iterator<Item = NodeId> {
        self.ids().filter(move |p| *p != n)
    }

    pub fn decodes(&self, cmd: Cmd) -> bool {
        !(self.undecodable && cmd == Cmd::CreateTopic)
    }
}

/// The partition's leader (fixed; partition failover belongs to the cluster issue).
pub const PARTITION_LEADER: NodeId = 0;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Start a down node: storage recovery and metadata replay.
    Restart(NodeId),
    /// Start-up code starts the consensus loop.
    StartLoop(NodeId),
    /// The Kafka listener comes up and the broker submits its registration.
    ListenerUp(NodeId),
    /// The registration retry timer fires (the previous attempt was lost).
    RegisterRetry(NodeId),
    /// A client's CreateTopics arrives at this node.
    ClientCreateTopic(NodeId),
    /// A client's produce (acks=all) arrives at the partition leader.
    Produce,
    /// A follower's replica fetcher pulls from the partition leader.
    ReplicaFetch(NodeId),
    /// A consumer fetches from the partition leader.
    Fetch,
    /// Election timeout.
    Timeout(NodeId),
    /// The leader's heartbeat/replication timer.
    Heartbeat(NodeId),
    /// The leader's check-quorum timer fires after an election timeout in which it
    /// heard from no quorum: it steps down (`ChronikModel::max_step_downs`).
    CheckQuorum(NodeId),
    /// The consensus loop steps one peer message.
    Deliver(Envelope),
    /// The loop takes a raft-rs Ready: sends `messages()`, applies committed entries,
    /// writes entries and HardState (not yet durable).
    Ready(NodeId),
    /// fdatasync of everything written (group commit across raft log and partition log).
    Fsync(NodeId),
    /// Release `persisted_messages()` and call `advance`.
    Advance(NodeId),
    /// Kill -9: unsynced bytes are lost.
    Crash(NodeId),
    /// Kill -9 during a write: unsynced bytes are lost and a torn frame is left behind.
    CrashTorn(NodeId),
    /// A bad sector in a down node's Raft log: the durable entry at this position
    /// (0-based) and everything after it no longer read back, and a valid record
    /// follows, so recovery can tell it from a torn tail.
    DamageRaftLog(NodeId, u8),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Deliver(e) => write!(f, "Deliver {} -> {}: {:?}", e.src, e.dst, e.msg),
            other => write!(f, "{other:?}"),
        }
    }
}

fn idx(n: NodeId) -> usize {
    usize::from(n)
}

impl ChronikModel {
    pub fn init_state(&self) -> State {
        let mut node = Node::new();
        let mut ghost = Ghost::default();
        if self.booted {
            node.phase = Phase::Listening;
            node.incarnation = 1;
            ghost.boots = [1; MAX_NODES];
        }
        State {
            nodes: (0..self.nodes).map(|_| node.clone().into()).collect(),
            net: Default::default(),
            ghost,
        }
    }

    /// Every action whose guard holds, in a deterministic order.
    pub fn enabled(&self, s: &State, out: &mut Vec<Action>) {
        for n in self.ids() {
            let node = &s.nodes[idx(n)];
            match node.phase {
                Phase::Down => {
                    out.push(Action::Restart(n));
                    self.damage_actions(s, n, out);
                }
                Phase::Recovered => {
                    let may_start = !self.bug(Bug::InitWaitsElection)
                        || node.leader.is_some()
                        || node.role == Role::Leader;
                    if may_start {
                        out.push(Action::StartLoop(n));
                    }
                }
                Phase::LoopRunning => out.push(Action::ListenerUp(n)),
                Phase::Listening if node.can_step() && self.registration_retry_due(s, n) => {
                    out.push(Action::RegisterRetry(n))
                }
                _ => {}
            }
            if node.listening() && node.can_step() {
                out.push(Action::ClientCreateTopic(n));
            }
            if node.can_step() {
                // A node that knows no leader may time out at any time (it has heard no
                // heartbeat yet); one that follows a live leader does not.
                if node.role != Role::Leader
                    && !self.abstains(node)
                    && (node.leader.is_none() || !self.live_leader_at_or_above(s, node.term))
                {
                    out.push(Action::Timeout(n));
                }
                if s.ghost.step_downs < self.max_step_downs
                    && node.role == Role::Leader
                    && self.quorum() > 1
                {
                    out.push(Action::CheckQuorum(n));
                }
                if node.role == Role::Leader
                    && self
                        .peers(n)
                        .any(|p| self.out_of_sync(s, n, p) && !Self::link_busy(s, n, p))
                {
                    out.push(Action::Heartbeat(n));
                }
                out.push(Action::Ready(n));
            }
            if node.live() && !node.disk.synced() {
                out.push(Action::Fsync(n));
            }
            if node.ready.is_some() {
                out.push(Action::Advance(n));
            }
            if n != PARTITION_LEADER && node.listening() {
                out.push(Action::ReplicaFetch(n));
            }
            if node.live() {
                out.push(Action::Crash(n));
                if !node.disk.synced() {
                    out.push(Action::CrashTorn(n));
                }
            }
        }
        if s.nodes[idx(PARTITION_LEADER)].listening() {
            out.push(Action::Produce);
            out.push(Action::Fetch);
        }
        for e in &s.net {
            if s.nodes[idx(e.dst)].can_step() {
                out.push(Action::Deliver(e.clone()));
            }
        }
    }

    /// Actions that are progress, as opposed to perturbations (crashes, restarts, client
    /// requests) which the environment may or may not supply. Quiescence = no progress.
    pub fn is_progress(&self, a: &Action) -> bool {
        match a {
            Action::Restart(_)
            | Action::Crash(_)
            | Action::CrashTorn(_)
            | Action::DamageRaftLog(..)
            | Action::ClientCreateTopic(_)
            | Action::Produce
            | Action::Fetch
            // A step-down for want of a quorum is a perturbation: the network's delay.
            | Action::CheckQuorum(_) => false,
            // Enabled only for a node that follows no live leader (the guard in
            // `enabled`), so an election that can happen is progress.
            _ => true,
        }
    }

    /// No progress action changes the state. Boundaries are ignored on purpose: a state
    /// whose only way forward is outside the bounds is not judged quiescent.
    pub fn quiescent(&self, s: &State) -> bool {
        let mut acts = Vec::new();
        self.enabled(s, &mut acts);
        !acts
            .into_iter()
            .filter(|a| self.is_progress(a))
            .any(|a| self.step(s, a).is_some())
    }

    /// One bad sector at a time, in any durable entry that another follows.
    fn damage_actions(&self, s: &State, n: NodeId, out: &mut Vec<Action>) {
        let d = &s.nodes[idx(n)].disk;
        if s.ghost.damages >= self.max_damage || d.damaged.is_some() {
            return;
        }
        // Entries in the snapshot file are no longer in the WAL.
        for at in d.snap_idx..len8(&d.durable_log).saturating_sub(1) {
            out.push(Action::DamageRaftLog(n, at));
        }
    }

    /// A node repairing a damaged log neither campaigns nor answers votes
    /// (R-RECOVER-9).
    fn abstains(&self, node: &Node) -> bool {
        node.repairing && !self.bug(Bug::VoteWhileRepairing)
    }

    pub fn live_quorum(&self, s: &State) -> bool {
        s.nodes.iter().filter(|n| n.live()).count() >= self.quorum()
    }

    fn live_leader_at_or_above(&self, s: &State, term: u8) -> bool {
        s.nodes
            .iter()
            .any(|m| m.live() && m.role == Role::Leader && m.term >= term)
    }

    /// The retry timer fires only once the previous attempt is certainly lost: no forward in
    /// flight and no live log holding a registration above this boot's applied index. This
    /// is a fairness abstraction; duplicate registrations are idempotent anyway.
    fn registration_retry_due(&self, s: &State, n: NodeId) -> bool {
        let node = &s.nodes[idx(n)];
        if self.bug(Bug::DeferredRegistration) && node.role != Role::Leader {
            return false;
        }
        let mine = Cmd::Register(n, node.incarnation);
        let in_flight = s
            .net
            .iter()
            .any(|e| matches!(e.msg, Msg::Forward { cmd, .. } if cmd == mine));
        let in_log = s
            .nodes
            .iter()
            .filter(|m| m.live())
            .any(|m| m.log.iter().any(|e| e.cmd == mine));
        !in_flight && !in_log
    }

    /// Applies an action; `None` when it changes nothing (not a transition).
    pub fn step(&self, s: &State, a: Action) -> Option<State> {
        let mut t = s.clone();
        match a {
            Action::Restart(n) => self.restart(&mut t, n),
            Action::StartLoop(n) => t.nodes[idx(n)].phase = Phase::LoopRunning,
            Action::ListenerUp(n) => {
                t.nodes[idx(n)].phase = Phase::Listening;
                self.mark_registered(&mut t, n);
                if !self.bug(Bug::DeferredRegistration) || t.nodes[idx(n)].role == Role::Leader {
                    let incarnation = t.nodes[idx(n)].incarnation;
                    self.submit(&mut t, n, Cmd::Register(n, incarnation), 0);
                }
            }
            // The retry timer proposes nothing while the last attempt is in flight
            // (a real run's timer fires whether or not the model would enable it).
            Action::RegisterRetry(n) if self.registration_retry_due(&t, n) => {
                let incarnation = t.nodes[idx(n)].incarnation;
                self.submit(&mut t, n, Cmd::Register(n, incarnation), 0)
            }
            Action::RegisterRetry(_) => return None,
            Action::ClientCreateTopic(n) => {
                t.ghost.proposals += 1;
                let req = t.ghost.proposals;
                self.submit(&mut t, n, Cmd::CreateTopic, req);
            }
            Action::Produce => self.produce(&mut t),
            Action::ReplicaFetch(f) => self.replica_fetch(&mut t, f),
            Action::Fetch => {
                let l = &t.nodes[idx(PARTITION_LEADER)];
                let hw = usize::from(l.hw).min(l.disk.plog.len());
                if hw > t.ghost.read.len() {
                    t.ghost.read = l.disk.plog[..hw].to_vec();
                }
            }
            Action::Timeout(n) if self.pre_vote && self.quorum() > 1 => {
                self.pre_campaign(&mut t, n)
            }
            Action::Timeout(n) => self.campaign(&mut t, n),
            Action::CheckQuorum(l) => {
                let node = &mut t.nodes[idx(l)];
                if node.role != Role::Leader {
                    return None;
                }
                let term = node.term;
                Self::become_follower(node, term, None);
                t.ghost.step_downs += 1;
            }
            Action::Heartbeat(l) => {
                // The heartbeat's answer resumes the follower's progress from its
                // match (raft-rs `handle_heartbeat_response`, and a probe afresh).
                for p in self.heartbeat_targets(&t, l) {
                    if self.raft_rs_flow_control {
                        let leader = &mut t.nodes[idx(l)];
                        leader.paused[idx(p)] = false;
                        leader.next[idx(p)] = leader.matched[idx(p)] + 1;
                    }
                    self.send_append(&mut t, l, p);
                }
            }
            Action::Deliver(e) => {
                if !t.net.remove(&e) {
                    return None;
                }
                self.deliver(&mut t, e);
            }
            Action::Ready(n) => self.ready(&mut t, n)?,
            Action::Fsync(n) => self.fsync(&mut t, n),
            Action::Advance(n) => self.advance(&mut t, n)?,
            Action::Crash(n) => self.crash(&mut t, n, false),
            Action::CrashTorn(n) => self.crash(&mut t, n, true),
            Action::DamageRaftLog(n, at) => {
                let node = &mut t.nodes[idx(n)];
                let followed = usize::from(at) + 1 < node.disk.durable_log.len();
                let in_wal = at >= node.disk.snap_idx;
                if node.phase != Phase::Down || node.disk.damaged.is_some() || !followed || !in_wal
                {
                    return None;
                }
                node.disk.damaged = Some(at);
                t.ghost.damages += 1;
            }
        }
        for n in self.ids() {
            let was = &s.nodes[idx(n)];
            if was.role == Role::Leader && t.nodes[idx(n)].role != Role::Leader {
                Self::fail_unapplied_proposals(&mut t, was);
            }
        }
        if t == *s {
            None
        } else {
            Some(t)
        }
    }

    // ---- boot and recovery -------------------------------------------------------------

    fn restart(&self, t: &mut State, n: NodeId) {
        let was_crashed = t.ghost.crashes > 0;
        t.ghost.boots[idx(n)] = t.ghost.boots[idx(n)].saturating_add(1);
        let incarnation = t.ghost.boots[idx(n)];
        let node = &mut t.nodes[idx(n)];
        let disk = std::mem::take(&mut node.disk);
        let mut fresh = Node::new();
        fresh.disk = disk;
        let d = &mut fresh.disk;
        // Scan frames; a torn frame fails its checksum and is truncated.
        d.torn = false;
        if let Some(at) = d.damaged {
            if self.nodes == 1 && !self.bug(Bug::CutRaftDamage) {
                // R-RECOVER-6: no peer to repair from, so the node refuses to start and
                // leaves the log as it is.
                fresh.phase = Phase::Failed;
                fresh.incarnation = incarnation;
                *node = fresh.into();
                return;
            }
            // R-RECOVER-9: the repair file first, then the cut; the vote survives in
            // the vote file, the commit index only as far as the log now goes.
            d.durable_log.truncate(usize::from(at));
            d.durable_hs.commit = d.durable_hs.commit.min(at);
            d.damaged = None;
            d.repair_marker |= !self.bug(Bug::CutRaftDamage);
            t.ghost.damaged_nodes |= 1 << n;
        }
        d.log = d.durable_log.clone();
        d.hs = d.durable_hs;
        d.plog.truncate(usize::from(d.plog_durable));
        fresh.repairing = d.repair_marker;
        fresh.log = d.durable_log.clone();
        fresh.stable = len8(&fresh.log);
        fresh.snap_idx = d.snap_idx;
        fresh.term = d.durable_hs.term;
        fresh.vote = d.durable_hs.vote;
        fresh.commit = d.durable_hs.commit.max(d.snap_idx);
        fresh.hs_sent = d.durable_hs;
        fresh.hw = if self.bug(Bug::NoHwRestore) {
            0
        } else {
            d.hw_checkpoint.min(d.plog_durable)
        };
        fresh.phase = Phase::Recovered;
        // Replay the committed metadata prefix.
        let committed = usize::from(fresh.commit).min(fresh.log.len());
        if !self.bug(Bug::NoReplay) {
            for e in fresh.log[..committed].iter().copied() {
                if self.decodes(e.cmd) {
                    fresh.image.apply(e.cmd);
                } else if !self.bug(Bug::SkipUndecodable) {
                    fresh.phase = Phase::Failed;
                    break;
                }
            }
        }
        fresh.applied = len8(&fresh.log[..committed]);
        fresh.incarnation = incarnation;
        let failed = fresh.phase == Phase::Failed;
        if !failed {
            // The replay's last Ready may reach the next snapshot.
            self.maybe_compact(&mut fresh);
        }
        *node = fresh.into();
        if self.nodes == 1 && !failed && !self.bug(Bug::SoleVoterWaitsTimeout) {
            // `Driver::new`: a one-voter group elects itself as soon as it has replayed
            // (R-START-4).
            self.campaign(t, n);
        }
        if was_crashed {
            t.ghost.restarted = true;
        }
    }

    fn crash(&self, t: &mut State, n: NodeId, torn: bool) {
        t.ghost.crashes += 1;
        let node = &mut t.nodes[idx(n)];
        let mut disk = std::mem::take(&mut node.disk);
        disk.torn = torn && !disk.synced();
        disk.log = disk.durable_log.clone();
        disk.hs = disk.durable_hs;
        disk.plog.truncate(usize::from(disk.plog_durable));
        let mut down = Node::new();
        down.disk = disk;
        *node = down.into();
        // Connections to the dead process reset; what it already sent stays in flight.
        t.net.retain(|e| e.dst != n);
    }

    fn mark_registered(&self, t: &mut State, n: NodeId) {
        let node = &mut t.nodes[idx(n)];
        let mine = node.image.brokers[idx(n)] == node.incarnation;
        if node.phase == Phase::Listening && mine {
            node.phase = Phase::Registered;
        }
        // The leader appended this start's registration after the start, so the log up
        // to it is the leader's: the repair is over (R-RECOVER-9).
        if node.repairing && mine {
            node.repairing = false;
            node.disk.repair_marker = false;
            t.ghost.repaired = true;
        }
    }

    // ---- proposals ---------------------------------------------------------------------

    /// A command arrives at node `n` (from a client, with its request number `req`, or
    /// the broker's own registration, `req` 0).
    fn submit(&self, t: &mut State, n: NodeId, cmd: Cmd, req: u8) {
        let node = &t.nodes[idx(n)];
        if !node.can_step() {
            // The loop is busy with a Ready; the request waits in the loop's queue. The
            // model delivers it only when the loop can take it, so nothing happens now.
            return;
        }
        let leader = node.leader.filter(|l| *l != n);
        if node.role == Role::Leader {
            self.propose(t, n, cmd, false, req);
        } else if let Some(l) = leader {
            // Forwarded: this node answers its client once it has applied the command.
            // With the bug, raft-rs forwards its own `MsgPropose` (dropped by a node that
            // no longer leads) and `propose` returning Ok is taken for success at once.
            t.net.insert(Envelope {
                src: n,
                dst: l,
                msg: Msg::Forward { cmd, req },
            });
            if self.bug(Bug::ProposeOnFollower) {
                if req != 0 {
                    t.ghost.answered.push(req);
                }
                return;
            }
        } else {
            // No known leader: the client gets NOT_CONTROLLER (retriable); raft-rs
            // would drop the proposal (ProposalDropped) and say so. The broker's driver
            // waits for a leader first (`await_leader`); the oracle turns that off.
            return;
        }
        if req != 0 {
            t.nodes[idx(n)].answering.push(req);
        }
    }

    fn propose(&self, t: &mut State, l: NodeId, cmd: Cmd, fwd: bool, req: u8) {
        let node = &mut t.nodes[idx(l)];
        let term = node.term;
        node.log.push(Entry {
            term,
            cmd,
            fwd,
            req,
        });
        for p in self.peers(l).collect::<Vec<_>>() {
            self.send_append(t, l, p);
        }
    }

    // ---- raft --------------------------------------------------------------------------

    fn queue(t: &mut State, from: NodeId, to: NodeId, msg: Msg) {
        let e = Envelope {
            src: from,
            dst: to,
            msg,
        };
        // Kept sorted: a Ready hands the whole outbox out at once, so its order
        // carries nothing, and one order keeps alike states one.
        let ob = &mut t.nodes[idx(from)].outbox;
        if let Err(at) = ob.binary_search(&e) {
            ob.insert(at, e);
        }
    }

    /// An append or its response between `l` and `p` is queued or in flight.
    fn link_busy(t: &State, l: NodeId, p: NodeId) -> bool {
        let is_append = |e: &Envelope| {
            (e.src == l && e.dst == p && matches!(e.msg, Msg::Append { .. } | Msg::Snapshot { .. }))
                || (e.src == p && e.dst == l && matches!(e.msg, Msg::AppendResp { .. }))
        };
        let pn = &t.nodes[idx(p)];
        t.net.iter().any(is_append)
            || t.nodes[idx(l)].outbox.iter().any(is_append)
            || pn.outbox.iter().any(is_append)
            || pn
                .ready
                .as_ref()
                .is_some_and(|r| r.persisted_msgs.iter().any(is_append))
    }

    /// Sends follower `p` what it lacks from `next` on (a snapshot where that is
    /// compacted away), under the flow control the model runs with (see
    /// `raft_rs_flow_control`): raft-rs's pauses a follower once an append with
    /// entries (or a snapshot) is on its way until an answer moves its match; the
    /// coarse one sends nothing while an append or answer is on the link. The
    /// heartbeat sends the latest state once the link is idle.
    fn send_append(&self, t: &mut State, l: NodeId, p: NodeId) {
        let held = if self.raft_rs_flow_control {
            t.nodes[idx(l)].paused[idx(p)]
        } else {
            Self::link_busy(t, l, p)
        };
        if held {
            return;
        }
        let node = &t.nodes[idx(l)];
        let prev_idx = node.next[idx(p)].saturating_sub(1).min(node.last_idx());
        let msg = if prev_idx < node.snap_idx {
            // The entries the follower needs are compacted away (raft-rs sends its
            // snapshot).
            Msg::Snapshot {
                term: node.term,
                entries: node.log[..usize::from(node.snap_idx)].to_vec(),
            }
        } else {
            Msg::Append {
                term: node.term,
                prev_idx,
                prev_term: node.term_at(prev_idx).unwrap_or(0),
                entries: node.log[usize::from(prev_idx)..].to_vec(),
                commit: node.commit,
            }
        };
        let pauses = match &msg {
            Msg::Append { entries, .. } => !entries.is_empty(),
            _ => true,
        };
        if self.raft_rs_flow_control && pauses {
            t.nodes[idx(l)].paused[idx(p)] = true;
        }
        Self::queue(t, l, p, msg);
    }

    /// The followers leader `l`'s heartbeat sends an append to: those out of sync
    /// whose link carries no append or answer (the conformance oracle sends the real
    /// leader's appends to the same ones).
    pub fn heartbeat_targets(&self, t: &State, l: NodeId) -> Vec<NodeId> {
        self.peers(l)
            .filter(|p| self.out_of_sync(t, l, *p) && !Self::link_busy(t, l, *p))
            .collect()
    }

    /// The follower `p` would change on a heartbeat: it lags, or does not know the leader.
    fn out_of_sync(&self, t: &State, l: NodeId, p: NodeId) -> bool {
        let ln = &t.nodes[idx(l)];
        let pn = &t.nodes[idx(p)];
        pn.loop_running()
            && pn.term <= ln.term
            && (pn.term < ln.term
                || pn.leader != Some(l)
                || pn.commit < ln.commit
                || pn.log.len() < ln.log.len()
                || ln.log[..pn.log.len().min(ln.log.len())]
                    != pn.log[..pn.log.len().min(ln.log.len())])
    }

    /// A leader that stops leading tells the proposers of what it proposed in its
    /// term and has not applied to retry (the driver's `lost_leadership`:
    /// NOT_CONTROLLER, at once to a forward's origin); one that crashes never answers
    /// a forward's origin, which hears only the leader's answer (it times out). Either
    /// way, should such a write commit after all, its client is not told success.
    fn fail_unapplied_proposals(t: &mut State, leader: &Node) {
        let failed: Vec<u8> = leader.log[usize::from(leader.applied).min(leader.log.len())..]
            .iter()
            .filter(|e| e.term == leader.term && e.req != 0)
            .map(|e| e.req)
            .collect();
        for m in &mut t.nodes {
            m.answering.retain(|r| !failed.contains(r));
        }
    }

    fn become_follower(node: &mut Node, term: u8, leader: Option<NodeId>) {
        if term > node.term {
            node.term = term;
            node.vote = None;
        }
        node.role = Role::Follower;
        node.leader = leader;
        node.votes = 0;
        // A leader's flow control means nothing once it follows (raft-rs resets
        // every progress when it next leads); kept, it would tell alike states apart.
        node.paused = [false; MAX_NODES];
    }

    fn campaign(&self, t: &mut State, n: NodeId) {
        let node = &mut t.nodes[idx(n)];
        node.term += 1;
        node.vote = Some(n);
        node.role = Role::Candidate;
        node.paused = [false; MAX_NODES];
        node.leader = None;
        node.votes = 1 << n;
        if self.quorum() == 1 {
            self.become_leader(t, n);
            return;
        }
        self.request_votes(t, n, false);
    }

    /// raft-rs `become_pre_candidate`: no leader, and its own pre-vote; its term and
    /// vote stay as they are.
    fn pre_campaign(&self, t: &mut State, n: NodeId) {
        // Counted only where bounded: unbounded runs keep the states they had.
        if self.max_pre_votes.is_some() {
            t.ghost.pre_votes = t.ghost.pre_votes.saturating_add(1);
        }
        let node = &mut t.nodes[idx(n)];
        node.role = Role::PreCandidate;
        node.leader = None;
        node.votes = 1 << n;
        self.request_votes(t, n, true);
    }

    /// A pre-vote asks for the term the campaign would be in.
    fn request_votes(&self, t: &mut State, n: NodeId, pre: bool) {
        let node = &t.nodes[idx(n)];
        let term = node.term + u8::from(pre);
        let (last_idx, last_term) = (node.last_idx(), node.last_term());
        let (commit, commit_term) = (node.commit, node.term_at(node.commit).unwrap_or(0));
        for p in self.peers(n).collect::<Vec<_>>() {
            Self::queue(
                t,
                n,
                p,
                Msg::Vote {
                    pre,
                    term,
                    last_idx,
                    last_term,
                    commit,
                    commit_term,
                },
            );
        }
    }

    fn become_leader(&self, t: &mut State, n: NodeId) {
        let node = &mut t.nodes[idx(n)];
        node.role = Role::Leader;
        node.leader = Some(n);
        node.votes = 0;
        let next = node.last_idx() + 1;
        node.next = [next; MAX_NODES];
        node.matched = [0; MAX_NODES];
        node.paused = [false; MAX_NODES];
        let term = node.term;
        node.log.push(Entry {
            term,
            cmd: Cmd::Noop,
            fwd: false,
            req: 0,
        });
        t.ghost.elected.insert((term, n));
        for p in self.peers(n).collect::<Vec<_>>() {
            self.send_append(t, n, p);
        }
    }

    /// Moves the leader's commit index if a quorum holds more of its term, and
    /// then sends every follower the news; true if it moved.
    fn maybe_commit(&self, t: &mut State, l: NodeId) -> bool {
        let node = &t.nodes[idx(l)];
        let mut m: Vec<u8> = self
            .ids()
            .map(|p| {
                if p == l {
                    node.stable
                } else {
                    node.matched[idx(p)]
                }
            })
            .collect();
        m.sort_unstable_by(|a, b| b.cmp(a));
        let q = m[self.quorum() - 1];
        if q > node.commit && node.term_at(q) == Some(node.term) {
            let committed: Vec<(Entry, u8)> = node.log[..usize::from(q)]
                .iter()
                .map(|e| (*e, node.term))
                .collect();
            t.nodes[idx(l)].commit = q;
            let g = &mut t.ghost;
            let agrees = g
                .committed
                .iter()
                .zip(committed.iter())
                .all(|(a, b)| a.0 == b.0);
            if !agrees {
                g.committed_conflict = true;
            } else if committed.len() > g.committed.len() {
                let keep = g.committed.len();
                g.committed.extend_from_slice(&committed[keep..]);
            }
            for p in self.peers(l).collect::<Vec<_>>() {
                self.send_append(t, l, p);
            }
            return true;
        }
        false
    }

    fn deliver(&self, t: &mut State, e: Envelope) {
        let d = e.dst;
        let src = e.src;
        match e.msg {
            Msg::Forward { cmd, req } => {
                if t.nodes[idx(d)].role == Role::Leader {
                    self.propose(t, d, cmd, true, req);
                }
                // Otherwise the origin gets a retriable error and retries on its own.
            }
            Msg::Vote {
                pre,
                term,
                last_idx,
                last_term,
                commit,
                commit_term,
            } => {
                let node = &mut t.nodes[idx(d)];
                if term > node.term && !pre {
                    Self::become_follower(node, term, None);
                }
                if term < node.term {
                    return;
                }
                let up_to_date = last_term > node.last_term()
                    || (last_term == node.last_term() && last_idx >= node.last_idx());
                let can_vote = if pre {
                    // raft-rs: a pre-vote for a later term is granted whatever this
                    // node follows (check-quorum's lease, not modelled, is what keeps
                    // a live leader's followers from granting it).
                    term > node.term
                        || node.vote == Some(src)
                        || (node.vote.is_none() && node.leader.is_none())
                } else {
                    (node.vote.is_none() || node.vote == Some(src)) && node.leader.is_none()
                };
                let granted = up_to_date && can_vote;
                if granted && !pre {
                    node.vote = Some(src);
                } else if !granted
                    && commit > node.commit
                    && node.role != Role::Leader
                    && node.term_at(commit) == Some(commit_term)
                {
                    // raft-rs `maybe_commit_by_vote`: the candidate's committed entry
                    // is here, so everything up to it is committed.
                    node.commit = commit;
                }
                // Rejections are not sent: losing one is indistinguishable from delay, and
                // a higher term reaches the candidate through other messages. A repairing
                // node records the vote (raft-rs does) but withholds the answer.
                // A granted answer carries the request's term (a pre-vote's is
                // ahead of the voter's own).
                if granted && !self.abstains(node) {
                    Self::queue(t, d, src, Msg::VoteResp { pre, term, granted });
                }
            }
            Msg::VoteResp {
                pre: true,
                term,
                granted,
            } => {
                // raft-rs counts a granted pre-vote of its own term or later while it
                // is a pre-candidate, whichever round it answered.
                let node = &mut t.nodes[idx(d)];
                if node.role == Role::PreCandidate && term >= node.term && granted {
                    node.votes |= 1 << src;
                    if node.votes.count_ones() as usize >= self.quorum() {
                        self.campaign(t, d);
                    }
                }
            }
            Msg::VoteResp {
                pre: false,
                term,
                granted,
            } => {
                let node = &mut t.nodes[idx(d)];
                if term > node.term {
                    Self::become_follower(node, term, None);
                    return;
                }
                if node.role == Role::Candidate && term == node.term && granted {
                    node.votes |= 1 << src;
                    if node.votes.count_ones() as usize >= self.quorum() {
                        self.become_leader(t, d);
                    }
                }
            }
            Msg::Append {
                term,
                prev_idx,
                prev_term,
                entries,
                commit,
            } => self.handle_append(t, d, src, term, prev_idx, prev_term, entries, commit),
            Msg::Snapshot { term, entries } => self.handle_snapshot(t, d, src, term, entries),
            Msg::AppendResp {
                term,
                ok,
                idx: at,
                refused_at,
            } => {
                let node = &mut t.nodes[idx(d)];
                if term > node.term {
                    Self::become_follower(node, term, None);
                    return;
                }
                if node.role != Role::Leader || term != node.term {
                    return;
                }
                let p = idx(src);
                if ok && self.raft_rs_flow_control {
                    // raft-rs `handle_append_response`: an answer that does not
                    // move the match changes nothing.
                    if at <= node.matched[p] {
                        return;
                    }
                    let was_paused = node.paused[p];
                    node.matched[p] = at;
                    node.next[p] = at + 1;
                    node.paused[p] = false;
                    if !self.maybe_commit(t, d) && was_paused {
                        self.send_append(t, d, src);
                    }
                } else if ok {
                    node.matched[p] = node.matched[p].max(at);
                    node.next[p] = node.matched[p] + 1;
                    let behind = node.matched[p] < node.last_idx();
                    self.maybe_commit(t, d);
                    if behind {
                        self.send_append(t, d, src);
                    }
                } else if self.raft_rs_flow_control && refused_at == 0 {
                    // The answer to an append of an older term carries no refusal
                    // in raft-rs (`reject` false, index 0): it moves nothing.
                } else if at < node.matched[p] {
                    // The follower lost entries it acknowledged (its log was cut at
                    // damage): probe it afresh from its last index (R-RECOVER-9).
                    node.matched[p] = 0;
                    node.next[p] = at + 1;
                    node.paused[p] = false;
                    self.send_append(t, d, src);
                } else if self.raft_rs_flow_control && node.next[p].saturating_sub(1) != refused_at
                {
                    // raft-rs `maybe_decr_to`: the refusal of an append older than
                    // the latest probe is stale.
                } else {
                    node.next[p] = node.next[p].saturating_sub(1).min(at + 1).max(1);
                    node.paused[p] = false;
                    self.send_append(t, d, src);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_append(
        &self,
        t: &mut State,
        d: NodeId,
        src: NodeId,
        term: u8,
        prev_idx: u8,
        prev_term: u8,
        entries: Vec<Entry>,
        commit: u8,
    ) {
        let node = &mut t.nodes[idx(d)];
        if term < node.term {
            let term = node.term;
            Self::queue(
                t,
                d,
                src,
                Msg::AppendResp {
                    term,
                    ok: false,
                    idx: 0,
                    refused_at: 0,
                },
            );
            return;
        }
        Self::become_follower(node, term, Some(src));
        if prev_idx < node.commit {
            // raft-rs `handle_append_entries`: an append from below the commit index
            // is stale; the answer names the commit index.
            let at = node.commit;
            Self::queue(
                t,
                d,
                src,
                Msg::AppendResp {
                    term,
                    ok: true,
                    idx: at,
                    refused_at: 0,
                },
            );
            return;
        }
        if node.term_at(prev_idx) != Some(prev_term) {
            let hint = node.last_idx().min(prev_idx.saturating_sub(1));
            let refused_at = if self.raft_rs_flow_control {
                prev_idx
            } else {
                0
            };
            Self::queue(
                t,
                d,
                src,
                Msg::AppendResp {
                    term,
                    ok: false,
                    idx: hint,
                    refused_at,
                },
            );
            return;
        }
        for (k, e) in entries.iter().enumerate() {
            let at = usize::from(prev_idx) + k;
            match node.log.get(at) {
                Some(x) if x.term == e.term => {}
                _ => {
                    node.log.truncate(at);
                    node.log.push(*e);
                    node.stable = node.stable.min(len8(&node.log[..at]));
                }
            }
        }
        let last_new = prev_idx + len8(&entries);
        node.commit = node.commit.max(commit.min(last_new));
        Self::queue(
            t,
            d,
            src,
            Msg::AppendResp {
                term,
                ok: true,
                idx: last_new,
                refused_at: 0,
            },
        );
    }

    /// raft-rs `handle_snapshot` and `restore`: a snapshot at or below the commit index
    /// changes nothing; one whose last entry the log already holds moves the commit
    /// index; any other replaces the log, for the next Ready to install.
    fn handle_snapshot(
        &self,
        t: &mut State,
        d: NodeId,
        src: NodeId,
        term: u8,
        entries: Vec<Entry>,
    ) {
        let node = &mut t.nodes[idx(d)];
        if term < node.term {
            return;
        }
        Self::become_follower(node, term, Some(src));
        let at = len8(&entries);
        let last_term = entries.last().map_or(0, |e| e.term);
        let answer = if at <= node.commit {
            node.commit
        } else if node.term_at(at) == Some(last_term) {
            node.commit = at;
            at
        } else {
            node.log = entries;
            node.stable = node.stable.min(at);
            node.commit = at;
            node.pending_snapshot = true;
            at
        };
        Self::queue(
            t,
            d,
            src,
            Msg::AppendResp {
                term,
                ok: true,
                idx: answer,
                refused_at: 0,
            },
        );
    }

    /// The snapshot file, written atomically, then the WAL rewritten with what follows
    /// and synced (`RaftWal::save_snapshot`): every written Raft record is durable.
    fn save_snapshot(node: &mut Node, at: u8) {
        node.snap_idx = at;
        let d = &mut node.disk;
        d.snap_idx = at;
        d.durable_log = d.log.clone();
        d.durable_hs = d.hs;
    }

    /// `MetadataNode::maybe_snapshot`, at the end of each advance.
    fn maybe_compact(&self, node: &mut Node) {
        let interval = self.snapshot_interval;
        if interval > 0 && node.applied >= node.snap_idx.saturating_add(interval) {
            let at = node.applied;
            Self::save_snapshot(node, at);
        }
    }

    /// A snapshot from the leader, installed at the start of a Ready
    /// (`MetadataNode::begin_ready`): durable before the Ready's own writes.
    fn install_snapshot(&self, node: &mut Node) {
        node.pending_snapshot = false;
        let at = len8(&node.log);
        node.disk.log = node.log.clone();
        Self::save_snapshot(node, at);
        if !self.bug(Bug::SnapshotKeepsImage) {
            let mut image = Image::default();
            for e in &node.log {
                image.apply(e.cmd);
            }
            node.image = image;
        }
        node.applied = at;
    }

    /// raft-rs `ready()` handling, steps 1-5 of its contract (see spec/persist.md).
    fn ready(&self, t: &mut State, n: NodeId) -> Option<()> {
        let node = &t.nodes[idx(n)];
        let apply_to = node.commit.min(node.stable);
        let has_ready = node.stable < node.last_idx()
            || node.pending_snapshot
            || node.hs() != node.hs_sent
            || !node.outbox.is_empty()
            || node.applied < apply_to;
        if !has_ready {
            return None;
        }
        let node = &mut t.nodes[idx(n)];
        if node.pending_snapshot {
            self.install_snapshot(node);
            t.ghost.snapshot_installed = true;
        }
        let outbox = std::mem::take(&mut node.outbox);
        // raft-rs decides at ready() time: a leader's messages go out at once, anyone
        // else's are persisted messages.
        let (now, persisted) = if node.role == Role::Leader || self.bug(Bug::SendBeforeFsync) {
            (outbox, Vec::new())
        } else {
            (Vec::new(), outbox)
        };
        Self::apply_committed(node, &mut t.ghost.answered, apply_to);
        let node: &mut Node = &mut t.nodes[idx(n)];
        Self::cut_replaced_entries(&mut node.disk, &node.log);
        node.disk.log = node.log.clone();
        node.disk.hs = node.hs();
        node.hs_sent = node.hs();
        node.ready = Some(ReadyRec {
            last: node.last_idx(),
            persisted_msgs: persisted,
        });
        t.net.extend(now);
        self.mark_registered(t, n);
        Some(())
    }

    /// Chronik's Raft WAL makes a cut durable before it writes the entries that
    /// replace the cut ones (`RaftWal::append_entries`), so that a crash never
    /// leaves a torn frame followed by stale ones (R-RECOVER-6). Raft replaces only
    /// entries that cannot be committed, so nothing acknowledged is lost.
    fn cut_replaced_entries(disk: &mut Disk, log: &[Entry]) {
        let kept = disk
            .log
            .iter()
            .zip(log)
            .take_while(|(written, new)| written == new)
            .count();
        if kept < disk.log.len() {
            disk.log.truncate(kept);
            disk.durable_log.truncate(kept);
        }
    }

    /// Applies the committed entries up to `apply_to` and answers the clients whose
    /// commands they are and who wait here.
    fn apply_committed(node: &mut Node, answered: &mut Vec<u8>, apply_to: u8) {
        for i in usize::from(node.applied)..usize::from(apply_to) {
            let Entry { cmd, req, .. } = node.log[i];
            node.image.apply(cmd);
            if let Some(k) = node.answering.iter().position(|r| *r == req) {
                node.answering.remove(k);
                answered.push(req);
            }
        }
        node.applied = node.applied.max(apply_to);
    }

    fn fsync(&self, t: &mut State, n: NodeId) {
        let node = &mut t.nodes[idx(n)];
        let d = &mut node.disk;
        d.durable_log = d.log.clone();
        d.durable_hs = d.hs;
        // The high watermark moves when the partition's own durable end does (or a
        // follower reports), not on a sync of the Raft log alone.
        let partition_synced = d.plog_durable != len8(&d.plog);
        d.plog_durable = len8(&d.plog);
        if n == PARTITION_LEADER && partition_synced {
            self.recompute_hw(t);
            let l = &mut t.nodes[idx(n)];
            l.disk.hw_checkpoint = l.hw;
        }
    }

    fn advance(&self, t: &mut State, n: NodeId) -> Option<()> {
        let node = &mut t.nodes[idx(n)];
        if !node.disk.raft_synced() && !self.bug(Bug::AdvanceBeforePersist) {
            return None;
        }
        let rd = node.ready.take()?;
        node.stable = rd.last.min(node.last_idx());
        let commit_before = node.commit;
        t.net.extend(rd.persisted_msgs);
        if t.nodes[idx(n)].role == Role::Leader {
            self.maybe_commit(t, n);
        }
        let node = &mut t.nodes[idx(n)];
        if node.commit > commit_before {
            // raft-rs hands a commit index that moved in `advance` to the LightReady, not
            // to the next Ready. Chronik writes and fsyncs it before applying the entries
            // it commits, so a restart replays everything a proposer was told about
            // (R-RECOVER-2). One fsync covers the whole Raft WAL file.
            node.disk.hs = node.hs();
            node.hs_sent = node.hs();
            node.disk.durable_log = node.disk.log.clone();
            node.disk.durable_hs = node.disk.hs;
        }
        // The LightReady also hands over entries committed before this Ready whose
        // own write it made durable (raft-rs `gen_light_ready`): a follower that
        // learned the commit index before it held the entries applies them here.
        let apply_to = node.commit.min(node.stable);
        if apply_to > node.applied {
            Self::apply_committed(node, &mut t.ghost.answered, apply_to);
            self.mark_registered(t, n);
        }
        self.maybe_compact(&mut t.nodes[idx(n)]);
        Some(())
    }

    // ---- the partition -----------------------------------------------------------------

    fn produce(&self, t: &mut State) {
        let id = t.ghost.produced;
        t.ghost.produced += 1;
        let l = &mut t.nodes[idx(PARTITION_LEADER)];
        let offset = len8(&l.disk.plog);
        l.disk.plog.push(id);
        l.pending_acks.push((offset, id));
        self.recompute_hw(t);
    }

    /// HW = the least durable log end over the ISR (all replicas), never moving back.
    fn recompute_hw(&self, t: &mut State) {
        let l = &t.nodes[idx(PARTITION_LEADER)];
        let own = if self.bug(Bug::SendBeforeFsync) {
            len8(&l.disk.plog)
        } else {
            l.disk.plog_durable
        };
        let min = self
            .peers(PARTITION_LEADER)
            .map(|f| l.replica_leo[idx(f)])
            .fold(own, u8::min);
        let l = &mut t.nodes[idx(PARTITION_LEADER)];
        l.hw = l.hw.max(min);
        let hw = l.hw;
        let (done, wait): (Vec<_>, Vec<_>) = l.pending_acks.iter().partition(|(o, _)| *o < hw);
        l.pending_acks = wait;
        t.ghost.acked.extend(done);
    }

    fn replica_fetch(&self, t: &mut State, f: NodeId) {
        if !t.nodes[idx(PARTITION_LEADER)].listening() {
            return;
        }
        let reported = t.nodes[idx(f)].disk.plog_durable;
        t.nodes[idx(PARTITION_LEADER)].replica_leo[idx(f)] = reported;
        self.recompute_hw(t);
        let l = &t.nodes[idx(PARTITION_LEADER)];
        // Followers are served only what the leader holds durably, so a leader crash can
        // never leave a follower ahead of it.
        let avail = usize::from(l.disk.plog_durable);
        let have = t.nodes[idx(f)].disk.plog.len();
        let more: Vec<u8> = l.disk.plog.get(have..avail).unwrap_or(&[]).to_vec();
        let hw = l.hw;
        let fnode = &mut t.nodes[idx(f)];
        fnode.disk.plog.extend(more);
        fnode.hw = hw.min(len8(&fnode.disk.plog));
    }
}
