//! One classic group: its members, its generation and the state machine of Kafka's
//! `ClassicGroup` (Empty, PreparingRebalance, CompletingRebalance, Stable).

use super::{GroupError, JoinResult, Reply, SyncResult, Token};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Member {
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// The session lapses at this time unless a heartbeat, join, sync or commit
    /// moves it on; members waiting in a join or sync are kept alive regardless.
    pub session_deadline_ms: u64,
    pub join_waiter: Option<Token>,
    pub sync_waiter: Option<Token>,
}

impl Member {
    pub fn touch(&mut self, now_ms: u64) {
        self.session_deadline_ms = now_ms + self.session_timeout_ms.max(0) as u64;
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn keeps_session(&self, now_ms: u64) -> bool {
        self.join_waiter.is_some()
            || self.sync_waiter.is_some()
            || now_ms < self.session_deadline_ms
    }
}

/// The first rebalance of an empty group waits `group.initial.rebalance.delay.ms` so
/// members started together land in one generation; it is extended (up to the
/// rebalance timeout) while new members keep arriving, as Kafka's InitialDelayedJoin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InitialDelay {
    pub deadline_ms: u64,
    pub remaining_ms: u64,
    pub new_member_added: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Group {
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, not yet joined, and when
    /// they lapse. A rebalance waits for them as for members.
    pub pending_members: BTreeMap<String, u64>,
    /// group.instance.id -> the member id that currently holds it (KIP-345).
    pub static_members: BTreeMap<String, String>,
    pub join_deadline_ms: u64,
    pub initial_delay: Option<InitialDelay>,
    /// Members of this generation that have not sent SyncGroup yet, and when they are
    /// removed for it (Kafka's pending-sync timeout: a leader that never syncs must
    /// not hold the group in CompletingRebalance forever).
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline_ms: u64,
    /// The durable record (`GroupRecord`) differs from the one last handed out.
    pub changed: bool,
}

impl Group {
    pub fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            join_deadline_ms: 0,
            initial_delay: None,
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: 0,
            changed: false,
        }
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol type
    /// and list; otherwise the type must match and one of the member's protocols must
    /// be one every current member supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// The member id holding `instance_id` differs from `member_id`: the caller is an
    /// old incarnation of a static member (FENCED_INSTANCE_ID).
    pub fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id.is_some_and(|iid| {
            self.static_members
                .get(iid)
                .is_some_and(|holder| holder != member_id)
        })
    }

    /// Kafka's `validateMember`: the member exists and is not a fenced static member.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if self.is_fenced(member_id, instance_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    pub fn max_rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    /// Every member (and pending member) has sent its JoinGroup for this rebalance.
    pub fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Kafka's protocol vote: among the protocols every member supports, each member
    /// votes for its most preferred; the most votes win, ties to the leader's order.
    pub fn select_protocol(&self, leader: &str) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .get(leader)?
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let vote = |m: &Member| {
            m.protocols
                .iter()
                .map(|(n, _)| n)
                .find(|n| candidates.contains(n))
                .cloned()
        };
        let mut votes: Vec<(usize, &String)> = candidates
            .iter()
            .map(|c| {
                let count = self
                    .members
                    .values()
                    .filter(|m| vote(m).as_ref() == Some(*c))
                    .count();
                (count, *c)
            })
            .collect();
        // max_by_key keeps the last maximum; reverse so the leader's first one wins.
        votes.reverse();
        votes
            .into_iter()
            .max_by_key(|(count, _)| *count)
            .map(|(_, name)| name.clone())
    }

    /// Removes a member for good: its waiting requests are told UNKNOWN_MEMBER_ID.
    pub fn remove_member(&mut self, member_id: &str, replies: &mut Vec<Reply>) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(iid) = &member.instance_id {
            if self.static_members.get(iid).map(String::as_str) == Some(member_id) {
                self.static_members.remove(iid);
            }
        }
        self.pending_sync.remove(member_id);
        if let Some(token) = member.join_waiter {
            replies.push(Reply::Join(
                token,
                JoinResult::error(GroupError::UnknownMemberId, member_id),
            ));
        }
        if let Some(token) = member.sync_waiter {
            replies.push(Reply::Sync(
                token,
                SyncResult::error(GroupError::UnknownMemberId),
            ));
        }
    }

    /// The earliest time at which a timer of this group runs out (a member's
    /// session, a pending member, the join or initial delay of a rebalance, the
    /// pending-sync timeout), so the shell can tick then rather than a poll period
    /// later: Kafka expires sessions at their deadline, and clients time their next
    /// step by it (librdkafka's 0081 deletes a static group one session after its
    /// members closed).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.session_deadline_ms);
        let pending = self.pending_members.values().copied();
        let rebalancing = self.state == GroupState::PreparingRebalance;
        let join = rebalancing.then_some(self.join_deadline_ms);
        let delay = self
            .initial_delay
            .as_ref()
            .filter(|_| rebalancing)
            .map(|d| d.deadline_ms);
        let syncing = matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !self.pending_sync.is_empty();
        let sync = syncing.then_some(self.sync_deadline_ms);
        sessions
            .chain(pending)
            .chain(join)
            .chain(delay)
            .chain(sync)
            .min()
    }

    /// Members whose session lapsed at `now_ms`.
    pub fn expired_members(&self, now_ms: u64) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, m)| !m.keeps_session(now_ms))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The result every member of the current generation gets from JoinGroup; the
    /// leader also gets every member's subscription.
    pub fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .iter()
                    .map(|(id, m)| (id.clone(), m.instance_id.clone(), m.metadata_for(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    /// Subscribed topics, for OffsetDelete: read from each member's subscription in
    /// the consumer protocol. None if the group does not use the consumer protocol.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(super::subscription::topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }
}
