pub use crate::consumer_groups::ConsumerGroupRecord;
pub use crate::groups::{CommitFence, GroupRecord, MemberRecord};
use crate::security::acl::AclBinding;
pub use crate::security::scram::{Mechanism, ScramCredential};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version written in every envelope. Decoding accepts this and older versions;
/// a newer one is refused loudly rather than half-understood. Version 3 added ACL
/// bindings (`CreateAcls`, `DeleteAcls`), SCRAM credentials and named listeners;
/// version 4 added `RepairReplica`, version 5 `AlterBrokerConfigs`, version 6 the
/// fence of `CommitOffsets`, version 7 `acks_before_fsync` of `RegisterBroker`,
/// version 8 its `short_copies`, version 9 `UnfenceBroker` (from 9 on, a registration
/// never lifts a fence on its own incarnation), version 10 fenced replicas in new
/// ISRs (from 10 on, a created partition's ISR leaves them out, and a partition led
/// again after it was offline sheds them), version 11 the refusal of a `CreateTopic`
/// whose name collides with a topic's by '.' against '_', version 12
/// `ElectPreferredLeader`.
pub const COMMAND_VERSION: u32 = 12;

/// What a Raft entry carries: a command, its format version, and the proposer's id
/// for it, by which the proposer recognises its outcome when the entry is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    pub version: u32,
    pub id: u64,
    pub command: MetadataCommand,
}

impl CommandEnvelope {
    pub fn new(id: u64, command: MetadataCommand) -> Self {
        CommandEnvelope {
            version: COMMAND_VERSION,
            id,
            command,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("cannot encode command: {e}"))
    }

    /// Decodes an entry. An error here, for an entry in the committed log, must stop
    /// the node: skipping it would silently fork its state (seed 000).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let envelope: CommandEnvelope =
            serde_json::from_slice(bytes).map_err(|e| format!("undecodable command: {e}"))?;
        if envelope.version > COMMAND_VERSION {
            return Err(format!(
                "command version {} is newer than this broker's {COMMAND_VERSION}",
                envelope.version
            ));
        }
        Ok(envelope)
    }
}

impl MetadataCommand {
    /// A commit of nothing, applied only while its fence holds: once its proposer
    /// has applied it, that coordinator knows it still coordinated the group at
    /// that index and that its view holds every commit before it. OffsetFetch waits
    /// for one, so a coordinator cut off from the metadata leader, whose view lags,
    /// never answers offsets older than an acknowledged commit (R-GROUP-10).
    pub fn offsets_barrier(group: &str, fence: Option<CommitFence>) -> Self {
        MetadataCommand::CommitOffsets {
            group: group.to_string(),
            offsets: Vec::new(),
            fence,
        }
    }
}

/// One committed consumer offset in a [`MetadataCommand::CommitOffsets`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_time_ms: i64,
}

/// Every change to the metadata. Internally tagged, so a stored command names its
/// variant in plain JSON; serde_json (unlike bincode, seed 000) can decode it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataCommand {
    /// Idempotent: registering the same broker with the same address again changes
    /// nothing, so the registration can be retried until it is seen applied.
    RegisterBroker {
        broker_id: i32,
        host: String,
        port: i32,
        rack: Option<String>,
        /// Chosen afresh by every start of the broker process: a broker counts as
        /// registered only once its current incarnation is applied, never on the
        /// strength of a registration from an earlier life (R-START-3). Absent (0) in
        /// version-1 records written before it existed.
        #[serde(default)]
        incarnation: u64,
        /// Every Kafka listener of the broker, by name, with its advertised address;
        /// `host`/`port` is the one other brokers fetch from. Empty in records
        /// written before format version 3 (one unnamed listener).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listeners: Vec<Endpoint>,
        /// The broker acknowledges records before they are durable (the interval
        /// fsync policy), so a restart may have lost records it counted towards high
        /// watermarks: a new incarnation leaves the ISRs it is in and hands over its
        /// leaderships (R-REPL-5). Absent (false) before format version 7.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        acks_before_fsync: bool,
        /// The copies this start's recovery found short of records (a damaged range,
        /// or a last frame cut as torn and marked): a new incarnation leaves their
        /// ISRs and eligible sets and hands their leaderships over, as its
        /// `RepairReplica` would, before anything can count on what they lost
        /// (R-REPL-4). Absent (none) before format version 8.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        short_copies: Vec<CopyRef>,
    },
    CreateTopic {
        name: String,
        topic_id: String,
        /// Replicas of each partition, in partition order; the first is the leader.
        partitions: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        topic: String,
        new_partitions: Vec<Vec<i32>>,
    },
    /// Sets and removes topic configs; `replace` first clears every existing one
    /// (AlterConfigs semantics).
    AlterTopicConfigs {
        topic: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        replace: bool,
    },
    /// The controller lost the broker's session (see `BrokerInfo::fenced`).
    FenceBroker {
        broker_id: i32,
    },
    /// A live broker that sees itself fenced asks to be let back, as Kafka's
    /// heartbeat with its broker epoch does: refused unless `incarnation` is still
    /// the registered one and `fenced_at` the fence it saw (`BrokerInfo::fenced_at`),
    /// so neither a dead start's request nor one from before a later fence lifts it.
    UnfenceBroker {
        broker_id: i32,
        incarnation: u64,
        fenced_at: u64,
    },
    /// A partition leader shrinks or expands its ISR; refused unless `leader_epoch`
    /// is still the partition's (a deposed leader cannot change it).
    AlterIsr {
        topic: String,
        partition: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
        /// The partition epoch the ISR was computed from; the change is refused if the
        /// partition has changed since (absent in records written before it existed).
        #[serde(default)]
        partition_epoch: Option<u64>,
    },
    /// `broker_id` found damage in its copy of the partition and must cut its log
    /// below it and fetch the records back (R-REPL-4). It leaves the ISR first, so
    /// that no copy the high watermark counts on is ever cut; a leader also hands
    /// leadership to the first other live ISR member, else to a live eligible
    /// replica (refused if there is neither: a sole copy keeps serving what is
    /// undamaged). Refused too for an offline partition's last replica it could be
    /// led from (the ISR would empty with no eligible replica left). Compare-and-set
    /// on the leader and partition epochs; it always moves the partition epoch on, so
    /// no ISR expansion computed from a fetch made before the cut can be applied
    /// after it.
    RepairReplica {
        topic: String,
        partition: i32,
        broker_id: i32,
        leader_epoch: i32,
        partition_epoch: u64,
    },
    /// The partition's preferred replica (its first) leads again (Kafka's preferred
    /// leader election: ElectLeaders, and the automatic leader rebalance). Applied
    /// only if the partition is as the election was decided on (its partition
    /// epoch), and the preferred replica is live, in the ISR and not leading: any
    /// live ISR member may lead (it holds every committed record, R-REPL-1), as a
    /// failover elects one; the leader it replaces stays in the ISR and learns of the
    /// new leader epoch like any deposed leader (R-REPL-3).
    ElectPreferredLeader {
        topic: String,
        partition: i32,
        partition_epoch: u64,
    },
    /// Partition leadership and ISR, set outright (administrative).
    UpdatePartition {
        topic: String,
        partition: i32,
        #[serde(with = "super::broker_id::stored")]
        leader: Option<super::BrokerId>,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
    /// Refused if its fence no longer holds (R-GROUP-10). Commits stored before the
    /// fence existed carry none and are applied as they were.
    CommitOffsets {
        group: String,
        offsets: Vec<OffsetCommit>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fence: Option<CommitFence>,
    },
    /// A consumer group's durable record (R-GROUP-8), written by its coordinator when
    /// a generation gets its assignment or the group empties. Refused unless
    /// `coordinator` still coordinates the group and the generation does not go back,
    /// so a deposed coordinator cannot overwrite its successor's record. New in
    /// format version 2.
    StoreGroup {
        group: String,
        coordinator: i32,
        record: GroupRecord,
    },
    /// A KIP-848 group's durable record (R-GROUP-9), written by its coordinator before
    /// it answers a heartbeat that changed it; refused like `StoreGroup` from a broker
    /// that does not coordinate the group or with an older group epoch. New in format
    /// version 2.
    StoreConsumerGroup {
        group: String,
        coordinator: i32,
        record: ConsumerGroupRecord,
    },
    /// Deletes a group's offsets: all of them (and then its record: the group is
    /// deleted), or those of the given partitions.
    DeleteGroupOffsets {
        group: String,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Hands out the next producer id.
    AllocateProducerId,
    /// Adds ACL bindings (CreateAcls); one already stored stays once. Refused whole
    /// if any binding is invalid (R-SEC-ACL-11). New in format version 3.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Removes exactly these bindings: the DeleteAcls handler matched its filters
    /// against its view, so a binding created since is not removed by a filter that
    /// never saw it. Bindings already gone are ignored. New in format version 3.
    DeleteAcls {
        bindings: Vec<AclBinding>,
    },
    /// Sets a user's SCRAM credential for one mechanism (R-SEC-3): the salted keys,
    /// never the password. New in format version 3.
    UpsertScramCredential {
        user: String,
        credential: ScramCredential,
    },
    /// Sets and removes dynamic broker configs (KIP-226) of one level: `resource` is
    /// `""` for the cluster default or a broker id; `replace` first clears the level
    /// (AlterConfigs semantics). New in format version 5.
    AlterBrokerConfigs {
        resource: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        replace: bool,
    },
    /// Removes a user's credential for one mechanism; refused with
    /// RESOURCE_NOT_FOUND if there is none. New in format version 3.
    DeleteScramCredential {
        user: String,
        mechanism: Mechanism,
    },
}

/// One partition's copy on a broker, named by topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CopyRef {
    pub topic: String,
    pub partition: i32,
}

/// One named Kafka listener's advertised address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: i32,
}
