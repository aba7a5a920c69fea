//! Every fuzz target over its corpus (which holds each crash the fuzzers found,
//! so this is their regression test), then a bounded mutation run of each target
//! on its own thread. `CHRONIK_FUZZ_MS` sets each target's mutation time (default
//! 3000 ms), `CHRONIK_FUZZ_SEED` the seed (default fixed, so CI is repeatable).

use chronik_fuzz::mutate::{mutate, Rng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: chronik_fuzz::alloc::Counting = chronik_fuzz::alloc::Counting;

fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs one input; on a finding, keeps the input where it can be replayed from.
fn run(name: &str, target: fn(&[u8]), input: &[u8], origin: &str) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fuzz-findings")
            .join(name);
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{:016x}", crc(input)));
        let _ = std::fs::write(&path, input);
        panic!(
            "{name}: finding from {origin}, input kept in {}",
            path.display()
        );
    }
}

fn crc(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn fuzz(name: &str, target: fn(&[u8])) {
    let entries = corpus(name);
    assert!(!entries.is_empty(), "{name}: empty corpus");
    for (path, bytes) in &entries {
        run(name, target, bytes, &path.display().to_string());
    }
    let seed = env_u64("CHRONIK_FUZZ_SEED", 12);
    let budget = Duration::from_millis(env_u64("CHRONIK_FUZZ_MS", 3000));
    let mut rng = Rng::new(seed ^ crc(name.as_bytes()));
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let base = &entries[rng.below(entries.len())].1;
        let other = &entries[rng.below(entries.len())].1;
        let input = mutate(&mut rng, base, other);
        run(
            name,
            target,
            &input,
            &format!("mutation {runs} of seed {seed}"),
        );
        runs += 1;
    }
    eprintln!(
        "{name}: {} corpus entries, {runs} mutations in {:?}",
        entries.len(),
        started.elapsed()
    );
}

/// One test per target, named as the target, so `--test corpus sasl` runs one.
macro_rules! targets {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            fuzz(stringify!($name), chronik_fuzz::$name);
        }
    )*};
}

targets!(
    kafka_request,
    record_batch,
    frame_reader,
    raft_wal,
    peer_message,
    metadata,
    sasl
);

#[test]
fn every_target_has_a_libfuzzer_binary_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in chronik_fuzz::TARGETS {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "{name}"
        );
        assert!(root.join("corpus").join(name).is_dir(), "{name}");
    }
}
