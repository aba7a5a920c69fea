//! The classic consumer group coordinator (spec/groups.md, R-GROUP-*), as Kafka's
//! `ClassicGroup` and `GroupMetadataManager` run it, in a deterministic form: time
//! comes in as `now_ms`, member ids from a salt the shell picks and a counter, and a
//! request that must wait (JoinGroup, SyncGroup) is named by a `Token` the shell chose;
//! its answer leaves as a `Reply` from whichever later step completes it.
//!
//! Clients assign partitions themselves (range, cooperative-sticky, ...): the
//! coordinator elects a leader, hands it every member's subscription, and distributes
//! the leader's assignment. Committed offsets are replicated metadata, kept by the
//! shell; this core only decides whether a commit is allowed.

mod coordinators;
mod error;
mod group;
mod membership;
mod offsets;
mod rebalance;
mod record;
mod subscription;
#[cfg(test)]
mod tests;

pub use coordinators::{ChangedRecords, GroupCoordinators};
pub use error::{code_of, GroupError};
pub use group::GroupState;
pub use offsets::{
    offset_metadata_fits, CommitDecider, CommitFence, Committer, OFFSET_METADATA_MAX_BYTES,
};
pub use record::{GroupRecord, MemberRecord};

use bytes::Bytes;
use group::Group;
use std::collections::BTreeMap;

/// Names a request waiting for its answer; chosen by the shell, unique among waiters.
pub type Token = u64;

/// Broker settings of the coordinator, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// A rule switched off, for the group model (model/src/groups) only.
    #[cfg(feature = "inject-bugs")]
    pub bug: Option<GroupBug>,
}

/// Test-only faults, each re-introducing a way to lose or repeat consumed records;
/// only a build with the `inject-bugs` feature can switch one on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBug {
    /// A member's commit is refused while the group prepares a rebalance (the bug the
    /// issue 13 clients hit: the commit made on revoke is lost).
    CommitRefusedWhilePreparing,
    /// A commit is accepted whatever member and generation it names (a consumer whose
    /// session lapsed commits the offsets it had over its successor's).
    CommitsFromNonMembers,
    /// An accepted commit is proposed without its fence, so the metadata stores it
    /// even after its generation or its coordinator was superseded (R-GROUP-10).
    UnfencedCommits,
    /// KIP-848: a partition is given to its new owner before its old owner reported
    /// it gone, so both consume it and the old owner's commits land over the new
    /// one's (R-GROUP-9).
    AssignBeforeRevoked,
    /// A broker keeps the groups it no longer coordinates: their timers change them
    /// on, and each change it cannot store is proposed again at every tick.
    KeepUncoordinatedGroups,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            #[cfg(feature = "inject-bugs")]
            bug: None,
        }
    }
}

#[derive(Debug, Clone)]
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
    /// JoinGroup v4+: a first join without a member id is answered MEMBER_ID_REQUIRED
    /// with the id to join with (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a Stable group is told it leads, with
    /// the members, and to skip the assignment (KIP-814 `SkipAssignment`).
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, subscription) of every member, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader must not run the assignor: the group is Stable and keeps its
    /// assignment (JoinGroup v9+).
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(error: GroupError, member_id: &str) -> Self {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+ names the protocol the member believes in; checked when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: GroupError) -> Self {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// The answer to a waiting request, to be delivered by the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Join(Token, JoinResult),
    Sync(Token, SyncResult),
}

/// The replies of a step whose group records were stored (`stored`) or not: the
/// members are told only what a restarted coordinator would also know, so a failed
/// store fails the step's SyncGroup answers (COORDINATOR_NOT_AVAILABLE; they rejoin)
/// (R-GROUP-8).
pub fn settled_replies(replies: Vec<Reply>, stored: bool) -> Vec<Reply> {
    if stored {
        return replies;
    }
    replies
        .into_iter()
        .map(|reply| match reply {
            Reply::Sync(token, _) => Reply::Sync(
                token,
                SyncResult::error(GroupError::CoordinatorNotAvailable),
            ),
            join => join,
        })
        .collect()
}

/// A LeaveGroup member identity (v3+ sends several; older versions one member id).
#[derive(Debug, Clone)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol; empty unless Stable, as Kafka answers.
    pub protocol_name: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    /// Makes member ids of this coordinator unlike those of an earlier start.
    id_salt: u64,
    next_member: u64,
    /// Commits accepted so far: the sequence of the next one's fence.
    commit_decisions: u64,
}

impl Coordinator {
    /// `id_salt` should differ between starts of the process (the shell passes a
    /// random number; tests a fixed one, so runs repeat exactly).
    pub fn new(config: GroupConfig, id_salt: u64) -> Self {
        Coordinator {
            config,
            groups: BTreeMap::new(),
            id_salt,
            next_member: 0,
            commit_decisions: 0,
        }
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        self.next_member += 1;
        format!("{prefix}-{:016x}-{:08x}", self.id_salt, self.next_member)
    }

    /// The earliest time any group's timer runs out (`Group::next_deadline_ms`).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.groups
            .values()
            .filter_map(|g| g.next_deadline_ms())
            .min()
    }

    /// The group's generation, if the coordinator holds the group.
    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        self.groups.get(group_id).map(|g| summary(group_id, g))
    }

    pub fn list(&self) -> Vec<GroupSummary> {
        self.groups.iter().map(|(id, g)| summary(id, g)).collect()
    }

    /// DeleteGroups: only an empty (or unknown) group may go (NON_EMPTY_GROUP).
    pub fn delete(&mut self, group_id: &str) -> Result<(), GroupError> {
        match self.groups.get(group_id) {
            Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
            _ => {
                self.groups.remove(group_id);
                Ok(())
            }
        }
    }
}

fn summary(group_id: &str, g: &Group) -> GroupSummary {
    let stable = g.state == GroupState::Stable;
    let protocol = g.protocol_name.clone().unwrap_or_default();
    GroupSummary {
        group_id: group_id.to_string(),
        state: g.state,
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol_name: if stable {
            protocol.clone()
        } else {
            String::new()
        },
        members: g
            .members
            .iter()
            .map(|(id, m)| MemberSummary {
                member_id: id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect(),
    }
}
