//! Handlers of the admin APIs beyond topic creation and deletion: partitions,
//! DeleteRecords, DescribeCluster, OffsetForLeaderEpoch (configs are in
//! `config_handlers`).

use super::authorize::Caller;
use super::common::{admin_defaults, propose, str_bytes};
use super::errors;
use super::waiting::wait_until;
use crate::broker::shared::now_ms;
use crate::broker::shared::Broker;
use crate::metadata::MetadataCommand;
use chronik_core::admin::topics::plan_new_partitions;
use chronik_core::errors::ErrorCode;
use chronik_core::replication::{DeletionStarted, FetchStep};
use chronik_core::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

pub async fn handle(
    broker: &Broker,
    caller: &Caller,
    body: RequestKind,
    version: i16,
) -> Result<ResponseKind, RequestKind> {
    Ok(match body {
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions(broker, caller, r).await)
        }
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(
            super::config_handlers::describe(broker, caller, r, version),
        ),
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(super::config_handlers::alter(broker, caller, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            super::config_handlers::incremental_alter(broker, caller, r).await,
        ),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records(broker, caller, r).await)
        }
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(
            super::elect_leaders::handle(broker, caller, r, version).await,
        ),
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(super::describe_log_dirs::handle(broker, caller, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster(broker, caller, r))
        }
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            super::scram_handlers::describe(broker, caller, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            super::scram_handlers::alter(broker, caller, r).await,
        ),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch(broker, caller, r))
        }
        other => return Err(other),
    })
}

async fn create_partitions(
    broker: &Broker,
    caller: &Caller,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let view = broker.consensus.view();
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let checked = if caller.may_topic(Operation::Alter, &name) {
            new_partitions(broker, &view.state, &name, &topic)
        } else {
            Err((
                errors::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".into(),
            ))
        };
        let outcome = match checked {
            Err(refusal) => Err(refusal),
            Ok(_) if request.validate_only => Ok(()),
            Ok(new_partitions) => propose(
                broker,
                MetadataCommand::CreatePartitions {
                    topic: name.clone(),
                    new_partitions,
                },
            )
            .await
            .map(|_| broker.reconcile_partitions()),
        };
        if let Err((code, message)) = outcome {
            result.error_code = code.code();
            result.error_message = Some(str_bytes(&message));
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// The replicas of the partitions CreatePartitions adds (`plan_new_partitions`).
fn new_partitions(
    broker: &Broker,
    state: &crate::metadata::MetadataState,
    name: &str,
    topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
) -> Result<Vec<Vec<i32>>, (ErrorCode, String)> {
    let assignments = topic.assignments.as_ref().map(|a| {
        a.iter()
            .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
            .collect()
    });
    plan_new_partitions(
        state,
        admin_defaults(broker),
        name,
        topic.count,
        assignments,
    )
}

/// DeleteRecords (R-WIRE-5): every led partition deletes at once, then the answer
/// waits until every live replica's log start passed each offset (`LocalView::
/// deletion_outcome`), all partitions against one deadline, REQUEST_TIMED_OUT for
/// those not there by the request's timeout, as Kafka's `DelayedDeleteRecords`.
/// An error answers low watermark -1, as Kafka does.
async fn delete_records(
    broker: &Broker,
    caller: &Caller,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut started = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let refused = caller.topic_error(Operation::Delete, &name);
        for p in &topic.partitions {
            let deletion = match refused {
                errors::NONE => started_deletion(broker, &name, p.partition_index, p.offset),
                code => Err(code),
            };
            started.push(((name.clone(), p.partition_index), deletion));
        }
    }
    let mut outcomes = Vec::with_capacity(started.len());
    for (key, deletion) in started {
        let outcome = match deletion {
            Ok(deletion) => wait_deleted(broker, &key, &deletion, deadline).await,
            Err(code) => Err(code),
        };
        outcomes.push(outcome);
    }
    let mut outcomes = outcomes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match outcomes.next().unwrap_or(Err(errors::UNKNOWN_SERVER_ERROR)) {
                        Ok(low) => r.with_low_watermark(low as i64),
                        Err(code) => r.with_low_watermark(-1).with_error_code(code.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Only the leader deletes; followers follow its log start (R-WIRE-5).
fn started_deletion(
    broker: &Broker,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<DeletionStarted, ErrorCode> {
    let view = broker.consensus.view();
    let key = (topic.to_string(), partition);
    broker.traced_change(
        &key,
        || {
            broker
                .local(&view.state)
                .delete_records(topic, partition, offset)
        },
        |started| {
            let started = started.as_ref().ok()?;
            Some(FetchStep::Deleted {
                key: key.clone(),
                offset: started.target,
            })
        },
    )
}

async fn wait_deleted(
    broker: &Broker,
    key: &(String, i32),
    deletion: &DeletionStarted,
    deadline: tokio::time::Instant,
) -> Result<u64, ErrorCode> {
    let outcome = wait_until(broker, deadline, || {
        let view = broker.consensus.view();
        broker
            .local(&view.state)
            .deletion_outcome(key, deletion, now_ms())
    })
    .await
    .unwrap_or(Err(errors::REQUEST_TIMED_OUT));
    if let (Some(trace), Ok(_)) = (&broker.replication_trace, &outcome) {
        if trace.traces(key) {
            broker.trace_shown();
            trace.deletion_acknowledged(deletion.target);
        }
    }
    outcome
}

fn describe_cluster(
    broker: &Broker,
    caller: &Caller,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if !caller.may_cluster(Operation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let view = broker.consensus.view();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_static_str("chronik"))
        .with_controller_id(BrokerId(view.leader_id.map_or(-1, |id| id as i32)))
        .with_brokers(
            view.state
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter_map(|b| {
                    let (host, port) = b.endpoint(&caller.listener)?;
                    Some(
                        DescribeClusterBroker::default()
                            .with_broker_id(BrokerId(b.broker_id))
                            .with_host(str_bytes(host))
                            .with_port(port),
                    )
                })
                .collect(),
        );
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            caller.authorized_operations(ResourceType::Cluster, CLUSTER_NAME);
    }
    response
}

/// Where a leader epoch ends in this leader's log: a follower truncates to it
/// before fetching again, so it never keeps records its new leader does not have
/// (R-REPL-3).
fn offset_for_leader_epoch(
    broker: &Broker,
    caller: &Caller,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let view = broker.consensus.view();
    // A follower (ClusterAction on the cluster) may ask of every topic, a client of
    // those it may describe (as Kafka).
    let replica = caller.may_cluster(Operation::ClusterAction);
    let replica_id = request.replica_id.0;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let refused = if replica {
                errors::NONE
            } else {
                caller.topic_error(Operation::Describe, &name)
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = EpochEndOffset::default().with_partition(p.partition);
                    if refused != errors::NONE {
                        r.error_code = refused.code();
                        return r;
                    }
                    let answer = broker.local(&view.state).epoch_end(
                        &name,
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    );
                    match answer {
                        Err(code) => r.error_code = code.code(),
                        Ok((epoch, end)) => {
                            r.leader_epoch = epoch;
                            r.end_offset = end as i64;
                            if replica_id >= 0 {
                                broker.trace_step(|| FetchStep::EpochServed {
                                    key: (name.clone(), p.partition),
                                    follower: replica_id,
                                });
                            }
                        }
                    }
                    r
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
