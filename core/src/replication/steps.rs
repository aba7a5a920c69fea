//! The deterministic steps of partition replication, each a function of one broker's
//! applied metadata, its partition logs and a clock value: whether this broker leads,
//! admits a produce, moves the high watermark, serves a follower, acknowledges, and
//! how a follower truncates and applies what it fetched (R-REPL-1..3). The async
//! edges (the Kafka handlers, the replica fetcher, the ISR maintenance task) call
//! these and only add waiting and I/O around them; the conformance replay
//! (conformance/src/replication.rs) calls the same functions, one model action at a
//! time, so what it checks is the code the broker runs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::error::ReplicationError;
use super::partitions::Partitions;
use super::repair::others_may_hold;
use super::tracker::FollowerFetch;
use crate::errors::{self, ErrorCode};
use crate::log::PartitionLog;
use crate::metadata::{BrokerId, MetadataCommand, MetadataState, PartitionInfo};

pub type PartitionKey = (String, i32);

/// One broker's partitions as its applied metadata sees them.
#[derive(Clone, Copy)]
pub struct LocalView<'a> {
    pub state: &'a MetadataState,
    pub partitions: &'a Partitions,
    pub me: i32,
    /// This start of the broker process (R-START-3).
    pub incarnation: u64,
}

impl<'a> LocalView<'a> {
    /// The log of a partition this broker leads, with its metadata; otherwise the error
    /// a client gets: UNKNOWN_TOPIC_OR_PARTITION, or NOT_LEADER_OR_FOLLOWER (R-WIRE-5).
    pub fn led_log(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(Arc<PartitionLog>, &'a PartitionInfo), ErrorCode> {
        let (log, info) = self.hosted_log(topic, partition, |info| {
            self.state.leads(info, self.me, self.incarnation)
        })?;
        // A log truncated for this leader epoch or a later one follows it: the view
        // that names this broker leader is older than the broker (a request's,
        // taken at its start, while the broker learnt the next epoch and truncated
        // for it). Serving or appending under it would act for a deposed leader on
        // a log that now holds its successor's records (R-REPL-3; found by trace
        // validation of real brokers, C-9).
        let followed = self
            .partitions
            .follower_epoch(&(topic.to_string(), partition));
        if followed.is_some_and(|epoch| epoch >= info.leader_epoch) {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        Ok((log, info))
    }

    /// The log of a partition opened here for the view's topic id, if `serves` holds
    /// of its metadata: only the log opened for this view's topic, since one not yet
    /// reopened for a topic created again under the name is not served here yet.
    fn hosted_log(
        &self,
        topic: &str,
        partition: i32,
        serves: impl Fn(&PartitionInfo) -> bool,
    ) -> Result<(Arc<PartitionLog>, &'a PartitionInfo), ErrorCode> {
        let info = self
            .state
            .partition(topic, partition)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let topic_id = self.state.topics.get(topic).map_or("", |t| &t.topic_id);
        match self.partitions.get_of(topic, partition, topic_id) {
            Some(log) if serves(info) => Ok((log, info)),
            None if self
                .partitions
                .stamp_damaged(&(topic.to_string(), partition)) =>
            {
                Err(errors::KAFKA_STORAGE_ERROR)
            }
            _ => Err(errors::NOT_LEADER_OR_FOLLOWER),
        }
    }

    /// The one gate of every per-partition request (R-WIRE-5): this broker leads the
    /// partition (`led_log`), and the request's `current_leader_epoch` (-1: not
    /// checked) is the partition's. Fetch, ListOffsets and OffsetForLeaderEpoch pass
    /// through it.
    pub fn gate(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<(Arc<PartitionLog>, &'a PartitionInfo), ErrorCode> {
        let (log, info) = self.led_log(topic, partition)?;
        Self::current_epoch(current_leader_epoch, log, info)
    }

    /// The gate of a consumer's Fetch at a follower (KIP-392, R-WIRE-17): this broker
    /// holds a replica of the partition, and the request's `current_leader_epoch` is
    /// the partition's. Reads go no further than this replica's high watermark.
    pub fn replica_gate(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<(Arc<PartitionLog>, &'a PartitionInfo), ErrorCode> {
        let (log, info) =
            self.hosted_log(topic, partition, |info| info.replicas.contains(&self.me))?;
        Self::current_epoch(current_leader_epoch, log, info)
    }

    fn current_epoch(
        current_leader_epoch: i32,
        log: Arc<PartitionLog>,
        info: &'a PartitionInfo,
    ) -> Result<(Arc<PartitionLog>, &'a PartitionInfo), ErrorCode> {
        match leader_epoch_error(current_leader_epoch, info.leader_epoch) {
            Some(code) => Err(code),
            None => Ok((log, info)),
        }
    }

    /// The in-sync replica a consumer in `client_rack` should read from instead of
    /// this leader (Kafka's RackAwareReplicaSelector, KIP-392): none when no rack is
    /// named, when this broker is in that rack, or when no live in-sync replica is.
    /// Only an offset below the high watermark is sent away: every in-sync replica
    /// holds those.
    pub fn preferred_read_replica(
        &self,
        info: &PartitionInfo,
        client_rack: &str,
        fetch_offset: u64,
        high_watermark: u64,
    ) -> Option<i32> {
        let rack_of = |id: i32| {
            self.state
                .brokers
                .get(&id)
                .filter(|b| !b.fenced)
                .and_then(|b| b.rack.as_deref())
        };
        if client_rack.is_empty()
            || fetch_offset >= high_watermark
            || rack_of(self.me) == Some(client_rack)
        {
            return None;
        }
        info.isr
            .iter()
            .copied()
            .filter(|r| *r != self.me)
            .find(|r| rack_of(*r) == Some(client_rack))
    }

    /// The leader's answer to OffsetForLeaderEpoch for `asked_epoch`: its largest
    /// epoch at or below it and where that ends here, or `(-1, log start)` when it
    /// holds nothing of that epoch or earlier (KIP-101, KIP-279). A leader whose
    /// recovery cut a tail that may have held acknowledged records answers
    /// KAFKA_STORAGE_ERROR (retriable) while another ISR member may hold them: its
    /// answer would make that member cut them too. Its repair hands leadership over
    /// meanwhile (R-REPL-4).
    pub fn epoch_end(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        asked_epoch: i32,
    ) -> Result<(i32, u64), ErrorCode> {
        let (log, info) = self.gate(topic, partition, current_leader_epoch)?;
        if others_may_hold(info, self.me) && log.lost_tail().is_some() {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        log.resync_if_offline()
            .map_err(|e| errors::from_log_error(&e))?;
        Ok(log
            .end_offset_for_epoch(asked_epoch)
            .unwrap_or((-1, log.log_start_offset())))
    }

    /// [`truncate_for_leader`] only while the applied metadata still names another
    /// broker leader in `epoch`: an OffsetForLeaderEpoch answer arrives after a
    /// round trip, and by then this broker may lead the partition itself (its log
    /// then holds what it acknowledged) or follow a later leader.
    pub fn truncate_for_leader(
        &self,
        key: &PartitionKey,
        epoch: i32,
        log: &PartitionLog,
        end: Option<u64>,
    ) -> Result<Option<u64>, ReplicationError> {
        let current = self
            .state
            .partition(&key.0, key.1)
            .is_some_and(|p| p.leader_epoch == epoch && p.leader != Some(self.me));
        if !current && !self.partitions.bugs().truncate_on_stale_answer {
            return Ok(None);
        }
        truncate_for_leader(self.partitions, key, epoch, log, end)
    }

    /// A topic's configs as this broker enforces them (R-WIRE-16); empty for a topic
    /// it does not know.
    pub fn topic_configs(&self, topic: &str) -> Cow<'a, BTreeMap<String, String>> {
        match self.state.topics.get(topic) {
            Some(t) => self.state.topic_configs_on(t, self.me),
            None => Cow::Owned(BTreeMap::new()),
        }
    }

    /// Where a produce with `acks` may be appended: only the leader takes writes
    /// (R-WIRE-5), and acks=all only while the ISR has `min.insync.replicas` members.
    /// A copy that lost records (damage, a cut tail) takes none while another ISR
    /// member or eligible replica may hold them (R-REPL-4: it hands leadership over to one): its idempotent producer
    /// state lacks the damaged batches, so a retry of one would be appended again
    /// beside the original the others hold (found by the simulator). A sole copy goes
    /// on taking writes: the damaged batches exist nowhere else.
    pub fn admit_produce(
        &self,
        topic: &str,
        partition: i32,
        acks: i16,
    ) -> Result<(Arc<PartitionLog>, &'a PartitionInfo), ErrorCode> {
        let (log, info) = self.led_log(topic, partition)?;
        if acks == -1 && info.isr.len() < min_insync_replicas(self.state, topic, self.me) {
            return Err(errors::NOT_ENOUGH_REPLICAS);
        }
        if others_may_hold(info, self.me) && log.first_lost_offset().is_some() {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        Ok((log, info))
    }

    /// Moves the high watermark of a partition this broker leads to the least durable
    /// log end over its maximal ISR; true if it moved (R-REPL-1).
    pub fn advance_high_watermark(
        &self,
        key: &PartitionKey,
        log: &PartitionLog,
        now_ms: u64,
    ) -> bool {
        let Some(info) = self
            .state
            .partition(&key.0, key.1)
            .filter(|p| self.state.leads(p, self.me, self.incarnation))
        else {
            return false;
        };
        let min_isr = min_insync_replicas(self.state, &key.0, self.me);
        self.partitions
            .advance_high_watermark(key, log, info, (self.me, min_isr), now_ms)
    }

    /// The leader's side of a follower's Fetch from its durable log end: records it
    /// and the follower's log start, moves the high watermark, and returns the offset
    /// up to which the follower is served: what this leader holds durably (R-REPL-1).
    pub fn serve_follower_fetch(
        &self,
        key: &PartitionKey,
        log: &PartitionLog,
        info: &PartitionInfo,
        fetch: FollowerFetch,
        now_ms: u64,
    ) -> FollowerServed {
        let own = log.committable_end();
        let start_moved = self
            .partitions
            .on_follower_fetch(key, info, fetch, own, now_ms);
        let hw_moved = self.advance_high_watermark(key, log, now_ms);
        FollowerServed {
            upper: own,
            wakes_waiters: start_moved || hw_moved,
        }
    }

    /// DeleteRecords on the leader (R-WIRE-5): moves this log's start to the asked
    /// offset (-1: the high watermark; beyond it, OFFSET_OUT_OF_RANGE; a topic whose
    /// `cleanup.policy` lacks `delete`, POLICY_VIOLATION: as Kafka's
    /// `Partition.deleteRecordsOnLeader`). The answer waits for
    /// [`LocalView::deletion_outcome`].
    pub fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        requested: i64,
    ) -> Result<DeletionStarted, ErrorCode> {
        let (log, info) = self.led_log(topic, partition)?;
        let deletes = self
            .topic_configs(topic)
            .get("cleanup.policy")
            .is_none_or(|policy| policy.split(',').any(|p| p.trim() == "delete"));
        if !deletes {
            return Err(errors::POLICY_VIOLATION);
        }
        let target = match requested {
            -1 => log.high_watermark(),
            offset => u64::try_from(offset).map_err(|_| errors::OFFSET_OUT_OF_RANGE)?,
        };
        log.delete_records_before(target)
            .map_err(|e| errors::from_log_error(&e))?;
        let topic_id = self.state.topics.get(topic).map(|t| t.topic_id.clone());
        Ok(DeletionStarted {
            topic_id: topic_id.unwrap_or_default(),
            epoch: info.leader_epoch,
            target,
            log,
        })
    }

    /// Whether a DeleteRecords up to `target`, started under leader `epoch`, may be
    /// answered: once every live replica's log start passed it (Kafka's
    /// `DelayedDeleteRecords` waits for the low watermark), so a follower elected
    /// leader later does not serve the deleted records again. `Ok`: the low
    /// watermark to answer; `Err`: this broker no longer leads in that epoch.
    /// `None`: not yet.
    pub fn deletion_outcome(
        &self,
        key: &PartitionKey,
        deletion: &DeletionStarted,
        now_ms: u64,
    ) -> Option<Result<u64, ErrorCode>> {
        let same_topic = self
            .state
            .topics
            .get(&key.0)
            .is_some_and(|t| t.topic_id == deletion.topic_id);
        let Some(info) = self.state.partition(&key.0, key.1).filter(|p| {
            same_topic
                && self.state.leads(p, self.me, self.incarnation)
                && p.leader_epoch == deletion.epoch
        }) else {
            return Some(Err(errors::NOT_LEADER_OR_FOLLOWER));
        };
        if self.partitions.bugs().delete_acked_at_once {
            return Some(Ok(deletion.log.log_start_offset()));
        }
        let live = self.state.live_brokers();
        let low = self
            .partitions
            .low_watermark(key, &deletion.log, info, &live, now_ms);
        (low >= deletion.target).then_some(Ok(low))
    }

    /// Whether the maximal ISR of a partition this broker leads is smaller than
    /// its `min.insync.replicas` (R-REPL-1).
    pub(super) fn below_min_isr(&self, key: &PartitionKey) -> bool {
        let Some(info) = self.state.partition(&key.0, key.1) else {
            return true;
        };
        let maximal = self.partitions.maximal_isr(key, info).len();
        maximal < min_insync_replicas(self.state, &key.0, self.me)
    }

    /// The leader this broker fetches `p` from now, if any: it holds a replica,
    /// another live broker leads, and the metadata it judges from holds this start's
    /// registration. A restart can replay less than the broker applied before its
    /// crash (a damaged Raft log is cut, R-RECOVER-9); following that older view, a
    /// broker once followed a deposed leader in an epoch older than its own log's,
    /// and that leader counted its fetch to acknowledge a record the real leader had
    /// put another at (swarm seed 109739, I-6). Kafka's brokers likewise act on no
    /// metadata before they have caught up at start-up (R-REPL-3).
    pub fn followed_leader(&self, p: &PartitionInfo) -> Option<BrokerId> {
        let leader = p.leader.filter(|l| *l != self.me)?;
        let leader_live = self.state.brokers.get(&leader).is_some_and(|b| !b.fenced);
        let caught_up = self
            .state
            .brokers
            .get(&self.me)
            .is_some_and(|b| b.incarnation == self.incarnation)
            || self.partitions.bugs().follow_before_registered;
        (p.replicas.contains(&self.me) && leader_live && caught_up).then_some(leader)
    }

    /// The AlterIsr proposal for `isr` on a partition this broker leads, remembered as
    /// pending so that the high watermark counts its members until the partition
    /// epoch moves on (R-REPL-1, R-REPL-2).
    pub fn isr_change(
        &self,
        key: &PartitionKey,
        info: &PartitionInfo,
        isr: Vec<i32>,
    ) -> MetadataCommand {
        self.partitions
            .proposing_isr(key, info.partition_epoch, &isr);
        MetadataCommand::AlterIsr {
            topic: key.0.clone(),
            partition: key.1,
            leader_epoch: info.leader_epoch,
            isr,
            partition_epoch: Some(info.partition_epoch),
        }
    }

    /// A follower applies its leader's answer to a Fetch made under leader `epoch`:
    /// appends the batches that start at its log end (only while the log still
    /// follows that epoch: a late answer from a deposed leader must not land after
    /// the truncation for its successor, R-REPL-3), makes them durable before the
    /// next fetch reports the new log end (R-REPL-1), then takes the leader's high
    /// watermark and log start. An answer reaching a broker that its metadata now
    /// names leader is dropped, as Kafka's fetcher drops a partition on becoming its
    /// leader: it is no follower, and its sync would make its own produces durable
    /// behind the group commit's back (found by the replication conformance replay).
    /// Returns false if the answer was dropped.
    pub fn apply_fetched(
        &self,
        key: &PartitionKey,
        epoch: i32,
        log: &PartitionLog,
        fetched: &Fetched,
        now_ms: u64,
    ) -> Result<bool, ReplicationError> {
        let partition = self.state.partition(&key.0, key.1);
        let leads = partition.is_some_and(|p| p.leader == Some(self.me));
        // Fetched under a leader epoch this broker's metadata has moved past: dropped,
        // as Kafka's fetcher drops a partition's answers once it follows a new epoch.
        // Appended, they changed the log between this follower's OffsetForLeaderEpoch
        // question and its answer, which then cut what the question never named.
        let moved_on = partition.is_some_and(|p| p.leader_epoch > epoch)
            && !self.partitions.appends_late_fetches();
        if leads || moved_on {
            return Ok(false);
        }
        let mut appended = Ok(());
        if let Some(records) = &fetched.records {
            let attempt = self
                .partitions
                .append_as_follower(key, epoch, || append_batches(log, records, now_ms));
            match attempt {
                None => return Ok(false),
                Some(result) => appended = result,
            }
        }
        // What part of the answer was appended is synced even when a later batch
        // failed (a full disk): the next fetch reports this log's end, which the
        // leader counts as held durably (R-REPL-1).
        let synced = log.sync();
        appended?;
        synced?;
        let hw = (fetched.high_watermark.max(0) as u64).min(log.log_end_offset());
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
        }
        // Records the leader deleted (DeleteRecords, retention) go here too, or a
        // failover would bring them back.
        let leader_start = fetched.log_start_offset.max(0) as u64;
        if leader_start > log.log_start_offset() {
            log.delete_records_before(leader_start.min(log.high_watermark()))?;
        }
        Ok(true)
    }

    /// A follower's fetch in leader `epoch` was refused with `code`; the leader's log
    /// starts at `leader_start`. OFFSET_OUT_OF_RANGE while this log ends below that
    /// start: the leader deleted (DeleteRecords, retention) everything this copy
    /// lacks while it was away, so no fetch could ever fill the gap; the log starts
    /// afresh at the leader's start, as Kafka's follower does. Safe: a copy ending
    /// below the leader's log start ends below its high watermark, so no ISR count
    /// rests on it. True if the log started afresh; any other refusal is retried.
    pub fn fetch_refused(
        &self,
        key: &PartitionKey,
        epoch: i32,
        log: &PartitionLog,
        (code, leader_start): (ErrorCode, u64),
    ) -> Result<bool, ReplicationError> {
        let following = self
            .state
            .partition(&key.0, key.1)
            .is_some_and(|p| p.leader != Some(self.me) && p.leader_epoch == epoch);
        let behind = log.log_end_offset() < leader_start;
        if code != errors::OFFSET_OUT_OF_RANGE || !following || !behind {
            return Ok(false);
        }
        let started = self
            .partitions
            .append_as_follower(key, epoch, || log.start_afresh_at(leader_start));
        match started {
            Some(result) => Ok(result.map(|()| true)?),
            None => Ok(false),
        }
    }
}

/// The offset a follower fetches from: its leader counts everything below it as
/// held durably here (R-REPL-1), so it is the durable end. A tail written but not
/// synced (an append or fsync that failed part way) is synced now, or cut if it
/// cannot be (R-LOG-9); if neither works, the durable end is reported and the
/// tail's records are fetched again once the log can take them. Found by the
/// simulator (seed 1196): a follower whose disk filled after one batch of an answer
/// reported the unsynced batch, the leader acknowledged it, the follower crashed
/// without it and was elected leader.
pub fn follower_fetch_offset(log: &PartitionLog) -> u64 {
    if log.durable_end_offset() < log.log_end_offset() && log.sync().is_err() {
        let _ = log.resync_if_offline();
    }
    log.durable_end_offset().min(log.log_end_offset())
}

/// A request's `current_leader_epoch` against the partition's: older is
/// FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH; -1 means "not checked".
pub fn leader_epoch_error(requested: i32, current: i32) -> Option<ErrorCode> {
    if requested < 0 || requested == current {
        None
    } else if requested < current {
        Some(errors::FENCED_LEADER_EPOCH)
    } else {
        Some(errors::UNKNOWN_LEADER_EPOCH)
    }
}

/// `min.insync.replicas` of a topic as broker `me` enforces it: the topic's, else
/// the dynamic broker default (R-WIRE-16), else 1, and never below the minimum the
/// controller keeps replicas eligible by (R-REPL-6): admission, the completion of
/// acks=all and the high watermark's stall all judge by this one number, so a
/// produce the stall would hold is refused NOT_ENOUGH_REPLICAS at once instead.
pub fn min_insync_replicas(state: &MetadataState, topic: &str, me: i32) -> usize {
    let Some(t) = state.topics.get(topic) else {
        return 1;
    };
    let enforced = state
        .topic_configs_on(t, me)
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    enforced.max(state.controller_min_isr(t))
}

/// A follower's log after its leader answered OffsetForLeaderEpoch: cut to `end` (the
/// truncation point, `None`: nothing to cut) and from then on following `epoch`,
/// atomically with respect to [`apply_fetched`] (R-REPL-3). Returns the new log end
/// if it cut anything. A stale answer cuts nothing: one for an epoch the log already
/// follows or follows a later one than, or holds batches of (R-REPL-3); callers first ask
/// [`LocalView::truncate_for_leader`], which also refuses one the metadata no longer
/// asks for.
pub fn truncate_for_leader(
    partitions: &Partitions,
    key: &PartitionKey,
    epoch: i32,
    log: &PartitionLog,
    end: Option<u64>,
) -> Result<Option<u64>, ReplicationError> {
    let stale_too = partitions.bugs().truncate_on_stale_answer;
    let cut = partitions.truncate_for_epoch(key, epoch, || match end {
        Some(end) if end < log.log_end_offset() && stale_too => log.truncate_to(end).map(Some),
        Some(end) if end < log.log_end_offset() => log.truncate_for_epoch(end, epoch),
        _ => Ok(None),
    });
    Ok(cut.unwrap_or(Ok(None))?)
}

/// What a leader's side of a follower's Fetch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerServed {
    /// Serve the follower records below this offset.
    pub upper: u64,
    /// The high watermark or the follower's log start moved: produces and
    /// DeleteRecords waiting on them should look again.
    pub wakes_waiters: bool,
}

/// A DeleteRecords the leader carried out, waiting for its followers.
#[derive(Clone)]
pub struct DeletionStarted {
    pub log: Arc<PartitionLog>,
    /// The topic and leader epoch it was started in (a topic deleted and created
    /// again under its name starts its epochs afresh).
    pub topic_id: String,
    pub epoch: i32,
    /// Every replica's log start must reach this before the answer.
    pub target: u64,
}

/// What a leader's Fetch response holds for one partition.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub records: Option<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// An empty log that starts inside `batch`: its start came from a DeleteRecords
/// offset in the middle of a batch, and the leader answers a fetch from there with
/// the whole batch. The log's segment starts again at the batch's base, as Kafka's
/// follower does on its UnexpectedAppendOffsetException; its log start stays, so the
/// records below it in that batch stay deleted.
fn straddles_empty_start(log: &PartitionLog, batch: &[u8]) -> bool {
    let Ok(header) = crate::log::batch::BatchHeader::parse(batch) else {
        return false;
    };
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let base = header.base_offset.max(0) as u64;
    start >= end && base < end && base + header.offset_count() > end
}

/// Appends each whole batch of a Fetch response that starts at the log end.
fn append_batches(log: &PartitionLog, records: &Bytes, now: u64) -> Result<(), ReplicationError> {
    let short = |_| ReplicationError::MalformedAnswer("short batch");
    let mut at = 0usize;
    while at + 12 <= records.len() {
        let base = i64::from_be_bytes(records[at..at + 8].try_into().map_err(short)?);
        let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().map_err(short)?);
        let negative = |_| ReplicationError::MalformedAnswer("negative batch length");
        let end = at + 12 + usize::try_from(len).map_err(negative)?;
        if end > records.len() {
            break; // a partial batch at the end of a size-limited response
        }
        let batch = &records[at..end];
        if straddles_empty_start(log, batch) {
            log.start_afresh_at(base as u64)?;
        }
        if base >= log.log_end_offset() as i64 {
            log.append_replica(batch, now)?;
        }
        at = end;
    }
    Ok(())
}
