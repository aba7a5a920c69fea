//! Criterion benches of the partition log's hot paths on real files.
//! `cargo bench -p chronik-benches --bench wal`; `benches/compare-fio.sh` runs these
//! and fio with the same sizes in one sitting and prints each as a ratio of fio.
//! Files go to $CHRONIK_BENCH_DIR (default target/bench-data): keep it on the same
//! file system fio measures, never tmpfs.

use chronik::disk::{Disk, RealDisk};
use chronik::log::batch::build_simple_batch;
use chronik::log::{FsyncPolicy, GroupCommitter, LogConfig, PartitionLog};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZES: [(&str, usize); 3] = [("1KiB", 1024), ("16KiB", 16 * 1024), ("1MiB", 1024 * 1024)];

fn bench_dir() -> PathBuf {
    let root = std::env::var_os("CHRONIK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    if let Err(e) = std::fs::create_dir_all(&root) {
        panic!("cannot create bench dir {}: {e}", root.display());
    }
    root
}

fn fresh_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(bench_dir())
        .unwrap_or_else(|e| panic!("tempdir: {e}"))
}

/// A batch of one record whose whole batch is `size` bytes.
fn batch_of(size: usize) -> Vec<u8> {
    // 61 bytes of batch header and about 10 of record framing.
    build_simple_batch(1, size.saturating_sub(72).max(1), b'x', 0)
}

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: u64::from(u32::MAX),
        max_batch_bytes: 2 << 20,
        fsync,
        ..LogConfig::default()
    }
}

fn open(
    dir: &std::path::Path,
    fsync: FsyncPolicy,
    committer: Option<&GroupCommitter>,
) -> PartitionLog {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    PartitionLog::open(
        disk,
        dir,
        config(fsync),
        committer.map(GroupCommitter::queue),
    )
    .unwrap_or_else(|e| panic!("open: {e}"))
}

/// Appends into the page cache (fsync=never): encode, CRC, write, index.
fn append_buffered(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_buffered");
    for (name, size) in SIZES {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let dir = fresh_dir("buffered");
                let log = open(dir.path(), FsyncPolicy::Never, None);
                let start = Instant::now();
                for _ in 0..iters {
                    if let Err(e) = log.append(&batch, 0, 0) {
                        panic!("append: {e}");
                    }
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// One producer, every append fdatasync'ed before it returns.
fn append_fsync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_fsync");
    let committer = GroupCommitter::start();
    for (name, size) in SIZES {
        let batch = batch_of(size);
        let dir = fresh_dir("fsync");
        let log = open(dir.path(), FsyncPolicy::Always, Some(&committer));
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                if let Err(e) = log.append(&batch, 0, 0) {
                    panic!("append: {e}");
                }
            })
        });
    }
    group.finish();
}

/// N producers, each appending to its own partition with fsync=always: each blocks
/// on its log's coalesced sync, so the fdatasyncs of different partitions run
/// concurrently. Throughput is acknowledged appends per second.
fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit");
    for (size_name, size) in [("1KiB", 1024), ("16KiB", 16 * 1024)] {
        let batch = Arc::new(batch_of(size));
        for producers in [1usize, 4, 16] {
            group.throughput(Throughput::Elements(1));
            let id = BenchmarkId::new(size_name, producers);
            group.bench_function(id, |b| {
                let committer = GroupCommitter::start();
                let dirs: Vec<_> = (0..producers).map(|_| fresh_dir("group")).collect();
                let logs: Vec<Arc<PartitionLog>> = dirs
                    .iter()
                    .map(|d| Arc::new(open(d.path(), FsyncPolicy::Always, Some(&committer))))
                    .collect();
                b.iter_custom(|iters| {
                    let per_producer = iters.div_ceil(producers as u64);
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for log in &logs {
                            let batch = Arc::clone(&batch);
                            s.spawn(move || {
                                for _ in 0..per_producer {
                                    if let Err(e) = log.append(&batch, 0, 0) {
                                        panic!("append: {e}");
                                    }
                                }
                            });
                        }
                    });
                    // Scale to the requested count: all producers ran per_producer each.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_producer * producers as u64) as f64)
                });
                let appends: u64 = logs.iter().map(|l| l.log_end_offset()).sum();
                let syncs: u64 = logs.iter().map(|l| l.sync_count()).sum();
                println!(
                    "group_commit/{size_name}/{producers}: {:.2} appends per fdatasync",
                    appends as f64 / syncs.max(1) as f64
                );
            });
        }
    }
    group.finish();
}

/// Opening a log whose active segment holds 1 GiB of 16 KiB batches: every frame is
/// read, checksummed and indexed. The file is in the page cache (a warm restart).
fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let total: u64 = 1 << 30;
    group.throughput(Throughput::Bytes(total));
    // Built on first use (criterion calls this closure per sample), so a filtered
    // run (`--bench other`) never builds it.
    let mut built: Option<(tempfile::TempDir, u64)> = None;
    group.bench_function("scan_1GiB_16KiB_batches", |b| {
        let (dir, batches) = built.get_or_insert_with(|| {
            let dir = fresh_dir("recovery");
            let batch = batch_of(16 * 1024);
            let log = open(dir.path(), FsyncPolicy::Never, None);
            while log.size_bytes() < total {
                if let Err(e) = log.append(&batch, 0, 0) {
                    panic!("append: {e}");
                }
            }
            if let Err(e) = log.sync() {
                panic!("sync: {e}");
            }
            let end = log.log_end_offset();
            (dir, end)
        });
        let batches = *batches;
        b.iter(|| {
            // Every batch must have been found by the scan, or this measured nothing.
            let recovered = open(dir.path(), FsyncPolicy::Never, None).log_end_offset();
            assert_eq!(recovered, batches);
            recovered
        })
    });
    group.finish();
}

/// Reading one batch at a random offset of a cached 100 MiB log of 1 KiB batches.
fn read_by_offset(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_by_offset");
    let count = 100_000u64;
    let mut built: Option<(tempfile::TempDir, PartitionLog)> = None;
    let mut x: u64 = 0x9e3779b97f4a7c15;
    group.bench_function("cached_1KiB", |b| {
        let (_dir, log) = built.get_or_insert_with(|| {
            let dir = fresh_dir("read");
            let log = open(dir.path(), FsyncPolicy::Never, None);
            let batch = batch_of(1024);
            for _ in 0..count {
                if let Err(e) = log.append(&batch, 0, 0) {
                    panic!("append: {e}");
                }
            }
            (dir, log)
        });
        b.iter(|| {
            // xorshift: uniform offsets without a dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match log.read(x % count, 1024, u64::MAX) {
                Ok(r) => r.batch_count,
                Err(e) => panic!("read: {e}"),
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = wal;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    targets = append_buffered, append_fsync, group_commit, recovery, read_by_offset
}
criterion_main!(wal);
