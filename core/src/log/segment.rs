//! One segment: a file of frames, named by the offset of its first batch, with its
//! sparse offset and time indexes.

use super::batch::BatchHeader;
use super::damage::{self, Damage};
use super::error::{LogError, Result};
use super::frame::FRAME_HEADER_LEN;
use super::frame_reader::{FrameReader, Stop, SCAN_BLOCK};
use super::index::{OffsetIndex, TimeIndex};
use super::open_files::FileSlot;
use crate::disk::{Disk, DiskFile, OpenMode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";

pub fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset encoded in a segment file name, if it is one of ours.
pub fn parse_base_offset(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One segment of a partition log. The last segment of a log is its active one.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    /// Its file: the active segment's is always open; a sealed one's may be closed
    /// by the broker's bound on open files and reopened by the next read (R-LOG-19).
    pub file: Arc<FileSlot>,
    /// Bytes of valid frames.
    pub size: u64,
    /// The offset after the last batch in this segment.
    pub next_offset: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub max_timestamp: i64,
    bytes_since_index: u64,
    /// When the first batch was appended to this segment since it was opened, for
    /// rolling by age.
    pub first_append_ms: Option<u64>,
    /// Producer state found by a recovery scan (empty if the segment was not scanned).
    pub scanned_producers: super::producers::ProducerStates,
    /// (leader epoch, first offset) of each epoch a recovery scan met, in order.
    pub scanned_epochs: Vec<(i32, u64)>,
    /// Damaged ranges found so far, in file order (R-LOG-13).
    pub damage: Vec<Damage>,
}

/// What recovery may assume about the end of a segment it scans (R-LOG-13).
#[derive(Debug, Clone, Copy)]
pub enum Tail {
    /// A sealed segment was fsynced whole before its successor existed: nothing in
    /// it can be torn, and its offsets end where the next segment begins.
    Sealed { end_offset: u64 },
    /// The active segment: bytes past the durable point (if one is known) may be a
    /// torn write.
    Active { durable: Option<(u64, u64)> },
}

impl Tail {
    /// The durable prefix: (bytes, end offset).
    fn durable(self) -> Option<(u64, u64)> {
        match self {
            Tail::Sealed { .. } => None,
            Tail::Active { durable } => durable,
        }
    }
}

/// What a scan that must not cut anything found wrong.
fn corrupt(path: &Path, position: u64, offset: u64, reason: String) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        offset,
        reason,
    }
}

impl Segment {
    pub fn paths(dir: &Path, base_offset: u64) -> [PathBuf; 3] {
        [
            dir.join(file_name(base_offset, LOG_SUFFIX)),
            dir.join(file_name(base_offset, INDEX_SUFFIX)),
            dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
        ]
    }

    /// Creates a new, empty segment file. The caller syncs the directory.
    pub fn create(disk: &dyn Disk, dir: &Path, base_offset: u64) -> Result<Self> {
        let [path, index_path, time_path] = Self::paths(dir, base_offset);
        // Stale indexes of an earlier segment with this base must not be trusted later.
        for stale in [&index_path, &time_path] {
            if disk.exists(stale) {
                disk.remove_file(stale)
                    .map_err(|e| LogError::io("remove", stale, e))?;
            }
        }
        let file = disk
            .open_file(&path, OpenMode::CreateNew)
            .map_err(|e| LogError::io("create", &path, e))?;
        Ok(Self::empty(path, file, base_offset))
    }

    /// Creates an empty segment in a file of another name (the cleaner's output,
    /// renamed into place once complete), replacing any leftover of that name.
    pub fn create_at(disk: &dyn Disk, path: PathBuf, base_offset: u64) -> Result<Self> {
        let file = disk
            .open_file(&path, OpenMode::Create)
            .map_err(|e| LogError::io("create", &path, e))?;
        file.set_len(0)
            .map_err(|e| LogError::io("truncate", &path, e))?;
        Ok(Self::empty(path, file, base_offset))
    }

    /// The open handle of a segment whose file is open: the active one, or one
    /// just opened.
    pub fn handle(&self) -> Result<Arc<dyn DiskFile>> {
        self.file.get().ok_or_else(|| {
            LogError::io(
                "use",
                &self.path,
                std::io::Error::other("the segment's file was closed"),
            )
        })
    }

    fn empty(path: PathBuf, file: Arc<dyn DiskFile>, base_offset: u64) -> Self {
        Segment {
            base_offset,
            path,
            file: FileSlot::open(file),
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: -1,
            bytes_since_index: 0,
            first_append_ms: None,
            scanned_producers: Default::default(),
            scanned_epochs: Vec::new(),
            damage: Vec::new(),
        }
    }

    /// The offsets after which frames found past damage may lie: a segment's
    /// relative offsets must fit the index's u32.
    fn max_base(&self, tail: Tail) -> u64 {
        match tail {
            Tail::Sealed { end_offset } => end_offset,
            Tail::Active { .. } => self.base_offset.saturating_add(u64::from(u32::MAX)),
        }
    }

    /// Opens a sealed segment, trusting its index files if they are consistent with
    /// it and rebuilding them by a strict scan (any bad frame is an error) otherwise.
    pub fn open_sealed(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        index_interval: u64,
    ) -> Result<Self> {
        let [path, index_path, time_path] = Self::paths(dir, base_offset);
        let file = disk
            .open_file(&path, OpenMode::Existing)
            .map_err(|e| LogError::io("open", &path, e))?;
        let size = file.len().map_err(|e| LogError::io("stat", &path, e))?;
        let read_all = |p: &Path| -> Option<Vec<u8>> {
            let f = disk.open_file(p, OpenMode::Existing).ok()?;
            let mut bytes = vec![0; usize::try_from(f.len().ok()?).ok()?];
            let n = f.read_full_at(&mut bytes, 0).ok()?;
            bytes.truncate(n);
            Some(bytes)
        };
        let offset_index = read_all(&index_path).and_then(|b| OffsetIndex::decode(&b, size));
        let time_index = read_all(&time_path).and_then(|b| TimeIndex::decode(&b));
        if let (Some(offset_index), Some(time_index)) = (offset_index, time_index) {
            if size == 0 || !offset_index.is_empty() {
                let mut seg = Self::empty(path, file, base_offset);
                seg.size = size;
                seg.next_offset = next_offset;
                seg.max_timestamp = time_index.max_timestamp().unwrap_or(-1);
                seg.offset_index = offset_index;
                seg.time_index = time_index;
                return Ok(seg);
            }
        }
        tracing::info!(segment = %path.display(), "index missing or inconsistent; rebuilding");
        let mut seg = Self::empty(path, file, base_offset);
        let tail = Tail::Sealed {
            end_offset: next_offset,
        };
        if let Some(position) = seg.recover(size, index_interval, tail)? {
            // Unreachable for a sealed tail, which is never cut; refuse rather than cut.
            return Err(corrupt(
                &seg.path,
                position,
                seg.next_offset,
                "sealed segment would be cut".into(),
            ));
        }
        if seg.next_offset != next_offset {
            return Err(corrupt(
                &seg.path,
                seg.size,
                seg.next_offset,
                format!(
                    "sealed segment ends at offset {} but the next segment starts at {next_offset}",
                    seg.next_offset
                ),
            ));
        }
        Ok(seg)
    }

    /// Opens the active (last) segment: scans every frame, fences damaged ranges, and
    /// cuts the file only at a torn tail: a bad frame at or past the durable point
    /// (`durable`: bytes and end offset, if known) with no valid frame after it
    /// (R-LOG-5, R-LOG-13). `before_cut` is told the offset a cut starts at before
    /// the file is cut, so that the caller can record it durably first.
    pub fn open_active(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: u64,
        index_interval: u64,
        durable: Option<(u64, u64)>,
        before_cut: impl FnOnce(u64) -> Result<()>,
    ) -> Result<Self> {
        let [path, ..] = Self::paths(dir, base_offset);
        let file = disk
            .open_file(&path, OpenMode::Existing)
            .map_err(|e| LogError::io("open", &path, e))?;
        let len = file.len().map_err(|e| LogError::io("stat", &path, e))?;
        let mut seg = Self::empty(path, file, base_offset);
        if let Some(position) = seg.recover(len, index_interval, Tail::Active { durable })? {
            tracing::warn!(
                segment = %seg.path.display(),
                position,
                cut_bytes = len - position,
                next_offset = seg.next_offset,
                durable_bytes = durable.map(|d| d.0),
                "truncating a torn log tail (past the durable point, nothing valid after it)"
            );
            before_cut(seg.next_offset)?;
            seg.handle()?
                .set_len(position)
                .map_err(|e| LogError::io("truncate", &seg.path, e))?;
        }
        Ok(seg)
    }

    /// Scans up to the first batch that reaches past `end_offset` and returns where
    /// to cut. A damaged range that ends at or below `end_offset` is stepped over and
    /// kept: a truncation for a new leader must not drop records that this copy, maybe
    /// still in the ISR, is counted on to hold; only its repair may, once it has left
    /// the ISR (R-REPL-4; found by the replication oracle). A range that reaches
    /// `end_offset` is cut with everything after it.
    fn scan_until(
        &mut self,
        len: u64,
        index_interval: u64,
        end_offset: u64,
        known: &[Damage],
    ) -> Result<Option<u64>> {
        let mut from = 0;
        loop {
            let (position, reason) = match self.scan_from(from, len, index_interval, end_offset)? {
                None => return Ok(None),
                Some(Stop::Torn { position }) => return Ok(Some(position)),
                Some(Stop::Corrupt { position, reason }) => (position, reason),
            };
            let known_here = known.iter().find(|d| d.position == position);
            let next = match known_here {
                Some(d) => Some((d.end_position, d.end_offset)),
                None => self.next_frame_after(position, len, Tail::Active { durable: None })?,
            };
            let Some((end_position, damage_end)) = next.filter(|(_, e)| *e <= end_offset) else {
                tracing::warn!(
                    segment = %self.path.display(),
                    position,
                    next_offset = self.next_offset,
                    %reason,
                    "cutting at damaged bytes; the leader's copy replaces them"
                );
                return Ok(Some(position));
            };
            let found = Damage {
                position,
                end_position,
                first_offset: self.next_offset,
                end_offset: damage_end,
                reason,
            };
            if known_here.is_some() {
                self.step_over(found);
            } else {
                self.fence(found);
            }
            from = end_position;
        }
    }

    /// Where the damaged range starting at `position` ends: the first valid frame
    /// after it that continues the offsets, as (its position, its base offset).
    fn next_frame_after(&self, position: u64, len: u64, tail: Tail) -> Result<Option<(u64, u64)>> {
        let file = self.handle()?;
        damage::find_next_frame(
            file.as_ref(),
            &self.path,
            position + 1,
            len,
            self.next_offset,
            self.max_base(tail),
        )
    }

    /// Scans the whole segment, stepping over damaged ranges (recorded and reported),
    /// and returns the position to cut at if its tail is torn.
    fn recover(&mut self, len: u64, index_interval: u64, tail: Tail) -> Result<Option<u64>> {
        let mut from = 0;
        loop {
            let (position, reason) = match self.scan_from(from, len, index_interval, u64::MAX)? {
                None => {
                    self.note_missing_end(len, tail);
                    return Ok(None);
                }
                Some(Stop::Torn { position }) => (position, "frame cut short".to_string()),
                Some(Stop::Corrupt { position, reason }) => (position, reason),
            };
            let first_offset = self.next_offset;
            let Some((end_position, end_offset)) = self.next_frame_after(position, len, tail)?
            else {
                return Ok(self.damaged_tail(position, len, reason, tail));
            };
            self.fence(Damage {
                position,
                end_position,
                first_offset,
                end_offset,
                reason,
            });
            from = end_position;
        }
    }

    /// A bad tail with nothing valid after it: torn (cut: returns where) if it starts
    /// at or past the durable point of an active segment, else fenced and kept.
    fn damaged_tail(&mut self, position: u64, len: u64, reason: String, tail: Tail) -> Option<u64> {
        let end_offset = match tail {
            Tail::Sealed { end_offset } => end_offset,
            Tail::Active {
                durable: Some((bytes, end_offset)),
            } if position < bytes => end_offset,
            Tail::Active { .. } => return Some(position),
        };
        self.fence(Damage {
            position,
            end_position: len,
            first_offset: self.next_offset,
            end_offset: end_offset.max(self.next_offset),
            reason,
        });
        None
    }

    /// A file that ends cleanly but short of what was durable lost its end (an
    /// external truncation): those offsets are damaged, not gone.
    fn note_missing_end(&mut self, len: u64, tail: Tail) {
        let end_offset = match (tail, tail.durable()) {
            (Tail::Sealed { end_offset }, _) => end_offset,
            (_, Some((bytes, end_offset))) if len < bytes => end_offset,
            _ => return,
        };
        if end_offset > self.next_offset {
            self.fence(Damage {
                position: len,
                end_position: len,
                first_offset: self.next_offset,
                end_offset,
                reason: "the file ends before the offsets it held durably".into(),
            });
        }
    }

    /// Records and reports a damaged range found by a scan, and continues after it.
    fn fence(&mut self, found: Damage) {
        damage::report(&self.path, &found);
        self.step_over(found);
    }

    /// Records a damaged range, already reported, and continues after it.
    fn step_over(&mut self, found: Damage) {
        self.size = found.end_position;
        self.next_offset = found.end_offset;
        // The first batch after the damage gets an index entry, so reads of later
        // offsets seek past the damage instead of meeting it.
        self.bytes_since_index = u64::MAX;
        self.damage.push(found);
    }

    /// Reopens a segment as the active one, cut before the first batch that reaches
    /// `end_offset` or beyond (a follower truncating to its leader's log, or a
    /// repaired copy cutting at its damage). Returns the segment; its `next_offset` is
    /// the new log end (at most `end_offset`). Damaged ranges wholly below
    /// `end_offset` stay, fenced: `known` are those found before, which are not
    /// reported again.
    pub fn open_active_until(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: u64,
        index_interval: u64,
        (end_offset, known): (u64, &[Damage]),
    ) -> Result<Self> {
        let [path, index_path, time_path] = Self::paths(dir, base_offset);
        let file = disk
            .open_file(&path, OpenMode::Existing)
            .map_err(|e| LogError::io("open", &path, e))?;
        let len = file.len().map_err(|e| LogError::io("stat", &path, e))?;
        let mut seg = Self::empty(path, file, base_offset);
        let cut = seg.scan_until(len, index_interval, end_offset, known)?;
        if let Some(position) = cut {
            seg.handle()?
                .set_len(position)
                .map_err(|e| LogError::io("truncate", &seg.path, e))?;
        }
        // Synced even when nothing was cut: the caller records all of it as durable.
        seg.handle()?
            .sync_data()
            .map_err(|e| LogError::io("fsync", &seg.path, e))?;
        // Its indexes describe the old contents; an active segment is scanned on open.
        for stale in [&index_path, &time_path] {
            if disk.exists(stale) {
                disk.remove_file(stale)
                    .map_err(|e| LogError::io("remove", stale, e))?;
            }
        }
        Ok(seg)
    }

    /// Reads every frame from `from`, rebuilding the indexes, and stops before a
    /// batch that would end beyond `stop_at`. Returns where and why it stopped early.
    fn scan_from(
        &mut self,
        from: u64,
        len: u64,
        index_interval: u64,
        stop_at: u64,
    ) -> Result<Option<Stop>> {
        let file = self.handle()?;
        let path = self.path.clone();
        let mut reader = FrameReader::new(file.as_ref(), &path, from, len, SCAN_BLOCK);
        loop {
            let (position, header, frame_len) = match reader.next_frame()? {
                Ok(None) => return Ok(None),
                Err(stop) => return Ok(Some(stop)),
                Ok(Some(frame)) => match BatchHeader::parse(frame.payload) {
                    Ok(h) => (
                        frame.position,
                        h,
                        (FRAME_HEADER_LEN + frame.payload.len()) as u64,
                    ),
                    Err(reason) => {
                        return Ok(Some(Stop::Corrupt {
                            position: frame.position,
                            reason,
                        }))
                    }
                },
            };
            if header.base_offset != self.next_offset as i64 {
                return Ok(Some(Stop::Corrupt {
                    position,
                    reason: format!(
                        "batch has base offset {} where {} was expected",
                        header.base_offset, self.next_offset
                    ),
                }));
            }
            if self.next_offset + header.offset_count() > stop_at {
                return Ok(Some(Stop::Torn { position }));
            }
            self.scanned_producers.record(&header, self.next_offset);
            if self.scanned_epochs.last().map(|e| e.0) != Some(header.partition_leader_epoch) {
                self.scanned_epochs
                    .push((header.partition_leader_epoch, self.next_offset));
            }
            self.record_batch(position, frame_len, &header, index_interval);
        }
    }

    /// Accounts for a batch written at `position`: indexes, size, next offset.
    pub fn record_batch(
        &mut self,
        position: u64,
        frame_len: u64,
        header: &BatchHeader,
        index_interval: u64,
    ) {
        let relative = (self.next_offset - self.base_offset) as u32;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if self.offset_index.is_empty() || self.bytes_since_index >= index_interval {
            self.offset_index.push(relative, position as u32);
            self.time_index.maybe_push(self.max_timestamp, relative);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += frame_len;
        self.size = position + frame_len;
        self.next_offset += header.offset_count();
    }

    /// Writes both index files and syncs them with the segment itself, as a sealed
    /// segment must be before a successor exists.
    pub fn seal(&mut self, disk: &dyn Disk, dir: &Path) -> Result<()> {
        self.seal_file()?;
        self.write_indexes(disk, dir)
    }

    /// The first half of [`Segment::seal`]: the newest timestamp indexed and the
    /// file synced, its index files not yet written.
    pub fn seal_file(&mut self) -> Result<()> {
        if self.next_offset > self.base_offset {
            // The last entry makes the segment's newest timestamp survive a restart.
            // It points at the last indexed batch start: a scan from there is safe.
            let last_relative = self.offset_index.last_relative_offset().unwrap_or(0);
            self.time_index
                .maybe_push(self.max_timestamp, last_relative);
        }
        self.handle()?
            .sync_data()
            .map_err(|e| LogError::io("fsync", &self.path, e))
    }

    pub fn write_indexes(&self, disk: &dyn Disk, dir: &Path) -> Result<()> {
        let [_, index_path, time_path] = Self::paths(dir, self.base_offset);
        for (path, bytes) in [
            (&index_path, self.offset_index.encode()),
            (&time_path, self.time_index.encode()),
        ] {
            let f = disk
                .open_file(path, OpenMode::Create)
                .map_err(|e| LogError::io("create", path, e))?;
            f.set_len(0)
                .and_then(|_| f.write_at(&bytes, 0))
                .and_then(|_| f.sync_data())
                .map_err(|e| LogError::io("write", path, e))?;
        }
        Ok(())
    }

    /// Removes the segment's files. The caller syncs the directory.
    pub fn delete_files(disk: &dyn Disk, dir: &Path, base_offset: u64) -> Result<()> {
        for path in Self::paths(dir, base_offset) {
            if disk.exists(&path) {
                disk.remove_file(&path)
                    .map_err(|e| LogError::io("remove", &path, e))?;
            }
        }
        Ok(())
    }
}
