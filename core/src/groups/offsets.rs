//! Who may commit or delete a group's offsets (R-GROUP-2, R-GROUP-4). The offsets
//! themselves are replicated metadata the shell proposes; these are the checks
//! Kafka's `ClassicGroup.validateOffsetCommit` and `validateOffsetDelete` make.

use super::group::GroupState;
use super::{Coordinator, GroupBug, GroupError};
use std::collections::BTreeSet;

/// The identity an OffsetCommit carries.
#[derive(Debug, Clone, Copy)]
pub struct Committer<'a> {
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    /// -1 from a client outside group management (the admin client, `assign()`).
    pub generation_id: i32,
    /// OffsetCommit v9+ answers GROUP_ID_NOT_FOUND for an unknown group where older
    /// versions answer ILLEGAL_GENERATION.
    pub api_version: i16,
}

impl Coordinator {
    /// A rule switched off by the group model; never true in the broker's build.
    fn bug_is(&self, bug: GroupBug) -> bool {
        #[cfg(feature = "inject-bugs")]
        return self.config.bug == Some(bug);
        #[cfg(not(feature = "inject-bugs"))]
        {
            let _ = bug;
            false
        }
    }

    /// May this commit be stored? A member of the current generation may commit in
    /// every state but CompletingRebalance: in PreparingRebalance its generation is
    /// still valid, and refusing there loses the commit a consumer makes when its
    /// partitions are revoked, so the next owner reads those records again.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        who: Committer<'_>,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let anyone_ok = self.bug_is(GroupBug::CommitsFromNonMembers);
        let preparing_refused = self.bug_is(GroupBug::CommitRefusedWhilePreparing);
        let Some(group) = self.groups.get_mut(group_id) else {
            return match (who.generation_id < 0, who.api_version >= 9) {
                (true, _) => Ok(()),
                (false, true) => Err(GroupError::GroupIdNotFound),
                (false, false) => Err(GroupError::IllegalGeneration),
            };
        };
        if who.generation_id < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        let claims_membership =
            who.generation_id >= 0 || !who.member_id.is_empty() || who.group_instance_id.is_some();
        if !claims_membership {
            // An admin commit while members own the partitions would race them.
            return Err(GroupError::UnknownMemberId);
        }
        if !anyone_ok {
            group.validate_member(who.member_id, who.group_instance_id)?;
            if who.generation_id != group.generation {
                return Err(GroupError::IllegalGeneration);
            }
        }
        let refused_state = if preparing_refused {
            group.state != GroupState::Stable
        } else {
            group.state == GroupState::CompletingRebalance
        };
        if refused_state {
            return Err(GroupError::RebalanceInProgress);
        }
        if let Some(member) = group.members.get_mut(who.member_id) {
            member.touch(now_ms);
        }
        Ok(())
    }

    /// OffsetDelete: which of `topics` the group still consumes, so their partitions
    /// answer GROUP_SUBSCRIBED_TO_TOPIC. An active group that is not a consumer group
    /// may not delete offsets at all (NON_EMPTY_GROUP).
    pub fn topics_in_use(&self, group_id: &str) -> Result<BTreeSet<String>, GroupError> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(BTreeSet::new());
        };
        if group.state == GroupState::Empty {
            return Ok(BTreeSet::new());
        }
        group.subscribed_topics().ok_or(GroupError::NonEmptyGroup)
    }
}
