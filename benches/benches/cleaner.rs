//! The log cleaner (R-LOG-18) beside the log's own sequential read of the same data,
//! in one sitting: `cargo bench -p chronik-benches --bench cleaner`. Files go to
//! $CHRONIK_BENCH_DIR (default target/bench-data), as for the `wal` bench.
//!
//! The log: 64 MiB in 8 MiB segments of 10-record batches, 200-byte values over
//! 20,000 keys, each key written about 16 times, so a pass keeps about one record in
//! sixteen. Both benches count the bytes of the log they go through.

use chronik::disk::{Disk, RealDisk};
use chronik::log::batch::{build_batch, Record};
use chronik::log::{Compaction, FsyncPolicy, LogConfig, PartitionLog};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: u64 = 20_000;
const LOG_BYTES: u64 = 64 << 20;

fn bench_dir() -> PathBuf {
    let root = std::env::var_os("CHRONIK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    if let Err(e) = std::fs::create_dir_all(&root) {
        panic!("cannot create bench dir {}: {e}", root.display());
    }
    root
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 << 20,
        fsync: FsyncPolicy::Never,
        retention_ms: None,
        compaction: Some(Compaction::default()),
        ..LogConfig::default()
    }
}

/// A fresh compacted log of `LOG_BYTES`, all of it below the high watermark.
fn build() -> (tempfile::TempDir, PartitionLog) {
    let dir = tempfile::Builder::new()
        .prefix("cleaner")
        .tempdir_in(bench_dir())
        .unwrap_or_else(|e| panic!("tempdir: {e}"));
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let log = PartitionLog::open(disk, dir.path(), config(), None)
        .unwrap_or_else(|e| panic!("open: {e}"));
    let mut n = 0u64;
    while log.size_bytes() < LOG_BYTES {
        let records: Vec<Record> = (0..10)
            .map(|i| Record {
                key: Some(format!("key-{:08}", (n + i) * 7919 % KEYS).into_bytes()),
                value: Some(vec![b'v'; 200]),
                timestamp_delta: 0,
            })
            .collect();
        n += 10;
        if let Err(e) = log.append(&build_batch(&records, 1_000), 1_000, 0) {
            panic!("append: {e}");
        }
    }
    log.set_high_watermark(log.log_end_offset());
    (dir, log)
}

fn read_all(log: &PartitionLog) -> u64 {
    let (mut at, mut bytes) = (0, 0u64);
    while at < log.log_end_offset() {
        match log.read(at, 1 << 20, u64::MAX) {
            Ok(r) => {
                bytes += r.records.len() as u64;
                at = r.next_offset;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    bytes
}

fn cleaner(c: &mut Criterion) {
    let mut group = c.benchmark_group("cleaner");
    group.throughput(Throughput::Bytes(LOG_BYTES));
    group.bench_function("sequential_read_64MiB", |b| {
        let (_dir, log) = build();
        b.iter(|| read_all(&log));
    });
    group.bench_function("clean_pass_64MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_dir, log) = build();
                let start = Instant::now();
                let outcome = log
                    .clean(10_000, 128 << 20)
                    .unwrap_or_else(|e| panic!("clean: {e}"));
                total += start.elapsed();
                assert!(
                    outcome.records_removed > 0 && outcome.bytes_written < outcome.bytes_read / 8
                );
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .sample_size(10);
    targets = cleaner
}
criterion_main!(benches);
