//! Trace validation of the metadata Raft group (C-10, issue 11): after every step of
//! every real raft-rs node the simulator runs, the node's Raft state is checked
//! against Raft's rules as the metadata model states them, with each message
//! abstracted to a past state of its sender. A message in flight can only carry
//! what its sender held when it sent it, and the network may lose, repeat or reorder
//! it; so a step is allowed when some earlier state of the sender could have caused
//! it. raft-rs's message detail (pre-vote, heartbeats, pipelined appends, rejection
//! hints, check-quorum) then needs no counterpart here, while every change of term,
//! vote, log, commit index and durable state is justified:
//!
//! - a vote goes to a candidate that asked in that term with a log at least as
//!   up to date as the voter's, and a leader holds a quorum of votes (I-1);
//! - a leader only appends entries of its term; any other node's log changes only
//!   to entries its term's leader held (I-2), never below its commit index (I-4);
//! - a leader commits an entry of its term that a quorum holds durably (R-PERSIST-1),
//!   a follower no further than its leader had committed (I-3), and a new leader
//!   holds every entry known committed (I-3);
//! - a crash keeps what raft-rs was told is durable: the term, the vote and the log
//!   up to the persisted index (R-PERSIST-1), unless the simulator damaged that
//!   disk (R-RECOVER-9 repairs it).
//!
//! The rules are checked on the states the simulator sees after each driver step;
//! one step may hold several Ready cycles, which the rules allow for by comparing
//! against the sender's latest state before the step rather than its exact state
//! at sending (a leader's log only grows within its term and its commit index only
//! rises, so the latest state covers every earlier message).

pub mod of_model;

use chronik_core::consensus::{Mark, RaftPosition, RaftSeen, RaftTraceEvent, RaftTraceLine};
use std::collections::BTreeMap;

/// What the leader of one term held: its log only grows within the term.
#[derive(Debug, Default)]
struct TermLog {
    first: u64,
    marks: Vec<Mark>,
    commit: u64,
}

impl TermLog {
    fn of(seen: &RaftSeen) -> Self {
        TermLog {
            first: seen.first,
            marks: seen.entries.clone(),
            commit: seen.committed,
        }
    }

    fn last(&self) -> u64 {
        (self.first + self.marks.len() as u64).saturating_sub(1)
    }

    fn mark(&self, index: u64) -> Option<Mark> {
        let offset = index.checked_sub(self.first)?;
        self.marks.get(usize::try_from(offset).ok()?).copied()
    }

    fn absorb(&mut self, seen: &RaftSeen) {
        if seen.first > self.last() + 1 {
            // Compacted past what was kept: what it holds now is what counts.
            self.first = seen.first;
            self.marks.clear();
        }
        for index in self.last() + 1..=seen.last() {
            if let Some(mark) = seen.mark(index) {
                self.marks.push(mark);
            }
        }
        self.commit = self.commit.max(seen.committed);
    }
}

#[derive(Debug, Default)]
struct NodeHistory {
    /// The state after its last step while it runs.
    last: Option<RaftSeen>,
    /// Its last state before it went down, until its first step after a start.
    down: Option<RaftSeen>,
    /// Where `last` was: a step that leaves the position alone changed nothing.
    position: Option<RaftPosition>,
}

#[derive(Debug)]
pub struct RaftHistory {
    quorum: usize,
    nodes: BTreeMap<u64, NodeHistory>,
    /// term -> its leader.
    leaders: BTreeMap<u64, u64>,
    /// term -> what its leader held.
    logs: BTreeMap<u64, TermLog>,
    /// (term, candidate) -> its last (term, index) when it campaigned.
    candidates: BTreeMap<(u64, u64), (u64, u64)>,
    /// term -> voter -> the candidate it voted for (votes a repairing node withholds
    /// are not counted: R-RECOVER-9).
    votes: BTreeMap<u64, BTreeMap<u64, u64>>,
    /// (term, node) -> its vote when last seen in that term, and node -> the highest
    /// term it was seen in: a node that voted and left the term within one step
    /// (a vote answered, then its own campaign) was never seen voting.
    last_vote_in: BTreeMap<(u64, u64), u64>,
    highest_term: BTreeMap<u64, u64>,
    /// term -> node -> the highest index up to which it held the leader's entries
    /// durably.
    acks: BTreeMap<u64, BTreeMap<u64, u64>>,
    /// index -> the entry some node had committed there, and the term of the first
    /// node seen holding it committed (the entry was committed in that term or an
    /// earlier one).
    committed: BTreeMap<u64, (Mark, u64)>,
    /// Steps seen, and how many of them changed the Raft state (each checked).
    pub steps: u64,
    pub changes: u64,
    pub violations: Vec<String>,
    /// A crash may fall inside a step (real processes): a step's writes may be
    /// durable while its trace line was never written, so a restart is checked
    /// only for what no step may take back (its term, its vote, committed entries).
    crash_inside_steps: bool,
}

impl RaftHistory {
    pub fn new(voters: usize) -> Self {
        RaftHistory {
            quorum: voters / 2 + 1,
            nodes: BTreeMap::new(),
            leaders: BTreeMap::new(),
            logs: BTreeMap::new(),
            candidates: BTreeMap::new(),
            votes: BTreeMap::new(),
            last_vote_in: BTreeMap::new(),
            highest_term: BTreeMap::new(),
            acks: BTreeMap::new(),
            committed: BTreeMap::new(),
            steps: 0,
            changes: 0,
            violations: Vec::new(),
            crash_inside_steps: false,
        }
    }

    /// The checker for traces real brokers wrote (`--raft-trace`): see
    /// `crash_inside_steps`.
    pub fn for_processes(voters: usize) -> Self {
        RaftHistory {
            crash_inside_steps: true,
            ..RaftHistory::new(voters)
        }
    }

    /// Checks lines of every node's trace, in the order of their times.
    pub fn check_lines(&mut self, mut lines: Vec<RaftTraceLine>) {
        lines.sort_by_key(|line| line.at_ns);
        for line in lines {
            match line.event {
                RaftTraceEvent::Start => self.crashed(line.node),
                RaftTraceEvent::Step(seen) => {
                    let position = seen.position();
                    if self.moved(line.node, position) {
                        self.observe(line.node, seen, false);
                    }
                }
                RaftTraceEvent::Failed(seen) => self.failed(line.node, seen),
            }
        }
    }

    /// Node `node` went down: its next state is what it recovers.
    pub fn crashed(&mut self, node: u64) {
        let history = self.nodes.entry(node).or_default();
        if let Some(last) = history.last.take() {
            history.down = Some(last);
        }
        history.position = None;
    }

    /// Whether `node` has shown a state since it last went down.
    pub fn is_up(&self, node: u64) -> bool {
        self.nodes.get(&node).is_some_and(|h| h.last.is_some())
    }

    /// Node `node` went down keeping `durable` (its disk after the crash): what its
    /// next start must recover at least.
    pub fn went_down(&mut self, node: u64, durable: RaftSeen) {
        // Votes it did not keep were only in memory: they never left the node.
        for (&term, voters) in self.votes.range_mut(durable.term..) {
            if term > durable.term || voters.get(&node) != Some(&durable.vote) {
                voters.remove(&node);
            }
        }
        let history = self.nodes.entry(node).or_default();
        history.last = None;
        history.down = Some(durable);
        history.position = None;
    }

    /// Node `node`'s step failed (a write or an fsync) and it stops. What raft-rs
    /// changed in memory in that step was not durable, but a cut of its log lowered
    /// its persisted index, and some of the step's writes may have reached the disk
    /// before the one that failed: entries a newer leader sent, over uncommitted
    /// ones (found in the full-disk storm, seed 49: entry 101 of term 8 was
    /// recovered as the term-9 entry the failed step had written). A crash now must
    /// keep the last step's term and vote and the log up to the lower persisted
    /// index, and no further than the last entry some node had committed (no step
    /// may replace that); what lies beyond is judged as any follower's entries are
    /// (I-2).
    pub fn failed(&mut self, node: u64, seen: RaftSeen) {
        let committed_anywhere = self.committed.keys().next_back().copied().unwrap_or(0);
        let history = self.nodes.entry(node).or_default();
        let Some(last) = history.last.take() else {
            return;
        };
        let kept = seen.persisted.min(last.persisted);
        history.down = Some(RaftSeen {
            persisted: kept.min(committed_anywhere.max(last.committed)),
            ..last
        });
        history.position = None;
    }

    /// Counts a step of node `node` and says whether it moved the node's Raft
    /// state, which `observe` then checks. (The full state copies the log; most
    /// steps, ticks and heartbeats, change nothing.)
    pub fn moved(&mut self, node: u64, position: RaftPosition) -> bool {
        self.steps += 1;
        let history = self.nodes.entry(node).or_default();
        if history.position == Some(position) {
            return false;
        }
        history.position = Some(position);
        true
    }

    /// Node `node`'s state after a step. `disk_damaged`: the simulator damaged its
    /// Raft log while it was down, so it may recover less than it had persisted.
    pub fn observe(&mut self, node: u64, seen: RaftSeen, disk_damaged: bool) {
        self.changes += 1;
        let history = self.nodes.entry(node).or_default();
        let prev = history.last.take();
        let down = history.down.take();
        if let Some(down) = &down {
            if !disk_damaged && !seen.repairing {
                self.check_restart(node, down, &seen);
            }
        }
        if seen.leader {
            self.check_elected(node, &seen);
        }
        if let Some(prev) = &prev {
            self.check_running(node, prev, &seen);
            self.check_vote(node, prev, &seen);
        }
        self.record(node, &seen);
        if let Some(prev) = &prev {
            self.check_commit(node, prev, &seen);
        }
        self.learn_committed(&seen);
        self.nodes.entry(node).or_default().last = Some(seen);
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// R-PERSIST-1: raft-rs acted on the HardState and the entries it was told are
    /// durable; a crash must not take them back.
    fn check_restart(&mut self, node: u64, down: &RaftSeen, now: &RaftSeen) {
        if now.term < down.term {
            self.violation(format!(
                "R-PERSIST-1 node {node} came back in term {} after term {}: its term was not \
                 durable",
                now.term, down.term
            ));
        } else if now.term == down.term && down.vote != 0 && now.vote != down.vote {
            self.violation(format!(
                "R-PERSIST-1 node {node} came back in term {} voting for {} after voting for {}",
                now.term, now.vote, down.vote
            ));
        }
        let from = down.first.max(now.snapshot.0 + 1);
        let kept = match self.crash_inside_steps {
            true => down.committed,
            false => down.persisted,
        };
        let lost = (from..=kept.min(down.last())).find(|&i| now.mark(i) != down.mark(i));
        if let Some(index) = lost {
            self.violation(format!(
                "R-PERSIST-1 node {node} lost entry {index} (term {:?}) of its persisted log \
                 (a crash must keep it through {kept}); it recovered {:?} there",
                down.term_at(index),
                now.term_at(index)
            ));
        }
    }

    fn check_running(&mut self, node: u64, prev: &RaftSeen, now: &RaftSeen) {
        if now.term < prev.term {
            self.violation(format!(
                "I-1 node {node}'s term went back from {} to {}",
                prev.term, now.term
            ));
        }
        if now.term == prev.term && prev.vote != 0 && now.vote != prev.vote {
            self.violation(format!(
                "I-1 node {node} voted for {} and then {} in term {}",
                prev.vote, now.vote, now.term
            ));
        }
        if now.committed < prev.committed {
            self.violation(format!(
                "I-4 node {node}'s commit index went back from {} to {}",
                prev.committed, now.committed
            ));
        }
        if now.applied > now.committed {
            self.violation(format!(
                "R-PERSIST-2 node {node} applied {} past its commit index {}",
                now.applied, now.committed
            ));
        }
        if let Some(changed) = prev.first_difference(now) {
            self.check_log_change(node, prev, now, changed);
        }
    }

    /// I-2 and I-4: a leader only appends entries of its term; any other node takes
    /// entries only from its term's leader, and never replaces a committed one.
    fn check_log_change(&mut self, node: u64, prev: &RaftSeen, now: &RaftSeen, changed: u64) {
        let term = now.term;
        if changed <= prev.last().min(prev.committed) {
            self.violation(format!(
                "I-4 node {node} replaced its committed entry {changed} (commit index {})",
                prev.committed
            ));
        }
        if self.leaders.get(&term) == Some(&node) {
            let foreign = (changed..=now.last()).find(|&i| now.term_at(i) != Some(term));
            if changed <= prev.last() || foreign.is_some() {
                self.violation(format!(
                    "I-2 node {node}, leader of term {term}, changed its log at index {changed} \
                     (entry {:?} of term {:?})",
                    foreign,
                    foreign.and_then(|i| now.term_at(i))
                ));
            }
            return;
        }
        let Some(log) = self.logs.get(&term) else {
            self.violation(format!(
                "I-2 node {node} changed its log at index {changed} in term {term}, which no \
                 leader was seen to lead"
            ));
            return;
        };
        let unsupported = (changed..=now.last()).find(|&i| now.mark(i) != log.mark(i));
        if let Some(index) = unsupported {
            self.violation(format!(
                "I-2 node {node} holds entry {index} (term {:?}) that the leader of term {term} \
                 did not hold there ({:?})",
                now.term_at(index),
                log.mark(index).map(|(t, _)| t)
            ));
        }
        let installed = now.snapshot.0 > prev.snapshot.0 && now.snapshot.0 >= changed;
        if installed && self.term_known_at(now.snapshot.0, term) != Some(now.snapshot.1) {
            self.violation(format!(
                "I-2 node {node} installed a snapshot at {} (term {}) that matches neither the \
                 leader of term {term} nor the committed entries",
                now.snapshot.0, now.snapshot.1
            ));
        }
    }

    /// The term of entry `index` as the leader of `term` or the committed entries
    /// know it.
    fn term_known_at(&self, index: u64, term: u64) -> Option<u64> {
        let in_log = self.logs.get(&term).and_then(|log| log.mark(index));
        in_log
            .or_else(|| self.committed.get(&index).map(|&(mark, _)| mark))
            .map(|(t, _)| t)
    }

    /// I-1: a vote goes to a candidate that asked in that term, with a log at least
    /// as up to date as the voter's.
    fn check_vote(&mut self, node: u64, prev: &RaftSeen, now: &RaftSeen) {
        let cast = now.vote != 0 && (prev.term != now.term || prev.vote != now.vote);
        if !cast || now.vote == node {
            return;
        }
        let candidate = now.vote;
        match self.candidates.get(&(now.term, candidate)) {
            None => self.violation(format!(
                "I-1 node {node} voted for {candidate} in term {}, in which it never campaigned",
                now.term
            )),
            // The voter's log before the step: the step that shows a vote may also
            // show entries taken since from the new leader (a model path, where the
            // vote shows once durable).
            Some(&asked) if asked < prev.last_position() => self.violation(format!(
                "I-3 node {node} voted for {candidate} in term {}: the candidate's last entry \
                 {asked:?} is behind the voter's {:?}",
                now.term,
                prev.last_position()
            )),
            Some(_) => {}
        }
    }

    /// I-1 and I-3 when a node is first seen leading a term: a quorum voted for it
    /// and it holds every entry known committed.
    fn check_elected(&mut self, node: u64, now: &RaftSeen) {
        let term = now.term;
        if let Some(&other) = self.leaders.get(&term) {
            if other != node {
                self.violation(format!(
                    "I-1 election safety: nodes {other} and {node} both led term {term}"
                ));
            }
            return;
        }
        let voters = self.votes.get(&term);
        let others = voters.map_or(0, |v| {
            v.iter()
                .filter(|&(&voter, &c)| voter != node && c == node)
                .count()
        });
        let votes = others + usize::from(now.vote == node) + self.unseen_votes(term, node);
        if votes < self.quorum {
            self.violation(format!(
                "I-1 node {node} leads term {term} with {votes} votes; a quorum is {}",
                self.quorum
            ));
        }
        let missing = self
            .committed
            .range(now.snapshot.0 + 1..)
            .find(|&(&i, &(mark, by))| by < term && now.mark(i) != Some(mark))
            .map(|(&i, &(mark, by))| (i, mark.0, by));
        if let Some((index, entry_term, by)) = missing {
            self.violation(format!(
                "I-3 node {node} leads term {term} without entry {index} (term {entry_term}) \
                 that was committed by term {by}; it holds {:?} there",
                now.term_at(index)
            ));
        }
        self.leaders.insert(term, node);
        self.logs.insert(term, TermLog::of(now));
    }

    /// Nodes that may have voted for `candidate` in `term` unseen: they left the term
    /// without being seen voting in it (a vote and a campaign of their own in one
    /// step; in the model, a vote never durable on its own because the same Ready
    /// wrote the next term).
    fn unseen_votes(&self, term: u64, candidate: u64) -> usize {
        self.highest_term
            .iter()
            .filter(|&(&voter, &highest)| {
                voter != candidate
                    && highest > term
                    && !self
                        .votes
                        .get(&term)
                        .is_some_and(|v| v.contains_key(&voter))
                    && self
                        .last_vote_in
                        .get(&(term, voter))
                        .is_none_or(|&v| v == 0)
            })
            .count()
    }

    /// What later steps are checked against: the leader's log, who campaigned, who
    /// voted, and how far each node holds its leader's entries durably.
    fn record(&mut self, node: u64, now: &RaftSeen) {
        let term = now.term;
        self.last_vote_in.insert((term, node), now.vote);
        let highest = self.highest_term.entry(node).or_insert(0);
        *highest = (*highest).max(term);
        if self.leaders.get(&term) == Some(&node) {
            if let Some(log) = self.logs.get_mut(&term) {
                log.absorb(now);
            }
        }
        if now.vote == node {
            self.candidates
                .entry((term, node))
                .or_insert_with(|| now.last_position());
        }
        // A candidate's own vote counts where it leads (`check_elected`); only votes
        // for another leave the node.
        if now.vote != 0 && now.vote != node && !now.repairing {
            self.votes
                .entry(term)
                .or_default()
                .entry(node)
                .or_insert(now.vote);
        }
        // A node's answer to a leader is released once the entries it answers for
        // are durable, and by then it may have moved to a later term (a vote
        // request came between the append and its Ready): it holds them for that
        // leader all the same. The three latest leaders' terms bound the work.
        let top = now.persisted.min(now.last());
        let recent: Vec<u64> = self
            .logs
            .range(..=term)
            .rev()
            .take(3)
            .map(|(t, _)| *t)
            .collect();
        for leader_term in recent {
            let Some(log) = self.logs.get(&leader_term) else {
                continue;
            };
            let held = (now.first..=top)
                .rev()
                .find(|&i| now.mark(i).is_some() && now.mark(i) == log.mark(i));
            if let Some(held) = held {
                let ack = self
                    .acks
                    .entry(leader_term)
                    .or_default()
                    .entry(node)
                    .or_insert(0);
                *ack = (*ack).max(held);
            }
        }
    }

    /// R-PERSIST-1 and I-3: a leader commits an entry of its term that a quorum
    /// holds durably; a follower commits no further than its leader had.
    fn check_commit(&mut self, node: u64, prev: &RaftSeen, now: &RaftSeen) {
        let (term, commit) = (now.term, now.committed);
        if commit <= prev.committed {
            return;
        }
        if now.leader {
            let holders = self
                .acks
                .get(&term)
                .map_or(0, |acks| acks.values().filter(|&&a| a >= commit).count());
            if now.term_at(commit) != Some(term) || holders < self.quorum {
                self.violation(format!(
                    "R-PERSIST-1 node {node}, leader of term {term}, committed index {commit} \
                     (term {:?}) that {holders} nodes held durably; a quorum is {}",
                    now.term_at(commit),
                    self.quorum
                ));
            }
            return;
        }
        // raft-rs also carries the sender's commit index and its term in vote
        // requests and rejections (`maybe_commit_by_vote`): an entry some node had
        // committed may be committed where the same entry is held.
        let committed_there = self.committed.get(&commit).map(|&(mark, _)| mark);
        let known = committed_there.is_some_and(|mark| now.holds(commit, mark));
        let log = self.logs.get(&term);
        let leader_commit = log.map_or(0, |log| log.commit);
        let leader_mark = log.and_then(|log| log.mark(commit)).or(committed_there);
        let matches = leader_mark.is_some_and(|mark| now.holds(commit, mark));
        if !known && (commit > leader_commit || !matches) {
            self.violation(format!(
                "I-3 node {node} committed index {commit} in term {term}; its leader had \
                 committed {leader_commit}{}, and no node had committed that entry there",
                if matches {
                    ""
                } else {
                    " and held another entry there"
                }
            ));
        }
    }

    fn learn_committed(&mut self, now: &RaftSeen) {
        let known = self.committed.keys().next_back().copied().unwrap_or(0);
        for index in (known + 1).max(now.first)..=now.committed.min(now.last()) {
            if let Some(mark) = now.mark(index) {
                self.committed.insert(index, (mark, now.term));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's state: `terms` are its entries' terms from index 1, each entry's
    /// bytes stand for its index and term.
    fn seen(term: u64, vote: u64, leader: bool, terms: &[u64], committed: u64) -> RaftSeen {
        let entries: Vec<Mark> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, (i as u64 + 1) * 1000 + t))
            .collect();
        let last = entries.len() as u64;
        RaftSeen {
            term,
            vote,
            leader,
            snapshot: (0, 0),
            first: 1,
            entries,
            persisted: last,
            committed,
            applied: committed,
            repairing: false,
        }
    }

    /// Three nodes; node 1 campaigns in term 1, node 2 votes, node 1 leads and
    /// appends, node 2 takes the entries and both commit them.
    fn elected() -> RaftHistory {
        let mut h = RaftHistory::new(3);
        for n in 1..=3 {
            h.observe(n, seen(0, 0, false, &[], 0), false);
        }
        h.observe(1, seen(1, 1, false, &[], 0), false);
        h.observe(2, seen(1, 1, false, &[], 0), false);
        h.observe(1, seen(1, 1, true, &[1], 0), false);
        h.observe(2, seen(1, 1, false, &[1], 0), false);
        h.observe(1, seen(1, 1, true, &[1], 1), false);
        h.observe(2, seen(1, 1, false, &[1], 1), false);
        h
    }

    #[test]
    fn c_10_an_election_and_a_commit_follow_the_rules() {
        let h = elected();
        assert_eq!(h.violations, Vec::<String>::new());
        assert_eq!(h.changes, 9);
    }

    #[test]
    fn c_10_r_persist_1_a_failed_step_may_have_replaced_uncommitted_entries() {
        let mut h = elected();
        h.observe(1, seen(1, 1, true, &[1, 1], 1), false);
        h.observe(2, seen(1, 1, false, &[1, 1], 1), false);
        h.failed(2, seen(1, 1, false, &[1, 1], 1));
        h.observe(2, seen(1, 1, false, &[1], 1), false);
        assert_eq!(h.violations, Vec::<String>::new());
        h.failed(2, seen(1, 1, false, &[1], 1));
        h.observe(2, seen(1, 1, false, &[], 0), false);
        assert!(h.violations[0].starts_with("R-PERSIST-1 node 2 lost entry 1 "));
    }

    #[test]
    fn c_10_i_1_a_leader_without_a_quorum_of_votes_is_a_violation() {
        let mut h = RaftHistory::new(3);
        h.observe(1, seen(0, 0, false, &[], 0), false);
        h.observe(1, seen(1, 1, false, &[], 0), false);
        h.observe(1, seen(1, 1, true, &[1], 0), false);
        assert!(h.violations[0].starts_with("I-1 node 1 leads term 1 with 1 votes"));
    }

    #[test]
    fn c_10_i_3_a_vote_for_a_candidate_behind_the_voter_is_a_violation() {
        let mut h = elected();
        h.observe(3, seen(2, 3, false, &[], 0), false);
        h.observe(2, seen(2, 3, false, &[1], 1), false);
        assert!(h.violations[0].starts_with("I-3 node 2 voted for 3 in term 2"));
    }

    #[test]
    fn c_10_r_persist_2_applying_past_the_commit_index_is_a_violation() {
        let mut h = elected();
        h.observe(
            2,
            RaftSeen {
                applied: 2,
                ..seen(1, 1, false, &[1], 1)
            },
            false,
        );
        assert!(h.violations[0].starts_with("R-PERSIST-2 node 2 applied 2 past"));
    }

    #[test]
    fn c_10_i_2_an_entry_no_leader_held_is_a_violation() {
        let mut h = elected();
        h.observe(2, seen(1, 1, false, &[1, 1], 1), false);
        assert!(h.violations[0].starts_with("I-2 node 2 holds entry 2"));
    }

    #[test]
    fn c_10_r_persist_1_a_commit_a_quorum_does_not_hold_durably_is_a_violation() {
        let mut h = elected();
        h.observe(1, seen(1, 1, true, &[1, 1], 1), false);
        h.observe(1, seen(1, 1, true, &[1, 1], 2), false);
        assert!(h.violations[0].contains("committed index 2 (term Some(1)) that 1 nodes"));
    }

    /// A follower that took the leader's entry, then a later term's vote request
    /// (refused) before its Ready made the entry durable, still answers the leader
    /// for it once it is durable (found by the model's walks, issue 11).
    #[test]
    fn c_10_r_persist_1_a_follower_in_a_later_term_still_holds_the_leaders_entries() {
        let mut h = elected();
        h.observe(1, seen(1, 1, true, &[1, 1], 1), false);
        let mut taken = seen(1, 1, false, &[1, 1], 1);
        taken.persisted = 1;
        h.observe(2, taken, false);
        h.observe(2, seen(2, 0, false, &[1, 1], 1), false);
        h.observe(1, seen(1, 1, true, &[1, 1], 2), false);
        assert_eq!(h.violations, Vec::<String>::new());
    }

    #[test]
    fn c_10_r_persist_1_a_crash_that_loses_a_persisted_entry_is_a_violation() {
        let mut h = elected();
        h.crashed(2);
        h.observe(2, seen(1, 1, false, &[], 0), false);
        assert!(h.violations[0].starts_with("R-PERSIST-1 node 2 lost entry 1"));
        let mut damaged = elected();
        damaged.crashed(2);
        damaged.observe(2, seen(1, 1, false, &[], 0), true);
        assert_eq!(damaged.violations, Vec::<String>::new());
    }

    /// Real processes die inside a step, after writes their trace never showed: a
    /// persisted entry not yet committed may be gone (replaced by a leader's), a
    /// committed one may not.
    #[test]
    fn c_10_r_persist_1_a_killed_process_keeps_its_committed_entries() {
        let lines = |restarted: &[u64]| {
            let mut lines = Vec::new();
            let mut at = 0;
            let mut push = |node, event| {
                at += 1;
                lines.push(RaftTraceLine {
                    at_ns: at,
                    node,
                    event,
                });
            };
            for n in 1..=3 {
                push(n, RaftTraceEvent::Start);
            }
            push(1, RaftTraceEvent::Step(seen(1, 1, false, &[], 0)));
            push(2, RaftTraceEvent::Step(seen(1, 1, false, &[], 0)));
            push(1, RaftTraceEvent::Step(seen(1, 1, true, &[1], 0)));
            push(2, RaftTraceEvent::Step(seen(1, 1, false, &[1], 0)));
            push(1, RaftTraceEvent::Step(seen(1, 1, true, &[1, 1], 1)));
            push(2, RaftTraceEvent::Step(seen(1, 1, false, &[1, 1], 1)));
            push(2, RaftTraceEvent::Start);
            push(2, RaftTraceEvent::Step(seen(1, 1, false, restarted, 1)));
            lines
        };
        let mut cut = RaftHistory::for_processes(3);
        cut.check_lines(lines(&[1]));
        assert_eq!(cut.violations, Vec::<String>::new());
        let mut strict = RaftHistory::new(3);
        strict.check_lines(lines(&[1]));
        assert!(strict.violations[0].starts_with("R-PERSIST-1 node 2 lost entry 2"));
        let mut lost = RaftHistory::for_processes(3);
        lost.check_lines(lines(&[]));
        assert!(lost.violations[0].starts_with("R-PERSIST-1 node 2 lost entry 1"));
    }

    #[test]
    fn c_10_r_persist_1_a_crash_that_forgets_a_vote_is_a_violation() {
        let mut h = elected();
        h.crashed(2);
        h.observe(2, seen(1, 0, false, &[1], 1), false);
        assert!(h.violations[0].starts_with("R-PERSIST-1 node 2 came back in term 1 voting for 0"));
    }

    /// raft-rs's vote messages carry the sender's commit index and its term: a node
    /// may commit an entry another node committed, without hearing from a leader.
    #[test]
    fn c_10_a_commit_learned_from_a_vote_request_follows_the_rules() {
        let mut h = elected();
        h.observe(3, seen(1, 0, false, &[1], 0), false);
        h.observe(3, seen(2, 0, false, &[1], 1), false);
        assert_eq!(h.violations, Vec::<String>::new());
    }

    #[test]
    fn c_10_i_3_a_leader_without_a_committed_entry_is_a_violation() {
        let mut h = elected();
        h.observe(3, seen(2, 3, false, &[], 0), false);
        h.observe(2, seen(2, 3, false, &[1], 1), false);
        h.violations.clear();
        h.observe(3, seen(2, 3, true, &[2], 0), false);
        assert!(h.violations[0].starts_with("I-3 node 3 leads term 2 without entry 1"));
    }
}
