//! Request handlers: each turns a decoded request into a response body.
//! Version-specific fields are set only where the version has them: the encoder
//! refuses a non-default value in a version without the field.

use super::authorize::Caller;
use super::codec::{self, Request};
use super::common::{admin_defaults, gate, propose, str_bytes, topic_name};
use super::errors;
use super::message_format;
use super::waiting::wait_until;
use crate::broker::config::BrokerConfig;
use crate::broker::response_memory::Grant;
use crate::broker::shared::{now_ms, Broker};
use crate::log::{PartitionLog, ReadLimits};
use crate::metadata::{broker_to_wire, ApplyOutcome, MetadataCommand};
use bytes::Bytes;
use chronik_core::admin::topics::{plan_new_topic, NewTopic};
use chronik_core::errors::ErrorCode;
use chronik_core::log::produced::{prepare_produced, transaction_refusal};
use chronik_core::replication::{
    list_offset, value_digests, AppendResult, FetchStep, FollowerFetch, ProduceWait,
};
use chronik_core::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

type Handled = Result<Option<Bytes>, String>;

/// Starts a request on the connection's reader task and returns the rest of its
/// handling as a future to run concurrently. What must happen in request order
/// (a Produce's appends) happens before this returns.
pub fn start(
    broker: Arc<Broker>,
    request: Request,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Handled> + Send>> {
    let Request {
        api_key,
        version,
        header,
        body,
        peer,
        principal,
        listener,
        extras,
    } = request;
    match body {
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let caller = Caller::new(&broker, principal, peer, listener);
            let submitted = produce_submit(&broker, &caller, r, version);
            Box::pin(async move {
                let response = produce_finish(&broker, submitted, &caller.listener).await;
                if acks == 0 {
                    return Ok(None);
                }
                codec::encode_response(
                    api_key,
                    version,
                    header.correlation_id,
                    &ResponseKind::Produce(response),
                )
                .map(Some)
            })
        }
        body => Box::pin(async move {
            handle(
                &broker,
                Request {
                    api_key,
                    version,
                    header,
                    body,
                    peer,
                    principal,
                    listener,
                    extras,
                },
            )
            .await
        }),
    }
}

/// Handles one request; `Ok(None)` means no response is sent (acks=0).
pub async fn handle(broker: &Broker, request: Request) -> Result<Option<Bytes>, String> {
    let version = request.version;
    let caller = Caller::of(broker, &request);
    let caller = &caller;
    let body = match request.body {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(codec::api_versions_body(errors::NONE))
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata(broker, caller, r, version).await)
        }
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let submitted = produce_submit(broker, caller, r, version);
            let response = produce_finish(broker, submitted, &caller.listener).await;
            if acks == 0 {
                return Ok(None);
            }
            ResponseKind::Produce(response)
        }
        RequestKind::Fetch(r) => {
            let (response, grant) = fetch(broker, caller, r, version).await;
            let body = ResponseKind::Fetch(response);
            let encoded = codec::encode_response(
                request.api_key,
                version,
                request.header.correlation_id,
                &body,
            )?;
            // The answer holds its memory until it is written (R-WIRE-12).
            return Ok(Some(grant.attach(encoded)));
        }
        RequestKind::ListOffsets(r) if version == 0 => {
            let correlation_id = request.header.correlation_id;
            return list_offsets_v0(broker, caller, r, &request.extras, correlation_id).map(Some);
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets(broker, caller, r, version))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics(broker, caller, r, version).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics(broker, caller, r, version).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id(broker, caller, r).await)
        }
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(super::acl_handlers::create_acls(broker, caller, r).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(super::acl_handlers::describe_acls(broker, caller, r))
        }
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(
            super::describe_topic_partitions::describe_topic_partitions(broker, caller, r),
        ),
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(super::acl_handlers::delete_acls(broker, caller, r).await)
        }
        other => {
            let client_id = request.header.client_id.as_deref().unwrap_or("");
            let body = match super::group_handlers::handle(
                broker,
                caller,
                other,
                version,
                &request.peer,
                client_id,
                &request.extras,
            )
            .await
            {
                Ok(body) => body,
                Err(not_a_group_request) => {
                    match super::admin_handlers::handle(
                        broker,
                        caller,
                        not_a_group_request,
                        version,
                    )
                    .await
                    {
                        Ok(body) => body,
                        Err(_) => return Err(format!("no handler for {:?}", request.api_key)),
                    }
                }
            };
            body
        }
    };
    codec::encode_response(
        request.api_key,
        version,
        request.header.correlation_id,
        &body,
    )
    .map(Some)
}

/// Creates a topic through the metadata group and opens its logs here.
async fn create_topic(
    broker: &Broker,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    assignments: Vec<Vec<i32>>,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    let topic = NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        assignments,
        configs,
    };
    let view = broker.consensus.view();
    let assignments = plan_new_topic(&view.state, admin_defaults(broker), &topic)?;
    let NewTopic { configs, .. } = topic;
    if validate_only {
        return Ok(());
    }
    propose(
        broker,
        MetadataCommand::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4().to_string(),
            partitions: assignments,
            configs,
        },
    )
    .await?;
    broker.reconcile_partitions();
    Ok(())
}

fn topic_name_by_id(state: &crate::metadata::MetadataState, id: Uuid) -> Option<String> {
    state
        .topics
        .iter()
        .find(|(_, info)| Uuid::parse_str(&info.topic_id).is_ok_and(|t| t == id))
        .map(|(name, _)| name.clone())
}

/// The topics a Metadata request names, as names (None: all topics).
struct Requested {
    names: Option<Vec<String>>,
    /// Named by an id no topic has.
    unknown_ids: Vec<Uuid>,
    /// Named by id but not describable: answered by id alone, so the name stays hidden.
    denied_ids: Vec<Uuid>,
}

/// v0: an empty list means all topics; v1+: null means all. v12+ may name topics by
/// id alone (KIP-848 consumers resolve their assignment so).
fn requested_topics(
    state: &crate::metadata::MetadataState,
    caller: &Caller,
    request: &MetadataRequest,
    version: i16,
) -> Requested {
    let mut requested = Requested {
        names: None,
        unknown_ids: Vec::new(),
        denied_ids: Vec::new(),
    };
    let topics = match &request.topics {
        Some(t) if !(t.is_empty() && version == 0) => t,
        _ => return requested,
    };
    let mut names = Vec::new();
    for t in topics {
        if let Some(n) = &t.name {
            names.push(n.0.to_string());
            continue;
        }
        match topic_name_by_id(state, t.topic_id) {
            None => requested.unknown_ids.push(t.topic_id),
            Some(name) if !caller.may_topic(Operation::Describe, &name) => {
                requested.denied_ids.push(t.topic_id)
            }
            Some(name) => names.push(name),
        }
    }
    requested.names = Some(names);
    requested
}

/// Creates the named topics that do not exist; the error of each that was not. A topic
/// the caller may not describe is left alone (answered TOPIC_AUTHORIZATION_FAILED,
/// existing or not); creating one needs Create on the cluster or topic (R-SEC-ACL-13).
async fn auto_create_topics(
    broker: &Broker,
    caller: &Caller,
    state: &crate::metadata::MetadataState,
    names: &[String],
) -> BTreeMap<String, ErrorCode> {
    let mut creation_errors = BTreeMap::new();
    let missing = names.iter().filter(|n| !state.topics.contains_key(*n));
    for name in missing.filter(|n| caller.may_topic(Operation::Describe, n)) {
        if !caller.may_create_topic(name) {
            creation_errors.insert(name.clone(), errors::TOPIC_AUTHORIZATION_FAILED);
            continue;
        }
        if let Err((code, _)) =
            create_topic(broker, name, -1, -1, vec![], BTreeMap::new(), false).await
        {
            if code != errors::TOPIC_ALREADY_EXISTS {
                creation_errors.insert(name.clone(), code);
            }
        }
    }
    creation_errors
}

/// The "controller" a client is told (R-WIRE-6): as Kafka's KRaft brokers do, a live
/// broker that takes admin requests, not the Raft leader: every broker forwards what
/// needs the leader (R-PROPOSE-2). This broker itself once it is listed; else the
/// leader, if listed. A follower's view can name a leader that has just died, and
/// librdkafka, told so, waited on it for good (no admin request for 30 s, issue 15's
/// secured-cluster test); kafkajs and librdkafka stall on an id missing from the list.
fn client_controller(
    broker: &Broker,
    caller: &Caller,
    view: &crate::consensus::MetadataView,
) -> Option<i32> {
    let listed = |id: i32| {
        view.state
            .brokers
            .get(&id)
            .is_some_and(|b| !b.fenced && b.endpoint(&caller.listener).is_some())
    };
    let me = broker.config.node_id;
    let leader = view.leader_id.map(|id| id as i32);
    Some(me)
        .filter(|id| listed(*id))
        .or(leader.filter(|id| listed(*id)))
}

async fn metadata(
    broker: &Broker,
    caller: &Caller,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut view = broker.consensus.view();
    let Requested {
        names: wanted,
        unknown_ids,
        denied_ids,
    } = requested_topics(&view.state, caller, &request, version);
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut creation_errors: BTreeMap<String, ErrorCode> = BTreeMap::new();
    if let (Some(names), true) = (&wanted, auto_create) {
        creation_errors = auto_create_topics(broker, caller, &view.state, names).await;
        view = broker.consensus.view();
    }
    let state = &view.state;
    let me = broker.config.node_id;
    // Fenced brokers are not listed: clients must not be sent to them (R-WIRE-6).
    // Each broker is named by its address on the listener the client came in on
    // (R-SEC-7): a SASL_SSL client is never sent to a PLAINTEXT port.
    let brokers = state
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let (host, port) = b.endpoint(&caller.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(str_bytes(host))
                    .with_port(port),
            )
        })
        .collect();
    // Listing every topic lists only those the caller may describe (R-SEC-ACL-13).
    let names: Vec<String> = wanted.unwrap_or_else(|| {
        state
            .topics
            .keys()
            .filter(|n| caller.may_topic(Operation::Describe, n))
            .cloned()
            .collect()
    });
    let topic_operations = version >= 8 && request.include_topic_authorized_operations;
    let topics = names
        .into_iter()
        .map(|name| {
            let mut topic = MetadataResponseTopic::default().with_name(Some(topic_name(&name)));
            if !caller.may_topic(Operation::Describe, &name) {
                topic.error_code = errors::TOPIC_AUTHORIZATION_FAILED.code();
                return topic;
            }
            if topic_operations {
                topic.topic_authorized_operations =
                    caller.authorized_operations(ResourceType::Topic, &name);
            }
            match state.topics.get(&name) {
                None => {
                    let code = match creation_errors.get(&name) {
                        Some(&errors::INVALID_TOPIC_EXCEPTION) => errors::INVALID_TOPIC_EXCEPTION,
                        Some(&errors::TOPIC_AUTHORIZATION_FAILED) => {
                            errors::TOPIC_AUTHORIZATION_FAILED
                        }
                        Some(_) => errors::LEADER_NOT_AVAILABLE,
                        None => errors::UNKNOWN_TOPIC_OR_PARTITION,
                    };
                    topic.error_code = code.code();
                }
                Some(info) => {
                    if version >= 10 {
                        topic.topic_id = Uuid::parse_str(&info.topic_id).unwrap_or(Uuid::nil());
                    }
                    topic.partitions = info
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let (leader, serves) = state.client_leader(p, me, broker.incarnation);
                            let mut part = MetadataResponsePartition::default()
                                .with_partition_index(i as i32)
                                .with_leader_id(BrokerId(broker_to_wire(leader)))
                                .with_replica_nodes(
                                    p.replicas.iter().map(|r| BrokerId(*r)).collect(),
                                )
                                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect());
                            if !serves {
                                part.error_code = errors::LEADER_NOT_AVAILABLE.code();
                            }
                            if version >= 7 {
                                part.leader_epoch = p.leader_epoch;
                            }
                            part
                        })
                        .collect();
                }
            }
            topic
        })
        .collect();
    let mut topics: Vec<MetadataResponseTopic> = topics;
    topics.extend(unknown_ids.into_iter().map(|id| {
        MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(errors::UNKNOWN_TOPIC_ID.code())
    }));
    topics.extend(denied_ids.into_iter().map(|id| {
        MetadataResponseTopic::default()
            .with_name(None)
            .with_topic_id(id)
            .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED.code())
    }));
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(client_controller(broker, caller, &view).unwrap_or(-1));
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_static_str("chronik"));
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            caller.authorized_operations(ResourceType::Cluster, CLUSTER_NAME);
    }
    response
}

/// A Produce whose appends were issued, waiting for durability.
pub struct SubmittedProduce {
    responses: Vec<TopicProduceResponse>,
    pending: Vec<PendingAppend>,
    version: i16,
    timeout: Duration,
}

struct PendingAppend {
    topic_index: usize,
    partition_index: usize,
    wait: ProduceWait,
    /// The broker time stamped on a LogAppendTime topic's batch, else -1.
    log_append_time_ms: i64,
    durable: oneshot::Receiver<AppendResult>,
    /// The digests of an acks=all batch's values, if the replication trace follows
    /// its partition: noted with the offset it is acknowledged at.
    traced_values: Option<Vec<u64>>,
}

/// Issues a Produce's appends. Runs on the connection's reader task, so a
/// connection's produces are appended in request order, as Kafka clients rely on
/// for ordering within a partition (R-WIRE-3).
fn produce_submit(
    broker: &Broker,
    caller: &Caller,
    request: ProduceRequest,
    version: i16,
) -> SubmittedProduce {
    let now = now_ms();
    let acks = request.acks;
    let acks_valid = matches!(acks, -1..=1);
    // A transactional produce needs Write on its transactional id, every partition
    // refused otherwise (as Kafka).
    let transaction_refused = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !caller.may(Operation::Write, ResourceType::TransactionalId, id));
    let transactional = request.transactional_id.is_some();
    let view = broker.consensus.view();
    let local = broker.local(&view.state);
    let mut pending = Vec::new();
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    for (ti, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let refused = if transaction_refused {
            errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        } else {
            caller.topic_error(Operation::Write, &name)
        };
        let mut partition_responses = Vec::new();
        for (pi, data) in topic.partition_data.into_iter().enumerate() {
            let mut response = PartitionProduceResponse::default().with_index(data.index);
            response.base_offset = -1;
            let code = if refused != errors::NONE {
                Some(refused)
            } else if !acks_valid {
                Some(errors::INVALID_REQUIRED_ACKS)
            } else if let Some(code) = data
                .records
                .as_deref()
                .and_then(|records| transaction_refusal(records, transactional))
            {
                Some(code)
            } else {
                match (local.admit_produce(&name, data.index, acks), data.records) {
                    (Err(code), _) => Some(code),
                    (Ok(_), None) => Some(errors::INVALID_RECORD),
                    (Ok((log, p)), Some(records)) => {
                        let topic_configs = local.topic_configs(&name);
                        let configs = &*topic_configs;
                        let limit = log.config().max_records_bytes();
                        match prepare_produced(&records, version, configs, limit, now as i64) {
                            Err(code) => {
                                if code == errors::INVALID_RECORD && version >= 8 {
                                    name_keyless_records(
                                        &mut response,
                                        &name,
                                        configs,
                                        &records,
                                        limit,
                                    );
                                }
                                Some(code)
                            }
                            // An old message set with no whole message: Kafka
                            // appends nothing and answers success.
                            Ok(None) => None,
                            Ok(Some(prepared)) => {
                                let (tx, rx) = oneshot::channel();
                                let key = (name.clone(), data.index);
                                let append = || {
                                    ProduceWait::append(
                                        key.clone(),
                                        log,
                                        p.leader_epoch,
                                        acks,
                                        &prepared.bytes,
                                        now,
                                        move |r| {
                                            let _ = tx.send(r);
                                        },
                                    )
                                };
                                match led_append(broker, &key, p.leader_epoch, append) {
                                    // Deposed since the request was admitted.
                                    None => Some(errors::NOT_LEADER_OR_FOLLOWER),
                                    Some(wait) => {
                                        let traced_values = (acks == -1 && broker.traces(&key))
                                            .then(|| value_digests(&prepared.bytes).ok())
                                            .flatten();
                                        pending.push(PendingAppend {
                                            topic_index: ti,
                                            partition_index: pi,
                                            wait,
                                            log_append_time_ms: prepared.log_append_time_ms,
                                            durable: rx,
                                            traced_values,
                                        });
                                        None
                                    }
                                }
                            }
                        }
                    }
                }
            };
            if let Some(code) = code {
                response.error_code = code.code();
                broker.metrics.error("Produce");
            }
            partition_responses.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses),
        );
    }
    SubmittedProduce {
        responses,
        pending,
        version,
        timeout: Duration::from_millis(request.timeout_ms.max(0) as u64),
    }
}

/// A compacted topic's refusal names the records without a key and says why, as
/// Kafka's validator does (KIP-467): librdkafka then fails those records with
/// INVALID_RECORD and the others of their batch with _INVALID_DIFFERENT_RECORD.
fn name_keyless_records(
    response: &mut PartitionProduceResponse,
    topic: &str,
    configs: &BTreeMap<String, String>,
    records: &[u8],
    limit: usize,
) {
    if !chronik_core::log::validation::RecordPolicy::of_topic(configs).keys_required {
        return;
    }
    let keyless = chronik_core::log::validation::keyless_record_indexes(records, limit);
    if keyless.is_empty() {
        return;
    }
    response.record_errors = keyless
        .into_iter()
        .map(|i| BatchIndexAndErrorMessage::default().with_batch_index(i))
        .collect();
    response.error_message = Some(str_bytes(&format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{}.",
        response.index
    )));
}

/// Waits for a submitted Produce's appends to be durable and builds the response.
/// Each partition's decisions are `ProduceWait`'s; this only waits between them.
async fn produce_finish(
    broker: &Broker,
    submitted: SubmittedProduce,
    listener: &str,
) -> ProduceResponse {
    let SubmittedProduce {
        mut responses,
        pending,
        version,
        timeout,
    } = submitted;
    let deadline = tokio::time::Instant::now() + timeout;
    for PendingAppend {
        topic_index,
        partition_index,
        mut wait,
        log_append_time_ms,
        durable,
        traced_values,
    } in pending
    {
        let outcome = durable
            .await
            .unwrap_or(Err(crate::log::LogError::ShuttingDown));
        let response = &mut responses[topic_index].partition_responses[partition_index];
        {
            let view = broker.consensus.view();
            wait.on_outcome(&broker.local(&view.state), &outcome, now_ms());
            broker.trace_shown();
        }
        if outcome.is_ok() {
            response.log_append_time_ms = log_append_time_ms;
            if version >= 5 {
                response.log_start_offset = wait.log().log_start_offset() as i64;
            }
            // Followers long-poll for new durable data, not only for the high
            // watermark (which `on_outcome` may have moved).
            broker.data_arrived.notify_waiters();
        }
        if let (Some(_), Err(e)) = (wait.refused(), &outcome) {
            tracing::warn!(error = %e, "append failed");
        }
        if let Some(base_offset) = wait.base_offset() {
            response.base_offset = base_offset as i64;
        }
        let answer = |timed_out: bool| {
            let view = broker.consensus.view();
            wait.answer(&broker.local(&view.state), timed_out)
        };
        let answered = match wait_until(broker, deadline, || answer(false)).await {
            Some(answered) => answered,
            None => answer(true).unwrap_or(Err(errors::REQUEST_TIMED_OUT)),
        };
        match answered {
            Err(code) => {
                response.error_code = code.code();
                broker.metrics.error("Produce");
            }
            Ok(base_offset) => trace_acknowledged(broker, base_offset, traced_values),
        }
    }
    let mut response = ProduceResponse::default().with_responses(responses);
    let moved = |code: ErrorCode| {
        [errors::NOT_LEADER_OR_FOLLOWER, errors::FENCED_LEADER_EPOCH].contains(&code)
    };
    let any_moved = response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .any(|p| moved(ErrorCode::from_wire(p.error_code)));
    // The view is read only when a partition needs a hint, not on every answer.
    if version >= 10 && any_moved {
        add_leader_hints(&broker.consensus.view().state, &mut response, listener);
    }
    response
}

/// Runs a produce's append as leader of `leader_epoch`, unless the log follows that
/// epoch or a later one by now (`Partitions::append_as_leader`, R-REPL-3: the view
/// that admitted it is older than a truncation for the successor). With the
/// replication trace following its partition, the append and the records it added
/// are noted at once (the log end's move: nothing for a duplicate or a refusal).
fn led_append(
    broker: &Broker,
    key: &(String, i32),
    leader_epoch: i32,
    append: impl FnOnce() -> ProduceWait,
) -> Option<ProduceWait> {
    let gated = || {
        broker
            .partitions
            .append_as_leader(key, leader_epoch, append)
    };
    if !broker.traces(key) {
        return gated();
    }
    let (_, wait) = broker.traced_change(
        key,
        || {
            let log = broker.partitions.get(&key.0, key.1);
            (log.map_or(0, |l| l.log_end_offset()), gated())
        },
        |(before, wait)| {
            let count = wait
                .as_ref()?
                .log()
                .log_end_offset()
                .saturating_sub(*before);
            (count > 0).then(|| FetchStep::Appended {
                key: key.clone(),
                count,
            })
        },
    );
    wait
}

/// The replication trace notes an acks=all produce answered as written, after what
/// this broker shows now (the high watermark that allowed it).
fn trace_acknowledged(broker: &Broker, offset: u64, values: Option<Vec<u64>>) {
    let (Some(trace), Some(values)) = (&broker.replication_trace, values) else {
        return;
    };
    broker.trace_shown();
    trace.acknowledged(offset, values);
}

/// KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names
/// its current leader and epoch, and the answer carries that leader's endpoint, so the
/// client sends its retry there without a Metadata round trip first (Produce v10+,
/// Fetch v16+). The leader and epoch, when the metadata names an unfenced leader.
fn moved_leader(
    state: &crate::metadata::MetadataState,
    topic: &str,
    partition: i32,
    code: ErrorCode,
) -> Option<(i32, i32)> {
    if ![errors::NOT_LEADER_OR_FOLLOWER, errors::FENCED_LEADER_EPOCH].contains(&code) {
        return None;
    }
    let info = state.partition(topic, partition)?;
    let leader = state.brokers.get(&info.leader?).filter(|b| !b.fenced)?;
    Some((leader.broker_id, info.leader_epoch))
}

/// The endpoints of `leaders` on `listener`: (id, host, port, rack).
fn leader_endpoints(
    state: &crate::metadata::MetadataState,
    leaders: std::collections::BTreeSet<i32>,
    listener: &str,
) -> Vec<(i32, StrBytes, i32, Option<StrBytes>)> {
    leaders
        .into_iter()
        .filter_map(|id| state.brokers.get(&id))
        .filter_map(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some((
                b.broker_id,
                str_bytes(host),
                port,
                b.rack.as_deref().map(str_bytes),
            ))
        })
        .collect()
}

fn add_leader_hints(
    state: &crate::metadata::MetadataState,
    response: &mut ProduceResponse,
    listener: &str,
) {
    use kafka_protocol::messages::produce_response::{LeaderIdAndEpoch, NodeEndpoint};
    let mut leaders = std::collections::BTreeSet::new();
    for topic in &mut response.responses {
        for p in &mut topic.partition_responses {
            if let Some((leader, epoch)) = moved_leader(
                state,
                &topic.name.0,
                p.index,
                ErrorCode::from_wire(p.error_code),
            ) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints = leader_endpoints(state, leaders, listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(host)
                .with_port(port)
                .with_rack(rack)
        })
        .collect();
}

/// The same hints in a Fetch v16+ answer, whose topics are named by id.
fn add_fetch_leader_hints(
    state: &crate::metadata::MetadataState,
    response: &mut FetchResponse,
    listener: &str,
    by_id: Option<&BTreeMap<Uuid, String>>,
) {
    use kafka_protocol::messages::fetch_response::{LeaderIdAndEpoch, NodeEndpoint};
    let mut leaders = std::collections::BTreeSet::new();
    for topic in &mut response.responses {
        let Some(name) = by_id.and_then(|names| names.get(&topic.topic_id)) else {
            continue;
        };
        for p in &mut topic.partitions {
            if let Some((leader, epoch)) = moved_leader(
                state,
                name,
                p.partition_index,
                ErrorCode::from_wire(p.error_code),
            ) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints = leader_endpoints(state, leaders, listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(host)
                .with_port(port)
                .with_rack(rack)
        })
        .collect();
}

/// The most a Fetch answer may carry (R-WIRE-9): the request's `max_bytes` (v3+),
/// capped by the broker's `fetch.max.bytes` for consumers and
/// `replica.fetch.response.max.bytes` for followers, as Kafka's ReplicaManager does.
fn fetch_budget(config: &BrokerConfig, request: &FetchRequest, version: i16) -> usize {
    let broker_cap = if fetching_replica(request, version) >= 0 {
        config.replica_fetch_response_max_bytes
    } else {
        config.fetch_max_bytes
    };
    if version >= 3 && request.max_bytes >= 0 {
        (request.max_bytes as usize).min(broker_cap)
    } else {
        broker_cap
    }
}

/// The broker id of a follower's Fetch, -1 for a consumer: v15+ carry it in
/// `replica_state` (KIP-903), older versions in `replica_id`.
fn fetching_replica(request: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    }
}

/// Every topic's name by its id, for a Fetch v13+ that names topics by id (KIP-516).
/// Ids the metadata no longer has (a deleted topic's) are simply absent: a topic
/// created again under the same name has a new id, so the old one reads nothing.
fn topic_names_by_id(state: &crate::metadata::MetadataState) -> BTreeMap<Uuid, String> {
    state
        .topics
        .iter()
        .filter_map(|(name, t)| Some((Uuid::parse_str(&t.topic_id).ok()?, name.clone())))
        .collect()
}

/// What one pass over a Fetch's partitions has gathered so far.
struct FetchPass {
    /// Bytes of records in the answer.
    total: usize,
    any_error: bool,
    /// Only the first partition that yields data may exceed the limits (KIP-74).
    first_batch_whole: bool,
    max_bytes: usize,
    follower: i32,
    version: i16,
    /// The consumer's `client.rack` (Fetch v11+), when this broker sends consumers to
    /// replicas in their rack (KIP-392); empty otherwise.
    client_rack: String,
}

/// One pass over the partitions of a Fetch: the response and how many bytes it holds.
fn read_fetch(
    broker: &Broker,
    caller: &Caller,
    request: &FetchRequest,
    version: i16,
    max_bytes: usize,
) -> (FetchResponse, usize, bool) {
    let view = broker.consensus.view();
    let by_id = (version >= 13).then(|| topic_names_by_id(&view.state));
    let mut pass = FetchPass {
        total: 0,
        any_error: false,
        first_batch_whole: true,
        max_bytes,
        follower: fetching_replica(request, version),
        version,
        client_rack: if broker.config.rack_aware_reads() && version >= 11 {
            request.rack_id.to_string()
        } else {
            String::new()
        },
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = match &by_id {
                Some(names) => names.get(&topic.topic_id).cloned(),
                None => Some(topic.topic.0.to_string()),
            };
            let refused = match &name {
                None => errors::UNKNOWN_TOPIC_ID,
                Some(name) => fetch_refusal(caller, pass.follower, name),
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|p| match (&name, refused) {
                    (Some(name), errors::NONE) => {
                        read_partition(broker, &view.state, name, p, &mut pass)
                    }
                    (_, code) => {
                        pass.any_error = true;
                        PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_error_code(code.code())
                    }
                })
                .collect();
            let answer = FetchableTopicResponse::default().with_partitions(partitions);
            // v13+ answer by id only: the name field does not exist there.
            if version >= 13 {
                answer.with_topic_id(topic.topic_id)
            } else {
                answer.with_topic(topic.topic.clone())
            }
        })
        .collect();
    let mut response = FetchResponse::default().with_responses(topics);
    if version >= 16 && pass.any_error {
        add_fetch_leader_hints(&view.state, &mut response, &caller.listener, by_id.as_ref());
    }
    (response, pass.total, pass.any_error)
}

/// One partition of a Fetch whose topic is known and may be read.
fn read_partition(
    broker: &Broker,
    state: &crate::metadata::MetadataState,
    name: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    pass: &mut FetchPass,
) -> PartitionData {
    let mut data = PartitionData::default().with_partition_index(p.partition);
    let read = if pass.follower >= 0 && p.fetch_offset >= 0 {
        let key = (name.to_string(), p.partition);
        let step = |read: &_| {
            let opened = broker.partitions.get(name, p.partition).is_some();
            served_step(
                key.clone(),
                pass.follower,
                p.fetch_offset as u64,
                read,
                opened,
            )
        };
        broker.traced_change(
            &key,
            || read_led_partition(broker, state, name, p, pass, &mut data),
            step,
        )
    } else {
        read_led_partition(broker, state, name, p, pass, &mut data)
    };
    match read {
        Ok(Some(records)) => {
            pass.total += records.len();
            pass.first_batch_whole &= records.is_empty();
            data.records = Some(Bytes::from(records));
        }
        Ok(None) => {}
        Err(code) => {
            data.error_code = code.code();
            pass.any_error = true;
        }
    }
    data
}

/// A follower's Fetch answered, as the simulator's hosts report it to the
/// replication trace: served (or refused), or come before this broker knew the
/// partition: before its metadata held it, or before its log was open here (the
/// metadata is applied first and the logs follow it, `follow_metadata`), when a
/// leader refuses NOT_LEADER_OR_FOLLOWER.
fn served_step(
    key: (String, i32),
    follower: i32,
    offset: u64,
    read: &Result<Option<Vec<u8>>, ErrorCode>,
    opened: bool,
) -> Option<FetchStep> {
    Some(match read {
        Err(errors::UNKNOWN_TOPIC_OR_PARTITION) => FetchStep::Unknown {
            key,
            follower,
            offset,
        },
        Err(_) if !opened => FetchStep::Unknown {
            key,
            follower,
            offset,
        },
        _ => FetchStep::Served {
            key,
            follower,
            offset,
        },
    })
}

/// The log a Fetch reads: the leader's; for a consumer of Fetch v11+ also a
/// follower's (KIP-392, R-WIRE-17). True when this broker leads the partition.
fn fetch_gate<'a>(
    broker: &'a Broker,
    state: &'a crate::metadata::MetadataState,
    name: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    pass: &FetchPass,
) -> Result<(Arc<PartitionLog>, &'a crate::metadata::PartitionInfo, bool), ErrorCode> {
    let requested = if pass.version >= 9 {
        p.current_leader_epoch
    } else {
        -1
    };
    match gate(broker, state, name, p.partition, requested) {
        Ok((log, info)) => Ok((log, info, true)),
        Err(errors::NOT_LEADER_OR_FOLLOWER) if pass.follower < 0 && pass.version >= 11 => {
            let (log, info) = broker
                .local(state)
                .replica_gate(name, p.partition, requested)?;
            Ok((log, info, false))
        }
        Err(code) => Err(code),
    }
}

/// The records of a partition this broker leads, or follows for a consumer (None:
/// none are read), with its watermarks set in `data`.
fn read_led_partition(
    broker: &Broker,
    state: &crate::metadata::MetadataState,
    name: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    pass: &FetchPass,
    data: &mut PartitionData,
) -> Result<Option<Vec<u8>>, ErrorCode> {
    let version = pass.version;
    let (log, info, leads) = fetch_gate(broker, state, name, p, pass)?;
    let key = (name.to_string(), p.partition);
    // A follower's fetch offset is its durable log end (R-REPL-1); it is served what
    // the leader holds durably, never less than that.
    let upper = (pass.follower >= 0 && p.fetch_offset >= 0).then(|| {
        let fetch = FollowerFetch {
            follower: pass.follower,
            fetch_offset: p.fetch_offset as u64,
            log_start: p.log_start_offset.max(0) as u64,
        };
        let served = broker
            .local(state)
            .serve_follower_fetch(&key, &log, info, fetch, now_ms());
        if served.wakes_waiters {
            broker.data_arrived.notify_waiters();
        }
        served.upper
    });
    let hw = log.high_watermark();
    data.high_watermark = hw as i64;
    data.last_stable_offset = hw as i64;
    if version >= 5 {
        data.log_start_offset = log.log_start_offset() as i64;
    }
    if p.fetch_offset < 0 {
        return Err(errors::OFFSET_OUT_OF_RANGE);
    }
    if leads && !pass.client_rack.is_empty() {
        if let Some(replica) = broker.local(state).preferred_read_replica(
            info,
            &pass.client_rack,
            p.fetch_offset as u64,
            hw,
        ) {
            // The consumer reads from that replica from now on; no records here.
            data.preferred_read_replica = kafka_protocol::messages::BrokerId(replica);
            return Ok(None);
        }
    }
    let room = pass.max_bytes.saturating_sub(pass.total);
    if room == 0 && !pass.first_batch_whole {
        return Ok(None);
    }
    let limits = ReadLimits {
        max_bytes: (p.partition_max_bytes.max(0) as usize).min(room),
        upper_bound: upper.unwrap_or(hw),
        first_batch_whole: pass.first_batch_whole,
    };
    match old_fetch_refusal(state, name, version, pass.follower, broker.config.node_id) {
        errors::NONE => {}
        code => return Err(code),
    }
    read_past_empty_batches(
        &log,
        p.fetch_offset as u64,
        limits,
        version,
        pass.follower < 0,
    )
    .map(Some)
}

/// A consumer's answer, in its version's format. Batches with no records
/// (compaction, R-LOG-18; quarantine, R-LOG-17) convert to no message at all in
/// formats v0/v1, and a v0-3 client that gets nothing fetches the same offset
/// forever; Sarama before 1.26 does the same with an answer of only empty record
/// batches. So an answer with no record reads on past them, a bounded number of
/// times, and starts at the records it finds (clients step over the offsets between,
/// as over a compacted gap); with none found it is the empty batches, which newer
/// clients step over. A follower gets every batch as stored.
fn read_past_empty_batches(
    log: &PartitionLog,
    offset: u64,
    limits: ReadLimits,
    version: i16,
    consumer: bool,
) -> Result<Vec<u8>, ErrorCode> {
    let mut from = offset;
    let mut first_answer = None;
    for _ in 0..EMPTY_ANSWERS_READ_PAST {
        let read = log
            .read_limited(from, limits)
            .map_err(|e| storage_error(errors::from_log_error(&e), version))?;
        let (read_any, next) = (read.batch_count > 0, read.next_offset);
        let answer = old_format(read.records, version, offset, limits, log)?;
        let has_records = match version {
            4.. => chronik_core::log::batch::holds_records(&answer),
            _ => !answer.is_empty(),
        };
        if !read_any {
            return Ok(first_answer.unwrap_or(answer));
        }
        if has_records || !consumer {
            return Ok(answer);
        }
        first_answer.get_or_insert(answer);
        from = next;
    }
    Ok(first_answer.unwrap_or_default())
}

/// How many reads of nothing but empty batches a consumer's Fetch answer goes past.
const EMPTY_ANSWERS_READ_PAST: usize = 64;

/// Kafka's refusals of a consumer's Fetch for its topic's configs: below v10 a
/// topic whose `compression.type` is zstd (UNSUPPORTED_COMPRESSION_TYPE: the
/// client cannot read it), and v0-3 where `message.downconversion.enable` is false
/// (UNSUPPORTED_VERSION).
fn old_fetch_refusal(
    state: &crate::metadata::MetadataState,
    topic: &str,
    version: i16,
    follower: i32,
    me: i32,
) -> ErrorCode {
    let Some(configs) = state
        .topics
        .get(topic)
        .map(|t| state.topic_configs_on(t, me))
    else {
        return errors::NONE;
    };
    let config = |name: &str| configs.get(name).map(String::as_str);
    if follower >= 0 || version >= 10 {
        errors::NONE
    } else if config("compression.type") == Some("zstd") {
        message_format::UNSUPPORTED_COMPRESSION_TYPE
    } else if version < 4 && config("message.downconversion.enable") == Some("false") {
        errors::UNSUPPORTED_VERSION
    } else {
        errors::NONE
    }
}

/// Fetch v0-5 clients do not know KAFKA_STORAGE_ERROR and would give up; Kafka
/// answers them NOT_LEADER_OR_FOLLOWER, so they refresh metadata and retry.
fn storage_error(code: ErrorCode, version: i16) -> ErrorCode {
    if code == errors::KAFKA_STORAGE_ERROR && version <= 5 {
        errors::NOT_LEADER_OR_FOLLOWER
    } else {
        code
    }
}

/// The records of a Fetch answer in the message format its version reads: stored
/// v2 batches for v4+, converted down to magic 1 for v2-3 and magic 0 for v0-1
/// (R-WIRE-13), within the same byte limits.
fn old_format(
    records: Vec<u8>,
    version: i16,
    fetch_offset: u64,
    limits: ReadLimits,
    log: &PartitionLog,
) -> Result<Vec<u8>, ErrorCode> {
    if version >= 4 || records.is_empty() {
        return Ok(records);
    }
    let magic = if version <= 1 { 0 } else { 1 };
    let down = message_format::DownLimits {
        fetch_offset,
        room: limits.max_bytes,
        first_whole: limits.first_batch_whole,
        decompress_limit: log.config().max_records_bytes(),
    };
    message_format::down_convert(&records, magic, down)
}

/// A follower's fetch needs ClusterAction on the cluster, a consumer's Read on the
/// topic; either way a refused partition is TOPIC_AUTHORIZATION_FAILED (as Kafka).
fn fetch_refusal(caller: &Caller, follower: i32, topic: &str) -> ErrorCode {
    let allowed = if follower >= 0 {
        caller.may_cluster(Operation::ClusterAction)
    } else {
        caller.may_topic(Operation::Read, topic)
    };
    if allowed {
        errors::NONE
    } else {
        errors::TOPIC_AUTHORIZATION_FAILED
    }
}

async fn fetch(
    broker: &Broker,
    caller: &Caller,
    request: FetchRequest,
    version: i16,
) -> (FetchResponse, Grant) {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let want = fetch_budget(&broker.config, &request, version);
    loop {
        // Registered before reading, so an append between the read and the wait
        // still wakes this fetch.
        let notified = broker.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut grant = response_grant(broker, &request, version, want).await;
        let (response, bytes, any_error) =
            read_fetch(broker, caller, &request, version, grant.bytes());
        if bytes >= request.min_bytes.max(1) as usize
            || any_error
            || tokio::time::Instant::now() >= deadline
        {
            grant.shrink_to(bytes);
            return (response, grant);
        }
        // Nothing held while waiting for data.
        drop(grant);
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let mut grant = response_grant(broker, &request, version, want).await;
            let (response, bytes, _) = read_fetch(broker, caller, &request, version, grant.bytes());
            grant.shrink_to(bytes);
            return (response, grant);
        }
    }
}

/// The memory a Fetch answer may be read into: consumers draw on the broker-wide
/// budget, followers do not (R-WIRE-12, `response_memory.rs`).
async fn response_grant(
    broker: &Broker,
    request: &FetchRequest,
    version: i16,
    want: usize,
) -> Grant {
    if fetching_replica(request, version) >= 0 {
        broker.fetch_memory.unbounded(want)
    } else {
        broker.fetch_memory.grant(want).await
    }
}

fn list_offsets(
    broker: &Broker,
    caller: &Caller,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let view = broker.consensus.view();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let refused = caller.topic_error(Operation::Describe, &name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_offset(-1)
                        .with_timestamp(-1);
                    let found = if refused != errors::NONE {
                        Err(refused)
                    } else {
                        gate(
                            broker,
                            &view.state,
                            &name,
                            p.partition_index,
                            p.current_leader_epoch,
                        )
                        .and_then(|(log, info)| {
                            list_offset(&log, info.leader_epoch, p.timestamp, version)
                        })
                    };
                    match found {
                        Ok(listed) => {
                            r.offset = listed.offset;
                            r.timestamp = listed.timestamp;
                            if version >= 4 {
                                r.leader_epoch = listed.leader_epoch.unwrap_or(-1);
                            }
                        }
                        Err(code) => r.error_code = code.code(),
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// ListOffsets v0 (R-WIRE-13), Kafka's `handleListOffsetRequestV0`: a list of
/// offsets per partition (`PartitionLog::legacy_offsets_before`), of which a
/// consumer is shown none beyond the high watermark (the high watermark stands in
/// for them, as in Kafka's `legacyFetchOffsetsForTimestamp`). Timestamps below -2
/// are UNSUPPORTED_VERSION; unauthorized topics come last, as Kafka lists them.
fn list_offsets_v0(
    broker: &Broker,
    caller: &Caller,
    request: ListOffsetsRequest,
    extras: &super::old_versions::Extras,
    correlation_id: i32,
) -> Result<Bytes, String> {
    use kafka_protocol_39::messages::list_offsets_response as old;
    let view = broker.consensus.view();
    let consumer = request.replica_id.0 == -1;
    let (mut allowed, mut refused) = (Vec::new(), Vec::new());
    for (ti, topic) in request.topics.iter().enumerate() {
        let name = topic.name.0.to_string();
        let code = caller.topic_error(Operation::Describe, &name);
        let partitions = topic.partitions.iter().enumerate().map(|(pi, p)| {
            let mut r = old::ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index);
            let max = extras.max_num_offsets.get(ti).and_then(|t| t.get(pi));
            let gated = gate(broker, &view.state, &name, p.partition_index, -1);
            match (code, p.timestamp < -2, gated) {
                (errors::NONE, true, _) => r.error_code = errors::UNSUPPORTED_VERSION.code(),
                (errors::NONE, false, Err(e)) => r.error_code = e.code(),
                (errors::NONE, false, Ok((log, _))) => {
                    let max = max.map_or(1, |m| usize::try_from(*m).unwrap_or(0));
                    let found = log.legacy_offsets_before(p.timestamp, max, now_ms() as i64);
                    let hw = log.high_watermark();
                    let mut offsets: Vec<u64> =
                        found.iter().copied().skip_while(|o| *o > hw).collect();
                    if consumer && found.iter().any(|o| *o > hw) {
                        offsets.insert(0, hw);
                    }
                    r.old_style_offsets = offsets.into_iter().map(|o| o as i64).collect();
                }
                (refusal, _, _) => r.error_code = refusal.code(),
            }
            r
        });
        let partitions = partitions.collect();
        let answer = old::ListOffsetsTopicResponse::default()
            .with_name(kafka_protocol_39::messages::TopicName(
                kafka_protocol_39::protocol::StrBytes::from_string(name),
            ))
            .with_partitions(partitions);
        if code == errors::NONE {
            allowed.push(answer);
        } else {
            refused.push(answer);
        }
    }
    allowed.append(&mut refused);
    let body = kafka_protocol_39::messages::ResponseKind::ListOffsets(
        old::ListOffsetsResponse::default().with_topics(allowed),
    );
    codec::frame(ApiKey::ListOffsets, 0, correlation_id, |buf| {
        body.encode(buf, 0).map_err(|e| e.to_string())
    })
}

async fn create_topics(
    broker: &Broker,
    caller: &Caller,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let mut assignments: Vec<(i32, Vec<i32>)> = topic
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        assignments.sort();
        let consecutive = assignments
            .iter()
            .enumerate()
            .all(|(i, (p, _))| usize::try_from(*p) == Ok(i));
        let outcome = if !caller.may_create_topic(&name) {
            Err((
                errors::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".into(),
            ))
        } else if consecutive {
            create_topic(
                broker,
                &name,
                topic.num_partitions,
                topic.replication_factor,
                assignments.into_iter().map(|(_, r)| r).collect(),
                configs,
                request.validate_only,
            )
            .await
        } else {
            Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "assigned partitions must be numbered 0, 1, 2, ... once each".into(),
            ))
        };
        let mut result = CreatableTopicResult::default().with_name(topic.name);
        match outcome {
            Ok(()) => {
                if version >= 5 {
                    let info = broker.consensus.view().state.topics.get(&name).cloned();
                    result.num_partitions = info
                        .as_ref()
                        .map_or(topic.num_partitions, |t| t.partitions.len() as i32);
                    result.replication_factor = info
                        .as_ref()
                        .and_then(|t| t.partitions.first())
                        .map_or(topic.replication_factor, |p| p.replicas.len() as i16);
                    if version >= 7 {
                        result.topic_id = info
                            .and_then(|t| Uuid::parse_str(&t.topic_id).ok())
                            .unwrap_or(Uuid::nil());
                    }
                }
            }
            Err((code, message)) => {
                result.error_code = code.code();
                if version >= 1 {
                    result.error_message = Some(str_bytes(&message));
                }
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// As Kafka's controller: a topic the caller may not describe is
/// TOPIC_AUTHORIZATION_FAILED whether it exists or not; one it may describe but that
/// does not exist is UNKNOWN_TOPIC_OR_PARTITION; one it may not delete is refused.
fn delete_refusal(broker: &Broker, caller: &Caller, name: &str) -> Option<ErrorCode> {
    if !caller.may_topic(Operation::Describe, name) {
        Some(errors::TOPIC_AUTHORIZATION_FAILED)
    } else if !broker.consensus.view().state.topics.contains_key(name) {
        Some(errors::UNKNOWN_TOPIC_OR_PARTITION)
    } else if !caller.may_topic(Operation::Delete, name) {
        Some(errors::TOPIC_AUTHORIZATION_FAILED)
    } else {
        None
    }
}

/// A DeleteTopics v6+ entry names a topic by name or by id, never both (KIP-516).
/// The name to delete, or the error, as Kafka's controller answers: neither or both
/// is INVALID_REQUEST, an id no topic has UNKNOWN_TOPIC_ID, and an id of a topic the
/// caller may not describe TOPIC_AUTHORIZATION_FAILED without its name.
fn deletion_target(
    state: &crate::metadata::MetadataState,
    caller: &Caller,
    name: Option<&str>,
    id: Uuid,
) -> Result<String, ErrorCode> {
    match (name, id.is_nil()) {
        (Some(name), true) => Ok(name.to_string()),
        (None, false) => match topic_name_by_id(state, id) {
            None => Err(errors::UNKNOWN_TOPIC_ID),
            Some(name) if !caller.may_topic(Operation::Describe, &name) => {
                Err(errors::TOPIC_AUTHORIZATION_FAILED)
            }
            Some(name) => Ok(name),
        },
        _ => Err(errors::INVALID_REQUEST),
    }
}

async fn delete_topics(
    broker: &Broker,
    caller: &Caller,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let asked: Vec<(Option<String>, Uuid)> = if version >= 6 {
        let name = |t: &DeleteTopicState| t.name.as_ref().map(|n| n.0.to_string());
        request
            .topics
            .iter()
            .map(|t| (name(t), t.topic_id))
            .collect()
    } else {
        let name = |n: &kafka_protocol::messages::TopicName| Some(n.0.to_string());
        request
            .topic_names
            .iter()
            .map(|n| (name(n), Uuid::nil()))
            .collect()
    };
    let mut results = Vec::new();
    for (name, id) in asked {
        let state = broker.consensus.view().state.clone();
        let mut result = DeletableTopicResult::default().with_name(name.as_deref().map(topic_name));
        if version >= 6 {
            result.topic_id = id;
        }
        let target = deletion_target(&state, caller, name.as_deref(), id);
        let outcome = match target {
            Ok(name) => {
                if version >= 6 && caller.may_topic(Operation::Describe, &name) {
                    let info = state.topics.get(&name);
                    let known = info.and_then(|t| Uuid::parse_str(&t.topic_id).ok());
                    result.topic_id = known.unwrap_or(id);
                    result.name = Some(topic_name(&name));
                }
                delete_topic(broker, caller, name).await
            }
            Err(code) => Err(code),
        };
        if let Err(code) = outcome {
            result.error_code = code.code();
            // As Kafka: a refused or failed deletion names no id it was not given.
            if version >= 6 {
                result.topic_id = id;
            }
        }
        results.push(result);
    }
    broker.reconcile_partitions();
    DeleteTopicsResponse::default().with_responses(results)
}

async fn delete_topic(broker: &Broker, caller: &Caller, name: String) -> Result<(), ErrorCode> {
    if let Some(code) = delete_refusal(broker, caller, &name) {
        return Err(code);
    }
    propose(broker, MetadataCommand::DeleteTopic { name })
        .await
        .map(|_| ())
        .map_err(|(code, _)| code)
}

/// Transactions are not built (README). librdkafka retries INVALID_REQUEST here for
/// ever (`init_transactions()` without a timeout never returned), while every client
/// gives up at once on TRANSACTIONAL_ID_AUTHORIZATION_FAILED, the answer a Kafka
/// broker gives a producer it will not let transact. Since that code names another
/// cause, the broker log says the real one, at most once a minute.
fn refuse_transactions(transactional_id: &str) -> ErrorCode {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_LOGGED_MS: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let last = LAST_LOGGED_MS.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= 60_000;
    if due
        && LAST_LOGGED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            transactional_id,
            "refused a transactional producer: transactions are not supported, so \
             InitProducerId answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED, on which \
             every client gives up at once"
        );
    }
    errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
}

async fn init_producer_id(
    broker: &Broker,
    caller: &Caller,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    // As Kafka 3.x: a transactional id needs Write on it; an idempotent producer
    // IdempotentWrite on the cluster or Write on some topic.
    let refused = match &request.transactional_id {
        Some(id) => (!caller.may(Operation::Write, ResourceType::TransactionalId, id))
            .then_some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        None => (!caller.may_cluster(Operation::IdempotentWrite)
            && !caller.may_any(Operation::Write, ResourceType::Topic))
        .then_some(errors::CLUSTER_AUTHORIZATION_FAILED),
    };
    if let Some(code) = refused {
        response.error_code = code.code();
        return response;
    }
    if let Some(id) = &request.transactional_id {
        response.error_code = refuse_transactions(id).code();
        return response;
    }
    match propose(broker, MetadataCommand::AllocateProducerId).await {
        Ok(ApplyOutcome::ProducerId(id)) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Ok(_) => response.error_code = errors::REQUEST_TIMED_OUT.code(),
        Err((code, _)) => response.error_code = code.code(),
    }
    response
}
