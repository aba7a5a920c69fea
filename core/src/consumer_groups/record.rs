//! A KIP-848 group's durable record (R-GROUP-9): epochs, target assignment, and each
//! member's epoch, subscription and partitions, as Kafka keeps them in its records.
//! Stored in the replicated metadata before a heartbeat that changed them is
//! answered, so a coordinator that restarts or takes the group over resumes it and
//! members keep their epochs and partitions.

use super::member::{Member, MemberState};
use super::{Assignment, ConsumerGroups, Group, TopicId, TopicsView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsumerGroupRecord {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberRecord>,
    /// (member id, its target assignment)
    pub target: Vec<(String, Vec<TopicPartitions>)>,
    /// (topic name, topic id, partitions) the target was computed from.
    pub subscribed_metadata: Vec<(String, String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsumerMemberRecord {
    pub member_id: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    pub server_assignor: Option<String>,
    pub assigned: Vec<TopicPartitions>,
    pub revoking: Vec<TopicPartitions>,
}

/// A topic id in hex (JSON maps need string keys) and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopicPartitions {
    pub topic_id: String,
    pub partitions: Vec<i32>,
}

fn hex(id: &TopicId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// None for text that is not 32 hex digits: such a record was not written by us.
fn unhex(text: &str) -> Option<TopicId> {
    let mut id = [0u8; 16];
    if text.len() != 32 {
        return None;
    }
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

fn to_record(a: &Assignment) -> Vec<TopicPartitions> {
    a.iter()
        .map(|(id, ps)| TopicPartitions {
            topic_id: hex(id),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn from_record(a: &[TopicPartitions]) -> Option<Assignment> {
    a.iter()
        .map(|t| Some((unhex(&t.topic_id)?, t.partitions.iter().copied().collect())))
        .collect()
}

impl ConsumerGroupRecord {
    pub(super) fn of(g: &Group) -> Self {
        ConsumerGroupRecord {
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| ConsumerMemberRecord {
                    member_id: id.clone(),
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    state: m.state,
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed: m.subscribed.iter().cloned().collect(),
                    server_assignor: m.server_assignor.clone(),
                    assigned: to_record(&m.assigned),
                    revoking: to_record(&m.revoking),
                })
                .collect(),
            target: g
                .target
                .iter()
                .map(|(id, a)| (id.clone(), to_record(a)))
                .collect(),
            subscribed_metadata: g
                .subscribed_metadata
                .iter()
                .map(|(name, (id, count))| (name.clone(), hex(id), *count))
                .collect(),
        }
    }

    /// The group as a coordinator resumes it: every member's session (and revocation
    /// deadline, if it is revoking) starts now.
    fn resume(&self, now_ms: u64, session_timeout_ms: u64) -> Option<Group> {
        let mut members = BTreeMap::new();
        for m in &self.members {
            let revoking = from_record(&m.revoking)?;
            let revocation_deadline_ms =
                (!revoking.is_empty()).then(|| now_ms + m.rebalance_timeout_ms.max(0) as u64);
            let member = Member {
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                state: m.state,
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                subscribed: m.subscribed.iter().cloned().collect(),
                server_assignor: m.server_assignor.clone(),
                assigned: from_record(&m.assigned)?,
                revoking,
                session_deadline_ms: now_ms + session_timeout_ms,
                revocation_deadline_ms,
            };
            members.insert(m.member_id.clone(), member);
        }
        let target = self
            .target
            .iter()
            .map(|(id, a)| Some((id.clone(), from_record(a)?)))
            .collect::<Option<_>>()?;
        let subscribed_metadata: TopicsView = self
            .subscribed_metadata
            .iter()
            .map(|(name, id, count)| Some((name.clone(), (unhex(id)?, *count))))
            .collect::<Option<_>>()?;
        Some(Group {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members,
            target,
            subscribed_metadata,
            changed: false,
        })
    }
}

impl ConsumerGroups {
    /// Takes over a stored group unless this coordinator holds it at the same or a
    /// later group epoch. A record that does not decode is ignored (and reported).
    pub fn load(&mut self, group_id: &str, record: &ConsumerGroupRecord, now_ms: u64) -> bool {
        let newer = self
            .groups
            .get(group_id)
            .is_none_or(|g| g.group_epoch < record.group_epoch);
        if !newer {
            return true;
        }
        match record.resume(now_ms, self.config.session_timeout_ms) {
            Some(group) => {
                self.groups.insert(group_id.to_string(), group);
                true
            }
            None => false,
        }
    }

    /// Records of groups whose durable part changed since the last call; the shell
    /// stores them before it answers the heartbeat that changed them.
    pub fn take_records(&mut self) -> Vec<(String, ConsumerGroupRecord)> {
        self.groups
            .iter_mut()
            .filter_map(|(id, g)| {
                std::mem::take(&mut g.changed).then(|| (id.clone(), ConsumerGroupRecord::of(g)))
            })
            .collect()
    }

    /// Forgets `group_id` (this broker no longer coordinates it): should it
    /// coordinate the group again, it resumes from the stored record.
    pub fn unload(&mut self, group_id: &str) {
        self.groups.remove(group_id);
    }

    /// The groups this coordinator holds.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Storing `group`'s record failed: hand it out again with the next change.
    pub fn record_unstored(&mut self, group_id: &str) {
        if let Some(g) = self.groups.get_mut(group_id) {
            g.changed = true;
        }
    }
}
