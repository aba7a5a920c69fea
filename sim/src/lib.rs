//! `chronik-sim`: three to five real metadata node cores (`chronik_core::consensus`:
//! the Raft node with its write-ahead log on a simulated disk, and the driver that
//! makes every decision the tokio shell would) in one thread, under one seeded random
//! source. The network is a queue with latency, loss, duplication and partitions; each
//! node's disk is a `MemDisk` that loses unsynced bytes (or keeps a torn tail) when the
//! node crashes; clients propose metadata commands through the same driver input the
//! broker's request handlers use. Checkers run after every step and at the end
//! (spec/conformance.md, "The simulator"). The same seed gives the same run.

pub mod check;
pub mod net;
pub mod options;
pub mod trace;
pub mod world;

pub use options::{Faults, Options};
pub use world::{run, Outcome, Stats};
