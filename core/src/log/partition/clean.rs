//! The cleaning pass of a compacted partition log (R-LOG-18): reads the keys of the
//! dirty part, rewrites groups of sealed segments through the cleaner's rules, and
//! swaps each output in so that a crash at any point leaves either the old segments
//! or the new one, never both and never neither:
//!
//! 1. the output is written as `<first>-<end>.cleaned` and fsynced;
//! 2. it is renamed to `<first>-<end>.swap` and the directory fsynced: the commit;
//! 3. the group's old files are removed, the swap renamed to `<first>.log`, the
//!    directory fsynced, and the new indexes written.
//!
//! Open removes `.cleaned` files and finishes every `.swap` with step 3.

use super::{LogState, PartitionLog};
use crate::disk::{Disk, DiskFile};
use crate::log::batch::BatchHeader;
use crate::log::cleaner::{
    self, CleanPoint, EmptyRun, Kept, KeyMap, Plan, RecordRule, SegmentFacts,
};
use crate::log::error::{LogError, Result};
use crate::log::frame::{self, FRAME_HEADER_LEN};
use crate::log::frame_reader::{FrameReader, Stop, SCAN_BLOCK};
use crate::log::segment::{self, Segment};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanOutcome {
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
}

/// A sealed segment's file, held for the pass.
struct Source {
    facts: SegmentFacts,
    path: PathBuf,
    file: Arc<dyn DiskFile>,
}

/// What the pass reads from the log's state at its start.
struct Start {
    plan: Plan,
    tombstone_ms: u64,
    segment_bytes: u64,
    index_interval: u64,
    records_limit: usize,
    sources: Vec<Source>,
}

impl PartitionLog {
    /// One cleaning pass, if the log is compacted and dirty enough (R-LOG-18). The
    /// key map holds at most `key_map_bytes`; what does not fit waits for the next
    /// pass. Reads and appends go on meanwhile: the log's lock is held only to
    /// plan and to swap each group in.
    pub fn clean(&self, now_ms: u64, key_map_bytes: usize) -> Result<CleanOutcome> {
        let Some(start) = self.clean_start(now_ms)? else {
            return Ok(CleanOutcome::default());
        };
        let (keys, map_end) = read_keys(&start, key_map_bytes)?;
        let rule = RecordRule::new(&keys, start.plan.first_dirty, now_ms, start.tombstone_ms);
        let mut outcome = CleanOutcome::default();
        for group in cleaner::groups(&start.plan.segments, map_end, start.segment_bytes) {
            let sources: Vec<&Source> = group
                .iter()
                .filter_map(|g| start.sources.iter().find(|s| s.facts == *g))
                .collect();
            self.clean_group(&sources, &rule, &start, &mut outcome)?;
        }
        let point = CleanPoint {
            offset: map_end,
            tombstones_due_ms: rule.tombstones_due_ms.get(),
        };
        let disk = self.shared.disk.as_ref();
        let file = self.shared.dir.join(cleaner::CLEAN_OFFSET_FILE);
        cleaner::write_clean_point(disk, &self.shared.dir, point)
            .map_err(|e| LogError::io("write", &file, e))?;
        self.lock().clean_point = point;
        Ok(outcome)
    }

    fn clean_start(&self, now_ms: u64) -> Result<Option<Start>> {
        let st = self.lock();
        let Some(compaction) = st.config.compaction else {
            return Ok(None);
        };
        if st.offline {
            return Ok(None);
        }
        let active_base = st.active()?.base_offset;
        let limit = active_base.min(st.high_watermark).min(st.durable_end);
        let sealed: Vec<&Segment> = st.segments.range(..active_base).map(|(_, s)| s).collect();
        let facts: Vec<SegmentFacts> = sealed.iter().map(|s| facts_of(s)).collect();
        let Some(plan) = cleaner::plan(
            &facts,
            st.log_start,
            st.clean_point,
            limit,
            now_ms,
            &compaction,
        ) else {
            return Ok(None);
        };
        let sources = sealed
            .iter()
            .filter(|s| plan.segments.iter().any(|f| f.base_offset == s.base_offset))
            .map(|s| {
                Ok(Source {
                    facts: facts_of(s),
                    path: s.path.clone(),
                    file: self.shared.file_of(s)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(Start {
            plan,
            tombstone_ms: compaction.delete_retention_ms,
            segment_bytes: st.config.segment_bytes,
            index_interval: st.config.index_interval_bytes,
            records_limit: st.config.max_records_bytes(),
            sources,
        }))
    }

    /// Writes one group's cleaned segment and swaps it in; a group whose segments
    /// changed meanwhile (retention, a truncation) is left as it is.
    fn clean_group(
        &self,
        group: &[&Source],
        rule: &RecordRule<'_>,
        start: &Start,
        outcome: &mut CleanOutcome,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(());
        };
        let (base, end) = (first.facts.base_offset, last.facts.next_offset);
        let disk = self.shared.disk.as_ref();
        let cleaned = self.shared.dir.join(cleaner::cleaned_name(base, end));
        let written = write_cleaned(disk, &cleaned, group, rule, start, outcome);
        let swapped = written.and_then(|out| self.swap_in(out, group, end));
        match swapped {
            Ok(true) => {
                outcome.segments_read += group.len();
                outcome.segments_written += 1;
                Ok(())
            }
            Ok(false) | Err(_) => {
                if disk.exists(&cleaned) {
                    let _ = disk.remove_file(&cleaned);
                }
                swapped.map(|_| ())
            }
        }
    }

    /// Steps 2 and 3 of the swap, under the log's lock so nothing changes the
    /// group's segments in between. False if they changed since the pass began.
    fn swap_in(&self, mut out: Segment, group: &[&Source], end: u64) -> Result<bool> {
        let disk = self.shared.disk.as_ref();
        let dir = &self.shared.dir;
        let base = out.base_offset;
        let mut st = self.lock();
        if !group_unchanged(&st, group, base, end) {
            return Ok(false);
        }
        let swap = dir.join(cleaner::swap_name(base, end));
        disk.rename(&out.path, &swap)
            .map_err(|e| LogError::io("rename", &out.path, e))?;
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
        finish_swap(disk, dir, base, end)?;
        out.path = dir.join(segment::file_name(base, segment::LOG_SUFFIX));
        if let Err(e) = out.write_indexes(disk, dir) {
            // Open rebuilds missing or stale indexes by a strict scan.
            tracing::warn!(segment = %out.path.display(), error = %e, "cleaned segment's indexes not written");
        }
        for source in group {
            st.segments.remove(&source.facts.base_offset);
        }
        self.shared.files.opened(&out.file);
        st.segments.insert(base, out);
        Ok(true)
    }
}

fn facts_of(s: &Segment) -> SegmentFacts {
    SegmentFacts {
        base_offset: s.base_offset,
        next_offset: s.next_offset,
        size: s.size,
        max_timestamp: s.max_timestamp,
        damaged: !s.damage.is_empty(),
    }
}

fn group_unchanged(st: &LogState, group: &[&Source], base: u64, end: u64) -> bool {
    let same = group.iter().all(|g| {
        st.segments
            .get(&g.facts.base_offset)
            .is_some_and(|s| facts_of(s) == g.facts)
    });
    let active_beyond = st.active().is_ok_and(|a| a.base_offset >= end);
    same && active_beyond && st.segments.range(base..end).count() == group.len()
}

/// Step 3 of the swap, also run by open for a swap a crash interrupted: removes
/// every segment the swap replaces, then renames it into place.
pub(super) fn finish_swap(disk: &dyn Disk, dir: &Path, base: u64, end: u64) -> Result<()> {
    let names = disk
        .list_dir(dir)
        .map_err(|e| LogError::io("list", dir, e))?;
    for old in names.iter().filter_map(|n| segment::parse_base_offset(n)) {
        if (base..end).contains(&old) {
            Segment::delete_files(disk, dir, old)?;
        }
    }
    let swap = dir.join(cleaner::swap_name(base, end));
    let target = dir.join(segment::file_name(base, segment::LOG_SUFFIX));
    disk.rename(&swap, &target)
        .map_err(|e| LogError::io("rename", &swap, e))?;
    disk.sync_dir(dir)
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

/// What open does first in a partition directory: drops unfinished outputs and
/// finishes committed swaps. True if it changed anything.
pub(super) fn recover_cleaning(disk: &dyn Disk, dir: &Path, names: &[String]) -> Result<bool> {
    let mut changed = false;
    for name in names.iter().filter(|n| n.ends_with(".cleaned")) {
        let path = dir.join(name);
        disk.remove_file(&path)
            .map_err(|e| LogError::io("remove", &path, e))?;
        changed = true;
    }
    for (base, end) in names.iter().filter_map(|n| cleaner::parse_swap(n)) {
        tracing::info!(dir = %dir.display(), base, end, "finishing a cleaned segment's swap");
        finish_swap(disk, dir, base, end)?;
        changed = true;
    }
    Ok(changed)
}

/// Reads the dirty part's keys into a map, stopping where the budget ends.
/// Returns the map and the first offset it does not cover.
fn read_keys(start: &Start, budget: usize) -> Result<(KeyMap, u64)> {
    let mut keys = KeyMap::new(budget);
    let first_dirty = start.plan.first_dirty;
    let mut map_end = None;
    let dirty = start
        .sources
        .iter()
        .filter(|s| s.facts.next_offset > first_dirty);
    for source in dirty {
        for_each_batch(source, &mut |stored, header| {
            let batch_end = header.base_offset as u64 + header.offset_count();
            if map_end.is_some() || batch_end <= first_dirty {
                return Ok(());
            }
            let added = keys
                .add_batch(stored, start.records_limit)
                .map_err(LogError::InvalidBatch)?;
            if !added {
                map_end = Some((header.base_offset as u64).max(first_dirty));
            }
            Ok(())
        })?;
        if let Some(end) = map_end {
            return Ok((keys, end));
        }
    }
    Ok((keys, start.plan.dirty_end))
}

/// Calls `visit` with every batch of a sealed segment, checked: frame checksums,
/// batch headers and contiguous offsets. Damage ends the pass (the scrub and
/// reads fence it; the next pass stops before it).
fn for_each_batch(
    source: &Source,
    visit: &mut dyn FnMut(&[u8], &BatchHeader) -> Result<()>,
) -> Result<()> {
    let mut reader = FrameReader::new(
        source.file.as_ref(),
        &source.path,
        0,
        source.facts.size,
        SCAN_BLOCK,
    );
    let mut expected = source.facts.base_offset;
    let damaged = |position: u64, offset: u64, reason: String| LogError::Corrupt {
        path: source.path.clone(),
        position,
        offset,
        reason,
    };
    loop {
        let frame = match reader.next_frame()? {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(Stop::Torn { position }) => {
                return Err(damaged(position, expected, "frame cut short".into()))
            }
            Err(Stop::Corrupt { position, reason }) => {
                return Err(damaged(position, expected, reason))
            }
        };
        let header =
            BatchHeader::parse(frame.payload).map_err(|r| damaged(frame.position, expected, r))?;
        if header.base_offset != expected as i64 {
            return Err(damaged(
                frame.position,
                expected,
                format!(
                    "batch at offset {} where {expected} was expected",
                    header.base_offset
                ),
            ));
        }
        visit(frame.payload, &header)?;
        expected += header.offset_count();
    }
    if expected != source.facts.next_offset {
        return Err(damaged(
            source.facts.size,
            expected,
            "segment ends before its offsets do".into(),
        ));
    }
    Ok(())
}

/// Step 1: the group's batches through the rule into a new, synced segment file.
fn write_cleaned(
    disk: &dyn Disk,
    path: &Path,
    group: &[&Source],
    rule: &RecordRule<'_>,
    start: &Start,
    outcome: &mut CleanOutcome,
) -> Result<Segment> {
    let base = group.first().map_or(0, |s| s.facts.base_offset);
    let mut out = Segment::create_at(disk, path.to_path_buf(), base)?;
    let mut run: Option<EmptyRun> = None;
    for source in group {
        outcome.bytes_read += source.facts.size;
        for_each_batch(source, &mut |stored, header| {
            let mut removed = 0u64;
            let kept = cleaner::filter_batch(stored, start.records_limit, &mut |h, r| {
                let keep = rule.keeps(h, r);
                removed += u64::from(!keep);
                keep
            })
            .map_err(LogError::InvalidBatch)?;
            outcome.records_removed += removed;
            let (from, to) = (
                header.base_offset as u64,
                header.base_offset as u64 + header.offset_count(),
            );
            let epoch = header.partition_leader_epoch;
            match kept {
                Kept::Nothing => {
                    let newest = header.max_timestamp;
                    if !run
                        .as_mut()
                        .is_some_and(|r| r.extend(from, to, epoch, newest))
                    {
                        flush(&mut out, run.take(), start.index_interval)?;
                        run = Some(EmptyRun {
                            start: from,
                            end: to,
                            leader_epoch: epoch,
                            max_timestamp: newest,
                        });
                    }
                    Ok(())
                }
                Kept::All => {
                    flush(&mut out, run.take(), start.index_interval)?;
                    append(&mut out, stored, start.index_interval)
                }
                Kept::Some(filtered) => {
                    flush(&mut out, run.take(), start.index_interval)?;
                    append(&mut out, &filtered, start.index_interval)
                }
            }
        })?;
    }
    flush(&mut out, run.take(), start.index_interval)?;
    let end = group.last().map_or(base, |s| s.facts.next_offset);
    if out.next_offset != end {
        return Err(LogError::Corrupt {
            path: path.to_path_buf(),
            position: out.size,
            offset: out.next_offset,
            reason: format!(
                "cleaned output ends at {} instead of {end}",
                out.next_offset
            ),
        });
    }
    out.seal_file()?;
    outcome.bytes_written += out.size;
    Ok(out)
}

fn flush(out: &mut Segment, run: Option<EmptyRun>, index_interval: u64) -> Result<()> {
    match run {
        Some(run) => append(out, &run.batch(), index_interval),
        None => Ok(()),
    }
}

fn append(out: &mut Segment, payload: &[u8], index_interval: u64) -> Result<()> {
    let header = BatchHeader::parse(payload).map_err(LogError::InvalidBatch)?;
    let mut framed = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    framed.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    framed.extend_from_slice(payload);
    {
        let (head, body) = framed.split_at_mut(FRAME_HEADER_LEN);
        frame::write_header(head, body);
    }
    let position = out.size;
    out.handle()?
        .write_at(&framed, position)
        .map_err(|e| LogError::io("write", &out.path, e))?;
    out.record_batch(position, framed.len() as u64, &header, index_interval);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{MemDisk, OpenMode};
    use crate::log::batch::{self, build_compressed_batch, Record};
    use crate::log::{compression, Compaction, LogConfig};
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::Mutex;

    type Stored = BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)>;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 256,
            retention_ms: None,
            compaction: Some(Compaction {
                delete_retention_ms: 1_000,
                ..Compaction::default()
            }),
            ..LogConfig::default()
        }
    }

    fn dir() -> PathBuf {
        PathBuf::from("/data/logs/t-0")
    }

    /// Appends `rounds` batches of three records over ten keys (every fifth value a
    /// tombstone, every third batch compressed); returns every record by offset.
    fn fill(log: &PartitionLog, rounds: u64, now_ms: u64) -> Result<Stored> {
        let mut written = Stored::new();
        for round in 0..rounds {
            let records: Vec<Record> = (0..3)
                .map(|i| {
                    let n = round * 3 + i;
                    Record {
                        key: Some(format!("key-{}", n % 10).into_bytes()),
                        value: (n % 5 != 4).then(|| format!("value-{n}").into_bytes()),
                        timestamp_delta: 0,
                    }
                })
                .collect();
            let codec = if round % 3 == 0 {
                compression::LZ4
            } else {
                compression::NONE
            };
            let b = build_compressed_batch(&records, now_ms as i64, codec)
                .map_err(LogError::InvalidBatch)?;
            let info = log.append(&b, now_ms, 1 + (round / 40) as i32)?;
            for (i, r) in records.into_iter().enumerate() {
                written.insert(
                    info.base_offset + i as u64,
                    (r.key.unwrap_or_default(), r.value),
                );
            }
        }
        log.set_high_watermark(log.log_end_offset());
        log.checkpoint()?;
        Ok(written)
    }

    /// Every record the log serves, by offset, checking offsets only grow.
    fn contents(log: &PartitionLog) -> Result<Stored> {
        let mut seen = Stored::new();
        let mut at = log.log_start_offset();
        while at < log.log_end_offset() {
            let read = log.read(at, 1 << 20, u64::MAX)?;
            let mut rest = &read.records[..];
            while rest.len() >= 12 {
                let len = 12 + i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
                batch::visit_records(&rest[..len], 1 << 20, &mut |r| {
                    assert!(seen.keys().next_back().is_none_or(|last| *last < r.offset));
                    seen.insert(
                        r.offset,
                        (
                            r.key.unwrap_or_default().to_vec(),
                            r.value.map(<[u8]>::to_vec),
                        ),
                    );
                })
                .map_err(LogError::InvalidBatch)?;
                rest = &rest[len..];
            }
            at = read.next_offset;
        }
        Ok(seen)
    }

    /// The last record of every key among `written`.
    fn latest(written: &Stored) -> Stored {
        let mut by_key: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for (offset, (key, _)) in written {
            by_key.insert(key.clone(), *offset);
        }
        by_key.values().map(|o| (*o, written[o].clone())).collect()
    }

    /// What R-LOG-18 promises of a cleaned log: a subset of what was written, at
    /// the same offsets, holding the last record of every key that is not an
    /// expired tombstone, and ending where it did.
    fn check_compacted(log: &PartitionLog, written: &Stored, end: u64) -> Result<Stored> {
        let now = contents(log)?;
        assert_eq!(log.log_end_offset(), end);
        for (offset, record) in &now {
            assert_eq!(written.get(offset), Some(record), "offset {offset} changed");
        }
        for (offset, record) in latest(written) {
            if record.1.is_some() {
                assert_eq!(
                    now.get(&offset),
                    Some(&record),
                    "the last record of a key lost"
                );
            }
        }
        Ok(now)
    }

    #[test]
    fn r_log_18_a_pass_keeps_the_last_record_of_every_key_at_its_offset() -> Result<()> {
        let disk = MemDisk::new();
        let log = PartitionLog::open(Arc::new(disk.clone()), &dir(), config(), None)?;
        let written = fill(&log, 120, 10_000)?;
        let end = log.log_end_offset();
        let before = log.size_bytes();
        let outcome = log.clean(10_000, 1 << 20)?;
        assert!(
            outcome.segments_written > 0 && outcome.records_removed > 0,
            "{outcome:?}"
        );
        assert!(
            log.size_bytes() < before / 2,
            "{} of {before} bytes left",
            log.size_bytes()
        );
        let now = check_compacted(&log, &written, end)?;
        // The active segment is not cleaned: its records are all there.
        let active_base = log.lock().active()?.base_offset;
        assert!(written
            .range(active_base..)
            .all(|(o, r)| now.get(o) == Some(r)));
        // Tombstones outlive the first pass ...
        let tombstones = |s: &Stored| {
            s.range(..active_base)
                .filter(|(_, r)| r.1.is_none())
                .count()
        };
        assert!(tombstones(&now) > 0);
        drop(log);
        let reopened = PartitionLog::open(Arc::new(disk.clone()), &dir(), config(), None)?;
        assert_eq!(contents(&reopened)?, now, "the same after a restart");
        // ... and go once delete.retention.ms has passed since a pass saw them: the
        // pass kept when the first is due (in cleaner-offset-checkpoint, so across
        // the restart), and that alone starts a pass on a log nobody writes to.
        assert_eq!(reopened.clean(10_900, 1 << 20)?, CleanOutcome::default());
        assert!(reopened.clean(11_001, 1 << 20)?.segments_written > 0);
        let later = contents(&reopened)?;
        assert_eq!(tombstones(&later), 0);
        for (offset, record) in latest(&written).into_iter().filter(|(_, r)| r.1.is_some()) {
            assert_eq!(later.get(&offset), Some(&record));
        }
        Ok(())
    }

    #[test]
    fn r_log_18_a_small_key_map_cleans_in_several_passes() -> Result<()> {
        let disk = MemDisk::new();
        let log = PartitionLog::open(Arc::new(disk.clone()), &dir(), config(), None)?;
        let written = fill(&log, 120, 10_000)?;
        let end = log.log_end_offset();
        // Room for about three keys per pass.
        let first = log.clean(10_000, 3 * 60)?;
        check_compacted(&log, &written, end)?;
        let mut passes = 1;
        while log.clean(10_000, 3 * 60)?.segments_written > 0 {
            passes += 1;
            check_compacted(&log, &written, end)?;
            assert!(passes < 200, "cleaning never settles");
        }
        assert!(first.segments_written > 0 && passes > 1);
        Ok(())
    }

    /// A disk that stops working after a number of changes, keeping what a power
    /// cut at that moment would have left.
    #[derive(Debug)]
    struct Cut {
        inner: MemDisk,
        left: Mutex<u64>,
        at_cut: Mutex<Option<MemDisk>>,
    }

    impl Cut {
        fn change(&self) -> io::Result<()> {
            let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
            if *left == 0 {
                let mut at = self.at_cut.lock().unwrap_or_else(|p| p.into_inner());
                at.get_or_insert_with(|| self.inner.durable_copy());
                return Err(io::Error::other("power cut"));
            }
            *left -= 1;
            Ok(())
        }
    }

    #[derive(Debug)]
    struct CutFile {
        disk: Arc<Cut>,
        inner: Arc<dyn DiskFile>,
    }

    impl DiskFile for CutFile {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
            self.inner.read_at(buf, pos)
        }
        fn write_at(&self, data: &[u8], pos: u64) -> io::Result<()> {
            self.disk.change()?;
            self.inner.write_at(data, pos)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.disk.change()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.disk.change()?;
            self.inner.sync_data()
        }
    }

    #[derive(Debug, Clone)]
    struct CutDisk(Arc<Cut>);

    impl Disk for CutDisk {
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            self.0.inner.create_dir_all(dir)
        }
        fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
            self.0.inner.list_dir(dir)
        }
        fn is_dir(&self, path: &Path) -> bool {
            self.0.inner.is_dir(path)
        }
        fn exists(&self, path: &Path) -> bool {
            self.0.inner.exists(path)
        }
        fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
            if !matches!(mode, OpenMode::Existing) {
                self.0.change()?;
            }
            let inner = self.0.inner.open_file(path, mode)?;
            Ok(Arc::new(CutFile {
                disk: Arc::clone(&self.0),
                inner,
            }))
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.0.change()?;
            self.0.inner.remove_file(path)
        }
        fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
            self.0.change()?;
            self.0.inner.remove_dir_all(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.0.change()?;
            self.0.inner.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.0.change()?;
            self.0.inner.sync_dir(dir)
        }
    }

    #[test]
    fn r_log_18_a_crash_at_any_step_of_a_pass_loses_nothing_and_duplicates_nothing() -> Result<()> {
        let base = MemDisk::new();
        let written = {
            let log = PartitionLog::open(Arc::new(base.clone()), &dir(), config(), None)?;
            let written = fill(&log, 60, 10_000)?;
            log.close()?;
            written
        };
        let end = written.keys().next_back().map_or(0, |o| o + 1);
        let mut cut_at = 0;
        loop {
            let cut = Arc::new(Cut {
                inner: base.durable_copy(),
                left: Mutex::new(u64::MAX),
                at_cut: Mutex::new(None),
            });
            let log =
                PartitionLog::open(Arc::new(CutDisk(Arc::clone(&cut))), &dir(), config(), None)?;
            log.set_high_watermark(end);
            *cut.left.lock().unwrap_or_else(|p| p.into_inner()) = cut_at;
            let finished = log.clean(10_000, 1 << 20).is_ok();
            let after = cut.at_cut.lock().unwrap_or_else(|p| p.into_inner()).take();
            let after = after.unwrap_or_else(|| cut.inner.durable_copy());
            drop(log);
            let reopened = PartitionLog::open(Arc::new(after.clone()), &dir(), config(), None)?;
            check_compacted(&reopened, &written, end)?;
            let names = after
                .list_dir(&dir())
                .map_err(|e| LogError::io("list", &dir(), e))?;
            assert!(
                !names
                    .iter()
                    .any(|n| n.ends_with(".swap") || n.ends_with(".cleaned")),
                "open leaves no cleaning file behind: {names:?}"
            );
            if finished
                && cut
                    .at_cut
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_none()
            {
                assert!(cut_at > 10, "the pass took {cut_at} steps");
                return Ok(());
            }
            cut_at += 1;
        }
    }

    #[test]
    fn r_log_18_logs_that_are_not_compacted_are_never_cleaned() -> Result<()> {
        let disk = MemDisk::new();
        let plain = LogConfig {
            compaction: None,
            ..config()
        };
        let log = PartitionLog::open(Arc::new(disk), &dir(), plain, None)?;
        let written = fill(&log, 60, 10_000)?;
        assert_eq!(log.clean(10_000, 1 << 20)?, CleanOutcome::default());
        assert_eq!(contents(&log)?, written);
        Ok(())
    }

    #[test]
    fn r_log_18_nothing_above_the_high_watermark_is_cleaned() -> Result<()> {
        let disk = MemDisk::new();
        let log = PartitionLog::open(Arc::new(disk), &dir(), config(), None)?;
        let written = fill(&log, 60, 10_000)?;
        log.set_high_watermark(0);
        assert_eq!(log.clean(10_000, 1 << 20)?, CleanOutcome::default());
        assert_eq!(contents(&log)?, written);
        Ok(())
    }
}
