use super::broker_id::BrokerId;
use super::command::{
    CommandEnvelope, CommitFence, ConsumerGroupRecord, Endpoint, GroupRecord, Mechanism,
    MetadataCommand, ScramCredential,
};
use crate::security::acl::AclBinding;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Version 2 added consumer group records (`MetadataState::groups`), version 3 ACL
/// bindings (`MetadataState::acls`) and SCRAM credentials: a broker that predates them refuses the snapshot
/// rather than silently dropping the ACLs; version 4 dynamic broker configs
/// (`MetadataState::broker_configs`); version 5 the decision that stored each
/// committed offset (`CommittedOffset::decided_by`).
pub const SNAPSHOT_VERSION: u32 = 5;

// Kafka error codes the state machine answers with.
use crate::errors::{
    ErrorCode, ELECTION_NOT_NEEDED, FENCED_LEADER_EPOCH, GROUP_ID_NOT_FOUND, ILLEGAL_GENERATION,
    INVALID_PARTITIONS, INVALID_REPLICA_ASSIGNMENT, INVALID_REQUEST, INVALID_TOPIC_EXCEPTION,
    INVALID_UPDATE_VERSION, NOT_COORDINATOR, NOT_ENOUGH_REPLICAS, PREFERRED_LEADER_NOT_AVAILABLE,
    RESOURCE_NOT_FOUND, STALE_BROKER_EPOCH, TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub broker_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// The start of the broker process that registered (see `RegisterBroker`).
    #[serde(default)]
    pub incarnation: u64,
    /// The controller lost its session: not listed to clients, leads nothing, in no
    /// ISR. Its start's `UnfenceBroker` naming the fence lifts it, or a new start's
    /// registration (a registration of the fenced start does not, from format 9).
    #[serde(default)]
    pub fenced: bool,
    /// The Raft index of the broker's latest fence (0: none, or restored from a
    /// snapshot older than it). An `UnfenceBroker` must name it; it stays after the
    /// fence is lifted and across registrations, so every fence is told apart.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fenced_at: u64,
    /// Its Kafka listeners by name (empty: only `host`/`port`, unnamed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Endpoint>,
    /// It acknowledges records before they are durable (`RegisterBroker`'s flag):
    /// fenced as a leader, it may not hold what it counted (R-REPL-6).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acks_before_fsync: bool,
}

impl BrokerInfo {
    /// The address a client that came in on `listener` is told. A broker without
    /// that listener is not reachable from there (Kafka leaves it out).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() || listener.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|e| e.name == listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub replicas: Vec<i32>,
    /// `None` while the partition is offline (stored as Kafka's `-1`).
    #[serde(with = "super::broker_id::stored")]
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// Eligible leader replicas: members that left the ISR while it was below
    /// `min.insync.replicas` and still hold every committed record (R-REPL-6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
    /// Eligible replicas whose copy is unverified: leaders that left while not live
    /// under the interval policy (fenced, or displaced by an eligible replica). A
    /// fence cuts nothing, but the lapse may have been a crash that cut what they
    /// acknowledged before syncing it, and a return in the same start does not sync
    /// it. Their next start takes them out unless nothing else could lead; only a copy
    /// known short waits for them while they are not live (R-REPL-6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverified: Vec<i32>,
    /// Bumped by every change of leader, leader epoch or ISR (Kafka's partition
    /// epoch). An ISR change applies only to the version it was computed from, so a
    /// leader knows which of its proposals can still be applied (R-REPL-2).
    #[serde(default)]
    pub partition_epoch: u64,
}

impl PartitionInfo {
    /// The replica a preferred leader election would make leader, or why there is
    /// none: it leads already (ELECTION_NOT_NEEDED), or it is not live and in the
    /// ISR (PREFERRED_LEADER_NOT_AVAILABLE).
    pub fn preferred_election(&self, live: &[BrokerId]) -> Result<BrokerId, ApplyOutcome> {
        match self.replicas.first().copied() {
            Some(p) if self.leader == Some(p) => Err(rejected(
                ELECTION_NOT_NEEDED,
                "the preferred replica leads already",
            )),
            Some(p) if self.isr.contains(&p) && live.contains(&p) => Ok(p),
            _ => Err(rejected(
                PREFERRED_LEADER_NOT_AVAILABLE,
                "the preferred replica is not live and in the ISR",
            )),
        }
    }

    /// Who takes over from `leaving`: the first other ISR member among `live`, in
    /// ISR order (never an out-of-sync replica: no unclean election).
    pub fn successor_of(&self, leaving: BrokerId, live: &[BrokerId]) -> Option<BrokerId> {
        self.isr
            .iter()
            .copied()
            .find(|r| *r != leaving && live.contains(r))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub topic_id: String,
    pub partitions: Vec<PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_time_ms: i64,
    /// Which coordinator decision stored it (R-GROUP-10; absent before snapshot
    /// version 5, and for commits without a fence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<CommitFence>,
}

/// What applying a command did, reported to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Done,
    ProducerId(i64),
    /// The command was valid Raft-wise but refused by the state machine, with the
    /// Kafka error code the client gets.
    Rejected {
        code: ErrorCode,
        message: String,
    },
}

/// A topic id's UUID text (hyphens anywhere) as its 16 bytes.
fn topic_id_bytes(text: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(digits.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(id)
}

/// A partition's commit decided before the one stored there by the same coordinator
/// start: applying it would undo a later decision (R-GROUP-10).
fn superseded(fence: Option<&CommitFence>, stored: &CommittedOffset) -> bool {
    match (fence, stored.decided_by) {
        (Some(new), Some(old)) => {
            (new.coordinator, new.incarnation) == (old.coordinator, old.incarnation)
                && new.sequence < old.sequence
        }
        _ => false,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn rejected(code: ErrorCode, message: impl Into<String>) -> ApplyOutcome {
    ApplyOutcome::Rejected {
        code,
        message: message.into(),
    }
}

/// The whole replicated metadata image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    /// group -> topic -> partition -> committed offset
    pub offsets: BTreeMap<String, BTreeMap<String, BTreeMap<i32, CommittedOffset>>>,
    pub next_producer_id: i64,
    /// Consumer groups' durable records (absent from version-1 snapshots).
    #[serde(default)]
    pub groups: BTreeMap<String, GroupRecord>,
    /// KIP-848 groups' durable records (absent from version-1 snapshots).
    #[serde(default)]
    pub consumer_groups: BTreeMap<String, ConsumerGroupRecord>,
    /// user -> mechanism -> SCRAM credential (absent before format version 3).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram_credentials: BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>,
    /// ACL bindings (R-SEC-ACL-11; absent from snapshots before version 3).
    #[serde(default)]
    pub acls: BTreeSet<AclBinding>,
    /// Dynamic broker configs (KIP-226) by level: `""` for the cluster default, a
    /// broker id for that broker (absent from snapshots before version 4).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The index of the last entry that registered, changed or fenced a broker:
    /// groups may have changed coordinator there (R-GROUP-10; absent before
    /// snapshot version 5).
    #[serde(default)]
    pub brokers_changed_at: u64,
    /// The Raft index of the last applied entry.
    pub applied_index: u64,
}

/// The state as stored in a Raft snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub state: MetadataState,
}

impl Snapshot {
    pub fn encode(state: &MetadataState) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&Snapshot {
            version: SNAPSHOT_VERSION,
            state: state.clone(),
        })
        .map_err(|e| format!("cannot encode snapshot: {e}"))
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataState, String> {
        let snapshot: Snapshot =
            serde_json::from_slice(bytes).map_err(|e| format!("undecodable snapshot: {e}"))?;
        if snapshot.version > SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot version {} is newer than this broker's {SNAPSHOT_VERSION}",
                snapshot.version
            ));
        }
        let mut state = snapshot.state;
        if snapshot.version < 5 {
            // When its brokers last changed is unknown: as if at the snapshot, so a
            // commit decided in a view before it is refused (R-GROUP-10).
            state.brokers_changed_at = state.applied_index;
        }
        Ok(state)
    }
}

impl MetadataState {
    /// Applies a committed entry at Raft index `index`. Entries at or below
    /// `applied_index` were applied already (a replay after restart) and are ignored,
    /// so every entry takes effect exactly once (R-PERSIST-3).
    pub fn apply(&mut self, index: u64, envelope: &CommandEnvelope) -> ApplyOutcome {
        if index <= self.applied_index {
            return ApplyOutcome::Done;
        }
        self.applied_index = index;
        self.apply_command(&envelope.command, envelope.version)
    }

    /// Registered brokers without a fence, in id order.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect()
    }

    /// The leader a client is told of by broker `me`, and whether it serves. A
    /// restarted `me` does not lead until its new registration is applied; naming it
    /// leader before then would send clients to a broker that answers
    /// NOT_LEADER_OR_FOLLOWER (R-WIRE-6, R-REPL-1). Metadata and
    /// DescribeTopicPartitions both answer this.
    pub fn client_leader(
        &self,
        p: &PartitionInfo,
        me: BrokerId,
        incarnation: u64,
    ) -> (Option<BrokerId>, bool) {
        let led_here = p.leader == Some(me);
        let serves = if led_here {
            self.leads(p, me, incarnation)
        } else {
            p.leader
                .and_then(|l| self.brokers.get(&l))
                .is_some_and(|b| !b.fenced)
        };
        let leader = if led_here && !serves { None } else { p.leader };
        (leader, serves)
    }

    /// `broker` leads this partition in the start `incarnation`: the partition names it
    /// leader and its current registration is applied and unfenced. A restarted
    /// leader waits for its registration, which starts a new leader epoch, so that
    /// ISR changes its previous life proposed are fenced (R-REPL-2; found by the
    /// replication model).
    pub fn leads(&self, info: &PartitionInfo, broker: BrokerId, incarnation: u64) -> bool {
        info.leader == Some(broker)
            && self
                .brokers
                .get(&broker)
                .is_some_and(|b| b.incarnation == incarnation && !b.fenced)
    }

    /// Topics as a KIP-848 coordinator sees them: name -> (id, partition count). A
    /// topic whose id is not a UUID's text is left out (none is written so).
    pub fn topics_view(&self) -> crate::consumer_groups::TopicsView {
        self.topics
            .iter()
            .filter_map(|(name, info)| {
                let id = topic_id_bytes(&info.topic_id)?;
                Some((name.clone(), (id, info.partitions.len() as u32)))
            })
            .collect()
    }

    /// The broker that coordinates `group`: a stable hash of the group id over the
    /// registered brokers in id order, moving on to the next one while the chosen one
    /// is fenced, so a group moves only while its coordinator is down (R-GROUP-3).
    pub fn coordinator_for(&self, group: &str) -> Option<&BrokerInfo> {
        let brokers: Vec<&BrokerInfo> = self.brokers.values().collect();
        if brokers.is_empty() {
            return None;
        }
        let start = crc32fast::hash(group.as_bytes()) as usize % brokers.len();
        (0..brokers.len())
            .map(|i| brokers[(start + i) % brokers.len()])
            .find(|b| !b.fenced)
    }

    /// `broker` coordinates `group` (a single node whose registration is not yet
    /// applied coordinates every group).
    pub fn coordinates(&self, group: &str, broker: i32) -> bool {
        match self.coordinator_for(group) {
            Some(b) => b.broker_id == broker,
            None => self.brokers.is_empty(),
        }
    }

    /// `broker`, in its start `incarnation`, may act as `group`'s coordinator: it
    /// coordinates the group and this view holds its registration of this start. A
    /// restarted broker replays only to its durable commit index, and commits made
    /// while it was down come later; until its own registration (proposed after the
    /// restart) is applied it would answer from a view that misses them, and hand out
    /// an old generation and older committed offsets (R-GROUP-10), as a partition
    /// leader waits for the same registration (`leads`). A view with no broker
    /// registered names no coordinator (a single node registers before it serves).
    pub fn coordinates_in_start(&self, group: &str, broker: i32, incarnation: u64) -> bool {
        let registered = self
            .brokers
            .get(&broker)
            .is_some_and(|b| b.incarnation == incarnation);
        registered && self.coordinates(group, broker)
    }

    /// A topic whose name differs from `name` only by '.' against '_'. Kafka
    /// refuses such a name (`Topic.hasCollision`): both map to one metric name, and
    /// tools that unify them cannot tell the two apart.
    pub fn colliding_topic(&self, name: &str) -> Option<&str> {
        if !name.contains(['.', '_']) {
            return None;
        }
        let unified = |n: &str| n.replace('.', "_");
        let wanted = unified(name);
        self.topics
            .keys()
            .find(|t| t.as_str() != name && t.contains(['.', '_']) && unified(t) == wanted)
            .map(String::as_str)
    }

    /// A partition's entry, if its topic and index exist.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        let t = self.topics.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
    }

    /// The partitions a creation adds, numbered from `first`, or its refusal. From
    /// command format 10 a new partition's ISR holds only its replicas that are not
    /// fenced, led by the first of them, and a partition whose replicas are all
    /// fenced is refused, as Kafka's controller refuses it: the plan was made
    /// against an older image, and a broker fenced since would otherwise be put
    /// back in an ISR its fence took it out of (R-REPL-2; swarm 1509, 1847, 1964
    /// created a partition with a fenced replica in its ISR). Older records keep
    /// their meaning, so a replay computes what was computed then.
    fn new_partitions(
        &self,
        assignments: &[Vec<i32>],
        first: usize,
        version: u32,
    ) -> Result<Vec<PartitionInfo>, ApplyOutcome> {
        let mut partitions = Vec::with_capacity(assignments.len());
        for (i, replicas) in assignments.iter().enumerate() {
            let isr = if version >= 10 {
                self.unfenced(replicas)
            } else {
                replicas.clone()
            };
            if isr.is_empty() {
                return Err(rejected(
                    INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "All brokers specified in the partition assignment for partition {} \
                         are fenced.",
                        first + i
                    ),
                ));
            }
            partitions.push(new_partition(replicas, isr));
        }
        Ok(partitions)
    }

    /// `replicas` but those whose broker is registered and fenced, in order. A
    /// broker not registered yet is kept: only a bootstrapping node places replicas
    /// on itself before its registration is applied.
    pub fn unfenced(&self, replicas: &[i32]) -> Vec<i32> {
        let fenced = |b: &i32| self.brokers.get(b).is_some_and(|info| info.fenced);
        replicas.iter().copied().filter(|b| !fenced(b)).collect()
    }

    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionInfo> {
        let t = self.topics.get_mut(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get_mut(i))
    }

    /// A fenced broker leads nothing and is in no ISR: each partition it led moves
    /// to the first other ISR member that is live, else to a live eligible replica
    /// (leader epoch + 1); with none, the partition is offline (no leader) and keeps
    /// its ISR, so that the broker's return, not an out-of-sync replica, brings it
    /// back (no unclean election). A fenced member leaving an ISR below the minimum,
    /// leader or follower, stays eligible: a fence cuts nothing. A leader that
    /// acknowledges before fsync (the interval policy) is unverified: its lapse may
    /// have been a crash (R-REPL-6).
    fn move_away_from(&mut self, gone: i32) {
        let live = self.live_brokers();
        let unverified = self.brokers_acking_before_fsync().contains(&gone);
        let min_isrs = self.controller_min_isrs();
        for (name, t) in &mut self.topics {
            let min_isr = min_isrs.get(name).copied().unwrap_or(1);
            for p in &mut t.partitions {
                let led = p.leader == Some(gone);
                if led || (p.isr.contains(&gone) && p.leader.is_some()) {
                    p.partition_epoch += 1;
                }
                if led {
                    p.leader_epoch += 1;
                    p.leader = p.successor_of(gone, &live);
                    if p.leader.is_some() {
                        p.set_isr(p.isr_without(gone), min_isr, true);
                    } else if p.elect_eligible(gone, &live) {
                        p.leader_epoch -= 1; // one move, one epoch
                        p.keep_eligible(gone, min_isr);
                    }
                    if unverified {
                        p.mark_unverified(gone);
                    }
                } else if p.isr.contains(&gone) && p.leader.is_some() {
                    p.set_isr(p.isr_without(gone), min_isr, true);
                }
            }
        }
    }

    fn fenced_brokers(&self) -> Vec<i32> {
        let fenced = self.brokers.values().filter(|b| b.fenced);
        fenced.map(|b| b.broker_id).collect()
    }

    /// Brokers whose registration says they acknowledge a record before syncing it
    /// (the interval policy): a leader's crash may cut what it acknowledged.
    fn brokers_acking_before_fsync(&self) -> Vec<i32> {
        let interval = self.brokers.values().filter(|b| b.acks_before_fsync);
        interval.map(|b| b.broker_id).collect()
    }

    /// A lowered `min.insync.replicas` can put an ISR back at the minimum, where its
    /// leader's high watermark moves again and eligible replicas stop holding
    /// everything committed: they are no longer eligible, as when the ISR grows
    /// back (Kafka clears the ELR when the minimum changes). An offline partition
    /// keeps its ELR: nothing is committed there (R-REPL-6).
    fn forget_eligible_at_the_minimum(&mut self) {
        let min_isrs = self.controller_min_isrs();
        for (name, t) in &mut self.topics {
            let min_isr = min_isrs.get(name).copied().unwrap_or(1);
            for p in &mut t.partitions {
                let at_minimum = p.isr.len() >= p.effective_min_isr(min_isr);
                if p.leader.is_some() && at_minimum && !p.elr.is_empty() {
                    p.elr.clear();
                    p.unverified.clear();
                    p.partition_epoch += 1;
                }
            }
        }
    }

    /// `min.insync.replicas` of every topic as the controller judges it: the
    /// topic's, else the cluster-wide dynamic default, else 1.
    fn controller_min_isrs(&self) -> BTreeMap<String, usize> {
        self.topics
            .iter()
            .map(|(name, t)| (name.clone(), self.controller_min_isr(t)))
            .collect()
    }

    /// See [`MetadataCommand::RepairReplica`]: a leader's successor is the first
    /// other live ISR member in ISR order, as when a leader is fenced, else a live
    /// eligible replica (R-REPL-6: it holds everything committed).
    fn repair_replica(
        &mut self,
        topic: &str,
        partition: i32,
        damaged: i32,
        (leader_epoch, partition_epoch): (i32, u64),
    ) -> ApplyOutcome {
        let Some(p) = self.partition(topic, partition) else {
            return rejected(
                UNKNOWN_TOPIC_OR_PARTITION,
                format!("no {topic}-{partition}"),
            );
        };
        if p.leader_epoch != leader_epoch {
            return rejected(FENCED_LEADER_EPOCH, "the leader epoch has moved on");
        }
        if p.partition_epoch != partition_epoch {
            return rejected(INVALID_UPDATE_VERSION, "the partition changed since");
        }
        self.step_aside_for_repair(topic, partition, damaged)
    }

    /// See [`MetadataCommand::ElectPreferredLeader`].
    fn elect_preferred(
        &mut self,
        topic: &str,
        partition: i32,
        partition_epoch: u64,
    ) -> ApplyOutcome {
        let live = self.live_brokers();
        let p = match self.partition_mut(topic, partition) {
            Some(p) if p.partition_epoch == partition_epoch => p,
            Some(_) => return rejected(INVALID_UPDATE_VERSION, "the partition changed since"),
            None => {
                return rejected(
                    UNKNOWN_TOPIC_OR_PARTITION,
                    format!("no {topic}-{partition}"),
                )
            }
        };
        match p.preferred_election(&live) {
            Err(refusal) => refusal,
            Ok(preferred) => {
                p.leader = Some(preferred);
                p.leader_epoch += 1;
                p.partition_epoch += 1;
                ApplyOutcome::Done
            }
        }
    }

    /// What `RepairReplica` and a registration naming a short copy do to the
    /// partition, once their own checks passed: the copy leaves the ISR and the
    /// eligible set, and a leader hands over, or leaves the partition offline for
    /// an eligible replica that is not live (it holds what the copy lost), unless
    /// nothing else could lead.
    fn step_aside_for_repair(&mut self, topic: &str, partition: i32, damaged: i32) -> ApplyOutcome {
        let live = self.live_brokers();
        let min_isr = self
            .topics
            .get(topic)
            .map_or(1, |t| self.controller_min_isr(t));
        let Some(p) = self.partition_mut(topic, partition) else {
            return rejected(
                UNKNOWN_TOPIC_OR_PARTITION,
                format!("no {topic}-{partition}"),
            );
        };
        if !p.replicas.contains(&damaged) {
            return rejected(INVALID_REQUEST, format!("{damaged} holds no replica"));
        }
        if p.leader == Some(damaged) {
            if let Some(successor) = p.successor_of(damaged, &live) {
                p.leader = Some(successor);
                p.leader_epoch += 1;
            } else if !p.elect_eligible(damaged, &live) {
                if p.elr.iter().all(|r| *r == damaged) {
                    return rejected(
                        NOT_ENOUGH_REPLICAS,
                        "no other live ISR member or eligible replica to lead",
                    );
                }
                // Eligible replicas hold what this copy lost, none of them live: the
                // partition waits offline for one, as after an unclean restart.
                p.leader = None;
                p.leader_epoch += 1;
            }
        } else if p.isr_without(damaged).is_empty() && p.elr.iter().all(|r| *r == damaged) {
            // An offline partition's last copy it could be led from: cut, nothing
            // could lead it again but an unclean election; kept, it leads on its
            // return and serves what is undamaged, as a sole leader does.
            return rejected(
                NOT_ENOUGH_REPLICAS,
                "the last replica the partition could be led from",
            );
        }
        p.set_isr(p.isr_without(damaged), min_isr, false);
        p.elr.retain(|r| *r != damaged);
        p.drop_stale_unverified();
        p.partition_epoch += 1;
        ApplyOutcome::Done
    }

    /// A broker registered (again): it leads the offline partitions whose ISR it is
    /// in, or which it is eligible to lead while no ISR member is live (R-REPL-6). A new
    /// incarnation of a partition's leader starts a new leader epoch: its
    /// predecessor's unsynced tail is gone, and followers must truncate to it. A new
    /// incarnation of a leader that may have lost acknowledged records (`unclean`)
    /// hands over instead, as Kafka's controller does after an unclean shutdown
    /// (`handleBrokerUncleanShutdown`, KIP-966): to another live ISR member, else to
    /// an eligible replica (R-REPL-5); as an unverified eligible replica it leaves
    /// the eligible set unless nothing else could lead (R-REPL-6). Unlike Kafka's
    /// followers, Chronik's sync what they report, so a follower keeps its ISR place
    /// and its eligibility.
    ///
    /// From command format 10 a partition it leads again sheds the fenced members
    /// its ISR kept while offline: a fence takes a broker out of every ISR, and the
    /// offline partition kept it only until some member could lead (the fenced
    /// leader of an ISR whose other member had not registered yet stayed in it when
    /// that member registered and led; found by `metadata_invariants`).
    fn broker_is_back(&mut self, back: i32, (restarted, unclean): (bool, bool), version: u32) {
        let live = self.live_brokers();
        let fenced = self.fenced_brokers();
        let interval = self.brokers_acking_before_fsync();
        let min_isrs = self.controller_min_isrs();
        for (name, t) in &mut self.topics {
            let min_isr = min_isrs.get(name).copied().unwrap_or(1);
            for p in &mut t.partitions {
                let forgotten = unclean && p.forget_unverified(back);
                let handed_over =
                    unclean && p.hand_over_after_unclean_restart(back, &live, min_isr);
                let leads = p.lead_on_return(back, &live, min_isr, &interval);
                if leads && version >= 10 {
                    let kept: Vec<i32> = p
                        .isr
                        .iter()
                        .copied()
                        .filter(|r| !fenced.contains(r))
                        .collect();
                    if kept.len() < p.isr.len() {
                        p.set_isr(kept, min_isr, true);
                    }
                }
                if forgotten || handed_over || leads {
                    p.partition_epoch += 1;
                } else if p.leader == Some(back) && restarted {
                    p.leader_epoch += 1;
                    p.partition_epoch += 1;
                }
            }
        }
    }

    /// `UnfenceBroker`: the fence is lifted only for the start it fenced, and only
    /// by a request that saw this fence.
    fn unfence(
        &mut self,
        broker_id: i32,
        (incarnation, fenced_at): (u64, u64),
        version: u32,
    ) -> ApplyOutcome {
        let Some(b) = self.brokers.get_mut(&broker_id) else {
            return rejected(INVALID_REQUEST, format!("no broker {broker_id}"));
        };
        if b.incarnation != incarnation || (b.fenced && b.fenced_at != fenced_at) {
            return rejected(
                STALE_BROKER_EPOCH,
                format!(
                    "broker {broker_id} is incarnation {} fenced at index {}, not \
                     incarnation {incarnation} fenced at {fenced_at}",
                    b.incarnation, b.fenced_at
                ),
            );
        }
        if !b.fenced {
            return ApplyOutcome::Done;
        }
        b.fenced = false;
        self.brokers_changed_at = self.applied_index;
        self.broker_is_back(broker_id, (false, false), version);
        ApplyOutcome::Done
    }

    /// Records that an entry without a command (a leader's empty entry, a
    /// configuration change) was applied.
    pub fn mark_applied(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
    }

    /// `version`: the format the command was written in, where its meaning changed.
    fn apply_command(&mut self, command: &MetadataCommand, version: u32) -> ApplyOutcome {
        match command {
            MetadataCommand::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
                incarnation,
                listeners,
                acks_before_fsync,
                short_copies,
            } => {
                // A registration from an earlier start can be applied late (a forward
                // still in flight when the broker died): it never replaces a later one.
                let previous = self.brokers.get(broker_id).map(|b| b.incarnation);
                if let Some(current) = self.brokers.get(broker_id) {
                    if current.incarnation > *incarnation {
                        return rejected(
                            STALE_BROKER_EPOCH,
                            format!(
                                "broker {broker_id} is registered by incarnation {}, not {incarnation}",
                                current.incarnation
                            ),
                        );
                    }
                    // A retry of this start's registration proposed before the fence
                    // (its forward timed out while the entry waited in the log) must
                    // not lift it: the broker may have died since. Only its
                    // `UnfenceBroker` does. Records before version 9 keep their
                    // meaning, so a replay computes what was computed then.
                    let retry = current.incarnation == *incarnation;
                    if retry && current.fenced && version >= 9 {
                        return rejected(
                            STALE_BROKER_EPOCH,
                            format!(
                                "broker {broker_id} incarnation {incarnation} was fenced at \
                                 index {}; a registration does not lift its own fence",
                                current.fenced_at
                            ),
                        );
                    }
                }
                let registered = BrokerInfo {
                    broker_id: *broker_id,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                    incarnation: *incarnation,
                    fenced: false,
                    fenced_at: self.brokers.get(broker_id).map_or(0, |b| b.fenced_at),
                    listeners: listeners.clone(),
                    acks_before_fsync: *acks_before_fsync,
                };
                if self.brokers.get(broker_id) != Some(&registered) {
                    self.brokers_changed_at = self.applied_index;
                }
                self.brokers.insert(*broker_id, registered);
                let restarted = previous.is_some_and(|p| p != *incarnation);
                if restarted {
                    // Before anything else can count on the records they lost: a
                    // retry of this registration, applied again, changes nothing.
                    for copy in short_copies {
                        let _ = self.step_aside_for_repair(&copy.topic, copy.partition, *broker_id);
                    }
                }
                let unclean = restarted && *acks_before_fsync;
                self.broker_is_back(*broker_id, (restarted, unclean), version);
                ApplyOutcome::Done
            }
            MetadataCommand::FenceBroker { broker_id } => {
                let Some(b) = self.brokers.get_mut(broker_id) else {
                    return rejected(INVALID_REQUEST, format!("no broker {broker_id}"));
                };
                if !b.fenced {
                    b.fenced = true;
                    b.fenced_at = self.applied_index;
                    self.brokers_changed_at = self.applied_index;
                }
                self.move_away_from(*broker_id);
                ApplyOutcome::Done
            }
            MetadataCommand::UnfenceBroker {
                broker_id,
                incarnation,
                fenced_at,
            } => self.unfence(*broker_id, (*incarnation, *fenced_at), version),
            MetadataCommand::AlterIsr {
                topic,
                partition,
                leader_epoch,
                isr,
                partition_epoch,
            } => {
                let live: Vec<i32> = self.live_brokers();
                let min_isr = self
                    .topics
                    .get(topic)
                    .map_or(1, |t| self.controller_min_isr(t));
                let Some(p) = self.partition_mut(topic, *partition) else {
                    return rejected(
                        UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no {topic}-{partition}"),
                    );
                };
                if *leader_epoch != p.leader_epoch {
                    return rejected(FENCED_LEADER_EPOCH, "the leader epoch has moved on");
                }
                if partition_epoch.is_some_and(|v| v != p.partition_epoch) {
                    return rejected(
                        INVALID_UPDATE_VERSION,
                        "the partition changed since this ISR was computed",
                    );
                }
                if !p.leader.is_some_and(|l| isr.contains(&l))
                    || isr
                        .iter()
                        .any(|r| !p.replicas.contains(r) || !live.contains(r))
                {
                    return rejected(INVALID_REQUEST, format!("ISR {isr:?} is not valid"));
                }
                if p.isr != *isr {
                    p.set_isr(isr.clone(), min_isr, true);
                    p.partition_epoch += 1;
                }
                ApplyOutcome::Done
            }
            MetadataCommand::ElectPreferredLeader {
                topic,
                partition,
                partition_epoch,
            } => self.elect_preferred(topic, *partition, *partition_epoch),
            MetadataCommand::RepairReplica {
                topic,
                partition,
                broker_id,
                leader_epoch,
                partition_epoch,
            } => self.repair_replica(
                topic,
                *partition,
                *broker_id,
                (*leader_epoch, *partition_epoch),
            ),
            MetadataCommand::CreateTopic {
                name,
                topic_id,
                partitions,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    return rejected(TOPIC_ALREADY_EXISTS, format!("topic {name} already exists"));
                }
                // From 11 on: two creates planned in different views must not both
                // take colliding names.
                if let Some(other) = self.colliding_topic(name).filter(|_| version >= 11) {
                    return rejected(INVALID_TOPIC_EXCEPTION, collision(name, other));
                }
                if partitions.is_empty() || partitions.iter().any(Vec::is_empty) {
                    return rejected(INVALID_PARTITIONS, "every partition needs a replica");
                }
                let partitions = match self.new_partitions(partitions, 0, version) {
                    Ok(partitions) => partitions,
                    Err(refusal) => return refusal,
                };
                self.topics.insert(
                    name.clone(),
                    TopicInfo {
                        topic_id: topic_id.clone(),
                        partitions,
                        configs: configs.clone(),
                    },
                );
                ApplyOutcome::Done
            }
            MetadataCommand::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => {
                    for topics in self.offsets.values_mut() {
                        topics.remove(name);
                    }
                    ApplyOutcome::Done
                }
                None => rejected(UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {name}")),
            },
            MetadataCommand::CreatePartitions {
                topic,
                new_partitions,
            } => {
                let Some(first) = self.topics.get(topic).map(|t| t.partitions.len()) else {
                    return rejected(UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {topic}"));
                };
                if new_partitions.iter().any(Vec::is_empty) {
                    return rejected(INVALID_PARTITIONS, "every partition needs a replica");
                }
                match self.new_partitions(new_partitions, first, version) {
                    Ok(added) => {
                        if let Some(info) = self.topics.get_mut(topic) {
                            info.partitions.extend(added);
                        }
                        ApplyOutcome::Done
                    }
                    Err(refusal) => refusal,
                }
            }
            MetadataCommand::AlterTopicConfigs {
                topic,
                set,
                remove,
                replace,
            } => match self.topics.get_mut(topic) {
                None => rejected(UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {topic}")),
                Some(info) => {
                    if *replace {
                        info.configs.clear();
                    }
                    for key in remove {
                        info.configs.remove(key);
                    }
                    info.configs
                        .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                    self.forget_eligible_at_the_minimum();
                    ApplyOutcome::Done
                }
            },
            MetadataCommand::UpdatePartition {
                topic,
                partition,
                leader,
                leader_epoch,
                isr,
            } => {
                let Some(p) = self.topics.get_mut(topic).and_then(|t| {
                    usize::try_from(*partition)
                        .ok()
                        .and_then(|i| t.partitions.get_mut(i))
                }) else {
                    return rejected(
                        UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no {topic}-{partition}"),
                    );
                };
                if *leader_epoch < p.leader_epoch {
                    return rejected(INVALID_REQUEST, "stale leader epoch");
                }
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
                p.isr = isr.clone();
                p.elr.clear();
                p.unverified.clear();
                p.partition_epoch += 1;
                ApplyOutcome::Done
            }
            MetadataCommand::CommitOffsets {
                group,
                offsets,
                fence,
            } => {
                if let Some(refused) = fence.and_then(|f| self.commit_refusal(group, f)) {
                    return refused;
                }
                if offsets.is_empty() {
                    // A read barrier (`offsets_barrier`) makes no group appear.
                    return ApplyOutcome::Done;
                }
                let topics = self.offsets.entry(group.clone()).or_default();
                for o in offsets {
                    let partitions = topics.entry(o.topic.clone()).or_default();
                    let stored = partitions.get(&o.partition);
                    if stored.is_some_and(|s| superseded(fence.as_ref(), s)) {
                        continue;
                    }
                    let committed = CommittedOffset {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_time_ms: o.commit_time_ms,
                        decided_by: *fence,
                    };
                    partitions.insert(o.partition, committed);
                }
                ApplyOutcome::Done
            }
            MetadataCommand::StoreGroup {
                group,
                coordinator,
                record,
            } => self.store_group(group, *coordinator, record),
            MetadataCommand::StoreConsumerGroup {
                group,
                coordinator,
                record,
            } => self.store_consumer_group(group, *coordinator, record),
            MetadataCommand::DeleteGroupOffsets {
                group,
                partitions: None,
            } => {
                let had_offsets = self.offsets.remove(group).is_some();
                let had_record = self.groups.remove(group).is_some()
                    | self.consumer_groups.remove(group).is_some();
                if !had_offsets && !had_record {
                    return rejected(GROUP_ID_NOT_FOUND, format!("no group {group}"));
                }
                ApplyOutcome::Done
            }
            MetadataCommand::DeleteGroupOffsets {
                group,
                partitions: Some(parts),
            } => {
                let Some(topics) = self.offsets.get_mut(group) else {
                    return rejected(GROUP_ID_NOT_FOUND, format!("no group {group}"));
                };
                for (topic, partition) in parts {
                    if let Some(ps) = topics.get_mut(topic) {
                        ps.remove(partition);
                        if ps.is_empty() {
                            topics.remove(topic);
                        }
                    }
                }
                ApplyOutcome::Done
            }
            MetadataCommand::AllocateProducerId => {
                let id = self.next_producer_id;
                self.next_producer_id += 1;
                ApplyOutcome::ProducerId(id)
            }
            MetadataCommand::UpsertScramCredential { user, credential } => {
                self.scram_credentials
                    .entry(user.clone())
                    .or_default()
                    .insert(credential.mechanism, credential.clone());
                ApplyOutcome::Done
            }
            MetadataCommand::DeleteScramCredential { user, mechanism } => {
                self.delete_scram_credential(user, *mechanism)
            }
            MetadataCommand::CreateAcls { bindings } => {
                if let Some(message) = bindings.iter().find_map(|b| b.validate().err()) {
                    return rejected(INVALID_REQUEST, message);
                }
                self.acls.extend(bindings.iter().cloned());
                ApplyOutcome::Done
            }
            MetadataCommand::DeleteAcls { bindings } => {
                for b in bindings {
                    self.acls.remove(b);
                }
                ApplyOutcome::Done
            }
            MetadataCommand::AlterBrokerConfigs {
                resource,
                set,
                remove,
                replace,
            } => {
                if !super::broker_configs::is_broker_resource(resource) {
                    return rejected(
                        INVALID_REQUEST,
                        format!("{resource:?} is neither a broker id nor the cluster default"),
                    );
                }
                self.alter_broker_configs(resource, set, remove, *replace);
                self.forget_eligible_at_the_minimum();
                ApplyOutcome::Done
            }
        }
    }
}

impl MetadataState {
    fn delete_scram_credential(&mut self, user: &str, mechanism: Mechanism) -> ApplyOutcome {
        let Some(mechanisms) = self.scram_credentials.get_mut(user) else {
            return rejected(
                RESOURCE_NOT_FOUND,
                format!("no credentials for user {user}"),
            );
        };
        if mechanisms.remove(&mechanism).is_none() {
            return rejected(
                RESOURCE_NOT_FOUND,
                format!("no {} credential for user {user}", mechanism.name()),
            );
        }
        if mechanisms.is_empty() {
            self.scram_credentials.remove(user);
        }
        ApplyOutcome::Done
    }
}

impl MetadataState {
    /// A commit whose coordinator (in the start that decided it) was superseded, or
    /// whose classic generation the group's stored record has moved past, is refused
    /// (R-GROUP-10).
    fn commit_refusal(&self, group: &str, fence: CommitFence) -> Option<ApplyOutcome> {
        let moved = fence.view_index < self.brokers_changed_at;
        if moved || !self.coordinates_in_start(group, fence.coordinator, fence.incarnation) {
            return Some(rejected(
                NOT_COORDINATOR,
                format!(
                    "{} (start {}) no longer coordinates {group}",
                    fence.coordinator, fence.incarnation
                ),
            ));
        }
        let stored = self.groups.get(group).map(|g| g.generation);
        match (fence.generation, stored) {
            (Some(committer), Some(stored)) if stored > committer => Some(rejected(
                ILLEGAL_GENERATION,
                format!("{group} has moved on to generation {stored}"),
            )),
            _ => None,
        }
    }

    fn store_group(&mut self, group: &str, coordinator: i32, record: &GroupRecord) -> ApplyOutcome {
        if !self.coordinates(group, coordinator) {
            return rejected(
                NOT_COORDINATOR,
                format!("{coordinator} does not coordinate {group}"),
            );
        }
        if self
            .groups
            .get(group)
            .is_some_and(|stored| stored.generation > record.generation)
        {
            return rejected(
                ILLEGAL_GENERATION,
                format!("{group} has a later generation"),
            );
        }
        self.groups.insert(group.to_string(), record.clone());
        ApplyOutcome::Done
    }

    fn store_consumer_group(
        &mut self,
        group: &str,
        coordinator: i32,
        record: &ConsumerGroupRecord,
    ) -> ApplyOutcome {
        if !self.coordinates(group, coordinator) {
            return rejected(
                NOT_COORDINATOR,
                format!("{coordinator} does not coordinate {group}"),
            );
        }
        if self
            .consumer_groups
            .get(group)
            .is_some_and(|stored| stored.group_epoch > record.group_epoch)
        {
            return rejected(
                ILLEGAL_GENERATION,
                format!("{group} has a later group epoch"),
            );
        }
        self.consumer_groups
            .insert(group.to_string(), record.clone());
        ApplyOutcome::Done
    }
}

fn new_partition(replicas: &[i32], isr: Vec<i32>) -> PartitionInfo {
    PartitionInfo {
        replicas: replicas.to_vec(),
        leader: isr.first().copied(),
        leader_epoch: 0,
        isr,
        elr: Vec::new(),
        unverified: Vec::new(),
        partition_epoch: 0,
    }
}

/// SASL reads credentials straight from the replicated image (R-SEC-3).
impl crate::security::sasl::CredentialStore for MetadataState {
    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism).cloned()
    }
}

/// Kafka's words for a refused colliding name.
pub fn collision(name: &str, existing: &str) -> String {
    format!("Topic '{name}' collides with existing topic: {existing}")
}
