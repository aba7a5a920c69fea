//! The consumer group protocol of KIP-848 (spec/groups.md, R-GROUP-9): members send
//! ConsumerGroupHeartbeat; the coordinator keeps a group epoch, computes each member's
//! target assignment on the server (the `uniform` and `range` assignors), and brings
//! every member to it one heartbeat at a time: partitions are first revoked from their
//! owner (the member keeps its epoch until it reports them gone) and only then given to
//! their new owner, so no partition is ever owned by two members and nobody stops
//! consuming what it keeps.
//!
//! Deterministic like the classic coordinator: time is `now_ms`, member ids come from a
//! salt and a counter, and topic metadata (names, ids, partition counts) is an input.

mod assignor;
mod member;
mod reconcile;
mod record;
#[cfg(test)]
mod tests;

pub use member::MemberState;
pub use record::{ConsumerGroupRecord, ConsumerMemberRecord, TopicPartitions};

use crate::errors::{self, ErrorCode};
use member::Member;
use std::collections::{BTreeMap, BTreeSet};

/// A topic id (Kafka's UUID) as 16 bytes.
pub type TopicId = [u8; 16];
/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;
/// What the coordinator knows of topics: name -> (id, partition count).
pub type TopicsView = BTreeMap<String, (TopicId, u32)>;

pub const DEFAULT_ASSIGNOR: &str = "uniform";
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// Broker settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`
    pub session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`
    pub max_size: usize,
    /// A rule switched off, for the simulator only.
    #[cfg(feature = "inject-bugs")]
    pub bug: Option<crate::groups::GroupBug>,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            #[cfg(feature = "inject-bugs")]
            bug: None,
        }
    }
}

impl ConsumerGroupConfig {
    fn bug_is(&self, bug: crate::groups::GroupBug) -> bool {
        #[cfg(feature = "inject-bugs")]
        return self.bug == Some(bug);
        #[cfg(not(feature = "inject-bugs"))]
        {
            let _ = bug;
            false
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatError {
    InvalidRequest,
    UnknownMemberId,
    FencedMemberEpoch,
    UnsupportedAssignor,
    GroupMaxSizeReached,
    /// The group id is taken by a group of the classic protocol.
    GroupIdNotFound,
    /// A new member names a static instance id that an active member holds.
    UnreleasedInstanceId,
    /// A member heartbeats with an instance id another member now holds.
    FencedInstanceId,
}

impl HeartbeatError {
    pub fn code(self) -> ErrorCode {
        match self {
            HeartbeatError::InvalidRequest => errors::INVALID_REQUEST,
            HeartbeatError::UnknownMemberId => errors::UNKNOWN_MEMBER_ID,
            HeartbeatError::FencedMemberEpoch => errors::FENCED_MEMBER_EPOCH,
            HeartbeatError::UnsupportedAssignor => errors::UNSUPPORTED_ASSIGNOR,
            HeartbeatError::GroupMaxSizeReached => errors::GROUP_MAX_SIZE_REACHED,
            HeartbeatError::GroupIdNotFound => errors::GROUP_ID_NOT_FOUND,
            HeartbeatError::UnreleasedInstanceId => errors::UNRELEASED_INSTANCE_ID,
            HeartbeatError::FencedInstanceId => errors::FENCED_INSTANCE_ID,
        }
    }
}

/// A ConsumerGroupHeartbeat, decoded. `None` fields mean "unchanged".
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves a static member's place; else the member's epoch.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it must act on it.
    pub assignment: Option<Assignment>,
}

/// A member as ConsumerGroupDescribe and the offset checks see it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: BTreeSet<String>,
    pub assigned: Assignment,
    pub target: Assignment,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    group_epoch: i32,
    assignment_epoch: i32,
    assignor: String,
    members: BTreeMap<String, Member>,
    /// Each member's target assignment at `assignment_epoch`.
    target: BTreeMap<String, Assignment>,
    /// The subscribed topics' ids and sizes the target was computed from; a change
    /// (a new topic, new partitions) bumps the group epoch.
    subscribed_metadata: TopicsView,
    /// The durable record differs from the one last handed out.
    changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroups {
    config: ConsumerGroupConfig,
    groups: BTreeMap<String, Group>,
    id_salt: u64,
    next_member: u64,
}

impl ConsumerGroups {
    pub fn new(config: ConsumerGroupConfig, id_salt: u64) -> Self {
        ConsumerGroups {
            config,
            groups: BTreeMap::new(),
            id_salt,
            next_member: 0,
        }
    }

    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    /// True if the group has members (so a classic member cannot take the id).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    fn new_member_id(&mut self) -> String {
        self.next_member += 1;
        format!("{:016x}{:016x}", self.id_salt, self.next_member)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let g = self.groups.get(group_id)?;
        Some(GroupView {
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| m.view(id, g.target.get(id).cloned().unwrap_or_default()))
                .collect(),
        })
    }

    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), state_name(g)))
            .collect()
    }

    /// DeleteGroups: only a group without members may go.
    pub fn delete(&mut self, group_id: &str) -> bool {
        if self.has_members(group_id) {
            return false;
        }
        self.groups.remove(group_id);
        true
    }

    /// OffsetCommit to a consumer group: the member must exist and name its current
    /// epoch; an admin commit (no member, epoch -1) only while the group is empty.
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), CommitRefusal> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(());
        };
        if member_id.is_empty() && member_epoch < 0 {
            return if group.members.is_empty() {
                Ok(())
            } else {
                Err(CommitRefusal::UnknownMemberId)
            };
        }
        let member = group
            .members
            .get(member_id)
            .ok_or(CommitRefusal::UnknownMemberId)?;
        if member_epoch != member.epoch {
            return Err(CommitRefusal::StaleMemberEpoch);
        }
        Ok(())
    }

    /// OffsetFetch v9 (Kafka's `validateOffsetFetch`): no member id with a negative
    /// epoch is an admin client or a classic consumer and may read; otherwise the
    /// member must exist with that epoch. Unlike a commit, a fetch without a member
    /// is allowed while the group has members.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), CommitRefusal> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(());
        };
        if member_id.is_none() && member_epoch < 0 {
            return Ok(());
        }
        let member = member_id
            .and_then(|id| group.members.get(id))
            .ok_or(CommitRefusal::UnknownMemberId)?;
        if member_epoch != member.epoch {
            return Err(CommitRefusal::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Subscribed topics of a group with members, for OffsetDelete.
    pub fn topics_in_use(&self, group_id: &str) -> BTreeSet<String> {
        self.groups
            .get(group_id)
            .map(|g| {
                g.members
                    .values()
                    .flat_map(|m| m.subscribed.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRefusal {
    UnknownMemberId,
    StaleMemberEpoch,
}

impl CommitRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            CommitRefusal::UnknownMemberId => errors::UNKNOWN_MEMBER_ID,
            CommitRefusal::StaleMemberEpoch => errors::STALE_MEMBER_EPOCH,
        }
    }
}

/// Kafka's consumer group states as DescribeGroups and ListGroups name them.
fn state_name(g: &Group) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else if g.assignment_epoch < g.group_epoch {
        "Assigning"
    } else if g
        .members
        .values()
        .any(|m| m.state != MemberState::Stable || m.epoch != g.assignment_epoch)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

/// The state of a group, if the coordinator holds it.
impl ConsumerGroups {
    pub fn state(&self, group_id: &str) -> Option<&'static str> {
        self.groups.get(group_id).map(state_name)
    }
}
