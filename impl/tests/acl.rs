//! ACLs end to end (spec/security.md, R-SEC-ACL-*): a real broker in-process with the
//! authorizer on. Principals other than User:ANONYMOUS are set on the request and the
//! handler is called directly (authentication is not on this branch); the socket
//! tests show the listener's principal and client address reach the same checks.

mod common;

use bytes::Bytes;
use chronik::broker::{BrokerConfig, RunningBroker};
use chronik::kafka::codec::Request;
use chronik::kafka::handlers;
use chronik::log::batch::{build_batch, Record};
use chronik_core::security::acl::{
    AclBinding, AclEntry, Operation, PatternType, Permission, ResourcePattern, ResourceType,
    CLUSTER_NAME,
};
use chronik_core::security::Principal;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type AnyError = Box<dyn std::error::Error>;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;

async fn start_in(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut BrokerConfig),
) -> Result<RunningBroker, AnyError> {
    let mut config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        tick_ms: 10,
        group_initial_rebalance_delay_ms: 0,
        authorizer_enabled: true,
        super_users: vec!["User:admin".into()],
        ..BrokerConfig::default()
    };
    adjust(&mut config);
    let broker = common::start_broker(config).await?;
    Ok(broker)
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

/// Sends `body` as `user` from 127.0.0.1 straight to the handlers and decodes the
/// answer as a client would.
async fn call(
    broker: &RunningBroker,
    user: &str,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Result<ResponseKind, AnyError> {
    let request = Request {
        api_key,
        version,
        header: RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1),
        body,
        peer: "127.0.0.1".into(),
        principal: Principal::user(user),
        listener: String::new(),
        extras: Default::default(),
    };
    let mut bytes = handlers::handle(&broker.broker, request)
        .await?
        .ok_or("no response")?;
    let _size = bytes.split_to(4);
    ResponseHeader::decode(&mut bytes, api_key.response_header_version(version))?;
    Ok(ResponseKind::decode(api_key, &mut bytes, version)?)
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type,
            name: name.into(),
            pattern_type,
        },
        entry: AclEntry {
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        },
    }
}

fn allow(resource_type: ResourceType, name: &str, operation: Operation) -> AclBinding {
    acl(
        resource_type,
        name,
        PatternType::Literal,
        "User:alice",
        operation,
        Permission::Allow,
    )
}

fn creation(b: &AclBinding) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(s(&b.pattern.name))
        .with_resource_pattern_type(b.pattern.pattern_type.code())
        .with_principal(s(&b.entry.principal))
        .with_host(s(&b.entry.host))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission.code())
}

/// Creates ACLs through CreateAcls as the super user; every one must be accepted.
async fn grant(broker: &RunningBroker, bindings: &[AclBinding]) -> TestResult {
    let request =
        CreateAclsRequest::default().with_creations(bindings.iter().map(creation).collect());
    let ResponseKind::CreateAcls(r) = call(
        broker,
        "admin",
        ApiKey::CreateAcls,
        3,
        RequestKind::CreateAcls(request),
    )
    .await?
    else {
        return Err("not a CreateAcls response".into());
    };
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    Ok(())
}

fn delete_filter(b: &AclBinding) -> delete_acls_request::DeleteAclsFilter {
    delete_acls_request::DeleteAclsFilter::default()
        .with_resource_type_filter(b.pattern.resource_type.code())
        .with_resource_name_filter(Some(s(&b.pattern.name)))
        .with_pattern_type_filter(b.pattern.pattern_type.code())
        .with_principal_filter(Some(s(&b.entry.principal)))
        .with_host_filter(Some(s(&b.entry.host)))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission.code())
}

async fn revoke(broker: &RunningBroker, bindings: &[AclBinding]) -> TestResult {
    let request =
        DeleteAclsRequest::default().with_filters(bindings.iter().map(delete_filter).collect());
    let ResponseKind::DeleteAcls(r) = call(
        broker,
        "admin",
        ApiKey::DeleteAcls,
        3,
        RequestKind::DeleteAcls(request),
    )
    .await?
    else {
        return Err("not a DeleteAcls response".into());
    };
    for result in &r.filter_results {
        assert_eq!((result.error_code, result.matching_acls.len()), (0, 1));
    }
    Ok(())
}

fn records() -> Result<Bytes, AnyError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let record = Record {
        key: None,
        value: Some(b"v".to_vec()),
        timestamp_delta: 0,
    };
    Ok(Bytes::from(build_batch(&[record], now.as_millis() as i64)))
}

fn produce(name: &str) -> Result<RequestKind, AnyError> {
    use produce_request::{PartitionProduceData, TopicProduceData};
    Ok(RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records()?))])]),
    ))
}

fn fetch(name: &str, replica: i32) -> RequestKind {
    use fetch_request::{FetchPartition, FetchTopic};
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(replica))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]),
    )
}

/// Creates `name` (one partition) as the super user.
async fn create_topic(broker: &RunningBroker, name: &str) -> TestResult {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let ResponseKind::CreateTopics(r) = call(
        broker,
        "admin",
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(request),
    )
    .await?
    else {
        return Err("not a CreateTopics response".into());
    };
    assert_eq!(r.topics[0].error_code, 0);
    Ok(())
}

/// One row of the matrix: a request, where its error code is, the code a caller
/// without the operation gets, and the ACLs that grant it.
struct Case {
    what: &'static str,
    api: ApiKey,
    version: i16,
    body: RequestKind,
    refused: i16,
    /// The code once granted: NONE, or the answer past authorization.
    allowed: i16,
    grant: Vec<AclBinding>,
    code: fn(&ResponseKind) -> i16,
}

fn first_partition_code(r: &ResponseKind) -> i16 {
    match r {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        ResponseKind::Fetch(r) => r.responses[0].partitions[0].error_code,
        ResponseKind::ListOffsets(r) => r.topics[0].partitions[0].error_code,
        ResponseKind::OffsetForLeaderEpoch(r) => r.topics[0].partitions[0].error_code,
        ResponseKind::DeleteRecords(r) => r.topics[0].partitions[0].error_code,
        ResponseKind::OffsetCommit(r) => r.topics[0].partitions[0].error_code,
        ResponseKind::Metadata(r) => r.topics[0].error_code,
        ResponseKind::CreateTopics(r) => r.topics[0].error_code,
        ResponseKind::DeleteTopics(r) => r.responses[0].error_code,
        ResponseKind::CreatePartitions(r) => r.results[0].error_code,
        ResponseKind::DescribeConfigs(r) => r.results[0].error_code,
        ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
        ResponseKind::AlterConfigs(r) => r.responses[0].error_code,
        ResponseKind::DescribeGroups(r) => r.groups[0].error_code,
        ResponseKind::DeleteGroups(r) => r.results[0].error_code,
        ResponseKind::FindCoordinator(r) => r.coordinators[0].error_code,
        ResponseKind::ConsumerGroupDescribe(r) => r.groups[0].error_code,
        _ => -1,
    }
}

fn top_level_code(r: &ResponseKind) -> i16 {
    match r {
        ResponseKind::InitProducerId(r) => r.error_code,
        ResponseKind::DescribeCluster(r) => r.error_code,
        ResponseKind::Heartbeat(r) => r.error_code,
        ResponseKind::JoinGroup(r) => r.error_code,
        ResponseKind::SyncGroup(r) => r.error_code,
        ResponseKind::LeaveGroup(r) => r.error_code,
        ResponseKind::OffsetFetch(r) => r.error_code,
        ResponseKind::OffsetDelete(r) => r.error_code,
        ResponseKind::DescribeAcls(r) => r.error_code,
        ResponseKind::ConsumerGroupHeartbeat(r) => r.error_code,
        ResponseKind::CreateAcls(r) => r.results[0].error_code,
        ResponseKind::DeleteAcls(r) => r.filter_results[0].error_code,
        _ => -1,
    }
}

fn config_resource(
    resource_type: i8,
    name: &str,
) -> incremental_alter_configs_request::AlterConfigsResource {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configs(vec![AlterableConfig::default()
            .with_name(s("retention.ms"))
            .with_config_operation(0)
            .with_value(Some(s("100000")))])
}

fn topic_cases() -> Result<Vec<Case>, AnyError> {
    use Operation::*;
    use ResourceType::Topic;
    let offsets = |name: &str| {
        use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        RequestKind::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![
                        ListOffsetsPartition::default().with_timestamp(-1)
                    ])]),
        )
    };
    let epoch = |name: &str| {
        use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
        RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![OffsetForLeaderPartition::default().with_leader_epoch(0)]),
        ]))
    };
    let metadata = |name: &str| {
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic(name))),
        ])))
    };
    let delete_records = |name: &str| {
        use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
        RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default().with_offset(0)
                    ])]),
        )
    };
    let describe_configs = |name: &str| {
        RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(name)),
        ]))
    };
    let alter_configs = |name: &str| {
        RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default()
                .with_resources(vec![config_resource(2, name)]),
        )
    };
    let create_partitions = |name: &str| {
        RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(topic(name))
                        .with_count(2)
                        .with_assignments(None),
                ]),
        )
    };
    let create_topics = |name: &str| {
        RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(topic(name))
                    .with_num_partitions(1)
                    .with_replication_factor(1)]),
        )
    };
    let delete_topics = |name: &str| {
        RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topic_names(vec![topic(name)]),
        )
    };
    let row = |what, api, version, body, refused, grant: Vec<AclBinding>| Case {
        what,
        api,
        version,
        body,
        refused,
        allowed: 0,
        grant,
        code: first_partition_code,
    };
    let t = TOPIC_AUTHORIZATION_FAILED;
    Ok(vec![
        row(
            "Produce: Write",
            ApiKey::Produce,
            9,
            produce("t-produce")?,
            t,
            vec![allow(Topic, "t-produce", Write)],
        ),
        row(
            "Fetch: Read",
            ApiKey::Fetch,
            12,
            fetch("t-fetch", -1),
            t,
            vec![allow(Topic, "t-fetch", Read)],
        ),
        row(
            "replica Fetch: ClusterAction",
            ApiKey::Fetch,
            12,
            fetch("t-replica", 2),
            t,
            vec![allow(ResourceType::Cluster, CLUSTER_NAME, ClusterAction)],
        ),
        row(
            "ListOffsets: Describe",
            ApiKey::ListOffsets,
            7,
            offsets("t-offsets"),
            t,
            vec![allow(Topic, "t-offsets", Describe)],
        ),
        row(
            "OffsetForLeaderEpoch: Describe",
            ApiKey::OffsetForLeaderEpoch,
            4,
            epoch("t-epoch"),
            t,
            vec![allow(Topic, "t-epoch", Describe)],
        ),
        row(
            "Metadata: Describe",
            ApiKey::Metadata,
            12,
            metadata("t-meta"),
            t,
            vec![allow(Topic, "t-meta", Describe)],
        ),
        row(
            "DeleteRecords: Delete",
            ApiKey::DeleteRecords,
            2,
            delete_records("t-delrec"),
            t,
            vec![allow(Topic, "t-delrec", Delete)],
        ),
        row(
            "DescribeConfigs: DescribeConfigs (AlterConfigs implies it)",
            ApiKey::DescribeConfigs,
            4,
            describe_configs("t-dconf"),
            t,
            vec![allow(Topic, "t-dconf", AlterConfigs)],
        ),
        row(
            "IncrementalAlterConfigs: AlterConfigs",
            ApiKey::IncrementalAlterConfigs,
            1,
            alter_configs("t-aconf"),
            t,
            vec![allow(Topic, "t-aconf", AlterConfigs)],
        ),
        row(
            "AlterConfigs: AlterConfigs",
            ApiKey::AlterConfigs,
            2,
            RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t-aconf"))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("200000")))]),
            ])),
            t,
            vec![allow(Topic, "t-aconf", AlterConfigs)],
        ),
        row(
            "CreatePartitions: Alter",
            ApiKey::CreatePartitions,
            3,
            create_partitions("t-parts"),
            t,
            vec![allow(Topic, "t-parts", Alter)],
        ),
        row(
            "CreateTopics: Create on the topic",
            ApiKey::CreateTopics,
            7,
            create_topics("t-new"),
            t,
            vec![allow(Topic, "t-new", Create)],
        ),
        row(
            "CreateTopics: Create on the cluster",
            ApiKey::CreateTopics,
            7,
            create_topics("t-new2"),
            t,
            vec![allow(ResourceType::Cluster, CLUSTER_NAME, Create)],
        ),
        row(
            "DeleteTopics: Delete",
            ApiKey::DeleteTopics,
            5,
            delete_topics("t-del"),
            t,
            vec![allow(Topic, "t-del", Delete)],
        ),
        Case {
            what: "DescribeConfigs of the broker: DescribeConfigs on the cluster",
            api: ApiKey::DescribeConfigs,
            version: 4,
            body: RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(
                vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1")),
            ],
            )),
            refused: CLUSTER_AUTHORIZATION_FAILED,
            allowed: 0,
            grant: vec![allow(ResourceType::Cluster, CLUSTER_NAME, DescribeConfigs)],
            code: first_partition_code,
        },
    ])
}

fn group_cases() -> Vec<Case> {
    use Operation::*;
    use ResourceType::{Cluster, Group, Topic};
    let g = GROUP_AUTHORIZATION_FAILED;
    let group = |name: &str| GroupId(s(name));
    let commit = |name: &str, t: &str| {
        use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
        RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group(name))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic(t))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default().with_committed_offset(0)
                    ])]),
        )
    };
    vec![
        Case {
            what: "FindCoordinator: Describe on the group",
            api: ApiKey::FindCoordinator,
            version: 4,
            body: RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g-find")]),
            ),
            refused: g,
            allowed: 0,
            grant: vec![allow(Group, "g-find", Describe)],
            code: first_partition_code,
        },
        Case {
            what: "Heartbeat: Read on the group",
            api: ApiKey::Heartbeat,
            version: 4,
            body: RequestKind::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(group("g-hb"))
                    .with_member_id(s("m")),
            ),
            refused: g,
            allowed: 25, // UNKNOWN_MEMBER_ID
            grant: vec![allow(Group, "g-hb", Read)],
            code: top_level_code,
        },
        Case {
            what: "JoinGroup: Read on the group",
            api: ApiKey::JoinGroup,
            version: 7,
            body: RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(group("g-join"))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                    )
                    .with_name(s("range"))]),
            ),
            refused: g,
            allowed: 79, // MEMBER_ID_REQUIRED
            grant: vec![allow(Group, "g-join", Read)],
            code: top_level_code,
        },
        Case {
            what: "SyncGroup: Read on the group",
            api: ApiKey::SyncGroup,
            version: 5,
            body: RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_group_id(group("g-sync"))
                    .with_member_id(s("m"))
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range"))),
            ),
            refused: g,
            allowed: 25, // UNKNOWN_MEMBER_ID
            grant: vec![allow(Group, "g-sync", Read)],
            code: top_level_code,
        },
        Case {
            what: "LeaveGroup: Read on the group",
            api: ApiKey::LeaveGroup,
            version: 2,
            body: RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(group("g-leave"))
                    .with_member_id(s("m")),
            ),
            refused: g,
            allowed: 25, // UNKNOWN_MEMBER_ID
            grant: vec![allow(Group, "g-leave", Read)],
            code: top_level_code,
        },
        Case {
            what: "OffsetCommit: Read on the group",
            api: ApiKey::OffsetCommit,
            version: 8,
            body: commit("g-commit", "t-commit"),
            refused: g,
            allowed: 0,
            grant: vec![
                allow(Group, "g-commit", Read),
                allow(Topic, "t-commit", Read),
            ],
            code: first_partition_code,
        },
        Case {
            what: "OffsetCommit: Read on the topic",
            api: ApiKey::OffsetCommit,
            version: 8,
            body: commit("g-commit2", "t-commit2"),
            refused: TOPIC_AUTHORIZATION_FAILED,
            allowed: 0,
            grant: vec![allow(Topic, "t-commit2", Read)],
            code: first_partition_code,
        },
        Case {
            what: "OffsetFetch: Describe on the group",
            api: ApiKey::OffsetFetch,
            version: 7,
            body: RequestKind::OffsetFetch(
                OffsetFetchRequest::default().with_group_id(group("g-ofetch")),
            ),
            refused: g,
            allowed: 0,
            grant: vec![allow(Group, "g-ofetch", Describe)],
            code: top_level_code,
        },
        Case {
            what: "DescribeGroups: Describe on the group",
            api: ApiKey::DescribeGroups,
            version: 5,
            body: RequestKind::DescribeGroups(
                DescribeGroupsRequest::default().with_groups(vec![group("g-desc")]),
            ),
            refused: g,
            allowed: 0,
            grant: vec![allow(Group, "g-desc", Describe)],
            code: first_partition_code,
        },
        Case {
            what: "DeleteGroups: Delete on the group",
            api: ApiKey::DeleteGroups,
            version: 2,
            body: RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![group("g-del")]),
            ),
            refused: g,
            allowed: 69, // GROUP_ID_NOT_FOUND
            grant: vec![allow(Group, "g-del", Delete)],
            code: first_partition_code,
        },
        Case {
            what: "OffsetDelete: Delete on the group",
            api: ApiKey::OffsetDelete,
            version: 0,
            body: RequestKind::OffsetDelete(
                OffsetDeleteRequest::default().with_group_id(group("g-odel")),
            ),
            refused: g,
            allowed: 0,
            grant: vec![allow(Group, "g-odel", Delete)],
            code: top_level_code,
        },
        Case {
            what: "ConsumerGroupHeartbeat: Read on the group",
            api: ApiKey::ConsumerGroupHeartbeat,
            version: 0,
            body: RequestKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(group("g-848"))
                    .with_member_id(s("m"))
                    .with_member_epoch(5),
            ),
            refused: g,
            allowed: 25, // UNKNOWN_MEMBER_ID
            grant: vec![allow(Group, "g-848", Read)],
            code: top_level_code,
        },
        Case {
            what: "ConsumerGroupDescribe: Describe on the group",
            api: ApiKey::ConsumerGroupDescribe,
            version: 0,
            body: RequestKind::ConsumerGroupDescribe(
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![group("g-848d")]),
            ),
            refused: g,
            allowed: 69, // GROUP_ID_NOT_FOUND
            grant: vec![allow(Group, "g-848d", Describe)],
            code: first_partition_code,
        },
        Case {
            what: "InitProducerId: IdempotentWrite on the cluster",
            api: ApiKey::InitProducerId,
            version: 4,
            body: RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(-1),
            ),
            refused: CLUSTER_AUTHORIZATION_FAILED,
            allowed: 0,
            grant: vec![allow(Cluster, CLUSTER_NAME, IdempotentWrite)],
            code: top_level_code,
        },
        Case {
            what: "InitProducerId: Write on some topic",
            api: ApiKey::InitProducerId,
            version: 4,
            body: RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(-1),
            ),
            refused: CLUSTER_AUTHORIZATION_FAILED,
            allowed: 0,
            grant: vec![allow(Topic, "t-any", Write)],
            code: top_level_code,
        },
        Case {
            what: "DescribeCluster: Describe on the cluster",
            api: ApiKey::DescribeCluster,
            version: 1,
            body: RequestKind::DescribeCluster(DescribeClusterRequest::default()),
            refused: CLUSTER_AUTHORIZATION_FAILED,
            allowed: 0,
            grant: vec![allow(Cluster, CLUSTER_NAME, Describe)],
            code: top_level_code,
        },
        Case {
            what: "DescribeAcls: Describe on the cluster",
            api: ApiKey::DescribeAcls,
            version: 3,
            body: RequestKind::DescribeAcls(describe_everything()),
            refused: CLUSTER_AUTHORIZATION_FAILED,
            allowed: 0,
            grant: vec![allow(Cluster, CLUSTER_NAME, Describe)],
            code: top_level_code,
        },
        Case {
            what: "CreateAcls: Alter on the cluster",
            api: ApiKey::CreateAcls,
            version: 3,
            body: RequestKind::CreateAcls(
                CreateAclsRequest::default()
                    .with_creations(vec![creation(&allow(Group, "g-x", Read))]),
            ),
            refused: CLUSTER_AUTHORIZATION_FAILED,
            allowed: 0,
            grant: vec![allow(Cluster, CLUSTER_NAME, Alter)],
            code: top_level_code,
        },
    ]
}

fn describe_everything() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1)
}

/// R-SEC-ACL-15: for each API, a principal without the operation Kafka checks is
/// refused with Kafka's error, and once granted it is not.
#[tokio::test]
async fn r_sec_acl_15_every_api_checks_its_operation() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |_| {}).await?;
    for name in [
        "t-produce",
        "t-fetch",
        "t-replica",
        "t-offsets",
        "t-epoch",
        "t-meta",
        "t-delrec",
        "t-dconf",
        "t-aconf",
        "t-parts",
        "t-del",
        "t-commit",
        "t-commit2",
    ] {
        create_topic(&broker, name).await?;
    }
    // The topic check of OffsetCommit is reached only with Read on its group.
    grant(
        &broker,
        &[allow(ResourceType::Group, "g-commit2", Operation::Read)],
    )
    .await?;
    let mut cases = topic_cases()?;
    cases.extend(group_cases());
    for case in cases {
        let refused = call(&broker, "alice", case.api, case.version, case.body.clone()).await?;
        assert_eq!(
            (case.code)(&refused),
            case.refused,
            "{}: without the ACL",
            case.what
        );
        grant(&broker, &case.grant).await?;
        let allowed = call(&broker, "alice", case.api, case.version, case.body).await?;
        assert_eq!(
            (case.code)(&allowed),
            case.allowed,
            "{}: with the ACL",
            case.what
        );
        revoke(&broker, &case.grant).await?;
    }
    // DeleteTopics of an absent topic the caller may describe: UNKNOWN_TOPIC_OR_PARTITION.
    grant(
        &broker,
        &[allow(ResourceType::Topic, "t-absent", Operation::Describe)],
    )
    .await?;
    let absent = RequestKind::DeleteTopics(
        DeleteTopicsRequest::default().with_topic_names(vec![topic("t-absent")]),
    );
    let r = call(&broker, "alice", ApiKey::DeleteTopics, 5, absent).await?;
    assert_eq!(first_partition_code(&r), 3);
    // ListGroups: Describe on the cluster lists every group, else those described.
    let listed = |who: &'static str| {
        let broker = &broker;
        async move {
            let request = RequestKind::ListGroups(ListGroupsRequest::default());
            match call(broker, who, ApiKey::ListGroups, 4, request).await? {
                ResponseKind::ListGroups(r) => Ok::<_, AnyError>(
                    r.groups
                        .iter()
                        .map(|g| g.group_id.0.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => Err("not a ListGroups response".into()),
            }
        }
    };
    assert!(listed("admin").await?.contains(&"g-commit".to_string()));
    // Alice's Read on g-commit2 (granted above) implies Describe.
    assert_eq!(listed("alice").await?, vec!["g-commit2".to_string()]);
    grant(
        &broker,
        &[allow(ResourceType::Group, "g-commit", Operation::Describe)],
    )
    .await?;
    assert_eq!(listed("alice").await?, vec!["g-commit", "g-commit2"]);
    broker.shutdown().await;
    Ok(())
}

/// R-SEC-ACL-3, R-SEC-ACL-5, R-SEC-ACL-6 through the broker: a prefixed grant, a
/// literal deny that beats it, a wildcard principal, and the super user.
#[tokio::test]
async fn r_sec_acl_3_deny_beats_allow_and_prefixes_match_through_the_broker() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |_| {}).await?;
    for name in ["orders-eu", "orders-us", "other"] {
        create_topic(&broker, name).await?;
    }
    let prefixed = acl(
        ResourceType::Topic,
        "orders-",
        PatternType::Prefixed,
        "User:alice",
        Operation::Read,
        Permission::Allow,
    );
    grant(&broker, std::slice::from_ref(&prefixed)).await?;
    let read = |who: &'static str, t: &'static str| {
        let broker = &broker;
        async move {
            call(broker, who, ApiKey::Fetch, 12, fetch(t, -1))
                .await
                .map(|r| first_partition_code(&r))
        }
    };
    assert_eq!(read("alice", "orders-eu").await?, 0);
    assert_eq!(read("alice", "orders-us").await?, 0);
    assert_eq!(read("alice", "other").await?, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(read("bob", "orders-eu").await?, TOPIC_AUTHORIZATION_FAILED);
    let deny = acl(
        ResourceType::Topic,
        "orders-eu",
        PatternType::Literal,
        "User:*",
        Operation::All,
        Permission::Deny,
    );
    grant(&broker, std::slice::from_ref(&deny)).await?;
    assert_eq!(
        read("alice", "orders-eu").await?,
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(read("alice", "orders-us").await?, 0);
    assert_eq!(
        read("admin", "orders-eu").await?,
        0,
        "super users ignore denials"
    );
    broker.shutdown().await;
    Ok(())
}

fn metadata_all(topic_ops: bool) -> RequestKind {
    RequestKind::Metadata(
        MetadataRequest::default()
            .with_topics(None)
            .with_include_topic_authorized_operations(topic_ops)
            .with_include_cluster_authorized_operations(true),
    )
}

/// R-SEC-ACL-13: listing every topic lists only those the caller may describe; a
/// named one it may not is TOPIC_AUTHORIZATION_FAILED and is not auto-created without
/// Create; KIP-430 operations are those granted (R-SEC-ACL-9).
#[tokio::test]
async fn r_sec_acl_13_metadata_hides_topics_and_reports_authorized_operations() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |_| {}).await?;
    for name in ["visible", "hidden"] {
        create_topic(&broker, name).await?;
    }
    grant(
        &broker,
        &[
            allow(ResourceType::Topic, "visible", Operation::Read),
            allow(ResourceType::Topic, "wanted", Operation::Describe),
        ],
    )
    .await?;
    let ResponseKind::Metadata(r) =
        call(&broker, "alice", ApiKey::Metadata, 10, metadata_all(true)).await?
    else {
        return Err("not a Metadata response".into());
    };
    let names: Vec<String> = r
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, vec!["visible".to_string()]);
    assert_eq!(r.topics[0].topic_authorized_operations, (1 << 3) | (1 << 8));
    assert_eq!(r.cluster_authorized_operations, 0);
    let named = |name: &str| {
        RequestKind::Metadata(
            MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(topic(name)))]))
                .with_allow_auto_topic_creation(true),
        )
    };
    let code = |r: ResponseKind| first_partition_code(&r);
    assert_eq!(
        code(call(&broker, "alice", ApiKey::Metadata, 12, named("hidden")).await?),
        TOPIC_AUTHORIZATION_FAILED
    );
    // Describable but absent, and no Create: refused, not created.
    assert_eq!(
        code(call(&broker, "alice", ApiKey::Metadata, 12, named("wanted")).await?),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert!(!broker
        .broker
        .consensus
        .view()
        .state
        .topics
        .contains_key("wanted"));
    grant(
        &broker,
        &[allow(
            ResourceType::Cluster,
            CLUSTER_NAME,
            Operation::Create,
        )],
    )
    .await?;
    let created = code(call(&broker, "alice", ApiKey::Metadata, 12, named("wanted")).await?);
    assert_ne!(created, TOPIC_AUTHORIZATION_FAILED);
    assert!(broker
        .broker
        .consensus
        .view()
        .state
        .topics
        .contains_key("wanted"));
    // Named by id: a hidden topic is refused by id, without its name.
    let id_of = |name: &str| -> Result<uuid::Uuid, AnyError> {
        let state = broker.broker.consensus.view().state;
        let id = &state.topics.get(name).ok_or("no such topic")?.topic_id;
        Ok(uuid::Uuid::parse_str(id)?)
    };
    let by_ids = RequestKind::Metadata(
        MetadataRequest::default().with_topics(Some(
            [
                id_of("visible")?,
                id_of("hidden")?,
                uuid::Uuid::from_u128(7),
            ]
            .into_iter()
            .map(|id| {
                metadata_request::MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(id)
            })
            .collect(),
        )),
    );
    let ResponseKind::Metadata(r) = call(&broker, "alice", ApiKey::Metadata, 12, by_ids).await?
    else {
        return Err("not a Metadata response".into());
    };
    let answers: Vec<(Option<String>, i16)> = r
        .topics
        .iter()
        .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.error_code))
        .collect();
    assert_eq!(
        answers,
        vec![
            (Some("visible".to_string()), 0),
            (Some(String::new()), 100), // UNKNOWN_TOPIC_ID
            (None, TOPIC_AUTHORIZATION_FAILED),
        ]
    );
    assert_eq!(r.topics[2].topic_id, id_of("hidden")?);
    let ResponseKind::Metadata(r) =
        call(&broker, "admin", ApiKey::Metadata, 10, metadata_all(false)).await?
    else {
        return Err("not a Metadata response".into());
    };
    assert_eq!(r.topics.len(), 3, "the super user sees every topic");
    assert_eq!(
        r.topics[0].topic_authorized_operations,
        i32::MIN,
        "not asked for"
    );
    broker.shutdown().await;
    Ok(())
}

/// R-SEC-ACL-12: CreateAcls validates each binding, DescribeAcls and DeleteAcls
/// match Kafka's filters (MATCH finds literal, wildcard and prefixed bindings), and
/// unknown codes are INVALID_REQUEST.
#[tokio::test]
async fn r_sec_acl_12_create_describe_delete_acls() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |_| {}).await?;
    let literal = allow(ResourceType::Topic, "orders", Operation::Read);
    let wildcard = allow(ResourceType::Topic, "*", Operation::Write);
    let prefixed = acl(
        ResourceType::Topic,
        "ord",
        PatternType::Prefixed,
        "User:bob",
        Operation::Read,
        Permission::Deny,
    );
    let group = allow(ResourceType::Group, "g", Operation::Read);
    grant(
        &broker,
        &[
            literal.clone(),
            wildcard.clone(),
            prefixed.clone(),
            group.clone(),
        ],
    )
    .await?;
    let mut bad_cluster = allow(ResourceType::Cluster, "not-the-cluster", Operation::Alter);
    bad_cluster.entry.principal = "User:x".into();
    let mut bad_principal = literal.clone();
    bad_principal.entry.principal = "alice".into();
    let mut creations = vec![
        creation(&bad_cluster),
        creation(&bad_principal),
        creation(&literal),
    ];
    creations.push(creation(&literal).with_resource_pattern_type(2)); // MATCH is no binding
    creations.push(creation(&literal).with_operation(1)); // ANY neither
    let ResponseKind::CreateAcls(r) = call(
        &broker,
        "admin",
        ApiKey::CreateAcls,
        3,
        RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(creations)),
    )
    .await?
    else {
        return Err("not a CreateAcls response".into());
    };
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            INVALID_REQUEST,
            INVALID_REQUEST,
            0,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );

    let describe = |filter: DescribeAclsRequest| {
        let broker = &broker;
        async move {
            match call(
                broker,
                "admin",
                ApiKey::DescribeAcls,
                3,
                RequestKind::DescribeAcls(filter),
            )
            .await?
            {
                ResponseKind::DescribeAcls(r) => Ok::<_, AnyError>(r),
                _ => Err("not a DescribeAcls response".into()),
            }
        }
    };
    let all = describe(describe_everything()).await?;
    assert_eq!(all.error_code, 0);
    let count = |r: &DescribeAclsResponse| r.resources.iter().map(|r| r.acls.len()).sum::<usize>();
    assert_eq!(count(&all), 4);
    let matching = describe(
        describe_everything()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("orders")))
            .with_pattern_type_filter(2),
    )
    .await?;
    assert_eq!(
        count(&matching),
        3,
        "literal, wildcard and prefix all match `orders`"
    );
    let exact = describe(
        describe_everything()
            .with_resource_name_filter(Some(s("orders")))
            .with_pattern_type_filter(1),
    )
    .await?;
    assert_eq!(count(&exact), 1);
    let unknown = describe(describe_everything().with_pattern_type_filter(0)).await?;
    assert_eq!(unknown.error_code, INVALID_REQUEST);

    // Delete everything Bob has, and every group ACL.
    let by_principal = delete_acls_request::DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_principal_filter(Some(s("User:bob")))
        .with_operation(1)
        .with_permission_type(1);
    let groups = by_principal
        .clone()
        .with_principal_filter(None)
        .with_resource_type_filter(3);
    let bad = by_principal.clone().with_operation(0);
    let ResponseKind::DeleteAcls(r) = call(
        &broker,
        "admin",
        ApiKey::DeleteAcls,
        3,
        RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
            by_principal,
            groups,
            bad,
        ])),
    )
    .await?
    else {
        return Err("not a DeleteAcls response".into());
    };
    let summary: Vec<(i16, usize)> = r
        .filter_results
        .iter()
        .map(|f| (f.error_code, f.matching_acls.len()))
        .collect();
    assert_eq!(summary, vec![(0, 1), (0, 1), (INVALID_REQUEST, 0)]);
    let left: Vec<AclBinding> = broker
        .broker
        .consensus
        .view()
        .state
        .acls
        .iter()
        .cloned()
        .collect();
    assert_eq!(left, {
        let mut v = vec![literal, wildcard];
        v.sort();
        v
    });
    broker.shutdown().await;
    Ok(())
}

/// R-SEC-ACL-11: ACLs live in the replicated metadata, so they survive a restart and
/// are enforced by the restarted broker.
#[tokio::test]
async fn r_sec_acl_11_acls_survive_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |_| {}).await?;
    create_topic(&broker, "kept").await?;
    let deny = acl(
        ResourceType::Topic,
        "kept",
        PatternType::Literal,
        "User:alice",
        Operation::Read,
        Permission::Deny,
    );
    let allowed = allow(ResourceType::Topic, "k", Operation::Read);
    let allowed = AclBinding {
        pattern: ResourcePattern {
            pattern_type: PatternType::Prefixed,
            ..allowed.pattern
        },
        ..allowed
    };
    grant(&broker, &[deny.clone(), allowed.clone()]).await?;
    let before = broker.broker.consensus.view().state.acls.clone();
    broker.shutdown().await;

    let broker = start_in(dir.path(), |_| {}).await?;
    assert_eq!(broker.broker.consensus.view().state.acls, before);
    let code =
        first_partition_code(&call(&broker, "alice", ApiKey::Fetch, 12, fetch("kept", -1)).await?);
    assert_eq!(code, TOPIC_AUTHORIZATION_FAILED);
    revoke(&broker, &[deny]).await?;
    let code =
        first_partition_code(&call(&broker, "alice", ApiKey::Fetch, 12, fetch("kept", -1)).await?);
    assert_eq!(code, 0);
    broker.shutdown().await;
    Ok(())
}

/// R-SEC-ACL-16: without an authorizer everything is allowed, the ACL APIs answer
/// SECURITY_DISABLED, and KIP-430 reports every operation the resource supports.
#[tokio::test]
async fn r_sec_acl_16_without_an_authorizer_everything_is_allowed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |c| {
        c.authorizer_enabled = false;
        c.super_users.clear();
    })
    .await?;
    let r = call(
        &broker,
        "alice",
        ApiKey::DescribeCluster,
        1,
        RequestKind::DescribeCluster(
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        ),
    )
    .await?;
    let ResponseKind::DescribeCluster(r) = r else {
        return Err("not a DescribeCluster response".into());
    };
    let cluster_ops = [5, 9, 10, 11, 12, 7, 8]
        .iter()
        .fold(0, |bits, code| bits | (1 << code));
    assert_eq!(
        (r.error_code, r.cluster_authorized_operations),
        (0, cluster_ops)
    );
    let r = call(
        &broker,
        "alice",
        ApiKey::DescribeAcls,
        3,
        RequestKind::DescribeAcls(describe_everything()),
    )
    .await?;
    assert_eq!(top_level_code(&r), SECURITY_DISABLED);
    let create = CreateAclsRequest::default().with_creations(vec![creation(&allow(
        ResourceType::Topic,
        "t",
        Operation::Read,
    ))]);
    let r = call(
        &broker,
        "alice",
        ApiKey::CreateAcls,
        3,
        RequestKind::CreateAcls(create),
    )
    .await?;
    assert_eq!(top_level_code(&r), SECURITY_DISABLED);
    create_topic(&broker, "open").await?;
    let r = call(&broker, "alice", ApiKey::Produce, 9, produce("open")?).await?;
    assert_eq!(first_partition_code(&r), 0);
    broker.shutdown().await;
    Ok(())
}

/// R-SEC-ACL-2 and R-SEC-ACL-5 over a real connection: the listener's principal
/// (User:ANONYMOUS on plaintext) and client address (127.0.0.1) are what the ACLs
/// are matched against; with `allow_everyone_if_no_acl_found`, a topic no ACL covers
/// is open and one an ACL covers is not.
#[tokio::test]
async fn r_sec_acl_2_the_listener_principal_and_host_are_checked() -> TestResult {
    use chronik::cluster::client::KafkaConnection;
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |c| c.allow_everyone_if_no_acl_found = true).await?;
    for name in ["open", "locked", "mine"] {
        create_topic(&broker, name).await?;
    }
    let for_anonymous = |name: &str, host: &str, permission| AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern_type: PatternType::Literal,
        },
        entry: AclEntry {
            principal: "User:ANONYMOUS".into(),
            host: host.into(),
            operation: Operation::Write,
            permission,
        },
    };
    grant(
        &broker,
        &[
            for_anonymous("locked", "10.1.2.3", Permission::Allow),
            for_anonymous("mine", "127.0.0.1", Permission::Allow),
        ],
    )
    .await?;
    let mut conn = KafkaConnection::connect(
        &broker.local_addr().to_string(),
        "acl-test".into(),
        Duration::from_secs(5),
    )
    .await?;
    for (name, expected) in [
        ("open", 0),
        ("locked", TOPIC_AUTHORIZATION_FAILED),
        ("mine", 0),
    ] {
        let r = conn
            .call(ApiKey::Produce, 9, &produce(name)?, Duration::from_secs(5))
            .await?;
        assert_eq!(first_partition_code(&r), expected, "{name}");
    }
    broker.shutdown().await;
    Ok(())
}

/// R-SEC-ACL-14: a refused request changes nothing: no record appended, no topic
/// created or deleted, no ACL stored.
#[tokio::test]
async fn r_sec_acl_14_a_refused_request_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |_| {}).await?;
    create_topic(&broker, "guarded").await?;
    let before = broker.broker.consensus.view().state.clone();
    let refused = [
        (ApiKey::Produce, 9, produce("guarded")?),
        (
            ApiKey::DeleteTopics,
            5,
            RequestKind::DeleteTopics(
                DeleteTopicsRequest::default().with_topic_names(vec![topic("guarded")]),
            ),
        ),
        (
            ApiKey::CreateAcls,
            3,
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![creation(
                &allow(ResourceType::Topic, "guarded", Operation::All),
            )])),
        ),
    ];
    for (api, version, body) in refused {
        call(&broker, "alice", api, version, body).await?;
    }
    let r = call(&broker, "alice", ApiKey::Metadata, 12, metadata_all(false)).await?;
    let ResponseKind::Metadata(r) = r else {
        return Err("not a Metadata response".into());
    };
    assert!(r.topics.is_empty(), "alice may describe nothing");
    let after = broker.broker.consensus.view().state.clone();
    assert_eq!((&after.topics, &after.acls), (&before.topics, &before.acls));
    let log = broker.broker.partitions.get("guarded", 0).ok_or("no log")?;
    assert_eq!(log.high_watermark(), 0, "nothing was appended");
    broker.shutdown().await;
    Ok(())
}

/// R-SEC-ACL-15, the topics inside group requests: OffsetFetch of all topics lists
/// only those the caller may describe and a named one it may not is
/// TOPIC_AUTHORIZATION_FAILED; OffsetDelete needs Read on each topic; a KIP-848
/// subscription needs Describe on each topic; DescribeGroups reports the group
/// operations granted (R-SEC-ACL-9).
#[tokio::test]
async fn r_sec_acl_15_topics_inside_group_requests_are_checked() -> TestResult {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let dir = tempfile::tempdir()?;
    let broker = start_in(dir.path(), |_| {}).await?;
    for name in ["mine", "theirs"] {
        create_topic(&broker, name).await?;
    }
    let commit = RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(
                ["mine", "theirs"]
                    .iter()
                    .map(|t| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic(t))
                            .with_partitions(vec![
                                OffsetCommitRequestPartition::default().with_committed_offset(0)
                            ])
                    })
                    .collect(),
            ),
    );
    let r = call(&broker, "admin", ApiKey::OffsetCommit, 8, commit).await?;
    assert_eq!(first_partition_code(&r), 0);
    grant(
        &broker,
        &[
            allow(ResourceType::Group, "g", Operation::Read),
            allow(ResourceType::Topic, "mine", Operation::Read),
        ],
    )
    .await?;
    let fetch_offsets = |topics: Option<Vec<&str>>| {
        RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|t| {
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(topic(t))
                                .with_partition_indexes(vec![0])
                        })
                        .collect()
                })),
        )
    };
    let ResponseKind::OffsetFetch(all) = call(
        &broker,
        "alice",
        ApiKey::OffsetFetch,
        7,
        fetch_offsets(None),
    )
    .await?
    else {
        return Err("not an OffsetFetch response".into());
    };
    let names: Vec<String> = all.topics.iter().map(|t| t.name.0.to_string()).collect();
    assert_eq!((all.error_code, names), (0, vec!["mine".to_string()]));
    let ResponseKind::OffsetFetch(named) = call(
        &broker,
        "alice",
        ApiKey::OffsetFetch,
        7,
        fetch_offsets(Some(vec!["mine", "theirs"])),
    )
    .await?
    else {
        return Err("not an OffsetFetch response".into());
    };
    let codes: Vec<i16> = named
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, vec![0, TOPIC_AUTHORIZATION_FAILED]);

    grant(
        &broker,
        &[allow(ResourceType::Group, "g", Operation::Delete)],
    )
    .await?;
    let delete = RequestKind::OffsetDelete(
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(
                ["mine", "theirs"]
                    .iter()
                    .map(|t| {
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic(t))
                            .with_partitions(vec![
                                offset_delete_request::OffsetDeleteRequestPartition::default(),
                            ])
                    })
                    .collect(),
            ),
    );
    let ResponseKind::OffsetDelete(r) =
        call(&broker, "alice", ApiKey::OffsetDelete, 0, delete).await?
    else {
        return Err("not an OffsetDelete response".into());
    };
    let codes: Vec<i16> = r
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(
        (r.error_code, codes),
        (0, vec![0, TOPIC_AUTHORIZATION_FAILED])
    );
    let offsets = broker.broker.consensus.view().state.offsets.clone();
    assert!(offsets["g"].contains_key("theirs") && !offsets["g"].contains_key("mine"));

    let heartbeat = |subscribed: Vec<&str>| {
        RequestKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("g-848")))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(10_000)
                .with_subscribed_topic_names(Some(subscribed.into_iter().map(topic).collect()))
                .with_topic_partitions(Some(vec![])),
        )
    };
    grant(
        &broker,
        &[allow(ResourceType::Group, "g-848", Operation::Read)],
    )
    .await?;
    let r = call(
        &broker,
        "alice",
        ApiKey::ConsumerGroupHeartbeat,
        0,
        heartbeat(vec!["mine", "theirs"]),
    )
    .await?;
    assert_eq!(top_level_code(&r), TOPIC_AUTHORIZATION_FAILED);
    let r = call(
        &broker,
        "alice",
        ApiKey::ConsumerGroupHeartbeat,
        0,
        heartbeat(vec!["mine"]),
    )
    .await?;
    assert_eq!(top_level_code(&r), 0);
    // ConsumerGroupDescribe hides a group whose topics the caller may not describe.
    let describe_848 = || {
        RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g-848"))]),
        )
    };
    let r = call(
        &broker,
        "alice",
        ApiKey::ConsumerGroupDescribe,
        0,
        describe_848(),
    )
    .await?;
    assert_eq!(first_partition_code(&r), 0);
    let bob = acl(
        ResourceType::Group,
        "g-848",
        PatternType::Literal,
        "User:bob",
        Operation::Describe,
        Permission::Allow,
    );
    grant(&broker, &[bob]).await?;
    let r = call(
        &broker,
        "bob",
        ApiKey::ConsumerGroupDescribe,
        0,
        describe_848(),
    )
    .await?;
    assert_eq!(first_partition_code(&r), TOPIC_AUTHORIZATION_FAILED);

    let describe = RequestKind::DescribeGroups(
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("g"))])
            .with_include_authorized_operations(true),
    );
    let ResponseKind::DescribeGroups(r) =
        call(&broker, "alice", ApiKey::DescribeGroups, 5, describe).await?
    else {
        return Err("not a DescribeGroups response".into());
    };
    // Read, Delete, and Describe implied by them.
    assert_eq!(
        r.groups[0].authorized_operations,
        (1 << 3) | (1 << 6) | (1 << 8)
    );
    broker.shutdown().await;
    Ok(())
}
