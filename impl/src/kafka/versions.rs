//! The API versions this broker implements and advertises (R-WIRE-2): only those,
//! each clipped to what the kafka-protocol crate can encode.

use kafka_protocol::messages::ApiKey;

/// (API, lowest, highest) implemented. Fetch stops at 12 because 13+ name topics by
/// id; ListOffsets starts at 1 and Produce at 3 as Kafka 4 does (KIP-896).
const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 10),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// The advertised range of `key`, if it is implemented.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    IMPLEMENTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .and_then(|(k, lo, hi)| {
            let crate_range = k.valid_versions();
            let (lo, hi) = ((*lo).max(crate_range.min), (*hi).min(crate_range.max));
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
