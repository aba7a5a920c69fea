//! R-RECOVER-3: every persisted metadata format round-trips, and what today's code
//! wrote decodes in every later version (the golden files below are never
//! regenerated to make a test pass; a format change adds a new version and a new
//! golden file, and keeps decoding the old one). Seed 000 lost all metadata to a
//! format that could not decode its own enum.

use chronik::metadata::{
    ApplyOutcome, CommandEnvelope, ConsumerGroupRecord, CopyRef, Endpoint, GroupRecord,
    MemberRecord, MetadataCommand, MetadataState, OffsetCommit, Snapshot,
};
use chronik_core::consumer_groups::{ConsumerMemberRecord, MemberState, TopicPartitions};
use chronik_core::groups::CommitFence;
use chronik_core::metadata::{COMMAND_VERSION, SNAPSHOT_VERSION};
use chronik_core::security::acl::{
    AclBinding, AclEntry, Operation, PatternType, Permission, ResourcePattern, ResourceType,
};
use chronik_core::security::scram::{Mechanism, ScramCredential};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The commands of format version 1, as its golden file holds them.
fn version_1_variants() -> Vec<CommandEnvelope> {
    let configs: BTreeMap<String, String> =
        [("retention.ms".to_string(), "1000".to_string())].into();
    let commands = vec![
        MetadataCommand::RegisterBroker {
            broker_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: Some("r1".into()),
            incarnation: 0,
            listeners: Vec::new(),
            acks_before_fsync: false,
            short_copies: Vec::new(),
        },
        MetadataCommand::CreateTopic {
            name: "orders".into(),
            topic_id: "6f1c2a3b4d5e4f60718293a4b5c6d7e8".into(),
            partitions: vec![vec![1], vec![1]],
            configs: configs.clone(),
        },
        MetadataCommand::CreatePartitions {
            topic: "orders".into(),
            new_partitions: vec![vec![1]],
        },
        MetadataCommand::AlterTopicConfigs {
            topic: "orders".into(),
            set: [("cleanup.policy".to_string(), "delete".to_string())].into(),
            remove: vec!["retention.ms".into()],
            replace: false,
        },
        MetadataCommand::UpdatePartition {
            topic: "orders".into(),
            partition: 0,
            leader: Some(1),
            leader_epoch: 1,
            isr: vec![1],
        },
        MetadataCommand::CommitOffsets {
            group: "g".into(),
            offsets: vec![OffsetCommit {
                topic: "orders".into(),
                partition: 1,
                offset: 42,
                leader_epoch: 0,
                metadata: Some("m".into()),
                commit_time_ms: 1_700_000_000_000,
            }],
            fence: None,
        },
        MetadataCommand::DeleteGroupOffsets {
            group: "g".into(),
            partitions: Some(vec![("orders".into(), 0)]),
        },
        MetadataCommand::AllocateProducerId,
        MetadataCommand::DeleteTopic {
            name: "gone".into(),
        },
    ];
    commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| CommandEnvelope::new(i as u64 + 1, c))
        .collect()
}

fn group_record() -> GroupRecord {
    GroupRecord {
        generation: 3,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        leader: Some("m-1".into()),
        members: vec![MemberRecord {
            member_id: "m-1".into(),
            group_instance_id: Some("instance-1".into()),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            subscription: vec![0, 1, 2],
            assignment: vec![3, 4],
        }],
    }
}

fn consumer_group_record() -> ConsumerGroupRecord {
    let partitions = |ps: &[i32]| {
        vec![TopicPartitions {
            topic_id: "6f1c2a3b4d5e4f60718293a4b5c6d7e8".into(),
            partitions: ps.to_vec(),
        }]
    };
    ConsumerGroupRecord {
        group_epoch: 4,
        assignment_epoch: 4,
        assignor: "uniform".into(),
        members: vec![ConsumerMemberRecord {
            member_id: "m-1".into(),
            epoch: 4,
            previous_epoch: 3,
            state: MemberState::UnrevokedPartitions,
            instance_id: None,
            rack_id: Some("r1".into()),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            subscribed: vec!["orders".into()],
            server_assignor: Some("uniform".into()),
            assigned: partitions(&[0]),
            revoking: partitions(&[1]),
        }],
        target: vec![("m-1".into(), partitions(&[0]))],
        subscribed_metadata: vec![(
            "orders".into(),
            "6f1c2a3b4d5e4f60718293a4b5c6d7e8".into(),
            2,
        )],
    }
}

/// The commands of format version 2: version 1's, then consumer group records
/// (R-GROUP-8 and R-GROUP-9).
fn version_2_variants() -> Vec<CommandEnvelope> {
    let mut all = version_1_variants();
    all.push(CommandEnvelope::new(
        all.len() as u64 + 1,
        MetadataCommand::StoreGroup {
            group: "g".into(),
            coordinator: 1,
            record: group_record(),
        },
    ));
    all.push(CommandEnvelope::new(
        all.len() as u64 + 1,
        MetadataCommand::StoreConsumerGroup {
            group: "kip848".into(),
            coordinator: 1,
            record: consumer_group_record(),
        },
    ));
    all
}

fn acl(name: &str, pattern_type: PatternType, permission: Permission) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern_type,
        },
        entry: AclEntry {
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission,
        },
    }
}

/// Every command of the current format: version 2's, then those version 3 added
/// (named listeners, SCRAM credentials, ACLs: spec/security.md).
fn version_3_variants() -> Vec<CommandEnvelope> {
    let mut all = version_2_variants();
    let credential =
        ScramCredential::from_password(Mechanism::Sha256, "pw", b"salt".to_vec(), 4096);
    let commands = [
        MetadataCommand::RegisterBroker {
            broker_id: 2,
            host: "10.0.0.2".into(),
            port: 9092,
            rack: None,
            incarnation: 7,
            listeners: vec![
                Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "10.0.0.2".into(),
                    port: 9092,
                },
                Endpoint {
                    name: "SASL_SSL".into(),
                    host: "kafka-2.example".into(),
                    port: 9094,
                },
            ],
            acks_before_fsync: false,
            short_copies: Vec::new(),
        },
        MetadataCommand::UpsertScramCredential {
            user: "alice".into(),
            credential,
        },
        MetadataCommand::UpsertScramCredential {
            user: "bob".into(),
            credential: ScramCredential::from_password(
                Mechanism::Sha512,
                "pw",
                b"s2".to_vec(),
                8192,
            ),
        },
        MetadataCommand::DeleteScramCredential {
            user: "bob".into(),
            mechanism: Mechanism::Sha512,
        },
    ];
    for command in commands {
        all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    }
    all.push(CommandEnvelope::new(
        all.len() as u64 + 1,
        MetadataCommand::CreateAcls {
            bindings: vec![
                acl("orders", PatternType::Literal, Permission::Allow),
                acl("ord", PatternType::Prefixed, Permission::Deny),
                acl("gone", PatternType::Literal, Permission::Allow),
            ],
        },
    ));
    all.push(CommandEnvelope::new(
        all.len() as u64 + 1,
        MetadataCommand::DeleteAcls {
            bindings: vec![acl("gone", PatternType::Literal, Permission::Allow)],
        },
    ));
    all
}

/// The commands of format version 4: version 3's and `RepairReplica`.
fn version_4_variants() -> Vec<CommandEnvelope> {
    let mut all = version_3_variants();
    let commands = [
        MetadataCommand::CreateTopic {
            name: "replicated".into(),
            topic_id: "0a1b2c3d4e5f40718293a4b5c6d7e8f9".into(),
            partitions: vec![vec![1, 2]],
            configs: BTreeMap::new(),
        },
        MetadataCommand::RepairReplica {
            topic: "replicated".into(),
            partition: 0,
            broker_id: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        },
    ];
    for command in commands {
        all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    }
    all
}

/// The commands of format version 5: version 4's and `AlterBrokerConfigs`, at the
/// cluster level, for broker 1, and broker 1's level emptied again.
fn version_5_variants() -> Vec<CommandEnvelope> {
    let mut all = version_4_variants();
    let level = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let commands = [
        MetadataCommand::AlterBrokerConfigs {
            resource: "".into(),
            set: level(&[("log.retention.hours", "24"), ("min.insync.replicas", "2")]),
            remove: vec![],
            replace: false,
        },
        MetadataCommand::AlterBrokerConfigs {
            resource: "1".into(),
            set: level(&[("background.threads", "9")]),
            remove: vec![],
            replace: true,
        },
        MetadataCommand::AlterBrokerConfigs {
            resource: "2".into(),
            set: level(&[("log.cleanup.policy", "compact")]),
            remove: vec![],
            replace: false,
        },
        MetadataCommand::AlterBrokerConfigs {
            resource: "2".into(),
            set: BTreeMap::new(),
            remove: vec!["log.cleanup.policy".into()],
            replace: false,
        },
    ];
    for command in commands {
        all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    }
    all
}

/// The commands of format version 6: version 5's and `CommitOffsets` with its
/// fence (R-GROUP-10), from a member of generation 3 and from outside the group.
fn version_6_variants() -> Vec<CommandEnvelope> {
    let mut all = version_5_variants();
    let commit = |partition: i32, sequence: u64, generation| MetadataCommand::CommitOffsets {
        group: "g".into(),
        offsets: vec![OffsetCommit {
            topic: "orders".into(),
            partition,
            offset: 7,
            leader_epoch: -1,
            metadata: None,
            commit_time_ms: 1_700_000_000_001,
        }],
        fence: Some(CommitFence {
            coordinator: 1,
            incarnation: 0,
            view_index: 23,
            sequence,
            generation,
        }),
    };
    for command in [commit(0, 1, Some(3)), commit(1, 2, None)] {
        all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    }
    all
}

/// The commands of format version 7: version 6's and a registration of a broker that
/// acknowledges before fsync (R-REPL-5).
fn version_7_variants() -> Vec<CommandEnvelope> {
    let mut all = version_6_variants();
    let command = MetadataCommand::RegisterBroker {
        broker_id: 3,
        host: "10.0.0.3".into(),
        port: 9092,
        rack: None,
        incarnation: 9,
        listeners: Vec::new(),
        acks_before_fsync: true,
        short_copies: Vec::new(),
    };
    all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    all
}

/// The commands of format version 8: version 7's and a new start's registration
/// naming a copy its recovery found short of records (R-REPL-4).
fn version_8_variants() -> Vec<CommandEnvelope> {
    let mut all = version_7_variants();
    let command = MetadataCommand::RegisterBroker {
        broker_id: 2,
        host: "10.0.0.2".into(),
        port: 9092,
        rack: None,
        incarnation: 10,
        listeners: Vec::new(),
        acks_before_fsync: false,
        short_copies: vec![CopyRef {
            topic: "replicated".into(),
            partition: 0,
        }],
    };
    all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    all
}

/// The commands of format version 9: version 8's, then broker 3 fenced and let
/// back by an `UnfenceBroker` naming that fence (R-CLUSTER-2).
fn version_9_variants() -> Vec<CommandEnvelope> {
    let mut all = version_8_variants();
    let fence_at = all.len() as u64 + 1;
    all.push(CommandEnvelope::new(
        fence_at,
        MetadataCommand::FenceBroker { broker_id: 3 },
    ));
    let command = MetadataCommand::UnfenceBroker {
        broker_id: 3,
        incarnation: 9,
        fenced_at: fence_at,
    };
    all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    all
}

/// Every command of version 10: version 9's, then broker 3 fenced again and a topic
/// created with it first among the replicas (10: the ISR leaves it out, R-REPL-2).
fn version_10_variants() -> Vec<CommandEnvelope> {
    let mut all = version_9_variants();
    let commands = [
        MetadataCommand::FenceBroker { broker_id: 3 },
        MetadataCommand::CreateTopic {
            name: "placed".into(),
            topic_id: "1b2c3d4e5f6a40718293a4b5c6d7e8f9".into(),
            partitions: vec![vec![3, 1]],
            configs: BTreeMap::new(),
        },
    ];
    for command in commands {
        all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    }
    all
}

/// Every command of version 11: version 10's, then a topic whose name collides with
/// "placed.x" by '.' against '_' (11: refused).
fn version_11_variants() -> Vec<CommandEnvelope> {
    let mut all = version_10_variants();
    let create = |name: &str, topic_id: &str| MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: topic_id.into(),
        partitions: vec![vec![1]],
        configs: BTreeMap::new(),
    };
    for command in [
        create("placed.x", "5e0a6c1d2b3f4e5d8c7b6a5f4e3d2c1b"),
        create("placed_x", "6f1b7d2e3c4a5f6e9d8c7b6a5f4e3d2c"),
    ] {
        all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    }
    all
}

/// Every command of the current format: version 11's, then an election of the
/// preferred replica of "placed" (12: `ElectPreferredLeader`), broker 3, which the
/// ISR left out when it was created fenced: refused.
fn every_variant() -> Vec<CommandEnvelope> {
    let mut all = version_11_variants();
    let state = state_after(&all);
    let placed = &state.topics["placed"].partitions[0];
    let command = MetadataCommand::ElectPreferredLeader {
        topic: "placed".into(),
        partition: 0,
        partition_epoch: placed.partition_epoch,
    };
    all.push(CommandEnvelope::new(all.len() as u64 + 1, command));
    all
}

/// The state a snapshot from before version 5 restores after `commands`: when the
/// brokers last changed is taken to be the snapshot's index.
fn restored_before_v5(commands: &[CommandEnvelope]) -> MetadataState {
    let state = state_after(commands);
    MetadataState {
        brokers_changed_at: state.applied_index,
        ..state
    }
}

fn state_after(commands: &[CommandEnvelope]) -> MetadataState {
    let mut state = MetadataState::default();
    for (i, c) in commands.iter().enumerate() {
        state.apply(i as u64 + 1, c);
    }
    state
}

/// `commands` as a broker of format `version` wrote them.
fn written_as(version: u32, commands: Vec<CommandEnvelope>) -> Vec<CommandEnvelope> {
    commands
        .into_iter()
        .map(|envelope| CommandEnvelope {
            version,
            ..envelope
        })
        .collect()
}

/// The commands of a golden file, one JSON envelope a line.
fn golden_commands(name: &str) -> Result<Vec<CommandEnvelope>, Box<dyn std::error::Error>> {
    let commands = std::fs::read(golden(name))?;
    Ok(commands
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(CommandEnvelope::decode)
        .collect::<Result<_, _>>()?)
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

#[test]
fn r_recover_3_every_command_variant_round_trips_through_json() {
    for envelope in every_variant() {
        let bytes = envelope.encode().map_err(|e| e.to_string());
        let bytes = bytes.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            CommandEnvelope::decode(&bytes),
            Ok(envelope.clone()),
            "{envelope:?}"
        );
    }
}

#[test]
fn r_recover_3_the_snapshot_round_trips() {
    let state = state_after(&every_variant());
    assert!(!state.topics.is_empty() && !state.offsets.is_empty() && !state.brokers.is_empty());
    assert_eq!(state.groups.get("g"), Some(&group_record()));
    assert_eq!(
        state.consumer_groups.get("kip848"),
        Some(&consumer_group_record())
    );
    assert_eq!(state.acls.len(), 2);
    let encoded = Snapshot::encode(&state).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Snapshot::decode(&encoded), Ok(state));
}

#[test]
fn r_recover_3_golden_files_of_version_1_still_decode() -> Result<(), Box<dyn std::error::Error>> {
    let decoded = golden_commands("commands_v1.jsonl")?;
    let as_written = written_as(1, version_1_variants());
    assert_eq!(decoded, as_written);
    let snapshot = std::fs::read(golden("snapshot_v1.json"))?;
    // Version 1 snapshots predate the partition epoch: it decodes as 0, where a replay
    // of the same commands counts the UpdatePartition.
    let mut replayed = restored_before_v5(&version_1_variants());
    for topic in replayed.topics.values_mut() {
        for p in &mut topic.partitions {
            p.partition_epoch = 0;
        }
    }
    assert_eq!(Snapshot::decode(&snapshot)?, replayed);
    Ok(())
}

#[test]
fn r_recover_3_golden_files_of_version_2_still_decode() -> Result<(), Box<dyn std::error::Error>> {
    let decoded = golden_commands("commands_v2.jsonl")?;
    let as_written = written_as(2, version_2_variants());
    assert_eq!(decoded, as_written);
    // Version 2 snapshots have no ACLs: they decode as none.
    let snapshot = std::fs::read(golden("snapshot_v2.json"))?;
    assert_eq!(
        Snapshot::decode(&snapshot)?,
        restored_before_v5(&version_2_variants())
    );
    Ok(())
}

#[test]
fn r_recover_3_golden_files_of_version_3_still_decode() -> Result<(), Box<dyn std::error::Error>> {
    let decoded = golden_commands("commands_v3.jsonl")?;
    let as_written = written_as(3, version_3_variants());
    assert_eq!(decoded, as_written);
    let snapshot = std::fs::read(golden("snapshot_v3.json"))?;
    let state = Snapshot::decode(&snapshot)?;
    assert_eq!(state, restored_before_v5(&version_3_variants()));
    // R-SEC-3: what is stored verifies the password, and is not the password.
    let alice = &state.scram_credentials["alice"][&Mechanism::Sha256];
    assert!(alice.verifies_password("pw"));
    assert!(!String::from_utf8_lossy(&snapshot).contains("\"pw\""));
    assert!(!state.scram_credentials.contains_key("bob"));
    Ok(())
}

#[test]
fn r_recover_3_golden_commands_of_version_4_still_decode() -> Result<(), Box<dyn std::error::Error>>
{
    let as_written = written_as(4, version_4_variants());
    assert_eq!(golden_commands("commands_v4.jsonl")?, as_written);
    // Version 4 changed no snapshot field: its snapshots are version 3's format.
    let state = state_after(&version_4_variants());
    let replicated = &state.topics["replicated"].partitions[0];
    assert_eq!((replicated.leader, replicated.leader_epoch), (Some(2), 1));
    assert_eq!(replicated.isr, vec![2]);
    Ok(())
}

#[test]
fn r_recover_3_golden_files_of_version_5_still_decode() -> Result<(), Box<dyn std::error::Error>> {
    let as_written = written_as(5, version_5_variants());
    assert_eq!(golden_commands("commands_v5.jsonl")?, as_written);
    let snapshot = std::fs::read(golden("snapshot_v4.json"))?;
    let state = Snapshot::decode(&snapshot)?;
    assert_eq!(state, restored_before_v5(&version_5_variants()));
    // R-WIRE-16: the cluster level and broker 1's are kept; broker 2's, emptied, is gone.
    assert_eq!(
        state.broker_configs[""]["log.retention.hours"],
        "24".to_string()
    );
    assert_eq!(state.broker_configs["1"].len(), 1);
    assert!(!state.broker_configs.contains_key("2"));
    Ok(())
}

/// Commands of version 6 and snapshots of version 5 (which name the decision that
/// stored each committed offset).
#[test]
fn r_recover_3_golden_files_of_version_6_still_decode() -> Result<(), Box<dyn std::error::Error>> {
    let as_written = written_as(6, version_6_variants());
    assert_eq!(golden_commands("commands_v6.jsonl")?, as_written);
    let snapshot = std::fs::read(golden("snapshot_v5.json"))?;
    let state = Snapshot::decode(&snapshot)?;
    assert_eq!(state, state_after(&version_6_variants()));
    // Both fences hold: broker 1 (start 0) coordinates "g", which is at generation 3.
    assert_eq!(state.offsets["g"]["orders"][&0].offset, 7);
    assert_eq!(state.offsets["g"]["orders"][&1].offset, 7);
    Ok(())
}

/// Commands of version 7: a registration says whether its broker acknowledges
/// before fsync (R-REPL-5); those written before it read as not.
#[test]
fn r_recover_3_golden_commands_of_version_7_still_decode() -> Result<(), Box<dyn std::error::Error>>
{
    let golden = golden_commands("commands_v7.jsonl")?;
    let as_written = written_as(7, version_7_variants());
    assert_eq!(golden, as_written);
    let flagged = golden.iter().filter(|e| {
        matches!(
            e.command,
            MetadataCommand::RegisterBroker {
                acks_before_fsync: true,
                ..
            }
        )
    });
    assert_eq!(flagged.count(), 1);
    Ok(())
}

/// Commands of version 8: a new start's registration names the copies its recovery
/// found short of records (R-REPL-4), and takes them out of their ISRs; those written
/// before it name none.
#[test]
fn r_recover_3_golden_commands_of_version_8_still_decode() -> Result<(), Box<dyn std::error::Error>>
{
    let golden = golden_commands("commands_v8.jsonl")?;
    let as_written = written_as(8, version_8_variants());
    assert_eq!(golden, as_written);
    let naming = golden.iter().filter(|e| {
        matches!(&e.command, MetadataCommand::RegisterBroker { short_copies, .. }
            if !short_copies.is_empty())
    });
    assert_eq!(naming.count(), 1);
    // Broker 2 is the last replica "replicated" could be led from (broker 1 left for
    // its repair): it stays, and leads in a new epoch, as any restarted leader does.
    let replicated = &state_after(&golden).topics["replicated"].partitions[0];
    assert_eq!(
        (
            replicated.leader,
            replicated.isr.clone(),
            replicated.leader_epoch
        ),
        (Some(2), vec![2], 2)
    );
    Ok(())
}

/// Commands of version 9: `UnfenceBroker` lifts the fence it names; broker 3 ends
/// live, its latest fence still recorded.
#[test]
fn r_recover_3_golden_commands_of_version_9_still_decode() -> Result<(), Box<dyn std::error::Error>>
{
    let golden = golden_commands("commands_v9.jsonl")?;
    let as_written = written_as(9, version_9_variants());
    assert_eq!(golden, as_written);
    let state = state_after(&golden);
    let broker_3 = &state.brokers[&3];
    assert!(!broker_3.fenced);
    assert_eq!(broker_3.fenced_at, golden.len() as u64 - 1);
    Ok(())
}

/// Commands of version 10: a partition created after its replica's fence leaves
/// that replica out of its ISR (R-REPL-2); those written before it keep it in.
#[test]
fn r_recover_3_golden_commands_of_version_10_still_decode() -> Result<(), Box<dyn std::error::Error>>
{
    let golden = golden_commands("commands_v10.jsonl")?;
    assert_eq!(golden, written_as(10, version_10_variants()));
    let state = state_after(&golden);
    let placed = &state.topics["placed"].partitions[0];
    assert_eq!((placed.leader, placed.isr.clone()), (Some(1), vec![1]));
    let as_in_version_9 = written_as(9, golden);
    let placed = &state_after(&as_in_version_9).topics["placed"].partitions[0];
    assert_eq!((placed.leader, placed.isr.clone()), (Some(3), vec![3, 1]));
    Ok(())
}

/// Commands of version 11: a topic whose name collides with another's by '.'
/// against '_' is refused (R-WIRE-2); those written before it were created.
#[test]
fn r_recover_3_golden_commands_of_version_11_still_decode() -> Result<(), Box<dyn std::error::Error>>
{
    let golden = golden_commands("commands_v11.jsonl")?;
    assert_eq!(golden, written_as(11, version_11_variants()));
    let state = state_after(&golden);
    assert!(state.topics.contains_key("placed.x") && !state.topics.contains_key("placed_x"));
    let as_in_version_10 = state_after(&written_as(10, golden));
    assert!(as_in_version_10.topics.contains_key("placed_x"));
    Ok(())
}

/// Commands of version 12: `ElectPreferredLeader`.
#[test]
fn r_recover_3_golden_commands_of_version_12_still_decode() -> Result<(), Box<dyn std::error::Error>>
{
    let golden = golden_commands("commands_v12.jsonl")?;
    assert_eq!(golden, every_variant());
    let mut state = state_after(&golden[..golden.len() - 1]);
    let last = golden.len() as u64;
    let outcome = state.apply(last, &golden[golden.len() - 1]);
    assert!(
        matches!(outcome, ApplyOutcome::Rejected { code, .. }
            if code == chronik_core::errors::PREFERRED_LEADER_NOT_AVAILABLE),
        "{outcome:?}"
    );
    assert_eq!(state.topics["placed"].partitions[0].leader, Some(1));
    Ok(())
}

/// Broker 2's registration by its start `incarnation`.
fn broker_2_start(incarnation: u64) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        broker_id: 2,
        host: "h".into(),
        port: 1,
        rack: None,
        incarnation,
        listeners: Vec::new(),
        acks_before_fsync: false,
        short_copies: Vec::new(),
    }
}

fn refused_as_stale(outcome: ApplyOutcome) -> bool {
    matches!(
        outcome,
        ApplyOutcome::Rejected {
            code: chronik_core::errors::STALE_BROKER_EPOCH,
            ..
        }
    )
}

/// R-CLUSTER-2: a fence is lifted only by the start it fenced, asking with that
/// fence. A retry of the start's registration proposed before the fence (its
/// forward timed out while the entry waited in the Raft log), committed after it,
/// is refused: the broker may have died since, and a dead start would be listed live
/// and handed leaderships until its session lapsed again (simulator seed groups 37).
#[test]
fn r_cluster_2_a_registration_retried_from_before_a_fence_does_not_lift_it() {
    let unfence = |fenced_at| MetadataCommand::UnfenceBroker {
        broker_id: 2,
        incarnation: 1,
        fenced_at,
    };
    let mut state = MetadataState::default();
    let mut index = 0;
    let mut apply = |state: &mut MetadataState, command: MetadataCommand| {
        index += 1;
        state.apply(index, &CommandEnvelope::new(index, command))
    };
    assert_eq!(apply(&mut state, broker_2_start(1)), ApplyOutcome::Done);
    let fence = MetadataCommand::FenceBroker { broker_id: 2 };
    assert_eq!(apply(&mut state, fence.clone()), ApplyOutcome::Done);
    let first_fence = state.brokers[&2].fenced_at;
    assert_eq!(first_fence, 2);
    assert!(refused_as_stale(apply(&mut state, broker_2_start(1))));
    assert!(
        state.brokers[&2].fenced,
        "a registration retry lifted the fence"
    );
    // A request naming no fence, or another start's, is refused too.
    assert!(refused_as_stale(apply(&mut state, unfence(0))));
    assert!(state.brokers[&2].fenced);
    assert_eq!(apply(&mut state, unfence(first_fence)), ApplyOutcome::Done);
    assert!(!state.brokers[&2].fenced);
    assert_eq!(state.live_brokers(), vec![2]);
    // Live again, a duplicate of it changes nothing; after the next fence it is stale.
    assert_eq!(apply(&mut state, unfence(first_fence)), ApplyOutcome::Done);
    assert_eq!(apply(&mut state, fence), ApplyOutcome::Done);
    assert!(refused_as_stale(apply(&mut state, unfence(first_fence))));
    assert!(state.brokers[&2].fenced);
    // A new start registers whatever fenced its last one, and keeps the fence's index.
    let fenced_at = state.brokers[&2].fenced_at;
    assert_eq!(apply(&mut state, broker_2_start(2)), ApplyOutcome::Done);
    assert!(!state.brokers[&2].fenced);
    assert_eq!(state.brokers[&2].fenced_at, fenced_at);
}

/// R-RECOVER-3: a record of version 8 or older keeps the meaning it had when it was
/// written: a registration of the fenced start lifted the fence then, so a replay of
/// an old log computes the state it computed.
#[test]
fn r_recover_3_a_version_8_registration_of_a_fenced_start_still_lifts_its_fence() {
    let register = broker_2_start(1);
    let written_at_8 = |index, command| CommandEnvelope {
        version: 8,
        ..CommandEnvelope::new(index, command)
    };
    let mut state = MetadataState::default();
    state.apply(1, &written_at_8(1, register.clone()));
    state.apply(
        2,
        &written_at_8(2, MetadataCommand::FenceBroker { broker_id: 2 }),
    );
    assert!(state.brokers[&2].fenced);
    assert_eq!(
        state.apply(3, &written_at_8(3, register)),
        ApplyOutcome::Done
    );
    assert!(!state.brokers[&2].fenced);
}

/// R-GROUP-10: a commit is applied only while its coordinator still coordinates
/// the group and the group's stored generation is not later than the committer's;
/// a commit without a fence (written before version 6) is applied as before.
#[test]
fn r_group_10_a_commit_landing_after_a_newer_generation_or_another_coordinator_is_refused() {
    let mut state = state_after(&version_2_variants());
    let commit = |offset: i64, fence: Option<CommitFence>| MetadataCommand::CommitOffsets {
        group: "g".into(),
        offsets: vec![OffsetCommit {
            topic: "orders".into(),
            partition: 1,
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_time_ms: 0,
        }],
        fence,
    };
    // Decided in the view at index 100, by broker 1 in start 0 unless named.
    let at = |view_index: u64, sequence: u64, generation: Option<i32>| CommitFence {
        coordinator: 1,
        incarnation: 0,
        view_index,
        sequence,
        generation,
    };
    let fence = |coordinator: i32, incarnation: u64, sequence: u64, generation: Option<i32>| {
        Some(CommitFence {
            coordinator,
            incarnation,
            ..at(100, sequence, generation)
        })
    };
    let mut index = 100;
    let mut apply = |state: &mut MetadataState, command| {
        index += 1;
        state.apply(index, &CommandEnvelope::new(index, command))
    };
    // "g" is stored at generation 3, and broker 1 (start 0) coordinates it.
    let done = ApplyOutcome::Done;
    assert_eq!(apply(&mut state, commit(50, fence(1, 0, 5, Some(3)))), done);
    let refusal = |outcome| match outcome {
        ApplyOutcome::Rejected { code, .. } => code,
        other => panic!("{other:?} is no refusal"),
    };
    // An earlier generation, another broker, another start of the same broker.
    assert_eq!(
        refusal(apply(&mut state, commit(40, fence(1, 0, 6, Some(2))))),
        chronik_core::errors::ILLEGAL_GENERATION
    );
    assert_eq!(
        refusal(apply(&mut state, commit(40, fence(2, 0, 6, Some(3))))),
        chronik_core::errors::NOT_COORDINATOR
    );
    assert_eq!(
        refusal(apply(&mut state, commit(40, fence(1, 1, 6, Some(3))))),
        chronik_core::errors::NOT_COORDINATOR
    );
    assert_eq!(state.offsets["g"]["orders"][&1].offset, 50);
    // Decided before the stored commit: superseded, so skipped, as Kafka's log
    // order would have it.
    assert_eq!(apply(&mut state, commit(40, fence(1, 0, 4, Some(3)))), done);
    assert_eq!(state.offsets["g"]["orders"][&1].offset, 50);
    // From outside the group (generation -1) only the coordinator is checked.
    assert_eq!(apply(&mut state, commit(60, fence(1, 0, 7, None))), done);
    assert_eq!(apply(&mut state, commit(45, None)), done);
    assert_eq!(state.offsets["g"]["orders"][&1].offset, 45);
    // A broker registers and is fenced again: "g" may have moved away and back, so
    // a commit decided in a view before that is refused; one decided after is not.
    let register = broker_2_start(1);
    assert_eq!(apply(&mut state, register), done);
    let fence_2 = MetadataCommand::FenceBroker { broker_id: 2 };
    assert_eq!(apply(&mut state, fence_2), done);
    let changed_at = state.brokers_changed_at;
    let before = Some(at(changed_at - 1, 8, Some(3)));
    assert_eq!(
        refusal(apply(&mut state, commit(30, before))),
        chronik_core::errors::NOT_COORDINATOR
    );
    let after = Some(at(changed_at, 9, Some(3)));
    assert_eq!(apply(&mut state, commit(70, after)), done);
    assert_eq!(state.offsets["g"]["orders"][&1].offset, 70);
    // OffsetFetch's read barrier: fenced like a commit, and it stores nothing, so no
    // group appears.
    let barrier = |fence| MetadataCommand::offsets_barrier("fresh", fence);
    assert_eq!(
        apply(&mut state, barrier(Some(at(changed_at, 10, None)))),
        done
    );
    assert!(!state.offsets.contains_key("fresh"));
    let stale = Some(at(changed_at - 1, 11, None));
    assert_eq!(
        refusal(apply(&mut state, barrier(stale))),
        chronik_core::errors::NOT_COORDINATOR
    );
    // Only a broker whose registration of this start is applied coordinates.
    assert!(state.coordinates_in_start("g", 1, 0));
    assert!(!state.coordinates_in_start("g", 1, 1));
    assert!(!MetadataState::default().coordinates_in_start("g", 1, 0));
}

#[test]
fn r_group_8_a_group_record_is_stored_only_by_the_coordinator_and_never_goes_back_a_generation() {
    let mut state = state_after(&version_1_variants());
    let store = |coordinator: i32, generation: i32| {
        let mut record = group_record();
        record.generation = generation;
        MetadataCommand::StoreGroup {
            group: "g".into(),
            coordinator,
            record,
        }
    };
    let mut index = 100;
    let mut apply = |state: &mut MetadataState, command| {
        index += 1;
        state.apply(index, &CommandEnvelope::new(index, command))
    };
    // Broker 1 is the only registered broker, so it coordinates every group.
    assert_eq!(apply(&mut state, store(1, 3)), ApplyOutcome::Done);
    assert!(matches!(
        apply(&mut state, store(2, 4)),
        ApplyOutcome::Rejected {
            code: chronik_core::errors::NOT_COORDINATOR,
            ..
        }
    ));
    assert!(matches!(
        apply(&mut state, store(1, 2)),
        ApplyOutcome::Rejected {
            code: chronik_core::errors::ILLEGAL_GENERATION,
            ..
        }
    ));
    assert_eq!(state.groups["g"].generation, 3);
    let delete = MetadataCommand::DeleteGroupOffsets {
        group: "g".into(),
        partitions: None,
    };
    assert_eq!(apply(&mut state, delete), ApplyOutcome::Done);
    assert!(!state.groups.contains_key("g") && !state.offsets.contains_key("g"));
}

#[test]
fn r_recover_3_a_newer_or_garbled_command_is_refused_not_skipped() {
    let mut future = serde_json::to_value(&every_variant()[0]).unwrap_or_default();
    future["version"] = 99.into();
    let bytes = serde_json::to_vec(&future).unwrap_or_default();
    assert!(CommandEnvelope::decode(&bytes).is_err());
    assert!(
        CommandEnvelope::decode(b"{\"version\":1,\"id\":1,\"command\":{\"type\":\"Nope\"}}")
            .is_err()
    );
    assert!(CommandEnvelope::decode(b"\x00\x01").is_err());
}

#[test]
fn r_recover_3_cluster_commands_round_trip() {
    for command in [
        MetadataCommand::FenceBroker { broker_id: 2 },
        MetadataCommand::AlterIsr {
            topic: "orders".into(),
            partition: 1,
            leader_epoch: 4,
            isr: vec![1, 3],
            partition_epoch: Some(7),
        },
    ] {
        let envelope = CommandEnvelope::new(7, command);
        let bytes = envelope.encode().expect("encodes");
        assert_eq!(CommandEnvelope::decode(&bytes), Ok(envelope));
    }
}

#[test]
fn r_start_3_a_late_registration_of_an_earlier_incarnation_is_refused() {
    let register = |incarnation: u64| MetadataCommand::RegisterBroker {
        broker_id: 2,
        host: "127.0.0.1".into(),
        port: 9093,
        rack: None,
        incarnation,
        listeners: Vec::new(),
        acks_before_fsync: false,
        short_copies: Vec::new(),
    };
    let mut state = MetadataState::default();
    assert_eq!(
        state.apply(1, &CommandEnvelope::new(1, register(2))),
        ApplyOutcome::Done
    );
    // A forward from the broker's previous life, applied after the new registration.
    let late = state.apply(2, &CommandEnvelope::new(2, register(1)));
    assert!(
        matches!(
            late,
            ApplyOutcome::Rejected {
                code: chronik_core::errors::STALE_BROKER_EPOCH,
                ..
            }
        ),
        "{late:?}"
    );
    assert_eq!(state.brokers[&2].incarnation, 2);
    // The same incarnation again is an idempotent retry.
    assert_eq!(
        state.apply(3, &CommandEnvelope::new(3, register(2))),
        ApplyOutcome::Done
    );
    // A record of format version 1 carries no incarnation and decodes as 0.
    let v1 = br#"{"version":1,"id":9,"command":{"type":"RegisterBroker","broker_id":3,"host":"h","port":1,"rack":null}}"#;
    let decoded = CommandEnvelope::decode(v1).expect("version 1 decodes");
    assert!(matches!(
        decoded.command,
        MetadataCommand::RegisterBroker { incarnation: 0, .. }
    ));
}

#[test]
fn r_persist_3_replayed_entries_take_effect_once() {
    let commands = every_variant();
    let mut state = state_after(&commands);
    let before = state.clone();
    // A replay after restart delivers entries the snapshot already holds.
    for (i, c) in commands.iter().enumerate() {
        assert_eq!(state.apply(i as u64 + 1, c), ApplyOutcome::Done);
    }
    assert_eq!(state, before);
    let next = CommandEnvelope::new(99, MetadataCommand::AllocateProducerId);
    assert_eq!(
        state.apply(commands.len() as u64 + 1, &next),
        ApplyOutcome::ProducerId(1)
    );
}

/// Writes the golden files; run once per new format version with
/// `CHRONIK_WRITE_GOLDEN=1 cargo test -p chronik --test metadata_format write_golden -- --ignored`.
#[test]
#[ignore = "writes the golden files of a new format version"]
fn write_golden() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("CHRONIK_WRITE_GOLDEN").is_none() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for envelope in every_variant() {
        lines.extend(envelope.encode()?);
        lines.push(b'\n');
    }
    let name = format!("commands_v{COMMAND_VERSION}.jsonl");
    std::fs::write(golden(&name), lines)?;
    // A command format may change without the snapshot's: its file stays as written.
    let snapshot_file = golden(&format!("snapshot_v{SNAPSHOT_VERSION}.json"));
    if !snapshot_file.exists() {
        std::fs::write(
            snapshot_file,
            Snapshot::encode(&state_after(&every_variant()))?,
        )?;
    }
    Ok(())
}
