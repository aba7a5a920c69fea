//! CreateTopics and CreatePartitions up to the metadata command: the name, the
//! partition count and replication factor, the replica assignments (the request's own,
//! checked, or round-robin over the live brokers) and the configs, all checked before
//! anything is allocated or proposed (issue 12: a count of 2^31-1 allocated
//! gigabytes, -1 panicked).

use super::partition_limits::{self, Limits, Refusal};
use super::topic_configs;
use crate::errors::{
    INVALID_CONFIG, INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_REQUEST,
    INVALID_TOPIC_EXCEPTION, TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::metadata::{collision, MetadataState};
use std::collections::BTreeMap;

/// Kafka's longest topic name (`Topic.MAX_NAME_LENGTH`).
const MAX_NAME_LENGTH: usize = 249;

/// What the broker's configuration brings to an admin decision.
#[derive(Debug, Clone, Copy)]
pub struct AdminDefaults {
    pub limits: Limits,
    /// `num.partitions`, for a request that asks for -1.
    pub default_partitions: i32,
    /// `default.replication.factor`, for a request that asks for -1.
    pub default_replication_factor: i16,
    /// This broker: the only replica there can be before any broker is registered.
    pub node_id: i32,
}

impl AdminDefaults {
    /// The broker's own defaults, where its configuration starts: one partition and
    /// one replica for a topic that asks for -1, at most 10,000 partitions in the
    /// cluster and 2,000 replicas on one broker.
    pub const fn broker_default(node_id: i32) -> Self {
        AdminDefaults {
            limits: Limits {
                max_partitions: 10_000,
                max_broker_partitions: 2_000,
            },
            default_partitions: 1,
            default_replication_factor: 1,
            node_id,
        }
    }
}

/// A CreateTopics entry as the request gives it (-1 for "the broker's default").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Explicit replicas per partition; empty to have them chosen.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// Kafka's legal topic names: ASCII letters, digits, `.`, `_` and `-`, at most 249
/// characters, and neither `.` nor `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The replicas of each partition of `topic`, or why it is refused. The checks run
/// in Kafka's order: the name, the counts and assignments, the name's being taken,
/// then each config.
pub fn plan_new_topic(
    state: &MetadataState,
    defaults: AdminDefaults,
    topic: &NewTopic,
) -> Result<Vec<Vec<i32>>, Refusal> {
    if !valid_topic_name(&topic.name) {
        return Err((
            INVALID_TOPIC_EXCEPTION,
            format!("invalid topic name {:?}", topic.name),
        ));
    }
    let assignments = new_topic_assignments(state, defaults, topic)?;
    if state.topics.contains_key(&topic.name) {
        return Err((
            TOPIC_ALREADY_EXISTS,
            format!("topic {} already exists", topic.name),
        ));
    }
    if let Some(other) = state.colliding_topic(&topic.name) {
        return Err((INVALID_TOPIC_EXCEPTION, collision(&topic.name, other)));
    }
    for (key, value) in &topic.configs {
        topic_configs::validate(key, value).map_err(|m| (INVALID_CONFIG, m))?;
    }
    Ok(assignments)
}

fn new_topic_assignments(
    state: &MetadataState,
    defaults: AdminDefaults,
    topic: &NewTopic,
) -> Result<Vec<Vec<i32>>, Refusal> {
    if !topic.assignments.is_empty() {
        if topic.partitions != -1 || topic.replication_factor != -1 {
            return Err((
                INVALID_REQUEST,
                "numPartitions and replicationFactor must be -1 with replica assignments".into(),
            ));
        }
        return checked_assignments(state, defaults.limits, &topic.assignments, None);
    }
    let brokers = placement_brokers(state, defaults);
    let count = partition_limits::partition_count(topic.partitions, defaults.default_partitions)?;
    let rf = partition_limits::replication_factor(
        topic.replication_factor,
        defaults.default_replication_factor,
        brokers.len(),
    )?;
    partition_limits::check_limits(
        state,
        defaults.limits,
        count,
        rf as u64,
        None,
        brokers.len(),
    )?;
    Ok(round_robin(&brokers, 0..count as usize, rf))
}

/// The replicas of the partitions CreatePartitions adds to `name` to make `count`:
/// the request's `assignments`, checked, or round-robin over the live brokers.
pub fn plan_new_partitions(
    state: &MetadataState,
    defaults: AdminDefaults,
    name: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
) -> Result<Vec<Vec<i32>>, Refusal> {
    let info = state
        .topics
        .get(name)
        .ok_or_else(|| (UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {name}")))?;
    let current = info.partitions.len();
    let added = partition_limits::partitions_to_add(count, current)?;
    let rf = info.partitions.first().map_or(1, |p| p.replicas.len());
    if let Some(assignments) = assignments {
        if assignments.len() as u64 != added {
            return Err((
                INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "adding {added} partitions but {} assignments given",
                    assignments.len()
                ),
            ));
        }
        return checked_assignments(state, defaults.limits, &assignments, Some(rf));
    }
    let brokers = placement_brokers(state, defaults);
    if rf > brokers.len() {
        return Err((
            INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor {rf} with {} live broker(s)",
                brokers.len()
            ),
        ));
    }
    partition_limits::check_limits(
        state,
        defaults.limits,
        added,
        rf as u64,
        None,
        brokers.len(),
    )?;
    Ok(round_robin(&brokers, current..current + added as usize, rf))
}

fn checked_assignments(
    state: &MetadataState,
    limits: Limits,
    assignments: &[Vec<i32>],
    rf: Option<usize>,
) -> Result<Vec<Vec<i32>>, Refusal> {
    partition_limits::check_assignments(state, assignments, rf)?;
    let rf = assignments.first().map_or(0, Vec::len) as u64;
    let added = assignments.len() as u64;
    partition_limits::check_limits(state, limits, added, rf, Some(assignments), 1)?;
    Ok(assignments.to_vec())
}

/// The live brokers new replicas are spread over; this broker alone before any
/// registration is applied.
fn placement_brokers(state: &MetadataState, defaults: AdminDefaults) -> Vec<i32> {
    let brokers = state.live_brokers();
    if brokers.is_empty() {
        vec![defaults.node_id]
    } else {
        brokers
    }
}

fn round_robin(brokers: &[i32], partitions: std::ops::Range<usize>, rf: usize) -> Vec<Vec<i32>> {
    partitions
        .map(|p| (0..rf).map(|r| brokers[(p + r) % brokers.len()]).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{ApplyOutcome, CommandEnvelope, MetadataCommand};

    fn defaults() -> AdminDefaults {
        AdminDefaults {
            limits: Limits {
                max_partitions: 100,
                max_broker_partitions: 50,
            },
            default_partitions: 1,
            default_replication_factor: 1,
            node_id: 1,
        }
    }

    fn with_brokers(ids: &[i32]) -> MetadataState {
        let mut state = MetadataState::default();
        for (i, id) in ids.iter().enumerate() {
            let command = MetadataCommand::RegisterBroker {
                broker_id: *id,
                host: "localhost".into(),
                port: 9092,
                rack: None,
                incarnation: 1,
                listeners: Vec::new(),
                acks_before_fsync: false,
                short_copies: Vec::new(),
            };
            let outcome = state.apply(i as u64 + 1, &CommandEnvelope::new(i as u64, command));
            assert!(matches!(outcome, ApplyOutcome::Done), "{outcome:?}");
        }
        state
    }

    fn topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn r_wire_11_topic_names_are_kafkas() {
        for ok in ["a", "orders.v2", "A_b-9", &"x".repeat(249)] {
            assert!(valid_topic_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "é", "a/b", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad}");
        }
        let refused = plan_new_topic(&with_brokers(&[1]), defaults(), &topic("a b", 1, 1));
        assert_eq!(refused.map_err(|r| r.0), Err(INVALID_TOPIC_EXCEPTION));
    }

    #[test]
    fn r_wire_11_a_new_topic_is_spread_round_robin_over_the_live_brokers() {
        let state = with_brokers(&[1, 2, 3]);
        let planned = plan_new_topic(&state, defaults(), &topic("t", 4, 2));
        assert_eq!(
            planned,
            Ok(vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]])
        );
        let too_wide = plan_new_topic(&state, defaults(), &topic("t", 1, 4));
        assert_eq!(too_wide.map_err(|r| r.0), Err(INVALID_REPLICATION_FACTOR));
        let defaulted = plan_new_topic(&state, defaults(), &topic("t", -1, -1));
        assert_eq!(defaulted, Ok(vec![vec![1]]));
    }

    #[test]
    fn r_wire_11_explicit_assignments_name_registered_brokers_and_no_counts() {
        let state = with_brokers(&[1, 2]);
        let mut explicit = topic("t", -1, -1);
        explicit.assignments = vec![vec![2, 1], vec![1, 2]];
        assert_eq!(
            plan_new_topic(&state, defaults(), &explicit),
            Ok(vec![vec![2, 1], vec![1, 2]])
        );
        explicit.assignments = vec![vec![3]];
        let unknown = plan_new_topic(&state, defaults(), &explicit);
        assert_eq!(unknown.map_err(|r| r.0), Err(INVALID_REPLICA_ASSIGNMENT));
        explicit.partitions = 1;
        explicit.assignments = vec![vec![1]];
        let both = plan_new_topic(&state, defaults(), &explicit);
        assert_eq!(both.map_err(|r| r.0), Err(INVALID_REQUEST));
    }

    /// R-REPL-2: as Kafka's controller, a manual assignment that names only fenced
    /// brokers is refused (also under validate_only); one that names a live broker
    /// too is taken, the apply leaving the fenced ones out of the ISR.
    #[test]
    fn r_repl_2_explicit_assignments_of_fenced_brokers_alone_are_refused() {
        let mut state = with_brokers(&[1, 2]);
        let fence = MetadataCommand::FenceBroker { broker_id: 1 };
        state.apply(9, &CommandEnvelope::new(9, fence));
        let mut explicit = topic("t", -1, -1);
        explicit.assignments = vec![vec![2, 1], vec![1]];
        let refused = plan_new_topic(&state, defaults(), &explicit);
        assert_eq!(refused.map_err(|r| r.0), Err(INVALID_REPLICA_ASSIGNMENT));
        explicit.assignments = vec![vec![2, 1], vec![1, 2]];
        let taken = plan_new_topic(&state, defaults(), &explicit);
        assert_eq!(taken, Ok(vec![vec![2, 1], vec![1, 2]]));
    }

    #[test]
    fn r_wire_11_a_taken_name_and_a_bad_config_are_refused() {
        let mut state = with_brokers(&[1]);
        let create = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: "id-t".into(),
            partitions: vec![vec![1]],
            configs: BTreeMap::new(),
        };
        state.apply(9, &CommandEnvelope::new(9, create));
        let taken = plan_new_topic(&state, defaults(), &topic("t", 1, 1));
        assert_eq!(taken.map_err(|r| r.0), Err(TOPIC_ALREADY_EXISTS));
        let mut configured = topic("u", 1, 1);
        configured
            .configs
            .insert("retention.ms".into(), "-2".into());
        let bad = plan_new_topic(&state, defaults(), &configured);
        assert_eq!(bad.map_err(|r| r.0), Err(INVALID_CONFIG));
    }

    /// Kafka refuses a name that differs from a topic's only by '.' against '_'
    /// (both map to one metric name); found by exploratory testing: both were made.
    #[test]
    fn r_wire_18_a_name_colliding_by_dot_and_underscore_is_refused() {
        let mut state = with_brokers(&[1]);
        let create = |name: &str| MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: format!("id-{name}"),
            partitions: vec![vec![1]],
            configs: BTreeMap::new(),
        };
        state.apply(9, &CommandEnvelope::new(9, create("a.b_c")));
        for taken in ["a_b_c", "a.b.c", "a_b.c"] {
            let refusal = plan_new_topic(&state, defaults(), &topic(taken, 1, 1));
            assert_eq!(
                refusal,
                Err((
                    INVALID_TOPIC_EXCEPTION,
                    format!("Topic '{taken}' collides with existing topic: a.b_c")
                ))
            );
        }
        for free in ["a.b_c.d", "abc", "a-b-c"] {
            assert!(plan_new_topic(&state, defaults(), &topic(free, 1, 1)).is_ok());
        }
        // Planned in a view without the other: the replicated state refuses it.
        state.apply(10, &CommandEnvelope::new(10, create("a_b_c")));
        assert!(!state.topics.contains_key("a_b_c"));
    }

    #[test]
    fn r_wire_11_create_partitions_adds_only_and_within_the_limits() {
        let mut state = with_brokers(&[1, 2]);
        let create = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: "id-t".into(),
            partitions: vec![vec![1, 2]],
            configs: BTreeMap::new(),
        };
        state.apply(9, &CommandEnvelope::new(9, create));
        let added = plan_new_partitions(&state, defaults(), "t", 3, None);
        assert_eq!(added, Ok(vec![vec![2, 1], vec![1, 2]]));
        for count in [-1, 0, 1] {
            let refused = plan_new_partitions(&state, defaults(), "t", count, None);
            assert_eq!(
                refused.map_err(|r| r.0),
                Err(crate::errors::INVALID_PARTITIONS)
            );
        }
        let mismatched = plan_new_partitions(&state, defaults(), "t", 3, Some(vec![vec![1, 2]]));
        assert_eq!(mismatched.map_err(|r| r.0), Err(INVALID_REPLICA_ASSIGNMENT));
        let over = plan_new_partitions(&state, defaults(), "t", 1_000, None);
        assert_eq!(over.map_err(|r| r.0), Err(crate::errors::POLICY_VIOLATION));
        let missing = plan_new_partitions(&state, defaults(), "nope", 2, None);
        assert_eq!(missing.map_err(|r| r.0), Err(UNKNOWN_TOPIC_OR_PARTITION));
    }
}
