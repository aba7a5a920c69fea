//! A group's durable record (R-GROUP-8): what Kafka writes as its group metadata
//! value, kept in the replicated metadata so a coordinator that restarts or moves
//! resumes the generation instead of making every member rejoin.

use super::group::{Group, GroupState, Member};
use super::{Coordinator, GroupError, JoinResult, Reply, SyncResult};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupRecord {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's subscription in the chosen protocol.
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

impl GroupRecord {
    fn of(group: &Group) -> GroupRecord {
        let protocol = group.protocol_name.clone().unwrap_or_default();
        GroupRecord {
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader: group.leader.clone(),
            members: group
                .members
                .iter()
                .map(|(id, m)| MemberRecord {
                    member_id: id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscription: m.metadata_for(&protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// The group as a coordinator resumes it: Stable with its members, whose sessions
    /// start now (they find the new coordinator and heartbeat), or Empty.
    fn resume(&self, now_ms: u64) -> Group {
        let mut group = Group::new();
        group.generation = self.generation;
        group.protocol_type = self.protocol_type.clone();
        group.protocol_name = self.protocol_name.clone();
        group.leader = self.leader.clone();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        for m in &self.members {
            let mut member = Member {
                instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription.clone().into())],
                assignment: m.assignment.clone().into(),
                session_deadline_ms: 0,
                join_waiter: None,
                sync_waiter: None,
            };
            member.touch(now_ms);
            if let Some(iid) = &m.group_instance_id {
                group
                    .static_members
                    .insert(iid.clone(), m.member_id.clone());
            }
            group.members.insert(m.member_id.clone(), member);
        }
        let resumable = !group.members.is_empty() && group.leader.is_some();
        group.state = if resumable {
            GroupState::Stable
        } else {
            group.members.clear();
            group.static_members.clear();
            GroupState::Empty
        };
        group
    }
}

impl Coordinator {
    /// Takes over a stored group unless this coordinator holds it at the same or a
    /// later generation already (it wrote that record, or has moved on since).
    pub fn load(&mut self, group_id: &str, record: &GroupRecord, now_ms: u64) {
        let newer = self
            .groups
            .get(group_id)
            .is_none_or(|g| g.generation < record.generation);
        if newer {
            self.groups
                .insert(group_id.to_string(), record.resume(now_ms));
        }
    }

    /// Forgets `group_id`, as Kafka's coordinator unloads the groups of an offsets
    /// partition it no longer leads: requests waiting in it are told
    /// NOT_COORDINATOR and find the coordinator again. Should it coordinate the
    /// group again, it resumes from the stored record, not from a state its
    /// successor has moved past.
    pub fn unload(&mut self, group_id: &str) -> Vec<Reply> {
        let Some(group) = self.groups.remove(group_id) else {
            return Vec::new();
        };
        let mut replies = Vec::new();
        for (member_id, member) in &group.members {
            if let Some(token) = member.join_waiter {
                let refused = JoinResult::error(GroupError::NotCoordinator, member_id);
                replies.push(Reply::Join(token, refused));
            }
            if let Some(token) = member.sync_waiter {
                replies.push(Reply::Sync(
                    token,
                    SyncResult::error(GroupError::NotCoordinator),
                ));
            }
        }
        replies
    }

    /// The groups this coordinator holds.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Storing `group`'s record failed: hand it out again at the next step.
    pub fn record_unstored(&mut self, group_id: &str) {
        if let Some(group) = self.groups.get_mut(group_id) {
            group.changed = true;
        }
    }

    /// The records of groups whose durable part changed since the last call (a new
    /// Stable assignment, an Empty generation, a static member replaced). The shell
    /// stores them before it delivers the replies of the same step, so no member
    /// hears of a generation a restarted coordinator would not know.
    ///
    /// Only a Stable or Empty group has a record. Mid-rebalance, the generation
    /// still names the last one while the members and their (cleared) assignments
    /// are the next one's: resumed, that record would be a Stable group owning
    /// nothing of what its departed member held, and nothing would rebalance it
    /// (simulator seed 300541 of the full-disk storm, after a store failed and a
    /// member left). A change still unstored when a rebalance starts is dropped:
    /// the rebalance ends in a record of its own, as Kafka writes only at the
    /// leader's SyncGroup and when the group empties.
    pub fn take_records(&mut self) -> Vec<(String, GroupRecord)> {
        self.groups
            .iter_mut()
            .filter_map(|(id, g)| {
                let settled = matches!(g.state, GroupState::Stable | GroupState::Empty);
                (std::mem::take(&mut g.changed) && settled)
                    .then(|| (id.clone(), GroupRecord::of(g)))
            })
            .collect()
    }
}
