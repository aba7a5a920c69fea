//! ConsumerGroupHeartbeat: join, leave, epochs, the target assignment, and bringing
//! one member toward its target (revoke first, then assign what others released).

use super::assignor::{assign, Subscriptions};
use super::member::{Member, MemberState};
use super::{
    Assignment, ConsumerGroupRecord, ConsumerGroups, Group, Heartbeat, HeartbeatAnswer,
    HeartbeatError, TopicsView, ASSIGNORS, DEFAULT_ASSIGNOR,
};
use std::collections::{BTreeMap, BTreeSet};

const LEAVE: i32 = -1;
const LEAVE_STATIC: i32 = -2;

type Outcome = Result<HeartbeatAnswer, (HeartbeatError, String)>;

fn invalid(message: &str) -> (HeartbeatError, String) {
    (HeartbeatError::InvalidRequest, message.to_string())
}

impl ConsumerGroups {
    /// One heartbeat. `classic_taken`: the id belongs to a classic group with members.
    /// A change to the group's durable part marks it for `take_records`.
    pub fn heartbeat(
        &mut self,
        request: Heartbeat,
        topics: &TopicsView,
        now_ms: u64,
        classic_taken: bool,
    ) -> Outcome {
        let group_id = request.group_id.clone();
        let before = self.groups.get(&group_id).map(ConsumerGroupRecord::of);
        let outcome = self.step(request, topics, now_ms, classic_taken);
        if let Some(group) = self.groups.get_mut(&group_id) {
            if before.as_ref() != Some(&ConsumerGroupRecord::of(group)) {
                group.changed = true;
            }
        }
        outcome
    }

    fn step(
        &mut self,
        request: Heartbeat,
        topics: &TopicsView,
        now_ms: u64,
        classic_taken: bool,
    ) -> Outcome {
        check_request(&request)?;
        if classic_taken {
            let message = format!("group {} is a classic group", request.group_id);
            return Err((HeartbeatError::GroupIdNotFound, message));
        }
        if request.member_epoch == LEAVE {
            return self.leave(&request);
        }
        if request.member_epoch == LEAVE_STATIC {
            return self.leave_static(&request);
        }
        let member_id = match request.member_epoch {
            0 => self.admit(&request, now_ms)?,
            _ => self.check_epoch(&request)?,
        };
        let interval = self.config.heartbeat_interval_ms;
        let session = self.config.session_timeout_ms;
        let assign_before_revoked = self
            .config
            .bug_is(crate::groups::GroupBug::AssignBeforeRevoked);
        let group = self
            .groups
            .get_mut(&request.group_id)
            .ok_or_else(|| (HeartbeatError::UnknownMemberId, String::new()))?;
        let joined = request.member_epoch == 0;
        // One heartbeat moves the group epoch at most once, whatever it changed.
        let subscription_changed = update_member(group, &member_id, &request, now_ms + session);
        let metadata_changed = refresh_subscribed_metadata(group, topics);
        if joined || subscription_changed || metadata_changed {
            group.group_epoch += 1;
        }
        refresh_target(group);
        let epoch_before = group.members.get(&member_id).map_or(0, |m| m.epoch);
        let changed = reconcile(
            group,
            &member_id,
            request.owned.as_ref(),
            now_ms,
            assign_before_revoked,
        );
        let member = group
            .members
            .get(&member_id)
            .ok_or_else(|| (HeartbeatError::UnknownMemberId, String::new()))?;
        let out_of_sync = request
            .owned
            .as_ref()
            .is_some_and(|o| *o != member.assigned);
        let tell = joined || changed || member.epoch != epoch_before || out_of_sync;
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: interval,
            assignment: tell.then(|| member.assigned.clone()),
        })
    }

    /// A new member (epoch 0). A known id joining again starts over: whatever it held
    /// is released, as its client dropped it.
    fn admit(
        &mut self,
        request: &Heartbeat,
        now_ms: u64,
    ) -> Result<String, (HeartbeatError, String)> {
        let max_size = self.config.max_size;
        let member_id = if request.member_id.is_empty() {
            self.new_member_id()
        } else {
            request.member_id.clone()
        };
        let group = self
            .groups
            .entry(request.group_id.clone())
            .or_insert_with(new_group);
        if let Some(iid) = &request.instance_id {
            // A static member restarting takes its instance's place (KIP-345 here too),
            // but only once the instance was released by a leave with epoch -2: while
            // its holder is active a second process with the same instance id is a
            // misconfiguration, refused as Kafka refuses it.
            let old: Vec<(String, i32)> = group
                .members
                .iter()
                .filter(|(id, m)| m.instance_id.as_ref() == Some(iid) && **id != member_id)
                .map(|(id, m)| (id.clone(), m.epoch))
                .collect();
            if let Some((holder, _)) = old.iter().find(|(_, epoch)| *epoch != LEAVE_STATIC) {
                let message =
                    format!("instance id {iid} is held by member {holder}, which has not left");
                return Err((HeartbeatError::UnreleasedInstanceId, message));
            }
            for (id, _) in old {
                group.members.remove(&id);
            }
        }
        if !group.members.contains_key(&member_id) && group.members.len() >= max_size {
            return Err((HeartbeatError::GroupMaxSizeReached, String::new()));
        }
        group
            .members
            .insert(member_id.clone(), fresh_member(request, now_ms));
        Ok(member_id)
    }

    /// Kafka's epoch rule: the member's epoch, or its previous one if it owns no more
    /// than it was given (a heartbeat that crossed the bump); else FENCED_MEMBER_EPOCH.
    fn check_epoch(&self, request: &Heartbeat) -> Result<String, (HeartbeatError, String)> {
        let group = self.groups.get(&request.group_id);
        if let (Some(group), Some(iid)) = (group, &request.instance_id) {
            // The instance was taken over by a newer process: this one is a zombie.
            let holder = group
                .members
                .iter()
                .find(|(_, m)| m.instance_id.as_ref() == Some(iid))
                .map(|(id, _)| id);
            match holder {
                None => return Err((HeartbeatError::UnknownMemberId, String::new())),
                Some(id) if *id != request.member_id => {
                    let message = format!("instance id {iid} is now held by member {id}");
                    return Err((HeartbeatError::FencedInstanceId, message));
                }
                Some(_) => {}
            }
        }
        let member = group
            .and_then(|g| g.members.get(&request.member_id))
            .ok_or_else(|| (HeartbeatError::UnknownMemberId, String::new()))?;
        let owns_no_more = || {
            request.owned.as_ref().is_none_or(|owned| {
                owned.iter().all(|(t, ps)| {
                    let held = member.held();
                    ps.iter()
                        .all(|p| held.get(t).is_some_and(|h| h.contains(p)))
                })
            })
        };
        let current = request.member_epoch == member.epoch;
        let late = request.member_epoch == member.previous_epoch && owns_no_more();
        if !current && !late {
            let message = format!(
                "member epoch {} is not {}",
                request.member_epoch, member.epoch
            );
            return Err((HeartbeatError::FencedMemberEpoch, message));
        }
        Ok(request.member_id.clone())
    }

    /// A static member leaving with epoch -2 keeps its place and its partitions
    /// until its session lapses, so that its instance restarting within it takes
    /// them over without a rebalance (KIP-345 under KIP-848, as Kafka).
    fn leave_static(&mut self, request: &Heartbeat) -> Outcome {
        let member = self
            .groups
            .get_mut(&request.group_id)
            .and_then(|g| g.members.get_mut(&request.member_id))
            .ok_or_else(|| (HeartbeatError::UnknownMemberId, String::new()))?;
        if member.instance_id.is_none() {
            return self.leave(request);
        }
        member.epoch = LEAVE_STATIC;
        Ok(HeartbeatAnswer {
            member_id: request.member_id.clone(),
            member_epoch: LEAVE_STATIC,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    fn leave(&mut self, request: &Heartbeat) -> Outcome {
        let group = self
            .groups
            .get_mut(&request.group_id)
            .ok_or_else(|| (HeartbeatError::UnknownMemberId, String::new()))?;
        if group.members.remove(&request.member_id).is_none() {
            return Err((HeartbeatError::UnknownMemberId, String::new()));
        }
        group.target.remove(&request.member_id);
        group.group_epoch += 1;
        Ok(HeartbeatAnswer {
            member_id: request.member_id.clone(),
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Removes members whose session lapsed or who did not give up partitions within
    /// their rebalance timeout; the others are reassigned at their next heartbeat.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(String, String)> {
        let mut removed = Vec::new();
        for (group_id, group) in &mut self.groups {
            let gone: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    now_ms >= m.session_deadline_ms
                        || m.revocation_deadline_ms.is_some_and(|d| now_ms >= d)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                group.members.remove(&id);
                group.target.remove(&id);
                group.group_epoch += 1;
                group.changed = true;
                removed.push((group_id.clone(), id));
            }
        }
        removed
    }
}

fn check_request(request: &Heartbeat) -> Result<(), (HeartbeatError, String)> {
    if request.group_id.is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if request.subscribed_topic_regex.is_some() {
        return Err(invalid(
            "regular expression subscriptions are not supported",
        ));
    }
    if let Some(assignor) = &request.server_assignor {
        if !ASSIGNORS.contains(&assignor.as_str()) {
            let message = format!("assignor {assignor} is not supported");
            return Err((HeartbeatError::UnsupportedAssignor, message));
        }
    }
    match request.member_epoch {
        0 => {
            if request.rebalance_timeout_ms < 0 {
                return Err(invalid("RebalanceTimeoutMs must be provided when joining."));
            }
            if request.subscribed_topic_names.is_none() {
                return Err(invalid("SubscribedTopicNames must be set when joining."));
            }
            if request.owned.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(invalid("TopicPartitions must be empty when joining."));
            }
        }
        LEAVE | LEAVE_STATIC => {}
        e if e < 0 => return Err(invalid("MemberEpoch is invalid.")),
        _ => {}
    }
    if request.member_epoch != 0 && request.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    Ok(())
}

fn new_group() -> Group {
    Group {
        group_epoch: 0,
        assignment_epoch: 0,
        assignor: DEFAULT_ASSIGNOR.to_string(),
        members: BTreeMap::new(),
        target: BTreeMap::new(),
        subscribed_metadata: TopicsView::new(),
        changed: false,
    }
}

fn fresh_member(request: &Heartbeat, now_ms: u64) -> Member {
    Member {
        epoch: 0,
        previous_epoch: 0,
        state: MemberState::Stable,
        instance_id: request.instance_id.clone(),
        rack_id: request.rack_id.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed: BTreeSet::new(),
        server_assignor: None,
        assigned: Assignment::new(),
        revoking: Assignment::new(),
        session_deadline_ms: now_ms,
        revocation_deadline_ms: None,
    }
}

/// Applies what the heartbeat changes; true if the subscription (topics or assignor)
/// changed, which moves the group epoch.
fn update_member(
    group: &mut Group,
    member_id: &str,
    request: &Heartbeat,
    session_deadline: u64,
) -> bool {
    let Some(member) = group.members.get_mut(member_id) else {
        return false;
    };
    member.session_deadline_ms = session_deadline;
    if request.rebalance_timeout_ms >= 0 {
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
    }
    if let Some(rack) = &request.rack_id {
        member.rack_id = Some(rack.clone());
    }
    let mut bump = false;
    if let Some(names) = &request.subscribed_topic_names {
        let subscribed: BTreeSet<String> = names.iter().cloned().collect();
        bump |= subscribed != member.subscribed;
        member.subscribed = subscribed;
    }
    if let Some(assignor) = &request.server_assignor {
        bump |= member.server_assignor.as_ref() != Some(assignor);
        member.server_assignor = Some(assignor.clone());
    }
    bump
}

/// True if the subscribed topics changed in the metadata (created, deleted, more
/// partitions) since the target was computed.
fn refresh_subscribed_metadata(group: &mut Group, topics: &TopicsView) -> bool {
    let subscribed: BTreeSet<&String> =
        group.members.values().flat_map(|m| &m.subscribed).collect();
    let metadata: TopicsView = topics
        .iter()
        .filter(|(name, _)| subscribed.contains(name))
        .map(|(name, v)| (name.clone(), *v))
        .collect();
    if metadata == group.subscribed_metadata {
        return false;
    }
    group.subscribed_metadata = metadata;
    true
}

/// Recomputes the target assignment when the group epoch has moved past it.
fn refresh_target(group: &mut Group) {
    if group.assignment_epoch >= group.group_epoch {
        return;
    }
    // Kafka takes the assignor most members name; ties and none: the default.
    group.assignor = most_named_assignor(group);
    let members: Subscriptions<'_> = group
        .members
        .iter()
        .map(|(id, m)| (id.as_str(), &m.subscribed))
        .collect();
    group.target = assign(
        &group.assignor,
        &members,
        &group.subscribed_metadata,
        &group.target,
    );
    group.assignment_epoch = group.group_epoch;
}

fn most_named_assignor(group: &Group) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in group.members.values() {
        if let Some(a) = &m.server_assignor {
            *votes.entry(a.as_str()).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by_key(|(name, count)| (*count, *name == DEFAULT_ASSIGNOR))
        .map_or(DEFAULT_ASSIGNOR.to_string(), |(name, _)| name.to_string())
}

/// Moves one member toward its target; true if what it must act on changed.
fn reconcile(
    group: &mut Group,
    member_id: &str,
    owned: Option<&Assignment>,
    now_ms: u64,
    assign_before_revoked: bool,
) -> bool {
    let target = group.target.get(member_id).cloned().unwrap_or_default();
    let held_by_others = if assign_before_revoked {
        Assignment::new()
    } else {
        held_by_others(group, member_id)
    };
    let assignment_epoch = group.assignment_epoch;
    let Some(member) = group.members.get_mut(member_id) else {
        return false;
    };
    if member.state == MemberState::UnrevokedPartitions {
        let released = owned.is_some_and(|o| !overlaps(o, &member.revoking));
        if !released {
            return false;
        }
        member.revoking.clear();
        member.revocation_deadline_ms = None;
    }
    let revoke = minus(&member.assigned, &target);
    if !revoke.is_empty() {
        member.assigned = minus(&member.assigned, &revoke);
        member.revoking = revoke;
        member.state = MemberState::UnrevokedPartitions;
        member.revocation_deadline_ms = Some(now_ms + member.rebalance_timeout_ms.max(0) as u64);
        return true;
    }
    let wanted = minus(&target, &member.assigned);
    let free = minus(&wanted, &held_by_others);
    let grew = !free.is_empty();
    for (topic, partitions) in free {
        member.assigned.entry(topic).or_default().extend(partitions);
    }
    if member.epoch != assignment_epoch {
        member.previous_epoch = member.epoch;
        member.epoch = assignment_epoch;
    }
    member.state = if member.assigned == target {
        MemberState::Stable
    } else {
        MemberState::UnreleasedPartitions
    };
    grew
}

fn held_by_others(group: &Group, member_id: &str) -> Assignment {
    let mut held = Assignment::new();
    for (id, m) in &group.members {
        if id != member_id {
            for (topic, partitions) in m.held() {
                held.entry(topic).or_default().extend(partitions);
            }
        }
    }
    held
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(topic, partitions)| {
            let left: BTreeSet<i32> = match b.get(topic) {
                Some(other) => partitions.difference(other).copied().collect(),
                None => partitions.clone(),
            };
            (!left.is_empty()).then_some((*topic, left))
        })
        .collect()
}

fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(topic, ps)| b.get(topic).is_some_and(|other| !ps.is_disjoint(other)))
}
