//! Rebalance transitions and timers: PreparingRebalance -> CompletingRebalance ->
//! Stable, the initial delay of a new group, session expiry, and the rebalance and
//! pending-sync timeouts (R-GROUP-1, R-GROUP-5).

use super::group::{Group, GroupState, InitialDelay};
use super::{Coordinator, GroupError, Reply, SyncResult};

impl Coordinator {
    /// Moves time on: expires sessions and pending members, completes rebalances
    /// whose wait is over, removes members that never synced.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Reply> {
        let mut replies = Vec::new();
        let delay_ms = self.config.initial_rebalance_delay_ms;
        for group in self.groups.values_mut() {
            expire_pending_members(group, now_ms);
            let expired = group.expired_members(now_ms);
            for id in &expired {
                group.remove_member(id, &mut replies);
            }
            if !expired.is_empty() {
                membership_changed(group, now_ms, delay_ms, &mut replies);
            }
            expire_pending_sync(group, now_ms, delay_ms, &mut replies);
            if group.state == GroupState::PreparingRebalance {
                complete_join_if_due(group, now_ms, delay_ms, &mut replies);
            }
        }
        replies
    }
}

fn expire_pending_members(group: &mut Group, now_ms: u64) {
    group
        .pending_members
        .retain(|_, deadline| now_ms < *deadline);
}

/// Members of this generation that never sent SyncGroup within the rebalance timeout
/// are removed and the group rebalances without them.
fn expire_pending_sync(group: &mut Group, now_ms: u64, delay_ms: u64, replies: &mut Vec<Reply>) {
    let syncing = matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    );
    if !syncing || group.pending_sync.is_empty() || now_ms < group.sync_deadline_ms {
        return;
    }
    let stragglers: Vec<String> = group.pending_sync.iter().cloned().collect();
    for id in &stragglers {
        group.remove_member(id, replies);
    }
    prepare_rebalance(group, now_ms, delay_ms, replies);
    try_complete_join(group, now_ms, replies);
}

/// After a member left or lapsed: rebalance the rest (or, in PreparingRebalance,
/// see whether everyone left has now joined).
pub(crate) fn membership_changed(
    group: &mut Group,
    now_ms: u64,
    delay_ms: u64,
    replies: &mut Vec<Reply>,
) {
    match group.state {
        GroupState::Empty => {}
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, now_ms, delay_ms, replies);
            try_complete_join(group, now_ms, replies);
        }
        GroupState::PreparingRebalance => try_complete_join(group, now_ms, replies),
    }
}

/// Starts a rebalance. Members waiting in SyncGroup of the abandoned generation are
/// told REBALANCE_IN_PROGRESS. An empty group's first rebalance waits the initial
/// delay before completing, whoever has joined by then.
pub(crate) fn prepare_rebalance(
    group: &mut Group,
    now_ms: u64,
    delay_ms: u64,
    replies: &mut Vec<Reply>,
) {
    if group.state == GroupState::CompletingRebalance {
        for m in group.members.values_mut() {
            m.assignment = Default::default();
            if let Some(token) = m.sync_waiter.take() {
                replies.push(Reply::Sync(
                    token,
                    SyncResult::error(GroupError::RebalanceInProgress),
                ));
            }
        }
    }
    let rebalance_timeout = group.max_rebalance_timeout_ms();
    group.initial_delay =
        (group.state == GroupState::Empty && delay_ms > 0).then(|| InitialDelay {
            deadline_ms: now_ms + delay_ms,
            remaining_ms: rebalance_timeout.saturating_sub(delay_ms),
            new_member_added: false,
        });
    group.pending_sync.clear();
    group.join_deadline_ms = now_ms + rebalance_timeout;
    group.state = GroupState::PreparingRebalance;
}

/// Completes the join phase at once if every member has joined and no initial delay
/// is running.
pub(crate) fn try_complete_join(group: &mut Group, now_ms: u64, replies: &mut Vec<Reply>) {
    if group.state == GroupState::PreparingRebalance
        && group.initial_delay.is_none()
        && group.all_joined()
    {
        complete_join(group, now_ms, replies);
    }
}

fn complete_join_if_due(group: &mut Group, now_ms: u64, delay_ms: u64, replies: &mut Vec<Reply>) {
    if let Some(delay) = &mut group.initial_delay {
        if now_ms < delay.deadline_ms {
            return;
        }
        if delay.new_member_added && delay.remaining_ms > 0 {
            let step = delay_ms.min(delay.remaining_ms);
            delay.deadline_ms = now_ms + step;
            delay.remaining_ms -= step;
            delay.new_member_added = false;
            return;
        }
        group.initial_delay = None;
        complete_join(group, now_ms, replies);
    } else if now_ms >= group.join_deadline_ms {
        complete_join(group, now_ms, replies);
    } else {
        try_complete_join(group, now_ms, replies);
    }
}

/// Kafka's `onCompleteJoin`: members that did not rejoin are dropped, the generation
/// moves on, a protocol is chosen by vote, and every joined member gets its answer
/// (the leader with every subscription). An empty result leaves the group Empty.
fn complete_join(group: &mut Group, now_ms: u64, replies: &mut Vec<Reply>) {
    let not_rejoined: Vec<String> = group
        .members
        .iter()
        .filter(|(_, m)| m.join_waiter.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    for id in &not_rejoined {
        group.remove_member(id, replies);
    }
    group.pending_members.clear();
    group.generation += 1;
    let leader = group
        .leader
        .clone()
        .filter(|l| group.members.contains_key(l))
        .or_else(|| group.members.keys().next().cloned());
    let Some(leader) = leader else {
        group.state = GroupState::Empty;
        group.leader = None;
        group.protocol_name = None;
        group.changed = true;
        return;
    };
    group.protocol_name = group.select_protocol(&leader);
    group.leader = Some(leader.clone());
    group.state = GroupState::CompletingRebalance;
    group.pending_sync = group.members.keys().cloned().collect();
    group.sync_deadline_ms = now_ms + group.max_rebalance_timeout_ms();
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let result = group.join_result(&id, id == leader);
        if let Some(member) = group.members.get_mut(&id) {
            member.touch(now_ms);
            if let Some(token) = member.join_waiter.take() {
                replies.push(Reply::Join(token, result));
            }
        }
    }
}
