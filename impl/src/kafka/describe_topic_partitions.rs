//! DescribeTopicPartitions (KIP-966, API 75; librdkafka's DescribeTopics and Kafka's
//! admin client use it in place of Metadata): topics with their partitions' leaders,
//! epochs, replicas and ISR, paged by a cursor and a partition limit, as Kafka's
//! DescribeTopicPartitionsRequestHandler answers (R-WIRE-15).
//!
//! - No topics asked: every topic the caller may describe, by name, from the cursor;
//!   topics it may not describe are left out. Topics asked: those, by name, from the
//!   cursor; unknown ones answer UNKNOWN_TOPIC_OR_PARTITION, forbidden ones
//!   TOPIC_AUTHORIZATION_FAILED; a cursor naming a topic not asked for makes every
//!   topic asked for answer INVALID_REQUEST.
//! - At most `min(response_partition_limit, 2000)` partitions; where they run out,
//!   `next_cursor` names the topic and partition to ask from next.
//! - Leaders are named as Metadata names them (`MetadataState::client_leader`), so a client sent
//!   here goes where Produce and Fetch answers send it (KIP-951).

use super::authorize::Caller;
use super::common::topic_name;
use super::errors;
use crate::broker::shared::Broker;
use crate::metadata::{broker_to_wire, MetadataState, TopicInfo};
use chronik_core::errors::ErrorCode;
use chronik_core::security::acl::{Operation, ResourceType};
use kafka_protocol::messages::describe_topic_partitions_request::DescribeTopicPartitionsRequest;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponse, DescribeTopicPartitionsResponsePartition,
    DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::BrokerId;
use uuid::Uuid;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one
/// answer holds whatever the request asks.
const MAX_PARTITIONS: i32 = 2000;

pub fn describe_topic_partitions(
    broker: &Broker,
    caller: &Caller,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let view = broker.consensus.view();
    let state = &view.state;
    let all = request.topics.is_empty();
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.to_string(), c.partition_index.max(0)));
    let mut names: Vec<String> = match all {
        true => state
            .topics
            .keys()
            .filter(|n| caller.may_topic(Operation::Describe, n))
            .cloned()
            .collect(),
        false => request.topics.iter().map(|t| t.name.to_string()).collect(),
    };
    names.sort();
    names.dedup();
    if let Some((first, _)) = &cursor {
        if !all && !names.contains(first) {
            return refused(&request, errors::INVALID_REQUEST);
        }
        names.retain(|n| n >= first);
    }
    let mut left = request.response_partition_limit.clamp(1, MAX_PARTITIONS);
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in names {
        let start = match &cursor {
            Some((first, partition)) if *first == name => *partition,
            _ => 0,
        };
        if left == 0 {
            response.next_cursor = Some(cursor_at(&name, start));
            break;
        }
        let mut topic = DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(topic_name(&name)))
            .with_topic_id(Uuid::nil());
        if !caller.may_topic(Operation::Describe, &name) {
            topic.error_code = errors::TOPIC_AUTHORIZATION_FAILED.code();
            response.topics.push(topic);
            continue;
        }
        let Some(info) = state.topics.get(&name) else {
            topic.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION.code();
            response.topics.push(topic);
            continue;
        };
        topic.topic_id = Uuid::parse_str(&info.topic_id).unwrap_or(Uuid::nil());
        topic.topic_authorized_operations =
            caller.authorized_operations(ResourceType::Topic, &name);
        let end = info.partitions.len() as i32;
        let stop = end.min(start.saturating_add(left));
        topic.partitions = (start..stop)
            .map(|i| partition(broker, state, info, i))
            .collect();
        left -= stop - start.min(stop);
        response.topics.push(topic);
        if stop < end {
            response.next_cursor = Some(cursor_at(&name, stop));
            break;
        }
    }
    response
}

/// Kafka's error answer to a request it cannot serve: every topic asked for, with
/// the error and no partitions.
fn refused(
    request: &DescribeTopicPartitionsRequest,
    code: ErrorCode,
) -> DescribeTopicPartitionsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(t.name.clone()))
                .with_error_code(code.code())
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

fn cursor_at(name: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(name))
        .with_partition_index(partition)
}

fn partition(
    broker: &Broker,
    state: &MetadataState,
    info: &TopicInfo,
    index: i32,
) -> DescribeTopicPartitionsResponsePartition {
    let Some(p) = usize::try_from(index)
        .ok()
        .and_then(|i| info.partitions.get(i))
    else {
        return DescribeTopicPartitionsResponsePartition::default()
            .with_partition_index(index)
            .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION.code());
    };
    let (leader, serves) = state.client_leader(p, broker.config.node_id, broker.incarnation);
    let offline = p
        .replicas
        .iter()
        .filter(|r| state.brokers.get(r).is_none_or(|b| b.fenced))
        .map(|r| BrokerId(*r))
        .collect();
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_error_code(if serves {
            errors::NONE.code()
        } else {
            errors::LEADER_NOT_AVAILABLE.code()
        })
        .with_leader_id(BrokerId(broker_to_wire(leader)))
        .with_leader_epoch(p.leader_epoch)
        .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
        .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
        // KIP-966's eligible leader replicas (R-REPL-6). Chronik keeps no last known
        // ELR: it does no unclean recovery that would read it.
        .with_eligible_leader_replicas(Some(p.elr.iter().map(|r| BrokerId(*r)).collect()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(offline)
}
