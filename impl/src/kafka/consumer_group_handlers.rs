//! ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848). The decisions are the
//! core's (`chronik_core::consumer_groups`); this file turns the wire types into its
//! inputs (topic ids as bytes, the metadata's topics) and its answers back.

use super::authorize::Caller;
use super::common::{str_bytes, topic_name};
use crate::broker::shared::{now_ms, Broker};
use crate::groups::Heartbeat;
use chronik_core::consumer_groups::{Assignment, TopicId};
use chronik_core::security::acl::{Operation, ResourceType};
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::*;
use uuid::Uuid;

fn owned_of(request: &ConsumerGroupHeartbeatRequest) -> Option<Assignment> {
    request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| {
                (
                    *t.topic_id.as_bytes(),
                    t.partitions.iter().copied().collect(),
                )
            })
            .collect()
    })
}

fn wire_assignment(assignment: &Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        assignment
            .iter()
            .map(|(id, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(Uuid::from_bytes(*id))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}

/// The heartbeat's changes to the group are stored before it is answered (R-GROUP-9):
/// an answer the metadata does not hold yet fails with COORDINATOR_NOT_AVAILABLE, and
/// the member's retry at its previous epoch is answered again.
pub async fn heartbeat(
    broker: &Broker,
    request: ConsumerGroupHeartbeatRequest,
    peer: &str,
    client_id: &str,
) -> ConsumerGroupHeartbeatResponse {
    let topics = broker.consensus.view().state.topics_view();
    let decoded = Heartbeat {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        // librdkafka sends an empty regex for "none".
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .as_ref()
            .filter(|r| !r.is_empty())
            .map(|s| s.to_string()),
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        owned: owned_of(&request),
        client_id: client_id.to_string(),
        client_host: format!("/{peer}"),
    };
    let mut response = ConsumerGroupHeartbeatResponse::default();
    let (answer, settlement) = broker.groups.consumer_heartbeat(decoded, &topics, now_ms());
    if !broker.settle_groups(settlement).await {
        response.error_code = super::errors::COORDINATOR_NOT_AVAILABLE.code();
        response.member_id = Some(request.member_id);
        response.member_epoch = request.member_epoch;
        return response;
    }
    match answer {
        Ok(answer) => {
            response.member_id = Some(str_bytes(&answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.heartbeat_interval_ms = answer.heartbeat_interval_ms;
            response.assignment = answer.assignment.as_ref().map(wire_assignment);
        }
        Err((error, message)) => {
            response.error_code = error.code().code();
            response.error_message = (!message.is_empty()).then(|| str_bytes(&message));
            response.member_id = Some(request.member_id);
            response.member_epoch = request.member_epoch;
        }
    }
    response
}

fn described_assignment(
    assignment: &Assignment,
    names: &[(String, TopicId)],
) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        assignment
            .iter()
            .map(|(id, partitions)| {
                let name = names
                    .iter()
                    .find(|(_, t)| t == id)
                    .map_or("", |(n, _)| n.as_str());
                DescribedPartitions::default()
                    .with_topic_id(Uuid::from_bytes(*id))
                    .with_topic_name(topic_name(name))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}

/// A member subscribes to or is assigned a topic the caller may not describe: the
/// group is not described at all (Kafka 4.0, KAFKA-18813), so no topic leaks.
fn names_a_hidden_topic(caller: &Caller, members: &[Member]) -> bool {
    members.iter().any(|m| {
        let assigned = [&m.assignment, &m.target_assignment]
            .into_iter()
            .flat_map(|a| a.topic_partitions.iter().map(|t| &t.topic_name));
        m.subscribed_topic_names
            .iter()
            .chain(assigned)
            .any(|t| !caller.may_topic(Operation::Describe, &t.0))
    })
}

pub fn describe(
    broker: &Broker,
    caller: &Caller,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let operations = request.include_authorized_operations;
    let names: Vec<(String, TopicId)> = broker
        .consensus
        .view()
        .state
        .topics_view()
        .into_iter()
        .map(|(name, (id, _))| (name, id))
        .collect();
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            if !caller.may_group(Operation::Describe, &group_id.0) {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(super::errors::GROUP_AUTHORIZATION_FAILED.code());
            }
            let authorized = if operations {
                caller.authorized_operations(ResourceType::Group, &group_id.0)
            } else {
                i32::MIN
            };
            let state = broker.groups.consumer_group_state(&group_id.0);
            let Some(view) = broker.groups.consumer_group(&group_id.0) else {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(69) // GROUP_ID_NOT_FOUND
                    .with_group_state(str_bytes("Dead"));
            };
            let members = view
                .members
                .iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                        .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed_topics.iter().map(|t| topic_name(t)).collect(),
                        )
                        .with_assignment(described_assignment(&m.assigned, &names))
                        .with_target_assignment(described_assignment(&m.target, &names))
                })
                .collect::<Vec<Member>>();
            if names_a_hidden_topic(caller, &members) {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(super::errors::TOPIC_AUTHORIZATION_FAILED.code())
                    .with_error_message(Some(str_bytes(
                        "The group has described topic(s) that the client is not authorized to describe.",
                    )));
            }
            DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(str_bytes(state.unwrap_or("Empty")))
                .with_group_epoch(view.group_epoch)
                .with_assignment_epoch(view.assignment_epoch)
                .with_assignor_name(str_bytes(&view.assignor))
                .with_members(members)
                .with_authorized_operations(authorized)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
