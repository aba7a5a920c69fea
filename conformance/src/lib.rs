//! chronik-conformance: the model in model/ as the oracle of the real node code in
//! impl/. The simulation shell (`harness`) runs the real metadata node, partition log
//! and group-commit logic on simulated disks, one model action at a time; `view` is
//! the abstraction function from either side to what is compared; `replay` walks
//! model paths (exhaustively to a depth, and at random) and random runs of the real
//! shell, and reports the first divergence with its path, both views and the seed.
//! spec/conformance.md names the rules each comparison checks.

pub mod dirs;
pub mod harness;
pub mod ids;
pub mod network;
pub mod replay;
pub mod replication;
pub mod scenarios;
pub mod view;

pub use harness::{Harness, Injected};
pub use replay::{random_walks, real_runs, replay_all, replay_path, Divergence, Stats};
