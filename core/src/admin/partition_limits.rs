//! Bounds on CreateTopics and CreatePartitions (issue 12, item 5): counts, the
//! replication factor and replica assignments are checked against the registered
//! brokers and the configured limits before anything is allocated, so a 40-byte
//! request asking for 2^31-1 partitions costs nothing and -1 cannot underflow.

use crate::errors::{
    ErrorCode, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT,
    POLICY_VIOLATION,
};
use crate::metadata::MetadataState as ClusterState;
use std::collections::BTreeMap;

/// An error code and the message that goes with it.
pub type Refusal = (ErrorCode, String);

/// The configured ceilings (KIP-578's `max.partitions` and `max.broker.partitions`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_partitions: u64,
    pub max_broker_partitions: u64,
}

/// The partition count of a new topic: -1 asks for the broker's default; any other
/// value below one is refused (as Kafka does).
pub fn partition_count(requested: i32, default: i32) -> Result<u64, Refusal> {
    let count = if requested == -1 { default } else { requested };
    u64::try_from(count).ok().filter(|c| *c > 0).ok_or_else(|| {
        (
            INVALID_PARTITIONS,
            format!("number of partitions {requested} is not positive"),
        )
    })
}

/// The replication factor of a new topic: -1 asks for the default; it must be
/// positive and at most the number of live brokers.
pub fn replication_factor(requested: i16, default: i16, live: usize) -> Result<usize, Refusal> {
    let rf = if requested == -1 { default } else { requested };
    match usize::try_from(rf) {
        Ok(rf) if rf > 0 && rf <= live => Ok(rf),
        _ => Err((
            INVALID_REPLICATION_FACTOR,
            format!("replication factor {requested} with {live} live broker(s)"),
        )),
    }
}

/// The count CreatePartitions asks for, as the number of partitions to add: it must
/// exceed the current count (so -1 and 0 are refused, never subtracted from).
pub fn partitions_to_add(requested: i32, current: usize) -> Result<u64, Refusal> {
    match u64::try_from(requested) {
        Ok(count) if count > current as u64 => Ok(count - current as u64),
        _ => Err((
            INVALID_PARTITIONS,
            format!("the topic has {current} partitions; {requested} is not more"),
        )),
    }
}

/// Explicit replica assignments: each names at least one broker, no broker twice,
/// only registered brokers, and all the same number of replicas (`rf` if given).
pub fn check_assignments(
    state: &ClusterState,
    assignments: &[Vec<i32>],
    rf: Option<usize>,
) -> Result<(), Refusal> {
    let refuse = |m: String| Err((INVALID_REPLICA_ASSIGNMENT, m));
    let want = rf.or_else(|| assignments.first().map(Vec::len));
    for (i, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() || Some(replicas.len()) != want {
            return refuse(format!(
                "partition {i} has {} replicas where {want:?} were expected",
                replicas.len()
            ));
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return refuse(format!("partition {i} names a broker twice: {replicas:?}"));
        }
        if let Some(unknown) = replicas.iter().find(|b| !state.brokers.contains_key(b)) {
            return refuse(format!("partition {i} names unknown broker {unknown}"));
        }
        // Kafka's controller refuses it too; the apply refuses it again against
        // the image it lands on (R-REPL-2).
        if state.unfenced(replicas).is_empty() {
            return refuse(format!(
                "All brokers specified in the manual partition assignment for partition {i} \
                 are fenced."
            ));
        }
    }
    Ok(())
}

/// Refuses a request that would take the cluster past `max_partitions` or a broker
/// past `max_broker_partitions`. `added` new partitions of `rf` replicas are either
/// `explicit` or spread round-robin over `spread` brokers.
pub fn check_limits(
    state: &ClusterState,
    limits: Limits,
    added: u64,
    rf: u64,
    explicit: Option<&[Vec<i32>]>,
    spread: usize,
) -> Result<(), Refusal> {
    let total: u64 = state
        .topics
        .values()
        .map(|t| t.partitions.len() as u64)
        .sum();
    if total.saturating_add(added) > limits.max_partitions {
        return Err((
            POLICY_VIOLATION,
            format!(
                "{added} more partitions would make {} in the cluster; max.partitions is {}",
                total.saturating_add(added),
                limits.max_partitions
            ),
        ));
    }
    let mut hosted: BTreeMap<i32, u64> = BTreeMap::new();
    for replicas in state.topics.values().flat_map(|t| &t.partitions) {
        for b in &replicas.replicas {
            *hosted.entry(*b).or_default() += 1;
        }
    }
    let busiest = match explicit {
        Some(assignments) => {
            for b in assignments.iter().flatten() {
                *hosted.entry(*b).or_default() += 1;
            }
            hosted.values().copied().max().unwrap_or(0)
        }
        None => {
            let per_broker = added.saturating_mul(rf).div_ceil(spread.max(1) as u64);
            hosted
                .values()
                .copied()
                .max()
                .unwrap_or(0)
                .saturating_add(per_broker)
        }
    };
    if busiest > limits.max_broker_partitions {
        return Err((
            POLICY_VIOLATION,
            format!(
                "a broker would host {busiest} partition replicas; max.broker.partitions is {}",
                limits.max_broker_partitions
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerInfo, PartitionInfo, TopicInfo};

    fn state(brokers: &[i32], partitions: &[Vec<i32>]) -> ClusterState {
        let mut s = ClusterState::default();
        for &id in brokers {
            s.brokers.insert(
                id,
                BrokerInfo {
                    broker_id: id,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    incarnation: 0,
                    fenced: false,
                    fenced_at: 0,
                    listeners: Vec::new(),
                    acks_before_fsync: false,
                },
            );
        }
        let partitions = partitions
            .iter()
            .map(|r| PartitionInfo {
                replicas: r.clone(),
                leader: r.first().copied(),
                leader_epoch: 0,
                isr: r.clone(),
                elr: Vec::new(),
                unverified: Vec::new(),
                partition_epoch: 0,
            })
            .collect();
        s.topics.insert(
            "t".into(),
            TopicInfo {
                topic_id: "id".into(),
                partitions,
                configs: Default::default(),
            },
        );
        s
    }

    const LIMITS: Limits = Limits {
        max_partitions: 100,
        max_broker_partitions: 40,
    };

    #[test]
    fn counts_below_one_are_refused_and_minus_one_is_the_default() {
        assert_eq!(partition_count(-1, 3), Ok(3));
        for bad in [0, -2, i32::MIN] {
            assert_eq!(
                partition_count(bad, 3).map_err(|e| e.0),
                Err(INVALID_PARTITIONS)
            );
        }
        assert_eq!(replication_factor(-1, 1, 1), Ok(1));
        for bad in [0, -2, 2, i16::MAX] {
            assert_eq!(
                replication_factor(bad, 1, 1).map_err(|e| e.0),
                Err(INVALID_REPLICATION_FACTOR)
            );
        }
        assert_eq!(partitions_to_add(3, 1), Ok(2));
        for bad in [-1, 0, 1, i32::MIN] {
            assert_eq!(
                partitions_to_add(bad, 1).map_err(|e| e.0),
                Err(INVALID_PARTITIONS)
            );
        }
    }

    #[test]
    fn huge_counts_are_a_policy_violation_before_anything_is_built() {
        let s = state(&[1, 2], &[vec![1], vec![2]]);
        let huge = partition_count(i32::MAX, 1).unwrap_or(0);
        let refused = check_limits(&s, LIMITS, huge, 1, None, 2);
        assert_eq!(refused.map_err(|e| e.0), Err(POLICY_VIOLATION));
        assert!(check_limits(&s, LIMITS, 98, 1, None, 98).is_ok());
        assert!(check_limits(&s, LIMITS, 99, 1, None, 99).is_err());
        // 60 new single-replica partitions over two brokers: 31 on the busiest.
        assert!(check_limits(&s, LIMITS, 60, 1, None, 2).is_ok());
        assert!(check_limits(&s, LIMITS, 80, 1, None, 2).is_err());
        let explicit = vec![vec![1]; 40];
        assert!(check_limits(&s, LIMITS, 40, 1, Some(&explicit), 1).is_err());
        assert!(check_limits(&s, LIMITS, 39, 1, Some(&explicit[..39]), 1).is_ok());
    }

    #[test]
    fn assignments_to_unknown_or_repeated_brokers_are_refused() {
        let s = state(&[1, 2, 3], &[vec![1, 2]]);
        assert!(check_assignments(&s, &[vec![1, 2], vec![2, 3]], Some(2)).is_ok());
        for bad in [
            vec![vec![1, 1]],
            vec![vec![1, 9]],
            vec![vec![]],
            vec![vec![1, 2], vec![3]],
        ] {
            assert_eq!(
                check_assignments(&s, &bad, None).map_err(|e| e.0),
                Err(INVALID_REPLICA_ASSIGNMENT),
                "{bad:?}"
            );
        }
        assert!(check_assignments(&s, &[vec![3]], Some(2)).is_err());
    }
}
