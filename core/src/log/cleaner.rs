//! Log compaction's decisions (R-LOG-18), apart from the files they move: which
//! segments a pass takes and in which groups, the last offset of every key in the
//! dirty part, and what of a batch survives. `PartitionLog::clean` carries them out.
//!
//! Offsets stay contiguous (I-LOG-4): a batch keeps its base offset and
//! lastOffsetDelta whatever records it loses, and a run of batches that lost every
//! record becomes one empty batch over the same offsets within one leader epoch,
//! as Kafka's cleaner leaves behind for a producer's last batch. So recovery, the
//! indexes, damage fencing and replication read a cleaned segment as any other.

use super::batch::{self, BatchHeader, RecordView};
use super::config::Compaction;
use crate::disk::{self, Disk};
use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// One sealed segment as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFacts {
    pub base_offset: u64,
    pub next_offset: u64,
    pub size: u64,
    pub max_timestamp: i64,
    pub damaged: bool,
}

/// What one pass will do: the sealed segments it may rewrite, in order, and the
/// dirty range `[first_dirty, dirty_end)` whose keys it reads first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub segments: Vec<SegmentFacts>,
    pub first_dirty: u64,
    pub dirty_end: u64,
}

/// Chooses what a pass cleans, or None when it has no reason to run: too few dirty
/// bytes, and no overdue dirty segment or expired tombstone. `sealed` are
/// the log's sealed segments in order; nothing at or past `limit` (the active
/// segment's base, the high watermark and the durable end, the least of them) is
/// cleaned, nor anything from a damaged segment on (its records cannot be read
/// whole) or from a segment younger than `min.compaction.lag.ms`.
/// Where the previous pass left the log: the first offset whose keys no pass has
/// read, and when the first tombstone it kept may go (KIP-534's reason to clean a
/// log nobody writes to any more).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanPoint {
    pub offset: u64,
    pub tombstones_due_ms: Option<u64>,
}

pub fn plan(
    sealed: &[SegmentFacts],
    log_start: u64,
    point: CleanPoint,
    limit: u64,
    now_ms: u64,
    compaction: &Compaction,
) -> Option<Plan> {
    let old_enough = |s: &SegmentFacts| {
        s.max_timestamp < 0 || ms(s.max_timestamp) + compaction.min_lag_ms <= now_ms
    };
    let segments: Vec<SegmentFacts> = sealed
        .iter()
        .filter(|s| s.next_offset > log_start)
        .take_while(|s| s.next_offset <= limit && !s.damaged && old_enough(s))
        .copied()
        .collect();
    let first_dirty = point.offset.max(log_start);
    let dirty: Vec<&SegmentFacts> = segments
        .iter()
        .filter(|s| s.next_offset > first_dirty)
        .collect();
    let dirty_end = segments.last()?.next_offset;
    let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
    let total: u64 = segments.iter().map(|s| s.size).sum();
    let ratio_ppm = dirty_bytes.saturating_mul(1_000_000) / total.max(1);
    let overdue = dirty.first().is_some_and(|first| {
        first.max_timestamp >= 0
            && ms(first.max_timestamp).saturating_add(compaction.max_lag_ms) <= now_ms
    });
    let dirty_enough = !dirty.is_empty() && ratio_ppm >= u64::from(compaction.min_dirty_ppm);
    let tombstones_due = point.tombstones_due_ms.is_some_and(|due| due <= now_ms);
    if !(dirty_enough || overdue || tombstones_due) {
        return None;
    }
    Some(Plan {
        segments,
        first_dirty,
        dirty_end,
    })
}

fn ms(timestamp: i64) -> u64 {
    u64::try_from(timestamp).unwrap_or(0)
}

/// Splits the segments below `end` into runs that one output segment can hold:
/// at most `segment_bytes` of input (the output is no larger) and offsets that fit
/// the index's u32 relative offsets. Every group has at least one segment.
pub fn groups(segments: &[SegmentFacts], end: u64, segment_bytes: u64) -> Vec<Vec<SegmentFacts>> {
    let mut out: Vec<Vec<SegmentFacts>> = Vec::new();
    for s in segments.iter().filter(|s| s.base_offset < end) {
        let fits = out.last().is_some_and(|g| {
            let bytes: u64 = g.iter().map(|x| x.size).sum();
            bytes + s.size <= segment_bytes
                && s.next_offset - g[0].base_offset <= u64::from(u32::MAX)
        });
        match out.last_mut() {
            Some(group) if fits => group.push(*s),
            _ => out.push(vec![*s]),
        }
    }
    out
}

/// The last offset of every key met in the dirty part, within a memory budget
/// (Kafka's `log.cleaner.dedupe.buffer.size`). Keys are kept whole, not hashed,
/// so no collision can ever drop a live record.
#[derive(Debug)]
pub struct KeyMap {
    latest: HashMap<Vec<u8>, u64>,
    bytes: usize,
    budget: usize,
}

/// What a key costs in the map beyond its bytes (the entry and its allocation).
const ENTRY_OVERHEAD: usize = 48;

impl KeyMap {
    pub fn new(budget: usize) -> Self {
        KeyMap {
            latest: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Adds every keyed record of a stored batch, unless that would pass the budget
    /// and the map already holds something (then nothing is added: false).
    pub fn add_batch(&mut self, stored: &[u8], records_limit: usize) -> Result<bool, String> {
        let mut keys: Vec<(Vec<u8>, u64)> = Vec::new();
        batch::visit_records(stored, records_limit, &mut |r| {
            if let Some(key) = r.key {
                keys.push((key.to_vec(), r.offset));
            }
        })?;
        let added: usize = keys
            .iter()
            .filter(|(k, _)| !self.latest.contains_key(k))
            .map(|(k, _)| k.len() + ENTRY_OVERHEAD)
            .sum();
        if !self.latest.is_empty() && self.bytes + added > self.budget {
            return Ok(false);
        }
        self.bytes += added;
        for (key, offset) in keys {
            self.latest.insert(key, offset);
        }
        Ok(true)
    }

    /// True when a later record of `key` than `offset` was met.
    pub fn superseded(&self, key: &[u8], offset: u64) -> bool {
        self.latest.get(key).is_some_and(|latest| *latest > offset)
    }
}

/// What survives of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Kept {
    All,
    Some(Vec<u8>),
    Nothing,
}

/// Filters a stored batch's records through `keep`. Control batches are kept
/// whole (they carry no key; none are written today, R-LOG-14).
pub fn filter_batch(
    stored: &[u8],
    records_limit: usize,
    keep: &mut dyn FnMut(&BatchHeader, &RecordView<'_>) -> bool,
) -> Result<Kept, String> {
    let header = BatchHeader::parse(stored)?;
    if header.is_control() || header.record_count == 0 {
        return Ok(Kept::All);
    }
    let base = u64::try_from(header.base_offset).map_err(|_| "negative base offset")?;
    let records = batch::records_of(&header, stored, records_limit)?;
    let mut kept_bytes = Vec::new();
    let (mut kept, mut max_timestamp) = (0i32, -1i64);
    let mut pos = 0;
    for index in 0..header.record_count {
        let start = pos;
        let length = batch::read_varlong(&records, &mut pos)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l <= records.len() - pos)
            .ok_or_else(|| format!("record {index}: bad length"))?;
        let body = &records[pos..pos + length];
        pos += length;
        let (timestamp_delta, offset_delta, key, value) =
            batch::record_fields(body).ok_or_else(|| format!("record {index}: bad fields"))?;
        let timestamp = header.base_timestamp.wrapping_add(timestamp_delta);
        let view = RecordView {
            offset: base.wrapping_add(offset_delta as u64),
            timestamp,
            key,
            value,
        };
        if keep(&header, &view) {
            kept += 1;
            max_timestamp = max_timestamp.max(timestamp);
            kept_bytes.extend_from_slice(&records[start..pos]);
        }
    }
    match kept {
        0 => Ok(Kept::Nothing),
        k if k == header.record_count => Ok(Kept::All),
        k => batch::with_records(stored, &kept_bytes, k, max_timestamp).map(Kept::Some),
    }
}

/// Kafka's rule of what a pass keeps of a record: a key (keyless records have no
/// place in a compacted log), no later record of that key, and for a tombstone
/// (no value), not yet `delete.retention.ms` past its batch's newest timestamp
/// once a previous pass has seen it (it lies below `first_dirty`), so a consumer
/// reading from the start has that long to see the delete.
pub struct RecordRule<'a> {
    pub keys: &'a KeyMap,
    pub first_dirty: u64,
    pub now_ms: u64,
    pub delete_retention_ms: u64,
    /// The earliest time a tombstone this pass kept may go.
    pub tombstones_due_ms: Cell<Option<u64>>,
}

impl<'a> RecordRule<'a> {
    pub fn new(keys: &'a KeyMap, first_dirty: u64, now_ms: u64, delete_retention_ms: u64) -> Self {
        RecordRule {
            keys,
            first_dirty,
            now_ms,
            delete_retention_ms,
            tombstones_due_ms: Cell::new(None),
        }
    }

    pub fn keeps(&self, header: &BatchHeader, record: &RecordView<'_>) -> bool {
        let Some(key) = record.key else {
            return false;
        };
        if self.keys.superseded(key, record.offset) {
            return false;
        }
        if record.value.is_some() || header.max_timestamp < 0 {
            return true;
        }
        let due = ms(header.max_timestamp).saturating_add(self.delete_retention_ms);
        if record.offset < self.first_dirty && due <= self.now_ms {
            return false;
        }
        let earliest = self.tombstones_due_ms.get().map_or(due, |d| d.min(due));
        self.tombstones_due_ms.set(Some(earliest));
        true
    }
}

/// A run of batches that lost every record, to be written as one empty batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyRun {
    pub start: u64,
    pub end: u64,
    pub leader_epoch: i32,
    /// The newest record timestamp of the batches it replaces (-1: none had one).
    pub max_timestamp: i64,
}

impl EmptyRun {
    /// Extends the run by a batch over `[start, end)` of `leader_epoch`, if it
    /// follows on in the same epoch and the run still fits one batch.
    pub fn extend(&mut self, start: u64, end: u64, leader_epoch: i32, max_timestamp: i64) -> bool {
        let fits = end - self.start <= i32::MAX as u64 + 1;
        if start != self.end || leader_epoch != self.leader_epoch || !fits {
            return false;
        }
        self.end = end;
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        true
    }

    /// The empty batch, stamped with the newest timestamp of what it replaces, as
    /// Kafka's cleaner writes an empty header with its batch's max timestamp: a
    /// batch with none (-1) held time retention back for good, since retention
    /// deletes oldest first (exploratory testing, 2026-12-07).
    pub fn batch(&self) -> Vec<u8> {
        batch::empty_batch(
            self.start,
            (self.end - self.start) as i32,
            self.leader_epoch,
            self.max_timestamp,
        )
    }
}

/// The file a pass writes a group's cleaned segment to; removed at open if found.
pub fn cleaned_name(first: u64, end: u64) -> String {
    format!("{first:020}-{end:020}.cleaned")
}

/// The name the cleaned file takes once it is complete and synced: its presence
/// commits the pass, and open finishes the swap (R-LOG-18).
pub fn swap_name(first: u64, end: u64) -> String {
    format!("{first:020}-{end:020}.swap")
}

/// `(first, end)` of a swap file's name.
pub fn parse_swap(name: &str) -> Option<(u64, u64)> {
    let (first, end) = name.strip_suffix(".swap")?.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(end) {
        return None;
    }
    Some((first.parse().ok()?, end.parse().ok()?))
}

/// Where the previous pass's key map ended: the first offset not yet cleaned.
pub const CLEAN_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

/// The clean point on disk ("offset" or "offset due-ms"); a missing or unreadable
/// file is the start (everything dirty, which is always safe: tombstones wait).
pub fn read_clean_point(disk: &dyn Disk, dir: &Path) -> CleanPoint {
    let path = dir.join(CLEAN_OFFSET_FILE);
    let text = disk::read_all(disk, &path)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match fields.next() {
        Some(Ok(offset)) => CleanPoint {
            offset,
            tombstones_due_ms: fields.next().and_then(Result::ok),
        },
        _ => CleanPoint::default(),
    }
}

pub fn write_clean_point(disk: &dyn Disk, dir: &Path, point: CleanPoint) -> io::Result<()> {
    let text = match point.tombstones_due_ms {
        Some(due) => format!("{} {due}\n", point.offset),
        None => format!("{}\n", point.offset),
    };
    disk::write_atomically(disk, &dir.join(CLEAN_OFFSET_FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{build_compressed_batch, Record};
    use crate::log::compression;

    fn facts(base: u64, next: u64, size: u64, ts: i64) -> SegmentFacts {
        SegmentFacts {
            base_offset: base,
            next_offset: next,
            size,
            max_timestamp: ts,
            damaged: false,
        }
    }

    fn at(offset: u64) -> CleanPoint {
        CleanPoint {
            offset,
            tombstones_due_ms: None,
        }
    }

    #[test]
    fn r_log_18_an_expired_tombstone_is_a_reason_to_clean_a_quiet_log() {
        let sealed = [facts(0, 10, 100, 5), facts(10, 20, 100, 6)];
        let c = Compaction::default();
        let quiet = |due| CleanPoint {
            offset: 20,
            tombstones_due_ms: Some(due),
        };
        assert_eq!(plan(&sealed, 0, quiet(101), 20, 100, &c), None);
        let p = plan(&sealed, 0, quiet(100), 20, 100, &c).expect("a tombstone is due");
        assert_eq!((p.first_dirty, p.dirty_end), (20, 20));
    }

    fn record(key: &str, value: Option<&str>) -> Record {
        Record {
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            timestamp_delta: 0,
        }
    }

    #[test]
    fn r_log_18_a_pass_waits_for_the_dirty_ratio_unless_a_segment_is_overdue() {
        let sealed = [
            facts(0, 10, 100, 5),
            facts(10, 20, 100, 6),
            facts(20, 30, 100, 7),
        ];
        let c = Compaction::default();
        // Two thirds dirty: cleaned.
        let p = plan(&sealed, 0, at(10), 30, 100, &c).expect("dirty enough");
        assert_eq!((p.first_dirty, p.dirty_end, p.segments.len()), (10, 30, 3));
        // One third dirty: left, until the dirty part is older than max lag.
        assert_eq!(plan(&sealed, 0, at(20), 30, 100, &c), None);
        let overdue = Compaction {
            max_lag_ms: 50,
            ..c
        };
        assert!(plan(&sealed, 0, at(20), 30, 100, &overdue).is_some());
        // Nothing dirty, nothing to do.
        assert_eq!(plan(&sealed, 0, at(30), 30, 100, &c), None);
    }

    #[test]
    fn r_log_18_nothing_at_or_past_the_limit_young_or_damaged_is_cleaned() {
        let sealed = [
            facts(0, 10, 100, 5),
            facts(10, 20, 100, 90),
            facts(20, 30, 100, 7),
        ];
        let c = Compaction {
            min_lag_ms: 20,
            ..Compaction::default()
        };
        let p = plan(&sealed, 0, at(0), 30, 100, &c).expect("the first is old enough");
        assert_eq!(p.dirty_end, 10, "the young segment stops the plan");
        let p = plan(&sealed, 0, at(0), 15, 100, &Compaction::default()).expect("below the limit");
        assert_eq!(p.dirty_end, 10, "a segment reaching past the limit is left");
        let mut damaged = sealed;
        damaged[0].damaged = true;
        assert_eq!(
            plan(&damaged, 0, at(0), 30, 100, &Compaction::default()),
            None
        );
    }

    #[test]
    fn r_log_18_groups_fit_one_segment() {
        let segs = [
            facts(0, 10, 60, 1),
            facts(10, 20, 60, 1),
            facts(20, 30, 30, 1),
            facts(30, 40, 10, 1),
        ];
        let g = groups(&segs, 40, 100);
        let bases: Vec<Vec<u64>> = g
            .iter()
            .map(|g| g.iter().map(|s| s.base_offset).collect())
            .collect();
        assert_eq!(bases, vec![vec![0], vec![10, 20, 30]]);
        assert_eq!(
            groups(&segs, 15, 100).len(),
            2,
            "segments from the map's end are left"
        );
    }

    #[test]
    fn r_log_18_a_batch_keeps_its_offsets_and_only_the_last_record_of_each_key(
    ) -> Result<(), String> {
        for codec in [
            compression::NONE,
            compression::GZIP,
            compression::LZ4,
            compression::ZSTD,
            compression::SNAPPY,
        ] {
            let mut stored = build_compressed_batch(
                &[
                    record("a", Some("1")),
                    record("b", Some("1")),
                    record("a", Some("2")),
                ],
                1_000,
                codec,
            )?;
            batch::set_base_offset(&mut stored, 40);
            let mut keys = KeyMap::new(1 << 20);
            assert!(keys.add_batch(&stored, 1 << 20)?);
            let rule = RecordRule::new(&keys, 40, 2_000, 10);
            let Kept::Some(cleaned) = filter_batch(&stored, 1 << 20, &mut |h, r| rule.keeps(h, r))?
            else {
                return Err("one record should go".into());
            };
            assert!(batch::crc_is_valid(&cleaned));
            let header = BatchHeader::parse(&cleaned)?;
            assert_eq!(
                (
                    header.base_offset,
                    header.last_offset_delta,
                    header.record_count
                ),
                (40, 2, 2)
            );
            assert_eq!(header.compression(), codec);
            let mut seen = Vec::new();
            batch::visit_records(&cleaned, 1 << 20, &mut |r| {
                seen.push((
                    r.offset,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                ))
            })?;
            assert_eq!(
                seen,
                vec![
                    (41, Some(b"b".to_vec()), Some(b"1".to_vec())),
                    (42, Some(b"a".to_vec()), Some(b"2".to_vec()))
                ]
            );
        }
        Ok(())
    }

    #[test]
    fn r_log_18_tombstones_outlive_their_first_pass_by_the_delete_retention() -> Result<(), String>
    {
        let mut stored = build_compressed_batch(&[record("a", None)], 1_000, compression::NONE)?;
        batch::set_base_offset(&mut stored, 5);
        let keys = KeyMap::new(1 << 20);
        let keeps = |first_dirty, now_ms| {
            let rule = RecordRule::new(&keys, first_dirty, now_ms, 100);
            filter_batch(&stored, 1 << 20, &mut |h, r| rule.keeps(h, r))
        };
        assert_eq!(keeps(0, 10_000)?, Kept::All, "first pass: still dirty");
        assert_eq!(keeps(6, 1_050)?, Kept::All, "within delete.retention.ms");
        assert_eq!(keeps(6, 1_101)?, Kept::Nothing, "past it");
        Ok(())
    }

    #[test]
    fn r_log_18_keyless_records_are_dropped_and_the_key_map_keeps_to_its_budget(
    ) -> Result<(), String> {
        let mut keyless = build_compressed_batch(
            &[Record {
                key: None,
                value: Some(b"v".to_vec()),
                timestamp_delta: 0,
            }],
            1,
            compression::NONE,
        )?;
        batch::set_base_offset(&mut keyless, 0);
        let keys = KeyMap::new(0);
        let rule = RecordRule::new(&keys, 0, 0, 0);
        assert_eq!(
            filter_batch(&keyless, 1 << 20, &mut |h, r| rule.keeps(h, r))?,
            Kept::Nothing
        );
        let mut tiny = KeyMap::new(ENTRY_OVERHEAD + 1);
        let one = build_compressed_batch(&[record("a", Some("1"))], 1, compression::NONE)?;
        let other = build_compressed_batch(&[record("b", Some("1"))], 1, compression::NONE)?;
        assert!(
            tiny.add_batch(&one, 1 << 20)?,
            "the first batch always goes in"
        );
        assert!(tiny.add_batch(&one, 1 << 20)?, "a known key costs nothing");
        assert!(
            !tiny.add_batch(&other, 1 << 20)?,
            "a new key past the budget does not"
        );
        Ok(())
    }

    #[test]
    fn r_log_18_an_empty_run_stays_in_one_leader_epoch_and_one_batch() {
        let mut run = EmptyRun {
            start: 10,
            end: 20,
            leader_epoch: 3,
            max_timestamp: 700,
        };
        assert!(run.extend(20, 25, 3, 900));
        assert!(!run.extend(26, 30, 3, 1000), "not adjacent");
        assert!(!run.extend(25, 30, 4, 1000), "another epoch");
        assert!(
            !run.extend(25, 10 + (1u64 << 31) + 1, 3, 1000),
            "too many offsets for one batch"
        );
        let stamped = BatchHeader::parse(&run.batch()).expect("a valid batch");
        assert_eq!(
            (stamped.base_timestamp, stamped.max_timestamp),
            (900, 900),
            "the newest timestamp of what it replaces, for time retention"
        );
        let header = BatchHeader::parse(&run.batch()).expect("a valid batch");
        assert_eq!(
            (
                header.base_offset,
                header.last_offset_delta,
                header.record_count
            ),
            (10, 14, 0)
        );
    }

    #[test]
    fn r_log_18_swap_names_round_trip() {
        assert_eq!(parse_swap(&swap_name(7, 99)), Some((7, 99)));
        assert_eq!(parse_swap(&cleaned_name(7, 99)), None);
        assert_eq!(parse_swap("00000000000000000007.log"), None);
    }
}
