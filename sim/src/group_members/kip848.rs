//! The same members speaking the consumer group protocol (KIP-848), as Kafka's
//! consumer with `group.protocol=consumer` runs it: it joins with a
//! ConsumerGroupHeartbeat at epoch 0 and keeps heartbeating with the partitions it
//! owns; the coordinator assigns. When an answer takes partitions away, the member
//! stops fetching them, commits what it read (the consumer's commit on revocation)
//! and only then reports them gone; partitions it is given it reads the committed
//! offsets of (OffsetFetch v9 with its member id and epoch) and consumes from there.
//! Its commits carry its member epoch. Fenced (FENCED_MEMBER_EPOCH,
//! UNKNOWN_MEMBER_ID), it drops its partitions without committing and joins again at
//! epoch 0 with the same id. The history it makes is checked as the classic
//! members' is.

use super::{Asked, GroupMembers, Member, Phase, BACKOFF_MS, COMMIT_MS};
use crate::group_host::{Beat, GroupMessage};
use chronik_core::errors::{self, ErrorCode};

/// A member shutting down leaves with epoch -1.
pub(super) fn leave(request: u64, member_id: String) -> GroupMessage {
    GroupMessage::ConsumerHeartbeat {
        request,
        member_id,
        member_epoch: -1,
        owned: Vec::new(),
    }
}

impl Member {
    /// Fenced: what it owned is lost (no commit: another member may own it now), and
    /// it joins again at epoch 0 under the same id.
    fn fenced(&mut self, now: u64) {
        self.rejoin(now, false);
        self.heartbeating = None;
        self.generation = 0;
        self.revoking.clear();
        self.awaiting.clear();
        self.beat_now = true;
        self.next_heartbeat = now + BACKOFF_MS;
    }

    /// Revoked partitions committed (or the commit failed: the next owner reads
    /// those records again): it stops owning them and says so at once.
    fn finish_revocation(&mut self, now: u64) {
        let revoked = std::mem::take(&mut self.revoking);
        self.owned.retain(|p| !revoked.contains(p));
        for p in &revoked {
            self.positions.remove(p);
            self.committed.remove(p);
            self.fetches.remove(p);
        }
        self.phase = if self.awaiting.is_empty() {
            Phase::Consume
        } else {
            Phase::FetchOffsets
        };
        self.beat_now = true;
        self.next_ask = now;
    }

    /// The coordinator's whole assignment: revoke first, then take what is new.
    fn reconcile(&mut self, now: u64, assignment: Vec<i32>) {
        let revoked: Vec<i32> = self
            .owned
            .iter()
            .filter(|p| !assignment.contains(p))
            .copied()
            .collect();
        let added: Vec<i32> = assignment
            .iter()
            .filter(|p| !self.owned.contains(p))
            .copied()
            .collect();
        self.owned.extend(&added);
        self.awaiting.extend(&added);
        self.awaiting.retain(|p| !revoked.contains(p));
        if !revoked.is_empty() {
            for p in &revoked {
                self.fetches.remove(p);
            }
            self.revoking = revoked;
            self.phase = Phase::Revoke;
        } else if !self.awaiting.is_empty() {
            self.phase = Phase::FetchOffsets;
        }
        self.beat_now |= !added.is_empty();
        self.next_ask = now;
    }
}

impl GroupMembers {
    /// A heartbeat, one at a time: every `HEARTBEAT_MS`, or at once to join or to
    /// report a change.
    pub(super) fn consumer_heartbeat(&mut self, m: usize, now: u64) -> Option<GroupMessage> {
        let member = &self.members[m];
        let waiting = member
            .heartbeating
            .is_some_and(|(_, sent, _)| now < sent + super::ANSWER_TIMEOUT_MS);
        let due = now >= member.next_heartbeat || (member.beat_now && member.phase != Phase::Join);
        if waiting || !due {
            return None;
        }
        let request = self.request();
        let member = &mut self.members[m];
        if member.phase == Phase::Join {
            member.generation = 0;
            member.owned.clear();
        }
        member.beat_now = false;
        member.heartbeat_sent(request, now);
        Some(GroupMessage::ConsumerHeartbeat {
            request,
            member_id: member.member_id.clone(),
            member_epoch: member.generation,
            owned: member.owned.clone(),
        })
    }

    /// Offsets to read for new partitions, or commits: periodic ones, and those of
    /// partitions being revoked, before the revocation is reported.
    pub(super) fn consumer_question(
        &mut self,
        m: usize,
        now: u64,
    ) -> Option<(Asked, GroupMessage)> {
        let request = self.request();
        let member = &mut self.members[m];
        let identity = (member.member_id.clone(), member.generation);
        match member.phase {
            Phase::FetchOffsets => Some((
                Asked::FetchOffsets,
                GroupMessage::OffsetFetch {
                    request,
                    partitions: member.awaiting.clone(),
                    member: Some(identity),
                },
            )),
            Phase::Revoke | Phase::Consume
                if (member.phase == Phase::Revoke || now >= member.next_commit)
                    && !member.uncommitted().is_empty() =>
            {
                member.next_commit = now + COMMIT_MS;
                let offsets = member.uncommitted();
                let commit = GroupMessage::Commit {
                    request,
                    member_id: identity.0,
                    generation: identity.1,
                    offsets: offsets.clone(),
                };
                Some((Asked::Commit(offsets), commit))
            }
            Phase::Revoke => {
                member.finish_revocation(now);
                None
            }
            _ => None,
        }
    }

    pub(super) fn consumer_beat_answered(
        &mut self,
        m: usize,
        now: u64,
        result: Result<Beat, ErrorCode>,
    ) -> Option<String> {
        let member = &mut self.members[m];
        let sent_at_epoch = member.heartbeating.take().map(|(.., epoch)| epoch);
        if sent_at_epoch != Some(member.generation) {
            // An answer to a heartbeat of an epoch it has left behind.
            return None;
        }
        let beat = match result {
            Ok(beat) => beat,
            Err(errors::FENCED_MEMBER_EPOCH | errors::UNKNOWN_MEMBER_ID) => {
                member.fenced(now);
                return Some(format!("group member {m} is fenced and joins again"));
            }
            Err(_) => {
                member.next_heartbeat = now + BACKOFF_MS;
                return None;
            }
        };
        if beat.member_epoch < 0 {
            return None;
        }
        let moved = beat.member_epoch != member.generation;
        member.member_id = beat.member_id;
        member.generation = beat.member_epoch;
        if member.phase == Phase::Join {
            member.phase = Phase::Consume;
        }
        if moved {
            self.generations_joined += 1;
        }
        let member = &mut self.members[m];
        let assignment = beat.assignment?;
        member.reconcile(now, assignment);
        Some(format!(
            "group member {m} ({}) at epoch {} owns {:?}, revoking {:?}",
            member.member_id, member.generation, member.owned, member.revoking
        ))
    }

    /// STALE_MEMBER_EPOCH: its epoch moved on; the positions stay uncommitted and
    /// the next commit carries the new epoch. UNKNOWN_MEMBER_ID: fenced. A commit of
    /// revoked partitions, whatever its answer, ends the revocation.
    pub(super) fn consumer_commit_answered(&mut self, m: usize, now: u64, code: ErrorCode) {
        let member = &mut self.members[m];
        if code == errors::UNKNOWN_MEMBER_ID {
            member.fenced(now);
        } else if member.phase == Phase::Revoke {
            member.finish_revocation(now);
        }
    }
}
