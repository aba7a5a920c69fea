//! The log of one partition: a directory of segments, the checkpoint, and the
//! append, read, recovery and retention paths over them.

use super::batch::{self, BatchHeader};
use super::checkpoint::{self, Checkpoint, DurablePoint};
use super::coalesce::SyncCoalescer;
use super::commit::{CommitQueue, SyncTarget};
use super::config::{FsyncPolicy, LogConfig};
use super::damage::{self, Damage};
use super::error::{LogError, Result};
use super::frame::{self, FRAME_HEADER_LEN};
use super::frame_reader::{FrameReader, Stop, SCAN_BLOCK};
use super::open_files::OpenFiles;
use super::segment::{self, Segment};
use crate::disk::{Disk, DiskFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

mod clean;
pub use clean::CleanOutcome;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    pub append_time_ms: u64,
    /// The log end offset right after this append.
    pub log_end_offset: u64,
}

/// Whole batches read from the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Concatenated RecordBatch v2 bytes, as a Fetch response carries them.
    pub records: Vec<u8>,
    pub batch_count: usize,
    /// The offset after the last batch returned (the read's start if none).
    pub next_offset: u64,
}

/// A log's offsets at one moment (`PartitionLog::positions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPositions {
    pub start: u64,
    pub end: u64,
    pub durable: u64,
    pub high_watermark: u64,
    pub cut_count: u64,
}

/// How much one read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    pub max_bytes: usize,
    /// Batches ending at or beyond this offset are not returned.
    pub upper_bound: u64,
    /// Return the first batch even when it alone is larger than `max_bytes`.
    pub first_batch_whole: bool,
}

/// The log of one partition. Cheap to share: all methods take `&self`.
pub struct PartitionLog {
    shared: Arc<LogShared>,
}

struct LogShared {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    commits: Option<CommitQueue>,
    state: Mutex<LogState>,
    coalescer: SyncCoalescer,
    /// Successful fdatasyncs of this log's data, for metrics and benches.
    syncs: AtomicU64,
    /// Told how long each fdatasync took (the broker's latency histogram).
    sync_observer: RwLock<Option<SyncObserver>>,
    /// Test-only fault for the conformance oracle: count appends durable before fsync.
    ack_before_fsync: std::sync::atomic::AtomicBool,
    /// The broker-wide bound on open sealed segment files (R-LOG-19).
    files: Arc<OpenFiles>,
}

/// Wraps every fdatasync of appended data (it is handed the sync to run), so the
/// shell can time it: the core reads no clock.
pub type SyncObserver =
    Arc<dyn Fn(&mut dyn FnMut() -> std::io::Result<()>) -> std::io::Result<()> + Send + Sync>;

struct LogState {
    config: LogConfig,
    segments: BTreeMap<u64, Segment>,
    log_start: u64,
    high_watermark: u64,
    /// Every offset below this is on disk and fsynced.
    durable_end: u64,
    /// (base offset, size) of the active segment as of its last successful sync.
    durable_position: (u64, u64),
    /// Set when an fsync failed: what was written since the last good sync may be
    /// lost, so nothing is appended until the tail has been cut back and resynced.
    offline: bool,
    /// Bumped by every failed fsync: a write from an earlier epoch can no longer
    /// become durable, even if its offset is reused and synced later.
    failure_epoch: u64,
    last_checkpoint: Option<Checkpoint>,
    /// Recovery cut a tail from here that may have held acknowledged records
    /// (`Checkpoint::lost_from`, R-REPL-4).
    lost_tail: Option<u64>,
    /// When the interval policy last synced this log (the caller's clock).
    last_interval_sync_ms: Option<u64>,
    producers: super::producers::ProducerStates,
    /// (leader epoch, first offset) of every leader epoch in the log, in order; kept
    /// in `leader-epoch-checkpoint` so a follower can be told where its log and the
    /// leader's part (R-LOG-12).
    epochs: Vec<(i32, u64)>,
    /// `epochs` changed since it was last written: it is written with the next
    /// checkpoint or segment roll, not on the append path; recovery finds the
    /// active segment's epochs by its scan.
    epochs_dirty: bool,
    /// Where the last cleaning pass left off (R-LOG-18).
    clean_point: super::cleaner::CleanPoint,
}

impl LogState {
    fn active(&self) -> Result<&Segment> {
        self.segments
            .values()
            .next_back()
            .ok_or_else(|| LogError::Config("log has no segment".into()))
    }

    fn active_mut(&mut self) -> Result<&mut Segment> {
        self.segments
            .values_mut()
            .next_back()
            .ok_or_else(|| LogError::Config("log has no segment".into()))
    }

    fn log_end(&self) -> u64 {
        self.segments
            .values()
            .next_back()
            .map_or(self.log_start, |s| s.next_offset)
    }

    fn out_of_range(&self, offset: u64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start: self.log_start,
            log_end: self.log_end(),
        }
    }
}

/// A read's view of one segment, taken under the lock and used without it.
struct SegmentView {
    base_offset: u64,
    path: PathBuf,
    file: Arc<dyn DiskFile>,
    /// Where to start reading, and the offset of the batch there.
    start_position: u64,
    start_offset: u64,
    end_position: u64,
    next_offset: u64,
    damage: Vec<Damage>,
}

impl SegmentView {
    fn is_known_damage(&self, position: u64) -> bool {
        self.damage.iter().any(|d| d.position == position)
    }

    fn of(seg: &Segment, relative: u32, file: Arc<dyn DiskFile>) -> Self {
        let (rel, position) = seg.offset_index.entry_for(relative);
        SegmentView {
            base_offset: seg.base_offset,
            path: seg.path.clone(),
            file,
            start_position: u64::from(position),
            start_offset: seg.base_offset + u64::from(rel),
            end_position: seg.size,
            next_offset: seg.next_offset,
            damage: seg.damage.clone(),
        }
    }

    /// The same segment read from its first byte (when an index entry misled).
    fn rewound(&self) -> Self {
        SegmentView {
            base_offset: self.base_offset,
            path: self.path.clone(),
            file: Arc::clone(&self.file),
            start_position: 0,
            start_offset: self.base_offset,
            end_position: self.end_position,
            next_offset: self.next_offset,
            damage: self.damage.clone(),
        }
    }
}

/// What [`PartitionLog::find_batch`] found.
enum Found {
    Batch(Vec<u8>, BatchHeader),
    /// A batch reaching the caller's upper bound came first.
    Beyond,
    End,
    /// Bad bytes at a position, where a batch of the offset was expected.
    Bad(u64, u64, String),
}

/// How a walk over the frames of a segment view ended.
enum Walk {
    /// The read is complete.
    Complete,
    /// The segment's bytes ended; `reached` is the offset after the last batch.
    End { reached: u64 },
    /// The bytes at `position` are not the valid batch of offset `expected`.
    Bad {
        position: u64,
        expected: u64,
        reason: String,
    },
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir` (R-LOG-5). With the `Always`
    /// policy, appends are grouped through `commits` if given, or each synced on
    /// its own otherwise.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        commits: Option<CommitQueue>,
    ) -> Result<Self> {
        Self::open_sharing(disk, dir, config, commits, OpenFiles::unbounded())
    }

    /// [`PartitionLog::open`], with its sealed segments' files counted in the
    /// broker-wide bound `files` (R-LOG-19).
    pub fn open_sharing(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        commits: Option<CommitQueue>,
        files: Arc<OpenFiles>,
    ) -> Result<Self> {
        config.validate()?;
        crate::disk::create_dir_durably(disk.as_ref(), dir)
            .map_err(|e| LogError::io("create directory", dir, e))?;
        let names = disk
            .list_dir(dir)
            .map_err(|e| LogError::io("list", dir, e))?;
        for name in names.iter().filter(|n| n.ends_with(".tmp")) {
            let path = dir.join(name);
            disk.remove_file(&path)
                .map_err(|e| LogError::io("remove", &path, e))?;
        }
        let names = match clean::recover_cleaning(disk.as_ref(), dir, &names)? {
            true => disk
                .list_dir(dir)
                .map_err(|e| LogError::io("list", dir, e))?,
            false => names,
        };
        let mut bases: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_base_offset(n))
            .collect();
        bases.sort_unstable();
        let mut checkpoint = checkpoint::read(disk.as_ref(), dir)?;

        let mut segments = BTreeMap::new();
        match bases.split_last() {
            None => {
                let base = checkpoint.map_or(0, |c| c.log_start_offset);
                segments.insert(base, Segment::create(disk.as_ref(), dir, base)?);
                disk.sync_dir(dir)
                    .map_err(|e| LogError::io("fsync directory", dir, e))?;
            }
            Some((&last, sealed)) => {
                for (i, &base) in sealed.iter().enumerate() {
                    let next = bases[i + 1];
                    let seg = Segment::open_sealed(
                        disk.as_ref(),
                        dir,
                        base,
                        next,
                        config.index_interval_bytes,
                    )?;
                    segments.insert(base, seg);
                }
                // Only a durable point recorded for this very segment says anything
                // about its bytes; without one every bad tail may be torn.
                let durable = checkpoint
                    .and_then(|c| c.durable)
                    .filter(|d| d.segment_base == last)
                    .map(|d| (d.bytes, d.end_offset));
                let first_base = bases[0];
                let active = Segment::open_active(
                    disk.as_ref(),
                    dir,
                    last,
                    config.index_interval_bytes,
                    durable,
                    |cut_from| {
                        let marked = mark_lost_tail(checkpoint, first_base, cut_from);
                        checkpoint::write(disk.as_ref(), dir, &marked)?;
                        checkpoint = Some(marked);
                        Ok(())
                    },
                )?;
                // What recovery kept is what the log now acknowledges: make it durable
                // even if the previous process died before its own fsync.
                active
                    .handle()?
                    .sync_data()
                    .map_err(|e| LogError::io("fsync", &active.path, e))?;
                segments.insert(last, active);
            }
        }

        let mut state = LogState {
            config,
            segments,
            log_start: 0,
            high_watermark: 0,
            durable_end: 0,
            durable_position: (0, 0),
            offline: false,
            failure_epoch: 0,
            last_checkpoint: checkpoint,
            lost_tail: checkpoint.and_then(|c| c.lost_from),
            last_interval_sync_ms: None,
            producers: Default::default(),
            epochs: read_epochs(disk.as_ref(), dir)?,
            epochs_dirty: false,
            clean_point: super::cleaner::read_clean_point(disk.as_ref(), dir),
        };
        for seg in state.segments.values() {
            state.producers.merge(&seg.scanned_producers);
        }
        // The checkpoint may lack the epochs of the active segment (written after it)
        // and may name epochs past a cut tail.
        let log_end_now = state.log_end();
        state.epochs.retain(|(_, start)| *start < log_end_now);
        if let Some(active) = state.segments.values().next_back() {
            for &(epoch, start) in &active.scanned_epochs {
                if state.epochs.last().is_none_or(|(e, _)| epoch > *e) {
                    state.epochs.push((epoch, start));
                }
            }
        }
        let first_base = state.segments.keys().next().copied().unwrap_or(0);
        let log_end = state.log_end();
        let (start, hw) =
            checkpoint.map_or((first_base, 0), |c| (c.log_start_offset, c.high_watermark));
        state.log_start = start.clamp(first_base, log_end);
        state.high_watermark = hw.clamp(state.log_start, log_end);
        state.durable_end = log_end;
        let active = state.active()?;
        let active_base = active.base_offset;
        state.durable_position = (active.base_offset, active.size);

        let log = PartitionLog {
            shared: Arc::new(LogShared {
                disk,
                dir: dir.to_path_buf(),
                commits,
                state: Mutex::new(state),
                coalescer: SyncCoalescer::new(),
                syncs: AtomicU64::new(0),
                sync_observer: RwLock::new(None),
                ack_before_fsync: std::sync::atomic::AtomicBool::new(false),
                files,
            }),
        };
        {
            let st = log.lock();
            for seg in st.segments.range(..active_base) {
                log.shared.files.opened(&seg.1.file);
            }
        }
        // A crash between moving the log start and deleting segments leaves
        // segments wholly below it: finish that deletion now.
        log.delete_segments_below_start()?;
        Ok(log)
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.shared.lock()
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    /// Changes the log's configuration; it applies from the next append.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.lock().config = config;
        Ok(())
    }

    pub fn log_start_offset(&self) -> u64 {
        self.lock().log_start
    }

    /// The log's offsets read at one moment: a trace of a broker whose tasks append,
    /// sync and truncate concurrently never shows a durable end past the log end.
    pub fn positions(&self) -> LogPositions {
        let st = self.lock();
        LogPositions {
            start: st.log_start,
            end: st.log_end(),
            durable: st.durable_end,
            high_watermark: st.high_watermark,
            cut_count: st.failure_epoch,
        }
    }

    pub fn log_end_offset(&self) -> u64 {
        self.lock().log_end()
    }

    /// Every offset below this is fsynced.
    pub fn durable_end_offset(&self) -> u64 {
        self.lock().durable_end
    }

    pub fn high_watermark(&self) -> u64 {
        self.lock().high_watermark
    }

    /// Sets the high watermark, clamped to [log start, log end]. Persisted by the
    /// next [`PartitionLog::checkpoint`].
    pub fn set_high_watermark(&self, hw: u64) {
        let mut st = self.lock();
        let end = st.log_end();
        st.high_watermark = hw.clamp(st.log_start, end);
    }

    /// The high watermark a single-replica partition may expose: its committable end.
    pub fn advance_single_replica_high_watermark(&self) {
        self.set_high_watermark(self.committable_end());
    }

    /// What of this log its leader may count as its own towards the high watermark:
    /// everything durable (or, under the weaker interval and never policies,
    /// everything written).
    pub fn committable_end(&self) -> u64 {
        if self.config().fsync.acks_before_fsync()
            || self.shared.ack_before_fsync.load(Ordering::Relaxed)
        {
            self.log_end_offset()
        } else {
            self.durable_end_offset()
        }
    }

    /// Test-only fault for the conformance oracle: the log takes what it wrote for
    /// durable, before any fsync: `append_then` answers at once, and what a leader
    /// counts towards the high watermark and acks=1 wait for is its whole log.
    #[cfg(feature = "inject-bugs")]
    pub fn inject_ack_before_fsync(&self) {
        self.shared.ack_before_fsync.store(true, Ordering::Relaxed);
    }

    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size).sum()
    }

    pub fn set_sync_observer(&self, observer: SyncObserver) {
        *self
            .shared
            .sync_observer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    /// How many fdatasyncs of appended data succeeded since the log was opened.
    pub fn sync_count(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Appends one RecordBatch v2, assigning its offsets, and returns once it is as
    /// durable as the log's policy asks (R-LOG-1, R-LOG-4).
    pub fn append(&self, batch: &[u8], now_ms: u64, leader_epoch: i32) -> Result<AppendInfo> {
        let (info, epoch) = self.write(batch, now_ms, leader_epoch)?;
        if self.needs_sync_before_ack() {
            let shared = &self.shared;
            shared.coalescer.wait_durable(
                || {
                    let st = shared.lock();
                    if st.failure_epoch != epoch {
                        return Err(LogError::Offline {
                            dir: shared.dir.clone(),
                        });
                    }
                    Ok(st.durable_end >= info.log_end_offset)
                },
                || shared.sync(),
            )?;
        }
        Ok(info)
    }

    /// Appends a batch replicated from the partition leader, keeping its offsets and
    /// leader epoch; not synced (the replica fetcher syncs before it reports its log
    /// end to the leader).
    pub fn append_replica(&self, batch: &[u8], now_ms: u64) -> Result<AppendInfo> {
        self.write_as(batch, now_ms, None).map(|(info, _)| info)
    }

    /// The first recorded leader epoch and the offset where it begins, if any.
    pub fn earliest_epoch(&self) -> Option<(i32, u64)> {
        self.lock().epochs.first().copied()
    }

    /// The leader epoch of the last batch, if any.
    pub fn last_leader_epoch(&self) -> Option<i32> {
        self.lock().epochs.last().map(|(e, _)| *e)
    }

    /// The leader epoch of the batch holding `offset` as the epoch cache records it
    /// (0 before the first recorded epoch).
    pub fn leader_epoch_at(&self, offset: u64) -> i32 {
        let st = self.lock();
        st.epochs
            .iter()
            .rev()
            .find(|(_, start)| *start <= offset)
            .map_or(0, |(e, _)| *e)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` that this log holds,
    /// and the offset where it ends (the next epoch's first offset, or the log end).
    /// `None` if the log holds no batch of an epoch at or below `epoch`.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        let st = self.lock();
        let i = st.epochs.iter().rposition(|(e, _)| *e <= epoch)?;
        let end = st
            .epochs
            .get(i + 1)
            .map_or_else(|| st.log_end(), |(_, start)| *start);
        Some((st.epochs[i].0, end))
    }

    /// Moves on at every cut (a truncation, a fresh start, a failed append's or a
    /// failed fsync's): offsets read before a move may hold other records since,
    /// even where the log ends where it did.
    pub fn cut_count(&self) -> u64 {
        self.lock().failure_epoch
    }

    /// If a failed fsync left the log offline, cuts the tail it cannot vouch for and
    /// resyncs now, rather than at the next append: the log end this log reports to
    /// others (OffsetForLeaderEpoch) must not include bytes it will cut later, or a
    /// follower keeps records there that this log then replaces (found by the
    /// simulator: a follower whose fsync failed became leader and answered with its
    /// unsynced end).
    pub fn resync_if_offline(&self) -> Result<()> {
        let mut st = self.lock();
        if st.offline {
            self.shared.resync_after_failure(&mut st)?;
        }
        Ok(())
    }

    /// Where this log ended when its leader began `epoch`: the first offset of a batch
    /// of that epoch or later, or the log end if there is none.
    pub fn epoch_start_offset(&self, epoch: i32) -> u64 {
        let st = self.lock();
        st.epochs
            .iter()
            .find(|(e, _)| *e >= epoch)
            .map_or_else(|| st.log_end(), |(_, start)| *start)
    }

    /// Cuts the log back to the last batch boundary at or below `offset` (a follower
    /// dropping what its new leader does not have). Returns the new log end.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        let mut st = self.lock();
        self.truncate_locked(&mut st, offset)
    }

    /// [`PartitionLog::truncate_to`] for a follower of leader epoch `epoch`, refused
    /// (`None`) if the log already holds a batch of a later epoch: it has led or
    /// followed a later leader since, and an answer about `epoch` is stale. The check
    /// and the cut are one critical section, so no append of a later epoch can slip
    /// in between (found by the simulator: a late OffsetForLeaderEpoch answer made a
    /// leader cut records it had acknowledged in its own, later epoch).
    pub fn truncate_for_epoch(&self, offset: u64, epoch: i32) -> Result<Option<u64>> {
        let mut st = self.lock();
        if st.epochs.last().is_some_and(|(e, _)| *e > epoch) {
            return Ok(None);
        }
        self.truncate_locked(&mut st, offset).map(Some)
    }

    fn truncate_locked(&self, st: &mut MutexGuard<'_, LogState>, offset: u64) -> Result<u64> {
        // After a failed fsync no later sync vouches for the bytes it covered (the
        // kernel may have dropped them): a cut above the durable end must not keep
        // them as synced, so they go first (R-LOG-9; found by the replication
        // oracle once followers' syncs could fail).
        if st.offline {
            self.shared.resync_after_failure(st)?;
        }
        // A cut at or below a lost tail's mark leaves nothing this copy claims past
        // it: the records there come from a leader again (R-REPL-4).
        let clears_mark = st.lost_tail.is_some_and(|from| offset <= from);
        if clears_mark {
            st.lost_tail = None;
        }
        if offset >= st.log_end() {
            if clears_mark {
                self.write_checkpoint(st)?;
            }
            return Ok(st.log_end());
        }
        // Nothing at or above the log start is kept: the log is empty from the cut
        // (its start stays), as Kafka's `truncateTo` below the log start. Cutting at a batch
        // boundary instead could end the log below its own start (a DeleteRecords
        // offset may lie inside a batch), and damage just above the start could
        // never be cut (found by the simulator: a damaged copy stuck in repair).
        if offset <= st.log_start {
            self.restart_locked(st, offset)?;
            return Ok(offset);
        }
        let disk = self.shared.disk.as_ref();
        let dir = &self.shared.dir;
        // The segment that keeps `offset`: the last one starting at or below it.
        let keep_base = st
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .ok_or_else(|| st.out_of_range(offset))?;
        let doomed: Vec<u64> = st
            .segments
            .range(keep_base + 1..)
            .map(|(b, _)| *b)
            .collect();
        for base in doomed {
            st.segments.remove(&base);
            Segment::delete_files(disk, dir, base)?;
        }
        let known = st
            .segments
            .get(&keep_base)
            .map(|seg| seg.damage.clone())
            .unwrap_or_default();
        let reopened = Segment::open_active_until(
            disk,
            dir,
            keep_base,
            st.config.index_interval_bytes,
            (offset, &known),
        )?;
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
        let end = reopened.next_offset;
        st.durable_position = (keep_base, reopened.size);
        st.segments.insert(keep_base, reopened);
        // `open_active_until` synced what it kept: all of it is durable.
        st.durable_end = end;
        st.high_watermark = st.high_watermark.min(end);
        st.epochs.retain(|(_, start)| *start < end);
        write_epochs(disk, dir, &st.epochs)?;
        st.epochs_dirty = false;
        // The recorded durable point may lie beyond the cut: lower it before any
        // new, unsynced byte lands there, or a later torn write would look corrupt.
        self.write_checkpoint(st)?;
        // Producer state may name batches that are gone: forget those producers, so
        // their next batch is judged afresh rather than as a duplicate.
        st.producers.forget_from(end);
        // Offsets cut here come back as new records, which no pass has read yet.
        st.clean_point.offset = st.clean_point.offset.min(end);
        st.failure_epoch += 1;
        tracing::info!(dir = %dir.display(), log_end = end, "log truncated to its leader's");
        Ok(end)
    }

    /// Drops every record and starts the log empty at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): beyond its end, for a follower whose log ends
    /// below its leader's log start, which can fetch nothing the leader still holds;
    /// anywhere, for an empty log, whose start then stays where it was if later
    /// (`restart_locked`).
    pub fn start_afresh_at(&self, offset: u64) -> Result<()> {
        let mut st = self.lock();
        let empty = st.log_start >= st.log_end();
        if offset < st.log_end() && !empty {
            return Err(st.out_of_range(offset));
        }
        self.restart_locked(&mut st, offset)
    }

    /// Drops every segment and starts an empty one at `base`. The log start becomes
    /// `base`, or stays where it was if that is later: a start never moves back, so
    /// records deleted here never come back. The checkpoint of the new state is
    /// written first, so a crash at any point leaves either the old records (`open`
    /// clamps the checkpoint's start to them) or an empty log; the unlinks are
    /// synced before the new segment is created, so a file system cannot keep the
    /// new segment beside old ones.
    fn restart_locked(&self, st: &mut MutexGuard<'_, LogState>, base: u64) -> Result<()> {
        let disk = self.shared.disk.as_ref();
        let dir = &self.shared.dir;
        let start = base.max(st.log_start);
        let before = (
            st.log_start,
            st.high_watermark,
            st.durable_end,
            st.durable_position,
            st.failure_epoch,
        );
        st.log_start = start;
        st.high_watermark = start;
        st.durable_end = base;
        st.durable_position = (base, 0);
        st.failure_epoch += 1;
        if let Err(e) = self.write_checkpoint(st) {
            // Nothing was deleted (a full disk refused the checkpoint): the log is
            // as it was, and must not claim records durable that it does not hold
            // (found by the replication oracle with DeleteRecords and a full disk).
            (
                st.log_start,
                st.high_watermark,
                st.durable_end,
                st.durable_position,
                st.failure_epoch,
            ) = before;
            return Err(e);
        }
        let doomed: Vec<u64> = st.segments.keys().copied().collect();
        for old in doomed {
            Segment::delete_files(disk, dir, old)?;
            st.segments.remove(&old);
        }
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
        st.segments.insert(base, Segment::create(disk, dir, base)?);
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
        st.epochs.clear();
        st.epochs_dirty = true;
        write_epochs(disk, dir, &st.epochs)?;
        st.epochs_dirty = false;
        st.producers.forget_from(0);
        st.clean_point.offset = base;
        tracing::info!(dir = %dir.display(), base, log_start = start, "log started afresh, empty");
        Ok(())
    }

    /// Like [`PartitionLog::append`], but returns at once; `done` is called when the
    /// append is durable (possibly on the group commit thread), or failed.
    pub fn append_then(
        &self,
        batch: &[u8],
        now_ms: u64,
        leader_epoch: i32,
        done: impl FnOnce(Result<AppendInfo>) + Send + 'static,
    ) {
        let (info, written_in) = match self.write(batch, now_ms, leader_epoch) {
            Ok(written) => written,
            Err(LogError::DuplicateSequence {
                base_offset,
                written_in,
            }) => {
                let end = BatchHeader::parse(batch)
                    .map_or(base_offset + 1, |h| base_offset + h.offset_count());
                return self.answer_duplicate(base_offset, end, written_in, done);
            }
            Err(e) => return done(Err(e)),
        };
        if !self.needs_sync_before_ack() || self.shared.ack_before_fsync.load(Ordering::Relaxed) {
            return done(Ok(info));
        }
        // A sync that succeeds after a failure cut the log back proves nothing about
        // bytes written before the cut: they are gone, and the offsets reused.
        let shared = Arc::clone(&self.shared);
        let still_there = move |r: Result<()>| {
            r.and_then(|_| match shared.lock().failure_epoch == written_in {
                true => Ok(info),
                false => Err(LogError::Offline {
                    dir: shared.dir.clone(),
                }),
            })
        };
        match &self.shared.commits {
            Some(commits) => {
                commits.submit(self.sync_target(), Box::new(move |r| done(still_there(r))))
            }
            None => done(still_there(self.shared.sync())),
        }
    }

    /// A retry of a batch already written is answered as the original would be: only
    /// once a sync has covered the original in the failure epoch it was found in. A
    /// failed fsync cuts an unsynced original and reuses its offsets, and the retry
    /// must then fail, not wait for the new records there (R-LOG-9; found by
    /// conformance C-5 with retries and a failed fsync).
    fn answer_duplicate(
        &self,
        base_offset: u64,
        end: u64,
        written_in: u64,
        done: impl FnOnce(Result<AppendInfo>) + Send + 'static,
    ) {
        let duplicate = LogError::DuplicateSequence {
            base_offset,
            written_in,
        };
        let synced = {
            let st = self.lock();
            st.failure_epoch == written_in && st.durable_end >= end
        };
        let no_sync_needed =
            !self.needs_sync_before_ack() || self.shared.ack_before_fsync.load(Ordering::Relaxed);
        if synced || no_sync_needed {
            return done(Err(duplicate));
        }
        let shared = Arc::clone(&self.shared);
        let answer = move |r: Result<()>| {
            done(
                r.and_then(|_| match shared.lock().failure_epoch == written_in {
                    true => Err(duplicate),
                    false => Err(LogError::Offline {
                        dir: shared.dir.clone(),
                    }),
                }),
            )
        };
        match &self.shared.commits {
            Some(commits) => commits.submit(self.sync_target(), Box::new(answer)),
            None => answer(self.shared.sync()),
        }
    }

    fn needs_sync_before_ack(&self) -> bool {
        !self.lock().config.fsync.acks_before_fsync()
    }

    fn sync_target(&self) -> Arc<dyn SyncTarget> {
        Arc::clone(&self.shared) as Arc<dyn SyncTarget>
    }

    /// fdatasyncs what has been appended so far.
    pub fn sync(&self) -> Result<()> {
        self.shared.sync()
    }

    /// Under the interval policy, syncs if `ms` have passed since the last such sync
    /// and something was appended since; returns whether it synced. The shell calls
    /// this from its timer: the log itself never reads a clock.
    pub fn sync_if_due(&self, now_ms: u64) -> Result<bool> {
        {
            let mut st = self.lock();
            let FsyncPolicy::Interval { ms } = st.config.fsync else {
                return Ok(false);
            };
            let last = *st.last_interval_sync_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(last) < ms || st.durable_end == st.log_end() {
                return Ok(false);
            }
            st.last_interval_sync_ms = Some(now_ms);
        }
        self.shared.sync().map(|_| true)
    }

    /// Writes the batch to the active segment (page cache), without waiting for it
    /// to be durable.
    fn write(&self, batch: &[u8], now_ms: u64, leader_epoch: i32) -> Result<(AppendInfo, u64)> {
        self.write_as(batch, now_ms, Some(leader_epoch))
    }

    /// Writes a batch: as the leader (`Some(epoch)`: offsets assigned here, stamped
    /// with the epoch) or as a follower (`None`: the leader's offsets and epoch kept,
    /// and the batch must start at this log's end).
    fn write_as(
        &self,
        batch: &[u8],
        now_ms: u64,
        leader_epoch: Option<i32>,
    ) -> Result<(AppendInfo, u64)> {
        let mut st = self.lock();
        if batch.len() > st.config.max_batch_bytes {
            return Err(LogError::BatchTooLarge {
                size: batch.len(),
                limit: st.config.max_batch_bytes,
            });
        }
        let header = BatchHeader::parse(batch).map_err(LogError::InvalidBatch)?;
        if st.offline {
            self.shared.resync_after_failure(&mut st)?;
        }
        if leader_epoch.is_some() {
            // Offsets are assigned from the header: it must not claim more than the
            // batch holds (R-LOG-14; the Produce path checks the records too).
            header
                .check_offset_range()
                .map_err(LogError::InvalidRecord)?;
            let failure_epoch = st.failure_epoch;
            st.producers.check(&header).map_err(|e| match e {
                LogError::DuplicateSequence { base_offset, .. } => LogError::DuplicateSequence {
                    base_offset,
                    written_in: failure_epoch,
                },
                other => other,
            })?;
            if st.lost_tail.is_some() {
                // Admitted only while no other replica (ISR or eligible) may hold
                // what the cut lost: this log is the partition's now (R-REPL-4).
                st.lost_tail = None;
                self.write_checkpoint(&mut st)?;
            }
        } else if header.base_offset != st.log_end() as i64 {
            return Err(LogError::InvalidBatch(format!(
                "replicated batch starts at offset {} but the log ends at {}",
                header.base_offset,
                st.log_end()
            )));
        }
        let epoch = leader_epoch.unwrap_or(header.partition_leader_epoch);
        if st.epochs.last().is_none_or(|(e, _)| epoch > *e) {
            let start = st.log_end();
            st.epochs.push((epoch, start));
            st.epochs_dirty = true;
        } else if st.epochs.last().is_some_and(|(e, _)| epoch < *e) {
            return Err(LogError::InvalidBatch(format!(
                "batch of leader epoch {epoch} after epoch {:?}",
                st.epochs.last()
            )));
        }
        let frame_len = (FRAME_HEADER_LEN + batch.len()) as u64;
        self.maybe_roll(&mut st, frame_len, header.offset_count(), now_ms)?;
        let index_interval = st.config.index_interval_bytes;
        let active = st.active_mut()?;
        let base_offset = active.next_offset;
        // One buffer, so the frame is one pwrite; filled without zeroing first.
        let mut framed = Vec::with_capacity(FRAME_HEADER_LEN + batch.len());
        framed.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        framed.extend_from_slice(batch);
        {
            let (head, payload) = framed.split_at_mut(FRAME_HEADER_LEN);
            batch::set_base_offset(payload, base_offset);
            batch::set_partition_leader_epoch(payload, epoch);
            frame::write_header(head, payload);
        }
        let position = active.size;
        let file = active.handle()?;
        if let Err(e) = file.write_at(&framed, position) {
            // Cut off whatever part of the frame reached the file, so the log stays
            // appendable once the cause (say, a full disk) is gone (R-LOG-9).
            if let Err(cut) = file.set_len(position) {
                tracing::error!(segment = %active.path.display(), error = %cut,
                    "cannot cut a failed append; the log goes offline");
                st.offline = true;
                st.failure_epoch += 1;
            }
            return Err(LogError::io("append to", &st.active()?.path.clone(), e));
        }
        active.record_batch(position, frame_len, &header, index_interval);
        active.first_append_ms.get_or_insert(now_ms);
        let log_end_offset = active.next_offset;
        st.producers.record(&header, base_offset);
        let info = AppendInfo {
            base_offset,
            last_offset: base_offset + header.offset_count() - 1,
            append_time_ms: now_ms,
            log_end_offset,
        };
        Ok((info, st.failure_epoch))
    }

    /// Seals the active segment and starts a new one when the next frame would not
    /// fit, the segment is old enough, or its offsets would overflow the index.
    fn maybe_roll(
        &self,
        st: &mut LogState,
        frame_len: u64,
        offset_count: u64,
        now_ms: u64,
    ) -> Result<()> {
        let active = st.active()?;
        if active.size == 0 {
            return Ok(());
        }
        let too_big = active.size + frame_len > st.config.segment_bytes;
        let too_old = active
            .first_append_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= st.config.segment_ms);
        let too_many = active.next_offset - active.base_offset + offset_count > u64::from(u32::MAX);
        if !(too_big || too_old || too_many) {
            return Ok(());
        }
        // The sealed segment will not be scanned on open: its epochs must be on disk.
        self.write_epochs_if_dirty(st)?;
        let disk = self.shared.disk.as_ref();
        let dir = &self.shared.dir;
        let active = st.active_mut()?;
        active.seal(disk, dir)?;
        self.shared.files.opened(&active.file);
        let new_base = active.next_offset;
        let next = Segment::create(disk, dir, new_base)?;
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
        st.segments.insert(new_base, next);
        st.durable_end = st.durable_end.max(new_base);
        st.durable_position = (new_base, 0);
        tracing::debug!(dir = %dir.display(), new_base, "rolled segment");
        Ok(())
    }

    /// Reads whole batches from `offset`, stopping before the first batch that ends
    /// at or beyond `upper_bound` (the high watermark the caller may expose) and once
    /// `max_bytes` are filled; the first batch is returned even if larger, so a
    /// consumer always makes progress (R-LOG-7).
    pub fn read(&self, offset: u64, max_bytes: usize, upper_bound: u64) -> Result<ReadResult> {
        self.read_limited(
            offset,
            ReadLimits {
                max_bytes,
                upper_bound,
                first_batch_whole: true,
            },
        )
    }

    /// As `read`, but with `first_batch_whole` false a batch larger than
    /// `max_bytes` is not returned at all: a Fetch lets only its first partition
    /// with data exceed the limits (KIP-74, R-WIRE-9).
    pub fn read_limited(&self, offset: u64, limits: ReadLimits) -> Result<ReadResult> {
        let ReadLimits {
            max_bytes,
            upper_bound,
            ..
        } = limits;
        let mut result = ReadResult {
            next_offset: offset,
            ..ReadResult::default()
        };
        let mut cursor = offset;
        let mut first = true;
        loop {
            let view = {
                let st = self.lock();
                if first && (offset < st.log_start || offset > st.log_end()) {
                    return Err(st.out_of_range(offset));
                }
                let upper = upper_bound.min(st.log_end());
                if cursor >= upper {
                    return Ok(result);
                }
                match self.view_for(&st, cursor)? {
                    Some(v) => v,
                    None => return Ok(result),
                }
            };
            first = false;
            let done = self.read_segment(&view, cursor, limits, &mut result)?;
            if done || result.records.len() >= max_bytes {
                return Ok(result);
            }
            cursor = view.next_offset;
        }
    }

    fn view_for(&self, st: &LogState, offset: u64) -> Result<Option<SegmentView>> {
        let seg = st
            .segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| offset < s.next_offset);
        let Some(seg) = seg else {
            return Ok(None);
        };
        let file = self.shared.file_of(seg)?;
        Ok(Some(SegmentView::of(
            seg,
            (offset - seg.base_offset) as u32,
            file,
        )))
    }

    /// Appends the batches of one segment to `out`; true when the read is complete.
    /// A damaged range is stepped over when the read starts beyond it, ends the read
    /// when batches before it were returned, and is the answer when the read starts
    /// inside it (R-LOG-13).
    fn read_segment(
        &self,
        view: &SegmentView,
        offset: u64,
        limits: ReadLimits,
        out: &mut ReadResult,
    ) -> Result<bool> {
        let upper_bound = limits.upper_bound;
        let (mut position, mut expected) = (view.start_position, view.start_offset);
        let mut trust_index = view.start_position != 0;
        loop {
            let walk = Self::read_frames(view, (position, expected), offset, limits, out)?;
            let (at, at_offset, reason) = match walk {
                Walk::Complete => return Ok(true),
                Walk::End { reached } if reached >= view.next_offset => return Ok(false),
                // Offsets missing at the end must answer an error, not be skipped.
                Walk::End { reached } => (
                    view.end_position,
                    reached,
                    "the segment ends before its offsets do".to_string(),
                ),
                Walk::Bad {
                    position,
                    expected,
                    reason,
                } => (position, expected, reason),
            };
            if out.batch_count > 0 || at_offset >= upper_bound {
                return Ok(true);
            }
            if trust_index && at == view.start_position && !view.is_known_damage(at) {
                // Index files carry no checksum: before calling the bytes damaged,
                // walk to them from the segment's start.
                trust_index = false;
                let again = view.rewound();
                (position, expected) = (again.start_position, again.start_offset);
                continue;
            }
            let found = self.damage_at(view, at, at_offset, reason)?;
            if offset < found.end_offset {
                return Err(found.to_error(&view.path));
            }
            if found.end_position >= view.end_position {
                return Ok(false);
            }
            (position, expected) = (found.end_position, found.end_offset);
        }
    }

    /// Walks valid frames from `(position, expected offset)` to the view's end,
    /// adding the batches at or after `offset` to `out`.
    fn read_frames(
        view: &SegmentView,
        (from, mut expected): (u64, u64),
        offset: u64,
        limits: ReadLimits,
        out: &mut ReadResult,
    ) -> Result<Walk> {
        let ReadLimits {
            max_bytes,
            upper_bound,
            first_batch_whole,
        } = limits;
        // Enough for the skipped frames before `offset` (at most one index interval
        // and a batch) plus what the caller wants, in one read when possible.
        let block = max_bytes.saturating_add(64 * 1024).min(SCAN_BLOCK);
        let mut reader = FrameReader::new(
            view.file.as_ref(),
            &view.path,
            from,
            view.end_position,
            block,
        );
        loop {
            let frame = match reader.next_frame()? {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(Walk::End { reached: expected }),
                Err(stop) => return Ok(bad_walk(stop, expected)),
            };
            let header = match batch_at(frame.payload, expected) {
                Ok(h) => h,
                Err(reason) => {
                    return Ok(Walk::Bad {
                        position: frame.position,
                        expected,
                        reason,
                    })
                }
            };
            let last = expected + header.offset_count() - 1;
            expected = last + 1;
            if last < offset {
                continue;
            }
            if last >= upper_bound
                || ((out.batch_count > 0 || !first_batch_whole)
                    && out.records.len() + frame.payload.len() > max_bytes)
            {
                return Ok(Walk::Complete);
            }
            out.records.extend_from_slice(frame.payload);
            out.batch_count += 1;
            out.next_offset = last + 1;
        }
    }

    /// The damaged range that starts at `position` of a segment: known already, or
    /// found now by searching for the next valid frame, then recorded and reported.
    fn damage_at(
        &self,
        view: &SegmentView,
        position: u64,
        first_offset: u64,
        reason: String,
    ) -> Result<Damage> {
        if let Some(known) = view.damage.iter().find(|d| d.position == position) {
            return Ok(known.clone());
        }
        let next = damage::find_next_frame(
            view.file.as_ref(),
            &view.path,
            position + 1,
            view.end_position,
            first_offset,
            view.next_offset,
        )?;
        let (end_position, end_offset) =
            next.unwrap_or((view.end_position, view.next_offset.max(first_offset)));
        let found = Damage {
            position,
            end_position,
            first_offset,
            end_offset,
            reason,
        };
        let mut st = self.lock();
        if let Some(seg) = st.segments.get_mut(&view.base_offset) {
            if !seg.damage.iter().any(|d| d.position == position) {
                damage::report(&view.path, &found);
                seg.damage.push(found.clone());
                seg.damage.sort_by_key(|d| d.position);
            }
        }
        Ok(found)
    }

    /// How many damaged ranges have been found in this log (a metric).
    pub fn damaged_range_count(&self) -> usize {
        self.lock().segments.values().map(|s| s.damage.len()).sum()
    }

    /// Every damaged range found so far: (segment file, damage), in offset order.
    pub fn damaged_ranges(&self) -> Vec<(PathBuf, Damage)> {
        let st = self.lock();
        st.segments
            .values()
            .flat_map(|s| s.damage.iter().map(|d| (s.path.clone(), d.clone())))
            .collect()
    }

    /// The first offset of the first damaged range that held records: where a
    /// replica must cut its log to fetch them back whole (R-REPL-4). Ranges of
    /// garbage between valid frames lost nothing and need no repair.
    pub fn first_lost_offset(&self) -> Option<u64> {
        let st = self.lock();
        // Damage below the log start is in records already deleted: nothing is lost.
        let damaged = st
            .segments
            .values()
            .flat_map(|s| s.damage.iter())
            .filter(|d| d.first_offset < d.end_offset && d.end_offset > st.log_start)
            .map(|d| d.first_offset.max(st.log_start));
        damaged.chain(st.lost_tail).min()
    }

    /// Where recovery cut a tail it could not tell from a torn write, if the cut
    /// still stands: records from there on may have been acknowledged, and this copy
    /// does not hold them (R-REPL-4). Cleared by a cut at or below it (its repair, or
    /// a truncation for a new leader) and by a leader's write (admitted only while
    /// no other replica, ISR or eligible, may hold them).
    pub fn lost_tail(&self) -> Option<u64> {
        self.lock().lost_tail
    }

    /// Reads the batches from `from` on, about `max_bytes` of them, so that their
    /// checksums are checked and damage nobody has read yet is found and recorded
    /// (R-LOG-16, a scrub). Returns the bytes read and where the next call should go
    /// on, `None` once the log was read to its end.
    pub fn scrub(&self, from: u64, max_bytes: usize) -> Result<(Option<u64>, usize)> {
        let (start, end) = {
            let st = self.lock();
            (st.log_start, st.log_end())
        };
        let mut at = from.max(start);
        let mut read = 0usize;
        while at < end {
            if read >= max_bytes {
                return Ok((Some(at), read));
            }
            match self.read(at, max_bytes - read, end) {
                Ok(r) if r.batch_count > 0 => {
                    read += r.records.len();
                    at = r.next_offset;
                }
                Ok(_) => break,
                Err(LogError::Damaged { end_offset, .. }) => at = end_offset.max(at + 1),
                // Retention or a truncation moved the log under the scrub.
                Err(LogError::OffsetOutOfRange { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        Ok((None, read))
    }

    /// The first offset whose record timestamp is at least `timestamp`, with that
    /// timestamp, among offsets below `upper_bound` (ListOffsets by time).
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        upper_bound: u64,
    ) -> Result<Option<(u64, i64)>> {
        let (log_start, limit, candidates) = {
            let st = self.lock();
            let views: Vec<SegmentView> = st
                .segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp && s.next_offset > st.log_start)
                .map(|s| {
                    let file = self.shared.file_of(s)?;
                    Ok(SegmentView::of(s, s.time_index.start_for(timestamp), file))
                })
                .collect::<Result<_>>()?;
            (st.log_start, st.config.max_records_bytes(), views)
        };
        let wanted = |header: &BatchHeader, last: u64| {
            last >= log_start && header.max_timestamp >= timestamp
        };
        for view in candidates {
            let (mut position, mut expected) = (view.start_position, view.start_offset);
            loop {
                match Self::find_batch(&view, (position, expected), upper_bound, &wanted)? {
                    Found::Batch(payload, header) => {
                        let found = batch::first_record_at_or_after(&payload, timestamp, limit)
                            .unwrap_or((header.base_offset as u64, header.max_timestamp));
                        return Ok(Some((found.0.max(log_start), found.1)));
                    }
                    Found::Beyond => return Ok(None),
                    Found::End => break,
                    // Records that cannot be read cannot be the answer: step over them.
                    Found::Bad(at, at_offset, reason) => {
                        let found = self.damage_at(&view, at, at_offset, reason)?;
                        if found.end_position >= view.end_position {
                            break;
                        }
                        (position, expected) = (found.end_position, found.end_offset);
                    }
                }
            }
        }
        Ok(None)
    }

    /// The first record holding the largest timestamp in the log, with that
    /// timestamp, if it lies below `upper_bound` (ListOffsets MAX_TIMESTAMP,
    /// KIP-734). No record has a larger timestamp, so it is the first record at or
    /// after it.
    pub fn offset_of_max_timestamp(&self, upper_bound: u64) -> Result<Option<(u64, i64)>> {
        let max = {
            let st = self.lock();
            st.segments
                .values()
                .filter(|s| s.next_offset > st.log_start)
                .map(|s| s.max_timestamp)
                .max()
        };
        match max {
            Some(max) if max >= 0 => self.offset_for_timestamp(max, upper_bound),
            _ => Ok(None),
        }
    }

    /// Kafka's answer to ListOffsets v0 (`UnifiedLog.legacyFetchOffsetsBefore`):
    /// each segment's start (at least the log start) with the time it was last
    /// written, then the log end at `now_ms` if the active segment holds data; -1
    /// picks the last entry, -2 the first, another timestamp the last written at or
    /// before it; from there back, at most `max` offsets, largest first. Kafka's
    /// "last written" is the segment file's mtime; here it is the segment's largest
    /// record timestamp, which survives a restart and is the same on every replica.
    pub fn legacy_offsets_before(&self, timestamp: i64, max: usize, now_ms: i64) -> Vec<u64> {
        let st = self.lock();
        let last_base = st.segments.keys().next_back().copied();
        let mut entries: Vec<(u64, i64)> = st
            .segments
            .values()
            .filter(|s| s.next_offset > st.log_start || Some(s.base_offset) == last_base)
            .map(|s| (s.base_offset.max(st.log_start), s.max_timestamp))
            .collect();
        if st.segments.values().next_back().is_some_and(|s| s.size > 0) {
            entries.push((st.log_end(), now_ms));
        }
        let start = match timestamp {
            -1 => entries.len().checked_sub(1),
            -2 => (!entries.is_empty()).then_some(0),
            ts => entries.iter().rposition(|(_, written)| *written <= ts),
        };
        let Some(start) = start else {
            return Vec::new();
        };
        let mut offsets: Vec<u64> = entries[..=start]
            .iter()
            .rev()
            .take(max)
            .map(|(offset, _)| *offset)
            .collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        offsets
    }

    /// The first batch of a view from `(position, expected offset)` that `wanted`
    /// accepts, stopping at a batch that reaches `upper_bound` or at bad bytes.
    fn find_batch(
        view: &SegmentView,
        (from, mut expected): (u64, u64),
        upper_bound: u64,
        wanted: &dyn Fn(&BatchHeader, u64) -> bool,
    ) -> Result<Found> {
        let mut reader = FrameReader::new(
            view.file.as_ref(),
            &view.path,
            from,
            view.end_position,
            64 * 1024,
        );
        loop {
            let frame = match reader.next_frame()? {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(Found::End),
                Err(stop) => {
                    let (position, reason) = stop_parts(stop);
                    return Ok(Found::Bad(position, expected, reason));
                }
            };
            let header = match batch_at(frame.payload, expected) {
                Ok(h) => h,
                Err(reason) => return Ok(Found::Bad(frame.position, expected, reason)),
            };
            let last = expected + header.offset_count() - 1;
            expected = last + 1;
            if last >= upper_bound {
                return Ok(Found::Beyond);
            }
            if wanted(&header, last) {
                return Ok(Found::Batch(frame.payload.to_vec(), header));
            }
        }
    }

    /// Moves the log start to `offset` durably (DeleteRecords), then deletes whole
    /// segments below it (R-LOG-8). Returns the new log start.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        {
            let mut st = self.lock();
            if offset > st.high_watermark {
                return Err(st.out_of_range(offset));
            }
            if offset <= st.log_start {
                return Ok(st.log_start);
            }
            let before = st.log_start;
            st.log_start = offset;
            if let Err(e) = self.write_checkpoint(&mut st) {
                // A deletion answered with an error deleted nothing, not even in
                // memory until the next restart.
                st.log_start = before;
                return Err(e);
            }
        }
        self.delete_segments_below_start()?;
        Ok(self.log_start_offset())
    }

    /// Deletes sealed segments that retention by time or size no longer keeps, and
    /// returns how many (R-LOG-8).
    pub fn enforce_retention(&self, now_ms: u64) -> Result<usize> {
        {
            let mut st = self.lock();
            let mut total: u64 = st.segments.values().map(|s| s.size).sum();
            let mut new_start = st.log_start;
            let sealed: Vec<(u64, u64, i64, u64)> = st
                .segments
                .values()
                .rev()
                .skip(1)
                .rev()
                .map(|s| (s.base_offset, s.size, s.max_timestamp, s.next_offset))
                .collect();
            for (_, size, max_ts, next) in sealed {
                // Only what every in-sync replica holds goes, as in Kafka: a record
                // above the high watermark may still be on its way to the followers
                // (or acknowledged with acks=1 and not yet replicated).
                if next > st.high_watermark {
                    break;
                }
                let expired = st
                    .config
                    .retention_ms
                    .is_some_and(|ms| max_ts >= 0 && (max_ts as u64).saturating_add(ms) < now_ms);
                let oversized = st
                    .config
                    .retention_bytes
                    .is_some_and(|limit| total.saturating_sub(size) >= limit);
                if !(expired || oversized) {
                    break;
                }
                total -= size;
                new_start = new_start.max(next);
            }
            if new_start == st.log_start {
                return Ok(0);
            }
            st.log_start = new_start;
            st.high_watermark = st.high_watermark.max(new_start);
            self.write_checkpoint(&mut st)?;
        }
        self.delete_segments_below_start()
    }

    fn delete_segments_below_start(&self) -> Result<usize> {
        let mut st = self.lock();
        let doomed: Vec<u64> = st
            .segments
            .values()
            .rev()
            .skip(1)
            .filter(|s| s.next_offset <= st.log_start)
            .map(|s| s.base_offset)
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let disk = self.shared.disk.as_ref();
        for base in &doomed {
            st.segments.remove(base);
            Segment::delete_files(disk, &self.shared.dir, *base)?;
        }
        disk.sync_dir(&self.shared.dir)
            .map_err(|e| LogError::io("fsync directory", &self.shared.dir, e))?;
        Ok(doomed.len())
    }

    /// Persists the log start offset and high watermark if they changed (R-LOG-6).
    pub fn checkpoint(&self) -> Result<()> {
        let mut st = self.lock();
        self.write_checkpoint(&mut st)
    }

    fn write_epochs_if_dirty(&self, st: &mut LogState) -> Result<()> {
        if st.epochs_dirty {
            write_epochs(self.shared.disk.as_ref(), &self.shared.dir, &st.epochs)?;
            st.epochs_dirty = false;
        }
        Ok(())
    }

    fn write_checkpoint(&self, st: &mut LogState) -> Result<()> {
        self.write_epochs_if_dirty(st)?;
        // The durable point goes with every checkpoint: a lower bound of what is
        // fsynced, since `durable_position` moves only after a sync succeeded and
        // every cut below it rewrites the checkpoint first (R-LOG-13).
        let (segment_base, bytes) = st.durable_position;
        let current = Checkpoint::new(st.log_start, st.high_watermark)
            .with_durable(DurablePoint {
                segment_base,
                bytes,
                end_offset: st.durable_end,
            })
            .with_lost_from(st.lost_tail);
        if st.last_checkpoint == Some(current) {
            return Ok(());
        }
        checkpoint::write(self.shared.disk.as_ref(), &self.shared.dir, &current)?;
        st.last_checkpoint = Some(current);
        Ok(())
    }

    /// Flushes everything and writes the active segment's indexes and the checkpoint,
    /// so the next open is quick and exact.
    pub fn close(&self) -> Result<()> {
        self.shared.sync()?;
        let mut st = self.lock();
        st.active()?
            .write_indexes(self.shared.disk.as_ref(), &self.shared.dir)?;
        self.write_checkpoint(&mut st)
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let dir = self.shared.dir.clone();
        let disk = Arc::clone(&self.shared.disk);
        disk.remove_dir_all(&dir)
            .map_err(|e| LogError::io("remove directory", &dir, e))?;
        if let Some(parent) = dir.parent() {
            disk.sync_dir(parent)
                .map_err(|e| LogError::io("fsync directory", parent, e))?;
        }
        Ok(())
    }
}

fn stop_parts(stop: Stop) -> (u64, String) {
    match stop {
        Stop::Torn { position } => (position, "frame cut short".to_string()),
        Stop::Corrupt { position, reason } => (position, reason),
    }
}

fn bad_walk(stop: Stop, expected: u64) -> Walk {
    let (position, reason) = stop_parts(stop);
    Walk::Bad {
        position,
        expected,
        reason,
    }
}

/// The header of a batch that must start at offset `expected`.
fn batch_at(payload: &[u8], expected: u64) -> std::result::Result<BatchHeader, String> {
    let header = BatchHeader::parse(payload)?;
    if header.base_offset != expected as i64 {
        return Err(format!(
            "batch has base offset {} where {expected} was expected",
            header.base_offset
        ));
    }
    Ok(header)
}

/// The checkpoint to write before recovery cuts a tail from `cut_from` (R-REPL-4):
/// the one read, or what opening assumes without one, marked from the lower of
/// its mark and the cut.
fn mark_lost_tail(read: Option<Checkpoint>, first_base: u64, cut_from: u64) -> Checkpoint {
    let checkpoint = read.unwrap_or_else(|| Checkpoint::new(first_base, 0));
    let from = checkpoint.lost_from.map_or(cut_from, |m| m.min(cut_from));
    checkpoint.with_lost_from(Some(from))
}

const EPOCHS_FILE: &str = "leader-epoch-checkpoint";

fn read_epochs(disk: &dyn Disk, dir: &Path) -> Result<Vec<(i32, u64)>> {
    let path = dir.join(EPOCHS_FILE);
    if !disk.exists(&path) {
        return Ok(Vec::new());
    }
    let bytes = crate::disk::read_all(disk, &path).map_err(|e| LogError::io("read", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
        path: path.clone(),
        position: 0,
        offset: 0,
        reason: format!("leader epoch checkpoint: {e}"),
    })
}

fn write_epochs(disk: &dyn Disk, dir: &Path, epochs: &[(i32, u64)]) -> Result<()> {
    let path = dir.join(EPOCHS_FILE);
    let bytes = serde_json::to_vec(epochs).map_err(|e| LogError::Config(e.to_string()))?;
    crate::disk::write_atomically(disk, &path, &bytes).map_err(|e| LogError::io("write", &path, e))
}

impl LogShared {
    /// A segment's file handle, opening it again if the bound closed it.
    fn file_of(&self, seg: &Segment) -> Result<Arc<dyn DiskFile>> {
        if let Some(file) = seg.file.get() {
            return Ok(file);
        }
        let opened = self
            .disk
            .open_file(&seg.path, crate::disk::OpenMode::Existing)
            .map_err(|e| LogError::io("open", &seg.path, e))?;
        let (file, filled) = seg.file.fill(opened);
        if filled {
            self.files.opened(&seg.file);
        }
        Ok(file)
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts the active segment back to its last synced size and rescans it. Only
    /// unacknowledged appends lived past that point.
    fn resync_after_failure(&self, st: &mut LogState) -> Result<()> {
        let active = st.active()?;
        let (base, durable_size) = st.durable_position;
        let keep = if base == active.base_offset {
            durable_size
        } else {
            0
        };
        let file = active.handle()?;
        file.set_len(keep)
            .and_then(|_| file.sync_data())
            .map_err(|e| LogError::io("resync", &active.path, e))?;
        let base = active.base_offset;
        // Everything kept was just synced: nothing in it can be torn.
        let durable = (base == st.durable_position.0).then_some((keep, st.durable_end));
        let rescanned = Segment::open_active(
            self.disk.as_ref(),
            &self.dir,
            base,
            st.config.index_interval_bytes,
            durable,
            // All of it was just synced: a bad frame in it is fenced, never cut.
            |_| Ok(()),
        )?;
        st.durable_end = rescanned.next_offset;
        st.durable_position = (base, rescanned.size);
        st.segments.insert(base, rescanned);
        let end = st.log_end();
        st.high_watermark = st.high_watermark.min(end);
        // The cut appends are gone, and so is what they told the producer and epoch
        // caches: an idempotent retry of a cut batch is a new batch, not a duplicate
        // at an offset the next append will reuse (found by the simulator: the
        // retry waited on that offset forever, and would have been acknowledged by
        // whatever landed there).
        st.producers.forget_from(end);
        if st.epochs.iter().any(|(_, start)| *start >= end) {
            st.epochs.retain(|(_, start)| *start < end);
            write_epochs(self.disk.as_ref(), &self.dir, &st.epochs)?;
            st.epochs_dirty = false;
        }
        st.offline = false;
        // Whatever was written before this cut is gone: nothing may acknowledge it.
        st.failure_epoch += 1;
        tracing::warn!(dir = %self.dir.display(), log_end = end, "log back online after a failed fsync");
        Ok(())
    }
}

impl SyncTarget for LogShared {
    fn sync(&self) -> Result<()> {
        let (file, path, base, size, next_offset, epoch) = {
            let st = self.lock();
            if st.offline {
                return Err(LogError::Offline {
                    dir: self.dir.clone(),
                });
            }
            let a = st.active()?;
            (
                a.handle()?,
                a.path.clone(),
                a.base_offset,
                a.size,
                a.next_offset,
                st.failure_epoch,
            )
        };
        // Everything written before this point is covered by the sync below.
        let observer = self
            .sync_observer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let result = match observer {
            Some(around) => around(&mut || file.sync_data()),
            None => file.sync_data(),
        };
        let mut st = self.lock();
        match result {
            // The log was cut while this sync ran: the position it covered names
            // bytes that are gone, and offsets that new bytes may hold.
            Ok(()) if st.failure_epoch != epoch => Err(LogError::Offline {
                dir: self.dir.clone(),
            }),
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                if st.durable_position.0 == base {
                    st.durable_position.1 = st.durable_position.1.max(size);
                }
                let end = st.log_end();
                st.durable_end = st.durable_end.max(next_offset).min(end);
                Ok(())
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty pages:
                // a later successful fsync would prove nothing about them.
                st.offline = true;
                st.failure_epoch += 1;
                tracing::error!(segment = %path.display(), error = %e, "fsync failed; log offline");
                Err(LogError::io("fsync", &path, e))
            }
        }
    }
}
