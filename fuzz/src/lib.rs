//! Fuzz targets for every decoder that takes bytes from outside the broker: Kafka
//! requests, produced record batches, peer messages, metadata commands and
//! snapshots, log frames and the Raft log, SASL tokens (spec/wire.md R-WIRE-14).
//!
//! Each target is a function of one byte slice that panics on a finding. The same
//! functions run under libFuzzer (`fuzz_targets/`, built by `scripts/fuzz` with
//! coverage instrumentation) and under `cargo test` (`tests/corpus.rs`: the corpus
//! in `corpus/`, then a bounded, seeded mutation run without coverage feedback).

pub mod alloc;
pub mod mutate;
mod targets;

pub use targets::*;

/// A target: panics on a finding.
pub type Target = fn(&[u8]);

/// Every target by name: the name is its libFuzzer binary and its corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("kafka_request", kafka_request),
    ("record_batch", record_batch),
    ("frame_reader", frame_reader),
    ("raft_wal", raft_wal),
    ("peer_message", peer_message),
    ("metadata", metadata),
    ("sasl", sasl),
];
