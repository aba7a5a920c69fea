//! Torn tails versus corruption in the partition log (R-LOG-13, R-LOG-5): every
//! flipped byte of a small log, in the active and in a sealed segment, fences
//! exactly the batch it hit and nothing else; every torn tail length is cut back to
//! the durable prefix and loses nothing that was synced.

mod common;

use chronik::disk::{Disk, MemDisk, OpenMode, Tear};
use chronik::log::{FsyncPolicy, LogConfig, LogError, PartitionLog};
use common::*;
use proptest::prelude::{prop_assert_eq, TestCaseError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DIR: &str = "/data/t-0";

/// One frame of a segment file: bytes `[start, end)`, offsets `[base, base + count)`.
#[derive(Debug, Clone, Copy)]
struct FrameSpan {
    start: u64,
    end: u64,
    base: u64,
    count: u64,
}

fn segment_path(base: u64) -> PathBuf {
    Path::new(DIR).join(format!("{base:020}.log"))
}

fn file_bytes(disk: &dyn Disk, path: &Path) -> Vec<u8> {
    chronik::disk::read_all(disk, path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The frames of a clean segment file.
fn frames(bytes: &[u8]) -> Vec<FrameSpan> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let payload = &bytes[pos + 8..pos + 8 + len];
        let header = chronik::log::batch::BatchHeader::parse(payload)
            .unwrap_or_else(|e| panic!("clean file has a bad batch: {e}"));
        out.push(FrameSpan {
            start: pos as u64,
            end: (pos + 8 + len) as u64,
            base: header.base_offset as u64,
            count: header.offset_count(),
        });
        pos += 8 + len;
    }
    out
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 150,
        ..small_segments(FsyncPolicy::Always)
    }
}

/// A cleanly closed log of `batches` small batches of 1 to 3 records, its batches
/// as stored, and the disk holding it.
fn clean_log(batches: u64, segment_bytes: u64) -> (MemDisk, Vec<(u64, Vec<u8>)>) {
    let (mem_disk, disk) = mem();
    let log = open(&disk, Path::new(DIR), config(segment_bytes));
    let mut expected = Vec::new();
    for seq in 0..batches {
        let b = batch_for(0, seq, 1 + (seq % 3) as usize, 12);
        let info = log
            .append(&b, 0, 0)
            .unwrap_or_else(|e| panic!("append: {e}"));
        expected.push((info.base_offset, stored(&b, info.base_offset, 0)));
    }
    log.advance_single_replica_high_watermark();
    log.close().unwrap_or_else(|e| panic!("close: {e}"));
    (mem_disk, expected)
}

/// Every batch reads back except those starting at an offset in `lost`, which
/// answer a storage error naming `file`; reads below and above them still work.
fn assert_only_lost(log: &PartitionLog, expected: &[(u64, Vec<u8>)], lost: &[u64], file: &Path) {
    for (offset, bytes) in expected {
        match log.read(*offset, 1, u64::MAX) {
            Ok(r) if !lost.contains(offset) => {
                assert_eq!(
                    split_batches(&r.records),
                    vec![(*offset, bytes.clone())],
                    "offset {offset}"
                );
            }
            Err(e @ LogError::Damaged { .. }) if lost.contains(offset) => {
                assert!(e.to_string().contains(&file.display().to_string()), "{e}");
            }
            other => panic!("offset {offset} (lost {lost:?}): {other:?}"),
        }
    }
}

/// Flips one byte of `path` on a copy of `clean` and opens the log there.
fn open_flipped(clean: &MemDisk, path: &Path, pos: u64, mask: u8) -> (MemDisk, PartitionLog) {
    let copy = clean.durable_copy();
    let disk: Arc<dyn Disk> = Arc::new(copy.clone());
    let original = file_bytes(disk.as_ref(), path)[pos as usize];
    copy.corrupt(path, pos as usize, &[original ^ mask])
        .unwrap_or_else(|e| panic!("corrupt: {e}"));
    let log = open(&disk, Path::new(DIR), config(1 << 30));
    (copy, log)
}

/// The offsets of the batch whose frame holds byte `pos`.
fn batch_hit(spans: &[FrameSpan], pos: u64) -> FrameSpan {
    spans
        .iter()
        .copied()
        .find(|s| (s.start..s.end).contains(&pos))
        .unwrap_or_else(|| panic!("no frame holds byte {pos}"))
}

/// After a flip at `pos`: nothing cut, log end and high watermark kept, exactly the
/// hit batch fenced (once), and everything else readable.
fn check_flip(
    log: &PartitionLog,
    disk: &dyn Disk,
    path: &Path,
    spans: &[FrameSpan],
    pos: u64,
    expected: &[(u64, Vec<u8>)],
) {
    let end = expected.last().map_or(0, |(o, b)| {
        o + chronik::log::batch::BatchHeader::parse(b).map_or(0, |h| h.offset_count())
    });
    let hit = batch_hit(spans, pos);
    let len = disk
        .open_file(path, OpenMode::Existing)
        .and_then(|f| f.len())
        .unwrap_or(0);
    assert_eq!(
        len,
        spans.last().map_or(0, |s| s.end),
        "byte {pos}: file was cut"
    );
    assert_eq!(log.log_end_offset(), end, "byte {pos}: log end moved");
    assert_eq!(
        log.high_watermark(),
        end,
        "byte {pos}: high watermark lowered"
    );
    assert_only_lost(log, expected, &[hit.base], path);
    let ranges = log.damaged_ranges();
    assert_eq!(ranges.len(), 1, "byte {pos}: {ranges:?}");
    let d = &ranges[0].1;
    assert_eq!(
        (d.position, d.end_position, d.first_offset, d.end_offset),
        (hit.start, hit.end, hit.base, hit.base + hit.count),
        "byte {pos}"
    );
}

#[test]
fn r_log_13_every_flipped_byte_of_the_active_segment_fences_only_its_batch() -> TestResult {
    let (clean, expected) = clean_log(7, 1 << 20);
    let path = segment_path(0);
    let spans = frames(&file_bytes(&clean, &path));
    assert_eq!(spans.len(), 7);
    let len = spans.last().map_or(0, |s| s.end);
    for pos in 0..len {
        for mask in [0x01, 0x80] {
            let (copy, log) = open_flipped(&clean, &path, pos, mask);
            check_flip(&log, &copy, &path, &spans, pos, &expected);
        }
    }
    Ok(())
}

#[test]
fn r_log_13_every_flipped_byte_of_a_sealed_segment_fences_only_its_batch() -> TestResult {
    let (clean, expected) = clean_log(24, 1024);
    let names = clean.list_dir(Path::new(DIR))?;
    assert!(names.iter().filter(|n| n.ends_with(".log")).count() >= 3);
    let path = segment_path(0);
    let spans = frames(&file_bytes(&clean, &path));
    assert!(spans.len() >= 2, "{spans:?}");
    let len = spans.last().map_or(0, |s| s.end);
    for pos in 0..len {
        // With its index trusted, the first read that meets the damage finds it.
        let (copy, log) = open_flipped(&clean, &path, pos, 0x04);
        check_flip(&log, &copy, &path, &spans, pos, &expected);
        drop(log);
        // Without its index, the open scans the segment and finds it.
        copy.remove_file(&path.with_extension("index"))?;
        let disk: Arc<dyn Disk> = Arc::new(copy.clone());
        let log = open(&disk, Path::new(DIR), config(1 << 30));
        assert_eq!(log.damaged_ranges().len(), 1, "byte {pos}: found at open");
        check_flip(&log, &copy, &path, &spans, pos, &expected);
    }
    Ok(())
}

#[test]
fn r_log_13_an_index_entry_pointing_inside_a_frame_is_not_taken_for_damage() -> TestResult {
    let (clean, expected) = clean_log(24, 1024);
    let index = segment_path(0).with_extension("index");
    let bytes = file_bytes(&clean, &index);
    assert!(
        bytes.len() >= 16,
        "the sealed segment needs two index entries"
    );
    // Index files carry no checksum: move the second entry one byte into its frame,
    // still increasing and inside the file, so the open trusts it.
    let position = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    clean.corrupt(&index, 12, &(position + 1).to_be_bytes())?;
    let disk: Arc<dyn Disk> = Arc::new(clean.clone());
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(read_all(&log), expected);
    for (offset, bytes) in &expected {
        let r = log.read(*offset, 1, u64::MAX)?;
        assert_eq!(split_batches(&r.records), vec![(*offset, bytes.clone())]);
    }
    assert!(log.damaged_ranges().is_empty());
    Ok(())
}

#[test]
fn r_log_13_a_fenced_range_survives_appends_and_reopens() -> TestResult {
    let (clean, expected) = clean_log(7, 1 << 20);
    let path = segment_path(0);
    let spans = frames(&file_bytes(&clean, &path));
    for pos in [spans[2].start + 30, spans[6].start + 30] {
        let hit = batch_hit(&spans, pos);
        let (copy, log) = open_flipped(&clean, &path, pos, 0x10);
        let b = batch_for(0, 100, 2, 12);
        let info = log.append(&b, 0, 0)?;
        assert_eq!(info.base_offset, log.log_end_offset() - 2);
        log.close()?;
        drop(log);
        let disk: Arc<dyn Disk> = Arc::new(copy.clone());
        let log = open(&disk, Path::new(DIR), config(1 << 20));
        let mut all = expected.clone();
        all.push((info.base_offset, stored(&b, info.base_offset, 0)));
        assert_only_lost(&log, &all, &[hit.base], &path);
        assert_eq!(log.damaged_ranges().len(), 1);
    }
    // A second flip in another batch fences that one too, and only it.
    let copy = clean.durable_copy();
    for s in [spans[1], spans[4]] {
        let original = file_bytes(&copy, &path)[s.start as usize + 40];
        copy.corrupt(&path, s.start as usize + 40, &[!original])?;
    }
    let disk: Arc<dyn Disk> = Arc::new(copy.clone());
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_only_lost(&log, &expected, &[spans[1].base, spans[4].base], &path);
    assert_eq!(log.damaged_ranges().len(), 2);
    Ok(())
}

/// A disk, the batches written to it, and the file length that was durable.
type TornSetup = (MemDisk, Arc<dyn Disk>, Vec<(u64, Vec<u8>)>, u64);

/// Builds a log with `synced` batches fsynced and checkpointed, then `unsynced`
/// more written but not synced; returns the disk, every batch written, and the
/// file length that was durable.
fn log_with_unsynced_tail(synced: u64, unsynced: u64) -> TornSetup {
    let (mem_disk, disk) = mem();
    let cfg = LogConfig {
        fsync: FsyncPolicy::Never,
        ..config(1 << 20)
    };
    let log = open(&disk, Path::new(DIR), cfg);
    let mut written = Vec::new();
    for seq in 0..synced + unsynced {
        if seq == synced {
            log.sync().unwrap_or_else(|e| panic!("sync: {e}"));
            log.checkpoint()
                .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        }
        let b = batch_for(0, seq, 1 + (seq % 3) as usize, 12);
        let info = log
            .append(&b, 0, 0)
            .unwrap_or_else(|e| panic!("append: {e}"));
        written.push((info.base_offset, stored(&b, info.base_offset, 0)));
    }
    let durable = frames(&file_bytes(&mem_disk, &segment_path(0)))
        .get(synced as usize)
        .map_or(0, |s| s.start);
    (mem_disk, disk, written, durable)
}

#[test]
fn r_log_13_every_torn_tail_length_is_cut_back_and_loses_nothing_synced() -> TestResult {
    let (_, _, _, durable) = log_with_unsynced_tail(5, 3);
    let (probe, _, written, _) = log_with_unsynced_tail(5, 3);
    let spans = frames(&file_bytes(&probe, &segment_path(0)));
    let total = spans.last().map_or(0, |s| s.end);
    for keep in 0..=(total - durable) as usize {
        let (mem_disk, disk, _, _) = log_with_unsynced_tail(5, 3);
        mem_disk.crash(Tear::KeepTail(keep));
        let log = open(&disk, Path::new(DIR), config(1 << 20));
        // Whole frames that reached the disk stay; the torn one is cut.
        let whole = spans
            .iter()
            .filter(|s| s.end <= durable + keep as u64)
            .count();
        assert!(whole >= 5, "keep {keep}");
        assert_eq!(read_all(&log), written[..whole].to_vec(), "keep {keep}");
        assert!(
            log.damaged_ranges().is_empty(),
            "keep {keep}: torn taken for corrupt"
        );
        let len = file_bytes(&mem_disk, &segment_path(0)).len() as u64;
        assert_eq!(len, spans[whole - 1].end, "keep {keep}");
    }
    Ok(())
}

#[test]
fn r_log_13_a_flip_below_the_durable_point_and_a_torn_tail_fence_one_and_cut_the_other(
) -> TestResult {
    let (probe, _, written, durable) = log_with_unsynced_tail(5, 3);
    let spans = frames(&file_bytes(&probe, &segment_path(0)));
    let total = spans.last().map_or(0, |s| s.end);
    for keep in 0..=(total - durable) as usize {
        let (mem_disk, disk, _, _) = log_with_unsynced_tail(5, 3);
        mem_disk.crash(Tear::KeepTail(keep));
        let path = segment_path(0);
        let at = spans[1].start as usize + 20;
        let original = file_bytes(&mem_disk, &path)[at];
        mem_disk.corrupt(&path, at, &[!original])?;
        let log = open(&disk, Path::new(DIR), config(1 << 20));
        let whole = spans
            .iter()
            .filter(|s| s.end <= durable + keep as u64)
            .count();
        assert_eq!(
            log.log_end_offset(),
            spans[whole - 1].base + spans[whole - 1].count
        );
        assert_only_lost(&log, &written[..whole], &[spans[1].base], &path);
        assert_eq!(log.damaged_ranges().len(), 1, "keep {keep}");
        let len = file_bytes(&mem_disk, &path).len() as u64;
        assert_eq!(len, spans[whole - 1].end, "keep {keep}: torn tail not cut");
    }
    Ok(())
}

#[test]
fn r_log_13_a_torn_tail_after_a_follower_truncation_is_still_cut() -> TestResult {
    let (mem_disk, disk) = mem();
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    for seq in 0..8 {
        log.append(&batch_for(0, seq, 2, 12), 0, 0)?;
    }
    log.checkpoint()?;
    // The recorded durable point (16 offsets) lies past the cut.
    assert_eq!(log.truncate_to(6)?, 6);
    log.set_config(LogConfig {
        fsync: FsyncPolicy::Never,
        ..config(1 << 20)
    })?;
    log.append(&batch_for(0, 50, 2, 12), 0, 0)?;
    drop(log);
    mem_disk.crash(Tear::KeepTail(20));
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(log.log_end_offset(), 6);
    assert!(log.damaged_ranges().is_empty());
    Ok(())
}

/// A truncation for a new leader keeps the damaged ranges below its cut, fenced: the
/// copy may still be in the ISR, counted on to hold those offsets, and only its repair
/// may give them up once it has left (R-REPL-4). Before, the cut went below the damage
/// and took the records after it too (found by the replication oracle, C-5). The
/// repair's own cut, at the damage, drops it, and the records come back whole.
#[test]
fn r_log_13_r_repl_4_a_truncation_past_damage_keeps_it_and_the_repairs_cut_drops_it() -> TestResult
{
    let (clean, expected) = clean_log(8, 1 << 20);
    let path = segment_path(0);
    let spans = frames(&file_bytes(&clean, &path));
    let (copy, log) = open_flipped(&clean, &path, spans[3].start + 30, 0x02);
    assert_only_lost(&log, &expected, &[spans[3].base], &path);
    assert_eq!(log.truncate_to(spans[6].base)?, spans[6].base);
    assert_eq!(log.first_lost_offset(), Some(spans[3].base));
    assert_only_lost(&log, &expected[..6], &[spans[3].base], &path);
    // The cut recorded its durable point: a restart finds the damage again rather
    // than taking anything for a torn tail.
    log.close()?;
    drop(log);
    let disk: Arc<dyn Disk> = Arc::new(copy.clone());
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(log.log_end_offset(), spans[6].base);
    assert_eq!(log.first_lost_offset(), Some(spans[3].base));
    assert_only_lost(&log, &expected[..6], &[spans[3].base], &path);
    // The repair cuts at the damage and fetches the rest again.
    assert_eq!(log.truncate_to(spans[3].base)?, spans[3].base);
    assert!(log.damaged_ranges().is_empty());
    for (_, bytes) in &expected[3..] {
        log.append_replica(bytes, 0)?;
    }
    assert_eq!(read_all(&log), expected);
    log.close()?;
    drop(log);
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(read_all(&log), expected);
    assert!(log.damaged_ranges().is_empty());
    Ok(())
}

/// A disk and the batches written to it, as stored.
type Written = (MemDisk, Arc<dyn Disk>, Vec<(u64, Vec<u8>)>);

/// A log of four one-record batches, closed without a checkpoint, whose last frame
/// then took a bad byte: recovery cannot tell it from a torn write.
fn log_with_bad_last_frame() -> Result<Written, LogError> {
    let (mem_disk, disk) = mem();
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    let mut expected = Vec::new();
    for seq in 0..4 {
        let b = batch_for(0, seq, 1, 12);
        let info = log.append(&b, 0, 0)?;
        expected.push((info.base_offset, stored(&b, info.base_offset, 0)));
    }
    drop(log);
    let path = segment_path(0);
    let len = file_bytes(&mem_disk, &path).len();
    mem_disk
        .corrupt(&path, len - 3, &[0xff])
        .map_err(|e| LogError::io("corrupt", &path, e))?;
    Ok((mem_disk, disk, expected))
}

/// R-REPL-4's gap, closed at the log: a bad last frame that recovery cuts as a torn
/// write may have held an acknowledged record, so the cut is marked (`lost_tail`,
/// counted in `first_lost_offset`) in the checkpoint before the file is cut, and the
/// mark outlives restarts until a cut at or below it (the repair's, or a truncation
/// for a new leader) or a leader's write. A checkpoint that cannot be written leaves
/// the file uncut.
#[test]
fn r_log_13_r_repl_4_a_cut_tail_is_marked_first_and_kept_until_a_cut_or_a_leaders_write(
) -> TestResult {
    let (mem_disk, disk, expected) = log_with_bad_last_frame()?;
    let path = segment_path(0);
    let len = file_bytes(&mem_disk, &path).len();
    mem_disk.set_capacity(Some(mem_disk.used_bytes()));
    assert!(PartitionLog::open(Arc::clone(&disk), Path::new(DIR), config(1 << 20), None).is_err());
    assert_eq!(
        file_bytes(&mem_disk, &path).len(),
        len,
        "cut before the mark"
    );
    mem_disk.set_capacity(None);
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(read_all(&log), expected[..3].to_vec());
    assert_eq!(log.lost_tail(), Some(3));
    assert_eq!(log.first_lost_offset(), Some(3));
    assert!(log.damaged_ranges().is_empty());
    drop(log);
    mem_disk.crash(Tear::KeepTail(0));
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(log.lost_tail(), Some(3), "the mark outlives a crash");
    // The repair's cut at the mark drops it, for good.
    assert_eq!(log.truncate_to(3)?, 3);
    assert_eq!(log.lost_tail(), None);
    drop(log);
    mem_disk.crash(Tear::KeepTail(0));
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!((log.lost_tail(), log.first_lost_offset()), (None, None));

    // A truncation below the mark drops it too: what it cut diverged from the leader.
    let (_, disk, _) = log_with_bad_last_frame()?;
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(log.truncate_to(2)?, 2);
    assert_eq!(log.lost_tail(), None);

    // A leader's write (admitted only to a sole ISR member) goes over the mark.
    let (mem_disk, disk, expected) = log_with_bad_last_frame()?;
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    let b = batch_for(0, 9, 1, 12);
    let info = log.append(&b, 0, 1)?;
    assert_eq!((info.base_offset, log.lost_tail()), (3, None));
    drop(log);
    mem_disk.crash(Tear::KeepTail(0));
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(log.lost_tail(), None);
    let mut kept = expected[..3].to_vec();
    kept.push((3, stored(&b, 3, 1)));
    assert_eq!(read_all(&log), kept);
    Ok(())
}

#[test]
fn r_log_13_a_file_cut_below_its_durable_point_fences_the_missing_offsets() -> TestResult {
    let (clean, expected) = clean_log(7, 1 << 20);
    let path = segment_path(0);
    let spans = frames(&file_bytes(&clean, &path));
    for cut in [spans[5].end, spans[5].start + 10] {
        let copy = clean.durable_copy();
        copy.open_file(&path, OpenMode::Existing)?.set_len(cut)?;
        copy.open_file(&path, OpenMode::Existing)?.sync_data()?;
        let disk: Arc<dyn Disk> = Arc::new(copy.clone());
        let log = open(&disk, Path::new(DIR), config(1 << 20));
        let lost: Vec<u64> = spans
            .iter()
            .filter(|s| s.end > cut)
            .map(|s| s.base)
            .collect();
        assert_eq!(log.log_end_offset(), spans[6].base + spans[6].count);
        assert_only_lost(&log, &expected, &lost, &path);
        // The log goes on after the fenced offsets.
        let info = log.append(&batch_for(0, 99, 1, 12), 0, 0)?;
        assert_eq!(info.base_offset, spans[6].base + spans[6].count);
        assert_eq!(log.read(info.base_offset, 1, u64::MAX)?.batch_count, 1);
    }
    Ok(())
}

#[test]
fn r_log_13_without_a_durable_point_a_bad_last_frame_is_torn_but_a_bad_middle_one_is_not(
) -> TestResult {
    // No checkpoint names what was synced, so the last frame may have been torn.
    let (mem_disk, disk, expected) = log_with_bad_last_frame()?;
    let path = segment_path(0);
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(read_all(&log), expected[..3].to_vec());
    assert!(log.damaged_ranges().is_empty());
    // A bad frame with valid frames after it is corruption, durable point or not.
    drop(log);
    mem_disk.corrupt(&path, 30, &[0xff])?;
    let log = open(&disk, Path::new(DIR), config(1 << 20));
    assert_eq!(log.log_end_offset(), 3);
    assert_only_lost(&log, &expected[..3], &[0], &path);
    Ok(())
}

/// The frames of a file up to its first invalid one.
fn valid_frames(bytes: &[u8]) -> Vec<FrameSpan> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let chronik::log::frame::Decoded::Frame { start, end } =
        chronik::log::frame::decode(bytes, pos)
    {
        let Ok(header) = chronik::log::batch::BatchHeader::parse(&bytes[start..end]) else {
            break;
        };
        out.push(FrameSpan {
            start: pos as u64,
            end: end as u64,
            base: header.base_offset as u64,
            count: header.offset_count(),
        });
        pos = end;
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

    /// R-LOG-13 with rolls, syncs and crashes: after a crash, one flipped byte
    /// anywhere in what survived costs exactly the batch it hit; every other
    /// acknowledged batch reads back and the log end does not move.
    #[test]
    fn r_log_13_a_flip_after_random_appends_syncs_and_a_crash_costs_only_its_batch(
        ops in proptest::collection::vec((1..4usize, 1..200usize, proptest::bool::weighted(0.3)), 1..60),
        pick in (0..usize::MAX, 0..usize::MAX, 1..=255u8),
    ) {
        let (mem_disk, disk) = mem();
        let cfg = LogConfig { fsync: FsyncPolicy::Never, ..config(1024) };
        let log = open(&disk, Path::new(DIR), cfg.clone());
        let mut written = Vec::new();
        for (seq, (records, value_len, sync)) in ops.into_iter().enumerate() {
            let b = batch_for(0, seq as u64, records, value_len);
            let info = log.append(&b, 0, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
            written.push((info.base_offset, stored(&b, info.base_offset, 0)));
            if sync {
                // As the broker's housekeeping does: the durable point is recorded.
                log.sync().and_then(|_| log.checkpoint())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        let acked_end = log.durable_end_offset();
        drop(log);
        mem_disk.crash(Tear::None);
        let files: Vec<PathBuf> = mem_disk.list_dir(Path::new(DIR))
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_iter()
            .filter(|n| n.ends_with(".log"))
            .map(|n| Path::new(DIR).join(n))
            .collect();
        let candidates: Vec<(PathBuf, Vec<u8>)> = files.iter()
            .map(|p| (p.clone(), file_bytes(&mem_disk, p)))
            .filter(|(_, b)| !b.is_empty())
            .collect();
        let log = open(&disk, Path::new(DIR), cfg.clone());
        prop_assert_eq!(log.log_end_offset(), acked_end);
        drop(log);
        if candidates.is_empty() {
            return Ok(());
        }
        let (path, bytes) = &candidates[pick.0 % candidates.len()];
        let pos = pick.1 % bytes.len();
        let spans = valid_frames(bytes);
        prop_assert_eq!(spans.last().map_or(0, |s| s.end), bytes.len() as u64);
        let hit = batch_hit(&spans, pos as u64);
        mem_disk.corrupt(path, pos, &[bytes[pos] ^ pick.2])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let log = open(&disk, Path::new(DIR), cfg);
        prop_assert_eq!(log.log_end_offset(), acked_end);
        let acked: Vec<(u64, Vec<u8>)> = written.into_iter()
            .filter(|(o, _)| *o < acked_end)
            .collect();
        assert_only_lost(&log, &acked, &[hit.base], path);
        prop_assert_eq!(log.damaged_ranges().len(), 1);
    }
}

/// After `quarantine` of the hit batch: the log opens clean, its end and every other
/// batch are as before, the hit offsets read as one empty batch, and the damaged
/// bytes are kept.
fn check_quarantined(
    disk: &MemDisk,
    path: &Path,
    spans: &[FrameSpan],
    pos: u64,
    expected: &[(u64, Vec<u8>)],
) {
    let hit = batch_hit(spans, pos);
    let damaged_bytes = file_bytes(disk, path)[hit.start as usize..hit.end as usize].to_vec();
    let shared: Arc<dyn Disk> = Arc::new(disk.clone());
    let done =
        chronik::log::quarantine::quarantine(Arc::clone(&shared), Path::new(DIR), config(1 << 30))
            .unwrap_or_else(|e| panic!("byte {pos}: quarantine: {e}"));
    assert_eq!(done.len(), 1, "byte {pos}");
    assert_eq!(
        file_bytes(disk, &done[0].1),
        damaged_bytes,
        "byte {pos}: kept bytes"
    );
    let log = open(&shared, Path::new(DIR), config(1 << 30));
    log.scrub(0, usize::MAX)
        .unwrap_or_else(|e| panic!("byte {pos}: scrub: {e}"));
    assert!(
        log.damaged_ranges().is_empty(),
        "byte {pos}: {:?}",
        log.damaged_ranges()
    );
    let end = expected.last().map_or(0, |(o, b)| {
        o + chronik::log::batch::BatchHeader::parse(b).map_or(0, |h| h.offset_count())
    });
    assert_eq!(log.log_end_offset(), end, "byte {pos}");
    for (offset, bytes) in expected {
        let r = log
            .read(*offset, 1, u64::MAX)
            .unwrap_or_else(|e| panic!("byte {pos}: {e}"));
        let got = split_batches(&r.records);
        if *offset == hit.base {
            let header = chronik::log::batch::BatchHeader::parse(&got[0].1)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (got.len(), header.offset_count(), header.record_count),
                (1, hit.count, 0)
            );
            assert_eq!(r.next_offset, hit.base + hit.count);
        } else {
            assert_eq!(
                got,
                vec![(*offset, bytes.clone())],
                "byte {pos}: offset {offset}"
            );
        }
    }
}

#[test]
fn r_log_17_quarantine_gives_up_exactly_the_damaged_batch_of_an_active_or_sealed_segment(
) -> TestResult {
    for (batches, segment_bytes) in [(7, 1 << 20), (24, 1024)] {
        let (clean, expected) = clean_log(batches, segment_bytes);
        let path = segment_path(0);
        let spans = frames(&file_bytes(&clean, &path));
        let len = spans.last().map_or(0, |s| s.end);
        for pos in (0..len).step_by(7) {
            let (copy, log) = open_flipped(&clean, &path, pos, 0x10);
            drop(log);
            check_quarantined(&copy, &path, &spans, pos, &expected);
        }
    }
    Ok(())
}

/// R-LOG-16: damage in a sealed segment opened through its index is unknown until
/// something reads it; the scrub reads it, finds exactly the hit batch, and keeps
/// every other batch readable.
#[test]
fn r_log_16_the_scrub_finds_damage_no_read_has_met() -> TestResult {
    let (clean, expected) = clean_log(24, 1024);
    let path = segment_path(0);
    let spans = frames(&file_bytes(&clean, &path));
    let pos = spans[1].start + 20;
    let (copy, log) = open_flipped(&clean, &path, pos, 0x04);
    assert!(log.damaged_ranges().is_empty(), "nothing has read it yet");
    let (next, read) = log.scrub(0, usize::MAX)?;
    assert_eq!(next, None, "one pass reads to the log end");
    assert!(read > 0);
    assert_eq!(log.damaged_ranges().len(), 1, "the scrub found it");
    check_flip(&log, &copy, &path, &spans, pos, &expected);
    // A bounded slice stops early and says where to go on.
    let (next, _) = log.scrub(0, 1)?;
    assert!(next.is_some_and(|o| o > 0 && o < log.log_end_offset()));
    Ok(())
}
