//! The group coordinator of one simulated node: the core's `GroupCoordinators` (the
//! classic coordinator and the KIP-848 groups), driven as the broker's `GroupService`
//! and group handlers drive it. A request to a node that does not coordinate the
//! group is answered NOT_COORDINATOR, and at each tick the node forgets the groups it
//! no longer coordinates (R-GROUP-3); a group the node holds at an older generation
//! or group epoch than its stored record is loaded from that record first
//! (R-GROUP-8); the replies of a step that changed the group's record (and a
//! ConsumerGroupHeartbeat's answer) wait until `StoreGroup` or `StoreConsumerGroup`
//! is applied, and a commit is answered once `CommitOffsets` is (R-GROUP-2). Every
//! decision is the core's; what is here is the waiting.

use crate::records::TOPIC;
use chronik_core::consensus::ProposalFailure;
use chronik_core::consumer_groups::{
    Assignment, ConsumerGroupConfig, Heartbeat, HeartbeatAnswer, HeartbeatError, TopicId,
};
use chronik_core::errors::{self, ErrorCode};
use chronik_core::groups::{
    code_of, settled_replies, ChangedRecords, CommitDecider, CommitFence, Committer, GroupBug,
    GroupConfig, GroupCoordinators, GroupError, JoinRequest, JoinResult, LeavingMember, Reply,
    SyncRequest, SyncResult, Token,
};
use chronik_core::metadata::{ApplyOutcome, MetadataCommand, MetadataState, OffsetCommit};
use std::collections::BTreeMap;

/// The consumer group of the simulated members.
pub const GROUP: &str = "readers";
pub const PROTOCOL_TYPE: &str = "consumer";
pub const ASSIGNOR: &str = "range";
/// OffsetCommit's version as the members send it.
const COMMIT_VERSION: i16 = 8;
/// A KIP-848 member's rebalance timeout, as the classic members'.
const REBALANCE_TIMEOUT_MS: i32 = 1_000;

/// A group request from a member, or its answer. `request` pairs them.
#[derive(Debug, Clone)]
pub enum GroupMessage {
    Join {
        request: u64,
        member_id: String,
        subscription: Vec<u8>,
        session_timeout_ms: i32,
        rebalance_timeout_ms: i32,
    },
    JoinAnswer {
        request: u64,
        result: JoinResult,
    },
    Sync {
        request: u64,
        member_id: String,
        generation: i32,
        assignments: Vec<(String, Vec<u8>)>,
    },
    SyncAnswer {
        request: u64,
        result: SyncResult,
    },
    Heartbeat {
        request: u64,
        member_id: String,
        generation: i32,
    },
    Commit {
        request: u64,
        member_id: String,
        generation: i32,
        /// (partition of the workload's topic, next offset to read)
        offsets: Vec<(i32, u64)>,
    },
    OffsetFetch {
        request: u64,
        partitions: Vec<i32>,
        /// A KIP-848 member's id and epoch (OffsetFetch v9); none from a classic one.
        member: Option<(String, i32)>,
    },
    /// ConsumerGroupHeartbeat (KIP-848): epoch 0 joins, -1 leaves; `owned` is what
    /// the member consumes now.
    ConsumerHeartbeat {
        request: u64,
        member_id: String,
        member_epoch: i32,
        owned: Vec<i32>,
    },
    ConsumerHeartbeatAnswer {
        request: u64,
        result: Result<Beat, ErrorCode>,
    },
    /// A member that shuts down leaves (LeaveGroup), so the group rebalances at once
    /// rather than after its session timeout.
    Leave {
        request: u64,
        member_id: String,
    },
    /// The answer to a Heartbeat, a Commit or a Leave: an error code, 0 for none.
    Answer {
        request: u64,
        code: ErrorCode,
    },
    OffsetFetchAnswer {
        request: u64,
        /// Each asked partition's committed offset, if any; or an error code.
        result: Result<Vec<(i32, Option<Committed>)>, ErrorCode>,
    },
}

/// A ConsumerGroupHeartbeat's answer: the member's id and epoch, and its whole
/// assignment of the workload's topic when it must act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<Vec<i32>>,
}

/// A committed offset, and the member request that committed it (the commit's
/// metadata names it, so the history check can tell whose it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub offset: u64,
    pub request: Option<u64>,
    /// The applied index of the view its coordinator decided it in (none without a
    /// fence).
    pub decided_at: Option<u64>,
}

impl Committed {
    pub fn of(stored: &chronik_core::metadata::CommittedOffset) -> Option<Committed> {
        Self::decided(stored.offset, stored.metadata.as_deref(), stored.decided_by)
    }

    /// A commit as its coordinator proposed it.
    pub fn proposed(commit: &OffsetCommit, fence: &Option<CommitFence>) -> Option<Committed> {
        Self::decided(commit.offset, commit.metadata.as_deref(), *fence)
    }

    fn decided(
        offset: i64,
        metadata: Option<&str>,
        fence: Option<CommitFence>,
    ) -> Option<Committed> {
        Some(Committed {
            offset: u64::try_from(offset).ok()?,
            request: metadata
                .and_then(|m| m.strip_prefix('r'))
                .and_then(|r| r.parse().ok()),
            decided_at: fence.map(|f| f.view_index),
        })
    }
}

/// What the coordinator asks the world to do.
#[derive(Debug)]
pub enum GroupOut {
    /// An answer to the members.
    Answer(GroupMessage),
    /// A command whose outcome goes back to `stored` with this wait.
    Propose(u64, MetadataCommand),
}

/// What a proposal in flight was for.
enum Wait {
    /// The replies of a step (and a ConsumerGroupHeartbeat's answer), held until
    /// its group records are stored.
    Settlement {
        replies: Vec<Reply>,
        beat: Option<(u64, Result<Beat, ErrorCode>)>,
        records: ChangedRecords,
        outstanding: usize,
        stored: bool,
    },
    Commit {
        request: u64,
    },
    /// An OffsetFetch waiting for its read barrier.
    OffsetFetch {
        request: u64,
        partitions: Vec<i32>,
    },
}

pub struct GroupHost {
    me: i32,
    incarnation: u64,
    groups: GroupCoordinators,
    /// The member request of each waiting JoinGroup and SyncGroup, by token.
    waiters: BTreeMap<Token, u64>,
    next_token: Token,
    waits: BTreeMap<u64, Wait>,
    next_wait: u64,
}

/// KIP-848 settings scaled as the classic ones: a member lapses after 600 ms.
fn consumer_config(bug: Option<GroupBug>) -> ConsumerGroupConfig {
    ConsumerGroupConfig {
        session_timeout_ms: 600,
        heartbeat_interval_ms: 150,
        bug,
        ..ConsumerGroupConfig::default()
    }
}

fn salt(me: i32, incarnation: u64) -> u64 {
    (u64::from(me as u32) << 32) | incarnation
}

/// The coordinator's settings in the simulation: Kafka's, with the initial
/// rebalance delay and the smallest session timeout scaled to runs of seconds.
pub fn config(bug: Option<GroupBug>) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 100,
        min_session_timeout_ms: 200,
        bug,
        ..GroupConfig::default()
    }
}

impl GroupHost {
    /// `incarnation` salts member ids, as the broker's random salt does: ids of one
    /// start never collide with those of an earlier one.
    pub fn new(me: i32, incarnation: u64, config: GroupConfig) -> Self {
        GroupHost {
            me,
            incarnation,
            groups: GroupCoordinators::new(
                config.clone(),
                consumer_config(config.bug),
                salt(me, incarnation),
            ),
            waiters: BTreeMap::new(),
            next_token: 0,
            waits: BTreeMap::new(),
            next_wait: 0,
        }
    }

    /// One member request, as the broker's group handlers take it.
    pub fn handle(
        &mut self,
        now: u64,
        state: &MetadataState,
        message: GroupMessage,
    ) -> Vec<GroupOut> {
        if !state.coordinates_in_start(GROUP, self.me, self.incarnation) {
            return not_coordinator(message).into_iter().collect();
        }
        let (classic, consumer) = (state.groups.get(GROUP), state.consumer_groups.get(GROUP));
        self.groups.load(GROUP, classic, consumer, now);
        match message {
            GroupMessage::Join {
                request,
                member_id,
                subscription,
                session_timeout_ms,
                rebalance_timeout_ms,
            } => {
                let join = JoinRequest {
                    group_id: GROUP.to_string(),
                    member_id,
                    group_instance_id: None,
                    client_id: "sim".to_string(),
                    client_host: "clients".to_string(),
                    session_timeout_ms,
                    rebalance_timeout_ms,
                    protocol_type: PROTOCOL_TYPE.to_string(),
                    protocols: vec![(ASSIGNOR.to_string(), subscription.into())],
                    require_known_member_id: true,
                    supports_skip_assignment: false,
                };
                let token = self.waiter(request);
                let replies = self.groups.join(join, now, token);
                self.settle(replies, None)
            }
            GroupMessage::Sync {
                request,
                member_id,
                generation,
                assignments,
            } => {
                let sync = SyncRequest {
                    group_id: GROUP.to_string(),
                    member_id,
                    group_instance_id: None,
                    generation_id: generation,
                    protocol_type: Some(PROTOCOL_TYPE.to_string()),
                    protocol_name: Some(ASSIGNOR.to_string()),
                    assignments: assignments
                        .into_iter()
                        .map(|(m, a)| (m, a.into()))
                        .collect(),
                };
                let token = self.waiter(request);
                let replies = self.groups.classic.sync(sync, now, token);
                self.settle(replies, None)
            }
            GroupMessage::Heartbeat {
                request,
                member_id,
                generation,
            } => {
                let result = self
                    .groups
                    .classic
                    .heartbeat(GROUP, &member_id, None, generation, now);
                let code = code_of(&result);
                vec![GroupOut::Answer(GroupMessage::Answer { request, code })]
            }
            GroupMessage::Commit {
                request,
                member_id,
                generation,
                offsets,
            } => self.commit(now, state, request, (&member_id, generation), offsets),
            GroupMessage::Leave { request, member_id } => {
                let leaving = LeavingMember {
                    member_id,
                    group_instance_id: None,
                };
                let (results, replies) = self.groups.classic.leave(GROUP, &[leaving], now);
                let code = results.first().map_or(errors::NONE, code_of);
                let mut outs = self.settle(replies, None);
                outs.push(GroupOut::Answer(GroupMessage::Answer { request, code }));
                outs
            }
            GroupMessage::OffsetFetch {
                request,
                partitions,
                member,
            } => {
                let (member_id, epoch) = member.map_or((None, -1), |(id, e)| (Some(id), e));
                let code = self
                    .groups
                    .offset_fetch_check(GROUP, member_id.as_deref(), epoch);
                if code != errors::NONE {
                    let answer = GroupMessage::OffsetFetchAnswer {
                        request,
                        result: Err(code),
                    };
                    return vec![GroupOut::Answer(answer)];
                }
                // Answered from the view once the read barrier is applied, as the
                // OffsetFetch handler answers.
                let fence = self.groups.classic.commit_fence(self.decider(state), None);
                let wait = self.wait(Wait::OffsetFetch {
                    request,
                    partitions,
                });
                vec![GroupOut::Propose(
                    wait,
                    MetadataCommand::offsets_barrier(GROUP, fence),
                )]
            }
            GroupMessage::ConsumerHeartbeat {
                request,
                member_id,
                member_epoch,
                owned,
            } => self.consumer_heartbeat(now, state, request, (member_id, member_epoch), owned),
            _ => Vec::new(),
        }
    }

    /// ConsumerGroupHeartbeat, as its handler takes it: answered once what it
    /// changed in the group is stored (R-GROUP-9).
    fn consumer_heartbeat(
        &mut self,
        now: u64,
        state: &MetadataState,
        request: u64,
        (member_id, member_epoch): (String, i32),
        owned: Vec<i32>,
    ) -> Vec<GroupOut> {
        let topics = state.topics_view();
        let topic_id = topics.get(TOPIC).map(|(id, _)| *id);
        let joining = member_epoch == 0;
        let heartbeat = Heartbeat {
            group_id: GROUP.to_string(),
            member_id,
            member_epoch,
            rebalance_timeout_ms: if joining { REBALANCE_TIMEOUT_MS } else { -1 },
            subscribed_topic_names: joining.then(|| vec![TOPIC.to_string()]),
            owned: Some(assignment_of(topic_id, &owned)),
            client_id: "sim".to_string(),
            client_host: "clients".to_string(),
            ..Heartbeat::default()
        };
        let result = self.groups.consumer_heartbeat(heartbeat, &topics, now);
        let answer = beat_of(topic_id, result);
        self.settle(Vec::new(), Some((request, answer)))
    }

    /// The group timers (sessions, rebalance and initial delays), run on the
    /// node's partition tick.
    pub fn tick(&mut self, now: u64, state: &MetadataState) -> Vec<GroupOut> {
        let (me, start) = (self.me, self.incarnation);
        let coordinates = |group: &str| state.coordinates_in_start(group, me, start);
        let unloaded = self.groups.unload_uncoordinated(coordinates);
        let mut outs = self.deliver(unloaded);
        let classic_due = self
            .groups
            .classic
            .next_deadline_ms()
            .is_some_and(|at| at <= now);
        // KIP-848 sessions are checked on every tick, as the broker's poll does.
        if !classic_due && self.groups.consumer.list().is_empty() {
            return outs;
        }
        let (replies, _lapsed) = self.groups.tick(now);
        outs.extend(self.settle(replies, None));
        outs
    }

    /// A proposal's outcome: a settlement's replies go once all its records are
    /// stored (or are failed, as `GroupService::settled` fails them); a commit is
    /// answered; an OffsetFetch is answered from `state`, the view its barrier is
    /// applied in.
    pub fn stored(
        &mut self,
        wait: u64,
        result: Result<ApplyOutcome, ProposalFailure>,
        state: &MetadataState,
    ) -> Vec<GroupOut> {
        let code = match result {
            Ok(ApplyOutcome::Done) => errors::NONE,
            Ok(ApplyOutcome::Rejected { code, .. }) => code,
            Ok(_) => errors::UNKNOWN_SERVER_ERROR,
            // The group handler's mapping of a proposal that got no answer.
            Err(_) => errors::REQUEST_TIMED_OUT,
        };
        match self.waits.remove(&wait) {
            Some(Wait::Commit { request }) => {
                vec![GroupOut::Answer(GroupMessage::Answer { request, code })]
            }
            Some(Wait::OffsetFetch {
                request,
                partitions,
            }) => {
                let result = match code {
                    errors::NONE => Ok(committed_offsets(state, partitions)),
                    errors::REQUEST_TIMED_OUT => Err(errors::COORDINATOR_NOT_AVAILABLE),
                    refused => Err(refused),
                };
                vec![GroupOut::Answer(GroupMessage::OffsetFetchAnswer {
                    request,
                    result,
                })]
            }
            Some(Wait::Settlement {
                replies,
                beat,
                records,
                outstanding,
                stored,
            }) => {
                let stored = stored && code == errors::NONE;
                if outstanding > 1 {
                    let rest = Wait::Settlement {
                        replies,
                        beat,
                        records,
                        outstanding: outstanding - 1,
                        stored,
                    };
                    self.waits.insert(wait, rest);
                    return Vec::new();
                }
                if !stored {
                    self.groups.records_unstored(&records);
                }
                let mut outs = self.deliver(settled_replies(replies, stored));
                outs.extend(beat.map(|beat| settled_beat(beat, stored)));
                outs
            }
            None => Vec::new(),
        }
    }

    fn commit(
        &mut self,
        now: u64,
        state: &MetadataState,
        request: u64,
        (member_id, generation): (&str, i32),
        offsets: Vec<(i32, u64)>,
    ) -> Vec<GroupOut> {
        let committer = Committer {
            member_id,
            group_instance_id: None,
            generation_id: generation,
            api_version: COMMIT_VERSION,
        };
        let decider = self.decider(state);
        let fence = match self.groups.commit_check(GROUP, committer, decider, now) {
            Ok(fence) => fence,
            Err(code) => return vec![GroupOut::Answer(GroupMessage::Answer { request, code })],
        };
        let offsets = offsets
            .into_iter()
            .map(|(partition, offset)| chronik_core::metadata::OffsetCommit {
                topic: TOPIC.to_string(),
                partition,
                offset: offset as i64,
                leader_epoch: -1,
                metadata: Some(format!("r{request}")),
                commit_time_ms: now as i64,
            })
            .collect();
        let command = MetadataCommand::CommitOffsets {
            group: GROUP.to_string(),
            offsets,
            fence,
        };
        let wait = self.wait(Wait::Commit { request });
        vec![GroupOut::Propose(wait, command)]
    }

    fn decider(&self, state: &MetadataState) -> CommitDecider {
        CommitDecider {
            coordinator: self.me,
            incarnation: self.incarnation,
            view_index: state.applied_index,
        }
    }

    fn waiter(&mut self, request: u64) -> Token {
        self.next_token += 1;
        self.waiters.insert(self.next_token, request);
        self.next_token
    }

    fn wait(&mut self, wait: Wait) -> u64 {
        self.next_wait += 1;
        self.waits.insert(self.next_wait, wait);
        self.next_wait
    }

    /// Replies with nothing to store go out at once; the others wait for their
    /// records, each proposed as the broker's `settle_groups` proposes it.
    fn settle(
        &mut self,
        replies: Vec<Reply>,
        beat: Option<(u64, Result<Beat, ErrorCode>)>,
    ) -> Vec<GroupOut> {
        let records = self.groups.take_records();
        if records.is_empty() {
            let mut outs = self.deliver(replies);
            outs.extend(beat.map(|beat| settled_beat(beat, true)));
            return outs;
        }
        let me = self.me;
        let classic = records
            .classic
            .iter()
            .map(|(group, record)| MetadataCommand::StoreGroup {
                group: group.clone(),
                coordinator: me,
                record: record.clone(),
            });
        let consumer =
            records
                .consumer
                .iter()
                .map(|(group, record)| MetadataCommand::StoreConsumerGroup {
                    group: group.clone(),
                    coordinator: me,
                    record: record.clone(),
                });
        let commands: Vec<MetadataCommand> = classic.chain(consumer).collect();
        let wait = self.wait(Wait::Settlement {
            replies,
            beat,
            outstanding: records.len(),
            records,
            stored: true,
        });
        commands
            .into_iter()
            .map(|command| GroupOut::Propose(wait, command))
            .collect()
    }

    fn deliver(&mut self, replies: Vec<Reply>) -> Vec<GroupOut> {
        replies
            .into_iter()
            .filter_map(|reply| {
                let message = match reply {
                    Reply::Join(token, result) => GroupMessage::JoinAnswer {
                        request: self.waiters.remove(&token)?,
                        result,
                    },
                    Reply::Sync(token, result) => GroupMessage::SyncAnswer {
                        request: self.waiters.remove(&token)?,
                        result,
                    },
                };
                Some(GroupOut::Answer(message))
            })
            .collect()
    }
}

/// A heartbeat whose changes were not stored answers COORDINATOR_NOT_AVAILABLE,
/// as its handler does; the member retries at its previous epoch.
fn settled_beat((request, result): (u64, Result<Beat, ErrorCode>), stored: bool) -> GroupOut {
    let result = if stored {
        result
    } else {
        Err(errors::COORDINATOR_NOT_AVAILABLE)
    };
    GroupOut::Answer(GroupMessage::ConsumerHeartbeatAnswer { request, result })
}

fn assignment_of(topic_id: Option<TopicId>, partitions: &[i32]) -> Assignment {
    match topic_id {
        Some(id) if !partitions.is_empty() => {
            Assignment::from([(id, partitions.iter().copied().collect())])
        }
        _ => Assignment::new(),
    }
}

fn beat_of(
    topic_id: Option<TopicId>,
    result: Result<HeartbeatAnswer, (HeartbeatError, String)>,
) -> Result<Beat, ErrorCode> {
    let answer = result.map_err(|(error, _)| error.code())?;
    let partitions = |a: Assignment| {
        let of_topic = topic_id.and_then(|id| a.get(&id).cloned());
        of_topic.into_iter().flatten().collect()
    };
    Ok(Beat {
        member_id: answer.member_id,
        member_epoch: answer.member_epoch,
        assignment: answer.assignment.map(partitions),
    })
}

fn committed_offsets(state: &MetadataState, partitions: Vec<i32>) -> Vec<(i32, Option<Committed>)> {
    let committed = state.offsets.get(GROUP).and_then(|t| t.get(TOPIC));
    partitions
        .into_iter()
        .map(|p| (p, committed.and_then(|c| c.get(&p)).and_then(Committed::of)))
        .collect()
}

/// NOT_COORDINATOR, as the broker answers a group request sent to the wrong broker
/// (JoinGroup and SyncGroup carry a `GroupError`, whose nearest is
/// COORDINATOR_NOT_AVAILABLE: a client does the same for both, it finds the
/// coordinator again).
fn not_coordinator(message: GroupMessage) -> Option<GroupOut> {
    let code = errors::NOT_COORDINATOR;
    let answer = match message {
        GroupMessage::Join {
            request, member_id, ..
        } => GroupMessage::JoinAnswer {
            request,
            result: JoinResult::error(GroupError::CoordinatorNotAvailable, &member_id),
        },
        GroupMessage::Sync { request, .. } => GroupMessage::SyncAnswer {
            request,
            result: SyncResult::error(GroupError::CoordinatorNotAvailable),
        },
        GroupMessage::Heartbeat { request, .. }
        | GroupMessage::Commit { request, .. }
        | GroupMessage::Leave { request, .. } => GroupMessage::Answer { request, code },
        GroupMessage::OffsetFetch { request, .. } => GroupMessage::OffsetFetchAnswer {
            request,
            result: Err(code),
        },
        GroupMessage::ConsumerHeartbeat { request, .. } => GroupMessage::ConsumerHeartbeatAnswer {
            request,
            result: Err(code),
        },
        _ => return None,
    };
    Some(GroupOut::Answer(answer))
}
