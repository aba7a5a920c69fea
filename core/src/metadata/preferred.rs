//! Preferred leader elections (Kafka's ElectLeaders with the preferred type, and the
//! controller's automatic leader rebalance, `auto.leader.rebalance.enable`): after a
//! broker restarts, the partitions it led have moved to other replicas and stay
//! there; without these, every rolling restart left the leaderships piled on the
//! brokers restarted first, and one broker led nothing (exploratory testing,
//! 2026-12-07). The controller's side only: which elections to propose. Whether one
//! may be applied is `PartitionInfo::preferred_election`, checked again by the
//! replicated state machine.

use super::{MetadataCommand, MetadataState};

/// The most elections one rebalance proposes (KRaft's `maxElectionsPerImbalance`).
pub const MAX_ELECTIONS_PER_REBALANCE: usize = 1000;

/// An `ElectPreferredLeader` for every partition whose preferred replica is live, in
/// the ISR and not leading, as KRaft's `maybeBalancePartitionLeaders` proposes them;
/// at most `max`.
pub fn preferred_elections(state: &MetadataState, max: usize) -> Vec<MetadataCommand> {
    let live = state.live_brokers();
    state
        .topics
        .iter()
        .flat_map(|(name, topic)| {
            topic
                .partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (name, i, p))
        })
        .filter(|(_, _, p)| p.preferred_election(&live).is_ok())
        .take(max)
        .map(|(name, i, p)| MetadataCommand::ElectPreferredLeader {
            topic: name.clone(),
            partition: i as i32,
            partition_epoch: p.partition_epoch,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{ApplyOutcome, BrokerInfo, CommandEnvelope, PartitionInfo, TopicInfo};
    use std::collections::BTreeMap;

    fn broker(id: i32, fenced: bool) -> BrokerInfo {
        BrokerInfo {
            broker_id: id,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: 1,
            fenced,
            fenced_at: 0,
            listeners: Vec::new(),
            acks_before_fsync: false,
        }
    }

    /// Three partitions of replicas [1, 2, 3], [2, 3, 1], [3, 1, 2], all led by
    /// broker 1 (2 and 3 restarted), every replica in the ISR.
    fn piled_on_broker_1() -> MetadataState {
        let mut state = MetadataState::default();
        for id in 1..=3 {
            state.brokers.insert(id, broker(id, false));
        }
        let partition = |replicas: Vec<i32>| PartitionInfo {
            isr: replicas.clone(),
            replicas,
            leader: Some(1),
            leader_epoch: 3,
            elr: Vec::new(),
            unverified: Vec::new(),
            partition_epoch: 7,
        };
        state.topics.insert(
            "t".into(),
            TopicInfo {
                topic_id: "t-id".into(),
                partitions: vec![
                    partition(vec![1, 2, 3]),
                    partition(vec![2, 3, 1]),
                    partition(vec![3, 1, 2]),
                ],
                configs: BTreeMap::new(),
            },
        );
        state
    }

    fn apply_all(state: &mut MetadataState, commands: Vec<MetadataCommand>) -> Vec<ApplyOutcome> {
        commands
            .into_iter()
            .map(|c| {
                let index = state.applied_index + 1;
                state.apply(index, &CommandEnvelope::new(index, c))
            })
            .collect()
    }

    #[test]
    fn r_cluster_3_leaderships_return_to_their_preferred_replicas() {
        let mut state = piled_on_broker_1();
        let elections = preferred_elections(&state, MAX_ELECTIONS_PER_REBALANCE);
        assert_eq!(
            elections.len(),
            2,
            "partition 0 is led by its preferred replica"
        );
        let outcomes = apply_all(&mut state, elections.clone());
        assert!(
            outcomes.iter().all(|o| *o == ApplyOutcome::Done),
            "{outcomes:?}"
        );
        let leaders: Vec<_> = state.topics["t"]
            .partitions
            .iter()
            .map(|p| (p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()))
            .collect();
        assert_eq!(
            leaders,
            [
                (Some(1), 3, 7, vec![1, 2, 3]),
                (Some(2), 4, 8, vec![2, 3, 1]),
                (Some(3), 4, 8, vec![3, 1, 2]),
            ]
        );
        assert!(preferred_elections(&state, MAX_ELECTIONS_PER_REBALANCE).is_empty());
        // Decided on a partition that changed since: refused, nothing moves.
        let stale = apply_all(&mut state, elections);
        assert!(stale
            .iter()
            .all(|o| matches!(o, ApplyOutcome::Rejected { .. })));
    }

    #[test]
    fn r_cluster_3_a_preferred_replica_out_of_the_isr_or_fenced_is_not_elected() {
        let mut state = piled_on_broker_1();
        if let Some(b) = state.brokers.get_mut(&2) {
            b.fenced = true;
        }
        if let Some(t) = state.topics.get_mut("t") {
            t.partitions[2].isr = vec![1, 2];
        }
        assert!(preferred_elections(&state, MAX_ELECTIONS_PER_REBALANCE).is_empty());
        let forced = MetadataCommand::ElectPreferredLeader {
            topic: "t".into(),
            partition: 2,
            partition_epoch: 7,
        };
        let outcome = apply_all(&mut state, vec![forced]);
        assert!(matches!(
            outcome[0],
            ApplyOutcome::Rejected { code, .. } if code == crate::errors::PREFERRED_LEADER_NOT_AVAILABLE
        ));
        assert_eq!(state.topics["t"].partitions[2].leader, Some(1));
    }
}
