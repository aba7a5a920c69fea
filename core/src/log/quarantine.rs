//! Giving up damaged ranges on the operator's word (R-LOG-17): the last resort for a
//! partition whose only copy is damaged, run by `chronik check-data --quarantine` on
//! a stopped broker.
//!
//! Each damaged range's bytes are moved to `quarantine/` in the partition directory,
//! and its offsets are kept by empty record batches: a batch with no records whose
//! offset range is the lost one, as Kafka's log cleaner leaves behind. Consumers
//! step over it as over a compacted gap; the offsets are never reused; nothing
//! before or after it moves. The log then opens without damage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::empty_batch;
use super::checkpoint::{self, DurablePoint};
use super::damage::Damage;
use super::error::{LogError, Result};
use super::frame::{write_header, FRAME_HEADER_LEN};
use super::segment::{parse_base_offset, Segment, LOG_SUFFIX};
use super::{LogConfig, PartitionLog};
use crate::disk::{Disk, DiskFile, OpenMode};

/// The directory, inside a partition directory, that keeps quarantined bytes.
pub const QUARANTINE_DIR: &str = "quarantine";
const COPY_BLOCK: usize = 1 << 20;

/// One damaged range of a partition log.
#[derive(Debug, Clone)]
pub struct DamagedRange {
    pub segment: PathBuf,
    pub damage: Damage,
}

/// Reads the whole log in `dir` (checking every checksum) and returns its damaged
/// ranges. The log is closed again; nothing is changed but what recovery itself does.
pub fn find_damage(
    disk: Arc<dyn Disk>,
    dir: &Path,
    config: LogConfig,
) -> Result<Vec<DamagedRange>> {
    let log = PartitionLog::open(disk, dir, config, None)?;
    log.scrub(0, usize::MAX)?;
    let found = log
        .damaged_ranges()
        .into_iter()
        .map(|(segment, damage)| DamagedRange { segment, damage })
        .collect();
    log.close()?;
    Ok(found)
}

/// Moves every damaged range of the log in `dir` to its quarantine directory and
/// keeps its offsets with empty batches; returns the ranges given up and where their
/// bytes went.
pub fn quarantine(
    disk: Arc<dyn Disk>,
    dir: &Path,
    config: LogConfig,
) -> Result<Vec<(DamagedRange, PathBuf)>> {
    let log = PartitionLog::open(Arc::clone(&disk), dir, config.clone(), None)?;
    log.scrub(0, usize::MAX)?;
    let ranges = log.damaged_ranges();
    let epochs: Vec<i32> = ranges
        .iter()
        .map(|(_, d)| log.leader_epoch_at(d.first_offset))
        .collect();
    let log_end = log.log_end_offset();
    log.close()?;
    drop(log);
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let keep = dir.join(QUARANTINE_DIR);
    disk.create_dir_all(&keep)
        .map_err(|e| LogError::io("create directory", &keep, e))?;
    let mut done = Vec::new();
    let mut segments: Vec<&PathBuf> = ranges.iter().map(|(p, _)| p).collect();
    segments.dedup();
    let active = last_segment(disk.as_ref(), dir)?;
    for segment in segments {
        let damages: Vec<(&Damage, i32)> = ranges
            .iter()
            .zip(&epochs)
            .filter(|((p, _), _)| p == segment)
            .map(|((_, d), e)| (d, *e))
            .collect();
        let saved = rewrite_segment(disk.as_ref(), segment, &damages, &keep)?;
        let base = segment_base(segment)?;
        for path in &Segment::paths(dir, base)[1..] {
            if disk.exists(path) {
                disk.remove_file(path)
                    .map_err(|e| LogError::io("remove", path, e))?;
            }
        }
        if Some(base) == active {
            record_durable(disk.as_ref(), dir, segment, base, log_end)?;
        }
        for ((d, _), saved) in damages.into_iter().zip(saved) {
            let range = DamagedRange {
                segment: segment.clone(),
                damage: d.clone(),
            };
            done.push((range, saved));
        }
    }
    disk.sync_dir(dir)
        .map_err(|e| LogError::io("fsync directory", dir, e))?;
    Ok(done)
}

fn segment_base(segment: &Path) -> Result<u64> {
    segment
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_base_offset)
        .ok_or_else(|| LogError::Corrupt {
            path: segment.to_path_buf(),
            position: 0,
            offset: 0,
            reason: "not a segment file name".into(),
        })
}

fn last_segment(disk: &dyn Disk, dir: &Path) -> Result<Option<u64>> {
    let names = disk
        .list_dir(dir)
        .map_err(|e| LogError::io("list", dir, e))?;
    Ok(names.iter().filter_map(|n| parse_base_offset(n)).max())
}

/// The active segment was rewritten whole and synced: all of it is durable, and the
/// checkpoint must say so, or its old byte count would make the next open call the
/// shorter (or longer) file damaged.
fn record_durable(
    disk: &dyn Disk,
    dir: &Path,
    segment: &Path,
    base: u64,
    log_end: u64,
) -> Result<()> {
    let file = disk
        .open_file(segment, OpenMode::Existing)
        .map_err(|e| LogError::io("open", segment, e))?;
    let bytes = file.len().map_err(|e| LogError::io("stat", segment, e))?;
    let previous = checkpoint::read(disk, dir)?.unwrap_or(checkpoint::Checkpoint::new(0, 0));
    let updated = previous.with_durable(DurablePoint {
        segment_base: base,
        bytes,
        end_offset: log_end,
    });
    checkpoint::write(disk, dir, &updated)
}

/// Writes `segment` anew without its damaged byte ranges, each replaced by empty
/// batches over its offsets, and saves each range's bytes in `keep`. Returns where
/// each range's bytes went, in the order of `damages`.
fn rewrite_segment(
    disk: &dyn Disk,
    segment: &Path,
    damages: &[(&Damage, i32)],
    keep: &Path,
) -> Result<Vec<PathBuf>> {
    let source = disk
        .open_file(segment, OpenMode::Existing)
        .map_err(|e| LogError::io("open", segment, e))?;
    let len = source.len().map_err(|e| LogError::io("stat", segment, e))?;
    let mut tmp_name = segment.as_os_str().to_owned();
    tmp_name.push(".quarantine.tmp");
    let tmp = PathBuf::from(tmp_name);
    if disk.exists(&tmp) {
        disk.remove_file(&tmp)
            .map_err(|e| LogError::io("remove", &tmp, e))?;
    }
    let out = disk
        .open_file(&tmp, OpenMode::CreateNew)
        .map_err(|e| LogError::io("create", &tmp, e))?;
    let mut written = 0u64;
    let mut from = 0u64;
    let mut saved = Vec::new();
    for (damage, epoch) in damages {
        written += copy(
            source.as_ref(),
            segment,
            (from, damage.position),
            out.as_ref(),
            &tmp,
            written,
        )?;
        saved.push(save_damaged_bytes(
            disk,
            source.as_ref(),
            segment,
            damage,
            keep,
        )?);
        for frame in empty_batches(damage.first_offset, damage.end_offset, *epoch) {
            out.write_at(&frame, written)
                .map_err(|e| LogError::io("write", &tmp, e))?;
            written += frame.len() as u64;
        }
        from = damage.end_position.max(from);
    }
    copy(
        source.as_ref(),
        segment,
        (from, len),
        out.as_ref(),
        &tmp,
        written,
    )?;
    out.sync_data()
        .map_err(|e| LogError::io("fsync", &tmp, e))?;
    disk.rename(&tmp, segment)
        .map_err(|e| LogError::io("rename", &tmp, e))?;
    Ok(saved)
}

/// Copies bytes `[from, to)` of `source` to `out` at `at`; returns how many.
fn copy(
    source: &dyn DiskFile,
    source_path: &Path,
    (from, to): (u64, u64),
    out: &dyn DiskFile,
    out_path: &Path,
    at: u64,
) -> Result<u64> {
    let mut buf = vec![0u8; COPY_BLOCK];
    let mut pos = from;
    while pos < to {
        let want = ((to - pos) as usize).min(COPY_BLOCK);
        let got = source
            .read_full_at(&mut buf[..want], pos)
            .map_err(|e| LogError::io("read", source_path, e))?;
        if got == 0 {
            break;
        }
        out.write_at(&buf[..got], at + (pos - from))
            .map_err(|e| LogError::io("write", out_path, e))?;
        pos += got as u64;
    }
    Ok(pos - from)
}

/// Saves a damaged range's bytes for whoever wants to look at them, synced; the
/// name says where they were and which offsets they held.
fn save_damaged_bytes(
    disk: &dyn Disk,
    source: &dyn DiskFile,
    segment: &Path,
    damage: &Damage,
    keep: &Path,
) -> Result<PathBuf> {
    let name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment");
    let path = keep.join(format!(
        "{name}.bytes-{}-{}.offsets-{}-{}",
        damage.position, damage.end_position, damage.first_offset, damage.end_offset
    ));
    if disk.exists(&path) {
        disk.remove_file(&path)
            .map_err(|e| LogError::io("remove", &path, e))?;
    }
    let file = disk
        .open_file(&path, OpenMode::CreateNew)
        .map_err(|e| LogError::io("create", &path, e))?;
    copy(
        source,
        segment,
        (damage.position, damage.end_position),
        file.as_ref(),
        &path,
        0,
    )?;
    file.sync_data()
        .map_err(|e| LogError::io("fsync", &path, e))?;
    disk.sync_dir(keep)
        .map_err(|e| LogError::io("fsync directory", keep, e))?;
    Ok(path)
}

/// Framed empty batches covering offsets `[first, end)`, each at most `i32::MAX`
/// offsets wide (a batch's last offset delta is an i32).
fn empty_batches(first: u64, end: u64, leader_epoch: i32) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut base = first;
    while base < end {
        let count = (end - base).min(i32::MAX as u64);
        let batch = empty_batch(base, count as i32, leader_epoch, -1);
        let mut frame = vec![0u8; FRAME_HEADER_LEN];
        write_header(&mut frame, &batch);
        frame.extend_from_slice(&batch);
        frames.push(frame);
        base += count;
    }
    frames
}

/// The partition directories under a data directory's `logs/`, in name order.
pub fn partition_dirs(disk: &dyn Disk, logs_root: &Path) -> Result<Vec<PathBuf>> {
    if !disk.is_dir(logs_root) {
        return Ok(Vec::new());
    }
    let mut names = disk
        .list_dir(logs_root)
        .map_err(|e| LogError::io("list", logs_root, e))?;
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| logs_root.join(n))
        .filter(|p| disk.is_dir(p) && has_segments(disk, p))
        .collect())
}

fn has_segments(disk: &dyn Disk, dir: &Path) -> bool {
    disk.list_dir(dir).is_ok_and(|names| {
        names
            .iter()
            .any(|n| n.ends_with(LOG_SUFFIX) && parse_base_offset(n).is_some())
    })
}
