//! Behaviour of one partition log: offsets, reads, rolls, indexes, retention,
//! checkpoints, corruption and disk errors. Each test names the rule of
//! spec/log.md it checks.

mod common;

use chronik::disk::{Disk, OpenMode, RealDisk};
use chronik::log::{batch, FsyncPolicy, LogConfig, LogError, PartitionLog};
use common::*;
use std::path::Path;
use std::sync::Arc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn r_log_1_offsets_are_assigned_consecutively_and_reads_return_whole_batches() -> TestResult {
    let (_, disk) = mem();
    let log = open(
        &disk,
        Path::new("/t-0"),
        small_segments(FsyncPolicy::Always),
    );
    let mut expected = Vec::new();
    for seq in 0..50 {
        let b = batch_for(0, seq, 3, 40);
        let info = log.append(&b, 10 + seq, 7)?;
        assert_eq!(info.base_offset, seq * 3);
        assert_eq!(info.last_offset, seq * 3 + 2);
        assert_eq!(info.log_end_offset, seq * 3 + 3);
        expected.push((info.base_offset, stored(&b, info.base_offset, 7)));
    }
    assert!(log.segment_count() > 1, "small segments must have rolled");
    assert_eq!(read_all(&log), expected);
    // A read from inside a batch returns that whole batch first.
    let r = log.read(4, 1, u64::MAX)?;
    assert_eq!(split_batches(&r.records), vec![expected[1].clone()]);
    assert_eq!(r.next_offset, 6);
    Ok(())
}

#[test]
fn r_log_7_reads_stop_at_the_callers_bound_and_outside_the_log_are_out_of_range() -> TestResult {
    let (_, disk) = mem();
    let log = open(&disk, Path::new("/t-0"), LogConfig::default());
    for seq in 0..10 {
        log.append(&batch_for(0, seq, 1, 10), 0, 0)?;
    }
    let r = log.read(0, 1 << 20, 4)?;
    assert_eq!(
        r.batch_count, 4,
        "nothing at or beyond the bound is exposed"
    );
    assert_eq!(
        log.read(10, 100, u64::MAX)?.batch_count,
        0,
        "log end is an empty read"
    );
    assert!(matches!(
        log.read(11, 100, u64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.set_high_watermark(10);
    log.delete_records_before(3)?;
    assert!(matches!(
        log.read(2, 100, u64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.read(3, 100, u64::MAX)?.batch_count, 1);
    Ok(())
}

#[test]
fn r_log_3_reads_seek_through_the_index_instead_of_scanning() -> TestResult {
    let (mem_disk, disk) = mem();
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let log = open(&disk, Path::new("/t-0"), config);
    for seq in 0..4000 {
        log.append(&batch_for(0, seq, 1, 1000), 0, 0)?;
    }
    assert!(log.size_bytes() > 4_000_000);
    let before = mem_disk.bytes_read();
    let r = log.read(3990, 1024, u64::MAX)?;
    assert_eq!(r.batch_count, 1);
    let read = mem_disk.bytes_read() - before;
    assert!(
        read < 128 * 1024,
        "read {read} bytes to fetch one batch near the end"
    );
    Ok(())
}

#[test]
fn r_log_6_high_watermark_and_log_start_survive_a_crash_seed_002() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, LogConfig::default());
    for seq in 0..100 {
        log.append(&batch_for(0, seq, 1, 20), 0, 0)?;
    }
    log.set_high_watermark(100);
    log.delete_records_before(10)?;
    log.checkpoint()?;
    drop(log);
    mem_disk.crash(chronik::disk::Tear::None);
    let log = open(&disk, dir, LogConfig::default());
    assert_eq!(log.high_watermark(), 100);
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.read(10, 1 << 20, log.high_watermark())?.batch_count, 90);
    Ok(())
}

#[test]
fn r_log_6_a_stale_high_watermark_is_clamped_to_the_recovered_log_end() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, small_segments(FsyncPolicy::Never));
    for seq in 0..20 {
        log.append(&batch_for(0, seq, 1, 20), 0, 0)?;
    }
    log.set_high_watermark(20);
    log.checkpoint()?;
    drop(log);
    mem_disk.crash(chronik::disk::Tear::None);
    let log = open(&disk, dir, small_segments(FsyncPolicy::Never));
    assert!(log.high_watermark() <= log.log_end_offset());
    Ok(())
}

#[test]
fn r_log_1_segments_roll_by_age() -> TestResult {
    let (_, disk) = mem();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = open(&disk, Path::new("/t-0"), config);
    log.append(&batch_for(0, 0, 1, 10), 0, 0)?;
    log.append(&batch_for(0, 1, 1, 10), 999, 0)?;
    assert_eq!(log.segment_count(), 1);
    log.append(&batch_for(0, 2, 1, 10), 1000, 0)?;
    assert_eq!(log.segment_count(), 2);
    Ok(())
}

#[test]
fn r_log_8_retention_by_time_and_size_deletes_whole_old_segments() -> TestResult {
    let (_, disk) = mem();
    let mut config = small_segments(FsyncPolicy::Never);
    config.retention_ms = Some(1000);
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, config.clone());
    for seq in 0..60 {
        // Timestamps are 1_000_000 + seq (see batch_for).
        log.append(&batch_for(0, seq, 1, 200), 0, 0)?;
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    assert_eq!(
        log.enforce_retention(1_001_030)?,
        0,
        "nothing above the high watermark goes"
    );
    log.set_high_watermark(60);
    assert_eq!(log.enforce_retention(1_000_000)?, 0, "nothing is old yet");
    let removed = log.enforce_retention(1_001_030)?;
    assert!(removed > 0 && removed < segments);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(read_all(&log).first().map(|(o, _)| *o), Some(start));
    // Size: keep at most ~8 KiB.
    config.retention_ms = None;
    config.retention_bytes = Some(8192);
    log.set_config(config.clone())?;
    log.enforce_retention(0)?;
    assert!(log.size_bytes() <= 8192 + 4096);
    let start = log.log_start_offset();
    drop(log);
    let log = open(&disk, dir, config);
    assert_eq!(log.log_start_offset(), start, "the log start is durable");
    Ok(())
}

#[test]
fn r_log_8_delete_records_is_durable_and_bounded_by_the_high_watermark() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, small_segments(FsyncPolicy::Always));
    for seq in 0..40 {
        log.append(&batch_for(0, seq, 2, 100), 0, 0)?;
    }
    log.set_high_watermark(50);
    assert!(matches!(
        log.delete_records_before(51),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(33)?, 33);
    drop(log);
    mem_disk.crash(chronik::disk::Tear::None);
    let log = open(&disk, dir, small_segments(FsyncPolicy::Always));
    assert_eq!(log.log_start_offset(), 33);
    let first = read_all(&log)[0].0;
    assert_eq!(
        first, 32,
        "the batch holding offset 33 starts at 32 and is kept whole"
    );
    Ok(())
}

/// A log cut at or below its start keeps nothing and starts empty at the cut (it
/// could otherwise end below its own start, a DeleteRecords offset lying inside a
/// batch); a log started afresh beyond its end (a follower behind its leader's log
/// start) says so after a crash, and takes the leader's batches from there.
#[test]
fn r_log_8_a_log_cut_at_its_start_or_started_afresh_is_empty_there_and_durable() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, small_segments(FsyncPolicy::Always));
    for seq in 0..40 {
        log.append(&batch_for(0, seq, 2, 100), 0, 0)?;
    }
    log.set_high_watermark(80);
    log.delete_records_before(33)?;
    assert_eq!(log.truncate_to(33)?, 33);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (33, 33));
    assert_eq!(log.read(33, 1 << 20, u64::MAX)?.batch_count, 0);
    log.start_afresh_at(100)?;
    drop(log);
    mem_disk.crash(chronik::disk::Tear::None);
    let log = open(&disk, dir, small_segments(FsyncPolicy::Always));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert_eq!(log.high_watermark(), 100);
    let mut replicated = batch_for(0, 0, 2, 100);
    batch::set_base_offset(&mut replicated, 100);
    log.append_replica(&replicated, 0)?;
    assert_eq!(log.log_end_offset(), 102);
    assert!(
        log.start_afresh_at(101).is_err(),
        "a log that holds records does not start afresh below its end"
    );
    Ok(())
}

#[test]
fn r_log_1_list_offsets_by_timestamp_finds_the_first_record_at_or_after_it() -> TestResult {
    let (_, disk) = mem();
    let log = open(&disk, Path::new("/t-0"), small_segments(FsyncPolicy::Never));
    for seq in 0..100 {
        // Batch seq has records at timestamps 1_000_000 + seq + i, i in 0..3.
        log.append(&batch_for(0, seq, 3, 50), 0, 0)?;
    }
    assert_eq!(log.offset_for_timestamp(0, u64::MAX)?, Some((0, 1_000_000)));
    // Batch 50 holds timestamps 1_000_050..=1_000_052 at offsets 150..=152, and
    // batch 49's newest is 1_000_051, so the first record at or after 1_000_052 is 152.
    assert_eq!(
        log.offset_for_timestamp(1_000_052, u64::MAX)?,
        Some((152, 1_000_052))
    );
    assert_eq!(log.offset_for_timestamp(1_000_500, u64::MAX)?, None);
    assert_eq!(
        log.offset_for_timestamp(1_000_052, 150)?,
        None,
        "bounded by the caller"
    );
    Ok(())
}

/// Writes 30 batches to a real-file log with small segments and closes it.
fn real_log(dir: &Path) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let disk = real();
    let log = PartitionLog::open(disk, dir, small_segments(FsyncPolicy::Always), None)?;
    let mut expected = Vec::new();
    for seq in 0..30 {
        let b = batch_for(0, seq, 1, 300);
        let info = log.append(&b, 0, 0)?;
        expected.push((info.base_offset, stored(&b, info.base_offset, 0)));
    }
    Ok(expected)
}

fn segment_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, std::io::Error> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    Ok(logs)
}

#[test]
fn r_log_5_garbage_after_the_last_frame_is_cut() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let expected = real_log(tmp.path())?;
    let last = segment_files(tmp.path())?.pop().ok_or("no segment")?;
    let mut bytes = std::fs::read(&last)?;
    let clean_len = bytes.len();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&last, &bytes)?;
    let log = open(&real(), tmp.path(), small_segments(FsyncPolicy::Always));
    assert_eq!(read_all(&log), expected);
    assert_eq!(std::fs::metadata(&last)?.len(), clean_len as u64);
    Ok(())
}

#[test]
fn r_log_5_a_flipped_byte_in_the_last_frame_cuts_only_that_frame() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let expected = real_log(tmp.path())?;
    let last = segment_files(tmp.path())?.pop().ok_or("no segment")?;
    let mut bytes = std::fs::read(&last)?;
    let n = bytes.len();
    bytes[n - 5] ^= 0x40;
    std::fs::write(&last, &bytes)?;
    let log = open(&real(), tmp.path(), small_segments(FsyncPolicy::Always));
    assert_eq!(read_all(&log), expected[..expected.len() - 1].to_vec());
    // And the log goes on from there.
    let info = log.append(&batch_for(0, 99, 1, 10), 0, 0)?;
    assert_eq!(info.base_offset, expected[expected.len() - 1].0);
    Ok(())
}

#[test]
fn r_log_5_a_zero_length_last_segment_is_an_empty_active_segment() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let expected = real_log(tmp.path())?;
    let end = expected.last().map_or(0, |(o, _)| o + 1);
    let empty = tmp.path().join(format!("{end:020}.log"));
    std::fs::write(&empty, b"")?;
    let log = open(&real(), tmp.path(), small_segments(FsyncPolicy::Always));
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log), expected);
    assert_eq!(
        log.append(&batch_for(0, 100, 1, 10), 0, 0)?.base_offset,
        end
    );
    Ok(())
}

#[test]
fn r_log_3_missing_or_damaged_index_files_are_rebuilt() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let expected = real_log(tmp.path())?;
    let segments = segment_files(tmp.path())?;
    assert!(segments.len() >= 3);
    std::fs::remove_file(segments[0].with_extension("index"))?;
    std::fs::write(segments[1].with_extension("index"), b"\x01\x02\x03")?;
    std::fs::remove_file(segments[1].with_extension("timeindex"))?;
    let log = open(&real(), tmp.path(), small_segments(FsyncPolicy::Always));
    assert_eq!(read_all(&log), expected);
    Ok(())
}

/// Every batch of `expected` except those whose offsets are in `lost` reads back,
/// and a read at a lost offset answers a storage error naming `file`.
fn assert_only_lost(
    log: &PartitionLog,
    expected: &[(u64, Vec<u8>)],
    lost: &[u64],
    file: &Path,
) -> TestResult {
    for (offset, bytes) in expected {
        match log.read(*offset, 1, u64::MAX) {
            Ok(r) if !lost.contains(offset) => {
                assert_eq!(split_batches(&r.records), vec![(*offset, bytes.clone())]);
            }
            Err(e) if lost.contains(offset) => {
                assert!(e.is_storage_error(), "{e}");
                assert!(e.to_string().contains(&file.display().to_string()), "{e}");
            }
            other => panic!("offset {offset}: {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn r_log_13_a_flipped_byte_in_a_sealed_segment_fences_only_its_batch() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let expected = real_log(tmp.path())?;
    let segments = segment_files(tmp.path())?;
    let older = &segments[0];
    let mut bytes = std::fs::read(older)?;
    bytes[100] ^= 0x01;
    std::fs::write(older, &bytes)?;
    // With its index trusted, the damage is found by the read that meets it.
    let log = open(&real(), tmp.path(), small_segments(FsyncPolicy::Always));
    let err = match log.read(0, 1 << 20, u64::MAX) {
        Err(e) => e,
        Ok(r) => panic!("corrupt data was served: {} batches", r.batch_count),
    };
    assert!(
        matches!(
            err,
            LogError::Damaged {
                position: 0,
                first_offset: 0,
                end_offset: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_storage_error());
    assert_only_lost(&log, &expected, &[0], older)?;
    assert_eq!(log.damaged_ranges().len(), 1);
    let end = log.log_end_offset();
    drop(log);
    // Without its index the segment is scanned on open, which fences the same batch.
    std::fs::remove_file(older.with_extension("index"))?;
    let log = open(&real(), tmp.path(), small_segments(FsyncPolicy::Always));
    assert_eq!(log.log_end_offset(), end);
    assert_only_lost(&log, &expected, &[0], older)?;
    assert_eq!(log.damaged_ranges().len(), 1);
    Ok(())
}

/// A follower behind its leader's log start whose disk is full cannot write the
/// checkpoint of its new start: the start afresh fails and leaves the log as it was
/// (before, it kept the new start, high watermark and durable end in memory, claiming
/// records durable that it did not hold; found by the replication oracle, C-5). A
/// DeleteRecords refused the same way deletes nothing either.
#[test]
fn r_log_9_a_start_afresh_refused_by_a_full_disk_leaves_the_log_as_it_was() -> TestResult {
    let (mem_disk, disk) = mem();
    let log = open(&disk, Path::new("/t-0"), LogConfig::default());
    log.append(&batch_for(0, 0, 2, 100), 0, 0)?;
    log.set_high_watermark(1);
    let before = (
        log.log_start_offset(),
        log.log_end_offset(),
        log.durable_end_offset(),
        log.high_watermark(),
    );
    mem_disk.set_capacity(Some(mem_disk.used_bytes()));
    let err = log
        .start_afresh_at(10)
        .err()
        .ok_or("a start afresh on a full disk succeeded")?;
    assert!(err.is_disk_full(), "{err}");
    let deletion = log.delete_records_before(1);
    assert!(deletion.is_err_and(|e| e.is_disk_full()));
    let after = (
        log.log_start_offset(),
        log.log_end_offset(),
        log.durable_end_offset(),
        log.high_watermark(),
    );
    assert_eq!(after, before, "nothing moved");
    mem_disk.set_capacity(None);
    log.start_afresh_at(10)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    Ok(())
}

#[test]
fn r_log_9_a_full_disk_fails_the_append_and_loses_nothing() -> TestResult {
    let (mem_disk, disk) = mem();
    let log = open(&disk, Path::new("/t-0"), LogConfig::default());
    let mut expected = Vec::new();
    for seq in 0..5 {
        let b = batch_for(0, seq, 1, 100);
        let info = log.append(&b, 0, 0)?;
        expected.push((info.base_offset, stored(&b, info.base_offset, 0)));
    }
    mem_disk.set_capacity(Some(log.size_bytes() + 50));
    let err = log
        .append(&batch_for(0, 5, 1, 100), 0, 0)
        .err()
        .ok_or("append past capacity succeeded")?;
    assert!(err.is_disk_full() && err.is_storage_error(), "{err}");
    assert_eq!(read_all(&log), expected, "still readable");
    mem_disk.set_capacity(None);
    let b = batch_for(0, 5, 1, 100);
    let info = log.append(&b, 0, 0)?;
    assert_eq!(
        info.base_offset, 5,
        "no offset was burnt by the failed append"
    );
    expected.push((5, stored(&b, 5, 0)));
    assert_eq!(read_all(&log), expected);
    Ok(())
}

#[test]
fn r_log_9_a_failed_fsync_fails_the_append_and_the_log_recovers_from_durable_data() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, LogConfig::default());
    let mut expected = Vec::new();
    for seq in 0..5 {
        let b = batch_for(0, seq, 1, 100);
        let info = log.append(&b, 0, 0)?;
        expected.push((info.base_offset, stored(&b, info.base_offset, 0)));
    }
    mem_disk.fail_next_syncs(1);
    let err = log
        .append(&batch_for(0, 5, 1, 100), 0, 0)
        .err()
        .ok_or("append acked")?;
    assert!(err.is_storage_error(), "{err}");
    assert_eq!(log.durable_end_offset(), 5);
    // The next append first cuts the unacknowledged tail back and resyncs.
    let b = batch_for(0, 6, 1, 100);
    let info = log.append(&b, 0, 0)?;
    assert_eq!(info.base_offset, 5);
    expected.push((5, stored(&b, 5, 0)));
    assert_eq!(read_all(&log), expected);
    drop(log);
    mem_disk.crash(chronik::disk::Tear::None);
    assert_eq!(read_all(&open(&disk, dir, LogConfig::default())), expected);
    Ok(())
}

#[test]
fn r_log_1_invalid_and_oversized_batches_are_refused_without_touching_the_log() -> TestResult {
    let (_, disk) = mem();
    let log = open(&disk, Path::new("/t-0"), LogConfig::default());
    let mut b = batch::build_simple_batch(1, 10, b'x', 0);
    b[16] = 1; // magic
    assert!(matches!(
        log.append(&b, 0, 0),
        Err(LogError::InvalidBatch(_))
    ));
    assert!(matches!(
        log.append(&[0u8; 30], 0, 0),
        Err(LogError::InvalidBatch(_))
    ));
    let huge = batch::build_simple_batch(1, 2_000_000, b'x', 0);
    assert!(matches!(
        log.append(&huge, 0, 0),
        Err(LogError::BatchTooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    Ok(())
}

#[test]
fn r_log_14_a_batch_claiming_more_offsets_than_records_is_refused_and_the_end_stays() -> TestResult
{
    let (_, disk) = mem();
    let log = open(&disk, Path::new("/t-0"), LogConfig::default());
    log.append(&batch::build_simple_batch(2, 10, b'x', 0), 0, 0)?;
    for (delta, count) in [(i32::MAX, 1i32), (0, 1000), (0, 0)] {
        let mut b = batch::build_simple_batch(1, 10, b'x', 0);
        b[23..27].copy_from_slice(&delta.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            log.append(&b, 0, 0),
            Err(LogError::InvalidRecord(_))
        ));
        assert_eq!(log.log_end_offset(), 2);
    }
    assert_eq!(
        log.append(&batch::build_simple_batch(1, 10, b'x', 0), 0, 0)?
            .base_offset,
        2
    );
    Ok(())
}

#[test]
fn r_log_6_a_corrupt_checkpoint_is_a_clear_error() -> TestResult {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let tmp = tempfile::tempdir()?;
    real_log(tmp.path())?;
    let f = disk.open_file(&tmp.path().join("checkpoint.json"), OpenMode::Create)?;
    f.write_at(b"{not json", 0)?;
    let err = PartitionLog::open(disk, tmp.path(), LogConfig::default(), None)
        .err()
        .ok_or("opened with a corrupt checkpoint")?;
    assert!(err.to_string().contains("checkpoint.json"), "{err}");
    Ok(())
}

#[test]
fn r_log_4_the_interval_policy_acknowledges_at_once_and_syncs_when_due() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let config = LogConfig {
        fsync: FsyncPolicy::Interval { ms: 100 },
        ..LogConfig::default()
    };
    let log = open(&disk, dir, config.clone());
    let syncs = mem_disk.sync_count();
    log.append(&batch_for(0, 0, 1, 10), 0, 0)?;
    assert_eq!(mem_disk.sync_count(), syncs, "no fsync on the append path");
    assert!(
        !log.sync_if_due(1000)?,
        "the first call starts the interval"
    );
    log.append(&batch_for(0, 1, 1, 10), 0, 0)?;
    assert!(!log.sync_if_due(1099)?);
    assert_eq!(log.durable_end_offset(), 0);
    assert!(log.sync_if_due(1100)?);
    assert_eq!(log.durable_end_offset(), 2);
    assert!(!log.sync_if_due(1300)?, "nothing new to sync");
    log.append(&batch_for(0, 2, 1, 10), 0, 0)?;
    drop(log);
    mem_disk.crash(chronik::disk::Tear::None);
    let log = open(&disk, dir, config);
    assert_eq!(
        log.log_end_offset(),
        2,
        "what the interval had not synced is lost"
    );
    Ok(())
}

/// A batch whose fsync failed is cut off with the unacknowledged tail; its producer
/// retries it with the same sequence. That retry is a new batch, appended and made
/// durable: were it judged a duplicate of the cut one, it would wait for (or be
/// acknowledged at) an offset the next append reuses (found by the simulator).
#[test]
fn r_log_11_a_retry_of_a_batch_cut_after_a_failed_fsync_is_appended_anew() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, LogConfig::default());
    let first = with_producer(batch_for(0, 0, 1, 10), 42, 0, 0);
    assert_eq!(log.append(&first, 0, 3)?.base_offset, 0);
    mem_disk.fail_next_syncs(1);
    let cut = with_producer(batch_for(0, 1, 1, 10), 42, 0, 1);
    let err = log.append(&cut, 0, 4).err().ok_or("append acked")?;
    assert!(err.is_storage_error(), "{err}");
    let retried = log.append(&cut, 0, 4)?;
    assert_eq!(
        retried.base_offset, 1,
        "appended again, at the offset the cut freed"
    );
    assert_eq!(log.durable_end_offset(), 2);
    assert!(matches!(
        log.append(&cut, 0, 4),
        Err(LogError::DuplicateSequence { base_offset: 1, .. })
    ));
    Ok(())
}

#[test]
fn r_log_11_producer_sequences_are_checked_and_survive_a_crash() -> TestResult {
    let (mem_disk, disk) = mem();
    let dir = Path::new("/t-0");
    let log = open(&disk, dir, LogConfig::default());
    let first = with_producer(batch_for(0, 0, 2, 10), 42, 0, 0);
    assert_eq!(log.append(&first, 0, 0)?.base_offset, 0);
    let second = with_producer(batch_for(0, 1, 1, 10), 42, 0, 2);
    assert_eq!(log.append(&second, 0, 0)?.base_offset, 2);
    assert!(matches!(
        log.append(&first, 0, 0),
        Err(LogError::DuplicateSequence { base_offset: 0, .. })
    ));
    let gap = with_producer(batch_for(0, 2, 1, 10), 42, 0, 9);
    assert!(matches!(
        log.append(&gap, 0, 0),
        Err(LogError::OutOfOrderSequence {
            expected: 3,
            got: 9,
            ..
        })
    ));
    assert_eq!(
        log.log_end_offset(),
        3,
        "neither the duplicate nor the gap was written"
    );
    drop(log);
    mem_disk.crash(chronik::disk::Tear::None);
    // The recovery scan rebuilds the producer state from the batch headers.
    let log = open(&disk, dir, LogConfig::default());
    assert!(matches!(
        log.append(&second, 0, 0),
        Err(LogError::DuplicateSequence { base_offset: 2, .. })
    ));
    let third = with_producer(batch_for(0, 3, 1, 10), 42, 0, 3);
    assert_eq!(log.append(&third, 0, 0)?.base_offset, 3);
    Ok(())
}

#[test]
fn r_log_12_a_follower_keeps_the_leaders_offsets_and_epochs_and_truncates_to_its_leader(
) -> TestResult {
    let (_, disk) = mem();
    let leader = open(
        &disk,
        Path::new("/leader"),
        small_segments(FsyncPolicy::Always),
    );
    let follower = open(
        &disk,
        Path::new("/follower"),
        small_segments(FsyncPolicy::Always),
    );
    // Epoch 0 then epoch 3 on the leader; the follower copies every batch as stored.
    for seq in 0..40 {
        let epoch = if seq < 25 { 0 } else { 3 };
        let info = leader.append(&batch_for(0, seq, 2, 40), 10, epoch)?;
        let copy = leader.read(info.base_offset, 1, u64::MAX)?;
        follower.append_replica(&copy.records, 10)?;
    }
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(follower.last_leader_epoch(), Some(3));
    assert_eq!(leader.end_offset_for_epoch(0), Some((0, 50)));
    assert_eq!(leader.end_offset_for_epoch(2), Some((0, 50)));
    assert_eq!(leader.end_offset_for_epoch(3), Some((3, 80)));
    // A batch that does not start at the log end is refused.
    let stray = leader.read(10, 1, u64::MAX)?;
    assert!(follower.append_replica(&stray.records, 10).is_err());

    // Truncation to inside a batch cuts back to that batch's start, across segments.
    assert!(follower.segment_count() > 1);
    let end = follower.truncate_to(31)?;
    assert_eq!(end, 30);
    assert_eq!(follower.log_end_offset(), 30);
    assert_eq!(read_all(&follower), read_all(&leader)[..15].to_vec());
    assert_eq!(follower.last_leader_epoch(), Some(0));
    // Appends continue from there, and all of it survives a reopen.
    let copy = leader.read(30, 1, u64::MAX)?;
    follower.append_replica(&copy.records, 10)?;
    follower.sync()?;
    drop(follower);
    let reopened = open(
        &disk,
        Path::new("/follower"),
        small_segments(FsyncPolicy::Always),
    );
    assert_eq!(reopened.log_end_offset(), 32);
    assert_eq!(read_all(&reopened), read_all(&leader)[..16].to_vec());
    assert_eq!(reopened.end_offset_for_epoch(0), Some((0, 32)));
    Ok(())
}

/// A log whose group commit rounds the test runs.
fn open_with_manual_commits(
    disk: &Arc<dyn Disk>,
) -> Result<(chronik::log::ManualCommitter, PartitionLog), LogError> {
    let committer = chronik::log::ManualCommitter::new();
    let log = PartitionLog::open(
        Arc::clone(disk),
        Path::new("/t-0"),
        LogConfig::default(),
        Some(committer.queue()),
    )?;
    Ok((committer, log))
}

/// An append queued for the group commit when an fsync failed is cut with the
/// unsynced tail when the log comes back; a later successful sync must not
/// acknowledge it, since its offset now holds another batch (R-LOG-9). The blocking
/// append checked this already; the queued one did not.
#[test]
fn r_log_9_an_append_cut_after_a_failed_fsync_is_never_acknowledged() -> TestResult {
    let (mem_disk, disk) = mem();
    let (committer, log) = open_with_manual_commits(&disk)?;
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let append = |seq: u64| {
        let outcomes = Arc::clone(&outcomes);
        log.append_then(&batch_for(0, seq, 1, 10), 0, 0, move |r| {
            outcomes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((seq, r.map(|i| i.base_offset)));
        });
    };
    append(0);
    committer.run_round();
    append(1); // written, queued, not yet synced
    mem_disk.fail_next_syncs(1);
    assert!(log.sync().is_err(), "the fsync fails; the log goes offline");
    append(2); // cuts batch 1 off and takes its offset
    committer.run_round();
    let outcomes = outcomes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(matches!(outcomes[0], (0, Ok(0))), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], (1, Err(_))),
        "the cut batch is not acknowledged: {outcomes:?}"
    );
    assert!(matches!(outcomes[2], (2, Ok(1))), "{outcomes:?}");
    Ok(())
}

/// An idempotent retry of a batch whose original is not yet synced waits for a sync
/// that covers the original; when that sync fails and the original is cut (its offset
/// then taken by another batch), the retry is answered with an error, never as a
/// duplicate of whatever now sits at that offset (R-LOG-9; found by conformance C-5
/// with retries and a failed fsync: the retry was acknowledged once the new batch at
/// the cut offset passed the high watermark).
#[test]
fn r_log_9_a_retry_of_a_batch_cut_by_a_failed_fsync_is_never_acknowledged_as_its_duplicate(
) -> TestResult {
    let (mem_disk, disk) = mem();
    let (committer, log) = open_with_manual_commits(&disk)?;
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let append = |what: &'static str, batch: Vec<u8>| {
        let outcomes = Arc::clone(&outcomes);
        log.append_then(&batch, 0, 0, move |r| {
            outcomes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((what, r));
        });
    };
    let original = with_producer(batch_for(0, 0, 1, 10), 7, 0, 0);
    append("original", original.clone());
    append("retry", original.clone());
    assert!(
        outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty(),
        "the retry of an unsynced original is not answered before a sync"
    );
    mem_disk.fail_next_syncs(1);
    committer.run_round();
    append("other", with_producer(batch_for(0, 0, 1, 10), 8, 0, 0));
    committer.run_round();
    append("retry after the cut", original);
    committer.run_round();
    let outcomes = outcomes.lock().unwrap_or_else(|p| p.into_inner());
    let by = |what: &str| outcomes.iter().find(|(w, _)| *w == what).map(|(_, r)| r);
    assert!(matches!(by("original"), Some(Err(_))), "{outcomes:?}");
    assert!(
        matches!(by("retry"), Some(Err(e)) if !matches!(e, LogError::DuplicateSequence { .. })),
        "the retry fails with its original: {outcomes:?}"
    );
    assert!(
        matches!(by("other"), Some(Ok(info)) if info.base_offset == 0),
        "{outcomes:?}"
    );
    assert!(
        matches!(by("retry after the cut"), Some(Ok(info)) if info.base_offset == 1),
        "a later retry is appended anew (R-LOG-11): {outcomes:?}"
    );
    Ok(())
}

/// A truncation of a log left offline by a failed fsync keeps none of the records
/// that fsync covered, even where it cuts above them: no later sync vouches for
/// them (R-LOG-9). Before, the cut synced and kept them, and the log stayed offline
/// with nothing to cut, failing its next sync.
#[test]
fn r_log_9_a_truncation_of_an_offline_log_keeps_none_of_its_unsynced_records() -> TestResult {
    let (mem_disk, disk) = mem();
    let (_committer, log) = open_with_manual_commits(&disk)?;
    log.append_replica(&stored(&batch_for(0, 0, 1, 10), 0, 3), 0)?;
    log.sync()?;
    log.append_replica(&stored(&batch_for(0, 1, 1, 10), 1, 3), 0)?;
    log.append_replica(&stored(&batch_for(0, 2, 1, 10), 2, 3), 0)?;
    mem_disk.fail_next_syncs(1);
    assert!(log.sync().is_err());
    assert_eq!(log.truncate_to(2)?, 1, "the unsynced records are cut first");
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.durable_end_offset(), 1);
    log.sync()?;
    Ok(())
}

/// A log left offline by a failed fsync answers OffsetForLeaderEpoch only after
/// cutting the tail it cannot vouch for (R-LOG-9, R-REPL-3).
#[test]
fn r_log_9_an_offline_log_cuts_its_unsynced_tail_before_it_reports_its_end() -> TestResult {
    let (mem_disk, disk) = mem();
    let (_committer, log) = open_with_manual_commits(&disk)?;
    log.append_replica(&stored(&batch_for(0, 0, 1, 10), 0, 3), 0)?;
    log.sync()?;
    log.append_replica(&stored(&batch_for(0, 1, 1, 10), 1, 3), 0)?;
    mem_disk.fail_next_syncs(1);
    assert!(log.sync().is_err());
    assert_eq!(
        log.end_offset_for_epoch(3),
        Some((3, 2)),
        "still counts the unsynced batch"
    );
    log.resync_if_offline()?;
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 1)));
    assert_eq!(log.log_end_offset(), 1);
    Ok(())
}
