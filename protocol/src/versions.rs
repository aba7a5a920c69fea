//! The API versions this broker implements and advertises (R-WIRE-2, R-WIRE-13):
//! only those, each clipped to what the kafka-protocol crates can encode (0.18, and
//! 0.15 for the versions Kafka 4 removed, `old_versions.rs`).

use kafka_protocol::messages::ApiKey;

/// (API, lowest, highest) implemented. Every floor is Kafka 3.9's, which most
/// deployments run: Kafka 4 dropped the old versions (KIP-896), and the clients
/// Debian packages (Sarama 1.22, kafka-go 0.2) still send them. Produce v0-2 carry
/// message formats v0/v1 and Fetch v0-3 get them back (`message_format.rs`);
/// OffsetCommit v0 and OffsetFetch v0 are answered UNSUPPORTED_VERSION per
/// partition, as a KRaft Kafka 3.9 answers them (v0 kept offsets in ZooKeeper).
/// Fetch v13+ and DeleteTopics v6 name topics by id (KIP-516).
const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 0, 17),
    (ApiKey::ListOffsets, 0, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 0, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeLogDirs, 0, 4),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
];

/// The advertised range of `key`, if it is implemented.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    IMPLEMENTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .and_then(|(k, lo, hi)| {
            let floor = super::old_versions::floor(*k);
            let (lo, hi) = ((*lo).max(floor), (*hi).min(k.valid_versions().max));
            (lo <= hi).then_some((lo, hi))
        })
}

/// Every implemented API with its advertised range, for ApiVersions.
pub fn all() -> Vec<(ApiKey, i16, i16)> {
    IMPLEMENTED
        .iter()
        .filter_map(|(k, _, _)| supported(*k).map(|(lo, hi)| (*k, lo, hi)))
        .collect()
}
