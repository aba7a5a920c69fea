//! Both group protocols as one broker holds them: the classic coordinator and the
//! KIP-848 groups share group ids, so the decisions that span them (who owns an id,
//! by which protocol's rules a commit or an offset read is checked, loading both
//! kinds of record) are made here once. The broker's `GroupService` and the
//! simulator's coordinator each hold one, so neither carries its own copy of them.

use super::{
    code_of, CommitDecider, CommitFence, Committer, Coordinator, GroupConfig, GroupError,
    GroupRecord, JoinRequest, JoinResult, Reply, Token,
};
use crate::consumer_groups::{
    ConsumerGroupConfig, ConsumerGroupRecord, ConsumerGroups, Heartbeat, HeartbeatAnswer,
    HeartbeatError, TopicsView,
};
use crate::errors::{self, ErrorCode};
use std::collections::BTreeSet;

pub struct GroupCoordinators {
    pub classic: Coordinator,
    pub consumer: ConsumerGroups,
}

/// The durable records a step changed, to store before its replies go out.
#[derive(Debug, Default)]
pub struct ChangedRecords {
    pub classic: Vec<(String, GroupRecord)>,
    pub consumer: Vec<(String, ConsumerGroupRecord)>,
}

impl ChangedRecords {
    pub fn is_empty(&self) -> bool {
        self.classic.is_empty() && self.consumer.is_empty()
    }

    pub fn len(&self) -> usize {
        self.classic.len() + self.consumer.len()
    }
}

impl GroupCoordinators {
    /// `id_salt` makes member ids of this start unlike those of an earlier one.
    pub fn new(config: GroupConfig, consumer_config: ConsumerGroupConfig, id_salt: u64) -> Self {
        GroupCoordinators {
            classic: Coordinator::new(config, id_salt),
            consumer: ConsumerGroups::new(consumer_config, id_salt),
        }
    }

    /// JoinGroup. A KIP-848 group with members holds the id: no conversion between
    /// the protocols (R-GROUP-9).
    pub fn join(&mut self, request: JoinRequest, now_ms: u64, token: Token) -> Vec<Reply> {
        if self.consumer.has_members(&request.group_id) {
            let refused =
                JoinResult::error(GroupError::InconsistentGroupProtocol, &request.member_id);
            return vec![Reply::Join(token, refused)];
        }
        self.classic.join(request, now_ms, token)
    }

    /// ConsumerGroupHeartbeat; a classic group with members holds the id.
    pub fn consumer_heartbeat(
        &mut self,
        request: Heartbeat,
        topics: &TopicsView,
        now_ms: u64,
    ) -> Result<HeartbeatAnswer, (HeartbeatError, String)> {
        let classic_taken = self
            .classic
            .describe(&request.group_id)
            .is_some_and(|g| !g.members.is_empty());
        self.consumer
            .heartbeat(request, topics, now_ms, classic_taken)
    }

    /// May an OffsetCommit be stored, by the rules of the group's protocol (a member
    /// epoch for KIP-848 groups, a generation for classic)? If so, the fence the
    /// metadata checks again when it applies the commit (R-GROUP-10); if not, the
    /// error code. The fence's sequence is the order of these decisions.
    pub fn commit_check(
        &mut self,
        group_id: &str,
        who: Committer<'_>,
        decider: CommitDecider,
        now_ms: u64,
    ) -> Result<Option<CommitFence>, ErrorCode> {
        let generation = if self.consumer.contains(group_id) {
            self.consumer
                .validate_commit(group_id, who.member_id, who.generation_id)
                .map_err(|refused| refused.code())?;
            None
        } else {
            let checked = self.classic.validate_commit(group_id, who, now_ms);
            if checked.is_err() {
                return Err(code_of(&checked));
            }
            Some(who.generation_id)
        };
        Ok(self.classic.commit_fence(decider, generation))
    }

    /// The error code for an OffsetFetch v9 naming `member_id` and `member_epoch`,
    /// NONE if it may read: only KIP-848 groups check them.
    pub fn offset_fetch_check(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> ErrorCode {
        let checked = self
            .consumer
            .validate_offset_fetch(group_id, member_id, member_epoch);
        checked.err().map_or(errors::NONE, |refused| refused.code())
    }

    /// Takes `group` over from its stored records where they are newer than what is
    /// held (after a restart, or when the group moved here) (R-GROUP-8). False if
    /// the KIP-848 record does not decode: that group starts over.
    pub fn load(
        &mut self,
        group_id: &str,
        classic: Option<&GroupRecord>,
        consumer: Option<&ConsumerGroupRecord>,
        now_ms: u64,
    ) -> bool {
        if let Some(record) = classic {
            self.classic.load(group_id, record, now_ms);
        }
        consumer.is_none_or(|record| self.consumer.load(group_id, record, now_ms))
    }

    /// The records changed since the last call.
    pub fn take_records(&mut self) -> ChangedRecords {
        ChangedRecords {
            classic: self.classic.take_records(),
            consumer: self.consumer.take_records(),
        }
    }

    /// Storing `records` failed: they are handed out again with the next change.
    pub fn records_unstored(&mut self, records: &ChangedRecords) {
        for (group, _) in &records.classic {
            self.classic.record_unstored(group);
        }
        for (group, _) in &records.consumer {
            self.consumer.record_unstored(group);
        }
    }

    /// Forgets every group `coordinates` says this broker does not coordinate now
    /// (R-GROUP-3): a deposed coordinator's state forks from the records its
    /// successor writes, and a change it could not store would be proposed again
    /// at every tick, each refused NOT_COORDINATOR (found by the simulator's KIP-848
    /// members: a deposed node proposed its lapsed members' record every 10 ms, and
    /// the metadata never settled). The replies go to requests that waited.
    pub fn unload_uncoordinated(&mut self, coordinates: impl Fn(&str) -> bool) -> Vec<Reply> {
        let mut replies = Vec::new();
        if self
            .classic
            .bug_is(super::GroupBug::KeepUncoordinatedGroups)
        {
            return replies;
        }
        for group in self.classic.group_ids() {
            if !coordinates(&group) {
                replies.extend(self.classic.unload(&group));
            }
        }
        for group in self.consumer.group_ids() {
            if !coordinates(&group) {
                self.consumer.unload(&group);
            }
        }
        replies
    }

    /// Both protocols' timers: lapsed KIP-848 members (returned as (group, member))
    /// and the classic coordinator's sessions and rebalances.
    pub fn tick(&mut self, now_ms: u64) -> (Vec<Reply>, Vec<(String, String)>) {
        let removed = self.consumer.tick(now_ms);
        (self.classic.tick(now_ms), removed)
    }

    /// OffsetDelete: the topics the group still consumes.
    pub fn topics_in_use(&self, group_id: &str) -> Result<BTreeSet<String>, GroupError> {
        if self.consumer.has_members(group_id) {
            return Ok(self.consumer.topics_in_use(group_id));
        }
        self.classic.topics_in_use(group_id)
    }

    /// DeleteGroups: only a group without members, of either protocol.
    pub fn delete(&mut self, group_id: &str) -> Result<(), GroupError> {
        if !self.consumer.delete(group_id) {
            return Err(GroupError::NonEmptyGroup);
        }
        self.classic.delete(group_id)
    }
}
