//! Simulated consumers in one consumer group, as a Kafka client's consumer runs
//! the classic protocol: find the coordinator, JoinGroup (MEMBER_ID_REQUIRED first,
//! KIP-394), SyncGroup (the leader assigns ranges), OffsetFetch, then fetch from
//! the partition leaders, heartbeat, and commit what was read; on REBALANCE_IN_PROGRESS
//! commit and rejoin; now and then a member's process restarts (half of the time
//! after a LeaveGroup, as a consumer's close sends it) and its successor joins with a
//! new id, so groups rebalance all run long.
//!
//! The history they make is checked in the manner of Jepsen's Kafka workload:
//! - the committed offset of a partition never goes back in the applied metadata
//!   (the workload never seeks back, so a step back is a stale commit landing after
//!   its successor's: the next owner reads those records again) (R-GROUP-10);
//! - an OffsetFetch answers at least every commit acknowledged before it was sent
//!   (R-GROUP-2);
//! - at the end, every record below a committed offset was read by some member
//!   (no commit skips records) and, faults healed, every record was read (R-GROUP-1).

mod kip848;

use crate::group_host::{Committed, GroupMessage};
use crate::host::Message;
use crate::net::Payload;
use crate::options::GroupProtocol;
use crate::records::{fetched_records, PARTITIONS, TOPIC};
use chronik_core::consumer_groups::ConsumerGroupRecord;
use chronik_core::errors::{self, ErrorCode};
use chronik_core::groups::{GroupError, JoinResult, SyncResult};
use std::collections::{BTreeMap, BTreeSet};

pub const MEMBERS: usize = 3;
/// Group members' fetches are numbered from here, so the world routes their answers
/// here and the plain consumers' to them.
pub const FETCH_REQUEST_BASE: u64 = 1 << 40;
const SESSION_TIMEOUT_MS: i32 = 600;
const REBALANCE_TIMEOUT_MS: i32 = 1_000;
/// Longer than a JoinGroup may wait for its rebalance.
const ANSWER_TIMEOUT_MS: u64 = 1_500;
const HEARTBEAT_MS: u64 = 150;
const COMMIT_MS: u64 = 100;
const POLL_MS: u64 = 20;
const BACKOFF_MS: u64 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Join,
    /// The leader's assignments to send (none from a follower).
    Sync(Vec<(String, Vec<u8>)>),
    FetchOffsets,
    Consume,
    /// Told to rejoin: commit what was read, then join.
    Revoke,
}

#[derive(Debug, Clone)]
enum Asked {
    Join,
    Sync,
    FetchOffsets,
    Commit(Vec<(i32, u64)>),
}

struct Member {
    member_id: String,
    generation: i32,
    phase: Phase,
    owned: Vec<i32>,
    positions: BTreeMap<i32, u64>,
    committed: BTreeMap<i32, u64>,
    /// The coordinator request in flight: (request, sent at, what).
    asking: Option<(u64, u64, Asked)>,
    next_ask: u64,
    /// Heartbeats go beside the other requests, as a client's heartbeat thread
    /// sends them: (request, sent at, generation).
    heartbeating: Option<(u64, u64, i32)>,
    next_heartbeat: u64,
    next_commit: u64,
    /// Fetch in flight per owned partition: (request, sent at).
    fetches: BTreeMap<i32, (u64, u64)>,
    next_poll: u64,
    /// Commit requests it stopped waiting for when it rejoined.
    abandoned: Vec<u64>,
    /// KIP-848: partitions the coordinator took back, to commit before reporting
    /// them gone.
    revoking: Vec<i32>,
    /// KIP-848: partitions given whose committed offsets it has yet to read.
    awaiting: Vec<i32>,
    /// KIP-848: send the next heartbeat at once (a join, or a change to report).
    beat_now: bool,
}

impl Member {
    fn new() -> Self {
        Member {
            member_id: String::new(),
            generation: -1,
            phase: Phase::Join,
            owned: Vec::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            asking: None,
            next_ask: 0,
            heartbeating: None,
            next_heartbeat: 0,
            next_commit: 0,
            fetches: BTreeMap::new(),
            next_poll: 0,
            abandoned: Vec::new(),
            revoking: Vec::new(),
            awaiting: Vec::new(),
            beat_now: false,
        }
    }

    /// Gives up its partitions and joins again; `forget_id` after UNKNOWN_MEMBER_ID.
    fn rejoin(&mut self, now: u64, forget_id: bool) {
        if forget_id {
            self.member_id.clear();
        }
        self.phase = Phase::Join;
        // The answer to a request of the generation it leaves is of no use now.
        if let Some((request, _, Asked::Commit(_))) = self.asking.take() {
            self.abandoned.push(request);
        }
        self.owned.clear();
        self.positions.clear();
        self.committed.clear();
        self.fetches.clear();
        self.next_ask = now + BACKOFF_MS;
    }

    /// A heartbeat leaves: one in flight, the next due `HEARTBEAT_MS` later.
    fn heartbeat_sent(&mut self, request: u64, now: u64) {
        self.next_heartbeat = now + HEARTBEAT_MS;
        self.heartbeating = Some((request, now, self.generation));
    }

    fn uncommitted(&self) -> Vec<(i32, u64)> {
        self.positions
            .iter()
            .filter(|(p, o)| self.committed.get(p) != Some(o))
            .map(|(p, o)| (*p, *o))
            .collect()
    }
}

#[derive(Default)]
pub struct GroupMembers {
    protocol: GroupProtocol,
    members: Vec<Member>,
    next_request: u64,
    /// Commits acknowledged, per partition: (acknowledged at, offset, request).
    acked_commits: BTreeMap<i32, Vec<(u64, u64, u64)>>,
    /// The committed offset per partition as nodes applied it, by applied index.
    /// A node's step may apply several commits at once, so a commit may be missing.
    applied: BTreeMap<i32, BTreeMap<u64, Committed>>,
    /// Every commit a coordinator proposed, by partition and request: how it was
    /// decided, also where `applied` missed it.
    proposed: BTreeMap<(i32, u64), Committed>,
    /// OffsetFetch answers: (partition, sent at, answered).
    fetched_offsets: Vec<(i32, u64, Option<Committed>)>,
    /// Commit requests a member stopped waiting for (it timed out, rejoined or
    /// restarted): their fate is unknown to it, as a Kafka client's is, and one may
    /// be applied at any time later (a process paused with it in its socket buffer
    /// takes it when it wakes). Kafka's commits carry nothing that could order such
    /// a commit against the member's later ones, so the history excuses what they
    /// move back.
    abandoned: BTreeSet<u64>,
    /// Partitions a stored KIP-848 record gave to two members, reported once.
    doubly_held: BTreeSet<(i32, String, String)>,
    /// Every record a member read, per partition and offset.
    read: BTreeMap<i32, BTreeMap<u64, Vec<u8>>>,
    pub redeliveries: u64,
    pub generations_joined: u64,
    pub commits_acknowledged: u64,
    pub restarts: u64,
    /// Broken rules seen as answers arrived.
    pub violations: Vec<String>,
}

impl GroupMembers {
    pub fn new(protocol: GroupProtocol) -> Self {
        GroupMembers {
            protocol,
            members: (0..MEMBERS).map(|_| Member::new()).collect(),
            next_request: FETCH_REQUEST_BASE,
            ..GroupMembers::default()
        }
    }

    fn request(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// The requests to send now: group requests to `coordinator` (what a
    /// FindCoordinator answered), fetches to the leaders `leader_of` names.
    pub fn tick(
        &mut self,
        now: u64,
        coordinator: Option<u64>,
        leader_of: impl Fn(i32) -> Option<u64>,
    ) -> Vec<(u64, Payload)> {
        let mut out = Vec::new();
        for m in 0..self.members.len() {
            if let Some(to) = coordinator {
                let asked = self.ask(m, now).into_iter();
                for message in asked.chain(self.heartbeat(m, now)) {
                    out.push((to, Payload::Group(message)));
                }
            }
            for (partition, offset) in self.due_fetches(m, now) {
                let Some(leader) = leader_of(partition) else {
                    continue;
                };
                let request = self.request();
                self.members[m].fetches.insert(partition, (request, now));
                let key = (TOPIC.to_string(), partition);
                let fetch = Message::ConsumerFetch {
                    request,
                    key,
                    offset,
                };
                out.push((leader, Payload::Partition(fetch)));
            }
        }
        out
    }

    fn due_fetches(&mut self, m: usize, now: u64) -> Vec<(i32, u64)> {
        let member = &mut self.members[m];
        if member.phase != Phase::Consume || now < member.next_poll {
            return Vec::new();
        }
        member.next_poll = now + POLL_MS;
        member
            .fetches
            .retain(|_, (_, sent)| now < *sent + ANSWER_TIMEOUT_MS);
        member
            .positions
            .iter()
            .filter(|(p, _)| !member.fetches.contains_key(p))
            .map(|(p, o)| (*p, *o))
            .collect()
    }

    /// The member's next coordinator request, if one is due.
    fn ask(&mut self, m: usize, now: u64) -> Option<GroupMessage> {
        let member = &self.members[m];
        let waiting = member
            .asking
            .as_ref()
            .is_some_and(|(_, sent, _)| now < sent + ANSWER_TIMEOUT_MS);
        if waiting || now < member.next_ask {
            return None;
        }
        if let Some((request, _, Asked::Commit(_))) = self.members[m].asking.take() {
            self.abandoned.insert(request);
        }
        let (asked, message) = self.next_question(m, now)?;
        let member = &mut self.members[m];
        member.asking = Some((request_of(&message), now, asked));
        Some(message)
    }

    /// A heartbeat, if one is due: in a generation (from its join answer on), one at
    /// a time, every `HEARTBEAT_MS`.
    fn heartbeat(&mut self, m: usize, now: u64) -> Option<GroupMessage> {
        if self.protocol == GroupProtocol::Consumer {
            return self.consumer_heartbeat(m, now);
        }
        let member = &self.members[m];
        let in_generation = member.phase != Phase::Join && member.generation >= 0;
        let waiting = member
            .heartbeating
            .is_some_and(|(_, sent, _)| now < sent + ANSWER_TIMEOUT_MS);
        if !in_generation || waiting || now < member.next_heartbeat {
            return None;
        }
        let request = self.request();
        let member = &mut self.members[m];
        member.heartbeat_sent(request, now);
        Some(GroupMessage::Heartbeat {
            request,
            member_id: member.member_id.clone(),
            generation: member.generation,
        })
    }

    fn next_question(&mut self, m: usize, now: u64) -> Option<(Asked, GroupMessage)> {
        if self.protocol == GroupProtocol::Consumer {
            return self.consumer_question(m, now);
        }
        let request = self.request();
        let member = &mut self.members[m];
        let member_id = member.member_id.clone();
        let generation = member.generation;
        Some(match &member.phase {
            Phase::Join => (
                Asked::Join,
                GroupMessage::Join {
                    request,
                    member_id,
                    subscription: TOPIC.as_bytes().to_vec(),
                    session_timeout_ms: SESSION_TIMEOUT_MS,
                    rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
                },
            ),
            Phase::Sync(assignments) => (
                Asked::Sync,
                GroupMessage::Sync {
                    request,
                    member_id,
                    generation,
                    assignments: assignments.clone(),
                },
            ),
            Phase::FetchOffsets => (
                Asked::FetchOffsets,
                GroupMessage::OffsetFetch {
                    request,
                    partitions: member.owned.clone(),
                    member: None,
                },
            ),
            Phase::Revoke | Phase::Consume
                if (member.phase == Phase::Revoke || now >= member.next_commit)
                    && !member.uncommitted().is_empty() =>
            {
                member.next_commit = now + COMMIT_MS;
                let offsets = member.uncommitted();
                (
                    Asked::Commit(offsets.clone()),
                    GroupMessage::Commit {
                        request,
                        member_id,
                        generation,
                        offsets,
                    },
                )
            }
            Phase::Revoke => {
                member.rejoin(now, false);
                member.next_ask = now;
                return None;
            }
            Phase::Consume => return None,
        })
    }

    /// A member's process restarts: its successor knows nothing and joins anew. A
    /// crashed one's member id lapses with its session; one shut down `gracefully`
    /// leaves first (the LeaveGroup returned, sent without waiting for its answer, as
    /// a consumer's close sends it).
    pub fn restart(&mut self, m: usize, now: u64, gracefully: bool) -> Option<GroupMessage> {
        self.restarts += 1;
        self.abandon(m);
        let member_id = std::mem::take(&mut self.members[m].member_id);
        self.members[m] = Member::new();
        self.members[m].next_ask = now;
        if !gracefully || member_id.is_empty() {
            return None;
        }
        let request = self.request();
        if self.protocol == GroupProtocol::Consumer {
            return Some(kip848::leave(request, member_id));
        }
        Some(GroupMessage::Leave { request, member_id })
    }

    /// An answer from a coordinator; a line for the trace when something changed.
    pub fn answered(&mut self, now: u64, message: GroupMessage) -> Option<String> {
        let request = request_of(&message);
        let beat = |member: &Member| member.heartbeating.is_some_and(|(r, ..)| r == request);
        let beating = self.members.iter().position(beat);
        match (&message, beating) {
            (GroupMessage::Answer { code, .. }, Some(m)) => {
                return self.heartbeat_answered(m, now, *code);
            }
            (GroupMessage::ConsumerHeartbeatAnswer { result, .. }, Some(m)) => {
                return self.consumer_beat_answered(m, now, result.clone());
            }
            _ => {}
        }
        let m = self
            .members
            .iter()
            .position(|member| member.asking.as_ref().is_some_and(|(r, ..)| *r == request))?;
        let (_, sent_at, asked) = self.members[m].asking.take()?;
        match (asked, message) {
            (Asked::Join, GroupMessage::JoinAnswer { result, .. }) => self.joined(m, now, result),
            (Asked::Sync, GroupMessage::SyncAnswer { result, .. }) => self.synced(m, now, result),
            (Asked::FetchOffsets, GroupMessage::OffsetFetchAnswer { result, .. }) => {
                let line = format!("group member {m} reads the committed offsets: {result:?}");
                self.offsets_fetched(m, now, sent_at, result);
                Some(line)
            }
            (Asked::Commit(offsets), GroupMessage::Answer { code, .. }) => {
                let generation = self.members[m].generation;
                let line = format!(
                    "group member {m} commits {offsets:?} in generation {generation}: code {code}"
                );
                self.commit_answered(m, now, request, offsets, code);
                Some(line)
            }
            _ => None,
        }
    }

    fn joined(&mut self, m: usize, now: u64, result: JoinResult) -> Option<String> {
        let member = &mut self.members[m];
        match result.error {
            None => {
                member.member_id = result.member_id.clone();
                member.generation = result.generation_id;
                let assignments = if result.leader == result.member_id {
                    let ids: Vec<String> =
                        result.members.iter().map(|(id, ..)| id.clone()).collect();
                    assign_ranges(&ids)
                } else {
                    Vec::new()
                };
                member.phase = Phase::Sync(assignments);
                member.next_ask = now;
                None
            }
            Some(GroupError::MemberIdRequired) => {
                member.member_id = result.member_id;
                member.next_ask = now;
                None
            }
            Some(GroupError::UnknownMemberId) => {
                member.rejoin(now, true);
                None
            }
            Some(_) => {
                member.next_ask = now + BACKOFF_MS;
                None
            }
        }
    }

    fn synced(&mut self, m: usize, now: u64, result: SyncResult) -> Option<String> {
        let member = &mut self.members[m];
        match result.error {
            None => {
                member.owned = decode_assignment(&result.assignment);
                member.phase = if member.owned.is_empty() {
                    Phase::Consume
                } else {
                    Phase::FetchOffsets
                };
                member.next_ask = now;
                member.next_heartbeat = now + HEARTBEAT_MS;
                self.generations_joined += 1;
                let member = &self.members[m];
                Some(format!(
                    "group member {m} ({}) holds {:?} in generation {}",
                    member.member_id, member.owned, member.generation
                ))
            }
            Some(GroupError::UnknownMemberId) => {
                member.rejoin(now, true);
                None
            }
            Some(_) => {
                member.rejoin(now, false);
                None
            }
        }
    }

    /// The positions to read from, checked against every commit acknowledged
    /// before the question was sent (R-GROUP-2).
    fn offsets_fetched(
        &mut self,
        m: usize,
        now: u64,
        sent_at: u64,
        result: Result<Vec<(i32, Option<Committed>)>, ErrorCode>,
    ) {
        let Ok(offsets) = result else {
            self.members[m].next_ask = now + BACKOFF_MS;
            return;
        };
        for (partition, answered) in offsets {
            self.fetched_offsets.push((partition, sent_at, answered));
            let revoked = !self.members[m].owned.contains(&partition);
            if self.protocol == GroupProtocol::Consumer && revoked {
                // Taken back while the question was out.
                continue;
            }
            let committed = answered.map(|c| c.offset);
            let member = &mut self.members[m];
            member.positions.insert(partition, committed.unwrap_or(0));
            if let Some(c) = committed {
                member.committed.insert(partition, c);
            }
        }
        let member = &mut self.members[m];
        member
            .awaiting
            .retain(|p| !member.positions.contains_key(p));
        let all_read = member.awaiting.is_empty() && member.phase == Phase::FetchOffsets;
        if self.protocol == GroupProtocol::Classic || all_read {
            member.phase = Phase::Consume;
        }
        member.next_commit = now + COMMIT_MS;
    }

    /// A heartbeat's answer counts only in the generation it was sent in.
    fn heartbeat_answered(&mut self, m: usize, now: u64, code: ErrorCode) -> Option<String> {
        let member = &mut self.members[m];
        let sent_in = member
            .heartbeating
            .take()
            .map(|(.., generation)| generation);
        if sent_in != Some(member.generation) || member.phase == Phase::Join {
            return None;
        }
        match code {
            errors::REBALANCE_IN_PROGRESS if member.phase == Phase::Consume => {
                member.phase = Phase::Revoke;
                member.next_ask = now;
            }
            errors::REBALANCE_IN_PROGRESS | errors::ILLEGAL_GENERATION => member.rejoin(now, false),
            errors::UNKNOWN_MEMBER_ID => member.rejoin(now, true),
            _ => {}
        }
        None
    }

    fn commit_answered(
        &mut self,
        m: usize,
        now: u64,
        request: u64,
        offsets: Vec<(i32, u64)>,
        code: ErrorCode,
    ) {
        if code == errors::NONE {
            self.commits_acknowledged += 1;
            for &(partition, offset) in &offsets {
                self.acked_commits
                    .entry(partition)
                    .or_default()
                    .push((now, offset, request));
                self.members[m].committed.insert(partition, offset);
            }
        }
        if self.protocol == GroupProtocol::Consumer {
            return self.consumer_commit_answered(m, now, code);
        }
        let member = &mut self.members[m];
        match code {
            errors::REBALANCE_IN_PROGRESS | errors::ILLEGAL_GENERATION => member.rejoin(now, false),
            errors::UNKNOWN_MEMBER_ID => member.rejoin(now, true),
            _ if member.phase == Phase::Revoke => {
                member.rejoin(now, false);
                member.next_ask = now;
            }
            _ => {}
        }
    }

    /// The largest offset of `partition` whose commit was acknowledged: the group
    /// has read everything below.
    pub fn acknowledged_commit(&self, partition: i32) -> u64 {
        let acked = self.acked_commits.get(&partition);
        acked
            .into_iter()
            .flatten()
            .map(|(_, o, _)| *o)
            .max()
            .unwrap_or(0)
    }

    /// A fetch answer for a member's partition: the records from its position.
    /// Refused below the log start, the member goes on from there
    /// (auto.offset.reset "earliest").
    pub fn fetched(&mut self, request: u64, answer: Result<Vec<u8>, ErrorCode>, log_start: u64) {
        let Some((m, partition)) = self.members.iter().enumerate().find_map(|(m, member)| {
            let (p, _) = member.fetches.iter().find(|(_, (r, _))| *r == request)?;
            Some((m, *p))
        }) else {
            return;
        };
        self.members[m].fetches.remove(&partition);
        let records = match answer {
            Ok(records) => records,
            Err(errors::OFFSET_OUT_OF_RANGE) => {
                if let Some(position) = self.members[m].positions.get_mut(&partition) {
                    *position = (*position).max(log_start);
                }
                return;
            }
            Err(_) => return,
        };
        let seen = match fetched_records(partition, &records) {
            Ok(seen) => seen,
            Err(broken) => return self.violations.push(broken),
        };
        for (offset, value) in seen {
            let Some(position) = self.members[m].positions.get_mut(&partition) else {
                return;
            };
            if offset < *position {
                continue;
            }
            *position = offset + 1;
            let read = self.read.entry(partition).or_default();
            match read.get(&offset) {
                Some(before) if *before != value => self.violations.push(format!(
                    "I-6 p{partition}: group members read offset {offset} as {} and as {}",
                    String::from_utf8_lossy(before),
                    String::from_utf8_lossy(&value)
                )),
                Some(_) => self.redeliveries += 1,
                None => {
                    read.insert(offset, value);
                }
            }
        }
    }

    /// Commits of `m`'s that it waits for no more.
    fn abandon(&mut self, m: usize) {
        let member = &mut self.members[m];
        self.abandoned.extend(member.abandoned.drain(..));
        if let Some((request, _, Asked::Commit(_))) = member.asking.take() {
            self.abandoned.insert(request);
        }
    }

    /// A node applied the metadata to `index`, where the group's committed offsets
    /// are `offsets` (checked at the end, `history_violations`).
    pub fn applied(&mut self, index: u64, offsets: impl IntoIterator<Item = (i32, Committed)>) {
        for (partition, committed) in offsets {
            let history = self.applied.entry(partition).or_default();
            history.insert(index, committed);
        }
    }

    /// A KIP-848 group's record as a node applied it: no partition is held (kept
    /// or being revoked) by two members (R-GROUP-9), else a second member reads
    /// what the first has not committed yet.
    pub fn stored_assignment(&mut self, index: u64, record: &ConsumerGroupRecord) {
        let mut holder: BTreeMap<(&str, i32), &str> = BTreeMap::new();
        for member in &record.members {
            let held = member.assigned.iter().chain(&member.revoking);
            for topic in held {
                for &p in &topic.partitions {
                    let key = (topic.topic_id.as_str(), p);
                    let Some(other) = holder.insert(key, &member.member_id) else {
                        continue;
                    };
                    let pair = (p, other.to_string(), member.member_id.clone());
                    if !self.doubly_held.insert(pair) {
                        continue;
                    }
                    self.violations.push(format!(
                        "R-GROUP-9 p{p}: the group record applied at index {index} gives the \
                         partition to members {other} and {}",
                        member.member_id
                    ));
                }
            }
        }
    }

    /// `later` moved a committed offset below `earlier`: excused if its member had
    /// abandoned the request and its coordinator decided it after `earlier` was
    /// decided (a late request, decided anew as Kafka's coordinator would; not an old
    /// decision applied out of order, which the fence refuses). Without fences the
    /// order of decisions is unknown, and nothing is excused.
    fn excused(&self, later: &Committed, earlier: &Committed) -> bool {
        let abandoned = |r: &u64| {
            self.abandoned.contains(r) || self.members.iter().any(|m| m.abandoned.contains(r))
        };
        let decided_after = match (later.decided_at, earlier.decided_at) {
            (Some(l), Some(e)) => l >= e,
            _ => false,
        };
        later.request.as_ref().is_some_and(abandoned) && decided_after
    }

    /// A coordinator proposed `committed` for `partition`.
    pub fn proposed(&mut self, partition: i32, committed: Committed) {
        if let Some(request) = committed.request {
            self.proposed.insert((partition, request), committed);
        }
    }

    /// The applied commit of `request` to `partition`: as the history holds it, or,
    /// where one step applied it with a later commit, as it was proposed.
    fn commit_of(&self, partition: i32, request: u64) -> Option<&Committed> {
        let applied = self
            .applied
            .get(&partition)
            .and_then(|history| history.values().find(|c| c.request == Some(request)));
        applied.or_else(|| self.proposed.get(&(partition, request)))
    }

    /// The history at the end: a partition's committed offset never goes back in
    /// the applied metadata (R-GROUP-10), and an OffsetFetch answers at least every
    /// commit acknowledged before it was sent (R-GROUP-2), but for a commit its
    /// member abandoned.
    pub fn history_violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (partition, history) in &self.applied {
            let steps = history.iter().zip(history.iter().skip(1));
            for ((i, before), (j, after)) in steps {
                if after.offset < before.offset && !self.excused(after, before) {
                    found.push(format!(
                        "R-GROUP-10 p{partition}: the committed offset goes back from {} \
                         (applied index {i}) to {} (index {j})",
                        before.offset, after.offset
                    ));
                }
            }
        }
        for (partition, sent_at, answered) in &self.fetched_offsets {
            let before = self
                .acked_commits
                .get(partition)
                .into_iter()
                .flatten()
                .filter(|(at, ..)| at < sent_at)
                .map(|(at, offset, request)| (*offset, *at, *request))
                .max();
            let below = |(acked, ..): &(u64, u64, u64)| answered.is_none_or(|c| c.offset < *acked);
            let excused = |(_, _, request): &(u64, u64, u64)| {
                let earlier = self.commit_of(*partition, *request);
                answered.is_some_and(|c| earlier.is_some_and(|e| self.excused(&c, e)))
            };
            if let Some((acked, at, _)) = before.filter(below).filter(|a| !excused(a)) {
                found.push(format!(
                    "R-GROUP-2 p{partition}: an OffsetFetch sent at {sent_at} answered \
                     {:?}, below the commit of {acked} acknowledged at {at}",
                    answered.map(|c| c.offset)
                ));
            }
        }
        found
    }

    /// At the end, against the records the partition's leader holds below its high
    /// watermark and the offset the group has committed there: every record below
    /// the commit was read (no commit skips records, R-GROUP-10), and every record
    /// was read by some member once faults healed (R-GROUP-1).
    pub fn check(
        &self,
        partition: i32,
        held: &BTreeMap<u64, Vec<u8>>,
        committed: Option<u64>,
    ) -> Vec<String> {
        let empty = BTreeMap::new();
        let read = self.read.get(&partition).unwrap_or(&empty);
        let unread: Vec<u64> = held
            .keys()
            .filter(|o| !read.contains_key(o))
            .copied()
            .collect();
        let Some(&first) = unread.first() else {
            return Vec::new();
        };
        if committed.is_some_and(|c| first < c) {
            return vec![format!(
                "R-GROUP-10 p{partition}: the group committed {committed:?} but no member read \
                 offset {first}"
            )];
        }
        vec![format!(
            "R-GROUP-1 p{partition}: {} records were never read by the group once faults \
             healed (first offset {first}, committed {committed:?})",
            unread.len()
        )]
    }
}

fn request_of(message: &GroupMessage) -> u64 {
    match message {
        GroupMessage::Join { request, .. }
        | GroupMessage::JoinAnswer { request, .. }
        | GroupMessage::Sync { request, .. }
        | GroupMessage::SyncAnswer { request, .. }
        | GroupMessage::Heartbeat { request, .. }
        | GroupMessage::Commit { request, .. }
        | GroupMessage::OffsetFetch { request, .. }
        | GroupMessage::Leave { request, .. }
        | GroupMessage::Answer { request, .. }
        | GroupMessage::OffsetFetchAnswer { request, .. }
        | GroupMessage::ConsumerHeartbeat { request, .. }
        | GroupMessage::ConsumerHeartbeatAnswer { request, .. } => *request,
    }
}

/// The range assignor over the topic's partitions, members in id order.
fn assign_ranges(member_ids: &[String]) -> Vec<(String, Vec<u8>)> {
    let mut ids = member_ids.to_vec();
    ids.sort();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut owned: BTreeMap<&String, Vec<i32>> = ids.iter().map(|id| (id, Vec::new())).collect();
    for partition in 0..PARTITIONS {
        let id = &ids[partition as usize % ids.len()];
        owned.entry(id).or_default().push(partition);
    }
    owned
        .into_iter()
        .map(|(id, partitions)| {
            let text: Vec<String> = partitions.iter().map(|p| p.to_string()).collect();
            (id.clone(), text.join(",").into_bytes())
        })
        .collect()
}

fn decode_assignment(bytes: &[u8]) -> Vec<i32> {
    String::from_utf8_lossy(bytes)
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect()
}
