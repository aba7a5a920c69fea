//! The core's loom-aware primitives, and the thread spawning only the shell does.

pub(crate) use chronik_core::sync::{lock, Condvar, Mutex};
#[cfg(loom)]
pub(crate) use loom::thread;
#[cfg(not(loom))]
pub(crate) use std::thread;
