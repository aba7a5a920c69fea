//! `chronik-sim`: three to five real node cores in one thread, under one seeded
//! random source: the metadata side (`chronik_core::consensus`: the Raft node with its
//! write-ahead log on a simulated disk, and the driver that makes every decision the
//! tokio shell would) and the partition side (`host.rs`: the partition logs and their
//! replication through `chronik_core::replication`). The network is a queue with
//! latency, loss, duplication and partitions; each node's disk is a `MemDisk` that
//! loses unsynced bytes (or keeps a torn tail) when the node crashes; clients propose
//! metadata commands through the same driver input the broker's request handlers use,
//! and produce to and consume from a replicated topic (`producers.rs`,
//! `consumers.rs`), and read it as one consumer group (`group_members.rs`, with each
//! node's coordinator in `group_host.rs`), and delete what was read (`trimmer.rs`). Checkers run after every step and at the end
//! (spec/conformance.md, "The simulator"). The same seed gives the same run.

pub mod admission;
pub mod check;
pub mod consumers;
pub mod dir_traces;
pub mod group_host;
pub mod group_members;
pub mod host;
pub mod message;
pub mod net;
pub mod options;
pub mod producers;
pub mod records;
pub mod repl_trace_files;
pub mod repl_traces;
pub mod trace;
pub mod trimmer;
pub mod wire;
pub mod world;

pub use options::{Faults, GroupProtocol, Options};
pub use world::{run, Outcome, Stats};
