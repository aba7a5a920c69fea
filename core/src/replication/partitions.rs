//! The partition logs this broker hosts, opened and closed as the metadata assigns
//! and removes partitions.

use super::bugs::ReplicationBugs;
use super::failure_states::{Change, FailureStates};
use super::stamp::{read_stamp, write_stamp, Stamp, TOPIC_ID_FILE};
use super::tracker::{FollowerFetch, FollowerTracker};
use crate::disk::{create_dir_durably, Disk};
use crate::log::open_files::OpenFiles;
use crate::log::{CommitQueue, Compaction, LogConfig, LogError, PartitionLog, SyncObserver};
use crate::metadata::{CopyRef, MetadataState, PartitionInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub type TopicPartition = (String, i32);

pub struct Partitions {
    disk: Arc<dyn Disk>,
    root: PathBuf,
    /// Where appends queue their fsyncs: the broker's flusher thread, or a committer
    /// whose rounds the simulator runs.
    commits: CommitQueue,
    defaults: LogConfig,
    /// The bound on open sealed segment files, shared by every log (R-LOG-19).
    open_files: Arc<OpenFiles>,
    /// Each log with the id of the topic it was opened for: a name can be deleted and
    /// created again between two reconciliations, and the log of the old topic must
    /// never be served as the new one's.
    logs: RwLock<BTreeMap<TopicPartition, Hosted>>,
    /// On partitions this broker leads: what its followers have (R-REPL-1).
    trackers: Mutex<BTreeMap<TopicPartition, FollowerTracker>>,
    /// ISR changes this leader proposed from the partition's current version: (that
    /// partition epoch, every member any of them names). Any of them may still be
    /// applied, so the high watermark counts the applied ISR plus all of these (the
    /// maximal ISR): the controller may already have committed an expansion, and a
    /// new member may become leader. Once the partition epoch moves on, none of them
    /// can be applied any more (AlterIsr is compare-and-set on it). Remembering only
    /// the latest proposal, or giving up on one after a timeout, lost acknowledged
    /// writes in the replication model (R-REPL-1).
    pending_isr: Mutex<BTreeMap<TopicPartition, PendingIsr>>,
    /// On partitions this broker follows: the leader epoch its log was last
    /// truncated for. Replica fetchers append only under this lock and only for
    /// that epoch, so a late response from a deposed leader can never land after
    /// the truncation for its successor (R-REPL-3).
    follower_epochs: Mutex<BTreeMap<TopicPartition, i32>>,
    /// Partitions whose housekeeping fails (a full disk fails every pass).
    housekeeping_failures: FailureStates<TopicPartition>,
    events: Arc<dyn PartitionEvents>,
    /// Test-only faults (feature `inject-bugs`); none in the broker.
    bugs: ReplicationBugs,
    /// This start removed the directories of deleted topics (`reconcile_in_start`).
    strays_removed: AtomicBool,
    /// Partitions assigned here whose directory's stamp is damaged: kept, not
    /// opened, and refused with KAFKA_STORAGE_ERROR (R-RECOVER-8).
    damaged_stamps: Mutex<BTreeSet<TopicPartition>>,
}

/// What the shell observes of the hosted logs (its metrics). The core counts nothing
/// in a global and reads no clock, so timing an fsync is the shell's.
pub trait PartitionEvents: Send + Sync {
    /// Wraps the fsyncs of appended data of every log opened from now on.
    fn sync_observer(&self) -> Option<SyncObserver> {
        None
    }
    /// One partition's housekeeping pass failed.
    fn housekeeping_failure(&self) {}
    /// How many partitions' housekeeping is failing now.
    fn housekeeping_failing(&self, _partitions: usize) {}
}

/// Observes nothing (the simulator and tests).
pub struct NoEvents;

impl PartitionEvents for NoEvents {}

struct Hosted {
    topic_id: String,
    log: Arc<PartitionLog>,
}

/// (partition epoch, members named by the proposals made from it).
type PendingIsr = (u64, Vec<i32>);

fn dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// What `claim_dir` decided.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// The directory is the topic's: open its log.
    Ours,
    /// Stamped with a topic id the metadata does not hold, which may be a newer
    /// topic's: leave it, and the partition closed, for a later view.
    Later,
    /// The stamp is damaged: whose the directory is cannot be told, so it is
    /// neither removed nor served.
    Damaged,
}

/// Names a partition directory's topic by id: directories are named by topic name,
/// and a kill -9 just after DeleteTopics can leave one behind, which a topic created
/// again under the same name would otherwise serve as its own (issue 12: 400 old
/// records). A directory stamped with another topic's id belongs to a deleted topic
/// and is removed, as the deletion would have done, but only when `complete` (the
/// metadata holds everything this broker applied before): a restarted member that
/// catches up applies an older prefix first, where the name may still be a deleted
/// topic's and the directory the newer topic's (found by the directories model,
/// R-RECOVER-8). An unstamped directory (written before this stamp existed) is adopted.
fn claim_dir(
    disk: &dyn Disk,
    dir: &Path,
    topic_id: &str,
    complete: bool,
    bugs: ReplicationBugs,
) -> Result<Claim, LogError> {
    let stamp =
        read_stamp(disk, dir).map_err(|e| LogError::io("read", &dir.join(TOPIC_ID_FILE), e))?;
    if let Some(stamp) = stamp {
        if stamp.id() == Some(topic_id) || bugs.adopt_foreign_dirs {
            if !matches!(stamp, Stamp::Verified(_)) {
                // A stamp from before checksums: from now on its damage is found.
                write_stamp(disk, dir, topic_id)
                    .map_err(|e| LogError::io("write", &dir.join(TOPIC_ID_FILE), e))?;
            }
            return Ok(Claim::Ours);
        }
        let Some(stored) = stamp.id() else {
            return Ok(Claim::Damaged);
        };
        if !complete && !bugs.claim_from_stale_view {
            tracing::info!(dir = %dir.display(), %stored, topic_id,
                "leaving a partition directory of a topic this metadata does not hold yet");
            return Ok(Claim::Later);
        }
        tracing::warn!(dir = %dir.display(), %stored, topic_id,
            "removing a partition directory left by a deleted topic of the same name");
        disk.remove_dir_all(dir)
            .map_err(|e| LogError::io("remove directory", dir, e))?;
    }
    // `PartitionLog::open` would sync the parent only if it created the directory,
    // which after this it never does.
    create_dir_durably(disk, dir).map_err(|e| LogError::io("create directory", dir, e))?;
    write_stamp(disk, dir, topic_id)
        .map_err(|e| LogError::io("write", &dir.join(TOPIC_ID_FILE), e))?;
    Ok(Claim::Ours)
}

/// Whether the partition directory `name`, stamped with topic id `stamp`, belongs
/// to no topic of `state`. Topic ids are never reused, so a stamp the metadata does
/// not know is a deleted topic's; an unstamped directory (from before stamps), and
/// one whose stamp is damaged, is judged by its topic name: a damaged stamp never
/// makes a live topic's directory look like a deleted one's.
fn is_stray(name: &str, stamp: Option<&Stamp>, state: &MetadataState) -> bool {
    match stamp.and_then(Stamp::id) {
        Some(id) => !state.topics.values().any(|t| t.topic_id == id),
        None => copy_of_dir(name).is_some_and(|copy| !state.topics.contains_key(&copy.topic)),
    }
}

/// The partition a directory name (`dir_name`) stands for, if it is one.
fn copy_of_dir(name: &str) -> Option<CopyRef> {
    let (topic, partition) = name.rsplit_once('-')?;
    let partition = partition.parse::<u32>().ok()?;
    Some(CopyRef {
        topic: topic.to_string(),
        partition: i32::try_from(partition).ok()?,
    })
}

/// Maps Kafka topic configs onto the log's configuration.
pub fn log_config(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> LogConfig {
    let mut c = defaults.clone();
    let num = |k: &str| configs.get(k).and_then(|v| v.parse::<i64>().ok());
    if let Some(v) = num("segment.bytes").filter(|v| *v > 0) {
        c.segment_bytes = v as u64;
    }
    if let Some(v) = num("segment.ms").filter(|v| *v > 0) {
        c.segment_ms = v as u64;
    }
    if let Some(v) = num("retention.ms") {
        c.retention_ms = (v >= 0).then_some(v as u64);
    }
    if let Some(v) = num("retention.bytes") {
        c.retention_bytes = (v >= 0).then_some(v as u64);
    }
    // 0 refuses every batch, as in Kafka; above a frame's limit no batch can arrive.
    if let Some(v) = num("max.message.bytes").filter(|v| *v >= 0) {
        c.max_batch_bytes = (v as usize).min(crate::log::frame::MAX_FRAME_PAYLOAD);
    }
    if let Some(policy) = configs.get("cleanup.policy") {
        let has = |p: &str| policy.split(',').any(|item| item.trim() == p);
        if !has("delete") {
            c.retention_ms = None;
            c.retention_bytes = None;
        }
        c.compaction = has("compact").then(|| compaction(configs));
    }
    // KIP-354: a record must not wait in the active segment, which is never
    // cleaned, longer than max.compaction.lag.ms.
    if let Some(compaction) = c.compaction {
        c.segment_ms = c.segment_ms.min(compaction.max_lag_ms.max(1));
    }
    // Kafka's 0 indexes every batch, which an interval of one byte does too.
    if let Some(v) = num("index.interval.bytes").filter(|v| *v >= 0) {
        c.index_interval_bytes = v.max(1) as u64;
    }
    c
}

/// A compacted topic's cleaner settings; what is absent or unreadable keeps
/// Kafka's default (the catalogue validated the values when they were set).
fn compaction(configs: &BTreeMap<String, String>) -> Compaction {
    let mut c = Compaction::default();
    let ms = |k: &str| {
        configs
            .get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v.max(0) as u64)
    };
    if let Some(ratio) = configs
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
    {
        c.min_dirty_ppm = (ratio * 1_000_000.0).round() as u32;
    }
    c.min_lag_ms = ms("min.compaction.lag.ms").unwrap_or(c.min_lag_ms);
    c.max_lag_ms = ms("max.compaction.lag.ms").unwrap_or(c.max_lag_ms);
    c.delete_retention_ms = ms("delete.retention.ms").unwrap_or(c.delete_retention_ms);
    c
}

impl Partitions {
    /// Logs under `root` whose fsyncs go to `commits`, run by whoever owns it.
    pub fn new(
        disk: Arc<dyn Disk>,
        root: PathBuf,
        defaults: LogConfig,
        events: Arc<dyn PartitionEvents>,
        commits: CommitQueue,
    ) -> Self {
        Partitions {
            disk,
            root,
            commits,
            defaults,
            open_files: OpenFiles::unbounded(),
            logs: RwLock::new(BTreeMap::new()),
            trackers: Mutex::new(BTreeMap::new()),
            pending_isr: Mutex::new(BTreeMap::new()),
            follower_epochs: Mutex::new(BTreeMap::new()),
            housekeeping_failures: FailureStates::default(),
            events,
            bugs: ReplicationBugs::default(),
            strays_removed: AtomicBool::new(false),
            damaged_stamps: Mutex::new(BTreeSet::new()),
        }
    }

    /// The same, with at most `limit` sealed segment files open at once over every
    /// log (R-LOG-19); without it there is no bound, as in Kafka.
    pub fn with_open_file_limit(mut self, limit: usize) -> Self {
        self.open_files = OpenFiles::new(limit);
        self
    }

    /// How many sealed segment files are open now (a metric).
    pub fn open_segment_files(&self) -> usize {
        self.open_files.open_count()
    }

    /// The same, with test-only faults in the replication steps.
    #[cfg(feature = "inject-bugs")]
    pub fn with_bugs(mut self, bugs: ReplicationBugs) -> Self {
        self.bugs = bugs;
        self
    }

    pub fn bugs(&self) -> ReplicationBugs {
        self.bugs
    }

    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), partition))
            .map(|h| Arc::clone(&h.log))
    }

    /// The copies short of records (a damaged range, or a tail recovery cut and
    /// marked), for the registration of this start (R-REPL-4): the open ones, and
    /// those on disk that the replayed metadata does not assign yet. A start replays
    /// only to its durable commit index, which may lie before a partition's creation;
    /// its copy then opens only once the metadata is learnt again, after the
    /// registration, which named it whole and kept it leading or in the ISR (C-9,
    /// swarm seed 1921: a leader's torn tail, marked three starts later).
    pub fn short_copies(&self) -> Result<Vec<CopyRef>, LogError> {
        if self.bugs.register_without_short_copies {
            return Ok(Vec::new());
        }
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        let mut short: Vec<CopyRef> = logs
            .iter()
            .filter(|(_, hosted)| hosted.log.first_lost_offset().is_some())
            .map(|((topic, partition), _)| CopyRef {
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        let opened: BTreeSet<String> = logs.keys().map(|(t, p)| dir_name(t, *p)).collect();
        drop(logs);
        if !self.disk.is_dir(&self.root) {
            return Ok(short);
        }
        let names = self
            .disk
            .list_dir(&self.root)
            .map_err(|e| LogError::io("list", &self.root, e))?;
        for name in names.iter().filter(|n| !opened.contains(*n)) {
            let Some(copy) = copy_of_dir(name) else {
                continue;
            };
            let dir = self.root.join(name);
            if self.disk.is_dir(&dir) && self.unopened_copy_is_short(&dir) {
                short.push(copy);
            }
        }
        Ok(short)
    }

    /// Runs a copy's recovery, as its opening later will, to see whether it lost
    /// records. One that cannot be opened is short too: it serves nothing.
    fn unopened_copy_is_short(&self, dir: &Path) -> bool {
        let opened = PartitionLog::open_sharing(
            Arc::clone(&self.disk),
            dir,
            self.defaults.clone(),
            None,
            Arc::clone(&self.open_files),
        );
        match opened {
            Ok(log) => log.first_lost_offset().is_some(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "a partition copy the replayed metadata does not assign cannot be \
                     opened: registered short of records");
                true
            }
        }
    }

    /// The topic id the partition's open log was opened for (trace validation reads
    /// it, R-RECOVER-8).
    pub fn open_topic_id(&self, topic: &str, partition: i32) -> Option<String> {
        self.logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), partition))
            .map(|h| h.topic_id.clone())
    }

    /// The log of a partition if it was opened for the topic with id `topic_id`. A
    /// caller that judged a request by one metadata view must not serve a log that a
    /// later view opened for another topic of the same name (R-RECOVER-8).
    pub fn get_of(&self, topic: &str, partition: i32, topic_id: &str) -> Option<Arc<PartitionLog>> {
        self.logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), partition))
            .filter(|h| h.topic_id == topic_id)
            .map(|h| Arc::clone(&h.log))
    }

    fn with_tracker<T>(
        &self,
        key: &TopicPartition,
        epoch: i32,
        now_ms: u64,
        f: impl FnOnce(&mut FollowerTracker) -> T,
    ) -> T {
        let mut trackers = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        let tracker = trackers
            .entry(key.clone())
            .or_insert_with(|| FollowerTracker::new(epoch, now_ms));
        if tracker.epoch() != epoch {
            *tracker = FollowerTracker::new(epoch, now_ms);
        }
        f(tracker)
    }

    /// A follower fetched from its durable log end while this leader's metadata
    /// showed the partition as `info`; true if its log start moved on.
    pub fn on_follower_fetch(
        &self,
        key: &TopicPartition,
        info: &PartitionInfo,
        fetch: FollowerFetch,
        leader_end: u64,
        now_ms: u64,
    ) -> bool {
        self.with_tracker(key, info.leader_epoch, now_ms, |t| {
            t.on_fetch(
                fetch.follower,
                fetch.fetch_offset,
                leader_end,
                info.partition_epoch,
                now_ms,
            );
            t.on_log_start(fetch.follower, fetch.log_start)
        })
    }

    /// The least log start over this leader's `log` and the replicas among `live`
    /// (`FollowerTracker::low_watermark`).
    pub fn low_watermark(
        &self,
        key: &TopicPartition,
        log: &PartitionLog,
        info: &PartitionInfo,
        live: &[i32],
        now_ms: u64,
    ) -> u64 {
        let replicas: Vec<i32> = info
            .replicas
            .iter()
            .copied()
            .filter(|r| live.contains(r))
            .collect();
        self.with_tracker(key, info.leader_epoch, now_ms, |t| {
            t.low_watermark(log.log_start_offset(), &replicas, info.leader)
        })
    }

    /// The log end `follower` last reported to this leader in leader epoch `epoch`.
    pub fn follower_end(&self, key: &TopicPartition, epoch: i32, follower: i32) -> Option<u64> {
        let trackers = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        trackers
            .get(key)
            .filter(|t| t.epoch() == epoch)
            .and_then(|t| t.follower_end(follower))
    }

    /// Moves the high watermark of a partition this broker leads to the least
    /// durable log end over its ISR; returns true if it moved (R-REPL-1). It never
    /// moves back, and stands still while the applied ISR is below `min_isr`: the
    /// replicas that left it stay eligible to lead only while they hold every
    /// committed record (R-REPL-6, KIP-966). An expansion still pending does not
    /// count there, as in Kafka's `isUnderMinIsr`: it may be refused, and the
    /// eligible replicas stay.
    pub fn advance_high_watermark(
        &self,
        key: &TopicPartition,
        log: &PartitionLog,
        info: &PartitionInfo,
        (me, min_isr): (i32, usize),
        now_ms: u64,
    ) -> bool {
        if info.leader != Some(me) {
            return false;
        }
        let own = log.committable_end();
        if info.isr.len() < info.effective_min_isr(min_isr) && !self.bugs.hw_below_min_isr {
            return false;
        }
        let isr = self.maximal_isr(key, info);
        let hw = self.with_tracker(key, info.leader_epoch, now_ms, |t| {
            t.high_watermark(own, &isr, me)
        });
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
            return true;
        }
        false
    }

    /// The leader epoch each followed log was truncated for, locked: every append,
    /// truncation and repair cut that depends on it runs under this lock.
    fn followed_epochs(&self) -> std::sync::MutexGuard<'_, BTreeMap<TopicPartition, i32>> {
        // A poisoned lock only means a panicking caller; the map is whole.
        self.follower_epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The leader epoch this follower's log was truncated for, if any.
    pub fn follower_epoch(&self, key: &TopicPartition) -> Option<i32> {
        self.followed_epochs().get(key).copied()
    }

    /// Runs `truncate` and records that the log now follows `epoch`, atomically with
    /// respect to [`Partitions::append_as_follower`].
    /// `None` (and nothing run) if the log already follows this epoch or a later
    /// one: the answer that asked for this truncation is stale. A second answer for
    /// the epoch already followed is a late copy of one acted on (a retried query):
    /// the log has since taken records from that very leader, which its cut would
    /// drop, below the high watermark (found by trace validation, C-9).
    pub fn truncate_for_epoch<T>(
        &self,
        key: &TopicPartition,
        epoch: i32,
        truncate: impl FnOnce() -> T,
    ) -> Option<T> {
        let mut gate = self.followed_epochs();
        let stale = gate.get(key).is_some_and(|followed| *followed >= epoch);
        if stale && !self.bugs.truncate_on_stale_answer {
            return None;
        }
        let out = truncate();
        gate.insert(key.clone(), epoch);
        Some(out)
    }

    /// Runs `cut` (a repair's truncation, R-REPL-4) atomically with respect to
    /// [`Partitions::append_as_follower`], leaving the followed epoch as it is.
    pub fn cut_for_repair<T>(&self, cut: impl FnOnce() -> T) -> T {
        let _gate = self.followed_epochs();
        cut()
    }

    /// Runs `append` (a produce's, as leader of `epoch`) only if the log follows no
    /// epoch at or after it; `None` otherwise. Under the lock `truncate_for_epoch`
    /// takes: a leader deposed while its request was admitted, that truncated for
    /// its successor meanwhile, must not append under its old epoch a record the
    /// successor never has, which would stay in the copy since it has truncated
    /// already (R-REPL-3).
    pub fn append_as_leader<T>(
        &self,
        key: &TopicPartition,
        epoch: i32,
        append: impl FnOnce() -> T,
    ) -> Option<T> {
        let gate = self.followed_epochs();
        let deposed = gate.get(key).is_some_and(|followed| *followed >= epoch);
        (!deposed).then(append)
    }

    /// Runs `append` only if the log still follows `epoch`; `None` otherwise.
    /// The test-only fault that appends fetch answers of an epoch already left.
    pub fn appends_late_fetches(&self) -> bool {
        self.bugs.append_late_fetch
    }

    pub fn append_as_follower<T>(
        &self,
        key: &TopicPartition,
        epoch: i32,
        append: impl FnOnce() -> T,
    ) -> Option<T> {
        let gate = self.followed_epochs();
        (gate.get(key) == Some(&epoch) || self.bugs.append_late_fetch).then(append)
    }

    /// Records an ISR change this leader is proposing from `partition_epoch`.
    pub fn proposing_isr(&self, key: &TopicPartition, partition_epoch: u64, isr: &[i32]) {
        let mut pending = self.pending_isr.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pending
            .entry(key.clone())
            .or_insert_with(|| (partition_epoch, Vec::new()));
        if entry.0 != partition_epoch {
            *entry = (partition_epoch, Vec::new());
        }
        for r in isr {
            if !entry.1.contains(r) {
                entry.1.push(*r);
            }
        }
    }

    /// The applied ISR, plus every member of the proposals that may still be applied.
    pub fn maximal_isr(&self, key: &TopicPartition, info: &PartitionInfo) -> Vec<i32> {
        let mut pending = self.pending_isr.lock().unwrap_or_else(|p| p.into_inner());
        let mut isr = info.isr.clone();
        match pending.get(key) {
            Some((version, proposed)) if *version == info.partition_epoch => {
                isr.extend(proposed.iter().filter(|r| !info.isr.contains(r)));
            }
            Some(_) => {
                pending.remove(key);
            }
            None => {}
        }
        isr
    }

    /// The ISR this leader should propose for a partition, if it should change.
    #[allow(clippy::too_many_arguments)]
    pub fn wanted_isr(
        &self,
        key: &TopicPartition,
        log: &PartitionLog,
        info: &PartitionInfo,
        live: &[i32],
        me: i32,
        now_ms: u64,
        lag_max_ms: u64,
    ) -> Option<Vec<i32>> {
        // A follower must also hold what this leader had when its epoch began: a new
        // leader's high watermark can lag the records already acknowledged (it comes
        // from a checkpoint, or late from the previous leader), and a follower let in
        // below them could become leader without them (found by the replication model).
        let needed = log
            .high_watermark()
            .max(log.epoch_start_offset(info.leader_epoch));
        let wanted = self.with_tracker(key, info.leader_epoch, now_ms, |t| {
            t.wanted_isr(
                (&info.isr, info.partition_epoch),
                &info.replicas,
                live,
                me,
                needed,
                now_ms,
                lag_max_ms,
            )
        })?;
        if !super::repair::holds_isr(log.first_lost_offset(), info, me) {
            return Some(wanted);
        }
        let kept: Vec<i32> = info
            .replicas
            .iter()
            .copied()
            .filter(|r| wanted.contains(r) || info.isr.contains(r))
            .collect();
        (kept.len() != info.isr.len()).then_some(kept)
    }

    pub fn all(&self) -> Vec<(TopicPartition, Arc<PartitionLog>)> {
        self.logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(&v.log)))
            .collect()
    }

    /// Opens the logs of partitions assigned to `broker_id`, applies topic configs,
    /// and deletes the logs of topics that no longer exist; `state` holds everything
    /// this broker applied before (see `reconcile_in_start` for a start's views).
    pub fn reconcile(&self, state: &MetadataState, broker_id: i32) -> Result<(), LogError> {
        self.reconcile_with(state, broker_id, true)
    }

    /// `complete`: whether `state` holds everything this broker applied before, so
    /// that a directory stamped with a topic id it lacks belongs to a deleted topic.
    fn reconcile_with(
        &self,
        state: &MetadataState,
        broker_id: i32,
        complete: bool,
    ) -> Result<(), LogError> {
        let mut wanted = BTreeMap::new();
        let mut topic_ids = BTreeMap::new();
        let mut single_replica = Vec::new();
        for (name, topic) in &state.topics {
            for (i, p) in topic.partitions.iter().enumerate() {
                if p.replicas.contains(&broker_id) {
                    topic_ids.insert((name.clone(), i as i32), topic.topic_id.clone());
                    wanted.insert(
                        (name.clone(), i as i32),
                        log_config(&self.defaults, &state.topic_configs_on(topic, broker_id)),
                    );
                    if p.replicas.len() == 1 {
                        single_replica.push((name.clone(), i as i32));
                    }
                }
            }
        }
        self.damaged_stamps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key| wanted.contains_key(key));
        let mut logs = self.logs.write().unwrap_or_else(|p| p.into_inner());
        // A log opened for another topic id belongs to a deleted topic of the same
        // name, even when the new topic is already wanted here.
        let gone: Vec<TopicPartition> = logs
            .iter()
            .filter(|(k, h)| topic_ids.get(*k) != Some(&h.topic_id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.forget_replication_state(&key);
            if let Some(Hosted { log, .. }) = logs.remove(&key) {
                if let Ok(log) = Arc::try_unwrap(log) {
                    log.delete()?;
                } else {
                    // Still in use by a request: remove the directory anyway; open
                    // handles keep working until dropped.
                    let dir = self.root.join(dir_name(&key.0, key.1));
                    self.disk
                        .remove_dir_all(&dir)
                        .map_err(|e| LogError::io("remove directory", &dir, e))?;
                    // As `delete` does: else a crash brings the directory back.
                    self.disk
                        .sync_dir(&self.root)
                        .map_err(|e| LogError::io("fsync directory", &self.root, e))?;
                }
            }
        }
        for (key, config) in wanted {
            match logs.get(&key) {
                Some(Hosted { log, .. }) => {
                    if log.config() != config {
                        log.set_config(config)?;
                    }
                }
                None => {
                    self.forget_replication_state(&key);
                    let dir = self.root.join(dir_name(&key.0, key.1));
                    let topic_id = topic_ids.get(&key).cloned().unwrap_or_default();
                    match claim_dir(self.disk.as_ref(), &dir, &topic_id, complete, self.bugs)? {
                        Claim::Ours => {}
                        Claim::Later => continue,
                        Claim::Damaged => {
                            self.report_damaged_stamp(&key, &dir, &topic_id);
                            continue;
                        }
                    }
                    let log = PartitionLog::open_sharing(
                        Arc::clone(&self.disk),
                        &dir,
                        config,
                        Some(self.commits.clone()),
                        Arc::clone(&self.open_files),
                    )?;
                    // A single-replica partition's durable log is all committed; a
                    // replicated one keeps its checkpointed high watermark until its
                    // leader says more.
                    if self.bugs.no_hw_restore {
                        log.set_high_watermark(0);
                    } else if single_replica.contains(&key) {
                        log.advance_single_replica_high_watermark();
                    }
                    if let Some(mark) = log.lost_tail().filter(|_| self.bugs.forget_torn_tail) {
                        // A cut at the mark drops it.
                        log.truncate_to(mark)?;
                    }
                    if let Some(observer) = self.events.sync_observer() {
                        log.set_sync_observer(observer);
                    }
                    let log = Arc::new(log);
                    logs.insert(key, Hosted { topic_id, log });
                }
            }
        }
        Ok(())
    }

    /// Keeps `key` offline here, and says so once: its directory's stamp is damaged,
    /// so whether its records are this topic's cannot be told (R-RECOVER-8).
    fn report_damaged_stamp(&self, key: &TopicPartition, dir: &Path, topic_id: &str) {
        let mut damaged = self
            .damaged_stamps
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if damaged.insert(key.clone()) {
            tracing::error!(dir = %dir.display(), topic_id,
                "the topic_id stamp of this partition directory is damaged: the partition \
                 stays offline here and its records are kept; if the directory is this \
                 topic's, write the topic id into the stamp file and restart, else move \
                 the directory aside");
        }
    }

    /// Whether `key` is assigned here but offline for a damaged stamp.
    pub fn stamp_damaged(&self, key: &TopicPartition) -> bool {
        self.damaged_stamps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    /// A partition's log is removed or opened afresh: what was known of its
    /// replication belonged to the old log. Keeping the followed epoch would make a
    /// topic deleted and created again under the same name (whose epochs start at 0
    /// again) look stale to every truncation, and its follower would never append.
    fn forget_replication_state(&self, key: &TopicPartition) {
        self.followed_epochs().remove(key);
        self.trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.pending_isr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// `reconcile`, and once per start, as soon as `state` holds this broker's
    /// registration of start `incarnation`, the removal of the directories of deleted
    /// topics (R-RECOVER-8). Not sooner: a restarted broker replays only to its
    /// durable commit index, and it had applied more before it stopped; a topic
    /// created there looks deleted in the replayed metadata, and its directory would
    /// go with the records in it (found by the simulator, seed 637: a node restarted
    /// at durable commit 13 after applying far beyond it). The registration of this
    /// start is proposed after the restart, so a view that holds it holds everything
    /// this broker applied before; a repaired Raft log's too (R-RECOVER-9). Until
    /// then a directory stamped with a topic id the view lacks is left alone too
    /// (`claim_dir`): it may be a newer topic's.
    pub fn reconcile_in_start(
        &self,
        state: &MetadataState,
        me: i32,
        incarnation: u64,
    ) -> Result<(), LogError> {
        let registered = state
            .brokers
            .get(&me)
            .is_some_and(|b| b.incarnation == incarnation);
        let strays_due = registered || self.bugs.strays_before_registered;
        if strays_due && !self.strays_removed.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.remove_stray_dirs(state) {
                self.strays_removed.store(false, Ordering::Release);
                return Err(e);
            }
        }
        self.reconcile_with(state, me, registered)
    }

    /// Removes the partition directories of topics the metadata no longer has: a
    /// kill -9 between DeleteTopics' commit and the removal of its directories leaves
    /// them behind (R-RECOVER-8). Only from metadata that holds everything this
    /// broker ever applied (`reconcile_in_start`); directories of live topics, of
    /// open logs, and names that are not partition directories, are left alone.
    pub fn remove_stray_dirs(&self, state: &MetadataState) -> Result<Vec<PathBuf>, LogError> {
        if !self.disk.is_dir(&self.root) {
            return Ok(Vec::new());
        }
        let names = self
            .disk
            .list_dir(&self.root)
            .map_err(|e| LogError::io("list", &self.root, e))?;
        let open: Vec<String> = self
            .logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .map(|(topic, partition)| dir_name(topic, *partition))
            .collect();
        let mut removed = Vec::new();
        for name in names {
            let dir = self.root.join(&name);
            if !self.disk.is_dir(&dir) || open.contains(&name) {
                continue;
            }
            let stamp = read_stamp(self.disk.as_ref(), &dir)
                .map_err(|e| LogError::io("read", &dir.join(TOPIC_ID_FILE), e))?;
            if is_stray(&name, stamp.as_ref(), state) {
                tracing::warn!(dir = %dir.display(), topic_id = ?stamp,
                    "removing the partition directory of a deleted topic");
                self.disk
                    .remove_dir_all(&dir)
                    .map_err(|e| LogError::io("remove directory", &dir, e))?;
                removed.push(dir);
            }
        }
        if !removed.is_empty() {
            self.disk
                .sync_dir(&self.root)
                .map_err(|e| LogError::io("fsync directory", &self.root, e))?;
        }
        Ok(removed)
    }

    /// Periodic duties: checkpoints, interval fsyncs, retention. A partition whose
    /// duties fail is logged when it starts failing and when it recovers; every failed
    /// pass is counted.
    pub fn housekeeping(&self, now_ms: u64) {
        let all = self.all();
        for (key, log) in &all {
            let result = log
                .sync_if_due(now_ms)
                .and_then(|_| log.enforce_retention(now_ms))
                .and_then(|_| log.checkpoint());
            if result.is_err() {
                self.events.housekeeping_failure();
            }
            let (topic, partition) = key;
            let change = self.housekeeping_failures.record(key, result.is_err());
            match (change, result) {
                (Some(Change::StartedFailing), Err(e)) => {
                    tracing::error!(%topic, partition, error = %e,
                        "partition housekeeping failing (logged again when it recovers)");
                }
                (Some(Change::Recovered), _) => {
                    tracing::info!(%topic, partition, "partition housekeeping recovered");
                }
                _ => {}
            }
        }
        let failing = self
            .housekeeping_failures
            .retain(|key| all.iter().any(|(k, _)| k == key));
        self.events.housekeeping_failing(failing);
    }

    /// Flushes and closes every log (clean shutdown).
    pub fn close_all(&self) {
        for ((topic, partition), log) in self.all() {
            if let Err(e) = log.close() {
                tracing::error!(%topic, partition, error = %e, "closing partition log failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::read_all;
    use crate::disk::MemDisk;
    use crate::metadata::TopicInfo;
    use crate::replication::stamp::stamp_bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Counts ERROR and INFO events.
    #[derive(Clone, Default)]
    struct LogLines {
        errors: Arc<AtomicUsize>,
        infos: Arc<AtomicUsize>,
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLines {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            match *event.metadata().level() {
                tracing::Level::ERROR => self.errors.fetch_add(1, Ordering::Relaxed),
                tracing::Level::INFO => self.infos.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    }

    fn one_topic(partitions: usize) -> MetadataState {
        let partition = PartitionInfo {
            replicas: vec![1],
            leader: Some(1),
            leader_epoch: 0,
            isr: vec![1],
            elr: Vec::new(),
            unverified: Vec::new(),
            partition_epoch: 0,
        };
        let mut state = MetadataState::default();
        state.topics.insert(
            "t".into(),
            TopicInfo {
                topic_id: "t-id".into(),
                partitions: vec![partition; partitions],
                configs: BTreeMap::new(),
            },
        );
        state
    }

    /// Partitions under /data/logs on `disk`, with no events and a commit queue that
    /// nobody runs (these tests never wait for an fsync).
    fn partitions_on(disk: &MemDisk) -> Partitions {
        Partitions::new(
            Arc::new(disk.clone()),
            PathBuf::from("/data/logs"),
            LogConfig::default(),
            Arc::new(NoEvents),
            crate::log::ManualCommitter::new().queue(),
        )
    }

    #[test]
    fn r_log_18_cleanup_policy_chooses_compaction_retention_or_both() {
        let defaults = LogConfig::default();
        let of = |pairs: &[(&str, &str)]| {
            let configs = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            log_config(&defaults, &configs)
        };
        let compact = of(&[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("max.compaction.lag.ms", "60000"),
            ("delete.retention.ms", "5"),
        ]);
        let c = compact.compaction.expect("compacted");
        assert_eq!(
            (c.min_dirty_ppm, c.max_lag_ms, c.delete_retention_ms),
            (250_000, 60_000, 5)
        );
        assert_eq!(
            compact.retention_ms, None,
            "compact alone keeps every key forever"
        );
        assert_eq!(
            compact.segment_ms, 60_000,
            "KIP-354: the active segment rolls in time"
        );
        let both = of(&[("cleanup.policy", "compact,delete")]);
        assert!(both.compaction.is_some() && both.retention_ms == defaults.retention_ms);
        let delete = of(&[("cleanup.policy", "delete")]);
        assert!(delete.compaction.is_none() && delete.retention_ms == defaults.retention_ms);
    }

    #[test]
    fn r_ops_3_a_full_disk_is_logged_when_it_starts_and_ends_not_every_pass() -> Result<(), LogError>
    {
        let disk = MemDisk::new();
        let partitions = partitions_on(&disk);
        partitions.reconcile(&one_topic(2), 1)?;
        let lines = LogLines::default();
        let subscriber = tracing_subscriber::registry().with(lines.clone());
        tracing::subscriber::with_default(subscriber, || {
            // No file may grow: every checkpoint write fails.
            disk.set_capacity(Some(0));
            for pass in 0..50 {
                partitions.housekeeping(pass * 100);
            }
            assert_eq!(lines.errors.load(Ordering::Relaxed), 2, "one per partition");
            disk.set_capacity(None);
            for pass in 50..60 {
                partitions.housekeeping(pass * 100);
            }
        });
        assert_eq!(lines.errors.load(Ordering::Relaxed), 2);
        assert_eq!(lines.infos.load(Ordering::Relaxed), 2, "one recovery each");
        Ok(())
    }

    #[test]
    fn r_recover_8_only_directories_of_topics_the_metadata_lacks_are_stray() {
        let state = one_topic(1);
        let stamp = |id: &str| Some(Stamp::Verified(id.to_string()));
        assert!(!is_stray("t-0", stamp("t-id").as_ref(), &state));
        // A deleted topic's directory, whatever its name says.
        assert!(is_stray("t-0", stamp("old-id").as_ref(), &state));
        assert!(is_stray("gone-0", stamp("gone-id").as_ref(), &state));
        // A damaged stamp names nobody: judged by the name, as an unstamped one.
        assert!(!is_stray("t-0", Some(&Stamp::Damaged), &state));
        assert!(is_stray("gone-0", Some(&Stamp::Damaged), &state));
        // Unstamped (from before stamps): judged by the topic in its name.
        assert!(!is_stray("t-0", None, &state));
        assert!(is_stray("gone-12", None, &state));
        assert!(is_stray("my-topic-1", None, &state));
        assert!(!is_stray("quarantine", None, &state));
        assert!(!is_stray("t-x", None, &state));
    }

    /// R-RECOVER-8, found by the directories model (`claim-from-stale-view`): a
    /// restarted member catching up applies an older prefix of the metadata, where
    /// `t` is still the deleted topic; the directory stamped with the newer topic's
    /// id stays, closed, until the view holds this start's registration.
    #[test]
    fn r_recover_8_a_catching_up_start_leaves_a_newer_topics_directory(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let disk = MemDisk::new();
        let stamp = Path::new("/data/logs/t-0/topic_id");
        let mut newer = one_topic(1);
        if let Some(t) = newer.topics.get_mut("t") {
            t.topic_id = "t-id-2".into();
        }
        partitions_on(&disk).reconcile(&newer, 1)?;
        let restarted = partitions_on(&disk);
        restarted.reconcile_in_start(&one_topic(1), 1, 2)?;
        assert!(restarted.get("t", 0).is_none(), "opened from a stale view");
        assert_eq!(read_all(&disk, stamp)?, stamp_bytes("t-id-2"));
        newer.brokers.insert(1, registration(2));
        restarted.reconcile_in_start(&newer, 1, 2)?;
        assert!(restarted.get_of("t", 0, "t-id-2").is_some());
        assert_eq!(read_all(&disk, stamp)?, stamp_bytes("t-id-2"));
        Ok(())
    }

    /// R-RECOVER-8: one flipped bit in a live topic's stamp made the broker remove
    /// its directory, every acknowledged record in it, as a deleted topic's at the
    /// next start. A damaged stamp keeps the directory and the partition offline
    /// until the stamp is written again; a stamp from before checksums is adopted
    /// and rewritten with one.
    #[test]
    fn r_recover_8_a_damaged_stamp_keeps_the_directory_and_its_records(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let disk = MemDisk::new();
        let dir = Path::new("/data/logs/t-0");
        let registered = |mut state: MetadataState| {
            state.brokers.insert(1, registration(2));
            state
        };
        let first = partitions_on(&disk);
        first.reconcile(&one_topic(1), 1)?;
        let batch = crate::log::batch::build_simple_batch(3, 10, b'v', 0);
        first
            .get("t", 0)
            .ok_or("not opened")?
            .append(&batch, 0, 0)?;
        first.close_all();
        let stamp = dir.join(TOPIC_ID_FILE);
        let mut bytes = read_all(&disk, &stamp)?;
        bytes[1] ^= 0x02;
        crate::disk::write_atomically(&disk, &stamp, &bytes)?;

        let restarted = partitions_on(&disk);
        restarted.reconcile_in_start(&registered(one_topic(1)), 1, 2)?;
        assert!(disk.is_dir(dir), "the directory went with its records");
        assert!(
            restarted.get("t", 0).is_none(),
            "served a directory nobody vouches for"
        );
        assert!(restarted.stamp_damaged(&("t".into(), 0)));

        crate::disk::write_atomically(&disk, &stamp, b"t-id")?;
        assert_eq!(read_stamp(&disk, dir)?, Some(Stamp::Damaged), "not a UUID");
        let uuid = "0f8e3a52-6f5c-4b3e-9d51-2a7c1e9b4d60";
        crate::disk::write_atomically(&disk, &stamp, uuid.as_bytes())?;
        let mut state = one_topic(1);
        if let Some(t) = state.topics.get_mut("t") {
            t.topic_id = uuid.into();
        }
        let repaired = partitions_on(&disk);
        repaired.reconcile_in_start(&registered(state), 1, 2)?;
        let log = repaired
            .get("t", 0)
            .ok_or("the repaired stamp is not adopted")?;
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(read_all(&disk, &stamp)?, stamp_bytes(uuid));
        Ok(())
    }

    fn registration(incarnation: u64) -> crate::metadata::BrokerInfo {
        crate::metadata::BrokerInfo {
            broker_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation,
            fenced: false,
            fenced_at: 0,
            listeners: Vec::new(),
            acks_before_fsync: false,
        }
    }

    /// The disk operations made through it, in order.
    #[derive(Debug)]
    struct Recording {
        inner: MemDisk,
        ops: Mutex<Vec<String>>,
    }

    impl Recording {
        fn note(&self, op: &str, path: &Path) {
            self.ops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{op} {}", path.display()));
        }
    }

    impl Disk for Recording {
        fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            self.note("mkdir", dir);
            self.inner.create_dir_all(dir)
        }
        fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
            self.inner.list_dir(dir)
        }
        fn is_dir(&self, path: &Path) -> bool {
            self.inner.is_dir(path)
        }
        fn exists(&self, path: &Path) -> bool {
            self.inner.exists(path)
        }
        fn open_file(
            &self,
            path: &Path,
            mode: crate::disk::OpenMode,
        ) -> std::io::Result<Arc<dyn crate::disk::DiskFile>> {
            self.inner.open_file(path, mode)
        }
        fn remove_file(&self, path: &Path) -> std::io::Result<()> {
            self.inner.remove_file(path)
        }
        fn remove_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            self.note("rmdir", dir);
            self.inner.remove_dir_all(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.note("rename", to);
            self.inner.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.note("sync", dir);
            self.inner.sync_dir(dir)
        }
    }

    /// A new partition directory, and one that replaces a deleted topic's, is durable
    /// in the logs directory before its stamp and records are written in it.
    #[test]
    fn r_recover_8_a_claimed_directory_is_durable_in_its_parent_before_it_is_used(
    ) -> Result<(), LogError> {
        let disk = Recording {
            inner: MemDisk::new(),
            ops: Mutex::new(Vec::new()),
        };
        let dir = Path::new("/data/logs/t-0");
        let ops = |disk: &Recording| {
            std::mem::take(&mut *disk.ops.lock().unwrap_or_else(|p| p.into_inner()))
        };
        for (id, first) in [
            ("t-id", "mkdir /data/logs/t-0"),
            ("t-id-2", "rmdir /data/logs/t-0"),
        ] {
            assert_eq!(
                claim_dir(&disk, dir, id, true, ReplicationBugs::default())?,
                Claim::Ours
            );
            let done = ops(&disk);
            let at = |op: &str| done.iter().position(|o| o == op);
            assert_eq!(done.first().map(String::as_str), Some(first), "{done:?}");
            let synced = at("sync /data/logs");
            let stamped = at("rename /data/logs/t-0/topic_id");
            assert!(
                matches!((synced, stamped), (Some(s), Some(w)) if s < w),
                "{done:?}"
            );
        }
        assert!(ops(&disk).is_empty());
        Ok(())
    }

    /// R-RECOVER-8: a topic deleted and created again under the same name between two
    /// reconciliations (a metadata watch can skip the view without it) gets a fresh
    /// log; the old topic's log is neither kept nor served under the new id.
    #[test]
    fn r_recover_8_a_name_recreated_between_reconciliations_gets_a_fresh_log(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let disk = MemDisk::new();
        let partitions = partitions_on(&disk);
        partitions.reconcile(&one_topic(1), 1)?;
        let old = partitions.get_of("t", 0, "t-id").ok_or("no log for t-0")?;
        let mut recreated = one_topic(1);
        if let Some(t) = recreated.topics.get_mut("t") {
            t.topic_id = "t-id-2".into();
        }
        partitions.reconcile(&recreated, 1)?;
        assert!(partitions.get_of("t", 0, "t-id").is_none());
        let new = partitions
            .get_of("t", 0, "t-id-2")
            .ok_or("no log for the new t-0")?;
        assert!(!Arc::ptr_eq(&old, &new), "the old topic's log was kept");
        let stamp = read_all(&disk, Path::new("/data/logs/t-0/topic_id"))?;
        assert_eq!(stamp, stamp_bytes("t-id-2"));
        Ok(())
    }
}
