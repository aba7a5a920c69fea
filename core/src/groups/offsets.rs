//! Who may commit or delete a group's offsets (R-GROUP-2, R-GROUP-4). The offsets
//! themselves are replicated metadata the shell proposes; these are the checks
//! Kafka's `ClassicGroup.validateOffsetCommit` and `validateOffsetDelete` make.

use super::group::GroupState;
use super::{Coordinator, GroupBug, GroupError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Kafka's `offset.metadata.max.bytes` default: the most a committed offset's
/// metadata string may hold. Every commit is replicated metadata and kept in every
/// broker's image and snapshot, so an unbounded string would let one client grow
/// them all.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// Whether a commit's metadata fits (Kafka's `validateOffsetMetadataLength`; a
/// commit that does not is refused OFFSET_METADATA_TOO_LARGE for that partition).
pub fn offset_metadata_fits(metadata: Option<&str>) -> bool {
    metadata.is_none_or(|m| m.len() <= OFFSET_METADATA_MAX_BYTES)
}

/// What the metadata checks again when it applies a commit its coordinator
/// accepted (R-GROUP-10). A proposal can be applied long after its decision, and
/// after proposals decided later: it waited for a leader, was forwarded late, or
/// was answered "timed out" and applied anyway. Kafka's coordinator appends to one
/// log in decision order; this restores that order:
/// - the coordinator, in the start that decided, must still coordinate the group,
///   and no broker may have registered or been fenced since the view it decided in
///   (the group may have moved away and back meanwhile);
/// - a classic group's stored generation must not be later than the committer's;
/// - per partition, a commit decided before the one already stored by the same
///   coordinator start is skipped (it was superseded, as it would be in Kafka's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitFence {
    pub coordinator: i32,
    /// The coordinator's start (`RegisterBroker::incarnation`).
    pub incarnation: u64,
    /// The applied index of the coordinator's view when it decided.
    pub view_index: u64,
    /// Its decisions in order, over all groups and partitions.
    pub sequence: u64,
    /// The committer's generation in a classic group; none for a commit from
    /// outside the group (generation -1) or to a KIP-848 group, whose member epochs
    /// the record does not order.
    pub generation: Option<i32>,
}

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

/// Who decides a commit: the coordinating broker, its start, and the applied index
/// of the metadata view it decides in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitDecider {
    pub coordinator: i32,
    pub incarnation: u64,
    pub view_index: u64,
}

impl Coordinator {
    /// A rule switched off by the group model or the simulator; never true in the
    /// broker's build.
    pub(super) fn bug_is(&self, bug: GroupBug) -> bool {
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

    /// The fence of a commit accepted now from a committer of classic `generation`
    /// (none from outside the group or to a KIP-848 group) (R-GROUP-10).
    pub fn commit_fence(
        &mut self,
        decider: CommitDecider,
        generation: Option<i32>,
    ) -> Option<CommitFence> {
        if self.bug_is(GroupBug::UnfencedCommits) {
            return None;
        }
        self.commit_decisions += 1;
        Some(CommitFence {
            coordinator: decider.coordinator,
            incarnation: decider.incarnation,
            view_index: decider.view_index,
            sequence: self.commit_decisions,
            generation: generation.filter(|g| *g >= 0),
        })
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
