//! The follower side of partition replication: one task per peer broker fetches
//! (Fetch with this broker's id as replica id) every partition that peer leads and
//! this broker follows, appends what it gets with the leader's offsets and epochs,
//! fsyncs it, and only then fetches again, so each fetch offset it reports is its
//! durable log end (R-REPL-1). When the partition's leader epoch changes it first
//! asks the leader where its last epoch ends (OffsetForLeaderEpoch) and truncates to
//! that (R-REPL-3).
//!
//! It fetches with Fetch v13+ (topics named by id, KIP-516) when the leader serves
//! it, as Kafka's replica fetcher does since 3.1: a follower whose metadata still
//! names a deleted topic asks for the old id and is answered UNKNOWN_TOPIC_ID, where
//! a fetch by name would read the records of a topic created again under that name
//! into the old topic's log. A leader that serves only v12 (an older Chronik during
//! a rolling upgrade) is fetched from by name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, OffsetForLeaderEpochRequest, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::shared::{now_ms, Broker};
use crate::cluster::client::KafkaConnection;
use crate::log::PartitionLog;
use chronik_core::errors;
use chronik_core::errors::ErrorCode;
use chronik_core::replication::{
    follower_fetch_offset, truncation_point_for_answer, AnswerRecords, FetchStep, Fetched,
    PartitionKey, RepairStep,
};

/// Kafka 3.9's replica fetcher version; v15+ carry the replica id in `replica_state`.
const FETCH_VERSION: i16 = 17;
/// The first version that names topics by id, and the last that names them by name.
const FIRST_ID_VERSION: i16 = 13;
const LAST_NAME_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 4;
/// How long the leader may hold a fetch with nothing new (its long poll).
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE: Duration = Duration::from_millis(100);
const IDLE_MIN: Duration = Duration::from_millis(10);
/// Between traced fetches that brought nothing (`--replication-trace`).
const TRACED_IDLE: Duration = Duration::from_millis(20);

/// A followed partition: (topic, partition, leader epoch, topic id).
type Followed = (String, i32, i32, String);

/// A connection to a leader, and the Fetch version both sides serve.
struct LeaderConnection {
    address: String,
    conn: KafkaConnection,
    fetch_version: i16,
}

/// Fetches, forever, the partitions `leader` leads and this broker follows.
pub async fn run(broker: Arc<Broker>, leader: i32) {
    let mut connection: Option<LeaderConnection> = None;
    let mut changes = broker.consensus.subscribe();
    loop {
        let view = broker.consensus.view();
        let local = broker.local(&view.state);
        let followed: Vec<Followed> = view
            .state
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| local.followed_leader(p) == Some(leader))
                    .map(move |(i, p)| (name.clone(), i as i32, p.leader_epoch, t.topic_id.clone()))
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
            idle(&mut changes).await;
            continue;
        };
        if connection.as_ref().is_none_or(|c| c.address != address) {
            match connect(&broker, address).await {
                Ok(c) => connection = Some(c),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "replica fetcher cannot reach its leader");
                    idle(&mut changes).await;
                    continue;
                }
            }
        }
        let Some(c) = connection.as_mut() else {
            continue;
        };
        let result = fetch_round(&broker, &mut c.conn, c.fetch_version, &followed).await;
        if let Err(e) = result {
            tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
            connection = None;
            tokio::time::sleep(IDLE).await;
        }
    }
}

/// Waits `IDLE`, or less if the metadata changes: a broker that has just become
/// leader is fetched from at once, and acks=all produces to it wait on this
/// follower's fetch (a failover is otherwise up to `IDLE` longer).
async fn idle(changes: &mut tokio::sync::watch::Receiver<crate::consensus::MetadataView>) {
    // Every applied command changes the metadata (offset commits too): at most one
    // pass per IDLE_MIN however busy it is. A change meanwhile is still pending after.
    tokio::time::sleep(IDLE_MIN).await;
    tokio::select! {
        _ = tokio::time::sleep(IDLE - IDLE_MIN) => {}
        changed = changes.changed() => {
            // The metadata loop has stopped: nothing will change any more.
            if changed.is_err() {
                tokio::time::sleep(IDLE).await;
            }
        }
    }
}

/// Connects to a leader and asks which Fetch versions it serves.
async fn connect(broker: &Broker, address: String) -> Result<LeaderConnection, String> {
    let security = &broker.inter_broker.security;
    let client_id = format!("chronik-replica-{}", broker.config.node_id);
    let mut conn =
        KafkaConnection::connect_with(&address, client_id, CALL_TIMEOUT, security).await?;
    let served = conn.max_version(ApiKey::Fetch, CALL_TIMEOUT).await?;
    let fetch_version = served.map_or(LAST_NAME_VERSION, |v| {
        v.clamp(LAST_NAME_VERSION, FETCH_VERSION)
    });
    tracing::debug!(%address, fetch_version, "replica fetcher connected to its leader");
    Ok(LeaderConnection {
        address,
        conn,
        fetch_version,
    })
}

/// Truncates what needs it, then one Fetch for every followed partition.
async fn fetch_round(
    broker: &Arc<Broker>,
    conn: &mut KafkaConnection,
    fetch_version: i16,
    followed: &[Followed],
) -> Result<(), String> {
    let me = broker.config.node_id;
    let mut logs: Vec<(Followed, Arc<PartitionLog>)> = Vec::new();
    for f in followed {
        // The partition log opens when the metadata assigns it here; one still open
        // for a deleted topic of the same name is not this topic's.
        if let Some(log) = broker.partitions.get_of(&f.0, f.1, &f.3) {
            logs.push((f.clone(), log));
        }
    }
    for ((topic, partition, epoch, _), log) in &logs {
        let key = (topic.clone(), *partition);
        if broker.partitions.follower_epoch(&key) != Some(*epoch) {
            // The question goes out under the view that asks it: traced, that view
            // is shown first (a leader's answer to a follower the trace still shows
            // in the old epoch is no model step).
            if broker.traces(&key) {
                broker.trace_shown();
            }
            let end = leader_end_offset(conn, me, topic, *partition, *epoch, log).await?;
            // The metadata as it is now, after the round trip: this broker may lead
            // the partition by now, and then the answer must cut nothing.
            let view = broker.consensus.view();
            let local = broker.local(&view.state);
            let answered = end.map(|_| FetchStep::EpochAnswered {
                key: key.clone(),
                epoch: *epoch,
            });
            let cut = broker
                .traced_change(
                    &key,
                    || local.truncate_for_leader(&key, *epoch, log, end),
                    |_| answered,
                )
                .map_err(|e| format!("{topic}-{partition}: {e}"))?;
            if let Some(cut) = cut {
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
    // A follower's fetch offset is its durable log end: reading it may first sync
    // or cut a tail a failed append left (`follower_fetch_offset`), so once a round.
    let offsets: Vec<u64> = logs
        .iter()
        .map(|(_, log)| follower_fetch_offset(log))
        .collect();
    let traced_run = broker.replication_trace.is_some();
    let request = fetch_request(me, fetch_version, &logs, &offsets, traced_run);
    let asked = trace_asked(broker, &logs, &offsets);
    let response = match call_fetch(conn, request).await {
        Ok(response) => response,
        Err(e) => {
            if let Some((key, offset)) = asked {
                broker.trace_step(|| FetchStep::Unanswered { key, offset });
            }
            return Err(e);
        }
    };
    let brought = apply_response(broker, response, &logs)?;
    // Traced, the leader answers at once instead of holding the fetch (the model
    // serves a fetch at one moment): an answer with nothing new waits here instead.
    if traced_run && !brought {
        tokio::time::sleep(TRACED_IDLE).await;
    }
    Ok(())
}

/// One Fetch round trip; an answer that is no Fetch answer, or refuses the whole
/// request, is an error like a broken connection: nothing of it is applied.
async fn call_fetch(
    conn: &mut KafkaConnection,
    (request, version): (FetchRequest, i16),
) -> Result<kafka_protocol::messages::FetchResponse, String> {
    let response = conn
        .call(
            ApiKey::Fetch,
            version,
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
    Ok(response)
}

/// The replication trace notes the Fetch about to go to the leader, if it asks for
/// the traced partition: (its key, the fetch offset).
fn trace_asked(
    broker: &Broker,
    logs: &[(Followed, Arc<PartitionLog>)],
    offsets: &[u64],
) -> Option<(PartitionKey, u64)> {
    let (key, offset) = logs
        .iter()
        .zip(offsets)
        .map(|(((topic, partition, _, _), _), offset)| ((topic.clone(), *partition), *offset))
        .find(|(key, _)| broker.traces(key))?;
    broker.trace_step(|| FetchStep::Asked {
        key: key.clone(),
        offset,
    });
    Some((key, offset))
}

/// The version actually used: names when some followed topic has an id that is not a
/// UUID (no Fetch v13+ can name it; the broker never makes such ids, tests do).
fn topic_uuid(topic_id: &str) -> Option<Uuid> {
    Uuid::parse_str(topic_id).ok()
}

/// The Fetch of one round and its version.
fn fetch_request(
    me: i32,
    fetch_version: i16,
    logs: &[(Followed, Arc<PartitionLog>)],
    offsets: &[u64],
    traced: bool,
) -> (FetchRequest, i16) {
    let by_id = fetch_version >= FIRST_ID_VERSION
        && logs
            .iter()
            .all(|((_, _, _, id), _)| topic_uuid(id).is_some());
    let version = if by_id {
        fetch_version
    } else {
        LAST_NAME_VERSION
    };
    let mut topics: BTreeMap<(String, String), Vec<FetchPartition>> = BTreeMap::new();
    for (((topic, partition, epoch, topic_id), log), offset) in logs.iter().zip(offsets) {
        let key = (topic.clone(), topic_id.clone());
        topics.entry(key).or_default().push(
            FetchPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(*epoch)
                .with_fetch_offset(*offset as i64)
                .with_log_start_offset(log.log_start_offset() as i64)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
    }
    let topics = topics
        .into_iter()
        .map(|((name, topic_id), partitions)| {
            let topic = FetchTopic::default().with_partitions(partitions);
            match topic_uuid(&topic_id).filter(|_| by_id) {
                Some(id) => topic.with_topic_id(id),
                None => topic.with_topic(TopicName(StrBytes::from_string(name))),
            }
        })
        .collect();
    let request = FetchRequest::default()
        .with_max_wait_ms(if traced { 0 } else { MAX_WAIT_MS })
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(topics);
    let request = if version >= 15 {
        let state = ReplicaState::default().with_replica_id(BrokerId(me));
        request.with_replica_state(state)
    } else {
        request.with_replica_id(BrokerId(me))
    };
    (request, version)
}

/// Appends what a Fetch answer brought to the logs it was asked for, matched by topic
/// id (v13+) or name; true if it brought records.
fn apply_response(
    broker: &Arc<Broker>,
    response: kafka_protocol::messages::FetchResponse,
    logs: &[(Followed, Arc<PartitionLog>)],
) -> Result<bool, String> {
    let mut brought = false;
    for topic in response.responses {
        let asked = |f: &Followed| {
            f.0 == topic.topic.0.as_str() || topic_uuid(&f.3) == Some(topic.topic_id)
        };
        for p in topic.partitions {
            let Some(((name, _, epoch, _), log)) = logs
                .iter()
                .find(|(f, _)| asked(f) && f.1 == p.partition_index)
            else {
                continue;
            };
            let key = (name.clone(), p.partition_index);
            brought |= p.records.as_ref().is_some_and(|r| !r.is_empty());
            apply_partition(broker, &key, *epoch, log, p)?;
        }
    }
    Ok(brought)
}

/// One partition of a Fetch answer: its records appended, or its refusal acted on.
fn apply_partition(
    broker: &Arc<Broker>,
    key: &PartitionKey,
    epoch: i32,
    log: &PartitionLog,
    p: kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<(), String> {
    let (name, partition) = key;
    let view = broker.consensus.view();
    let local = broker.local(&view.state);
    let refused_at = p.log_start_offset.max(0) as u64;
    // The step as the simulator's hosts report it: an answer with records or a
    // refusal below the leader's log start; other refusals change nothing it tracks.
    let out_of_range = p.error_code == errors::OFFSET_OUT_OF_RANGE.code();
    let answered =
        (broker.traces(key) && (p.error_code == 0 || out_of_range)).then(|| FetchStep::Answered {
            key: key.clone(),
            epoch,
            records: AnswerRecords::of(p.records.as_deref()),
            refused_at: out_of_range.then_some(refused_at),
        });
    let apply = || {
        if p.error_code != 0 {
            tracing::debug!(topic = %name, partition, code = p.error_code, "replica fetch refused");
            let refusal = (ErrorCode::from_wire(p.error_code), refused_at);
            return local.fetch_refused(key, epoch, log, refusal);
        }
        let fetched = Fetched {
            records: p.records,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
        };
        local.apply_fetched(key, epoch, log, &fetched, now_ms())
    };
    let applied = broker.traced_change(key, apply, |_| answered);
    applied
        .map(|_| ())
        .map_err(|e| format!("{name}-{partition}: {e}"))
}

/// Takes this copy's repair step (R-REPL-4); true if the partition is fetched in
/// this round. A damaged copy is not fetched until it has left the ISR and cut its
/// log below the damage: a fetch would count towards the ISR.
fn repair_before_fetch(broker: &Arc<Broker>, followed: &Followed, log: &PartitionLog) -> bool {
    let (topic, partition, _, _) = followed;
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
