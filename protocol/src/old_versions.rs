//! The request versions Kafka 3.9 serves below the floor of the kafka-protocol 0.18
//! crate, which is generated from Kafka 4's schemas, where KIP-896 removed them:
//! Produce v0-2, Fetch v0-3, ListOffsets v0, CreateTopics v0-1, DeleteTopics v0,
//! OffsetCommit v0-1, OffsetFetch v0, DescribeConfigs v0, OffsetForLeaderEpoch v0-1
//! and the ACL APIs' v0 (spec/wire.md R-WIRE-13).
//!
//! Their wire format is read and written by kafka-protocol 0.15, generated from Kafka
//! 3.9's schemas, so no format is written by hand. A request is decoded at its own
//! version, re-encoded at the lowest version 0.18 reads (its *bridge* version) and
//! decoded by 0.18, so every handler works on one set of types and still sees the real
//! version, on which it acts. An old version's fields are all in its bridge version
//! except two, which [`Extras`] carries past the bridge. A response goes the same way
//! back, and [`fit`] sets what only the old version has.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol_39::messages as old;

/// What an old request says that its bridge version cannot: kept by the position of
/// the topic and partition in the request (the bridge keeps their order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extras {
    /// OffsetCommit v1: each partition's commit timestamp (-1: the broker's clock).
    pub commit_timestamps: Vec<Vec<i64>>,
    /// ListOffsets v0: how many offsets each partition asks for.
    pub max_num_offsets: Vec<Vec<i32>>,
}

/// The lowest version kafka-protocol 0.18 reads for `api`; versions below it are
/// bridged.
pub fn bridge_version(api: ApiKey) -> i16 {
    api.valid_versions().min
}

/// The lowest version of `api` this module can bridge (Kafka 3.9's floor).
pub fn floor(api: ApiKey) -> i16 {
    old_key(api)
        .map(|k| k.valid_versions().min)
        .unwrap_or(i16::MAX)
        .min(bridge_version(api))
}

pub fn is_old(api: ApiKey, version: i16) -> bool {
    version < bridge_version(api)
}

fn old_key(api: ApiKey) -> Result<old::ApiKey, String> {
    old::ApiKey::try_from(api as i16).map_err(|_| format!("{api:?} unknown to Kafka 3.9"))
}

/// Decodes an old-version request body into the types the handlers use.
pub fn decode(api: ApiKey, version: i16, buf: &mut Bytes) -> Result<(RequestKind, Extras), String> {
    let mut body = old::RequestKind::decode(old_key(api)?, buf, version)
        .map_err(|e| format!("v{version}: {e}"))?;
    let extras = take_extras(&mut body);
    let bridge = bridge_version(api);
    let mut bytes = BytesMut::new();
    body.encode(&mut bytes, bridge)
        .map_err(|e| format!("bridging v{version} to v{bridge}: {e}"))?;
    let decoded = RequestKind::decode(api, &mut bytes.freeze(), bridge)
        .map_err(|e| format!("bridged v{bridge}: {e}"))?;
    Ok((decoded, extras))
}

/// Moves the fields the bridge version lacks out of the request, leaving their
/// defaults (an encoder refuses a non-default value in a version without the field).
fn take_extras(body: &mut old::RequestKind) -> Extras {
    let mut extras = Extras::default();
    match body {
        old::RequestKind::OffsetCommit(r) => {
            extras.commit_timestamps = take_per_partition(
                &mut r.topics,
                |t| &mut t.partitions,
                |p| std::mem::replace(&mut p.commit_timestamp, -1),
            );
        }
        old::RequestKind::ListOffsets(r) => {
            extras.max_num_offsets = take_per_partition(
                &mut r.topics,
                |t| &mut t.partitions,
                |p| std::mem::replace(&mut p.max_num_offsets, 1),
            );
        }
        _ => {}
    }
    extras
}

/// `take` applied to every partition of every topic, by position.
fn take_per_partition<T, P, V>(
    topics: &mut [T],
    partitions: impl Fn(&mut T) -> &mut Vec<P>,
    take: impl Fn(&mut P) -> V,
) -> Vec<Vec<V>> {
    topics
        .iter_mut()
        .map(|t| partitions(t).iter_mut().map(&take).collect())
        .collect()
}

/// Encodes a handler's response body at an old version.
pub fn encode(
    api: ApiKey,
    version: i16,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), String> {
    let bridge = bridge_version(api);
    let mut bytes = BytesMut::new();
    body.encode(&mut bytes, bridge)
        .map_err(|e| format!("v{bridge}: {e}"))?;
    let mut old_body = old::ResponseKind::decode(old_key(api)?, &mut bytes.freeze(), bridge)
        .map_err(|e| format!("bridging v{bridge} back: {e}"))?;
    fit(&mut old_body, version);
    old_body
        .encode(out, version)
        .map_err(|e| format!("v{version}: {e}"))
}

/// Sets the fields only the old version has from those of its bridge version.
fn fit(body: &mut old::ResponseKind, version: i16) {
    if let (old::ResponseKind::DescribeConfigs(r), 0) = (body, version) {
        // v0 says only whether a value is the default; Kafka sets it so for the
        // DEFAULT_CONFIG source (5).
        for config in r.results.iter_mut().flat_map(|r| r.configs.iter_mut()) {
            config.is_default = config.config_source == 5;
        }
    }
}
