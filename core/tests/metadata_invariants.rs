//! R-REPL-2 and R-CLUSTER-2 as invariants of the real metadata state machine: any
//! sequence of the commands brokers propose (registrations, fences, unfences, topic
//! creations, ISR changes, repairs, config changes), drawn at random with stale and
//! wrong fields as often as right ones, leaves every partition in a state the rules
//! allow, after every apply. The replication model checks these properties along its
//! own paths, which create one partition before any fence; a creation after a fence
//! put the fenced broker back in an ISR until command format 10 (swarm 1509), and
//! this keeps that class from coming back through any command.

use chronik_core::metadata::{
    CommandEnvelope, CopyRef, MetadataCommand, MetadataState, PartitionInfo,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const BROKERS: std::ops::RangeInclusive<i32> = 1..=3;
const TOPICS: [&str; 2] = ["a", "b"];

fn topic() -> impl Strategy<Value = String> {
    prop::sample::select(TOPICS.to_vec()).prop_map(str::to_string)
}

/// One to three distinct brokers, in any order.
fn replicas() -> impl Strategy<Value = Vec<i32>> {
    Just(BROKERS.collect::<Vec<i32>>())
        .prop_shuffle()
        .prop_flat_map(|all| (1..=all.len()).prop_map(move |n| all[..n].to_vec()))
}

/// Any subset of the brokers, in any order (an ISR proposal may be wrong).
fn broker_set() -> impl Strategy<Value = Vec<i32>> {
    Just(BROKERS.collect::<Vec<i32>>())
        .prop_shuffle()
        .prop_flat_map(|all| (0..=all.len()).prop_map(move |n| all[..n].to_vec()))
}

fn command() -> impl Strategy<Value = MetadataCommand> {
    prop_oneof![
        3 => (BROKERS, 1u64..=3, any::<bool>(), any::<bool>()).prop_map(
            |(broker_id, incarnation, acks_before_fsync, short)| MetadataCommand::RegisterBroker {
                broker_id,
                host: "127.0.0.1".into(),
                port: 9090 + broker_id,
                rack: None,
                incarnation,
                listeners: Vec::new(),
                acks_before_fsync,
                short_copies: if short {
                    vec![CopyRef { topic: "a".into(), partition: 0 }]
                } else {
                    Vec::new()
                },
            }
        ),
        2 => BROKERS.prop_map(|broker_id| MetadataCommand::FenceBroker { broker_id }),
        1 => (BROKERS, 1u64..=3, 0u64..=30).prop_map(|(broker_id, incarnation, fenced_at)| {
            MetadataCommand::UnfenceBroker { broker_id, incarnation, fenced_at }
        }),
        2 => (topic(), prop::collection::vec(replicas(), 1..=2), 1u8..=3).prop_map(
            |(name, partitions, min_isr)| MetadataCommand::CreateTopic {
                topic_id: String::new(),
                name,
                partitions,
                configs: [("min.insync.replicas".to_string(), min_isr.to_string())].into(),
            }
        ),
        1 => (topic(), prop::collection::vec(replicas(), 1..=2)).prop_map(
            |(topic, new_partitions)| MetadataCommand::CreatePartitions { topic, new_partitions }
        ),
        1 => topic().prop_map(|name| MetadataCommand::DeleteTopic { name }),
        1 => (topic(), 1u8..=3).prop_map(|(topic, min_isr)| MetadataCommand::AlterTopicConfigs {
            topic,
            set: [("min.insync.replicas".to_string(), min_isr.to_string())].into(),
            remove: Vec::new(),
            replace: false,
        }),
        4 => (topic(), 0i32..=2, 0i32..=3, broker_set(), prop::option::of(0u64..=6)).prop_map(
            |(topic, partition, leader_epoch, isr, partition_epoch)| MetadataCommand::AlterIsr {
                topic,
                partition,
                leader_epoch,
                isr,
                partition_epoch,
            }
        ),
        2 => (topic(), 0i32..=2, BROKERS, 0i32..=3, 0u64..=6).prop_map(
            |(topic, partition, broker_id, leader_epoch, partition_epoch)| {
                MetadataCommand::RepairReplica {
                    topic,
                    partition,
                    broker_id,
                    leader_epoch,
                    partition_epoch,
                }
            }
        ),
    ]
}

/// What the rules allow of one partition in `state`; each problem names its rule.
fn problems(state: &MetadataState, name: &str, index: usize, p: &PartitionInfo) -> Vec<String> {
    let at = format!("{name}-{index} {p:?}");
    let fenced = |b: &i32| state.brokers.get(b).is_some_and(|info| info.fenced);
    let distinct = |v: &[i32]| v.iter().collect::<BTreeSet<_>>().len() == v.len();
    let mut found = Vec::new();
    if p.leader.is_some_and(|l| !p.isr.contains(&l)) {
        found.push(format!("R-REPL-2 the leader is in the ISR: {at}"));
    }
    if p.leader.is_some_and(|l| fenced(&l)) {
        found.push(format!("R-CLUSTER-2 a fenced broker leads nothing: {at}"));
    }
    // An offline partition keeps the ISR it had, so that a member's return, not an
    // out-of-sync replica, brings it back (R-CLUSTER-2): a fenced leader whose other
    // members are fenced or not registered yet stays in it.
    if p.leader.is_some() && p.isr.len() >= 2 && p.isr.iter().any(fenced) {
        found.push(format!(
            "R-REPL-2 a fenced broker is in no ISR of two or more of a led partition: {at}"
        ));
    }
    if !distinct(&p.isr) || !p.isr.iter().all(|r| p.replicas.contains(r)) {
        found.push(format!("R-REPL-2 the ISR is a set of replicas: {at}"));
    }
    // Empty only while the partition waits offline for an eligible replica, which
    // holds what the ISR's last member lost (R-REPL-6, KIP-966).
    if p.isr.is_empty() && (p.leader.is_some() || p.elr.is_empty()) {
        found.push(format!(
            "R-REPL-6 an empty ISR waits offline for an eligible replica: {at}"
        ));
    }
    if !distinct(&p.elr)
        || p.elr
            .iter()
            .any(|r| p.isr.contains(r) || !p.replicas.contains(r))
    {
        found.push(format!(
            "R-REPL-6 eligible replicas are replicas outside the ISR: {at}"
        ));
    }
    found
}

/// The leader and partition epochs of every partition, by topic id.
type Epochs = BTreeMap<(String, usize), (i32, u64)>;

fn epochs(state: &MetadataState) -> Epochs {
    let mut epochs = BTreeMap::new();
    for t in state.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            epochs.insert((t.topic_id.clone(), i), (p.leader_epoch, p.partition_epoch));
        }
    }
    epochs
}

fn check(state: &MetadataState, before: &Epochs) -> Vec<String> {
    let mut found = Vec::new();
    for (name, t) in &state.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            found.extend(problems(state, name, i, p));
        }
    }
    for (key, now) in epochs(state) {
        if before
            .get(&key)
            .is_some_and(|was| now.0 < was.0 || now.1 < was.1)
        {
            found.push(format!("R-REPL-2 the epochs of {key:?} never go back"));
        }
    }
    found
}

/// 2,000 sequences in CI; `PROPTEST_CASES` asks for more (a fixed count in the
/// config would override it).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn r_repl_2_every_command_sequence_keeps_the_partition_rules(
        commands in prop::collection::vec(command(), 1..60)
    ) {
        let mut state = MetadataState::default();
        for (i, mut command) in commands.into_iter().enumerate() {
            let index = i as u64 + 1;
            // A topic created again is another topic, with epochs of its own.
            if let MetadataCommand::CreateTopic { name, topic_id, .. } = &mut command {
                *topic_id = format!("{name}-{index}");
            }
            let before = epochs(&state);
            let outcome = state.apply(index, &CommandEnvelope::new(index, command.clone()));
            let found = check(&state, &before);
            prop_assert!(
                found.is_empty(),
                "after {command:?} ({outcome:?}) at index {index}: {found:?}"
            );
        }
    }
}
