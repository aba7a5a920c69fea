//! What each action does: one call of the real coordinator for the coordinator's part,
//! and what a Kafka consumer of the eager classic protocol does with the answer.

use super::*;
use bytes::Bytes;
use chronik_core::groups::{
    Committer, Coordinator, GroupBug, GroupConfig, GroupError, JoinRequest, JoinResult,
    LeavingMember, Reply, SyncRequest, SyncResult,
};

impl GroupModel {
    pub fn init_state(&self) -> GState {
        let records = usize::from(PARTITIONS) * usize::from(self.records);
        GState {
            coordinator: Coordinator::new(self.config(), 0),
            stored: None,
            committed: vec![0; usize::from(PARTITIONS)],
            now: 0,
            consumers: (0..self.consumers)
                .map(|_| Consumer {
                    phase: Phase::Out,
                    member_id: String::new(),
                    generation: -1,
                    to_assign: Vec::new(),
                    owned: Vec::new(),
                })
                .collect(),
            ghost: Ghost {
                delivered: vec![0; records],
                ..Ghost::default()
            },
        }
    }

    /// The broker's defaults, but no initial rebalance delay: waiting is what `Tick`
    /// models, and the delay only postpones what the model explores anyway.
    fn config(&self) -> GroupConfig {
        let bug = match self.bug {
            Some(GroupModelBug::CommitRefusedWhilePreparing) => {
                Some(GroupBug::CommitRefusedWhilePreparing)
            }
            Some(GroupModelBug::CommitsFromNonMembers) => Some(GroupBug::CommitsFromNonMembers),
            Some(GroupModelBug::ForgetMembershipOnRestart) | None => None,
        };
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            bug,
            ..GroupConfig::default()
        }
    }

    pub fn enabled(&self, s: &GState, actions: &mut Vec<GroupAction>) {
        for (i, c) in s.consumers.iter().enumerate() {
            match c.phase {
                Phase::Out => actions.push(GroupAction::Join(i)),
                Phase::AwaitingSync => actions.push(GroupAction::Sync(i)),
                Phase::Stable => {
                    for (p, next) in &c.owned {
                        if *next < self.records {
                            actions.push(GroupAction::Consume(i, *p));
                        }
                    }
                    if c.owned
                        .iter()
                        .any(|(p, next)| s.committed[usize::from(*p)] != *next)
                    {
                        actions.push(GroupAction::Commit(i));
                    }
                    actions.push(GroupAction::Heartbeat(i));
                    actions.push(GroupAction::Leave(i));
                }
                Phase::Joining | Phase::Syncing | Phase::Gone => {}
            }
            if c.phase != Phase::Gone {
                actions.push(GroupAction::Crash(i));
            }
        }
        actions.push(GroupAction::Tick);
        actions.push(GroupAction::RestartCoordinator);
    }

    pub fn step(&self, last: &GState, action: GroupAction) -> GState {
        let mut s = last.clone();
        match action {
            GroupAction::Join(c) => self.join(&mut s, c),
            GroupAction::Sync(c) => sync(&mut s, c),
            GroupAction::Consume(c, p) => self.consume(&mut s, c, p),
            GroupAction::Commit(c) => commit(&mut s, c),
            GroupAction::Heartbeat(c) => heartbeat(&mut s, c),
            GroupAction::Leave(c) => leave(&mut s, c),
            GroupAction::Crash(c) => {
                s.consumers[c].phase = Phase::Gone;
                s.ghost.crashes += 1;
                s.ghost.lossy = true;
            }
            GroupAction::Tick => tick(&mut s),
            GroupAction::RestartCoordinator => self.restart(&mut s),
        }
        s
    }

    fn join(&self, s: &mut GState, c: usize) {
        s.ghost.joins += 1;
        s.consumers[c].phase = Phase::Joining;
        let request = JoinRequest {
            group_id: GROUP.into(),
            member_id: s.consumers[c].member_id.clone(),
            group_instance_id: None,
            client_id: format!("c{c}"),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: SESSION_MS,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription())],
            require_known_member_id: false,
            supports_skip_assignment: false,
        };
        let replies = s.coordinator.join(request, s.now, join_token(c));
        settle(s, replies);
    }

    fn consume(&self, s: &mut GState, c: usize, p: u8) {
        let Some(owned) = s.consumers[c].owned.iter_mut().find(|(q, _)| *q == p) else {
            return;
        };
        let record = usize::from(p) * usize::from(self.records) + usize::from(owned.1);
        owned.1 += 1;
        s.ghost.delivered[record] = s.ghost.delivered[record].saturating_add(1);
    }

    /// A restarted coordinator starts empty and resumes the group from its record;
    /// requests in flight die with the connection, and their clients retry.
    fn restart(&self, s: &mut GState) {
        s.ghost.restarts += 1;
        s.coordinator = Coordinator::new(self.config(), u64::from(s.ghost.restarts));
        if self.bug != Some(GroupModelBug::ForgetMembershipOnRestart) {
            if let Some(record) = &s.stored {
                s.coordinator.load(GROUP, record, s.now);
            }
        }
        for consumer in &mut s.consumers {
            if matches!(consumer.phase, Phase::Joining | Phase::Syncing) {
                consumer.phase = Phase::Out;
            }
        }
    }
}

fn join_token(c: usize) -> u64 {
    2 * c as u64 + 1
}

fn sync_token(c: usize) -> u64 {
    2 * c as u64 + 2
}

fn subscription() -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&(TOPIC.len() as i16).to_be_bytes());
    out.extend_from_slice(TOPIC.as_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.into()
}

/// The range assignor over one topic: members in id order, partitions in runs.
fn range_assignment(members: &[String]) -> Vec<(String, Bytes)> {
    let mut ids: Vec<&String> = members.iter().collect();
    ids.sort();
    let n = ids.len().max(1);
    let per = usize::from(PARTITIONS) / n;
    let extra = usize::from(PARTITIONS) % n;
    let mut next = 0u8;
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let count = per + usize::from(i < extra);
            let partitions: Vec<u8> = (next..next + count as u8).collect();
            next += count as u8;
            ((*id).clone(), Bytes::from(partitions))
        })
        .collect()
}

fn sync(s: &mut GState, c: usize) {
    let consumer = &mut s.consumers[c];
    consumer.phase = Phase::Syncing;
    let request = SyncRequest {
        group_id: GROUP.into(),
        member_id: consumer.member_id.clone(),
        group_instance_id: None,
        generation_id: consumer.generation,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: range_assignment(&consumer.to_assign),
    };
    let replies = s.coordinator.sync(request, s.now, sync_token(c));
    settle(s, replies);
}

/// Commits the positions of every owned partition; true if the coordinator took it.
fn commit_owned(s: &mut GState, c: usize) -> bool {
    let consumer = &s.consumers[c];
    let who = Committer {
        member_id: &consumer.member_id,
        group_instance_id: None,
        generation_id: consumer.generation,
        api_version: 8,
    };
    if s.coordinator.validate_commit(GROUP, who, s.now).is_err() {
        return false;
    }
    for (p, next) in consumer.owned.clone() {
        let committed = &mut s.committed[usize::from(p)];
        if next < *committed {
            s.ghost.committed_backwards = true;
        }
        *committed = next;
    }
    true
}

fn commit(s: &mut GState, c: usize) {
    commit_owned(s, c);
}

/// REBALANCE_IN_PROGRESS: the eager protocol revokes everything, committing first,
/// then rejoins. Any other error: the partitions are lost, uncommitted.
fn heartbeat(s: &mut GState, c: usize) {
    let consumer = &s.consumers[c];
    let answer =
        s.coordinator
            .heartbeat(GROUP, &consumer.member_id, None, consumer.generation, s.now);
    match answer {
        Ok(()) => {}
        Err(GroupError::RebalanceInProgress) => {
            commit_owned(s, c);
            rejoin(&mut s.consumers[c], false);
        }
        Err(e) => rejoin(&mut s.consumers[c], e == GroupError::UnknownMemberId),
    }
}

fn rejoin(consumer: &mut Consumer, forget_id: bool) {
    consumer.owned.clear();
    consumer.to_assign.clear();
    consumer.phase = Phase::Out;
    if forget_id {
        consumer.member_id.clear();
        consumer.generation = -1;
    }
}

fn leave(s: &mut GState, c: usize) {
    commit_owned(s, c);
    let leaving = LeavingMember {
        member_id: s.consumers[c].member_id.clone(),
        group_instance_id: None,
    };
    let (_, replies) = s.coordinator.leave(GROUP, &[leaving], s.now);
    s.consumers[c].phase = Phase::Gone;
    s.consumers[c].owned.clear();
    settle(s, replies);
}

/// Time passes. A live consumer whose session lapses loses its partitions without a
/// commit (as a paused Kafka consumer does), so the run counts as lossy.
fn tick(s: &mut GState) {
    s.ghost.ticks += 1;
    s.now += TICK_MS;
    let before = members(s);
    let replies = s.coordinator.tick(s.now);
    let after = members(s);
    let lapsed_live = s.consumers.iter().any(|c| {
        c.phase != Phase::Gone && before.contains(&c.member_id) && !after.contains(&c.member_id)
    });
    if lapsed_live {
        s.ghost.lossy = true;
    }
    settle(s, replies);
}

fn members(s: &GState) -> Vec<String> {
    s.coordinator
        .describe(GROUP)
        .map(|g| g.members.into_iter().map(|m| m.member_id).collect())
        .unwrap_or_default()
}

/// As the broker's shell does: store the records the step changed, then deliver.
fn settle(s: &mut GState, replies: Vec<Reply>) {
    if let Some((_, record)) = s.coordinator.take_records().pop() {
        s.stored = Some(record);
    }
    for reply in replies {
        match reply {
            Reply::Join(token, result) => on_join(s, token, result),
            Reply::Sync(token, result) => on_sync(s, token, result),
        }
    }
}

/// The consumer a reply is for, if it waits for it. A crashed consumer's reply is
/// dropped with its connection; one for a live consumer that waits for no such reply
/// is marked as stray.
fn waiting(s: &mut GState, token: u64, phase: Phase) -> Option<&mut Consumer> {
    let c = usize::try_from((token - 1) / 2).ok()?;
    let state = s.consumers.get(c).map(|consumer| consumer.phase.clone());
    match state {
        Some(Phase::Gone) => None,
        Some(p) if p == phase => s.consumers.get_mut(c),
        _ => {
            s.ghost.stray_reply = true;
            None
        }
    }
}

fn on_join(s: &mut GState, token: u64, result: JoinResult) {
    let Some(consumer) = waiting(s, token, Phase::Joining) else {
        return;
    };
    match result.error {
        None => {
            consumer.member_id = result.member_id.clone();
            consumer.generation = result.generation_id;
            consumer.to_assign = result.members.into_iter().map(|(id, _, _)| id).collect();
            consumer.phase = Phase::AwaitingSync;
        }
        Some(e) => rejoin(consumer, e == GroupError::UnknownMemberId),
    }
}

fn on_sync(s: &mut GState, token: u64, result: SyncResult) {
    let committed = s.committed.clone();
    let Some(consumer) = waiting(s, token, Phase::Syncing) else {
        return;
    };
    match result.error {
        None => {
            consumer.owned = result
                .assignment
                .iter()
                .map(|p| (*p, committed[usize::from(*p)]))
                .collect();
            consumer.phase = Phase::Stable;
        }
        Some(e) => rejoin(consumer, e == GroupError::UnknownMemberId),
    }
}
