//! The follower side of partition replication: one task per peer broker fetches
//! (Fetch with this broker's id as replica id) every partition that peer leads and
//! this broker follows, appends what it gets with the leader's offsets and epochs,
//! fsyncs it, and only then fetches again, so each fetch offset it reports is its
//! durable log end (R-REPL-1). When the partition's leader epoch changes it first
//! asks the leader where its last epoch ends (OffsetForLeaderEpoch) and truncates to
//! that (R-REPL-3).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, OffsetForLeaderEpochRequest, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::shared::{now_ms, Broker};
use crate::cluster::client::KafkaConnection;
use crate::log::PartitionLog;
use chronik_core::replication::RepairStep;
use chronik_core::replication::{truncation_point_for_answer, Fetched};

const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 4;
/// How long the leader may hold a fetch with nothing new (its long poll).
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE: Duration = Duration::from_millis(100);

/// A followed partition: (topic, partition, leader epoch).
type Followed = (String, i32, i32);

/// Fetches, forever, the partitions `leader` leads and this broker follows.
pub async fn run(broker: Arc<Broker>, leader: i32) {
    let me = broker.config.node_id;
    let mut connection: Option<(String, KafkaConnection)> = None;
    loop {
        let view = broker.consensus.view();
        let followed: Vec<Followed> = view
            .state
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(move |(_, p)| p.leader == leader && p.replicas.contains(&me))
                    .map(move |(i, p)| (name.clone(), i as i32, p.leader_epoch))
            })
            .collect();
        let address = view
            .state
            .brokers
            .get(&leader)
            .filter(|b| !b.fenced)
            .and_then(|b| b.endpoint(&broker.inter_broker.listener))
            .map(|(host, port)| format!("{host}:{port}"));
        let (Some(address), false) = (address, followed.is_empty()) else {
            connection = None;
            tokio::time::sleep(IDLE).await;
            continue;
        };
        if connection.as_ref().is_none_or(|(a, _)| *a != address) {
            let security = &broker.inter_broker.security;
            let client_id = format!("chronik-replica-{me}");
            match KafkaConnection::connect_with(&address, client_id, CALL_TIMEOUT, security).await {
                Ok(c) => connection = Some((address.clone(), c)),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "replica fetcher cannot reach its leader");
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            }
        }
        let Some((_, conn)) = connection.as_mut() else {
            continue;
        };
        let result = fetch_round(&broker, conn, &followed).await;
        if let Err(e) = result {
            tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
            connection = None;
            tokio::time::sleep(IDLE).await;
        }
    }
}

/// Truncates what needs it, then one Fetch for every followed partition.
async fn fetch_round(
    broker: &Arc<Broker>,
    conn: &mut KafkaConnection,
    followed: &[Followed],
) -> Result<(), String> {
    let me = broker.config.node_id;
    let mut logs: Vec<(Followed, Arc<PartitionLog>)> = Vec::new();
    for f in followed {
        // The partition log opens when the metadata assigns it here.
        if let Some(log) = broker.partitions.get(&f.0, f.1) {
            logs.push((f.clone(), log));
        }
    }
    for ((topic, partition, epoch), log) in &logs {
        let key = (topic.clone(), *partition);
        if broker.partitions.follower_epoch(&key) != Some(*epoch) {
            let end = leader_end_offset(conn, me, topic, *partition, *epoch, log).await?;
            // The metadata as it is now, after the round trip: this broker may lead
            // the partition by now, and then the answer must cut nothing.
            let view = broker.consensus.view();
            let local = broker.local(&view.state);
            if let Some(cut) = local.truncate_for_leader(&key, *epoch, log, end)? {
                tracing::info!(
                    topic,
                    partition,
                    log_end = cut,
                    "follower truncated to its leader's log"
                );
            }
        }
    }
    logs.retain(|(f, log)| repair_before_fetch(broker, f, log));
    if logs.is_empty() {
        tokio::time::sleep(IDLE).await;
        return Ok(());
    }
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic, partition, epoch), log) in &logs {
        topics.entry(topic.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(*epoch)
                .with_fetch_offset(log.log_end_offset() as i64)
                .with_log_start_offset(log.log_start_offset() as i64)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let response = conn
        .call(
            ApiKey::Fetch,
            FETCH_VERSION,
            &RequestKind::Fetch(request),
            CALL_TIMEOUT,
        )
        .await?;
    let ResponseKind::Fetch(response) = response else {
        return Err("not a Fetch response".into());
    };
    if response.error_code != 0 {
        return Err(format!("fetch error {}", response.error_code));
    }
    let now = now_ms();
    for topic in response.responses {
        let name = topic.topic.0.to_string();
        for p in topic.partitions {
            let key = (name.clone(), p.partition_index);
            let Some(((_, _, epoch), log)) = logs
                .iter()
                .find(|(f, _)| f.0 == name && f.1 == p.partition_index)
            else {
                continue;
            };
            if p.error_code != 0 {
                tracing::debug!(topic = %name, partition = p.partition_index, code = p.error_code,
                    "replica fetch refused");
                continue;
            }
            let fetched = Fetched {
                records: p.records,
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
            };
            let view = broker.consensus.view();
            broker
                .local(&view.state)
                .apply_fetched(&key, *epoch, log, &fetched, now)
                .map_err(|e| format!("{name}-{}: {e}", p.partition_index))?;
        }
    }
    Ok(())
}

/// Takes this copy's repair step (R-REPL-4); true if the partition is fetched in
/// this round. A damaged copy is not fetched until it has left the ISR and cut its
/// log below the damage: a fetch would count towards the ISR.
fn repair_before_fetch(broker: &Arc<Broker>, followed: &Followed, log: &PartitionLog) -> bool {
    let (topic, partition, _) = followed;
    let key = (topic.clone(), *partition);
    let view = broker.consensus.view();
    let Some(info) = view.state.partition(topic, *partition) else {
        return false;
    };
    let me = broker.config.node_id;
    match broker
        .repairs
        .next_step(&key, info, me, log.first_lost_offset(), now_ms())
    {
        RepairStep::Healthy => true,
        RepairStep::Wait => false,
        RepairStep::Propose(command) => {
            super::propose_repair(broker, key, command);
            false
        }
        RepairStep::Cut(from) => {
            match broker.partitions.cut_for_repair(|| log.truncate_to(from)) {
                Ok(end) => {
                    tracing::warn!(topic, partition, log_end = end,
                    "damaged copy cut below its damage; fetching the records back from the leader");
                    broker.repairs.cut_done(&key);
                    true
                }
                Err(e) => {
                    tracing::error!(topic, partition, error = %e, "cutting a damaged copy failed");
                    false
                }
            }
        }
    }
}

/// Asks the leader where this log's last epoch ends in the leader's log: the offset
/// to truncate to (`None`: nothing to truncate).
async fn leader_end_offset(
    conn: &mut KafkaConnection,
    me: i32,
    topic: &str,
    partition: i32,
    current_epoch: i32,
    log: &PartitionLog,
) -> Result<Option<u64>, String> {
    let Some(last_epoch) = log.last_leader_epoch() else {
        return Ok(None);
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(me))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_epoch)
                .with_leader_epoch(last_epoch)])]);
    let response = conn
        .call(
            ApiKey::OffsetForLeaderEpoch,
            EPOCH_VERSION,
            &RequestKind::OffsetForLeaderEpoch(request),
            CALL_TIMEOUT,
        )
        .await?;
    let ResponseKind::OffsetForLeaderEpoch(response) = response else {
        return Err("not an OffsetForLeaderEpoch response".into());
    };
    let Some(r) = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition == partition)
    else {
        return Err("OffsetForLeaderEpoch answered another partition".into());
    };
    if r.error_code != 0 {
        return Err(format!("OffsetForLeaderEpoch error {}", r.error_code));
    }
    Ok(Some(truncation_point_for_answer(
        log,
        r.leader_epoch,
        r.end_offset,
    )))
}
