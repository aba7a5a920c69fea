//! Handlers of the classic consumer group APIs. Membership is the coordinator's
//! (`crate::groups`); committed offsets go through the metadata Raft group.

use super::authorize::Caller;
use super::common::{propose, str_bytes, topic_name};
use super::errors;
use super::old_versions::Extras;
use crate::broker::shared::{now_ms, Broker};
use crate::groups::{
    code_of, CommitDecider, Committer, GroupError, JoinRequest, LeavingMember, SyncRequest,
};
use crate::metadata::{MetadataCommand, MetadataState, OffsetCommit};
use chronik_core::errors::ErrorCode;
use chronik_core::groups::offset_metadata_fits;
use chronik_core::security::acl::{Operation, ResourceType};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

pub async fn handle(
    broker: &Broker,
    caller: &Caller,
    mut body: RequestKind,
    version: i16,
    peer: &str,
    client_id: &str,
    extras: &Extras,
) -> Result<ResponseKind, RequestKind> {
    if let RequestKind::OffsetFetch(r) = body {
        if version >= 8 {
            return Ok(ResponseKind::OffsetFetch(
                offset_fetch_groups(broker, caller, r, version).await,
            ));
        }
        body = RequestKind::OffsetFetch(r);
    }
    // Authorization comes first, as Kafka's: a refused caller learns nothing of
    // where the group lives.
    if let Some(refusal) = group_refusal(caller, &body, version) {
        return Ok(refusal);
    }
    if let Some(refusal) = zookeeper_only(broker, caller, &body, version) {
        return Ok(refusal);
    }
    if let Some(refusal) = not_coordinator(broker, &body) {
        return Ok(refusal);
    }
    load_stored_groups(broker, &body);
    Ok(match body {
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator(broker, caller, r, version))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group(broker, r, version, peer, client_id).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group(broker, r, version).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(
                code_of(&broker.groups.heartbeat(
                    &r.group_id.0,
                    &r.member_id,
                    r.group_instance_id.as_deref(),
                    r.generation_id,
                    now_ms(),
                ))
                .code(),
            ),
        ),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group(broker, r, version).await)
        }
        RequestKind::OffsetCommit(r) => {
            let times = &extras.commit_timestamps;
            ResponseKind::OffsetCommit(offset_commit(broker, caller, r, version, times).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch(broker, caller, r, version).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(list_groups(broker, caller, r, version))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups(broker, caller, r, version))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups(broker, caller, r).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offset_delete(broker, caller, r).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            super::consumer_group_handlers::heartbeat(broker, r, peer, client_id).await,
        ),
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(
            super::consumer_group_handlers::describe(broker, caller, r),
        ),
        other => return Err(other),
    })
}

/// The group-level check of a request about one group (R-SEC-ACL-14): Read for
/// membership and commits, Describe for OffsetFetch, Delete for OffsetDelete; and a
/// KIP-848 heartbeat's subscription needs Describe on every topic it names.
/// GROUP_AUTHORIZATION_FAILED (TOPIC_ for the subscription) where the answer has room.
fn group_refusal(caller: &Caller, body: &RequestKind, version: i16) -> Option<ResponseKind> {
    let (operation, group) = match body {
        RequestKind::OffsetFetch(r) => (Operation::Describe, &r.group_id),
        RequestKind::OffsetDelete(r) => (Operation::Delete, &r.group_id),
        other => (Operation::Read, coordinated_group(other)?),
    };
    let code = errors::GROUP_AUTHORIZATION_FAILED;
    if caller.may_group(operation, &group.0) {
        let RequestKind::ConsumerGroupHeartbeat(r) = body else {
            return None;
        };
        let topics = r.subscribed_topic_names.iter().flatten();
        let mut refused = topics.filter(|t| !caller.may_topic(Operation::Describe, &t.0));
        return refused.next().map(|t| {
            ResponseKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Not authorized to describe topic {}",
                        t.0
                    )))),
            )
        });
    }
    Some(match body {
        RequestKind::OffsetFetch(r) => {
            let mut response = OffsetFetchResponse::default();
            if version >= 2 {
                response.error_code = code.code();
            } else {
                response.topics = offset_fetch_topics(r, code);
            }
            ResponseKind::OffsetFetch(response)
        }
        RequestKind::OffsetDelete(_) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code.code()))
        }
        _ => return not_coordinated(body, code),
    })
}

/// Every partition an OffsetFetch v1 names, answered with `code`.
fn offset_fetch_topics(r: &OffsetFetchRequest, code: ErrorCode) -> Vec<OffsetFetchResponseTopic> {
    r.topics
        .iter()
        .flatten()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(-1)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// OffsetCommit v0 and OffsetFetch v0 kept offsets in ZooKeeper; a KRaft Kafka 3.9
/// advertises them and answers every partition UNSUPPORTED_VERSION (its handler
/// throws, and the whole request gets the error), once the group check passed and,
/// for a commit, some partition named is a known one the caller may read.
fn zookeeper_only(
    broker: &Broker,
    caller: &Caller,
    body: &RequestKind,
    version: i16,
) -> Option<ResponseKind> {
    const UNSUPPORTED: ErrorCode = errors::UNSUPPORTED_VERSION;
    match (body, version) {
        (RequestKind::OffsetFetch(r), 0) => Some(ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_topics(offset_fetch_topics(r, UNSUPPORTED)),
        )),
        (RequestKind::OffsetCommit(r), 0) => {
            let view = broker.consensus.view();
            let committable = |t: &str, p: i32| {
                caller.topic_error(Operation::Read, t) == errors::NONE
                    && view.state.topics.get(t).is_some_and(|info| {
                        usize::try_from(p).is_ok_and(|p| p < info.partitions.len())
                    })
            };
            let any = r.topics.iter().any(|t| {
                t.partitions
                    .iter()
                    .any(|p| committable(&t.name.0, p.partition_index))
            });
            // Otherwise the usual answer names each partition's own error.
            any.then(|| {
                ResponseKind::OffsetCommit(
                    OffsetCommitResponse::default().with_topics(commit_errors(r, UNSUPPORTED)),
                )
            })
        }
        _ => None,
    }
}

/// Every partition an OffsetCommit names, answered with `code`.
fn commit_errors(r: &OffsetCommitRequest, code: ErrorCode) -> Vec<OffsetCommitResponseTopic> {
    r.topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// The group a request that needs its coordinator is about.
fn coordinated_group(body: &RequestKind) -> Option<&GroupId> {
    Some(match body {
        RequestKind::JoinGroup(r) => &r.group_id,
        RequestKind::SyncGroup(r) => &r.group_id,
        RequestKind::Heartbeat(r) => &r.group_id,
        RequestKind::LeaveGroup(r) => &r.group_id,
        RequestKind::OffsetCommit(r) => &r.group_id,
        RequestKind::ConsumerGroupHeartbeat(r) => &r.group_id,
        _ => return None,
    })
}

/// Groups this request reads or changes resume from their stored records when this
/// coordinator has an older generation or none (it restarted, or the group moved
/// here), so members keep their generation (R-GROUP-8).
fn load_stored_groups(broker: &Broker, body: &RequestKind) {
    let view = broker.consensus.view();
    let now = now_ms();
    let me = broker.config.node_id;
    let load = |group: &str| load_stored_group(broker, &view.state, group, now);
    match body {
        RequestKind::DescribeGroups(r) => r.groups.iter().for_each(|g| load(&g.0)),
        RequestKind::DeleteGroups(r) => r.groups_names.iter().for_each(|g| load(&g.0)),
        RequestKind::OffsetDelete(r) => load(&r.group_id.0),
        RequestKind::ConsumerGroupDescribe(r) => r.group_ids.iter().for_each(|g| load(&g.0)),
        RequestKind::ListGroups(_) => view
            .state
            .groups
            .keys()
            .chain(view.state.consumer_groups.keys())
            .filter(|g| view.state.coordinates_in_start(g, me, broker.incarnation))
            .for_each(|g| load(g)),
        other => {
            if let Some(group) = coordinated_group(other) {
                load(&group.0);
            }
        }
    }
}

/// One group, classic or KIP-848, resumed from its stored record where this
/// coordinator holds an older generation or none (R-GROUP-8).
fn load_stored_group(broker: &Broker, state: &MetadataState, group: &str, now: u64) {
    broker.groups.load(group, state.groups.get(group), now);
    let consumer = state.consumer_groups.get(group);
    broker.groups.load_consumer_group(group, consumer, now);
}

/// A group request sent to a broker that does not coordinate the group.
fn not_coordinator(broker: &Broker, body: &RequestKind) -> Option<ResponseKind> {
    let group = coordinated_group(body)?;
    if coordinates(broker, &broker.consensus.view().state, &group.0) {
        return None;
    }
    not_coordinated(body, errors::NOT_COORDINATOR)
}

/// This broker acts as `group`'s coordinator: it coordinates the group in `state`,
/// which holds its registration of this start (R-GROUP-10).
fn coordinates(broker: &Broker, state: &MetadataState, group: &str) -> bool {
    let me = broker.config.node_id;
    state.coordinates_in_start(group, me, broker.incarnation)
}

/// The answer with `code` to a request about the one group it coordinates.
fn not_coordinated(body: &RequestKind, code: ErrorCode) -> Option<ResponseKind> {
    Some(match body {
        RequestKind::JoinGroup(_) => {
            ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(code.code()))
        }
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code.code()))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code.code()))
        }
        RequestKind::ConsumerGroupHeartbeat(_) => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(code.code()),
        ),
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code.code()))
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(commit_errors(r, code)),
        ),
        _ => return None,
    })
}

/// FindCoordinator key types: a consumer group, a transactional id, a share group
/// (KIP-932, v6+).
const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;
const SHARE_KEY: i8 = 2;

/// FindCoordinator needs Describe on the group, or on the transactional id for key
/// type 1, as Kafka 3.9's `getCoordinator`. Share groups (KIP-932) have no
/// coordinator in Kafka 3.9 or here: v6+ with ClusterAction learn
/// COORDINATOR_NOT_AVAILABLE, older versions may not ask. Unknown key types are
/// INVALID_REQUEST.
fn coordinator_refusal(
    caller: &Caller,
    key_type: i8,
    key: &str,
    version: i16,
) -> Option<ErrorCode> {
    match key_type {
        GROUP_KEY => (!caller.may_group(Operation::Describe, key))
            .then_some(errors::GROUP_AUTHORIZATION_FAILED),
        TRANSACTION_KEY => (!caller.may(Operation::Describe, ResourceType::TransactionalId, key))
            .then_some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        SHARE_KEY if version >= 6 => Some(if caller.may_cluster(Operation::ClusterAction) {
            errors::COORDINATOR_NOT_AVAILABLE
        } else {
            errors::CLUSTER_AUTHORIZATION_FAILED
        }),
        _ => Some(errors::INVALID_REQUEST),
    }
}

fn find_coordinator(
    broker: &Broker,
    caller: &Caller,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let view = broker.consensus.view();
    let key_type = request.key_type;
    let pick = |key: &str| -> (ErrorCode, BrokerId, StrBytes, i32) {
        if let Some(code) = coordinator_refusal(caller, key_type, key, version) {
            return (code, BrokerId(-1), str_bytes(""), -1);
        }
        let coordinator = view.state.coordinator_for(key);
        let reachable = coordinator.map(|b| (b, b.endpoint(&caller.listener)));
        match reachable {
            Some((b, Some((host, port)))) => {
                (errors::NONE, BrokerId(b.broker_id), str_bytes(host), port)
            }
            // Not registered yet: this broker answers for itself on a single node.
            None if view.state.brokers.is_empty() => (
                errors::NONE,
                BrokerId(broker.config.node_id),
                str_bytes(&broker.advertised_host),
                broker.advertised_port,
            ),
            // Unknown, or not reachable on this client's listener.
            _ => (
                errors::COORDINATOR_NOT_AVAILABLE,
                BrokerId(-1),
                str_bytes(""),
                -1,
            ),
        }
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (code, id, host, port) = pick(&key);
                Coordinator::default()
                    .with_key(key)
                    .with_error_code(code.code())
                    .with_node_id(id)
                    .with_host(host)
                    .with_port(port)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (code, id, host, port) = pick(&request.key);
        FindCoordinatorResponse::default()
            .with_error_code(code.code())
            .with_node_id(id)
            .with_host(host)
            .with_port(port)
    }
}

async fn join_group(
    broker: &Broker,
    request: JoinGroupRequest,
    version: i16,
    peer: &str,
    client_id: &str,
) -> JoinGroupResponse {
    let join = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{peer}"),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    if let Some(reason) = request.reason.as_deref().filter(|r| !r.is_empty()) {
        tracing::debug!(group = %join.group_id, member = %join.member_id, %reason, "join");
    }
    // The core answers by the rebalance timeout (after an initial delay, which can
    // be extended up to the rebalance timeout); this only guards against a lost reply.
    let waited = Duration::from_millis(
        join.rebalance_timeout_ms
            .max(join.session_timeout_ms)
            .max(0) as u64
            + broker.config.group_initial_rebalance_delay_ms
            + 5_000,
    );
    let (rx, settlement) = broker.groups.join(join, now_ms());
    let _stored = broker.settle_groups(settlement).await;
    let mut response = JoinGroupResponse::default();
    match tokio::time::timeout(waited, rx).await {
        Ok(Ok(result)) => {
            response.error_code = result.error.map_or(errors::NONE, GroupError::code).code();
            response.generation_id = result.generation_id;
            response.protocol_name = Some(str_bytes(result.protocol_name.as_deref().unwrap_or("")));
            if version >= 7 {
                response.protocol_type = result.protocol_type.as_deref().map(str_bytes);
            }
            response.leader = str_bytes(&result.leader);
            if version >= 9 {
                response.skip_assignment = result.skip_assignment;
            }
            response.member_id = str_bytes(&result.member_id);
            response.members = result
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let mut m = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&id))
                        .with_metadata(metadata);
                    if version >= 5 {
                        m.group_instance_id = instance.as_deref().map(str_bytes);
                    }
                    m
                })
                .collect();
        }
        _ => {
            response.error_code = GroupError::RebalanceInProgress.code().code();
            response.protocol_name = Some(str_bytes(""));
        }
    }
    response
}

async fn sync_group(broker: &Broker, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let sync = SyncRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments,
    };
    let (rx, settlement) = broker.groups.sync(sync, now_ms());
    let _stored = broker.settle_groups(settlement).await;
    let mut response = SyncGroupResponse::default();
    match tokio::time::timeout(Duration::from_secs(300), rx).await {
        Ok(Ok(result)) => {
            response.error_code = result.error.map_or(errors::NONE, GroupError::code).code();
            response.assignment = result.assignment;
            if version >= 5 {
                response.protocol_type = result.protocol_type.as_deref().map(str_bytes);
                response.protocol_name = result.protocol_name.as_deref().map(str_bytes);
            }
        }
        _ => response.error_code = GroupError::RebalanceInProgress.code().code(),
    }
    response
}

async fn leave_group(
    broker: &Broker,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let leaving: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                if let Some(reason) = m.reason.as_deref().filter(|r| !r.is_empty()) {
                    tracing::debug!(group = %request.group_id.0, member = %m.member_id, %reason, "leave");
                }
                LeavingMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                }
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let (results, settlement) = broker.groups.leave(&request.group_id.0, &leaving, now_ms());
    let _stored = broker.settle_groups(settlement).await;
    let mut response = LeaveGroupResponse::default();
    if version >= 3 {
        response.members = leaving
            .iter()
            .zip(&results)
            .map(|(m, result)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(&m.member_id))
                    .with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
                    .with_error_code(code_of(result).code())
            })
            .collect();
    } else {
        response.error_code = results
            .first()
            .map_or(GroupError::UnknownMemberId.code(), code_of)
            .code();
    }
    response
}

async fn offset_commit(
    broker: &Broker,
    caller: &Caller,
    request: OffsetCommitRequest,
    version: i16,
    commit_timestamps: &[Vec<i64>],
) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let committer = Committer {
        member_id: &request.member_id,
        group_instance_id: request.group_instance_id.as_deref(),
        generation_id: request.generation_id_or_member_epoch,
        api_version: version,
    };
    // Decided in one view: the one the coordination is checked in, and whose
    // index the fence carries (R-GROUP-10).
    let view = broker.consensus.view();
    if !coordinates(broker, &view.state, &group) {
        let topics = commit_errors(&request, errors::NOT_COORDINATOR);
        return OffsetCommitResponse::default().with_topics(topics);
    }
    let decider = CommitDecider {
        coordinator: broker.config.node_id,
        incarnation: broker.incarnation,
        view_index: view.state.applied_index,
    };
    let check = broker
        .groups
        .commit_check(&group, committer, decider, now_ms());
    let (fence, check) = match check {
        Ok(fence) => (fence, errors::NONE),
        Err(code) => (None, code),
    };
    let now = now_ms() as i64;
    let mut offsets = Vec::new();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (ti, topic) in request.topics.iter().enumerate() {
        let name = topic.name.0.to_string();
        let known = view.state.topics.get(&name);
        let refused = caller.topic_error(Operation::Read, &name);
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(pi, p)| {
                let valid = known.is_some_and(|t| {
                    p.partition_index >= 0 && (p.partition_index as usize) < t.partitions.len()
                });
                let code = if refused != errors::NONE {
                    refused
                } else if check != errors::NONE {
                    check
                } else if !valid {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                } else if !offset_metadata_fits(p.committed_metadata.as_deref()) {
                    errors::OFFSET_METADATA_TOO_LARGE
                } else {
                    offsets.push(OffsetCommit {
                        topic: name.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_time_ms: commit_time(commit_timestamps, ti, pi, now),
                    });
                    errors::NONE
                };
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.code())
            })
            .collect();
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    if !offsets.is_empty() {
        if let Err((code, _)) = propose(
            broker,
            MetadataCommand::CommitOffsets {
                group,
                offsets,
                fence,
            },
        )
        .await
        {
            for t in &mut topics {
                for p in &mut t.partitions {
                    if p.error_code == errors::NONE.code() {
                        p.error_code = if code == errors::NOT_CONTROLLER {
                            errors::REQUEST_TIMED_OUT.code()
                        } else {
                            code.code()
                        };
                    }
                }
            }
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// When a commit happened: v1 may say (Kafka keeps it, -1 meaning the broker's
/// clock); later versions never do.
fn commit_time(commit_timestamps: &[Vec<i64>], topic: usize, partition: usize, now: i64) -> i64 {
    commit_timestamps
        .get(topic)
        .and_then(|t| t.get(partition))
        .copied()
        .filter(|t| *t != -1)
        .unwrap_or(now)
}

/// OffsetFetch up to v7, answered once its read barrier is applied.
async fn offset_fetch(
    broker: &Broker,
    caller: &Caller,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    match offsets_barrier(broker, &request.group_id.0).await {
        Ok(()) => committed_offsets(broker, caller, request),
        Err(code) => offsets_refused(&request, version, code),
    }
}

/// Only the group's coordinator answers OffsetFetch (NOT_COORDINATOR elsewhere, as
/// Kafka's), and only once a read barrier it proposed is applied: its view then
/// holds every commit acknowledged before the request, even if it was cut off from
/// the metadata leader and does not know yet that the group moved (R-GROUP-10).
async fn offsets_barrier(broker: &Broker, group: &str) -> Result<(), ErrorCode> {
    let view = broker.consensus.view();
    if !coordinates(broker, &view.state, group) {
        return Err(errors::NOT_COORDINATOR);
    }
    let decider = CommitDecider {
        coordinator: broker.config.node_id,
        incarnation: broker.incarnation,
        view_index: view.state.applied_index,
    };
    let fence = broker.groups.read_fence(decider);
    match propose(broker, MetadataCommand::offsets_barrier(group, fence)).await {
        Ok(_) => Ok(()),
        Err((errors::NOT_COORDINATOR, _)) => Err(errors::NOT_COORDINATOR),
        // No leader, or no answer in time: retriable, and the client looks for the
        // coordinator again.
        Err(_) => Err(errors::COORDINATOR_NOT_AVAILABLE),
    }
}

/// The group's committed offsets, as this broker's view holds them.
fn committed_offsets(
    broker: &Broker,
    caller: &Caller,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let view = broker.consensus.view();
    let committed = view.state.offsets.get(request.group_id.0.as_str());
    let wanted: Vec<(String, Vec<i32>)> = match &request.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect(),
        // All of the group's offsets: those of topics the caller may describe.
        None => committed
            .map(|c| {
                c.iter()
                    .filter(|(t, _)| caller.may_topic(Operation::Describe, t))
                    .map(|(t, ps)| (t.clone(), ps.keys().copied().collect()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let topics = wanted
        .into_iter()
        .map(|(name, partitions)| {
            let refused = caller.topic_error(Operation::Describe, &name);
            let parts = partitions
                .into_iter()
                .map(|p| {
                    if refused != errors::NONE {
                        return OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_error_code(refused.code());
                    }
                    let found = committed
                        .and_then(|c| c.get(&name))
                        .and_then(|ps| ps.get(&p));
                    let mut r = OffsetFetchResponsePartition::default().with_partition_index(p);
                    match found {
                        Some(o) => {
                            r.committed_offset = o.offset;
                            r.committed_leader_epoch = o.leader_epoch;
                            r.metadata = Some(str_bytes(o.metadata.as_deref().unwrap_or("")));
                        }
                        None => {
                            r.committed_offset = -1;
                            r.metadata = Some(str_bytes(""));
                        }
                    }
                    r
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(parts)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// An OffsetFetch refused with `code` (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
/// Before v2 there is no top-level error code; each asked partition carries it.
fn offsets_refused(
    request: &OffsetFetchRequest,
    version: i16,
    code: ErrorCode,
) -> OffsetFetchResponse {
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(code.code());
    }
    let topics = request.topics.iter().flatten().map(|t| {
        let partitions = t.partition_indexes.iter().map(|p| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(*p)
                .with_committed_offset(-1)
                .with_error_code(code.code())
        });
        OffsetFetchResponseTopic::default()
            .with_name(t.name.clone())
            .with_partitions(partitions.collect())
    });
    OffsetFetchResponse::default().with_topics(topics.collect())
}

/// OffsetFetch v8+ asks for several groups at once; each is answered as a v7
/// request for it alone would be, with its refusals at the group level: Describe on
/// the group (GROUP_AUTHORIZATION_FAILED) and, from v9, a KIP-848 member's id and
/// epoch (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH), as Kafka 3.9's coordinator.
async fn offset_fetch_groups(
    broker: &Broker,
    caller: &Caller,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut groups = Vec::new();
    for g in request.groups {
        let answer = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
        if !caller.may_group(Operation::Describe, &g.group_id.0) {
            groups.push(answer.with_error_code(errors::GROUP_AUTHORIZATION_FAILED.code()));
            continue;
        }
        if let Err(code) = offsets_barrier(broker, &g.group_id.0).await {
            groups.push(answer.with_error_code(code.code()));
            continue;
        }
        if version >= 9 {
            let member = g.member_id.as_deref();
            let check = offset_fetch_member_check(broker, &g.group_id.0, member, g.member_epoch);
            if check != errors::NONE {
                groups.push(answer.with_error_code(check.code()));
                continue;
            }
        }
        let alone = OffsetFetchRequest::default()
            .with_group_id(g.group_id)
            .with_require_stable(request.require_stable)
            .with_topics(g.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| {
                        OffsetFetchRequestTopic::default()
                            .with_name(t.name)
                            .with_partition_indexes(t.partition_indexes)
                    })
                    .collect()
            }));
        let topics = committed_offsets(broker, caller, alone).topics;
        groups.push(answer.with_topics(topics.into_iter().map(as_group_topic).collect()));
    }
    OffsetFetchResponse::default().with_groups(groups)
}

/// OffsetFetch v9's member check: a member of a KIP-848 group fetches with its id and
/// current epoch; no id and a negative epoch (an admin client, a classic member) is
/// always allowed. The group is loaded first where this broker coordinates it.
fn offset_fetch_member_check(
    broker: &Broker,
    group: &str,
    member: Option<&str>,
    epoch: i32,
) -> ErrorCode {
    let view = broker.consensus.view();
    if coordinates(broker, &view.state, group) {
        load_stored_group(broker, &view.state, group, now_ms());
    }
    broker.groups.offset_fetch_check(group, member, epoch)
}

fn as_group_topic(t: OffsetFetchResponseTopic) -> OffsetFetchResponseTopics {
    OffsetFetchResponseTopics::default()
        .with_name(t.name)
        .with_partitions(
            t.partitions
                .into_iter()
                .map(|p| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(p.partition_index)
                        .with_committed_offset(p.committed_offset)
                        .with_committed_leader_epoch(p.committed_leader_epoch)
                        .with_metadata(p.metadata)
                        .with_error_code(p.error_code)
                })
                .collect(),
        )
}

/// A listed group: its protocol type, state and (ListGroups v5, KIP-848) type.
struct Listed {
    protocol_type: String,
    state: String,
    group_type: &'static str,
}

fn list_groups(
    broker: &Broker,
    caller: &Caller,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    // Describe on the cluster lists every group, else those the caller may describe.
    let all = caller.may_cluster(Operation::Describe);
    let listed = |protocol_type: &str, state: &str, group_type| Listed {
        protocol_type: protocol_type.to_string(),
        state: state.to_string(),
        group_type,
    };
    // A group with only committed offsets is an Empty classic group, as Kafka's
    // coordinator creates one for a commit from outside any group.
    let mut groups: std::collections::BTreeMap<String, Listed> = broker
        .consensus
        .view()
        .state
        .offsets
        .keys()
        .map(|g| (g.clone(), listed("consumer", "Empty", "classic")))
        .collect();
    for g in broker.groups.list() {
        let state = g.state.name();
        groups.insert(
            g.group_id.clone(),
            listed(&g.protocol_type, state, "classic"),
        );
    }
    for (group, state) in broker.groups.list_consumer_groups() {
        groups.insert(group, listed("consumer", state, "consumer"));
    }
    let wanted = |filter: &[StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    let groups = groups
        .into_iter()
        .filter(|(_, g)| wanted(&request.states_filter, &g.state))
        .filter(|(_, g)| wanted(&request.types_filter, g.group_type))
        .filter(|(id, _)| all || caller.may_group(Operation::Describe, id))
        .map(|(id, g)| {
            let mut answer = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                answer.group_state = str_bytes(&g.state);
            }
            if version >= 5 {
                answer.group_type = str_bytes(g.group_type);
            }
            answer
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

fn describe_groups(
    broker: &Broker,
    caller: &Caller,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let operations = version >= 3 && request.include_authorized_operations;
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            if !caller.may_group(Operation::Describe, &id.0) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(errors::GROUP_AUTHORIZATION_FAILED.code());
            }
            let mut described = describe_group(broker, id, version);
            if operations {
                described.authorized_operations =
                    caller.authorized_operations(ResourceType::Group, &described.group_id.0);
            }
            described
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn describe_group(broker: &Broker, id: GroupId, version: i16) -> DescribedGroup {
    match broker.groups.describe(&id.0) {
        None if broker.groups.consumer_group_state(&id.0).is_some() => {
            // As Kafka 4: a KIP-848 group is described by ConsumerGroupDescribe.
            DescribedGroup::default()
                .with_group_id(id)
                .with_error_code(GroupError::GroupIdNotFound.code().code())
                .with_group_state(str_bytes("Dead"))
        }
        Some(g) => DescribedGroup::default()
            .with_group_id(id)
            .with_group_state(str_bytes(g.state.name()))
            .with_protocol_type(str_bytes(&g.protocol_type))
            .with_protocol_data(str_bytes(&g.protocol_name))
            .with_members(
                g.members
                    .into_iter()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment);
                        if version >= 4 {
                            member.group_instance_id =
                                m.group_instance_id.as_deref().map(str_bytes);
                        }
                        member
                    })
                    .collect(),
            ),
        // Only committed offsets: an Empty classic group, as ListGroups lists it and
        // as Kafka's coordinator creates one for a commit from outside any group.
        None if broker.consensus.view().state.offsets.contains_key(&*id.0) => {
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes("Empty"))
                .with_protocol_type(str_bytes("consumer"))
        }
        None => DescribedGroup::default()
            .with_group_id(id)
            .with_group_state(str_bytes("Dead")),
    }
}

async fn delete_groups(
    broker: &Broker,
    caller: &Caller,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for id in request.groups_names {
        let group = id.0.to_string();
        let known = broker.consensus.view().state.offsets.contains_key(&group)
            || broker.groups.describe(&group).is_some();
        let code = if !caller.may_group(Operation::Delete, &group) {
            errors::GROUP_AUTHORIZATION_FAILED
        } else if !known {
            GroupError::GroupIdNotFound.code()
        } else if let Err(e) = broker.groups.delete(&group) {
            e.code()
        } else {
            match propose(
                broker,
                MetadataCommand::DeleteGroupOffsets {
                    group,
                    partitions: None,
                },
            )
            .await
            {
                Ok(_) => errors::NONE,
                Err((code, _)) if code == GroupError::GroupIdNotFound.code() => errors::NONE,
                Err((code, _)) => code,
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code.code()),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

async fn offset_delete(
    broker: &Broker,
    caller: &Caller,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = request.group_id.0.to_string();
    let mut response = OffsetDeleteResponse::default();
    // The offsets of topics the group still consumes stay (R-GROUP-4).
    let in_use = match broker.groups.topics_in_use(&group) {
        Ok(topics) => topics,
        Err(e) => {
            response.error_code = e.code().code();
            return response;
        }
    };
    // Deleting a topic's offsets needs Read on it (as Kafka).
    let readable = |t: &str| caller.may_topic(Operation::Read, t);
    let parts: Vec<(String, i32)> = request
        .topics
        .iter()
        .filter(|t| !in_use.contains(t.name.0.as_str()) && readable(&t.name.0))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    if !parts.is_empty() {
        let command = MetadataCommand::DeleteGroupOffsets {
            group,
            partitions: Some(parts),
        };
        if let Err((code, _)) = propose(broker, command).await {
            response.error_code = code.code();
            return response;
        }
    }
    response.topics = request
        .topics
        .into_iter()
        .map(|t| {
            let code = if !readable(&t.name.0) {
                errors::TOPIC_AUTHORIZATION_FAILED
            } else if in_use.contains(t.name.0.as_str()) {
                GroupError::GroupSubscribedToTopic.code()
            } else {
                errors::NONE
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code())
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    response
}
