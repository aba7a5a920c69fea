//! Chronik's deterministic core. Every function here takes an input (a decoded request,
//! a tick carrying the current time) and returns what the shell must do; nothing here
//! spawns, sleeps, reads the clock or touches a socket, and the crate's dependency list
//! keeps it that way. The tokio shell (`chronik`) and the tests drive the same code.

pub mod admin;
pub mod consensus;
pub mod consumer_groups;
pub mod disk;
pub mod errors;
pub mod groups;
pub mod log;
pub mod metadata;
pub mod replication;
pub mod security;
pub mod sync;
