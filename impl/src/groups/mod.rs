//! The classic consumer group coordinator: membership, generations and rebalances.
//! Clients assign partitions themselves (range, cooperative-sticky, ...): the
//! coordinator elects a leader, hands it every member's subscription, and
//! distributes the leader's assignment. Membership is in memory; committed offsets
//! are replicated metadata (`MetadataCommand::CommitOffsets`) and survive restarts.
//! After a coordinator restart, members find their generation unknown and rejoin.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const INVALID_GROUP_ID: i16 = 24;

const MIN_SESSION_TIMEOUT_MS: i32 = 1_000;
const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup caller gets when the rebalance completes.
#[derive(Debug, Clone)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member's subscription, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen_ms: u64,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    rebalance_deadline_ms: u64,
}

impl Group {
    fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
        }
    }
}

/// A description of a group, for DescribeGroups and ListGroups.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    /// (member id, instance id, client id, host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

#[derive(Default)]
pub struct Coordinator {
    groups: Mutex<BTreeMap<String, Group>>,
    next_member: Mutex<u64>,
}

impl Coordinator {
    pub fn new() -> Self {
        Self::default()
    }

    fn member_id(&self, client_id: &str) -> String {
        let mut n = self.next_member.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        format!("{client_id}-{}-{}", uuid::Uuid::new_v4().simple(), *n)
    }

    /// Joins (or rejoins) a member. The receiver resolves when the rebalance
    /// completes; errors resolve at once.
    pub fn join(&self, request: JoinRequest, now_ms: u64) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let fail = |tx: oneshot::Sender<JoinResult>, code: i16, member_id: String| {
            let _ = tx.send(JoinResult {
                error_code: code,
                generation_id: -1,
                protocol_type: None,
                protocol_name: None,
                leader: String::new(),
                member_id,
                members: vec![],
            });
        };
        if request.group_id.is_empty() {
            fail(tx, INVALID_GROUP_ID, request.member_id);
            return rx;
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&request.session_timeout_ms)
        {
            fail(tx, INVALID_SESSION_TIMEOUT, request.member_id);
            return rx;
        }
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let group = groups
            .entry(request.group_id.clone())
            .or_insert_with(Group::new);
        if let Some(pt) = &group.protocol_type {
            if !group.members.is_empty() && *pt != request.protocol_type {
                fail(tx, INCONSISTENT_GROUP_PROTOCOL, request.member_id);
                return rx;
            }
        }
        // A static member (group.instance.id) keeps its member id across restarts.
        let existing_static = request.group_instance_id.as_ref().and_then(|iid| {
            group
                .members
                .iter()
                .find(|(_, m)| m.group_instance_id.as_ref() == Some(iid))
                .map(|(id, _)| id.clone())
        });
        let member_id = if request.member_id.is_empty() {
            existing_static.unwrap_or_else(|| self.member_id(&request.client_id))
        } else if group.members.contains_key(&request.member_id) {
            request.member_id.clone()
        } else {
            fail(tx, UNKNOWN_MEMBER_ID, request.member_id);
            return rx;
        };
        let rebalance_needed = match group.members.get(&member_id) {
            None => true,
            Some(m) => {
                m.protocols != request.protocols
                    || group.state != GroupState::Stable
                    || group.leader.as_deref() == Some(member_id.as_str())
            }
        };
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                group_instance_id: request.group_instance_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                protocols: vec![],
                assignment: Bytes::new(),
                last_seen_ms: now_ms,
                join_waiter: None,
                sync_waiter: None,
            });
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms.max(request.session_timeout_ms);
        member.last_seen_ms = now_ms;
        member.join_waiter = Some(tx);
        group.protocol_type = Some(request.protocol_type);
        if rebalance_needed || group.state != GroupState::PreparingRebalance {
            prepare_rebalance(group, now_ms);
        }
        maybe_complete_join(group, false);
        rx
    }

    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: u64,
    ) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let reply = |tx: oneshot::Sender<SyncResult>, code: i16| {
            let _ = tx.send(SyncResult {
                error_code: code,
                protocol_type: None,
                protocol_name: None,
                assignment: Bytes::new(),
            });
        };
        let Some(group) = groups.get_mut(group_id) else {
            reply(tx, UNKNOWN_MEMBER_ID);
            return rx;
        };
        if !group.members.contains_key(member_id) {
            reply(tx, UNKNOWN_MEMBER_ID);
            return rx;
        }
        if generation_id != group.generation {
            reply(tx, ILLEGAL_GENERATION);
            return rx;
        }
        match group.state {
            GroupState::PreparingRebalance => reply(tx, REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let assignment = group
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = tx.send(SyncResult {
                    error_code: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment,
                });
            }
            GroupState::CompletingRebalance | GroupState::Empty => {
                if let Some(m) = group.members.get_mut(member_id) {
                    m.last_seen_ms = now_ms;
                    m.sync_waiter = Some(tx);
                }
                if group.leader.as_deref() == Some(member_id) {
                    let given: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, m) in group.members.iter_mut() {
                        m.assignment = given.get(id).cloned().unwrap_or_default();
                    }
                    group.state = GroupState::Stable;
                    let (pt, pn) = (group.protocol_type.clone(), group.protocol_name.clone());
                    for m in group.members.values_mut() {
                        if let Some(waiter) = m.sync_waiter.take() {
                            let _ = waiter.send(SyncResult {
                                error_code: 0,
                                protocol_type: pt.clone(),
                                protocol_name: pn.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                }
            }
        }
        rx
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        now_ms: u64,
    ) -> i16 {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let Some(group) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        let state = group.state;
        let generation = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        member.last_seen_ms = now_ms;
        if generation_id != generation {
            return ILLEGAL_GENERATION;
        }
        match state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            _ => 0,
        }
    }

    /// Removes members; returns an error code per member id.
    pub fn leave(&self, group_id: &str, member_ids: &[String], now_ms: u64) -> Vec<(String, i16)> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let Some(group) = groups.get_mut(group_id) else {
            return member_ids
                .iter()
                .map(|m| (m.clone(), UNKNOWN_MEMBER_ID))
                .collect();
        };
        let mut results = Vec::new();
        for id in member_ids {
            match group.members.remove(id) {
                Some(_) => results.push((id.clone(), 0)),
                None => results.push((id.clone(), UNKNOWN_MEMBER_ID)),
            }
        }
        if results.iter().any(|(_, code)| *code == 0) {
            membership_changed(group, now_ms);
        }
        results
    }

    /// Expires members whose session lapsed and completes overdue rebalances.
    pub fn tick(&self, now_ms: u64) {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        for (group_id, group) in groups.iter_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_waiter.is_none()
                        && m.last_seen_ms + m.session_timeout_ms as u64 <= now_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            if !expired.is_empty() {
                tracing::info!(group = %group_id, ?expired, "member sessions expired");
                for id in &expired {
                    group.members.remove(id);
                }
                membership_changed(group, now_ms);
            }
            maybe_complete_join(group, false);
            if group.state == GroupState::PreparingRebalance
                && now_ms >= group.rebalance_deadline_ms
            {
                maybe_complete_join(group, true);
            }
        }
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.get(group_id).map(|g| summary(group_id, g))
    }

    pub fn list(&self) -> Vec<GroupSummary> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.iter().map(|(id, g)| summary(id, g)).collect()
    }

    /// True if the group has no live members (so it may be deleted).
    pub fn is_empty(&self, group_id: &str) -> bool {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.get(group_id).is_none_or(|g| g.members.is_empty())
    }

    pub fn remove(&self, group_id: &str) {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group_id);
    }

    /// Checks that a commit comes from a current member (generation >= 0) or from a
    /// client outside any generation (-1, "simple" commits).
    pub fn validate_commit(&self, group_id: &str, member_id: &str, generation_id: i32) -> i16 {
        if generation_id < 0 {
            return 0;
        }
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let Some(group) = groups.get(group_id) else {
            return ILLEGAL_GENERATION;
        };
        if !group.members.contains_key(member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        if generation_id != group.generation {
            return ILLEGAL_GENERATION;
        }
        if group.state == GroupState::PreparingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        0
    }
}

fn summary(group_id: &str, g: &Group) -> GroupSummary {
    GroupSummary {
        group_id: group_id.to_string(),
        state: g.state,
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol_name: g.protocol_name.clone().unwrap_or_default(),
        members: g
            .members
            .iter()
            .map(|(id, m)| {
                let metadata = g
                    .protocol_name
                    .as_ref()
                    .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                (
                    id.clone(),
                    m.group_instance_id.clone(),
                    m.client_id.clone(),
                    m.client_host.clone(),
                    metadata,
                    m.assignment.clone(),
                )
            })
            .collect(),
    }
}

fn prepare_rebalance(group: &mut Group, now_ms: u64) {
    if group.state != GroupState::PreparingRebalance {
        let timeout = group
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        group.rebalance_deadline_ms = now_ms + timeout.max(0) as u64;
        group.state = GroupState::PreparingRebalance;
        // Members waiting in SyncGroup learn that a new rebalance started.
        for m in group.members.values_mut() {
            if let Some(waiter) = m.sync_waiter.take() {
                let _ = waiter.send(SyncResult {
                    error_code: REBALANCE_IN_PROGRESS,
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Bytes::new(),
                });
            }
        }
    }
}

fn membership_changed(group: &mut Group, now_ms: u64) {
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.leader = None;
        group.protocol_name = None;
        group.generation += 1;
    } else {
        prepare_rebalance(group, now_ms);
        maybe_complete_join(group, false);
    }
}

/// Completes the join phase once every member has rejoined, or at the deadline
/// (`force`), dropping those that did not.
fn maybe_complete_join(group: &mut Group, force: bool) {
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let all_joined = group.members.values().all(|m| m.join_waiter.is_some());
    if !all_joined && !force {
        return;
    }
    group.members.retain(|_, m| m.join_waiter.is_some());
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.leader = None;
        return;
    }
    // The protocol every member supports, in the order of the leader's preference.
    let leader = group
        .leader
        .clone()
        .filter(|l| group.members.contains_key(l))
        .or_else(|| group.members.keys().next().cloned())
        .unwrap_or_default();
    let protocol = group.members.get(&leader).and_then(|lm| {
        lm.protocols.iter().map(|(n, _)| n.clone()).find(|name| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    });
    group.generation += 1;
    group.leader = Some(leader.clone());
    group.protocol_name = protocol.clone();
    group.state = GroupState::CompletingRebalance;
    let members: Vec<(String, Option<String>, Bytes)> = group
        .members
        .iter()
        .map(|(id, m)| {
            let metadata = protocol
                .as_ref()
                .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            (id.clone(), m.group_instance_id.clone(), metadata)
        })
        .collect();
    let error_code = if protocol.is_some() {
        0
    } else {
        INCONSISTENT_GROUP_PROTOCOL
    };
    for (id, m) in group.members.iter_mut() {
        if let Some(waiter) = m.join_waiter.take() {
            let _ = waiter.send(JoinResult {
                error_code,
                generation_id: group.generation,
                protocol_type: group.protocol_type.clone(),
                protocol_name: protocol.clone(),
                leader: leader.clone(),
                member_id: id.clone(),
                members: if *id == leader {
                    members.clone()
                } else {
                    vec![]
                },
            });
        }
    }
}
