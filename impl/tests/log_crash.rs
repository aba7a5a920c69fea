//! Crash tests of the partition log (R-LOG-4, R-LOG-5): whatever was acknowledged
//! before a crash is readable after it, at its offset, byte for byte, with no gap;
//! the log after recovery holds exactly a prefix of what was written.

mod common;

use chronik::disk::{Disk, MemDisk, Tear};
use chronik::log::{FsyncPolicy, GroupCommitter, LogConfig, PartitionLog};
use common::*;
use proptest::prelude::*;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
enum Op {
    Append {
        partition: usize,
        records: usize,
        value_len: usize,
    },
    Sync {
        partition: usize,
    },
    Crash {
        tear: Option<usize>,
    },
    CleanReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 1..4usize, 1..300usize).prop_map(|(partition, records, value_len)| {
            Op::Append { partition, records, value_len }
        }),
        2 => (0..3usize).prop_map(|partition| Op::Sync { partition }),
        1 => proptest::option::of(0..700usize).prop_map(|tear| Op::Crash { tear }),
        1 => Just(Op::CleanReopen),
    ]
}

/// Partitions 0 and 1 sync only when told (or when a segment is sealed);
/// partition 2 acknowledges an append only once it is fsynced.
fn config(partition: usize) -> LogConfig {
    let fsync = if partition == 2 {
        FsyncPolicy::Always
    } else {
        FsyncPolicy::Never
    };
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..small_segments(fsync)
    }
}

fn dir(partition: usize) -> PathBuf {
    PathBuf::from(format!("/data/t-{partition}"))
}

struct Model {
    /// Every append that returned Ok, in order: (base offset, stored bytes).
    written: Vec<(u64, Vec<u8>)>,
    /// How many of `written` were acknowledged as durable.
    acked: usize,
}

fn open_all(disk: &Arc<dyn Disk>) -> Vec<PartitionLog> {
    (0..3).map(|p| open(disk, &dir(p), config(p))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// R-LOG-4, R-LOG-5: after every reopen each log is a prefix of what was
    /// written, holds every acknowledged append, and without a torn write holds
    /// exactly what it had reported durable.
    #[test]
    fn r_log_5_recovery_keeps_exactly_a_prefix_holding_every_acknowledged_append(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        let mem_disk = MemDisk::new();
        let disk: Arc<dyn Disk> = Arc::new(mem_disk.clone());
        let mut logs = open_all(&disk);
        let mut models: Vec<Model> = (0..3).map(|_| Model { written: vec![], acked: 0 }).collect();
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Append { partition, records, value_len } => {
                    seq += 1;
                    let b = batch_for(partition as u32, seq, records, value_len);
                    let info = logs[partition].append(&b, seq, 3);
                    let info = info.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let m = &mut models[partition];
                    let expected_base = m.written.last().map_or(0, |(o, b)| {
                        o + chronik::log::batch::BatchHeader::parse(b).map_or(0, |h| h.offset_count())
                    });
                    prop_assert_eq!(info.base_offset, expected_base);
                    m.written.push((info.base_offset, stored(&b, info.base_offset, 3)));
                    if partition == 2 {
                        m.acked = m.written.len();
                    }
                }
                Op::Sync { partition } => {
                    logs[partition].sync().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    models[partition].acked = models[partition].written.len();
                }
                Op::Crash { tear } => {
                    let claimed: Vec<u64> = logs.iter().map(|l| l.durable_end_offset()).collect();
                    drop(logs);
                    mem_disk.crash(tear.map_or(Tear::None, Tear::KeepTail));
                    logs = open_all(&disk);
                    for (p, log) in logs.iter().enumerate() {
                        let recovered = read_all(log);
                        let m = &mut models[p];
                        prop_assert!(recovered.len() <= m.written.len());
                        prop_assert_eq!(&recovered[..], &m.written[..recovered.len()]);
                        prop_assert!(recovered.len() >= m.acked, "lost an acknowledged append");
                        prop_assert!(log.log_end_offset() >= claimed[p]);
                        if tear.is_none() {
                            prop_assert_eq!(log.log_end_offset(), claimed[p]);
                        }
                        m.written.truncate(recovered.len());
                        // Open syncs what it recovered: all of it is durable now.
                        m.acked = m.written.len();
                    }
                }
                Op::CleanReopen => {
                    for log in &logs {
                        log.close().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                    drop(logs);
                    logs = open_all(&disk);
                    for (p, log) in logs.iter().enumerate() {
                        prop_assert_eq!(&read_all(log), &models[p].written);
                        models[p].acked = models[p].written.len();
                    }
                }
            }
        }
    }
}

/// Acknowledged (partition, base offset, sequence) triples.
type Acks = Arc<Mutex<Vec<(usize, u64, u64)>>>;

fn verify_acked(logs: &[PartitionLog], acks: &[(usize, u64, u64)], value_len: usize) {
    for (p, log) in logs.iter().enumerate() {
        let recovered = read_all(log);
        // No gap: each batch starts where the previous one ended.
        let mut next = log.log_start_offset();
        for (base, bytes) in &recovered {
            assert_eq!(*base, next, "gap in partition {p} at offset {next}");
            next += chronik::log::batch::BatchHeader::parse(bytes).map_or(0, |h| h.offset_count());
        }
        let by_offset: std::collections::BTreeMap<u64, &Vec<u8>> =
            recovered.iter().map(|(o, b)| (*o, b)).collect();
        let mut mine: Vec<_> = acks.iter().filter(|(ap, _, _)| *ap == p).collect();
        mine.sort();
        for (_, offset, seq) in mine {
            let expected = stored(&batch_for(p as u32, *seq, 1, value_len), *offset, 0);
            match by_offset.get(offset) {
                Some(found) => {
                    assert_eq!(**found, expected, "partition {p} offset {offset} differs")
                }
                None => panic!("acknowledged append p{p}@{offset} (seq {seq}) lost"),
            }
        }
    }
}

/// Three producers (one per partition) share one group committer on the simulated
/// disk; the disk crashes after a seeded number of acknowledgements, with a torn
/// tail. Every acknowledged batch must read back in order with no gap (seed 002).
#[test]
fn r_log_4_ten_thousand_batches_crash_at_a_random_point_and_every_ack_survives() {
    const TOTAL: u64 = 10_000;
    let seed = std::env::var("CHRONIK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    let crash_after = 1_000 + seed % 8_000;
    let tear = Tear::KeepTail((seed % 97) as usize);
    println!("seed {seed}: crash after {crash_after} acks, {tear:?}");
    let mem_disk = MemDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(mem_disk.clone());
    let committer = GroupCommitter::start();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let logs: Vec<Arc<PartitionLog>> = (0..3)
        .map(|p| {
            PartitionLog::open(
                Arc::clone(&disk),
                &dir(p),
                config.clone(),
                Some(committer.queue()),
            )
            .map(Arc::new)
            .unwrap_or_else(|e| panic!("open: {e}"))
        })
        .collect();
    let acks: Acks = Arc::default();
    let attempts = Arc::new(AtomicU64::new(0));
    let crashed = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let (log, acks, attempts) = (
                Arc::clone(&logs[p]),
                Arc::clone(&acks),
                Arc::clone(&attempts),
            );
            std::thread::spawn(move || loop {
                let seq = attempts.fetch_add(1, Ordering::SeqCst);
                if seq >= TOTAL {
                    return;
                }
                // Partition 2 takes the asynchronous path through the group
                // committer thread; the others block on the per-log coalesced sync.
                let outcome = if p == 2 {
                    let (tx, rx) = std::sync::mpsc::channel();
                    log.append_then(&batch_for(p as u32, seq, 1, 64), 0, 0, move |r| {
                        let _ = tx.send(r);
                    });
                    rx.recv()
                        .unwrap_or(Err(chronik::log::LogError::ShuttingDown))
                } else {
                    log.append(&batch_for(p as u32, seq, 1, 64), 0, 0)
                };
                match outcome {
                    Ok(info) => acks.lock().unwrap_or_else(|e| e.into_inner()).push((
                        p,
                        info.base_offset,
                        seq,
                    )),
                    Err(_) => return,
                }
            })
        })
        .collect();
    let crasher = {
        let (acks, crashed, mem_disk) = (Arc::clone(&acks), Arc::clone(&crashed), mem_disk.clone());
        std::thread::spawn(move || {
            while acks.lock().unwrap_or_else(|e| e.into_inner()).len() < crash_after as usize {
                std::thread::yield_now();
            }
            mem_disk.crash(tear);
            crashed.store(true, Ordering::SeqCst);
        })
    };
    for t in producers {
        t.join().unwrap_or_else(|_| panic!("producer panicked"));
    }
    crasher
        .join()
        .unwrap_or_else(|_| panic!("crasher panicked"));
    assert!(crashed.load(Ordering::SeqCst));
    drop(logs);
    drop(committer);
    let acks = acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(acks.len() as u64 >= crash_after);
    let reopened: Vec<PartitionLog> = (0..3)
        .map(|p| open(&disk, &dir(p), config.clone()))
        .collect();
    verify_acked(&reopened, &acks, 64);
}

const CHILD_ENV: &str = "CHRONIK_SIGKILL_CHILD_DIR";

/// Not a test on its own: the writer process that the SIGKILL test starts and kills.
#[test]
#[ignore = "run by r_log_4_sigkill_mid_write_loses_no_acknowledged_batch"]
fn sigkill_child_writer() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let disk = real();
    let committer = GroupCommitter::start();
    let config = LogConfig {
        segment_bytes: 256 * 1024,
        ..LogConfig::default()
    };
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let writers: Vec<_> = (0..3)
        .map(|p| {
            let log = PartitionLog::open(
                Arc::clone(&disk),
                &root.join(format!("t-{p}")),
                config.clone(),
                Some(committer.queue()),
            )
            .unwrap_or_else(|e| panic!("child open: {e}"));
            let stdout = Arc::clone(&stdout);
            std::thread::spawn(move || {
                for seq in 0.. {
                    let info = match log.append(&batch_for(p, seq, 1, 500), 0, 0) {
                        Ok(info) => info,
                        Err(e) => panic!("child append: {e}"),
                    };
                    let mut out = stdout.lock().unwrap_or_else(|e| e.into_inner());
                    // Printed only after the append is durable: an ack.
                    let _ = writeln!(out, "ACK {p} {} {seq}", info.base_offset);
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
}

/// R-LOG-4: the same on real files, with the writing process killed by SIGKILL
/// while appends are in flight.
#[test]
fn r_log_4_sigkill_mid_write_loses_no_acknowledged_batch() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "sigkill_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn writer: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut acks = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let ["ACK", p, offset, seq] = fields[..] {
            let parse = |s: &str| {
                s.parse::<u64>()
                    .unwrap_or_else(|e| panic!("bad ack line {line}: {e}"))
            };
            acks.push((parse(p) as usize, parse(offset), parse(seq)));
        }
        if !killed && acks.len() >= 300 {
            child.kill().unwrap_or_else(|e| panic!("kill: {e}")); // SIGKILL
            killed = true;
        }
    }
    let _ = child.wait();
    assert!(
        killed,
        "writer exited before it was killed ({} acks)",
        acks.len()
    );
    let disk = real();
    let logs: Vec<PartitionLog> = (0..3)
        .map(|p| {
            open(
                &disk,
                &tmp.path().join(format!("t-{p}")),
                LogConfig::default(),
            )
        })
        .collect();
    println!(
        "{} acknowledged before SIGKILL; log ends {:?}",
        acks.len(),
        logs.iter().map(|l| l.log_end_offset()).collect::<Vec<_>>()
    );
    verify_acked(&logs, &acks, 500);
}

/// A disk on which the process dies after `budget` more changes: every later change
/// fails, as nothing after a kill reaches the disk; reads go on.
#[derive(Debug)]
struct DiesAfter {
    inner: MemDisk,
    budget: Arc<std::sync::atomic::AtomicI64>,
}

#[derive(Debug)]
struct DiesAfterFile {
    inner: Arc<dyn chronik::disk::DiskFile>,
    budget: Arc<std::sync::atomic::AtomicI64>,
}

fn spend(budget: &std::sync::atomic::AtomicI64) -> std::io::Result<()> {
    match budget.fetch_sub(1, Ordering::SeqCst) {
        left if left > 0 => Ok(()),
        _ => Err(std::io::Error::other("the process died here")),
    }
}

impl Disk for DiesAfter {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn is_dir(&self, path: &std::path::Path) -> bool {
        self.inner.is_dir(path)
    }
    fn exists(&self, path: &std::path::Path) -> bool {
        self.inner.exists(path)
    }
    fn open_file(
        &self,
        path: &std::path::Path,
        mode: chronik::disk::OpenMode,
    ) -> std::io::Result<Arc<dyn chronik::disk::DiskFile>> {
        let inner = self.inner.open_file(path, mode)?;
        let budget = Arc::clone(&self.budget);
        Ok(Arc::new(DiesAfterFile { inner, budget }))
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.remove_dir_all(dir)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.sync_dir(dir)
    }
}

impl chronik::disk::DiskFile for DiesAfterFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_at(&self, data: &[u8], pos: u64) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.write_at(data, pos)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        spend(&self.budget)?;
        self.inner.sync_data()
    }
}

/// A log emptied at or below its start (a cut) or started afresh beyond its end (a
/// follower behind its leader's log start), killed at every change it makes: after
/// recovery it holds either its old records or the empty log, never claims an offset
/// it lacks (no damage recorded), and its start never moves back (R-LOG-8, R-LOG-13).
#[test]
fn r_log_8_a_log_restarted_empty_and_killed_at_any_point_recovers_consistently() {
    let dir = std::path::Path::new("/t-0");
    let small = || small_segments(FsyncPolicy::Always);
    let one_segment = || LogConfig {
        fsync: FsyncPolicy::Always,
        ..LogConfig::default()
    };
    // (what, log settings, deleted below, where it restarts)
    type Case = (&'static str, fn() -> LogConfig, u64, u64);
    let cases: [Case; 3] = [
        ("start afresh beyond the end", small, 13, 50),
        ("cut at the start", small, 13, 13),
        // The checkpoint's durable point names the very segment the cut replaces.
        ("cut at the start of the only segment", one_segment, 0, 0),
    ];
    for (what, config, deleted, target) in cases {
        let mut outcomes = std::collections::BTreeSet::new();
        for budget in 0..60 {
            let mem = MemDisk::new();
            let counter = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
            let dying: Arc<dyn Disk> = Arc::new(DiesAfter {
                inner: mem.clone(),
                budget: Arc::clone(&counter),
            });
            let log = open(&dying, dir, config());
            for seq in 0..20 {
                log.append(&batch_for(0, seq, 2, 150), 0, 0)
                    .expect("append");
            }
            log.set_high_watermark(30);
            log.delete_records_before(deleted).expect("delete records");
            // Housekeeping's checkpoint: it names the active segment's durable end.
            log.checkpoint().expect("checkpoint");
            counter.store(budget, Ordering::SeqCst);
            let finished = match target {
                50 => log.start_afresh_at(target).is_ok(),
                cut => log.truncate_to(cut).is_ok(),
            };
            drop(log);
            mem.crash(Tear::None);
            let disk: Arc<dyn Disk> = Arc::new(mem.clone());
            let log = open(&disk, dir, config());
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            assert_eq!(log.first_lost_offset(), None, "{what}, budget {budget}");
            assert!(start >= deleted, "{what}, budget {budget}: start {start}");
            assert!(start <= end, "{what}, budget {budget}: [{start}, {end})");
            let records: u64 = read_all(&log).iter().map(|(_, b)| b.len() as u64).sum();
            assert!(
                end == 40 || end <= target,
                "{what}, budget {budget}: end {end}"
            );
            if finished {
                assert_eq!((start, end), (target, target), "{what}, budget {budget}");
            }
            outcomes.insert((start, end, records > 0));
        }
        assert!(
            outcomes.len() >= 2,
            "{what}: both outcomes seen: {outcomes:?}"
        );
    }
}
