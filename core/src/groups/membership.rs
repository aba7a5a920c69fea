//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup, with the answers Kafka's classic
//! coordinator gives in each group state (R-GROUP-1, R-GROUP-4, R-GROUP-6, R-GROUP-7).

use super::group::{Group, GroupState, Member};
use super::rebalance::{membership_changed, prepare_rebalance, try_complete_join};
use super::{
    Coordinator, GroupError, JoinRequest, JoinResult, LeavingMember, Reply, SyncRequest,
    SyncResult, Token,
};

impl Coordinator {
    /// JoinGroup. The answer comes back as a `Reply::Join` for `token`, at once or
    /// from the step that completes the rebalance.
    pub fn join(&mut self, request: JoinRequest, now_ms: u64, token: Token) -> Vec<Reply> {
        let mut replies = Vec::new();
        if let Err(error) = self.check_join(&request) {
            replies.push(Reply::Join(
                token,
                JoinResult::error(error, &request.member_id),
            ));
            return replies;
        }
        let result = if request.member_id.is_empty() {
            self.join_new_member(request, now_ms, token, &mut replies)
        } else {
            self.join_known_member(request, now_ms, token, &mut replies)
        };
        if let Err((error, member_id)) = result {
            replies.push(Reply::Join(token, JoinResult::error(error, &member_id)));
        }
        replies
    }

    fn check_join(&self, request: &JoinRequest) -> Result<(), GroupError> {
        if request.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        if !(min..=max).contains(&request.session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if !request.member_id.is_empty() && !self.groups.contains_key(&request.group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    fn join_new_member(
        &mut self,
        request: JoinRequest,
        now_ms: u64,
        token: Token,
        replies: &mut Vec<Reply>,
    ) -> Result<(), (GroupError, String)> {
        let max_size = self.config.max_size;
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let prefix = request
            .group_instance_id
            .clone()
            .unwrap_or_else(|| request.client_id.clone());
        let new_id = self.new_member_id(&prefix);
        let group = self
            .groups
            .entry(request.group_id.clone())
            .or_insert_with(Group::new);
        if !group.supports_protocols(&request.protocol_type, &request.protocols) {
            return Err((GroupError::InconsistentGroupProtocol, String::new()));
        }
        if let Some(iid) = request.group_instance_id.clone() {
            if let Some(old_id) = group.static_members.get(&iid).cloned() {
                let rejoin = Rejoin {
                    old_id: &old_id,
                    new_id,
                    delay_ms,
                };
                rejoin_static_member(group, rejoin, request, now_ms, token, replies);
                return Ok(());
            }
        }
        if group.members.len() + group.pending_members.len() >= max_size {
            return Err((GroupError::GroupMaxSizeReached, String::new()));
        }
        if request.require_known_member_id && request.group_instance_id.is_none() {
            let deadline = now_ms + request.session_timeout_ms.max(0) as u64;
            group.pending_members.insert(new_id.clone(), deadline);
            return Err((GroupError::MemberIdRequired, new_id));
        }
        add_member_and_rebalance(group, new_id, request, now_ms, token, delay_ms, replies);
        Ok(())
    }

    fn join_known_member(
        &mut self,
        request: JoinRequest,
        now_ms: u64,
        token: Token,
        replies: &mut Vec<Reply>,
    ) -> Result<(), (GroupError, String)> {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let max_size = self.config.max_size;
        let member_id = request.member_id.clone();
        let fail = |e: GroupError| Err((e, member_id.clone()));
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        if !group.supports_protocols(&request.protocol_type, &request.protocols) {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if group.pending_members.remove(&member_id).is_some() {
            if group.members.len() >= max_size {
                return fail(GroupError::GroupMaxSizeReached);
            }
            add_member_and_rebalance(group, member_id, request, now_ms, token, delay_ms, replies);
            return Ok(());
        }
        if let Err(e) = group.validate_member(&member_id, request.group_instance_id.as_deref()) {
            return fail(e);
        }
        let Some(member) = group.members.get(&member_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        let same_protocols = member.protocols == request.protocols;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::Empty => fail(GroupError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable
                if same_protocols && !(group.state == GroupState::Stable && is_leader) =>
            {
                // A repeated join of the current generation (a lost response, or a
                // follower checking in): answered from the generation, no rebalance.
                let with_members = is_leader && group.state == GroupState::CompletingRebalance;
                let result = group.join_result(&member_id, with_members);
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.touch(now_ms);
                }
                replies.push(Reply::Join(token, result));
                Ok(())
            }
            _ => {
                update_member_and_rebalance(
                    group, &member_id, request, now_ms, token, delay_ms, replies,
                );
                Ok(())
            }
        }
    }

    /// SyncGroup. The answer comes back as a `Reply::Sync` for `token`.
    pub fn sync(&mut self, request: SyncRequest, now_ms: u64, token: Token) -> Vec<Reply> {
        let mut replies = Vec::new();
        match self.groups.get_mut(&request.group_id) {
            None => replies.push(Reply::Sync(
                token,
                SyncResult::error(GroupError::UnknownMemberId),
            )),
            Some(group) => {
                if let Err(e) = sync_member(group, request, now_ms, token, &mut replies) {
                    replies.push(Reply::Sync(token, SyncResult::error(e)));
                }
            }
        }
        replies
    }

    /// Heartbeat: REBALANCE_IN_PROGRESS tells a current member to rejoin.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        group.validate_member(member_id, instance_id)?;
        if generation_id != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if let Some(m) = group.members.get_mut(member_id) {
            m.touch(now_ms);
        }
        match group.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup: one result per leaving member, plus the answers to requests the
    /// departures completed or cancelled.
    pub fn leave(
        &mut self,
        group_id: &str,
        leaving: &[LeavingMember],
        now_ms: u64,
    ) -> (Vec<Result<(), GroupError>>, Vec<Reply>) {
        let mut replies = Vec::new();
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let Some(group) = self.groups.get_mut(group_id) else {
            return (
                vec![Err(GroupError::UnknownMemberId); leaving.len()],
                replies,
            );
        };
        let results: Vec<Result<(), GroupError>> = leaving
            .iter()
            .map(|m| leave_one(group, m, &mut replies))
            .collect();
        if results.iter().any(Result::is_ok) {
            membership_changed(group, now_ms, delay_ms, &mut replies);
        }
        (results, replies)
    }
}

fn leave_one(
    group: &mut Group,
    leaving: &LeavingMember,
    replies: &mut Vec<Reply>,
) -> Result<(), GroupError> {
    let member_id = match &leaving.group_instance_id {
        Some(iid) => {
            let holder = group
                .static_members
                .get(iid)
                .cloned()
                .ok_or(GroupError::UnknownMemberId)?;
            if !leaving.member_id.is_empty() && leaving.member_id != holder {
                return Err(GroupError::FencedInstanceId);
            }
            holder
        }
        None => leaving.member_id.clone(),
    };
    if group.pending_members.remove(&member_id).is_some() {
        return Ok(());
    }
    if !group.members.contains_key(&member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    group.remove_member(&member_id, replies);
    Ok(())
}

fn sync_member(
    group: &mut Group,
    request: SyncRequest,
    now_ms: u64,
    token: Token,
    replies: &mut Vec<Reply>,
) -> Result<(), GroupError> {
    let member_id = request.member_id.as_str();
    group.validate_member(member_id, request.group_instance_id.as_deref())?;
    if request.generation_id != group.generation {
        return Err(GroupError::IllegalGeneration);
    }
    let type_differs = request
        .protocol_type
        .as_ref()
        .is_some_and(|t| Some(t) != group.protocol_type.as_ref());
    let name_differs = request
        .protocol_name
        .as_ref()
        .is_some_and(|n| Some(n) != group.protocol_name.as_ref());
    if type_differs || name_differs {
        return Err(GroupError::InconsistentGroupProtocol);
    }
    match group.state {
        GroupState::Empty => Err(GroupError::UnknownMemberId),
        GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
        GroupState::Stable => {
            group.pending_sync.remove(member_id);
            let member = group
                .members
                .get_mut(member_id)
                .ok_or(GroupError::UnknownMemberId)?;
            member.touch(now_ms);
            let result = SyncResult {
                error: None,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                assignment: member.assignment.clone(),
            };
            replies.push(Reply::Sync(token, result));
            Ok(())
        }
        GroupState::CompletingRebalance => {
            await_assignment(group, request, now_ms, token, replies);
            Ok(())
        }
    }
}

/// In CompletingRebalance every member waits for the leader's assignment; the
/// leader's SyncGroup carries it, makes the group Stable and answers everyone.
fn await_assignment(
    group: &mut Group,
    request: SyncRequest,
    now_ms: u64,
    token: Token,
    replies: &mut Vec<Reply>,
) {
    let member_id = request.member_id.as_str();
    group.pending_sync.remove(member_id);
    if let Some(member) = group.members.get_mut(member_id) {
        member.touch(now_ms);
        if let Some(old) = member.sync_waiter.replace(token) {
            replies.push(Reply::Sync(
                old,
                SyncResult::error(GroupError::RebalanceInProgress),
            ));
        }
    }
    if group.leader.as_deref() != Some(member_id) {
        return;
    }
    let mut given: std::collections::BTreeMap<String, bytes::Bytes> =
        request.assignments.into_iter().collect();
    group.state = GroupState::Stable;
    group.changed = true;
    let (protocol_type, protocol_name) = (group.protocol_type.clone(), group.protocol_name.clone());
    for (id, m) in group.members.iter_mut() {
        m.assignment = given.remove(id).unwrap_or_default();
        if let Some(waiter) = m.sync_waiter.take() {
            replies.push(Reply::Sync(
                waiter,
                SyncResult {
                    error: None,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: m.assignment.clone(),
                },
            ));
        }
    }
}

fn new_member(request: &JoinRequest, now_ms: u64, token: Token) -> Member {
    let mut member = Member {
        instance_id: request.group_instance_id.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        protocols: request.protocols.clone(),
        assignment: Default::default(),
        session_deadline_ms: 0,
        join_waiter: Some(token),
        sync_waiter: None,
    };
    member.touch(now_ms);
    member
}

fn add_member_and_rebalance(
    group: &mut Group,
    member_id: String,
    request: JoinRequest,
    now_ms: u64,
    token: Token,
    delay_ms: u64,
    replies: &mut Vec<Reply>,
) {
    if group.members.is_empty() {
        group.protocol_type = Some(request.protocol_type.clone());
    }
    if let Some(iid) = &request.group_instance_id {
        group.static_members.insert(iid.clone(), member_id.clone());
    }
    if let Some(delay) = &mut group.initial_delay {
        delay.new_member_added = true;
    }
    group
        .members
        .insert(member_id, new_member(&request, now_ms, token));
    if group.state != GroupState::PreparingRebalance {
        prepare_rebalance(group, now_ms, delay_ms, replies);
    }
    try_complete_join(group, now_ms, replies);
}

fn update_member_and_rebalance(
    group: &mut Group,
    member_id: &str,
    request: JoinRequest,
    now_ms: u64,
    token: Token,
    delay_ms: u64,
    replies: &mut Vec<Reply>,
) {
    if let Some(member) = group.members.get_mut(member_id) {
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.touch(now_ms);
        if let Some(old) = member.join_waiter.replace(token) {
            replies.push(Reply::Join(
                old,
                JoinResult::error(GroupError::RebalanceInProgress, member_id),
            ));
        }
    }
    if group.state != GroupState::PreparingRebalance {
        prepare_rebalance(group, now_ms, delay_ms, replies);
    }
    try_complete_join(group, now_ms, replies);
}

/// KIP-345: a static member that restarts gets a new member id in place of its old
/// one. The old incarnation's waiting requests are fenced. In a Stable group whose
/// protocols it still supports nothing else changes: no rebalance, and the answer
/// names the old leader id so the member does not think it must assign, or, from
/// JoinGroup v9, tells the leader it leads and must skip the assignment.
struct Rejoin<'a> {
    old_id: &'a str,
    new_id: String,
    delay_ms: u64,
}

fn rejoin_static_member(
    group: &mut Group,
    rejoin: Rejoin<'_>,
    request: JoinRequest,
    now_ms: u64,
    token: Token,
    replies: &mut Vec<Reply>,
) {
    let Rejoin {
        old_id,
        new_id,
        delay_ms,
    } = rejoin;
    let Some(mut member) = group.members.remove(old_id) else {
        return;
    };
    if let Some(waiter) = member.join_waiter.take() {
        replies.push(Reply::Join(
            waiter,
            JoinResult::error(GroupError::FencedInstanceId, old_id),
        ));
    }
    if let Some(waiter) = member.sync_waiter.take() {
        replies.push(Reply::Sync(
            waiter,
            SyncResult::error(GroupError::FencedInstanceId),
        ));
    }
    let leader_before = group.leader.clone().unwrap_or_default();
    if group.leader.as_deref() == Some(old_id) {
        group.leader = Some(new_id.clone());
    }
    if group.pending_sync.remove(old_id) {
        group.pending_sync.insert(new_id.clone());
    }
    let same_protocols = member.protocols == request.protocols;
    member.client_id = request.client_id.clone();
    member.client_host = request.client_host.clone();
    member.touch(now_ms);
    if let Some(iid) = &request.group_instance_id {
        group.static_members.insert(iid.clone(), new_id.clone());
    }
    group.members.insert(new_id.clone(), member);
    if group.state == GroupState::Stable && same_protocols {
        group.changed = true;
        let leads = group.leader.as_deref() == Some(new_id.as_str());
        let result = if request.supports_skip_assignment {
            // Kafka's KIP-814: the leader learns it leads, so it goes on watching the
            // topics' metadata, but must not assign: a Stable group would ignore it.
            let mut result = group.join_result(&new_id, leads);
            result.skip_assignment = leads;
            result
        } else {
            let mut result = group.join_result(&new_id, false);
            result.leader = leader_before;
            result
        };
        replies.push(Reply::Join(token, result));
        return;
    }
    update_member_and_rebalance(group, &new_id, request, now_ms, token, delay_ms, replies);
}
