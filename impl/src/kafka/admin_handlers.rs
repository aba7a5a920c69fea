//! Handlers of the admin APIs beyond topic creation and deletion: partitions,
//! configs, DeleteRecords, DescribeCluster, OffsetForLeaderEpoch.

use super::authorize::Caller;
use super::common::{led_log, propose, str_bytes};
use super::configs::{self, TOPIC_CONFIGS};
use super::errors;
use super::partition_limits;
use crate::broker::shared::Broker;
use crate::log::PartitionLog;
use crate::metadata::MetadataCommand;
use chronik_core::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

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
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs(broker, caller, r, version))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs(broker, caller, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs(broker, caller, r).await,
        ),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records(broker, caller, r))
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

/// The refusal of a config resource: DescribeConfigs or AlterConfigs (`operation`)
/// on the topic, or on the cluster for a broker or broker logger.
fn config_refusal(
    caller: &Caller,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Option<(i16, String)> {
    let (allowed, code) = match resource_type {
        RESOURCE_TOPIC => (
            caller.may_topic(operation, name),
            errors::TOPIC_AUTHORIZATION_FAILED,
        ),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => (
            caller.may_cluster(operation),
            errors::CLUSTER_AUTHORIZATION_FAILED,
        ),
        _ => (true, errors::NONE),
    };
    (!allowed).then(|| (code, "Authorization failed.".to_string()))
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
            result.error_code = code;
            result.error_message = Some(str_bytes(&message));
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// The replicas of the partitions CreatePartitions adds: the request's assignments,
/// checked, or a round-robin over the live brokers; counted and bounded before
/// anything is built (issue 12: count -1 panicked, 2^31-1 allocated gigabytes).
fn new_partitions(
    broker: &Broker,
    state: &crate::metadata::MetadataState,
    name: &str,
    topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
) -> Result<Vec<Vec<i32>>, (i16, String)> {
    let info = state.topics.get(name).ok_or_else(|| {
        (
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("no topic {name}"),
        )
    })?;
    let current = info.partitions.len();
    let added = partition_limits::partitions_to_add(topic.count, current)?;
    let rf = info.partitions.first().map_or(1, |p| p.replicas.len());
    let limits = partition_limits::Limits {
        max_partitions: broker.config.max_partitions,
        max_broker_partitions: broker.config.max_broker_partitions,
    };
    if let Some(a) = &topic.assignments {
        let assignments: Vec<Vec<i32>> = a
            .iter()
            .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        if assignments.len() as u64 != added {
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "adding {added} partitions but {} assignments given",
                    assignments.len()
                ),
            ));
        }
        partition_limits::check_assignments(state, &assignments, Some(rf))?;
        partition_limits::check_limits(state, limits, added, rf as u64, Some(&assignments), 1)?;
        return Ok(assignments);
    }
    let mut brokers: Vec<i32> = state.live_brokers();
    if brokers.is_empty() {
        brokers.push(broker.config.node_id);
    }
    if rf > brokers.len() {
        return Err((
            errors::INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor {rf} with {} live broker(s)",
                brokers.len()
            ),
        ));
    }
    partition_limits::check_limits(state, limits, added, rf as u64, None, brokers.len())?;
    Ok((current..current + added as usize)
        .map(|p| (0..rf).map(|r| brokers[(p + r) % brokers.len()]).collect())
        .collect())
}

fn describe_configs(
    broker: &Broker,
    caller: &Caller,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let view = broker.consensus.view();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let refused = config_refusal(
                caller,
                Operation::DescribeConfigs,
                resource.resource_type,
                &resource.resource_name,
            );
            if let Some((code, message)) = refused {
                result.error_code = code;
                result.error_message = Some(str_bytes(&message));
                return result;
            }
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            match resource.resource_type {
                RESOURCE_TOPIC => match view.state.topics.get(resource.resource_name.as_str()) {
                    None => {
                        result.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                        result.error_message = Some(str_bytes("no such topic"));
                    }
                    Some(info) => {
                        let detail = Detail {
                            synonyms: request.include_synonyms,
                            documentation: request.include_documentation,
                            version,
                        };
                        result.configs = TOPIC_CONFIGS
                            .iter()
                            .filter(|c| wanted(c.name))
                            .map(|c| {
                                topic_config_entry(broker, c, info.configs.get(c.name), detail)
                            })
                            .collect();
                    }
                },
                RESOURCE_BROKER => {
                    let c = &broker.config;
                    let static_configs = [
                        ("broker.id", c.node_id.to_string()),
                        (
                            "auto.create.topics.enable",
                            c.auto_create_topics.to_string(),
                        ),
                        ("num.partitions", c.default_partitions.to_string()),
                        ("log.retention.ms", c.retention_ms.to_string()),
                        ("log.segment.bytes", c.segment_bytes.to_string()),
                        ("socket.request.max.bytes", c.max_request_bytes.to_string()),
                        ("fetch.max.bytes", c.fetch_max_bytes.to_string()),
                        (
                            "replica.fetch.response.max.bytes",
                            c.replica_fetch_response_max_bytes.to_string(),
                        ),
                    ];
                    result.configs = static_configs
                        .iter()
                        .filter(|(n, _)| wanted(n))
                        .map(|(n, v)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(n))
                                .with_value(Some(str_bytes(v)))
                                .with_read_only(true)
                                .with_config_source(SOURCE_STATIC_BROKER)
                        })
                        .collect();
                }
                _ => {
                    result.error_code = errors::INVALID_REQUEST;
                    result.error_message = Some(str_bytes("unsupported resource type"));
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// What a DescribeConfigs request asked to be told besides values.
#[derive(Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
    version: i16,
}

/// One topic config as Kafka describes it: the topic's own value
/// (DYNAMIC_TOPIC_CONFIG) or the default, which is STATIC_BROKER_CONFIG when a
/// broker setting chose it and DEFAULT_CONFIG otherwise; with `include_synonyms`,
/// every level that holds a value, most specific first (R-WIRE-11).
fn topic_config_entry(
    broker: &Broker,
    config: &configs::TopicConfig,
    set: Option<&String>,
    detail: Detail,
) -> DescribeConfigsResourceResult {
    let (default, from_broker) = config.default_value(&broker.config);
    let broker_name = config.synonym.unwrap_or(config.name);
    let mut levels = Vec::new();
    if let Some(v) = set {
        levels.push((config.name, v.clone(), SOURCE_DYNAMIC_TOPIC));
    }
    let default_source = if from_broker {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    };
    levels.push((broker_name, default, default_source));
    let (_, value, source) = levels[0].clone();
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(config.name))
        .with_value(Some(str_bytes(&value)))
        .with_config_source(source);
    if detail.synonyms && detail.version >= 1 {
        entry.synonyms = levels
            .iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(Some(str_bytes(value)))
                    .with_source(*source)
            })
            .collect();
    }
    if detail.version >= 3 {
        entry.config_type = config.kind.config_type();
        if detail.documentation {
            entry.documentation = Some(str_bytes(&documentation(config)));
        }
    }
    entry
}

/// Kafka's meaning of the config, and Chronik's word on it where it has no effect.
fn documentation(config: &configs::TopicConfig) -> String {
    match config.effect {
        configs::Effect::Enforced => config.doc.to_string(),
        configs::Effect::NoEffect(why) => {
            format!("{} Accepted, no effect in Chronik: {why}.", config.doc)
        }
    }
}

/// Validates and applies a topic config change through the metadata group.
async fn change_topic_configs(
    broker: &Broker,
    topic: &str,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
    replace: bool,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if !broker.consensus.view().state.topics.contains_key(topic) {
        return Err((
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("no topic {topic}"),
        ));
    }
    for (name, value) in &set {
        configs::validate(name, value).map_err(|m| (errors::INVALID_CONFIG, m))?;
    }
    if let Some(unknown) = remove.iter().find(|n| configs::find(n).is_none()) {
        return Err((
            errors::INVALID_CONFIG,
            format!("unknown topic config {unknown}"),
        ));
    }
    if validate_only {
        return Ok(());
    }
    propose(
        broker,
        MetadataCommand::AlterTopicConfigs {
            topic: topic.to_string(),
            set,
            remove,
            replace,
        },
    )
    .await?;
    broker.reconcile_partitions();
    Ok(())
}

fn resource_response(
    resource_type: i8,
    name: StrBytes,
    outcome: Result<(), (i16, String)>,
) -> AlterConfigsResourceResponse {
    let mut r = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name);
    if let Err((code, message)) = outcome {
        r.error_code = code;
        r.error_message = Some(str_bytes(&message));
    }
    r
}

/// AlterConfigs and IncrementalAlterConfigs: AlterConfigs allowed, and a topic (the
/// only resource whose configs can change here).
fn alterable(caller: &Caller, resource_type: i8, name: &str) -> Result<(), (i16, String)> {
    if let Some(refusal) = config_refusal(caller, Operation::AlterConfigs, resource_type, name) {
        return Err(refusal);
    }
    if resource_type != RESOURCE_TOPIC {
        return Err((
            errors::INVALID_REQUEST,
            "only topic configs can be altered".into(),
        ));
    }
    Ok(())
}

async fn alter_configs(
    broker: &Broker,
    caller: &Caller,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let outcome = if let Err(refusal) =
            alterable(caller, resource.resource_type, &resource.resource_name)
        {
            Err(refusal)
        } else {
            let set = resource
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            change_topic_configs(
                broker,
                &resource.resource_name,
                set,
                vec![],
                true,
                request.validate_only,
            )
            .await
        };
        responses.push(resource_response(
            resource.resource_type,
            resource.resource_name,
            outcome,
        ));
    }
    AlterConfigsResponse::default().with_responses(responses)
}

async fn incremental_alter_configs(
    broker: &Broker,
    caller: &Caller,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let outcome = if let Err(refusal) =
            alterable(caller, resource.resource_type, &resource.resource_name)
        {
            Err(refusal)
        } else {
            let current = broker
                .consensus
                .view()
                .state
                .topics
                .get(resource.resource_name.as_str())
                .map(|t| t.configs.clone())
                .unwrap_or_default();
            let mut set = BTreeMap::new();
            let mut remove = Vec::new();
            let mut bad = None;
            for c in &resource.configs {
                let name = c.name.to_string();
                match (c.config_operation, &c.value) {
                    (0, Some(v)) => {
                        set.insert(name, v.to_string());
                    }
                    (1, _) => remove.push(name),
                    (op @ (2 | 3), Some(v)) => {
                        let now = set.get(&name).or(current.get(&name)).cloned();
                        match list_operation(broker, &name, now, op == 2, v) {
                            Ok(list) => {
                                set.insert(name, list);
                            }
                            Err(message) => bad = Some((errors::INVALID_CONFIG, message)),
                        }
                    }
                    (op, _) => {
                        bad = Some((
                            errors::INVALID_REQUEST,
                            format!("operation {op} on {name} is not supported"),
                        ))
                    }
                }
            }
            match bad {
                Some(refusal) => Err(refusal),
                None => {
                    change_topic_configs(
                        broker,
                        &resource.resource_name,
                        set,
                        remove,
                        false,
                        request.validate_only,
                    )
                    .await
                }
            }
        };
        let mut r = kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = Some(str_bytes(&message));
        }
        responses.push(r);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs APPEND (`append`) or SUBTRACT of the comma-separated
/// items in `value` to a list config's current value (the topic's or the default),
/// as Kafka's ConfigAdminManager; INVALID_CONFIG for a config that is not a list.
fn list_operation(
    broker: &Broker,
    name: &str,
    current: Option<String>,
    append: bool,
    value: &str,
) -> Result<String, String> {
    let config = configs::find(name).ok_or_else(|| format!("unknown topic config {name}"))?;
    if !matches!(
        config.kind,
        configs::Kind::ListOf(_) | configs::Kind::ThrottledReplicas
    ) {
        return Err(format!(
            "{name} is not a list: it cannot be appended to or subtracted from"
        ));
    }
    let current = current.unwrap_or_else(|| config.default_value(&broker.config).0);
    let mut items: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if append && !items.contains(&item) {
            items.push(item);
        } else if !append {
            items.retain(|i| *i != item);
        }
    }
    Ok(items.join(","))
}

/// The offset a DeleteRecords entry asks for: -1 is the high watermark; any other
/// negative offset, like one beyond the high watermark, is OFFSET_OUT_OF_RANGE, as
/// Kafka's `Partition.deleteRecordsOnLeader` answers.
fn delete_target(log: &PartitionLog, requested: i64) -> Option<u64> {
    match requested {
        -1 => Some(log.high_watermark()),
        offset => u64::try_from(offset).ok(),
    }
}

fn delete_records(
    broker: &Broker,
    caller: &Caller,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let view = broker.consensus.view();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let refused = caller.topic_error(Operation::Delete, &name);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if refused != errors::NONE {
                        r.error_code = refused;
                        return r;
                    }
                    // Only the leader deletes; followers follow its log start (R-WIRE-5).
                    match led_log(broker, &view.state, &name, p.partition_index) {
                        Err(code) => r.error_code = code,
                        Ok((log, _)) => match delete_target(&log, p.offset)
                            .map(|target| log.delete_records_before(target))
                        {
                            Some(Ok(start)) => r.low_watermark = start as i64,
                            Some(Err(e)) => r.error_code = errors::from_log_error(&e),
                            None => r.error_code = errors::OFFSET_OUT_OF_RANGE,
                        },
                    }
                    r
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

fn describe_cluster(
    broker: &Broker,
    caller: &Caller,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if !caller.may_cluster(Operation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED)
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
                        r.error_code = refused;
                        return r;
                    }
                    let answer = broker.local(&view.state).epoch_end(
                        &name,
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    );
                    match answer {
                        Err(code) => r.error_code = code,
                        Ok((epoch, end)) => {
                            r.leader_epoch = epoch;
                            r.end_offset = end as i64;
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
